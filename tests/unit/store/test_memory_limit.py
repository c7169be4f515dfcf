"""DuckDB's memory limit: 40 % of the machine unless POVWATCH_DUCKDB_MEMORY says otherwise, and
within that what each stage of a month needs (warehouse.fit_memory)."""

from __future__ import annotations

import os

import pytest

from pipeline.errors import PovwatchError
from pipeline.store import warehouse
from pipeline.store.warehouse import connect, fit_memory, memory_limit


def test_default_is_forty_percent_of_the_machine(monkeypatch):
    monkeypatch.delenv("POVWATCH_DUCKDB_MEMORY", raising=False)
    total_mib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    assert memory_limit() == f"{int(total_mib * 2**20 * 0.4) // 2**20}MiB"


def test_the_setting_reaches_the_warehouse_connection(monkeypatch, tmp_path):
    monkeypatch.setenv("POVWATCH_DUCKDB_MEMORY", "3GiB")
    con = connect(tmp_path / "w.duckdb")
    assert con.sql("select current_setting('memory_limit')").fetchall() == [("3.0 GiB",)]


def _limit(con) -> str:
    return con.sql("select current_setting('memory_limit')").fetchone()[0]


def test_fitted_to_the_rows_within_the_floor_and_the_machine_share(monkeypatch, tmp_path):
    monkeypatch.delenv("POVWATCH_DUCKDB_MEMORY", raising=False)
    con = connect(tmp_path / "w.duckdb")
    fit_memory(con, 2_000_000 * 600)  # 1,200,000,000 bytes = 1144 MiB
    assert _limit(con) == "1.1 GiB"
    assert warehouse.STAGING_BYTES_PER_ROW * 2_340_907 < 1.5 * 2**30  # L's month 12 (bench)
    fit_memory(con, 10 * 600)  # a small month: the floor, 512 MiB
    assert _limit(con) == "512.0 MiB"
    fit_memory(con, 10**12 * 600)  # a huge one: no more than 40 % of the machine
    share = connect(tmp_path / "v.duckdb")  # (set on connect)
    assert _limit(con) == _limit(share) != "512.0 MiB"


def test_a_given_limit_is_never_fitted(monkeypatch, tmp_path):
    monkeypatch.setenv("POVWATCH_DUCKDB_MEMORY", "3GiB")
    con = connect(tmp_path / "w.duckdb")
    fit_memory(con, 10 * 600)
    assert _limit(con) == "3.0 GiB"


def test_a_month_fits_the_limit_to_the_rows_of_each_stage(monkeypatch, tmp_path):
    """Through a month's run: the floor from the start, the registry's rows for its
    deduplication, the ingest's limit, then the rows of the export months classified for the
    classification and for the stages after it."""
    from pipeline import run
    from pipeline.ingest import load
    from pipeline.months import Month
    from pipeline.settings import Settings
    from tests.landing import make_landing, person, settlement

    monkeypatch.delenv("POVWATCH_DUCKDB_MEMORY", raising=False)
    seen = []
    real = warehouse.fit_memory
    for module in (run, load):
        monkeypatch.setattr(
            module, "fit_memory", lambda con, wanted: seen.append(wanted) or real(con, wanted)
        )
    # the registry is deduplicated under the limit of the rows of persons listed more than once
    # (512 MiB a row here: P1's two rows, 1 GiB, is above the floor; P2's row is not counted),
    # the identity holders are matched at the floor
    monkeypatch.setattr(load, "REGISTRY_BYTES_PER_ROW", 2**29)
    real_identities = load._load_identities
    monkeypatch.setattr(
        load,
        "_load_identities",
        lambda con, *a: seen.append(("identities", _limit(con))) or real_identities(con, *a),
    )
    people = [person("P1"), person("P2")]
    rows = [settlement(f"S{i}", people[0], "2024-03-05", "10.00") for i in range(3)]
    landing = make_landing(tmp_path / "landing", [*people, people[0]], {"2024-03": rows})
    settings = Settings(
        landing=landing, db=tmp_path / "w.duckdb", outbox=tmp_path / "o", quiet=True
    )
    run.compute_month(Month(2024, 3), settings)
    staging, after = warehouse.STAGING_BYTES_PER_ROW, warehouse.AFTER_STAGING_BYTES_PER_ROW
    ingest = warehouse.INGEST_BYTES
    assert seen == [0, 2**30, 0, ("identities", "512.0 MiB"), ingest, 3 * staging, 3 * after]
    seen.clear()
    run.compute_month(Month(2024, 3), settings)  # nothing new to load or classify
    assert seen == [0, ingest, 0]


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
