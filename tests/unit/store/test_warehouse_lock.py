"""Who holds the warehouse: another povwatch run, or some other program (an analyst's tool)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from pipeline.store.warehouse import WarehouseBusy, connect


def _hold(db: Path, code: str) -> subprocess.Popen:
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert holder.stdout.readline().strip() == b"ready", holder.stderr.read()
    return holder


@pytest.mark.parametrize("read_only", [True, False])
def test_a_lock_held_by_another_program_is_named_as_such(tmp_path, read_only):
    db = tmp_path / "warehouse.duckdb"
    duckdb.connect(str(db)).close()
    holder = _hold(
        db,
        f"""
        import duckdb, time
        con = duckdb.connect({str(db)!r}, read_only={read_only})
        print("ready", flush=True)
        time.sleep(60)
        """,
    )
    try:
        with pytest.raises(WarehouseBusy) as err:
            connect(db)
    finally:
        holder.kill()
        holder.wait()
    message = str(err.value)
    assert "not a povwatch run" in message and f"pid {holder.pid}" in message
    assert "even read-only" in message and "published" in message
    assert "\n" not in message


def test_a_lock_held_by_another_povwatch_run_says_so(tmp_path):
    db = tmp_path / "warehouse.duckdb"
    holder = _hold(
        db,
        f"""
        import time
        from pathlib import Path
        from pipeline.store.warehouse import connect
        con = connect(Path({str(db)!r}))
        print("ready", flush=True)
        time.sleep(60)
        """,
    )
    try:
        with pytest.raises(WarehouseBusy) as err:
            connect(db)
    finally:
        holder.kill()
        holder.wait()
    message = str(err.value)
    assert "in use by another povwatch run" in message and f"pid {holder.pid}" in message
