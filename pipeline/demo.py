"""`povwatch demo`: a synthetic Jining, a year of monthly runs, and where to look."""

from __future__ import annotations

import os
import shlex
import sys
import time
from pathlib import Path

import polars as pl

from pipeline.errors import PovwatchError
from pipeline.labels import with_admdvs_name
from pipeline.months import Month
from pipeline.run import run_month
from pipeline.settings import DEFAULT_DB, DEFAULT_LANDING, DEFAULT_OUTBOX, Settings
from pipeline.store.warehouse import connect

MARKER = ".povwatch-demo"


def _guard_landing(landing: Path) -> None:
    """Never overwrite a landing folder that holds someone's real exports."""
    if landing.exists() and any(landing.iterdir()) and not (landing / MARKER).exists():
        raise PovwatchError(
            f"{landing}: holds data not made by the demo; pass --landing to a new folder"
        )


def run_demo(settings: Settings, *, persons: int, year: int, seed: int) -> None:
    from pipeline.synth.city import generate_city

    say = (lambda _m: None) if settings.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    _guard_landing(settings.landing)
    t0 = time.perf_counter()
    say(f"demo: generating a synthetic city of {persons:,} persons (seed {seed}) ...")
    summary = generate_city(settings.landing, persons=persons, seed=seed, year=year)
    (settings.landing / MARKER).write_text("made by povwatch demo\n", encoding="utf-8")
    t_gen = time.perf_counter() - t0
    say(
        f"demo: {summary.persons:,} persons in {summary.households:,} households, "
        f"{summary.settlements:,} settlement rows in {len(summary.files)} files ({t_gen:.1f} s)"
    )
    t1 = time.perf_counter()
    for m in Month(year, 1).through(Month(year, 12)):
        run_month(m, settings)
    t_run = time.perf_counter() - t1
    print(summary_table(settings.db, year))
    print(f"warehouse : {settings.db.resolve()}")
    print(f"reports   : {settings.outbox.resolve()}/{year}-MM/<department>/<county>/")
    print(f"landing   : {settings.landing.resolve()}")
    print(f"timings   : generate {t_gen:.1f} s, 12 monthly runs {t_run:.1f} s")
    print(next_steps(settings, year))


def command_prefix() -> str:
    """How the user runs povwatch: ``$POVWATCH_CMD`` (the Makefile sets it to the uv it
    uses), else ``uv run povwatch`` — what works in the checkout right after `make demo`."""
    return os.environ.get("POVWATCH_CMD") or "uv run povwatch"


def next_steps(settings: Settings, year: int) -> str:
    """Commands to try next, runnable as printed (paths given when not the defaults)."""
    cmd = command_prefix()
    db = "" if settings.db == DEFAULT_DB else f" --db {shlex.quote(str(settings.db))}"
    paths = db
    if settings.landing != DEFAULT_LANDING:
        paths += f" --landing {shlex.quote(str(settings.landing))}"
    if settings.outbox != DEFAULT_OUTBOX:
        paths += f" --outbox {shlex.quote(str(settings.outbox))}"
    lines = [
        f"{cmd} warnings --month {year}-12 --format csv{db}",
        f"{cmd} status --month {year}-12{db}",
        f"{cmd} policy simulate --month {year}-12 --region 3708{paths}",
        f"{cmd} --help",
    ]
    return (
        "next      : "
        + "\n            ".join(lines)
        + "\n            (`make shell` or `source .venv/bin/activate` puts povwatch on PATH)"
    )


def summary_table(db: Path, year: int) -> str:
    """Warnings per month (rows) and county (columns), 'relapse/impoverish'."""
    con = connect(db, read_only=True)
    try:
        counts = con.execute(
            """
            select month, admdvs,
                   count(*) filter (where warning_type = 'relapse') as r,
                   count(*) filter (where warning_type = 'impoverish') as i
            from mart_warnings where month like ? group by all
            """,
            [f"{year}-%"],
        ).pl()
    finally:
        con.close()
    counties_frame = with_admdvs_name(counts.select("admdvs").unique().sort("admdvs"))
    counties = counties_frame["admdvs"].to_list()
    months = [str(m) for m in Month(year, 1).through(Month(year, 12))]
    cells = {(r["month"], r["admdvs"]): f"{r['r']}/{r['i']}" for r in counts.iter_rows(named=True)}
    totals = counts.group_by("month").agg(pl.col("r").sum(), pl.col("i").sum())
    total = {r["month"]: f"{r['r']}/{r['i']}" for r in totals.iter_rows(named=True)}
    names = counties_frame["county"].to_list()
    width = 8
    head = "month   " + "".join(_pad(n, width) for n in names) + _pad("全市", width)
    lines = ["warnings per month and county (返贫 relapse / 致贫 impoverish)", head]
    for m in months:
        row = "".join(_pad(cells.get((m, c), "-"), width) for c in counties)
        lines.append(f"{m} " + row + _pad(total.get(m, "0/0"), width))
    return "\n".join(lines)


def _pad(text: str, width: int) -> str:
    shown = sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)
    return " " * max(1, width - shown) + text
