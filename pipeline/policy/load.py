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

from pipeline.errors import PovwatchError, invalid, shown
from pipeline.policy.types import (
    ASSISTANCE_NET,
    IDENTITY_CODES,
    ORDINARY_IDENTITIES,
    Assistance,
    Citation,
    Department,
    IdentityCode,
    Local,
    Strict,
    WarningType,
)
from pipeline.policy.types import missing_local_values as _missing_in_assistance
from pipeline.store.warehouse import resource_dir


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
    # Named burden measures (pipeline.warnings.burden.BURDEN_MEASURES); the contract's default is
    # after basic and critical-illness insurance.
    burden_measure: Literal[
        "after_insurance",
        "after_insurance_and_assistance",
        "after_insurance_in_catalogue",
        "after_insurance_and_assistance_in_catalogue",
    ] = "after_insurance"
    window: Literal["calendar_year"] = "calendar_year"
    # person: the person's burden against the threshold; household: the household's burden
    # against household size × the per-capita threshold (every member in the population is
    # warned).
    unit: Literal["person", "household"] = "person"


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
        # Contract (identities): every identity is ordinary (脱贫人口), in a relapse rule's
        # population or in the assistance net — nobody falls through both rules silently.
        for rule in self.monitoring:
            ident = rule.population.identities
            if rule.warning_type == "relapse" and isinstance(ident, list):
                covered = set(ident) | ASSISTANCE_NET | ORDINARY_IDENTITIES
                gap = [i for i in IDENTITY_CODES if i not in covered]
                if gap:
                    raise ValueError(
                        f"version {self.version}: {', '.join(gap)} would never be warned "
                        "(neither in the relapse population nor in the assistance net nor "
                        "ordinary)"
                    )
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

    @model_validator(mode="after")
    def _assistance_within(self) -> Policy:
        # An assistance section binds where its own regions and the policy's overlap: a
        # region overlapping none of the policy's would bind nothing (a typo, say 3709).
        for v in self.versions:
            for r in (v.assistance.regions or []) if v.assistance else []:
                if not any(r.startswith(p) or p.startswith(r) for p in self.regions):
                    raise ValueError(
                        f"version {v.version}: assistance region {r} is outside the policy's "
                        f"regions ({', '.join(self.regions)})"
                    )
        return self

    def version_at(self, day: dt.date) -> PolicyVersion | None:
        return next((v for v in self.versions if v.in_force(day)), None)


class Overlay(Strict):
    """A local policy file: supplies values a provincial document leaves to the locality.

    It extends a base policy (by ``policy_id``) for a narrower region: each ``set`` key is a
    dotted path into every (or the named) base version, e.g. ``monitoring.relapse.threshold``
    (list items are picked by their ``warning_type``, ``rule_id``, ``id`` or ``department``).
    ``mode: narrow`` also stops the base from binding its own prefixes (e.g. the Hebei policy,
    whose city is not named, bound to one city code only).
    """

    kind: Literal["overlay"]
    overlay_id: str
    title: str
    document: str
    source: str | None = None
    extends: str
    mode: Literal["extend", "narrow"] = "extend"
    regions: list[Annotated[str, Field(pattern=r"^[0-9]{2,6}$")]] = Field(min_length=1)
    versions: list[str] | None = None
    set: dict[str, Any] = {}


class LoadedPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    policy: Policy
    path: Path
    sha256: str
    raw: dict
    overlay: Overlay | None = None


def _read_yaml(path: Path) -> tuple[Any, str]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PovwatchError(f"{shown(path)}: cannot read policy file ({exc.strerror})") from None
    try:
        data: Any = yaml.load(raw, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise PovwatchError(f"{shown(path)}: {yaml_problem(exc)}") from None
    if not isinstance(data, dict):
        raise PovwatchError(f"{shown(path)}: a policy file is a YAML mapping")
    return data, hashlib.sha256(raw).hexdigest()


def yaml_problem(exc: yaml.YAMLError) -> str:
    """``line L, column C: not valid YAML: <problem>`` (1-based, as editors count)."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}not valid YAML: {problem}" + (f" ({context})" if context else "")


def _validate(model: type[BaseModel], data: Any, path: Path, what: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid(exc, shown(path), what, data) from None


def load_policy(path: Path, bases: dict[str, LoadedPolicy] | None = None) -> LoadedPolicy:
    """Load and validate one policy file (an overlay needs its base among ``bases``)."""
    data, digest = _read_yaml(path)
    if data.get("kind") == "overlay":
        overlay = _validate(Overlay, data, path, "overlay")
        if bases is None:
            bases = {lp.policy.policy_id: lp for lp in map(load_policy, bundled_policy_files())}
        base = bases.get(overlay.extends)
        if base is None:
            raise PovwatchError(
                f"{path}: overlay extends unknown policy {overlay.extends!r} "
                f"(known: {', '.join(sorted(bases))})"
            )
        merged = _apply_overlay(base.raw, overlay, path)
        policy = _validate(Policy, merged, path, f"policy after overlay on {overlay.extends}")
        return LoadedPolicy(policy=policy, path=path, sha256=digest, raw=merged, overlay=overlay)
    policy = _validate(Policy, data, path, "policy")
    return LoadedPolicy(policy=policy, path=path, sha256=digest, raw=data)


def _pick(items: list, key: str) -> Any:
    for item in items:
        if isinstance(item, dict) and key in (
            item.get("warning_type"),
            item.get("rule_id"),
            item.get("id"),
            item.get("department"),
        ):
            return item
    return None


def _plain_copy(value: Any) -> Any:
    """A deep copy that does not keep YAML anchors shared (each version gets its own)."""
    if isinstance(value, dict):
        return {k: _plain_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_copy(v) for v in value]
    return value


def _apply_overlay(base: dict, overlay: Overlay, path: Path) -> dict:
    merged = _plain_copy(base)
    names = {v.get("version") for v in merged.get("versions", [])}
    unknown = set(overlay.versions or ()) - names
    if unknown:
        raise PovwatchError(f"{path}: overlay names unknown base version(s) {sorted(unknown)}")
    for version in merged.get("versions", []):
        if overlay.versions is not None and version.get("version") not in overlay.versions:
            continue
        for key, value in overlay.set.items():
            *parents, last = key.split(".")
            node: Any = version
            for seg in parents:
                node = _pick(node, seg) if isinstance(node, list) else node.get(seg)
                if node is None:
                    raise PovwatchError(
                        f"{path}: overlay key {key!r} matches nothing in base version "
                        f"{version.get('version')} ({seg!r} not found)"
                    )
            if isinstance(node, list):
                raise PovwatchError(f"{path}: overlay key {key!r} ends at a list")
            node[last] = _plain_copy(value)
        if overlay.mode == "narrow" and isinstance(version.get("assistance"), dict):
            # The user names the document's city: its own assistance amounts bind there.
            version["assistance"]["regions"] = list(overlay.regions)
    merged["policy_id"] = overlay.overlay_id
    merged["title"] = overlay.title
    merged["document"] = f"{overlay.document}（补充 {base.get('document', overlay.extends)}）"
    merged["regions"] = list(overlay.regions)
    return merged


def bundled_policy_files() -> list[Path]:
    return sorted(resource_dir("policies").glob("*.yaml"))


class PolicySet:
    """The policies of a run: the bundled files, then the user's, each later file binding
    its prefixes over earlier ones; the longest matching prefix wins."""

    def __init__(self, loaded: list[LoadedPolicy]) -> None:
        self.loaded = loaded
        self.by_prefix: dict[str, LoadedPolicy] = {}
        for lp in loaded:
            if lp.overlay is not None and lp.overlay.mode == "narrow":
                self.by_prefix = {
                    k: v
                    for k, v in self.by_prefix.items()
                    if v.policy.policy_id != lp.overlay.extends
                }
            for prefix in lp.policy.regions:
                self.by_prefix[prefix] = lp

    @classmethod
    def load(cls, extra: tuple[Path, ...] | list[Path] = ()) -> PolicySet:
        loaded: list[LoadedPolicy] = []
        bases: dict[str, LoadedPolicy] = {}
        for path in [*bundled_policy_files(), *extra]:
            lp = load_policy(path, bases)
            loaded.append(lp)
            bases.setdefault(lp.policy.policy_id, lp)
        return cls(loaded)

    def for_region(self, admdvs: str) -> LoadedPolicy | None:
        for n in range(len(admdvs), 1, -1):
            hit = self.by_prefix.get(admdvs[:n])
            if hit is not None:
                return hit
        return None

    def assistance_for(
        self, admdvs: str, day: dt.date
    ) -> tuple[LoadedPolicy, PolicyVersion, Assistance] | None:
        """The assistance section that binds a region on a day, or None.

        The region's policy (longest prefix) in the version in force, when its assistance
        section's own ``regions`` (if it names any) bind the region too: Jining's amounts
        bind 3708 only; the Hebei city's bind nothing until a ``mode: narrow`` overlay names
        the city.
        """
        lp = self.for_region(admdvs)
        version = lp.policy.version_at(day) if lp is not None else None
        if lp is None or version is None or version.assistance is None:
            return None
        regions = version.assistance.regions
        if regions is not None and not any(admdvs.startswith(r) for r in regions):
            return None
        return lp, version, version.assistance


def missing_assistance_values(version: PolicyVersion) -> list[str]:
    """Keys of assistance values left to the locality (needed by the calculator, not by
    the warnings)."""
    return _missing_in_assistance(version.assistance)


def missing_local_values(version: PolicyVersion) -> list[str]:
    """Keys of monitoring values the document leaves to the locality and nobody supplied
    yet: a run over the region cannot decide its warnings without them."""
    missing = []
    for rule in version.monitoring:
        base = f"monitoring.{rule.warning_type}"
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
