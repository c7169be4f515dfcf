"""`povwatch policy simulate`: a Jilin city without a local standard calibrates its factor."""

from __future__ import annotations

import csv
import subprocess
import sys

from tests.landing import INCOME, make_landing, person, settlement


def test_sweep_counts_persons_and_households_per_factor(tmp_path):
    # Jilin rural income 2023 (invented for the test): 20 000.00 → thresholds at factor
    # 0.4 / 0.5 / 0.6 = 8 000.00 / 10 000.00 / 12 000.00 (000 §五(七) leaves the factor local).
    a = person("PA", "220102", hh="H1", seq=1)  # dibao_edge, burden 11 000.00
    b = person("PB", "220102", hh="H1", seq=2)  # dibao_edge, burden  9 000.00
    c = person("PC", "220104", hh="H2", seq=3)  # ordinary,   burden 30 000.00
    make_landing(
        tmp_path / "data" / "landing",
        [a, b, c],
        {
            "2024-03": [
                settlement("S1", a, "2024-03-01 09:00:00", "11000.00"),
                settlement("S2", b, "2024-03-01 09:00:00", "9000.00"),
                settlement("S3", c, "2024-03-01 09:00:00", "30000.00"),
            ]
        },
        identities=[
            (a["certno"], "dibao_edge", "2023-01-01", None),
            (b["certno"], "dibao_edge", "2023-01-01", None),
        ],
        income=[*INCOME, ("220000", 2023, "rural", "20000", "2024-01-20")],
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.cli",
            "policy",
            "simulate",
            "--month",
            "2024-03",
            "--region",
            "2201",
            "--factor",
            "0.4:0.6:0.1",
            "--income",
            "province:rural",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    # An analysis, not a delivery: beside the outbox, never inside a department's folder.
    out_dir = tmp_path / "data" / "analysis" / "2024-03"
    assert not (tmp_path / "data" / "outbox" / "2024-03").exists()
    rows = list(csv.DictReader((out_dir / "simulate_2201_2024-03.csv").open(encoding="utf-8")))
    got = {
        (r["factor"], r["admdvs"], r["warning_type"]): (
            r["threshold"],
            r["persons"],
            r["households"],
        )
        for r in rows
    }
    # relapse in 220102: 0.4 → both (8 000.00 < 9 000.00, 11 000.00), one household;
    # 0.5 → PA only; 0.6 → nobody. impoverish in 220104 (factor × 20 000): PC at all factors.
    assert got[("0.4", "220102", "relapse")] == ("8000.00", "2", "1")
    assert got[("0.5", "220102", "relapse")] == ("10000.00", "1", "1")
    assert got[("0.6", "220102", "relapse")] == ("12000.00", "0", "0")
    assert got[("0.6", "220104", "impoverish")] == ("12000.00", "1", "1")
    assert (out_dir / "simulate_2201_2024-03.png").stat().st_size > 10_000
    assert (out_dir / "simulate_2201_2024-03.svg").read_text(encoding="utf-8").startswith("<?xml")
    assert "0.5" in done.stdout and "1/1" in done.stdout
    # Jilin leaves the factor local: nothing is marked as in force, in the CSV or the table.
    assert {r["in_force"] for r in rows} == {"false"}
    assert "* the factor in force" not in done.stdout
    # county names from the division table (2024 list of 民政部)
    assert {r["admdvs"]: r["county"] for r in rows}["220102"] == "南关区"


def test_local_income_reference_must_be_given(tmp_path):
    a = person("PA", "220102", seq=1)
    make_landing(
        tmp_path / "data" / "landing",
        [a],
        {"2024-03": [settlement("S1", a, "2024-03-01 09:00:00", "1.00")]},
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.cli",
            "policy",
            "simulate",
            "--month",
            "2024-03",
            "--region",
            "2201",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1
    assert "pass --income LEVEL:SCOPE" in done.stderr
