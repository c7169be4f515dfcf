"""povwatch_monthly: one run per calendar month of settlements, wiring only.

Every piece of logic lives in ``pipeline``; this file says when a month runs, which paths it
uses and in what order the tasks go. ``pipeline`` is imported inside the tasks, so parsing
this file (the scheduler does that every few seconds) touches neither polars nor DuckDB.

The clock is the data interval: the run that starts just after 1 April (Asia/Shanghai)
covers 1 March .. 1 April and processes ``2024-03``. A manual
``airflow dags test povwatch_monthly 2024-04-01`` processes March too.

Later (not built yet): one task per county, by dynamic task mapping over the counties
found in the month's landing files, e.g. ``run_county.partial(month=m).expand(admdvs=...)``
followed by a single task that builds the month's marts. Until then one task runs the
whole month, and ``max_active_runs=1`` keeps DuckDB to one writer.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import pendulum
from airflow.sdk import CronDataIntervalTimetable, Param, dag, task

TZ = "Asia/Shanghai"


def _connection_password(conn_id: str) -> str | None:
    """The password of an Airflow connection, or None when there is no such connection."""
    from airflow.sdk import Connection

    try:
        return Connection.get(conn_id).password or None
    except Exception:  # AirflowNotFoundException and friends: no connection configured
        return None


@dag(
    dag_id="povwatch_monthly",
    description="Monthly medical-cost poverty early warnings (因病返贫/因病致贫 双预警)",
    # "0 0 1 * *" with a *data-interval* timetable: each run's interval is one calendar
    # month and the run starts when that month has ended. (schedule="@monthly" would give
    # a zero-width interval in Airflow 3.)
    schedule=CronDataIntervalTimetable("0 0 1 * *", timezone=TZ),
    start_date=pendulum.datetime(2023, 1, 1, tz=TZ),
    catchup=False,
    max_active_runs=1,
    # Defaults as in pipeline.settings (not imported here: parsing stays light), overridable
    # per deployment by env var and per run by conf. Relative paths resolve against the
    # worker's working directory.
    params={
        "landing": Param(
            os.environ.get("POVWATCH_LANDING", "data/landing"),
            type="string",
            description="folder of landing files (settlements/YYYY-MM/, persons/, ...)",
        ),
        "db": Param(
            os.environ.get("POVWATCH_DB", "data/warehouse.duckdb"),
            type="string",
            description="DuckDB warehouse file",
        ),
        "outbox": Param(
            os.environ.get("POVWATCH_OUTBOX", "data/outbox"),
            type="string",
            description="folder where the month's deliverables are written",
        ),
    },
    tags=["povwatch"],
)
def povwatch_monthly() -> None:
    @task
    def month_of_interval(data_interval_start: dt.datetime | None = None) -> str:
        """The month being processed: that of the interval's start, in Asia/Shanghai."""
        from zoneinfo import ZoneInfo

        from pipeline.months import Month

        if data_interval_start is None:
            raise ValueError("this run has no data interval; trigger it with a logical date")
        return str(Month.of(data_interval_start.astimezone(ZoneInfo(TZ)).date()))

    @task
    def run_month(month: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run the whole month through ``pipeline.run.run_month``; a re-run replaces it."""
        import dataclasses
        import json
        from pathlib import Path

        from pipeline import run as pipeline_run
        from pipeline.settings import Settings

        assert params is not None
        # Encryption at rest: the warehouse key may live in an Airflow connection (its
        # password) instead of the worker's environment.
        key = _connection_password("povwatch_warehouse")
        if key and not os.environ.get("POVWATCH_DB_KEY"):
            os.environ["POVWATCH_DB_KEY"] = key
        settings = Settings(
            landing=Path(params["landing"]),
            db=Path(params["db"]),
            outbox=Path(params["outbox"]),
        )
        result = pipeline_run.run_month(month, settings)
        # XCom must be JSON: Paths (and any dates) inside the result become strings.
        return json.loads(json.dumps(dataclasses.asdict(result), default=str))

    # Later: month -> counties (mapped, one task each) -> marts; see the module docstring.
    run_month(month_of_interval())


povwatch_monthly()
