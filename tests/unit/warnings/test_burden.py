"""pipeline/warnings/burden.py on tiny frames: burden_ytd = Σ (psn_part_amt + maf_pay) over
the data as of M (export folders up to M), in the cost year; the other named measures."""

from __future__ import annotations

import duckdb
import polars as pl

from pipeline.months import Month
from pipeline.store.warehouse import sql
from pipeline.warnings.burden import burden_as_of, burden_history, loaded_rows

ROWS = pl.DataFrame(
    {
        "psn_no": ["P1", "P1", "P1", "P2"],
        "export_month": ["2024-01", "2024-02", "2024-03", "2024-02"],
        "psn_part_amt": [1_000_000, 50_001, -20_000, 700],
        "maf_pay": [300_000, 0, 0, 0],
        "fulamt_ownpay_amt": [100_000, 0, 0, 5],
    },
    schema_overrides={c: pl.Int64 for c in ("psn_part_amt", "maf_pay", "fulamt_ownpay_amt")},
)


def test_burden_as_of_counts_the_exports_up_to_the_month_only():
    feb = burden_as_of(ROWS, Month(2024, 2)).sort("psn_no")
    # P1: (10 000.00 + 3 000.00) + 500.01 = 13 500.01 — March's reversal not yet there
    assert feb.select("psn_no", "m", "burden__after_insurance").rows() == [
        ("P1", "2024-02", 1_350_001),
        ("P2", "2024-02", 700),
    ]
    mar = burden_as_of(ROWS, Month(2024, 3)).sort("psn_no").row(0, named=True)
    assert mar["burden__after_insurance"] == 1_330_001  # − 200.00 reversed
    # after assistance: the personal part only (10 000.00 + 500.01 − 200.00)
    assert mar["burden__after_insurance_and_assistance"] == 1_030_001
    # without out-of-catalogue self-pay (1 000.00)
    assert mar["burden__after_insurance_in_catalogue"] == 1_230_001
    assert mar["burden__after_insurance_and_assistance_in_catalogue"] == 930_001


def test_burden_history_replays_every_month_of_the_year():
    got = burden_history(ROWS, pl.Series(["P1"]), Month(2024, 3))
    assert got.select("m", "burden__after_insurance").rows() == [
        ("2024-01", 1_300_000),
        ("2024-02", 1_350_001),
        ("2024-03", 1_330_001),
    ]


def test_loaded_rows_take_the_cost_year_and_the_loaded_status():
    # A reversal exported in January 2025 of a December 2024 settlement counts in 2024
    # (contract: a reversal's year is that of the settlement it reverses); duplicates,
    # skipped and quarantined rows never count; later exports are not "as of" the month.
    con = duckdb.connect()
    con.execute(sql("schema/warehouse"))
    rows = [
        ("2024-12", 2, "P1", 2024, "loaded", 500_000),
        ("2025-01", 2, "P1", 2024, "loaded", -100_000),  # reversal of a 2024 settlement
        ("2025-01", 3, "P1", 2025, "loaded", 7_000),
        ("2025-01", 4, "P1", 2025, "duplicate", 9_999),
        ("2025-01", 5, "P1", 2025, "quarantined", 9_999),
        ("2025-01", 6, "P1", 2025, "skipped", 9_999),
        ("2025-02", 2, "P1", 2025, "loaded", 1),
    ]
    for em, row, psn, year, status, amount in rows:
        con.execute(
            "insert into stg_settlements (export_month, source_file, source_row, psn_no, "
            "cost_year, status, psn_part_amt, maf_pay, fulamt_ownpay_amt) "
            "values (?, 'f', ?, ?, ?, ?, ?, 0, 0)",
            [em, row, psn, year, status, amount],
        )
    y2024 = burden_as_of(loaded_rows(con, Month(2024, 12)), Month(2024, 12))
    assert y2024["burden__after_insurance"].to_list() == [500_000]
    jan = loaded_rows(con, Month(2025, 1))
    assert jan["psn_part_amt"].to_list() == [7_000]  # 2025 costs, loaded, exports ≤ 2025-01
    con.close()
