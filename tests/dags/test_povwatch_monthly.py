"""The povwatch_monthly DAG: it parses, its clock is the calendar month, and a run of it
produces the month's warnings.

Airflow is imported inside tests only (see conftest.py: the environment has to be set
before the first ``import airflow``).
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAG_ID = "povwatch_monthly"
TZ = "Asia/Shanghai"
EXAMPLE = "jining-hebei-2024"


def _example_dir() -> Path | None:
    """The Jining/Hebei example: the repo's fixture copy if there is one, else shared/."""
    for base in (REPO / "tests" / "fixtures", REPO.parent / "shared" / "examples"):
        if (base / EXAMPLE / "landing").is_dir():
            return base / EXAMPLE
    return None


@pytest.fixture(scope="module")
def dag(dagbag):
    assert dagbag.import_errors == {}, dagbag.import_errors
    return dagbag.dags[DAG_ID]


def test_dag_parses_with_expected_tasks_and_monthly_interval(dag):
    import pendulum
    from airflow.serialization.serialized_objects import DagSerialization
    from airflow.timetables.base import DataInterval, TimeRestriction

    assert set(dag.task_ids) == {"month_of_interval", "run_month"}
    assert dag.get_task("run_month").upstream_task_ids == {"month_of_interval"}
    assert dag.max_active_runs == 1
    assert dag.catchup is False
    assert set(dag.params) == {"landing", "db", "outbox"}
    assert dag.params["db"] == "data/warehouse.duckdb"

    # The timetable as the scheduler sees it (after serialisation).
    timetable = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag)).timetable
    march = DataInterval(
        start=pendulum.datetime(2024, 3, 1, tz=TZ), end=pendulum.datetime(2024, 4, 1, tz=TZ)
    )
    # Scheduled: the run after February's covers March and may start once March is over.
    info = timetable.next_dagrun_info(
        last_automated_data_interval=DataInterval(
            start=pendulum.datetime(2024, 2, 1, tz=TZ), end=march.start
        ),
        restriction=TimeRestriction(earliest=dag.start_date, latest=None, catchup=True),
    )
    assert info.data_interval == march
    assert info.run_after == march.end
    # Manual (`airflow dags test povwatch_monthly 2024-04-01`, dag.test): the month just ended.
    assert timetable.infer_manual_data_interval(run_after=march.end) == march

    # The interval starts at 2024-02-29T16:00 UTC; the month is taken in Asia/Shanghai.
    assert march.start.in_timezone("UTC").month == 2
    month_of_interval = dag.get_task("month_of_interval").python_callable
    assert month_of_interval(data_interval_start=march.start.in_timezone("UTC")) == "2024-03"


@pytest.mark.skipif(_example_dir() is None, reason=f"example data {EXAMPLE} not found")
def test_dag_run_for_march_writes_the_expected_warnings(dag, tmp_path):
    import duckdb
    import pendulum
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    example = _example_dir()
    assert example is not None
    landing = tmp_path / "landing"
    shutil.copytree(example / "landing", landing)
    db = tmp_path / "warehouse.duckdb"
    outbox = tmp_path / "outbox"

    # Logical date 2024-04-01 → data interval March → month "2024-03".
    dagrun = dag.test(
        logical_date=pendulum.datetime(2024, 4, 1, tz=TZ),
        run_conf={"landing": str(landing), "db": str(db), "outbox": str(outbox)},
    )

    assert dagrun.data_interval_start == pendulum.datetime(2024, 3, 1, tz=TZ)
    states = {ti.task_id: ti.state for ti in dagrun.get_task_instances()}
    assert states == {"month_of_interval": "success", "run_month": "success"}
    assert dagrun.state == "success"

    # run_month's return value reached XCom as JSON (Paths made str).
    with create_session() as session:
        xcom = session.scalars(
            XComModel.get_many(
                run_id=dagrun.run_id, dag_ids=DAG_ID, task_ids="run_month", key="return_value"
            )
        ).one()
        result = XComModel.deserialize_value(xcom)
    assert result["month"] == "2024-03"
    assert {"run_id", "warnings", "outcome"} <= result.keys()

    with duckdb.connect(str(db), read_only=True) as con:
        got = con.execute(
            "select psn_no, warning_type, status from mart_warnings"
            " where month = ? order by psn_no, warning_type",
            ["2024-03"],
        ).fetchall()
    with (example / "expected" / "warnings_2024-03.csv").open(encoding="utf-8") as f:
        expected = sorted((r["psn_no"], r["warning_type"], r["status"]) for r in csv.DictReader(f))
    assert len(expected) == 11
    assert got == expected
