"""`povwatch policy check`: what a policy file decides, clause by clause (中文 / English)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import NamedTuple

from pipeline.labels import DEPARTMENTS, IDENTITIES, WARNING_TYPES
from pipeline.policy.load import (
    Population,
    Threshold,
    load_policy,
    missing_assistance_values,
    missing_local_values,
)
from pipeline.policy.types import (
    Assistance,
    Cap,
    FixedDeductible,
    IncomeDeductible,
    LocalDeductible,
    NoDeductible,
    Ratio,
)

_LEVEL = {"province": "全省", "city": "全市", "county": "本县（区）"}
_SCOPE = {"all": "居民", "urban": "城镇常住居民", "rural": "农村常住居民"}


def _population(p: Population) -> tuple[str, str]:
    if p.identities == "local":
        return "（由当地确定）", "left to the locality"
    if p.identities == "ordinary":
        zh, en = "普通参保人员（无救助身份）", "ordinary insured (no assistance identity)"
    else:
        zh = "、".join(IDENTITIES[i] for i in p.identities)
        en = ", ".join(p.identities)
    if p.insutypes:
        zh += f"；限参保类型 {','.join(p.insutypes)}"
        en += f"; insutype {','.join(p.insutypes)} only"
    return zh, en


def _threshold(t: Threshold) -> tuple[str, str]:
    if t.factor == "local" or t.income == "local":
        return "监测标准由当地确定（未提供）", "threshold left to the locality (not supplied)"
    pct = f"{float(t.factor * 100):g}%"
    zh = f"个人年度累计负担 > {_LEVEL[t.income.level]}上年{_SCOPE[t.income.scope]}人均可支配收入 × {pct}"
    en = (
        f"yearly personal burden > {pct} of the prior-year {t.income.scope} per-capita "
        f"disposable income of the {t.income.level}"
    )
    return zh, en


class PolicyCheck(NamedTuple):
    """What `policy check` prints, and what is still missing, apart for the two consumers:
    the monitoring (a run needs it) and the assistance calculator."""

    text: str
    monitoring_missing: list[str]  # "<version>: <key>"; a run over the regions stops
    assistance_missing: list[str]  # "<version>: <key>"; the calculator cannot decide yet

    @property
    def complete(self) -> bool:
        return not self.monitoring_missing and not self.assistance_missing


def check_text(path: Path) -> PolicyCheck:
    """The report text and the local values still missing, per consumer."""
    lp = load_policy(path)
    p = lp.policy
    out = [
        f"{p.title} ({p.document})",
        f"source {p.source}; binds admdvs prefixes {', '.join(p.regions)}; sha256 {lp.sha256[:12]}",
    ]
    monitoring_missing: list[str] = []
    assistance_missing: list[str] = []
    for v in p.versions:
        to = v.effective_to or "open"
        out.append("")
        out.append(f"version {v.version}: {v.effective_from} .. {to}   [{v.cite.clause}]")
        for rule in v.monitoring:
            pop_zh, pop_en = _population(rule.population)
            thr_zh, thr_en = _threshold(rule.threshold)
            out.append(f"  {rule.rule_id} {WARNING_TYPES[rule.warning_type]} / {rule.warning_type}")
            out.append(f"    对象 {pop_zh}   [{rule.population.cite.clause}]")
            out.append(f"    population: {pop_en}")
            out.append(f"    标准 {thr_zh}   [{rule.threshold.cite.clause}]")
            out.append(f"    threshold: {thr_en}")
        for r in v.routing:
            cond = []
            if isinstance(r.identities, list):
                cond.append("、".join(IDENTITIES[i] for i in r.identities))
            if r.rural is not None:
                cond.append("农村户籍" if r.rural else "城镇户籍")
            out.append(
                f"  推送 {DEPARTMENTS[r.department]} ← {WARNING_TYPES[r.warning_type]}"
                + (f"（{'；'.join(cond)}）" if cond else "")
                + f"   [{r.cite.clause}]"
            )
        if v.assistance is not None:
            out.extend(describe_assistance(v.assistance))
        missing = missing_local_values(v)
        if missing:
            out.append("  MISSING local values for the warnings (runs stop until supplied):")
            out.extend(f"    - {key}" for key in missing)
        missing_aid = missing_assistance_values(v)
        if missing_aid:
            out.append("  MISSING local values for the assistance calculator:")
            out.extend(f"    - {key}" for key in missing_aid)
        monitoring_missing.extend(f"{v.version}: {key}" for key in missing)
        assistance_missing.extend(f"{v.version}: {key}" for key in missing_aid)
    out.append("")
    out.extend(_summary(monitoring_missing, assistance_missing))
    return PolicyCheck("\n".join(out) + "\n", monitoring_missing, assistance_missing)


def _summary(monitoring: list[str], assistance: list[str]) -> list[str]:
    """The closing section: what a run needs, then what the assistance calculator needs."""
    if monitoring:
        runs = f"INCOMPLETE, {len(monitoring)} local value(s) missing: runs stop (exit 3)"
    else:
        runs = "complete: a run over these regions works"
    if assistance:
        aid = (
            f"{len(assistance)} local value(s) missing, listed above "
            "(not needed by a run; --require-assistance exits 4)"
        )
    else:
        aid = "complete"
    return [f"monitoring (预警监测): {runs}", f"assistance (医疗救助测算): {aid}"]


# --- text for `povwatch policy check` -----------------------------------------------------------


def _pct(d: Decimal) -> str:
    return f"{(d * 100).normalize():f}%"


def _deductible_text(d: NoDeductible | FixedDeductible | IncomeDeductible | LocalDeductible) -> str:
    if isinstance(d, NoDeductible):
        return "不设起付标准"
    if isinstance(d, LocalDeductible):
        return "起付标准由当地确定"
    if isinstance(d, FixedDeductible):
        return "起付标准由当地确定" if d.yuan == "local" else f"起付标准 {d.yuan} 元"
    level = {"province": "全省", "city": "本市", "county": "本县"}[d.income.level]
    scope = {"all": "居民", "urban": "城镇常住居民", "rural": "农村常住居民"}[d.income.scope]
    q = {"exact": "", "approx": "左右", "at_most": "（不高于）"}[d.qualifier]
    f = "（由当地确定）" if d.factor == "local" else _pct(d.factor)
    return f"起付标准 {level}上年{scope}人均可支配收入 × {f}{q}"


def _ratio_text(r: Ratio) -> str:
    if r.value == "local":
        return "比例由当地确定"
    return ("不低于 " if r.qualifier == "at_least" else "") + _pct(r.value)


def _cap_text(c: Cap) -> str:
    if c.yuan == "none":
        return "不设年度限额"
    text = "年度限额由当地确定" if c.yuan == "local" else f"年度限额 {c.yuan} 元"
    return text + (f"（共用 {c.group}）" if c.group else "")


def describe_assistance(va: Assistance) -> list[str]:
    """Lines (Chinese, with clauses) saying what the assistance section decides."""
    out = ["  医疗救助 / medical assistance"]
    for i, c in enumerate(va.categories, 1):
        names = "、".join(IDENTITIES[x] for x in c.identities)
        how = "（依申请）" if c.by_application else ""
        out.append(f"    {i}. {c.id} {c.label}: {names}{how}   [{c.cite.clause}]")
    out.append(f"    多重身份就高   [{va.precedence.cite.clause}]")
    for t in va.identity_timing:
        out.append(f"    身份时点 {t.kind}   [{t.cite.clause}]")
    for r in va.rules:
        who = f"{r.category}" + (
            f"（{'、'.join(IDENTITIES[x] for x in r.identities)}）" if r.identities else ""
        )
        out.append(
            f"    {r.id} {who} {'/'.join(r.scopes)}: {_deductible_text(r.deductible)}，"
            f"{_ratio_text(r.ratio)}，{_cap_text(r.cap)}   [{r.cite.clause}]"
        )
    for t in va.tiers:
        out.append(
            f"    {t.id} {t.label}: {_deductible_text(t.threshold)}，{_ratio_text(t.ratio)}，"
            f"{_cap_text(t.cap)}   [{t.cite.clause}]"
        )
    for b in va.bonuses:
        pts = "由当地确定" if b.points == "local" else f"+{(b.points * 100).normalize():f} 个百分点"
        out.append(f"    {b.id} 比例 {pts} → {', '.join(b.applies_to)}   [{b.cite.clause}]")
    if va.exclusions:
        out.append(f"    不纳入: {', '.join(va.exclusions.fields)}   [{va.exclusions.cite.clause}]")
    if va.critical_illness_tilt:
        out.append(f"    大病保险倾斜   [{va.critical_illness_tilt.cite.clause}]")
    for s in va.premium_subsidies:
        amount = {
            "full": "全额",
            "ratio": f"{_pct(s.ratio)}" if isinstance(s.ratio, Decimal) else "比例由当地确定",
            "fixed": f"{s.yuan} 元/年" if isinstance(s.yuan, Decimal) else "定额由当地确定",
            "local": "由当地确定",
        }[s.kind]
        names = "、".join(IDENTITIES[x] for x in s.identities)
        out.append(f"    资助参保 {s.id} {names}: {amount}   [{s.cite.clause}]")
    return out
