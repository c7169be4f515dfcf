"""Year-to-date personal burden, as polars expressions over the staged settlements.

burden_ytd (contract): Σ (psn_part_amt + maf_pay) over a person's loaded rows in the data as
of month M whose cost year is M's year (a reversal counts in its original's year). In fen.
"""

from __future__ import annotations

import duckdb
import polars as pl

from pipeline.months import Month

BURDEN_MEASURES = {
    # after basic and critical-illness insurance: the personal part plus what medical
    # assistance paid (psn_part_amt is already net of assistance).
    "after_insurance": pl.col("psn_part_amt") + pl.col("maf_pay"),
}


def loaded_rows(con: duckdb.DuckDBPyConnection, month: Month) -> pl.DataFrame:
    """The loaded rows of the data as of ``month`` that count in its year (Arrow, no copies)."""
    return con.sql(
        """
        select psn_no, export_month, psn_part_amt, maf_pay
        from stg_settlements
        where status = 'loaded' and export_month <= ? and cost_year = ?
        """,
        params=[str(month), month.year],
    ).pl()


def burden_as_of(
    rows: pl.DataFrame, month: Month, measure: str = "after_insurance"
) -> pl.DataFrame:
    """One row per person: burden_ytd_fen as of ``month``."""
    return (
        rows.lazy()
        .filter(pl.col("export_month") <= str(month))
        .group_by("psn_no")
        .agg(BURDEN_MEASURES[measure].sum().cast(pl.Int64).alias("burden_ytd_fen"))
        .with_columns(pl.lit(str(month)).alias("m"))
        .collect()
    )


def burden_history(
    rows: pl.DataFrame, persons: pl.Series, month: Month, measure: str = "after_insurance"
) -> pl.DataFrame:
    """burden_ytd_fen of ``persons`` as of every month from January to ``month``.

    One row per (person, month m); the data as of m are the export folders up to m.
    """
    months = pl.DataFrame({"m": [str(m) for m in Month(month.year, 1).through(month)]})
    per_export = (
        rows.lazy()
        .filter(pl.col("psn_no").is_in(persons.implode()))
        .group_by("psn_no", "export_month")
        .agg(BURDEN_MEASURES[measure].sum().cast(pl.Int64).alias("amount"))
    )
    return (
        pl.DataFrame({"psn_no": persons.unique()})
        .lazy()
        .join(months.lazy(), how="cross")
        .join(per_export, left_on=["psn_no", "m"], right_on=["psn_no", "export_month"], how="left")
        .with_columns(pl.col("amount").fill_null(0))
        .sort("psn_no", "m")
        .with_columns(pl.col("amount").cum_sum().over("psn_no").alias("burden_ytd_fen"))
        .select("psn_no", "m", "burden_ytd_fen")
        .collect()
    )
