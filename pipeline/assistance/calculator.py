"""Medical assistance (医疗救助) of a policy version, as validated data, and its arithmetic.

The ``assistance:`` section of a policy version says, clause by clause:

- ``categories`` — assistance categories in precedence order, highest first (就高不就低 /
  就高不重复: a person with several identities gets the first category holding one of them);
- ``identity_timing`` — when an identity change counts (Yulin 001 §四, Hebei 003 §三(一) …);
- ``rules`` — per category (optionally narrowed to some of its identities) and scope of
  costs: deductible, ratio and annual cap (``cap.group`` names a cap several rules share);
- ``tiers`` — second tiers measured after the first (再救助, 二次救助, 罕见病救助,
  重特大疾病救助, 倾斜救助) with their own threshold, ratio and cap;
- ``bonuses`` — ratio points added for children or listed diseases;
- ``exclusions`` — settlement amounts that never count (Jining 004 §四(四));
- ``critical_illness_tilt`` — the critical-illness insurance tilt (大病保险倾斜);
- ``premium_subsidies`` — premium subsidies (资助参保), highest first.

Every number sits in an object with its ``cite``. A value the document leaves to the
locality is ``local`` (for a deductible or subsidy whose very form is left open,
``kind: local``); :func:`missing_local_values` names each by key path, list items by ``id``
(``assistance.rules.JL-C1.cap.yuan``). Money is yuan in the file and integer fen in code.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, PlainValidator, model_validator

from pipeline.errors import PovwatchError
from pipeline.labels import IDENTITIES
from pipeline.policy.types import Citation, IdentityCode, Local, Strict

Scope = Literal["inpatient", "outpatient_chronic", "outpatient_special", "outpatient", "all"]
# Facts about a case that a tier or bonus requires; the caller states which hold.
Condition = Literal[
    "referred_in_province",  # 规范转诊且在省域内就医
    "application",  # 依申请
    "rare_disease",  # 罕见病病种目录内
    "insured_3_years",  # 连续参保缴费满3年（或不满3周岁且父母一方满3年）
    "means_test_cat3",  # 个人负担和家庭财产符合第三类救助对象认定条件
    "childhood_blood_cancer_22",  # 22种儿童血液病和儿童恶性肿瘤
]
ExcludedField = Literal["preselfpay_amt", "overlmt_selfpay", "fulamt_ownpay_amt"]

_ID = r"^[A-Z0-9][A-Z0-9-]*$"
_CATEGORY_ID = r"^[a-z][a-z0-9_]*$"


# --- value types: one validator each, so an error names the key and says why ------------------


def _decimal(v: Any) -> Decimal:
    if isinstance(v, bool) or not isinstance(v, int | float | str | Decimal):
        raise ValueError(f"expected a number, got {v!r}")
    try:
        d = Decimal(str(v).strip().replace(",", ""))
    except InvalidOperation:
        raise ValueError(f"expected a number, got {v!r}") from None
    if not d.is_finite():
        raise ValueError(f"expected a number, got {v!r}")
    return d


def _unit_interval(v: Any, *, allow_local: bool, what: str) -> Decimal | str:
    if allow_local and v == "local":
        return "local"
    d = _decimal(v)
    if d < 0 or d > 1:
        raise ValueError(
            f"{what} {d} is outside 0..1 (write 70% as 0.70; a {what} above 100% is not allowed)"
        )
    return d


def _factor(v: Any) -> Decimal | str:
    if v == "local":
        return "local"
    d = _decimal(v)
    if d <= 0 or d > 10:
        raise ValueError(f"income factor {d} is outside (0, 10]")
    return d


def _yuan(v: Any, *, allow_none: bool) -> Decimal | str:
    if v == "local" or (allow_none and v == "none"):
        return v
    d = _decimal(v)
    if d < 0:
        raise ValueError(f"amount {d} yuan is negative")
    if d != d.quantize(Decimal("0.01")):
        raise ValueError(f"amount {d} yuan has more than two decimals")
    return d.quantize(Decimal("0.01"))


RatioValue = Annotated[
    Decimal, PlainValidator(lambda v: _unit_interval(v, allow_local=False, what="ratio"))
]
RatioOrLocal = Annotated[
    Decimal | Local, PlainValidator(lambda v: _unit_interval(v, allow_local=True, what="ratio"))
]
PointsOrLocal = Annotated[
    Decimal | Local, PlainValidator(lambda v: _unit_interval(v, allow_local=True, what="points"))
]
FactorOrLocal = Annotated[Decimal | Local, PlainValidator(_factor)]
YuanOrLocal = Annotated[Decimal | Local, PlainValidator(lambda v: _yuan(v, allow_none=False))]
CapYuan = Annotated[
    Decimal | Literal["none"] | Local, PlainValidator(lambda v: _yuan(v, allow_none=True))
]


# --- categories and identity timing -----------------------------------------------------------


class Precedence(Strict):
    """就高不就低 / 就高不重复: the first category (in file order) holding one identity wins."""

    kind: Literal["highest_first"]
    cite: Citation


class Category(Strict):
    id: Annotated[str, Field(pattern=_CATEGORY_ID)]
    label: str = Field(min_length=1)
    identities: list[IdentityCode] = Field(min_length=1)
    by_application: bool = False  # assisted after an application, not at the settlement
    cite: Citation


class GainedDuringStay(Strict):
    """Identity gained during an inpatient stay applies to that whole stay (001 §四(二))."""

    kind: Literal["gained_during_stay"]
    cite: Citation


class LostDuringStay(Strict):
    """Identity lost during a stay: that stay keeps the previous category (001 §四(三))."""

    kind: Literal["lost_during_stay"]
    cite: Citation


class ChangedDuringStay(Strict):
    """Category changed during a stay: that stay uses the higher category (001 §四(三))."""

    kind: Literal["changed_during_stay"]
    cite: Citation


class SingleCase(Strict):
    """The identity is valid for the one assistance case it was determined for (001 §四(四))."""

    kind: Literal["single_case"]
    identities: list[IdentityCode] = Field(min_length=1)
    cite: Citation


class OneYearPerDetermination(Strict):
    """One determination gives one medical year of assistance and one cap (004 §四(三))."""

    kind: Literal["one_year_per_determination"]
    identities: list[IdentityCode] = Field(min_length=1)
    cite: Citation


class ReportDay(Strict):
    """Changes reported by ``day`` of a month take effect from the next month (003 §三(一))."""

    kind: Literal["report_day"]
    day: int = Field(ge=1, le=28)
    holiday_extension: bool = False  # 法定节假日顺延 (not modelled: needs a holiday calendar)
    takes_effect: Literal["next_month"] = "next_month"
    cite: Citation


IdentityTiming = Annotated[
    GainedDuringStay
    | LostDuringStay
    | ChangedDuringStay
    | SingleCase
    | OneYearPerDetermination
    | ReportDay,
    Field(discriminator="kind"),
]


# --- deductible, ratio, cap ---------------------------------------------------------------------


class IncomeBase(Strict):
    """The per-capita disposable income a deductible is a share of (always a prior year)."""

    level: Literal["province", "city", "county"]  # of the person's own region code
    scope: Literal["all", "urban", "rural"]
    year: Literal["prior"] = "prior"
    # on_publication: in force from ``published_on``; month_after_publication: from the 1st of
    # the month after (004 §四(三) "在…发布…当月发布，次月起执行").
    effective: Literal["on_publication", "month_after_publication"] = "on_publication"


class FixedDeductible(Strict):
    kind: Literal["fixed"]
    yuan: YuanOrLocal
    cite: Citation


class IncomeDeductible(Strict):
    kind: Literal["income_factor"]
    factor: FactorOrLocal
    qualifier: Literal["exact", "approx", "at_most"] = "exact"  # 左右 → approx; 不高于 → at_most
    income: IncomeBase
    cite: Citation


class NoDeductible(Strict):
    kind: Literal["none"]
    # Where the document allows a deductible until the locality is ready (000 §四(五) 二类).
    where_not_ready: IncomeDeductible | None = None
    cite: Citation


class LocalDeductible(Strict):
    kind: Literal["local"]
    cite: Citation


Deductible = Annotated[
    NoDeductible | FixedDeductible | IncomeDeductible | LocalDeductible,
    Field(discriminator="kind"),
]


class Ratio(Strict):
    value: RatioOrLocal
    qualifier: Literal["exact", "at_least"] = "exact"  # 不低于 → at_least (the floor)
    where_not_ready: RatioValue | None = None  # 暂不具备条件的地区按不低于…
    cite: Citation


class Cap(Strict):
    yuan: CapYuan  # a number, none (no annual cap) or local
    group: Annotated[str, Field(pattern=_ID)] | None = None  # rules/tiers sharing this cap
    cite: Citation


class Window(Strict):
    """Which costs count: the calendar year (default) or months before the application."""

    kind: Literal["calendar_year", "months_before_application"]
    months: int | None = Field(default=None, ge=1, le=36)
    include_application_month: bool = False
    cite: Citation

    @model_validator(mode="after")
    def _months(self) -> Window:
        if (self.kind == "months_before_application") != (self.months is not None):
            raise ValueError("months is required for months_before_application, else not allowed")
        return self


class Retroactive(Strict):
    """Costs from this year on may be claimed although the version starts later."""

    from_year: int = Field(ge=2000, le=2100)
    cite: Citation


class Rule(Strict):
    id: Annotated[str, Field(pattern=_ID)]
    category: str
    # Narrows the rule to some identities of the category (first matching rule wins).
    identities: list[IdentityCode] | None = None
    scopes: list[Scope] = Field(min_length=1)
    deductible: Deductible
    ratio: Ratio
    cap: Cap
    window: Window | None = None  # None: calendar year
    cite: Citation


class Tier(Strict):
    """A second tier: its threshold applies to the burden left after the first tier
    (``after_assistance``) or after insurance only (``after_insurance``)."""

    id: Annotated[str, Field(pattern=_ID)]
    kind: Literal[
        "re_assistance",  # 再救助
        "second_assistance",  # 二次救助
        "rare_disease",  # 罕见病救助
        "major_illness",  # 重特大疾病救助
        "tilt_assistance",  # 倾斜救助
    ]
    label: str = Field(min_length=1)
    categories: list[str] | Literal["any"]  # any: also people without a category
    scopes: list[Scope] = Field(min_length=1)
    measured_on: Literal["after_assistance", "after_insurance"]
    threshold: Deductible
    ratio: Ratio
    cap: Cap
    requires: list[Condition] = []
    window: Window | None = None
    retroactive: Retroactive | None = None
    cite: Citation


class AgeAtMost(Strict):
    kind: Literal["age_at_most"]
    years: int = Field(ge=0, le=30)


class HasCondition(Strict):
    kind: Literal["condition"]
    name: Condition


class Bonus(Strict):
    """Ratio points added to the listed rules/tiers when the condition holds (ratio ≤ 100%)."""

    id: Annotated[str, Field(pattern=_ID)]
    points: PointsOrLocal
    when: AgeAtMost | HasCondition = Field(discriminator="kind")
    scopes: list[Scope] | None = None  # None: every scope of the rule
    applies_to: list[str] = Field(min_length=1)
    cite: Citation


class Exclusions(Strict):
    fields: list[ExcludedField] = Field(min_length=1)
    cite: Citation


class CriticalIllnessTerms(Strict):
    """The ordinary critical-illness insurance terms, where the document states them."""

    deductible: Deductible
    ratio: Ratio
    cite: Citation


class CriticalIllnessTilt(Strict):
    identities: list[IdentityCode] = Field(min_length=1)
    ordinary: CriticalIllnessTerms | None = None
    deductible_reduction: RatioOrLocal  # 0.50: the deductible is lowered by 50%
    ratio_bonus_points: PointsOrLocal
    cap: Literal["none"] | Local
    special_drug_deductible_removed: bool = False
    cite: Citation


class PremiumSubsidy(Strict):
    id: Annotated[str, Field(pattern=_ID)]
    identities: list[IdentityCode] = Field(min_length=1)
    kind: Literal["full", "ratio", "fixed", "local"]
    ratio: RatioOrLocal | None = None  # kind ratio: share of the personal premium
    yuan: YuanOrLocal | None = None  # kind fixed: yuan per person per year
    cite: Citation

    @model_validator(mode="after")
    def _shape(self) -> PremiumSubsidy:
        if (self.kind == "ratio") != (self.ratio is not None):
            raise ValueError(f"premium subsidy {self.id}: ratio goes with kind ratio (only)")
        if (self.kind == "fixed") != (self.yuan is not None):
            raise ValueError(f"premium subsidy {self.id}: yuan goes with kind fixed (only)")
        return self


class Assistance(Strict):
    # admdvs prefixes the section applies to when narrower than the policy's (None: all).
    regions: list[Annotated[str, Field(pattern=r"^[0-9]{2,6}$")]] | None = None
    precedence: Precedence
    categories: list[Category] = Field(min_length=1)
    identity_timing: list[IdentityTiming] = []
    rules: list[Rule] = []
    tiers: list[Tier] = []
    bonuses: list[Bonus] = []
    exclusions: Exclusions | None = None
    critical_illness_tilt: CriticalIllnessTilt | None = None
    premium_subsidies: list[PremiumSubsidy] = []

    @model_validator(mode="after")
    def _references(self) -> Assistance:
        _unique("categories", [c.id for c in self.categories])
        _unique("rules/tiers", [r.id for r in self.rules] + [t.id for t in self.tiers])
        _unique("bonuses", [b.id for b in self.bonuses])
        _unique("premium_subsidies", [s.id for s in self.premium_subsidies])
        cats = {c.id: c for c in self.categories}
        known = ", ".join(cats)
        seen: dict[str, str] = {}
        for c in self.categories:
            for ident in c.identities:
                if ident in seen:
                    raise ValueError(
                        f"categories.{c.id}.identities: {ident} is already in category {seen[ident]}"
                    )
                seen[ident] = c.id
        for r in self.rules:
            if r.category not in cats:
                raise ValueError(
                    f"rules.{r.id}.category: unknown category id {r.category!r} (known: {known})"
                )
            extra = set(r.identities or ()) - set(cats[r.category].identities)
            if extra:
                raise ValueError(
                    f"rules.{r.id}.identities: {', '.join(sorted(extra))} not in category "
                    f"{r.category}"
                )
        for t in self.tiers:
            for c in t.categories if isinstance(t.categories, list) else ():
                if c not in cats:
                    raise ValueError(
                        f"tiers.{t.id}.categories: unknown category id {c!r} (known: {known})"
                    )
        ids = {r.id for r in self.rules} | {t.id for t in self.tiers}
        for b in self.bonuses:
            for target in b.applies_to:
                if target not in ids:
                    raise ValueError(f"bonuses.{b.id}.applies_to: unknown rule or tier {target!r}")
        groups: dict[str, tuple[str, Any]] = {}
        for item, kind in [
            *((r, "rules") for r in self.rules),
            *((t, "tiers") for t in self.tiers),
        ]:
            g = item.cap.group
            if g is None:
                continue
            if g in groups and groups[g][1] != item.cap.yuan:
                raise ValueError(
                    f"{kind}.{item.id}.cap.yuan: cap group {g} is {groups[g][1]} in "
                    f"{groups[g][0]} but {item.cap.yuan} here"
                )
            groups.setdefault(g, (f"{kind}.{item.id}", item.cap.yuan))
        return self


def _unique(what: str, ids: list[str]) -> None:
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ValueError(f"{what}: id {dup[0]} is used more than once")


# --- what the locality must still supply --------------------------------------------------------


def missing_local_values(assistance: Assistance | None, prefix: str = "assistance") -> list[str]:
    """Key path of every ``local`` value (list items by their ``id``), in file order."""
    if assistance is None:
        return []
    out: list[str] = []
    _walk(assistance, prefix, out)
    return out


def _walk(value: Any, path: str, out: list[str]) -> None:
    if isinstance(value, BaseModel):
        if getattr(value, "kind", None) == "local":
            out.append(path)
            return
        for name in type(value).model_fields:
            if name != "cite":
                _walk(getattr(value, name), f"{path}.{name}", out)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            key = getattr(item, "id", None) or str(i)
            _walk(item, f"{path}.{key}", out)
    elif value == "local":
        out.append(path)


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


def describe(va: Assistance) -> list[str]:
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
