"""## povwatch_feedback — departments' returned decisions, recorded when they land

Departments return their 台账 (or a CSV) under `<landing>/feedback/<department>/`. Every hour
this DAG looks for data files there (sensor in reschedule mode; a run with nothing to do is
skipped) and records them with `pipeline.run.record_feedback` — the same code a monthly run
uses, so decisions recorded here and decisions applied by `povwatch run` never differ.
Recording is idempotent: the latest month's decisions are re-read whole and replaced.
Rejected rows (no matching warning, a decision outside the list, an impossible date) are kept
on record by the recorder and listed in this task's log, one line each (file, row, column,
reason).

The recorder writes the warehouse, so it takes the one-slot `povwatch_warehouse` pool like
the monthly writer: feedback waits while a month is computed, and the other way round.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import CronTriggerTimetable, dag, task

TZ = os.environ.get("POVWATCH_TZ", "Asia/Shanghai")
POOL = os.environ.get("POVWATCH_POOL", "povwatch_warehouse")
RETRY_DELAY = dt.timedelta(seconds=float(os.environ.get("POVWATCH_RETRY_DELAY_SECONDS", "60")))
POKE_SECONDS = float(os.environ.get("POVWATCH_FEEDBACK_POKE_SECONDS", "300"))

log = logging.getLogger("povwatch")


def _landing() -> Path:
    return Path(os.environ.get("POVWATCH_LANDING") or "data/landing").expanduser().resolve()


@dag(
    dag_id="povwatch_feedback",
    description="Record departments' returned decisions (核实结论) as they land",
    doc_md=__doc__,
    schedule=CronTriggerTimetable("0 * * * *", timezone=TZ),
    start_date=pendulum.datetime(2024, 1, 1, tz=TZ),
    catchup=False,
    max_active_runs=1,
    default_args={
        "owner": "povwatch-data-team",
        "retries": 4,
        "retry_delay": RETRY_DELAY,
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": dt.timedelta(minutes=30),
    },
    tags=["povwatch", "feedback", "warehouse-writer"],
)
def povwatch_feedback() -> None:
    @task.sensor(mode="reschedule", poke_interval=POKE_SECONDS, timeout=50 * 60, soft_fail=True)
    def wait_for_feedback() -> bool:
        """Any data file under <landing>/feedback/ (hidden and temp files aside)."""
        folder = _landing() / "feedback"
        files = (
            [
                p
                for p in folder.rglob("*")
                if p.is_file() and not p.name.startswith((".", "~$", "_"))
            ]
            if folder.is_dir()
            else []
        )
        log.info("%s: %d feedback file(s)", folder, len(files))
        return bool(files)

    @task(pool=POOL)
    def record_feedback(**context) -> dict[str, Any]:
        """Record the feedback files through pipeline.run.record_feedback; list rejected rows."""
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        from pipeline import run
        from pipeline.errors import PovwatchError
        from pipeline.settings import Settings
        from pipeline.store.warehouse import WarehouseBusy

        record = getattr(run, "record_feedback", None)
        if record is None:
            raise AirflowSkipException("pipeline.run.record_feedback is not available yet")
        settings = Settings(
            landing=_landing(),
            db=Path(os.environ.get("POVWATCH_DB") or "data/warehouse.duckdb").resolve(),
            outbox=Path(os.environ.get("POVWATCH_OUTBOX") or "data/outbox").resolve(),
        )
        try:
            result = record(settings)
        except WarehouseBusy:
            raise  # retried with back-off
        except PovwatchError as exc:
            raise AirflowFailException(str(exc)) from None

        def field(name: str, default: Any) -> Any:
            if isinstance(result, dict):
                return result.get(name, default)
            return getattr(result, name, default)

        rejected = [str(r) for r in field("rejected", [])]
        for line in rejected:
            log.warning("rejected: %s", line)
        summary = {
            "files": len(field("files", [])),
            "recorded": int(field("recorded", 0) or 0),
            "rejected": len(rejected),
        }
        log.info(
            "feedback: %(files)d file(s), %(recorded)d decision(s) recorded, %(rejected)d rejected",
            summary,
        )
        return summary

    wait_for_feedback() >> record_feedback()


povwatch_feedback()
