"""The frame the department reports are written from: routed warnings with names and households."""

from __future__ import annotations

import polars as pl


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
