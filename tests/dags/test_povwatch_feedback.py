"""The povwatch_feedback DAG: parses, records through pipeline.run.record_feedback in the
writer pool, and is skipped (not failed) until that function exists."""

from __future__ import annotations

import pytest

from tests.dags.xcoms import xcom_value

DAG_ID = "povwatch_feedback"


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


def test_feedback_files_are_recorded_through_the_pipeline(dag, tmp_path, monkeypatch):
    from pipeline import run

    folder = tmp_path / "landing" / "feedback" / "civil_affairs"
    folder.mkdir(parents=True)
    (folder / "returned.csv").write_text("warning_id,decision,decided_on\n", encoding="utf-8")
    monkeypatch.setenv("POVWATCH_LANDING", str(tmp_path / "landing"))
    monkeypatch.setenv("POVWATCH_DB", str(tmp_path / "warehouse.duckdb"))
    seen = []

    def record_feedback(settings):
        seen.append(settings.landing)
        return {
            "files": ["feedback/civil_affairs/returned.csv"],
            "recorded": 3,
            "rejected": [
                "feedback/civil_affairs/returned.csv row 4 column decision: not a decision"
            ],
        }

    # Before the reading code exists the run is skipped, not failed.
    monkeypatch.delattr(run, "record_feedback", raising=False)
    skipped = dag.test()
    assert skipped.get_task_instance("record_feedback").state == "skipped"

    monkeypatch.setattr(run, "record_feedback", record_feedback, raising=False)
    dagrun = dag.test()
    assert dagrun.state == "success"
    assert seen == [tmp_path / "landing"]
    assert xcom_value(dagrun, DAG_ID, "record_feedback") == {
        "files": 1,
        "recorded": 3,
        "rejected": 1,
    }
