"""`povwatch assistance --month M --format csv` on the example (contract: Command line), rows
checked by hand against the settlement files and the policy clauses."""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "jining-hebei-2024" / "landing"
HEADER = "month,psn_no,admdvs,category,policy_id,eligible_cost,entitled,paid,difference"


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "POVWATCH_QUALITY": "off"},
    )


def test_assistance_csv_on_the_example(tmp_path):
    shutil.copytree(FIXTURE, tmp_path / "data" / "landing")
    before = _cli(tmp_path, "assistance", "--month", "2024-02")
    assert before.returncode == 1 and "no warehouse" in before.stderr
    for month in ("2024-01", "2024-02"):
        run = _cli(tmp_path, "run", "--month", month, "--quiet")
        assert run.returncode == 0, run.stderr
    out = _cli(tmp_path, "assistance", "--month", "2024-02", "--format", "csv")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == HEADER
    rows = {r["psn_no"]: r for r in csv.DictReader(io.StringIO(out.stdout))}
    assert list(rows) == sorted(rows)  # sorted by psn_no, one row per person
    assert len(rows) == len(lines) - 1

    # fanpin (cat1, 004 §四(一)): inpatient S…02-18: psn_part 6995.12 + maf 0 − out-of-catalogue
    # 699.51 = 6295.61 (004 §四(四)); 70% = 4406.927 → 4406.93; re-assistance: 6295.61 −
    # 4406.93 = 1888.68 ≤ 5000 → 0. Paid: maf 82.51 on an ordinary outpatient (11) row.
    assert rows["P3700002381"] == {
        "month": "2024-02",
        "psn_no": "P3700002381",
        "admdvs": "370811",
        "category": "cat1",
        "policy_id": "jining-2022-14",
        "eligible_cost": "6295.61",
        "entitled": "4406.93",
        "paid": "82.51",
        "difference": "4324.42",
    }
    # monitor_edge (cat2, 004 §四(二)): chronic (14) 4306.43 − 430.64 = 3875.79; (3875.79 −
    # 3000) × 60% = 525.474 → 525.47; the pharmacy (41) row is out of scope.
    r = rows["P3700002460"]
    assert (r["category"], r["eligible_cost"], r["entitled"], r["paid"], r["difference"]) == (
        "cat2",
        "3875.79",
        "525.47",
        "0.00",
        "525.47",
    )
    # No identity, paid 4010.94 by maf_pay: listed with an empty category, an over-payment.
    r = rows["P3700002714"]
    assert (r["category"], r["eligible_cost"], r["entitled"], r["difference"]) == (
        "",
        "0.00",
        "0.00",
        "-4010.94",
    )
    # Hebei: the text never names its city, so its assistance amounts bind no region until a
    # policy file narrows it: not computed, empty — never a guess.
    # A Hebei 低保边缘 with no maf_pay is not listed; the paid ones are listed, not computed.
    assert "P1300000238" not in rows
    hebei = [r for r in rows.values() if r["admdvs"].startswith("13")]
    assert hebei and all(
        (r["category"], r["policy_id"], r["entitled"], r["difference"])
        == ("", "hebei-city-2022", "", "")
        for r in hebei
    )

    bad = _cli(tmp_path, "assistance", "--month", "2024-05")
    assert bad.returncode == 1 and "has not been run" in bad.stderr


def test_warehouse_and_reports_are_owner_only(tmp_path):
    """Issue 8 §4: names and resident ids inside — files 0600, folders 0700."""
    shutil.copytree(FIXTURE, tmp_path / "landing")
    run = _cli(
        tmp_path,
        "run",
        "--month",
        "2024-01",
        "--quiet",
        "--landing",
        "landing",
        "--db",
        "data/w.duckdb",
        "--outbox",
        "data/outbox",
    )
    assert run.returncode == 0, run.stderr
    data = tmp_path / "data"
    written = [data, *data.rglob("*")]
    assert any(p.suffix == ".xlsx" for p in written) and (data / "w.duckdb").exists()
    loose = [
        f"{p.relative_to(tmp_path)} {p.stat().st_mode & 0o777:o}"
        for p in written
        if p.stat().st_mode & 0o777 != (0o700 if p.is_dir() else 0o600)
    ]
    assert not loose, loose
