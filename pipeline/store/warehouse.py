"""The DuckDB warehouse: one writer, schema on connect, SQL files loaded by name."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import duckdb

from pipeline.errors import PovwatchError, shown
from pipeline.store.files import private_dir, restrict

_PACKAGE = Path(__file__).resolve().parents[1]
_REPO_ROOT = _PACKAGE.parent


def resource_dir(name: str) -> Path:
    """A top-level resource folder (``sql``, ``policies``, ``reports``) of the checkout or wheel."""
    for candidate in (_REPO_ROOT / name, _PACKAGE / f"_{name}"):
        if candidate.is_dir():
            return candidate
    raise PovwatchError(f"resource folder {name!r} not found beside the pipeline package")


@cache
def sql(name: str) -> str:
    """The text of ``sql/<name>.sql``."""
    return (resource_dir("sql") / f"{name}.sql").read_text(encoding="utf-8")


KEY_ENV = "POVWATCH_DB_KEY"
MEMORY_ENV = "POVWATCH_DUCKDB_MEMORY"
DEFAULT_MEMORY_SHARE = 0.4  # of the machine's memory: polars works beside DuckDB


def memory_limit() -> str:
    """DuckDB's memory limit: ``POVWATCH_DUCKDB_MEMORY`` (e.g. ``8GiB``), else 40 % of the
    machine's memory. DuckDB's own default (80 %) leaves too little for the polars frames of
    the same process at province scale; above its limit DuckDB spills to ``<db>.tmp``.
    Without the variable, a month's run lowers the limit to what its work needs
    (:func:`fit_memory`)."""
    given = _given_limit()
    if given:
        return given
    return f"{_machine_share() // 2**20}MiB"


def _given_limit() -> str:
    given = os.environ.get(MEMORY_ENV, "").strip()
    if given and not re.fullmatch(r"\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)", given):
        raise PovwatchError(f"{MEMORY_ENV}={given!r}: not a memory size (examples: 8GiB, 16000MB)")
    return given


def _machine_share() -> int:
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return int(total * DEFAULT_MEMORY_SHARE)


# What a month's stages need of DuckDB (measured at province scale: README, "Benchmark").
# DuckDB fills whatever limit it has with cached blocks, needed or not: at 40 % of a 24 GiB
# machine month 12 at L peaked at 3.1 GiB and month 1 at 3.1 GiB; with these, 1.9 and 2.4.
# - Reading the reference files: the floor (DuckDB spills what it holds to <db>.tmp).
# - Deduplicating the registry: 300 B a row of the persons in more than one row, for their
#   ranking (1.1M such rows: the floor); the sort of the whole registry by psn_no runs at the
#   floor (5M rows: 0.6 GiB; ranking all 5M rows under 1.4 GiB peaked at 2.5).
#   The identity holders are then matched against it at the floor: both look-ups hash the
#   holders, not the registry (hashing the 5M person numbers ran out of memory there).
# - Reading and inserting the settlement exports: 1 GiB (at 512 MiB, 2 s more for 2.3M rows).
# - Classifying the export months: the checked rows and their hash tables, 600 B a settlement
#   row (2.3M rows: 1.3 GiB; 2 s more than with 9.6 GiB, 1.4 GiB less at the peak).
# - The stages after it read running totals and a few persons' rows: 340 B a settlement row
#   classified in the run (2.3M rows: 760 MiB).
MEMORY_FLOOR = 2**29
REGISTRY_BYTES_PER_ROW = 300
INGEST_BYTES = 2**30
STAGING_BYTES_PER_ROW = 600
AFTER_STAGING_BYTES_PER_ROW = 340


def fit_memory(con: duckdb.DuckDBPyConnection, wanted: int) -> None:
    """Set DuckDB's limit to ``wanted`` bytes, at least ``MEMORY_FLOOR`` and at most 40 % of
    the machine; a limit given in ``POVWATCH_DUCKDB_MEMORY`` is left as it is."""
    if _given_limit():
        return
    limit = min(max(wanted, MEMORY_FLOOR), _machine_share())
    con.execute(f"set memory_limit = '{limit // 2**20}MiB'")


@cache
def packaged_extensions() -> Path | None:
    """DuckDB's extension folder shipped by the ``duckdb-ext-*`` packages (``duckdb_ext/
    extensions/v<version>/<platform>/``), or None when they are not installed."""
    spec = importlib.util.find_spec("duckdb_ext")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "extensions"
    return folder if folder.is_dir() else None


def _literal(text: str) -> str:
    """A SQL string literal. DuckDB 1.4 binds no parameters in ATTACH, so the path and key
    are quoted here (a quote doubled); neither is ever logged or shown."""
    return "'" + text.replace("'", "''") + "'"


def _load_crypto(con: duckdb.DuckDBPyConnection) -> None:
    """Load httpfs (OpenSSL: DuckDB's writable AES-GCM) from the packaged extensions."""
    folder = packaged_extensions()
    if folder is not None:
        con.execute("set extension_directory = ?", [str(folder)])
    with contextlib.suppress(duckdb.Error):
        con.execute("load httpfs")


def _open(db: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    """A plain file, or an encrypted one when ``POVWATCH_DB_KEY`` holds the key.

    Encryption at rest uses DuckDB's AES-GCM database encryption; writing needs the httpfs
    extension (OpenSSL), installed from the lock file as the ``duckdb-ext-httpfs`` package
    for this DuckDB version. The key never appears in messages. (An Airflow deployment
    passes the key from a connection's password into this variable.)
    """
    key = os.environ.get(KEY_ENV)
    if not key:
        try:
            return duckdb.connect(str(db), read_only=read_only)
        except duckdb.Error as exc:
            if "encrypted" in str(exc).lower() and "without a key" in str(exc).lower():
                raise PovwatchError(
                    f"{shown(db)}: the warehouse is encrypted; set {KEY_ENV} to its key"
                ) from None
            raise
    con = duckdb.connect()
    _load_crypto(con)
    if os.environ.get("POVWATCH_DB_UNSAFE_CRYPTO") == "1":
        # Only where httpfs cannot be installed: DuckDB's fallback crypto (not securely random).
        con.execute("set force_mbedtls_unsafe = 'true'")
    mode = ", read_only" if read_only else ""
    try:
        con.execute(
            f"attach {_literal(str(db))} as warehouse (encryption_key {_literal(key)}{mode})"
        )
        if not read_only:  # fail now, not at the first write, when no OpenSSL is loaded
            con.execute("create table if not exists warehouse.__povwatch_probe (x integer)")
            con.execute("drop table warehouse.__povwatch_probe")
    except duckdb.Error as exc:
        con.close()
        text = str(exc).lower()
        if "crypto" in text or "httpfs" in text:
            raise PovwatchError(
                f"{shown(db)}: writing an encrypted warehouse needs DuckDB's httpfs extension "
                "(the duckdb-ext-httpfs package of uv.lock), or unset POVWATCH_DB_KEY"
            ) from None
        if "not encrypted" in text:
            raise PovwatchError(
                f"{shown(db)}: the warehouse is not encrypted but {KEY_ENV} is set (unset it, or "
                "encrypt the file with pipeline.store.warehouse.rotate_key)"
            ) from None
        if "lock" in text:
            raise
        raise PovwatchError(
            f"{shown(db)}: cannot open the encrypted warehouse with the key in {KEY_ENV} "
            "(wrong key, or the file is not encrypted)"
        ) from None
    con.execute("use warehouse")
    return con


def rotate_key(db: Path, old_key: str | None, new_key: str | None) -> None:
    """Re-write the warehouse under a new key (or encrypt a plain one: ``old_key`` None; or
    decrypt: ``new_key`` None). The copy is written beside the file, checked, then moved over
    it; the old file is kept as ``<name>.before-rekey`` until the caller deletes it. No run
    may hold the warehouse meanwhile (its lock refuses a second writer)."""
    new = db.with_name(db.name + ".rekey")
    backup = db.with_name(db.name + ".before-rekey")
    for leftover in (new, new.with_name(new.name + ".wal")):
        leftover.unlink(missing_ok=True)
    con = duckdb.connect()
    try:
        _load_crypto(con)
        old_opts = f"(encryption_key {_literal(old_key)}, read_only)" if old_key else "(read_only)"
        new_opts = f"(encryption_key {_literal(new_key)})" if new_key else ""
        try:
            con.execute(f"attach {_literal(str(db))} as old {old_opts}")
        except duckdb.Error:
            raise PovwatchError(
                f"{shown(db)}: cannot open the warehouse with the old key"
            ) from None
        con.execute(f"attach {_literal(str(new))} as new {new_opts}")
        con.execute("copy from database old to new")
        tables = con.execute(
            "select count(*) from duckdb_tables() where database_name = 'old'"
        ).fetchall()[0][0]
        copied = con.execute(
            "select count(*) from duckdb_tables() where database_name = 'new'"
        ).fetchall()[0][0]
        if copied != tables:
            raise PovwatchError(
                f"{shown(db)}: re-keying copied {copied} of {tables} tables; unchanged"
            )
    finally:
        con.close()
    os.replace(db, backup)
    os.replace(new, db)
    restrict(db)


def out_of_memory(exc: BaseException) -> str:
    """One line for DuckDB running out of its memory limit: what it is and how to raise it."""
    what = " ".join(str(exc).split("Possible solutions")[0].split())
    limit = _given_limit() or f"fitted to the month's rows, up to {memory_limit()}"
    return (
        f"{what} — the warehouse's memory limit is {limit} ({MEMORY_ENV}; default: fitted, up "
        f"to {DEFAULT_MEMORY_SHARE:.0%} of this machine's memory); nothing of the month was "
        f"written: set {MEMORY_ENV} higher, or run on a machine with more memory"
    )


def connect(db: Path, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the warehouse; a second writer gets a clear one-line refusal, not a corrupt file."""
    if read_only and not db.exists():
        raise PovwatchError(
            f"{shown(db)}: no warehouse here yet (make one with `povwatch run --month "
            "YYYY-MM` or `povwatch demo`, or pass --db FILE)"
        )
    private_dir(db.parent)
    try:
        con = _open(db, read_only)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise _busy(db, str(exc)) from None
        raise PovwatchError(f"{shown(db)}: cannot open the warehouse: {exc}") from None
    con.execute("set enable_progress_bar = false")
    con.execute(f"set memory_limit = '{memory_limit()}'")
    if not read_only:
        _writer_mark(db).write_text(str(os.getpid()), encoding="utf-8")
        for path in (db, db.with_name(db.name + ".wal")):
            if path.exists():
                restrict(path)
        _drop_old_stores(con)
        con.execute(sql("schema/warehouse"))
        con.execute(sql("schema/macros"))
    return con


def _drop_old_stores(con: duckdb.DuckDBPyConnection) -> None:
    """A warehouse written before state version 2 kept psn_no in state_burden: those running
    totals (a store the next month recomputes from the year's rows when it is missing) are
    dropped, and the table made again by the schema with its integer key."""
    old = con.execute(
        "select count(*) from duckdb_columns() where table_name = 'state_burden' "
        "and column_name = 'psn_no'"
    ).fetchone()
    if old and old[0]:
        con.execute("drop table state_burden")
        con.execute("delete from state_meta where kind = 'burden'")


class WarehouseBusy(PovwatchError):
    """Another process holds the warehouse file: worth waiting for and trying again."""


def _writer_mark(db: Path) -> Path:
    """Holds the pid of the last povwatch process that opened the warehouse for writing."""
    return db.with_name(f".{db.name}.writer")


def _busy(db: Path, text: str) -> WarehouseBusy:
    """Name the process holding DuckDB's lock: another povwatch run, or some other program."""
    found = re.search(r"\(PID (\d+)\)", text)
    pid = int(found.group(1)) if found else None
    if pid is None:
        return WarehouseBusy(
            f"{shown(db)}: the warehouse is in use by another process (one writer at a time); "
            "wait for it to finish"
        )
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        cmdline = ""
    try:
        marked = _writer_mark(db).read_text(encoding="utf-8").strip() == str(pid)
    except OSError:
        marked = False
    if marked or "povwatch" in cmdline or "pipeline.cli" in cmdline:
        return WarehouseBusy(
            f"{shown(db)}: the warehouse is in use by another povwatch run (pid {pid}; one writer at "
            "a time); wait for it to finish"
        )
    program = Path(cmdline.split(" ")[0]).name if cmdline else "unknown program"
    return WarehouseBusy(
        f"{shown(db)}: the warehouse is in use by another program, not a povwatch run (pid {pid}, "
        f"{program}); DuckDB lets no writer in while any other process has the file open, "
        "even read-only: close that connection (readers can use the Parquet published under "
        f"{shown(db.parent / 'published')}) and run again"
    )


@contextlib.contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """All or nothing: a failure leaves the warehouse as it was."""
    con.execute("begin transaction")
    try:
        yield con
    except BaseException:
        con.execute("rollback")
        raise
    con.execute("commit")


# Frames into SQL. A month runs in one transaction, and a view registered for a frame
# (``con.register``) stays in DuckDB's catalog until that transaction commits, even once
# unregistered, and with it the frame's Arrow buffers: at 5M persons the month's raw batches
# alone held 1.3 GB to the end. So a frame is handed to a query as a local variable that the
# query names (DuckDB's replacement scan of the calling function's locals), e.g.
#     w_batch = warnings.to_arrow()  # noqa: F841 (read by name in SQL)
#     con.execute("insert into mart_warnings by name select * from w_batch")
# ``con.register`` only where another function's query reads the frame by name
# (REGISTERED_FRAMES, small sets of keys; tests/unit/store/test_frames_in_sql.py).
REGISTERED_FRAMES = ("a_affected",)
