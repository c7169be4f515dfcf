"""The frame the department reports are written from: routed warnings with names and households."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import duckdb
import polars as pl

from pipeline.errors import PovwatchError
from pipeline.warnings.explain import Explanation


def households_of(con: duckdb.DuckDBPyConnection, persons: pl.Series) -> pl.DataFrame:
    """The registry rows of ``persons`` and of every member of their households, with names
    and resident ids: what the reports show, read for the warned and audited persons only
    rather than for a province's whole registry."""
    # read by name in the SQL below (warehouse.py, "Frames into SQL")
    hh_wanted = pl.DataFrame({"psn_no": persons.unique()}).to_arrow()  # noqa: F841
    return con.sql(
        """
        select psn_no, hh_id, insuplc_admdvs as admdvs, insutype, rural, psn_name, certno
        from ref_persons
        where hh_id in (
            select hh_id from ref_persons semi join hh_wanted using (psn_no)
        )
        order by psn_no
        """
    ).pl()


def report_frame(
    routed: pl.DataFrame, registry: pl.DataFrame, warnings: pl.DataFrame
) -> pl.DataFrame:
    """One row per routed warning and department, with the person's name, id and household."""
    hh_size = registry.group_by("hh_id").agg(pl.len().cast(pl.Int32).alias("hh_size"))
    hh_warned = warnings.group_by("hh_id").agg(
        pl.col("psn_no").n_unique().cast(pl.Int32).alias("hh_warned")
    )
    return (
        routed.join(registry.select("psn_no", "psn_name", "certno"), on="psn_no", how="left")
        .join(hh_size, on="hh_id", how="left")
        .join(hh_warned, on="hh_id", how="left")
        .with_columns(pl.col("rural").cast(pl.Int8))
        .select(
            "month",
            "psn_no",
            "hh_id",
            "admdvs",
            "warning_type",
            "rule_id",
            "burden_ytd_fen",
            "threshold_fen",
            "first_month",
            "status",
            "department",
            "psn_name",
            "certno",
            "identities",
            "insutype",
            "rural",
            "hh_size",
            "hh_warned",
        )
    )


# Columns the explanation adds to each routed warning (null when reports are written from a
# bare frame, e.g. in unit tests).
EXPLAINED_COLUMNS: dict[str, pl.DataType] = {
    "warning_id": pl.String,
    "why": pl.String,
    "clause": pl.String,
    "quote": pl.String,
    "document": pl.String,
    "policy_file": pl.String,
    "factor": pl.String,
    "income_admdvs": pl.String,
    "income_year": pl.Int32,
    "income_scope": pl.String,
    "income_amount_fen": pl.Int64,
    "income_published_on": pl.Date,
    "burden_measure": pl.String,
    "also_to": pl.String,
    "prev_decision": pl.String,
    "wait_days": pl.Int64,
}
HISTORY_SCHEMA = {
    "month": pl.String,
    "psn_no": pl.String,
    "hh_id": pl.String,
    "admdvs": pl.String,
    "warning_type": pl.String,
    "department": pl.String,
    "burden_ytd_fen": pl.Int64,
    "threshold_fen": pl.Int64,
}


@dataclass(frozen=True)
class ReportData:
    """Everything a month's packages are written from.

    ``routed``: one row per (warning, department), see :func:`report_frame` and
    ``EXPLAINED_COLUMNS``; ``settlements``: counted settlements of the warned persons and
    their household members (``warnings.explain.counted_settlements``); ``members``: psn_no,
    hh_id, burden_fen of every member of a warned household; ``history``: the year's routed
    warnings up to and including the month (trend, month-over-month, resolved);
    ``rules``: the rules in force with their citations (说明). ``decisions`` (optional):
    warning_id, decision, decided_on — fills 上次决定 / 等待天数 once decisions come back;
    ``followup`` (optional): per department and county, warnings, decided, pending, overdue,
    not_reflected (``mart_decision_followup`` of the month) — the reports' 反馈跟进;
    ``underpaid`` (optional): the assistance audit's largest under-payments per county
    (``underpaid_rows``) — a sheet of the civil-affairs 台账 only (full ids).
    """

    routed: pl.DataFrame
    settlements: pl.DataFrame | None = None
    members: pl.DataFrame | None = None
    history: pl.DataFrame | None = None
    rules: pl.DataFrame | None = None
    decisions: pl.DataFrame | None = None
    followup: pl.DataFrame | None = None
    underpaid: pl.DataFrame | None = None
    run_id: str = ""

    _FRAMES = ("settlements", "members", "history", "rules", "decisions", "followup", "underpaid")

    def frames(self) -> dict[str, pl.DataFrame]:
        """The frames to publish (``report_rows`` and ``report_<name>``), absent ones left out."""
        out = {"report_rows": self.routed}
        for name in self._FRAMES:
            frame = getattr(self, name)
            if frame is not None:
                out[f"report_{name}"] = frame
        return out

    @classmethod
    def read(cls, read: Callable[[str], pl.DataFrame], run_id: str = "") -> ReportData:
        """Back from the published frames (``read(name)``); a missing one is None."""
        routed = read("report_rows")
        parts = {}
        for name in cls._FRAMES:
            try:
                parts[name] = read(f"report_{name}")
            except (PovwatchError, OSError):
                parts[name] = None
        return cls(routed=routed, run_id=run_id or "", **parts)


def report_data(
    con: duckdb.DuckDBPyConnection,
    month: str,
    routed: pl.DataFrame,
    registry: pl.DataFrame,
    warnings: pl.DataFrame,
    explanation: Explanation,
    run_id: str,
    decisions: pl.DataFrame | None = None,
    followup: pl.DataFrame | None = None,
) -> ReportData:
    """The report frame with each warning's explanation, and the year's history."""
    why = explanation.verdicts.filter(pl.col("warned")).select(
        "psn_no",
        "warning_type",
        *(c for c in EXPLAINED_COLUMNS if c in explanation.verdicts.columns),
    )
    base = report_frame(routed, registry, warnings).join(
        why, on=["psn_no", "warning_type"], how="left"
    )
    history = con.sql(
        """
        select w.month, w.psn_no, w.hh_id, w.admdvs, w.warning_type, r.department,
               w.burden_ytd_fen, w.threshold_fen
        from mart_warnings w
        join mart_warning_routes r using (month, psn_no, warning_type)
        where w.month between ? and ?
        """,
        params=[month[:4] + "-01", month],
    ).pl()
    citations = explanation.verdicts.select(
        "rule_id",
        "warning_type",
        *(c for c in EXPLAINED_COLUMNS if c in explanation.verdicts.columns and c != "why"),
        "threshold_fen",
        "unit",
    ).unique(["rule_id", "income_admdvs", "threshold_fen"], maintain_order=True)
    citations = citations.drop(
        [
            c
            for c in ("warning_id", "also_to", "prev_decision", "wait_days")
            if c in citations.columns
        ]
    )
    return ReportData(
        routed=base,
        settlements=explanation.settlements,
        members=explanation.members,
        history=history.cast(HISTORY_SCHEMA),  # type: ignore[arg-type]
        rules=citations,
        decisions=decisions,
        followup=followup,
        run_id=run_id,
    )


def underpaid_rows(audited: pl.DataFrame, registry: pl.DataFrame) -> pl.DataFrame:
    """``assistance.audit.largest_underpayments`` (its Chinese columns, money as yuan text)
    with each person's name and resident id from the registry, and ``admdvs`` to pick a
    county's rows by."""
    from pipeline.assistance.audit import largest_underpayments
    from pipeline.labels import ASSISTANCE_COLUMNS
    from pipeline.reports.xlsx import UNDERPAID_PER_COUNTY

    top = largest_underpayments(audited, per_county=UNDERPAID_PER_COUNTY)
    psn = ASSISTANCE_COLUMNS["psn_no"]
    names = registry.select(
        pl.col("psn_no").alias(psn),
        pl.col("psn_name").alias("姓名"),
        pl.col("certno").alias("身份证号"),
    ).unique(psn, keep="first")
    return top.join(names, on=psn, how="left", maintain_order="left").with_columns(
        pl.col(ASSISTANCE_COLUMNS["admdvs"]).alias("admdvs")
    )


def with_explained_columns(df: pl.DataFrame) -> pl.DataFrame:
    """Add any explanation column the frame lacks (null), the warning id, 也推送至."""
    from pipeline.warnings.compute import warning_id_expr

    missing = [
        pl.lit(None, dtype=t).alias(c)
        for c, t in EXPLAINED_COLUMNS.items()
        if c not in df.columns and c != "also_to"
    ]
    df = df.with_columns(missing)
    df = df.with_columns(pl.coalesce(pl.col("warning_id"), warning_id_expr()).alias("warning_id"))
    return _also_to(df.drop("also_to", strict=False))


def _also_to(df: pl.DataFrame) -> pl.DataFrame:
    from pipeline.labels import DEPARTMENTS

    others = (
        df.select("psn_no", "warning_type", "department")
        .join(
            df.select("psn_no", "warning_type", pl.col("department").alias("_other")),
            on=["psn_no", "warning_type"],
        )
        .filter(pl.col("_other") != pl.col("department"))
        .group_by("psn_no", "warning_type", "department")
        .agg(
            pl.col("_other")
            .replace_strict(DEPARTMENTS, default=pl.col("_other"))
            .sort()
            .str.join("、")
            .alias("_also")
        )
    )
    return (
        df.join(others, on=["psn_no", "warning_type", "department"], how="left")
        .with_columns(pl.col("_also").alias("also_to"))
        .drop("_also")
    )
