"""The audit's statuses, county totals and the civil-affairs list of under-payments."""

from __future__ import annotations

import polars as pl

from pipeline.assistance.audit import (
    audit,
    by_county,
    format_assistance,
    largest_underpayments,
    summary_line,
)
from pipeline.assistance.entitlement import ENTITLEMENT_SCHEMA


def _frame(rows):
    base = {c: None for c in ENTITLEMENT_SCHEMA}
    full = [
        {
            **base,
            "month": "2024-06",
            "category": "cat1",
            "category_label": "特困人员",
            "policy_id": "p",
            "eligible_cost_fen": 0,
            **r,
        }
        for r in rows
    ]
    frame = pl.DataFrame(full, schema=ENTITLEMENT_SCHEMA)
    return audit(
        frame.with_columns((pl.col("entitled_fen") - pl.col("paid_fen")).alias("difference_fen"))
    )


ROWS = [
    {"psn_no": "A", "admdvs": "370811", "entitled_fen": 500000, "paid_fen": 0},  # under 5000
    {"psn_no": "B", "admdvs": "370811", "entitled_fen": 100000, "paid_fen": 99999},  # ok (1 fen)
    {"psn_no": "C", "admdvs": "370811", "entitled_fen": 200000, "paid_fen": 100000},  # under 1000
    {"psn_no": "D", "admdvs": "370812", "entitled_fen": 0, "paid_fen": 3000},  # over 30
    {"psn_no": "E", "admdvs": "370812", "entitled_fen": None, "paid_fen": 500},  # not computed
    {"psn_no": "F", "admdvs": "370812", "entitled_fen": 100002, "paid_fen": 100000},  # under 0.02
]


def test_statuses_with_one_fen_tolerance():
    a = _frame(ROWS)
    assert dict(zip(a["psn_no"], a["status"], strict=True)) == {
        "A": "under",
        "B": "ok",
        "C": "under",
        "D": "over",
        "E": "not_computed",
        "F": "under",
    }


def test_by_county():
    c = by_county(_frame(ROWS)).to_dicts()
    assert c[0] == {
        "admdvs": "370811",
        "persons": 3,
        "entitled_fen": 800000,
        "paid_fen": 199999,
        "under_persons": 2,
        "under_fen": 600000,
        "over_persons": 0,
        "over_fen": 0,
        "not_computed": 0,
    }
    assert (c[1]["over_persons"], c[1]["over_fen"], c[1]["not_computed"]) == (1, 3000, 1)
    assert c[1]["paid_fen"] == 103000  # E (not computed) is left out of the totals


def test_largest_underpayments_per_county():
    top = largest_underpayments(_frame(ROWS), per_county=1)
    assert top["人员编号"].to_list() == ["A", "F"]
    assert top["差额（元）"].to_list() == ["5000.00", "0.02"]
    assert top["县（市、区）"].to_list() == ["任城区", "兖州区"]


def test_csv_leaves_not_computed_money_empty():
    text = format_assistance(_frame(ROWS))
    lines = text.splitlines()
    assert (
        lines[0] == "month,psn_no,admdvs,category,policy_id,eligible_cost,entitled,paid,difference"
    )
    assert lines[5] == "2024-06,E,370812,cat1,p,0.00,,5.00,"
    assert lines[1] == "2024-06,A,370811,cat1,p,0.00,5000.00,0.00,5000.00"


def test_summary_line_counts_without_persons():
    line = summary_line(_frame(ROWS))
    assert line == (
        "assistance audit: 6 persons, entitled 9,000.02 vs paid 3,029.99; under-paid 3 "
        "(6,000.02), over-paid 1 (30.00), not computed 1"
    )
    assert "A" not in line.replace("assistance audit", "")
