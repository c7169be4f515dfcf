"""The assistance audit: what the policy entitles each person to, year to date, against what
``maf_pay`` actually paid — per person and per county, under- and over-payments flagged.

A difference within the tolerance (0.01 yuan = 1 fen) either way is ``ok``; above it
``under`` (the person was paid less than entitled), below it ``over``; a person whose
entitlement could not be computed (no assistance section, a value left to the locality, an
income figure not in force) is ``not_computed`` and never counted as under or over.
"""

from __future__ import annotations

import duckdb
import polars as pl

from pipeline.assistance.entitlement import (
    ENTITLEMENT_SCHEMA,
    Terms,
    entitlements_for_month,
    month_terms,
    newly_held,
)
from pipeline.labels import ASSISTANCE_COLUMNS, ASSISTANCE_STATUSES, COUNTIES
from pipeline.money import fen_text, yuan
from pipeline.months import Month
from pipeline.policy.load import PolicySet
from pipeline.warnings import state

TOLERANCE_FEN = 1
MART_COLUMNS = [*ENTITLEMENT_SCHEMA, "status"]
CSV_HEADER = "month,psn_no,admdvs,category,policy_id,eligible_cost,entitled,paid,difference"


def status_expr(tolerance_fen: int = TOLERANCE_FEN) -> pl.Expr:
    d = pl.col("difference_fen")
    return (
        pl.when(pl.col("entitled_fen").is_null())
        .then(pl.lit("not_computed"))
        .when(d > tolerance_fen)
        .then(pl.lit("under"))
        .when(d < -tolerance_fen)
        .then(pl.lit("over"))
        .otherwise(pl.lit("ok"))
        .alias("status")
    )


def audit(entitlements: pl.DataFrame) -> pl.DataFrame:
    """The entitlement frame with ``status`` (mart_assistance's columns)."""
    return entitlements.with_columns(status_expr()).select(MART_COLUMNS)


def store_assistance(
    con: duckdb.DuckDBPyConnection, month: Month, policies: PolicySet
) -> pl.DataFrame:
    """Compute the month's entitlements and audit, replace the month in mart_assistance.

    A person's row as of M differs from theirs as of M − 1 only when they have rows loaded
    from M's export (of an identity holder, or paid by assistance) or an identity of theirs
    takes effect within M — the year, the terms and everything loaded earlier being the same.
    So when the month before's rows were computed from the same staged months, reference
    tables and terms (``state_meta`` kind ``assistance``), only those persons are computed and
    the others' rows carried over; otherwise everyone is computed. The rows are the same
    either way (tests compare them).
    """
    terms = month_terms(con, month, policies)
    inputs = _inputs(con, terms)
    prev = month.plus(-1)
    carried = month.month > 1 and state.valid(
        con, "assistance", prev, _fingerprint(con, prev, inputs)
    )
    if carried:
        affected = pl.concat(
            [
                con.execute(
                    # (of the others, the new rows change nothing: no category, no pay)
                    "select distinct psn_no from stg_settlements "
                    "where export_month = ? and status = 'loaded' and (maf_pay <> 0 "
                    "or psn_no in (select psn_no from ref_identities))",
                    [str(month)],
                ).pl(),
                newly_held(con, month, terms),
            ]
        ).unique()
        # registered: entitlements_for_month's queries read it by name
        # (warehouse.REGISTERED_FRAMES)
        con.register("a_affected", affected.to_arrow())
        try:
            fresh = audit(entitlements_for_month(con, month, policies, terms, "a_affected"))
            a_batch = fresh.to_arrow()  # noqa: F841 (read by name in SQL)
            con.execute("delete from mart_assistance where month = ?", [str(month)])
            # the carried rows and the fresh ones, in psn_no order as a full computation's
            con.execute(
                """
                insert into mart_assistance by name
                select * from (
                    select * replace (?::varchar as month) from mart_assistance
                    where month = ? and psn_no not in (select psn_no from a_affected)
                    union all by name
                    select * from a_batch
                ) order by psn_no
                """,
                [str(month), str(prev)],
            )
        finally:
            con.unregister("a_affected")
        cols = ", ".join(MART_COLUMNS)
        frame = con.execute(
            f"select {cols} from mart_assistance where month = ? order by psn_no", [str(month)]
        ).pl()
        frame = frame.cast(fresh.schema)  # type: ignore[arg-type]
    else:
        frame = audit(entitlements_for_month(con, month, policies, terms))
        con.execute("delete from mart_assistance where month = ?", [str(month)])
        if frame.height:
            a_batch = frame.to_arrow()  # noqa: F841 (read by name in SQL)
            con.execute("insert into mart_assistance by name select * from a_batch")
    state.record(con, "assistance", month, _fingerprint(con, month, inputs))
    return frame


def _inputs(con: duckdb.DuckDBPyConnection, terms: Terms) -> list:
    """What the month's rows are computed from besides the staged months: the reference
    tables and the resolved terms."""
    ref = con.execute("select inputs_digest from ref_state order by 1").fetchall()
    return [ref, state.terms_digest(terms.regions, terms.categories, terms.rules, terms.tiers)]


def _fingerprint(con: duckdb.DuckDBPyConnection, through: Month, inputs: list) -> str:
    """What mart_assistance's rows through ``through`` were computed from (``_inputs``)."""
    return state.digest([state.staged_fingerprint(con, through), *inputs])


def by_county(frame: pl.DataFrame) -> pl.DataFrame:
    """Per county: persons, entitled and paid (computed persons only), and the under- and
    over-payments (count and fen), plus persons not computed."""
    computed = pl.col("status") != "not_computed"
    return (
        frame.group_by("admdvs")
        .agg(
            pl.len().alias("persons"),
            pl.col("entitled_fen").filter(computed).sum().alias("entitled_fen"),
            pl.col("paid_fen").filter(computed).sum().alias("paid_fen"),
            (pl.col("status") == "under").sum().alias("under_persons"),
            pl.col("difference_fen").filter(pl.col("status") == "under").sum().alias("under_fen"),
            (pl.col("status") == "over").sum().alias("over_persons"),
            (-pl.col("difference_fen")).filter(pl.col("status") == "over").sum().alias("over_fen"),
            (~computed).sum().alias("not_computed"),
        )
        .sort("admdvs")
    )


def summary_line(frame: pl.DataFrame) -> str:
    """One line for the run's progress output (counts and yuan, never a person)."""
    c = by_county(frame).select(pl.exclude("admdvs").sum()).row(0, named=True)
    if not frame.height:
        return "assistance audit: nobody held a category or was paid"
    return (
        f"assistance audit: {c['persons']} persons, entitled {yuan(c['entitled_fen'])} vs paid "
        f"{yuan(c['paid_fen'])}; under-paid {c['under_persons']} ({yuan(c['under_fen'])}), "
        f"over-paid {c['over_persons']} ({yuan(c['over_fen'])}), not computed "
        f"{c['not_computed']}"
    )


def largest_underpayments(frame: pl.DataFrame, per_county: int = 20) -> pl.DataFrame:
    """The largest under-payments of each county (for the civil-affairs sheet), with the
    sheet's Chinese column names and money as yuan text; counties in code order, the largest
    difference first, then psn_no."""
    return (
        frame.filter(pl.col("status") == "under")
        .sort(["admdvs", "difference_fen", "psn_no"], descending=[False, True, False])
        .group_by("admdvs", maintain_order=True)
        .head(per_county)
        .select(
            "admdvs",
            pl.col("admdvs").replace_strict(COUNTIES, default="").alias("county"),
            "psn_no",
            pl.col("category_label").fill_null(""),
            "policy_id",
            fen_text(pl.col("eligible_cost_fen")).alias("eligible_cost"),
            fen_text(pl.col("entitled_fen")).alias("entitled"),
            fen_text(pl.col("paid_fen")).alias("paid"),
            fen_text(pl.col("difference_fen")).alias("difference"),
            pl.col("status").replace_strict(ASSISTANCE_STATUSES),
        )
        .rename(ASSISTANCE_COLUMNS)
    )


def assistance_frame(con: duckdb.DuckDBPyConnection, month: Month) -> pl.DataFrame:
    """mart_assistance for a month (the audit frame), sorted by psn_no."""
    return con.execute(
        "select * from mart_assistance where month = ? order by psn_no", [str(month)]
    ).pl()


def format_assistance(frame: pl.DataFrame) -> str:
    """The contract's CSV: money with two decimals, empty when not computed, by psn_no."""
    out = frame.sort("psn_no").select(
        "month",
        "psn_no",
        "admdvs",
        "category",  # empty: paid without an assistance category
        "policy_id",
        fen_text(pl.col("eligible_cost_fen")).alias("eligible_cost"),
        fen_text(pl.col("entitled_fen")).alias("entitled"),  # empty: not computed
        fen_text(pl.col("paid_fen")).alias("paid"),
        fen_text(pl.col("difference_fen")).alias("difference"),
    )
    body = out.write_csv(include_header=True, line_terminator="\r\n", null_value="")
    assert body.splitlines()[0] == CSV_HEADER
    return body
