"""Every label a person reads, in one place (Chinese for departments, English for logs)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import cache, cached_property
from pathlib import Path

import polars as pl

from pipeline.errors import PovwatchError

WARNING_TYPES = {"relapse": "因病返贫预警", "impoverish": "因病致贫预警"}
STATUSES = {"new": "新增", "continuing": "持续"}
DEPARTMENTS = {"civil_affairs": "民政部门", "rural_revitalization": "乡村振兴部门"}
IDENTITIES = {
    "tekun": "特困人员",
    "orphan": "孤儿/事实无人抚养儿童",
    "dibao": "低保对象",
    "fanpin": "返贫致贫人口",
    "dibao_edge": "低保边缘家庭成员",
    "monitor_unstable": "脱贫不稳定户",
    "monitor_edge": "边缘易致贫户",
    "monitor_sudden": "突发严重困难户",
    "tuopin": "脱贫人口",
    "illness_poor": "因病致贫重病患者",
    "expense_poor": "支出型困难家庭中的重病患者",
    "ordinary": "普通参保人员",
}
INSUTYPES = {"310": "职工基本医疗保险", "390": "城乡居民基本医疗保险"}

# Names of China's administrative divisions (province, prefecture, county level) from the
# Ministry of Civil Affairs' official code list, shipped as data: policies/codes/admdvs.csv
# (source and date in its header). A code missing from it (e.g. one abolished before that
# date) is shown as the code itself.
ADMDVS_AS_OF = "2024-12-31"
_ADMDVS_SCHEMA = {
    "code": pl.String,
    "name": pl.String,
    "level": pl.String,
    "prefecture": pl.String,
    "province": pl.String,
}


def _admdvs_file() -> Path:
    here = Path(__file__).resolve().parent
    for folder in (here.parent / "policies", here / "_policies"):  # checkout, then wheel
        path = folder / "codes" / "admdvs.csv"
        if path.is_file():
            return path
    raise PovwatchError("policies/codes/admdvs.csv (the administrative division codes) not found")


@cache
def admdvs_table() -> pl.DataFrame:
    """One row per division code: ``code, name, level, prefecture, province``."""
    return pl.read_csv(_admdvs_file(), comment_prefix="#", schema=_ADMDVS_SCHEMA)


def with_admdvs_name(
    frame: pl.DataFrame, code: str = "admdvs", name: str = "county"
) -> pl.DataFrame:
    """``frame`` with a ``name`` column: the division name of ``code`` (a join; the code itself
    when the list does not know it). Row order is kept."""
    names = admdvs_table().select(pl.col("code").alias(code), pl.col("name").alias(name))
    return frame.join(names, on=code, how="left", maintain_order="left").with_columns(
        pl.col(name).fill_null(pl.col(code))
    )


def division_name(prefix: str) -> str:
    """The name of a 2-, 4- or 6-digit admdvs prefix (province, prefecture, county)."""
    code = prefix.ljust(6, "0")
    hit = admdvs_table().filter(pl.col("code") == code)
    return hit["name"][0] if hit.height else prefix


class _CountyNames(Mapping[str, str]):
    """``COUNTIES[code]``: a division's name by its 6-digit code, read from the table on
    first use (for single lookups; frames use ``with_admdvs_name``)."""

    @cached_property
    def _names(self) -> dict[str, str]:
        table = admdvs_table()
        return dict(zip(table["code"].to_list(), table["name"].to_list(), strict=True))

    def __getitem__(self, code: str) -> str:
        return self._names[code]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


COUNTIES: Mapping[str, str] = _CountyNames()
# Decisions a department returns (contract: feedback): an identity code (its label above), or
# one of these. The 台账's verdict column offers the same labels.
FEEDBACK_DECISIONS = {
    "not_eligible": "不符合条件",
    "already_assisted": "已纳入救助",
    "unreachable": "无法联系",
}
# A 台账 row marked as still being checked: no decision yet (neither accepted nor rejected).
DECISION_PENDING_LABEL = "待核实"
# Other spellings officers write for the same decisions (label → code).
DECISION_ALIASES = {
    "孤儿": "orphan",
    "事实无人抚养儿童": "orphan",
    "不符合": "not_eligible",
    "不予认定": "not_eligible",
    "已救助": "already_assisted",
    "联系不上": "unreachable",
    "无法联系上": "unreachable",
}
# Column labels of a returned 台账 (or a department's own sheet) → feedback columns.
FEEDBACK_COLUMNS = {
    "预警编号": "warning_id",
    "个人编号": "psn_no",
    "身份证号": "certno",
    "公民身份号码": "certno",
    "预警类型": "warning_type",
    "核实结论": "decision",
    "认定结论": "decision",
    "处理结论": "decision",
    "核实结果": "decision",
    "认定结果": "decision",
    "决定": "decision",
    "决定日期": "decided_on",
    "核实日期": "decided_on",
    "认定日期": "decided_on",
    "处理日期": "decided_on",
    "备注": "note",
}
# Short forms of the warning types a department may write.
WARNING_TYPE_ALIASES = {
    "返贫预警": "relapse",
    "致贫预警": "impoverish",
    "返贫": "relapse",
    "因病返贫": "relapse",
    "致贫": "impoverish",
    "因病致贫": "impoverish",
}
# Follow-up of decisions, for the reports (warnings.cases.followup_summary's columns).
FOLLOWUP = {
    "warnings": "本月预警",
    "decided": "已反馈",
    "pending": "待反馈",
    "overdue": "逾期未反馈",
    "not_reflected": "已认定但身份数据未更新",
    "previous_decision": "上次决定",
    "days_waiting": "等待天数",
}
# Delivery e-mails (counts and file names only: never a resident's id or name).
DELIVERY_SUBJECT = "【{kind}】{month_label} {department} {county}"
DELIVERY_BODY = (
    "{department}：\n\n"
    "附件为{month_label}{county}的{kind}（{files} 个文件，共 {rows} 条预警记录）。\n"
    "请核实后在“核实结论”“核实日期”栏填写结论，将台账原样返回。\n\n"
    "文件校验码（SHA-256）：{sha256}\n\n"
    "本邮件由 povwatch 自动发送。"
)
DELIVERY_KIND = "因病返贫/因病致贫预警台账"
# Income statistics regions a threshold refers to (province level: admdvs ending 0000).
REGIONS = {
    "370000": "山东省",
    "370800": "济宁市",
    "130000": "河北省",
    "220000": "吉林省",
    "440000": "广东省",
    "610000": "陕西省",
    "610800": "榆林市",
}
INCOME_SCOPES = {"all": "全体居民", "urban": "城镇居民", "rural": "农村居民"}
MED_CLASSES = {
    "inpatient": "住院",
    "outpatient_chronic": "门诊慢特病",
    "outpatient": "普通门诊",
    "pharmacy": "药店购药",
    "other": "其他",
}
# What a department answers in the 台账's drop-down: the contract's decisions (identities and
# FEEDBACK_DECISIONS) by their labels, and 待核实 while it checks.
DECISIONS = {
    **{k: v for k, v in IDENTITIES.items() if k != "ordinary"},
    **FEEDBACK_DECISIONS,
    "pending": DECISION_PENDING_LABEL,
}
# Why a rule did (not) warn a person: `povwatch explain` and the reports' 说明 / 原因.
EXPLAIN = {
    "warned": "已预警",
    "not_warned": "未预警",
    "population": "不属于该规则的监测人群",
    "insutype": "参保类型不在该规则范围",
    "below": "个人负担未超过预警标准",
    "over": "个人负担超过预警标准",
    "no_rule": "所在区划的政策对其身份不设预警（已在救助范围或不在任何监测人群）",
}
# Medical-assistance audit (entitled vs maf_pay paid), and the columns of its sheet.
ASSISTANCE_STATUSES = {
    "under": "少付（应救助高于已支付）",
    "over": "多付（已支付高于应救助）",
    "ok": "相符",
    "not_computed": "未能计算（政策未定或缺参数）",
}
ASSISTANCE_COLUMNS = {
    "admdvs": "县（市、区）代码",
    "county": "县（市、区）",
    "psn_no": "人员编号",
    "category_label": "救助对象类别",
    "policy_id": "政策",
    "eligible_cost": "政策范围内个人负担（元）",
    "entitled": "应救助金额（元）",
    "paid": "已支付医疗救助（元）",
    "difference": "差额（元）",
    "status": "核对结果",
}
