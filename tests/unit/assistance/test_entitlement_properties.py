"""Properties of the set-based entitlement: never above the eligible cost nor the caps, never
negative, and equal to the per-person calculator where one ratio applies."""

from __future__ import annotations

import datetime as dt

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.assistance.calculator import assistance_for_year, tier_for_year
from pipeline.assistance.entitlement import compute_entitlements, resolve_terms
from pipeline.months import Month
from pipeline.policy.load import PolicySet
from tests.unit.assistance.test_entitlement import HEBEI, INCOME, ROW_SCHEMA

POLICIES = PolicySet.load()
JUNE = Month(2024, 6)
REGIONS = ["370811", "130503", "610802"]
IDENTITIES = ["tekun", "dibao", "fanpin", "dibao_edge", "monitor_edge", "orphan", "tuopin"]
TERMS = {r: resolve_terms(HEBEI if r[:2] == "13" else POLICIES, [r], JUNE, INCOME) for r in REGIONS}
IDENT_SCHEMA = {
    "psn_no": pl.String,
    "identity": pl.String,
    "begin_date": pl.Date,
    "end_date": pl.Date,
}

settlement = st.fixed_dictionaries(
    {
        "day": st.dates(dt.date(2024, 1, 1), dt.date(2024, 6, 30)),
        "med_class": st.sampled_from(["inpatient", "outpatient_chronic", "outpatient", "pharmacy"]),
        "part": st.integers(0, 8_000_000),
        "maf": st.integers(0, 3_000_000),
        "own": st.integers(0, 500_000),
    }
)


def _frames(region, identity, rows):
    frame = pl.DataFrame(
        [
            {
                "psn_no": "P",
                "setl_time": dt.datetime.combine(r["day"], dt.time(9)),
                "cost_year": 2024,
                "med_class": r["med_class"],
                "psn_part_amt": r["part"],
                "maf_pay": r["maf"],
                "fulamt_ownpay_amt": min(r["own"], r["part"]),
                "overlmt_selfpay": 0,
                "preselfpay_amt": 0,
            }
            for r in rows
        ],
        schema=ROW_SCHEMA,
    )
    idents = pl.DataFrame(
        [
            {
                "psn_no": "P",
                "identity": identity,
                "begin_date": dt.date(2020, 1, 1),
                "end_date": None,
            }
        ],
        schema=IDENT_SCHEMA,
    )
    registry = pl.DataFrame({"psn_no": ["P"], "admdvs": [region], "brdy": ["1970-05-05"]})
    return frame, idents, registry


@settings(max_examples=150, deadline=None)
@given(
    region=st.sampled_from(REGIONS),
    identity=st.sampled_from(IDENTITIES),
    rows=st.lists(settlement, min_size=1, max_size=8),
)
def test_entitled_within_eligible_cost_and_caps(region, identity, rows):
    terms = TERMS[region]
    out = compute_entitlements(*_frames(region, identity, rows), terms, JUNE)
    if out.height == 0:
        return
    r = out.row(0, named=True)
    if r["entitled_fen"] is None:
        return
    assert 0 <= r["entitled_fen"] <= r["eligible_cost_fen"]
    caps = [
        *terms.rules.unique("cap_key").select("cap_fen").to_series().to_list(),
        *terms.tiers.unique("t_cap_key").select("t_cap_fen").to_series().to_list(),
    ]
    if None not in caps:  # a no-cap rule (Yulin 一类) bounds only by the eligible cost
        assert r["entitled_fen"] <= sum(caps)


@settings(max_examples=100, deadline=None)
@given(
    identity=st.sampled_from(["tekun", "dibao", "dibao_edge", "monitor_sudden"]),
    rows=st.lists(settlement, min_size=1, max_size=8),
)
def test_jining_equals_the_calculator(identity, rows):
    """One ratio per rule: the set-based sum equals assistance_for_year + tier_for_year."""
    va = POLICIES.for_region("370811").policy.version_at(JUNE.last_day).assistance
    out = compute_entitlements(*_frames("370811", identity, rows), TERMS["370811"], JUNE)
    r = out.row(0, named=True)
    in_scope = [x for x in rows if x["med_class"] in ("inpatient", "outpatient_chronic")]
    eligible = sum(x["part"] + x["maf"] - min(x["own"], x["part"]) for x in in_scope)
    cat = "cat1" if identity in ("tekun", "dibao") else "cat2"
    first = assistance_for_year(va, cat, "inpatient", max(eligible, 0))
    tier_id = {"cat1": "JN-C1-RE", "cat2": "JN-C2-RE"}[cat]
    left = max(eligible, 0) - first
    tier = tier_for_year(va, tier_id, left, category_id=cat, scope="inpatient")
    assert r["eligible_cost_fen"] == max(eligible, 0)
    assert r["entitled_fen"] == first + tier
