"""DuckDB's memory limit: 40 % of the machine unless POVWATCH_DUCKDB_MEMORY says otherwise."""

from __future__ import annotations

import os

import pytest

from pipeline.errors import PovwatchError
from pipeline.store.warehouse import connect, memory_limit


def test_default_is_forty_percent_of_the_machine(monkeypatch):
    monkeypatch.delenv("POVWATCH_DUCKDB_MEMORY", raising=False)
    total_mib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    assert memory_limit() == f"{int(total_mib * 2**20 * 0.4) // 2**20}MiB"


def test_the_setting_reaches_the_warehouse_connection(monkeypatch, tmp_path):
    monkeypatch.setenv("POVWATCH_DUCKDB_MEMORY", "3GiB")
    con = connect(tmp_path / "w.duckdb")
    assert con.sql("select current_setting('memory_limit')").fetchall() == [("3.0 GiB",)]


def test_a_bad_size_is_a_one_line_error_naming_the_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("POVWATCH_DUCKDB_MEMORY", "80%")
    with pytest.raises(PovwatchError, match=r"^POVWATCH_DUCKDB_MEMORY='80%': not a memory size"):
        connect(tmp_path / "w.duckdb")


def test_running_out_of_it_is_one_line_naming_the_setting_and_the_month_is_not_written(
    tmp_path,
):
    import subprocess
    import sys

    from tests.landing import make_landing, person, settlement

    p = person("P1")
    landing = make_landing(
        tmp_path / "landing", [p], {"2024-03": [settlement("S1", p, "2024-03-05", "10.00")]}
    )
    env = {**os.environ, "POVWATCH_DUCKDB_MEMORY": "2MB"}
    db = tmp_path / "w.duckdb"
    args = ["--landing", str(landing), "--db", str(db), "--outbox", str(tmp_path / "o")]
    run = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "run", "--month", "2024-03", "-q", *args],
        capture_output=True,
        text=True,
        env=env,
    )
    assert run.returncode == 1
    assert run.stderr.startswith("povwatch: error: Out of Memory Error")
    assert "memory limit is 2MB (POVWATCH_DUCKDB_MEMORY;" in run.stderr
    assert run.stderr.count("\n") == 1  # one line, not DuckDB's list of suggestions
    con = connect(db, read_only=True)
    assert con.sql("select outcome from run_ledger").fetchall() == [("failed",)]
    assert con.sql("select count(*) from mart_warnings").fetchall() == [(0,)]
