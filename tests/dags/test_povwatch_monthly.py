"""The povwatch_monthly DAG: it parses light, its clock is the calendar month, a month is never
ambiguous, a run of it produces the month's warnings, a lock is waited out and a bad run mails.

Airflow is imported inside tests only (see conftest.py: the environment has to be set
before the first ``import airflow``).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.dags.xcoms import states, xcom_value

REPO = Path(__file__).resolve().parents[2]
DAG_ID = "povwatch_monthly"
TZ = "Asia/Shanghai"
FIXTURE = REPO / "tests" / "fixtures" / "jining-hebei-2024"
WRITERS = {"compute_month", "deliver", "close_ledger"}
TASKS = {
    "resolve_month",
    "wait_for_exports",
    "compute_month",
    "counties_to_report",
    "write_county_reports",
    "write_summary",
    "deliver",
    "close_ledger",
}


@pytest.fixture(scope="module")
def dag(dagbag):
    assert dagbag.import_errors == {}, dagbag.import_errors
    return dagbag.dags[DAG_ID]


@pytest.fixture
def run_dag(dag, monkeypatch):
    """The DAG for ``dag.test()``, without its deadline alert: Airflow 3.3.2's ``dag.test()``
    looks deadline alerts up by id in a DAG it serialised itself, where they are not ids
    (``'dict' object has no attribute 'hex'``). The scheduler test keeps the deadline."""
    monkeypatch.setattr(dag, "deadline", None)
    return dag


def conf(month: str | None, **switches) -> dict:
    """Every param spelt out: dag.test() runs tasks in this process, where a previous run's
    conf stays in the DAG's params."""
    return {"month": month, "policy": [], "force": False, "dry_run": False, **switches}


def data_folder(tmp_path: Path, months: list[str], monkeypatch) -> Path:
    """A copy of the example landing with `_SUCCESS` in ``months``; the DAG's paths point at it."""
    landing = tmp_path / "landing"
    shutil.copytree(FIXTURE / "landing", landing)
    for m in months:
        (landing / "settlements" / m / "_SUCCESS").touch()
    monkeypatch.setenv("POVWATCH_LANDING", str(landing))
    monkeypatch.setenv("POVWATCH_DB", str(tmp_path / "warehouse.duckdb"))
    monkeypatch.setenv("POVWATCH_OUTBOX", str(tmp_path / "outbox"))
    return tmp_path


def expected(month: str) -> list[tuple]:
    with (FIXTURE / "expected" / f"warnings_{month}.csv").open(encoding="utf-8") as f:
        return sorted((r["psn_no"], r["warning_type"], r["status"]) for r in csv.DictReader(f))


def warnings_in(db: Path, month: str) -> list[tuple]:
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(
            "select psn_no, warning_type, status from mart_warnings"
            " where month = ? order by psn_no, warning_type",
            [month],
        ).fetchall()


# --------------------------------------------------------------------------- integrity


def test_dag_shape_schedule_pool_retries_and_docs(dag):
    import pendulum
    from airflow.serialization.serialized_objects import DagSerialization
    from airflow.timetables.base import DataInterval, TimeRestriction

    assert set(dag.task_ids) == TASKS
    order = [
        ("resolve_month", "wait_for_exports"),
        ("wait_for_exports", "compute_month"),
        ("compute_month", "counties_to_report"),
        ("counties_to_report", "write_county_reports"),
        ("write_county_reports", "write_summary"),
        ("write_summary", "deliver"),
        ("deliver", "close_ledger"),
    ]
    for up, down in order:
        assert up in dag.get_task(down).upstream_task_ids, (up, down)
    assert dag.max_active_runs == 1 and dag.catchup is True
    assert dag.start_date == pendulum.datetime(2024, 1, 1, tz=TZ)
    assert set(dag.params) == {"month", "policy", "force", "dry_run"}
    assert dag.doc_md and "month" in dag.doc_md and dag.tags and "povwatch" in dag.tags
    assert dag.deadline, "a deadline alert for undelivered packages"

    for task in dag.tasks:
        assert task.owner == "povwatch-data-team"
        assert task.depends_on_past, task.task_id  # months complete in order
        assert task.on_failure_callback, task.task_id  # the SMTP notifier
        # Only warehouse writers hold the one-slot pool; county reports read Parquet.
        assert (task.pool == "povwatch_warehouse") == (task.task_id in WRITERS), task.task_id
    for task_id in WRITERS | {"write_county_reports", "write_summary"}:
        task = dag.get_task(task_id)
        assert task.retries >= 3 and task.retry_exponential_backoff, task_id
    sensor = dag.get_task("wait_for_exports")
    assert sensor.mode == "reschedule" and sensor.retries >= 1  # a lost poke is retried
    assert {o.name for o in dag.get_task("write_summary").outlets} == {"povwatch_outbox"}

    # The timetable as the scheduler sees it: one calendar month per run, in Asia/Shanghai.
    timetable = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag)).timetable
    march = DataInterval(
        start=pendulum.datetime(2024, 3, 1, tz=TZ), end=pendulum.datetime(2024, 4, 1, tz=TZ)
    )
    info = timetable.next_dagrun_info(
        last_automated_data_interval=DataInterval(
            start=pendulum.datetime(2024, 2, 1, tz=TZ), end=march.start
        ),
        restriction=TimeRestriction(earliest=dag.start_date, latest=None, catchup=True),
    )
    assert info.data_interval == march and info.run_after == march.end


def test_parsing_the_dag_imports_nothing_heavy(airflow_env):
    probe = textwrap.dedent(
        f"""
        import importlib.util, json, sys
        spec = importlib.util.spec_from_file_location("d", {str(REPO / "dags" / "povwatch_monthly.py")!r})
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
        heavy = ("polars", "duckdb", "great_expectations", "pipeline", "pandas", "xlsxwriter")
        print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules if m.startswith(heavy)}})))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, env=os.environ
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


# --------------------------------------------------------------------------- which month


def test_the_month_is_the_param_or_the_interval_and_never_ambiguous(dag):
    import pendulum
    from airflow.sdk.exceptions import AirflowFailException

    resolve = dag.get_task("resolve_month").python_callable
    march, april = pendulum.datetime(2024, 3, 1, tz=TZ), pendulum.datetime(2024, 4, 1, tz=TZ)
    utc = "UTC"
    # Scheduled and `backfill create` runs: logical date = interval start. The interval is
    # taken in Asia/Shanghai: it starts 2024-02-29T16:00Z, and that is March.
    assert (
        resolve(
            params={},
            logical_date=march.in_timezone(utc),
            data_interval_start=march.in_timezone(utc),
            data_interval_end=april.in_timezone(utc),
        )
        == "2024-03"
    )
    # The month param wins over any interval.
    assert (
        resolve(
            params={"month": "2024-02"},
            logical_date=None,
            data_interval_start=pendulum.datetime(2026, 10, 1, tz=TZ),
            data_interval_end=pendulum.datetime(2026, 11, 1, tz=TZ),
        )
        == "2024-02"
    )
    # `airflow dags trigger -l 2024-02-01`: the interval came from the clock.
    with pytest.raises(AirflowFailException) as err:
        resolve(
            params={},
            logical_date=pendulum.datetime(2024, 2, 1, tz=TZ),
            data_interval_start=pendulum.datetime(2026, 10, 1, tz=TZ),
            data_interval_end=pendulum.datetime(2026, 11, 1, tz=TZ),
        )
    message = str(err.value)
    assert "not the start of this run's data interval" in message and "\n" not in message
    assert '{"month": "YYYY-MM"}' in message and "data_interval_start" in message
    # An interval that is not one calendar month (e.g. REST with a wrong interval).
    with pytest.raises(AirflowFailException, match="not one calendar month"):
        resolve(
            params={},
            logical_date=None,
            data_interval_start=march,
            data_interval_end=march.add(days=30),  # 31 March is left out
        )
    with pytest.raises(AirflowFailException, match="not a month"):
        resolve(params={"month": "2024-13"}, logical_date=None)


# --------------------------------------------------------------------------- runs


def test_a_month_run_through_the_dag_gives_the_expected_warnings(run_dag, tmp_path, monkeypatch):
    import duckdb
    import polars as pl

    work = data_folder(tmp_path, ["2024-03"], monkeypatch)
    dagrun = run_dag.test(run_conf=conf("2024-03"))
    assert dagrun.state == "success", states(dagrun)
    assert set(states(dagrun).values()) == {"success"}

    assert warnings_in(work / "warehouse.duckdb", "2024-03") == expected("2024-03")
    assert len(expected("2024-03")) == 11
    # Published for readers, and the reports were written from it, county by county.
    published = work / "published" / "warehouse" / "2024-03"
    assert pl.read_parquet(published / "warnings.parquet").height == 11
    manifest = json.loads((work / "outbox" / "2024-03" / "manifest.json").read_text("utf-8"))
    ledgers = [f for f in manifest["files"] if not f["path"].startswith("summary_")]
    counties = {f["path"].split("/")[1] for f in ledgers}
    mapped = [ti for ti in dagrun.get_task_instances() if ti.task_id == "write_county_reports"]
    assert len(mapped) == len(counties) >= 2
    # The ledger knows which Airflow run and try produced the month.
    with duckdb.connect(str(work / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute(
            "select outcome, warnings, airflow_dag_id, airflow_run_id, airflow_try_number "
            "from run_ledger where month = '2024-03'"
        ).fetchall()
    assert rows == [("success", 11, DAG_ID, dagrun.run_id, 1)]

    # Run again without force: the month is delivered, nothing is recomputed.
    again = run_dag.test(run_conf=conf("2024-03"))
    assert again.state == "success"
    with duckdb.connect(str(work / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from run_ledger").fetchall() == [(1,)]


def test_a_run_whose_logical_date_is_not_its_interval_fails_at_once_and_mails(
    run_dag, tmp_path, monkeypatch
):
    import pendulum
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    class Inbox(Message):
        def __init__(self):
            super().__init__()
            self.messages = []

        def handle_message(self, message):
            self.messages.append(message)

    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    inbox = Inbox()
    server = Controller(inbox, hostname="127.0.0.1", port=port)
    server.start()
    try:
        conn = {
            "conn_type": "smtp",
            "host": "127.0.0.1",
            "port": port,
            "extra": {
                "disable_ssl": True,
                "disable_tls": True,
                "to": "data-team@example.org",
                "from_email": "povwatch@example.org",
            },
        }
        monkeypatch.setenv("AIRFLOW_CONN_POVWATCH_SMTP", json.dumps(conn))
        work = data_folder(tmp_path, ["2024-03"], monkeypatch)
        # What `airflow dags test povwatch_monthly 2024-04-01` does: logical date 1 April,
        # interval March. Without the month param that is ambiguous: refused.
        # (run_conf explicit: dag.test() runs tasks in this process, where a previous test's
        # conf is left in the DAG's params.)
        dagrun = run_dag.test(
            logical_date=pendulum.datetime(2024, 4, 1, tz=TZ), run_conf=conf(None)
        )
    finally:
        server.stop()
    got = states(dagrun)
    assert dagrun.state == "failed"
    assert got["resolve_month"] == "failed"
    assert {got[t] for t in TASKS - {"resolve_month"}} == {"upstream_failed"}
    ti = dagrun.get_task_instance("resolve_month")
    assert ti.try_number == 1  # no retry for a refusal
    assert not (work / "warehouse.duckdb").exists()

    assert len(inbox.messages) == 1
    mail = inbox.messages[0]
    assert mail["To"] == "data-team@example.org"
    assert "resolve_month failed" in mail["Subject"]
    text = "".join(
        part.get_payload(decode=True).decode("utf-8")
        for part in mail.walk()
        if not part.is_multipart()
    )
    assert "not the start of this run" in text and "resolve_month" in text


def test_a_locked_warehouse_is_retried_and_the_month_completes(run_dag, tmp_path, monkeypatch):
    import threading
    import time

    import duckdb
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    work = data_folder(tmp_path, ["2024-02"], monkeypatch)
    db = work / "warehouse.duckdb"
    release = tmp_path / "release"
    duckdb.connect(str(db)).close()
    # An analyst's tool holds the warehouse open (read-only: that blocks a writer too) until
    # the monthly writer has met the lock and is waiting for its retry.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import duckdb, os, time
                con = duckdb.connect({str(db)!r}, read_only=True)
                print("ready", flush=True)
                while not os.path.exists({str(release)!r}):
                    time.sleep(0.1)
                """
            ),
        ],
        stdout=subprocess.PIPE,
    )

    def release_when_retrying() -> None:
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline and not release.exists():
                try:
                    with create_session() as session:
                        waiting = session.scalars(
                            select(TaskInstance.state).where(
                                TaskInstance.task_id == "compute_month",
                                TaskInstance.state == "up_for_retry",
                            )
                        ).first()
                except Exception:  # SQLite busy while dag.test() writes: look again
                    waiting = None
                if waiting:
                    break
                time.sleep(0.2)
        finally:
            release.touch()

    watcher = threading.Thread(target=release_when_retrying, daemon=True)
    try:
        assert holder.stdout.readline().strip() == b"ready"
        watcher.start()
        dagrun = run_dag.test(run_conf=conf("2024-02"))
    finally:
        release.touch()
        holder.kill()
        holder.wait(timeout=30)
    assert dagrun.state == "success", states(dagrun)
    compute = dagrun.get_task_instance("compute_month")
    assert compute.try_number == 2  # the first try met the lock and was retried
    assert warnings_in(db, "2024-02") == expected("2024-02")
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select outcome, airflow_try_number from run_ledger").fetchall() == [
            ("success", 2)
        ]


def test_a_data_error_fails_at_once_without_retry(run_dag, tmp_path, monkeypatch):
    work = data_folder(tmp_path, ["2024-03"], monkeypatch)
    (work / "landing" / "settlements" / "2024-03" / "broken.csv").write_bytes(b"")
    dagrun = run_dag.test(run_conf=conf("2024-03"))
    compute = dagrun.get_task_instance("compute_month")
    assert compute.state == "failed" and compute.try_number == 1
    assert dagrun.state == "failed"


def test_an_export_without_its_marker_past_its_day_fails_at_once_without_retry(
    run_dag, tmp_path, monkeypatch
):
    """The sensor's retries are for lost pokes only: a missing marker past RUN_DAY + the
    wait (long past for 2024-03) fails its first try and the month's run."""
    data_folder(tmp_path, [], monkeypatch)
    dagrun = run_dag.test(run_conf=conf("2024-03"))
    sensor = dagrun.get_task_instance("wait_for_exports")
    assert sensor.state == "failed" and sensor.try_number == 1
    assert dagrun.get_task_instance("compute_month").state == "upstream_failed"
    assert dagrun.state == "failed"


def test_a_dry_run_computes_and_writes_nothing_then_force_recomputes(
    run_dag, tmp_path, monkeypatch
):
    import duckdb

    work = data_folder(tmp_path, ["2024-03"], monkeypatch)
    db = work / "warehouse.duckdb"
    dry = run_dag.test(run_conf={"month": "2024-03", "dry_run": True, "force": False})
    assert dry.state == "success", states(dry)
    assert not (work / "outbox" / "2024-03").exists()
    assert not (work / "published" / "warehouse" / "2024-03").exists()
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select outcome, warnings from run_ledger").fetchall() == [
            ("dry_run", 11)
        ]
        assert con.execute("select count(*) from mart_warnings").fetchall() == [(0,)]

    real = run_dag.test(run_conf={"month": "2024-03", "dry_run": False, "force": False})
    forced = run_dag.test(run_conf={"month": "2024-03", "dry_run": False, "force": True})
    assert real.state == forced.state == "success"
    with duckdb.connect(str(db), read_only=True) as con:
        outcomes = con.execute(
            "select outcome, airflow_run_id from run_ledger order by started_at"
        ).fetchall()
    assert outcomes == [
        ("dry_run", dry.run_id),
        ("success", real.run_id),
        ("success", forced.run_id),
    ]
    assert warnings_in(db, "2024-03") == expected("2024-03")


def test_a_rerun_of_an_earlier_month_on_changed_exports_names_the_stale_months(
    run_dag, tmp_path, monkeypatch
):
    """As `povwatch run` says on stderr: March, run before a late file landed in February's
    folder, was computed from the folder as it was; February's task says so (log and XCom)."""
    work = data_folder(tmp_path, ["2024-02", "2024-03"], monkeypatch)
    march = run_dag.test(run_conf=conf("2024-03"))
    feb = work / "landing" / "settlements" / "2024-02"
    shutil.copyfile(feb / "setl_202402.csv", feb / "setl_202402_late.csv")
    february = run_dag.test(run_conf=conf("2024-02"))
    assert march.state == february.state == "success", states(february)

    def stale(dagrun) -> list[str]:
        return xcom_value(dagrun, DAG_ID, "compute_month", key="stale")

    assert stale(march) == []
    assert stale(february) == ["2024-03"]
