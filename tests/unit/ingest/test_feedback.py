"""Reading feedback files: encodings, Chinese 台账 labels, header below a title, row checks."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import openpyxl
import polars as pl

from pipeline.ingest.feedback import FeedbackRoot, decision_lookup, read_feedback


def _read(root: Path) -> pl.DataFrame:
    return read_feedback([FeedbackRoot(root, "feedback")]).rows


def test_every_spelling_of_a_decision_maps_to_its_code():
    lookup = decision_lookup()
    assert lookup["dibao"] == "dibao"
    assert lookup["低保对象"] == "dibao"
    assert lookup["低保边缘家庭成员"] == "dibao_edge"
    assert lookup["孤儿/事实无人抚养儿童"] == "orphan"
    assert lookup["不符合条件"] == "not_eligible"
    assert lookup["已纳入救助"] == "already_assisted"
    assert lookup["无法联系"] == "unreachable"
    assert "低保" not in lookup  # ambiguous short form: not a decision of the list
    assert "ordinary" not in lookup  # no identity is not an identity decision


def test_gb18030_csv_with_the_ledger_labels(tmp_path):
    folder = tmp_path / "乡村振兴"  # the department's folder by its Chinese name
    folder.mkdir()
    text = (
        "个人编号,预警类型,核实结论,核实日期,备注\n"
        "P1,因病致贫预警,边缘易致贫户,2024/3/5,已入户\n"
        "P2,返贫预警,无法联系,20240306,\n"
        "P3,,,,\n"  # not answered: not a row of decisions
        "P4,因病返贫预警,特困人员,2024年03月07日,\n"
        "P5,因病返贫预警,低保对象,45366,\n"  # Excel's serial day: 2024-03-15
    )
    (folder / "反馈.csv").write_bytes(text.encode("gb18030"))
    rows = _read(tmp_path)
    assert rows.select(
        "department", "source_row", "psn_no", "warning_type", "decision", "decided_on", "note"
    ).rows() == [
        (
            "rural_revitalization",
            2,
            "P1",
            "impoverish",
            "monitor_edge",
            dt.date(2024, 3, 5),
            "已入户",
        ),
        ("rural_revitalization", 3, "P2", "relapse", "unreachable", dt.date(2024, 3, 6), None),
        ("rural_revitalization", 5, "P4", "relapse", "tekun", dt.date(2024, 3, 7), None),
        ("rural_revitalization", 6, "P5", "relapse", "dibao", dt.date(2024, 3, 15), None),
    ]
    assert rows["reason"].null_count() == 4


def test_row_checks_name_the_column_and_reason(tmp_path):
    folder = tmp_path / "civil_affairs"
    folder.mkdir()
    (folder / "d.csv").write_text(
        "warning_id,psn_no,warning_type,decision,decided_on\n"
        ",P1,,dibao,2023-02-29\n"  # 2023 is not a leap year
        ",P1,,低保,2024-03-01\n"
        ",,,dibao,2024-03-01\n"
        "2024-X-P1,,,dibao,2024-03-01\n"
        ",P1,both,dibao,2024-03-01\n"
        ",P1,,,2024-03-01\n"
        ",P1,,dibao,\n"
        ",P1,,dibao,2099-01-01\n",
        encoding="utf-8",
    )
    rows = _read(tmp_path).sort("source_row")
    assert rows.select("source_row", "reason_column", "reason").rows() == [
        (2, "decided_on", "bad_date"),
        (3, "decision", "unknown_decision"),
        (4, "warning_id", "missing_value"),
        (5, "warning_id", "unknown_warning"),
        (6, "warning_type", "unknown_warning_type"),
        (7, "decision", "missing_value"),
        (8, "decided_on", "missing_value"),
        (9, "decided_on", "future_date"),  # not yet today: cannot have been decided
    ]


def test_a_file_that_cannot_be_used_is_one_rejection_and_never_raises(tmp_path):
    (tmp_path / "civil_affairs").mkdir()
    (tmp_path / "civil_affairs" / "no_decision.csv").write_text(
        "psn_no,decided_on\nP1,2024-03-01\n"
    )
    (tmp_path / "civil_affairs" / "broken.xlsx").write_bytes(b"not a zip")
    (tmp_path / "loose.csv").write_text("warning_id,decision,decided_on\n")
    read = read_feedback([FeedbackRoot(tmp_path, "feedback")])
    assert read.rows.select("source_file", "source_row", "reason_column", "reason").sort(
        "source_file"
    ).rows() == [
        ("feedback/civil_affairs/broken.xlsx", 0, None, "unreadable_file"),
        ("feedback/civil_affairs/no_decision.csv", 1, "decision", "missing_column"),
        ("feedback/loose.csv", 0, None, "unknown_department"),
    ]


def test_returned_ledger_xlsx_with_a_cover_sheet_and_a_title_row(tmp_path):
    folder = tmp_path / "civil_affairs" / "370829"
    folder.mkdir(parents=True)
    wb = openpyxl.Workbook()
    cover = wb.active
    cover.title = "说明"
    cover["A1"] = "请在台账中填写核实结论"
    ws = wb.create_sheet("预警台账")
    ws["A1"] = "2024年03月 因病返贫/因病致贫预警台账 — 民政部门 — 嘉祥县(370829)"
    ws.append(["序号", "预警编号", "个人编号", "姓名", "核实结论（必填）", "*核实日期", "备注"])
    ws.append([1, "2024-R-P1", "P1", "张三", "低保对象", dt.date(2024, 4, 2), None])
    ws.append([2, "2024-R-P2", "P2", "李四", "待核实", None, None])  # still checking
    ws.append([3, "2024-i-p3", "p3", "王五", "不符合条件", dt.datetime(2024, 4, 3, 9, 30), "x"])
    wb.save(folder / "returned.xlsx")
    read = read_feedback([FeedbackRoot(tmp_path, "feedback")])
    assert read.rows.select("source_row", "warning_id", "decision", "decided_on").rows() == [
        (3, "2024-R-P1", "dibao", dt.date(2024, 4, 2)),
        (5, "2024-I-p3", "not_eligible", dt.date(2024, 4, 3)),
    ]
    assert read.files == [
        {
            "department": "civil_affairs",
            "source_file": "feedback/civil_affairs/370829/returned.xlsx",
            "sha256": read.files[0]["sha256"],
            "rows_read": 3,
            "blank": 1,
        }
    ]
