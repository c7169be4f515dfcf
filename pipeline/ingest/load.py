"""Landing folder → DuckDB: settlement exports into raw, reference snapshots into ref tables.

Every row read is accounted for: settlements are classified by staging SQL (loaded, duplicate,
skipped, quarantined); reference rows that cannot be used go to ``ref_rejects`` with a reason.
A file that cannot be used at all stops the run (``PovwatchError`` naming the file).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_args

import duckdb
import polars as pl
import yaml

from pipeline.errors import PovwatchError, shown
from pipeline.ingest.digests import file_sha256
from pipeline.ingest.readers import FileSpec, ReadResult, list_files, read_file
from pipeline.months import Month
from pipeline.policy.types import IDENTITY_CODES, Department
from pipeline.resident_id import NUMERIC_LOOKING, valid_mask_expr
from pipeline.store.warehouse import (
    REGISTRY_BYTES_PER_ROW,
    STAGING_BYTES_PER_ROW,
    fit_memory,
    resource_dir,
    sql,
)

SETTLEMENTS = FileSpec(
    kind="settlements",
    required=(
        "setl_id",
        "psn_no",
        "insutype",
        "med_type",
        "setl_time",
        "medfee_sumamt",
        "hifp_pay",
        "fund_pay_sumamt",
        "psn_part_amt",
    ),
    optional=(
        "mdtrt_id",
        "certno",
        "fulamt_ownpay_amt",
        "overlmt_selfpay",
        "preselfpay_amt",
        "inscp_scp_amt",
        "hifmi_pay",
        "hifob_pay",
        "maf_pay",
        "oth_pay",
        "hosp_part_amt",
        "acct_pay",
        "psn_cash_pay",
        "insu_admdvs",
        "refd_setl_flag",
        "init_setl_id",
        "vali_flag",
        # shown when a warning is explained (contract: optional, absent-tolerant)
        "fixmedins_code",
        "fixmedins_name",
        "dise_codg",
        "dise_name",
    ),
    # The central settlement table setl_d spells some columns differently.
    aliases=(
        ("psn_pay", "psn_part_amt"),
        ("cash_payamt", "psn_cash_pay"),
        ("othfund_pay", "oth_pay"),
        ("inscp_amt", "inscp_scp_amt"),
    ),
    money=(
        "medfee_sumamt",
        "fulamt_ownpay_amt",
        "overlmt_selfpay",
        "preselfpay_amt",
        "inscp_scp_amt",
        "hifp_pay",
        "hifmi_pay",
        "hifob_pay",
        "maf_pay",
        "oth_pay",
        "fund_pay_sumamt",
        "psn_part_amt",
        "hosp_part_amt",
        "acct_pay",
        "psn_cash_pay",
    ),
)
PERSONS = FileSpec(
    kind="persons",
    required=("psn_no", "hh_id", "insuplc_admdvs"),
    optional=("certno", "psn_name", "gend", "brdy", "insutype", "rural"),
)
IDENTITIES = FileSpec(
    kind="identities",
    required=("begin_date",),
    optional=("certno", "psn_no", "identity", "psn_idet_type", "end_date", "source_dept"),
)
INCOME = FileSpec(
    kind="income",
    required=("admdvs", "year", "scope", "amount", "published_on"),
    money=("amount",),
)

_MONTH_DIR = re.compile(r"^\d{4}-\d{2}$")
SUCCESS_MARKER = "_SUCCESS"  # written last into an export folder by the platform's extract job
_DATE_TOKEN = re.compile(r"(?<!\d)(20\d{2})[-_]?(0[1-9]|1[0-2])(?:[-_]?([0-3]\d))?(?!\d)")


@dataclass
class IngestReport:
    """What was read this run, for the ledger and the console."""

    settlement_files: list[dict] = field(default_factory=list)
    reference_files: list[dict] = field(default_factory=list)
    reread_months: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- settlements


def export_folders(landing: Path, month: Month) -> dict[str, list[Path]]:
    """Settlement export folders up to ``month`` (inclusive) → their data files."""
    root = landing / "settlements"
    out: dict[str, list[Path]] = {}
    if root.is_dir():
        for d in sorted(root.iterdir()):
            if d.is_dir() and _MONTH_DIR.match(d.name) and d.name <= str(month):
                out[d.name] = [f for f in list_files(d) if f.name != SUCCESS_MARKER]
    return out


def ingest_settlements(
    con: duckdb.DuckDBPyConnection,
    landing: Path,
    month: Month,
    report: IngestReport,
    require_complete: bool = False,
) -> None:
    """(Re)read every export folder up to ``month`` whose files changed since last read.

    ``require_complete``: every folder up to ``month`` must hold the platform's ``_SUCCESS``
    marker (written last by its extract job), else the run stops naming the folder.
    """
    folders = export_folders(landing, month)
    if not folders.get(str(month)):
        raise PovwatchError(
            f"{shown(landing / 'settlements' / str(month))}: no settlement export for {month} "
            "(the folder is missing or empty)"
        )
    if require_complete:
        incomplete = [
            em for em in folders if not (landing / "settlements" / em / SUCCESS_MARKER).is_file()
        ]
        if incomplete:
            raise PovwatchError(
                f"{shown(landing / 'settlements' / incomplete[0])}: export incomplete: no "
                f"{SUCCESS_MARKER} marker (--require-complete)"
                + (f"; also {', '.join(incomplete[1:])}" if incomplete[1:] else "")
            )
    known: dict[str, set[tuple[str, str]]] = {}
    for export_month, source_file, digest in con.execute(
        "select export_month, source_file, sha256 from ingested_files where export_month <= ?",
        [str(month)],
    ).fetchall():
        known.setdefault(export_month, set()).add((source_file, digest))
    for gone in sorted(set(known) - set(folders)):
        _forget_export(con, gone)
    for export_month, files in folders.items():
        # (an unchanged file's size and mtime are enough: file_digests keeps its sha256)
        digests = {f: file_sha256(con, f) for f in files}
        current = {(f.relative_to(landing).as_posix(), h) for f, h in digests.items()}
        before = known.get(export_month, set())
        if before == current:
            continue
        # Only the files added, changed or removed are read or dropped: a district's file
        # landing late (or corrected) does not re-read the month's other files. The month is
        # staged again from all of its rows (classify_settlements: its inputs changed).
        _forget_files(con, export_month, sorted(rel for rel, _ in before - current))
        report.reread_months.append(export_month)
        pending: list[ReadResult] = []
        for path in files:
            if (path.relative_to(landing).as_posix(), digests[path]) in before:
                continue
            result = read_file(path, SETTLEMENTS, landing, sha256=digests[path])
            pending.append(result)
            if sum(r.frame.height for r in pending) >= RAW_BATCH_ROWS:
                _insert_raw(con, export_month, pending)
                pending = []
            con.execute(
                "insert into ingested_files values (?, ?, ?, ?, ?, ?, ?)",
                [
                    export_month,
                    result.rel,
                    result.sha256,
                    result.bytes,
                    result.format,
                    result.encoding,
                    result.rows,
                ],
            )
        if pending:
            _insert_raw(con, export_month, pending)


def _forget_export(con: duckdb.DuckDBPyConnection, export_month: str) -> None:
    for table in ("raw_settlements", "ingested_files", "stg_settlements", "stg_file_totals"):
        con.execute(f"delete from {table} where export_month = ?", [export_month])


def _forget_files(con: duckdb.DuckDBPyConnection, export_month: str, rels: list[str]) -> None:
    """Drop the rows of an export month's files ``rels`` (changed or gone) and the month's
    staging (it is staged again from the files it holds now)."""
    for table in ("raw_settlements", "ingested_files") if rels else ():
        con.execute(
            f"delete from {table} where export_month = ? and source_file in "
            "(select unnest(?::varchar[]))",
            [export_month, rels],
        )
    for table in ("stg_settlements", "stg_file_totals"):
        con.execute(f"delete from {table} where export_month = ?", [export_month])


# A month arriving as many files (one per district) is inserted in batches of about this many
# rows: one insert of a large batch compresses its row groups on every core (per file of
# 117 000 rows, one core: twice the time at 5M persons); the batch bounds the memory held.
RAW_BATCH_ROWS = 1_000_000


def _insert_raw(
    con: duckdb.DuckDBPyConnection, export_month: str, results: list[ReadResult]
) -> None:
    frame = pl.concat(
        [
            r.frame.with_columns(
                pl.lit(export_month).alias("export_month"), pl.lit(r.rel).alias("source_file")
            )
            for r in results
        ],
        how="diagonal_relaxed",
        rechunk=False,
    )
    # Arrow string views: the text columns are handed over without a copy. DuckDB finds the
    # batch by this local's name (its replacement scan); a view registered for it would stay
    # in the catalog until the month's transaction commits, even once unregistered, and with
    # it every batch's Arrow buffers: 1.3 GB held through the whole month at 2.3M rows.
    raw_batch = frame.to_arrow(compat_level=pl.CompatLevel.newest())  # noqa: F841
    con.execute("insert into raw_settlements by name select * from raw_batch")


@dataclass(frozen=True)
class Staged:
    """What :func:`classify_settlements` classified: the export months (none: every month
    was kept as it was) and their raw rows (what the month's later stages are sized by)."""

    months: list[str]
    rows: int


def classify_settlements(
    con: duckdb.DuckDBPyConnection, month: Month, report: IngestReport
) -> Staged:
    """Stage the export months up to ``month`` whose inputs changed.

    An export month's classification depends on its own files, the earlier months and the
    registry (unknown persons): when all of these are unchanged, it is kept as it was.
    """
    registry = sorted(
        (f["file"], f["sha256"]) for f in report.reference_files if f["kind"] == "persons"
    )
    files: dict[str, list[tuple[str, str]]] = {}
    for export_month, source_file, digest in con.execute(
        "select export_month, source_file, sha256 from ingested_files where export_month <= ?",
        [str(month)],
    ).fetchall():
        files.setdefault(export_month, []).append((source_file, digest))
    wanted = {
        em: hashlib.sha256(json.dumps([registry, sorted(fs)]).encode()).hexdigest()
        for em, fs in files.items()
    }
    stored = dict(
        con.execute(
            "select export_month, inputs_digest from stg_state where export_month <= ?",
            [str(month)],
        ).fetchall()
    )
    changed = sorted(em for em in set(wanted) | set(stored) if wanted.get(em) != stored.get(em))
    if not changed:
        return Staged([], 0)
    start = changed[0]
    con.execute("delete from stg_settlements where export_month >= ?", [start])
    con.execute("delete from stg_file_totals where export_month >= ?", [start])
    con.execute("delete from stg_state where export_month >= ?", [start])
    (rows,) = con.execute(
        "select count(*) from raw_settlements where export_month between ? and ?",
        [start, str(month)],
    ).fetchone() or (0,)
    # DuckDB's limit follows the rows classified (warehouse.fit_memory)
    fit_memory(con, rows * STAGING_BYTES_PER_ROW)
    con.execute(sql("staging/stg_settlements"), {"from": start, "month": str(month)})
    redo = sorted(em for em in wanted if em >= start)
    con.executemany("insert into stg_state values (?, ?)", [[em, wanted[em]] for em in redo])
    return Staged(redo, rows)


# --------------------------------------------------------------------------- reference data


def _snapshot_month(rel: str) -> str | None:
    """A registry snapshot's month, from a YYYY-MM folder or a date in its file name."""
    matches = list(_DATE_TOKEN.finditer(rel))
    return f"{matches[-1].group(1)}-{matches[-1].group(2)}" if matches else None


def _reference_files(landing: Path, kind_dir: str) -> list[Path]:
    return list_files(landing / kind_dir)


def require_landing(landing: Path) -> None:
    """Stop with the folder's full path when the landing folder is not there."""
    if not landing.is_dir():
        what = "is a file, not a folder" if landing.exists() else "does not exist"
        raise PovwatchError(
            f"{shown(landing)}: the landing folder {what} (pass --landing DIR: the folder "
            "holding settlements/, persons/, identities/ and reference/)"
        )


def load_reference(
    con: duckdb.DuckDBPyConnection, landing: Path, month: Month, report: IngestReport
) -> None:
    """Replace the reference tables with the snapshots in force for ``month``.

    Kept as they are when they were loaded from the same inputs (the files' sha256, the
    identity code mapping and this loader's code): the registry is not read and checked
    again every month.
    """
    require_landing(landing)
    digest = _reference_digest(con, landing, month)
    if digest is not None and con.execute(
        "select count(*) from ref_state where inputs_digest = ?", [digest]
    ).fetchall() == [(1,)]:
        report.reference_files.extend(
            {"kind": k, "file": f, "sha256": h, "rows": n, "rejected": r}
            for k, f, h, n, r in con.execute(
                "select kind, source_file, sha256, rows_read, rows_rejected from ref_files "
                "order by rowid"
            ).fetchall()
        )
        return
    con.execute("delete from ref_state")
    for table in (
        "ref_persons",
        "ref_persons_past",
        "ref_persons_breaks",
        "ref_identities",
        "ref_income",
        "ref_rejects",
        "ref_files",
    ):
        con.execute(f"delete from {table}")
    _load_persons(con, landing, month, report)
    # Back to the floor once the registry is deduplicated: the identity holders' look-ups
    # hash the holders, not the registry (month 1 at L peaked at 2.05 GiB under the
    # registry's limit; at the floor, 1.83 GiB).
    fit_memory(con, 0)
    _load_identities(con, landing, report)
    _load_income(con, landing, report)
    if digest is not None:
        con.execute("insert into ref_state values (?)", [digest])


def _reference_digest(con, landing: Path, month: Month) -> str | None:
    """What the reference tables of ``month`` are loaded from, as one digest (None: no files).

    The registry snapshots in force (as :func:`_load_persons` chooses them), identities and
    income files with their sha256; the identity code mapping; the code that loads them.
    """
    persons = []
    for path in _reference_files(landing, "persons"):
        snap = _snapshot_month(path.relative_to(landing).as_posix())
        if snap is None or snap <= str(month):
            persons.append(path)
    identities = _reference_files(landing, "identities")
    income = _reference_files(landing, "reference")
    if not persons or not income:
        return None  # the loaders name what is missing
    codes = Path(os.environ.get("POVWATCH_IDENTITY_CODES") or "")
    if not codes.is_file():
        codes = resource_dir("policies") / "codes" / "identity_codes.yaml"
    here = Path(__file__).resolve().parent
    parts = [
        [kind, p.relative_to(landing).as_posix(), file_sha256(con, p)]
        for kind, paths in (("persons", persons), ("identities", identities), ("income", income))
        for p in paths
    ]
    h = hashlib.sha256(json.dumps(parts).encode())
    for source in (codes, here / "load.py", here / "readers.py"):
        h.update(source.read_bytes())
    return h.hexdigest()


def _record_ref(con, report: IngestReport, kind: str, result: ReadResult, rejected: int) -> None:
    con.execute(
        "insert into ref_files values (?, ?, ?, ?, ?)",
        [kind, result.rel, result.sha256, result.rows, rejected],
    )
    report.reference_files.append(
        {
            "kind": kind,
            "file": result.rel,
            "sha256": result.sha256,
            "rows": result.rows,
            "rejected": rejected,
        }
    )


def _reject(con, kind: str, result: ReadResult, bad: pl.DataFrame) -> int:
    """Store rejected reference rows (source_row, reason, reason_column) and count them;
    for a rejected resident id, whether it looks like a spreadsheet number (not the id)."""
    if bad.height:
        numeric = (
            pl.col("certno").str.contains(f"^(?:{NUMERIC_LOOKING})$").fill_null(False)
            if "certno" in bad.columns
            else pl.lit(False)
        )
        frame = bad.select(
            pl.lit(kind).alias("kind"),
            pl.lit(result.rel).alias("source_file"),
            "source_row",
            "reason",
            "reason_column",
            ((pl.col("reason") == "bad_certno") & numeric).alias("numeric_id"),
        )
        rej_batch = frame.to_arrow()  # noqa: F841 (read by name in SQL)
        con.execute("insert into ref_rejects by name select * from rej_batch")
    return bad.height


def _first_failure(checks: list[tuple[pl.Expr, str, str]]) -> tuple[pl.Expr, pl.Expr]:
    reason = pl.lit(None, dtype=pl.String)
    column = pl.lit(None, dtype=pl.String)
    for cond, code, col in reversed(checks):
        reason = pl.when(cond).then(pl.lit(code)).otherwise(reason)
        column = pl.when(cond).then(pl.lit(col)).otherwise(column)
    return reason.alias("reason"), column.alias("reason_column")


def date_of(text: pl.Expr) -> pl.Expr:
    """A date as exported or as a spreadsheet writes it (2024-03-31, 2024/03/31, 20240331,
    2024-03-31 00:00:00); null when it is none of these."""
    head = text.str.strip_chars().str.slice(0, 10)
    return pl.coalesce(
        head.str.to_date("%Y-%m-%d", strict=False),
        head.str.to_date("%Y/%m/%d", strict=False),
        text.str.strip_chars().str.to_date("%Y%m%d", strict=False),
    )


def _load_persons(con, landing: Path, month: Month, report: IngestReport) -> None:
    files = _reference_files(landing, "persons")
    if not files:
        raise PovwatchError(
            f"{shown(landing / 'persons')}: no insured-person registry file (persons/*.csv, "
            "*.parquet or *.xlsx)"
        )
    usable = []
    for path in files:
        rel = path.relative_to(landing).as_posix()
        snap = _snapshot_month(rel)
        if snap is not None and snap > str(month):
            continue  # a snapshot taken after the month: not yet in force
        usable.append((snap or "", rel, path))
    if not usable:
        raise PovwatchError(f"{landing / 'persons'}: no registry snapshot dated {month} or earlier")
    con.execute(
        "create or replace temp table persons_in as "
        "select 0::integer as _order, ''::varchar as _snap, * from ref_persons limit 0"
    )
    for order, (snap, _, path) in enumerate(sorted(usable)):
        result = read_file(path, PERSONS, landing)
        reason, column = _first_failure(
            [
                (pl.col("psn_no").is_null(), "missing_value", "psn_no"),
                (pl.col("hh_id").is_null(), "missing_value", "hh_id"),
                (pl.col("insuplc_admdvs").is_null(), "missing_value", "insuplc_admdvs"),
                (~pl.col("insuplc_admdvs").str.contains(r"^\d{6}$"), "bad_code", "insuplc_admdvs"),
                (~valid_mask_expr(pl.col("certno")).fill_null(True), "bad_certno", "certno"),
                (
                    pl.col("insutype").is_not_null()
                    & ~pl.col("insutype").str.contains(r"^[0-9]{2,6}$"),
                    "bad_code",
                    "insutype",
                ),
                (
                    pl.col("rural").is_not_null() & ~pl.col("rural").is_in(["0", "1"]),
                    "bad_flag",
                    "rural",
                ),
                (
                    pl.col("brdy").is_not_null() & date_of(pl.col("brdy")).is_null(),
                    "bad_date",
                    "brdy",
                ),
            ]
        )
        checked = result.frame.with_columns(reason, column)
        rejected = _reject(con, "persons", result, checked.filter(pl.col("reason").is_not_null()))
        _record_ref(con, report, "persons", result, rejected)
        good = checked.filter(pl.col("reason").is_null()).select(
            pl.lit(order, pl.Int32).alias("_order"),
            pl.lit(snap, pl.String).alias("_snap"),
            *(c for c in PERSONS.columns if c != "rural"),
            pl.col("rural").cast(pl.Int32),
            pl.lit(result.rel).alias("source_file"),
            "source_row",
        )
        persons_batch = good.to_arrow()  # noqa: F841 (read by name in SQL)
        con.execute("insert into persons_in by name select * from persons_batch")
    # A person in several snapshots: the latest snapshot's row (the last row within it).
    # Only the persons with more than one row are ranked: a window over the whole registry
    # held every row in memory (5M rows: 2.5 GiB); the others are taken as they are. DuckDB
    # spills to disk, so a province's registry need not fit in memory: the ranking's limit
    # follows the duplicated rows, the sort by psn_no runs at the floor (load_reference sets
    # the floor again after it; warehouse.fit_memory).
    con.execute(
        "create or replace temp table persons_dup as "
        "select psn_no, count(*) as n from persons_in group by psn_no having count(*) > 1"
    )
    (dup_rows,) = con.execute("select coalesce(sum(n), 0) from persons_dup").fetchone() or (0,)
    fit_memory(con, int(dup_rows) * REGISTRY_BYTES_PER_ROW)
    con.execute(
        f"""
        insert into ref_persons by name
        select * exclude (_order, _snap) from persons_in anti join persons_dup using (psn_no)
        union all
        select * exclude (_order, _snap, _last) from (
            select *, {_LATEST} as _last from persons_in semi join persons_dup using (psn_no)
        )
        where _last
        order by psn_no
        """
    )
    con.execute("drop table persons_dup")
    _store_past_registry(con, month, sorted({snap for snap, _, _ in usable if snap}))
    con.execute("drop table persons_in")


# A person's row in the registry in force: the latest snapshot's, the last row within it
# (contract: latest snapshot wins), over persons_in as _load_persons fills it.
_LATEST = "row_number() over (partition by psn_no order by _order desc, source_row desc) = 1"


def _store_past_registry(con, month: Month, snaps: list[str]) -> None:
    """ref_persons_past and ref_persons_breaks: the registry in force in each earlier month of
    ``month``'s year, where it differs from the one in force for ``month`` (ref_persons).

    The registry in force for a month is every snapshot dated that month or earlier (and every
    undated one), the latest winning (contract: latest snapshot wins), as _load_persons reads
    it. It changes only in a month with a snapshot: January, then each such month up to
    ``month`` is a break; from the last break on it is ref_persons itself (nothing stored).
    """
    january = str(Month(month.year, 1))
    breaks = [january, *(s for s in snaps if january < s <= str(month))]
    con.executemany("insert into ref_persons_breaks values (?)", [[b] for b in breaks])
    for b in breaks[:-1]:
        con.execute(
            f"""
            insert into ref_persons_past
            with as_of as (
                select psn_no, hh_id, insuplc_admdvs, insutype, rural from persons_in
                where _snap <= $b
                qualify {_LATEST}
            )
            select $b, a.psn_no, true, a.hh_id, a.insuplc_admdvs, a.insutype, a.rural
            from as_of as a left join ref_persons as f using (psn_no)
            where f.psn_no is null
                or a.hh_id is distinct from f.hh_id
                or a.insuplc_admdvs is distinct from f.insuplc_admdvs
                or a.insutype is distinct from f.insutype
                or a.rural is distinct from f.rural
            union all
            select $b, f.psn_no, false, null, null, null, null
            from ref_persons as f anti join as_of as a using (psn_no)
            order by 2
            """,
            {"b": b},
        )


def identity_code_map() -> dict[str, str]:
    path = Path(os.environ.get("POVWATCH_IDENTITY_CODES") or "")
    if not path.is_file():
        path = resource_dir("policies") / "codes" / "identity_codes.yaml"
    mapping = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    bad = {k: v for k, v in mapping.items() if v not in IDENTITY_CODES}
    if bad:
        code, value = next(iter(bad.items()))
        raise PovwatchError(f"{path}: code {code} maps to unknown identity {value!r}")
    return {str(k): v for k, v in mapping.items()}


def _load_identities(con, landing: Path, report: IngestReport) -> None:
    """Identity holders, mapped to psn_no and checked once over all files together: a
    province's list arrives as many files, and checking each against the whole registry
    would cost files × persons."""
    codes = identity_code_map()
    mapping = pl.DataFrame(
        {"_code": list(codes), "_mapped": list(codes.values())},
        schema={"_code": pl.String, "_mapped": pl.String},
    )
    results = []
    for path in _reference_files(landing, "identities"):
        result = read_file(path, IDENTITIES, landing)
        if result.frame["identity"].null_count() == result.rows and "psn_idet_type" not in (
            result.frame.columns
        ):
            raise PovwatchError(f"{result.rel}: required column 'identity' is missing")
        if "certno" not in result.frame.columns and "psn_no" not in result.frame.columns:
            raise PovwatchError(f"{result.rel}: required column 'certno' (or 'psn_no') is missing")
        results.append(result)
    if not results:
        return
    frame = (
        pl.concat(
            [
                r.frame.with_columns(pl.lit(i, pl.Int32).alias("_file"))
                for i, r in enumerate(results)
            ],
            how="diagonal_relaxed",
        )
        .with_row_index("_i")
        .join(mapping, left_on="psn_idet_type", right_on="_code", how="left", maintain_order="left")
        .with_columns(pl.coalesce("identity", "_mapped").alias("identity"))
    )
    # Matched against the registry inside DuckDB (a province's registry is not copied into
    # polars): the person of a resident id (the first in psn_no order when an id is held
    # twice), and whether the person number is in the registry.
    ident_in = frame.select("_i", "psn_no", "certno").to_arrow()  # noqa: F841 (read by name in SQL)
    # (Both look-ups build their hash tables on the identity holders, not on the registry:
    # hashing a province's 5M person numbers ran out of memory at the floor, beside the
    # registry rows the month's transaction replaces.)
    found = con.sql(
        """
        with named as (
            select i._i, c._by_cert, coalesce(i.psn_no, c._by_cert) as _p
            from ident_in as i
            left join (
                select certno, min(psn_no) as _by_cert
                from ref_persons
                where certno in (select certno from ident_in)
                group by certno
            ) as c using (certno)
        )
        select _i, _by_cert,
               case when _p is not null then _p in (
                   select psn_no from ref_persons where psn_no in (select _p from named)
               ) end as _known
        from named
        """
    ).pl()
    frame = frame.join(found, on="_i", how="left", maintain_order="left").with_columns(
        pl.coalesce("psn_no", "_by_cert").alias("psn_no"),
        # (not polars' inferred format: it takes the first value's, and a spreadsheet's
        # 2023-01-01 00:00:00 or the platform's 20230101 came out as no date)
        date_of(pl.col("begin_date")).alias("_begin"),
        date_of(pl.col("end_date")).alias("_end"),
    )
    reason, column = _first_failure(
        [
            (pl.col("identity").is_null(), "missing_value", "identity"),
            (~pl.col("identity").is_in(list(IDENTITY_CODES)), "unknown_identity", "identity"),
            (
                pl.col("certno").is_null() & pl.col("psn_no").is_null(),
                "missing_value",
                "certno",
            ),
            (~valid_mask_expr(pl.col("certno")).fill_null(True), "bad_certno", "certno"),
            (pl.col("psn_no").is_null(), "unknown_person", "certno"),
            (~pl.col("_known"), "unknown_person", "psn_no"),
            (pl.col("_begin").is_null(), "bad_date", "begin_date"),
            (
                pl.col("end_date").is_not_null() & pl.col("_end").is_null(),
                "bad_date",
                "end_date",
            ),
            (pl.col("_end") < pl.col("_begin"), "bad_date", "end_date"),
            (
                pl.col("source_dept").is_not_null()
                & ~pl.col("source_dept").is_in(list(get_args(Department))),
                "bad_code",
                "source_dept",
            ),
        ]
    )
    checked = frame.with_columns(reason, column).partition_by(
        "_file", as_dict=True, maintain_order=True, include_key=False
    )
    for i, result in enumerate(results):
        part = checked.get((i,))
        if part is None:  # a file with a header and no rows
            part = frame.clear().with_columns(reason, column).drop("_file")
        rejected = _reject(con, "identities", result, part.filter(pl.col("reason").is_not_null()))
        _record_ref(con, report, "identities", result, rejected)
        good = part.filter(pl.col("reason").is_null()).select(
            "psn_no",
            "identity",
            pl.col("_begin").alias("begin_date"),
            pl.col("_end").alias("end_date"),
            "source_dept",
            pl.lit(result.rel).alias("source_file"),
            "source_row",
        )
        ident_batch = good.to_arrow()  # noqa: F841 (read by name in SQL)
        con.execute("insert into ref_identities by name select * from ident_batch")


def _load_income(con, landing: Path, report: IngestReport) -> None:
    files = _reference_files(landing, "reference")
    if not files:
        raise PovwatchError(f"{landing / 'reference'}: no reference income file (income.csv)")
    for path in files:
        result = read_file(path, INCOME, landing)
        income_batch = result.frame.to_arrow()  # noqa: F841 (read by name in SQL)
        checked = con.sql(
            """
            select source_row, admdvs, scope,
                   try_cast(year as integer) as year,
                   to_fen(amount) as amount_fen,
                   to_date(published_on) as published_on,
                   case
                       when admdvs is null or not regexp_full_match(admdvs, '[0-9]{6}')
                           then ['bad_code', 'admdvs']
                       when try_cast(year as integer) is null then ['bad_value', 'year']
                       when scope is null or scope not in ('all', 'urban', 'rural')
                           then ['bad_code', 'scope']
                       when to_fen(amount) is null or to_fen(amount) <= 0
                           then ['bad_amount', 'amount']
                       when to_date(published_on) is null then ['bad_date', 'published_on']
                   end as check_result
            from income_batch
            """
        ).pl()
        checked = checked.with_columns(
            pl.col("check_result").list.get(0).alias("reason"),
            pl.col("check_result").list.get(1).alias("reason_column"),
        )
        rejected = _reject(con, "income", result, checked.filter(pl.col("reason").is_not_null()))
        _record_ref(con, report, "income", result, rejected)
        good = checked.filter(pl.col("reason").is_null()).select(
            "admdvs",
            "year",
            "scope",
            "amount_fen",
            "published_on",
            pl.lit(result.rel).alias("source_file"),
            "source_row",
        )
        income_good = good.to_arrow()  # noqa: F841 (read by name in SQL)
        con.execute("insert into ref_income by name select * from income_good")
