"""Every line of the contract's warning semantics, on hand-made landing folders.

Numbers are computed by hand from the policy clauses:
- 004 §六 (Jining, prefix 3708): relapse > 50%, impoverish > 150% of Shandong's prior-year
  all-resident income. 2022: 37 560 (published 2023-01-20); 2023: 39 890 (published
  2024-02-15) → January 2024 still uses 2022: 50% × 37 560 = 18 780.00, 150% = 56 340.00;
  from February 2024: 50% × 39 890 = 19 945.00, 150% = 59 835.00.
- 003 §四(一) (Hebei city, prefix 13): relapse > 50%, impoverish > 100% of Hebei's prior-year
  rural income, impoverishment only for resident insurance (390). 2022: 19 364; 2023: 20 688
  published 2024-03-10 → Feb 2024: 9 682.00 / 19 364.00; Mar 2024: 10 344.00 / 20 688.00.
"""

from __future__ import annotations

import csv
import io
import os

import duckdb
import pytest

from pipeline.cli import warnings_csv
from pipeline.errors import PovwatchError
from pipeline.months import Month
from pipeline.run import run_month
from pipeline.settings import Settings
from tests.landing import lenient_quarantine_gate, make_landing, person, settlement


def _settings(tmp_path):
    return Settings(
        landing=tmp_path / "landing", db=tmp_path / "w.duckdb", outbox=tmp_path / "out", quiet=True
    )


def _warnings(s: Settings, month: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(warnings_csv(s.db, Month.parse(month)))))


def _run(s: Settings, *months: str) -> None:
    for m in months:
        run_month(m, s)


def test_january_uses_the_income_in_force_not_the_latest(tmp_path):
    # 004 §六 + contract (income in force: published_on ≤ the month's last day): the 2023
    # figure (39 890) is published 2024-02-15, so January 2024
    # is judged against 50% × 37 560 = 18 780.00 and February against 19 945.00.
    p = person("P1", "370811", seq=1)
    s = _settings(tmp_path)
    make_landing(
        s.landing,
        [p],
        {"2024-01": [settlement("S1", p, "2024-01-10 09:00:00", "19000.00")], "2024-02": []},
        identities=[(p["certno"], "dibao_edge", "2023-06-01", None)],
    )
    _run(s, "2024-01")
    (w,) = _warnings(s, "2024-01")
    assert (w["warning_type"], w["threshold"], w["burden_ytd"]) == (
        "relapse",
        "18780.00",
        "19000.00",
    )
    assert (w["first_month"], w["status"]) == ("2024-01", "new")


def test_threshold_moves_when_the_new_figure_is_published(tmp_path):
    # 19 000.00 > 18 780.00 in January, but not > 19 945.00 from February: no warning then.
    p = person("P1", "370811", seq=1)
    s = _settings(tmp_path)
    make_landing(
        s.landing,
        [p],
        {
            "2024-01": [settlement("S1", p, "2024-01-10 09:00:00", "19000.00")],
            "2024-02": [settlement("S2", p, "2024-02-03 09:00:00", "0.50")],
        },
        identities=[(p["certno"], "monitor_edge", "2023-06-01", None)],
    )
    _run(s, "2024-01", "2024-02")
    assert len(_warnings(s, "2024-01")) == 1
    assert _warnings(s, "2024-02") == []


def test_strictly_greater_than_the_threshold(tmp_path):
    # 150% × 39 890 = 59 835.00 (Feb 2024): 59 835.00 is not over it, 59 835.01 is.
    a, b = person("PA", "370812", seq=2), person("PB", "370812", seq=3)
    s = _settings(tmp_path)
    make_landing(
        s.landing,
        [a, b],
        {
            "2024-02": [
                settlement("SA", a, "2024-02-10 10:00:00", "59835.00"),
                settlement("SB", b, "2024-02-11 10:00:00", "59835.01"),
            ]
        },
    )
    _run(s, "2024-02")
    rows = _warnings(s, "2024-02")
    assert [(r["psn_no"], r["warning_type"], r["threshold"]) for r in rows] == [
        ("PB", "impoverish", "59835.00")
    ]


def test_burden_is_personal_part_plus_assistance_summed_to_the_cent(tmp_path):
    # burden_ytd = Σ(psn_part_amt + maf_pay): 10 000.10 + 9 000.00 (of which maf 3 000.00)
    # + 945.01 = 19 945.11 > 19 945.00 (Jining relapse, March 2024).
    p = person("P1", "370883", seq=4)
    s = _settings(tmp_path)
    make_landing(
        s.landing,
        [p],
        {
            "2024-03": [
                settlement("S1", p, "2024-03-01 08:00:00", "10000.10"),
                settlement("S2", p, "2024-03-02 08:00:00", "9000.00", maf="3000.00"),
                settlement("S3", p, "2024-03-03 08:00:00", "945.01", med_type="1401"),
            ]
        },
        identities=[(p["certno"], "dibao_edge", "2023-01-01", None)],
    )
    _run(s, "2024-03")
    (w,) = _warnings(s, "2024-03")
    assert w["burden_ytd"] == "19945.11"


def test_status_new_then_continuing_with_first_month(tmp_path):
    p = person("P1", "370811", seq=1)
    s = _settings(tmp_path)
    make_landing(
        s.landing,
        [p],
        {
            "2024-02": [settlement("S1", p, "2024-02-10 09:00:00", "20000.00")],
            "2024-03": [settlement("S2", p, "2024-03-10 09:00:00", "100.00")],
        },
        identities=[(p["certno"], "dibao_edge", "2023-01-01", None)],
    )
    _run(s, "2024-02", "2024-03")
    assert [(w["status"], w["first_month"]) for w in _warnings(s, "2024-02")] == [
        ("new", "2024-02")
    ]
    (w,) = _warnings(s, "2024-03")
    assert (w["status"], w["first_month"], w["burden_ytd"]) == ("continuing", "2024-02", "20100.00")


def test_status_does_not_depend_on_which_months_were_run_before(tmp_path):
    # Running March alone on a fresh warehouse still knows February was already flagged.
    p = person("P1", "370811", seq=1)
    s = _settings(tmp_path)
    make_landing(
        s.landing,
        [p],
        {
            "2024-02": [settlement("S1", p, "2024-02-10 09:00:00", "20000.00")],
            "2024-03": [settlement("S2", p, "2024-03-10 09:00:00", "100.00")],
        },
        identities=[(p["certno"], "dibao_edge", "2023-01-01", None)],
    )
    _run(s, "2024-03")
    (w,) = _warnings(s, "2024-03")
    assert (w["status"], w["first_month"]) == ("continuing", "2024-02")


def test_a_new_year_resets_the_burden_and_the_status(tmp_path):
    p = person("P1", "370811", seq=1)
    s = _settings(tmp_path)
    make_landing(
        s.landing,
        [p],
        {
            "2023-12": [settlement("S1", p, "2023-12-10 09:00:00", "30000.00")],
            "2024-01": [settlement("S2", p, "2024-01-10 09:00:00", "100.00")],
        },
        identities=[(p["certno"], "dibao_edge", "2023-01-01", None)],
    )
    # 2023-12: 50% × 37 560 (2022 figure, in force) = 18 780.00 < 30 000.00.
    _run(s, "2023-12", "2024-01")
    (w,) = _warnings(s, "2023-12")
    assert (w["threshold"], w["first_month"]) == ("18780.00", "2023-12")
    assert _warnings(s, "2024-01") == []


def test_a_reversal_counts_in_the_year_of_the_settlement_it_reverses(tmp_path):
    # A 2023-12 settlement of 5 000.00 reversed in January 2024: the reversal lowers 2023,
    # not 2024. 2024 burden stays 19 000.00 > 18 780.00.
    p = person("P1", "370811", seq=1)
    s = _settings(tmp_path)
    make_landing(
        s.landing,
        [p],
        {
            "2023-12": [settlement("S0", p, "2023-12-20 09:00:00", "5000.00")],
            "2024-01": [
                settlement("S1", p, "2024-01-10 09:00:00", "19000.00"),
                settlement("R0", p, "2024-01-11 09:00:00", "-5000.00", reversal_of="S0"),
            ],
        },
        identities=[(p["certno"], "dibao_edge", "2023-01-01", None)],
    )
    _run(s, "2024-01")
    (w,) = _warnings(s, "2024-01")
    assert w["burden_ytd"] == "19000.00"
    con = duckdb.connect(str(s.db), read_only=True)
    (year,) = con.sql("select cost_year from stg_settlements where setl_id = 'R0'").fetchall()[0]
    con.close()
    assert year == 2023


def test_a_reversal_in_the_same_year_lowers_the_burden(tmp_path):
    # 25 000.00 in January, reversed (−25 000.00) in February, 1 000.00 new: Feb burden 1 000.00.
    p = person("P1", "370811", seq=1)
    s = _settings(tmp_path)
    make_landing(
        s.landing,
        [p],
        {
            "2024-01": [settlement("S1", p, "2024-01-10 09:00:00", "25000.00")],
            "2024-02": [
                settlement("R1", p, "2024-02-01 09:00:00", "-25000.00", reversal_of="S1"),
                settlement("S2", p, "2024-02-02 09:00:00", "1000.00"),
            ],
        },
        identities=[(p["certno"], "dibao_edge", "2023-01-01", None)],
    )
    _run(s, "2024-01", "2024-02")
    assert len(_warnings(s, "2024-01")) == 1
    assert _warnings(s, "2024-02") == []


def test_duplicates_skipped_and_quarantined_rows_do_not_count(tmp_path, monkeypatch):
    # Counted: S1 10 000.00 once (re-exported in Feb), S3 9 000.00. Not counted: S1 again,
    # S2 (vali_flag 0), S4 dated after its export month, S5 amounts not adding up,
    # R9 reversing an unknown settlement. 19 000.00 > 18 780.00 (Jan threshold) but the
    # February threshold is 19 945.00, so the Feb total 19 000.00 is not flagged.
    # (tiny exports, quarantined on purpose: the quarantine-rate gate is not under test)
    monkeypatch.setenv("POVWATCH_QUALITY_BANDS", str(lenient_quarantine_gate(tmp_path)))
    p = person("P1", "370811", seq=1)
    bad = settlement("S5", p, "2024-02-05 09:00:00", "5000.00")
    bad["psn_part_amt"] = "4999.00"
    s = _settings(tmp_path)
    make_landing(
        s.landing,
        [p],
        {
            "2024-01": [
                settlement("S1", p, "2024-01-10 09:00:00", "10000.00"),
                settlement("S2", p, "2024-01-11 09:00:00", "50000.00", vali="0"),
                settlement("S3", p, "2024-01-12 09:00:00", "9000.00"),
                settlement("S4", p, "2024-02-01 00:00:00", "7000.00"),
            ],
            "2024-02": [
                settlement("S1", p, "2024-01-10 09:00:00", "10000.00"),
                bad,
                settlement("R9", p, "2024-02-06 09:00:00", "-100.00", reversal_of="S404"),
            ],
        },
        identities=[(p["certno"], "dibao_edge", "2023-01-01", None)],
    )
    _run(s, "2024-01", "2024-02")
    (jan,) = _warnings(s, "2024-01")
    assert jan["burden_ytd"] == "19000.00"
    assert _warnings(s, "2024-02") == []
    con = duckdb.connect(str(s.db), read_only=True)
    got = con.sql(
        "select setl_id, status, reason from stg_settlements order by export_month, source_row"
    ).fetchall()
    con.close()
    assert got == [
        ("S1", "loaded", None),
        ("S2", "skipped", "vali_flag_0"),
        ("S3", "loaded", None),
        ("S4", "quarantined", "after_export_month"),
        ("S1", "duplicate", "duplicate_setl_id"),
        ("S5", "quarantined", "amounts_mismatch"),
        ("R9", "quarantined", "unknown_original"),
    ]


def test_a_late_row_counts_from_the_export_it_arrives_in(tmp_path):
    # A January settlement arriving in the March export: not in Feb's data, in March's.
    p = person("P1", "370811", seq=1)
    s = _settings(tmp_path)
    make_landing(
        s.landing,
        [p],
        {
            "2024-01": [settlement("S1", p, "2024-01-05 09:00:00", "15000.00")],
            "2024-02": [],
            "2024-03": [settlement("S2", p, "2024-01-20 09:00:00", "5000.00")],
        },
        identities=[(p["certno"], "dibao_edge", "2023-01-01", None)],
    )
    (s.landing / "settlements" / "2024-02").mkdir(exist_ok=True)
    _run(s, "2024-02", "2024-03")
    assert _warnings(s, "2024-02") == []
    (w,) = _warnings(s, "2024-03")
    assert (w["burden_ytd"], w["first_month"]) == ("20000.00", "2024-03")


def test_a_rerun_of_an_old_month_never_sees_later_exports(tmp_path):
    p = person("P1", "370811", seq=1)
    s = _settings(tmp_path)
    make_landing(
        s.landing,
        [p],
        {
            "2024-02": [settlement("S1", p, "2024-02-10 09:00:00", "20000.00")],
            "2024-03": [settlement("R1", p, "2024-03-01 09:00:00", "-20000.00", reversal_of="S1")],
        },
        identities=[(p["certno"], "dibao_edge", "2023-01-01", None)],
    )
    _run(s, "2024-02", "2024-03")
    before = warnings_csv(s.db, Month.parse("2024-02"))
    _run(s, "2024-02")
    assert warnings_csv(s.db, Month.parse("2024-02")) == before
    assert len(_warnings(s, "2024-02")) == 1
    assert _warnings(s, "2024-03") == []


def test_an_export_corrected_in_place_with_its_old_mtime_is_read_again(tmp_path):
    # Contract (data as of M): a re-run sees the export folders as they are. A file edited in
    # place keeping its size, its old mtime put back (cp -p, rsync -t, touch -r), is read again.
    p = person("P1", "370811", seq=1)
    s = _settings(tmp_path)
    make_landing(
        s.landing,
        [p],
        {"2024-02": [settlement("S1", p, "2024-02-10 09:00:00", "20000.00")]},
        identities=[(p["certno"], "dibao_edge", "2023-01-01", None)],
    )
    _run(s, "2024-02")
    (w,) = _warnings(s, "2024-02")
    assert w["burden_ytd"] == "20000.00"  # > 50% × 39890 = 19945.00 (004 §六)
    (export,) = (s.landing / "settlements" / "2024-02").iterdir()
    st = export.stat()
    data = export.read_bytes()
    # medfee_sumamt 21000.00 = hifp 1000.00 + psn_part_amt 20000.00 → 30000.00 = 1000 + 29000
    assert data.count(b",21000.00,") == data.count(b",20000.00,") == 1
    export.write_bytes(
        data.replace(b",21000.00,", b",30000.00,").replace(b",20000.00,", b",29000.00,")
    )
    os.utime(export, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (export.stat().st_size, export.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    _run(s, "2024-02")
    (w,) = _warnings(s, "2024-02")
    assert w["burden_ytd"] == "29000.00"


def test_identity_in_force_on_the_last_day_decides_the_rule(tmp_path):
    # monitor_edge until 2024-03-31: March → relapse (19 945.00); April → ordinary, so only
    # impoverish (59 835.00) applies, and 30 000.00 is not over it.
    p = person("P1", "370883", seq=5)
    s = _settings(tmp_path)
    # April's export holds one harmless row of someone else (an export is never empty).
    q = person("P2", "370883", seq=6)
    make_landing(
        s.landing,
        [p, q],
        {
            "2024-03": [settlement("S1", p, "2024-03-10 09:00:00", "30000.00")],
            "2024-04": [settlement("S9", q, "2024-04-01 09:00:00", "10.00")],
        },
        identities=[(p["certno"], "monitor_edge", "2022-09-01", "2024-03-31")],
    )
    _run(s, "2024-03", "2024-04")
    assert [w["warning_type"] for w in _warnings(s, "2024-03")] == ["relapse"]
    assert _warnings(s, "2024-04") == []


def test_holders_of_other_identities_are_neither_relapse_nor_ordinary(tmp_path):
    # 低保 (dibao) is assisted already: not in the relapse list of 004 §六, not ordinary.
    p = person("P1", "370811", seq=1)
    s = _settings(tmp_path)
    make_landing(
        s.landing,
        [p],
        {"2024-03": [settlement("S1", p, "2024-03-10 09:00:00", "90000.00")]},
        identities=[(p["certno"], "dibao", "2020-01-01", None)],
    )
    _run(s, "2024-03")
    assert _warnings(s, "2024-03") == []


def test_hebei_impoverishment_only_for_resident_insurance(tmp_path):
    # 003 §四(一): 参加城乡居民基本医疗保险的普通居民 > 100% × 20 688 = 20 688.00 (March 2024).
    resident = person("P390", "130503", insutype="390", seq=7)
    employee = person("P310", "130503", insutype="310", seq=8)
    s = _settings(tmp_path)
    make_landing(
        s.landing,
        [resident, employee],
        {
            "2024-03": [
                settlement("S1", resident, "2024-03-10 09:00:00", "20688.01"),
                settlement("S2", employee, "2024-03-10 09:00:00", "50000.00"),
            ]
        },
    )
    _run(s, "2024-03")
    rows = _warnings(s, "2024-03")
    assert [(r["psn_no"], r["warning_type"], r["threshold"]) for r in rows] == [
        ("P390", "impoverish", "20688.00")
    ]


def test_hebei_relapse_uses_rural_income_of_the_province(tmp_path):
    # 003 §四(一): 50% × 19 364 = 9 682.00 in February 2024 (2023 figure published 2024-03-10).
    p = person("P1", "130521", seq=9)
    s = _settings(tmp_path)
    make_landing(
        s.landing,
        [p],
        {"2024-02": [settlement("S1", p, "2024-02-10 09:00:00", "9682.01")]},
        identities=[(p["certno"], "monitor_unstable", "2022-09-01", None)],
    )
    _run(s, "2024-02")
    (w,) = _warnings(s, "2024-02")
    assert (w["warning_type"], w["threshold"], w["admdvs"], w["hh_id"]) == (
        "relapse",
        "9682.00",
        "130521",
        "HP1",
    )


def test_region_whose_policy_leaves_the_threshold_to_the_locality_fails(tmp_path):
    # 000 §五(七): 结合实际合理确定监测标准 — no number to use, so the run must stop.
    p = person("P1", "220102", seq=1)
    s = _settings(tmp_path)
    make_landing(s.landing, [p], {"2024-03": [settlement("S1", p, "2024-03-10 09:00:00", "1.00")]})
    with pytest.raises(PovwatchError, match=r"region 220102.*jilin.*threshold\.factor") as err:
        run_month("2024-03", s)
    assert "\n" not in str(err.value)


def test_region_without_any_policy_fails_naming_file_row_column(tmp_path):
    p = person("P1", "110101", seq=1)
    s = _settings(tmp_path)
    make_landing(s.landing, [p], {"2024-03": [settlement("S1", p, "2024-03-10 09:00:00", "1.00")]})
    with pytest.raises(PovwatchError) as err:
        run_month("2024-03", s)
    assert str(err.value) == (
        "persons/persons.csv row 2 column insuplc_admdvs: region 110101 has no policy "
        "(no policy file binds a prefix of it); add one with --policy"
    )


# --- who is watched (contract, identities) and where a city's document binds ---------------


def _routes(s: Settings, month: str) -> list[tuple]:
    con = duckdb.connect(str(s.db), read_only=True)
    try:
        return con.sql(
            "select psn_no, warning_type, department from mart_warning_routes "
            "where month = ? order by all",
            params=[month],
        ).fetchall()
    finally:
        con.close()


def test_tuopin_alone_is_ordinary_for_the_impoverishment_rule(tmp_path):
    # Contract: 脱贫人口 not under monitoring are 普通参保人员 for the impoverishment rule,
    # their warnings go to 乡村振兴. 004 §六: 150% × 39 890 = 59 835.00 (March 2024):
    # a 脱贫人口 with 90 000.00 of burden in Jining is warned (urban hukou: 民政 by the
    # policy, 乡村振兴 by the contract). 脱贫人口 + 边缘易致贫户 is watched by the relapse
    # rule (50% = 19 945.00), not the impoverishment one. 特困 and 因病致贫 are already
    # in the assistance net: no warning.
    tp = person("PT", "370811", seq=1, rural="0")
    both = person("PB", "370811", seq=2)
    tekun = person("PK", "370811", seq=3)
    ill = person("PI", "370811", seq=4)
    s = _settings(tmp_path)
    rows = [
        settlement(f"S{p['psn_no']}", p, "2024-03-10 09:00:00", "90000.00")
        for p in (tp, both, tekun, ill)
    ]
    make_landing(
        s.landing,
        [tp, both, tekun, ill],
        {"2024-03": rows},
        identities=[
            (tp["certno"], "tuopin", "2021-01-01", None),
            (both["certno"], "tuopin", "2021-01-01", None),
            (both["certno"], "monitor_edge", "2023-01-01", None),
            (tekun["certno"], "tekun", "2020-01-01", None),
            (ill["certno"], "illness_poor", "2024-01-01", None),
        ],
    )
    _run(s, "2024-03")
    got = [(w["psn_no"], w["warning_type"], w["threshold"]) for w in _warnings(s, "2024-03")]
    assert got == [("PB", "relapse", "19945.00"), ("PT", "impoverish", "59835.00")]
    assert _routes(s, "2024-03") == [
        ("PB", "relapse", "rural_revitalization"),
        ("PT", "impoverish", "civil_affairs"),
        ("PT", "impoverish", "rural_revitalization"),
    ]


def test_qingdao_is_not_judged_by_jinings_document(tmp_path):
    # 济政办发〔2022〕14号 binds Jining (3708), not all of Shandong: a Qingdao (3702) person
    # stops the run with the contract's "no policy" error.
    jn, qd = person("PJ", "370811", seq=1), person("PQ", "370211", seq=2)
    s = _settings(tmp_path)
    make_landing(
        s.landing,
        [jn, qd],
        {"2024-03": [settlement("S1", qd, "2024-03-10 09:00:00", "90000.00")]},
    )
    with pytest.raises(PovwatchError) as err:
        run_month("2024-03", s)
    assert str(err.value) == (
        "persons/persons.csv row 3 column insuplc_admdvs: region 370211 has no policy "
        "(no policy file binds a prefix of it); add one with --policy"
    )
