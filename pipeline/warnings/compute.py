"""The month's warnings: flag every person against the rules in force, with first_month/status."""

from __future__ import annotations

import duckdb
import polars as pl

from pipeline.months import Month
from pipeline.warnings.burden import (
    burden_as_of_sql,
    burden_history,
    per_export_sql,
)
from pipeline.warnings.rules import flag, identities_by_month

# mart_warnings, one row per person and warning type; then what the report needs besides.
WARNING_SCHEMA: dict[str, pl.DataType] = {
    "month": pl.String,
    "psn_no": pl.String,
    "hh_id": pl.String,
    "admdvs": pl.String,
    "warning_type": pl.String,
    "rule_id": pl.String,
    "burden_ytd_fen": pl.Int64,
    "threshold_fen": pl.Int64,
    "first_month": pl.String,
    "status": pl.String,
    "policy_id": pl.String,
    "policy_version": pl.String,
    "income_admdvs": pl.String,
    "income_year": pl.Int32,
    "income_scope": pl.String,
    "identities": pl.String,
    "rural": pl.Int32,
    "insutype": pl.String,
}
WARNING_COLUMNS = list(WARNING_SCHEMA)[:-2]  # the mart's columns (not rural, insutype)


def compute_warnings(
    con: duckdb.DuckDBPyConnection, m: Month, registry: pl.DataFrame, rules: pl.DataFrame
) -> pl.DataFrame:
    """The month's warnings: one row per person and warning type, sorted by psn_no."""
    months = Month(m.year, 1).through(m)
    identities = con.sql("select psn_no, identity, begin_date, end_date from ref_identities").pl()
    hh_size = registry.group_by("hh_id").agg(pl.len().cast(pl.Int64).alias("hh_size"))
    people = registry.select("psn_no", "hh_id", "admdvs", "insutype", "rural").join(
        hh_size, on="hh_id", how="left"
    )
    # Sums per person (and per export month for the replay) are taken inside DuckDB.
    # A person whose every measure is at most the lowest threshold is flagged by no person
    # rule: those stay in DuckDB (household rules need every member's burden).
    lowest = rules["threshold_fen"].min() if rules.height else None
    person_rules = lowest is not None and (rules["unit"] == "person").all()
    burden = burden_as_of_sql(con, m, int(lowest) if person_rules else None)
    now = flag(burden, people, identities_by_month(identities, [m]), rules)
    if now.height == 0:
        return pl.DataFrame(schema=WARNING_SCHEMA)
    # first_month: replay the months of the year for the persons warned now (and, for
    # household rules, the members of their households).
    replay = people.filter(pl.col("hh_id").is_in(now["hh_id"].implode()))["psn_no"]
    history = flag(
        burden_history(None, replay, m, per_export_sql(con, replay, m)),
        people,
        identities_by_month(identities.filter(pl.col("psn_no").is_in(replay.implode())), months),
        rules,
    )
    first = history.group_by("psn_no", "warning_type").agg(pl.col("m").min().alias("first_month"))
    return (
        now.join(first, on=["psn_no", "warning_type"], how="left")
        .with_columns(
            pl.lit(str(m)).alias("month"),
            pl.when(pl.col("first_month") == str(m))
            .then(pl.lit("new"))
            .otherwise(pl.lit("continuing"))
            .alias("status"),
            pl.col("identities").list.join(",").alias("identities"),
        )
        .select(*WARNING_SCHEMA)
        .sort("psn_no", "warning_type")
    )


def warning_id_expr() -> pl.Expr:
    """预警编号: stable for a person, warning type and year (contract: feedback).

    ``<year>-R-<psn_no>`` for relapse, ``<year>-I-<psn_no>`` for impoverishment; needs the
    columns ``month`` (YYYY-MM), ``warning_type`` and ``psn_no``.
    """
    kind = pl.when(pl.col("warning_type") == "relapse").then(pl.lit("R")).otherwise(pl.lit("I"))
    return pl.format("{}-{}-{}", pl.col("month").str.slice(0, 4), kind, pl.col("psn_no")).alias(
        "warning_id"
    )
