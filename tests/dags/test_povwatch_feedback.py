"""The povwatch_feedback DAG: parses, waits for files under <landing>/feedback/, and records
them through pipeline.run.record_feedback in the writer pool, opening the warehouse as the
monthly tasks do (an encrypted one with the key of the povwatch_warehouse connection)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.dags.xcoms import states, xcom_value

DAG_ID = "povwatch_feedback"
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "jining-hebei-2024" / "landing"
KEY = "k3y-for-the-dag-test"


@pytest.fixture(scope="module")
def dag(dagbag):
    assert dagbag.import_errors == {}, dagbag.import_errors
    return dagbag.dags[DAG_ID]


def test_feedback_dag_shape(dag):
    assert set(dag.task_ids) == {"wait_for_feedback", "record_feedback"}
    assert dag.get_task("record_feedback").pool == "povwatch_warehouse"
    sensor = dag.get_task("wait_for_feedback")
    assert sensor.mode == "reschedule" and sensor.soft_fail
    assert dag.max_active_runs == 1 and dag.catchup is False and dag.doc_md


def test_feedback_is_recorded_in_an_encrypted_warehouse_with_the_connections_key(
    dag, tmp_path, monkeypatch
):
    from pipeline.run import run_month
    from pipeline.settings import Settings
    from pipeline.store.warehouse import connect

    landing, db = tmp_path / "landing", tmp_path / "w.duckdb"
    shutil.copytree(FIXTURE, landing)
    monkeypatch.setenv("POVWATCH_QUALITY", "off")
    monkeypatch.setenv("POVWATCH_LANDING", str(landing))
    monkeypatch.setenv("POVWATCH_DB", str(db))
    monkeypatch.setenv("POVWATCH_OUTBOX", str(tmp_path / "out"))

    # nothing returned yet: the sensor gives up softly (3 s here), nothing is recorded
    nothing = dag.test()
    assert states(nothing) == {"wait_for_feedback": "skipped", "record_feedback": "skipped"}

    # January and February run into an encrypted warehouse
    monkeypatch.setenv("POVWATCH_DB_KEY", KEY)
    settings = Settings(landing=landing, db=db, outbox=tmp_path / "out", quiet=True)
    for month in ("2024-01", "2024-02"):
        run_month(month, settings)
    assert b"P1300002568" not in db.read_bytes()
    folder = landing / "feedback" / "rural_revitalization"
    folder.mkdir(parents=True)
    (folder / "back.csv").write_text(
        "warning_id,decision,decided_on,note\n"
        "2024-R-P1300002568,already_assisted,2024-02-29,\n"  # routed to 乡村振兴 (Jan)
        "2024-R-P9999999999,dibao,2024-02-10,\n",  # no such warning: rejected
        encoding="utf-8",
    )

    # the worker has no key in its environment: without the connection, one failed try
    monkeypatch.setenv("POVWATCH_DB_KEY", "")
    monkeypatch.delenv("AIRFLOW_CONN_POVWATCH_WAREHOUSE", raising=False)
    failed = dag.test()
    assert states(failed)["record_feedback"] == "failed"
    assert failed.get_task_instance("record_feedback").try_number == 1  # not retried

    # with the key in the povwatch_warehouse connection's password
    conn = {"conn_type": "generic", "password": KEY}
    monkeypatch.setenv("AIRFLOW_CONN_POVWATCH_WAREHOUSE", json.dumps(conn))
    monkeypatch.setenv("POVWATCH_DB_KEY", "")
    dagrun = dag.test()
    assert dagrun.state == "success"
    assert xcom_value(dagrun, DAG_ID, "record_feedback") == {
        "month": "2024-02",
        "files": 1,
        "recorded": 1,
        "rejected": 1,
    }
    monkeypatch.setenv("POVWATCH_DB_KEY", KEY)
    con = connect(db, read_only=True)
    try:
        got = con.execute(
            "select warning_id, decision, decided_on::varchar from feedback_decisions "
            "where month = '2024-02'"
        ).fetchall()
    finally:
        con.close()
    assert got == [("2024-R-P1300002568", "already_assisted", "2024-02-29")]

    # a 台账 answered in place in the outbox, nothing under feedback/: the sensor wakes for it
    # and the recorder sets it aside under received/ and reads it (saved unchanged by a
    # spreadsheet program: its bytes differ, it holds no decision)
    import openpyxl

    shutil.rmtree(landing / "feedback")
    ledger = next((tmp_path / "out" / "2024-02" / "rural_revitalization").rglob("*.xlsx"))
    openpyxl.load_workbook(ledger).save(ledger)
    answered = dag.test()
    assert states(answered) == {"wait_for_feedback": "success", "record_feedback": "success"}
    assert xcom_value(answered, DAG_ID, "record_feedback") == {
        "month": "2024-02",
        "files": 1,
        "recorded": 0,
        "rejected": 0,
    }
    assert list((tmp_path / "out" / "received" / "rural_revitalization").rglob("*.xlsx"))
