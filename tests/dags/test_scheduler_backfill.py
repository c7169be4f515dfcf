"""A real Airflow (``airflow standalone``: scheduler, LocalExecutor, API server, DAG processor,
triggerer; SQLite metadata in a temp AIRFLOW_HOME) runs the three DAGs as a data team does:

1. ``airflow backfill create`` over January and February with the default concurrency, and
   the DAG unpaused: the one-slot pool and ``depends_on_past`` must make it serial and in
   order, and the scheduler's own run for March (catch-up) waits for March's export;
   meanwhile an auditor's second backfill re-runs February with force;
2. March's files land: ``povwatch_ingest``, unpaused, stages them at once (its latest hourly
   run); then the extract job's ``_SUCCESS`` marker: March's scheduled run goes on from the
   staged rows to its warnings;
3. a department returns a decision: ``povwatch_feedback``, unpaused, records it.

The three months must equal ``povwatch backfill`` byte for byte (warnings and outbox).
This is the slow one (~2 min on 2 cores).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import duckdb
import pytest

from pipeline.cli import warnings_csv
from pipeline.months import Month

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "jining-hebei-2024"
MONTHS = ["2024-01", "2024-02", "2024-03"]
BIN = Path(sys.executable).parent
DAG_ID = "povwatch_monthly"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _data(root: Path) -> Path:
    """The fixture's landing up to March (the exports after it have not landed yet)."""
    shutil.copytree(FIXTURE / "landing", root / "landing")
    for folder in (root / "landing" / "settlements").iterdir():
        if folder.name > MONTHS[-1]:
            shutil.rmtree(folder)
    for m in MONTHS:
        (root / "landing" / "settlements" / m / "_SUCCESS").touch()
    return root


def _rows(db: Path, sql: str, params=()) -> list[tuple]:
    con = sqlite3.connect(db, timeout=30)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def _outbox(root: Path) -> dict[str, bytes]:
    """Every file's bytes; a manifest names the run that wrote it, so that is left out."""

    def content(p: Path) -> bytes:
        if p.name != "manifest.json":
            return p.read_bytes()
        doc = json.loads(p.read_bytes())
        doc.pop("run_id", None)
        return json.dumps(doc, sort_keys=True).encode()

    return {
        p.relative_to(root).as_posix(): content(p) for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture
def standalone(tmp_path):
    """An `airflow standalone` on a free port; yields (env, metadata db, api url)."""
    home = tmp_path / "airflow"
    home.mkdir()
    work = _data(tmp_path / "airflow-data")
    # March has not landed yet: the test moves it in after January and February are done,
    # without its marker (the extract job writes that last, after the hourly ingest read it)
    shutil.move(work / "landing" / "settlements" / MONTHS[-1], tmp_path / MONTHS[-1])
    (tmp_path / MONTHS[-1] / "_SUCCESS").unlink()
    port = _free_port()
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{port}/execution/",
        "POVWATCH_LANDING": str(work / "landing"),
        "POVWATCH_DB": str(work / "warehouse.duckdb"),
        "POVWATCH_OUTBOX": str(work / "outbox"),
        "POVWATCH_QUALITY": "off",
        # (a reschedule every 10 s, not 5: on a loaded machine the scheduler can take longer
        # than 5 s to hear a poke ended, and Airflow then fails the sensor, apache/airflow#71172;
        # the sensor's retries cover that, quickly here)
        "POVWATCH_POKE_SECONDS": "10",
        "POVWATCH_RETRY_DELAY_SECONDS": "2",
        # March's scheduled run waits for its marker (in 2024 it would have given up by now)
        "POVWATCH_EXPORT_WAIT_DAYS": "100000",
        "POVWATCH_FEEDBACK_POKE_SECONDS": "3",
        "POVWATCH_FEEDBACK_WAIT_SECONDS": "600",
    }
    for name in list(env):
        if name.startswith("AIRFLOW__") and name.endswith(("SQL_ALCHEMY_CONN", "_CONN_ASYNC")):
            del env[name]
    # SQLite waits 5 s for a lock by default; on a loaded 2-core machine the scheduler and DAG
    # processor hold it longer and `backfill create` failed with "database is locked" (CI, stop
    # 14). `make airflow` sets the same wait.
    env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{home}/airflow.db?timeout=60"
    log = (tmp_path / "standalone.log").open("wb")
    proc = subprocess.Popen(
        [str(BIN / "airflow"), "standalone"],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    global T0
    T0 = time.monotonic()
    url = f"http://localhost:{port}"
    meta = home / "airflow.db"
    try:
        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None, (tmp_path / "standalone.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "airflow standalone did not come up"
            try:
                with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=5) as r:
                    health = json.load(r)
                ready = health["scheduler"]["status"] == "healthy" and _rows(
                    meta, "select count(*) from serialized_dag where dag_id = ?", [DAG_ID]
                ) == [(1,)]
            except (OSError, sqlite3.Error, KeyError):
                ready = False
            if ready:
                break
            time.sleep(2)
        yield env, meta, work, url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=15)
        # LocalExecutor workers ignore SIGTERM while idle: make sure nothing outlives the test.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)
        log.close()


T0 = time.monotonic()


def _mark(what: str) -> None:
    print(f"TIMING {time.monotonic() - T0:6.1f} s {what}", flush=True)


def _api(url: str, method: str, path: str, body: dict, token: str | None = None) -> dict:
    request = urllib.request.Request(
        url + path,
        data=json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json"}
        | ({"Authorization": f"Bearer {token}"} if token else {}),
    )
    with urllib.request.urlopen(request, timeout=60) as r:
        return json.load(r)


def _airflow(env, *args: str, busy: tuple[str, ...] = (), tries: int = 3) -> str:
    """An Airflow CLI call as a data team makes it. SQLite is one writer at a time: a call
    that still finds the metadata locked after its 60 s wait is made again (its transaction was
    rolled back); so is one whose output names a ``busy`` condition, after 3 s; at most
    ``tries`` times. A loaded 2-core machine needs minutes for the CLI."""
    for attempt in range(tries):
        out = subprocess.run(
            [str(BIN / "airflow"), *args], env=env, capture_output=True, text=True, timeout=420
        )
        said = out.stdout + out.stderr
        why = next((b for b in ("database is locked", *busy) if b in said), None)
        if out.returncode == 0 or why is None:
            break
        print(f"airflow {args[0]}: {why} (attempt {attempt + 1}), again", flush=True)
        if why in busy:
            time.sleep(3)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return out.stdout


def _wait_for_runs(meta: Path, where: str, params, count: int) -> list[tuple[str, str]]:
    """(run_id, state) of the DAG runs matching ``where``, once ``count`` of them have ended."""
    deadline = time.monotonic() + 600
    while True:
        runs = _rows(meta, f"select run_id, state from dag_run where {where} order by id", params)
        if len(runs) >= count and all(state in ("success", "failed") for _, state in runs):
            return runs
        assert time.monotonic() < deadline, runs
        time.sleep(3)


def _why(env: dict, meta: Path, run_id: str) -> str:
    """For an assertion message: the run's task states and the end of its failed tasks' logs."""
    tis = _rows(meta, "select task_id, state from task_instance where run_id = ?", [run_id])
    logs = Path(env["AIRFLOW_HOME"]) / "logs"
    tails = [
        f"--- {f.relative_to(logs)}\n{f.read_text(errors='replace')[-1500:]}"
        for f in sorted(logs.rglob("*.log"))
        if f"run_id={run_id}" in str(f)
        and any(f"task_id={t}" in str(f) and st == "failed" for t, st in tis)
    ]
    return f"{run_id}: {tis}\n" + "\n".join(tails)


def _backfill(env: dict, first: str, last: str, reprocess: str, *extra: str, **kw) -> None:
    """`airflow backfill create` of the monthly DAG over the months first..last (Beijing
    time), with a reprocess behaviour; ``extra`` and ``kw`` go on to :func:`_airflow`."""
    _airflow(
        env,
        "backfill",
        "create",
        "--dag-id",
        DAG_ID,
        "--from-date",
        f"{first}-01T00:00:00+08:00",
        "--to-date",
        f"{last}-01T00:00:00+08:00",
        "--reprocess-behavior",
        reprocess,
        *extra,
        **kw,
    )


def _unpause(url: str, auth: str, dag_id: str) -> None:
    """Unpaused, an hourly DAG without catch-up runs at once for its latest hour."""
    _api(url, "PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False}, auth)


def _xcom(url: str, auth: str, dag_id: str, run_id: str, task_id: str):
    request = urllib.request.Request(
        f"{url}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
        "/xcomEntries/return_value",
        headers={"Authorization": f"Bearer {auth}"},
    )
    with urllib.request.urlopen(request, timeout=60) as r:
        return json.load(r)["value"]


@pytest.mark.slow
def test_backfill_then_a_landed_month_staged_run_and_answered_equals_povwatch_backfill(
    standalone, tmp_path
):
    env, meta, work, url = standalone
    _mark("standalone up")
    # The pool, as `make airflow` creates it (through the REST API here: each CLI call costs
    # seconds of start-up on a busy machine).
    password = json.loads(
        (Path(env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated").read_text()
    )["admin"]
    token = _api(url, "POST", "/auth/token", {"username": "admin", "password": password})
    auth = token["access_token"]
    _api(url, "POST", "/api/v2/pools", {"name": "povwatch_warehouse", "slots": 1}, auth)

    # 1. Backfill January and February. Default concurrency (up to 10 runs at once): the pool
    # and depends_on_past keep it serial. (Airflow requires a reprocess behaviour for a DAG
    # whose tasks depend on the past.)
    _backfill(env, "2024-01", "2024-02", "failed")
    _api(url, "PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False}, auth)
    _mark("backfill created, DAG unpaused")
    runs = _wait_for_runs(meta, "dag_id = ? and run_type = 'backfill'", [DAG_ID], 2)
    assert [state for _, state in runs] == ["success"] * 2, runs
    backfill_ids = [run_id for run_id, _ in runs]
    _mark("backfill done")

    # An auditor re-runs February while March's scheduled run waits for its export: a backfill
    # with force is not held by the active scheduled run (a manual trigger would queue behind
    # it: max_active_runs=1; README). Airflow allows one running backfill per DAG and marks
    # the first one complete a few seconds after its runs end: asked again until it is.
    _backfill(
        env,
        "2024-02",
        "2024-02",
        "completed",
        "--dag-run-conf",
        '{"force": true}',
        busy=("AlreadyRunningBackfill",),
        tries=40,
    )
    deadline = time.monotonic() + 300
    while _rows(
        meta,
        "select try_number, state from task_instance where run_id = ? and task_id = ?",
        [backfill_ids[1], "close_ledger"],
    ) != [(2, "success")]:
        assert time.monotonic() < deadline, _why(env, meta, backfill_ids[1])
        time.sleep(3)
    _mark("February run again")

    # 2. March's files land; the hourly ingest DAG, unpaused, runs for its latest hour and
    # stages them, before the extract job has written its marker
    landing = work / "landing" / "settlements"
    shutil.move(tmp_path / MONTHS[-1], landing / MONTHS[-1])
    _unpause(url, auth, "povwatch_ingest")
    ((ingest_id, state),) = _wait_for_runs(meta, "dag_id = ?", ["povwatch_ingest"], 1)
    assert state == "success", _why(env, meta, ingest_id)
    staged = _xcom(url, auth, "povwatch_ingest", ingest_id, "ingest_landed")
    assert staged["month"] == MONTHS[-1] and staged["months_read"] == [MONTHS[-1]], staged
    _mark("ingest done")

    # The marker: March's scheduled run (waiting since the DAG was unpaused) goes on
    (landing / MONTHS[-1] / "_SUCCESS").touch()
    where = "dag_id = ? and run_type = 'scheduled' and logical_date < '2024-03-01'"
    ((march_id, state),) = _wait_for_runs(meta, where, [DAG_ID], 1)
    assert state == "success", _why(env, meta, march_id)
    _api(url, "PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": True}, auth)  # April: not here
    _mark("March done")

    # Serial and in order: the warehouse writers never overlapped, and each month's
    # computation started after the previous month's had finished.
    run_ids = [*backfill_ids, march_id]
    writers = _rows(
        meta,
        """
        select run_id, task_id, start_date, end_date from task_instance
        where task_id in ('compute_month', 'deliver', 'close_ledger', 'ingest_landed')
          and run_id in (?, ?, ?, ?)
        order by start_date
        """,
        [*run_ids, ingest_id],
    )
    assert len(writers) == 10
    for (_, _, _, end), (_, _, start, _) in zip(writers, writers[1:], strict=False):
        assert end <= start, writers
    computes = [r for r, t, _, _ in writers if t == "compute_month"]
    assert computes == run_ids
    # March's computation found its exports staged: nothing of the month was read again
    marches = [t for r, t, _, _ in writers if r in (ingest_id, march_id)]
    assert marches == ["ingest_landed", "compute_month", "deliver", "close_ledger"]

    # The povwatch ledger names each Airflow run.
    with duckdb.connect(str(work / "warehouse.duckdb"), read_only=True) as con:
        ledger = con.execute(
            "select month, outcome, airflow_dag_id, airflow_run_id, airflow_try_number "
            "from run_ledger order by month, started_at"
        ).fetchall()
        read = con.execute(
            "select export_month, count(*) from ingested_files group by 1 order by 1"
        ).fetchall()
    assert ledger == [
        ("2024-01", "success", DAG_ID, run_ids[0], 1),
        ("2024-02", "success", DAG_ID, run_ids[1], 1),
        ("2024-02", "success", DAG_ID, run_ids[1], 2),  # the auditor's re-run
        ("2024-03", "success", DAG_ID, run_ids[2], 1),
    ]
    assert read == [(m, 1) for m in MONTHS]
    print("\nLEDGER", *ledger, sep="\n")

    # 3. 乡村振兴 returns a decision on March's new relapse warning (and one row for a warning
    # that does not exist); the hourly feedback DAG, unpaused, records it
    folder = work / "landing" / "feedback" / "rural_revitalization"
    folder.mkdir(parents=True)
    (folder / "back.csv").write_text(
        "warning_id,decision,decided_on,note\n"
        "2024-R-P1300000876,already_assisted,2024-03-29,\n"
        "2024-R-P9999999999,dibao,2024-03-10,\n",
        encoding="utf-8",
    )
    _unpause(url, auth, "povwatch_feedback")
    ((feedback_id, state),) = _wait_for_runs(meta, "dag_id = ?", ["povwatch_feedback"], 1)
    assert state == "success", _why(env, meta, feedback_id)
    assert _xcom(url, auth, "povwatch_feedback", feedback_id, "record_feedback") == {
        "month": MONTHS[-1],
        "files": 1,
        "recorded": 1,
        "rejected": 1,
    }
    with duckdb.connect(str(work / "warehouse.duckdb"), read_only=True) as con:
        decided = con.execute(
            "select warning_id, decision, decided_on::varchar from feedback_decisions"
        ).fetchall()
    assert decided == [("2024-R-P1300000876", "already_assisted", "2024-03-29")]
    _mark("feedback recorded")

    # Identical to `povwatch backfill` over the same months.
    cli = _data(tmp_path / "cli")
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "backfill", "--from", MONTHS[0], "--to", MONTHS[-1]]
        + ["--landing", str(cli / "landing"), "--db", str(cli / "warehouse.duckdb")]
        + ["--outbox", str(cli / "outbox"), "--quiet"],
        env={**os.environ, "POVWATCH_QUALITY": "off"},
        capture_output=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr.decode()
    _mark("povwatch backfill done")
    for m in MONTHS:
        assert warnings_csv(work / "warehouse.duckdb", Month.parse(m)) == warnings_csv(
            cli / "warehouse.duckdb", Month.parse(m)
        )
    assert _outbox(work / "outbox") == _outbox(cli / "outbox")
    print(
        "\nRUNS",
        *_rows(meta, "select dag_id, run_id, run_type, state from dag_run order by id"),
        sep="\n",
    )
