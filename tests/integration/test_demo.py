"""`povwatch demo` end to end on a small city: every generated row is accounted for."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import duckdb

from pipeline.synth.city import generate_city

# What staging must make of each imperfection the generator writes (reason codes).
REASON_OF = {
    "bad_sum": "amounts_mismatch",
    "non_numeric_amount": "bad_amount",
    "bad_certno": "bad_certno",
    "future_setl_time": "after_export_month",
    "orphan_reversal": "unknown_original",
    "missing_psn_no": "missing_value",
}


def test_demo_runs_a_year_and_reconciles_every_row(tmp_path):
    persons, seed = 3000, 11
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.cli",
            "demo",
            "--persons",
            str(persons),
            "--seed",
            str(seed),
            "--quiet",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert "warnings per month and county" in done.stdout
    assert "2024-12" in done.stdout and "warehouse :" in done.stdout

    # The same city again, to know what was written (the generator is deterministic).
    summary = generate_city(tmp_path / "again", persons=persons, seed=seed)
    expected = summary.expected_counts()

    con = duckdb.connect(str(tmp_path / "data" / "warehouse.duckdb"), read_only=True)
    (last_run,) = con.sql(
        "select run_id from run_ledger where month = '2024-12' and outcome = 'success'"
    ).fetchall()[0]
    totals = con.sql(
        """
        select sum(rows_read), sum(loaded), sum(duplicate), sum(skipped), sum(quarantined)
        from ledger_files where run_id = ?
        """,
        params=[last_run],
    ).fetchall()[0]
    reasons = Counter(
        dict(
            con.sql(
                "select reason, count(*) from stg_settlements where status = 'quarantined' group by 1"
            ).fetchall()
        )
    )
    months = con.sql("select count(distinct month) from mart_warnings").fetchall()[0][0]
    con.close()

    assert (
        dict(zip(["read", "loaded", "duplicate", "skipped", "quarantined"], totals, strict=True))
        == expected
    )
    want = Counter()
    for kind, reason in REASON_OF.items():
        want[reason] += summary.anomalies.get(kind, 0)
    assert reasons == +want
    assert months >= 6  # warnings appear through the year
    december = tmp_path / "data" / "outbox" / "2024-12"
    assert (december / "manifest.json").is_file()
    # every department × county package: 台账, HTML, PDF and its manifest; a city summary
    packages = [d for d in december.glob("*/*") if d.is_dir()]
    assert len(packages) >= 11
    for d in packages:
        assert sorted(p.suffix for p in d.iterdir()) == [".html", ".json", ".pdf", ".xlsx"], d
    assert {p.suffix for p in december.glob("summary_2024-12.*")} == {".xlsx", ".html", ".pdf"}


def test_demo_refuses_to_overwrite_a_real_landing_folder(tmp_path):
    landing = tmp_path / "data" / "landing"
    (landing / "persons").mkdir(parents=True)
    (landing / "persons" / "persons.csv").write_text("psn_no\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "demo", "--persons", "100"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "holds data not made by the demo" in done.stderr
    assert (landing / "persons" / "persons.csv").read_text(encoding="utf-8") == "psn_no\n"
