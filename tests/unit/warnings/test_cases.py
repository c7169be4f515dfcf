"""Matching decisions to warnings on a hand-made warehouse: person rows, ties, as-of dates."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from pipeline.ingest.feedback import READ_SCHEMA, FeedbackRead
from pipeline.months import Month
from pipeline.store.warehouse import connect
from pipeline.warnings.cases import apply_feedback, cases_frame

# (month, psn_no, warning_type, first_month, status, departments)
MART = [
    ("2023-11", "P1", "relapse", "2023-11", "new", ["civil_affairs"]),
    ("2024-01", "P1", "relapse", "2024-01", "new", ["civil_affairs"]),
    ("2024-01", "P2", "relapse", "2024-01", "new", ["civil_affairs"]),
    ("2024-02", "P1", "relapse", "2024-01", "continuing", ["civil_affairs"]),
    ("2024-02", "P2", "relapse", "2024-01", "continuing", ["civil_affairs"]),
    ("2024-02", "P2", "impoverish", "2024-02", "new", ["civil_affairs", "rural_revitalization"]),
    ("2024-02", "P3", "impoverish", "2024-02", "new", ["rural_revitalization"]),
]


@pytest.fixture
def con(tmp_path):
    con = connect(tmp_path / "w.duckdb")
    for month, psn, wtype, first, status, depts in MART:
        con.execute(
            "insert into mart_warnings values (?, ?, 'H', '370811', ?, 'r', 1, 1, ?, ?, "
            "'p', 'v', '370000', 2023, 'all', '')",
            [month, psn, wtype, first, status],
        )
        for d in depts:
            con.execute(
                "insert into mart_warning_routes values (?, ?, ?, ?)", [month, psn, wtype, d]
            )
    for month in ("2023-11", "2024-01", "2024-02"):
        con.execute(
            "insert into run_ledger (run_id, month, started_at, outcome, code_version) "
            "values (?, ?, ?, 'success', 't')",
            [f"run-{month}", month, dt.datetime(2024, 3, 1) + dt.timedelta(hours=int(month[-2:]))],
        )
    yield con
    con.close()


def _read(*rows: dict) -> FeedbackRead:
    base = {c: None for c in READ_SCHEMA}
    full = [base | {"source_file": "feedback/x.csv", "sha256": "s"} | r for r in rows]
    return FeedbackRead(rows=pl.DataFrame(full, schema=READ_SCHEMA), files=[])


def _rejects(con, month: str) -> list[tuple]:
    return con.execute(
        "select source_row, reason_column, reason from feedback_rejects where month = ? "
        "order by source_row",
        [month],
    ).fetchall()


def test_a_person_row_picks_the_warning_routed_to_its_department(con):
    feb = Month.parse("2024-02")
    civil, rural = "civil_affairs", "rural_revitalization"
    d = dt.date(2024, 2, 20)
    read = _read(
        # P1: the 2024 warning (began 2024-01 ≤ Feb), not the 2023 one
        {
            "source_row": 2,
            "department": civil,
            "psn_no": "P1",
            "decision": "dibao",
            "decided_on": d,
        },
        # P2 has relapse and impoverish with civil affairs: warning_type is needed
        {
            "source_row": 3,
            "department": civil,
            "psn_no": "P2",
            "decision": "dibao",
            "decided_on": d,
        },
        # … but rural revitalization only has the impoverishment warning: no ambiguity
        {
            "source_row": 4,
            "department": rural,
            "psn_no": "P2",
            "decision": "unreachable",
            "decided_on": d,
        },
        # P3 was never routed to civil affairs
        {
            "source_row": 5,
            "department": civil,
            "psn_no": "P3",
            "decision": "dibao",
            "decided_on": d,
        },
        # P2's impoverishment began 2024-02: a January decision cannot be about it
        {
            "source_row": 6,
            "department": rural,
            "psn_no": "P2",
            "decision": "dibao",
            "decided_on": dt.date(2024, 1, 31),
        },
    )
    apply_feedback(con, feb, "run-2024-02", read)
    accepted = con.execute(
        "select source_row, warning_id from feedback_decisions order by source_row"
    ).fetchall()
    assert accepted == [(2, "2024-R-P1"), (4, "2024-I-P2")]
    assert _rejects(con, "2024-02") == [
        (3, "warning_type", "ambiguous_warning"),
        (5, "psn_no", "not_routed"),
        (6, "decided_on", "date_before_warning"),
    ]


def test_the_latest_decision_wins_and_a_tie_goes_to_the_later_row(con):
    civil = "civil_affairs"
    read = _read(
        {"source_row": 2, "department": civil, "warning_id": "2024-R-P2", "decision": "dibao",
         "decided_on": dt.date(2024, 2, 10)},
        {"source_row": 3, "department": civil, "warning_id": "2024-R-P2", "decision": "tekun",
         "decided_on": dt.date(2024, 2, 5)},
        {"source_row": 4, "department": civil, "warning_id": "2024-R-P2",
         "decision": "not_eligible", "decided_on": dt.date(2024, 2, 10)},
        # decided 2024-03-01: after February, left for a later run
        {"source_row": 5, "department": civil, "warning_id": "2024-R-P1",
         "decision": "dibao", "decided_on": dt.date(2024, 3, 1)},
    )  # fmt: skip
    apply_feedback(con, Month.parse("2024-02"), "run-2024-02", read)
    frame, not_run = cases_frame(con, Month.parse("2024-02"))
    assert not_run == []
    assert frame.rows() == [
        ("2024-R-P1", "P1", "relapse", "2024-01", "continuing", None, None),
        ("2024-I-P2", "P2", "impoverish", "2024-02", "new", None, None),
        ("2024-R-P2", "P2", "relapse", "2024-01", "continuing", "not_eligible", "2024-02-10"),
        ("2024-I-P3", "P3", "impoverish", "2024-02", "new", None, None),
    ]
    # January's view: the warnings of January only, and the decisions known by its end
    jan, _ = cases_frame(con, Month.parse("2024-01"))
    assert jan.select("warning_id", "status", "decision").rows() == [
        ("2024-R-P1", "new", None),
        ("2024-R-P2", "new", None),  # decided 2024-02-10: not known at the end of January
    ]


def test_cases_refuses_a_month_not_run_and_names_months_not_run(con):
    from pipeline.errors import PovwatchError

    with pytest.raises(PovwatchError, match="2024-03 has not been run"):
        cases_frame(con, Month.parse("2024-03"))
    con.execute("delete from run_ledger where month = '2024-01'")
    _, not_run = cases_frame(con, Month.parse("2024-02"))
    assert not_run == ["2024-01"]


def test_a_warehouse_without_feedback_tables_lists_cases_without_decisions(con):
    con.execute("drop table feedback_decisions")  # as written before decisions came back
    frame, _ = cases_frame(con, Month.parse("2024-02"))
    assert frame.height == 4 and frame["decision"].null_count() == 4


def test_feedback_on_a_warehouse_without_any_warning(tmp_path):
    con = connect(tmp_path / "empty.duckdb")
    try:
        read = _read(
            {"source_row": 2, "department": "civil_affairs", "warning_id": "2024-R-P1",
             "decision": "dibao", "decided_on": dt.date(2024, 1, 5)},
            {"source_row": 3, "department": "civil_affairs", "psn_no": "P1",
             "decision": "dibao", "decided_on": dt.date(2024, 1, 5)},
            {"source_row": 4, "department": "civil_affairs", "certno": "x",
             "decision": "dibao", "decided_on": dt.date(2024, 1, 5)},
        )  # fmt: skip
        lines = apply_feedback(con, Month.parse("2024-01"), "r", read)
        assert _rejects(con, "2024-01") == [
            (2, "warning_id", "unknown_warning"),
            (3, "psn_no", "unknown_warning"),
            (4, "certno", "unknown_warning"),
        ]
        assert lines[0] == (
            "[2024-01] feedback rejected: feedback/x.csv row 2 column warning_id: unknown_warning"
        )
    finally:
        con.close()
