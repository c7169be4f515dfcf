"""Why a person is (or is not) warned in month M, for many persons at once.

The same frames feed ``povwatch explain`` (one person, text or JSON) and the department
reports (every warned person): there is no second implementation of the reasons.

- :func:`counted_settlements` — each settlement counted in burden_ytd of M: the data as of M
  (export folders up to M, loaded rows only), cost year = M's year (a reversal counts in its
  original's year), with the hospital, diagnosis, the amount each burden measure counts, and
  which reversal cancelled which;
- :func:`verdicts` — one row per person and rule of the person's region in M: the burden the
  rule measures, the threshold with its income figure and factor, whether the population
  (identities, insurance type) holds, whether the burden is over the line, the clause, and a
  Chinese sentence saying why. Built on ``rules.evaluate`` — the very expressions that flag.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from pipeline.errors import PovwatchError
from pipeline.labels import (
    EXPLAIN,
    IDENTITIES,
    INCOME_SCOPES,
    INSUTYPES,
    MED_CLASSES,
    REGIONS,
    STATUSES,
    WARNING_TYPES,
)
from pipeline.money import fen_text
from pipeline.months import Month
from pipeline.policy.load import PolicySet
from pipeline.warnings.burden import BURDEN_MEASURES, burden_as_of
from pipeline.warnings.compute import people_sql, warning_id_expr
from pipeline.warnings.rules import (
    evaluate,
    identities_by_month,
    insutype_holds,
    population_holds,
    resolve_rules,
)

SETTLEMENT_COLUMNS = [
    "psn_no",
    "setl_id",
    "setl_time",
    "export_month",
    "med_type",
    "med_class",
    "fixmedins_code",
    "fixmedins_name",
    "dise_codg",
    "dise_name",
    "refd_setl_flag",
    "init_setl_id",
    "psn_part_amt",
    "maf_pay",
    "fulamt_ownpay_amt",
]


@dataclass(frozen=True)
class Explanation:
    """``verdicts``: one row per (person, rule); ``settlements``: one row per counted
    settlement of the persons (and of their household members); ``members``: every member
    of the persons' households with the default burden (fen)."""

    verdicts: pl.DataFrame
    settlements: pl.DataFrame
    members: pl.DataFrame


# --------------------------------------------------------------------------- settlements


def counted_settlements(
    con: duckdb.DuckDBPyConnection, m: Month, persons: pl.Series
) -> pl.DataFrame:
    """Each settlement counted in the persons' burden_ytd of ``m``, oldest first.

    ``amount__<measure>`` is what the row adds to each burden measure (fen);
    ``reversal_of`` names the settlement a reversal cancels and ``reversed_by`` the
    reversal(s) that cancelled a settlement.
    """
    # read by name in the SQL below (warehouse.py, "Frames into SQL")
    explain_persons = pl.DataFrame({"psn_no": persons.unique()}).to_arrow()  # noqa: F841
    rows = con.execute(
        f"""
        select {", ".join(SETTLEMENT_COLUMNS)}
        from stg_settlements semi join explain_persons using (psn_no)
        where status = 'loaded' and export_month <= ? and cost_year = ?
        """,
        [str(m), m.year],
    ).pl()
    reversal = pl.col("refd_setl_flag") == 1
    reversed_by = (
        rows.filter(reversal)
        .group_by("init_setl_id")
        .agg(pl.col("setl_id").sort().str.join("、").alias("reversed_by"))
        .rename({"init_setl_id": "setl_id"})
    )
    return (
        rows.with_columns(
            pl.when(reversal).then(pl.col("init_setl_id")).alias("reversal_of"),
            *(expr.alias(f"amount__{name}") for name, expr in BURDEN_MEASURES.items()),
        )
        .join(reversed_by, on="setl_id", how="left")
        .sort("psn_no", "setl_time", "setl_id")
    )


# --------------------------------------------------------------------------- rule texts


def rule_citations(policies: PolicySet) -> pl.DataFrame:
    """One row per (policy, version, rule): file, document, clause and quote (metadata)."""
    rows = []
    for lp in policies.loaded:
        for version in lp.policy.versions:
            for rule in version.monitoring:
                rows.append(
                    {
                        "policy_id": lp.policy.policy_id,
                        "policy_version": version.version,
                        "rule_id": rule.rule_id,
                        "policy_file": lp.path.name,
                        "document": lp.policy.document,
                        "policy_title": lp.policy.title,
                        "clause": rule.threshold.cite.clause,
                        "quote": rule.threshold.cite.quote or "",
                        "population_clause": rule.population.cite.clause,
                        "population_quote": rule.population.cite.quote or "",
                    }
                )
    schema = {k: pl.String for k in rows[0]} if rows else None
    return pl.DataFrame(rows, schema=schema).unique(
        ["policy_id", "policy_version", "rule_id"], keep="last", maintain_order=True
    )


def _labels(codes: pl.Expr, table: dict[str, str]) -> pl.Expr:
    return codes.list.eval(
        pl.element().replace_strict(table, default=pl.element(), return_dtype=pl.String)
    ).list.join("、")


def _money(col: str) -> pl.Expr:
    return fen_text(pl.col(col)) + pl.lit(" 元")


def _why() -> pl.Expr:
    """The reason in Chinese, one sentence per (person, rule)."""
    income = pl.concat_str(
        pl.col("income_admdvs").replace_strict(
            REGIONS, default=pl.col("income_admdvs"), return_dtype=pl.String
        ),
        pl.col("income_year").cast(pl.String) + pl.lit("年"),
        pl.col("income_scope").replace_strict(INCOME_SCOPES, return_dtype=pl.String),
        pl.lit("人均可支配收入 "),
        _money("income_amount_fen"),
        pl.lit("（"),
        pl.col("income_published_on").cast(pl.String),
        pl.lit(" 公布）× "),
        pl.col("factor"),
    )
    line = pl.concat_str(
        pl.lit("年度累计个人负担 "),
        _money("burden_ytd_fen"),
        pl.lit("，预警标准 "),
        _money("threshold_fen"),
        pl.lit(" = "),
        income,
    )
    identities = (
        pl.when(pl.col("identities").list.len() == 0)
        .then(pl.lit(IDENTITIES["ordinary"]))
        .otherwise(_labels(pl.col("identities"), IDENTITIES))
    )
    watched = (
        pl.when(pl.col("rule_ordinary"))
        .then(pl.lit(IDENTITIES["ordinary"]))
        .otherwise(_labels(pl.col("rule_identities"), IDENTITIES))
    )
    insutypes = _labels(pl.col("rule_insutypes").fill_null([]), INSUTYPES)
    return (
        pl.when(~pl.col("population_ok"))
        .then(
            pl.concat_str(
                pl.lit(EXPLAIN["population"] + "：规则监测 "),
                watched,
                pl.lit("，本人在月末的身份为 "),
                identities,
                pl.lit("（"),
                pl.col("population_clause"),
                pl.lit("）。"),
            )
        )
        .when(~pl.col("insutype_ok"))
        .then(
            pl.concat_str(
                pl.lit(EXPLAIN["insutype"] + "：规则仅适用于 "),
                insutypes,
                pl.lit("，本人参保类型为 "),
                pl.col("insutype").replace_strict(
                    INSUTYPES, default=pl.col("insutype"), return_dtype=pl.String
                ),
                pl.lit("（"),
                pl.col("population_clause"),
                pl.lit("）。"),
            )
        )
        .when(pl.col("over"))
        .then(
            pl.concat_str(
                line,
                pl.lit("；超出 "),
                _money("excess_fen"),
                pl.lit("（"),
                pl.col("clause"),
                pl.lit("：须严格超过标准）。"),
            )
        )
        .otherwise(
            pl.concat_str(
                pl.lit(EXPLAIN["below"] + "："),
                line,
                pl.lit("；距标准还差 "),
                (fen_text(-pl.col("excess_fen")) + pl.lit(" 元")),
                pl.lit("（"),
                pl.col("clause"),
                pl.lit("：须严格超过标准）。"),
            )
        )
    )


# --------------------------------------------------------------------------- verdicts


def explain(
    con: duckdb.DuckDBPyConnection,
    m: Month,
    persons: pl.Series,
    registry: pl.DataFrame,
    identities: pl.DataFrame,
    rules: pl.DataFrame,
    citations: pl.DataFrame,
) -> Explanation:
    """Verdicts of every rule of their region in ``m`` for ``persons`` (set-based).

    ``registry``: psn_no, hh_id, admdvs, insutype, rural, hh_size of ``persons`` and their
    households' members in the registry in force for m (``people_sql``);
    ``identities``: psn_no, identity, begin_date, end_date; ``rules``: ``resolve_rules``
    rows (any months; those of m are used); ``citations``: :func:`rule_citations`.
    """
    wanted = registry.filter(pl.col("psn_no").is_in(persons.implode()))
    # Household rules sum every member's burden: explain them with their households.
    members = registry.filter(pl.col("hh_id").is_in(wanted["hh_id"].implode()))
    settlements = counted_settlements(con, m, members["psn_no"])
    burden = burden_as_of(settlements, m)
    all_burden = (
        members.select("psn_no")
        .join(burden, on="psn_no", how="left")
        .with_columns(pl.lit(str(m)).alias("m"))
        .with_columns(pl.col(f"burden__{n}").fill_null(0) for n in BURDEN_MEASURES)
    )
    idents = identities_by_month(
        identities.filter(pl.col("psn_no").is_in(members["psn_no"].implode())), [m]
    )
    verdicts = (
        evaluate(all_burden, members, idents, rules.filter(pl.col("m") == str(m)))
        .filter(pl.col("psn_no").is_in(persons.implode()))
        .collect()
        .join(citations, on=["policy_id", "policy_version", "rule_id"], how="left")
        .with_columns(
            population_ok=population_holds(),
            insutype_ok=insutype_holds(),
            excess_fen=pl.col("burden_ytd_fen") - pl.col("threshold_fen"),
            warned=pl.col("in_population") & pl.col("over"),
            month=pl.lit(str(m)),
        )
        .with_columns(_why().alias("why"))
        .with_columns(warning_id_expr())
        .sort("psn_no", pl.col("warning_type").cast(pl.Enum(list(WARNING_TYPES))))
    )
    # in psn_no order: the registry's rows arrive in no fixed order, and the month's published
    # Parquet must be the same bytes on every run
    member_burden = (
        members.join(all_burden, on="psn_no", how="left")
        .select("psn_no", "hh_id", pl.col("burden__after_insurance").alias("burden_fen"))
        .sort("psn_no")
    )
    return Explanation(verdicts=verdicts, settlements=settlements, members=member_burden)


def explain_warnings(
    con: duckdb.DuckDBPyConnection,
    m: Month,
    warnings: pl.DataFrame,
    rules: pl.DataFrame,
    policies: PolicySet,
) -> Explanation:
    """The explanation of every warned person of the month (the reports' "why")."""
    identities = con.sql("select psn_no, identity, begin_date, end_date from ref_identities").pl()
    persons = warnings["psn_no"].unique()
    return explain(
        con,
        m,
        persons,
        people_sql(con, persons, households=True),
        identities,
        rules,
        rule_citations(policies),
    )


def counted_amount() -> pl.Expr:
    """A settlement's ``amount__<measure>`` for the rule's ``burden_measure`` column."""
    return pl.coalesce(
        [
            pl.when(pl.col("burden_measure") == name).then(pl.col(f"amount__{name}"))
            for name in BURDEN_MEASURES
        ]
    ).alias("amount_fen")


# --------------------------------------------------------------------------- one person


def _reference(landing: Path, m: Month, warehouse: duckdb.DuckDBPyConnection):
    """The reference data the run of ``m`` used: the landing's snapshots in force for m when
    the landing folder is there (a later run replaced the warehouse's), else the warehouse's."""
    if not (landing / "persons").is_dir():
        return warehouse
    from pipeline.ingest.load import IngestReport, load_reference
    from pipeline.store.warehouse import sql

    mem = duckdb.connect()
    mem.execute(sql("schema/warehouse"))
    mem.execute(sql("schema/macros"))
    load_reference(mem, landing, m, IngestReport())
    return mem


def explain_person(
    db: Path, landing: Path, policy_files: tuple[Path, ...], m: Month, psn_no: str
) -> dict:
    """The explanation of one person in ``m`` as a JSON-ready dict (money as yuan text)."""
    from pipeline.store.ledger import require_run
    from pipeline.store.warehouse import connect

    con = connect(db, read_only=True)
    try:
        require_run(con, db, m)
        ref = _reference(landing, m, con)
        registry = people_sql(ref, pl.Series([psn_no]), households=True)
        person = registry.filter(pl.col("psn_no") == psn_no)
        if person.height == 0:
            raise PovwatchError(
                f"--psn: the person number given is not in the registry in force for {m}"
            )
        identities = ref.sql(
            "select psn_no, identity, begin_date, end_date from ref_identities"
        ).pl()
        income = ref.sql(
            "select admdvs, year, scope, amount_fen, published_on from ref_income"
        ).pl()
        policies = PolicySet.load(policy_files)
        rules = resolve_rules(
            policies, pl.DataFrame({"admdvs": [person["admdvs"][0]], "m": [str(m)]}), income
        )
        ex = explain(
            con, m, pl.Series([psn_no]), registry, identities, rules, rule_citations(policies)
        )
        stored = con.sql(
            "select warning_type, status, first_month from mart_warnings "
            "where month = ? and psn_no = ?",
            params=[str(m), psn_no],
        ).pl()
        routes = con.sql(
            "select warning_type, department from mart_warning_routes "
            "where month = ? and psn_no = ? order by department",
            params=[str(m), psn_no],
        ).pl()
    finally:
        con.close()
    return person_document(ex, person.row(0, named=True), m, stored, routes)


def _yuan(fen: int | None) -> str | None:
    return None if fen is None else pl.select(fen_text(pl.lit(fen, dtype=pl.Int64))).item()


def person_document(
    ex: Explanation, person: dict, m: Month, stored: pl.DataFrame, routes: pl.DataFrame
) -> dict:
    v = ex.verdicts.join(stored, on="warning_type", how="left")
    # The rule shown first: the one that warned, else the one whose population holds, else
    # the region's first rule (every rule is listed under "rules").
    v = v.with_columns(
        pl.when(pl.col("warned"))
        .then(0)
        .when(pl.col("in_population"))
        .then(1)
        .otherwise(2)
        .alias("_rank")
    ).sort("_rank", maintain_order=True)
    rules = []
    for r in v.iter_rows(named=True):  # one row per rule of the region (two at most)
        settlements = (
            ex.settlements.filter(pl.col("psn_no") == person["psn_no"])
            .with_columns(pl.lit(r["burden_measure"]).alias("burden_measure"))
            .with_columns(counted_amount())
            .select(
                "setl_id",
                pl.col("setl_time").dt.strftime("%Y-%m-%d %H:%M:%S"),
                "export_month",
                "med_type",
                pl.col("med_class").replace_strict(MED_CLASSES, default=None).alias("med_class"),
                "fixmedins_code",
                "fixmedins_name",
                "dise_codg",
                "dise_name",
                fen_text(pl.col("amount_fen")).alias("amount"),
                "reversal_of",
                "reversed_by",
            )
        )
        rules.append(
            {
                "rule_id": r["rule_id"],
                "warning_type": r["warning_type"],
                "warning_label": WARNING_TYPES[r["warning_type"]],
                "warned": r["warned"],
                "applies": r["in_population"],
                "reason": "warned"
                if r["warned"]
                else "population"
                if not r["population_ok"]
                else "insutype"
                if not r["insutype_ok"]
                else "below",
                "why": r["why"],
                "status": r["status"] if r["warned"] else None,
                "first_month": r["first_month"] if r["warned"] else None,
                "warning_id": r["warning_id"] if r["warned"] else None,
                "policy_id": r["policy_id"],
                "policy_version": r["policy_version"],
                "policy_file": r["policy_file"],
                "document": r["document"],
                "clause": r["clause"],
                "quote": r["quote"],
                "population_clause": r["population_clause"],
                "population_quote": r["population_quote"],
                "burden_measure": r["burden_measure"],
                "unit": r["unit"],
                "burden_ytd": _yuan(r["burden_ytd_fen"]),
                "threshold": _yuan(r["threshold_fen"]),
                "difference": _yuan(r["excess_fen"]),
                "factor": r["factor"],
                "income": {
                    "admdvs": r["income_admdvs"],
                    "year": r["income_year"],
                    "scope": r["income_scope"],
                    "amount": _yuan(r["income_amount_fen"]),
                    "published_on": r["income_published_on"].isoformat(),
                },
                "settlements": settlements.to_dicts(),
            }
        )
    if not rules:  # a region whose policy has no monitoring rules
        raise PovwatchError(f"month {m}: the policy of the person's region has no monitoring rule")
    top = rules[0]
    identities = v["identities"][0].to_list() if v.height else []
    return {
        "month": str(m),
        "psn_no": person["psn_no"],
        "hh_id": person["hh_id"],
        "admdvs": person["admdvs"],
        "insutype": person["insutype"],
        "identities": identities,
        "warned": any(r["warned"] for r in rules),
        "departments": routes.filter(pl.col("warning_type") == top["warning_type"])[
            "department"
        ].to_list()
        if top["warned"]
        else [],
        **{
            k: top[k]
            for k in (
                "warning_type",
                "status",
                "first_month",
                "warning_id",
                "rule_id",
                "policy_id",
                "policy_version",
                "policy_file",
                "document",
                "clause",
                "quote",
                "burden_measure",
                "burden_ytd",
                "threshold",
                "difference",
                "factor",
                "income",
                "reason",
                "why",
                "settlements",
            )
        },
        "rules": rules,
    }


def render_json(doc: dict) -> str:
    return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"


def render_text(doc: dict) -> str:
    """The explanation for an officer, in Chinese."""
    out = [
        f"{doc['month']} 个人编号 {doc['psn_no']}（户号 {doc['hh_id']}，区划 {doc['admdvs']}，"
        f"{INSUTYPES.get(doc['insutype'], doc['insutype'] or '参保类型不详')}）",
        "月末身份："
        + ("、".join(IDENTITIES.get(i, i) for i in doc["identities"]) or IDENTITIES["ordinary"]),
        "结论："
        + (
            f"{EXPLAIN['warned']}（{WARNING_TYPES[doc['warning_type']]}，"
            f"{STATUSES.get(doc['status'] or '', '')}，首次预警 {doc['first_month']}，"
            f"预警编号 {doc['warning_id']}）"
            if doc["warned"]
            else EXPLAIN["not_warned"]
            + ("" if any(r["applies"] for r in doc["rules"]) else "：" + EXPLAIN["no_rule"])
        ),
    ]
    for r in doc["rules"]:
        inc = r["income"]
        out += [
            "",
            f"规则 {r['rule_id']}（{r['warning_label']}）— {r['document']} {r['clause']}"
            f"（政策文件 {r['policy_file']}，版本 {r['policy_version']}）",
            f"  原文：“{r['quote']}”",
            f"  监测人群（{r['population_clause']}）：“{r['population_quote']}”",
            f"  预警标准：{r['threshold']} 元 = {REGIONS.get(inc['admdvs'], inc['admdvs'])}"
            f"（{inc['admdvs']}）{inc['year']}年{INCOME_SCOPES[inc['scope']]}人均可支配收入 "
            f"{inc['amount']} 元（{inc['published_on']} 公布）× {r['factor']}",
            f"  年度累计个人负担：{r['burden_ytd']} 元（{len(r['settlements'])} 笔结算）",
            f"  判定：{r['why']}",
        ]
    settlements = doc["settlements"]
    out += ["", f"计入 {doc['month'][:4]} 年度累计负担的结算（截至 {doc['month']} 的数据）："]
    if not settlements:
        out.append("  （无）")
    for s in settlements:
        note = ""
        if s["reversal_of"]:
            note = f"  冲销 {s['reversal_of']}"
        if s["reversed_by"]:
            note += f"  已被 {s['reversed_by']} 冲销"
        place = s["fixmedins_name"] or "医疗机构不详"
        dise = f"  {s['dise_name']}" if s["dise_name"] else ""
        out.append(
            f"  {s['setl_time']}  {s['setl_id']}  {s['med_class'] or ''}({s['med_type']})  "
            f"{place}{dise}  {s['amount']} 元{note}"
        )
    out.append(f"  合计 {doc['burden_ytd']} 元")
    return "\n".join(out) + "\n"
