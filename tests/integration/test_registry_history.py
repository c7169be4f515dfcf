"""first_month / status follow the registry in force in each earlier month.

Contract (warning semantics): "status `new` when p had no warning of the same warning_type in
an earlier month of Y, else `continuing`; `first_month` is the first month of Y with that
warning" — the warnings each earlier month had, computed from the registry snapshot in force
then (persons/YYYY-MM/, latest snapshot wins), not from a later snapshot. Whether the months
are run in order (the stores of the month before) or the month alone (the year replayed), the
answer is the same.

Thresholds (tests/landing.py INCOME):
- Hebei city (003 §四(一)), impoverishment of resident-insured (390) persons, > 100 % × the
  province's rural income of Y − 1 in force: 19 364.00 until 2024-03-10, then 20 688.00.
- Jining (004 §六), impoverishment of ordinary insured, > 150 % × the province's income of
  Y − 1 in force: 150 % × 37 560 = 56 340.00 in January, 150 % × 39 890 = 59 835.00 from
  2024-02-15.
"""

from __future__ import annotations

import duckdb
import polars as pl

from pipeline.months import Month
from pipeline.warnings.compute import people_by_month
from tests.landing import make_landing, person, run_months, settlement, write_csv

MONTHS = ["2024-01", "2024-02", "2024-03"]


def _landing(root):
    # A: Hebei 130503, employee-insured (310) in January's snapshot, resident (390) in March's
    a_jan = person("A", "130503", insutype="310", seq=1)
    a_mar = {**a_jan, "insutype": "390"}
    # B: Jining 370811 in January, Hebei 130503 from March
    b_jan = person("B", "370811", seq=2)
    b_mar = {**b_jan, "insuplc_admdvs": "130503"}
    # C: Hebei 130102 in January (no one registered there in March), Jining 370811 from March
    c_jan = person("C", "130102", seq=3)
    c_mar = {**c_jan, "insuplc_admdvs": "370811", "hh_id": "HB"}  # and joins B's household
    b_mar = {**b_mar, "hh_id": "HB"}
    make_landing(
        root,
        [],
        {
            "2024-01": [
                settlement("A1", a_jan, "2024-01-10 09:00:00", "25000.00"),
                settlement("B1", b_jan, "2024-01-10 09:00:00", "30000.00"),
                settlement("C1", c_jan, "2024-01-10 09:00:00", "60000.00"),
            ],
            "2024-02": [settlement("A2", a_jan, "2024-02-10 09:00:00", "1.00")],
            "2024-03": [settlement("A3", a_jan, "2024-03-10 09:00:00", "1.00")],
        },
    )
    _snapshots(root, {"2024-01": [a_jan, b_jan, c_jan], "2024-03": [a_mar, b_mar, c_mar]})
    return root


def _snapshots(root, by_month: dict[str, list[dict]]) -> None:
    """The registry as dated snapshots (persons/YYYY-MM/persons.csv) instead of one file."""
    (root / "persons" / "persons.csv").unlink()
    header = list(person("x").keys())
    for month, persons in by_month.items():
        write_csv(root / "persons" / month / "persons.csv", header, persons)


def _warnings(db, month: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(
            "select psn_no, admdvs, warning_type, burden_ytd_fen, threshold_fen, first_month, "
            "status from mart_warnings where month = ? order by psn_no",
            [month],
        ).fetchall()


def test_earlier_months_are_judged_with_the_registry_then_in_force(tmp_path):
    _landing(tmp_path / "landing")
    db = run_months(tmp_path, MONTHS)
    # January (January's snapshot): A is employee-insured, outside Hebei's rule; B is in
    # Jining, 30 000.00 ≤ 56 340.00; C in Hebei 130102, 60 000.00 > 19 364.00
    assert _warnings(db, "2024-01") == [
        ("C", "130102", "impoverish", 6_000_000, 1_936_400, "2024-01", "new")
    ]
    assert _warnings(db, "2024-02") == [
        ("C", "130102", "impoverish", 6_000_000, 1_936_400, "2024-01", "continuing")
    ]
    # March (March's snapshot): A is resident-insured, 25 002.00 > 20 688.00, warned for the
    # first time; B in Hebei, 30 000.00 > 20 688.00, first time; C in Jining, 60 000.00 >
    # 59 835.00, warned since January (in Hebei then)
    march = [
        ("A", "130503", "impoverish", 2_500_200, 2_068_800, "2024-03", "new"),
        ("B", "130503", "impoverish", 3_000_000, 2_068_800, "2024-03", "new"),
        ("C", "370811", "impoverish", 6_000_000, 5_983_500, "2024-01", "continuing"),
    ]
    assert _warnings(db, "2024-03") == march
    # March alone, on a new warehouse: the year replayed gives the same
    alone = run_months(tmp_path, ["2024-03"], name="alone.duckdb")
    assert _warnings(alone, "2024-03") == march
    # every first_month names a month whose own warnings hold the person
    for psn, _, _, _, _, first, _ in march:
        assert psn in [w[0] for w in _warnings(db, first)]


def test_people_by_month_gives_each_month_its_registry_and_household_sizes(tmp_path):
    _landing(tmp_path / "landing")
    db = run_months(tmp_path, ["2024-03"])
    with duckdb.connect(str(db), read_only=True) as con:
        got = people_by_month(
            con, pl.Series(["A", "B", "C"]), [Month(2024, 1), Month(2024, 2), Month(2024, 3)]
        )
    rows = got.select("psn_no", "m", "hh_id", "admdvs", "insutype", "hh_size").rows()
    assert rows == [
        ("A", "2024-01", "HA", "130503", "310", 1),
        ("A", "2024-02", "HA", "130503", "310", 1),
        ("A", "2024-03", "HA", "130503", "390", 1),
        ("B", "2024-01", "HB", "370811", "390", 1),  # HB: B alone until C joins in March
        ("B", "2024-02", "HB", "370811", "390", 1),
        ("B", "2024-03", "HB", "130503", "390", 2),
        ("C", "2024-01", "HC", "130102", "390", 1),
        ("C", "2024-02", "HC", "130102", "390", 1),
        ("C", "2024-03", "HB", "370811", "390", 2),
    ]


def test_a_household_rule_counts_who_was_in_the_household_then(tmp_path):
    """Jining relapse (004 §六, 50 % × Shandong's income of Y − 1 in force) with the
    household unit (an overlay): household burden > size × 50 % of the income.

    January's snapshot: A and B in household H1. B's 30 000.00 and A's 8 000.00 make H1's
    38 000.00 > 2 × 18 780.00 = 37 560.00 (2022's 37 560 in force until 2024-02-15): both
    warned, new. March's snapshot: B has moved to H2 and is no longer 低保边缘 (ended
    2024-02-29), so B is not warned in March; A, alone in H1, 8 000.00 + 12 000.00 =
    20 000.00 > 19 945.00 (50 % × 39 890): warned — continuing since January, when H1 (with
    B) was over its line. A replay of the year that took March's households would leave B's
    January costs out and call A new in March.
    """
    from pipeline.run import compute_month
    from pipeline.settings import Settings
    from tests.integration.test_rule_options import _overlay

    root = tmp_path / "landing"
    a = person("A", "370811", hh="H1", seq=1)
    b_jan = person("B", "370811", hh="H1", seq=2)
    b_mar = {**b_jan, "hh_id": "H2"}
    make_landing(
        root,
        [],
        {
            "2024-01": [
                settlement("A1", a, "2024-01-10 09:00:00", "8000.00"),
                settlement("B1", b_jan, "2024-01-10 09:00:00", "30000.00"),
            ],
            "2024-02": [settlement("A2", a, "2024-02-10 09:00:00", "0.01")],
            "2024-03": [settlement("A3", a, "2024-03-10 09:00:00", "11999.99")],
        },
        identities=[
            (a["certno"], "dibao_edge", "2023-01-01", None),
            (b_jan["certno"], "dibao_edge", "2023-01-01", "2024-02-29"),
        ],
    )
    _snapshots(root, {"2024-01": [a, b_jan], "2024-03": [a, b_mar]})
    overlay = _overlay(tmp_path, {"monitoring.relapse.unit": "household"})

    def run(months: list[str], name: str):
        s = Settings(
            landing=root,
            db=tmp_path / name,
            outbox=tmp_path / "o",
            quiet=True,
            policy_files=(overlay,),
        )
        for m in months:
            compute_month(m, s)
        return s.db

    in_order = run(MONTHS, "w.duckdb")
    assert _warnings(in_order, "2024-01") == [
        ("A", "370811", "relapse", 3_800_000, 3_756_000, "2024-01", "new"),
        ("B", "370811", "relapse", 3_800_000, 3_756_000, "2024-01", "new"),
    ]
    march = [("A", "370811", "relapse", 2_000_000, 1_994_500, "2024-01", "continuing")]
    assert _warnings(in_order, "2024-03") == march
    assert _warnings(run(["2024-03"], "alone.duckdb"), "2024-03") == march
