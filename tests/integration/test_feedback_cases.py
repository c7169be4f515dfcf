"""Decisions fed back on the example fixture: CSV and returned 台账, rejections, as-of months,
`povwatch cases`, follow-up (pending / overdue / not reflected), edited outbox files.

The fixture's routes (runs of 2024-01..03; P1300000238 gets 低保 from 2024-03-01 here, so
its relapse warning is resolved in March): civil_affairs gets P1300000238 (relapse, Feb),
P1300001158 and P1300001784 (impoverish, Feb), …; rural_revitalization gets P1300002568
(relapse, Jan), P1300000876 (relapse, Mar), and the impoverishment warnings too.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import duckdb
import openpyxl
import polars as pl
import pytest

from pipeline.cli import app
from pipeline.months import Month
from pipeline.run import run_month
from pipeline.settings import Settings
from pipeline.store.warehouse import connect
from pipeline.warnings.cases import (
    CASES_HEADER,
    cases_csv,
    cases_frame,
    followup_rows,
    report_decisions,
)

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "jining-hebei-2024"
CERT_1158 = "130521199703261581"  # P1300001158's certno in the fixture registry
CERT_0238 = "130521197701102385"  # P1300000238

CIVIL_CSV = f"""warning_id,psn_no,certno,warning_type,decision,decided_on,note
2024-R-P1300000238,,,,dibao,2024-02-20,by id
,P1300001158,,,not_eligible,2024-03-05,by person
,,{CERT_1158},impoverish,unreachable,2024-03-20,by certno: later the same warning
2024-R-P9999999999,,,,dibao,2024-02-10,unknown warning
2024-R-P1300002568,,,,dibao,2024-02-10,routed to rural_revitalization only
,P1300001784,,,低保,2024-02-10,not a label of the list
,P1300001784,,,dibao_edge,2024-02-30,no such day
,P1300001784,,,dibao_edge,2024-04-15,decided after March
2024-I-P1300001784,,,,dibao_edge,2024-01-15,before the warning began (2024-02)
,,,,,,
"""

# GB18030, Chinese labels for the decisions; 2024-02-29 is the last day of February.
RURAL_CSV = """warning_id,decision,decided_on,note
2024-R-P1300002568,已纳入救助,2024-02-29,leap day
2024-R-P1300000876,脱贫不稳定户,2024-03-25,identity not yet in the feed
"""


def _settings(work: Path, **kw) -> Settings:
    return Settings(
        landing=work / "landing", db=work / "w.duckdb", outbox=work / "outbox", quiet=True, **kw
    )


def _run(work: Path, month: str) -> list[str]:
    said: list[str] = []
    run_month(month, _settings(work), progress=said.append)
    return said


def _cases(work: Path, month: str) -> pl.DataFrame:
    con = connect(work / "w.duckdb", read_only=True)
    try:
        return cases_frame(con, Month.parse(month))[0]
    finally:
        con.close()


def _row(frame: pl.DataFrame, psn: str, wtype: str) -> dict:
    hits = frame.filter((pl.col("psn_no") == psn) & (pl.col("warning_type") == wtype))
    assert hits.height == 1, (psn, wtype, hits)
    return hits.row(0, named=True)


def _persons_sheet(wb: openpyxl.Workbook):
    """The sheet with the decision column (the 台账's persons sheet), its header row and
    the column of each header."""
    for ws in wb.worksheets:
        for r in range(1, 8):
            heads = {ws.cell(r, c).value: c for c in range(1, ws.max_column + 1)}
            if "核实结论" in heads and "个人编号" in heads:
                return ws, r, heads
    raise AssertionError("no sheet with 核实结论")


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("feedback")
    shutil.copytree(FIXTURE / "landing", root / "landing")
    # P1300000238: 低保边缘 until 2024-02-29, then 低保 (in the assistance net: no warning)
    ident = root / "landing" / "identities" / "identities.csv"
    text = ident.read_text(encoding="utf-8")
    old = f"{CERT_0238},dibao_edge,2023-06-01,,civil_affairs"
    assert old in text
    text = text.replace(old, f"{CERT_0238},dibao_edge,2023-06-01,2024-02-29,civil_affairs")
    ident.write_text(
        text.rstrip("\r\n") + f"\n{CERT_0238},dibao,2024-03-01,,civil_affairs\n", encoding="utf-8"
    )
    fb = root / "landing" / "feedback"
    (fb / "civil_affairs").mkdir(parents=True)
    (fb / "civil_affairs" / "decisions.csv").write_bytes(b"\xef\xbb\xbf" + CIVIL_CSV.encode())
    (fb / "rural_revitalization").mkdir()
    (fb / "rural_revitalization" / "反馈.csv").write_bytes(RURAL_CSV.encode("gb18030"))
    (fb / "health").mkdir()
    (fb / "health" / "x.csv").write_text("warning_id,decision,decided_on\n", encoding="utf-8")
    for month in ("2024-01", "2024-02", "2024-03"):
        said = _run(root, month)
    (root / "said_2024-03.txt").write_text("\n".join(said), encoding="utf-8")
    return root


def test_cases_of_march_show_the_decisions_known_by_march_31(work):
    march = _cases(work, "2024-03")
    assert cases_csv(march).split("\r\n")[0] == CASES_HEADER
    # dibao from 2024-03-01 takes P1300000238 out of the relapse population: resolved.
    assert _row(march, "P1300000238", "relapse") | {} == {
        "warning_id": "2024-R-P1300000238",
        "psn_no": "P1300000238",
        "warning_type": "relapse",
        "first_month": "2024-02",
        "status": "resolved",
        "decision": "dibao",
        "decided_on": "2024-02-20",
    }
    # Two decisions for one warning: the later decided_on (03-20 by certno) wins over 03-05.
    r = _row(march, "P1300001158", "impoverish")
    assert (r["status"], r["decision"], r["decided_on"]) == (
        "continuing",
        "unreachable",
        "2024-03-20",
    )
    # 2024-04-15 is after March: not applied yet.
    r = _row(march, "P1300001784", "impoverish")
    assert (r["decision"], r["decided_on"]) == (None, None)
    r = _row(march, "P1300002568", "relapse")
    assert (r["first_month"], r["decision"], r["decided_on"]) == (
        "2024-01",
        "already_assisted",
        "2024-02-29",
    )
    assert march["psn_no"].to_list() == sorted(march["psn_no"].to_list())


def test_a_backfill_of_february_shows_only_what_was_known_then(work):
    _run(work, "2024-02")  # re-run February after March: the freshest run covering Feb
    feb = _cases(work, "2024-02")
    assert _row(feb, "P1300000238", "relapse")["status"] == "new"
    assert _row(feb, "P1300000238", "relapse")["decision"] == "dibao"
    # decided 2024-03-05 / 03-20: not known at the end of February
    assert _row(feb, "P1300001158", "impoverish")["decision"] is None
    # 2024-02-29 ≤ last day of February 2024 (leap year)
    assert _row(feb, "P1300002568", "relapse")["decided_on"] == "2024-02-29"
    con = duckdb.connect(str(work / "w.duckdb"), read_only=True)
    feb_rows = con.sql(
        "select count(*), max(decided_on) from feedback_decisions where month = '2024-02'"
    ).fetchall()[0]
    con.close()
    assert feb_rows == (2, dt.date(2024, 2, 29))
    # March's view is untouched by the February re-run
    assert _row(_cases(work, "2024-03"), "P1300001158", "impoverish")["decision"] == "unreachable"


def test_rereading_the_same_files_is_idempotent(work):
    con = duckdb.connect(str(work / "w.duckdb"), read_only=True)
    before = con.sql("select count(*) from feedback_decisions").fetchall()[0][0]
    con.close()
    _run(work, "2024-02")
    con = duckdb.connect(str(work / "w.duckdb"), read_only=True)
    after = con.sql("select count(*) from feedback_decisions").fetchall()[0][0]
    con.close()
    assert after == before


def test_each_rejection_is_on_record_with_file_row_column_and_reason(work):
    con = duckdb.connect(str(work / "w.duckdb"), read_only=True)
    rejects = con.sql(
        """
        select source_file, source_row, reason_column, reason from feedback_rejects
        where month = '2024-03' order by source_file, source_row
        """
    ).fetchall()
    files = con.sql(
        "select source_file, accepted, rejected, later, blank from feedback_files "
        "where month = '2024-03' order by source_file"
    ).fetchall()
    con.close()
    civil = "feedback/civil_affairs/decisions.csv"
    assert rejects == [
        (civil, 5, "warning_id", "unknown_warning"),
        (civil, 6, "warning_id", "not_routed"),
        (civil, 7, "decision", "unknown_decision"),
        (civil, 8, "decided_on", "bad_date"),
        (civil, 10, "decided_on", "date_before_warning"),
        ("feedback/health/x.csv", 0, None, "unknown_department"),
    ]
    assert files == [
        (civil, 3, 5, 1, 0),  # the all-empty line 11 is no row at all
        ("feedback/health/x.csv", 0, 1, 0, 0),
        ("feedback/rural_revitalization/反馈.csv", 2, 0, 0, 0),
    ]


def test_rejections_are_said_with_file_row_column_and_reason_never_ids(work):
    said = (work / "said_2024-03.txt").read_text(encoding="utf-8").splitlines()
    civil = "feedback/civil_affairs/decisions.csv"
    assert f"[2024-03] feedback rejected: {civil} row 8 column decided_on: bad_date" in said
    assert (
        f"[2024-03] feedback {civil}: 3 accepted, 5 rejected, 1 decided after 2024-03, 0 blank"
        in said
    )
    assert not any("P13" in line or CERT_1158 in line for line in said)


def test_followup_pending_overdue_and_not_reflected(work):
    con = connect(work / "w.duckdb", read_only=True)
    try:
        rows = followup_rows(con, Month.parse("2024-03"), 30)
        strict = followup_rows(con, Month.parse("2024-03"), 31)
        for_reports = report_decisions(con, Month.parse("2024-03"))
        summary = con.sql(
            "select department, admdvs, warnings, decided, pending, overdue, not_reflected "
            "from mart_decision_followup where month = '2024-03' order by 1, 2"
        ).fetchall()
    finally:
        con.close()
    # the reports' 上次决定: one decision per warning_id, the latest known by 2024-03-31
    assert for_reports.filter(pl.col("warning_id") == "2024-I-P1300001158").rows() == [
        ("2024-I-P1300001158", "unreachable", dt.date(2024, 3, 20))
    ]
    assert for_reports.height == 4  # 0238, 1158, 2568 and 0876; 1784's is dated April
    r = _row(rows.filter(pl.col("department") == "civil_affairs"), "P1300001784", "impoverish")
    # first carried by February's package: waits 2024-02-29 → 2024-03-31 = 31 days > 30
    assert (r["days_waiting"], r["overdue"]) == (31, True)
    r31 = _row(strict.filter(pl.col("department") == "civil_affairs"), "P1300001784", "impoverish")
    assert r31["overdue"] is False  # 31 > 31 is false
    r = _row(rows.filter(pl.col("department") == "civil_affairs"), "P1300001643", "impoverish")
    assert (r["days_waiting"], r["overdue"]) == (0, False)  # first carried by March's package
    # decided 脱贫不稳定户 on 03-25, but the identities feed does not give it yet
    r = _row(rows, "P1300000876", "relapse")
    assert (r["previous_decision"], r["not_reflected"]) == ("monitor_unstable", True)
    # decided 低保 and the feed gives 低保 from 03-01: reflected (and resolved, not open)
    r = _row(rows, "P1300000238", "relapse")
    assert (r["previous_decision"], r["not_reflected"], r["open"]) == ("dibao", False, False)
    assert ("civil_affairs", "130503", 1, 0, 1, 1, 0) in summary
    # rural 130521: P1300000876 and P1300002568 decided, P1300001158 waiting since February
    # (overdue), P1300000876's decided identity not in the feed yet
    assert ("rural_revitalization", "130521", 3, 2, 1, 1, 1) in summary


def test_a_returned_ledger_xlsx_is_read_as_it_is(work):
    ledger = next((work / "outbox" / "2024-03" / "civil_affairs" / "130503").glob("*.xlsx"))
    wb = openpyxl.load_workbook(ledger)
    ws, header_row, heads = _persons_sheet(wb)
    row = header_row + 1
    assert ws.cell(row, heads["个人编号"]).value == "P1300001784"
    ws.cell(row, heads["核实结论"]).value = "低保边缘家庭成员"
    ws.cell(row, heads["核实日期"]).value = dt.date(2024, 4, 20)
    ws.cell(row, heads["备注"]).value = "入户核实"
    returned = work / "landing" / "feedback" / "civil_affairs" / "returned_2024-03.xlsx"
    wb.save(returned)
    _run(work, "2024-04")
    r = _row(_cases(work, "2024-04"), "P1300001784", "impoverish")
    # 2024-04-20 (the 台账) is later than 2024-04-15 (the CSV): the 台账's decision counts
    assert (r["decision"], r["decided_on"]) == ("dibao_edge", "2024-04-20")
    con = duckdb.connect(str(work / "w.duckdb"), read_only=True)
    note = con.sql(
        "select note, source_row from feedback_decisions where month = '2024-04' "
        "and source_file like '%returned_2024-03.xlsx'"
    ).fetchall()
    con.close()
    assert note == [("入户核实", row)]


def test_an_edited_delivered_file_is_set_aside_and_read(work):
    from pipeline.run import feedback_pending

    def pending() -> list[str]:  # what wakes the povwatch_feedback DAG's sensor
        return feedback_pending(work / "landing", work / "outbox")

    returned = pending()
    assert returned and all(f.startswith("feedback/") for f in returned)
    month_dir = work / "outbox" / "2024-04"
    ledger = next((month_dir / "civil_affairs" / "370829").glob("*.xlsx"))
    wb = openpyxl.load_workbook(ledger)
    ws, header_row, heads = _persons_sheet(wb)
    assert ws.cell(header_row + 1, heads["个人编号"]).value == "P3700001687"
    ws.cell(header_row + 1, heads["核实结论"]).value = "不符合条件"
    ws.cell(header_row + 1, heads["核实日期"]).value = dt.date(2024, 4, 25)
    wb.save(ledger)
    edited = ledger.read_bytes()
    rel = ledger.relative_to(work).as_posix()
    assert pending() == [*returned, f"{rel} (edited after delivery)"]
    said = _run(work, "2024-04")
    kept = list((work / "outbox" / "received" / "civil_affairs" / "2024-04").rglob("*.xlsx"))
    assert len(kept) == 1 and kept[0].read_bytes() == edited  # never overwritten, kept aside
    assert pending() == [*returned, kept[0].relative_to(work).as_posix()]
    assert any("edited after delivery" in line and "read as feedback" in line for line in said)
    assert ledger.read_bytes() != edited  # the month's package is whole again
    r = _row(_cases(work, "2024-04"), "P3700001687", "relapse")
    assert (r["decision"], r["decided_on"]) == ("not_eligible", "2024-04-25")
    # a second run finds nothing edited and reads the kept file again, same result
    said = _run(work, "2024-04")
    assert not any("edited after delivery" in line for line in said)
    assert _row(_cases(work, "2024-04"), "P3700001687", "relapse")["decision"] == "not_eligible"


def test_cases_command_line(work):
    from typer.testing import CliRunner

    args = ["--landing", str(work / "landing"), "--db", str(work / "w.duckdb")]
    out = CliRunner().invoke(app, ["cases", "--month", "2024-03", "--format", "csv", *args])
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    assert lines[0] == CASES_HEADER
    assert "2024-R-P1300000238,P1300000238,relapse,2024-02,resolved,dibao,2024-02-20" in lines
    missing = CliRunner().invoke(app, ["cases", "--month", "2024-09", *args])
    assert missing.exit_code != 0


def test_feedback_command_lists_the_rejections(work):
    from typer.testing import CliRunner

    args = ["--db", str(work / "w.duckdb")]
    out = CliRunner().invoke(app, ["feedback", "--month", "2024-03", *args])
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    assert lines[0] == "month,department,source_file,source_row,column,reason"
    assert (
        "2024-03,civil_affairs,feedback/civil_affairs/decisions.csv,7,decision,unknown_decision"
        in lines
    )
    assert len(lines) == 1 + 6


def test_status_says_what_feedback_the_run_read(work):
    from pipeline.store.ledger import status_text

    text = status_text(work / "w.duckdb", Month.parse("2024-03"))
    assert (
        "feedback: 3 files, 5 decisions accepted, 6 rows rejected (povwatch feedback), "
        "1 decided after the month"
    ) in text


def test_followup_command(work):
    from typer.testing import CliRunner

    out = CliRunner().invoke(
        app, ["followup", "--month", "2024-03", "--db", str(work / "w.duckdb")]
    )
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    assert lines[0] == "month,department,admdvs,warnings,decided,pending,overdue,not_reflected"
    assert "2024-03,rural_revitalization,130521,3,2,1,1,1" in lines


def test_backfill_through_the_command_line_shows_each_month_what_was_known(tmp_path):
    """As an acceptance test would: ./data defaults, a backfill, then `cases` per month."""
    import subprocess
    import sys

    shutil.copytree(FIXTURE / "landing", tmp_path / "data" / "landing")
    fb = tmp_path / "data" / "landing" / "feedback" / "rural_revitalization"
    fb.mkdir(parents=True)
    (fb / "answers.csv").write_text(
        "warning_id,decision,decided_on,note\n"
        "2024-R-P1300002568,monitor_sudden,2024-02-15,\n"  # Jan warning, decided in Feb
        "2024-R-P1300002568,already_assisted,2024-05-31,\n"  # … decided again on May 31
        "2024-R-P1300000876,not_eligible,2024-04-01,\n",  # a March warning
        encoding="utf-8",
    )

    def povwatch(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "pipeline.cli", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "POVWATCH_QUALITY": "off"},
        )

    done = povwatch("backfill", "--from", "2024-01", "--to", "2024-06", "--quiet")
    assert done.returncode == 0, done.stderr

    def case(month: str, warning_id: str) -> str:
        out = povwatch("cases", "--month", month, "--format", "csv")
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines()[0] == CASES_HEADER
        (line,) = [x for x in out.stdout.splitlines() if x.startswith(warning_id + ",")]
        return line

    r, i = "2024-R-P1300002568", "2024-R-P1300000876"
    assert case("2024-01", r) == f"{r},P1300002568,relapse,2024-01,new,,"
    assert (
        case("2024-02", r)
        == f"{r},P1300002568,relapse,2024-01,continuing,monitor_sudden,2024-02-15"
    )
    assert case("2024-04", r).endswith(",monitor_sudden,2024-02-15")
    assert case("2024-05", r).endswith(",already_assisted,2024-05-31")  # ≤ 31 May: known
    assert case("2024-03", i) == f"{i},P1300000876,relapse,2024-03,new,,"
    assert (
        case("2024-04", i) == f"{i},P1300000876,relapse,2024-03,continuing,not_eligible,2024-04-01"
    )
    assert povwatch("cases", "--month", "2024-07", "--format", "csv").returncode == 1


def test_march_packages_show_previous_decisions_and_what_is_still_pending(work):
    month = work / "outbox" / "2024-03"
    # P1300001158's impoverishment warning continues from February; civil affairs decided
    # 无法联系 on 03-20: March's 台账 carries it in 上次决定 (no days waiting any more)
    (ledger,) = (month / "civil_affairs" / "130521").glob("*.xlsx")
    ws, head, col = _persons_sheet(openpyxl.load_workbook(ledger))
    rows = {
        ws.cell(r, col["个人编号"]).value: r
        for r in range(head + 1, ws.max_row + 1)
        if ws.cell(r, col["个人编号"]).value
    }
    r = rows["P1300001158"]
    assert ws.cell(r, col["上次决定"]).value == "无法联系"
    assert ws.cell(r, col["等待天数"]).value is None
    # rural 130521: 3 warnings, 2 decided, 1 pending and overdue (mart_decision_followup)
    (page,) = (month / "rural_revitalization" / "130521").glob("*.html")
    text = page.read_text(encoding="utf-8")
    assert "已有决定 2 条，待反馈 1 条" in text and "其中逾期 1 条" in text
    assert "上次决定 无法联系" in text  # the same warning, decided by the other department
    summary = (month / "summary_2024-03.html").read_text(encoding="utf-8")
    assert "反馈跟进" in summary
    # one row per county: civil affairs' five counts, then rural revitalisation's
    rural = "".join(f'<td class="num">{n}</td>' for n in (3, 2, 1, 1, 1))
    assert "（130521）</td>" in summary and rural + "</tr>" in summary
