"""The schema of policy files: identity codes, citations, `local` values, and the
``assistance:`` section of a policy version (medical assistance, 医疗救助).

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

from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, model_validator

IdentityCode = Literal[
    "tekun",
    "orphan",
    "dibao",
    "fanpin",
    "dibao_edge",
    "monitor_unstable",
    "monitor_edge",
    "monitor_sudden",
    "tuopin",
    "illness_poor",
    "expense_poor",
]
IDENTITY_CODES: tuple[str, ...] = get_args(IdentityCode)
# Contract (identities): 脱贫人口 alone does not take a person out of the ordinary population
# (they are 普通参保人员 for the impoverishment rule; their warnings go to 乡村振兴) …
ORDINARY_IDENTITIES: frozenset[str] = frozenset({"tuopin"})
# … and these are already in the assistance net (特困, 孤儿, 低保, 返贫致贫, 因病致贫, 支出型):
# no warning. Every other identity must be in the relapse rule's population.
ASSISTANCE_NET: frozenset[str] = frozenset(
    {"tekun", "orphan", "dibao", "fanpin", "illness_poor", "expense_poor"}
)
Local = Literal["local"]
Department = Literal["civil_affairs", "rural_revitalization"]
WarningType = Literal["relapse", "impoverish"]


class Strict(BaseModel):
    """Policy models reject unknown keys (a typo is an error, not a silent default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Citation(Strict):
    """Where a value comes from: the source file and clause, with the words quoted.

    ``quote`` is the document's own words only (passages may be joined by …… or ；; a test
    finds each in the seed text). Our words go in ``note``; ``inferred`` marks a value we
    read into the text (not stated there), ``assumed`` one the text does not give at all
    (e.g. an effective date): ``policy check`` shows both.
    """

    clause: str = Field(min_length=2)
    quote: str | None = None
    note: str | None = None
    inferred: bool = False
    assumed: bool = False

    @model_validator(mode="after")
    def _explained(self) -> Citation:
        if (self.inferred or self.assumed) and not self.note:
            raise ValueError("an inferred or assumed value needs a note saying why")
        return self


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
