"""The run ledger, as people read it: `povwatch status`."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from pipeline.errors import PovwatchError, shown
from pipeline.money import yuan
from pipeline.months import Month
from pipeline.store.warehouse import connect


def status_text(db: Path, month: Month | None = None) -> str:
    con = connect(db, read_only=True)
    try:
        where, params = ("where month = ?", [str(month)]) if month else ("", [])
        runs = con.execute(
            f"""
            select run_id, month, outcome, started_at, finished_at, warnings, message
            from run_ledger {where} order by started_at, run_id
            """,  # noqa: S608 - fixed clause, value bound
            params,
        ).fetchall()
        lines = []
        if not runs:
            return f"no runs{f' for {month}' if month else ''} in {shown(db)}\n"
        for run_id, m, outcome, started, finished, n, message in runs:
            took = f"{(finished - started).total_seconds():.1f} s" if finished else "-"
            lines.append(
                f"{m}  {outcome:<7}  {run_id}  started {started:%Y-%m-%d %H:%M:%S} UTC  {took}"
                + (f"  warnings {n}" if n is not None else "")
                + (f"  — {message}" if message else "")
            )
        stale = [m for m in stale_months(con) if month is None or m == str(month)]
        if stale:
            lines.append(f"stale: {', '.join(stale)} ({_STALE}; {_redo(stale)})")
        last = runs[-1][0] if month else None
        if last:
            files = con.execute(
                """
                select export_month, source_file, rows_read, loaded, duplicate, skipped,
                       quarantined, medfee_read_fen, medfee_loaded_fen, burden_loaded_fen
                from ledger_files where run_id = ? order by export_month, source_file
                """,
                [last],
            ).fetchall()
            has_quality = con.sql(
                "select count(*) from information_schema.tables "
                "where table_name = 'quality_results'"
            ).fetchall()[0][0]
            if has_quality:
                passed, total, suites = con.sql(
                    "select count(*) filter (where success), count(*), count(distinct suite) "
                    "from quality_results where run_id = ?",
                    params=[last],
                ).fetchall()[0]
                if total:
                    lines.append(f"quality: {passed}/{total} expectations passed ({suites} suites)")
            lines += _feedback_lines(con, last)
            lines += _delivery_lines(con, last)
            if files:
                lines.append("")
                lines.append(
                    "export   file  read = loaded + duplicate + skipped + quarantined  "
                    "medfee read / loaded (yuan)  burden loaded (yuan)"
                )
                for em, f, r, lo, d, s, q, mr, ml, bl in files:
                    ok = "ok" if r == lo + d + s + q else "MISMATCH"
                    lines.append(
                        f"{em}  {f}  {r} = {lo} + {d} + {s} + {q} [{ok}]  "
                        f"{yuan(mr)} / {yuan(ml)}  {yuan(bl)}"
                    )
            inputs = con.execute("select inputs from run_ledger where run_id = ?", [last])
            reference = json.loads(inputs.fetchall()[0][0] or "[]")
            if reference:
                lines.append("")
                lines.append("reference  file  read  rejected (ref_rejects: reason, column)")
                lines.extend(
                    f"{r['kind']}  {r['file']}  {r['rows']}  {r['rejected']}" for r in reference
                )
        return "\n".join(lines) + "\n"
    finally:
        con.close()


def _delivery_lines(con, run_id: str) -> list[str]:
    """What the run delivered where (``run_ledger.deliveries``), one line per destination."""
    has = con.sql(
        "select count(*) from information_schema.columns "
        "where table_name = 'run_ledger' and column_name = 'deliveries'"
    ).fetchall()[0][0]
    if not has:
        return []
    raw = con.execute("select deliveries from run_ledger where run_id = ?", [run_id]).fetchall()
    if not raw or not raw[0][0]:
        return []
    return [
        f"delivery: {d['destination']} ({d['kind']}): {d['delivered']} delivered, "
        f"{d['unchanged']} unchanged, {d['failed']} failed"
        for d in json.loads(raw[0][0])
    ]


def _feedback_lines(con, run_id: str) -> list[str]:
    """Decisions fed back as the run read them (``feedback_files``)."""
    has = con.sql(
        "select count(*) from information_schema.tables where table_name = 'feedback_files'"
    ).fetchall()[0][0]
    if not has:
        return []
    files, accepted, rejected, later = con.execute(
        "select count(*), coalesce(sum(accepted), 0), coalesce(sum(rejected), 0), "
        "coalesce(sum(later), 0) from feedback_files where run_id = ?",
        [run_id],
    ).fetchall()[0]
    if not files:
        return []
    return [
        f"feedback: {files} files, {accepted} decisions accepted, {rejected} rows rejected "
        f"(povwatch feedback), {later} decided after the month"
    ]


def last_success(db: Path, month: Month) -> str | None:
    """The run id of the month's latest run when that run succeeded, else None."""
    if not db.exists():
        return None
    con = connect(db, read_only=True)
    try:
        has_ledger = con.sql(
            "select count(*) from information_schema.tables where table_name = 'run_ledger'"
        ).fetchall()[0][0]
        if not has_ledger:
            return None
        rows = con.execute(
            "select run_id, outcome from run_ledger where month = ? and outcome <> 'dry_run' "
            "order by started_at desc, run_id desc limit 1",
            [str(month)],
        ).fetchall()
    finally:
        con.close()
    return rows[0][0] if rows and rows[0][1] == "success" else None


def stale_months(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Months whose latest run read other settlement exports than the warehouse now holds.

    A month's data are the export folders up to it (contract). Running an earlier month again
    after one of those folders changed (a late or corrected file, a file removed) reads the
    folder again, so every later month already run was computed from what the folder held
    before: its warnings, cases and reports stay as they were until it is run again. Compared
    by file and sha256 (``ledger_files`` of the month's latest run against ``ingested_files``).
    """
    try:
        return _stale_months(con)
    except duckdb.CatalogException:  # a warehouse of an older version, opened read-only
        return []


def _stale_months(con: duckdb.DuckDBPyConnection) -> list[str]:
    rows = con.execute(
        """
        with latest as (
            select month, run_id
            from run_ledger where outcome in ('success', 'publishing')
            qualify row_number() over (
                partition by month order by started_at desc, run_id desc) = 1
        ),
        used as (
            select l.month, f.export_month, f.source_file, f.sha256
            from latest as l join ledger_files as f on f.run_id = l.run_id
        ),
        held as (
            select l.month, i.export_month, i.source_file, i.sha256
            from latest as l join ingested_files as i on i.export_month <= l.month
        )
        select distinct month from (
            (select * from used except select * from held)
            union all
            (select * from held except select * from used)
        )
        order by month
        """
    ).fetchall()
    return [month for (month,) in rows]


def stale_of(db: Path, after: Month | None = None, month: Month | None = None) -> list[str]:
    """:func:`stale_months` of the warehouse at ``db`` that are later than ``after`` (a run
    just made) or ``month`` itself (one being read). Opened read-only."""
    con = connect(db, read_only=True)
    try:
        months = stale_months(con)
    finally:
        con.close()
    return [m for m in months if (after is not None and m > str(after)) or m == str(month or "")]


_STALE = "computed from settlement exports that have changed since"


def _redo(months: list[str]) -> str:
    return f"povwatch backfill --from {months[0]} --to {months[-1]}"


def stale_note(months: list[str]) -> str | None:
    """One line for the user naming ``months`` (:func:`stale_months`) and how to redo them."""
    if not months:
        return None
    one = len(months) == 1
    return (
        f"povwatch: note: {', '.join(months)} {'was' if one else 'were'} {_STALE}; "
        f"run {'it' if one else 'them'} again: {_redo(months)}"
    )


def require_run(con, db: Path, month: Month | str, *, or_later: bool = False) -> None:
    """Stop with one line unless ``month`` (or, with ``or_later``, a later month, whose run has
    staged every export up to it) has a successful run in the ledger."""
    ran = con.execute(
        f"select count(*) from run_ledger where month {'>=' if or_later else '='} ? "
        "and outcome in ('success', 'publishing')",
        [str(month)],
    ).fetchall()[0][0]
    if not ran:
        raise PovwatchError(
            f"{shown(db)}: month {month} has not been run yet (povwatch run --month {month})"
        )
