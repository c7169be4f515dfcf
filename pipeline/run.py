"""The composition root: one monthly run, the same from the CLI, Airflow and tests.

Stages, in order (the Airflow DAG runs each as a task; ``run_month`` calls them one after
the other): ``compute_month`` — ingest → stage → gates → burden → warnings → ledger, inside one
DuckDB transaction (a failure leaves the warehouse as it was; a ``failed`` ledger row is written
afterwards), then the month published as Parquet; ``write_county_reports`` per county, from
that Parquet; ``write_summary`` (summary, manifest); ``deliver`` (packages to their
destinations); ``close_ledger``. Feedback read and follow-up are part of the transaction.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import duckdb
import polars as pl

from pipeline import code_version
from pipeline.assistance.audit import store_assistance, summary_line
from pipeline.delivery.config import load_config, overdue_after_days
from pipeline.delivery.deliver import deliver_packages
from pipeline.delivery.outbox import edited_files, is_department_file, set_aside_edited
from pipeline.errors import PovwatchError
from pipeline.ingest.feedback import feedback_roots, read_feedback
from pipeline.ingest.load import (
    IngestReport,
    classify_settlements,
    ingest_settlements,
    load_reference,
)
from pipeline.ingest.readers import list_files
from pipeline.months import Month
from pipeline.policy.load import PolicySet
from pipeline.quality import gates as quality
from pipeline.quality import quarantine
from pipeline.reports.frame import ReportData, households_of, report_data, underpaid_rows
from pipeline.reports.package import finish_packages, report_counties, write_county_packages
from pipeline.reports.pdf import workers_kept as pdf_workers_kept
from pipeline.settings import Settings
from pipeline.store import published
from pipeline.store.files import restrict_tree, set_private_umask
from pipeline.store.warehouse import (
    AFTER_STAGING_BYTES_PER_ROW,
    INGEST_BYTES,
    connect,
    fit_memory,
    out_of_memory,
    transaction,
)
from pipeline.warnings.cases import (
    apply_feedback,
    followup_summary,
    report_decisions,
    store_followup,
)
from pipeline.warnings.compute import WARNING_COLUMNS, compute_warnings
from pipeline.warnings.explain import explain_warnings
from pipeline.warnings.rules import resolve_rules, route, route_table


@dataclass
class RunResult:
    month: str
    run_id: str
    outcome: str
    warnings: int
    files: list[dict] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)
    seconds: float = 0.0
    deliveries: list[dict] = field(default_factory=list)
    counties: list[str] = field(default_factory=list)


@dataclass
class StageResult:
    """What :func:`stage_month` staged: every file's reconciliation up to the month, and the
    export months read (in part or whole) this time (none: nothing had changed)."""

    month: str
    files: list[dict]
    months_read: list[str]

    def summary(self) -> dict:
        return {
            "month": self.month,
            "files": len(self.files),
            "rows_read": sum(f["rows_read"] for f in self.files),
            "loaded": sum(f["loaded"] for f in self.files),
            "months_read": self.months_read,
        }


Progress = Callable[[str], None]


def checkpoint(stage: str) -> None:
    """Fault injection for the tests: ``POVWATCH_FAULT=<stage>`` kills the process here.

    Stages: after_reference, after_ingest, after_staging, after_warnings, before_commit,
    after_commit, after_reports. The transaction makes every stage before the commit leave
    the warehouse as it was; reports are delivered after the commit; a re-run then gives
    the undisturbed result.
    """
    if os.environ.get("POVWATCH_FAULT") == stage:
        os.kill(os.getpid(), signal.SIGKILL)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_month(
    month: str | Month, settings: Settings, progress: Progress | None = None
) -> RunResult:
    """Run one month end to end. Raises PovwatchError (one line) on any unusable input.

    The stages in order, exactly as the Airflow DAG runs them as tasks: ``compute_month``
    (one transaction, then the month published as Parquet), ``write_county_reports`` per
    county, ``write_summary`` (city summary and manifest), ``deliver`` (the packages to
    their destinations), ``close_ledger``.
    """
    m = month if isinstance(month, Month) else Month.parse(month)
    say: Progress = progress or (_stderr if not settings.quiet else (lambda _msg: None))
    t0 = time.perf_counter()
    result = compute_month(m, settings, say)
    try:
        say(f"[{m}] writing reports to {settings.outbox / str(m)}")
        result.reports = write_month_reports(m, result.counties, settings, result.run_id)
        checkpoint("after_reports")
        result.deliveries = deliver(m, settings, result.run_id, say)
        close_ledger(settings, result.run_id)
    except Exception as exc:
        fail_ledger(settings, result.run_id, exc)
        raise
    result.seconds = round(time.perf_counter() - t0, 2)
    say(f"[{m}] done in {result.seconds:.1f} s: {result.warnings} warnings")
    return result


@dataclass(frozen=True)
class Origin:
    """Who started a run, for the ledger: an Airflow task try, or nobody (the command line)."""

    dag_id: str | None = None
    dag_run_id: str | None = None
    try_number: int | None = None


class _DryRun(Exception):
    """Raised inside the transaction of a dry run so that it rolls back."""


def compute_month(
    month: str | Month,
    settings: Settings,
    progress: Progress | None = None,
    *,
    origin: Origin | None = None,
    dry_run: bool = False,
) -> RunResult:
    """The warehouse stage: reference → ingest → staging → gates → warnings → ledger
    ``publishing``, in one DuckDB transaction; then the month is published as Parquet.

    ``dry_run`` does everything and rolls back: nothing is written but the ledger row
    (outcome ``dry_run``, with the number of warnings it would give).
    """
    m = month if isinstance(month, Month) else Month.parse(month)
    set_private_umask()  # the warehouse and every report: owner-only (store/files.py)
    say: Progress = progress or (_stderr if not settings.quiet else (lambda _msg: None))
    policies = PolicySet.load(settings.policy_files)
    load_config(settings)  # a bad delivery file stops the run before anything is written
    started = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    run_id = f"{m}-{started:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    who = origin or Origin()
    t0 = time.perf_counter()
    con = connect(settings.db)
    try:
        # A run is in the ledger from its start: one killed mid-way stays `running`.
        con.execute(
            "insert into run_ledger (run_id, month, started_at, outcome, code_version, "
            "airflow_dag_id, airflow_run_id, airflow_try_number) "
            "values (?, ?, ?, 'running', ?, ?, ?, ?)",
            [run_id, str(m), started, code_version(), who.dag_id, who.dag_run_id, who.try_number],
        )
        try:
            try:
                with transaction(con):
                    result, deliverable = _run(con, m, settings, policies, run_id, say)
                    checkpoint("before_commit")
                    if dry_run:
                        raise _DryRun
            except _DryRun:
                con.execute(
                    "update run_ledger set outcome = 'dry_run', finished_at = ?, warnings = ? "
                    "where run_id = ?",
                    [dt.datetime.now(dt.UTC).replace(tzinfo=None), result.warnings, run_id],
                )
                say(f"[{m}] dry run: {result.warnings} warnings, nothing written")
                result.outcome = "dry_run"
                return result
            # Committed (outcome `publishing`): the month's marts go out as Parquet for the
            # report steps and for readers that must not lock the warehouse.
            checkpoint("after_commit")
            _publish_month(con, m, settings, run_id, deliverable)
        except Exception as exc:
            _ledger_failure(con, run_id, _message(exc))
            if isinstance(exc, quality.QualityGateError):  # keep the failed checks on record
                with contextlib.suppress(duckdb.Error):
                    quality.store_results(con, run_id, str(m), exc.results)
            raise
        result.counties = report_counties(deliverable.routed)
        result.seconds = round(time.perf_counter() - t0, 2)
        return result
    finally:
        con.close()


def _publish_month(
    con: duckdb.DuckDBPyConnection,
    m: Month,
    settings: Settings,
    run_id: str,
    deliverable: ReportData,
) -> None:
    frames = {
        "warnings": con.execute(
            "select * from mart_warnings where month = ? order by psn_no, warning_type",
            [str(m)],
        ).pl(),
        "routes": con.execute(
            "select * from mart_warning_routes where month = ? "
            "order by psn_no, warning_type, department",
            [str(m)],
        ).pl(),
        "files": con.execute(
            "select * from ledger_files where run_id = ? order by export_month, source_file",
            [run_id],
        ).pl(),
        **deliverable.frames(),
    }
    published.publish(settings.db, str(m), run_id, frames)


def write_month_reports(
    month: str | Month, counties: list[str], settings: Settings, run_id: str | None = None
) -> list[str]:
    """Every county's 台账 then the summary, in this process: the PDF workers serve them all."""
    with pdf_workers_kept():
        for county in counties:
            write_county_reports(month, county, settings, run_id)
        return write_summary(month, settings, run_id)


def write_county_reports(
    month: str | Month, county: str, settings: Settings, run_id: str | None = None
) -> list[str]:
    """One county's 台账 (per department) from the month's published Parquet, never the warehouse."""
    set_private_umask()  # owner-only 台账 (a DAG task is a process of its own)
    m = str(month)
    data = ReportData.read(lambda name: published.read(settings.db, m, name, run_id), run_id)
    return [str(p) for p in write_county_packages(data, m, settings.outbox, county)]


def write_summary(month: str | Month, settings: Settings, run_id: str | None = None) -> list[str]:
    """The month's city summary and manifest, once every county's 台账 is in the outbox."""
    set_private_umask()
    m = str(month)
    data = ReportData.read(lambda name: published.read(settings.db, m, name, run_id), run_id)
    written = [str(p) for p in finish_packages(data, m, settings.outbox)]
    restrict_tree(settings.outbox / m)  # every report of the month: files 0600, folders 0700
    return written


def deliver(
    month: str | Month, settings: Settings, run_id: str, progress: Progress | None = None
) -> list[dict]:
    """The month's packages to their destinations (the delivery file); records what went where."""
    say: Progress = progress or (_stderr if not settings.quiet else (lambda _msg: None))
    set_private_umask()
    return deliver_packages(settings, str(month), run_id, say)


def close_ledger(settings: Settings, run_id: str) -> None:
    """The run is `success` once its reports are delivered."""
    con = connect(settings.db)
    try:
        con.execute(
            "update run_ledger set outcome = 'success', finished_at = ? where run_id = ?",
            [dt.datetime.now(dt.UTC).replace(tzinfo=None), run_id],
        )
    finally:
        con.close()


def fail_ledger(settings: Settings, run_id: str, exc: BaseException) -> None:
    """Best effort: mark a committed run `failed` when a later stage fails."""
    with contextlib.suppress(PovwatchError, duckdb.Error):
        con = connect(settings.db)
        try:
            _ledger_failure(con, run_id, _message(exc))
        finally:
            con.close()


def _message(exc: BaseException) -> str:
    if isinstance(exc, duckdb.OutOfMemoryException):
        return out_of_memory(exc)
    return str(exc) if isinstance(exc, PovwatchError) else f"{type(exc).__name__}: {exc}"


def _run(
    con: duckdb.DuckDBPyConnection,
    m: Month,
    settings: Settings,
    policies: PolicySet,
    run_id: str,
    say: Progress,
) -> tuple[RunResult, pl.DataFrame]:
    report = IngestReport()
    # DuckDB's limit follows each stage's work (warehouse.fit_memory): the least for reading
    # the reference files
    fit_memory(con, 0)
    say(f"[{m}] reading reference data from {settings.landing}")
    load_reference(con, settings.landing, m, report)
    quarantine.check_reference(con)  # a mostly invalid registry stops the month
    for f in (f for f in report.reference_files if f["rejected"]):
        say(f"[{m}] {f['file']}: read {f['rows']}, rejected {f['rejected']} (see ref_rejects)")
    checkpoint("after_reference")
    months = Month(m.year, 1).through(m)
    income = con.sql("select admdvs, year, scope, amount_fen, published_on from ref_income").pl()
    # Every region in the registry must have a complete policy and its income in force,
    # before any settlement is read: a bad reference stops the month, nothing is written.
    # (Each region is named by its first row in the registry.)
    first_seen = con.sql(
        """
        select insuplc_admdvs as admdvs,
               min_by(format('{} row {} column insuplc_admdvs', source_file, source_row),
                      (source_file, source_row)) as w
        from ref_persons
        group by all
        order by admdvs
        """
    ).pl()
    where = dict(first_seen.iter_rows())
    regions_months = first_seen.select("admdvs").join(
        pl.DataFrame({"m": [str(x) for x in months]}), how="cross"
    )
    rules = resolve_rules(policies, regions_months, income, where)

    files = _ingest_and_stage(con, m, settings, report, say)
    quarantine.check_month(con, str(m))  # a mostly quarantined export stops the month
    gates = os.environ.get("POVWATCH_QUALITY", "on") != "off"
    checks = []
    if gates:
        say(f"[{m}] quality gates (Great Expectations)")
        checks = quality.check_inputs(con, str(m), run_id)
    _say_files(m, files, report, say)

    say(f"[{m}] computing burden and warnings")
    warnings = compute_warnings(
        con, m, _with_past_regions(con, policies, rules, months, income), store=True
    )
    con.execute("delete from mart_warnings where month = ?", [str(m)])
    con.execute("delete from mart_warning_routes where month = ?", [str(m)])
    if warnings.height:
        w_batch = warnings.select(WARNING_COLUMNS).to_arrow()  # noqa: F841 (read by name in SQL)
        con.execute("insert into mart_warnings by name select * from w_batch")
    routed = route(
        warnings.with_columns(
            pl.col("identities")
            .str.split(",")
            .list.eval(pl.element().filter(pl.element() != ""))
            .alias("identities_list")
        ),
        route_table(policies),
    )
    if routed.height:
        # read by name in the SQL below (warehouse.py, "Frames into SQL")
        r_batch = routed.select("month", "psn_no", "warning_type", "department")  # noqa: F841
        con.execute("insert into mart_warning_routes by name select * from r_batch")

    # Decisions fed back (as of M's last day) and their follow-up (pending, overdue, …);
    # a delivered 台账 edited in place is set aside first and read as feedback.
    for line in set_aside_edited(settings.outbox):
        say(line)
    for line in apply_feedback(
        con, m, run_id, read_feedback(feedback_roots(settings.landing, settings.outbox))
    ):
        say(line)
    followup = followup_summary(store_followup(con, m, overdue_after_days(settings)))
    say(f"[{m}] medical assistance: entitlements year to date against maf_pay paid")
    audited = store_assistance(con, m, policies)
    say(f"[{m}] {summary_line(audited)}")

    if gates:
        checks += quality.check_outputs(con, str(m), run_id)
        quality.store_results(con, run_id, str(m), checks)
        say(f"[{m}] {quality.summary_line(checks)}")
    else:  # POVWATCH_QUALITY=off: row-level checks ran; batch gates skipped, on record
        say(f"[{m}] quality gates skipped (POVWATCH_QUALITY=off)")
    checkpoint("after_warnings")

    _ledger_success(con, run_id, m, policies, rules, report, files, warnings.height)
    result = RunResult(
        month=str(m), run_id=run_id, outcome="success", warnings=warnings.height, files=files
    )
    explanation = explain_warnings(con, m, warnings, rules, policies)
    decisions = report_decisions(con, m)  # 上次决定 / 等待天数 in the 台账
    # Names and ids: the warned persons' households, and the under-paid (the 少付 sheet)
    under = audited.filter(pl.col("status") == "under")["psn_no"]
    named = households_of(con, pl.concat([warnings["psn_no"], under]))
    data = report_data(
        con, str(m), routed, named, warnings, explanation, run_id, decisions, followup
    )
    data = replace(data, underpaid=underpaid_rows(audited, named))  # 民政 台账 only
    return result, data


def _with_past_regions(
    con: duckdb.DuckDBPyConnection,
    policies: PolicySet,
    rules: pl.DataFrame,
    months: list[Month],
    income: pl.DataFrame,
) -> pl.DataFrame:
    """``rules`` and those of the regions a person was registered in earlier in the year
    only (ref_persons_past): the earlier months' flags (first_month) are those of the
    registry then in force. A region without a complete policy adds none (a run of that
    month would have stopped: it had no warnings)."""
    past = con.sql(
        "select distinct insuplc_admdvs as admdvs from ref_persons_past where present "
        "except select insuplc_admdvs from ref_persons order by 1"
    ).pl()
    extra = []
    for admdvs in past["admdvs"]:
        regions_months = pl.DataFrame({"admdvs": admdvs, "m": [str(x) for x in months]})
        try:
            extra.append(resolve_rules(policies, regions_months, income))
        except PovwatchError:
            continue
    return pl.concat([rules, *extra], how="vertical_relaxed") if extra else rules


def _ingest_and_stage(
    con: duckdb.DuckDBPyConnection,
    m: Month,
    settings: Settings,
    report: IngestReport,
    say: Progress,
) -> list[dict]:
    say(f"[{m}] ingesting settlement exports up to {m}")
    fit_memory(con, INGEST_BYTES)
    ingest_settlements(con, settings.landing, m, report, settings.require_complete)
    checkpoint("after_ingest")
    staged = classify_settlements(con, m, report)
    # the stages after it read running totals and a few persons' rows: sized by the rows
    # classified in this run (none: the floor)
    fit_memory(con, staged.rows * AFTER_STAGING_BYTES_PER_ROW)
    checkpoint("after_staging")
    if staged.months:
        say(f"[{m}] staged export months {staged.months[0]}..{staged.months[-1]}")
    return _reconcile(con, m)


def _say_files(m: Month, files: list[dict], report: IngestReport, say: Progress) -> None:
    """Per file read in this run (the month's, and those of export months read again):
    rows read = loaded + duplicate + skipped + quarantined."""
    for f in files:
        if f["export_month"] == str(m) or f["export_month"] in report.reread_months:
            say(
                f"[{m}] {f['source_file']}: read {f['rows_read']} = loaded {f['loaded']} + "
                f"duplicate {f['duplicate']} + skipped {f['skipped']} + "
                f"quarantined {f['quarantined']}"
            )


def stage_month(month: Month, settings: Settings, progress: Progress | None = None) -> StageResult:
    """Load the reference data and stage the exports up to ``month``, without warnings.

    ``povwatch ingest``: the exports are read and classified as they land, and the month's
    run finds them staged (what it reads again is what changed since). Also for threshold
    calibration where the policy's thresholds are still left to the locality (so a full run
    would stop). Nothing is published; the ledger is not touched.
    """
    say: Progress = progress or (_stderr if not settings.quiet else (lambda _msg: None))
    set_private_umask()  # the warehouse: owner-only (store/files.py)
    con = connect(settings.db)
    try:
        with transaction(con):
            report = IngestReport()
            fit_memory(con, 0)
            say(f"[{month}] reading reference data from {settings.landing}")
            load_reference(con, settings.landing, month, report)
            quarantine.check_reference(con)
            files = _ingest_and_stage(con, month, settings, report, say)
            _say_files(month, files, report, say)
        return StageResult(str(month), files, sorted(set(report.reread_months)))
    finally:
        con.close()


def _reconcile(con: duckdb.DuckDBPyConnection, m: Month) -> list[dict]:
    """Per file: rows read = loaded + duplicate + skipped + quarantined, and money totals.

    A staged export month is counted once (``stg_file_totals``, dropped with its staging):
    the run adds the months staged since, instead of re-reading the year's rows.
    """
    con.execute(
        """
        insert into stg_file_totals
        select export_month, source_file,
               count(*) as staged,
               count(*) filter (where status = 'loaded') as loaded,
               count(*) filter (where status = 'duplicate') as duplicate,
               count(*) filter (where status = 'skipped') as skipped,
               count(*) filter (where status = 'quarantined') as quarantined,
               sum(medfee_sumamt) as medfee_read_fen,
               sum(medfee_sumamt) filter (where status = 'loaded') as medfee_loaded_fen,
               sum(psn_part_amt + maf_pay) filter (where status = 'loaded')
                   as burden_loaded_fen
        from stg_settlements
        where export_month <= ?
            and export_month not in (select export_month from stg_file_totals)
        group by export_month, source_file
        """,
        [str(m)],
    )
    frame = con.execute(
        """
        select f.export_month, f.source_file, f.sha256, f.rows_read,
               coalesce(t.staged, 0) as staged,
               coalesce(t.loaded, 0) as loaded,
               coalesce(t.duplicate, 0) as duplicate,
               coalesce(t.skipped, 0) as skipped,
               coalesce(t.quarantined, 0) as quarantined,
               coalesce(t.medfee_read_fen, 0) as medfee_read_fen,
               coalesce(t.medfee_loaded_fen, 0) as medfee_loaded_fen,
               coalesce(t.burden_loaded_fen, 0) as burden_loaded_fen
        from ingested_files f
        left join stg_file_totals t using (export_month, source_file)
        where f.export_month <= ?
        order by f.export_month, f.source_file
        """,
        [str(m)],
    ).pl()
    bad = frame.filter(
        (pl.col("staged") != pl.col("rows_read"))
        | (
            pl.col("loaded") + pl.col("duplicate") + pl.col("skipped") + pl.col("quarantined")
            != pl.col("rows_read")
        )
    )
    if bad.height:
        row = bad.row(0, named=True)
        raise PovwatchError(
            f"{row['source_file']}: reconciliation failed: read {row['rows_read']} rows but "
            f"staged {row['staged']}"
        )
    return frame.drop("staged").to_dicts()


def _ledger_success(con, run_id, m, policies, rules, report, files, n_warnings) -> None:
    used = sorted({(r["policy_id"], r["policy_version"]) for r in rules.iter_rows(named=True)})
    policy_info = [
        {
            "policy_id": lp.policy.policy_id,
            "file": lp.path.name,
            "sha256": lp.sha256,
            "versions_used": [v for p, v in used if p == lp.policy.policy_id],
        }
        for lp in policies.loaded
        if any(p == lp.policy.policy_id for p, _ in used)
    ]
    reference = (
        rules.select(
            "m", "income_admdvs", "income_scope", "income_year", "rule_id", "threshold_fen"
        )
        .unique()
        .sort("m", "rule_id", "income_admdvs")
        .to_dicts()
    )
    con.execute(
        """
        update run_ledger
        set finished_at = ?, outcome = 'publishing', policies = ?, reference = ?, inputs = ?,
            warnings = ?
        where run_id = ?
        """,
        [
            dt.datetime.now(dt.UTC).replace(tzinfo=None),
            json.dumps(policy_info, ensure_ascii=False),
            json.dumps(reference, ensure_ascii=False),
            json.dumps(report.reference_files, ensure_ascii=False),
            n_warnings,
            run_id,
        ],
    )
    if files:
        frame = pl.DataFrame(files).with_columns(
            pl.lit(run_id).alias("run_id"), pl.lit(str(m)).alias("month")
        )
        lf_batch = frame.to_arrow()  # noqa: F841 (read by name in SQL)
        con.execute("insert into ledger_files by name select * from lf_batch")


def _ledger_failure(con, run_id: str, message: str) -> None:
    # Best effort: the error itself is what the user sees.
    with contextlib.suppress(duckdb.Error):
        con.execute(
            "update run_ledger set outcome = 'failed', finished_at = ?, message = ? "
            "where run_id = ?",
            [dt.datetime.now(dt.UTC).replace(tzinfo=None), message, run_id],
        )


def feedback_pending(landing: Path, outbox: Path) -> list[str]:
    """What :func:`record_feedback` would read, without opening the warehouse: the files
    under ``<landing>/feedback/`` and ``<outbox>/received/``, and the departments' delivered
    台账 edited in place since delivery (set aside when recorded). Paths as the records name
    them; empty when there is nothing to record."""
    files = [
        f"{root.prefix}/{path.relative_to(root.folder).as_posix()}"
        for root in feedback_roots(landing, outbox)
        for path in list_files(root.folder)
    ]
    edited = [
        f"outbox/{month}/{rel.as_posix()} (edited after delivery)"
        for month, rel, _, _ in edited_files(outbox)
        if is_department_file(rel)
    ]
    return files + edited


def record_feedback(settings: Settings, progress: Progress | None = None) -> dict:
    """Record the returned decisions under ``feedback/`` between monthly runs (the
    ``povwatch_feedback`` DAG): the same reading, matching and follow-up as a monthly run,
    applied to the latest month that ran, under that month's latest run (so ``cases`` and the
    next package see them). Returns the files read, decisions recorded and rejected rows."""
    say: Progress = progress or (_stderr if not settings.quiet else (lambda _msg: None))
    con = connect(settings.db)
    try:
        latest = con.execute(
            "select month, run_id from run_ledger where outcome = 'success' "
            "order by month desc, started_at desc, run_id desc limit 1"
        ).fetchall()
        if not latest:
            raise PovwatchError(
                f"{settings.db.resolve()}: no month has run yet: feedback is matched to the "
                "warnings of a month (povwatch run --month YYYY-MM first)"
            )
        m, run_id = Month.parse(latest[0][0]), latest[0][1]
        with transaction(con):
            for line in set_aside_edited(settings.outbox):
                say(line)
            read = read_feedback(feedback_roots(settings.landing, settings.outbox))
            for line in apply_feedback(con, m, run_id, read):
                say(line)
            store_followup(con, m, overdue_after_days(settings))
            recorded = con.execute(
                "select count(*) from feedback_decisions where month = ?", [str(m)]
            ).fetchall()[0][0]
            rejected = con.execute(
                "select source_file, source_row, reason_column, reason from feedback_rejects "
                "where month = ? order by source_file, source_row",
                [str(m)],
            ).fetchall()
        return {
            "month": str(m),
            "files": [f["source_file"] for f in read.files],
            "recorded": recorded,
            "rejected": [f"{f} row {r} column {c}: {why}" for f, r, c, why in rejected],
        }
    finally:
        con.close()
