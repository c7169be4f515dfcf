"""Cost of one month's reports at the demo size (child process of ``bench.run``, or alone).

``python -m bench.reports ROOT [--month 2024-12] [--persons 50000] [--profile FILE]``: makes
the demo city once under ``ROOT`` (``povwatch demo``, gates off; cached while the pipeline code
is unchanged), then writes the month's reports from its published Parquet exactly as
``run_month`` does (every county's packages, then the city summary and manifests) into a fresh
outbox, and prints one JSON line: wall seconds, CPU seconds (user + system) in all, of this
process and of its PDF workers (on two idle cores the wall time is about the larger of the
first and half the second), the number of files and a digest of their bytes (the same code and data must
give the same digest run after run).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
YEAR = 2024


def _code_key(persons: int) -> str:
    h = hashlib.sha256(str(persons).encode())
    for folder in ("pipeline", "sql", "policies"):
        for p in sorted((REPO / folder).rglob("*")):
            if p.parent.name == "reports" and p.name != "frame.py":
                continue  # the rendering code: it does not change the demo's warehouse
            if p.is_file() and p.suffix in (".py", ".sql", ".yaml"):
                h.update(p.relative_to(REPO).as_posix().encode())
                h.update(p.read_bytes())
    return h.hexdigest()[:16]


def demo_city(root: Path, persons: int) -> Path:
    """The demo city's warehouse under ``root`` (made by ``povwatch demo`` when missing)."""
    key = _code_key(persons)
    stamp = root / "demo.key"
    db = root / "data" / "warehouse.duckdb"
    if stamp.is_file() and stamp.read_text() == key and db.is_file():
        return db
    shutil.rmtree(root / "data", ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    policies = root / "policies"
    if policies.is_symlink():  # made by another checkout (perhaps gone since): this one's
        policies.unlink()
    if not policies.exists():
        policies.symlink_to(REPO / "policies", target_is_directory=True)
    cmd = [sys.executable, "-m", "pipeline.cli", "demo", "--persons", str(persons), "--quiet"]
    cmd += ["--landing", "data/landing", "--db", "data/warehouse.duckdb"]
    cmd += ["--outbox", "data/outbox"]
    env = {**os.environ, "POVWATCH_QUALITY": "off", "PYTHONPATH": str(REPO)}
    subprocess.run(cmd, cwd=root, env=env, check=True, stdout=subprocess.DEVNULL)
    stamp.write_text(key)
    return db


def _cpu() -> tuple[float, float]:
    """CPU seconds (user + system) of this process, and of its reaped children (the PDF
    workers)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def write_month(db: Path, month: str, outbox: Path) -> list[Path]:
    """The month's reports, as ``run_month`` writes them (one county at a time, then summary)."""
    from pipeline.run import write_month_reports
    from pipeline.settings import Settings
    from pipeline.store import published

    run_id = published.marker(db, month)["run_id"]
    settings = Settings(landing=db.parent / "landing", db=db, outbox=outbox, quiet=True)
    data = published.read(db, month, "report_rows")
    counties = sorted(data.get_column("admdvs").unique().to_list())
    return [Path(p) for p in write_month_reports(month, counties, settings, run_id)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--month", default=f"{YEAR}-12")
    ap.add_argument("--persons", type=int, default=50_000)
    ap.add_argument("--db", type=Path, default=None, help="a warehouse already run (no demo)")
    ap.add_argument("--keep", action="store_true", help="keep the outbox (ROOT/bench-outbox)")
    ap.add_argument("--profile", type=Path, default=None, help="write cProfile stats here")
    args = ap.parse_args(argv)
    db = args.db.resolve() if args.db else demo_city(args.root.resolve(), args.persons)
    outbox = args.root.resolve() / "bench-outbox"
    shutil.rmtree(outbox, ignore_errors=True)
    import weasyprint  # noqa: F401

    import pipeline.reports.package  # noqa: F401  imports are not the reports' cost
    import pipeline.run  # noqa: F401

    cpu0, t0 = _cpu(), time.perf_counter()
    if args.profile:
        import cProfile

        cProfile.runctx("write_month(db, args.month, outbox)", globals(), locals(), args.profile)
    else:
        write_month(db, args.month, outbox)
    wall, cpu1 = time.perf_counter() - t0, _cpu()
    main_s, workers_s = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
    files = sorted(p for p in (outbox / args.month).rglob("*") if p.is_file())
    h = hashlib.sha256()
    for p in files:
        h.update(p.relative_to(outbox).as_posix().encode())
        h.update(p.read_bytes())
    out = {
        "persons": args.persons,
        "month": args.month,
        "wall_s": round(wall, 2),
        "cpu_s": round(main_s + workers_s, 2),
        "cpu_main_s": round(main_s, 2),
        "cpu_workers_s": round(workers_s, 2),
        "files": len(files),
        "pdf_bytes": sum(p.stat().st_size for p in files if p.suffix == ".pdf"),
        "digest": h.hexdigest()[:16],
    }
    if not args.keep:
        shutil.rmtree(outbox, ignore_errors=True)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
