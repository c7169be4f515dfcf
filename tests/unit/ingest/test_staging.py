"""Staging SQL on tiny in-memory warehouses: every quarantine reason code with its exact
column, the first-failing-check order, duplicates and reversals (contract: "A row with an
unparseable value, a bad code or amounts that do not add up goes to a quarantine table with
its reason (file, row, column)")."""

from __future__ import annotations

import duckdb
import pytest

from pipeline.store.warehouse import sql
from tests.landing import certno

PSN = "P1"
CERT = certno("370811", "19700101", 1)
FILE = "settlements/2024-03/setl_202403.csv"


@pytest.fixture
def con():
    c = duckdb.connect()
    c.execute(sql("schema/warehouse"))
    c.execute(sql("schema/macros"))
    c.execute(
        "insert into ref_persons (psn_no, certno, hh_id, insuplc_admdvs) values (?, ?, 'H1', "
        "'370811')",
        [PSN, CERT],
    )
    yield c
    c.close()


def row(setl_id: str = "S1", **changes: str | None) -> dict:
    """A raw row that adds up: 1 000.00 = funds 600.00 + hospital 0 + personal 400.00."""
    base = {
        "setl_id": setl_id,
        "psn_no": PSN,
        "certno": CERT,
        "insutype": "390",
        "med_type": "21",
        "setl_time": "2024-03-10 09:00:00",
        "medfee_sumamt": "1000.00",
        "hifp_pay": "500.00",
        "maf_pay": "100.00",
        "fund_pay_sumamt": "600.00",
        "psn_part_amt": "400.00",
        "hosp_part_amt": "0.00",
        "refd_setl_flag": "0",
        "init_setl_id": None,
        "vali_flag": "1",
    }
    base.update(changes)
    return base


def stage(con, rows: list[dict], month: str = "2024-03") -> list[tuple]:
    """Insert ``rows`` as one export month's raw file and stage it: (status, reason, column)."""
    for i, r in enumerate(rows, start=2):
        cols = ["export_month", "source_file", "source_row", *r]
        con.execute(
            f"insert into raw_settlements ({', '.join(cols)}) values "
            f"({', '.join('?' * len(cols))})",
            [month, FILE.replace("2024-03", month), i, *r.values()],
        )
    con.execute(sql("staging/stg_settlements"), {"from": month, "month": month})
    return con.execute(
        "select status, reason, reason_column from stg_settlements where export_month = ? "
        "order by source_row",
        [month],
    ).fetchall()


def test_a_good_row_is_loaded(con):
    assert stage(con, [row()]) == [("loaded", None, None)]


@pytest.mark.parametrize(
    ("changes", "reason", "column"),
    [
        ({"vali_flag": "2"}, "bad_flag", "vali_flag"),
        ({"setl_id": None}, "missing_value", "setl_id"),
        ({"psn_no": None}, "missing_value", "psn_no"),
        ({"insutype": None}, "missing_value", "insutype"),
        ({"med_type": None}, "missing_value", "med_type"),
        ({"setl_time": None}, "missing_value", "setl_time"),
        ({"medfee_sumamt": None}, "missing_value", "medfee_sumamt"),
        ({"hifp_pay": None}, "missing_value", "hifp_pay"),
        ({"fund_pay_sumamt": None}, "missing_value", "fund_pay_sumamt"),
        ({"psn_part_amt": None}, "missing_value", "psn_part_amt"),
        ({"insutype": "39O"}, "bad_code", "insutype"),
        ({"med_type": "2.1"}, "bad_code", "med_type"),
        ({"setl_time": "10/03/2024 9h"}, "bad_time", "setl_time"),
        ({"medfee_sumamt": "1,000.00"}, "bad_amount", "medfee_sumamt"),
        ({"maf_pay": "100.001"}, "bad_amount", "maf_pay"),
        ({"psn_part_amt": "四百"}, "bad_amount", "psn_part_amt"),
        ({"hosp_part_amt": "x"}, "bad_amount", "hosp_part_amt"),
        ({"refd_setl_flag": "Y"}, "bad_flag", "refd_setl_flag"),
        ({"setl_time": "2024-04-01 00:00:00"}, "after_export_month", "setl_time"),
        ({"certno": CERT[:17] + ("0" if CERT[17] != "0" else "1")}, "bad_certno", "certno"),
        ({"certno": "3.70811E+17"}, "bad_certno", "certno"),
        ({"psn_no": "P404"}, "unknown_psn", "psn_no"),
        ({"psn_part_amt": "400.02"}, "amounts_mismatch", "psn_part_amt"),
        (
            {
                "medfee_sumamt": "-1000.00",
                "hifp_pay": "-500.00",
                "maf_pay": "-100.00",
                "fund_pay_sumamt": "-600.00",
                "psn_part_amt": "-400.00",
            },
            "negative_without_reversal",
            "medfee_sumamt",
        ),
        ({"refd_setl_flag": "1", "init_setl_id": None}, "missing_value", "init_setl_id"),
    ],
)
def test_each_reason_code_with_its_column(con, changes, reason, column):
    assert stage(con, [row(**changes)]) == [("quarantined", reason, column)]


def test_within_a_cent_adds_up():
    # contract: psn_part_amt = medfee_sumamt − fund_pay_sumamt − hosp_part_amt (±0.01)
    c = duckdb.connect()
    c.execute(sql("schema/warehouse"))
    c.execute(sql("schema/macros"))
    c.execute("insert into ref_persons (psn_no, hh_id, insuplc_admdvs) values ('P1', 'H', '1')")
    assert stage(c, [row(psn_part_amt="400.01")]) == [("loaded", None, None)]


def test_skipped_duplicate_and_unknown_original(con):
    got = stage(
        con,
        [
            row("S1"),
            row("S1"),  # the same setl_id again: counted once
            row("S2", vali_flag="0"),
            row(
                "R1",
                refd_setl_flag="1",
                init_setl_id="S404",  # reverses a settlement never received
                medfee_sumamt="-1000.00",
                hifp_pay="-500.00",
                maf_pay="-100.00",
                fund_pay_sumamt="-600.00",
                psn_part_amt="-400.00",
            ),
        ],
    )
    assert got == [
        ("loaded", None, None),
        ("duplicate", "duplicate_setl_id", "setl_id"),
        ("skipped", "vali_flag_0", "vali_flag"),
        ("quarantined", "unknown_original", "init_setl_id"),
    ]


@pytest.mark.parametrize(
    ("changes", "reason", "column"),
    [
        # the first failing check wins, in the order of the staging model's CASE
        ({"psn_no": None, "insutype": "x"}, "missing_value", "psn_no"),
        ({"insutype": "x", "setl_time": "never"}, "bad_code", "insutype"),
        ({"setl_time": "never", "medfee_sumamt": "x"}, "bad_time", "setl_time"),
        ({"medfee_sumamt": "x", "refd_setl_flag": "Y"}, "bad_amount", "medfee_sumamt"),
        (
            {"setl_time": "2024-04-02 00:00:00", "certno": "3.70811E+17"},
            "after_export_month",
            "setl_time",
        ),
        ({"certno": "3.70811E+17", "psn_no": "P404"}, "bad_certno", "certno"),
        ({"psn_no": "P404", "psn_part_amt": "1.00"}, "unknown_psn", "psn_no"),
        (
            {"psn_part_amt": "-400.00", "medfee_sumamt": "-1000.00"},
            "amounts_mismatch",
            "psn_part_amt",
        ),
        ({"vali_flag": "0", "psn_no": None}, "vali_flag_0", "vali_flag"),
    ],
)
def test_first_failing_check_order(con, changes, reason, column):
    status = "skipped" if reason == "vali_flag_0" else "quarantined"
    assert stage(con, [row(**changes)]) == [(status, reason, column)]


def test_several_export_months_staged_in_one_pass(con):
    """Re-staging from an earlier month (its export changed) classifies the months in order:
    a repeat in a later month is a duplicate, a reversal is known only from its original's
    export month on, and a settlement loaded before the range is found in the stored rows."""
    stage(con, [row("S0", setl_time="2024-02-10 09:00:00")], month="2024-02")
    reversal = {
        "refd_setl_flag": "1",
        "medfee_sumamt": "-1000.00",
        "hifp_pay": "-500.00",
        "maf_pay": "-100.00",
        "fund_pay_sumamt": "-600.00",
        "psn_part_amt": "-400.00",
    }
    months = {
        "2024-03": [row("S1"), row("R1", init_setl_id="S2", **reversal)],
        "2024-04": [
            row("S1", setl_time="2024-04-10 09:00:00"),
            row("S2", setl_time="2024-04-10 09:00:00"),
            row("R2", init_setl_id="S2", setl_time="2024-04-11 09:00:00", **reversal),
            row("R0", init_setl_id="S0", setl_time="2024-04-11 09:00:00", **reversal),
            row("S0", setl_time="2024-04-12 09:00:00"),
        ],
    }
    for month, rows in months.items():
        for i, r in enumerate(rows, start=2):
            cols = ["export_month", "source_file", "source_row", *r]
            con.execute(
                f"insert into raw_settlements ({', '.join(cols)}) values "
                f"({', '.join('?' * len(cols))})",
                [month, FILE.replace("2024-03", month), i, *r.values()],
            )
    con.execute(sql("staging/stg_settlements"), {"from": "2024-03", "month": "2024-04"})
    got = con.execute(
        "select setl_id, status, reason, cost_year from stg_settlements "
        "where export_month >= '2024-03' order by export_month, source_row"
    ).fetchall()
    assert got == [
        ("S1", "loaded", None, 2024),
        ("R1", "quarantined", "unknown_original", None),  # S2 arrives a month later
        ("S1", "duplicate", "duplicate_setl_id", 2024),
        ("S2", "loaded", None, 2024),
        ("R2", "loaded", None, 2024),
        ("R0", "loaded", None, 2024),  # reverses S0, loaded from 2024-02
        ("S0", "duplicate", "duplicate_setl_id", 2024),
    ]
