-- Scalar macros shared by the staging models.

-- Money text (yuan, at most two significant decimals) → BIGINT fen; null when absent.
-- The pattern admits 13 integer digits and 2 decimals (then zeros), so decimal(15, 2) is
-- exact; a wider decimal (hugeint) costs DuckDB 1.4 ten times as much.
create or replace macro money_ok(x) as
    x is null or regexp_full_match(x, '[+-]?[0-9]{1,13}(\.[0-9]{0,2}0*)?');

create or replace macro to_fen(x) as
    case when x is not null and regexp_full_match(x, '[+-]?[0-9]{1,13}(\.[0-9]{0,2}0*)?')
         then cast(cast(x as decimal(15, 2)) * 100 as bigint) end;

-- 0/1 flags as exported (1, 1.0 from spreadsheets); null when absent.
create or replace macro flag_ok(x) as x is null or regexp_full_match(x, '[01](\.0*)?');
create or replace macro to_flag(x) as
    case when x is not null and regexp_full_match(x, '[01](\.0*)?')
         then cast(substr(x, 1, 1) as integer) end;

-- Date-times as exported by the platform and by spreadsheets.
create or replace macro to_ts(x) as try_strptime(
    x, ['%Y-%m-%d %H:%M:%S', '%Y-%m-%d %H:%M:%S.%f', '%Y-%m-%dT%H:%M:%S', '%Y-%m-%d %H:%M',
        '%Y/%m/%d %H:%M:%S', '%Y/%m/%d %H:%M', '%Y%m%d%H%M%S', '%Y-%m-%d', '%Y/%m/%d', '%Y%m%d']);

create or replace macro to_date(x) as cast(to_ts(x) as date);

-- GB 11643 resident id: 17 digits and the ISO 7064 MOD 11-2 check character.
create or replace macro certno_ok(c) as
    case when regexp_full_match(c, '[0-9]{17}[0-9Xx]') then
        upper(substr(c, 18, 1)) = substr('10X98765432', 1 + cast((
            7 * try_cast(substr(c, 1, 1) as integer) +
            9 * try_cast(substr(c, 2, 1) as integer) +
            10 * try_cast(substr(c, 3, 1) as integer) +
            5 * try_cast(substr(c, 4, 1) as integer) +
            8 * try_cast(substr(c, 5, 1) as integer) +
            4 * try_cast(substr(c, 6, 1) as integer) +
            2 * try_cast(substr(c, 7, 1) as integer) +
            1 * try_cast(substr(c, 8, 1) as integer) +
            6 * try_cast(substr(c, 9, 1) as integer) +
            3 * try_cast(substr(c, 10, 1) as integer) +
            7 * try_cast(substr(c, 11, 1) as integer) +
            9 * try_cast(substr(c, 12, 1) as integer) +
            10 * try_cast(substr(c, 13, 1) as integer) +
            5 * try_cast(substr(c, 14, 1) as integer) +
            8 * try_cast(substr(c, 15, 1) as integer) +
            4 * try_cast(substr(c, 16, 1) as integer) +
            2 * try_cast(substr(c, 17, 1) as integer)
        ) % 11 as bigint), 1)
    else false end;

-- National-platform medical types, classified by prefix (local codes have 4 or 6 digits).
create or replace macro med_class(t) as case
    when t like '14%' then 'outpatient_chronic'
    when t like '2%' then 'inpatient'
    when t like '41%' then 'pharmacy'
    when t like '1%' then 'outpatient'
    else 'other' end;
