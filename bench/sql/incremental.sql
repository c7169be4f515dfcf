-- The expert's query, incremental: the running totals through the previous month plus the
-- new month's loaded rows; first_month from the stored first flags. Same output as full.sql.
with
new_rows as (
    select psn_no, sum(psn_part_amt + maf_pay) as b
    from stg_settlements
    where status = 'loaded' and cost_year = $year and export_month = $month
    group by all
),
ytd as (
    select psn_no, coalesce(s.ytd, 0) + coalesce(n.b, 0) as ytd
    from st.inc_ytd s full join new_rows n using (psn_no)
),
day as (select last_day(cast($month || '-01' as date)) as day),
cand as (
    select psn_no, ytd from ytd
    where ytd > (select min(threshold_fen) from rules where m = $month)
),
idents as (
    select c.psn_no, list(distinct i.identity) as ids
    from cand c join ref_identities i on i.psn_no = c.psn_no, day d
    where i.begin_date <= d.day and (i.end_date is null or i.end_date >= d.day)
    group by all
),
flags as (
    select c.psn_no, u.warning_type, c.ytd as burden_ytd_fen, u.threshold_fen
    from cand c
    join ref_persons p using (psn_no)
    join rules u on u.admdvs = p.insuplc_admdvs and u.m = $month
    left join idents i using (psn_no)
    where c.ytd > u.threshold_fen
      and case when u.rule_ordinary then coalesce(len(list_filter(i.ids, x -> x <> 'tuopin')), 0) = 0
               else coalesce(list_has_any(i.ids, u.rule_identities), false) end
      and (u.rule_insutypes is null or list_contains(u.rule_insutypes, p.insutype))
)
select $month as month, f.psn_no, f.warning_type, f.burden_ytd_fen, f.threshold_fen,
       coalesce(x.first_month, $month) as first_month,
       case when x.first_month is null then 'new' else 'continuing' end as status
from flags f left join st.inc_first x using (psn_no, warning_type)
order by f.psn_no, f.warning_type
