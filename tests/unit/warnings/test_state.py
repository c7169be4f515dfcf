"""Running totals kept from month to month (pipeline/warnings/state.py): a month's burden and
first flags from the stores through the month before give the same warnings as the year's
rows, and a store is not used once what it was computed from has changed."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest

from pipeline.months import Month
from pipeline.policy.load import PolicySet
from pipeline.store.warehouse import connect
from pipeline.warnings import state
from pipeline.warnings.burden import _FULL_YEAR, _INCREMENT, burden_as_of_sql, year_to_date_sql
from pipeline.warnings.compute import _replay, compute_warnings, people_sql
from pipeline.warnings.rules import flag, identities_by_month, resolve_rules
from tests.landing import run_months

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "jining-hebei-2024"
JUN, MAY = Month(2024, 6), Month(2024, 5)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    """The example's months 1–6 run one after the other, gates off (each month from the
    stores of the month before)."""
    work = tmp_path_factory.mktemp("state")
    shutil.copytree(FIXTURE / "landing", work / "landing")
    return run_months(work, Month(2024, 1).through(JUN))


def _rules(con, m: Month) -> pl.DataFrame:
    income = con.sql("select admdvs, year, scope, amount_fen, published_on from ref_income").pl()
    regions = con.sql("select distinct insuplc_admdvs as admdvs from ref_persons").pl()
    months = pl.DataFrame({"m": [str(x) for x in Month(m.year, 1).through(m)]})
    return resolve_rules(PolicySet.load(()), regions.join(months, how="cross"), income)


def test_only_the_latest_two_months_are_kept_and_valid(warehouse):
    con = connect(warehouse, read_only=True)
    kept = con.sql("select kind, through_month from state_meta order by all").fetchall()
    assert kept == [("assistance", "2024-05"), ("assistance", "2024-06"),
                    ("burden", "2024-05"), ("burden", "2024-06"), ("first", "2024-05"),
                    ("first", "2024-06")]  # fmt: skip
    months = con.sql("select distinct through_month from state_burden order by 1").fetchall()
    assert months == [("2024-05",), ("2024-06",)]
    # June's run found May's stores valid: it read May's totals and June's rows only
    assert state.valid(con, "burden", MAY, state.staged_fingerprint(con, MAY))
    assert state.valid(con, "first", MAY, state.first_fingerprint(con, MAY, _rules(con, JUN)))
    assert year_to_date_sql(con, JUN)[0] == _INCREMENT


def test_running_totals_equal_the_years_rows(warehouse):
    con = connect(warehouse, read_only=True)
    stored = con.sql(
        "select k.psn_no, b.* exclude (through_month, psn_key) from state_burden b "
        "join state_keys k using (psn_key) where through_month = '2024-06'"
    ).pl()
    full = con.execute(_FULL_YEAR, {"month": "2024-06", "year": 2024}).pl()
    assert stored.height > 0
    assert stored.sort("psn_no").equals(full.sort("psn_no"))
    # the incremental sums (May's totals + June's rows) are June's, to the fen
    assert burden_as_of_sql(con, JUN).drop("m").sort("psn_no").equals(full.sort("psn_no"))


def test_first_flags_from_the_store_equal_the_replay_and_the_years_flags(warehouse, tmp_path):
    con = connect(warehouse, read_only=True)
    rules = _rules(con, JUN)
    from_store = compute_warnings(con, JUN, rules)
    assert set(from_store["status"]) == {"new", "continuing"}
    assert (from_store["first_month"] < "2024-06").sum() > 0
    # the replay of the year for the persons warned now (the former way)
    now = from_store.select("psn_no", "warning_type")
    people = people_sql(con)
    idents = con.sql("select psn_no, identity, begin_date, end_date from ref_identities").pl()
    replayed = _replay(con, JUN, from_store, people, idents, rules)
    assert (
        now.join(replayed, on=["psn_no", "warning_type"], how="left")
        .sort("psn_no", "warning_type")["first_month"]
        .to_list()
        == from_store["first_month"].to_list()
    )
    # without valid stores (their fingerprints no longer match): the year's rows, same result
    copy = tmp_path / "w.duckdb"
    shutil.copyfile(warehouse, copy)
    rw = connect(copy)
    rw.execute("update state_meta set fingerprint = 'stale'")
    assert year_to_date_sql(rw, JUN)[0] == _FULL_YEAR
    assert compute_warnings(rw, JUN, rules).equals(from_store)
    assert compute_warnings(rw, JUN, rules, store=True).equals(from_store)
    # ... and the stores written then are valid again for July
    assert state.valid(rw, "burden", JUN, state.staged_fingerprint(rw, JUN))
    july = rw.sql("select count(*) from state_first where through_month = '2024-06'").fetchone()
    assert (
        july[0]
        == con.sql("select count(*) from state_first where through_month = '2024-06'").fetchone()[0]
    )


def test_a_restaged_earlier_month_invalidates_the_stores(warehouse, tmp_path):
    copy = tmp_path / "w.duckdb"
    shutil.copyfile(warehouse, copy)
    con = connect(copy)
    rules = _rules(con, JUN)
    # a late file for March restages March and later: its inputs digest changes
    con.execute("update stg_state set inputs_digest = 'changed' where export_month = '2024-03'")
    assert not state.valid(con, "burden", MAY, state.staged_fingerprint(con, MAY))
    assert not state.valid(con, "first", MAY, state.first_fingerprint(con, MAY, rules))
    assert year_to_date_sql(con, JUN)[0] == _FULL_YEAR


def test_first_fingerprint_follows_the_rules_and_the_reference(warehouse):
    con = connect(warehouse, read_only=True)
    rules = _rules(con, JUN)
    base = state.first_fingerprint(con, MAY, rules)
    # the rules of June are not part of May's flags
    assert state.first_fingerprint(con, MAY, rules.filter(pl.col("m") <= "2024-05")) == base
    raised = rules.with_columns(
        pl.when(pl.col("m") == "2024-02")
        .then(pl.col("threshold_fen") + 1)
        .otherwise(pl.col("threshold_fen"))
        .alias("threshold_fen")
    )
    assert state.first_fingerprint(con, MAY, raised) != base


def test_a_january_starts_the_year_without_stores(warehouse):
    con = connect(warehouse, read_only=True)
    assert year_to_date_sql(con, Month(2024, 1))[0] == _FULL_YEAR


def test_year_flags_pin_the_months_without_rows(warehouse):
    """A person flagged in a month keeps the burden of their last export month in the months
    that follow without rows: the year's flags equal a flag of each month's year to date."""
    from pipeline.warnings.compute import _year_flags

    con = connect(warehouse, read_only=True)
    rules = _rules(con, JUN)
    idents = con.sql("select psn_no, identity, begin_date, end_date from ref_identities").pl()
    year = _year_flags(con, JUN, idents, rules).select("psn_no", "m", "warning_type")
    months = Month(2024, 1).through(JUN)
    each = pl.concat(
        [
            flag(
                con.execute(_FULL_YEAR, {"month": str(x), "year": 2024})
                .pl()
                .with_columns(pl.lit(str(x)).alias("m")),
                people_sql(con),
                identities_by_month(idents, [x]),
                rules,
            ).select("psn_no", "m", "warning_type")
            for x in months
        ]
    )
    assert year.height > 0
    assert year.sort(pl.all()).equals(each.sort(pl.all()))


def test_people_of_some_persons_carry_their_households_sizes(warehouse):
    con = connect(warehouse, read_only=True)
    every = people_sql(con)
    sizes = every.group_by("hh_id").len()
    big = sizes.filter(pl.col("hh_id").is_not_null() & (pl.col("len") > 1))["hh_id"][0]
    member = every.filter(pl.col("hh_id") == big)["psn_no"].sort()[0]
    alone = every.filter(pl.col("hh_id").is_null())["psn_no"].to_list()[:1]
    wanted = pl.Series([member, *alone])
    some = people_sql(con, wanted).sort("psn_no")
    assert some.equals(every.filter(pl.col("psn_no").is_in(wanted.implode())).sort("psn_no"))
    assert (
        some.filter(pl.col("psn_no") == member)["hh_size"].item()
        == sizes.filter(pl.col("hh_id") == big)["len"].item()
    )
    # with households: every member of the person's household, with the same size
    members = people_sql(con, wanted, households=True).sort("psn_no")
    assert members.equals(
        every.filter(pl.col("psn_no").is_in(wanted.implode()) | (pl.col("hh_id") == big)).sort(
            "psn_no"
        )
    )


def test_year_flags_keep_a_month_over_the_line_that_a_later_reversal_undoes(warehouse, tmp_path):
    """The year's flags skip only persons whose positive amounts alone never pass the lowest
    threshold: one over it in February and reversed to almost nothing in March is flagged
    in February (first_month) though the year's total is far below."""
    from pipeline.warnings.compute import _year_flags

    copy = tmp_path / "w.duckdb"
    shutil.copyfile(warehouse, copy)
    con = connect(copy)
    rules = _rules(con, JUN)
    top = int(rules["threshold_fen"].max())
    con.execute(
        "insert into ref_persons select 'ZZ0001', certno, psn_name, gend, brdy, 'ZZH1', "
        "insuplc_admdvs, insutype, rural, source_file, source_row from ref_persons "
        "where psn_no = (select min(psn_no) from ref_persons)"
    )
    con.executemany(
        "insert into stg_settlements (psn_no, export_month, source_file, source_row, cost_year, "
        "psn_part_amt, maf_pay, fulamt_ownpay_amt, status) "
        "values ('ZZ0001', ?, 'z.csv', ?, 2024, ?, 0, 0, 'loaded')",
        [["2024-02", 1, top + 1], ["2024-03", 2, -top]],
    )
    idents = con.sql("select psn_no, identity, begin_date, end_date from ref_identities").pl()
    mine = _year_flags(con, JUN, idents, rules).filter(pl.col("psn_no") == "ZZ0001")
    assert set(mine["m"]) == {"2024-02"}  # 1 fen over the highest line, then reversed
    assert mine["burden_ytd_fen"].unique().to_list() == [top + 1]


def test_each_person_keeps_one_key_given_in_psn_no_order_among_the_new(warehouse):
    """state_keys: one key per person, never given twice; January's persons numbered 1.. in
    psn_no order, each later month's new persons after them, again in psn_no order."""
    con = connect(warehouse, read_only=True)
    keys = con.sql("select psn_no, psn_key from state_keys order by psn_key").pl()
    assert keys["psn_no"].is_unique().all() and keys["psn_key"].is_unique().all()
    assert keys["psn_key"].to_list() == list(range(1, keys.height + 1))
    first = con.sql(
        "select psn_no, min(export_month) as m from stg_settlements "
        "where status = 'loaded' and cost_year = 2024 group by psn_no"
    ).pl()
    assert first.height == keys.height
    by_first = first.sort("m", "psn_no")["psn_no"].to_list()
    assert keys["psn_no"].to_list() == by_first
    assert first["m"].n_unique() > 1  # persons new after January, numbered after January's


def test_a_warehouse_with_the_totals_by_psn_no_is_migrated_and_recomputes(warehouse, tmp_path):
    """A warehouse written by state version 1 (state_burden by psn_no): opened for writing,
    its totals are dropped with their state_meta rows, and the month is computed from the
    year's rows, with the same warnings; the totals then written are valid for July."""
    copy = tmp_path / "w.duckdb"
    shutil.copyfile(warehouse, copy)
    con = connect(copy)
    rules = _rules(con, JUN)
    expected = compute_warnings(con, JUN, rules)
    con.execute("drop table state_burden")
    con.execute("drop table state_keys")
    con.execute(
        "create table state_burden as select through_month, 'P' as psn_no, 1::bigint as x "
        "from state_meta where kind = 'burden'"
    )
    con.close()
    con = connect(copy)
    assert "psn_key" in [
        c
        for (c,) in con.sql(
            "select column_name from duckdb_columns() where table_name = 'state_burden'"
        ).fetchall()
    ]
    assert con.sql("select count(*) from state_meta where kind = 'burden'").fetchone() == (0,)
    assert year_to_date_sql(con, JUN)[0] == _FULL_YEAR
    assert compute_warnings(con, JUN, rules, store=True).equals(expected)
    assert state.valid(con, "burden", JUN, state.staged_fingerprint(con, JUN))
