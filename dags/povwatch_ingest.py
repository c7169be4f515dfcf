"""## povwatch_ingest — settlement exports read and staged as they land

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

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import CronTriggerTimetable, dag, task

TZ = os.environ.get("POVWATCH_TZ", "Asia/Shanghai")
POOL = os.environ.get("POVWATCH_POOL", "povwatch_warehouse")
RETRY_DELAY = dt.timedelta(seconds=float(os.environ.get("POVWATCH_RETRY_DELAY_SECONDS", "60")))

log = logging.getLogger("povwatch")


def _path(env: str, default: str) -> Path:
    return Path(os.environ.get(env) or default).expanduser().resolve()


@dag(
    dag_id="povwatch_ingest",
    description="Read and stage settlement exports as they land (povwatch ingest)",
    doc_md=__doc__,
    schedule=CronTriggerTimetable("30 * * * *", timezone=TZ),
    start_date=pendulum.datetime(2024, 1, 1, tz=TZ),
    catchup=False,
    max_active_runs=1,
    default_args={
        "owner": "povwatch-data-team",
        "retries": 4,  # the warehouse busy: retried with back-off
        "retry_delay": RETRY_DELAY,
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": dt.timedelta(minutes=30),
    },
    tags=["povwatch", "ingest", "warehouse-writer"],
)
def povwatch_ingest() -> None:
    @task(pool=POOL)
    def ingest_landed() -> dict[str, Any]:
        """Stage the export folders up to the latest one (pipeline.run.stage_month)."""
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        from pipeline.errors import PovwatchError
        from pipeline.months import Month
        from pipeline.run import stage_month
        from pipeline.settings import Settings
        from pipeline.store.warehouse import WarehouseBusy

        landing = _path("POVWATCH_LANDING", "data/landing")
        root = landing / "settlements"
        months = sorted(
            d.name for d in (root.iterdir() if root.is_dir() else ()) if _MONTH.match(d.name)
        )
        if not months:
            raise AirflowSkipException(f"{root}: no export folder (YYYY-MM) yet")
        settings = Settings(
            landing=landing,
            db=_path("POVWATCH_DB", "data/warehouse.duckdb"),
            outbox=_path("POVWATCH_OUTBOX", "data/outbox"),
        )
        # Encryption at rest: the key may live in the povwatch_warehouse connection's password
        # (as for povwatch_monthly).
        if not os.environ.get("POVWATCH_DB_KEY"):
            from airflow.sdk import Connection

            try:
                key = Connection.get("povwatch_warehouse").password
            except Exception:  # no such connection: the warehouse is not encrypted
                key = None
            if key:
                os.environ["POVWATCH_DB_KEY"] = key
        try:
            staged = stage_month(Month.parse(months[-1]), settings, progress=log.info)
        except WarehouseBusy:
            raise  # retried with back-off
        except PovwatchError as exc:
            raise AirflowFailException(str(exc)) from None
        summary = staged.summary()
        log.info(
            "staged up to %(month)s: %(files)d file(s), %(rows_read)d rows read, %(loaded)d "
            "loaded; export months read now: %(months_read)s",
            summary,
        )
        return summary

    ingest_landed()


_MONTH = re.compile(r"^\d{4}-\d{2}$")

povwatch_ingest()
