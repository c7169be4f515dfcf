"""`povwatch ingest`: a month's exports read and staged as they land, file by file.

March of the shared example arrives as two district files. Each ingest reads only the files
added or changed since the last one; the month's run then reads nothing again; and every
result equals a fresh warehouse's run of the month on the files as they finally are.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import pipeline.ingest.load as load
from pipeline.cli import quarantine_csv, warnings_csv
from pipeline.months import Month
from pipeline.run import run_month, stage_month
from pipeline.settings import Settings

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "jining-hebei-2024"
MARCH = Month(2024, 3)


@pytest.fixture(autouse=True)
def _gates_off(monkeypatch):
    monkeypatch.setenv("POVWATCH_QUALITY", "off")


@pytest.fixture
def reads(monkeypatch) -> list[str]:
    """The settlement files read (landing-relative), in order."""
    seen: list[str] = []
    real = load.read_file

    def recording(path, spec, landing, **kw):
        if spec.kind == "settlements":
            seen.append(Path(path).relative_to(landing).as_posix())
        return real(path, spec, landing, **kw)

    monkeypatch.setattr(load, "read_file", recording)
    return seen


def _landing(root: Path) -> tuple[Path, list[bytes]]:
    """The example's landing without March's file; March's lines (header first)."""
    landing = root / "landing"
    shutil.copytree(FIXTURE / "landing", landing)
    march = landing / "settlements" / "2024-03" / "setl_202403.csv"
    lines = march.read_bytes().splitlines(keepends=True)
    march.unlink()
    return landing, lines


def _settings(root: Path, landing: Path, name: str = "w") -> Settings:
    return Settings(
        landing=landing, db=root / f"{name}.duckdb", outbox=root / f"{name}-out", quiet=True
    )


def _fresh(root: Path, landing: Path) -> tuple[str, str]:
    """March's warnings and quarantine from a fresh warehouse over the landing as it is."""
    s = _settings(root, landing, name=f"fresh{len(list(root.glob('fresh*.duckdb')))}")
    run_month(MARCH, s)
    return warnings_csv(s.db, MARCH), quarantine_csv(s.db, MARCH)


def test_each_ingest_reads_only_the_files_landed_since(tmp_path, reads):
    landing, lines = _landing(tmp_path)
    header, rows = lines[0], lines[1:]
    half = len(rows) // 2
    folder = landing / "settlements" / "2024-03"
    (folder / "setl_202403_d1.csv").write_bytes(header + b"".join(rows[:half]))
    s = _settings(tmp_path, landing)

    stage_month(MARCH, s)  # January..March's first district
    assert reads == [
        "settlements/2024-01/setl_202401.csv",
        "settlements/2024-02/setl_202402.csv",
        "settlements/2024-03/setl_202403_d1.csv",
    ]

    reads.clear()
    (folder / "setl_202403_d2.csv").write_bytes(header + b"".join(rows[half:]))
    staged = stage_month(MARCH, s)  # the second district lands
    assert reads == ["settlements/2024-03/setl_202403_d2.csv"]
    assert staged.months_read == ["2024-03"]
    march = {f["source_file"]: f for f in staged.files if f["export_month"] == "2024-03"}
    assert {k: v["rows_read"] for k, v in march.items()} == {
        "settlements/2024-03/setl_202403_d1.csv": half,
        "settlements/2024-03/setl_202403_d2.csv": len(rows) - half,
    }

    assert stage_month(MARCH, s).months_read == []  # nothing new
    reads.clear()
    run_month(MARCH, s)  # the month's run: everything is staged already
    assert reads == []
    assert (warnings_csv(s.db, MARCH), quarantine_csv(s.db, MARCH)) == _fresh(tmp_path, landing)
    assert warnings_csv(s.db, MARCH).count("\n") > 1  # March has warnings to compare


def test_a_changed_or_removed_file_replaces_only_its_own_rows(tmp_path, reads):
    landing, lines = _landing(tmp_path)
    header, rows = lines[0], lines[1:]
    half = len(rows) // 2
    folder = landing / "settlements" / "2024-03"
    d1, d2 = folder / "setl_202403_d1.csv", folder / "setl_202403_d2.csv"
    d1.write_bytes(header + b"".join(rows[:half]))
    d2.write_bytes(header + b"".join(rows[half:]))
    s = _settings(tmp_path, landing)
    run_month(MARCH, s)
    warned_before = warnings_csv(s.db, MARCH)

    # d2 corrected: its first row repeated (a duplicate) and its last row dropped
    reads.clear()
    d2.write_bytes(header + rows[half] + b"".join(rows[half:-1]))
    os.utime(d2, (d2.stat().st_atime, d2.stat().st_mtime + 5))
    stage_month(MARCH, s)
    assert reads == ["settlements/2024-03/setl_202403_d2.csv"]
    run_month(MARCH, s)
    assert (warnings_csv(s.db, MARCH), quarantine_csv(s.db, MARCH)) == _fresh(tmp_path, landing)

    # d2 withdrawn: its rows leave the warehouse, d1 is not read again
    reads.clear()
    d2.unlink()
    run_month(MARCH, s)
    assert reads == []
    assert (warnings_csv(s.db, MARCH), quarantine_csv(s.db, MARCH)) == _fresh(tmp_path, landing)
    assert warnings_csv(s.db, MARCH) != warned_before  # half of March's rows are gone


def test_povwatch_ingest_command(tmp_path):
    landing, lines = _landing(tmp_path)
    (landing / "settlements" / "2024-03" / "setl_202403.csv").write_bytes(b"".join(lines))
    db = tmp_path / "w.duckdb"
    env = {**os.environ, "POVWATCH_QUALITY": "off"}
    args = ["ingest", "--month", "2024-03", "--landing", str(landing), "--db", str(db)]
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    assert (
        done.stdout
        == f"2024-03: 3 export files up to 2024-03 staged, {379 + 366 + 424} rows read, {379 + 366 + 424} loaded\n"
    )
    assert (
        "settlements/2024-03/setl_202403.csv: read 424 = loaded 424 + duplicate 0 + skipped 0 "
        "+ quarantined 0" in done.stderr
    )
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.cli",
            "ingest",
            "--month",
            "2024-03",
            "--landing",
            str(tmp_path / "nowhere"),
            "--db",
            str(db),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert bad.returncode == 1
    assert bad.stderr.count("\n") == 1 and "nowhere" in bad.stderr
