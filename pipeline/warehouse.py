"""The DuckDB warehouse: one writer, schema on connect, SQL files loaded by name."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import duckdb

from pipeline.errors import PovwatchError

_REPO_ROOT = Path(__file__).resolve().parent.parent


def resource_dir(name: str) -> Path:
    """A top-level resource folder (``sql``, ``policies``, ``reports``) of the checkout or wheel."""
    for candidate in (_REPO_ROOT / name, Path(__file__).resolve().parent / f"_{name}"):
        if candidate.is_dir():
            return candidate
    raise PovwatchError(f"resource folder {name!r} not found beside the pipeline package")


@cache
def sql(name: str) -> str:
    """The text of ``sql/<name>.sql``."""
    return (resource_dir("sql") / f"{name}.sql").read_text(encoding="utf-8")


def connect(db: Path, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the warehouse; a second writer gets a clear one-line refusal, not a corrupt file."""
    if read_only and not db.exists():
        raise PovwatchError(f"{db}: no warehouse here yet (run `povwatch run` first)")
    db.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(db), read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise PovwatchError(
                f"{db}: the warehouse is in use by another povwatch run (one writer at a time); "
                "wait for it to finish"
            ) from None
        raise PovwatchError(f"{db}: cannot open the warehouse: {exc}") from None
    con.execute("set enable_progress_bar = false")
    if not read_only:
        con.execute(sql("schema/warehouse"))
        con.execute(sql("schema/macros"))
    return con


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
