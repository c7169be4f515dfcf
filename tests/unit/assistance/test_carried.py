"""The assistance audit carried from month to month (pipeline/assistance/audit.py,
store_assistance): a month whose month-before rows still hold computes only the persons with
new rows or an identity taking effect in the month, and its rows equal everyone's computed
afresh from the year's rows."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest

from pipeline.assistance import entitlement
from pipeline.assistance.audit import (
    MART_COLUMNS,
    _fingerprint,
    _inputs,
    audit,
    store_assistance,
)
from pipeline.assistance.entitlement import entitlements_for_month, month_terms, newly_held
from pipeline.months import Month
from pipeline.policy.load import PolicySet
from pipeline.store.warehouse import connect
from pipeline.warnings import state
from tests.landing import run_months

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "jining-hebei-2024"
JUN, MAY = Month(2024, 6), Month(2024, 5)
# Two Jining (370812 兖州区) persons with rows in January–May and none in June's
# export, given an identity in the test's copy of the landing folder (Jining's document has
# no report-day rule: an identity counts from its begin date):
# - P3700002721 特困 from 3 May: held in May already;
# - P3700001343 低保 from 10 June: held from June, with no June row of theirs.
NEW_IDENTITIES = (
    "370812200910187214,tekun,2024-05-03,,civil_affairs\n"
    "370812196511173430,dibao,2024-06-10,,civil_affairs\n"
)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    """The example's months 1–6 with the two identities above, run one after the other."""
    work = tmp_path_factory.mktemp("carried")
    shutil.copytree(FIXTURE / "landing", work / "landing")
    with (work / "landing" / "identities" / "identities.csv").open("a", encoding="utf-8") as f:
        f.write(NEW_IDENTITIES)
    return run_months(work, Month(2024, 1).through(JUN))


def _mart(con, m: Month) -> pl.DataFrame:
    return con.execute(
        f"select {', '.join(MART_COLUMNS)} from mart_assistance where month = ? order by psn_no",
        [str(m)],
    ).pl()


def _afresh(con, m: Month) -> pl.DataFrame:
    return audit(entitlements_for_month(con, m, PolicySet.load()))


def test_june_carried_mays_rows_and_equals_everyone_afresh(warehouse):
    con = connect(warehouse, read_only=True)
    terms = month_terms(con, JUN, PolicySet.load())
    # June's run found May's rows computed from the same inputs: it carried them over
    assert state.valid(con, "assistance", MAY, _fingerprint(con, MAY, _inputs(con, terms)))
    june, afresh = _mart(con, JUN), _afresh(con, JUN)
    assert june.height == afresh.height > 200
    assert june.cast(afresh.schema).equals(afresh)  # to the fen, row for row
    # most persons had no June row and no identity taking effect in June: their rows are May's
    new_rows = set(
        con.sql(
            "select psn_no from stg_settlements where export_month = '2024-06' "
            "and status = 'loaded'"
        ).pl()["psn_no"]
    )
    may = _mart(con, MAY)
    held = newly_held(con, JUN, terms)["psn_no"].to_list()
    kept = may.filter(~pl.col("psn_no").is_in([*new_rows, *held])).drop("month")
    assert kept.height > 50
    same = june.filter(pl.col("psn_no").is_in(kept["psn_no"].implode())).drop("month")
    assert same.equals(kept)


def test_an_identity_taking_effect_in_june_changes_a_row_without_june_rows(warehouse):
    con = connect(warehouse, read_only=True)
    terms = month_terms(con, JUN, PolicySet.load())
    assert newly_held(con, JUN, terms)["psn_no"].to_list() == ["P3700001343"]
    assert newly_held(con, MAY, terms)["psn_no"].to_list() == ["P3700002721"]
    row = lambda m, p: _mart(con, m).filter(pl.col("psn_no") == p)  # noqa: E731
    may, june = row(MAY, "P3700001343"), row(JUN, "P3700001343")
    assert may["category"].item() is None  # in May's rows only as paid by assistance
    assert (june["category"].item(), june["month"].item()) == ("cat1", "2024-06")
    # held from 10 June: none of the person's costs (all before June) count for 低保 —
    # eligible 0, entitled 0 — and the paid figure is May's (no June row)
    assert (june["eligible_cost_fen"].item(), june["entitled_fen"].item()) == (0, 0)
    assert june["paid_fen"].item() == may["paid_fen"].item() > 0
    # 特困 from 3 May: May's rows of the person count; June carries May's figures
    may_t, june_t = row(MAY, "P3700002721"), row(JUN, "P3700002721")
    assert may_t["category"].item() == june_t["category"].item() == "cat1"
    assert june_t.drop("month").equals(may_t.drop("month"))


def test_a_stale_record_computes_everyone(warehouse, tmp_path):
    db = tmp_path / "w.duckdb"
    shutil.copyfile(warehouse, db)
    con = connect(db)
    con.execute("update state_meta set fingerprint = 'stale' where kind = 'assistance'")
    con.execute("delete from mart_assistance where month = '2024-06'")
    con.execute("update mart_assistance set entitled_fen = -1 where month = '2024-05'")
    frame = store_assistance(con, JUN, PolicySet.load())
    # nothing of May's (tampered) rows was carried: June is everyone's, afresh
    assert frame.equals(_afresh(con, JUN))
    assert _mart(con, JUN).cast(frame.schema).equals(frame)
    # and June is recorded as computed from the current inputs
    terms = month_terms(con, JUN, PolicySet.load())
    assert state.valid(con, "assistance", JUN, _fingerprint(con, JUN, _inputs(con, terms)))


def test_carried_rows_follow_the_may_rows(warehouse, tmp_path):
    """With May's record valid, a May row is what June starts from (no recomputation of
    persons without June rows): a planted May figure shows up in June."""
    db = tmp_path / "w.duckdb"
    shutil.copyfile(warehouse, db)
    con = connect(db)
    new_rows = con.sql(
        "select psn_no from stg_settlements where export_month = '2024-06' and status = 'loaded'"
    ).pl()["psn_no"]
    quiet = (
        _mart(con, MAY)
        .filter(~pl.col("psn_no").is_in(new_rows.implode()) & (pl.col("psn_no") != "P3700001343"))
        .get_column("psn_no")[0]
    )
    con.execute(
        "update mart_assistance set paid_fen = 123456 where month = '2024-05' and psn_no = ?",
        [quiet],
    )
    frame = store_assistance(con, JUN, PolicySet.load())
    assert frame.filter(pl.col("psn_no") == quiet)["paid_fen"].item() == 123456


def test_slices_of_persons_give_the_rows_of_one_computation(warehouse, monkeypatch):
    """entitlements_for_month computes ROWS_PER_SLICE settlement rows at a time (buckets of a
    hash of psn_no): in slices of 40 rows, June afresh and the carried persons' rows are the
    same, row for row, as in one slice."""
    con = connect(warehouse, read_only=True)
    whole = entitlements_for_month(con, JUN, PolicySet.load())
    n = con.sql(
        "select count(*) from stg_settlements where status = 'loaded' and export_month <= '2024-06' "
        "and (maf_pay <> 0 or psn_no in (select psn_no from ref_identities))"
    ).fetchone()[0]
    assert n > 400  # more than ten slices of 40
    seen = []
    real = entitlement.compute_entitlements
    monkeypatch.setattr(entitlement, "ROWS_PER_SLICE", 40)
    monkeypatch.setattr(
        entitlement,
        "compute_entitlements",
        lambda rows, *a: seen.append(rows.height) or real(rows, *a),
    )
    sliced = entitlements_for_month(con, JUN, PolicySet.load())
    assert len(seen) == -(-n // 40) and sum(seen) == n and max(seen) < n // 4
    assert sliced.equals(whole) and whole.height > 200
    # a person's rows are never split between slices: every person is computed once
    assert sliced["psn_no"].is_unique().all()
    con.register("few", whole.select("psn_no").head(30).to_arrow())
    few = entitlements_for_month(con, JUN, PolicySet.load(), persons="few")
    assert few.equals(whole.head(30))


def test_newly_held_reads_only_the_begins_that_can_take_effect_in_the_month():
    """newly_held reads the intervals beginning from the first day of M − 2 to the last day of
    M + the longest retro window; for every begin day from October 2023 to March 2025 it names
    the same persons as effective_identities over every interval. Region 1 has report day 10
    (an interval begun on the 10th counts from the next month, on the 11th from the one after);
    the 'retro' identity looks back 3 months from its application month (eff_begin = its month
    − 3). A window one month too narrow on either side drops persons (checked by hand: M − 1's
    first day loses the 11–31 begins of M − 2 with report day 10; M + 2 loses retro begins in
    M + 3)."""
    days = pl.date_range(pl.date(2023, 10, 1), pl.date(2025, 3, 31), "1d", eager=True).to_list()
    regions = ["110101", "110102"]
    identities = pl.DataFrame(
        {
            "psn_no": [f"P{r}{i:04d}{k}" for k in "ar" for r in regions for i in range(len(days))],
            "identity": [k for k in ("plain", "retro") for _ in regions for _ in days],
            "begin_date": [d for _ in "ar" for _ in regions for d in days],
        }
    ).with_columns(pl.lit(None, dtype=pl.Date).alias("end_date"))
    registry = identities.select("psn_no", pl.col("psn_no").str.slice(1, 6).alias("insuplc_admdvs"))
    categories = pl.DataFrame(
        {
            "admdvs": [r for r in regions for _ in range(2)],
            "identity": ["plain", "retro"] * 2,
            "category": ["c", "c"] * 2,
            "rank": [1, 1] * 2,
            "category_label": ["x", "x"] * 2,
            "window_months": [None, 3] * 2,
            "window_incl": [None, True] * 2,
        },
        schema=entitlement._CATEGORY_SCHEMA,
    )
    terms = entitlement.Terms(
        regions=pl.DataFrame(
            {"admdvs": regions, "report_day": [10, None]},
            schema={"admdvs": pl.String, "report_day": pl.Int32},
        ),
        categories=categories,
        rules=pl.DataFrame(schema=entitlement._RULE_SCHEMA),
        tiers=pl.DataFrame(schema=entitlement._TIER_SCHEMA),
    )
    con = duckdb.connect()
    con.register("i", identities.to_arrow())
    con.register("r", registry.to_arrow())
    con.execute("create table ref_identities as select * from i")
    con.execute("create table ref_persons as select * from r")
    eff = entitlement.effective_identities(
        identities, registry.rename({"insuplc_admdvs": "admdvs"}), terms
    )
    for m in Month(2024, 1).through(Month(2025, 1)):
        expected = (
            eff.filter(pl.col("eff_begin").is_between(m.first_day, m.last_day))["psn_no"]
            .unique()
            .sort()
        )
        got = newly_held(con, m, terms)["psn_no"].sort()
        assert got.to_list() == expected.to_list(), m
        assert got.len() > 60  # every kind of begin is there: 2 regions × plain and retro
