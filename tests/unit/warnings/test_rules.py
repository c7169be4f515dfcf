"""pipeline/warnings/rules.py on tiny polars frames: each boundary of the contract's warning
semantics pinned (last day of the month, ≤ versus <, year − 1, strictly greater)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
import yaml

from pipeline.errors import PovwatchError
from pipeline.months import Month
from pipeline.policy.load import PolicySet
from pipeline.warnings.rules import (
    flag,
    identities_by_month,
    income_in_force,
    resolve_rules,
    route,
    route_table,
)

REPO = Path(__file__).resolve().parents[3]
MARCH = Month(2024, 3)


def _income(*rows: tuple[str, int, str, int, dt.date]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={
            "admdvs": pl.String,
            "year": pl.Int32,
            "scope": pl.String,
            "amount_fen": pl.Int64,
            "published_on": pl.Date,
        },
        orient="row",
    )


# Shandong all-resident income: 2022 37 560.00; 2023 39 890.00 (invented publication dates)
SD_2022 = ("370000", 2022, "all", 3_756_000, dt.date(2023, 1, 20))


def test_income_published_on_the_months_last_day_counts():
    # contract: published_on ≤ the last day of M (not <)
    income = _income(SD_2022, ("370000", 2023, "all", 3_989_000, dt.date(2024, 3, 31)))
    assert income_in_force(income, "370000", "all", MARCH)["year"] == 2023
    # published the day after: March still uses 2022
    income = _income(SD_2022, ("370000", 2023, "all", 3_989_000, dt.date(2024, 4, 1)))
    assert income_in_force(income, "370000", "all", MARCH)["year"] == 2022


def test_income_of_the_current_year_never_counts():
    # contract: the greatest year ≤ Y − 1; a 2024 figure already published (a forecast, a
    # mid-year release) must not be used in 2024
    income = _income(
        SD_2022,
        ("370000", 2023, "all", 3_989_000, dt.date(2024, 2, 15)),
        ("370000", 2024, "all", 4_200_000, dt.date(2024, 1, 5)),
    )
    got = income_in_force(income, "370000", "all", MARCH)
    assert (got["year"], got["amount_fen"]) == (2023, 3_989_000)
    # scope and region must match
    assert income_in_force(income, "370000", "rural", MARCH) is None
    assert income_in_force(income, "130000", "all", MARCH) is None


def _idents(*rows: tuple[str, str, dt.date, dt.date | None]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={
            "psn_no": pl.String,
            "identity": pl.String,
            "begin_date": pl.Date,
            "end_date": pl.Date,
        },
        orient="row",
    )


def test_identity_in_force_on_the_months_last_day():
    # contract: in force from begin_date to end_date, both included, on the last day of M
    idents = _idents(
        ("PBEGIN", "dibao_edge", dt.date(2024, 3, 31), None),  # begins on the last day
        ("PLATE", "dibao_edge", dt.date(2024, 4, 1), None),  # the day after
        ("PEND", "monitor_edge", dt.date(2023, 1, 1), dt.date(2024, 3, 31)),  # ends on it
        ("PGONE", "monitor_edge", dt.date(2023, 1, 1), dt.date(2024, 3, 30)),  # ended before
        ("PTWO", "tuopin", dt.date(2020, 1, 1), None),
        ("PTWO", "monitor_unstable", dt.date(2024, 2, 1), None),
    )
    got = identities_by_month(idents, [Month(2024, 2), MARCH]).sort("psn_no", "m")
    assert got.rows() == [
        ("PBEGIN", "2024-03", ["dibao_edge"]),
        ("PEND", "2024-02", ["monitor_edge"]),
        ("PEND", "2024-03", ["monitor_edge"]),
        ("PGONE", "2024-02", ["monitor_edge"]),
        ("PTWO", "2024-02", ["monitor_unstable", "tuopin"]),
        ("PTWO", "2024-03", ["monitor_unstable", "tuopin"]),
    ]


def _rules(**over) -> pl.DataFrame:
    base = {
        "admdvs": "370811",
        "m": "2024-03",
        "warning_type": "impoverish",
        "rule_id": "JN-IMPOVERISH-150",
        "rule_ordinary": True,
        "rule_identities": [],
        "rule_insutypes": None,
        "threshold_fen": 5_983_500,  # 004 §六: 150% × 39 890.00 = 59 835.00
        "policy_id": "jining-2022-14",
        "policy_version": "2023-01",
        "income_admdvs": "370000",
        "income_year": 2023,
        "income_scope": "all",
        "burden_measure": "after_insurance",
        "unit": "person",
    }
    relapse = {
        **base,
        "warning_type": "relapse",
        "rule_id": "JN-RELAPSE-50",
        "rule_ordinary": False,
        "rule_identities": ["dibao_edge", "monitor_unstable", "monitor_edge", "monitor_sudden"],
        "threshold_fen": 1_994_500,  # 004 §六: 50% × 39 890.00 = 19 945.00
    }
    from pipeline.warnings.rules import RULE_SCHEMA

    return pl.DataFrame([{**base, **over}, {**relapse, **over}], schema=RULE_SCHEMA)


def _burden(rows: dict[str, int]) -> pl.DataFrame:
    """person → burden (fen) under every measure, as of March 2024."""
    from pipeline.warnings.burden import MEASURE_COLUMNS

    return pl.DataFrame(
        {
            "psn_no": list(rows),
            "m": ["2024-03"] * len(rows),
            **{c: list(rows.values()) for c in MEASURE_COLUMNS},
        },
        schema_overrides={c: pl.Int64 for c in MEASURE_COLUMNS},
    )


def _registry(*psn: str, insutype: str = "390") -> pl.DataFrame:
    return pl.DataFrame(
        {
            "psn_no": list(psn),
            "hh_id": [f"H{p}" for p in psn],
            "admdvs": ["370811"] * len(psn),
            "insutype": [insutype] * len(psn),
            "rural": [1] * len(psn),
            "hh_size": [1] * len(psn),
        },
        schema_overrides={"rural": pl.Int32, "hh_size": pl.Int64},
    )


def _flagged(burden: dict[str, int], idents: dict[str, list[str]], **rule_over) -> list[tuple]:
    ident_frame = pl.DataFrame(
        {
            "psn_no": list(idents),
            "m": ["2024-03"] * len(idents),
            "identities": list(idents.values()),
        },
        schema={"psn_no": pl.String, "m": pl.String, "identities": pl.List(pl.String)},
    )
    got = flag(_burden(burden), _registry(*burden), ident_frame, _rules(**rule_over))
    return sorted(got.select("psn_no", "warning_type", "burden_ytd_fen").rows())


def test_strictly_greater_than_the_threshold():
    # 004 §六: 59 835.00 is not over 59 835.00; 59 835.01 is
    assert _flagged({"PEQ": 5_983_500, "POVER": 5_983_501}, {}) == [
        ("POVER", "impoverish", 5_983_501)
    ]
    # relapse: 19 945.00 is not over 19 945.00; 19 945.01 is
    assert _flagged(
        {"PEQ": 1_994_500, "POVER": 1_994_501},
        {"PEQ": ["dibao_edge"], "POVER": ["monitor_sudden"]},
    ) == [("POVER", "relapse", 1_994_501)]


def test_tuopin_alone_is_ordinary_and_nobody_falls_through_both_rules():
    # contract (identities): 脱贫人口 alone → impoverishment rule; with a monitoring identity
    # → the relapse rule; the assistance net (特困, 低保, 因病致贫 …) → no warning
    burden = {p: 9_000_000 for p in ("PT", "PTM", "PK", "PD", "PI", "PX", "PO")}
    got = _flagged(
        burden,
        {
            "PT": ["tuopin"],
            "PTM": ["monitor_edge", "tuopin"],
            "PK": ["tekun"],
            "PD": ["dibao"],
            "PI": ["illness_poor"],
            "PX": ["expense_poor"],
        },
    )
    assert got == [
        ("PO", "impoverish", 9_000_000),
        ("PT", "impoverish", 9_000_000),
        ("PTM", "relapse", 9_000_000),
    ]


def test_the_rule_may_restrict_the_insurance_type():
    # 003 §四(一): impoverishment only for 城乡居民基本医保 (390)
    ident = pl.DataFrame(
        schema={"psn_no": pl.String, "m": pl.String, "identities": pl.List(pl.String)}
    )
    rules = _rules(rule_insutypes=["390"])
    emp = flag(_burden({"P310": 9_000_000}), _registry("P310", insutype="310"), ident, rules)
    res = flag(_burden({"P390": 9_000_000}), _registry("P390"), ident, rules)
    assert emp.height == 0 and res["psn_no"].to_list() == ["P390"]


def test_tuopin_impoverishment_warnings_also_go_to_rural_revitalization():
    ps = PolicySet.load()
    warnings = pl.DataFrame(
        {
            "month": ["2024-03", "2024-03"],
            "psn_no": ["PT", "PO"],
            "warning_type": ["impoverish", "impoverish"],
            "policy_id": ["jining-2022-14"] * 2,
            "policy_version": ["2023-01"] * 2,
            "identities_list": [["tuopin"], []],
            "rural": [0, 0],
        },
        schema_overrides={"rural": pl.Int32},
    )
    got = (
        route(warnings, route_table(ps)).select("psn_no", "department").sort("psn_no", "department")
    )
    assert got.rows() == [
        ("PO", "civil_affairs"),
        ("PT", "civil_affairs"),
        ("PT", "rural_revitalization"),
    ]


def _policy_file(tmp_path: Path, policy_id: str, regions: list[str], factor: str) -> Path:
    data = yaml.safe_load((REPO / "policies" / "jining-370800.yaml").read_text(encoding="utf-8"))
    data.update(policy_id=policy_id, regions=regions)
    data["versions"][0]["monitoring"][1]["threshold"]["factor"] = factor
    path = tmp_path / f"{policy_id}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_nested_prefixes_resolve_to_the_longest_match(tmp_path):
    # a province file binding 37 (factor 2.00) over the bundled city file binding 3708
    # (1.50): Jining keeps 1.50 × 39 890.00 = 59 835.00, Qingdao gets 2.00 × = 79 780.00
    ps = PolicySet.load([_policy_file(tmp_path, "shandong", ["37"], "2.00")])
    income = _income(SD_2022, ("370000", 2023, "all", 3_989_000, dt.date(2024, 2, 15)))
    regions = pl.DataFrame({"admdvs": ["370811", "370211"], "m": ["2024-03", "2024-03"]})
    got = (
        resolve_rules(ps, regions, income)
        .filter(pl.col("warning_type") == "impoverish")
        .sort("admdvs")
        .select("admdvs", "policy_id", "threshold_fen")
        .rows()
    )
    assert got == [("370211", "shandong", 7_978_000), ("370811", "jining-2022-14", 5_983_500)]


def test_a_region_without_policy_or_income_stops():
    ps = PolicySet.load()
    income = _income(SD_2022)
    with pytest.raises(PovwatchError, match="region 370211 has no policy"):
        resolve_rules(ps, pl.DataFrame({"admdvs": ["370211"], "m": ["2024-03"]}), income)
    with pytest.raises(PovwatchError, match="reference income missing: no rural income of 130000"):
        resolve_rules(ps, pl.DataFrame({"admdvs": ["130503"], "m": ["2024-03"]}), income)
