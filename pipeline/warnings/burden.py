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
    # assistance paid (psn_part_amt is already net of assistance). The contract's default.
    "after_insurance": pl.col("psn_part_amt") + pl.col("maf_pay"),
    # after insurance and medical assistance: what the person finally paid.
    "after_insurance_and_assistance": pl.col("psn_part_amt"),
    # the same without out-of-catalogue self-pay (医保目录外全自费, fulamt_ownpay_amt).
    "after_insurance_in_catalogue": pl.col("psn_part_amt")
    + pl.col("maf_pay")
    - pl.col("fulamt_ownpay_amt"),
    "after_insurance_and_assistance_in_catalogue": pl.col("psn_part_amt")
    - pl.col("fulamt_ownpay_amt"),
}
MEASURE_COLUMNS = [f"burden__{name}" for name in BURDEN_MEASURES]


def _measure_sums() -> list[pl.Expr]:
    return [
        expr.sum().cast(pl.Int64).alias(f"burden__{name}") for name, expr in BURDEN_MEASURES.items()
    ]


def loaded_rows(con: duckdb.DuckDBPyConnection, month: Month) -> pl.DataFrame:
    """The loaded rows of the data as of ``month`` that count in its year (Arrow, no copies)."""
    return con.execute(
        """
        select psn_no, export_month, psn_part_amt, maf_pay, fulamt_ownpay_amt
        from stg_settlements
        where status = 'loaded' and export_month <= ? and cost_year = ?
        """,
        [str(month), month.year],
    ).pl()


def burden_as_of(rows: pl.DataFrame, month: Month) -> pl.DataFrame:
    """One row per person: every burden measure (``burden__<name>``, fen) as of ``month``."""
    return (
        rows.lazy()
        .filter(pl.col("export_month") <= str(month))
        .group_by("psn_no")
        .agg(_measure_sums())
        .with_columns(pl.lit(str(month)).alias("m"))
        .collect()
    )


def burden_history(rows: pl.DataFrame, persons: pl.Series, month: Month) -> pl.DataFrame:
    """Every burden measure of ``persons`` as of every month from January to ``month``.

    One row per (person, month m); the data as of m are the export folders up to m.
    """
    months = pl.DataFrame({"m": [str(m) for m in Month(month.year, 1).through(month)]})
    per_export = (
        rows.lazy()
        .filter(pl.col("psn_no").is_in(persons.implode()))
        .group_by("psn_no", "export_month")
        .agg(_measure_sums())
    )
    return (
        pl.DataFrame({"psn_no": persons.unique()})
        .lazy()
        .join(months.lazy(), how="cross")
        .join(per_export, left_on=["psn_no", "m"], right_on=["psn_no", "export_month"], how="left")
        .with_columns(pl.col(MEASURE_COLUMNS).fill_null(0))
        .sort("psn_no", "m")
        .with_columns(pl.col(MEASURE_COLUMNS).cum_sum().over("psn_no"))
        .select("psn_no", "m", *MEASURE_COLUMNS)
        .collect()
    )
