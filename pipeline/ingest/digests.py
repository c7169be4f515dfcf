"""sha256 of landing files, hashed again only when a file's size or mtime changed.

Stored in ``file_digests`` (by absolute path), inside the run's transaction: a run that fails
leaves the cache as it was.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from pipeline.ingest.readers import sha256_of


def file_sha256(con: duckdb.DuckDBPyConnection, path: Path) -> str:
    """The file's sha256; read from the cache when its size and mtime are as recorded."""
    st = path.stat()
    key = str(path.resolve())
    rows = con.execute(
        "select sha256 from file_digests where path = ? and bytes = ? and mtime_ns = ?",
        [key, st.st_size, st.st_mtime_ns],
    ).fetchall()
    if rows:
        return rows[0][0]
    digest = sha256_of(path)
    remember(con, path, digest, st.st_size, st.st_mtime_ns)
    return digest


def remember(
    con: duckdb.DuckDBPyConnection, path: Path, digest: str, size: int, mtime_ns: int
) -> None:
    con.execute(
        "insert or replace into file_digests values (?, ?, ?, ?)",
        [str(path.resolve()), size, mtime_ns, digest],
    )
