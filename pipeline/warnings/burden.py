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


_SQL_MEASURES = {
    "after_insurance": "psn_part_amt + maf_pay",
    "after_insurance_and_assistance": "psn_part_amt",
    "after_insurance_in_catalogue": "psn_part_amt + maf_pay - fulamt_ownpay_amt",
    "after_insurance_and_assistance_in_catalogue": "psn_part_amt - fulamt_ownpay_amt",
}
assert set(_SQL_MEASURES) == set(BURDEN_MEASURES)
_SQL_SUMS = ", ".join(
    f"cast(sum({_SQL_MEASURES[name]}) as bigint) as burden__{name}" for name in BURDEN_MEASURES
)


_FULL_YEAR = f"""
    select psn_no, {_SQL_SUMS}
    from stg_settlements
    where status = 'loaded' and export_month <= $month and cost_year = $year
    group by psn_no
"""
_MONTH_ROWS = f"""
    select psn_no, {_SQL_SUMS}
    from stg_settlements
    where status = 'loaded' and export_month = $month and cost_year = $year
    group by psn_no
"""
_ADD = ", ".join(f"coalesce(s.{c}, 0) + coalesce(n.{c}, 0) as {c}" for c in MEASURE_COLUMNS)


def _onto_prev(rows: str) -> str:
    """The totals through the month before ($prev) plus ``rows`` (a query of psn_key and the
    measures, every row keyed), added by key."""
    return f"""
        select coalesce(s.psn_key, n.psn_key) as psn_key, {_ADD}
        from (select * exclude (through_month) from state_burden where through_month = $prev) s
        full join ({rows}) n using (psn_key)
    """


# The running totals through the month before plus the month's own rows (state.py). The
# totals are kept by an integer key per person (state_keys; a month's run writes every
# person's totals, and 5M person numbers as text cost seconds to write each month): the sums
# are added by key, and the month's persons without a key yet are new to the year's totals.
_INCREMENT = f"""
    with n as (
        select r.*, k.psn_key from ({_MONTH_ROWS}) r left join state_keys k using (psn_no)
    ),
    keyed as ({_onto_prev("select * exclude (psn_no) from n where psn_key is not null")})
    select k.psn_no, {", ".join(f"keyed.{c}" for c in MEASURE_COLUMNS)}
    from keyed join state_keys k using (psn_key)
    union all by name
    select * exclude (psn_key) from n where psn_key is null
"""


def year_to_date_sql(con: duckdb.DuckDBPyConnection, month: Month) -> tuple[str, dict]:
    """SQL (and its parameters) of every person's burden measures as of ``month``: one row per
    person with a loaded row of the year. From the running totals through the month before
    when they still hold (``state.py``), else from the year's rows; the same sums either way.
    """
    params = {"month": str(month), "year": month.year}
    if _incremental(con, month):
        return _INCREMENT, {**params, "prev": str(month.plus(-1))}
    return _FULL_YEAR, params


def _incremental(con: duckdb.DuckDBPyConnection, month: Month) -> bool:
    """Whether the running totals through the month before ``month`` still hold."""
    from pipeline.warnings import state

    prev = month.plus(-1)
    return month.month > 1 and state.valid(con, "burden", prev, state.staged_fingerprint(con, prev))


def burden_as_of_sql(
    con: duckdb.DuckDBPyConnection, month: Month, above_fen: int | None = None
) -> pl.DataFrame:
    """:func:`burden_as_of` summed inside DuckDB: one row per person leaves the warehouse,
    not every settlement row of the year. ``above_fen``: only persons with some measure
    strictly above it (the lowest threshold; the rest of the population never leaves DuckDB).
    """
    query, params = year_to_date_sql(con, month)
    return _above(con, f"({query})", params, month, above_fen)


def _above(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    params: dict,
    month: Month,
    above_fen: int | None,
) -> pl.DataFrame:
    where = "" if above_fen is None else f"where greatest({', '.join(MEASURE_COLUMNS)}) > $above"
    return con.execute(
        f"select psn_no, {', '.join(MEASURE_COLUMNS)}, $m as m from {relation} {where}",
        {**params, "m": str(month), **({} if above_fen is None else {"above": above_fen})},
    ).pl()


def store_year_to_date(
    con: duckdb.DuckDBPyConnection, month: Month, above_fen: int | None = None
) -> pl.DataFrame:
    """:func:`burden_as_of_sql`, keeping every person's sums as the running totals through
    ``month`` (``state_burden``, by ``state_keys``' key) for the next month.

    The rows added to the totals through the month before (the month's own rows), or to
    nothing (the year's rows, when those totals do not hold), are summed per person; the
    persons without a key get the next keys in psn_no order; the totals are added by key.
    """
    from pipeline.warnings import state

    incremental = _incremental(con, month)
    # (replace keeps the month before's totals, which the increment reads)
    state.replace(con, "burden", month, state.staged_fingerprint(con, month))
    con.execute(
        "create or replace temp table _burden_add as select r.*, k.psn_key "
        f"from ({_MONTH_ROWS if incremental else _FULL_YEAR}) r "
        "left join state_keys k using (psn_no)",
        {"month": str(month), "year": month.year},
    )
    try:
        con.execute(
            """
            insert into state_keys
            select psn_no, (select coalesce(max(psn_key), 0) from state_keys)
                           + row_number() over (order by psn_no)
            from _burden_add where psn_key is null
            """
        )
        added = (
            "select k.psn_key, a.* exclude (psn_no, psn_key) "
            "from _burden_add a join state_keys k using (psn_no) where a.psn_key is null "
            "union all by name select * exclude (psn_no) from _burden_add where psn_key is not null"
        )
        if incremental:  # onto the totals through the month before
            con.execute(
                f"insert into state_burden by name select $m as through_month, * "
                f"from ({_onto_prev(added)})",
                {"m": str(month), "prev": str(month.plus(-1))},
            )
        else:  # the year's sums are the totals
            con.execute(
                f"insert into state_burden by name select $m as through_month, * from ({added})",
                {"m": str(month)},
            )
    finally:
        con.execute("drop table if exists _burden_add")
    return _above(
        con,
        "(select k.psn_no, b.* exclude (through_month, psn_key) from state_burden b "
        "join state_keys k using (psn_key) where b.through_month = $m)",
        {},
        month,
        above_fen,
    )


def per_export_sql(
    con: duckdb.DuckDBPyConnection, persons: pl.Series, month: Month
) -> pl.DataFrame:
    """Every burden measure of ``persons`` per export month of ``month``'s year (in DuckDB)."""
    # read by name in the SQL below (warehouse.py, "Frames into SQL")
    _replay_persons = pl.DataFrame({"psn_no": persons.unique()}).to_arrow()  # noqa: F841
    return con.execute(
        f"""
        select psn_no, export_month, {_SQL_SUMS}
        from stg_settlements semi join _replay_persons using (psn_no)
        where status = 'loaded' and export_month <= ? and cost_year = ?
        group by psn_no, export_month
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


def burden_history(
    rows: pl.DataFrame | None,
    persons: pl.Series,
    month: Month,
    per_export: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Every burden measure of ``persons`` as of every month from January to ``month``.

    One row per (person, month m); the data as of m are the export folders up to m. From the
    loaded ``rows``, or from their sums ``per_export`` (:func:`per_export_sql`).
    """
    months = pl.DataFrame({"m": [str(m) for m in Month(month.year, 1).through(month)]})
    if per_export is None:
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
        .join(
            per_export.lazy(),
            left_on=["psn_no", "m"],
            right_on=["psn_no", "export_month"],
            how="left",
        )
        .with_columns(pl.col(MEASURE_COLUMNS).fill_null(0))
        .sort("psn_no", "m")
        .with_columns(pl.col(MEASURE_COLUMNS).cum_sum().over("psn_no"))
        .select("psn_no", "m", *MEASURE_COLUMNS)
        .collect()
    )
