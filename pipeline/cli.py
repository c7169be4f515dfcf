"""The ``povwatch`` command line (contract: "Command line")."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import duckdb
import polars as pl
import typer

from pipeline.errors import PovwatchError, shown
from pipeline.money import fen_text
from pipeline.months import Month
from pipeline.settings import DEFAULT_DB, DEFAULT_LANDING, DEFAULT_OUTBOX, Settings
from pipeline.store.warehouse import out_of_memory

app = typer.Typer(
    help="povwatch — 因病返贫/因病致贫 双预警: monthly medical-cost poverty early warning.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: flags shown as flags, metavars as written below
)
policy_app = typer.Typer(
    help="Policy files: check what they decide, simulate a local threshold.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(policy_app, name="policy")

Landing = Annotated[
    Path, typer.Option("--landing", metavar="DIR", help="landing folder of the exports")
]
Db = Annotated[Path, typer.Option("--db", metavar="FILE", help="DuckDB warehouse file")]
Outbox = Annotated[
    Path, typer.Option("--outbox", metavar="DIR", help="folder the reports are delivered to")
]
# Every command accepts --landing, --db and --outbox (contract), so scripts can pass one set of
# paths to all; a command that does not use one accepts it without offering it in its help.
UnusedLanding = Annotated[Path, typer.Option("--landing", hidden=True)]
UnusedDb = Annotated[Path, typer.Option("--db", hidden=True)]
UnusedOutbox = Annotated[Path, typer.Option("--outbox", hidden=True)]
Policies = Annotated[
    list[Path] | None,
    typer.Option("--policy", metavar="FILE", help="extra policy / local overlay file (repeatable)"),
]
MonthOpt = Annotated[str, typer.Option("--month", metavar="YYYY-MM", help="month to run, YYYY-MM")]
ShownMonth = Annotated[
    str,
    typer.Option("--month", metavar="YYYY-MM", help="month whose results to print, YYYY-MM"),
]
FormatCsv = Annotated[
    str, typer.Option("--format", metavar="csv", help="output format: csv (any case)")
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="no progress output")]
RequireComplete = Annotated[
    bool,
    typer.Option("--require-complete", help="stop when an export folder has no _SUCCESS marker"),
]

# Exit codes: 0 success; 1 a failure (one line on stderr); 2 a usage error (a bad or missing
# option value); 3 `policy check`: monitoring values missing; 4 `policy check
# --require-assistance`: assistance values missing.
EXIT_FAILURE, EXIT_USAGE = 1, 2


def usage_error(option: str, message: str) -> typer.BadParameter:
    """A bad option value: exit 2 with one line naming the option (raise the result)."""
    return typer.BadParameter(message, param_hint=f"'{option}'")


def _choice(value: str, option: str, allowed: tuple[str, ...]) -> str:
    """``value`` lower-cased if it is one of ``allowed`` (case-insensitive), else exit 2."""
    if value.lower() not in allowed:
        raise usage_error(option, f"{value!r} is not supported (use {' or '.join(allowed)})")
    return value.lower()


CSV_HEADER = (
    "month,psn_no,hh_id,admdvs,warning_type,rule_id,burden_ytd,threshold,first_month,status"
)


def _settings(
    landing: Path,
    db: Path,
    outbox: Path,
    policy: list[Path] | None,
    quiet=False,
    require_complete=False,
):
    return Settings(
        landing=landing,
        db=db,
        outbox=outbox,
        policy_files=tuple(policy or ()),
        quiet=quiet,
        require_complete=require_complete,
    )


def _require_landing(landing: Path) -> None:
    """A landing folder that is not there stops a command before the warehouse opens."""
    from pipeline.ingest.load import require_landing

    require_landing(landing)


def _note_stale(db: Path, after: Month | None = None, month: Month | None = None) -> None:
    """On stderr: the months run on exports that changed since (ledger.stale_of)."""
    from pipeline.store.ledger import stale_note, stale_of

    note = stale_note(stale_of(db, after=after, month=month))
    if note:
        print(note, file=sys.stderr)


def _month(text: str, option: str = "--month") -> Month:
    try:
        return Month.parse(text)
    except ValueError:
        raise usage_error(option, f"{text!r} is not a month (expected YYYY-MM)") from None


@app.command()
def run(
    month: MonthOpt,
    landing: Landing = DEFAULT_LANDING,
    db: Db = DEFAULT_DB,
    outbox: Outbox = DEFAULT_OUTBOX,
    policy: Policies = None,
    quiet: Quiet = False,
    require_complete: RequireComplete = False,
) -> None:
    """One monthly run: ingest, validate, compute, warn, report."""
    from pipeline.run import run_month

    m = _month(month)
    _require_landing(landing)
    settings = _settings(landing, db, outbox, policy, quiet, require_complete)
    result = run_month(m, settings)
    typer.echo(f"{result.month}: {result.warnings} warnings (run {result.run_id})")
    _note_stale(db, after=m)


@app.command()
def ingest(
    month: Annotated[
        str, typer.Option("--month", metavar="YYYY-MM", help="read the exports up to this month")
    ],
    landing: Landing = DEFAULT_LANDING,
    db: Db = DEFAULT_DB,
    outbox: UnusedOutbox = DEFAULT_OUTBOX,
    quiet: Quiet = False,
    require_complete: RequireComplete = False,
) -> None:
    """Read and stage the exports landed so far (as they land); no warnings, no reports.

    The month's run then reads only what changed since. Each file: rows read = loaded +
    duplicate + skipped + quarantined.
    """
    from pipeline.run import stage_month

    m = _month(month)
    _require_landing(landing)
    settings = _settings(landing, db, outbox, None, quiet, require_complete)
    staged = stage_month(m, settings).summary()
    typer.echo(
        f"{m}: {staged['files']} export files up to {m} staged, {staged['rows_read']} rows "
        f"read, {staged['loaded']} loaded"
    )
    _note_stale(db)


@app.command()
def backfill(
    from_: Annotated[str, typer.Option("--from", metavar="YYYY-MM", help="first month")],
    to: Annotated[str, typer.Option("--to", metavar="YYYY-MM", help="last month")],
    landing: Landing = DEFAULT_LANDING,
    db: Db = DEFAULT_DB,
    outbox: Outbox = DEFAULT_OUTBOX,
    policy: Policies = None,
    quiet: Quiet = False,
    require_complete: RequireComplete = False,
) -> None:
    """The monthly run for each month in order, with what was in force then."""
    from pipeline.run import run_month

    first, last = _month(from_, "--from"), _month(to, "--to")
    if last < first:
        raise usage_error("--to", f"{last} is before --from {first}")
    _require_landing(landing)
    settings = _settings(landing, db, outbox, policy, quiet, require_complete)
    for m in first.through(last):
        result = run_month(m, settings)
        typer.echo(f"{result.month}: {result.warnings} warnings (run {result.run_id})")
    _note_stale(db, after=last)


def warnings_csv(db: Path, month: Month) -> str:
    """The month's warnings as the contract's CSV (header, two-decimal money, by psn_no)."""
    from pipeline.store.ledger import require_run
    from pipeline.store.warehouse import connect

    con = connect(db, read_only=True)
    try:
        require_run(con, db, month)
        frame = con.execute(
            "select * from mart_warnings where month = ? order by psn_no, warning_type",
            [str(month)],
        ).pl()
    finally:
        con.close()
    return format_warnings(frame)


def format_warnings(frame: pl.DataFrame) -> str:
    out = frame.select(
        "month",
        "psn_no",
        "hh_id",
        "admdvs",
        "warning_type",
        "rule_id",
        fen_text(pl.col("burden_ytd_fen")).alias("burden_ytd"),
        fen_text(pl.col("threshold_fen")).alias("threshold"),
        "first_month",
        "status",
    )
    body = out.write_csv(include_header=True, line_terminator="\r\n")
    assert body.splitlines()[0] == CSV_HEADER
    return body


@app.command()
def warnings(
    month: ShownMonth,
    format: FormatCsv = "csv",
    landing: UnusedLanding = DEFAULT_LANDING,
    db: Db = DEFAULT_DB,
    outbox: UnusedOutbox = DEFAULT_OUTBOX,
) -> None:
    """Print a month's warnings (CSV, the contract's header)."""
    _choice(format, "--format", ("csv",))
    m = _month(month)
    sys.stdout.buffer.write(warnings_csv(db, m).encode("utf-8"))
    sys.stdout.flush()
    _note_stale(db, month=m)


@app.command()
def demo(
    persons: Annotated[int, typer.Option(help="size of the synthetic city", min=20)] = 50_000,
    year: Annotated[int, typer.Option(help="year to simulate")] = 2024,
    seed: Annotated[int, typer.Option(help="random seed")] = 7,
    landing: Landing = DEFAULT_LANDING,
    db: Db = DEFAULT_DB,
    outbox: Outbox = DEFAULT_OUTBOX,
    quiet: Quiet = False,
) -> None:
    """Make a synthetic city, run every month of a year, print where things are."""
    from pipeline.demo import run_demo

    run_demo(_settings(landing, db, outbox, None, quiet), persons=persons, year=year, seed=seed)


@app.command()
def status(
    month: Annotated[
        str | None, typer.Option("--month", metavar="YYYY-MM", help="one month only")
    ] = None,
    landing: UnusedLanding = DEFAULT_LANDING,
    db: Db = DEFAULT_DB,
    outbox: UnusedOutbox = DEFAULT_OUTBOX,
) -> None:
    """The run ledger: runs, files, and the row reconciliation per file."""
    from pipeline.store.ledger import status_text

    typer.echo(status_text(db, _month(month) if month else None), nl=False)


@policy_app.command("check")
def policy_check(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="policy or overlay file (YAML)")],
    require_assistance: Annotated[
        bool,
        typer.Option(
            "--require-assistance",
            help="also require the assistance calculator's values (exit 4 if any is missing)",
        ),
    ] = False,
    landing: UnusedLanding = DEFAULT_LANDING,
    db: UnusedDb = DEFAULT_DB,
    outbox: UnusedOutbox = DEFAULT_OUTBOX,
) -> None:
    """Validate a policy file and print what it decides, clause by clause.

    \b
    Exit codes:
      0  valid, and the monitoring is complete: a run over its regions works
         (values the assistance calculator still needs are listed, not fatal)
      1  not valid: one line on stderr naming the file, line or key
      3  valid, but monitoring values the document leaves to the locality are
         missing: runs over its regions stop until an overlay supplies them
      4  with --require-assistance: monitoring complete, assistance values missing
    """
    from pipeline.policy.describe import check_text

    check = check_text(file)
    typer.echo(check.text, nl=False)
    if check.monitoring_missing:
        raise typer.Exit(3)
    if require_assistance and check.assistance_missing:
        raise typer.Exit(4)


@policy_app.command("simulate")
def policy_simulate(
    month: Annotated[
        str, typer.Option("--month", metavar="YYYY-MM", help="month whose year to date is swept")
    ],
    region: Annotated[
        str,
        typer.Option(
            "--region", metavar="PREFIX", help="admdvs prefix, e.g. 3708 (Jining) or 370811"
        ),
    ],
    factor: Annotated[
        str | None,
        typer.Option(
            "--factor",
            metavar="START:STOP:STEP",
            help="factors to try, e.g. 0.3:0.8:0.05 or 0.4,0.5 "
            "[default: 50%-150% of each rule's factor in force]",
        ),
    ] = None,
    income: Annotated[
        str | None,
        typer.Option(
            "--income",
            metavar="LEVEL:SCOPE",
            help="income reference when the policy leaves it local",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="DIR",
            help="folder for the CSV and chart [default: analysis/YYYY-MM beside the outbox]",
        ),
    ] = None,
    landing: Landing = DEFAULT_LANDING,
    db: Db = DEFAULT_DB,
    outbox: Outbox = DEFAULT_OUTBOX,
    policy: Policies = None,
) -> None:
    """Calibrate a local threshold: persons and households warned at each factor.

    Stages the month's data (like a run, but publishes nothing). Per county and
    warning type: persons and households warned, and the share of them whose
    household already holds an assistance identity; * marks the factor in force.
    Writes a CSV and a chart (PNG, SVG) to an analysis folder, never into a
    department's delivery folder.
    """
    from pipeline.policy.load import PolicySet
    from pipeline.run import stage_month
    from pipeline.warnings.simulate import parse_factors, render_table, simulate

    m = _month(month)
    if not region.isdigit() or not 2 <= len(region) <= 6:
        raise usage_error("--region", f"{region!r}: expected an admdvs prefix of 2 to 6 digits")
    ref = None
    if income is not None:
        level, _, scope = income.partition(":")
        if level not in ("province", "city", "county") or scope not in ("all", "urban", "rural"):
            raise usage_error("--income", f"{income!r}: expected LEVEL:SCOPE, e.g. province:rural")
        ref = (level, scope)
    try:
        factors = parse_factors(factor) if factor is not None else None
    except PovwatchError as exc:
        raise usage_error("--factor", str(exc).removeprefix(f"--factor {factor!r}: ")) from None
    out_dir = out if out is not None else outbox.parent / "analysis" / str(m)
    _require_landing(landing)
    stage_month(m, _settings(landing, db, outbox, policy, quiet=True))
    result = simulate(
        db,
        PolicySet.load(tuple(policy or ())),
        m,
        region,
        factors,
        ref,
        out_dir,
    )
    typer.echo(render_table(result.table), nl=False)
    typer.echo(f"per county: {shown(result.csv)}")
    typer.echo(f"chart     : {shown(result.png)}, {shown(result.svg)}")


# --------------------------------------------------------------------------- cases (issue 10)


@app.command()
def cases(
    month: MonthOpt,
    format: Annotated[str, typer.Option("--format", help="output format: csv")] = "csv",
    landing: Landing = DEFAULT_LANDING,
    db: Db = DEFAULT_DB,
    outbox: Outbox = DEFAULT_OUTBOX,
) -> None:
    """Every warning of the year up to a month with its lifecycle and decision (CSV)."""
    from pipeline.store.warehouse import connect
    from pipeline.warnings.cases import cases_csv, cases_frame

    if format != "csv":
        raise PovwatchError(f"--format {format!r} is not supported (use csv)")
    m = _month(month)
    con = connect(db, read_only=True)
    try:
        frame, not_run = cases_frame(con, m)
    finally:
        con.close()
    if not_run:
        print(
            f"povwatch: note: months of {m.year} not run: {', '.join(not_run)} "
            "(warnings flagged only then are not listed)",
            file=sys.stderr,
        )
    sys.stdout.buffer.write(cases_csv(frame).encode("utf-8"))
    sys.stdout.flush()
    _note_stale(db, month=m)


@app.command()
def deliver(
    month: MonthOpt,
    landing: Landing = DEFAULT_LANDING,
    db: Db = DEFAULT_DB,
    outbox: Outbox = DEFAULT_OUTBOX,
    delivery: Annotated[
        Path | None, typer.Option("--delivery", help="delivery file (default $POVWATCH_DELIVERY)")
    ] = None,
    quiet: Quiet = False,
) -> None:
    """(Re)deliver a month's packages from the outbox; what was delivered is not sent again."""
    from pipeline.delivery.deliver import deliver_packages

    m = _month(month)
    settings = Settings(landing=landing, db=db, outbox=outbox, delivery=delivery, quiet=quiet)
    say = (lambda _m: None) if quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    result = deliver_packages(settings, str(m), None, say)
    failed = [s["destination"] for s in result if s["failed"]]
    for s in result:
        typer.echo(
            f"{m} {s['destination']} ({s['kind']}): {s['delivered']} delivered, "
            f"{s['unchanged']} unchanged, {s['failed']} failed"
        )
    if failed:
        raise PovwatchError(f"delivery of {m} failed for: {', '.join(failed)}")


@app.command()
def feedback(
    month: MonthOpt,
    format: Annotated[str, typer.Option("--format", help="output format: csv")] = "csv",
    landing: Landing = DEFAULT_LANDING,
    db: Db = DEFAULT_DB,
    outbox: Outbox = DEFAULT_OUTBOX,
) -> None:
    """The feedback rows the run of a month rejected: file, row, column and reason (CSV)."""
    from pipeline.store.warehouse import connect

    if format != "csv":
        raise PovwatchError(f"--format {format!r} is not supported (use csv)")
    m = _month(month)
    con = connect(db, read_only=True)
    try:
        frame = con.execute(
            """
            select month, department, source_file, source_row, reason_column as column, reason
            from feedback_rejects where month = ? order by source_file, source_row
            """,
            [str(m)],
        ).pl()
    except Exception:
        raise PovwatchError(f"{db}: no feedback has been read yet (povwatch run)") from None
    finally:
        con.close()
    sys.stdout.buffer.write(frame.write_csv(line_terminator="\r\n").encode("utf-8"))
    sys.stdout.flush()


@app.command()
def followup(
    month: MonthOpt,
    format: Annotated[str, typer.Option("--format", help="output format: csv")] = "csv",
    landing: Landing = DEFAULT_LANDING,
    db: Db = DEFAULT_DB,
    outbox: Outbox = DEFAULT_OUTBOX,
) -> None:
    """Decisions per department and county as of a month's run: warnings open, decided,
    pending, overdue, and identity decisions not yet in the identities feed (CSV)."""
    from pipeline.store.warehouse import connect

    if format != "csv":
        raise PovwatchError(f"--format {format!r} is not supported (use csv)")
    m = _month(month)
    con = connect(db, read_only=True)
    try:
        frame = con.execute(
            """
            select month, department, admdvs, warnings, decided, pending, overdue,
                   not_reflected
            from mart_decision_followup where month = ? order by department, admdvs
            """,
            [str(m)],
        ).pl()
    except Exception:
        raise PovwatchError(f"{db}: no follow-up has been computed yet (povwatch run)") from None
    finally:
        con.close()
    sys.stdout.buffer.write(frame.write_csv(line_terminator="\r\n").encode("utf-8"))
    sys.stdout.flush()


# --- quarantine (contract: `povwatch quarantine --month M --format csv`) -----------------------

QUARANTINE_HEADER = "export_month,source_file,source_row,reason,column"


def quarantine_csv(db: Path, month: Month) -> str:
    """The rows quarantined from the exports up to ``month`` as the contract's CSV, sorted by
    export_month, source_file, source_row."""
    from pipeline.store.ledger import require_run
    from pipeline.store.warehouse import connect

    con = connect(db, read_only=True)
    try:
        # A run of M or a later month has staged (and classified) every export up to M.
        require_run(con, db, month, or_later=True)
        frame = con.execute(
            """
            select export_month, source_file, source_row, reason, reason_column as "column"
            from stg_settlements
            where status = 'quarantined' and export_month <= ?
            order by export_month, source_file, source_row
            """,
            [str(month)],
        ).pl()
    finally:
        con.close()
    body = frame.write_csv(include_header=True, line_terminator="\r\n")
    assert body.splitlines()[0] == QUARANTINE_HEADER
    return body


@app.command()
def quarantine(
    month: ShownMonth,
    format: FormatCsv = "csv",
    landing: UnusedLanding = DEFAULT_LANDING,
    db: Db = DEFAULT_DB,
    outbox: UnusedOutbox = DEFAULT_OUTBOX,
) -> None:
    """Print the rows quarantined from the exports up to a month (CSV, the contract's header)."""
    _choice(format, "--format", ("csv",))
    m = _month(month)
    sys.stdout.buffer.write(quarantine_csv(db, m).encode("utf-8"))
    sys.stdout.flush()


@app.command()
def explain(
    month: ShownMonth,
    psn: Annotated[str, typer.Option("--psn", help="insured person number (psn_no)")],
    format: Annotated[str, typer.Option("--format", help="output format: text or json")] = "text",
    landing: Landing = DEFAULT_LANDING,
    db: Db = DEFAULT_DB,
    outbox: Outbox = DEFAULT_OUTBOX,
    policy: Policies = None,
) -> None:
    """Why a person is (or is not) warned in a month: settlements, rule, clause, threshold."""
    from pipeline.warnings.explain import explain_person, render_json, render_text

    fmt = _choice(format, "--format", ("text", "json"))
    doc = explain_person(db, landing, tuple(policy or ()), _month(month), psn.strip())
    text = render_json(doc) if fmt == "json" else render_text(doc)
    sys.stdout.buffer.write(text.encode("utf-8"))
    sys.stdout.flush()


@app.command()
def assistance(
    month: ShownMonth,
    format: FormatCsv = "csv",
    landing: UnusedLanding = DEFAULT_LANDING,
    db: Db = DEFAULT_DB,
    outbox: UnusedOutbox = DEFAULT_OUTBOX,
) -> None:
    """Medical-assistance entitlement year to date per person against maf_pay paid (CSV).

    Empty entitled/difference: not computed (no assistance section for the region, or a
    value the document leaves to the locality); category empty: paid without a category.
    """
    from pipeline.assistance.audit import assistance_frame, format_assistance
    from pipeline.store.ledger import require_run
    from pipeline.store.warehouse import connect

    _choice(format, "--format", ("csv",))
    m = _month(month)
    con = connect(db, read_only=True)
    try:
        require_run(con, db, m)
        frame = assistance_frame(con, m)
    finally:
        con.close()
    sys.stdout.buffer.write(format_assistance(frame).encode("utf-8"))
    sys.stdout.flush()


def main() -> None:
    """Console entry point: one line on stderr and a non-zero exit for any failure."""
    try:
        rv = app(standalone_mode=False, prog_name="povwatch")
        if isinstance(rv, int) and rv:
            sys.exit(rv)
    except PovwatchError as exc:
        print(f"povwatch: error: {exc}", file=sys.stderr)
        sys.exit(EXIT_FAILURE)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        print("povwatch: interrupted", file=sys.stderr)
        sys.exit(130)
    except duckdb.OutOfMemoryException as exc:
        print(f"povwatch: error: {out_of_memory(exc)}", file=sys.stderr)
        sys.exit(EXIT_FAILURE)
    except Exception as exc:  # click usage errors and anything unexpected
        if type(exc).__name__ == "NoArgsIsHelpError":  # `povwatch`, `povwatch policy`: help
            print(exc.format_message(), file=sys.stderr)
            sys.exit(EXIT_USAGE)
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):  # usage errors
            line = " ".join(exc.format_message().split())
            ctx = getattr(exc, "ctx", None)
            where = ctx.command_path if ctx is not None else "povwatch"
            print(f"povwatch: error: {line} (see {where} --help)", file=sys.stderr)
            sys.exit(exc.exit_code)
        if os.environ.get("POVWATCH_DEBUG"):
            raise
        line = " ".join(str(exc).split()) or type(exc).__name__
        print(f"povwatch: error: {type(exc).__name__}: {line}", file=sys.stderr)
        sys.exit(EXIT_FAILURE)


if __name__ == "__main__":
    main()
