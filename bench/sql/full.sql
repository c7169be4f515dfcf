-- The expert's query, full recompute: the month's warnings with first_month from the year.
-- $month ('YYYY-MM'), $year; `rules` (admdvs, m, warning_type, threshold_fen, rule_ordinary,
-- rule_identities, rule_insutypes) is the small table of rules in force per region and month.
-- Ordinary: no identity in force besides 脱贫人口 (tuopin; contract, identities).
-- Burden: psn_part_amt + maf_pay of loaded rows whose cost year is $year, in the exports up to
-- each month; flagged when strictly above the threshold.
with
per_export as (
    select psn_no, export_month as m, sum(psn_part_amt + maf_pay) as b
    from stg_settlements
    where status = 'loaded' and cost_year = $year and export_month <= $month
    group by all
),
running as (
    select psn_no, m, sum(b) over (partition by psn_no order by m) as ytd from per_export
),
-- only persons whose burden ever exceeds the lowest threshold can be flagged in any month
cand as (
    select psn_no from running
    group by psn_no
    having max(ytd) > (select min(threshold_fen) from rules)
),
months as (
    select distinct m, last_day(cast(m || '-01' as date)) as day from rules where m <= $month
),
-- each candidate's year-to-date burden at the end of every month so far (a range join over
-- at most 12 × 12 rows a person; an ASOF join here is planned as a nested loop on DuckDB 1.4
-- when the candidates are under-estimated: 500 s at 1M persons). Materialized: the
-- candidates' months first, then their registry rows (the optimizer would otherwise pair the
-- whole registry with the rules before filtering)
burden as materialized (
    select y.psn_no, y.m, y.day, y.ytd, p.insuplc_admdvs, p.insutype
    from (
        select e.psn_no, mo.m, mo.day, sum(e.b) as ytd
        from cand c
        join per_export e using (psn_no)
        join months mo on e.m <= mo.m
        group by all
    ) y
    join ref_persons p on p.psn_no = y.psn_no
),
idents as (
    select b.psn_no, b.m, list(distinct i.identity) as ids
    from burden b join ref_identities i
      on i.psn_no = b.psn_no and i.begin_date <= b.day
     and (i.end_date is null or i.end_date >= b.day)
    group by all
),
flags as (
    select b.psn_no, b.m, u.warning_type, b.ytd as burden_ytd_fen, u.threshold_fen
    from burden b
    join rules u on u.admdvs = b.insuplc_admdvs and u.m = b.m
    left join idents i on i.psn_no = b.psn_no and i.m = b.m
    where b.ytd > u.threshold_fen
      and case when u.rule_ordinary then coalesce(len(list_filter(i.ids, x -> x <> 'tuopin')), 0) = 0
               else coalesce(list_has_any(i.ids, u.rule_identities), false) end
      and (u.rule_insutypes is null or list_contains(u.rule_insutypes, b.insutype))
),
firsts as (
    select psn_no, warning_type, min(m) as first_month from flags group by all
)
select f.m as month, f.psn_no, f.warning_type, f.burden_ytd_fen, f.threshold_fen,
       x.first_month,
       case when x.first_month = f.m then 'new' else 'continuing' end as status
from flags f join firsts x using (psn_no, warning_type)
where f.m = $month
order by f.psn_no, f.warning_type
