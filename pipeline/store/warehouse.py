"""The DuckDB warehouse: one writer, schema on connect, SQL files loaded by name."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import duckdb

from pipeline.errors import PovwatchError, shown

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


def _open(db: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    """A plain file, or an encrypted one when ``POVWATCH_DB_KEY`` holds the key.

    Encryption at rest uses DuckDB's AES-GCM database encryption. Writing an encrypted
    file needs DuckDB's httpfs extension (OpenSSL) installed beside DuckDB; the key never
    appears in messages. (An Airflow deployment passes the key from a connection's password
    into this variable.)
    """
    key = os.environ.get(KEY_ENV)
    if not key:
        return duckdb.connect(str(db), read_only=read_only)
    con = duckdb.connect()
    with contextlib.suppress(duckdb.Error):
        con.execute("load httpfs")
    if os.environ.get("POVWATCH_DB_UNSAFE_CRYPTO") == "1":
        # Tests only: DuckDB's fallback crypto without OpenSSL (not securely random).
        con.execute("set force_mbedtls_unsafe = 'true'")
    mode = ", read_only" if read_only else ""
    try:
        con.execute(f"attach ? as warehouse (encryption_key ?{mode})", [str(db), key])
    except duckdb.Error as exc:
        con.close()
        text = str(exc)
        if "crypto" in text.lower() or "httpfs" in text.lower():
            raise PovwatchError(
                f"{db}: writing an encrypted warehouse needs DuckDB's httpfs extension "
                "(install it for this DuckDB version), or unset POVWATCH_DB_KEY"
            ) from None
        if "lock" in text.lower():
            raise
        raise PovwatchError(
            f"{db}: cannot open the encrypted warehouse with the key in {KEY_ENV} "
            "(wrong key, or the file is not encrypted)"
        ) from None
    con.execute("use warehouse")
    return con


def connect(db: Path, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the warehouse; a second writer gets a clear one-line refusal, not a corrupt file."""
    if read_only and not db.exists():
        raise PovwatchError(
            f"{shown(db)}: no warehouse here yet (make one with `povwatch run --month "
            "YYYY-MM` or `povwatch demo`, or pass --db FILE)"
        )
    db.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = _open(db, read_only)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise _busy(db, str(exc)) from None
        raise PovwatchError(f"{shown(db)}: cannot open the warehouse: {exc}") from None
    con.execute("set enable_progress_bar = false")
    if not read_only:
        _writer_mark(db).write_text(str(os.getpid()), encoding="utf-8")
        con.execute(sql("schema/warehouse"))
        con.execute(sql("schema/macros"))
    return con


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
