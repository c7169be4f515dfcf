"""Running totals kept from month to month, so that a month's run reads only its new rows.

Two stores, each written by a month's run (inside its transaction) and used by the next:

* ``state_burden`` — every person's burden measures as of the month (the year to date), by
  the person's integer key in ``state_keys`` (given once, kept);
* ``state_first`` — every (person, warning type) flagged in the year so far, with the first
  month it was flagged (``first_month``), instead of replaying the year.

A store written through month K is used for month K + 1 only when what it was computed
from is unchanged (``state_meta.fingerprint``): the staged export months up to K (their
inputs digests: a changed or late file restages its month and every later one), the code, and
for the first flags also the reference tables and the rules of months up to K. Otherwise the
month is computed from the year's rows, as before, and the store written afresh: the results
are the same either way (tests compare them), only the time differs.
"""

from __future__ import annotations

import hashlib
import json

import duckdb
import polars as pl

from pipeline import code_digest
from pipeline.months import Month

STATE_VERSION = 2  # bump when what a store holds changes meaning (2: state_keys)


def staged_fingerprint(con: duckdb.DuckDBPyConnection, through: Month) -> str:
    """What the staged rows of export months up to ``through`` were classified from."""
    staged = con.execute(
        "select export_month, inputs_digest from stg_state where export_month <= ? "
        "order by export_month",
        [str(through)],
    ).fetchall()
    return digest([STATE_VERSION, code_digest(), staged])


def first_fingerprint(con: duckdb.DuckDBPyConnection, through: Month, rules: pl.DataFrame) -> str:
    """:func:`staged_fingerprint` and the reference tables and rules the flags came from."""
    ref = con.execute("select inputs_digest from ref_state order by 1").fetchall()
    in_force = sorted(
        json.dumps(row, sort_keys=True, default=str, ensure_ascii=False)
        for row in rules.filter(pl.col("m") <= str(through)).iter_rows(named=True)
    )
    return digest([staged_fingerprint(con, through), ref, in_force])


def terms_digest(*frames: pl.DataFrame) -> str:
    """A digest of small frames' contents (a month's resolved policy terms)."""
    return digest([f.write_json() for f in frames])


def digest(value: object) -> str:
    """The sha256 of a JSON-able value (dates as text)."""
    return hashlib.sha256(json.dumps(value, default=str).encode()).hexdigest()


def valid(con: duckdb.DuckDBPyConnection, kind: str, through: Month, fingerprint: str) -> bool:
    """Whether the ``kind`` store through ``through`` was computed from the same inputs."""
    try:
        found = con.execute(
            "select count(*) from state_meta where kind = ? and through_month = ? "
            "and fingerprint = ?",
            [kind, str(through), fingerprint],
        ).fetchall()
    except duckdb.CatalogException:  # a warehouse of an older version, opened read-only
        return False
    return found == [(1,)]


def replace(con: duckdb.DuckDBPyConnection, kind: str, m: Month, fingerprint: str | None) -> None:
    """Record the ``kind`` store through ``m`` (None: there is none) and drop the stores
    older than the month before (a backfill of an earlier month keeps the later ones)."""
    keep_from = str(m.plus(-1))
    con.execute(
        f"delete from state_{kind} where through_month = ? or through_month < ?",
        [str(m), keep_from],
    )
    record(con, kind, m, fingerprint)


def record(con: duckdb.DuckDBPyConnection, kind: str, m: Month, fingerprint: str | None) -> None:
    """Record what the ``kind`` store through ``m`` was computed from (None: there is none),
    forgetting the records older than the month before."""
    keep_from = str(m.plus(-1))
    con.execute(
        "delete from state_meta where kind = ? and (through_month = ? or through_month < ?)",
        [kind, str(m), keep_from],
    )
    if fingerprint is not None:
        con.execute("insert into state_meta values (?, ?, ?)", [kind, str(m), fingerprint])
