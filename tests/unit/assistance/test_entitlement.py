"""Entitlement per person (pipeline.assistance.entitlement) on tiny frames, against the bundled
policy files: each case hand-computed from the document's clause."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from pipeline.assistance.audit import audit
from pipeline.assistance.entitlement import compute_entitlements, resolve_terms
from pipeline.months import Month
from pipeline.policy.load import PolicySet

POLICIES = PolicySet.load()
# The Hebei text never names its city: its assistance amounts bind a city only once a policy
# file narrows it (policies/examples: 1305).
NARROW = Path(__file__).resolve().parents[3] / "policies" / "examples"
HEBEI = PolicySet.load([NARROW / "hebei-narrow-1305-overlay.yaml"])
JUNE = Month(2024, 6)
INCOME = pl.DataFrame(
    {
        "admdvs": ["370800", "130500"],
        "year": [2023, 2023],
        "scope": ["all", "all"],
        "amount_fen": [3612300, 3000000],
        "published_on": [dt.date(2024, 1, 25), dt.date(2024, 2, 1)],
    }
)
ROW_SCHEMA = {
    "psn_no": pl.String,
    "setl_time": pl.Datetime,
    "cost_year": pl.Int32,
    "med_class": pl.String,
    "psn_part_amt": pl.Int64,
    "maf_pay": pl.Int64,
    "fulamt_ownpay_amt": pl.Int64,
    "overlmt_selfpay": pl.Int64,
    "preselfpay_amt": pl.Int64,
}
CLASS = {"21": "inpatient", "14": "outpatient_chronic", "11": "outpatient", "41": "pharmacy"}


def row(day: str, med_type: str, part: float, maf: float = 0, *, own=0.0, over=0.0, pre=0.0):
    """One settlement of person P (yuan in, fen out)."""
    d = dt.datetime.fromisoformat(day + " 10:00:00")
    fen = lambda y: round(y * 100)  # noqa: E731
    return {
        "psn_no": "P",
        "setl_time": d,
        "cost_year": d.year,
        "med_class": CLASS[med_type],
        "psn_part_amt": fen(part),
        "maf_pay": fen(maf),
        "fulamt_ownpay_amt": fen(own),
        "overlmt_selfpay": fen(over),
        "preselfpay_amt": fen(pre),
    }


def ident(identity: str, begin: str, end: str | None = None, psn: str = "P"):
    return {
        "psn_no": psn,
        "identity": identity,
        "begin_date": dt.date.fromisoformat(begin),
        "end_date": dt.date.fromisoformat(end) if end else None,
    }


def entitle(
    admdvs, rows, idents, month=JUNE, brdy="1960-01-01", income=INCOME, policies=None
) -> dict:
    """The audited row of person P (or None when P is not in the population)."""
    registry = pl.DataFrame({"psn_no": ["P"], "admdvs": [admdvs], "brdy": [brdy]})
    if policies is None:
        policies = HEBEI if admdvs.startswith("13") else POLICIES
    terms = resolve_terms(policies, [admdvs], month, income)
    out = audit(
        compute_entitlements(
            pl.DataFrame(rows, schema=ROW_SCHEMA),
            pl.DataFrame(
                idents,
                schema={
                    "psn_no": pl.String,
                    "identity": pl.String,
                    "begin_date": pl.Date,
                    "end_date": pl.Date,
                },
            ),
            registry,
            terms,
            month,
        )
    )
    return out.row(0, named=True) if out.height else None


# --- Jining 济政办发〔2022〕14号 (region 370811) ------------------------------------------------


def test_jining_cat1_exclusions_out_of_scope_and_no_deductible():
    # 004 §四(四): 乙类先行自付 500, over-standard 300, out-of-catalogue 1000 are excluded:
    # eligible = 10000 + 0 − 500 − 300 − 1000 = 8200.00; 004 §四(一): no deductible, 70% →
    # 5740.00; re-assistance: 8200 − 5740 = 2460 ≤ 5000 → 0. An ordinary outpatient (11) row is
    # out of scope (004 §四: 住院、门诊慢特病) and adds nothing.
    r = entitle(
        "370811",
        [row("2024-02-10", "21", 10000, own=1000, over=300, pre=500), row("2024-03-01", "11", 800)],
        [ident("tekun", "2021-01-01")],
    )
    assert (r["category"], r["policy_id"]) == ("cat1", "jining-2022-14")
    assert r["eligible_cost_fen"] == 820000
    assert r["entitled_fen"] == 574000
    assert (r["paid_fen"], r["difference_fen"], r["status"]) == (0, 574000, "under")


def test_jining_cat1_cap_then_re_assistance_cap():
    # 004 §四(一): 70% × 100000 = 70000 → cap 60000; re-assistance on 100000 − 60000 = 40000:
    # (40000 − 5000) × 70% = 24500 → cap 20000; entitled 80000.00, paid 80000.00 → ok.
    r = entitle(
        "370811",
        [row("2024-04-01", "21", 20000, 80000)],
        [ident("dibao", "2021-01-01")],
    )
    assert r["eligible_cost_fen"] == 10000000
    assert r["entitled_fen"] == 8000000
    assert (r["difference_fen"], r["status"]) == (0, "ok")


def test_jining_cat2_deductible_outpatient_chronic_and_re_assistance():
    # 004 §四(二): (13000 − 3000) × 60% = 6000.00; left 13000 − 6000 = 7000 ≤ 10000 → no
    # re-assistance. Paid 500.00 → difference 5500.00 (under). Chronic (14) is in scope.
    r = entitle(
        "370811",
        [row("2024-01-15", "14", 12500, 500)],
        [ident("dibao_edge", "2023-06-01")],
    )
    assert (r["eligible_cost_fen"], r["entitled_fen"]) == (1300000, 600000)
    assert (r["paid_fen"], r["difference_fen"], r["status"]) == (50000, 550000, "under")
    # 004 §四(二): 40000: (40000 − 3000) × 60% = 22200 → cap 10000; re-assistance on
    # 40000 − 10000 = 30000: (30000 − 10000) × 70% = 14000 (cap 20000) → 24000.00.
    r = entitle("370811", [row("2024-01-15", "21", 40000)], [ident("monitor_edge", "2022-09-01")])
    assert r["entitled_fen"] == 2400000


def test_jining_category_on_the_settlement_day_with_its_own_deductible():
    # dibao_edge until 2024-03-31 (last day included), dibao from 2024-04-01: the March 31 row
    # is cat2 (5000 − 3000) × 60% = 1200.00; the April 1 row cat1 70% × 5000 = 3500.00.
    r = entitle(
        "370811",
        [row("2024-03-31", "21", 5000), row("2024-04-01", "21", 5000)],
        [ident("dibao_edge", "2023-06-01", "2024-03-31"), ident("dibao", "2024-04-01")],
    )
    assert r["category"] == "cat1"  # the highest held in the year
    assert r["entitled_fen"] == 120000 + 350000


def test_jining_illness_poor_application_window():
    # 004 §四(三): costs of the 12 months before the application month (not that month):
    # applied 2024-05-10 → 2023-05-01..2024-04-30. Counted: 2023-05-01 (20000) and 2024-04-30
    # (3000) and, with the identity in force, 2024-05-20 (2000); not 2023-04-30 (7000).
    # Deductible 25% × 2023 city income 36123 (published 2024-01-25, from February) = 9030.75;
    # (25000 − 9030.75) × 60% = 9581.55 (cap 10000).
    rows = [
        row("2023-04-30", "21", 7000),
        row("2023-05-01", "21", 20000),
        row("2024-04-30", "21", 3000),
        row("2024-05-20", "21", 2000),
    ]
    r = entitle("370811", rows, [ident("illness_poor", "2024-05-10")])
    assert r["category"] == "cat3"
    assert r["eligible_cost_fen"] == 2500000
    assert r["entitled_fen"] == 958155


def test_paid_without_category_is_an_overpayment_with_empty_category():
    r = entitle("370811", [row("2024-02-01", "21", 900, 100)], [])
    assert r["category"] is None and r["eligible_cost_fen"] == 0
    assert (r["entitled_fen"], r["paid_fen"], r["difference_fen"]) == (0, 10000, -10000)
    assert r["status"] == "over"
    # neither held nor paid: not in the population
    assert entitle("370811", [row("2024-02-01", "21", 900)], []) is None


def test_tolerance_is_one_fen():
    # 70% × 1000.01 = 700.007 → 700.01; paid 700.00 → difference 0.01: ok; paid 699.99 → under.
    r = entitle("370811", [row("2024-02-01", "21", 300.01, 700)], [ident("tekun", "2021-01-01")])
    assert (r["entitled_fen"], r["difference_fen"], r["status"]) == (70001, 1, "ok")
    r = entitle("370811", [row("2024-02-01", "21", 300.02, 699.99)], [ident("tekun", "2021-01-01")])
    assert (r["difference_fen"], r["status"]) == (2, "under")


# --- the Hebei city (贯彻冀政办字〔2021〕157号, region 130503) -------------------------------------


def test_hebei_cat1_all_scopes_share_one_cap():
    # 003 §二(三)1: 特困/低保 no deductible, 70%; outpatient and inpatient share 10000:
    # inpatient 8000 + pharmacy 2000 = 10000 × 70% = 7000.00.
    r = entitle(
        "130503",
        [row("2024-02-01", "21", 8000), row("2024-02-02", "41", 2000)],
        [ident("dibao", "2021-01-01")],
    )
    assert (r["policy_id"], r["eligible_cost_fen"], r["entitled_fen"]) == (
        "hebei-city-1305",
        1000000,
        700000,
    )
    # 12000 inpatient + 4000 outpatient = 16000 × 70% = 11200 → shared cap 10000.00.
    r = entitle(
        "130503",
        [row("2024-02-01", "21", 12000), row("2024-02-02", "11", 4000)],
        [ident("tekun", "2021-01-01")],
    )
    assert r["entitled_fen"] == 1000000


def test_hebei_cat2_deductible_from_the_city_income_or_not_computed():
    # 003 §二(三)1 (2023 on): deductible ≈ 10% × city prior-year income 30000.00 = 3000.00;
    # (13000 − 3000) × 67% = 6700.00.
    r = entitle("130503", [row("2024-03-01", "21", 13000)], [ident("monitor_edge", "2022-09-01")])
    assert r["entitled_fen"] == 670000
    # Without the city's income figure the deductible is unknown: not computed, never guessed.
    r = entitle(
        "130503",
        [row("2024-03-01", "21", 13000)],
        [ident("monitor_edge", "2022-09-01")],
        income=INCOME.filter(pl.col("admdvs") != "130500"),
    )
    assert r["entitled_fen"] is None and r["difference_fen"] is None
    assert r["status"] == "not_computed" and "130500" in r["reason"]


@pytest.mark.parametrize(
    ("begin", "counted"),
    [
        # 003 §三(一): reported by the 5th → from the next month; the 6th → the month after.
        ("2024-03-05", ["2024-04-01"]),
        ("2024-03-06", ["2024-05-01"]),
    ],
)
def test_hebei_report_by_the_fifth(begin, counted):
    days = ["2024-03-20", "2024-04-01", "2024-04-30", "2024-05-01"]
    r = entitle("130503", [row(d, "21", 1000) for d in days], [ident("dibao", begin)])
    first = days.index(counted[0])
    assert r["eligible_cost_fen"] == 100000 * (len(days) - first)
    assert r["entitled_fen"] == 70000 * (len(days) - first)


def test_hebei_exit_reported_counts_from_the_next_month():
    # 003 §三(一): an exit reported 2024-05-05 cancels from 2024-06-01: May 31 still counts.
    r = entitle(
        "130503",
        [row("2024-05-31", "21", 1000), row("2024-06-01", "21", 1000)],
        [ident("dibao", "2021-01-01", "2024-05-05")],
    )
    assert r["eligible_cost_fen"] == 100000 and r["entitled_fen"] == 70000


def test_hebei_unnarrowed_binds_nowhere():
    # The bundled file binds the monitoring rule to 13 but the city's amounts to no region.
    r = entitle(
        "130503",
        [row("2024-02-01", "21", 1000, 100)],
        [ident("dibao", "2021-01-01")],
        policies=POLICIES,
    )
    assert r["category"] is None and r["entitled_fen"] is None and "does not bind" in r["reason"]


# --- regions whose policy leaves values to the locality ---------------------------------------


def test_jilin_local_cap_is_not_computed():
    # 000 §四(五): 一类 100%, but the annual cap is local → no entitlement computed.
    r = entitle("220102", [row("2024-02-01", "21", 5000, 100)], [ident("tekun", "2021-01-01")])
    assert r["category"] == "cat1" and r["policy_id"] == "jilin-2022-16"
    assert r["entitled_fen"] is None and r["status"] == "not_computed"
    assert "JL-C1.cap.yuan" in r["reason"] and r["paid_fen"] == 10000


def test_guangdong_local_ratio_is_not_computed():
    r = entitle("440103", [row("2024-02-01", "21", 5000)], [ident("dibao", "2021-01-01")])
    assert r["entitled_fen"] is None and "GD-C2.ratio.value" in r["reason"]


def test_yulin_complete_rules_are_computed():
    # 001 §六(二): 一类 100%, no cap: 10000.00; 低保 80%: 8000.00; other 二类 (10000 − 2800) ×
    # 75% = 5400.00; 二次救助 needs an application (001 §六(三)1): not computed, 0.
    cases = {"tekun": 1000000, "dibao": 800000, "dibao_edge": 540000}
    for identity, fen in cases.items():
        r = entitle("610802", [row("2024-02-01", "21", 10000)], [ident(identity, "2021-01-01")])
        assert (r["policy_id"], r["entitled_fen"], r["reason"]) == ("yulin-2023-4", fen, None)


def test_jilin_child_bonus_on_the_settlement_day(tmp_path):
    # 000 §四(五): 三类 deductible ≈ 10% × city income (40000.00 → 4000.00), ratio 60%, children
    # ≤ 14 +10 points on inpatient; the cap is local, supplied here by an overlay (20000).
    # Born 2009-03-01: 14 on 2024-02-29, 15 on 2024-03-01. Chronic (14) 1000 on 02-28 and
    # 3000 of the 02-29 stay fill the deductible; (6000 − 3000) × 70% = 2100.00; then
    # 5000 × 60% = 3000.00 → 5100.00.
    overlay = tmp_path / "jl.yaml"
    overlay.write_text(
        """
kind: overlay
overlay_id: jl-test
title: 测试
document: 测试
extends: jilin-2022-16
regions: ["2201"]
set:
  assistance.rules.JL-C3.cap: {yuan: 20000, cite: {clause: "测试", quote: 年度限额2万元}}
""",
        encoding="utf-8",
    )
    income = pl.DataFrame(
        {
            "admdvs": ["220100"],
            "year": [2023],
            "scope": ["all"],
            "amount_fen": [4000000],
            "published_on": [dt.date(2024, 1, 20)],
        }
    )
    rows = [
        row("2024-02-28", "14", 1000),
        row("2024-02-29", "21", 6000),
        row("2024-03-01", "21", 5000),
    ]
    # the birth date as the registry or a spreadsheet writes it
    for brdy in ("2009-03-01", "2009-03-01 00:00:00", "20090301"):
        out = entitle(
            "220102",
            rows,
            [ident("dibao_edge", "2023-01-01")],
            brdy=brdy,
            income=income,
            policies=PolicySet.load([overlay]),
        )
        assert (out["policy_id"], out["category"]) == ("jl-test", "cat3")
        assert out["eligible_cost_fen"] == 1200000
        assert out["entitled_fen"] == 510000, brdy
