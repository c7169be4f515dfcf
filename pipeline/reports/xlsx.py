"""Monthly reports: one Excel 台账 per department and county, a city summary and a manifest.

Layout under ``outbox/<month>/``::

    <department>/<admdvs>/预警台账_<部门>_<县区>_<month>.xlsx   per (department, county) with rows
    summary_<month>.xlsx                                    全市汇总 + 分部门汇总
    manifest.json                                           path, sha256, bytes, rows per file

Every file is byte-for-byte reproducible from the same input: workbooks are built in memory
(xlsxwriter then stamps every zip entry 1980-01-01) and their document dates are the first day of
the month, never the wall clock. All sheet data is computed with polars; only the final cell
writing goes through xlsxwriter.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import xlsxwriter
from xlsxwriter.worksheet import Worksheet

from pipeline.errors import PovwatchError
from pipeline.labels import COUNTIES, DEPARTMENTS, IDENTITIES, INSUTYPES, STATUSES, WARNING_TYPES
from pipeline.months import Month

__all__ = [
    "write_reports",
    "write_county_ledgers",
    "finish_reports",
    "report_counties",
    "REQUIRED_COLUMNS",
    "LEDGER_HEADERS",
    "VERDICT_CHOICES",
]

REQUIRED_COLUMNS = (
    "month",
    "psn_no",
    "hh_id",
    "admdvs",
    "warning_type",
    "rule_id",
    "burden_ytd_fen",
    "threshold_fen",
    "first_month",
    "status",
    "department",
    "psn_name",
    "certno",
    "identities",
    "insutype",
    "hh_warned",
)

# --- words a person reads (kept here only when labels.py has no entry for them) ----------------
TITLE_KIND = "因病返贫/因病致贫预警台账"
SUMMARY_KIND = "因病返贫/因病致贫预警 全市汇总"
LEDGER_SHEET = "预警台账"
SUMMARY_SHEET = "全市汇总"
BY_DEPT_SHEET = "分部门汇总"
FILE_PREFIX = "预警台账"
TOTAL = "合计"
VERDICT_NONE = "不符合条件"
VERDICT_ASSISTED = "已纳入救助"
# What a department may answer: an identity (not "ordinary", which is no decision), or neither.
VERDICT_CHOICES = [v for k, v in IDENTITIES.items() if k != "ordinary"] + [
    VERDICT_NONE,
    VERDICT_ASSISTED,
]
SUMMARY_NOTE = "注：人数、户数均为去重计数；同一人推送至两个部门时，在全市汇总中只计一次。"

# (header, ledger column, kind) in sheet order; kind drives format and width.
_LEDGER_COLUMNS: list[tuple[str, str, str]] = [
    ("序号", "seq", "int"),
    ("户号", "hh_id", "text"),
    ("个人编号", "psn_no", "text"),
    ("姓名", "psn_name", "text"),
    ("身份证号", "certno", "text"),
    ("所在区划", "county", "text"),
    ("预警类型", "warning_label", "text"),
    ("现有身份", "identity_label", "text"),
    ("参保类型", "insutype_label", "text"),
    ("年度累计个人负担(元)", "burden_yuan", "money"),
    ("预警标准(元)", "threshold_yuan", "money"),
    ("超出金额(元)", "excess_yuan", "money"),
    ("首次预警月份", "first_month", "text"),
    ("预警状态", "status_label", "text"),
    ("规则编号", "rule_id", "text"),
    ("同户预警人数", "hh_warned", "int"),
    ("核实结论", "verdict", "fill"),
    ("核实日期", "verdict_date", "date"),
    ("备注", "remark", "fill"),
]
LEDGER_HEADERS = [h for h, _, _ in _LEDGER_COLUMNS]

_SUMMARY_COLUMNS: list[tuple[str, str, str]] = [
    ("区划代码", "admdvs", "text"),
    ("区划名称", "county_name", "text"),
    ("预警类型", "warning_label", "text"),
    ("预警状态", "status_label", "text"),
    ("预警人数", "persons", "int"),
    ("涉及户数", "households", "int"),
]
_BY_DEPT_COLUMNS: list[tuple[str, str, str]] = [("接收部门", "department_label", "text")]
_BY_DEPT_COLUMNS += _SUMMARY_COLUMNS

FONT = "等线"
_ADMDVS = re.compile(r"^\d{6}$")
_MIN_WIDTH, _MAX_WIDTH = 6.0, 40.0
_KIND_MIN_WIDTH = {"money": 12.0, "date": 12.0, "fill": 16.0}


@dataclass(frozen=True)
class _Written:
    rel: str  # posix path relative to outbox/<month>/
    rows: int


# =============================================================================================
# Public entry point
# =============================================================================================


def write_reports(routed: pl.DataFrame, month: str, outbox: Path) -> list[Path]:
    """Write this month's 台账, city summary and manifest under ``outbox/<month>/``.

    ``routed`` has one row per (warning, receiving department); it may be empty. Files this
    function owns in that month folder (department 台账, the summary, the manifest) are replaced,
    so a re-run leaves nothing stale; anything else there is left alone. Returns every written
    path, sorted. The same as ``write_county_ledgers`` for every county, then ``finish_reports``
    (which is how the scheduler runs it: one task per county, then one to finish).
    """
    df = _checked(routed, _label(month))
    for admdvs in report_counties(df):
        write_county_ledgers(df, month, outbox, admdvs)
    return finish_reports(df, month, outbox)


def report_counties(routed: pl.DataFrame) -> list[str]:
    """The counties that get a 台账 this month, sorted."""
    return sorted(routed.get_column("admdvs").unique().to_list())


def write_county_ledgers(routed: pl.DataFrame, month: str, outbox: Path, admdvs: str) -> list[Path]:
    """Write one county's 台账 (one per department), each replaced atomically. Returns the paths."""
    label = _label(month)
    m = Month.parse(label)
    df = _checked(routed.filter(pl.col("admdvs") == admdvs), label)
    month_dir = Path(outbox) / label
    month_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for (dept, county), part in _partitions(_ledger_rows(df)):
        target = month_dir / _ledger_rel(dept, county, label)
        staging = target.parent / f".{target.name}.tmp"
        _write_ledger(staging, part, m, dept, county)
        os.replace(staging, target)
        written.append(target)
    return sorted(written)


def finish_reports(routed: pl.DataFrame, month: str, outbox: Path) -> list[Path]:
    """After every county's 台账: the city summary, stale files dropped, the manifest last.

    Stops with one line when a county's 台账 is missing (its county step has not run).
    Returns every path of the month's delivery, sorted.
    """
    label = _label(month)
    m = Month.parse(label)
    df = _checked(routed, label)
    month_dir = Path(outbox) / label
    written = [
        _Written(_ledger_rel(d, c, label), part.height)
        for (d, c), part in _partitions(_ledger_rows(df))
    ]
    for w in written:
        if not (month_dir / w.rel).is_file():
            raise PovwatchError(
                f"report: {month_dir / w.rel} missing (its county step has not run)"
            )
    month_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{label}.staging.", dir=month_dir))
    try:
        rel = f"summary_{label}.xlsx"
        written.append(_Written(rel, _write_summary(staging / rel, df, m)))
        written.sort(key=lambda w: w.rel)
        os.replace(staging / rel, month_dir / rel)
        manifest = _manifest(month_dir, label, written)
        paths = _publish(staging, month_dir, label, [w.rel for w in written], manifest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return sorted(paths)


def _label(month: str) -> str:
    try:
        return str(Month.parse(month))
    except ValueError as err:
        raise PovwatchError(f"report: {err}") from err


# =============================================================================================
# Input checks and sheet data (polars only)
# =============================================================================================


def _checked(routed: pl.DataFrame, month: str) -> pl.DataFrame:
    missing = [c for c in REQUIRED_COLUMNS if c not in routed.columns]
    if missing:
        raise PovwatchError(f"report: routed warnings lack column(s) {', '.join(missing)}")
    df = routed.with_columns(
        pl.col("identities").fill_null(""),
        pl.col("burden_ytd_fen").cast(pl.Int64),
        pl.col("threshold_fen").cast(pl.Int64),
        pl.col("hh_warned").cast(pl.Int64),
    )
    checks = [
        ("month", pl.col("month") != month, f"month other than {month}"),
        ("department", ~pl.col("department").is_in(list(DEPARTMENTS)), "unknown department"),
        ("warning_type", ~pl.col("warning_type").is_in(list(WARNING_TYPES)), "unknown type"),
        ("status", ~pl.col("status").is_in(list(STATUSES)), "unknown status"),
        ("admdvs", ~pl.col("admdvs").str.contains(_ADMDVS.pattern), "not a 6-digit code"),
        ("psn_no", pl.col("psn_no").is_null(), "missing"),
        ("hh_id", pl.col("hh_id").is_null(), "missing"),
        ("burden_ytd_fen", pl.col("burden_ytd_fen").is_null(), "missing"),
        ("threshold_fen", pl.col("threshold_fen").is_null(), "missing"),
    ]
    bad = df.select(
        [cond.fill_null(True).any().alias(col) for col, cond, _ in checks]
        + [cond.fill_null(True).arg_true().first().alias(f"{col}#row") for col, cond, _ in checks]
    )
    for col, _, why in checks:
        if df.height and bad[col][0]:
            row = bad[f"{col}#row"][0]
            value = df[col][row]
            raise PovwatchError(
                f"report: routed warnings row {row}: column {col}: {why} ({value!r})"
            )
    return df


def _ledger_rel(dept: str, admdvs: str, month: str) -> str:
    name = f"{FILE_PREFIX}_{DEPARTMENTS[dept]}_{_county_name(admdvs)}_{month}.xlsx"
    return f"{dept}/{admdvs}/{name}"


def _county_name(admdvs: str) -> str:
    return COUNTIES.get(admdvs, admdvs)


def _county_expr(code: pl.Expr) -> pl.Expr:
    return code.replace_strict(COUNTIES, default=code, return_dtype=pl.String)


def _ordered(df: pl.DataFrame) -> pl.DataFrame:
    """Add sort keys that follow the label order (relapse before impoverish, new before …)."""
    return df.with_columns(
        pl.col("department").cast(pl.Enum(list(DEPARTMENTS))).alias("_dept_order"),
        pl.col("warning_type").cast(pl.Enum(list(WARNING_TYPES))).alias("_type_order"),
        pl.col("status").cast(pl.Enum(list(STATUSES))).alias("_status_order"),
    )


def _yuan(fen: pl.Expr) -> pl.Expr:
    # Integer fen → yuan; every value is an exact cent, so rounding to 2 places is exact display.
    return (fen.cast(pl.Float64) / 100).round(2)


def _ledger_rows(df: pl.DataFrame) -> pl.DataFrame:
    """Every 台账 row with display values, sorted hh_id, psn_no within department × county."""
    codes = pl.col("identities").str.split(",").list.eval(pl.element().str.strip_chars())
    codes = codes.list.filter(pl.element() != "")
    identity = (
        pl.when(codes.list.len() == 0)
        .then(pl.lit(IDENTITIES["ordinary"]))
        .otherwise(
            codes.list.eval(
                pl.element().replace_strict(
                    IDENTITIES, default=pl.element(), return_dtype=pl.String
                )
            ).list.join("、")
        )
    )
    county = _county_expr(pl.col("admdvs")) + pl.lit("(") + pl.col("admdvs") + pl.lit(")")
    return (
        _ordered(df)
        .sort(["_dept_order", "admdvs", "hh_id", "psn_no", "_type_order", "rule_id"])
        .select(
            "department",
            "admdvs",
            pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over("department", "admdvs").alias("seq"),
            "hh_id",
            "psn_no",
            "psn_name",
            "certno",
            county.alias("county"),
            pl.col("warning_type").replace_strict(WARNING_TYPES).alias("warning_label"),
            identity.alias("identity_label"),
            pl.col("insutype")
            .replace_strict(INSUTYPES, default=pl.col("insutype"), return_dtype=pl.String)
            .alias("insutype_label"),
            _yuan(pl.col("burden_ytd_fen")).alias("burden_yuan"),
            _yuan(pl.col("threshold_fen")).alias("threshold_yuan"),
            _yuan(pl.col("burden_ytd_fen") - pl.col("threshold_fen")).alias("excess_yuan"),
            "first_month",
            pl.col("status").replace_strict(STATUSES).alias("status_label"),
            "rule_id",
            "hh_warned",
            pl.lit(None, dtype=pl.String).alias("verdict"),
            pl.lit(None, dtype=pl.String).alias("verdict_date"),
            pl.lit(None, dtype=pl.String).alias("remark"),
        )
    )


def _partitions(ledger: pl.DataFrame) -> list[tuple[tuple[str, str], pl.DataFrame]]:
    if ledger.is_empty():
        return []
    parts = ledger.partition_by(["department", "admdvs"], as_dict=True, maintain_order=True)
    return [((str(k[0]), str(k[1])), v) for k, v in parts.items()]


def _counts(df: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    return df.group_by(by).agg(
        pl.col("psn_no").n_unique().alias("persons"),
        pl.col("hh_id").n_unique().alias("households"),
    )


def _summary_tables(
    df: pl.DataFrame,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(city rows, city total row, per-department rows, one total row per department)."""
    od = _ordered(df)
    keys = ["admdvs", "_type_order", "_status_order"]
    labels = [
        pl.col("admdvs"),
        _county_expr(pl.col("admdvs")).alias("county_name"),
        pl.col("_type_order").cast(pl.String).replace_strict(WARNING_TYPES).alias("warning_label"),
        pl.col("_status_order").cast(pl.String).replace_strict(STATUSES).alias("status_label"),
        pl.col("persons").cast(pl.Int64),
        pl.col("households").cast(pl.Int64),
    ]
    city = _counts(od, keys).sort(keys).select(labels)
    city_total = od.select(
        pl.lit(TOTAL).alias("admdvs"),
        *(pl.lit(None, dtype=pl.String).alias(c) for c in ("county_name", "warning_label")),
        pl.lit(None, dtype=pl.String).alias("status_label"),
        pl.col("psn_no").n_unique().cast(pl.Int64).alias("persons"),
        pl.col("hh_id").n_unique().cast(pl.Int64).alias("households"),
    )

    dkeys = ["_dept_order", *keys]
    dept_label = pl.col("_dept_order").cast(pl.String).replace_strict(DEPARTMENTS)
    by_dept = _counts(od, dkeys).sort(dkeys).select(dept_label.alias("department_label"), *labels)
    # One total per department, zero when it received nothing this month.
    dept_frame = pl.DataFrame(
        {"_dept_order": list(DEPARTMENTS)}, schema={"_dept_order": pl.Enum(list(DEPARTMENTS))}
    )
    dept_totals = (
        dept_frame.join(_counts(od, ["_dept_order"]), on="_dept_order", how="left")
        .sort("_dept_order")
        .select(
            (dept_label + pl.lit(" " + TOTAL)).alias("department_label"),
            *(
                pl.lit(None, dtype=pl.String).alias(c)
                for c in ("admdvs", "county_name", "warning_label", "status_label")
            ),
            pl.col("persons").fill_null(0).cast(pl.Int64),
            pl.col("households").fill_null(0).cast(pl.Int64),
        )
    )
    return city, city_total, by_dept, dept_totals


# =============================================================================================
# Workbook writing (xlsxwriter)
# =============================================================================================


class _Book:
    """A deterministic in-memory xlsxwriter workbook with the report's formats."""

    def __init__(self, path: Path, month: Month, title: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.wb = xlsxwriter.Workbook(
            str(path),
            {
                "in_memory": True,  # zip entries stamped 1980-01-01, no temp-file mtimes/modes
                "strings_to_formulas": False,  # a name starting with '=' stays text
                "strings_to_urls": False,
                "strings_to_numbers": False,
                "default_format_properties": {"font_name": FONT, "font_size": 11},
            },
        )
        stamp = dt.datetime(month.year, month.month, 1)
        self.wb.set_properties(
            {"title": title, "author": "povwatch", "company": "", "created": stamp}
        )
        base = {"font_name": FONT, "font_size": 11, "valign": "vcenter"}
        cell = {**base, "border": 1}
        add = self.wb.add_format
        self.title = add({**base, "bold": True, "font_size": 14})
        self.note = add({**base, "font_size": 10, "italic": True})
        self.header = add(
            {**cell, "bold": True, "bg_color": "#DDEBF7", "align": "center", "text_wrap": True}
        )
        self.kinds = {
            "text": add({**cell, "num_format": "@"}),
            "int": add({**cell, "num_format": "0", "align": "center"}),
            "money": add({**cell, "num_format": "0.00"}),
            "fill": add({**cell, "num_format": "@", "bg_color": "#FFF2CC"}),
            "date": add({**cell, "num_format": "yyyy-mm-dd", "bg_color": "#FFF2CC"}),
        }
        self.total_kinds = {
            "text": add({**cell, "bold": True, "num_format": "@", "bg_color": "#F2F2F2"}),
            "int": add(
                {**cell, "bold": True, "num_format": "0", "align": "center", "bg_color": "#F2F2F2"}
            ),
        }

    def sheet(self, name: str) -> Worksheet:
        return self.wb.add_worksheet(name)

    def close(self) -> None:
        self.wb.close()


def _display_width(s: pl.Expr) -> pl.Expr:
    """Approximate Excel width: a CJK character (3 UTF-8 bytes) counts as two ASCII ones."""
    chars = s.str.len_chars()
    return chars + (s.str.len_bytes() - chars) / 2


def _widths(df: pl.DataFrame, columns: Sequence[tuple[str, str, str]]) -> list[float]:
    exprs = [
        pl.col(col).cast(pl.String).fill_null("").pipe(_display_width).max().alias(col)
        for _, col, kind in columns
        if kind != "money"
    ]
    measured = df.select(exprs).row(0, named=True) if df.height and exprs else {}
    widths = []
    header = pl.DataFrame({"h": [h for h, _, _ in columns]}).select(_display_width(pl.col("h")))
    for (_, col, kind), head in zip(columns, header["h"], strict=True):
        data = measured.get(col) or 0
        if kind == "money":
            data = 12  # up to 9,999,999.99
        floor = _KIND_MIN_WIDTH.get(kind, _MIN_WIDTH)
        # Headers wrap (two lines fit the header row), so a long one needs only about half.
        head_width = float(head) + 2 if head <= 12 else float(head) / 2 + 3
        widths.append(min(_MAX_WIDTH, max(floor, head_width, float(data) + 2)))
    return widths


def _write_table(
    book: _Book,
    ws: Worksheet,
    title: str,
    columns: Sequence[tuple[str, str, str]],
    data: pl.DataFrame,
    totals: pl.DataFrame | None = None,
    freeze_cols: int = 0,
) -> int:
    """Title in row 0, header in row 1, data from row 2, then optional total rows.

    Returns the row index after the last written row.
    """
    ncols = len(columns)
    ws.merge_range(0, 0, 0, ncols - 1, title, book.title)
    ws.set_row(0, 28)
    ws.set_row(1, 32)
    for c, (head, _, _) in enumerate(columns):
        ws.write_string(1, c, head, book.header)
    for c, width in enumerate(_widths(data, columns)):
        ws.set_column(c, c, width)
    first = 2
    for c, (_, col, kind) in enumerate(columns):
        if data.height:
            ws.write_column(first, c, data[col].to_list(), book.kinds[kind])
    last = first + data.height - 1  # last data row (== 1 when there is none)
    ws.autofilter(1, 0, max(last, 1), ncols - 1)
    ws.freeze_panes(2, freeze_cols)
    row = first + data.height
    if totals is not None and totals.height:
        for c, (_, col, kind) in enumerate(columns):
            fmt = book.total_kinds["int" if kind == "int" else "text"]
            ws.write_column(row, c, totals[col].to_list(), fmt)
        row += totals.height
    # Printing: A4 landscape, one page wide, title + header repeated on every page.
    ws.set_landscape()
    ws.set_paper(9)
    ws.fit_to_pages(1, 0)
    ws.repeat_rows(0, 1)
    ws.center_horizontally()
    ws.set_margins(left=0.4, right=0.4, top=0.6, bottom=0.6)
    ws.set_footer("&C第 &P 页，共 &N 页")
    return row


def _title_month(m: Month) -> str:
    return f"{m.year:04d}年{m.month:02d}月"


def _write_ledger(path: Path, part: pl.DataFrame, m: Month, dept: str, admdvs: str) -> None:
    county = f"{_county_name(admdvs)}({admdvs})"
    title = f"{_title_month(m)} {TITLE_KIND} — {DEPARTMENTS[dept]} — {county}"
    book = _Book(path, m, title)
    ws = book.sheet(LEDGER_SHEET)
    _write_table(book, ws, title, _LEDGER_COLUMNS, part, freeze_cols=4)
    first, last = 2, 1 + part.height
    verdict_col = LEDGER_HEADERS.index("核实结论")
    source = VERDICT_CHOICES
    choices = pl.DataFrame({"c": source}).select(_display_width(pl.col("c")).max()).item()
    ws.set_column(verdict_col, verdict_col, min(_MAX_WIDTH, float(choices) + 3))
    if len(",".join(source)) > 255:  # Excel's limit for an inline list
        raise PovwatchError("report: verdict dropdown list is longer than Excel allows (255)")
    ws.data_validation(
        first,
        verdict_col,
        last,
        verdict_col,
        {
            "validate": "list",
            "source": source,
            "input_title": "核实结论",
            "input_message": "请从下拉列表中选择",
            "error_title": "核实结论",
            "error_message": "请从下拉列表中选择核实结论",
        },
    )
    date_col = LEDGER_HEADERS.index("核实日期")
    ws.data_validation(
        first,
        date_col,
        last,
        date_col,
        {
            "validate": "date",
            "criteria": "between",
            "minimum": dt.date(2000, 1, 1),
            "maximum": dt.date(2099, 12, 31),
            "input_title": "核实日期",
            "input_message": "日期，如 2024-03-15",
            "error_title": "核实日期",
            "error_message": "请填写有效日期，如 2024-03-15",
        },
    )
    book.close()


def _write_summary(path: Path, df: pl.DataFrame, m: Month) -> int:
    """Write the city summary; returns its number of data rows (total row excluded)."""
    city, city_total, by_dept, dept_totals = _summary_tables(df)
    title = f"{_title_month(m)} {SUMMARY_KIND}"
    book = _Book(path, m, title)
    ws = book.sheet(SUMMARY_SHEET)
    end = _write_table(book, ws, title, _SUMMARY_COLUMNS, city, totals=city_total)
    ws.write_string(end + 1, 0, SUMMARY_NOTE, book.note)

    ws2 = book.sheet(BY_DEPT_SHEET)
    end = _write_table(book, ws2, f"{title}（分部门）", _BY_DEPT_COLUMNS, by_dept, dept_totals)
    ws2.write_string(end + 1, 0, SUMMARY_NOTE.split("；")[0] + "。", book.note)
    book.close()
    return city.height


# =============================================================================================
# Manifest and publishing
# =============================================================================================


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _manifest(root: Path, month: str, written: list[_Written]) -> str:
    files = [
        {
            "path": w.rel,
            "sha256": _sha256(root / w.rel),
            "bytes": (root / w.rel).stat().st_size,
            "rows": w.rows,
        }
        for w in sorted(written, key=lambda w: w.rel)
    ]
    doc = {"month": month, "files": files}
    return json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def _owned(month_dir: Path, month: str) -> list[Path]:
    """Files in a month folder that this module wrote (and may therefore replace)."""
    found = [month_dir / f"summary_{month}.xlsx", month_dir / "manifest.json"]
    for dept in DEPARTMENTS:
        found += (month_dir / dept).glob(f"*/{FILE_PREFIX}_*_{month}.xlsx")
    return [p for p in found if p.is_file()]


def _publish(
    staging: Path, month_dir: Path, month: str, rels: list[str], manifest: str
) -> list[Path]:
    """Drop stale owned files (every file in ``rels`` is already in place), write the manifest last."""
    new = {month_dir / rel for rel in rels}
    stale = [p for p in _owned(month_dir, month) if p not in new and p.name != "manifest.json"]
    for p in stale:
        p.unlink()
        for parent in (p.parent, p.parent.parent):  # county dir, then department dir
            if parent != month_dir and parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
    manifest_path = month_dir / "manifest.json"
    tmp = staging / "manifest.json"
    tmp.write_text(manifest, encoding="utf-8")
    os.replace(tmp, manifest_path)
    return [*new, manifest_path]
