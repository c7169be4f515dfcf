"""`povwatch policy check`: what a policy file decides, clause by clause (中文 / English)."""

from __future__ import annotations

from pathlib import Path

from pipeline.assistance.calculator import describe as describe_assistance
from pipeline.labels import DEPARTMENTS, IDENTITIES, WARNING_TYPES
from pipeline.policy.load import (
    Population,
    Threshold,
    load_policy,
    missing_assistance_values,
    missing_local_values,
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


def check_text(path: Path) -> tuple[str, bool]:
    """The report text and whether the file is complete (no local value missing)."""
    lp = load_policy(path)
    p = lp.policy
    out = [
        f"{p.title} ({p.document})",
        f"source {p.source}; binds admdvs prefixes {', '.join(p.regions)}; sha256 {lp.sha256[:12]}",
    ]
    complete = True
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
            complete = False
            out.append("  MISSING local values for the warnings (runs stop until supplied):")
            out.extend(f"    - {key}" for key in missing)
        missing_aid = missing_assistance_values(v)
        if missing_aid:
            complete = False
            out.append("  MISSING local values for the assistance calculator:")
            out.extend(f"    - {key}" for key in missing_aid)
    out.append("")
    out.append("complete" if complete else "incomplete: local values missing")
    return "\n".join(out) + "\n", complete
