"""The povwatch_ingest DAG: every hour, the exports landed since its last read are staged
through pipeline.run.stage_month (the real pipeline on the shared example), in the writer
pool; a landing without export folders is skipped, an unusable file fails at once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.dags.xcoms import xcom_value

DAG_ID = "povwatch_ingest"
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "jining-hebei-2024" / "landing"


@pytest.fixture(scope="module")
def dag(dagbag):
    assert dagbag.import_errors == {}, dagbag.import_errors
    return dagbag.dags[DAG_ID]


def _summary(dagrun) -> dict:
    return xcom_value(dagrun, DAG_ID, "ingest_landed")


def test_ingest_dag_shape(dag):
    assert set(dag.task_ids) == {"ingest_landed"}
    assert dag.get_task("ingest_landed").pool == "povwatch_warehouse"
    assert dag.max_active_runs == 1 and dag.catchup is False and dag.doc_md


def test_exports_are_staged_as_they_land(dag, tmp_path, monkeypatch):
    import duckdb

    landing = tmp_path / "landing"
    for part in ("persons", "identities", "reference"):
        shutil.copytree(FIXTURE / part, landing / part)
    db = tmp_path / "warehouse.duckdb"
    monkeypatch.setenv("POVWATCH_LANDING", str(landing))
    monkeypatch.setenv("POVWATCH_DB", str(db))

    skipped = dag.test()  # no export folder yet
    assert skipped.get_task_instance("ingest_landed").state == "skipped"

    for month in ("2024-01", "2024-02"):
        shutil.copytree(FIXTURE / "settlements" / month, landing / "settlements" / month)
    first = dag.test()
    assert first.state == "success"
    assert _summary(first) == {
        "month": "2024-02",
        "files": 2,
        "rows_read": 379 + 366,
        "loaded": 379 + 366,
        "months_read": ["2024-01", "2024-02"],
    }
    assert _summary(dag.test())["months_read"] == []  # an hour with nothing new

    # March's export lands: only March is read, up to the new latest folder
    shutil.copytree(FIXTURE / "settlements" / "2024-03", landing / "settlements" / "2024-03")
    third = dag.test()
    assert _summary(third)["months_read"] == ["2024-03"]
    con = duckdb.connect(str(db), read_only=True)
    try:
        staged = con.execute(
            "select export_month, count(*) from stg_settlements group by 1 order by 1"
        ).fetchall()
    finally:
        con.close()
    assert staged == [("2024-01", 379), ("2024-02", 366), ("2024-03", 424)]

    # an unusable file fails the task at once with its one-line reason
    (landing / "settlements" / "2024-03" / "broken.csv").write_text("nonsense\n1\n")
    failed = dag.test()
    ti = failed.get_task_instance("ingest_landed")
    assert failed.state == "failed" and ti.state == "failed" and ti.try_number == 1
