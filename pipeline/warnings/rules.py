"""Policies × burden → the month's warnings, routed to departments.

For person p and month M of year Y (contract "Warning semantics"):
- the policy is the one binding the longest admdvs prefix of p's registry region, in the
  version in force on the last day of the month;
- p's identities in force on the last day of the month decide the population (none: ordinary);
- threshold = round(factor × income in force, 2); income in force = the row with the greatest
  year ≤ Y − 1 among those published on or before the last day of the month;
- flagged when burden_ytd > threshold, strictly; ``first_month`` is the first month of Y in
  which p was flagged for that warning type, ``status`` new when that is M.

Rule resolution runs once per (region, month) — a few hundred combinations — and everything
per person is a polars join or expression.
"""

from __future__ import annotations

import polars as pl

from pipeline.errors import PovwatchError
from pipeline.months import Month
from pipeline.policy.load import PolicySet, income_region, missing_local_values, threshold_fen
from pipeline.policy.types import ORDINARY_IDENTITIES
from pipeline.warnings.burden import BURDEN_MEASURES, MEASURE_COLUMNS

RULE_SCHEMA = {
    "admdvs": pl.String,
    "m": pl.String,
    "warning_type": pl.String,
    "rule_id": pl.String,
    "rule_ordinary": pl.Boolean,
    "rule_identities": pl.List(pl.String),
    "rule_insutypes": pl.List(pl.String),
    "threshold_fen": pl.Int64,
    "policy_id": pl.String,
    "policy_version": pl.String,
    "income_admdvs": pl.String,
    "income_year": pl.Int32,
    "income_scope": pl.String,
    "burden_measure": pl.String,
    "unit": pl.String,
    # what the threshold was computed from (shown when a warning is explained)
    "factor": pl.String,
    "income_amount_fen": pl.Int64,
    "income_published_on": pl.Date,
}

ROUTE_SCHEMA = {
    "policy_id": pl.String,
    "policy_version": pl.String,
    "warning_type": pl.String,
    "department": pl.String,
    "route_ordinary": pl.Boolean,
    "route_identities": pl.List(pl.String),
    "route_rural": pl.Boolean,
}


def income_in_force(income: pl.DataFrame, admdvs: str, scope: str, month: Month) -> dict | None:
    """The reference income row in force for a region and scope in a month, or None."""
    rows = income.filter(
        (pl.col("admdvs") == admdvs)
        & (pl.col("scope") == scope)
        & (pl.col("year") <= month.year - 1)
        & (pl.col("published_on") <= month.last_day)
    ).sort(["year", "published_on"], descending=True)
    return rows.row(0, named=True) if rows.height else None


def resolve_rules(
    policies: PolicySet,
    regions_months: pl.DataFrame,
    income: pl.DataFrame,
    where: dict[str, str] | None = None,
) -> pl.DataFrame:
    """One row per (admdvs, m, warning_type) with the rule and threshold that apply.

    ``where`` maps a region code to a description of where it came from (file, row, column)
    for the error message. Raises PovwatchError when a region has no policy in force, a
    value left to the locality is missing, or no reference income is in force.
    """
    rows = []
    for admdvs, m in regions_months.select("admdvs", "m").unique().sort("admdvs", "m").iter_rows():
        month = Month.parse(m)
        origin = f"{where[admdvs]}: " if where and admdvs in where else ""
        loaded = policies.for_region(admdvs)
        if loaded is None:
            raise PovwatchError(
                f"{origin}region {admdvs} has no policy (no policy file binds a prefix of it); "
                "add one with --policy"
            )
        policy = loaded.policy
        version = policy.version_at(month.last_day)
        if version is None:
            raise PovwatchError(
                f"{origin}region {admdvs}: policy {policy.policy_id} has no version in force "
                f"on {month.last_day}"
            )
        missing = missing_local_values(version)
        if missing:
            raise PovwatchError(
                f"{origin}region {admdvs}: policy {policy.policy_id} (version {version.version}) "
                f"leaves {missing[0]} to the locality and no local policy file supplies it"
                + (f" (also missing: {', '.join(missing[1:])})" if missing[1:] else "")
            )
        for rule in version.monitoring:
            ref = rule.threshold.income
            income_admdvs = income_region(admdvs, ref.level)
            row = income_in_force(income, income_admdvs, ref.scope, month)
            if row is None:
                raise PovwatchError(
                    f"reference income missing: no {ref.scope} income of {income_admdvs} for a "
                    f"year ≤ {month.year - 1} published by {month.last_day} "
                    f"(needed by {rule.rule_id} for region {admdvs} in {month})"
                )
            ident = rule.population.identities
            rows.append(
                {
                    "admdvs": admdvs,
                    "m": m,
                    "warning_type": rule.warning_type,
                    "rule_id": rule.rule_id,
                    "rule_ordinary": ident == "ordinary",
                    "rule_identities": [] if ident == "ordinary" else list(ident),
                    "rule_insutypes": rule.population.insutypes,
                    "threshold_fen": threshold_fen(rule.threshold.factor, row["amount_fen"]),
                    "policy_id": policy.policy_id,
                    "policy_version": version.version,
                    "income_admdvs": income_admdvs,
                    "income_year": row["year"],
                    "income_scope": ref.scope,
                    "burden_measure": rule.burden_measure,
                    "unit": rule.unit,
                    "factor": str(rule.threshold.factor),
                    "income_amount_fen": row["amount_fen"],
                    "income_published_on": row["published_on"],
                }
            )
    return pl.DataFrame(rows, schema=RULE_SCHEMA)


def identities_by_month(identities: pl.DataFrame, months: list[Month]) -> pl.DataFrame:
    """(psn_no, m) → sorted list of identity codes in force on the month's last day."""
    ends = pl.DataFrame({"m": [str(m) for m in months], "_day": [m.last_day for m in months]})
    return (
        identities.lazy()
        .join(ends.lazy(), how="cross")
        .filter(
            (pl.col("begin_date") <= pl.col("_day"))
            & (pl.col("end_date").is_null() | (pl.col("end_date") >= pl.col("_day")))
        )
        .group_by("psn_no", "m")
        .agg(pl.col("identity").unique().sort().alias("identities"))
        .collect()
    )


def is_ordinary(column: str = "identities") -> pl.Expr:
    """No identity in force but those that leave a person ordinary (contract: 脱贫人口 alone
    is 普通参保人员 for the impoverishment rule)."""
    return (
        pl.col(column)
        .list.eval(pl.element().filter(~pl.element().is_in(sorted(ORDINARY_IDENTITIES))))
        .list.len()
        == 0
    )


def population_holds() -> pl.Expr:
    """The rule's identity condition: ``ordinary`` means no identity in force besides
    脱贫人口 (contract: identities); otherwise
    any of the rule's identities."""
    return (
        pl.when(pl.col("rule_ordinary"))
        .then(is_ordinary())
        .otherwise(
            pl.col("identities").list.set_intersection(pl.col("rule_identities")).list.len() > 0
        )
    )


def insutype_holds() -> pl.Expr:
    """The rule's insurance-type condition, when it restricts it."""
    return pl.col("rule_insutypes").is_null() | pl.col("rule_insutypes").list.contains(
        pl.col("insutype")
    ).fill_null(False)


def in_population() -> pl.Expr:
    """The rule's population holds: identities and, when restricted, the insurance type."""
    return population_holds() & insutype_holds()


def measured_burden() -> pl.Expr:
    """The ``burden__<measure>`` column the rule's ``burden_measure`` names."""
    return pl.coalesce(
        [
            pl.when(pl.col("burden_measure") == name).then(pl.col(f"burden__{name}"))
            for name in BURDEN_MEASURES
        ]
    )


def evaluate(
    burden: pl.DataFrame,
    registry: pl.DataFrame,
    idents: pl.DataFrame,
    rules: pl.DataFrame,
) -> pl.LazyFrame:
    """Every (person, m, rule of the person's region) with the rule's verdict, unfiltered.

    ``burden``: psn_no, m and the ``burden__<measure>`` columns; ``registry``: psn_no, hh_id,
    admdvs, insutype, rural, hh_size (and m, when it differs by month). A person-unit rule
    compares the person's burden with the threshold; a household-unit rule compares the
    household's burden with household size × the threshold, for every member of the household. Adds ``in_population`` and
    ``over`` (burden strictly greater than the threshold). :func:`flag` keeps the rows where
    both hold; ``warnings.explain`` shows all of them.
    """
    # a registry with ``m``: as in force in each month (compute.people_by_month)
    by_month = "m" in registry.columns
    person = burden.lazy().join(
        registry.lazy(), on=["psn_no", "m"] if by_month else "psn_no", how="inner"
    )
    candidates = [person.with_columns(pl.lit("person").alias("unit"), pl.lit(1).alias("_mult"))]
    if (rules["unit"] == "household").any():
        households = person.group_by("hh_id", "m").agg(pl.col(MEASURE_COLUMNS).sum())
        members = registry.lazy().join(
            households, on=["hh_id", "m"] if by_month else "hh_id", how="inner"
        )
        candidates.append(
            members.with_columns(
                pl.lit("household").alias("unit"), pl.col("hh_size").alias("_mult")
            )
        )
    return (
        pl.concat(candidates, how="diagonal_relaxed")
        .join(idents.lazy(), on=["psn_no", "m"], how="left")
        .with_columns(pl.col("identities").fill_null(pl.lit([], dtype=pl.List(pl.String))))
        .join(rules.lazy(), on=["admdvs", "m", "unit"], how="inner")
        .with_columns(
            measured_burden().alias("burden_ytd_fen"),
            (pl.col("threshold_fen") * pl.col("_mult")).alias("threshold_fen"),
        )
        .with_columns(
            in_population().alias("in_population"),
            (pl.col("burden_ytd_fen") > pl.col("threshold_fen")).alias("over"),
        )
        .drop("_mult", *MEASURE_COLUMNS)
    )


def flag(
    burden: pl.DataFrame,
    registry: pl.DataFrame,
    idents: pl.DataFrame,
    rules: pl.DataFrame,
) -> pl.DataFrame:
    """Rows of (psn_no, m, warning_type, burden_ytd_fen, threshold_fen…) for every rule whose
    population holds and whose burden is strictly over its threshold (see :func:`evaluate`)."""
    return (
        evaluate(burden, registry, idents, rules)
        .filter(pl.col("in_population") & pl.col("over"))
        .drop("in_population", "over")
        .collect()
    )


def route_table(policies: PolicySet) -> pl.DataFrame:
    rows = []
    for lp in policies.loaded:
        for version in lp.policy.versions:
            for route in version.routing:
                ident = route.identities
                rows.append(
                    {
                        "policy_id": lp.policy.policy_id,
                        "policy_version": version.version,
                        "warning_type": route.warning_type,
                        "department": route.department,
                        "route_ordinary": ident == "ordinary",
                        "route_identities": None if ident in (None, "ordinary") else list(ident),
                        "route_rural": route.rural,
                    }
                )
    return pl.DataFrame(rows, schema=ROUTE_SCHEMA).unique(maintain_order=True)


def route(warnings: pl.DataFrame, routes: pl.DataFrame) -> pl.DataFrame:
    """One row per (warning, department) the policy routes it to; an impoverishment warning
    of a 脱贫人口 also goes to 乡村振兴 (contract: identities)."""
    by_policy = (
        warnings.join(routes, on=["policy_id", "policy_version", "warning_type"], how="inner")
        .filter(
            pl.when(pl.col("route_ordinary"))
            .then(is_ordinary("identities_list"))
            .when(pl.col("route_identities").is_not_null())
            .then(
                pl.col("identities_list")
                .list.set_intersection(pl.col("route_identities"))
                .list.len()
                > 0
            )
            .otherwise(True)
            & (
                pl.col("route_rural").is_null()
                | (pl.col("rural").cast(pl.Boolean) == pl.col("route_rural")).fill_null(False)
            )
        )
        .drop("route_ordinary", "route_identities", "route_rural")
    )
    tuopin = warnings.filter(
        (pl.col("warning_type") == "impoverish") & pl.col("identities_list").list.contains("tuopin")
    ).with_columns(pl.lit("rural_revitalization").alias("department"))
    if tuopin.height == 0:
        return by_policy
    return pl.concat([by_policy, tuopin.select(by_policy.columns)]).unique(
        ["month", "psn_no", "warning_type", "department"], maintain_order=True
    )
