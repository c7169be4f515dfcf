"""Frames handed to SQL inside the month's transaction (pipeline/store/warehouse.py, "Frames
into SQL"): as a local the query names, never a registered view, which DuckDB keeps, with the
frame's Arrow buffers, until the transaction commits."""

from __future__ import annotations

import gc
import re
import weakref
from pathlib import Path

import duckdb
import pyarrow as pa

import pipeline
from pipeline.store.warehouse import REGISTERED_FRAMES

PACKAGE = Path(pipeline.__file__).parent


def _in_a_transaction(hand_over) -> bool:
    """Whether DuckDB still holds the frame after the insert, inside an open transaction."""
    con = duckdb.connect()
    con.execute("create table t (a integer)")
    con.execute("begin")
    ref = hand_over(con)
    gc.collect()
    held = ref() is not None
    con.execute("commit")
    return held


def test_a_registered_frame_is_held_until_the_commit():
    def registered(con):
        table = pa.table({"a": [1, 2, 3]})
        con.register("batch", table)
        con.execute("insert into t select * from batch")
        con.unregister("batch")
        return weakref.ref(table)

    assert _in_a_transaction(registered)


def test_a_frame_named_by_a_local_is_let_go_after_the_query():
    def local(con):
        batch = pa.table({"a": [1, 2, 3]})
        con.execute("insert into t select * from batch")
        return weakref.ref(batch)

    assert not _in_a_transaction(local)


def test_the_pipeline_registers_only_the_frames_other_functions_read_by_name():
    registered = {
        (path.relative_to(PACKAGE).as_posix(), name)
        for path in PACKAGE.rglob("*.py")
        for name in re.findall(r"\.register\(\s*\"(\w+)\"", path.read_text(encoding="utf-8"))
    }
    assert {name for _, name in registered} == set(REGISTERED_FRAMES), registered
