"""The 台账 (XLSX) per department × county, and the city summary workbook.

A 台账 has four sheets: 户 (households: members warned, household burden, identities, the
largest costs), 人员 (one row per warning: 预警编号, burden, threshold, 超出金额, ratio, 也推送至,
上次决定/等待天数, and the decision columns to fill in), 费用明细 (the settlements behind each
warning, from ``warnings.explain``) and 说明 (the rule in words with its clause, the income
figure and its publication date, what each column means).

Only the decision cells are unlocked (drop-down of the contract's decisions plus 待核实 and
无法联系); every sheet is protected. Printing: A4 landscape, at most two pages wide, title
and header repeated on every page. Text is always written as a string and text starting with
``= + - @``, a tab or CR carries Excel's quote prefix, so no spreadsheet evaluates it.

Every file is byte-for-byte reproducible from the same input: workbooks are built in memory
(xlsxwriter stamps every zip entry 1980-01-01) and their document dates are the first day of
the month, never the wall clock.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from pathlib import Path

import polars as pl
import xlsxwriter
from xlsxwriter.worksheet import Worksheet

from pipeline.errors import PovwatchError
from pipeline.labels import (
    ASSISTANCE_COLUMNS,
    COUNTIES,
    DECISIONS,
    DEPARTMENTS,
    IDENTITIES,
    INCOME_SCOPES,
    INSUTYPES,
    MED_CLASSES,
    REGIONS,
    STATUSES,
    WARNING_TYPES,
)
from pipeline.money import fen_text
from pipeline.months import Month

__all__ = [
    "REQUIRED_COLUMNS",
    "LEDGER_HEADERS",
    "VERDICT_CHOICES",
    "checked",
    "ledger_rows",
    "write_ledger",
    "write_summary",
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
HOUSEHOLD_SHEET = "户"
PERSON_SHEET = "人员"
COST_SHEET = "费用明细"
NOTES_SHEET = "说明"
UNDERPAID_SHEET = "医疗救助少付"
UNDERPAID_PER_COUNTY = 20  # the audit's largest under-payments listed per county
UNDERPAID_TITLE = "医疗救助少付核查：应救助高于已支付，本县差额最大的{n}人"
SUMMARY_SHEET = "全市汇总"
BY_DEPT_SHEET = "分部门汇总"
FILE_PREFIX = "预警台账"
TOTAL = "合计"
# What a department may answer: the contract's decisions (identities, not eligible, already
# assisted, unreachable) by their Chinese labels, and 待核实 while it checks.
VERDICT_CHOICES = list(DECISIONS.values())
SUMMARY_NOTE = "注：人数、户数均为去重计数；同一人推送至两个部门时，在全市汇总中只计一次。"
_DANGEROUS = ("=", "+", "-", "@", "\t", "\r")

# (header, ledger column, kind) in sheet order; kind drives format and width.
_LEDGER_COLUMNS: list[tuple[str, str, str]] = [
    ("序号", "seq", "int"),
    ("预警编号", "warning_id", "text"),
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
    ("负担/标准", "ratio", "ratio"),
    ("首次预警月份", "first_month", "text"),
    ("预警状态", "status_label", "text"),
    ("规则编号", "rule_id", "text"),
    ("同户预警人数", "hh_warned", "int"),
    ("也推送至", "also_to", "text"),
    ("上次决定", "prev_decision", "text"),
    ("等待天数", "wait_days", "int"),
    ("核实结论", "verdict", "fill"),
    ("核实日期", "verdict_date", "date"),
    ("备注", "remark", "fill"),
]
LEDGER_HEADERS = [h for h, _, _ in _LEDGER_COLUMNS]

_HOUSEHOLD_COLUMNS: list[tuple[str, str, str]] = [
    ("序号", "seq", "int"),
    ("户号", "hh_id", "text"),
    ("预警人员", "members_warned", "text"),
    ("预警人数", "n_warned", "int"),
    ("户内人数", "hh_size", "int"),
    ("户年度累计个人负担(元)", "hh_burden_yuan", "money"),
    ("最高超出金额(元)", "max_excess_yuan", "money"),
    ("现有身份", "identity_label", "text"),
    ("最大几笔费用", "largest_costs", "note"),
    ("预警原因", "why_text", "note"),
    ("首次预警月份", "first_month", "text"),
    ("本月新增", "new_label", "text"),
]

_COST_COLUMNS: list[tuple[str, str, str]] = [
    ("预警编号", "warning_id", "text"),
    ("户号", "hh_id", "text"),
    ("个人编号", "psn_no", "text"),
    ("姓名", "psn_name", "text"),
    ("结算编号", "setl_id", "text"),
    ("结算时间", "setl_time", "text"),
    ("数据月份", "export_month", "text"),
    ("就诊类型", "med_label", "text"),
    ("医疗机构", "fixmedins_name", "text"),
    ("诊断", "dise_name", "text"),
    ("计入金额(元)", "amount_yuan", "money"),
    ("冲销说明", "reversal_note", "text"),
]

_RULE_COLUMNS: list[tuple[str, str, str]] = [
    ("规则编号", "rule_id", "text"),
    ("预警类型", "warning_label", "text"),
    ("政策文件", "document", "text"),
    ("条款", "clause", "text"),
    ("原文", "quote", "text"),
    ("收入基数", "income_text", "text"),
    ("公布日期", "published_on", "text"),
    ("系数", "factor", "text"),
    ("预警标准(元)", "threshold_yuan", "money"),
]

COLUMN_NOTES = {
    "预警编号": "年度-类型-个人编号（R 因病返贫，I 因病致贫），同一人同一类型全年不变；反馈决定时引用",
    "年度累计个人负担(元)": "本年度截至本月数据的个人负担：个人自付 + 医疗救助支付（基本医保、大病保险之后），冲销按原结算年度计",
    "预警标准(元)": "收入基数 × 系数，四舍五入到分；负担须严格超过标准才预警",
    "超出金额(元)": "年度累计个人负担 − 预警标准",
    "负担/标准": "年度累计个人负担 ÷ 预警标准",
    "预警状态": "新增：本年度首次出现该类预警；持续：本年度此前月份已预警",
    "也推送至": "同一预警同时推送的另一部门（请协同核实，避免重复救助）",
    "上次决定": "此前反馈的决定（有反馈数据时填写）",
    "等待天数": "自首次预警月末起尚无反馈决定的天数（有反馈数据时填写）",
    "核实结论": "请从下拉列表选择：认定身份、不符合条件、已纳入救助、无法联系、待核实",
    "核实日期": "核实结论的日期，如 2024-03-15",
    "费用明细": "每条预警计入年度累计负担的结算；负数为冲销（退费），冲销说明写明对应关系",
}

# the assistance audit's own column names (labels.ASSISTANCE_COLUMNS) are the frame's columns
_UNDERPAID_COLUMNS: list[tuple[str, str, str]] = [
    ("序号", "seq", "int"),
    *(
        (ASSISTANCE_COLUMNS[k], ASSISTANCE_COLUMNS[k], "text")
        for k in ("psn_no", "category_label", "policy_id")
    ),
    ("姓名", "姓名", "text"),
    ("身份证号", "身份证号", "text"),
    *(
        (ASSISTANCE_COLUMNS[k], ASSISTANCE_COLUMNS[k], "text")
        for k in ("eligible_cost", "entitled", "paid", "difference", "status")
    ),
]

FONT = "等线"
_ADMDVS = re.compile(r"^\d{6}$")
_MIN_WIDTH, _MAX_WIDTH = 6.0, 40.0
_KIND_MIN_WIDTH = {"money": 12.0, "date": 12.0, "fill": 16.0, "ratio": 8.0}
_NOTE_WIDTH = 60.0  # wrapped long text (why, largest costs)


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


# =============================================================================================
# Input checks and sheet data (polars only)
# =============================================================================================


def checked(routed: pl.DataFrame, month: str) -> pl.DataFrame:
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
            # the value itself is not shown: it may be a person's number
            raise PovwatchError(f"report: routed warnings row {row}: column {col}: {why}")
    return df


def ledger_rel(dept: str, admdvs: str, month: str, prefix: str = FILE_PREFIX, ext="xlsx") -> str:
    """A package file's path, built from validated codes only (department, 6-digit county)."""
    if (
        dept not in DEPARTMENTS
        or not _ADMDVS.match(admdvs)
        or not re.match(r"^\d{4}-\d{2}$", month)
    ):
        raise PovwatchError("report: a file name needs a known department and a 6-digit county")
    name = f"{prefix}_{DEPARTMENTS[dept]}_{county_name(admdvs)}_{month}.{ext}"
    return f"{dept}/{admdvs}/{name}"


def county_name(admdvs: str) -> str:
    return COUNTIES.get(admdvs, admdvs)


def county_expr(code: pl.Expr) -> pl.Expr:
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


def identity_label(codes: pl.Expr) -> pl.Expr:
    """Comma-separated identity codes → Chinese labels (none: 普通参保人员)."""
    codes = codes.str.split(",").list.eval(pl.element().str.strip_chars())
    codes = codes.list.filter(pl.element() != "")
    return (
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


def ledger_rows(df: pl.DataFrame) -> pl.DataFrame:
    """Every 台账 row with display values, sorted hh_id, psn_no within department × county.

    ``df`` carries the report frame's columns and ``frame.EXPLAINED_COLUMNS``.
    """
    county = county_expr(pl.col("admdvs")) + pl.lit("(") + pl.col("admdvs") + pl.lit(")")
    return (
        _ordered(df)
        .sort(["_dept_order", "admdvs", "hh_id", "psn_no", "_type_order", "rule_id"])
        .select(
            "department",
            "admdvs",
            pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over("department", "admdvs").alias("seq"),
            "warning_id",
            "hh_id",
            "psn_no",
            "psn_name",
            "certno",
            county.alias("county"),
            "warning_type",
            "status",
            "identities",
            pl.col("warning_type").replace_strict(WARNING_TYPES).alias("warning_label"),
            identity_label(pl.col("identities")).alias("identity_label"),
            pl.col("insutype")
            .replace_strict(INSUTYPES, default=pl.col("insutype"), return_dtype=pl.String)
            .alias("insutype_label"),
            "burden_ytd_fen",
            "threshold_fen",
            (pl.col("burden_ytd_fen") - pl.col("threshold_fen")).alias("excess_fen"),
            _yuan(pl.col("burden_ytd_fen")).alias("burden_yuan"),
            _yuan(pl.col("threshold_fen")).alias("threshold_yuan"),
            _yuan(pl.col("burden_ytd_fen") - pl.col("threshold_fen")).alias("excess_yuan"),
            (pl.col("burden_ytd_fen") / pl.col("threshold_fen")).round(2).alias("ratio"),
            "first_month",
            pl.col("status").replace_strict(STATUSES).alias("status_label"),
            "rule_id",
            "hh_warned",
            "hh_size",
            "also_to",
            "prev_decision",
            "wait_days",
            "why",
            "burden_measure",
            pl.lit(None, dtype=pl.String).alias("verdict"),
            pl.lit(None, dtype=pl.String).alias("verdict_date"),
            pl.lit(None, dtype=pl.String).alias("remark"),
        )
    )


def cost_rows(part: pl.DataFrame, settlements: pl.DataFrame | None) -> pl.DataFrame:
    """The settlements behind each warning of a package, amount as the rule counts it."""
    from pipeline.warnings.explain import counted_amount

    if settlements is None or settlements.is_empty() or part.is_empty():
        return pl.DataFrame(
            schema={c: pl.Float64 if k == "money" else pl.String for _, c, k in _COST_COLUMNS}
            | {"amount_fen": pl.Int64}
        )
    keys = part.select(
        "warning_id",
        "hh_id",
        "psn_no",
        "psn_name",
        pl.col("burden_measure").fill_null("after_insurance"),
    ).unique("warning_id", maintain_order=True)
    reversal = (
        pl.when(pl.col("reversal_of").is_not_null())
        .then(pl.lit("冲销 ") + pl.col("reversal_of"))
        .when(pl.col("reversed_by").is_not_null())
        .then(pl.lit("已被 ") + pl.col("reversed_by") + pl.lit(" 冲销"))
    )
    med = pl.col("med_class").replace_strict(MED_CLASSES, default=pl.col("med_class"))
    return (
        keys.join(settlements, on="psn_no", how="inner")
        .with_columns(counted_amount())
        .sort("hh_id", "psn_no", "warning_id", "setl_time", "setl_id")
        .select(
            "warning_id",
            "hh_id",
            "psn_no",
            "psn_name",
            "setl_id",
            pl.col("setl_time").dt.strftime("%Y-%m-%d %H:%M"),
            "export_month",
            (med + pl.lit("(") + pl.col("med_type") + pl.lit(")")).alias("med_label"),
            "fixmedins_name",
            "dise_name",
            "amount_fen",
            _yuan(pl.col("amount_fen")).alias("amount_yuan"),
            reversal.alias("reversal_note"),
        )
    )


def household_rows(
    part: pl.DataFrame, settlements: pl.DataFrame | None, members: pl.DataFrame | None
) -> pl.DataFrame:
    """One row per household of a package: members warned, household burden, largest costs."""
    person = pl.coalesce(pl.col("psn_name"), pl.col("psn_no"))
    per_hh = (
        part.sort("excess_fen", descending=True)
        .group_by("hh_id", maintain_order=True)
        .agg(
            pl.format(
                "{}（{}，超出 {} 元）",
                person,
                pl.col("warning_label"),
                fen_text(pl.col("excess_fen")),
            )
            .unique(maintain_order=True)
            .str.join("；")
            .alias("members_warned"),
            pl.col("psn_no").n_unique().cast(pl.Int64).alias("n_warned"),
            pl.col("hh_size").max().cast(pl.Int64).alias("hh_size"),
            pl.col("excess_fen").max().alias("max_excess_fen"),
            pl.col("identity_label")
            .str.split("、")
            .list.explode(keep_nulls=False, empty_as_null=False)
            .unique(maintain_order=True)
            .str.join("、")
            .alias("identity_label"),
            pl.col("first_month").min().alias("first_month"),
            (pl.col("status") == "new").any().alias("any_new"),
            pl.format("{}：{}", person, pl.col("why").fill_null(""))
            .str.join("\n")
            .alias("why_text"),
            pl.col("burden_ytd_fen").sum().alias("_warned_burden"),
        )
    )
    if members is not None and members.height:
        hh_burden = members.group_by("hh_id").agg(pl.col("burden_fen").sum().alias("hh_burden_fen"))
        per_hh = per_hh.join(hh_burden, on="hh_id", how="left")
    else:
        per_hh = per_hh.with_columns(pl.lit(None, dtype=pl.Int64).alias("hh_burden_fen"))
    if settlements is not None and settlements.height:
        top = (
            settlements.filter(pl.col("hh_id").is_in(per_hh["hh_id"].implode()))
            .sort("amount__after_insurance", "setl_id", descending=[True, False])
            .group_by("hh_id", maintain_order=True)
            .head(3)
            .group_by("hh_id", maintain_order=True)
            .agg(
                pl.format(
                    "{} {} {} 元",
                    pl.col("setl_time").dt.strftime("%Y-%m-%d"),
                    pl.col("fixmedins_name").fill_null("医疗机构不详"),
                    fen_text(pl.col("amount__after_insurance")),
                )
                .str.join("；")
                .alias("largest_costs")
            )
        )
        per_hh = per_hh.join(top, on="hh_id", how="left")
    else:
        per_hh = per_hh.with_columns(pl.lit(None, dtype=pl.String).alias("largest_costs"))
    return per_hh.sort("max_excess_fen", "hh_id", descending=[True, False]).with_columns(
        pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("seq"),
        _yuan(pl.coalesce("hh_burden_fen", "_warned_burden")).alias("hh_burden_yuan"),
        _yuan(pl.col("max_excess_fen")).alias("max_excess_yuan"),
        pl.when(pl.col("any_new")).then(pl.lit("是")).otherwise(pl.lit("否")).alias("new_label"),
    )


def rule_rows(rules: pl.DataFrame | None, part: pl.DataFrame) -> pl.DataFrame:
    """The rules behind a package's warnings, in words (说明)."""
    if rules is None or rules.is_empty():
        return pl.DataFrame(schema={c: pl.String for _, c, _ in _RULE_COLUMNS})
    used = part.select("rule_id").unique()
    income = pl.concat_str(
        pl.col("income_admdvs").replace_strict(
            REGIONS, default=pl.col("income_admdvs"), return_dtype=pl.String
        ),
        pl.col("income_year").cast(pl.String),
        pl.lit("年"),
        pl.col("income_scope").replace_strict(INCOME_SCOPES, return_dtype=pl.String),
        pl.lit("人均可支配收入 "),
        fen_text(pl.col("income_amount_fen")),
        pl.lit(" 元"),
    )
    return (
        rules.join(used, on="rule_id", how="semi")
        .sort("rule_id", "threshold_fen")
        .select(
            "rule_id",
            pl.col("warning_type").replace_strict(WARNING_TYPES).alias("warning_label"),
            "document",
            "clause",
            "quote",
            income.alias("income_text"),
            pl.col("income_published_on").cast(pl.String).alias("published_on"),
            "factor",
            _yuan(pl.col("threshold_fen")).alias("threshold_yuan"),
        )
    )


def partitions(ledger: pl.DataFrame) -> list[tuple[tuple[str, str], pl.DataFrame]]:
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
        county_expr(pl.col("admdvs")).alias("county_name"),
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
        self.wrap = add({**base, "text_wrap": True, "valign": "top"})
        self.bold = add({**base, "bold": True})
        self.header = add(
            {**cell, "bold": True, "bg_color": "#DDEBF7", "align": "center", "text_wrap": True}
        )
        fill = {"bg_color": "#FFF2CC", "locked": False}
        self.kinds = {
            "text": add({**cell, "num_format": "@"}),
            "int": add({**cell, "num_format": "0", "align": "center"}),
            "money": add({**cell, "num_format": "0.00"}),
            "ratio": add({**cell, "num_format": "0.00"}),
            "fill": add({**cell, "num_format": "@", **fill}),
            "note": add({**cell, "num_format": "@", "text_wrap": True, "valign": "top"}),
            "date": add({**cell, "num_format": "yyyy-mm-dd", **fill}),
        }
        # the same, with Excel's quote prefix: text that looks like a formula stays text
        self.quoted = {
            "text": add({**cell, "num_format": "@", "quote_prefix": True}),
            "note": add({**cell, "num_format": "@", "quote_prefix": True, "text_wrap": True}),
            "fill": add({**cell, "num_format": "@", "quote_prefix": True, **fill}),
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


def write_text(ws: Worksheet, row: int, col: int, value: str | None, book: _Book, kind="text"):
    """A string cell no spreadsheet evaluates (quote prefix for = + - @ tab CR)."""
    if value is None:
        ws.write_blank(row, col, None, book.kinds[kind])
    elif value.startswith(_DANGEROUS):
        ws.write_string(row, col, value, book.quoted.get(kind, book.quoted["text"]))
    else:
        ws.write_string(row, col, value, book.kinds[kind])


def _display_width(s: pl.Expr) -> pl.Expr:
    """Approximate Excel width: a CJK character (3 UTF-8 bytes) counts as two ASCII ones."""
    chars = s.str.len_chars()
    return chars + (s.str.len_bytes() - chars) / 2


def _widths(df: pl.DataFrame, columns: Sequence[tuple[str, str, str]]) -> list[float]:
    exprs = [
        pl.col(col).cast(pl.String).fill_null("").pipe(_display_width).max().alias(col)
        for _, col, kind in columns
        if kind not in ("money", "ratio")
    ]
    measured = df.select(exprs).row(0, named=True) if df.height and exprs else {}
    widths = []
    header = pl.DataFrame({"h": [h for h, _, _ in columns]}).select(_display_width(pl.col("h")))
    for (_, col, kind), head in zip(columns, header["h"], strict=True):
        data = measured.get(col) or 0
        if kind == "money":
            data = 12  # up to 9,999,999.99
        elif kind == "ratio":
            data = 5
        floor = _KIND_MIN_WIDTH.get(kind, _MIN_WIDTH)
        # Headers wrap (two lines fit the header row), so a long one needs only about half.
        head_width = float(head) + 2 if head <= 12 else float(head) / 2 + 3
        if kind == "note":
            widths.append(_NOTE_WIDTH)
            continue
        widths.append(min(_MAX_WIDTH, max(floor, head_width, float(data) + 2)))
    return widths


def _protect(ws: Worksheet) -> None:
    """Locked cells stay as written; the decision cells (unlocked formats) take input."""
    ws.protect(
        "",
        {
            "autofilter": True,
            "sort": True,
            "format_columns": True,
            "format_rows": True,
            "select_locked_cells": True,
            "select_unlocked_cells": True,
        },
    )


def _write_table(
    book: _Book,
    ws: Worksheet,
    title: str,
    columns: Sequence[tuple[str, str, str]],
    data: pl.DataFrame,
    totals: pl.DataFrame | None = None,
    freeze_cols: int = 0,
    pages_wide: int = 1,
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
        if not data.height:
            continue
        values = data[col].to_list()
        if kind in ("text", "fill", "note"):
            for r, v in enumerate(values):
                write_text(ws, first + r, c, None if v is None else str(v), book, kind)
        else:
            ws.write_column(first, c, values, book.kinds[kind])
    last = first + data.height - 1  # last data row (== 1 when there is none)
    ws.autofilter(1, 0, max(last, 1), ncols - 1)
    ws.freeze_panes(2, freeze_cols)
    row = first + data.height
    if totals is not None and totals.height:
        for c, (_, col, kind) in enumerate(columns):
            fmt = book.total_kinds["int" if kind == "int" else "text"]
            ws.write_column(row, c, totals[col].to_list(), fmt)
        row += totals.height
    # Printing: A4 landscape, at most `pages_wide` pages wide, title + header on every page.
    ws.set_landscape()
    ws.set_paper(9)
    ws.fit_to_pages(pages_wide, 0)
    ws.repeat_rows(0, 1)
    ws.center_horizontally()
    ws.set_margins(left=0.4, right=0.4, top=0.6, bottom=0.6)
    ws.set_footer("&C第 &P 页，共 &N 页")
    return row


def title_month(m: Month) -> str:
    return f"{m.year:04d}年{m.month:02d}月"


def write_ledger(
    path: Path,
    part: pl.DataFrame,
    households: pl.DataFrame,
    costs: pl.DataFrame,
    rules: pl.DataFrame,
    m: Month,
    dept: str,
    admdvs: str,
    underpaid: pl.DataFrame | None = None,
) -> None:
    """One 台账: 户, 人员 (with the decision columns), 费用明细, 医疗救助少付 (``underpaid``:
    the civil-affairs 台账 only, this county's rows), 说明."""
    county = f"{county_name(admdvs)}({admdvs})"
    title = f"{title_month(m)} {TITLE_KIND} — {DEPARTMENTS[dept]} — {county}"
    book = _Book(path, m, title)

    ws_h = book.sheet(HOUSEHOLD_SHEET)
    _write_table(
        book, ws_h, f"{title}（按户）", _HOUSEHOLD_COLUMNS, households, freeze_cols=2, pages_wide=2
    )
    _protect(ws_h)

    ws = book.sheet(PERSON_SHEET)
    _write_table(book, ws, title, _LEDGER_COLUMNS, part, freeze_cols=5, pages_wide=2)
    first, last = 2, 1 + max(part.height, 1)
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
    _protect(ws)
    ws.activate()

    ws_c = book.sheet(COST_SHEET)
    _write_table(book, ws_c, f"{title}（费用明细）", _COST_COLUMNS, costs, freeze_cols=3)
    _protect(ws_c)

    if underpaid is not None:
        ws_u = book.sheet(UNDERPAID_SHEET)
        rows = underpaid.with_columns(pl.int_range(1, pl.len() + 1).alias("seq"))
        title_u = f"{title}（{UNDERPAID_TITLE.format(n=UNDERPAID_PER_COUNTY)}）"
        end = _write_table(book, ws_u, title_u, _UNDERPAID_COLUMNS, rows, freeze_cols=2)
        if not rows.height:
            ws_u.write_string(end, 0, "本月本县无少付。", book.note)
        _protect(ws_u)

    ws_n = book.sheet(NOTES_SHEET)
    end = _write_table(book, ws_n, f"{title}（说明）", _RULE_COLUMNS, rules)
    ws_n.set_column(4, 4, 60)
    row = end + 1
    ws_n.write_string(row, 0, "各列含义", book.bold)
    for i, (head, text) in enumerate(COLUMN_NOTES.items(), start=row + 1):
        ws_n.write_string(i, 0, head, book.kinds["text"])
        ws_n.merge_range(i, 1, i, 6, text, book.wrap)
    _protect(ws_n)
    book.close()


def write_summary(path: Path, df: pl.DataFrame, m: Month) -> int:
    """Write the city summary workbook; returns its number of data rows (total excluded)."""
    city, city_total, by_dept, dept_totals = _summary_tables(df)
    title = f"{title_month(m)} {SUMMARY_KIND}"
    book = _Book(path, m, title)
    ws = book.sheet(SUMMARY_SHEET)
    end = _write_table(book, ws, title, _SUMMARY_COLUMNS, city, totals=city_total)
    ws.write_string(end + 1, 0, SUMMARY_NOTE, book.note)

    ws2 = book.sheet(BY_DEPT_SHEET)
    end = _write_table(book, ws2, f"{title}（分部门）", _BY_DEPT_COLUMNS, by_dept, dept_totals)
    ws2.write_string(end + 1, 0, SUMMARY_NOTE.split("；")[0] + "。", book.note)
    book.close()
    return city.height
