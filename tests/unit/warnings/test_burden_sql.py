"""burden_as_of_sql on a real warehouse file: only persons with some measure strictly above the
lowest threshold leave DuckDB, with the same sums as without the cut."""

from __future__ import annotations

import polars as pl

from pipeline.months import Month
from pipeline.store.warehouse import connect
from pipeline.warnings.burden import burden_as_of_sql

DEC = Month(2024, 12)


def test_only_persons_strictly_above_leave_duckdb(tmp_path):
    con = connect(tmp_path / "w.duckdb")
    rows = [
        # psn_no, export_month, cost_year, psn_part_amt, maf_pay, fulamt_ownpay_amt
        ("AT", "2024-03", 2024, 600_000, 0, 0),  # exactly at 1_000_000 over two rows
        ("AT", "2024-12", 2024, 400_000, 0, 0),
        ("UP", "2024-05", 2024, 1_000_000, 1, 0),  # one fen above, only with maf_pay
        ("LATE", "2025-01", 2024, 5_000_000, 0, 0),  # export after December: not counted
        ("OLD", "2024-02", 2023, 5_000_000, 0, 0),  # a cost of 2023
        ("LOW", "2024-04", 2024, 10, 0, 0),
    ]
    con.executemany(
        "insert into stg_settlements (psn_no, export_month, source_file, source_row, cost_year, "
        "psn_part_amt, maf_pay, fulamt_ownpay_amt, status) "
        "values (?, ?, 'f.csv', 1, ?, ?, ?, ?, 'loaded')",
        [list(r) for r in rows],
    )
    every = burden_as_of_sql(con, DEC).sort("psn_no")
    cut = burden_as_of_sql(con, DEC, 1_000_000).sort("psn_no")
    assert every["psn_no"].to_list() == ["AT", "LOW", "UP"]
    assert cut["psn_no"].to_list() == ["UP"]  # AT is at the line, not above it
    assert cut.equals(every.filter(pl.col("psn_no") == "UP"))
    assert cut["burden__after_insurance"].item() == 1_000_001
    assert cut["burden__after_insurance_and_assistance"].item() == 1_000_000
