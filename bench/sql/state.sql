-- The incremental query's state after the month before $month (prepared once, not timed):
-- each person's running burden of $year through export month $prev, and the first month of
-- $year (up to $prev) in which each person was flagged for each warning type.
create or replace table st.inc_ytd as
select psn_no, sum(psn_part_amt + maf_pay) as ytd
from stg_settlements
where status = 'loaded' and cost_year = $year and export_month <= $prev
group by all;
