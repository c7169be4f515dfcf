-- stg_settlements: one row per raw settlement row of the export months $from..$month.
-- Grain: (export_month, source_file, source_row). Types the text (money → fen) and
-- classifies every row exactly once: loaded | duplicate | skipped | quarantined (with the
-- reason code and column). Classification of an export month depends only on that month
-- and earlier ones (already staged, read from `prior`), so a re-run of an old month sees
-- what was there then, and a new month is classified without touching the earlier ones.
insert into stg_settlements by name
with

src as (
    select rowid as rid, * from raw_settlements where export_month between $from and $month
),

-- Settlements loaded from earlier export months: a repeat of their id is a duplicate, and
-- a reversal may refer to them. Only ids the new rows name are looked up (every use below
-- matches a setl_id or init_setl_id of src), so the cost follows the new month, not the year.
-- (The ids are read from raw_settlements, not src: src used once is not materialized.)
prior as (
    select setl_id, export_month, refd_setl_flag, cost_year
    from stg_settlements
    where export_month < $from and status = 'loaded'
        and setl_id in (
            select setl_id from raw_settlements
            where export_month between $from and $month and setl_id is not null
            union select init_setl_id from raw_settlements
            where export_month between $from and $month and init_setl_id is not null
        )
),

-- Every amount and flag parsed once: null when absent or not matching its pattern, so a
-- check "not money_ok(x)" is "x is not null and its parsed value is null" (no second match).
parsed as (
    select
        *,
        to_ts(setl_time) as setl_ts,
        to_fen(medfee_sumamt) as medfee_f,
        to_fen(fulamt_ownpay_amt) as fulamt_ownpay_f,
        to_fen(overlmt_selfpay) as overlmt_selfpay_f,
        to_fen(preselfpay_amt) as preselfpay_f,
        to_fen(inscp_scp_amt) as inscp_scp_f,
        to_fen(hifp_pay) as hifp_f,
        to_fen(hifmi_pay) as hifmi_f,
        to_fen(hifob_pay) as hifob_f,
        to_fen(maf_pay) as maf_f,
        to_fen(oth_pay) as oth_f,
        to_fen(fund_pay_sumamt) as fund_f,
        to_fen(psn_part_amt) as psn_part_f,
        to_fen(hosp_part_amt) as hosp_part_f,
        to_flag(refd_setl_flag) as refd_f,
        to_flag(vali_flag) as vali_f
    from src
),

typed as (
    select
        *,
        medfee_f as medfee_fen,
        coalesce(fulamt_ownpay_f, 0) as fulamt_ownpay_fen,
        coalesce(overlmt_selfpay_f, 0) as overlmt_selfpay_fen,
        coalesce(preselfpay_f, 0) as preselfpay_fen,
        coalesce(inscp_scp_f, 0) as inscp_scp_fen,
        hifp_f as hifp_fen,
        coalesce(hifmi_f, 0) as hifmi_fen,
        coalesce(hifob_f, 0) as hifob_fen,
        coalesce(maf_f, 0) as maf_fen,
        coalesce(oth_f, 0) as oth_fen,
        fund_f as fund_fen,
        psn_part_f as psn_part_fen,
        coalesce(hosp_part_f, 0) as hosp_part_fen,
        coalesce(refd_f, 0) as refd_flag,
        coalesce(vali_f, 1) as vali
    from parsed
),

-- Row-level checks, first failing one wins. (reason, column) Materialized once, with only
-- the columns `final` writes (not every raw text column: at 2.3M rows a month that kept the
-- peak 1.1 GB higher); the classification below works on narrow keys.
checked as materialized (
    select
        rid, export_month, source_file, source_row, setl_id, psn_no, insutype, med_type,
        setl_ts, medfee_fen, fulamt_ownpay_fen, overlmt_selfpay_fen, preselfpay_fen,
        inscp_scp_fen, hifp_fen, hifmi_fen, hifob_fen, maf_fen, oth_fen, fund_fen,
        psn_part_fen, hosp_part_fen, refd_flag, init_setl_id,
        fixmedins_code, fixmedins_name, dise_codg, dise_name,
        case
            when vali_flag is not null and vali_f is null then ['bad_flag', 'vali_flag']
            when vali = 0 then ['vali_flag_0', 'vali_flag']
            when setl_id is null then ['missing_value', 'setl_id']
            when psn_no is null then ['missing_value', 'psn_no']
            when insutype is null then ['missing_value', 'insutype']
            when med_type is null then ['missing_value', 'med_type']
            when setl_time is null then ['missing_value', 'setl_time']
            when medfee_sumamt is null then ['missing_value', 'medfee_sumamt']
            when hifp_pay is null then ['missing_value', 'hifp_pay']
            when fund_pay_sumamt is null then ['missing_value', 'fund_pay_sumamt']
            when psn_part_amt is null then ['missing_value', 'psn_part_amt']
            when not regexp_full_match(insutype, '[0-9]{2,6}') then ['bad_code', 'insutype']
            when not regexp_full_match(med_type, '[0-9]{2,6}') then ['bad_code', 'med_type']
            when setl_ts is null then ['bad_time', 'setl_time']
            when medfee_sumamt is not null and medfee_f is null then ['bad_amount', 'medfee_sumamt']
            when fulamt_ownpay_amt is not null and fulamt_ownpay_f is null then ['bad_amount', 'fulamt_ownpay_amt']
            when overlmt_selfpay is not null and overlmt_selfpay_f is null then ['bad_amount', 'overlmt_selfpay']
            when preselfpay_amt is not null and preselfpay_f is null then ['bad_amount', 'preselfpay_amt']
            when inscp_scp_amt is not null and inscp_scp_f is null then ['bad_amount', 'inscp_scp_amt']
            when hifp_pay is not null and hifp_f is null then ['bad_amount', 'hifp_pay']
            when hifmi_pay is not null and hifmi_f is null then ['bad_amount', 'hifmi_pay']
            when hifob_pay is not null and hifob_f is null then ['bad_amount', 'hifob_pay']
            when maf_pay is not null and maf_f is null then ['bad_amount', 'maf_pay']
            when oth_pay is not null and oth_f is null then ['bad_amount', 'oth_pay']
            when fund_pay_sumamt is not null and fund_f is null then ['bad_amount', 'fund_pay_sumamt']
            when psn_part_amt is not null and psn_part_f is null then ['bad_amount', 'psn_part_amt']
            when hosp_part_amt is not null and hosp_part_f is null then ['bad_amount', 'hosp_part_amt']
            when not money_ok(acct_pay) then ['bad_amount', 'acct_pay']
            when not money_ok(psn_cash_pay) then ['bad_amount', 'psn_cash_pay']
            when refd_setl_flag is not null and refd_f is null then ['bad_flag', 'refd_setl_flag']
            when setl_ts >= cast(strptime(export_month || '-01', '%Y-%m-%d') as date)
                            + interval 1 month
                then ['after_export_month', 'setl_time']
            when certno is not null and not certno_ok(certno) then ['bad_certno', 'certno']
            when psn_no not in (select psn_no from ref_persons) then ['unknown_psn', 'psn_no']
            when abs(medfee_fen - fund_fen - hosp_part_fen - psn_part_fen) > 1
                then ['amounts_mismatch', 'psn_part_amt']
            when refd_flag = 0 and least(
                    medfee_fen, hifp_fen, hifmi_fen, hifob_fen, maf_fen, oth_fen, fund_fen,
                    psn_part_fen, hosp_part_fen) < 0
                then ['negative_without_reversal', 'medfee_sumamt']
            when refd_flag = 1 and init_setl_id is null then ['missing_value', 'init_setl_id']
        end as check_result
    from typed
),

-- The rows that passed the checks, narrow: what classification needs (rid: the raw row).
clean as (
    select rid, setl_id, export_month, source_file, source_row, refd_flag, init_setl_id,
           year(setl_ts) as setl_year
    from checked
    where check_result is null
),

-- A row that passed the checks is usable unless it reverses a settlement not known by its
-- export month (loaded earlier, or arriving in this or an earlier export month of the range):
-- such a reversal is quarantined, so it must not make a later copy of itself a duplicate.
usable as (
    select c.*
    from clean as c
    where c.refd_flag = 0
        or c.init_setl_id in (select setl_id from prior where refd_setl_flag = 0)
        or exists (
            select 1 from clean as o
            where o.refd_flag = 0
                and o.setl_id = c.init_setl_id and o.export_month <= c.export_month
        )
),

-- The first usable arrival of a settlement id is the settlement; later ones are duplicates
-- (an id loaded from an earlier export month: every arrival is a repeat). Ids arriving more
-- than once in the range are few: only those are ordered.
repeated as (
    select rid, row_number() over (
        partition by setl_id order by export_month, source_file, source_row
    ) as n
    from usable
    where setl_id in (select setl_id from usable group by setl_id having count(*) > 1)
),

ranked as (
    select
        u.rid, u.setl_id, u.export_month, u.refd_flag, u.setl_year,
        case
            when u.setl_id in (select setl_id from prior) then 2
            else coalesce(r.n, 1)
        end as arrival
    from usable as u
    left join repeated as r using (rid)
),

originals as (
    select setl_id, export_month, cost_year from prior where refd_setl_flag = 0
    union all
    select setl_id, export_month, setl_year as cost_year
    from ranked
    where arrival = 1 and refd_flag = 0
),

final as (
    select
        r.export_month,
        r.source_file,
        r.source_row,
        r.setl_id,
        r.psn_no,
        r.insutype,
        r.med_type,
        med_class(r.med_type) as med_class,
        r.setl_ts as setl_time,
        case when r.refd_flag = 1 then o.cost_year else year(r.setl_ts) end as cost_year,
        r.medfee_fen as medfee_sumamt,
        r.fulamt_ownpay_fen as fulamt_ownpay_amt,
        r.overlmt_selfpay_fen as overlmt_selfpay,
        r.preselfpay_fen as preselfpay_amt,
        r.inscp_scp_fen as inscp_scp_amt,
        r.hifp_fen as hifp_pay,
        r.hifmi_fen as hifmi_pay,
        r.hifob_fen as hifob_pay,
        r.maf_fen as maf_pay,
        r.oth_fen as oth_pay,
        r.fund_fen as fund_pay_sumamt,
        r.psn_part_fen as psn_part_amt,
        r.hosp_part_fen as hosp_part_amt,
        r.refd_flag as refd_setl_flag,
        r.init_setl_id,
        r.fixmedins_code,
        r.fixmedins_name,
        r.dise_codg,
        r.dise_name,
        case
            when r.check_result[1] = 'vali_flag_0' then 'skipped'
            when r.check_result is not null then 'quarantined'
            when k.arrival > 1 then 'duplicate'
            when r.refd_flag = 1 and o.setl_id is null then 'quarantined'
            else 'loaded'
        end as status,
        case
            when r.check_result is not null then r.check_result[1]
            when k.arrival > 1 then 'duplicate_setl_id'
            when r.refd_flag = 1 and o.setl_id is null then 'unknown_original'
        end as reason,
        case
            when r.check_result is not null then r.check_result[2]
            when k.arrival > 1 then 'setl_id'
            when r.refd_flag = 1 and o.setl_id is null then 'init_setl_id'
        end as reason_column
    from checked as r
    left join ranked as k using (rid)
    -- (the reversal test sits inside the key so that the join is a hash join on every
    -- DuckDB version: as a separate condition, DuckDB 1.4 plans a nested-loop join)
    left join originals as o
        on o.setl_id = case when r.refd_flag = 1 then r.init_setl_id end
        and o.export_month <= r.export_month
)

select * from final
