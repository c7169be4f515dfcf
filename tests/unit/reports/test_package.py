"""The packages looked at, not just generated: HTML in headless Chromium, PDF page 1 through
pdftoppm, the 台账 reopened with openpyxl; and the privacy rules, one test each."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import openpyxl
import polars as pl
import pytest
from PIL import Image

from pipeline.errors import PovwatchError
from pipeline.reports.package import write_reports
from pipeline.reports.xlsx import LEDGER_HEADERS
from tests.unit.reports.test_xlsx import MONTH, ROWS, routed

EVIL_NAME = '=HYPERLINK("http://evil.example/x","点我")'
MARKUP_NAME = "<script>alert(1)</script>王"


def _rows() -> list[tuple]:
    rows = list(ROWS)
    # P2 gets a formula-looking name, P3 a name with markup
    rows[3] = (*rows[3][:10], EVIL_NAME, "370883199001011234", *rows[3][12:])
    rows[4] = (*rows[4][:10], MARKUP_NAME, *rows[4][11:])
    return rows


@pytest.fixture(scope="module")
def month_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("package")
    write_reports(routed(_rows()), MONTH, root / "outbox")
    return root / "outbox" / MONTH


def _package(month_dir: Path, dept: str, admdvs: str, kind: str) -> Path:
    (path,) = (month_dir / dept / admdvs).glob(f"*.{kind}")
    return path


def _ink(png: Path) -> float:
    """Share of pixels that are not (near) white."""
    img = Image.open(png).convert("L")
    hist = img.histogram()
    return 1 - sum(hist[245:]) / sum(hist)


def test_every_package_has_its_files_and_a_manifest(month_dir):
    for dept, admdvs in [
        ("civil_affairs", "370811"),
        ("civil_affairs", "370883"),
        ("rural_revitalization", "370811"),
        ("rural_revitalization", "370883"),
    ]:
        names = sorted(p.name for p in (month_dir / dept / admdvs).iterdir())
        assert sorted(n.rsplit(".", 1)[1] for n in names) == ["html", "json", "pdf", "xlsx"]
        manifest = json.loads((month_dir / dept / admdvs / "manifest.json").read_text("utf-8"))
        assert manifest["department"] == dept and manifest["admdvs"] == admdvs
        assert sorted(f["path"] for f in manifest["files"]) == sorted(
            n for n in names if n != "manifest.json"
        )
    assert (month_dir / f"summary_{MONTH}.pdf").is_file()
    assert (month_dir / f"summary_{MONTH}.html").is_file()


@pytest.mark.skipif(not shutil.which("chromium"), reason="chromium not installed (make deps)")
def test_html_screenshot_in_headless_chromium_is_not_blank(month_dir, tmp_path):
    html = _package(month_dir, "civil_affairs", "370811", "html")
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", f"--screenshot={shot}", "--window-size=390,1200",
            html.as_uri(),
        ],
        capture_output=True,
        timeout=60,
        check=True,
    )  # fmt: skip
    assert Image.open(shot).size == (390, 1200)
    assert _ink(shot) > 0.03  # text, cards and charts, not an empty page


@pytest.mark.skipif(not shutil.which("pdftoppm"), reason="poppler-utils not installed")
def test_pdf_page_one_renders_with_chinese_text(month_dir, tmp_path):
    pdf = _package(month_dir, "civil_affairs", "370811", "pdf")
    subprocess.run(
        ["pdftoppm", "-r", "50", "-png", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "p")],
        check=True,
        timeout=60,
    )
    (png,) = tmp_path.glob("p-*.png")
    width, height = Image.open(png).size
    assert width > height  # A4 landscape
    assert _ink(png) > 0.02
    text = subprocess.run(
        ["pdftotext", "-l", "1", str(pdf), "-"], capture_output=True, check=True
    ).stdout.decode("utf-8")
    assert "因病返贫" in text and "任城区" in text  # CJK glyphs embedded, not tofu
    fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True).stdout.decode()
    assert "WenQuanYi" in fonts or "wqy" in fonts.lower()


def test_ledger_sheets_dropdown_protection_and_print_setup(month_dir):
    wb = openpyxl.load_workbook(_package(month_dir, "civil_affairs", "370811", "xlsx"))
    assert wb.sheetnames == ["户", "人员", "费用明细", "说明"]
    ws = wb["人员"]
    verdict = LEDGER_HEADERS.index("核实结论") + 1
    (dv,) = [d for d in ws.data_validations.dataValidation if d.type == "list"]
    assert "待核实" in dv.formula1 and "无法联系" in dv.formula1
    for sheet in wb.worksheets:
        assert sheet.protection.sheet is True
        assert sheet.page_setup.orientation == "landscape"
        assert sheet.page_setup.paperSize in (9, "9")  # A4
        assert sheet.sheet_properties.pageSetUpPr.fitToPage
        assert int(sheet.page_setup.fitToWidth or 1) <= 2  # 1 is the default, left out
        assert sheet.print_title_rows == "$1:$2"
    assert ws.cell(3, verdict).protection.locked is False  # the decision cell takes input
    assert ws.cell(3, 1).protection.locked is True  # the rest does not
    assert int(ws.page_setup.fitToWidth) == 2
    households = list(wb["户"].iter_rows(min_row=3, values_only=True))
    assert [h[1] for h in households] == ["H1"]  # one household, two members warned
    assert households[0][3] == 2
    notes = [r[0] for r in wb["说明"].iter_rows(values_only=True) if r[0]]
    assert "各列含义" in notes and "预警编号" in notes


def test_text_that_looks_like_a_formula_stays_text(month_dir):
    wb = openpyxl.load_workbook(_package(month_dir, "civil_affairs", "370883", "xlsx"))
    ws = wb["人员"]
    name = ws.cell(3, LEDGER_HEADERS.index("姓名") + 1)
    assert name.value == EVIL_NAME
    assert name.data_type == "s"  # a string, not a formula
    assert name.quotePrefix is True  # Excel's quote prefix
    raw = subprocess.run(
        ["unzip", "-p", str(_package(month_dir, "civil_affairs", "370883", "xlsx")),
         "xl/worksheets/sheet2.xml"],
        capture_output=True,
    ).stdout  # fmt: skip
    assert b"<f>" not in raw


def test_markup_in_names_is_escaped_and_ids_are_masked_in_html(month_dir):
    html = _package(month_dir, "rural_revitalization", "370883", "html").read_text("utf-8")
    assert "<script>" not in html and "&lt;script&gt;" in html or "&lt;" in html
    civil = _package(month_dir, "civil_affairs", "370811", "html").read_text("utf-8")
    assert "370811195001011234" not in civil and "370811********1234" in civil
    assert "张三" not in civil and "张*" in civil
    # the responsible department's 台账 has the full id
    wb = openpyxl.load_workbook(_package(month_dir, "civil_affairs", "370811", "xlsx"))
    ids = [r[LEDGER_HEADERS.index("身份证号")] for r in wb["人员"].iter_rows(values_only=True)]
    assert "370811195001011234" in ids


@pytest.mark.skipif(not shutil.which("pdftotext"), reason="poppler-utils not installed")
def test_pdf_and_city_summary_hold_no_full_identity(month_dir):
    for pdf in [*month_dir.rglob("*.pdf")]:
        text = subprocess.run(
            ["pdftotext", str(pdf), "-"], capture_output=True, check=True
        ).stdout.decode("utf-8")
        assert "370811195001011234" not in text and "张三" not in text, pdf.name
    summary = (month_dir / f"summary_{MONTH}.html").read_text("utf-8")
    for _, _, _, _, _, _, _, _, _, _, name, certno, *_ in _rows():
        if certno:
            assert certno not in summary and certno[-4:] + "<" not in summary
        if name:
            assert name not in summary


def test_a_package_holds_only_its_own_county_and_department(month_dir):
    for xlsx in month_dir.rglob("*.xlsx"):
        if xlsx.name.startswith("summary"):
            continue
        dept, admdvs = xlsx.parent.parent.name, xlsx.parent.name
        rows = list(openpyxl.load_workbook(xlsx)["人员"].iter_rows(min_row=3, values_only=True))
        county = LEDGER_HEADERS.index("所在区划")
        assert rows and all(r[county].endswith(f"({admdvs})") for r in rows)
        want = {r[0] for r in _rows() if r[2] == admdvs and r[9] == dept}
        assert {r[LEDGER_HEADERS.index("个人编号")] for r in rows} == want


def test_file_names_come_from_validated_codes_and_stay_in_the_outbox(tmp_path):
    outbox = tmp_path / "outbox"
    bad = routed(_rows()).with_columns(
        pl.when(pl.col("psn_no") == "P2")
        .then(pl.lit("../../x"))
        .otherwise("admdvs")
        .alias("admdvs")
    )
    with pytest.raises(PovwatchError, match="admdvs"):
        write_reports(bad, MONTH, outbox, formats=("xlsx",))
    with pytest.raises(PovwatchError, match="department"):
        write_reports(routed(_rows()).with_columns(department=pl.lit("../civil")), MONTH, outbox)
    assert list(tmp_path.iterdir()) == []  # refused before anything was written
    write_reports(routed(_rows()), MONTH, outbox, formats=("xlsx",))
    for p in outbox.rglob("*"):
        assert p.resolve().is_relative_to(outbox.resolve())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outbox"]


def test_reports_are_byte_identical_on_a_rerun(month_dir, tmp_path):
    again = tmp_path / "outbox"
    write_reports(routed(_rows()), MONTH, again)
    for path in month_dir.rglob("*"):
        if path.is_file():
            other = again / MONTH / path.relative_to(month_dir)
            assert other.read_bytes() == path.read_bytes(), path.name


def test_also_routed_and_previous_decision_columns(tmp_path):
    import datetime as dt

    from pipeline.reports.frame import ReportData

    decisions = pl.DataFrame(
        {
            "warning_id": ["2024-R-P1"],
            "decision": ["pending"],
            "decided_on": [dt.date(2024, 2, 20)],
        }
    )
    data = ReportData(routed=routed(_rows()), decisions=decisions)
    write_reports(data, MONTH, tmp_path, formats=("xlsx",))
    path = next((tmp_path / MONTH / "civil_affairs" / "370811").glob("*.xlsx"))
    rows = list(openpyxl.load_workbook(path)["人员"].iter_rows(values_only=True))
    recs = {r[3]: dict(zip(rows[1], r, strict=True)) for r in rows[2:]}
    assert recs["P1"]["预警编号"] == "2024-R-P1"
    assert recs["P1"]["也推送至"] == "乡村振兴部门"  # routed to both departments
    assert recs["P0"]["也推送至"] is None
    assert recs["P1"]["上次决定"] == "待核实" and recs["P1"]["等待天数"] is None
    # P0 first warned in March 2024, no decision back: 0 days after the end of March
    assert recs["P0"]["上次决定"] is None and recs["P0"]["等待天数"] == 0
    # without decisions the two columns stay empty
    write_reports(routed(_rows()), MONTH, tmp_path / "plain", formats=("xlsx",))
    path = next((tmp_path / "plain" / MONTH / "civil_affairs" / "370811").glob("*.xlsx"))
    rows = list(openpyxl.load_workbook(path)["人员"].iter_rows(values_only=True))
    assert {(r[19], r[20]) for r in rows[2:]} == {(None, None)}


@pytest.mark.skipif(not shutil.which("pdftotext"), reason="poppler-utils not installed")
def test_the_pdf_prints_every_households_why(tmp_path):
    write_reports(routed(_rows()), MONTH, tmp_path)
    html = _package(tmp_path / MONTH, "civil_affairs", "370811", "html").read_text("utf-8")
    pdf = _package(tmp_path / MONTH, "civil_affairs", "370811", "pdf")
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, check=True)
    printed = text.stdout.decode("utf-8")
    ids = set(routed(_rows()).filter(pl.col("admdvs") == "370811")["hh_id"].to_list())
    assert ids and all(hh in printed and hh in html for hh in ids)
    assert "未打印" not in printed and "预警编号 2024-R-P1" in printed.replace("\n", " ")


def test_household_sheet_carries_each_members_why(tmp_path):
    from pipeline.reports.frame import ReportData

    frame = routed(_rows()).with_columns(
        pl.format("年度累计个人负担 {} 分，超过预警标准", pl.col("burden_ytd_fen")).alias("why")
    )
    write_reports(ReportData(routed=frame), MONTH, tmp_path, formats=("xlsx",))
    path = next((tmp_path / MONTH / "civil_affairs" / "370811").glob("*.xlsx"))
    ws = openpyxl.load_workbook(path)["户"]
    header = [c.value for c in ws[2]]
    (row,) = list(ws.iter_rows(min_row=3, values_only=True))
    why = row[header.index("预警原因")]
    assert why.splitlines() == [
        "张三：年度累计个人负担 1994501 分，超过预警标准",  # largest overshoot first
        "张四：年度累计个人负担 1200000 分，超过预警标准",
    ]


def test_underpayments_are_a_sheet_of_the_civil_affairs_ledger_of_their_county(tmp_path):
    from pipeline.reports.frame import ReportData, underpaid_rows
    from tests.unit.assistance.test_audit import ROWS as AUDIT_ROWS
    from tests.unit.assistance.test_audit import _frame

    registry = pl.DataFrame(
        {
            "psn_no": ["A", "C", "F"],
            "psn_name": ["甲一", "丙三", "己六"],
            "certno": ["370811195001010011", "370811195001010033", "370812195001010066"],
        }
    )
    under = underpaid_rows(_frame(AUDIT_ROWS), registry)
    write_reports(ReportData(routed=routed(_rows()), underpaid=under), MONTH, tmp_path)
    month = tmp_path / MONTH
    wb = openpyxl.load_workbook(_package(month, "civil_affairs", "370811", "xlsx"))
    assert wb.sheetnames[-2:] == ["医疗救助少付", "说明"]
    ws = wb["医疗救助少付"]
    assert ws.protection.sheet
    header = [c.value for c in ws[2]]
    rows = [dict(zip(header, r, strict=True)) for r in ws.iter_rows(min_row=3, values_only=True)]
    # only 370811's under-payments (A 5000.00 before C 1000.00; B is within one fen), full ids
    assert [(r["人员编号"], r["差额（元）"], r["身份证号"]) for r in rows] == [
        ("A", "5000.00", "370811195001010011"),
        ("C", "1000.00", "370811195001010033"),
    ]
    assert rows[0]["姓名"] == "甲一" and rows[0]["核对结果"].startswith("少付")
    # the other department's 台账 of the same county has no such sheet, nor these ids; the
    # HTML, PDF and city summary never carry them
    rural = openpyxl.load_workbook(_package(month, "rural_revitalization", "370811", "xlsx"))
    assert "医疗救助少付" not in rural.sheetnames
    cells = {str(c.value) for ws in rural.worksheets for row in ws.iter_rows() for c in row}
    assert not any("370811195001010011" in c for c in cells)
    for page in [*month.rglob("*.html")]:
        assert "370811195001010011" not in page.read_text("utf-8")


def test_city_summary_with_follow_up_prints_on_two_pages_for_eleven_counties():
    from weasyprint import HTML

    from pipeline.labels import COUNTIES
    from pipeline.months import Month
    from pipeline.reports.html import render
    from pipeline.reports.summary import summary_context

    counties = sorted(c for c in COUNTIES if c.startswith("3708"))[:11]
    assert len(counties) == 11
    history = pl.DataFrame(
        [
            {
                "month": month, "psn_no": f"P{c}{t}{i}", "hh_id": f"H{c}{i}", "admdvs": c,
                "warning_type": t, "department": "civil_affairs",
                "burden_ytd_fen": 3_000_000, "threshold_fen": 2_000_000,
            }
            for c in counties
            for t in ("relapse", "impoverish")
            for i in range(3)
            for month in ("2024-11", "2024-12")
        ]
    )  # fmt: skip
    followup = pl.DataFrame(
        [
            {"department": d, "admdvs": c, "warnings": 6, "decided": 2, "pending": 4,
             "overdue": 1, "not_reflected": 0}
            for c in counties
            for d in ("civil_affairs", "rural_revitalization")
        ]
    )  # fmt: skip
    page = render("summary.html.j2", summary_context(history, Month(2024, 12), followup))
    assert "反馈跟进" in page and page.count("（3708") >= 22  # both tables list every county
    assert len(HTML(string=page).render().pages) <= 2


def test_pdf_workers_end_with_each_step_and_give_the_bytes_of_an_in_process_render(
    tmp_path, monkeypatch
):
    from pipeline.reports import pdf

    write_reports(routed(_rows()), MONTH, tmp_path / "pool")  # two PDFs per county: workers
    assert pdf._POOL is None  # ended with the month's last step (no worker left behind)
    with pdf.workers_kept():
        pdf.write_pdfs([("<p>一</p>", tmp_path / "a.pdf"), ("<p>二</p>", tmp_path / "b.pdf")])
        kept = pdf._POOL
        assert kept is not None
        pdf.release()  # a step inside the block leaves them running
        assert pdf._POOL is kept
    assert pdf._POOL is None
    monkeypatch.setattr(pdf, "POOL_FROM", 10**9)  # every PDF rendered in this process
    write_reports(routed(_rows()), MONTH, tmp_path / "local")
    for path in sorted((tmp_path / "pool" / MONTH).rglob("*.pdf")):
        local = tmp_path / "local" / path.relative_to(tmp_path / "pool")
        assert path.read_bytes() == local.read_bytes()
