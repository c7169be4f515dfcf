"""Encryption at rest: with POVWATCH_DB_KEY the warehouse file holds no readable personal data."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "jining-hebei-2024" / "landing"


def _cli(tmp_path, *args, **env):
    full = {**os.environ, "POVWATCH_QUALITY": "off", **env}  # gates: see test_quality_gates
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=full,
    )


def test_encrypted_warehouse_round_trip(tmp_path):
    shutil.copytree(FIXTURE, tmp_path / "data" / "landing")
    # Here DuckDB has no httpfs (OpenSSL), so the test uses DuckDB's fallback cipher source.
    env = {"POVWATCH_DB_KEY": "k3y-for-tests", "POVWATCH_DB_UNSAFE_CRYPTO": "1"}
    run = _cli(tmp_path, "run", "--month", "2024-02", "--quiet", **env)
    assert run.returncode == 0, run.stderr
    data = (tmp_path / "data" / "warehouse.duckdb").read_bytes()
    assert b"P1300002568" not in data and b"setl_id" not in data  # nothing readable
    ok = _cli(tmp_path, "warnings", "--month", "2024-02", **env)
    assert ok.returncode == 0 and "P1300002568" in ok.stdout
    wrong = _cli(
        tmp_path,
        "warnings",
        "--month",
        "2024-02",
        POVWATCH_DB_KEY="wrong",
        POVWATCH_DB_UNSAFE_CRYPTO="1",
    )
    assert wrong.returncode == 1
    assert (
        "wrong key" in wrong.stderr and "k3y" not in wrong.stderr and "wrong\n" not in wrong.stderr
    )


def _has_httpfs() -> bool:
    import duckdb

    try:
        duckdb.connect().execute("load httpfs")
    except duckdb.Error:
        return False
    return True


@pytest.mark.skipif(_has_httpfs(), reason="DuckDB's httpfs is installed: writing works")
def test_writing_encrypted_without_openssl_is_a_clear_error(tmp_path):
    shutil.copytree(FIXTURE, tmp_path / "data" / "landing")
    run = _cli(tmp_path, "run", "--month", "2024-01", "--quiet", POVWATCH_DB_KEY="abc")
    assert run.returncode == 1
    assert "httpfs" in run.stderr and "abc" not in run.stderr
