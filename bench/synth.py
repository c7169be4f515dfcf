"""A province-sized landing folder, generated once per scale and cached on disk.

``pipeline.synth.city`` builds one city in memory (about 10 KiB per person while building), so
a big population is built in districts of ``CHUNK`` persons, each by
``pipeline.synth.city._build`` with its own seed, in up to two worker processes. Each district
writes its own part of every monthly export (a province's month arrives as several files, one
per district) and of the registry; its ids get a two-digit district prefix (``P07…``,
``H07…``, ``S07…``, ``M07…``) so no id repeats across districts. Identities carry ``psn_no``
besides ``certno`` (resident ids may repeat across independently generated districts).

Scale mode writes no XLSX: xlsxwriter is pure Python (≈ 8 s per 100 000 rows) and a sheet
holds at most 1 048 576 rows. Months 1 and 12 are GB18030 CSV, 5 and 11 Parquet (decimal
money), the others UTF-8 CSV; the XLSX reading speed is measured on a sample by ``bench.run``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import polars as pl

CHUNK = 250_000
SCALE_SHAPES = {1: "csv_gb18030", 5: "parquet", 11: "parquet", 12: "csv_gb18030"}


def month_shape(m: int) -> str:
    return SCALE_SHAPES.get(m, "csv_utf8")


def _prefixed(col: str, k: int) -> pl.Expr:
    """``X123…`` → ``X{k:02d}123…`` (null stays null)."""
    c = pl.col(col)
    return (c.str.slice(0, 1) + pl.lit(f"{k:02d}") + c.str.slice(1)).alias(col)


def _district(args: tuple[Path, int, int, int, int]) -> dict:
    landing, k, persons, seed, year = args
    from pipeline.synth import city as c

    t0 = time.perf_counter()
    built = c._build(persons, seed + 1000 * k, year)
    ids = ["psn_no", "setl_id", "mdtrt_id", "init_setl_id"]
    rows = {}
    for m, frame in built.exports.items():
        frame = frame.with_columns(_prefixed(x, k) for x in ids)
        folder = landing / "settlements" / f"{year:04d}-{m:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        shape = month_shape(m)
        name = f"setl_{year:04d}{m:02d}_d{k:02d}"
        if shape == "parquet":
            c._write_parquet(frame, folder / f"{name}.parquet")
        else:
            c._write_csv(frame, folder / f"{name}.csv", shape)
        rows[m] = frame.height
    persons_out = (
        built.persons.sort("idx")
        .select(
            "psn_no",
            "certno",
            "psn_name",
            "gend",
            "brdy",
            "hh_id",
            "insuplc_admdvs",
            "insutype",
            pl.col("rural").cast(pl.String),
        )
        .with_columns(_prefixed("psn_no", k), _prefixed("hh_id", k))
    )
    idents = built.identities.join(
        persons_out.select("certno", "psn_no"), on="certno", how="left", maintain_order="left"
    ).select("psn_no", "certno", "identity", "begin_date", "end_date", "source_dept")
    for sub, frame in (("persons", persons_out), ("identities", idents)):
        path = landing / sub / f"{sub}_d{k:02d}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.write_csv(path, line_terminator="\n")
    return {"district": k, "rows": rows, "seconds": round(time.perf_counter() - t0, 1)}


def generate(
    landing: Path, persons: int, *, seed: int = 7, year: int = 2024, workers: int = 2
) -> dict:
    """(Re)create ``landing``; returns a summary (also written to ``landing/bench.json``)."""
    from pipeline.synth import city as c

    for sub in ("persons", "identities", "reference", "settlements"):
        shutil.rmtree(landing / sub, ignore_errors=True)
    landing.mkdir(parents=True, exist_ok=True)
    c._write_income(landing, year)
    sizes = [CHUNK] * (persons // CHUNK)
    if persons % CHUNK:
        sizes.append(persons % CHUNK)
    jobs = [(landing, k, n, seed, year) for k, n in enumerate(sizes)]
    t0 = time.perf_counter()
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            done = list(pool.map(_district, jobs))
    else:
        done = [_district(j) for j in jobs]
    rows = {m: sum(d["rows"][m] for d in done) for m in range(1, 13)}
    summary = {
        "persons": persons,
        "seed": seed,
        "year": year,
        "districts": len(jobs),
        "rows_by_month": {f"{year:04d}-{m:02d}": n for m, n in rows.items()},
        "rows": sum(rows.values()),
        "generate_seconds": round(time.perf_counter() - t0, 1),
    }
    (landing / "bench.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    return summary


def code_key() -> str:
    """A digest of the generator's code: a changed generator regenerates the cache."""
    import hashlib

    here = Path(__file__).resolve()
    h = hashlib.sha256(here.read_bytes())
    h.update((here.parents[1] / "pipeline" / "synth" / "city.py").read_bytes())
    return h.hexdigest()[:16]


def cached(landing: Path, persons: int, *, seed: int = 7, year: int = 2024) -> dict:
    """The summary of a landing folder generated with these arguments, generating it if needed."""
    marker = landing / "bench.json"
    want = {"persons": persons, "seed": seed, "year": year, "code": code_key()}
    if marker.is_file():
        summary = json.loads(marker.read_text(encoding="utf-8"))
        if all(summary.get(k) == v for k, v in want.items()):
            return summary
    summary = generate(landing, persons, seed=seed, year=year, workers=min(2, os.cpu_count() or 1))
    summary["code"] = want["code"]
    marker.write_text(json.dumps(summary, indent=1), encoding="utf-8")
    return summary


if __name__ == "__main__":
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 200_000
    print(json.dumps(generate(Path(sys.argv[1]), n), indent=1))
