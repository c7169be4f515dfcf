"""The benchmark judges the issue's targets from its own figures (bench/run.py, judge)."""

from __future__ import annotations

from bench.run import judge, table


def _report(**over) -> dict:
    report = {
        "ratios": {"povwatch_compute": 1.5, "sql_incremental": 1.0},
        "variants": {
            "povwatch_run": {"wall_s": 40.0, "rss_gib": 2.0, "cpu_s": 1, "runs": 3},
            "povwatch_month1": {"wall_s": 30.0, "rss_gib": 1.5, "cpu_s": 1, "runs": 3},
            "pandas": {"wall_s": 60.0, "rss_gib": 5.0, "cpu_s": 1, "runs": 3},
            "sql_incremental": {"wall_s": 2.0, "rss_gib": 0.4, "cpu_s": 1, "runs": 3},
        },
        "without_reports": {"wall_s": {"povwatch_run": 6.0}, "ratios": {"povwatch_run": 3.0}},
        "month12_over_month1": 1.3,
        "generate_s": 120.0,
    }
    report.update(over)
    return report


def test_each_limit_itself_is_met():
    t = judge(_report())
    assert {n: x["met"] for n, x in t.items()} == {
        "compute_over_sql_incremental": True,  # 1.5 ≤ 1.5
        "month_without_reports_over_sql_incremental": True,  # 3.0 ≤ 3
        "pandas_over_month_without_reports": True,  # 60 / 6 = 10 ≥ 10
        "month12_over_month1": True,  # 1.3 ≤ 1.3
        "peak_rss_gib": True,  # 2.0 ≤ 2 (pandas' 5 GiB is not povwatch's)
        "generate_s": True,  # 120 s ≤ 2 min
    }
    assert t["pandas_over_month_without_reports"]["value"] == 10.0


def test_just_past_a_limit_is_missed():
    t = judge(
        _report(
            ratios={"povwatch_compute": 1.51},
            without_reports={"wall_s": {"povwatch_run": 6.1}, "ratios": {"povwatch_run": 3.05}},
            month12_over_month1=1.31,
            generate_s=120.1,
        )
    )
    assert [x["met"] for x in t.values()] == [False, False, False, False, True, False]
    assert t["pandas_over_month_without_reports"]["value"] == 9.84  # 60 / 6.1


def test_the_peak_is_the_highest_povwatch_variant():
    report = _report()
    report["variants"]["povwatch_month1"]["rss_gib"] = 2.41
    assert judge(report)["peak_rss_gib"] == {"value": 2.41, "target": "at most 2.0", "met": False}


def test_the_peak_counts_the_round_that_wrote_the_reports():
    # povwatch_run's rss_gib is the median of its rounds, most without reports: the rounds
    # that wrote them are judged too
    report = _report()
    report["variants"]["povwatch_run"]["with_reports"] = {"wall_s": 90.0, "rss_gib": 2.01}
    assert judge(report)["peak_rss_gib"]["value"] == 2.01


def test_a_variant_not_run_is_not_judged():
    t = judge(_report(variants={}, without_reports={}, month12_over_month1=None, generate_s=None))
    assert t["pandas_over_month_without_reports"] == {
        "value": None,
        "target": "at least 10.0",
        "met": None,
    }
    assert t["month12_over_month1"]["met"] is None
    assert t["generate_s"]["met"] is None


def test_the_table_prints_each_verdict():
    report = {
        "scale": "L",
        "persons": 5,
        "rows_month12": 1,
        "warnings": 1,
        "identical_warnings": True,
        "variants": {},
        "ratios": {},
        "cpu_ratios": {},
        "stages": {},
        "ingest_throughput": {},
        "backfill_s": 1.0,
        "targets": judge(_report(month12_over_month1=1.31)),
    }
    text = table(report)
    assert "target month12_over_month1: 1.31 (at most 1.3): MISSED" in text
    assert "target peak_rss_gib: 2.0 (at most 2.0): met" in text
