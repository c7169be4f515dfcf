"""An analyst's pandas version of the month's warnings (the baseline povwatch must beat).

Reads the staged loaded rows, the registry and the identities as Parquet (exported once by
``bench.run``), and the rules in force per region and month; groupby per person and export
month, cumulative sums over the months of the year, identities in force on each month's last
day, rules joined per region and month; first_month is the first flagged month.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.variants import CHECK_COLUMNS


def warnings(work: Path, month: str) -> pd.DataFrame:
    year = int(month[:4])
    rows = pd.read_parquet(work / "loaded.parquet")
    persons = pd.read_parquet(work / "persons.parquet")
    idents = pd.read_parquet(work / "identities.parquet")
    rules = pd.read_parquet(work / "rules.parquet")
    rules = rules[rules["m"] <= month]

    rows = rows[(rows["cost_year"] == year) & (rows["export_month"] <= month)]
    rows = rows.assign(b=rows["psn_part_amt"] + rows["maf_pay"])
    per = rows.groupby(["psn_no", "export_month"], as_index=False)["b"].sum()
    wide = per.pivot(index="psn_no", columns="export_month", values="b")
    months = sorted(rules["m"].unique())
    wide = wide.reindex(columns=months).fillna(0).astype("int64").cumsum(axis=1)
    # a person whose burden never exceeds the lowest threshold is never flagged
    wide = wide[wide.max(axis=1) > rules["threshold_fen"].min()]
    grid = wide.stack().rename("burden_ytd_fen").reset_index()
    grid.columns = ["psn_no", "m", "burden_ytd_fen"]

    days = pd.DataFrame({"m": months})
    days["day"] = (pd.to_datetime(days["m"] + "-01") + pd.offsets.MonthEnd(0)).dt.date
    ids = idents[idents["psn_no"].isin(wide.index)].merge(days, how="cross")
    ids = ids[
        (ids["begin_date"] <= ids["day"])
        & (ids["end_date"].isna() | (ids["end_date"] >= ids["day"]))
    ]
    ids = ids.groupby(["psn_no", "m"])["identity"].agg(lambda s: frozenset(s)).rename("ids")

    flags = grid.merge(persons, on="psn_no").merge(
        rules, left_on=["insuplc_admdvs", "m"], right_on=["admdvs", "m"]
    )
    flags = flags.join(ids, on=["psn_no", "m"])
    flags = flags[flags["burden_ytd_fen"] > flags["threshold_fen"]]

    def in_population(r) -> bool:
        held = r["ids"] if isinstance(r["ids"], frozenset) else frozenset()
        ok = (
            not (held - {"tuopin"})
            if r["rule_ordinary"]
            else bool(held & set(r["rule_identities"]))
        )
        ins = r["rule_insutypes"]
        return ok and (ins is None or r["insutype"] in set(ins))

    flags = flags[flags.apply(in_population, axis=1)] if len(flags) else flags
    first = (
        flags.groupby(["psn_no", "warning_type"], as_index=False)["m"]
        .min()
        .rename(columns={"m": "first_month"})
    )
    out = flags[flags["m"] == month].merge(first, on=["psn_no", "warning_type"])
    out = out.rename(columns={"m": "month"})
    out["status"] = (out["first_month"] == month).map({True: "new", False: "continuing"})
    return out.sort_values(["psn_no", "warning_type"])[CHECK_COLUMNS].reset_index(drop=True)
