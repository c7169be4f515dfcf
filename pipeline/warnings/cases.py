"""Every warning's lifecycle, and the decisions the departments return for it.

Decisions (contract: ``feedback/<department>/…``) are read by ``pipeline.ingest.feedback``;
here each row is matched to a warning routed to its department (``mart_warning_routes``) and
stored per run month in ``feedback_decisions`` (rejections in ``feedback_rejects``).

Choices, stated once:

* **As of a month.** The run of month M keeps the decisions with ``decided_on`` ≤ the last day
  of M (later ones are left for a later month's run, neither accepted nor rejected). A re-run
  of M replaces its partition, so re-reading the same files never adds a row twice.
* **Which decision counts.** For a warning, the latest ``decided_on`` ≤ the end of M wins;
  on the same day the later file (path order), then the later row. Earlier decisions stay
  on record. ``cases`` shows the latest over all departments the warning went to.
* **A row by person.** ``psn_no`` (or ``certno``, through the registry) names the person's
  warning routed to that department, of the latest year whose warning had begun by the
  decision's month; ``warning_type`` is needed only when two warnings remain.
* **Impossible dates**: a day that does not exist (``bad_date``), a day after today
  (``future_date``, checked when read) and a day before the first day of the warning's
  ``first_month`` (``date_before_warning``: a decision cannot precede its warning).
* **Reasons on record** (``feedback_rejects``: file, row, column, reason): ``missing_value``,
  ``unknown_decision``, ``unknown_warning_type``, ``bad_date``, ``future_date``,
  ``unknown_warning`` (no such warning up to M), ``not_routed`` (a warning, but not sent to
  that department), ``ambiguous_warning`` (a person with two warnings there and no
  ``warning_type``), ``date_before_warning``; a whole file: ``unknown_department``,
  ``missing_column``, ``unreadable_file``.
* **Months not run.** ``cases`` lists the warnings found in the months of the year that were
  run up to M; ``first_month`` is the replayed first month (right even if earlier months were
  not run), ``status`` is that of M (which must have been run) or ``resolved``. A warning
  flagged only in months that were never run cannot be listed; ``cases`` names those months.
* **Decisions known for M** come from the latest run of a month ≥ M (the freshest reading of
  the feedback files that covers M), filtered to ``decided_on`` ≤ the end of M.
* **Waiting time.** A package for month F goes out after F ends; a warning routed to a
  department waits from the last day of the first month whose package carried it, to the last
  day of M. It is overdue when it waits more than N days (``overdue_after_days``, default 30)
  without that department's decision.
"""

from __future__ import annotations

import duckdb
import polars as pl

from pipeline.errors import PovwatchError
from pipeline.ingest.feedback import FeedbackRead
from pipeline.months import Month
from pipeline.policy.types import IDENTITY_CODES
from pipeline.warnings.compute import warning_id_expr

CASES_HEADER = "warning_id,psn_no,warning_type,first_month,status,decision,decided_on"
DECISION_COLUMNS = [
    "month",
    "run_id",
    "department",
    "warning_id",
    "psn_no",
    "warning_type",
    "decision",
    "decided_on",
    "note",
    "source_file",
    "source_row",
    "sha256",
]
_ORDER = ["decided_on", "source_file", "source_row"]


def _warnings_up_to(con: duckdb.DuckDBPyConnection, m: Month) -> pl.DataFrame:
    """(year, psn_no, warning_type) → first_month and warning_id, over the months run ≤ M."""
    return (
        con.execute(
            """
            select psn_no, warning_type, min(first_month) as first_month
            from mart_warnings where month <= ?
            group by substr(month, 1, 4), psn_no, warning_type
            """,
            [str(m)],
        )
        .pl()
        .with_columns(pl.col("first_month").alias("month"))
        .with_columns(warning_id_expr(), pl.col("first_month").str.slice(0, 4).alias("year"))
        .drop("month")
    )


def _routes_up_to(con: duckdb.DuckDBPyConnection, m: Month) -> pl.DataFrame:
    """(warning_id, department) → the first month whose package carried it there."""
    return (
        con.execute(
            "select month, psn_no, warning_type, department from mart_warning_routes "
            "where month <= ?",
            [str(m)],
        )
        .pl()
        .with_columns(warning_id_expr())
        .group_by("warning_id", "department")
        .agg(pl.col("month").min().alias("first_routed"))
    )


def apply_feedback(
    con: duckdb.DuckDBPyConnection, m: Month, run_id: str, read: FeedbackRead
) -> list[str]:
    """Match the feedback rows to warnings, store month M's partition; progress lines back."""
    for table in ("feedback_decisions", "feedback_rejects", "feedback_files"):
        con.execute(f"delete from {table} where month = ?", [str(m)])  # noqa: S608 - fixed names
    last_day = m.last_day
    rows = read.rows.with_row_index("_i")
    bad = rows.filter(pl.col("reason").is_not_null())
    ok = rows.filter(pl.col("reason").is_null())
    later = ok.filter(pl.col("decided_on") > last_day)
    due = ok.filter(pl.col("decided_on") <= last_day).with_columns(
        pl.col("decided_on").dt.strftime("%Y-%m").alias("_decided_month")
    )

    warned = _warnings_up_to(con, m)
    routes = _routes_up_to(con, m).join(
        warned.select("warning_id", "psn_no", "warning_type", "first_month", "year"),
        on="warning_id",
    )
    # the registry's persons of the certnos the feedback names (not a province's registry)
    named = due.filter(pl.col("certno").is_not_null()).select("certno").unique()
    fb_certnos = named.to_arrow()  # noqa: F841 (read by name in SQL)
    persons = con.sql(
        "select certno, any_value(psn_no) as _psn from ref_persons "
        "where certno in (select certno from fb_certnos) group by certno"
    ).pl()

    # --- rows naming the warning by its id
    by_id = due.filter(pl.col("warning_id").is_not_null()).drop("psn_no", "warning_type")
    by_id = by_id.join(
        warned.select("warning_id", "psn_no", "warning_type", "first_month"),
        on="warning_id",
        how="left",
    ).join(
        routes.select("warning_id", "department", pl.lit(True).alias("_routed")),
        on=["warning_id", "department"],
        how="left",
    )
    by_id = by_id.with_columns(
        pl.when(pl.col("first_month").is_null())
        .then(pl.lit("unknown_warning"))
        .when(pl.col("_routed").is_null())
        .then(pl.lit("not_routed"))
        .when(pl.col("_decided_month") < pl.col("first_month"))
        .then(pl.lit("date_before_warning"))
        .alias("reason"),
    ).with_columns(
        pl.when(pl.col("reason") == "date_before_warning")
        .then(pl.lit("decided_on"))
        .when(pl.col("reason").is_not_null())
        .then(pl.lit("warning_id"))
        .alias("reason_column")
    )

    # --- rows naming the person (psn_no, or certno through the registry)
    by_psn = (
        due.filter(pl.col("warning_id").is_null())
        .join(persons, on="certno", how="left")
        .with_columns(
            pl.when(pl.col("psn_no").is_not_null())
            .then(pl.lit("psn_no"))
            .otherwise(pl.lit("certno"))
            .alias("_key_column"),
            pl.coalesce("psn_no", "_psn").alias("psn_no"),
        )
        .drop("warning_id", "_psn")
    )
    type_ok = pl.col("warning_type").is_null() | (pl.col("warning_type") == pl.col("_w_type"))
    cand_routes = routes.select(
        "psn_no",
        "department",
        pl.col("warning_type").alias("_w_type"),
        "warning_id",
        "first_month",
        "year",
    )
    cand = by_psn.join(cand_routes, on=["psn_no", "department"]).filter(
        type_ok & (pl.col("first_month") <= pl.col("_decided_month"))
    )
    cand = cand.filter(pl.col("year") == pl.col("year").max().over("_i")).with_columns(
        pl.len().over("_i").alias("_n")
    )
    chosen = cand.filter(pl.col("_n") == 1).select(
        "_i", "warning_id", pl.col("_w_type").alias("_chosen_type"), "first_month"
    )
    ambiguous = cand.filter(pl.col("_n") > 1).select("_i").unique()
    in_dept = by_psn.join(cand_routes, on=["psn_no", "department"]).filter(type_ok)
    anywhere = by_psn.join(
        warned.select("psn_no", pl.col("warning_type").alias("_w_type")), on="psn_no"
    ).filter(type_ok)
    by_psn = by_psn.join(chosen, on="_i", how="left").with_columns(
        pl.when(pl.col("_i").is_in(ambiguous["_i"].implode()))
        .then(pl.lit("ambiguous_warning"))
        .when(pl.col("warning_id").is_not_null())
        .then(pl.lit(None, dtype=pl.String))
        .when(pl.col("_i").is_in(in_dept["_i"].implode()))
        .then(pl.lit("date_before_warning"))
        .when(pl.col("_i").is_in(anywhere["_i"].implode()))
        .then(pl.lit("not_routed"))
        .otherwise(pl.lit("unknown_warning"))
        .alias("reason")
    )
    by_psn = by_psn.with_columns(
        pl.col("_chosen_type").alias("warning_type"),
        pl.when(pl.col("reason") == "ambiguous_warning")
        .then(pl.lit("warning_type"))
        .when(pl.col("reason") == "date_before_warning")
        .then(pl.lit("decided_on"))
        .when(pl.col("reason").is_not_null())
        .then(pl.col("_key_column"))
        .alias("reason_column"),
    )

    matched = pl.concat(
        [
            f.select(
                "_i",
                "department",
                "warning_id",
                "psn_no",
                "warning_type",
                "decision",
                "decided_on",
                "note",
                "source_file",
                "source_row",
                "sha256",
                "reason",
                "reason_column",
            )
            for f in (by_id, by_psn)
        ]
    )
    accepted = matched.filter(pl.col("reason").is_null()).with_columns(
        pl.lit(str(m)).alias("month"), pl.lit(run_id).alias("run_id")
    )
    rejected = pl.concat(
        [
            bad.select("department", "source_file", "source_row", "reason", "reason_column"),
            matched.filter(pl.col("reason").is_not_null()).select(
                "department", "source_file", "source_row", "reason", "reason_column"
            ),
        ]
    ).with_columns(pl.lit(str(m)).alias("month"), pl.lit(run_id).alias("run_id"))

    if accepted.height:
        fd_batch = accepted.select(DECISION_COLUMNS).to_arrow()  # noqa: F841 (read by name in SQL)
        con.execute("insert into feedback_decisions by name select * from fd_batch")
    if rejected.height:
        fr_batch = rejected.to_arrow()  # noqa: F841 (read by name in SQL)
        con.execute("insert into feedback_rejects by name select * from fr_batch")

    def per_file(frame: pl.DataFrame, name: str) -> pl.DataFrame:
        return frame.group_by("source_file").agg(pl.len().alias(name))

    files = pl.DataFrame(
        read.files,
        schema={
            "department": pl.String,
            "source_file": pl.String,
            "sha256": pl.String,
            "rows_read": pl.Int64,
            "blank": pl.Int64,
        },
    )
    for frame, name in ((accepted, "accepted"), (rejected, "rejected"), (later, "later")):
        files = files.join(per_file(frame, name), on="source_file", how="left")
    files = files.with_columns(
        pl.col("accepted", "rejected", "later").fill_null(0).cast(pl.Int64),
        pl.lit(str(m)).alias("month"),
        pl.lit(run_id).alias("run_id"),
    )
    if files.height:
        ff_batch = files.to_arrow()  # noqa: F841 (read by name in SQL)
        con.execute("insert into feedback_files by name select * from ff_batch")

    lines = [
        f"[{m}] feedback {f['source_file']}: {f['accepted']} accepted, {f['rejected']} rejected, "
        f"{f['later']} decided after {m}, {f['blank']} blank"
        for f in files.sort("source_file").iter_rows(named=True)
    ]
    shown = 20
    for r in rejected.sort("source_file", "source_row").head(shown).iter_rows(named=True):
        lines.append(
            f"[{m}] feedback rejected: {r['source_file']} row {r['source_row']} "
            f"column {r['reason_column'] or '-'}: {r['reason']}"
        )
    if rejected.height > shown:
        lines.append(
            f"[{m}] feedback: {rejected.height - shown} more rejected rows (table feedback_rejects)"
        )
    return lines


# ------------------------------------------------------------------------------ reading back


def _ran(con: duckdb.DuckDBPyConnection, month: str) -> bool:
    return bool(
        con.execute(
            "select count(*) from run_ledger where month = ? "
            "and outcome in ('success', 'publishing')",
            [month],
        ).fetchall()[0][0]
    )


def decisions_as_of(con: duckdb.DuckDBPyConnection, m: Month) -> pl.DataFrame:
    """Accepted decisions with decided_on ≤ the end of M, from the freshest run covering M."""
    exists = con.sql(
        "select count(*) from information_schema.tables where table_name = 'feedback_decisions'"
    ).fetchall()[0][0]
    if not exists:  # a warehouse last written before decisions were fed back
        return pl.DataFrame(
            schema={c: pl.Date if c == "decided_on" else pl.String for c in DECISION_COLUMNS}
        ).with_columns(pl.col("source_row").cast(pl.Int32))
    return con.execute(
        """
        with latest as (
            select run_id from run_ledger
            where month >= ? and outcome in ('success', 'publishing')
            order by started_at desc, run_id desc limit 1
        )
        select d.* from feedback_decisions d join latest using (run_id)
        where d.decided_on <= ?
        """,
        [str(m), m.last_day],
    ).pl()


def report_decisions(con: duckdb.DuckDBPyConnection, m: Month) -> pl.DataFrame:
    """For the reports of M (inside M's run): per warning_id, the decision that counts as
    known at the end of M over all departments — columns warning_id, decision, decided_on."""
    decisions = con.execute(
        "select * from feedback_decisions where month = ? and decided_on <= ?",
        [str(m), m.last_day],
    ).pl()
    return latest_decision(decisions, ["warning_id"]).select("warning_id", "decision", "decided_on")


def latest_decision(decisions: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    """The decision that counts per key: latest decided_on, then later file, then later row."""
    return decisions.sort(_ORDER).group_by(by, maintain_order=True).last()


def cases_frame(con: duckdb.DuckDBPyConnection, m: Month) -> tuple[pl.DataFrame, list[str]]:
    """Every warning of M's year up to M with its lifecycle (contract columns), and the months
    of the year that were not run (their warnings can only show through the months that were).
    """
    if not _ran(con, str(m)):
        raise PovwatchError(f"month {m} has not been run yet (povwatch run --month {m})")
    months = [str(x) for x in Month(m.year, 1).through(m)]
    ran = {
        r[0]
        for r in con.execute(
            "select distinct month from run_ledger where month between ? and ? "
            "and outcome in ('success', 'publishing')",
            [months[0], months[-1]],
        ).fetchall()
    }
    year = con.execute(
        """
        select psn_no, warning_type, min(first_month) as first_month,
               any_value(status) filter (where month = ?) as status_now
        from mart_warnings where month between ? and ?
        group by psn_no, warning_type
        """,
        [str(m), months[0], str(m)],
    ).pl()
    decided = latest_decision(decisions_as_of(con, m), ["warning_id"]).select(
        "warning_id", "decision", pl.col("decided_on").dt.strftime("%Y-%m-%d")
    )
    out = (
        year.with_columns(pl.lit(str(m)).alias("month"))
        .with_columns(warning_id_expr())
        .join(decided, on="warning_id", how="left")
        .select(
            "warning_id",
            "psn_no",
            "warning_type",
            "first_month",
            pl.col("status_now").fill_null("resolved").alias("status"),
            "decision",
            "decided_on",
        )
        .sort("psn_no", "warning_type")
    )
    return out, [x for x in months if x not in ran]


def cases_csv(frame: pl.DataFrame) -> str:
    body = frame.write_csv(include_header=True, line_terminator="\r\n")
    assert body.splitlines()[0] == CASES_HEADER
    return body


# ------------------------------------------------------------------------------ follow-up


def followup_rows(
    con: duckdb.DuckDBPyConnection, m: Month, overdue_after_days: int = 30
) -> pl.DataFrame:
    """Per warning of M's year routed to a department up to M (the run of M's view):

    ``previous_decision``/``previous_decided_on`` (that department's decision that counts),
    ``days_waiting`` and ``overdue`` while undecided (open warnings only), ``open`` (flagged in
    M) and ``not_reflected`` (an identity was decided but the identities feed of M does not
    give the person that identity on M's last day). Keys: psn_no, warning_type, department.
    """
    first = str(Month(m.year, 1))
    routes = (
        con.execute(
            """
            select r.month, r.psn_no, r.warning_type, r.department, w.admdvs
            from mart_warning_routes r
            join mart_warnings w using (month, psn_no, warning_type)
            where r.month between ? and ?
            """,
            [first, str(m)],
        )
        .pl()
        .with_columns(warning_id_expr())
        .sort("month")
        .group_by("warning_id", "psn_no", "warning_type", "department")
        .agg(
            pl.col("month").min().alias("first_routed"),
            pl.col("admdvs").last().alias("admdvs"),
            (pl.col("month").max() == str(m)).alias("open"),
        )
    )
    decisions = con.execute(
        "select * from feedback_decisions where month = ? and decided_on <= ?",
        [str(m), m.last_day],
    ).pl()
    latest = latest_decision(decisions, ["warning_id", "department"]).select(
        "warning_id",
        "department",
        pl.col("decision").alias("previous_decision"),
        pl.col("decided_on").alias("previous_decided_on"),
    )
    in_force = con.execute(
        """
        select distinct psn_no, identity from ref_identities
        where begin_date <= ? and (end_date is null or end_date >= ?)
        """,
        [m.last_day, m.last_day],
    ).pl()
    last_of_first = (
        pl.col("first_routed").str.to_date("%Y-%m").dt.month_end()
    )  # the package went out after this day
    out = (
        routes.join(latest, on=["warning_id", "department"], how="left")
        .join(
            in_force.with_columns(pl.lit(True).alias("_held")),
            left_on=["psn_no", "previous_decision"],
            right_on=["psn_no", "identity"],
            how="left",
        )
        .with_columns(
            pl.when(pl.col("previous_decision").is_null() & pl.col("open"))
            .then((pl.lit(m.last_day) - last_of_first).dt.total_days())
            .alias("days_waiting"),
        )
        .with_columns(
            (pl.col("days_waiting") > overdue_after_days).fill_null(False).alias("overdue"),
            (
                pl.col("previous_decision").is_in(list(IDENTITY_CODES)) & pl.col("_held").is_null()
            ).alias("not_reflected"),
        )
        .drop("_held")
        .sort("department", "admdvs", "psn_no", "warning_type")
    )
    return out


def followup_summary(rows: pl.DataFrame) -> pl.DataFrame:
    """Per department × county: warnings open in M, decided, pending, overdue, not reflected."""
    return (
        rows.group_by("department", "admdvs")
        .agg(
            pl.col("open").sum().alias("warnings"),
            (pl.col("open") & pl.col("previous_decision").is_not_null()).sum().alias("decided"),
            (pl.col("open") & pl.col("previous_decision").is_null()).sum().alias("pending"),
            pl.col("overdue").sum().alias("overdue"),
            pl.col("not_reflected").sum().alias("not_reflected"),
        )
        .with_columns(pl.exclude("department", "admdvs").cast(pl.Int64))
        .sort("department", "admdvs")
    )


def store_followup(
    con: duckdb.DuckDBPyConnection, m: Month, overdue_after_days: int = 30
) -> pl.DataFrame:
    """Compute the follow-up of M, store its summary in ``mart_decision_followup``; return the
    per-warning rows (for the 台账: previous decision, days waiting)."""
    rows = followup_rows(con, m, overdue_after_days)
    summary = followup_summary(rows).with_columns(pl.lit(str(m)).alias("month"))
    con.execute("delete from mart_decision_followup where month = ?", [str(m)])
    if summary.height:
        fu_batch = summary.to_arrow()  # noqa: F841 (read by name in SQL)
        con.execute("insert into mart_decision_followup by name select * from fu_batch")
    return rows
