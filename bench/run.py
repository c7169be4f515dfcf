"""`make bench`: a larger synthetic city through a year of runs, against time and memory targets.

Targets are per monthly run (the scheduler's unit) and for peak memory; they are checked
here, never in timed unit tests. Usage: ``python -m bench.run [--persons N]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from pipeline.months import Month
from pipeline.run import run_month
from pipeline.settings import Settings
from pipeline.synth.city import generate_city

# Seconds per monthly run and peak resident memory, for the default size on 2 cores.
TARGETS = {"month_seconds_max": 20.0, "peak_rss_gib_max": 8.0}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--persons", type=int, default=300_000)
    ap.add_argument("--year", type=int, default=2024)
    ap.add_argument("--work", type=Path, default=None, help="folder to keep (default: temp)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="povwatch-bench-") as tmp:
        work = args.work or Path(tmp)
        settings = Settings(
            landing=work / "landing", db=work / "w.duckdb", outbox=work / "outbox", quiet=True
        )
        t0 = time.perf_counter()
        city = generate_city(settings.landing, persons=args.persons, year=args.year)
        gen = time.perf_counter() - t0
        months = []
        for m in Month(args.year, 1).through(Month(args.year, 12)):
            t = time.perf_counter()
            result = run_month(m, settings)
            months.append(
                {
                    "month": str(m),
                    "seconds": round(time.perf_counter() - t, 2),
                    "warnings": result.warnings,
                }
            )
        peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    worst = max(x["seconds"] for x in months)
    report = {
        "persons": args.persons,
        "settlement_rows": city.settlements,
        "generate_seconds": round(gen, 1),
        "months": months,
        "worst_month_seconds": worst,
        "peak_rss_gib": round(peak_gib, 2),
        "targets": TARGETS,
    }
    print(json.dumps(report, indent=2))
    failed = []
    if worst > TARGETS["month_seconds_max"]:
        failed.append(f"a monthly run took {worst:.1f} s > {TARGETS['month_seconds_max']} s")
    if peak_gib > TARGETS["peak_rss_gib_max"]:
        failed.append(f"peak memory {peak_gib:.2f} GiB > {TARGETS['peak_rss_gib_max']} GiB")
    for line in failed:
        print(f"bench: FAILED: {line}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
