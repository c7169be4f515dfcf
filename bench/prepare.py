"""Prepare a scale's work folder once (child process of ``bench.run``; not timed as a variant).

``python -m bench.prepare ROOT YEAR``: runs months 1–11 into ``w11.duckdb`` and month 12 into
``w12.duckdb`` (a year's backfill of the warehouse stage, gates off, seconds per month
recorded; no reports: they follow the number of warnings and are measured in the month-12
run), and derives what the other variants start from: ``rules.parquet`` (rules in force per
region and month, resolved by povwatch's policy code), Parquet exports of the staged loaded
rows, registry and identities for pandas, and ``state.duckdb`` (running totals through month
11 and first flags) for the incremental SQL.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

SQL = Path(__file__).resolve().parent / "sql"


def main() -> None:
    root, year = Path(sys.argv[1]), int(sys.argv[2])
    os.environ["POVWATCH_QUALITY"] = "off"
    import duckdb
    import polars as pl

    from pipeline.months import Month
    from pipeline.policy.load import PolicySet
    from pipeline.run import compute_month
    from pipeline.settings import Settings
    from pipeline.warnings.rules import resolve_rules

    db = root / "prep.duckdb"
    db.unlink(missing_ok=True)
    settings = Settings(landing=root / "landing", db=db, outbox=root / "prep-outbox", quiet=True)
    backfill = []
    for m in Month(year, 1).through(Month(year, 12)):
        if m.month == 12:
            shutil.copyfile(db, root / "w11.duckdb")
        # The month before the measured one with gates on, as in a monthly routine (the
        # reference suites' results are then on record).
        os.environ["POVWATCH_QUALITY"] = "on" if m.month == 11 else "off"
        t = time.perf_counter()
        result = compute_month(m, settings)
        backfill.append(
            {
                "month": str(m),
                "seconds": round(time.perf_counter() - t, 2),
                "warnings": result.warnings,
            }
        )
        print(json.dumps(backfill[-1]), file=sys.stderr, flush=True)
    shutil.move(db, root / "w12.duckdb")
    shutil.rmtree(root / "prep-outbox", ignore_errors=True)

    con = duckdb.connect(str(root / "w12.duckdb"))
    con.execute("set enable_progress_bar = false")
    registry = con.sql("select insuplc_admdvs as admdvs from ref_persons").pl()
    income = con.sql("select admdvs, year, scope, amount_fen, published_on from ref_income").pl()
    regions = registry.unique().join(
        pl.DataFrame({"m": [str(x) for x in Month(year, 1).through(Month(year, 12))]}),
        how="cross",
    )
    rules = resolve_rules(PolicySet.load(()), regions, income)
    if set(rules["unit"]) != {"person"} or set(rules["burden_measure"]) != {"after_insurance"}:
        raise SystemExit("bench: the hand-written queries cover person rules on after_insurance")
    rules.select(
        "admdvs",
        "m",
        "warning_type",
        "threshold_fen",
        "rule_ordinary",
        "rule_identities",
        "rule_insutypes",
    ).write_parquet(root / "rules.parquet")
    for name, query in {
        "loaded": "select psn_no, export_month, cost_year, psn_part_amt, maf_pay "
        "from stg_settlements where status = 'loaded'",
        "persons": "select psn_no, insuplc_admdvs, insutype from ref_persons",
        "identities": "select psn_no, identity, begin_date, end_date from ref_identities",
    }.items():
        con.execute(f"copy ({query}) to '{root / name}.parquet' (format parquet)")

    (root / "state.duckdb").unlink(missing_ok=True)
    con.execute(f"attach '{root / 'state.duckdb'}' as st")
    con.execute(
        f"create temp table rules as select * from read_parquet('{root / 'rules.parquet'}')"
    )
    con.execute(
        (SQL / "state.sql").read_text(encoding="utf-8"), {"year": year, "prev": f"{year}-11"}
    )
    # The first flags of months 1–11 in one pass: full.sql's CTEs through `firsts` already
    # hold every month's flags up to $month; only its final select keeps one month.
    full = (SQL / "full.sql").read_text(encoding="utf-8")
    head, sep, _ = full.partition("\nselect f.m as month")
    if not sep:
        raise SystemExit("bench: full.sql no longer ends with its month's select")
    firsts = con.sql(
        head + "\nselect psn_no, warning_type, first_month from firsts",
        params={"month": f"{year}-11", "year": year},
    ).pl()
    con.register("firsts", firsts.to_arrow())
    con.execute("create or replace table st.inc_first as select * from firsts")
    con.execute("detach st")
    con.close()
    (root / "prep.json").write_text(json.dumps({"backfill": backfill}, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
