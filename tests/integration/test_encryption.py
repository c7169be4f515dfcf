"""Encryption at rest: with POVWATCH_DB_KEY the warehouse file holds no readable personal data.

DuckDB 1.4 LTS with the packaged httpfs extension (``duckdb-ext-httpfs`` in uv.lock) writes
the encrypted file with OpenSSL: no unsafe fallback is set anywhere in this file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from pipeline.store.warehouse import packaged_extensions, rotate_key

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "jining-hebei-2024" / "landing"
KEY = "k3y-for-tests"


def _cli(tmp_path, *args, **env):
    full = {**os.environ, "POVWATCH_QUALITY": "off", **env}  # gates: see test_quality_gates
    full.pop("POVWATCH_DB_UNSAFE_CRYPTO", None)
    if env.get("POVWATCH_DB_KEY") is None:
        full.pop("POVWATCH_DB_KEY", None)
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=full,
    )


def test_the_lock_file_ships_httpfs():
    folder = packaged_extensions()
    assert folder is not None
    assert list(folder.glob("v*/*/httpfs.duckdb_extension"))


def test_encrypted_warehouse_round_trip_wrong_and_missing_key(tmp_path):
    shutil.copytree(FIXTURE, tmp_path / "data" / "landing")
    run = _cli(tmp_path, "run", "--month", "2024-02", "--quiet", POVWATCH_DB_KEY=KEY)
    assert run.returncode == 0, run.stderr
    db = tmp_path / "data" / "warehouse.duckdb"
    data = db.read_bytes()
    assert b"P1300002568" not in data and b"setl_id" not in data  # nothing readable
    # re-opened (a second run appends to it) and read back
    run = _cli(tmp_path, "run", "--month", "2024-03", "--quiet", POVWATCH_DB_KEY=KEY)
    assert run.returncode == 0, run.stderr
    ok = _cli(tmp_path, "warnings", "--month", "2024-02", POVWATCH_DB_KEY=KEY)
    assert ok.returncode == 0 and "P1300002568" in ok.stdout
    assert b"P1300002568" not in db.read_bytes()

    wrong = _cli(tmp_path, "warnings", "--month", "2024-02", POVWATCH_DB_KEY="wrong")
    assert wrong.returncode == 1
    assert "wrong key" in wrong.stderr and "k3y" not in wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1

    missing = _cli(tmp_path, "warnings", "--month", "2024-02")
    assert missing.returncode == 1
    assert "encrypted" in missing.stderr and "POVWATCH_DB_KEY" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1


def test_a_key_on_a_plain_warehouse_is_refused(tmp_path):
    shutil.copytree(FIXTURE, tmp_path / "data" / "landing")
    assert _cli(tmp_path, "run", "--month", "2024-01", "--quiet").returncode == 0
    keyed = _cli(tmp_path, "warnings", "--month", "2024-01", POVWATCH_DB_KEY=KEY)
    assert keyed.returncode == 1 and "not encrypted" in keyed.stderr


def test_key_rotation(tmp_path, monkeypatch):
    shutil.copytree(FIXTURE, tmp_path / "data" / "landing")
    assert _cli(tmp_path, "run", "--month", "2024-01", "--quiet").returncode == 0
    db = tmp_path / "data" / "warehouse.duckdb"
    plain = _cli(tmp_path, "warnings", "--month", "2024-01").stdout
    rotate_key(db, None, "first")  # encrypt a plain warehouse
    assert b"warning_type" not in db.read_bytes()
    rotate_key(db, "first", "second")  # rotate
    old = _cli(tmp_path, "warnings", "--month", "2024-01", POVWATCH_DB_KEY="first")
    assert old.returncode == 1 and "wrong key" in old.stderr
    new = _cli(tmp_path, "warnings", "--month", "2024-01", POVWATCH_DB_KEY="second")
    assert new.returncode == 0 and new.stdout == plain
    assert (db.stat().st_mode & 0o777) == 0o600
