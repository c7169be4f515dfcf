"""The month's marts published as Parquet, beside the warehouse, for readers that must not lock it.

DuckDB allows one writer *or* readers in other processes, and even a read-only connection
blocks the monthly writer. So every committed month is also written out as Parquet::

    <db folder>/published/<db stem>/YYYY-MM/warnings.parquet     mart_warnings of the month
                                           routes.parquet       mart_warning_routes
                                           report_rows.parquet  the rows the 台账 are written from
                                           files.parquet        the run's per-file reconciliation
                                           _published.json      run id and row counts, written last

BI tools and analysts read these; the report tasks read them too (one per county, in
parallel, never touching the warehouse file). Each file is written to a temporary name and
renamed into place, so a reader sees a whole file or the previous one. ``report_rows`` holds
names and resident ids, exactly as the delivered 台账 do: keep the folder as private as the
outbox.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl

from pipeline.errors import PovwatchError

MARKER = "_published.json"


def published_root(db: Path) -> Path:
    """Where a warehouse's months are published (two warehouses in one folder never mix)."""
    return db.parent / "published" / db.stem


def month_dir(db: Path, month: str) -> Path:
    return published_root(db) / month


def publish(db: Path, month: str, run_id: str, frames: dict[str, pl.DataFrame]) -> Path:
    """Write ``frames`` as ``<name>.parquet`` atomically, then the marker naming the run."""
    folder = month_dir(db, month)
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in frames.items():
        tmp = folder / f".{name}.parquet.tmp"
        frame.write_parquet(tmp, statistics=False)
        os.replace(tmp, folder / f"{name}.parquet")
    marker = {
        "month": month,
        "run_id": run_id,
        "rows": {name: frame.height for name, frame in sorted(frames.items())},
    }
    tmp = folder / f".{MARKER}.tmp"
    tmp.write_text(json.dumps(marker, sort_keys=True, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, folder / MARKER)
    return folder


def marker(db: Path, month: str) -> dict:
    """The month's publication record; one line naming the folder when there is none."""
    path = month_dir(db, month) / MARKER
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PovwatchError(
            f"{path}: month {month} is not published (run its computation first)"
        ) from None


def read(db: Path, month: str, name: str, run_id: str | None = None) -> pl.DataFrame:
    """One published frame of the month; with ``run_id``, refuse one another run published."""
    seen = marker(db, month)
    if run_id is not None and seen["run_id"] != run_id:
        raise PovwatchError(
            f"{month_dir(db, month) / MARKER}: published by run {seen['run_id']}, "
            f"not by run {run_id} (a newer run of {month} replaced it)"
        )
    return pl.read_parquet(month_dir(db, month) / f"{name}.parquet")
