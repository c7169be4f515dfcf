"""Medical assistance (医疗救助) arithmetic under a policy version's ``assistance:`` section.

The section's schema is :mod:`pipeline.policy.types`; this module computes deductibles,
ratios, caps, tiers, premium subsidies and identity timing from it. Money is integer fen.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from pipeline.errors import PovwatchError
from pipeline.policy.types import (
    AgeAtMost,
    Assistance,
    Cap,
    Category,
    FixedDeductible,
    IncomeBase,
    IncomeDeductible,
    LocalDeductible,
    NoDeductible,
    ReportDay,
    Rule,
    Scope,
    Tier,
)

# --- arithmetic ---------------------------------------------------------------------------------


def yuan_to_fen(yuan: Decimal) -> int:
    return int(yuan * 100)


def _round_fen(x: Decimal) -> int:
    return int(x.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _need(value: Any, key: str) -> Any:
    if value == "local":
        raise PovwatchError(
            f"{key} is left to the locality (local) and no local policy file supplies it"
        )
    return value


def income_effective_from(published_on: dt.date, income: IncomeBase) -> dt.date:
    """First day a published income figure counts for a deductible."""
    if income.effective == "on_publication":
        return published_on
    year, month = divmod(published_on.year * 12 + published_on.month, 12)
    return dt.date(year, month + 1, 1)


def income_for_deductible(
    rows: Iterable[tuple[int, dt.date, int]], day: dt.date, income: IncomeBase
) -> tuple[int, int] | None:
    """(year, amount_fen) in force on ``day`` among rows (year, published_on, amount_fen) of
    the right region and scope: the greatest year ≤ day.year − 1 already in effect."""
    ok = [
        (year, amount)
        for year, published_on, amount in rows
        if year <= day.year - 1 and income_effective_from(published_on, income) <= day
    ]
    return max(ok) if ok else None


def deductible_fen(
    d: NoDeductible | FixedDeductible | IncomeDeductible | LocalDeductible,
    key: str,
    income_fen: int | None = None,
) -> int:
    """The deductible in fen; ``income_fen`` is the prior-year income when the rule needs it."""
    if isinstance(d, NoDeductible):
        return 0
    if isinstance(d, LocalDeductible):
        _need("local", key)
    if isinstance(d, FixedDeductible):
        return yuan_to_fen(_need(d.yuan, f"{key}.yuan"))
    assert isinstance(d, IncomeDeductible)
    factor = _need(d.factor, f"{key}.factor")
    if income_fen is None:
        raise PovwatchError(
            f"{key}: the deductible is {factor} × the prior-year {d.income.scope} per-capita "
            f"income of the {d.income.level}; pass income_fen"
        )
    return _round_fen(factor * income_fen)


def category_for(assistance: Assistance, identities: Iterable[str]) -> Category | None:
    """The highest category holding any of the identities (就高不就低), or None."""
    held = set(identities)
    return next((c for c in assistance.categories if held & set(c.identities)), None)


def _covers(scopes: list[Scope], scope: str) -> bool:
    return scope in scopes or "all" in scopes


def rule_for(
    assistance: Assistance, category_id: str, scope: str, identities: Iterable[str] = ()
) -> Rule:
    """The first rule of the category covering the scope (and, if narrowed, an identity)."""
    if category_id not in {c.id for c in assistance.categories}:
        raise PovwatchError(f"unknown assistance category {category_id!r}")
    held = set(identities)
    candidates = [
        r for r in assistance.rules if r.category == category_id and _covers(r.scopes, scope)
    ]
    if not held and any(r.identities for r in candidates):
        raise PovwatchError(
            f"category {category_id}: the rule depends on the identity "
            f"({', '.join(r.id for r in candidates)}); pass identities"
        )
    for r in candidates:
        if r.identities is None or held & set(r.identities):
            return r
    raise PovwatchError(f"category {category_id} has no assistance rule for {scope} costs")


def _tier(assistance: Assistance, tier_id: str) -> Tier:
    t = next((t for t in assistance.tiers if t.id == tier_id), None)
    if t is None:
        raise PovwatchError(f"unknown assistance tier {tier_id!r}")
    return t


def _ratio(
    assistance: Assistance,
    item: Rule | Tier,
    kind: str,
    scope: str,
    age: int | None,
    conditions: frozenset[str],
) -> Decimal:
    ratio: Decimal = _need(item.ratio.value, f"assistance.{kind}.{item.id}.ratio.value")
    for b in assistance.bonuses:
        if item.id not in b.applies_to or (b.scopes is not None and not _covers(b.scopes, scope)):
            continue
        if isinstance(b.when, AgeAtMost):
            if age is None:
                raise PovwatchError(
                    f"assistance.bonuses.{b.id} depends on the person's age; pass age"
                )
            applies = age <= b.when.years
        else:
            applies = b.when.name in conditions
        if applies:
            ratio += _need(b.points, f"assistance.bonuses.{b.id}.points")
    return min(ratio, Decimal(1))


def _amount(burden_fen: int, ded_fen: int, ratio: Decimal, cap: Cap, key: str, paid: int) -> int:
    raw = _round_fen(max(0, burden_fen - ded_fen) * ratio)
    limit = _need(cap.yuan, f"{key}.cap.yuan")
    if limit == "none":
        return raw
    return max(0, min(yuan_to_fen(limit) - paid, raw))


def assistance_for_year(
    va: Assistance,
    category_id: str,
    scope: str,
    policy_scope_burden_fen: int,
    *,
    identities: Iterable[str] = (),
    income_fen: int | None = None,
    age: int | None = None,
    conditions: Iterable[str] = (),
    paid_so_far_fen: int = 0,
) -> int:
    """A year's assistance in fen under the category's rule for the scope:
    min(cap − paid_so_far, round_half_up(max(0, burden − deductible) × (ratio + bonus points))).

    ``policy_scope_burden_fen``: the year's policy-scope burden after insurance, exclusions
    removed; ``identities``: needed when the rule is narrowed (Yulin 低保 vs other 二类);
    ``income_fen``: the prior-year income in force when the deductible is a share of it;
    ``age``: when an age bonus may apply; ``conditions``: facts that hold (see Condition);
    ``paid_so_far_fen``: assistance already paid this year against the same cap (group).
    A ``local`` value that is needed raises PovwatchError naming its key. An ``at_least``
    ratio yields the minimum the document guarantees.
    """
    rule = rule_for(va, category_id, scope, identities)
    key = f"assistance.rules.{rule.id}"
    ded = deductible_fen(rule.deductible, f"{key}.deductible", income_fen)
    ratio = _ratio(va, rule, "rules", scope, age, frozenset(conditions))
    return _amount(policy_scope_burden_fen, ded, ratio, rule.cap, key, paid_so_far_fen)


def tier_for_year(
    va: Assistance,
    tier_id: str,
    burden_fen: int,
    *,
    category_id: str | None,
    scope: str = "all",
    income_fen: int | None = None,
    age: int | None = None,
    conditions: Iterable[str] = (),
    paid_so_far_fen: int = 0,
) -> int:
    """A year's second-tier assistance in fen: min(cap − paid_so_far, max(0, burden −
    threshold) × ratio). ``burden_fen`` is measured as the tier says (``after_assistance``:
    the policy-scope burden left after the first tier). 0 when the tier does not cover the
    category or scope, or a required condition is not among ``conditions``."""
    tier = _tier(va, tier_id)
    held = frozenset(conditions)
    covered = tier.categories == "any" or category_id in tier.categories
    if not covered or not _covers(tier.scopes, scope) or not set(tier.requires) <= held:
        return 0
    key = f"assistance.tiers.{tier.id}"
    ded = deductible_fen(tier.threshold, f"{key}.threshold", income_fen)
    ratio = _ratio(va, tier, "tiers", scope, age, held)
    return _amount(burden_fen, ded, ratio, tier.cap, key, paid_so_far_fen)


def premium_subsidy_fen(va: Assistance, identities: Iterable[str], premium_fen: int) -> int:
    """What the assistance fund pays of a personal premium (the highest subsidy held)."""
    held = set(identities)
    sub = next((s for s in va.premium_subsidies if held & set(s.identities)), None)
    if sub is None:
        return 0
    key = f"assistance.premium_subsidies.{sub.id}"
    _need(sub.kind, key)
    if sub.kind == "full":
        return premium_fen
    if sub.kind == "ratio":
        return _round_fen(_need(sub.ratio, f"{key}.ratio") * premium_fen)
    return min(premium_fen, yuan_to_fen(_need(sub.yuan, f"{key}.yuan")))


def critical_illness_terms(
    va: Assistance,
    identities: Iterable[str],
    *,
    ordinary_deductible_fen: int | None = None,
    ordinary_ratio: Decimal | None = None,
    income_fen: int | None = None,
) -> tuple[int, Decimal, bool]:
    """(deductible fen, ratio, capped) of critical-illness insurance for the person.

    The ordinary terms come from the document when it states them (003 §三(三), with
    ``income_fen``), else from the caller; a tilted identity gets the reduced deductible,
    the added points and no cap."""
    tilt = va.critical_illness_tilt
    key = "assistance.critical_illness_tilt"
    if tilt is not None and tilt.ordinary is not None:
        ordinary_deductible_fen = deductible_fen(
            tilt.ordinary.deductible, f"{key}.ordinary.deductible", income_fen
        )
        ordinary_ratio = _need(tilt.ordinary.ratio.value, f"{key}.ordinary.ratio.value")
    if ordinary_deductible_fen is None or ordinary_ratio is None:
        raise PovwatchError(f"{key}: the ordinary critical-illness terms are not in the policy")
    if tilt is None or not set(identities) & set(tilt.identities):
        return ordinary_deductible_fen, ordinary_ratio, True
    cut: Decimal = _need(tilt.deductible_reduction, f"{key}.deductible_reduction")
    points: Decimal = _need(tilt.ratio_bonus_points, f"{key}.ratio_bonus_points")
    capped = _need(tilt.cap, f"{key}.cap") != "none"
    ded = _round_fen(ordinary_deductible_fen * (1 - cut))
    return ded, min(ordinary_ratio + points, Decimal(1)), capped


def identity_effective_from(va: Assistance, reported_on: dt.date) -> dt.date:
    """First day an identity change reported on ``reported_on`` counts, per a report_day
    timing rule (003 §三(一): by the 5th → next month; later → the month after the next
    report day). Without such a rule the change counts from the day it is reported."""
    rule = next((t for t in va.identity_timing if isinstance(t, ReportDay)), None)
    if rule is None:
        return reported_on
    months_ahead = 1 if reported_on.day <= rule.day else 2
    year, month = divmod(reported_on.year * 12 + reported_on.month - 1 + months_ahead, 12)
    return dt.date(year, month + 1, 1)
