"""Regional policies as validated data: which rule warns whom, at what threshold, routed where.

A policy file (``policies/*.yaml``) encodes one source document: regions it binds to (admdvs
prefixes; the longest matching prefix wins), and versions with effective dates. Every number
carries the clause it comes from. A value the document leaves to the locality is written
``local`` and must be supplied by an overlay file; until then any run over that region stops
with an error naming the region and the missing key — never a guessed number.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.assistance import Assistance
from pipeline.errors import PovwatchError
from pipeline.policy_types import (
    Citation,
    Department,
    IdentityCode,
    Local,
    Strict,
    WarningType,
)
from pipeline.warehouse import resource_dir


class IncomeRef(Strict):
    """Which per-capita disposable income the threshold multiplies (the prior year's)."""

    level: Literal["province", "city", "county"]
    scope: Literal["all", "urban", "rural"]
    cite: Citation


class Threshold(Strict):
    factor: Annotated[Decimal, Field(gt=0, le=10)] | Local
    income: IncomeRef | Local
    cite: Citation


class Population(Strict):
    """Who a rule watches: holders of any listed identity, or ``ordinary`` (no identity)."""

    identities: list[IdentityCode] | Literal["ordinary"] | Local
    insutypes: list[str] | None = None  # None: every insurance type
    cite: Citation


class MonitoringRule(Strict):
    rule_id: str = Field(pattern=r"^[A-Z0-9][A-Z0-9-]*$")
    warning_type: WarningType
    population: Population
    threshold: Threshold
    burden_measure: Literal["after_insurance"] = "after_insurance"
    window: Literal["calendar_year"] = "calendar_year"
    unit: Literal["person"] = "person"


class Route(Strict):
    """Which department receives which warnings (all conditions must hold)."""

    department: Department
    warning_type: WarningType
    identities: list[IdentityCode] | Literal["ordinary"] | None = None
    rural: bool | None = None
    cite: Citation


class PolicyVersion(Strict):
    version: str
    effective_from: dt.date
    effective_to: dt.date | None = None
    cite: Citation
    monitoring: list[MonitoringRule]
    routing: list[Route] = []
    assistance: Assistance | None = None

    @model_validator(mode="after")
    def _dates(self) -> PolicyVersion:
        if self.effective_to and self.effective_to < self.effective_from:
            raise ValueError(f"version {self.version}: effective_to is before effective_from")
        kinds = [r.warning_type for r in self.monitoring]
        if len(kinds) != len(set(kinds)):
            raise ValueError(f"version {self.version}: one monitoring rule per warning type")
        return self

    def in_force(self, day: dt.date) -> bool:
        return self.effective_from <= day and (
            self.effective_to is None or day <= self.effective_to
        )


class Policy(Strict):
    policy_id: str
    title: str
    document: str
    source: str  # seed file name of the source document
    regions: list[Annotated[str, Field(pattern=r"^[0-9]{2,6}$")]] = Field(min_length=1)
    versions: list[PolicyVersion] = Field(min_length=1)

    @field_validator("versions")
    @classmethod
    def _no_overlap(cls, versions: list[PolicyVersion]) -> list[PolicyVersion]:
        ordered = sorted(versions, key=lambda v: v.effective_from)
        for a, b in zip(ordered, ordered[1:], strict=False):
            if a.effective_to is None or a.effective_to >= b.effective_from:
                raise ValueError(f"versions {a.version} and {b.version} overlap")
        return ordered

    def version_at(self, day: dt.date) -> PolicyVersion | None:
        return next((v for v in self.versions if v.in_force(day)), None)


class LoadedPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    policy: Policy
    path: Path
    sha256: str


def load_policy(path: Path) -> LoadedPolicy:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PovwatchError(f"{path}: cannot read policy file ({exc.strerror})") from None
    try:
        data: Any = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise PovwatchError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        raise PovwatchError(f"{path}: invalid policy at {where}: {err['msg']}") from None
    return LoadedPolicy(policy=policy, path=path, sha256=hashlib.sha256(raw).hexdigest())


def bundled_policy_files() -> list[Path]:
    return sorted(resource_dir("policies").glob("*.yaml"))


class PolicySet:
    """The policies of a run; later files override earlier ones binding the same prefix."""

    def __init__(self, loaded: list[LoadedPolicy]) -> None:
        self.loaded = loaded
        self.by_prefix: dict[str, LoadedPolicy] = {}
        for lp in loaded:
            for prefix in lp.policy.regions:
                self.by_prefix[prefix] = lp

    @classmethod
    def load(cls, extra: tuple[Path, ...] | list[Path] = ()) -> PolicySet:
        return cls([load_policy(p) for p in [*bundled_policy_files(), *extra]])

    def for_region(self, admdvs: str) -> LoadedPolicy | None:
        for n in range(len(admdvs), 1, -1):
            hit = self.by_prefix.get(admdvs[:n])
            if hit is not None:
                return hit
        return None

    def prefix_for(self, admdvs: str) -> str | None:
        return next(
            (admdvs[:n] for n in range(len(admdvs), 1, -1) if admdvs[:n] in self.by_prefix), None
        )


def missing_local_values(version: PolicyVersion) -> list[str]:
    """Keys of values the document leaves to the locality and nobody supplied yet."""
    missing = []
    for i, rule in enumerate(version.monitoring):
        base = f"monitoring[{i}]({rule.warning_type})"
        if rule.population.identities == "local":
            missing.append(f"{base}.population.identities")
        if rule.threshold.factor == "local":
            missing.append(f"{base}.threshold.factor")
        if rule.threshold.income == "local":
            missing.append(f"{base}.threshold.income")
    return missing


def income_region(admdvs: str, level: str) -> str:
    """The statistics region a person's 6-digit region code belongs to at a level."""
    if level == "province":
        return admdvs[:2] + "0000"
    if level == "city":
        return admdvs[:4] + "00"
    return admdvs


def threshold_fen(factor: Decimal, income_fen: int) -> int:
    """round(factor × income, 2) in fen, half up (contract: threshold)."""
    return int((factor * income_fen).quantize(Decimal(1), rounding=ROUND_HALF_UP))
