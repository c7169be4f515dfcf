"""The city summary for the bureau: county × warning type × status, money, change on last
month. Counts and sums only (no names, no ids); fits two printed pages for 11 counties."""

from __future__ import annotations

import polars as pl

from pipeline.labels import COUNTIES, DEPARTMENTS, WARNING_TYPES
from pipeline.months import Month
from pipeline.reports.html import lifecycle, previous_month, trend_chart, yuan_text


def city_history(history: pl.DataFrame) -> pl.DataFrame:
    """One row per person, warning type and month (a warning routed to two departments
    counts once in the city)."""
    return history.unique(["month", "psn_no", "warning_type"], keep="first").sort(
        "month", "psn_no", "warning_type"
    )


FOLLOWUP_COUNTS = ("warnings", "decided", "pending", "overdue", "not_reflected")


def followup_table(followup: pl.DataFrame | None) -> dict | None:
    """反馈跟进: one row per county, each department's counts side by side (so 11 counties
    keep the summary on two pages); None before decisions are wired."""
    if followup is None:
        return None
    depts = list(DEPARTMENTS)
    counties = sorted(followup["admdvs"].unique().to_list())
    rows = []
    by_key = {(r["admdvs"], r["department"]): r for r in followup.to_dicts()}
    for admdvs in counties:
        cells = [by_key.get((admdvs, d)) or dict.fromkeys(FOLLOWUP_COUNTS, 0) for d in depts]
        rows.append({"admdvs": admdvs, "county": COUNTIES.get(admdvs, admdvs), "by_dept": cells})
    return {"departments": [DEPARTMENTS[d] for d in depts], "rows": rows}


def summary_context(history: pl.DataFrame, m: Month, followup: pl.DataFrame | None = None) -> dict:
    hist = city_history(history)
    table = (
        lifecycle(hist, m, ["admdvs", "warning_type"])
        .with_columns(
            pl.col("admdvs").replace_strict(COUNTIES, default=pl.col("admdvs")).alias("county"),
            pl.col("warning_type").replace_strict(WARNING_TYPES).alias("type_label"),
            pl.col("warning_type").cast(pl.Enum(list(WARNING_TYPES))).alias("_t"),
        )
        .sort("admdvs", "_t")
    )
    totals = (
        lifecycle(hist, m, ["warning_type"])
        .with_columns(
            pl.col("warning_type").replace_strict(WARNING_TYPES).alias("type_label"),
            pl.col("warning_type").cast(pl.Enum(list(WARNING_TYPES))).alias("_t"),
        )
        .sort("_t")
    )
    grand = lifecycle(hist, m, []).to_dicts()
    empty = dict.fromkeys(
        ["new", "continuing", "persons", "households", "resolved", "last_month", "change",
         "burden_fen", "excess_fen"], 0)  # fmt: skip
    return {
        "title": f"{m.year}年{m.month:02d}月 因病返贫/因病致贫预警 全市汇总",
        "month": str(m),
        "rows": table.to_dicts(),
        "totals": totals.to_dicts(),
        "grand": grand[0] if grand else empty,
        "has_previous": previous_month(m) is not None,
        "trend": trend_chart(hist, m, "全市本年度各月预警人数"),
        "yuan": yuan_text,
        "followup": followup_table(followup),
    }
