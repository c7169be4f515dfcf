"""The monthly report: 台账 per department × county, city summary, manifest."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import openpyxl
import polars as pl
import pytest

from pipeline.errors import PovwatchError
from pipeline.labels import DEPARTMENTS, IDENTITIES
from pipeline.reports.package import write_reports as _write_reports
from pipeline.reports.xlsx import LEDGER_HEADERS, VERDICT_CHOICES

MONTH = "2024-03"

SCHEMA = {
    "month": pl.String,
    "psn_no": pl.String,
    "hh_id": pl.String,
    "admdvs": pl.String,
    "warning_type": pl.String,
    "rule_id": pl.String,
    "burden_ytd_fen": pl.Int64,
    "threshold_fen": pl.Int64,
    "first_month": pl.String,
    "status": pl.String,
    "department": pl.String,
    "psn_name": pl.String,
    "certno": pl.String,
    "identities": pl.String,
    "insutype": pl.String,
    "rural": pl.Int8,
    "hh_size": pl.Int32,
    "hh_warned": pl.Int32,
}

# psn, hh, county, type, rule, burden, threshold, first, status, dept, name, certno, ids, insutype,
# rural, hh_size, hh_warned
ROWS = [
    # P1: 脱贫人口 and 低保边缘 → both departments; relapse; continuing since January.
    ("P1", "H1", "370811", "relapse", "R-RELAPSE-1", 1994501, 1000000, "2024-01", "continuing",
     "civil_affairs", "张三", "370811195001011234", "tuopin,dibao_edge", "390", 1, 3, 2),
    ("P1", "H1", "370811", "relapse", "R-RELAPSE-1", 1994501, 1000000, "2024-01", "continuing",
     "rural_revitalization", "张三", "370811195001011234", "tuopin,dibao_edge", "390", 1, 3, 2),
    # P0: same household as P1, sorts before it by psn_no.
    ("P0", "H1", "370811", "relapse", "R-RELAPSE-1", 1200000, 1000000, "2024-03", "new",
     "civil_affairs", "张四", "370811197001011234", "tuopin", "390", 1, 3, 2),
    # P2: ordinary person, new impoverish warning, other county, no name/certno known.
    ("P2", "H2", "370883", "impoverish", "R-IMPOV-1", 4567800, 3000000, "2024-03", "new",
     "civil_affairs", None, None, "", "310", 0, 1, 1),
    # P3: 边缘易致贫户, other county, rural revitalisation, new.
    ("P3", "H3", "370883", "relapse", "R-RELAPSE-2", 2500099, 2000000, "2024-03", "new",
     "rural_revitalization", "李五", "370883198002022345", "monitor_edge", "390", 1, 4, 1),
]  # fmt: skip


def routed(rows: list[tuple] | None = None) -> pl.DataFrame:
    rows = ROWS if rows is None else rows
    cols = [c for c in SCHEMA if c != "month"]
    data = [dict(zip(cols, r, strict=True)) | {"month": MONTH} for r in rows]
    return pl.DataFrame(data, schema=SCHEMA, orient="row") if data else pl.DataFrame(schema=SCHEMA)


def ledger_rel(dept: str, admdvs: str, county: str) -> str:
    return f"{dept}/{admdvs}/预警台账_{DEPARTMENTS[dept]}_{county}_{MONTH}.xlsx"


EXPECTED_LEDGERS = {
    ledger_rel("civil_affairs", "370811", "任城区"): 2,
    ledger_rel("civil_affairs", "370883", "邹城市"): 1,
    ledger_rel("rural_revitalization", "370811", "任城区"): 1,
    ledger_rel("rural_revitalization", "370883", "邹城市"): 1,
}


PACKAGE_MANIFESTS = sorted({rel.rsplit("/", 1)[0] + "/manifest.json" for rel in EXPECTED_LEDGERS})


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    return tmp_path / "outbox"


@pytest.fixture
def written(outbox: Path) -> list[Path]:
    return write_reports(routed(), MONTH, outbox)


def write_reports(frame, month, outbox):
    return _write_reports(frame, month, outbox, formats=("xlsx",))


PERSONS = 1  # the 人员 sheet


def sheet_rows(path: Path, sheet: int = 0) -> list[tuple]:
    wb = openpyxl.load_workbook(path)
    return list(wb.worksheets[sheet].iter_rows(values_only=True))


def ledger_records(path: Path) -> list[dict]:
    rows = sheet_rows(path, PERSONS)
    return [dict(zip(rows[1], r, strict=True)) for r in rows[2:]]


def test_file_layout(outbox: Path, written: list[Path]) -> None:
    month_dir = outbox / MONTH
    rels = [p.relative_to(month_dir).as_posix() for p in written]
    expected = sorted(
        [*EXPECTED_LEDGERS, *PACKAGE_MANIFESTS, f"summary_{MONTH}.xlsx", "manifest.json"]
    )
    assert sorted(rels) == expected
    assert written == sorted(written)
    on_disk = sorted(
        p.relative_to(month_dir).as_posix() for p in month_dir.rglob("*") if p.is_file()
    )
    assert on_disk == expected


def test_ledger_title_headers_and_rows(outbox: Path, written: list[Path]) -> None:
    for rel, n in EXPECTED_LEDGERS.items():
        assert openpyxl.load_workbook(outbox / MONTH / rel).sheetnames == [
            "户",
            "人员",
            "费用明细",
            "说明",
        ]
        rows = sheet_rows(outbox / MONTH / rel, PERSONS)
        assert rows[1] == tuple(LEDGER_HEADERS)
        assert len(rows) - 2 == n
    rows = sheet_rows(outbox / MONTH / ledger_rel("civil_affairs", "370811", "任城区"), PERSONS)
    assert rows[0][0] == "2024年03月 因病返贫/因病致贫预警台账 — 民政部门 — 任城区(370811)"
    assert LEDGER_HEADERS[:4] == ["序号", "预警编号", "户号", "个人编号"]
    assert LEDGER_HEADERS[-3:] == ["核实结论", "核实日期", "备注"]


def test_ledger_values(outbox: Path, written: list[Path]) -> None:
    recs = ledger_records(outbox / MONTH / ledger_rel("civil_affairs", "370811", "任城区"))
    assert [(r["户号"], r["个人编号"]) for r in recs] == [("H1", "P0"), ("H1", "P1")]
    assert [r["序号"] for r in recs] == [1, 2]
    p1 = recs[1]
    assert p1["年度累计个人负担(元)"] == 19945.01
    assert p1["预警标准(元)"] == 10000.00
    assert p1["超出金额(元)"] == 9945.01
    assert p1["超出金额(元)"] == round(p1["年度累计个人负担(元)"] - p1["预警标准(元)"], 2)
    assert p1["姓名"] == "张三"
    assert p1["身份证号"] == "370811195001011234"  # text, not a float
    assert p1["所在区划"] == "任城区(370811)"
    assert p1["预警类型"] == "因病返贫预警"
    assert p1["现有身份"] == "脱贫人口、低保边缘家庭成员"
    assert p1["参保类型"] == "城乡居民基本医疗保险"
    assert p1["首次预警月份"] == "2024-01"
    assert p1["预警状态"] == "持续"
    assert p1["规则编号"] == "R-RELAPSE-1"
    assert p1["同户预警人数"] == 2
    assert p1["核实结论"] is None and p1["核实日期"] is None and p1["备注"] is None
    assert recs[0]["预警状态"] == "新增"

    (p2,) = ledger_records(outbox / MONTH / ledger_rel("civil_affairs", "370883", "邹城市"))
    assert p2["现有身份"] == IDENTITIES["ordinary"] == "普通参保人员"
    assert p2["预警类型"] == "因病致贫预警"
    assert p2["参保类型"] == "职工基本医疗保险"
    assert p2["姓名"] is None and p2["身份证号"] is None
    assert p2["年度累计个人负担(元)"] == 45678.00
    assert p2["超出金额(元)"] == 15678.00

    (p3,) = ledger_records(outbox / MONTH / ledger_rel("rural_revitalization", "370883", "邹城市"))
    assert p3["超出金额(元)"] == 5000.99


def test_ledger_sheet_features(outbox: Path, written: list[Path]) -> None:
    wb = openpyxl.load_workbook(outbox / MONTH / ledger_rel("civil_affairs", "370811", "任城区"))
    ws = wb.worksheets[PERSONS]
    assert ws.freeze_panes == "F3"
    assert ws.auto_filter.ref == "A2:X4"
    money = ws.cell(3, LEDGER_HEADERS.index("年度累计个人负担(元)") + 1)
    assert money.number_format == "0.00"
    header = ws.cell(2, 1)
    assert header.font.b and header.fill.fgColor.rgb.endswith("DDEBF7")
    assert header.font.name == "等线"
    assert ws.column_dimensions["F"].width >= 18  # 身份证号 fits
    # The verdict dropdown covers the data rows of 核实结论 (column V).
    lists = [dv for dv in ws.data_validations.dataValidation if dv.type == "list"]
    assert len(lists) == 1
    assert str(lists[0].sqref) == "V3:V4"
    choices = lists[0].formula1.strip('"').split(",")
    assert choices == VERDICT_CHOICES
    assert {"不符合条件", "已纳入救助", "特困人员", "脱贫人口", "待核实", "无法联系"} <= set(
        choices
    )
    assert "普通参保人员" not in choices
    assert wb.properties.created.date().isoformat() == "2024-03-01"


def test_summary_counts(outbox: Path, written: list[Path]) -> None:
    path = outbox / MONTH / f"summary_{MONTH}.xlsx"
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == ["全市汇总", "分部门汇总"]
    rows = sheet_rows(path, 0)
    assert rows[0][0] == "2024年03月 因病返贫/因病致贫预警 全市汇总"
    assert rows[1] == ("区划代码", "区划名称", "预警类型", "预警状态", "预警人数", "涉及户数")
    body = [r for r in rows[2:] if r[4] is not None]
    assert body == [
        ("370811", "任城区", "因病返贫预警", "新增", 1, 1),
        ("370811", "任城区", "因病返贫预警", "持续", 1, 1),  # P1 once though in two departments
        ("370883", "邹城市", "因病返贫预警", "新增", 1, 1),
        ("370883", "邹城市", "因病致贫预警", "新增", 1, 1),
        ("合计", None, None, None, 4, 3),
    ]
    by_dept = [r for r in sheet_rows(path, 1)[2:] if r[5] is not None]
    assert by_dept == [
        ("民政部门", "370811", "任城区", "因病返贫预警", "新增", 1, 1),
        ("民政部门", "370811", "任城区", "因病返贫预警", "持续", 1, 1),
        ("民政部门", "370883", "邹城市", "因病致贫预警", "新增", 1, 1),
        ("乡村振兴部门", "370811", "任城区", "因病返贫预警", "持续", 1, 1),
        ("乡村振兴部门", "370883", "邹城市", "因病返贫预警", "新增", 1, 1),
        ("民政部门 合计", None, None, None, None, 3, 2),
        ("乡村振兴部门 合计", None, None, None, None, 2, 2),
    ]


def test_manifest_matches_files(outbox: Path, written: list[Path]) -> None:
    month_dir = outbox / MONTH
    text = (month_dir / "manifest.json").read_text(encoding="utf-8")
    manifest = json.loads(text)
    assert text == json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    assert "预警台账" in text  # not \u-escaped
    assert manifest["month"] == MONTH
    paths = [f["path"] for f in manifest["files"]]
    assert paths == sorted(paths)
    assert paths == sorted([*EXPECTED_LEDGERS, f"summary_{MONTH}.xlsx"])
    for f in manifest["files"]:
        data = (month_dir / f["path"]).read_bytes()
        assert f["sha256"] == hashlib.sha256(data).hexdigest()
        assert f["bytes"] == len(data)
    rows = {f["path"]: f["rows"] for f in manifest["files"]}
    assert rows == {
        **EXPECTED_LEDGERS,
        f"summary_{MONTH}.xlsx": 4,
    }


def test_rerun_is_byte_identical_and_leaves_nothing_stale(outbox: Path, tmp_path: Path) -> None:
    first = write_reports(routed(), MONTH, outbox)
    snapshot = {p: p.read_bytes() for p in first}
    # Elsewhere and at another time: same bytes.
    other = write_reports(routed(), MONTH, tmp_path / "elsewhere")
    assert [p.read_bytes() for p in other] == [snapshot[p] for p in first]
    # A file someone else put in the month folder survives a re-run.
    foreign = outbox / MONTH / "civil_affairs" / "receipt.txt"
    foreign.write_text("ok", encoding="utf-8")
    # A re-run with fewer warnings drops the departments/counties that no longer have any.
    fewer = write_reports(routed([r for r in ROWS if r[0] == "P2"]), MONTH, outbox)
    month_dir = outbox / MONTH
    on_disk = sorted(
        p.relative_to(month_dir).as_posix() for p in month_dir.rglob("*") if p.is_file()
    )
    assert on_disk == sorted(
        [
            ledger_rel("civil_affairs", "370883", "邹城市"),
            "civil_affairs/370883/manifest.json",
            "civil_affairs/receipt.txt",
            f"summary_{MONTH}.xlsx",
            "manifest.json",
        ]
    )
    assert not (month_dir / "rural_revitalization").exists()
    assert len(fewer) == 4
    again = write_reports(routed(), MONTH, outbox)
    assert again == first
    assert {p: p.read_bytes() for p in again} == snapshot
    assert not list(outbox.glob(".*"))  # no staging left behind


def test_empty_month_still_reports(outbox: Path) -> None:
    written = write_reports(routed([]), MONTH, outbox)
    month_dir = outbox / MONTH
    assert [p.relative_to(month_dir).as_posix() for p in written] == [
        "manifest.json",
        f"summary_{MONTH}.xlsx",
    ]
    rows = sheet_rows(month_dir / f"summary_{MONTH}.xlsx", 0)
    assert rows[1][0] == "区划代码"
    assert rows[2] == ("合计", None, None, None, 0, 0)
    by_dept = [
        r for r in sheet_rows(month_dir / f"summary_{MONTH}.xlsx", 1)[2:] if r[5] is not None
    ]
    assert by_dept == [
        ("民政部门 合计", None, None, None, None, 0, 0),
        ("乡村振兴部门 合计", None, None, None, None, 0, 0),
    ]
    manifest = json.loads((month_dir / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["files"] == [
        {
            "path": f"summary_{MONTH}.xlsx",
            "sha256": hashlib.sha256(
                (month_dir / f"summary_{MONTH}.xlsx").read_bytes()
            ).hexdigest(),
            "bytes": (month_dir / f"summary_{MONTH}.xlsx").stat().st_size,
            "rows": 0,
        }
    ]


def test_bad_input_is_a_one_line_error(outbox: Path) -> None:
    with pytest.raises(PovwatchError, match="department"):
        write_reports(routed().with_columns(department=pl.lit("health")), MONTH, outbox)
    with pytest.raises(PovwatchError, match="month"):
        write_reports(routed(), "2024-04", outbox)
    with pytest.raises(PovwatchError, match="hh_warned"):
        write_reports(routed().drop("hh_warned"), MONTH, outbox)
    with pytest.raises(PovwatchError, match="not a month"):
        write_reports(routed(), "2024-13", outbox)
    assert not (outbox / "2024-04").exists()


def test_a_cell_starting_with_equals_stays_text(outbox: Path) -> None:
    # Names and ids come from the departments' files: one starting with '=', '+' or '@'
    # must be written as the text it is, never as a formula (formula injection).
    evil = '=HYPERLINK("http://example.invalid","点击")'
    rows = [
        ("=1+1", "+H9", "370811", "relapse", "R-RELAPSE-1", 1994501, 1000000, "2024-03", "new",
         "civil_affairs", evil, "370811195001011234", "dibao_edge", "390", 1, 1, 1),
    ]  # fmt: skip
    write_reports(routed(rows), MONTH, outbox)
    path = outbox / MONTH / ledger_rel("civil_affairs", "370811", "任城区")
    wb = openpyxl.load_workbook(path)
    found = {
        cell.value: cell
        for ws in wb.worksheets
        for row in ws.iter_rows()
        for cell in row
        if cell.value in (evil, "=1+1", "+H9")
    }
    assert set(found) == {evil, "=1+1", "+H9"}  # each written as the text it is
    for value, cell in found.items():
        assert cell.data_type == "s", value  # a string, not a formula ('f')
