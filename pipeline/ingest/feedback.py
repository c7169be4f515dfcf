"""Decisions returned by the departments (contract: ``feedback/<department>/…``): read and checked.

A department returns a CSV (UTF-8, UTF-8 with BOM or GB18030) or an XLSX — a returned 台账 is
accepted as it is: its header row is found below the title, its Chinese column labels
(``labels.FEEDBACK_COLUMNS``) and verdict labels are understood, rows left blank are not
decisions. This module reads every file and checks each row on its own (key present, decision
in the list, a real date); whether the row names a warning of that department is checked
against the warehouse by ``pipeline.warnings.cases``. Nothing here stops a run: a file that
cannot be used is one rejection on record.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from pipeline.errors import PovwatchError
from pipeline.ingest.readers import FileSpec, list_files, read_file
from pipeline.labels import (
    DECISION_ALIASES,
    DECISION_PENDING_LABEL,
    DEPARTMENTS,
    FEEDBACK_COLUMNS,
    FEEDBACK_DECISIONS,
    IDENTITIES,
    WARNING_TYPE_ALIASES,
    WARNING_TYPES,
)
from pipeline.policy.types import IDENTITY_CODES

FEEDBACK = FileSpec(
    kind="feedback",
    required=("decision",),
    optional=("warning_id", "psn_no", "certno", "warning_type", "decided_on", "note"),
    aliases=tuple(FEEDBACK_COLUMNS.items()),
)

# What a department may decide: an identity (not "ordinary": that is no identity) or one of three.
DECISION_CODES: tuple[str, ...] = tuple(c for c in IDENTITY_CODES if c != "ordinary") + tuple(
    FEEDBACK_DECISIONS
)


def decision_lookup() -> dict[str, str]:
    """Every accepted spelling of a decision (code, 台账 label, alias) → its code."""
    out = {c: c for c in DECISION_CODES}
    out |= {IDENTITIES[c]: c for c in DECISION_CODES if c in IDENTITIES}
    out |= {label: code for code, label in FEEDBACK_DECISIONS.items()}
    out |= DECISION_ALIASES
    return out


def warning_type_lookup() -> dict[str, str]:
    out = {c: c for c in WARNING_TYPES}
    out |= {label: code for code, label in WARNING_TYPES.items()}
    return out | WARNING_TYPE_ALIASES


# One row per decision row read (blank 台账 rows dropped), checked on its own.
READ_SCHEMA: dict[str, pl.DataType] = {
    "department": pl.String,
    "source_file": pl.String,
    "source_row": pl.Int32,
    "sha256": pl.String,
    "warning_id": pl.String,
    "psn_no": pl.String,
    "certno": pl.String,
    "warning_type": pl.String,
    "decision": pl.String,
    "decided_on": pl.Date,
    "note": pl.String,
    "reason": pl.String,
    "reason_column": pl.String,
}

# A department folder by its code, or by its Chinese name (民政部门 / 民政, …).
_DEPARTMENT_FOLDERS = {label: code for code, label in DEPARTMENTS.items()} | {
    label.removesuffix("部门"): code for code, label in DEPARTMENTS.items()
}
_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y%m%d", "%Y.%m.%d", "%Y年%m月%d日")
_WARNING_ID = r"^\d{4}-[RI]-\S+$"


@dataclass(frozen=True)
class FeedbackRoot:
    """A folder holding ``<department>/…`` feedback files; ``prefix`` names it in records."""

    folder: Path
    prefix: str


@dataclass
class FeedbackRead:
    rows: pl.DataFrame  # READ_SCHEMA
    files: list[dict]  # department, source_file, sha256, rows_read, blank


def _parse_date(text: pl.Expr) -> pl.Expr:
    # A spreadsheet date cell arrives as "YYYY-MM-DD 00:00:00": the day is its first part.
    day = text.str.strip_chars().str.split(" ").list.first()
    # A date cell that lost its format shows Excel's serial day number (45366 = 2024-03-15).
    serial = (
        pl.when(day.str.contains(r"^\d{5}(\.0+)?$"))
        .then(day.str.extract(r"^(\d{5})", 1).cast(pl.Int32))
        .otherwise(None)
    )
    from_serial = pl.lit(dt.date(1899, 12, 30)) + pl.duration(days=serial)
    return pl.coalesce(
        *(day.str.to_date(f, strict=False) for f in _DATE_FORMATS), from_serial.cast(pl.Date)
    )


def _first_failure(checks: list[tuple[pl.Expr, str, str]]) -> list[pl.Expr]:
    reason = pl.lit(None, dtype=pl.String)
    column = pl.lit(None, dtype=pl.String)
    for cond, code, col in reversed(checks):
        reason = pl.when(cond).then(pl.lit(code)).otherwise(reason)
        column = pl.when(cond).then(pl.lit(col)).otherwise(column)
    return [reason.alias("reason"), column.alias("reason_column")]


def _file_reject(
    department: str, rel: str, row: int, reason: str, column: str | None
) -> pl.DataFrame:
    """A whole file set aside: one rejection on record (row 0: the file; 1: its header)."""
    values = {
        "department": department,
        "source_file": rel,
        "source_row": row,
        "reason": reason,
        "reason_column": column,
    }
    return pl.DataFrame([{c: values.get(c) for c in READ_SCHEMA}], schema=READ_SCHEMA)


def read_feedback(roots: list[FeedbackRoot], today: dt.date | None = None) -> FeedbackRead:
    """Every feedback file under the roots, row-checked; never raises for a bad file.

    A decision dated after ``today`` (the wall-clock date by default) cannot have been taken
    yet: rejected as ``future_date``. (Dates between a run's month and today are real
    decisions a later month's run applies.)
    """
    today = today or dt.date.today()
    frames: list[pl.DataFrame] = []
    files: list[dict] = []
    decisions = decision_lookup()
    types = warning_type_lookup()
    for root in roots:
        for path in list_files(root.folder):
            rel_in_root = path.relative_to(root.folder)
            rel = f"{root.prefix}/{rel_in_root.as_posix()}"
            folder = rel_in_root.parts[0] if len(rel_in_root.parts) > 1 else ""
            department = _DEPARTMENT_FOLDERS.get(folder, folder)
            if department not in DEPARTMENTS:
                frames.append(_file_reject(department, rel, 0, "unknown_department", None))
                files.append(_file_entry(department, rel, None, 0, 0))
                continue
            try:
                result = read_file(path, FEEDBACK, root.folder)
            except PovwatchError as exc:
                missing = "decision" if "'decision'" in str(exc) else None
                reason = "missing_column" if missing else "unreadable_file"
                frames.append(_file_reject(department, rel, 1 if missing else 0, reason, missing))
                files.append(_file_entry(department, rel, None, 0, 0))
                continue
            frame = result.frame
            # A 台账 row nobody answered, or marked 待核实 (still checking), is not a decision
            # (nor a rejection).
            answered = frame.filter(
                (pl.col("decision").is_not_null() | pl.col("decided_on").is_not_null())
                & (pl.col("decision") != DECISION_PENDING_LABEL).fill_null(True)
            )
            files.append(
                _file_entry(
                    department, rel, result.sha256, frame.height, frame.height - answered.height
                )
            )
            decision_code = (
                pl.col("decision")
                .str.to_lowercase()
                .replace_strict(decisions, default=None, return_dtype=pl.String)
            )
            type_code = (
                pl.col("warning_type")
                .str.to_lowercase()
                .replace_strict(types, default=None, return_dtype=pl.String)
            )
            parsed = answered.with_columns(
                # the kind letter may come in lower case; the person's number is kept as is
                pl.col("warning_id")
                .str.replace(r"^(\d{4})-r-", "${1}-R-")
                .str.replace(r"^(\d{4})-i-", "${1}-I-"),
                _parse_date(pl.col("decided_on")).alias("_day"),
                decision_code.alias("_decision"),
                type_code.alias("_type"),
            )
            checked = parsed.with_columns(
                _first_failure(
                    [
                        (pl.col("decision").is_null(), "missing_value", "decision"),
                        (pl.col("_decision").is_null(), "unknown_decision", "decision"),
                        (
                            pl.all_horizontal(
                                pl.col(c).is_null() for c in ("warning_id", "psn_no", "certno")
                            ),
                            "missing_value",
                            "warning_id",
                        ),
                        (
                            pl.col("warning_id").is_not_null()
                            & ~pl.col("warning_id").str.contains(_WARNING_ID),
                            "unknown_warning",
                            "warning_id",
                        ),
                        (
                            pl.col("warning_type").is_not_null() & pl.col("_type").is_null(),
                            "unknown_warning_type",
                            "warning_type",
                        ),
                        (pl.col("decided_on").is_null(), "missing_value", "decided_on"),
                        (pl.col("_day").is_null(), "bad_date", "decided_on"),
                        (pl.col("_day") > today, "future_date", "decided_on"),
                    ]
                )
            )
            frames.append(
                checked.select(
                    pl.lit(department).alias("department"),
                    pl.lit(rel).alias("source_file"),
                    "source_row",
                    pl.lit(result.sha256).alias("sha256"),
                    "warning_id",
                    "psn_no",
                    "certno",
                    pl.col("_type").alias("warning_type"),
                    pl.col("_decision").alias("decision"),
                    pl.col("_day").alias("decided_on"),
                    "note",
                    "reason",
                    "reason_column",
                )
            )
    rows = pl.concat([f.cast(READ_SCHEMA) for f in frames]) if frames else None
    return FeedbackRead(
        rows=rows if rows is not None else pl.DataFrame(schema=READ_SCHEMA), files=files
    )


def _file_entry(department: str, rel: str, sha: str | None, rows: int, blank: int) -> dict:
    return {
        "department": department,
        "source_file": rel,
        "sha256": sha,
        "rows_read": rows,
        "blank": blank,
    }


def feedback_roots(landing: Path, outbox: Path) -> list[FeedbackRoot]:
    """Where decisions come from: the landing's ``feedback/`` and delivered 台账 that were
    edited in place and set aside under the outbox's ``received/`` (same ``<department>/``
    layout)."""
    return [
        FeedbackRoot(landing / "feedback", "feedback"),
        FeedbackRoot(outbox / "received", "outbox/received"),
    ]
