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
