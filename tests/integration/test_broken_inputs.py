"""Broken inputs stop the month, with the cause (issue 8 §2), and the contract's
`povwatch quarantine` and `--require-complete`.

Runs with POVWATCH_QUALITY=off: the quarantine gate is plain SQL and must not depend on the
Great Expectations batch gates.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from pipeline.errors import PovwatchError
from pipeline.months import Month
from pipeline.run import run_month
from pipeline.settings import Settings
from pipeline.store.ledger import status_text
from tests.landing import lenient_quarantine_gate, make_landing, person, settlement

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "jining-hebei-2024"


@pytest.fixture(autouse=True)
def _batch_gates_off(monkeypatch):
    monkeypatch.setenv("POVWATCH_QUALITY", "off")


def _settings(root: Path, **kw) -> Settings:
    return Settings(
        landing=root / "landing", db=root / "w.duckdb", outbox=root / "out", quiet=True, **kw
    )


def _excel_ids(path: Path, share_every: int = 1) -> tuple[int, int]:
    """Rewrite a CSV's certno column as a spreadsheet saves an 18-digit number (3.70811E+17)
    in every ``share_every``-th row; returns (rows changed, rows)."""
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    fields = list(rows[0])
    changed = 0
    for i, r in enumerate(rows):
        if r["certno"] and i % share_every == 0:
            r["certno"] = f"{int(r['certno'][:17]) / 10**16:.5f}E+17".replace("0E", "E")
            changed += 1
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    return changed, len(rows)


def test_an_export_saved_through_a_spreadsheet_stops_the_first_month(tmp_path):
    s = _settings(tmp_path)
    shutil.copytree(FIXTURE / "landing", s.landing)
    export = s.landing / "settlements" / "2024-01" / "setl_202401.csv"
    changed, rows = _excel_ids(export)
    assert (changed, rows) == (379, 379)
    with pytest.raises(PovwatchError) as err:
        run_month("2024-01", s)
    assert str(err.value) == (
        "bad_certno: 379 of 379 rows (100%) in setl_202401.csv column certno — resident ids "
        "look numeric: was the file saved through a spreadsheet? (2024-01: 100% of the "
        "export's rows quarantined, limit 5%)"
    )
    # nothing published, nothing kept but the failed run on record
    assert not (s.outbox / "2024-01").exists()
    con = duckdb.connect(str(s.db), read_only=True)
    try:
        assert con.sql("select count(*) from stg_settlements").fetchall() == [(0,)]
        assert con.sql("select count(*) from mart_warnings").fetchall() == [(0,)]
        assert con.sql("select outcome from run_ledger").fetchall() == [("failed",)]
    finally:
        con.close()


def test_a_few_bad_ids_are_quarantined_and_the_month_runs(tmp_path):
    # every 40th row: 10 of 379 = 2.6% ≤ 5%
    s = _settings(tmp_path)
    shutil.copytree(FIXTURE / "landing", s.landing)
    changed, _ = _excel_ids(s.landing / "settlements" / "2024-01" / "setl_202401.csv", 40)
    assert changed == 10
    run_month("2024-01", s)
    con = duckdb.connect(str(s.db), read_only=True)
    try:
        got = con.sql(
            "select reason, reason_column, count(*) from stg_settlements "
            "where status = 'quarantined' group by all"
        ).fetchall()
    finally:
        con.close()
    assert got == [("bad_certno", "certno", 10)]


def test_a_registry_saved_through_a_spreadsheet_stops_the_run(tmp_path):
    s = _settings(tmp_path)
    shutil.copytree(FIXTURE / "landing", s.landing)
    changed, rows = _excel_ids(s.landing / "persons" / "persons.csv")
    assert changed == rows == 480
    with pytest.raises(PovwatchError) as err:
        run_month("2024-01", s)
    assert str(err.value) == (
        "bad_certno: 480 of 480 rows (100%) in persons.csv column certno — resident ids look "
        "numeric: was the file saved through a spreadsheet? (registry: 100% of the rows "
        "rejected, limit 50%)"
    )


def test_registry_and_identity_rows_are_validated_like_settlements(tmp_path, monkeypatch):
    # rejected with their reason and column, counted per file; the run goes on
    monkeypatch.setenv("POVWATCH_QUALITY_BANDS", str(lenient_quarantine_gate(tmp_path / "b")))
    good, bad_id, bad_date, bad_type = (person(f"P{i}", "370811", seq=i) for i in range(1, 5))
    bad_id["certno"] = bad_id["certno"][:17] + ("1" if bad_id["certno"][17] != "1" else "2")
    bad_date["brdy"] = "1970-13-01"
    bad_type["insutype"] = "39O"
    s = _settings(tmp_path)
    make_landing(
        s.landing,
        [good, bad_id, bad_date, bad_type],
        {"2024-01": [settlement("S1", good, "2024-01-10 09:00:00", "10.00")]},
        identities=[
            (good["certno"], "dibao_edge", "2023-01-01", None),
            ("3.70811E+17", "dibao_edge", "2023-01-01", None),
        ],
    )
    with (s.landing / "identities" / "identities.csv").open("a", encoding="utf-8") as fh:
        fh.write(f"{good['certno']},tekun,2023-01-01,,welfare_office\n")
    run_month("2024-01", s)
    con = duckdb.connect(str(s.db), read_only=True)
    try:
        rejects = con.sql(
            "select kind, source_row, reason, reason_column, numeric_id from ref_rejects "
            "order by kind desc, source_row"
        ).fetchall()
        files = con.sql(
            "select kind, rows_read, rows_rejected from ref_files order by 1"
        ).fetchall()
    finally:
        con.close()
    assert rejects == [
        ("persons", 3, "bad_certno", "certno", False),
        ("persons", 4, "bad_date", "brdy", False),
        ("persons", 5, "bad_code", "insutype", False),
        ("identities", 3, "bad_certno", "certno", True),
        ("identities", 4, "bad_code", "source_dept", False),
    ]
    assert ("identities", 3, 2) in files and ("persons", 4, 3) in files
    # … and `povwatch status` counts them per file
    status = status_text(s.db, Month.parse("2024-01")).splitlines()
    assert "persons  persons/persons.csv  4  3" in status
    assert "identities  identities/identities.csv  3  2" in status


def _povwatch(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        cwd=cwd,
        capture_output=True,
        timeout=300,
        env={**__import__("os").environ},
    )


def test_povwatch_quarantine_lists_the_rows_of_the_exports_up_to_the_month(tmp_path, monkeypatch):
    monkeypatch.setenv("POVWATCH_QUALITY_BANDS", str(lenient_quarantine_gate(tmp_path / "b")))
    a = person("PA", "370811", seq=1)
    s = Settings(
        landing=tmp_path / "data" / "landing",
        db=tmp_path / "data" / "warehouse.duckdb",
        outbox=tmp_path / "data" / "outbox",
        quiet=True,
    )
    mismatch = settlement("S4", a, "2024-02-03 09:00:00", "10.00")
    mismatch["psn_part_amt"] = "9.00"
    make_landing(
        s.landing,
        [a],
        {
            "2024-01": [
                settlement("S1", a, "2024-01-10 09:00:00", "10.00"),
                settlement("S2", a, "2024-02-01 00:00:00", "10.00"),  # after its month
            ],
            "2024-02": [
                settlement("S3", a, "2024-02-03 09:00:00", "-1.00", reversal_of="S9"),
                mismatch,
            ],
            "2024-03": [{**settlement("S5", a, "2024-03-03 09:00:00", "1.00"), "psn_no": ""}],
        },
    )
    for m in ("2024-01", "2024-02", "2024-03"):
        run_month(m, s)
    out = _povwatch("quarantine", "--month", "2024-02", "--format", "CSV", cwd=tmp_path)
    assert out.returncode == 0, out.stderr.decode()
    assert out.stdout.decode("utf-8").split("\r\n") == [
        "export_month,source_file,source_row,reason,column",
        "2024-01,settlements/2024-01/setl_2024-01.csv,3,after_export_month,setl_time",
        "2024-02,settlements/2024-02/setl_2024-02.csv,2,unknown_original,init_setl_id",
        "2024-02,settlements/2024-02/setl_2024-02.csv,3,amounts_mismatch,psn_part_amt",
        "",
    ]
    march = _povwatch("quarantine", "--month", "2024-03", "--format", "csv", cwd=tmp_path)
    assert march.stdout.decode().splitlines()[-1] == (
        "2024-03,settlements/2024-03/setl_2024-03.csv,2,missing_value,psn_no"
    )
    bad = _povwatch("quarantine", "--month", "2024-03", "--format", "xml", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.decode().count("\n") == 1  # a usage error
    never = _povwatch("quarantine", "--month", "2024-04", "--format", "csv", cwd=tmp_path)
    assert never.returncode == 1 and "has not been run yet" in never.stderr.decode()


def _small(tmp_path: Path, **kw) -> Settings:
    a = person("PA", "370811", seq=1)
    s = _settings(tmp_path, **kw)
    make_landing(
        s.landing,
        [a],
        {
            "2024-01": [settlement("S1", a, "2024-01-10 09:00:00", "10.00")],
            "2024-02": [settlement("S2", a, "2024-02-10 09:00:00", "10.00")],
        },
    )
    return s


def test_require_complete_stops_on_a_folder_without_the_success_marker(tmp_path):
    s = _small(tmp_path, require_complete=True)
    (s.landing / "settlements" / "2024-02" / "_SUCCESS").touch()
    with pytest.raises(PovwatchError) as err:
        run_month("2024-02", s)  # 2024-01 has no marker
    assert str(err.value) == (
        f"{s.landing / 'settlements' / '2024-01'}: export incomplete: no _SUCCESS marker "
        "(--require-complete)"
    )
    (s.landing / "settlements" / "2024-01" / "_SUCCESS").touch()
    assert run_month("2024-02", s).outcome == "success"


def test_without_the_flag_the_marker_is_neither_required_nor_read_as_data(tmp_path):
    s = _small(tmp_path)
    run_month("2024-01", s)  # no marker anywhere
    (s.landing / "settlements" / "2024-02" / "_SUCCESS").touch()
    result = run_month("2024-02", s)
    assert [f["source_file"] for f in result.files] == [
        "settlements/2024-01/setl_2024-01.csv",
        "settlements/2024-02/setl_2024-02.csv",
    ]


def test_the_cli_takes_require_complete(tmp_path):
    s = _small(tmp_path / "x")
    out = _povwatch(
        "run",
        "--month",
        "2024-01",
        "--require-complete",
        "--landing",
        str(s.landing),
        "--db",
        str(s.db),
        "--outbox",
        str(s.outbox),
        cwd=tmp_path,
    )
    assert out.returncode == 1
    assert out.stderr.decode().endswith(
        "export incomplete: no _SUCCESS marker (--require-complete)\n"
    )


def test_a_cost_band_failing_because_rows_were_quarantined_says_so(tmp_path, monkeypatch):
    # With the quarantine limit raised (so that gate lets the month through), a May export
    # whose ids were mangled in 80 of 100 rows loads a fifth of the usual cost: the cost
    # band fails, and the message names the cause (the quarantine) before the symptom.
    monkeypatch.setenv("POVWATCH_QUALITY", "on")
    bands = tmp_path / "bands.yaml"
    bands.write_text(
        "min_previous_months: 3\nmedfee_loaded:\n  min_median_rows: 0\n"
        "quarantine:\n  max_share: 1.0\n"
    )
    monkeypatch.setenv("POVWATCH_QUALITY_BANDS", str(bands))
    people = [person(f"P{i:02d}", "370811", seq=i) for i in range(20)]

    def month_rows(month: str) -> list[dict]:
        return [
            settlement(f"S{month[-2:]}{i:03d}", people[i % 20], f"{month}-10 09:00:00", "100.00")
            for i in range(100)
        ]

    exports = {m: month_rows(m) for m in ("2024-01", "2024-02", "2024-03", "2024-04", "2024-05")}
    for r in exports["2024-05"][:80]:
        r["certno"] = "3.70811E+17"
    s = _settings(tmp_path)
    make_landing(s.landing, people, exports)
    for m in ("2024-01", "2024-02", "2024-03", "2024-04"):
        run_month(m, s)
    with pytest.raises(PovwatchError) as err:
        run_month("2024-05", s)
    msg = str(err.value)
    assert msg.startswith(
        "80 of 100 rows of 2024-05 (80%) were quarantined, mostly bad_certno: 80 of 100 rows "
        "(80%) in setl_2024-05.csv column certno — resident ids look numeric: was the file "
        "saved through a spreadsheet?; so quality gate failed: stg_settlements 2024-05"
    ), msg
    assert "medfee_sumamt" in msg and "\n" not in msg
