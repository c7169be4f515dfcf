"""The audit reads only the rows that can matter (pipeline.assistance.entitlement.settlement_rows),
and gets the same entitlements as from every loaded row: a real warehouse file."""

from __future__ import annotations

import datetime as dt

import polars as pl

from pipeline.assistance.entitlement import compute_entitlements, resolve_terms, settlement_rows
from pipeline.months import Month
from pipeline.policy.load import PolicySet
from pipeline.store.warehouse import connect
from tests.unit.assistance.test_entitlement import INCOME

DEC = Month(2024, 12)


def _warehouse(tmp_path):
    con = connect(tmp_path / "w.duckdb")
    rows = [
        # (psn_no, export_month, day, cost_year, med_class, psn_part_amt, maf_pay, status)
        ("H", "2024-03", "2024-03-02", 2024, "inpatient", 900_000, 0, "loaded"),  # holder
        ("H", "2024-05", "2024-05-02", 2024, "inpatient", 300_000, 50_000, "loaded"),
        ("A", "2024-04", "2024-04-02", 2024, "inpatient", 700_000, 0, "loaded"),  # no identity
        ("A", "2024-06", "2024-06-02", 2024, "inpatient", 100_000, 20_000, "loaded"),  # paid
        ("Z", "2024-07", "2024-07-02", 2024, "inpatient", 800_000, 0, "loaded"),  # never paid
        ("B", "2024-08", "2024-08-02", 2024, "inpatient", 100_000, 30_000, "duplicate"),
    ]
    con.executemany(
        "insert into stg_settlements (psn_no, export_month, source_file, source_row, setl_time, "
        "cost_year, med_class, psn_part_amt, maf_pay, fulamt_ownpay_amt, overlmt_selfpay, "
        "preselfpay_amt, status) values (?, ?, 'f.csv', 1, ?, ?, ?, ?, ?, 0, 0, 0, ?)",
        [
            [p, em, dt.datetime.fromisoformat(d + " 09:00"), y, c, a, m, s]
            for p, em, d, y, c, a, m, s in rows
        ],
    )
    con.execute(
        "insert into ref_identities (psn_no, identity, begin_date) values ('H', 'tekun', '2020-01-01')"
    )
    return con


def test_only_holders_rows_and_paid_rows_are_read(tmp_path):
    con = _warehouse(tmp_path)
    got = settlement_rows(con, DEC, 2024).sort("psn_no", "setl_time")
    # H: both rows (a holder's every cost counts); A: only the row where assistance paid;
    # Z: nothing was paid and no identity; B: not loaded.
    assert got.select("psn_no", "maf_pay").rows() == [("A", 20_000), ("H", 0), ("H", 50_000)]


def test_same_entitlements_as_from_every_loaded_row(tmp_path):
    con = _warehouse(tmp_path)
    every = con.execute(
        "select psn_no, setl_time, cost_year, med_class, psn_part_amt, maf_pay, "
        "fulamt_ownpay_amt, overlmt_selfpay, preselfpay_amt from stg_settlements "
        "where status = 'loaded'"
    ).pl()
    identities = con.sql("select psn_no, identity, begin_date, end_date from ref_identities").pl()
    registry = pl.DataFrame(
        {"psn_no": ["H", "A", "Z", "B"], "admdvs": ["370811"] * 4, "brdy": ["1960-01-01"] * 4}
    )
    terms = resolve_terms(PolicySet.load(), ["370811"], DEC, INCOME)
    fast = compute_entitlements(settlement_rows(con, DEC, 2024), identities, registry, terms, DEC)
    full = compute_entitlements(every, identities, registry, terms, DEC)
    assert fast.equals(full)
    # the population: the holder, and A whom assistance paid; Z (never paid) is not in it
    assert fast["psn_no"].to_list() == ["A", "H"]
    assert fast.filter(pl.col("psn_no") == "A")["paid_fen"].item() == 20_000
    assert fast.filter(pl.col("psn_no") == "H")["paid_fen"].item() == 50_000
