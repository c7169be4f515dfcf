"""The quarantine gate: a month whose rows are mostly set aside stops, naming the cause.

Row-level checks quarantine a settlement (staging SQL) or reject a registry / identity row
(ingest) with a reason code and column. One bad row is the data team's business; a month
where more than ``quarantine.max_share`` (``expectations/bands.yaml``, default 5%) of the
export's rows are quarantined is a broken input — an export saved through a spreadsheet, a
stale registry — and the warnings computed from the rest would be wrong, so the run stops
before anything is written or published, with one line naming the main reason, its column,
its file and the counts, and what usually causes it:

    bad_certno: 21109 of 23169 rows (91%) in setl_202403.csv column certno — resident ids
    look numeric: was the file saved through a spreadsheet? (2024-03: 91% of the export's
    rows quarantined, limit 5%)

The gate is plain SQL over the staged and rejected rows, not Great Expectations: it runs from
the first month (a share, no history needed) and also with ``POVWATCH_QUALITY=off``. The
registry and the identities are judged the same way against ``reference_max_share``
(default 50%: a registry that is mostly invalid).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

import duckdb
from pydantic import BaseModel, ConfigDict, Field

from pipeline.errors import PovwatchError
from pipeline.resident_id import NUMERIC_LOOKING

# What usually causes a reason code when it dominates a file (the cause, not the symptom).
HINTS = {
    "missing_value": "the column is empty: was it exported, or renamed?",
    "bad_code": "codes are not the platform's digit codes: was the column shifted?",
    "bad_time": "setl_time is not a date-time (e.g. 2024-03-05 10:00:00): was the column "
    "reformatted?",
    "bad_amount": "amounts are not yuan with at most two decimals: was the column "
    "reformatted or shifted?",
    "bad_flag": "flags are not 0/1: was the column shifted?",
    "after_export_month": "settlements dated after the export month: is the file in the "
    "right month's folder?",
    "bad_certno": "resident ids fail the GB 11643 check character",
    "unknown_psn": "persons not in the registry: is the registry snapshot (persons/) the "
    "current one?",
    "amounts_mismatch": "psn_part_amt is not medfee_sumamt − fund_pay_sumamt − "
    "hosp_part_amt: were columns shifted or amounts rounded?",
    "negative_without_reversal": "negative amounts on rows not flagged as reversals "
    "(refd_setl_flag)",
    "unknown_original": "reversals of settlements never received: is an earlier export missing?",
    "unknown_person": "identities of persons not in the registry: is the registry snapshot "
    "the current one?",
    "unknown_identity": "identity codes not in the contract's list nor in "
    "policies/codes/identity_codes.yaml",
    "bad_date": "dates are not dates (e.g. 2024-03-31): was the column reformatted?",
    "bad_value": "values are not numbers",
}
SPREADSHEET_HINT = "resident ids look numeric: was the file saved through a spreadsheet?"
# In an XLSX an id stored as a number keeps ~16 digits and fails its check character.
XLSX_NUMBER_HINT = (
    "resident ids fail the GB 11643 check character: are they stored as numbers in the "
    "spreadsheet (18 digits do not fit a number; format the column as text)?"
)


class QuarantineLimits(BaseModel):
    """Shares of rows above which a month stops (``expectations/bands.yaml``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_share: float = Field(default=0.05, ge=0, le=1)
    reference_max_share: float = Field(default=0.5, ge=0, le=1)


@dataclass(frozen=True)
class MainReason:
    """The largest (file, reason, column) group of quarantined rows, with its counts."""

    reason: str
    column: str | None
    source_file: str
    rows: int  # rows of that group
    file_rows: int  # rows read from that file
    numeric_ids: int = 0  # of them, resident ids that look like spreadsheet numbers

    def text(self) -> str:
        hint = HINTS.get(self.reason, "see povwatch quarantine --month … --format csv")
        if self.reason == "bad_certno" and self.numeric_ids * 2 >= self.rows:
            hint = SPREADSHEET_HINT
        elif self.reason == "bad_certno" and self.source_file.lower().endswith(".xlsx"):
            hint = XLSX_NUMBER_HINT
        name = PurePosixPath(self.source_file).name
        column = f" column {self.column}" if self.column else ""
        return (
            f"{self.reason}: {self.rows} of {self.file_rows} rows ({_pct(self.rows, self.file_rows)})"
            f" in {name}{column} — {hint}"
        )


def _pct(part: int, whole: int) -> str:
    """91% for 21109 of 23169; one decimal below 10% and where rounding would show 100%."""
    share = 100 * part / whole if whole else 0.0
    whole_pct = f"{share:.0f}"
    if share == int(share) or (share >= 10 and whole_pct != "100"):
        return f"{whole_pct}%"
    return f"{share:.1f}%"


def limits() -> QuarantineLimits:
    from pipeline.quality.gates import QualityBands  # the file all batch limits live in

    return QualityBands.load().quarantine


def month_counts(con: duckdb.DuckDBPyConnection, month: str) -> tuple[int, int]:
    """(quarantined rows, rows) of the month's export."""
    rows = con.execute(
        """
        select count(*) filter (where status = 'quarantined'), count(*)
        from stg_settlements where export_month = ?
        """,
        [str(month)],
    ).fetchall()
    return int(rows[0][0]), int(rows[0][1])


def main_reason(con: duckdb.DuckDBPyConnection, month: str) -> MainReason | None:
    """The month's largest group of quarantined settlement rows (file, reason, column)."""
    rows = con.execute(
        """
        with q as (
            select s.source_file, s.reason, s.reason_column,
                   regexp_full_match(coalesce(r.certno, ''), ?) as numeric_id
            from stg_settlements as s
            left join raw_settlements as r using (export_month, source_file, source_row)
            where s.export_month = ? and s.status = 'quarantined'
        ),
        per_file as (
            select source_file, count(*) as file_rows
            from stg_settlements where export_month = ? group by all
        )
        select q.reason, q.reason_column, q.source_file, count(*) as n, f.file_rows,
               count(*) filter (where q.numeric_id) as numeric_ids
        from q join per_file as f using (source_file)
        group by all
        order by n desc, q.source_file, q.reason, q.reason_column
        limit 1
        """,
        [NUMERIC_LOOKING, str(month), str(month)],
    ).fetchall()
    if not rows:
        return None
    reason, column, source_file, n, file_rows, numeric = rows[0]
    return MainReason(reason, column, source_file, int(n), int(file_rows), int(numeric))


def cause(con: duckdb.DuckDBPyConnection, month: str, at_least: float = 0.0) -> str | None:
    """``N of M rows (P%) quarantined, mostly <main reason text>`` when the month's share of
    quarantined rows is above ``at_least`` — the cause behind a symptom such as a cost band."""
    quarantined, total = month_counts(con, month)
    if not total or quarantined / total <= at_least or not quarantined:
        return None
    main = main_reason(con, month)
    assert main is not None
    return (
        f"{quarantined} of {total} rows of {month} ({_pct(quarantined, total)}) were "
        f"quarantined, mostly {main.text()}"
    )


def check_month(
    con: duckdb.DuckDBPyConnection, month: str, limit: QuarantineLimits | None = None
) -> None:
    """Stop the run (PovwatchError, one line) when the month's export has more than
    ``max_share`` of its rows quarantined."""
    limit = limit or limits()
    quarantined, total = month_counts(con, month)
    if not total or quarantined / total <= limit.max_share:
        return
    main = main_reason(con, month)
    assert main is not None
    raise PovwatchError(
        f"{main.text()} ({month}: {_pct(quarantined, total)} of the export's rows "
        f"quarantined, limit {_pct_limit(limit.max_share)})"
    )


def check_reference(con: duckdb.DuckDBPyConnection, limit: QuarantineLimits | None = None) -> None:
    """Stop the run when the registry or the identities are mostly invalid: more than
    ``reference_max_share`` of a kind's rows rejected (``ref_rejects``).

    An identity of a person the registry does not hold (``unknown_person``) is recorded but
    not held against the file: 民政 and 乡村振兴 lists also name people insured elsewhere.
    """
    limit = limit or limits()
    rows = con.execute(
        """
        with rejects as (
            select * from ref_rejects
            where kind = 'persons' or (kind = 'identities' and reason <> 'unknown_person')
        ),
        files as (
            select f.kind, sum(f.rows_read) as rows_read,
                   (select count(*) from rejects as j where j.kind = f.kind) as rejected
            from ref_files as f where f.kind in ('persons', 'identities') group by f.kind
        ),
        counted as (
            select j.kind, j.source_file, j.reason, j.reason_column, count(*) as n,
                   any_value(f.rows_read) as file_rows
            from rejects as j
            join ref_files as f using (kind, source_file)
            group by j.kind, j.source_file, j.reason, j.reason_column
        ),
        groups as (
            select *, row_number() over (
                partition by kind order by n desc, source_file, reason, reason_column
            ) as rank
            from counted
        )
        select f.kind, f.rows_read, f.rejected, g.reason, g.reason_column, g.source_file,
               g.n, g.file_rows
        from files as f join groups as g on g.kind = f.kind and g.rank = 1
        where f.rows_read > 0 and f.rejected > f.rows_read * ?
        order by f.kind desc
        """,
        [limit.reference_max_share],
    ).fetchall()
    if not rows:
        return
    kind, read, rejected, reason, column, source_file, n, file_rows = rows[0]
    numeric = con.execute(
        "select count(*) filter (where numeric_id) from ref_rejects "
        "where kind = ? and source_file = ? and reason = ?",
        [kind, source_file, reason],
    ).fetchall()[0][0]
    main = MainReason(reason, column, source_file, int(n), int(file_rows), int(numeric))
    what = "registry" if kind == "persons" else "identities"
    raise PovwatchError(
        f"{main.text()} ({what}: {_pct(int(rejected), int(read))} of the rows rejected, "
        f"limit {_pct_limit(limit.reference_max_share)})"
    )


def _pct_limit(share: float) -> str:
    return f"{share * 100:g}%"
