"""sha256 of landing files, hashed again only when a file may have changed.

Stored in ``file_digests`` (by absolute path), inside the run's transaction: a run that fails
leaves the cache as it was. A file is taken as unchanged while its size, mtime, ctime and inode
are as recorded. The mtime alone is not enough: a file corrected in place and given back its
old mtime (``touch -r``, ``cp -p``, ``rsync -t``) keeps its size and mtime, but writing it
moved its ctime, which no tool sets back (and a copy put in its place has another inode).
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from pipeline.ingest.readers import sha256_of


def file_sha256(con: duckdb.DuckDBPyConnection, path: Path) -> str:
    """The file's sha256; read from the cache when the file is as recorded (module doc)."""
    st = path.stat()
    key = str(path.resolve())
    rows = con.execute(
        "select sha256 from file_digests where path = ? and bytes = ? and mtime_ns = ? "
        "and ctime_ns = ? and inode = ?",
        [key, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino],
    ).fetchall()
    if rows:
        return rows[0][0]
    digest = sha256_of(path)
    remember(con, path, digest, st)
    return digest


def remember(con: duckdb.DuckDBPyConnection, path: Path, digest: str, st: os.stat_result) -> None:
    """Record ``digest`` as the sha256 of ``path`` as ``st`` (its stat before it was read)."""
    con.execute(
        "insert or replace into file_digests (path, bytes, mtime_ns, ctime_ns, inode, sha256) "
        "values (?, ?, ?, ?, ?, ?)",
        [str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, digest],
    )
