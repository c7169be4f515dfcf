"""A monthly run that loses nothing, counts nothing twice, and survives faults.

The example landing (tests/fixtures/jining-hebei-2024) through the real command line:
2024-02 is run first, then 2024-03 is disturbed — killed at every stage boundary
(``POVWATCH_FAULT``), fed unusable or odd files, raced by a second writer, sent the same
export twice — and what remains must be exactly what an undisturbed run leaves. Figures seen
here are written up in docs/faults.md (run with ``-s`` to print them).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from pipeline.cli import warnings_csv
from pipeline.months import Month
from pipeline.store.ledger import status_text
from tests.landing import SETTLEMENT_HEADER, settlement

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "jining-hebei-2024"
FEB, MAR = "2024-02", "2024-03"
STAGES = [
    "after_reference",
    "after_ingest",
    "after_staging",
    "after_warnings",
    "before_commit",
    "after_commit",
    "after_reports",
]
EXTRA = ["psn_name", "fixmedins_name"]  # kept in real exports, not part of the contract
# ledger_files columns, per file of a run
_COUNT_NAMES = [
    "read",
    "loaded",
    "duplicate",
    "skipped",
    "quarantined",
    "medfee_read_fen",
    "medfee_loaded_fen",
    "burden_loaded_fen",
]


def povwatch(*args: str, cwd: Path, fault: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "POVWATCH_FAULT"}
    # The GX batch gates are covered by test_quality_gates, the example and the demo; here
    # they would only add their import time (~7 s) to every one of the many processes.
    env["POVWATCH_QUALITY"] = "off"
    if fault:
        env["POVWATCH_FAULT"] = fault
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        timeout=300,
    )


def figures(label: str, **values) -> None:
    """One line for docs/faults.md (shown with ``pytest -s``)."""
    print(f"\nFIGURES {label}: " + ", ".join(f"{k}={v}" for k, v in values.items()))


def _db(work: Path) -> Path:
    return work / "data" / "warehouse.duckdb"


def _query(work: Path, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(_db(work)), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def _persons() -> dict[str, dict]:
    path = FIXTURE / "landing" / "persons" / "persons.csv"
    with path.open(encoding="utf-8", newline="") as fh:
        return {r["psn_no"]: r for r in csv.DictReader(fh)}


PERSONS = _persons()


def _row(setl_id: str, psn_no: str, when: str, burden: str) -> dict:
    p = PERSONS[psn_no]
    return {**settlement(setl_id, p, when, burden), "psn_name": p["psn_name"]}


def _csv_bytes(rows: list[dict], encoding: str = "utf-8") -> bytes:
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=SETTLEMENT_HEADER + EXTRA, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue().encode(encoding)


def _assert_no_personal_data(text: str) -> None:
    """No resident id or name of anyone in the registry in what a user sees."""
    for psn_no, p in PERSONS.items():
        assert p["certno"] not in text, f"resident id of {psn_no} in output"
        assert p["psn_name"] not in text, f"name of {psn_no} in output"


@dataclass
class Observed:
    warnings: dict[str, str]
    staged: list[tuple]
    loaded: list[tuple]  # the loaded rows, without where they came from
    raw: list[tuple]
    files: list[tuple]
    ledger_files: list[tuple]
    outbox: dict[str, bytes]


def observe(work: Path) -> Observed:
    db = _db(work)
    staged = _query(work, "select * from stg_settlements order by all")
    raw = _query(work, "select * from raw_settlements order by all")
    files = _query(work, "select * from ingested_files order by all")
    ledger_files = _query(
        work,
        """
        select * exclude (run_id) from ledger_files
        where run_id = (select max_by(run_id, started_at) from run_ledger
                        where month = ? and outcome = 'success')
        order by all
        """,
        [MAR],
    )
    outbox = work / "data" / "outbox"
    return Observed(
        warnings={m: warnings_csv(db, Month.parse(m)) for m in (FEB, MAR)},
        staged=staged,
        loaded=_query(
            work,
            "select * exclude (source_file, source_row) from stg_settlements "
            "where status = 'loaded' order by all",
        ),
        raw=raw,
        files=files,
        ledger_files=ledger_files,
        outbox={
            p.relative_to(outbox).as_posix(): _without_run_id(p)
            for p in sorted(outbox.rglob("*"))
            if p.is_file()
        },
    )


def _without_run_id(path: Path) -> bytes:
    """A file's bytes; a manifest names the run that wrote it, the rest is identical."""
    data = path.read_bytes()
    if path.name == "manifest.json":
        doc = json.loads(data)
        assert doc.pop("run_id")
        return json.dumps(doc, sort_keys=True).encode()
    return data


def assert_same(got: Observed, want: Observed) -> None:
    assert got.warnings == want.warnings
    assert got.staged == want.staged
    assert got.raw == want.raw
    assert got.files == want.files
    assert got.ledger_files == want.ledger_files
    assert sorted(got.outbox) == sorted(want.outbox)  # no stray or missing file
    for rel, data in want.outbox.items():
        assert got.outbox[rel] == data, rel


@pytest.fixture(scope="module")
def february(tmp_path_factory) -> Path:
    """A data folder in which 2024-02 has been run (cloned by the tests, never changed)."""
    work = tmp_path_factory.mktemp("february")
    shutil.copytree(FIXTURE / "landing", work / "data" / "landing")
    for p in (work / "data" / "landing").rglob("*"):
        p.chmod(p.stat().st_mode | 0o200)  # the fixture may be read-only
    done = povwatch("run", "--month", FEB, "--quiet", cwd=work)
    assert done.returncode == 0, done.stderr.decode()
    return work


def clone(february: Path, dst: Path) -> Path:
    shutil.copytree(february, dst, dirs_exist_ok=True)
    return dst


@pytest.fixture(scope="module")
def undisturbed(february, tmp_path_factory) -> Observed:
    work = clone(february, tmp_path_factory.mktemp("undisturbed"))
    done = povwatch("run", "--month", MAR, "--quiet", cwd=work)
    assert done.returncode == 0, done.stderr.decode()
    seen = observe(work)
    # The command line prints exactly what warnings_csv gives.
    out = povwatch("warnings", "--month", MAR, "--format", "csv", cwd=work)
    assert out.returncode == 0 and out.stdout == seen.warnings[MAR].encode("utf-8")
    assert len(seen.warnings[MAR].splitlines()) > 1 and len(seen.outbox) >= 6
    for row in seen.ledger_files:
        figures(f"undisturbed {MAR} run, {row[2]}", **dict(zip(_COUNT_NAMES, row[4:], strict=True)))
    return seen


# --------------------------------------------------------------------------- killed runs


@pytest.mark.parametrize("stage", STAGES)
def test_a_run_killed_at_any_stage_then_rerun_equals_an_undisturbed_run(
    february, undisturbed, tmp_path, stage
):
    work = clone(february, tmp_path)
    killed = povwatch("run", "--month", MAR, "--quiet", cwd=work, fault=stage)
    assert killed.returncode == -9, killed.stderr.decode()

    # The killed run is in the ledger from its start and stays `running` when killed before
    # the commit; killed after it (warehouse written, reports not yet confirmed) it stays
    # `publishing`. Reports reach the outbox only after the commit.
    status = povwatch("status", "--month", MAR, cwd=work)
    assert status.returncode == 0, status.stderr.decode()
    lines = status.stdout.decode().splitlines()
    committed_stage = stage in ("after_commit", "after_reports")
    expected_outcome = "publishing" if committed_stage else "running"
    assert len(lines) >= 1 and lines[0].split()[:2] == [MAR, expected_outcome], lines
    leftover = sorted(
        p.relative_to(work / "data" / "outbox").as_posix()
        for p in (work / "data" / "outbox").rglob("*")
        if p.is_file() and p.is_relative_to(work / "data" / "outbox" / MAR)
    )
    ((committed,),) = _query(work, "select count(*) from mart_warnings where month = ?", [MAR])
    ((staged_mar,),) = _query(
        work, "select count(*) from stg_settlements where export_month = ?", [MAR]
    )
    # Before the commit nothing of 2024-03 is in the warehouse; after it, everything is.
    if committed_stage:
        assert committed > 0 and staged_mar > 0
    else:
        assert committed == 0 and staged_mar == 0
    # Reports are delivered only for committed data.
    assert bool(leftover) == (stage == "after_reports"), leftover

    again = povwatch("run", "--month", MAR, "--quiet", cwd=work)
    assert again.returncode == 0, again.stderr.decode()
    runs = [line.split()[:2] for line in status_text(_db(work), Month.parse(MAR)).splitlines()]
    assert runs[:2] == [[MAR, expected_outcome], [MAR, "success"]]
    assert_same(observe(work), undisturbed)
    figures(
        f"kill {stage}",
        rc=killed.returncode,
        status_after_kill=expected_outcome,
        mar_staged_rows_after_kill=staged_mar,
        mar_warnings_after_kill=committed,
        mar_report_files_after_kill=len(leftover),
        rerun="success",
        warnings_mar=len(undisturbed.warnings[MAR].splitlines()) - 1,
        report_files=len(undisturbed.outbox),
    )


# --------------------------------------------------------------------------- unusable files


def _truncated_parquet(month_dir: Path) -> None:
    whole = (FIXTURE / "landing" / "settlements" / "2024-05" / "setl_202405.parquet").read_bytes()
    (month_dir / "setl_202403_part2.parquet").write_bytes(whole[: len(whole) // 2])


def _gb18030_bad_byte(month_dir: Path) -> None:
    # Row 3 holds a line break inside a quoted field, so row 5 starts on line 6 of the file;
    # the bad byte sits in row 5's name (header = row 1, as a spreadsheet shows the file).
    who = ["P3700000008", "P3700000017", "P3700000023", "P3700000027"]
    rows = [_row(f"GB{i}", p, "2024-03-05 10:00:00", "10.00") for i, p in enumerate(who)]
    rows[1]["fixmedins_name"] = "济宁市\n第一人民医院"
    data = _csv_bytes(rows, "gb18030")
    name = PERSONS[who[3]]["psn_name"].encode("gb18030")
    assert data.count(name) == 1
    (month_dir / "setl_202403_gb.csv").write_bytes(data.replace(name, name[:2] + b"\xff"))


def _empty_file(month_dir: Path) -> None:
    (month_dir / "setl_202403_part2.csv").write_bytes(b"")


def _stray_quote(month_dir: Path) -> None:
    # A quote inside a quoted field that is not doubled: the CSV cannot be parsed. The
    # message must say where, without quoting the field (it holds a name and an id).
    who = ["P3700000035", "P3700000049"]
    good = _csv_bytes([_row("Q1", who[0], "2024-03-05 10:00:00", "10.00")])
    p = PERSONS[who[1]]
    bad = f'Q2,MQ2,{who[1]},{p["certno"]},390,11,2024-03-05 10:00:00,10,1,0,0,1,9,0,370811,0,,1,"{p["psn_name"]}"x",\r\n'
    (month_dir / "setl_202403_quote.csv").write_bytes(good + bad.encode("utf-8"))


def _ragged_row(month_dir: Path) -> None:
    who = ["P3700000056", "P3700000057"]
    data = _csv_bytes(
        [
            _row("R1", who[0], "2024-03-05 10:00:00", "10.00"),
            _row("R2", who[1], "2024-03-05 10:00:00", "10.00"),
        ]
    )
    lines = data.split(b"\r\n")
    lines[2] += ("," + PERSONS[who[1]]["certno"]).encode()  # one field too many in row 3
    (month_dir / "setl_202403_ragged.csv").write_bytes(b"\r\n".join(lines))


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            _truncated_parquet,
            "settlements/2024-03/setl_202403_part2.parquet: not a readable Parquet file",
        ),
        (
            _gb18030_bad_byte,
            "settlements/2024-03/setl_202403_gb.csv row 5: unknown text encoding",
        ),
        (_empty_file, "settlements/2024-03/setl_202403_part2.csv: the file is empty (0 bytes)"),
        (
            _stray_quote,
            "settlements/2024-03/setl_202403_quote.csv: not a readable CSV file (row 3:",
        ),
        (
            _ragged_row,
            "settlements/2024-03/setl_202403_ragged.csv: not a readable CSV file "
            "(row 3 has 21 fields, the header 20)",
        ),
    ],
    ids=["truncated-parquet", "gb18030-bad-byte", "empty-file", "stray-quote", "ragged-row"],
)
def test_an_unusable_file_stops_the_run_with_one_line_and_writes_nothing(
    february, tmp_path, mutate, expected
):
    work = clone(february, tmp_path)
    before = _query(work, "select * from stg_settlements order by all")
    mutate(work / "data" / "landing" / "settlements" / MAR)
    out = povwatch("run", "--month", MAR, cwd=work)  # not quiet: progress lines are checked too
    err = out.stderr.decode().strip()
    assert out.returncode == 1, err
    error_lines = [line for line in err.splitlines() if not line.startswith(f"[{MAR}]")]
    assert error_lines == [error_lines[0]] and error_lines[0].startswith("povwatch: error: ")
    assert expected in error_lines[0]
    assert "Traceback" not in err
    _assert_no_personal_data(err + out.stdout.decode())
    assert _query(work, "select * from stg_settlements order by all") == before
    assert _query(work, "select count(*) from raw_settlements where export_month = ?", [MAR]) == [
        (0,)
    ]
    assert _query(work, "select count(*) from mart_warnings where month = ?", [MAR]) == [(0,)]
    ((outcome, message),) = _query(
        work, "select outcome, message from run_ledger where month = ?", [MAR]
    )
    assert outcome == "failed" and expected.split(": ", 1)[-1][:20] in message
    _assert_no_personal_data(message)
    assert not (work / "data" / "outbox" / MAR).exists()
    figures(f"unusable {mutate.__name__}", rc=out.returncode, error=error_lines[0])


# --------------------------------------------------------------------------- odd files that load


def _file_counts(work: Path, rel: str) -> tuple:
    (row,) = _query(
        work,
        """
        select rows_read, loaded, duplicate, skipped, quarantined,
               medfee_read_fen, medfee_loaded_fen, burden_loaded_fen
        from ledger_files
        where source_file = ? and run_id = (select max_by(run_id, started_at) from run_ledger
                                            where month = ? and outcome = 'success')
        """,
        [rel, MAR],
    )
    assert row[0] == sum(row[1:5])
    return row


def _staged(work: Path, rel: str) -> list[tuple]:
    return _query(
        work,
        """
        select source_row, setl_id, status, reason, reason_column, psn_part_amt
        from stg_settlements where source_file = ? order by source_row
        """,
        [rel],
    )


def test_quoted_fields_with_line_breaks_quotes_and_commas_load_row_by_row(february, tmp_path):
    work = clone(february, tmp_path)
    who = ["P3700000063", "P3700000067", "P3700000077", "P3700000082", "P3700000087"]
    rows = [_row(f"NL{i}", p, "2024-03-06 11:00:00", "12.34") for i, p in enumerate(who)]
    rows[0]["fixmedins_name"] = "济宁市\n第一人民医院"
    rows[0]["mdtrt_id"] = 'M"NL0", 急诊'
    rows[1]["fixmedins_name"] = '他说"急诊,住院"\r\n后转入'
    rows[2]["fixmedins_name"] = "\n\n"
    rows[3]["psn_part_amt"] = "17.34"  # does not add up: quarantined at its own row
    data = _csv_bytes(rows)
    assert data.count(b"\n") == 6 + 4  # header + 5 rows, 4 line breaks inside fields
    rel = "settlements/2024-03/setl_202403_notes.csv"
    (work / "data" / "landing" / rel).write_bytes(data)
    out = povwatch("run", "--month", MAR, cwd=work)
    assert out.returncode == 0, out.stderr.decode()
    _assert_no_personal_data(out.stderr.decode() + out.stdout.decode())
    assert _staged(work, rel) == [
        (2, "NL0", "loaded", None, None, 1234),
        (3, "NL1", "loaded", None, None, 1234),
        (4, "NL2", "loaded", None, None, 1234),
        (5, "NL3", "quarantined", "amounts_mismatch", "psn_part_amt", 1734),
        (6, "NL4", "loaded", None, None, 1234),
    ]
    ((mdtrt,),) = _query(work, "select mdtrt_id from raw_settlements where setl_id = 'NL0'")
    assert mdtrt == 'M"NL0", 急诊'
    counts = _file_counts(work, rel)
    assert counts[:5] == (5, 4, 0, 0, 1)
    figures("csv line breaks in quoted fields", **dict(zip(_COUNT_NAMES, counts, strict=True)))


def test_xlsx_with_a_title_above_the_header_and_empty_rows_loads(february, tmp_path):
    import xlsxwriter

    work = clone(february, tmp_path)
    rel = "settlements/2024-03/济宁市医保结算明细_202403.xlsx"
    who = ["P3700000091", "P3700000095", "P3700000049", "P3700000035"]
    rows = [_row(f"X{i}", p, "2024-03-07 08:30:00", "918.17") for i, p in enumerate(who)]
    rows[3]["psn_part_amt"] = "900.00"  # does not add up
    money = {c for c in SETTLEMENT_HEADER if c.endswith(("amt", "pay", "sumamt", "selfpay"))}
    book = xlsxwriter.Workbook(str(work / "data" / "landing" / rel))
    sheet = book.add_worksheet("结算明细")
    # Row 1 empty, row 2 the title (merged), row 3 empty, row 4 the header, data from row 5,
    # with row 7 left empty: the rows keep the numbers a spreadsheet shows.
    sheet.merge_range(1, 0, 1, 8, "济宁市医疗保障局 结算明细 2024年3月")
    header = SETTLEMENT_HEADER + EXTRA
    sheet.write_row(3, 0, header)
    for r, row in zip([4, 5, 7, 8], rows, strict=True):
        for c, col in enumerate(header):
            value = row.get(col, "")
            if col in money and value:
                sheet.write_number(r, c, float(value))
            elif value != "":
                sheet.write_string(r, c, value)
    book.close()
    out = povwatch("run", "--month", MAR, "--quiet", cwd=work)
    assert out.returncode == 0, out.stderr.decode()
    assert _staged(work, rel) == [
        (5, "X0", "loaded", None, None, 91817),
        (6, "X1", "loaded", None, None, 91817),
        (8, "X2", "loaded", None, None, 91817),
        (9, "X3", "quarantined", "amounts_mismatch", "psn_part_amt", 90000),
    ]
    counts = _file_counts(work, rel)
    assert counts[:5] == (4, 3, 0, 0, 1)
    figures("xlsx title row", **dict(zip(_COUNT_NAMES, counts, strict=True)))


BAD_AMOUNTS = [
    ("medfee_sumamt", "123456789012345678.00"),
    ("medfee_sumamt", "1e30"),
    ("hifp_pay", "abc"),
    ("fund_pay_sumamt", "12,5"),
    ("psn_part_amt", "１２"),
    ("maf_pay", "-1e30"),
    ("psn_part_amt", "12.345"),
]


def test_unreadable_or_huge_amounts_are_quarantined_and_the_run_succeeds(
    february, undisturbed, tmp_path
):
    work = clone(february, tmp_path)
    who = ["P3700000008", "P3700000017", "P3700000023", "P3700000027", "P3700000035"]
    rows = []
    for i, (column, value) in enumerate(BAD_AMOUNTS):
        row = _row(f"BA{i}", who[i % len(who)], "2024-03-08 09:00:00", "50.00")
        row[column] = value
        rows.append(row)
    rel = "settlements/2024-03/setl_202403_amounts.csv"
    (work / "data" / "landing" / rel).write_bytes(_csv_bytes(rows))
    out = povwatch("run", "--month", MAR, cwd=work)  # not quiet: the progress is checked too
    assert out.returncode == 0, out.stderr.decode()
    status = povwatch("status", "--month", MAR, cwd=work)
    _assert_no_personal_data(out.stderr.decode() + out.stdout.decode() + status.stdout.decode())
    staged = _staged(work, rel)
    assert [(r[0], r[2], r[3], r[4]) for r in staged] == [
        (i + 2, "quarantined", "bad_amount", column) for i, (column, _) in enumerate(BAD_AMOUNTS)
    ]
    raw = _query(
        work,
        "select medfee_sumamt, hifp_pay, fund_pay_sumamt, psn_part_amt, maf_pay "
        "from raw_settlements where source_file = ? order by source_row",
        [rel],
    )
    cols = ["medfee_sumamt", "hifp_pay", "fund_pay_sumamt", "psn_part_amt", "maf_pay"]
    # The raw layer keeps what was delivered, so the quarantine can be read against it.
    assert [r[cols.index(c)] for r, (c, _) in zip(raw, BAD_AMOUNTS, strict=True)] == [
        v for _, v in BAD_AMOUNTS
    ]
    counts = _file_counts(work, rel)
    assert counts[:5] == (len(BAD_AMOUNTS), 0, 0, 0, len(BAD_AMOUNTS))
    # Nothing of it counts: the month's warnings are those of the undisturbed run.
    assert warnings_csv(_db(work), Month.parse(MAR)) == undisturbed.warnings[MAR]
    figures("bad amounts", **dict(zip(_COUNT_NAMES, counts, strict=True)))


# --------------------------------------------------------------------------- one writer


def test_a_second_writer_is_refused_with_one_line(february, tmp_path):
    work = clone(february, tmp_path)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import duckdb, sys, time
                con = duckdb.connect({str(_db(work))!r})
                con.execute("select count(*) from run_ledger").fetchall()
                print("ready", flush=True)
                time.sleep(60)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert holder.stdout.readline().strip() == b"ready"
        out = povwatch("run", "--month", MAR, cwd=work)
    finally:
        holder.kill()
        holder.wait(timeout=30)
    err = out.stderr.decode().strip()
    assert out.returncode == 1, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "warehouse is in use" in err and str(_db(work).name) in err
    # The refused run touched nothing: not even a ledger row.
    assert _query(work, "select count(*) from run_ledger where month = ?", [MAR]) == [(0,)]
    assert not (work / "data" / "outbox" / MAR).exists()
    figures("second writer", rc=out.returncode, error=err)


# --------------------------------------------------------------------------- delivered twice


def test_the_same_export_delivered_twice_is_counted_once(undisturbed, tmp_path):
    work = tmp_path
    landing = work / "data" / "landing"
    shutil.copytree(FIXTURE / "landing", landing)
    for p in landing.rglob("*"):
        p.chmod(p.stat().st_mode | 0o200)
    original = landing / "settlements" / FEB / "setl_202402.csv"
    # Sorted after the original in its own folder; and again in the next month's folder.
    shutil.copy(original, landing / "settlements" / FEB / "setl_202402_resent.csv")
    shutil.copy(original, landing / "settlements" / MAR / "setl_202402_again.csv")
    out = povwatch("backfill", "--from", FEB, "--to", MAR, "--quiet", cwd=work)
    assert out.returncode == 0, out.stderr.decode()
    by_file = dict(
        (f, (n, loaded, dup, skipped, quarantined, burden))
        for f, n, loaded, dup, skipped, quarantined, burden in _query(
            work,
            """
            select source_file, rows_read, loaded, duplicate, skipped, quarantined,
                   burden_loaded_fen
            from ledger_files
            where run_id = (select max_by(run_id, started_at) from run_ledger where month = ?)
            """,
            [MAR],
        )
    )
    n = by_file["settlements/2024-02/setl_202402.csv"][0]
    assert n == 366
    assert by_file["settlements/2024-02/setl_202402.csv"][1:5] == (n, 0, 0, 0)
    assert by_file["settlements/2024-02/setl_202402_resent.csv"] == (n, 0, n, 0, 0, 0)
    assert by_file["settlements/2024-03/setl_202402_again.csv"] == (n, 0, n, 0, 0, 0)
    got = observe(work)
    assert got.warnings == undisturbed.warnings
    assert sorted(got.outbox) == sorted(undisturbed.outbox)
    assert all(got.outbox[rel] == data for rel, data in undisturbed.outbox.items())
    # Counted once: the loaded rows are exactly those of the undisturbed run.
    assert got.loaded == undisturbed.loaded
    for rel, counts in sorted(by_file.items()):
        figures(f"delivered twice {rel}", **dict(zip(_COUNT_NAMES[:5], counts[:5], strict=True)))
