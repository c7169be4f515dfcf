"""The benchmark's child processes: each variant runs here in a fresh interpreter.

``python -m bench.variants NAME WORK MONTH OUT`` computes the month's warnings the variant's
way from the prepared folder WORK (see ``bench.run``), writes them to OUT (Parquet: month,
psn_no, warning_type, burden_ytd_fen, threshold_fen, first_month, status) and prints one JSON
line with the seconds of its own work (after the interpreter and imports started).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

SQL = Path(__file__).resolve().parent / "sql"
CHECK_COLUMNS = [
    "month",
    "psn_no",
    "warning_type",
    "burden_ytd_fen",
    "threshold_fen",
    "first_month",
    "status",
]


def _duck(work: Path):
    import duckdb

    con = duckdb.connect(str(work / "w12.duckdb"), read_only=True)
    con.execute("set enable_progress_bar = false")
    return con


def _year(month: str) -> int:
    return int(month[:4])


def sql_full(work: Path, month: str):
    con = _duck(work)
    con.execute(
        f"create temp table rules as select * from read_parquet('{work / 'rules.parquet'}')"
    )
    q = (SQL / "full.sql").read_text(encoding="utf-8")
    return con.sql(q, params={"month": month, "year": _year(month)}).pl()


def sql_incremental(work: Path, month: str):
    con = _duck(work)
    con.execute(f"attach '{work / 'state.duckdb'}' as st (read_only)")
    con.execute(
        f"create temp table rules as select * from read_parquet('{work / 'rules.parquet'}')"
    )
    q = (SQL / "incremental.sql").read_text(encoding="utf-8")
    return con.sql(q, params={"month": month, "year": _year(month)}).pl()


def scan_floor(work: Path, month: str):
    """Read the needed columns of the year once (no warnings)."""
    con = _duck(work)
    con.execute(
        """
        select count(*), count(distinct psn_no), sum(psn_part_amt + maf_pay)
        from stg_settlements
        where status = 'loaded' and cost_year = ? and export_month <= ?
        """,
        [_year(month), month],
    ).fetchall()
    return None


def povwatch_compute(work: Path, month: str):
    """Burden + warnings + first_month/status as povwatch computes them (no ingest, no gates)."""
    import polars as pl

    from pipeline.months import Month
    from pipeline.policy.load import PolicySet
    from pipeline.store.warehouse import connect
    from pipeline.warnings.compute import compute_warnings
    from pipeline.warnings.rules import resolve_rules

    m = Month.parse(month)
    con = connect(work / "w12.duckdb", read_only=True)
    income = con.sql("select admdvs, year, scope, amount_fen, published_on from ref_income").pl()
    regions = (
        con.sql("select distinct insuplc_admdvs as admdvs from ref_persons")
        .pl()
        .join(pl.DataFrame({"m": [str(x) for x in Month(m.year, 1).through(m)]}), how="cross")
    )
    rules = resolve_rules(PolicySet.load(()), regions, income)
    return compute_warnings(con, m, rules)


def pandas(work: Path, month: str):
    from bench.pandas_baseline import warnings

    return warnings(work, month)


VARIANTS = {
    "sql_full": sql_full,
    "sql_incremental": sql_incremental,
    "scan_floor": scan_floor,
    "povwatch_compute": povwatch_compute,
    "pandas": pandas,
}


def main() -> None:
    name, work, month, out = sys.argv[1], Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
    t0 = time.perf_counter()
    result = VARIANTS[name](work, month)
    work_s = time.perf_counter() - t0
    if result is not None:
        import polars as pl

        if not isinstance(result, pl.DataFrame):
            result = pl.from_pandas(result)
        result.select(CHECK_COLUMNS).write_parquet(out)
    print(json.dumps({"work_s": round(work_s, 3)}))


if __name__ == "__main__":
    main()
