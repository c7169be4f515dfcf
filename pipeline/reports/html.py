"""HTML report per package and for the city (Jinja2 templates in the top-level ``reports/``).

Autoescaped, self-contained (inline CSS, charts as inline PNG), readable on a phone; the
same HTML is printed to PDF (``reports.pdf``). Identities are masked here: full resident ids
and names appear only in the responsible department's 台账.
"""

from __future__ import annotations

from functools import cache

import jinja2
import polars as pl

from pipeline.labels import DEPARTMENTS, STATUSES, WARNING_TYPES
from pipeline.months import Month
from pipeline.reports.charts import bar_chart
from pipeline.reports.mask import certno_masked, name_masked
from pipeline.store.warehouse import resource_dir

RESOLVED = "已解除"
TOP_HOUSEHOLDS = 10
RATIO_BUCKETS = [(100, 120, "1.0–1.2"), (120, 150, "1.2–1.5"), (150, 200, "1.5–2"),
                 (200, 300, "2–3"), (300, None, "≥3")]  # fmt: skip
COLOURS = {"new": "#d9534f", "continuing": "#5b8def", "resolved": "#9aa5b1"}


@cache
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resource_dir("reports"))),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _months_of_year(m: Month) -> list[str]:
    return [str(x) for x in Month(m.year, 1).through(m)]


def previous_month(m: Month) -> str | None:
    """The month compared with: the previous month of the same year (warnings restart in
    January)."""
    return str(m.plus(-1)) if m.month > 1 else None


def lifecycle(history: pl.DataFrame, m: Month, keys: list[str]) -> pl.DataFrame:
    """Per ``keys`` group: persons new / continuing this month, resolved since last month,
    and last month's total (the year's routed warnings in ``history``)."""
    if not keys:  # one group: the whole history
        history, keys = history.with_columns(pl.lit("all").alias("_all")), ["_all"]
    now = history.filter(pl.col("month") == str(m))
    prev_month = previous_month(m)
    prev = history.filter(pl.col("month") == (prev_month or ""))
    on = list(dict.fromkeys(["psn_no", "warning_type", *keys]))
    resolved = prev.join(now, on=on, how="anti")
    first = history.group_by("psn_no", "warning_type").agg(pl.col("month").min().alias("_first"))
    now = now.join(first, on=["psn_no", "warning_type"], how="left").with_columns(
        pl.when(pl.col("_first") == str(m))
        .then(pl.lit("new"))
        .otherwise(pl.lit("continuing"))
        .alias("status")
    )
    parts = [
        now.group_by(keys).agg(
            pl.col("psn_no").filter(pl.col("status") == "new").n_unique().alias("new"),
            pl.col("psn_no")
            .filter(pl.col("status") == "continuing")
            .n_unique()
            .alias("continuing"),
            pl.col("psn_no").n_unique().alias("persons"),
            pl.col("hh_id").n_unique().alias("households"),
            pl.col("burden_ytd_fen").sum().alias("burden_fen"),
            (pl.col("burden_ytd_fen") - pl.col("threshold_fen")).sum().alias("excess_fen"),
        ),
        resolved.group_by(keys).agg(pl.col("psn_no").n_unique().alias("resolved")),
        prev.group_by(keys).agg(pl.col("psn_no").n_unique().alias("last_month")),
    ]
    out = (
        parts[0]
        .join(parts[1], on=keys, how="full", coalesce=True)
        .join(parts[2], on=keys, how="full", coalesce=True)
    )
    counts = ["new", "continuing", "persons", "households", "resolved", "last_month"]
    return out.with_columns(
        pl.col(counts).fill_null(0).cast(pl.Int64),
        pl.col("burden_fen", "excess_fen").fill_null(0).cast(pl.Int64),
    ).with_columns((pl.col("persons") - pl.col("last_month")).alias("change"))


def yuan_text(fen: int | None) -> str:
    if fen is None:
        return ""
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100:,}.{abs(fen) % 100:02d}"


def _signed(n: int) -> str:
    return f"+{n}" if n > 0 else str(n)


def trend_chart(history: pl.DataFrame, m: Month, title: str) -> str:
    months = _months_of_year(m)
    first = history.group_by("psn_no", "warning_type").agg(pl.col("month").min().alias("_first"))
    per = (
        history.join(first, on=["psn_no", "warning_type"])
        .group_by("month")
        .agg(
            pl.col("psn_no").filter(pl.col("_first") == pl.col("month")).n_unique().alias("new"),
            pl.col("psn_no").filter(pl.col("_first") != pl.col("month")).n_unique().alias("cont"),
        )
    )
    frame = pl.DataFrame({"month": months}).join(per, on="month", how="left").fill_null(0)
    return bar_chart(
        [f"{int(x[5:])}月" for x in months],
        [
            (STATUSES["continuing"], COLOURS["continuing"], frame["cont"].to_list()),
            (STATUSES["new"], COLOURS["new"], frame["new"].to_list()),
        ],
        title=title,
    )


def ratio_chart(part: pl.DataFrame, title: str) -> str:
    pct = (part["burden_ytd_fen"] * 100 // part["threshold_fen"]).to_list() if part.height else []
    counts = [
        sum(1 for p in pct if p >= lo and (hi is None or p < hi)) for lo, hi, _ in RATIO_BUCKETS
    ]
    return bar_chart(
        [label for _, _, label in RATIO_BUCKETS],
        [("人数", "#f0ad4e", counts)],
        title=title,
        height=180,
    )


def _masked(part: pl.DataFrame) -> pl.DataFrame:
    return part.with_columns(
        name_masked(pl.col("psn_name")).alias("name_masked"),
        certno_masked(pl.col("certno")).alias("certno_masked"),
    )


def package_context(
    part: pl.DataFrame,
    households: pl.DataFrame,
    history: pl.DataFrame,
    m: Month,
    dept: str,
    admdvs: str,
    county: str,
) -> dict:
    """What the package template shows; ``part`` is the package's 台账 rows."""
    hist = history.filter((pl.col("department") == dept) & (pl.col("admdvs") == admdvs))
    if not hist.filter(pl.col("month") == str(m)).height and part.height:
        # reports written from a bare frame (tests): this month's rows are the history
        hist = part.select(
            pl.lit(str(m)).alias("month"), "psn_no", "hh_id", "admdvs", "warning_type",
            pl.lit(dept).alias("department"), "burden_ytd_fen", "threshold_fen",
        )  # fmt: skip
    life = lifecycle(hist, m, []).to_dicts()
    head = life[0] if life else dict.fromkeys(
        ["new", "continuing", "persons", "households", "resolved", "last_month", "change",
         "burden_fen", "excess_fen"], 0)  # fmt: skip
    people = _masked(part)
    by_hh = (
        {
            hh: rows.sort("excess_fen", descending=True).to_dicts()
            for (hh,), rows in people.partition_by("hh_id", as_dict=True).items()
        }
        if people.height
        else {}
    )
    # to visit first: new this month, then the largest overshoot
    ordered = (
        households.with_columns((pl.col("new_label") != "是").alias("_old"))
        .sort(["_old", "max_excess_fen", "hh_id"], descending=[False, True, False])
        .to_dicts()
    )
    entries = [
        {
            **h,
            "members": by_hh.get(h["hh_id"], []),
            "hh_burden_text": yuan_text(int(round(h["hh_burden_yuan"] * 100)))
            if h["hh_burden_yuan"] is not None
            else "",
            "max_excess_text": yuan_text(h["max_excess_fen"]),
        }
        for h in ordered
    ]
    title = f"{m.year}年{m.month:02d}月 因病返贫/因病致贫预警报告"
    return {
        "title": title,
        "subtitle": f"{DEPARTMENTS[dept]} · {county}（{admdvs}）",
        "month": str(m),
        "head": head,
        "change_text": _signed(head["change"]),
        "has_previous": previous_month(m) is not None,
        "trend": trend_chart(hist, m, "本年度各月预警人数"),
        "ratio": ratio_chart(part, "个人负担 / 预警标准 分布（人）"),
        "first": entries[:TOP_HOUSEHOLDS],
        "households": entries,
        "types": {
            WARNING_TYPES[t]: int((part["warning_type"] == t).sum()) if part.height else 0
            for t in WARNING_TYPES
        },
        "yuan": yuan_text,
        "resolved_label": RESOLVED,
        "followup": None,  # set by the package from the month's follow-up (followup_of)
    }


FOLLOWUP_COUNTS = ("warnings", "decided", "pending", "overdue", "not_reflected")


def followup_of(followup: pl.DataFrame | None, dept: str, admdvs: str) -> dict | None:
    """The package's 反馈跟进 (decided / pending / overdue), None before decisions are wired."""
    if followup is None:
        return None
    rows = followup.filter((pl.col("department") == dept) & (pl.col("admdvs") == admdvs))
    if not rows.height:
        return dict.fromkeys(FOLLOWUP_COUNTS, 0)
    return {c: int(rows[c].sum()) for c in FOLLOWUP_COUNTS}


def render(template: str, context: dict) -> str:
    return environment().get_template(template).render(**context)
