"""`make bench`: povwatch against the expert's query, at province scale, in one run.

``python -m bench.run [--scale S|L] [--persons N] [--runs 3]``. S is 1 million persons, L 5
million; ``--persons`` sets another size (named ``P<N>``). The landing folder (``bench.synth``)
and the prepared warehouses (``bench.prepare``) are cached under ``bench/.cache/<scale>/``
and rebuilt when the generator or the pipeline code changes.

Every variant runs as a fresh process, the variants alternating round by round; wall time
(process start to exit) and peak RSS (the child's ``ru_maxrss``) are the medians of the rounds:

* ``povwatch_run``: ``povwatch run`` of month 12 on the warehouse after months 1–11, gates on,
  split by stage from the run's own progress lines. Its first ``--report-rounds`` rounds
  (default 1) write the month's reports, the later rounds run the warehouse stage alone:
  its ``wall_s`` is the month without its reports (the round with them less its reports
  stage), and ``with_reports`` gives the rounds with them (reports follow the number of
  warnings, are judged by no target, and took a quarter of ``make bench`` at S);
  ``povwatch_run_nogates`` (gates off; not run unless named in ``--variants``: the gates,
  SQL inside DuckDB, take 0.2 s of month 12 at S) and ``povwatch_month1`` (month 1 on an empty
  warehouse, gates on) are judged without reports and run the warehouse stage alone (the
  Airflow ``compute_month`` task, ``bench/warehouse_stage.py``);
  ``povwatch_run_after_ingest``: the same warehouse stage (gates on) after ``povwatch
  ingest`` read and staged month 12's exports as they landed (timed on its own:
  ``ingest_wall_s``);
* ``povwatch_compute``: povwatch's burden + warnings + first_month/status alone;
* ``pandas``: an analyst's groupby version (``bench/pandas_baseline.py``);
* ``sql_full`` / ``sql_incremental``: hand-written DuckDB SQL (``bench/sql/``);
* ``scan_floor``: reading the needed columns of the year once;
* ``reports_demo``: one month's reports of the demo city (50 000 persons, 22 packages:
  ``bench/reports.py``), wall and CPU seconds with the PDF workers, and whether every run
  wrote the same bytes.

All variants but the floor must give the same warnings (checked). Writes
``bench/results/<scale>.json`` and prints the ratio table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.variants import CHECK_COLUMNS as CHECK

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SCALES = {"S": 1_000_000, "L": 5_000_000}
YEAR = 2024
BASE = "sql_incremental"
ORDER = [
    "povwatch_run",
    "sql_incremental",
    "povwatch_compute",
    "sql_full",
    "pandas",
    "scan_floor",
    "povwatch_run_nogates",
    "povwatch_month1",
    "povwatch_run_after_ingest",
    "povwatch_run_before",
]
# judged without their reports: the warehouse stage alone (bench/warehouse_stage.py)
WAREHOUSE_STAGE_ONLY = ("povwatch_run_nogates", "povwatch_month1", "povwatch_run_after_ingest")
# the month's run after `povwatch ingest` read its exports as they landed (timed apart)
_AFTER = ("povwatch_run_after_ingest",)
# progress lines of `povwatch run` that open a stage (the previous one ends there)
STAGE_MARKS = [
    ("reading reference data", "reference"),
    ("ingesting settlement exports", "ingest_staging"),
    ("quality gates (Great", "gates_inputs"),
    ("computing burden and warnings", "burden_warnings_marts"),
    ("quality:", "ledger_commit"),
    ("quality gates skipped", "ledger_commit"),
    ("writing reports", "reports"),
    ("done in", "exit"),
]


def _digest(*folders: Path) -> str:
    h = hashlib.sha256()
    for folder in folders:
        for p in sorted(folder.rglob("*")):
            if p.is_file() and p.suffix in (".py", ".sql", ".yaml", ".json"):
                h.update(p.relative_to(REPO).as_posix().encode())
                h.update(p.read_bytes())
    return h.hexdigest()[:16]


def _spawn(cmd: list[str], env: dict | None = None, cwd: Path = REPO) -> dict:
    """Run one fresh process; wall seconds, peak RSS (GiB), stdout, stage marks from stderr."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    marks: list[tuple[float, str]] = []
    err: list[str] = []

    def read_err() -> None:
        for line in proc.stderr:
            marks.append((time.perf_counter() - t0, line))
            err.append(line)

    reader = threading.Thread(target=read_err)
    reader.start()
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    reader.join()
    if proc.returncode != 0:
        raise SystemExit(f"bench: {' '.join(cmd[:4])}… failed:\n{''.join(err[-5:])}")
    return {
        "wall_s": wall,
        "rss_gib": usage.ru_maxrss / 1024 / 1024,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "stdout": out,
        "marks": marks,
    }


def _stages(marks: list[tuple[float, str]], wall: float) -> dict[str, float]:
    points = [(0.0, "startup")]
    for t, line in marks:
        for text, stage in STAGE_MARKS:
            if text in line:
                points.append((t, stage))
                break
    points.append((wall, "end"))
    stages: dict[str, float] = {}
    for (t, stage), (t_next, _) in zip(points, points[1:], strict=False):
        stages[stage] = stages.get(stage, 0.0) + (t_next - t)
    return stages


def _warnings_of_db(db: Path, month: str, out: Path) -> None:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        con.execute(
            f"copy (select {', '.join(CHECK)} from mart_warnings where month = ? "
            f"order by psn_no, warning_type) to '{out}' (format parquet)",
            [month],
        )
    finally:
        con.close()


def _run_variant(name: str, root: Path, check: Path | None, reports: bool = True) -> dict:
    month = f"{YEAR}-12"
    if name.startswith("povwatch_run") or name == "povwatch_month1":
        # `povwatch_run_before`: the same run with another checkout's pipeline (an A/B of a
        # change in one bench run): BENCH_BEFORE_SRC names its folder.
        src = Path(os.environ["BENCH_BEFORE_SRC"]) if name.endswith("_before") else REPO
        run = root / "run"
        shutil.rmtree(run, ignore_errors=True)
        run.mkdir()
        db = run / "w.duckdb"
        if name != "povwatch_month1":
            shutil.copyfile(root / "w11.duckdb", db)
        else:
            month = f"{YEAR}-01"
        gates = "off" if "nogates" in name else "on"
        paths = [str(root / "landing"), str(db), str(run / "o")]
        env = {"POVWATCH_QUALITY": gates, "PYTHONPATH": str(src)}
        ingested = None
        if name == "povwatch_run_after_ingest":
            # month 12's exports read and staged as they landed (`povwatch ingest`, timed on
            # its own), then the month's run, which finds them staged
            ingest = [sys.executable, "-m", "pipeline.cli", "ingest", "--month", month]
            ingest += ["--landing", paths[0], "--db", paths[1], "--quiet"]
            ingested = _spawn(ingest, env, cwd=src)
        if name in WAREHOUSE_STAGE_ONLY or not reports:
            cmd = [sys.executable, "-m", "bench.warehouse_stage", month, *paths]
        else:
            cmd = [sys.executable, "-m", "pipeline.cli", "run", "--month", month]
            cmd += ["--landing", paths[0], "--db", paths[1], "--outbox", paths[2]]
        res = _spawn(cmd, env, cwd=src)
        res["stages"] = _stages(res["marks"], res["wall_s"])
        if ingested is not None:
            res["ingest_wall_s"] = ingested["wall_s"]
            res["ingest_rss_gib"] = ingested["rss_gib"]
        if check is not None:
            _warnings_of_db(db, month, check)
        shutil.rmtree(run, ignore_errors=True)
    else:
        out = check or (root / "discard.parquet")
        res = _spawn([sys.executable, "-m", "bench.variants", name, str(root), month, str(out)])
        res["work_s"] = json.loads(res["stdout"].strip().splitlines()[-1])["work_s"]
    return res


def _same(a: Path, b: Path) -> bool:
    import polars as pl

    return pl.read_parquet(a).equals(pl.read_parquet(b))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", default=os.environ.get("SCALE") or "S")
    ap.add_argument("--persons", type=int, default=None)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--report-rounds", type=int, default=1)
    ap.add_argument("--cache", type=Path, default=HERE / ".cache")
    ap.add_argument("--variants", default=",".join(n for n in ORDER if n != "povwatch_run_nogates"))
    args = ap.parse_args(argv)
    persons = args.persons or SCALES[args.scale]
    scale = args.scale if args.persons is None else f"P{persons}"
    root = args.cache / scale
    root.mkdir(parents=True, exist_ok=True)
    say = lambda msg: print(f"bench [{scale}] {msg}", file=sys.stderr, flush=True)  # noqa: E731

    from bench import synth

    t = time.perf_counter()
    summary = synth.cached(root / "landing", persons, year=YEAR)
    say(f"landing: {summary['rows']} rows ({time.perf_counter() - t:.0f} s)")
    key = _digest(REPO / "pipeline", REPO / "sql", REPO / "policies", HERE / "sql")
    prep = root / "prep.json"
    if not prep.is_file() or json.loads(prep.read_text()).get("key") != key + str(summary):
        say("preparing warehouses (months 1–12, gates off) …")
        prep.unlink(missing_ok=True)
        res = _spawn([sys.executable, "-m", "bench.prepare", str(root), str(YEAR)])
        data = json.loads(prep.read_text())
        data["key"] = key + str(summary)
        data["prepare_wall_s"] = round(res["wall_s"], 1)
        data["prepare_rss_gib"] = round(res["rss_gib"], 2)
        prep.write_text(json.dumps(data, indent=1))
    backfill = json.loads(prep.read_text())

    names = [n for n in ORDER if n in args.variants.split(",")]
    if "BENCH_BEFORE_SRC" not in os.environ:
        names = [n for n in names if not n.endswith("_before")]
    checks = root / "checks"
    shutil.rmtree(checks, ignore_errors=True)
    checks.mkdir()
    runs: dict[str, list[dict]] = {n: [] for n in names}
    for r in range(args.runs):
        for name in names:
            check = checks / f"{name}.parquet" if r == 0 and name != "scan_floor" else None
            if name == "povwatch_month1":
                check = None
            reports = name == "povwatch_run" and r < args.report_rounds
            res = _run_variant(name, root, check, reports=reports)
            runs[name].append(res)
            say(f"round {r + 1} {name}: {res['wall_s']:.2f} s, {res['rss_gib']:.2f} GiB")

    say("ingest throughput …")
    tp = json.loads(
        _spawn([sys.executable, "-m", "bench.throughput", str(root), str(YEAR)])["stdout"]
    )

    say("reports of a demo month (50 000 persons, 22 packages) …")
    reports = [
        json.loads(
            _spawn([sys.executable, "-m", "bench.reports", str(args.cache / "demo")])["stdout"]
        )
        for _ in range(args.runs)
    ]
    reports_demo = {
        **reports[0],
        "wall_s": round(statistics.median(r["wall_s"] for r in reports), 2),
        "cpu_s": round(statistics.median(r["cpu_s"] for r in reports), 2),
        "runs": len(reports),
        "same_bytes": len({r["digest"] for r in reports}) == 1,
    }

    identical = True
    ref = checks / f"{BASE}.parquet"
    for name in names:
        f = checks / f"{name}.parquet"
        if f.is_file() and not _same(f, ref):
            identical = False
            say(f"DIFFERENT warnings: {name} vs {BASE}")
    n_warn = len(__import__("polars").read_parquet(ref)) if ref.is_file() else None

    def med(name: str, key: str) -> float:
        return statistics.median(x[key] for x in runs[name])

    for x in runs.get("povwatch_run", []):
        # the month without its reports (the round's wall less its reports stage, if it wrote
        # them); rss and CPU stay medians of all rounds
        x["with_reports_s"] = x["wall_s"] if "reports" in x["stages"] else None
        x["wall_s"] -= x["stages"].get("reports", 0.0)
    variants = {
        n: {
            "wall_s": round(med(n, "wall_s"), 3),
            "rss_gib": round(med(n, "rss_gib"), 3),
            "cpu_s": round(med(n, "cpu_s"), 3),
            "runs": len(runs[n]),
            **({"work_s": round(med(n, "work_s"), 3)} if "work_s" in runs[n][0] else {}),
            # the `povwatch ingest` that ran before it, on its own (not in wall_s)
            **(
                {
                    "ingest_wall_s": round(med(n, "ingest_wall_s"), 3),
                    "ingest_rss_gib": round(med(n, "ingest_rss_gib"), 3),
                }
                if "ingest_wall_s" in runs[n][0]
                else {}
            ),
        }
        for n in names
    }
    with_reports = [x for x in runs.get("povwatch_run", []) if x["with_reports_s"] is not None]
    if with_reports:
        variants["povwatch_run"]["with_reports"] = {
            "wall_s": round(statistics.median(x["with_reports_s"] for x in with_reports), 3),
            "reports_s": round(statistics.median(x["stages"]["reports"] for x in with_reports), 2),
            "rss_gib": round(statistics.median(x["rss_gib"] for x in with_reports), 3),
            "runs": len(with_reports),
        }
    stages = {}
    for n in names:
        if "stages" in runs[n][0]:
            keys = list(dict.fromkeys(k for x in runs[n] for k in x["stages"]))
            # a stage's median over the rounds that have it (reports: the rounds that wrote them)
            stages[n] = {
                k: round(statistics.median(x["stages"][k] for x in runs[n] if k in x["stages"]), 2)
                for k in keys
            }
    base = variants.get(BASE, {}).get("wall_s")
    ratios = {n: round(v["wall_s"] / base, 2) for n, v in variants.items()} if base else {}
    # CPU seconds (user + system) are less disturbed by other work on a shared machine.
    base_cpu = variants.get(BASE, {}).get("cpu_s")
    cpu_ratios = (
        {n: round(v["cpu_s"] / base_cpu, 2) for n, v in variants.items()} if base_cpu else {}
    )
    # The targets judge the run without its reports (their cost follows the number of warnings,
    # not the months loaded): povwatch_run's wall_s is already without them (see above), the
    # others never write them.
    without_reports = {
        n: variants[n]["wall_s"]
        for n in ("povwatch_run", "povwatch_run_nogates", "povwatch_month1", *_AFTER)
        if n in variants
    }
    report = {
        "scale": scale,
        "persons": persons,
        "rows_per_month": round(summary["rows"] / 12),
        "rows_month12": summary["rows_by_month"][f"{YEAR}-12"],
        "variants": variants,
        "ratios": ratios,
        "cpu_ratios": cpu_ratios,
        # month 1 runs without reports: the ratio compares the warehouse stages
        "month12_over_month1": (
            round(without_reports["povwatch_run"] / without_reports["povwatch_month1"], 2)
            if {"povwatch_run", "povwatch_month1"} <= set(without_reports)
            else None
        ),
        "without_reports": {
            "wall_s": without_reports,
            "ratios": {n: round(w / base, 2) for n, w in without_reports.items()} if base else {},
            "month12_over_month1": (
                round(without_reports["povwatch_run"] / without_reports["povwatch_month1"], 2)
                if {"povwatch_run", "povwatch_month1"} <= set(without_reports)
                else None
            ),
        },
        "identical_warnings": identical,
        "warnings": n_warn,
        "stages": stages,
        "ingest_throughput": tp,
        "reports_demo": reports_demo,
        "backfill": backfill.get("backfill"),
        "backfill_s": round(sum(m["seconds"] for m in backfill.get("backfill", [])), 1),
        "generate_s": summary["generate_seconds"],
        "cpu_count": os.cpu_count(),
        "code": _code_version(),
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    report["targets"] = judge(report)
    out = HERE / "results" / f"{scale}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(table(report))
    print(f"written {out.relative_to(REPO)}")
    return 0 if identical else 1


def _code_version() -> str:
    from pipeline import code_version

    return code_version()


# The targets at L (ratios within one run): (measure, limit, met when the value is …)
TARGETS = {
    "compute_over_sql_incremental": (1.5, "at most"),
    "month_without_reports_over_sql_incremental": (3.0, "at most"),
    "pandas_over_month_without_reports": (10.0, "at least"),
    "month12_over_month1": (1.3, "at most"),
    "peak_rss_gib": (2.0, "at most"),
    "generate_s": (120.0, "at most"),  # the landing, generated once (L in ≤ 2 minutes)
}


def judge(report: dict) -> dict:
    """Each target's value in ``report`` and whether it is met (None: not measured).

    The month is ``povwatch run`` of month 12 with its gates, less its reports stage; the peak
    RSS is the highest of the povwatch variants (month 12 with its reports, and month 1)."""
    ratios = report.get("ratios") or {}
    variants = report.get("variants") or {}
    month = (report.get("without_reports") or {}).get("wall_s", {}).get("povwatch_run")
    pandas = variants.get("pandas", {}).get("wall_s")
    rss = [v["rss_gib"] for n, v in variants.items() if n.startswith("povwatch_")]
    rss += [v["with_reports"]["rss_gib"] for v in variants.values() if "with_reports" in v]
    values = {
        "compute_over_sql_incremental": ratios.get("povwatch_compute"),
        "month_without_reports_over_sql_incremental": (
            (report.get("without_reports") or {}).get("ratios", {}).get("povwatch_run")
        ),
        "pandas_over_month_without_reports": round(pandas / month, 2) if pandas and month else None,
        "month12_over_month1": report.get("month12_over_month1"),
        "peak_rss_gib": max(rss) if rss else None,
        "generate_s": report.get("generate_s"),
    }
    out = {}
    for name, (limit, sense) in TARGETS.items():
        value = values[name]
        met = None if value is None else value <= limit if sense == "at most" else value >= limit
        out[name] = {"value": value, "target": f"{sense} {limit}", "met": met}
    return out


def table(report: dict) -> str:
    lines = [
        f"scale {report['scale']}: {report['persons']:,} persons, "
        f"{report['rows_month12']:,} rows in month 12, {report['warnings']} warnings, "
        f"identical: {report['identical_warnings']}",
        f"{'variant':<22} {'wall s':>8} {'CPU s':>8} {'RSS GiB':>8} {'wall ×':>8} {'CPU ×':>8}"
        f"  (× {BASE})",
    ]
    for n, v in report["variants"].items():
        lines.append(
            f"{n:<22} {v['wall_s']:>8.2f} {v['cpu_s']:>8.2f} {v['rss_gib']:>8.2f} "
            f"{report['ratios'].get(n, 0):>8.2f} {report['cpu_ratios'].get(n, 0):>8.2f}"
        )
    for n, v in report["variants"].items():
        if "ingest_wall_s" in v:
            lines.append(
                f"{n}: preceded by `povwatch ingest` {v['ingest_wall_s']:.2f} s, "
                f"{v['ingest_rss_gib']:.2f} GiB (not in its wall time)"
            )
    for n, v in report["variants"].items():
        if "with_reports" in v:
            w = v["with_reports"]
            lines.append(
                f"{n}: with its reports {w['wall_s']:.2f} s (reports {w['reports_s']:.2f} s), "
                f"{w['rss_gib']:.2f} GiB, {w['runs']} round(s); above: without them"
            )
    wr = report.get("without_reports") or {}
    for n, w in (wr.get("wall_s") or {}).items():
        lines.append(f"{n + ' w/o reports':<34} {w:>8.2f} {'':>26} {wr['ratios'].get(n, 0):>8.2f}")
    lines.append(f"month 12 / month 1 without reports: {wr.get('month12_over_month1')} wall")
    for n, st in report["stages"].items():
        lines.append(f"{n} stages: " + ", ".join(f"{k} {v:.2f}" for k, v in st.items()))
    for fmt, x in report["ingest_throughput"].items():
        lines.append(
            f"ingest {fmt}: {x['rows']:,} rows in {x['seconds']} s ({x['rows_per_s']:,}/s)"
        )
    lines.append(
        f"backfill of the year (warehouse stage, gates off, no reports): {report['backfill_s']} s"
    )
    for name, t in (report.get("targets") or {}).items():
        verdict = {True: "met", False: "MISSED", None: "not measured"}[t["met"]]
        lines.append(f"target {name}: {t['value']} ({t['target']}): {verdict}")
    r = report.get("reports_demo")
    if not r or "month" not in r:
        return "\n".join(lines)
    lines.append(
        f"reports of {r['month']} at {r['persons']:,} persons ({r['files']} files): "
        f"{r['wall_s']} s wall, {r['cpu_s']} s CPU (with the PDF workers), "
        f"same bytes every run: {r['same_bytes']}"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
