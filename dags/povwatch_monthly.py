"""## povwatch_monthly — one calendar month of settlements per run, wiring only

Every piece of logic lives in `pipeline`; this file says *when* a month runs, *which* month,
with which paths, and in what order the stages go. `pipeline` is imported inside the tasks,
so parsing this file (the scheduler does it every few seconds) touches neither polars nor
DuckDB nor Great Expectations.

**Which month.** The `month` param (`YYYY-MM`) wins. Without it the month is the run's data
interval, which must be exactly one calendar month (Asia/Shanghai) *and* start at the run's
logical date: scheduled runs and `airflow backfill create` runs do; `airflow dags trigger -l
DATE` and a REST trigger with only a logical date do not (Airflow then derives the interval
from the clock or takes DATE as its end), and such a run stops at once saying how to run a
past month: `airflow dags trigger povwatch_monthly -c '{"month": "2024-02"}'`, or the REST API
with `data_interval_start`/`data_interval_end` given.

**When.** The run for a month is created when the month ends, then waits (sensor in
reschedule mode, no worker slot held) until day `POVWATCH_RUN_DAY` (default 6: identity feeds
arrive by the 5th) and for the month's `settlements/YYYY-MM/_SUCCESS` marker. Past that day
plus `POVWATCH_EXPORT_WAIT_DAYS` (default 10) without the marker the run fails with one line.
`catchup=True` from `POVWATCH_START_MONTH` (default 2024-01).

**One writer.** Tasks that write the warehouse (`compute_month`, `deliver`, `close_ledger`) take the
one-slot pool `povwatch_warehouse` (`make airflow` creates it; in production:
`airflow pools set povwatch_warehouse 1 "povwatch DuckDB writer"`), so scheduled, manual and
backfill runs queue instead of colliding on DuckDB's lock. Every task `depends_on_past`, so
months complete in order. County reports read the month's published Parquet, never the
warehouse file, and run in parallel.

**Failures.** A warehouse lock or an I/O error is retried with back-off; a data, policy or
quality error fails at once (no retry) with its one-line reason. A failed task mails the
address in the `povwatch_smtp` connection's extra `to`; a run whose packages are not delivered
by day `POVWATCH_DELIVER_BY_DAY` (default 15) raises a deadline alert to the same address.

**Params** (run switches only): `month`, `policy` (local overlay files), `force` (run a month
already delivered again), `dry_run` (compute and check, write nothing). Paths come from the
worker's environment (`POVWATCH_LANDING`, `POVWATCH_DB`, `POVWATCH_OUTBOX`), made absolute.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import (
    Asset,
    AsyncCallback,
    CronDataIntervalTimetable,
    CronTriggerTimetable,
    DeadlineAlert,
    DeadlineReference,
    Param,
    dag,
    task,
)

DAG_ID = "povwatch_monthly"
TZ = os.environ.get("POVWATCH_TZ", "Asia/Shanghai")
START_MONTH = os.environ.get("POVWATCH_START_MONTH", "2024-01")
RUN_DAY = int(os.environ.get("POVWATCH_RUN_DAY", "6"))
EXPORT_WAIT_DAYS = int(os.environ.get("POVWATCH_EXPORT_WAIT_DAYS", "10"))
DELIVER_BY_DAY = int(os.environ.get("POVWATCH_DELIVER_BY_DAY", "15"))
POOL = os.environ.get("POVWATCH_POOL", "povwatch_warehouse")
RETRIES = int(os.environ.get("POVWATCH_RETRIES", "4"))
RETRY_DELAY = dt.timedelta(seconds=float(os.environ.get("POVWATCH_RETRY_DELAY_SECONDS", "60")))
POKE_SECONDS = float(os.environ.get("POVWATCH_POKE_SECONDS", "1800"))
SMTP_CONN = "povwatch_smtp"

log = logging.getLogger("povwatch")


def _path(env: str, default: str) -> Path:
    """A path from the worker's environment, absolute (relative ones against its cwd)."""
    return Path(os.environ.get(env) or default).expanduser().resolve()


# The month's deliverables, and the month's marts as Parquet (both on shared storage in a
# scaled-out deployment). Named, not addressed by path: a path read at parse time would make a
# new asset whenever a deployment moves its folders. Events carry the month, the povwatch run
# id and the folder in their extra.
OUTBOX = Asset(name="povwatch_outbox")
PUBLISHED = Asset(name="povwatch_published")

_failure_mail = None
_deadline = None
if os.environ.get("POVWATCH_ALERTS", "on") != "off":
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    _mail = {
        "smtp_conn_id": SMTP_CONN,
        "to": "{{ conn.povwatch_smtp.extra_dejson.get('to', '') }}",
        "from_email": "{{ conn.povwatch_smtp.extra_dejson.get('from_email', 'povwatch@localhost') }}",
    }
    _failure_mail = SmtpNotifier(
        **_mail,
        subject="[povwatch] {{ dag.dag_id }} {{ ti.task_id }} failed ({{ run_id }})",
        html_content=(
            "<p>{{ dag.dag_id }} / {{ run_id }} / {{ ti.task_id }} try {{ ti.try_number }} "
            "failed:</p><pre>{{ exception }}</pre>"
        ),
    )
    # Counted from when the run is queued: a scheduled run is queued as its month ends (the
    # 1st, 00:00), so the alert falls at the end of day DELIVER_BY_DAY; a backfill of past
    # months gets the same number of days from its start instead of alerting at once.
    _deadline = DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=dt.timedelta(days=DELIVER_BY_DAY),
        callback=AsyncCallback(
            SmtpNotifier,
            kwargs={
                **_mail,
                "subject": f"[povwatch] {DAG_ID}: packages not delivered by day {DELIVER_BY_DAY}",
                "html_content": "<p>{{ dag_run.run_id }} has not delivered its packages.</p>",
            },
        ),
    )


def _settings(params: dict[str, Any]):
    from pipeline.settings import Settings

    policy = tuple(Path(p).expanduser().resolve() for p in params.get("policy") or ())
    settings = Settings(
        landing=_path("POVWATCH_LANDING", "data/landing"),
        db=_path("POVWATCH_DB", "data/warehouse.duckdb"),
        outbox=_path("POVWATCH_OUTBOX", "data/outbox"),
        policy_files=policy,
    )
    # Encryption at rest: the key may live in the povwatch_warehouse connection's password.
    if not os.environ.get("POVWATCH_DB_KEY"):
        from airflow.sdk import Connection

        try:
            key = Connection.get("povwatch_warehouse").password
        except Exception:  # no such connection: the warehouse is not encrypted
            key = None
        if key:
            os.environ["POVWATCH_DB_KEY"] = key
    return settings


def _call(fn, *args, **kwargs):
    """Run a pipeline stage: lock/IO errors are retried, anything else fails at once."""
    import duckdb
    from airflow.sdk.exceptions import AirflowFailException

    from pipeline.errors import PovwatchError
    from pipeline.store.warehouse import WarehouseBusy

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    try:
        return fn(*args, **kwargs)
    except WarehouseBusy as exc:
        log.warning("warehouse busy, will retry: %s", exc)
        raise
    except PovwatchError as exc:  # data, policy, quality: retrying changes nothing
        raise AirflowFailException(str(exc)) from None
    except (OSError, duckdb.IOException):
        raise
    except Exception as exc:
        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc


def month_of_run(
    params: dict[str, Any],
    logical_date: dt.datetime | None,
    data_interval_start: dt.datetime | None,
    data_interval_end: dt.datetime | None,
) -> str:
    """The one month this run processes, or AirflowFailException saying why it is ambiguous."""
    from airflow.sdk.exceptions import AirflowFailException

    how = (
        f"to run a past month, trigger it with the month param (airflow dags trigger {DAG_ID} "
        '-c \'{"month": "YYYY-MM"}\'), through the REST API with data_interval_start and '
        "data_interval_end set to the month's first day and the next month's first day "
        f"({TZ}) and logical_date = data_interval_start, or with airflow backfill create"
    )
    wanted = params.get("month")
    if wanted:
        import re

        if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", str(wanted)):
            raise AirflowFailException(f"month param {wanted!r} is not a month (YYYY-MM)")
        log.info("month %s from the month param", wanted)
        return str(wanted)
    if data_interval_start is None or data_interval_end is None:
        raise AirflowFailException(f"this run has no data interval; {how}")
    start = pendulum.instance(data_interval_start).in_timezone(TZ)
    end = pendulum.instance(data_interval_end).in_timezone(TZ)
    month = f"{start.year:04d}-{start.month:02d}"
    if start != start.start_of("month") or end != start.add(months=1):
        raise AirflowFailException(
            f"data interval {start.isoformat()} .. {end.isoformat()} is not one calendar "
            f"month in {TZ}; {how}"
        )
    if logical_date is not None and pendulum.instance(logical_date) != start:
        raise AirflowFailException(
            f"logical date {pendulum.instance(logical_date).in_timezone(TZ).isoformat()} is "
            f"not the start of this run's data interval {start.isoformat()} .. "
            f"{end.isoformat()} ({month}): Airflow took the interval from the clock or from "
            f"the logical date as its end, so the month is ambiguous; {how}"
        )
    log.info("month %s from the data interval", month)
    return month


def _origin(context: dict[str, Any]):
    from pipeline.run import Origin

    ti = context["ti"]
    return Origin(dag_id=ti.dag_id, dag_run_id=ti.run_id, try_number=ti.try_number)


@dag(
    dag_id=DAG_ID,
    description="Monthly medical-cost poverty early warnings (因病返贫/因病致贫 双预警)",
    doc_md=__doc__,
    # Each run's data interval is one calendar month, created when the month has ended.
    # (schedule="@monthly" would give a zero-width interval in Airflow 3.)
    schedule=CronDataIntervalTimetable("0 0 1 * *", timezone=TZ),
    start_date=pendulum.from_format(START_MONTH, "YYYY-MM", tz=TZ),
    catchup=True,
    max_active_runs=1,
    default_args={
        "owner": "povwatch-data-team",
        "depends_on_past": True,
        "retries": RETRIES,
        "retry_delay": RETRY_DELAY,
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": dt.timedelta(minutes=30),
        "on_failure_callback": _failure_mail,
    },
    deadline=_deadline,
    params={
        "month": Param(
            None,
            type=["null", "string"],
            description="YYYY-MM: process this month (overrides the data interval)",
        ),
        "policy": Param(
            [],
            type="array",
            items={"type": "string"},
            description="local policy overlay files (absolute, or relative to the worker's cwd)",
        ),
        "force": Param(False, type="boolean", description="run a month already delivered again"),
        "dry_run": Param(False, type="boolean", description="compute and check; write nothing"),
    },
    tags=["povwatch", "monthly", "warehouse-writer"],
)
def povwatch_monthly() -> None:
    @task
    def resolve_month(
        params: dict[str, Any] | None = None,
        logical_date: dt.datetime | None = None,
        data_interval_start: dt.datetime | None = None,
        data_interval_end: dt.datetime | None = None,
    ) -> str:
        """The month of this run (see the DAG docs)."""
        return month_of_run(params or {}, logical_date, data_interval_start, data_interval_end)

    @task.sensor(
        mode="reschedule",
        poke_interval=POKE_SECONDS,
        timeout=dt.timedelta(days=31 + RUN_DAY + EXPORT_WAIT_DAYS).total_seconds(),
        # A missing marker past its day (AirflowFailException) and the sensor's timeout are
        # never retried. A retry covers a poke lost to the scheduler: when a poke's exit
        # reaches the scheduler after the next poke is queued, Airflow fails the sensor as
        # "changed externally" (apache/airflow#71172; seen in tests/dags on a loaded machine).
        retries=2,
    )
    def wait_for_exports(month: str):
        """Until day RUN_DAY after the month and its settlements/YYYY-MM/_SUCCESS marker."""
        from airflow.sdk import PokeReturnValue
        from airflow.sdk.exceptions import AirflowFailException

        first = pendulum.from_format(month, "YYYY-MM", tz=TZ)
        not_before = first.add(months=1, days=RUN_DAY - 1)
        give_up = not_before.add(days=EXPORT_WAIT_DAYS)
        marker = _path("POVWATCH_LANDING", "data/landing") / "settlements" / month / "_SUCCESS"
        now = pendulum.now(TZ)
        if now < not_before:
            log.info("%s: waiting until %s (identity feeds arrive by then)", month, not_before)
            return PokeReturnValue(is_done=False)
        if marker.is_file():
            log.info("%s: export complete (%s)", month, marker)
            return PokeReturnValue(is_done=True, xcom_value=str(marker))
        if now >= give_up:
            raise AirflowFailException(
                f"{marker}: missing — the {month} export is not complete (no _SUCCESS by "
                f"{give_up:%Y-%m-%d}); ask the platform's extract job to finish it, then clear "
                "this task"
            )
        log.info("%s: waiting for %s (until %s)", month, marker, give_up)
        return PokeReturnValue(is_done=False)

    @task(pool=POOL, multiple_outputs=True, outlets=[PUBLISHED])
    def compute_month(month: str, params: dict[str, Any] | None = None, **context):
        """Reference → ingest → staging → quality gates → warnings → ledger, one transaction;
        then the month's marts published as Parquet. The warehouse's only writer."""
        from pipeline import run
        from pipeline.months import Month
        from pipeline.store.ledger import last_success, stale_note, stale_of

        params = params or {}
        settings = _settings(params)
        log.info(
            "landing %s, warehouse %s, outbox %s", settings.landing, settings.db, settings.outbox
        )
        done = _call(last_success, settings.db, Month.parse(month))
        if done and not params.get("force"):
            log.info("%s was delivered by run %s; set force to run it again", month, done)
            return {
                "month": month,
                "run_id": done,
                "outcome": "skipped",
                "counties": [],
                "stale": [],
            }
        result = _call(
            run.compute_month,
            month,
            settings,
            log.info,
            origin=_origin(context),
            dry_run=bool(params.get("dry_run")),
        )
        if result.outcome == "publishing" or result.outcome == "success":
            context["outlet_events"][PUBLISHED].extra = {
                "month": month,
                "run_id": result.run_id,
                "path": str(settings.db.parent / "published" / settings.db.stem / month),
            }
        # Later months already run were computed from what the folders held before this run
        # re-read them (a late or corrected file): said in the task log, as `povwatch run` does.
        stale = (
            [] if result.outcome == "dry_run" else _call(stale_of, settings.db, Month.parse(month))
        )
        if stale:
            log.warning("%s", stale_note(stale))
        return {
            "month": month,
            "run_id": result.run_id,
            "outcome": "dry_run" if result.outcome == "dry_run" else "publishing",
            "warnings": result.warnings,
            "counties": result.counties,
            "stale": stale,
        }

    @task
    def counties_to_report(counties: list[str]) -> list[str]:
        """The counties with warnings this month: one report task each."""
        log.info("%d counties: %s", len(counties), ", ".join(counties))
        return counties

    @task(max_active_tis_per_dagrun=2)
    def write_county_reports(
        county: str, month: str, povwatch_run: str, params: dict[str, Any] | None = None
    ) -> list[str]:
        """One county's 台账 (one per department) from the month's published Parquet."""
        from pipeline import run

        paths = _call(
            run.write_county_reports, month, county, _settings(params or {}), povwatch_run
        )
        log.info("%s %s: %d 台账 written", month, county, len(paths))
        return paths

    @task(trigger_rule="none_failed", outlets=[OUTBOX])
    def write_summary(
        month: str, povwatch_run: str, outcome: str, params: dict[str, Any] | None = None, **context
    ) -> list[str]:
        """The city summary and the manifest, once every county's 台账 is in the outbox."""
        from pipeline import run

        if outcome != "publishing":
            log.info("%s: %s, nothing to write", month, outcome)
            return []
        paths = _call(run.write_summary, month, _settings(params or {}), povwatch_run)
        context["outlet_events"][OUTBOX].extra = {
            "month": month,
            "run_id": povwatch_run,
            "path": str(_path("POVWATCH_OUTBOX", "data/outbox") / month),
        }
        log.info("%s: %d files in the outbox", month, len(paths))
        return paths

    @task(pool=POOL)
    def deliver(
        month: str, povwatch_run: str, outcome: str, params: dict[str, Any] | None = None
    ) -> list[dict]:
        """The packages to their destinations (POVWATCH_DELIVERY); the delivery log is in the
        warehouse, so this task holds the writer pool."""
        from pipeline import run

        if outcome != "publishing":
            return []
        return _call(run.deliver, month, _settings(params or {}), povwatch_run, log.info)

    @task(pool=POOL)
    def close_ledger(
        month: str, povwatch_run: str, outcome: str, params: dict[str, Any] | None = None
    ) -> str:
        """The povwatch run is `success` once its packages are delivered."""
        from pipeline import run

        if outcome != "publishing":
            return outcome
        _call(run.close_ledger, _settings(params or {}), povwatch_run)
        log.info("%s: run %s success", month, povwatch_run)
        return "success"

    month = resolve_month()
    ready = wait_for_exports(month)
    computed = compute_month(month)
    ready >> computed
    counties = write_county_reports.partial(month=month, povwatch_run=computed["run_id"]).expand(
        county=counties_to_report(computed["counties"])
    )
    # A skipped (already delivered) or dry run has no counties; deliver and close do nothing.
    run = {
        "month": computed["month"],
        "povwatch_run": computed["run_id"],
        "outcome": computed["outcome"],
    }
    summary = write_summary(**run)
    counties >> summary
    summary >> deliver(**run) >> close_ledger(**run)


povwatch_monthly()


# --------------------------------------------------------------------------- povwatch_ingest
# In this file (not a file of its own) so that its task calls the pipeline exactly as the
# monthly tasks do (`_settings`, `_call`): DAG files cannot import each other.

INGEST_DOC = """## povwatch_ingest — settlement exports read and staged as they land

A month's exports land over days (one file per district, a corrected file later). Every hour
this DAG reads what landed or changed since its last read — the latest export folder and any
earlier one a late file went into — with `pipeline.run.stage_month`, the code behind
`povwatch ingest` and the first stages of `povwatch run`: only the files added or changed
are read, a withdrawn file's rows are dropped, and each file is reconciled (read = loaded +
duplicate + skipped + quarantined, one log line per file). When the month's
`povwatch_monthly` run comes, its exports are staged already and it goes straight to the
gates and warnings. An hour with nothing new reads nothing (the files' size and mtime, then
their sha256); a run with no export folder at all is skipped.

It writes the warehouse, so it takes the one-slot `povwatch_warehouse` pool like the monthly
writer and the feedback recorder. An unusable file fails the task with its one-line reason
(file, row, column), without retries: the next hour reads it again once it is replaced.
"""
_EXPORT_FOLDER = re.compile(r"^\d{4}-\d{2}$")
# povwatch_ingest and povwatch_feedback: hourly warehouse writers, a busy warehouse retried
# with back-off (a data error fails at once: _call)
HOURLY_WRITER_ARGS = {
    "owner": "povwatch-data-team",
    "retries": RETRIES,
    "retry_delay": RETRY_DELAY,
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": dt.timedelta(minutes=30),
}


@dag(
    dag_id="povwatch_ingest",
    description="Read and stage settlement exports as they land (povwatch ingest)",
    doc_md=INGEST_DOC,
    schedule=CronTriggerTimetable("30 * * * *", timezone=TZ),
    start_date=pendulum.datetime(2024, 1, 1, tz=TZ),
    catchup=False,
    max_active_runs=1,
    default_args=HOURLY_WRITER_ARGS,
    tags=["povwatch", "ingest", "warehouse-writer"],
)
def povwatch_ingest() -> None:
    @task(pool=POOL)
    def ingest_landed() -> dict[str, Any]:
        """Stage the export folders up to the latest one (pipeline.run.stage_month)."""
        from airflow.sdk.exceptions import AirflowSkipException

        from pipeline.months import Month
        from pipeline.run import stage_month

        root = _path("POVWATCH_LANDING", "data/landing") / "settlements"
        months = sorted(
            d.name
            for d in (root.iterdir() if root.is_dir() else ())
            if _EXPORT_FOLDER.match(d.name)
        )
        if not months:
            raise AirflowSkipException(f"{root}: no export folder (YYYY-MM) yet")
        staged = _call(stage_month, Month.parse(months[-1]), _settings({}), progress=log.info)
        summary = staged.summary()
        log.info(
            "staged up to %(month)s: %(files)d file(s), %(rows_read)d rows read, %(loaded)d "
            "loaded; export months read now: %(months_read)s",
            summary,
        )
        return summary

    ingest_landed()


povwatch_ingest()


# ------------------------------------------------------------------------- povwatch_feedback
# In this file for the same reason as povwatch_ingest: its task opens the warehouse with the
# monthly tasks' settings (paths, the key from the povwatch_warehouse connection) and errors.

FEEDBACK_DOC = """## povwatch_feedback — departments' returned decisions, recorded when they land

Departments return their 台账 (or a CSV) under `<landing>/feedback/<department>/`, or answer
in the delivered 台账 in the outbox. Every hour this DAG looks for either — a data file there
or under `<outbox>/received/`, or a delivered file whose sha256 is no longer its manifest's
(`pipeline.run.feedback_pending`; sensor in reschedule mode, every
`POVWATCH_FEEDBACK_POKE_SECONDS` (300) for `POVWATCH_FEEDBACK_WAIT_SECONDS` (3000); a run with
nothing to do is then skipped) — and records them with `pipeline.run.record_feedback`, the
same code a monthly run uses, so decisions recorded here and decisions applied by `povwatch
run` never differ.
Recording is idempotent: the latest month's decisions are re-read whole and replaced.
Rejected rows (no matching warning, a decision outside the list, an impossible date) are kept
on record by the recorder and listed in this task's log, one line each (file, row, column,
reason).

The recorder writes the warehouse, so it takes the one-slot `povwatch_warehouse` pool like
the monthly writer: feedback waits while a month is computed, and the other way round. It
opens the warehouse as the monthly tasks do (an encrypted one with the key in the
`povwatch_warehouse` connection's password); a busy warehouse is retried, a data error
(no month has run yet, a wrong key) fails at once with its one-line reason.
"""
FEEDBACK_POKE_SECONDS = float(os.environ.get("POVWATCH_FEEDBACK_POKE_SECONDS", "300"))
# how long an hourly run looks for returned files before it is skipped
FEEDBACK_WAIT_SECONDS = float(os.environ.get("POVWATCH_FEEDBACK_WAIT_SECONDS", str(50 * 60)))


@dag(
    dag_id="povwatch_feedback",
    description="Record departments' returned decisions (核实结论) as they land",
    doc_md=FEEDBACK_DOC,
    schedule=CronTriggerTimetable("0 * * * *", timezone=TZ),
    start_date=pendulum.datetime(2024, 1, 1, tz=TZ),
    catchup=False,
    max_active_runs=1,
    default_args=HOURLY_WRITER_ARGS,
    tags=["povwatch", "feedback", "warehouse-writer"],
)
def povwatch_feedback() -> None:
    @task.sensor(
        mode="reschedule",
        poke_interval=FEEDBACK_POKE_SECONDS,
        timeout=FEEDBACK_WAIT_SECONDS,
        soft_fail=True,
    )
    def wait_for_feedback() -> bool:
        """What the recorder would read (pipeline.run.feedback_pending): files under
        <landing>/feedback/ and <outbox>/received/, and delivered 台账 edited in place."""
        from pipeline.run import feedback_pending

        files = feedback_pending(
            _path("POVWATCH_LANDING", "data/landing"), _path("POVWATCH_OUTBOX", "data/outbox")
        )
        log.info("%d feedback file(s) to record%s", len(files), "".join(f"\n  {f}" for f in files))
        return bool(files)

    @task(pool=POOL)
    def record_feedback() -> dict[str, Any]:
        """Record the feedback files (pipeline.run.record_feedback); list rejected rows."""
        from pipeline.run import record_feedback as record

        result = _call(record, _settings({}), progress=log.info)
        for line in result["rejected"]:
            log.warning("rejected: %s", line)
        summary = {
            "month": result["month"],
            "files": len(result["files"]),
            "recorded": result["recorded"],
            "rejected": len(result["rejected"]),
        }
        log.info(
            "feedback for %(month)s: %(files)d file(s), %(recorded)d decision(s) recorded, "
            "%(rejected)d rejected",
            summary,
        )
        return summary

    wait_for_feedback() >> record_feedback()


povwatch_feedback()
