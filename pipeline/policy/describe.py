"""`povwatch policy check`: what a policy file decides, clause by clause (中文 / English)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import NamedTuple

from pydantic import BaseModel

from pipeline.labels import DEPARTMENTS, IDENTITIES, WARNING_TYPES
from pipeline.policy.load import (
    Population,
    Threshold,
    load_policy,
    missing_assistance_values,
    missing_local_values,
)
from pipeline.policy.types import (
    AgeAtMost,
    Assistance,
    Cap,
    Citation,
    FixedDeductible,
    IncomeDeductible,
    LocalDeductible,
    NoDeductible,
    Ratio,
    ReportDay,
    Window,
)

_LEVEL = {"province": "全省", "city": "全市", "county": "本县（区）"}
_SCOPE = {"all": "居民", "urban": "城镇常住居民", "rural": "农村常住居民"}


def _population(p: Population) -> tuple[str, str]:
    if p.identities == "local":
        return "（由当地确定）", "left to the locality"
    if p.identities == "ordinary":
        zh, en = (
            "普通参保人员（无救助身份；脱贫人口计入）",
            "ordinary insured (no assistance identity; 脱贫人口 count as ordinary)",
        )
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


def _flag(c: Citation) -> str:
    """How far a value is the document's own: assumed / inferred values are marked."""
    if c.assumed:
        return f"   ⚠ 假定 ASSUMED: {c.note}"
    if c.inferred:
        return f"   ⚠ 推断 INFERRED: {c.note}"
    return f"   ({c.note})" if c.note else ""


def _at(c: Citation) -> str:
    return f"   [{c.clause}]{_flag(c)}"


def _citations(value: object, path: str):
    """(key path, citation) of every citation under a model, in file order."""
    if isinstance(value, Citation):
        yield path, value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _citations(getattr(value, name), f"{path}.{name}" if path else name)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            dept = getattr(item, "department", None)
            key = (
                getattr(item, "id", None)
                or (dept and f"{dept}:{item.warning_type}")
                or getattr(item, "warning_type", None)
                or getattr(item, "kind", None)
                or str(i)
            )
            yield from _citations(item, f"{path}.{key}")


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
        out.append(f"version {v.version}: {v.effective_from} .. {to}{_at(v.cite)}")
        for rule in v.monitoring:
            pop_zh, pop_en = _population(rule.population)
            thr_zh, thr_en = _threshold(rule.threshold)
            out.append(f"  {rule.rule_id} {WARNING_TYPES[rule.warning_type]} / {rule.warning_type}")
            out.append(f"    对象 {pop_zh}{_at(rule.population.cite)}")
            out.append(f"    population: {pop_en}")
            out.append(f"    标准 {thr_zh}{_at(rule.threshold.cite)}")
            out.append(f"    threshold: {thr_en}")
            if not isinstance(rule.threshold.income, str):
                out.append(
                    f"    income: {rule.threshold.income.level} {rule.threshold.income.scope}{_at(rule.threshold.income.cite)}"
                )
            out.append(
                f"    burden measure {rule.burden_measure}; window {rule.window}; unit {rule.unit}"
            )
        for r in v.routing:
            cond = []
            if isinstance(r.identities, list):
                cond.append("、".join(IDENTITIES[i] for i in r.identities))
            if r.rural is not None:
                cond.append("农村户籍" if r.rural else "城镇户籍")
            out.append(
                f"  推送 {DEPARTMENTS[r.department]} ← {WARNING_TYPES[r.warning_type]}"
                + (f"（{'；'.join(cond)}）" if cond else "")
                + _at(r.cite)
            )
        if v.assistance is not None:
            out.extend(describe_assistance(v.assistance))
        marked = [(k, c) for k, c in _citations(v, "version") if c.assumed or c.inferred]
        if marked:
            out.append("  ASSUMPTIONS and INFERENCES (not stated by the document):")
            for key, c in marked:
                kind = "assumed" if c.assumed else "inferred"
                out.append(f"    - {kind}: {key} [{c.clause}]: {c.note}")
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
        text = "不设起付标准"
        if d.where_not_ready is not None:
            text += f"（暂不具备条件的：{_deductible_text(d.where_not_ready)}）"
        return text
    if isinstance(d, LocalDeductible):
        return "起付标准由当地确定"
    if isinstance(d, FixedDeductible):
        return "起付标准由当地确定" if d.yuan == "local" else f"起付标准 {d.yuan} 元"
    level = {"province": "全省", "city": "本市", "county": "本县"}[d.income.level]
    scope = {"all": "居民", "urban": "城镇常住居民", "rural": "农村常住居民"}[d.income.scope]
    q = {"exact": "", "approx": "左右", "at_most": "（不高于）"}[d.qualifier]
    f = "（由当地确定）" if d.factor == "local" else _pct(d.factor)
    when = "，发布次月起执行" if d.income.effective == "month_after_publication" else ""
    return f"起付标准 {level}上年{scope}人均可支配收入 × {f}{q}{when}"


def _ratio_text(r: Ratio) -> str:
    if r.value == "local":
        return "比例由当地确定"
    text = ("不低于 " if r.qualifier == "at_least" else "") + _pct(r.value)
    if r.where_not_ready is not None:
        text += f"（暂不具备条件的不低于 {_pct(r.where_not_ready)}）"
    return text


def _cap_text(c: Cap) -> str:
    if c.yuan == "none":
        return "不设年度限额"
    text = "年度限额由当地确定" if c.yuan == "local" else f"年度限额 {c.yuan} 元"
    return text + (f"（共用 {c.group}）" if c.group else "")


def _window_text(w: Window) -> str:
    if w.kind == "calendar_year":
        return "费用区间 自然年度"
    month = "含" if w.include_application_month else "不含"
    return f"费用区间 申请之月前 {w.months} 个月（{month}申请当月）"


def _names(codes: list[str]) -> str:
    return "、".join(IDENTITIES[x] for x in codes)


def _parts(*items: tuple[str, Citation]) -> list[str]:
    """Sub-lines naming each value's own clause (and marks)."""
    return [f"      {label}{_at(c)}" for label, c in items]


def describe_assistance(va: Assistance) -> list[str]:
    """Lines (Chinese, with clauses) saying what the assistance section decides: every
    encoded value, and marks on what is assumed or inferred."""
    out = ["  医疗救助 / medical assistance"]
    if va.regions is None:
        out.append("    适用地区 / binds: the policy's regions")
    elif not va.regions:
        out.append("    适用地区 / binds: no region until a `mode: narrow` overlay names the city")
    else:
        out.append(f"    适用地区 / binds: admdvs prefixes {', '.join(va.regions)}")
    for i, c in enumerate(va.categories, 1):
        how = "（依申请）" if c.by_application else ""
        out.append(f"    {i}. {c.id} {c.label}: {_names(c.identities)}{how}{_at(c.cite)}")
    out.append(f"    多重身份就高{_at(va.precedence.cite)}")
    for t in va.identity_timing:
        detail = ""
        if isinstance(t, ReportDay):
            hol = "，法定节假日顺延" if t.holiday_extension else ""
            detail = f": 每月{t.day}日前报送{hol}，次月起生效"
        elif getattr(t, "identities", None):
            detail = f": {_names(t.identities)}"
        out.append(f"    身份时点 {t.kind}{detail}{_at(t.cite)}")
    for r in va.rules:
        who = f"{r.category}" + (f"（{_names(r.identities)}）" if r.identities else "")
        out.append(
            f"    {r.id} {who} {'/'.join(r.scopes)}: {_deductible_text(r.deductible)}，"
            f"{_ratio_text(r.ratio)}，{_cap_text(r.cap)}   [{r.cite.clause}]{_flag(r.cite)}"
        )
        out.extend(
            _parts(
                (f"起付 {_deductible_text(r.deductible)}", r.deductible.cite),
                (f"比例 {_ratio_text(r.ratio)}", r.ratio.cite),
                (f"限额 {_cap_text(r.cap)}", r.cap.cite),
            )
        )
        if isinstance(r.deductible, NoDeductible) and r.deductible.where_not_ready:
            out.extend(_parts(("暂不具备条件的起付标准", r.deductible.where_not_ready.cite)))
        if r.window is not None:
            out.extend(_parts((_window_text(r.window), r.window.cite)))
    for t in va.tiers:
        out.append(
            f"    {t.id} {t.label}: {_deductible_text(t.threshold)}，{_ratio_text(t.ratio)}，"
            f"{_cap_text(t.cap)}   [{t.cite.clause}]{_flag(t.cite)}"
        )
        cats = "所有参保人" if t.categories == "any" else ", ".join(t.categories)
        basis = "救助后" if t.measured_on == "after_assistance" else "基本医保、大病保险后"
        out.append(
            f"      {t.kind}; 对象 {cats}; 范围 {'/'.join(t.scopes)}; 以{basis}个人负担计"
            + (f"; 条件 {', '.join(t.requires)}" if t.requires else "")
        )
        out.extend(
            _parts(
                (f"起付 {_deductible_text(t.threshold)}", t.threshold.cite),
                (f"比例 {_ratio_text(t.ratio)}", t.ratio.cite),
                (f"限额 {_cap_text(t.cap)}", t.cap.cite),
            )
        )
        if t.window is not None:
            out.extend(_parts((_window_text(t.window), t.window.cite)))
        if t.retroactive is not None:
            out.extend(_parts((f"追溯 {t.retroactive.from_year} 年起费用", t.retroactive.cite)))
    for b in va.bonuses:
        pts = "由当地确定" if b.points == "local" else f"+{(b.points * 100).normalize():f} 个百分点"
        when = (
            f"{b.when.years} 周岁（含）以下"
            if isinstance(b.when, AgeAtMost)
            else f"条件 {b.when.name}"
        )
        scopes = f"，限 {'/'.join(b.scopes)}" if b.scopes else ""
        out.append(
            f"    {b.id} 比例 {pts} → {', '.join(b.applies_to)}（{when}{scopes}）{_at(b.cite)}"
        )
    if va.exclusions:
        out.append(f"    不纳入: {', '.join(va.exclusions.fields)}{_at(va.exclusions.cite)}")
    tilt = va.critical_illness_tilt
    if tilt:
        cut = (
            "由当地确定"
            if tilt.deductible_reduction == "local"
            else _pct(tilt.deductible_reduction)
        )
        pts = (
            "由当地确定"
            if tilt.ratio_bonus_points == "local"
            else f"+{(tilt.ratio_bonus_points * 100).normalize():f} 个百分点"
        )
        cap = {"none": "取消封顶线", "local": "封顶线由当地确定"}[tilt.cap]
        drug = "；取消特药起付线" if tilt.special_drug_deductible_removed else ""
        out.append(
            f"    大病保险倾斜 {_names(tilt.identities)}: 起付线降低 {cut}，比例 {pts}，{cap}{drug}"
            f"{_at(tilt.cite)}"
        )
        if tilt.ordinary is not None:
            out.append(
                f"      普通参保人: {_deductible_text(tilt.ordinary.deductible)}，"
                f"{_ratio_text(tilt.ordinary.ratio)}{_at(tilt.ordinary.cite)}"
            )
    for s in va.premium_subsidies:
        amount = {
            "full": "全额",
            "ratio": f"{_pct(s.ratio)}" if isinstance(s.ratio, Decimal) else "比例由当地确定",
            "fixed": f"{s.yuan} 元/年" if isinstance(s.yuan, Decimal) else "定额由当地确定",
            "local": "由当地确定",
        }[s.kind]
        out.append(f"    资助参保 {s.id} {_names(s.identities)}: {amount}{_at(s.cite)}")
    return out
