"""The shared example (six export shapes) through the real `povwatch` command line."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "jining-hebei-2024"
MONTHS = [f"2024-0{i}" for i in range(1, 7)]


def povwatch(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=False,
        timeout=300,
    )


def _drop_rule_id(csv_bytes: bytes) -> list[list[str]]:
    rows = [line.split(",") for line in csv_bytes.decode("utf-8").split("\r\n") if line]
    return [r[:5] + r[6:] for r in rows]


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("example")
    shutil.copytree(FIXTURE / "landing", work / "data" / "landing")
    done = povwatch("backfill", "--from", "2024-01", "--to", "2024-06", "--quiet", cwd=work)
    assert done.returncode == 0, done.stderr.decode()
    return work


@pytest.mark.parametrize("month", MONTHS)
def test_warnings_match_the_contract_example(backfilled, month):
    out = povwatch("warnings", "--month", month, "--format", "csv", cwd=backfilled)
    assert out.returncode == 0, out.stderr.decode()
    expected = (FIXTURE / "expected" / f"warnings_{month}.csv").read_bytes()
    assert out.stdout.split(b"\r\n")[0] == expected.split(b"\r\n")[0]  # the exact header
    assert _drop_rule_id(out.stdout) == _drop_rule_id(expected)


def test_every_row_of_every_shape_is_accounted_for(backfilled):
    con = duckdb.connect(str(backfilled / "data" / "warehouse.duckdb"), read_only=True)
    files = con.sql(
        """
        select source_file, format, encoding, rows_read from ingested_files order by 1
        """
    ).fetchall()
    staged = dict(
        con.sql("select source_file, count(*) from stg_settlements group by 1").fetchall()
    )
    con.close()
    shapes = {(fmt, enc) for _, fmt, enc, _ in files}
    assert shapes == {
        ("csv", "utf-8"),
        ("csv", "utf-8-sig"),
        ("csv", "gb18030"),
        ("parquet", None),
        ("xlsx", None),
    }
    assert all(staged[f] == n for f, _, _, n in files)
    # 2024-01..04 CSVs: line count minus the header, as `wc -l` shows them.
    assert [n for _, _, _, n in files][:4] == [379, 366, 424, 369]


def test_rerunning_a_month_is_byte_identical(backfilled):
    first = povwatch("warnings", "--month", "2024-04", cwd=backfilled).stdout
    report_dir = backfilled / "data" / "outbox" / "2024-04"
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in report_dir.rglob("*.*")}
    again = povwatch("run", "--month", "2024-04", "--quiet", cwd=backfilled)
    assert again.returncode == 0, again.stderr.decode()
    assert povwatch("warnings", "--month", "2024-04", cwd=backfilled).stdout == first
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in report_dir.rglob("*.*")}
    assert after == before and len(before) >= 3


def test_reports_per_department_and_county(backfilled):
    month_dir = backfilled / "data" / "outbox" / "2024-06"
    ledgers = sorted(p.relative_to(month_dir).as_posix() for p in month_dir.rglob("*.xlsx"))
    # Hebei's county by its name from the national division table (130503 信都区, 邢台市)
    assert "civil_affairs/130503/预警台账_民政部门_信都区_2024-06.xlsx" in ledgers
    assert any(p.startswith("rural_revitalization/") for p in ledgers)
    assert (month_dir / "manifest.json").is_file()
    assert "summary_2024-06.xlsx" in ledgers


def test_warnings_for_a_month_never_run_is_a_one_line_error(backfilled):
    out = povwatch("warnings", "--month", "2024-09", cwd=backfilled)
    assert out.returncode != 0
    err = out.stderr.decode().strip()
    assert len(err.splitlines()) == 1 and "2024-09" in err and "not been run" in err


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: (d / "settlements" / "2024-02" / "setl_202402.csv").unlink(),
            "no settlement export for 2024-02",
        ),
        (
            lambda d: (d / "settlements" / "2024-02" / "setl_202402.csv").write_bytes(b""),
            "settlements/2024-02/setl_202402.csv: the file is empty",
        ),
        (
            lambda d: (d / "settlements" / "2024-02" / "setl_202402.csv").write_bytes(
                b"setl_id,psn_no\nS1,P1\n"
            ),
            "required column 'insutype' is missing",
        ),
        (
            lambda d: (d / "settlements" / "2024-02" / "setl_202402.csv").write_bytes(
                b"setl_id,psn_no\n" + b"\xff\xfe\xfa\n"
            ),
            "unknown text encoding",
        ),
        (
            lambda d: (d / "settlements" / "2024-02" / "x.parquet").write_bytes(b"PAR1garbage"),
            "not a readable Parquet file",
        ),
        (
            lambda d: (d / "settlements" / "2024-02" / "notes.docx").write_bytes(b"x"),
            "unsupported file type",
        ),
    ],
    ids=[
        "missing-month",
        "empty-file",
        "missing-column",
        "bad-encoding",
        "bad-parquet",
        "unsupported",
    ],
)
def test_unusable_input_stops_with_one_line_and_writes_nothing(tmp_path, mutate, expected):
    landing = tmp_path / "data" / "landing"
    shutil.copytree(FIXTURE / "landing", landing)
    mutate(landing)
    out = povwatch("run", "--month", "2024-02", "--quiet", cwd=tmp_path)
    assert out.returncode == 1
    err = out.stderr.decode().strip()
    assert len(err.splitlines()) == 1, err
    assert expected in err
    assert "Traceback" not in err
    con = duckdb.connect(str(tmp_path / "data" / "warehouse.duckdb"), read_only=True)
    assert con.sql("select count(*) from raw_settlements").fetchall() == [(0,)]
    assert con.sql("select count(*) from mart_warnings").fetchall() == [(0,)]
    assert con.sql("select outcome from run_ledger").fetchall() == [("failed",)]
    con.close()
    assert not (tmp_path / "data" / "outbox" / "2024-02").exists()


def test_a_single_month_on_a_fresh_warehouse_equals_the_backfill(backfilled, tmp_path):
    # Incremental staging (month by month) and staging all months at once agree.
    shutil.copytree(FIXTURE / "landing", tmp_path / "data" / "landing")
    assert povwatch("run", "--month", "2024-06", "--quiet", cwd=tmp_path).returncode == 0
    fresh = povwatch("warnings", "--month", "2024-06", cwd=tmp_path).stdout
    assert fresh == povwatch("warnings", "--month", "2024-06", cwd=backfilled).stdout
    q = "select * exclude (source_file) from stg_settlements order by export_month, source_row"
    a = duckdb.connect(str(tmp_path / "data" / "warehouse.duckdb"), read_only=True)
    b = duckdb.connect(str(backfilled / "data" / "warehouse.duckdb"), read_only=True)
    assert a.sql(q).fetchall() == b.sql(q).fetchall()
    a.close()
    b.close()


@pytest.mark.parametrize(
    "args",
    [("run",), ("bogus",), ("run", "--month", "2024-01", "--nope"), ("run", "--month", "24-1")],
    ids=["missing-month", "unknown-command", "unknown-option", "bad-month"],
)
def test_usage_errors_are_one_line_and_non_zero(tmp_path, args):
    out = povwatch(*args, cwd=tmp_path)
    assert out.returncode == 2  # a usage error, bad month value included
    err = out.stderr.decode().strip()
    assert len(err.splitlines()) == 1 and err.startswith("povwatch: error: "), err
