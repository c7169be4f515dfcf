"""The assistance sections of the five bundled policy files, clause by clause.

Each test cites the clause of the source document (../shared/seeds/) and the number
computed by hand. Money in fen: 1 234.56 yuan = 123_456. Figures marked "invented" are
made up for the test (the documents give none); the arithmetic is what is checked.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from pipeline.assistance.calculator import (
    assistance_for_year,
    category_for,
    critical_illness_terms,
    identity_effective_from,
    income_for_deductible,
    premium_subsidy_fen,
    rule_for,
    tier_for_year,
)
from pipeline.errors import PovwatchError
from pipeline.policy.load import Policy, PolicySet, load_policy
from pipeline.policy.types import Assistance, Citation, missing_local_values

POLICIES = Path(__file__).resolve().parents[3] / "policies"
SEEDS = Path(__file__).resolve().parents[4] / "shared" / "seeds"  # ../shared/seeds


def _policy(name: str) -> Policy:
    return load_policy(POLICIES / name).policy


def _assistance(name: str, day: dt.date) -> Assistance:
    version = _policy(name).version_at(day)
    assert version is not None and version.assistance is not None
    return version.assistance


def _with_local_values(name: str, values: dict[str, object]) -> Assistance:
    """The file's first version with ``local`` values supplied, as a local file would:
    keys are ``rules.<id>.cap.yuan`` style paths inside the assistance section."""
    raw = yaml.safe_load((POLICIES / name).read_text(encoding="utf-8"))
    section = raw["versions"][0]["assistance"]
    for key, value in values.items():
        *parents, last = key.split(".")
        node = section
        for seg in parents:
            node = (
                next(i for i in node if i.get("id") == seg) if isinstance(node, list) else node[seg]
            )
        node[last] = value
    return Assistance.model_validate(section)


def yuan(text: str) -> int:
    return int(Decimal(text) * 100)


def test_all_five_bundled_files_load_with_an_assistance_section_in_every_version():
    ps = PolicySet.load()
    ids = {lp.policy.policy_id for lp in ps.loaded}
    assert {"jilin-2022-16", "yulin-2023-4", "guangdong-2022-40", "hebei-city-2022"} <= ids
    assert "jining-2022-14" in ids
    for lp in ps.loaded:
        for v in lp.policy.versions:
            assert v.assistance is not None, (lp.policy.policy_id, v.version)


# --- 004 Jining -------------------------------------------------------------------------------

JINING = "jining-370800.yaml"
JN_DAY = dt.date(2024, 6, 30)


def test_jining_categories_and_precedence():
    a = _assistance(JINING, JN_DAY)
    # 004 §二: 就高不重复 — 特困 + 低保边缘 → category 1 (特困、低保、返贫致贫)
    assert category_for(a, ["dibao_edge", "tekun"]).id == "cat1"
    # 低保边缘 + 因病致贫重病患者 → category 2
    assert category_for(a, ["illness_poor", "dibao_edge"]).id == "cat2"
    assert category_for(a, ["illness_poor"]).by_application  # 004 §四(三) 通过申请方式
    assert category_for(a, ["tuopin"]) is None
    assert a.regions == ["3708"]  # the amounts are Jining's own


def test_jining_category_1_no_deductible_70_percent():
    a = _assistance(JINING, JN_DAY)
    # 004 §四(一): 不设年度起付线, 70% → burden 30 000.00 × 70% = 21 000.00
    assert assistance_for_year(a, "cat1", "inpatient", yuan("30000")) == yuan("21000")
    # 0.01 yuan × 70% = 0.007 → 0.01 (half up at the fen)
    assert assistance_for_year(a, "cat1", "inpatient", 1) == 1


def test_jining_category_1_cap_hit():
    a = _assistance(JINING, JN_DAY)
    # 004 §四(一): 100 000.00 × 70% = 70 000.00 > 年度救助限额 6 万元 → 60 000.00
    assert assistance_for_year(a, "cat1", "outpatient_chronic", yuan("100000")) == yuan("60000")


def test_jining_inpatient_and_chronic_share_one_cap():
    a = _assistance(JINING, JN_DAY)
    # 004 §四: 住院和门诊慢特病费用共用年度医疗救助和再救助限额 — one rule covers both
    assert rule_for(a, "cat2", "inpatient").id == rule_for(a, "cat2", "outpatient_chronic").id
    # 50 000.00 already paid for inpatient stays; chronic burden 20 000.00 → 14 000.00,
    # only 60 000 − 50 000 = 10 000.00 left
    got = assistance_for_year(
        a, "cat1", "outpatient_chronic", yuan("20000"), paid_so_far_fen=yuan("50000")
    )
    assert got == yuan("10000")


def test_jining_re_assistance_category_1():
    a = _assistance(JINING, JN_DAY)
    # 004 §四(一) 再救助: burden 20 000.00 → base 14 000.00, left 6 000.00;
    # (6 000 − 5 000) × 70% = 700.00
    base = assistance_for_year(a, "cat1", "inpatient", yuan("20000"))
    assert base == yuan("14000")
    left = yuan("20000") - base
    assert tier_for_year(a, "JN-C1-RE", left, category_id="cat1", scope="inpatient") == yuan("700")
    # burden 100 000.00 → base 60 000.00 (cap), left 40 000.00;
    # (40 000 − 5 000) × 70% = 24 500.00 > 再救助限额 2 万元 → 20 000.00
    left = yuan("100000") - assistance_for_year(a, "cat1", "inpatient", yuan("100000"))
    assert tier_for_year(a, "JN-C1-RE", left, category_id="cat1", scope="inpatient") == yuan(
        "20000"
    )
    # the category-1 tier does not cover category 2
    assert tier_for_year(a, "JN-C1-RE", left, category_id="cat2", scope="inpatient") == 0


def test_jining_category_2_and_its_re_assistance():
    a = _assistance(JINING, JN_DAY)
    # 004 §四(二): (12 000 − 3 000) × 60% = 5 400.00
    assert assistance_for_year(a, "cat2", "inpatient", yuan("12000")) == yuan("5400")
    # burden 30 000.00: (30 000 − 3 000) × 60% = 16 200.00 > 1 万元 → 10 000.00
    base = assistance_for_year(a, "cat2", "inpatient", yuan("30000"))
    assert base == yuan("10000")
    # 再救助: left 20 000.00; (20 000 − 10 000) × 70% = 7 000.00 (cap 2 万元)
    left = yuan("30000") - base
    assert tier_for_year(a, "JN-C2-RE", left, category_id="cat2", scope="inpatient") == yuan("7000")


def test_jining_illness_poor_deductible_from_city_income_after_publication():
    a = _assistance(JINING, JN_DAY)
    rule = rule_for(a, "cat3", "inpatient")
    income = rule.deductible.income
    assert (income.level, income.scope, income.effective) == (
        "city",
        "all",
        "month_after_publication",
    )
    # 004 §四(三) "在统计部门发布上年居民人均可支配收入当月发布，次月起执行":
    # 370800 all 2023 = 36 123.00, published 2024-01-25 → in force from 2024-02-01;
    # 2022 = 33 933.00 (invented), published 2023-01-20.
    rows = [
        (2022, dt.date(2023, 1, 20), yuan("33933")),
        (2023, dt.date(2024, 1, 25), yuan("36123")),
    ]
    assert income_for_deductible(rows, dt.date(2024, 1, 31), income) == (2022, yuan("33933"))
    assert income_for_deductible(rows, dt.date(2024, 2, 1), income) == (2023, yuan("36123"))
    # 25% × 36 123.00 = 9 030.75; burden 20 000.00 → (20 000 − 9 030.75) × 60% = 6 581.55
    got = assistance_for_year(a, "cat3", "inpatient", yuan("20000"), income_fen=yuan("36123"))
    assert got == yuan("6581.55")
    # the costs of the 12 months before the application month count (不含申请当月)
    assert (rule.window.kind, rule.window.months, rule.window.include_application_month) == (
        "months_before_application",
        12,
        False,
    )
    with pytest.raises(PovwatchError, match="pass income_fen"):
        assistance_for_year(a, "cat3", "inpatient", yuan("20000"))


def test_jining_exclusions():
    # 004 §四(四): 乙类先自付, 超支付标准, 目录外全自费 are not assistance costs
    a = _assistance(JINING, JN_DAY)
    assert a.exclusions.fields == ["preselfpay_amt", "overlmt_selfpay", "fulamt_ownpay_amt"]


def test_jining_premium_subsidies():
    a = _assistance(JINING, JN_DAY)
    premium = yuan("380")  # a resident premium (illustration)
    assert premium_subsidy_fen(a, ["tekun"], premium) == premium  # 004 §三(一) 全额资助
    assert premium_subsidy_fen(a, ["dibao"], premium) == yuan("300")  # §三(二) 300 元
    assert premium_subsidy_fen(a, ["monitor_edge"], premium) == yuan("280")  # §三(三) 280 元
    assert premium_subsidy_fen(a, ["dibao", "tekun"], premium) == premium  # the higher one
    assert premium_subsidy_fen(a, [], premium) == 0


def test_jining_critical_illness_tilt():
    a = _assistance(JINING, JN_DAY)
    # 004 §五(二): 起付线降低 50%, 提高 5 个百分点, 取消最高支付限额.
    # Ordinary terms 18 000.00 and 60% (invented; the city's critical-illness terms)
    args = {"ordinary_deductible_fen": yuan("18000"), "ordinary_ratio": Decimal("0.60")}
    assert critical_illness_terms(a, ["dibao"], **args) == (yuan("9000"), Decimal("0.65"), False)
    assert critical_illness_terms(a, [], **args) == (yuan("18000"), Decimal("0.60"), True)
    assert a.critical_illness_tilt.special_drug_deductible_removed


def test_jining_identity_timing():
    a = _assistance(JINING, JN_DAY)
    # 004 §四(三): 一次身份认定享受一个医疗年度救助待遇
    assert [(t.kind, t.identities) for t in a.identity_timing] == [
        ("one_year_per_determination", ["illness_poor"])
    ]


# --- 001 Yulin --------------------------------------------------------------------------------

YULIN = "yulin-610800.yaml"
YL_DAY = dt.date(2024, 6, 30)


def test_yulin_category_1_full_and_uncapped():
    a = _assistance(YULIN, YL_DAY)
    # 001 §六(二): 一类 不设起付标准, 100%, 取消年度最高支付限额 → 500 000.00 → 500 000.00
    assert assistance_for_year(a, "cat1", "inpatient", yuan("500000")) == yuan("500000")


def test_yulin_dibao_and_other_category_2():
    a = _assistance(YULIN, YL_DAY)
    # 001 §六(二): 低保 不设起付标准, 80% → 12 800.00 × 80% = 10 240.00
    got = assistance_for_year(a, "cat2", "inpatient", yuan("12800"), identities=["dibao"])
    assert got == yuan("10240")
    # 001 §六(二): 二类 other than 低保: deductible 2 800, 75%, cap 100 000 →
    # burden 12 800.00: (12 800 − 2 800) × 75% = 7 500.00
    got = assistance_for_year(a, "cat2", "inpatient", yuan("12800"), identities=["monitor_edge"])
    assert got == yuan("7500")
    # 低保 + 低保边缘: the 低保 rule comes first (就高不重复, 001 §四(一))
    got = assistance_for_year(
        a, "cat2", "outpatient_chronic", yuan("12800"), identities=["dibao_edge", "dibao"]
    )
    assert got == yuan("10240")
    with pytest.raises(PovwatchError, match="pass identities"):
        assistance_for_year(a, "cat2", "inpatient", yuan("12800"))


def test_yulin_category_3_and_cap():
    a = _assistance(YULIN, YL_DAY)
    # 001 §六(二): 三类 (17 000 − 7 000) × 70% = 7 000.00
    assert assistance_for_year(a, "cat3", "inpatient", yuan("17000")) == yuan("7000")
    # cap: (200 000 − 2 800) × 75% = 147 900.00 > 10 万元 → 100 000.00
    got = assistance_for_year(a, "cat2", "inpatient", yuan("200000"), identities=["dibao_edge"])
    assert got == yuan("100000")


def test_yulin_second_assistance_threshold_is_local():
    a = _assistance(YULIN, YL_DAY)
    # 001 §六(三)1: "超过我市城乡居民基本医保大病保险起付标准" — no number in the text
    with pytest.raises(PovwatchError, match=r"assistance\.tiers\.YL-SECOND\.threshold\.yuan"):
        tier_for_year(
            a,
            "YL-SECOND",
            yuan("30000"),
            category_id="cat2",
            conditions=["referred_in_province", "application"],
        )


def test_yulin_second_assistance_shares_the_100000_cap_with_all_other_assistance():
    # a local file supplies the city's critical-illness deductible: 10 000.00 (invented)
    a = _with_local_values(YULIN, {"tiers.YL-SECOND.threshold.yuan": 10000})
    # 001 §六(二): 低保 burden 120 000.00 × 80% = 96 000.00
    base = assistance_for_year(a, "cat2", "inpatient", yuan("120000"), identities=["dibao"])
    assert base == yuan("96000")
    # 001 §六(三)1: left 24 000.00; (24 000 − 10 000) × 70% = 9 800.00, but "连同其他医疗救助
    # 待遇累计为10万元": 100 000 − 96 000 = 4 000.00
    cond = ["referred_in_province", "application"]
    left = yuan("120000") - base
    got = tier_for_year(
        a, "YL-SECOND", left, category_id="cat2", conditions=cond, paid_so_far_fen=base
    )
    assert got == yuan("4000")
    # without the cap: burden left 24 000.00 for someone with nothing paid yet → 9 800.00
    assert tier_for_year(a, "YL-SECOND", left, category_id="cat2", conditions=cond) == yuan("9800")
    # not referred / no application: no second assistance
    assert tier_for_year(a, "YL-SECOND", left, category_id="cat2") == 0


def test_yulin_rare_disease():
    a = _with_local_values(YULIN, {"tiers.YL-RARE.threshold.yuan": 10000})  # invented
    cond = ["rare_disease", "insured_3_years", "means_test_cat3", "application"]
    # 001 §六(三)2: (50 000 − 10 000) × 50% = 20 000.00; open to people with no category
    assert tier_for_year(a, "YL-RARE", yuan("50000"), category_id=None, conditions=cond) == yuan(
        "20000"
    )
    assert tier_for_year(a, "YL-RARE", yuan("50000"), category_id=None, conditions=cond[:3]) == 0
    tier = next(t for t in a.tiers if t.id == "YL-RARE")
    assert tier.measured_on == "after_insurance"
    assert tier.retroactive.from_year == 2022  # 001 末段: 2022 年度医疗救助费用可追溯报销


def test_yulin_identity_timing_and_subsidies():
    a = _assistance(YULIN, YL_DAY)
    # 001 §四(二)(三)(四)
    assert [t.kind for t in a.identity_timing] == [
        "gained_during_stay",
        "lost_during_stay",
        "changed_during_stay",
        "single_case",
    ]
    assert a.identity_timing[3].identities == ["illness_poor"]
    # 001 §六(一): 一类 全额; 二类 低保 / 监测对象 定额 "按照相关文件确定" → local
    assert premium_subsidy_fen(a, ["orphan"], yuan("380")) == yuan("380")
    with pytest.raises(PovwatchError, match=r"premium_subsidies\.YL-SUB-C2\.yuan"):
        premium_subsidy_fen(a, ["dibao"], yuan("380"))
    assert premium_subsidy_fen(a, ["dibao_edge"], yuan("380")) == 0  # not named in §六(一)


def test_yulin_local_values():
    assert missing_local_values(_assistance(YULIN, YL_DAY)) == [
        "assistance.tiers.YL-SECOND.threshold.yuan",
        "assistance.tiers.YL-RARE.threshold.yuan",
        "assistance.premium_subsidies.YL-SUB-C2.yuan",
    ]


# --- 000 Jilin --------------------------------------------------------------------------------

JILIN = "jilin-220000.yaml"
JL_DAY = dt.date(2024, 6, 30)
# A local file supplies the caps (invented: 50 000.00 for every category).
JL_CAPS = {f"rules.JL-C{i}.cap.yuan": 50000 for i in range(1, 5)}
JL_INCOME = yuan("30000")  # the pooling region's prior-year per-capita income (invented)


def test_jilin_categories_and_precedence():
    a = _assistance(JILIN, JL_DAY)
    # 000 §二(一): four categories, 就高不就低; 孤儿 as 特困 (§四(五))
    assert [c.id for c in a.categories] == ["cat1", "cat2", "cat3", "cat4"]
    assert category_for(a, ["orphan"]).id == "cat1"
    assert category_for(a, ["dibao_edge", "dibao"]).id == "cat2"
    assert category_for(a, ["illness_poor", "monitor_edge"]).id == "cat3"


def test_jilin_caps_are_local():
    a = _assistance(JILIN, JL_DAY)
    # 000 §四(五): "具体起付标准、救助比例及年度救助限额由各统筹地区…合理设定"
    with pytest.raises(PovwatchError, match=r"assistance\.rules\.JL-C3\.cap\.yuan"):
        assistance_for_year(a, "cat3", "inpatient", yuan("13000"), income_fen=JL_INCOME, age=40)
    assert missing_local_values(a) == [
        "assistance.rules.JL-C1.cap.yuan",
        "assistance.rules.JL-C2.cap.yuan",
        "assistance.rules.JL-C3.cap.yuan",
        "assistance.rules.JL-C4.cap.yuan",
        "assistance.rules.JL-C1-CHRONIC.deductible",
        "assistance.rules.JL-C1-CHRONIC.cap.yuan",
        "assistance.rules.JL-C2-CHRONIC.deductible",
        "assistance.rules.JL-C2-CHRONIC.cap.yuan",
        "assistance.tiers.JL-TILT.threshold",
        "assistance.tiers.JL-TILT.ratio.value",
        "assistance.tiers.JL-TILT.cap.yuan",
        "assistance.critical_illness_tilt.deductible_reduction",
        "assistance.critical_illness_tilt.ratio_bonus_points",
        "assistance.critical_illness_tilt.cap",
        "assistance.premium_subsidies.JL-SUB-C2.yuan",
    ]


def test_jilin_inpatient_floors_by_category():
    a = _with_local_values(JILIN, JL_CAPS)
    kw = {"income_fen": JL_INCOME, "age": 40}
    # 000 §四(五) 一类: no deductible, 100% → 8 000.00
    assert assistance_for_year(a, "cat1", "inpatient", yuan("8000"), **kw) == yuan("8000")
    # 二类: 原则上不设起付标准, 不低于70% → 10 000.00 × 70% = 7 000.00 (the floor)
    assert assistance_for_year(a, "cat2", "inpatient", yuan("10000"), **kw) == yuan("7000")
    # 三类: 10%左右 × 30 000 = 3 000.00; 不低于60%: (13 000 − 3 000) × 60% = 6 000.00
    assert assistance_for_year(a, "cat3", "inpatient", yuan("13000"), **kw) == yuan("6000")
    # 四类: 25%左右 × 30 000 = 7 500.00; 不低于50%: (17 500 − 7 500) × 50% = 5 000.00
    assert assistance_for_year(a, "cat4", "inpatient", yuan("17500"), **kw) == yuan("5000")
    # qualifiers kept as the text says them
    c2 = rule_for(a, "cat2", "inpatient")
    assert c2.ratio.qualifier == "at_least"
    assert (c2.deductible.where_not_ready.factor, c2.deductible.where_not_ready.qualifier) == (
        Decimal("0.05"),
        "at_most",
    )
    c3 = rule_for(a, "cat3", "inpatient")
    assert (c3.deductible.qualifier, c3.ratio.where_not_ready) == ("approx", Decimal("0.40"))


def test_jilin_children_up_to_14_get_10_more_points_inpatient():
    a = _with_local_values(JILIN, JL_CAPS)
    # 000 §四(五): 14周岁（含）以下儿童，住院救助比例上浮10% → 三类 60% + 10 = 70%:
    # (13 000 − 3 000) × 70% = 7 000.00
    for age, expected in [(10, "7000"), (14, "7000"), (15, "6000")]:
        got = assistance_for_year(
            a, "cat3", "inpatient", yuan("13000"), income_fen=JL_INCOME, age=age
        )
        assert got == yuan(expected), age
    # only inpatient: outpatient special disease at the inpatient standard, no bonus
    got = assistance_for_year(
        a, "cat3", "outpatient_special", yuan("13000"), income_fen=JL_INCOME, age=10
    )
    assert got == yuan("6000")
    # 一类 100% + 10 stays 100%
    assert assistance_for_year(a, "cat1", "inpatient", yuan("8000"), age=3) == yuan("8000")
    with pytest.raises(PovwatchError, match="JL-CHILD depends on the person's age"):
        assistance_for_year(a, "cat1", "inpatient", yuan("8000"))


def test_jilin_outpatient_chronic_and_subsidies():
    a = _assistance(JILIN, JL_DAY)
    # 000 §四(六): 一类、二类 门诊慢性病 不低于50%
    r = rule_for(a, "cat2", "outpatient_chronic")
    assert (r.ratio.value, r.ratio.qualifier) == (Decimal("0.50"), "at_least")
    with pytest.raises(PovwatchError, match="no assistance rule for outpatient_chronic"):
        rule_for(a, "cat3", "outpatient_chronic")
    # 000 §三(二): 一类 全额资助; 二类 定额 (set province-wide elsewhere → local)
    assert premium_subsidy_fen(a, ["tekun"], yuan("380")) == yuan("380")
    with pytest.raises(PovwatchError, match=r"JL-SUB-C2\.yuan"):
        premium_subsidy_fen(a, ["monitor_unstable"], yuan("380"))


# --- 002 Guangdong ----------------------------------------------------------------------------

GUANGDONG = "guangdong-440000.yaml"


def test_guangdong_leaves_amounts_to_the_pooling_region():
    a = _assistance(GUANGDONG, dt.date(2024, 6, 30))
    # 002 §二(四): 特困、孤儿、低保 不设起付标准; the rest 合理设定 / 适度确定 → local
    assert rule_for(a, "cat1", "inpatient").deductible.kind == "none"
    assert rule_for(a, "cat2", "outpatient").deductible.kind == "none"
    with pytest.raises(PovwatchError, match=r"assistance\.rules\.GD-C1\.ratio\.value"):
        assistance_for_year(a, "cat1", "inpatient", yuan("10000"))
    assert missing_local_values(a) == [
        "assistance.rules.GD-C1.ratio.value",
        "assistance.rules.GD-C1.cap.yuan",
        "assistance.rules.GD-C2.ratio.value",
        "assistance.rules.GD-C2.cap.yuan",
        "assistance.rules.GD-C3.deductible",
        "assistance.rules.GD-C3.ratio.value",
        "assistance.rules.GD-C3.cap.yuan",
        "assistance.rules.GD-C3-RURAL.deductible",
        "assistance.rules.GD-C3-RURAL.ratio.value",
        "assistance.rules.GD-C3-RURAL.cap.yuan",
        "assistance.tiers.GD-TILT.threshold",
        "assistance.tiers.GD-TILT.ratio.value",
        "assistance.tiers.GD-TILT.cap.yuan",
        "assistance.critical_illness_tilt.deductible_reduction",
        "assistance.critical_illness_tilt.ratio_bonus_points",
        "assistance.premium_subsidies.GD-SUB",
    ]


def test_guangdong_with_local_values_supplied():
    a = _with_local_values(
        GUANGDONG,
        {  # invented local values
            "rules.GD-C2.ratio.value": "0.85",
            "rules.GD-C2.cap.yuan": 60000,
            "rules.GD-C3.deductible": {"kind": "fixed", "yuan": 1000, "cite": {"clause": "示例"}},
            "rules.GD-C3.ratio.value": "0.70",
            "rules.GD-C3.cap.yuan": 60000,
        },
    )
    # 002 §二(四): 低保 no deductible: 20 000.00 × 85% = 17 000.00
    assert assistance_for_year(a, "cat2", "inpatient", yuan("20000")) == yuan("17000")
    # 低保边缘 (narrowed rule GD-C3): (20 000 − 1 000) × 70% = 13 300.00
    got = assistance_for_year(a, "cat3", "outpatient", yuan("20000"), identities=["dibao_edge"])
    assert got == yuan("13300")
    # 农村易返贫致贫人口: 按衔接政策 (GD-C3-RURAL) — still local
    with pytest.raises(PovwatchError, match=r"GD-C3-RURAL\.deductible"):
        assistance_for_year(a, "cat3", "inpatient", yuan("20000"), identities=["monitor_edge"])
    # §三(八): 倾斜支付 不设年度最高支付限额, the rest local
    assert a.critical_illness_tilt.cap == "none"


# --- 003 Hebei city ---------------------------------------------------------------------------

HEBEI = "hebei-city-13.yaml"
HB_CITY_INCOME_2023 = yuan("32000")  # the city's 2023 per-capita income (invented)
HB_RURAL_2023 = yuan("20688")  # 130000 rural 2023 (as in tests/landing.py)


def test_hebei_versions_split_by_year_without_overlap():
    p = _policy(HEBEI)
    assert [(v.version, v.effective_from, v.effective_to) for v in p.versions] == [
        ("2022", dt.date(2022, 1, 1), dt.date(2022, 12, 31)),
        ("2023", dt.date(2023, 1, 1), dt.date(2023, 12, 31)),
        ("2024", dt.date(2024, 1, 1), dt.date(2024, 12, 31)),
        ("2025", dt.date(2025, 1, 1), dt.date(2025, 12, 31)),  # 003 末段 有效期截至2025年12月31日
    ]
    assert p.version_at(dt.date(2026, 1, 1)) is None
    # monitoring and routing are the same every year
    first = p.versions[0]
    for v in p.versions[1:]:
        assert v.monitoring == first.monitoring and v.routing == first.routing
        assert missing_local_values(v.assistance) == []


def test_hebei_category_2_deductible_2022_fixed_vs_2024_income_share():
    a22 = _assistance(HEBEI, dt.date(2022, 6, 30))
    a24 = _assistance(HEBEI, dt.date(2024, 6, 30))
    # 003 §二(三)1: 2022 起付标准 2 500, 67% → (10 000 − 2 500) × 67% = 5 025.00
    assert assistance_for_year(a22, "cat2", "inpatient", yuan("10000")) == yuan("5025")
    # 2023起 我市上年居民人均可支配收入的10%左右: 10% × 32 000 = 3 200.00;
    # (10 000 − 3 200) × 67% = 4 556.00
    got = assistance_for_year(
        a24, "cat2", "inpatient", yuan("10000"), income_fen=HB_CITY_INCOME_2023
    )
    assert got == yuan("4556")
    income = rule_for(a24, "cat2", "all").deductible.income
    assert (income.level, income.scope) == ("city", "all")  # of the person's own city


def test_hebei_illness_poor_deductible_2022_vs_2024():
    a22 = _assistance(HEBEI, dt.date(2022, 6, 30))
    a24 = _assistance(HEBEI, dt.date(2024, 6, 30))
    # 003 §二(三)1: 2022 6 500 → (10 000 − 6 500) × 67% = 2 345.00
    assert assistance_for_year(a22, "cat3", "all", yuan("10000")) == yuan("2345")
    # 2023起 25%左右: 25% × 32 000 = 8 000.00 → (20 000 − 8 000) × 67% = 8 040.00
    got = assistance_for_year(a24, "cat3", "all", yuan("20000"), income_fen=HB_CITY_INCOME_2023)
    assert got == yuan("8040")


def test_hebei_category_1_and_the_shared_10000_cap():
    a = _assistance(HEBEI, dt.date(2024, 6, 30))
    # 003 §二(三)1: 特困、低保 不设起付标准, 70%: 12 000.00 → 8 400.00
    assert assistance_for_year(a, "cat1", "outpatient", yuan("12000")) == yuan("8400")
    # 20 000.00 → 14 000.00 > 10 000 → 10 000.00
    assert assistance_for_year(a, "cat1", "inpatient", yuan("20000")) == yuan("10000")
    # 门诊救助和住院救助共用年度救助限额，为10000元: one cap group for every category; a
    # person paid 6 000.00 as 低保边缘 who becomes 低保 gets at most 4 000.00 more:
    # 10 000 × 70% = 7 000.00 → min(10 000 − 6 000, 7 000) = 4 000.00
    assert rule_for(a, "cat1", "all").cap.group == rule_for(a, "cat2", "all").cap.group
    got = assistance_for_year(a, "cat1", "inpatient", yuan("10000"), paid_so_far_fen=yuan("6000"))
    assert got == yuan("4000")


def test_hebei_major_illness_assistance_by_year():
    a22 = _assistance(HEBEI, dt.date(2022, 6, 30))
    a24 = _assistance(HEBEI, dt.date(2024, 6, 30))
    cond = ["referred_in_province"]
    # 003 §二(三)2: 2022 起付 18 000, 70%: (30 000 − 18 000) × 70% = 8 400.00
    got = tier_for_year(a22, "HB-MAJOR", yuan("30000"), category_id="cat2", conditions=cond)
    assert got == yuan("8400")
    # cap 20 000: (60 000 − 18 000) × 70% = 29 400.00 → 20 000.00
    got = tier_for_year(a22, "HB-MAJOR", yuan("60000"), category_id="cat1", conditions=cond)
    assert got == yuan("20000")
    # 2023起 省因病致贫监测标准 = 100% × 全省上年农村居民人均可支配收入 (§四(一)):
    # 20 688.00 → (30 000 − 20 688) × 70% = 6 518.40
    got = tier_for_year(
        a24,
        "HB-MAJOR",
        yuan("30000"),
        category_id="cat2",
        conditions=cond,
        income_fen=HB_RURAL_2023,
    )
    assert got == yuan("6518.40")
    # 规范转诊且在省域内: without it, nothing
    assert tier_for_year(a22, "HB-MAJOR", yuan("30000"), category_id="cat2") == 0


def test_hebei_childhood_blood_diseases_and_cancers_plus_5_points():
    a = _assistance(HEBEI, dt.date(2022, 6, 30))
    # 003 §二(三)2: 报销比例提高5个百分点 → 67% + 5 = 72%: (10 000 − 2 500) × 72% = 5 400.00
    got = assistance_for_year(
        a, "cat2", "inpatient", yuan("10000"), conditions=["childhood_blood_cancer_22"]
    )
    assert got == yuan("5400")
    # major illness 70% + 5 = 75%: (30 000 − 18 000) × 75% = 9 000.00
    got = tier_for_year(
        a,
        "HB-MAJOR",
        yuan("30000"),
        category_id="cat2",
        conditions=["referred_in_province", "childhood_blood_cancer_22"],
    )
    assert got == yuan("9000")


@pytest.mark.parametrize(
    ("year", "premium", "expected"),
    [
        # 003 §二(二): 边缘易致贫、突发严重困难 2022 90% / 2023 80% / 2024 70% / 2025 60%
        # (premiums: the national resident personal contribution of the year, illustration)
        (2022, "350", "315"),  # 350 × 90%
        (2023, "380", "304"),  # 380 × 80%
        (2024, "400", "280"),  # 400 × 70%
        (2025, "400", "240"),  # 400 × 60%
    ],
)
def test_hebei_premium_subsidy_by_year(year, premium, expected):
    a = _assistance(HEBEI, dt.date(year, 6, 30))
    assert premium_subsidy_fen(a, ["monitor_sudden"], yuan(premium)) == yuan(expected)
    # 特困 全额; 低保 90% every year; 低保边缘 not subsidised by this clause
    assert premium_subsidy_fen(a, ["tekun", "monitor_edge"], yuan(premium)) == yuan(premium)
    assert premium_subsidy_fen(a, ["dibao"], yuan("400")) == yuan("360")
    assert premium_subsidy_fen(a, ["dibao_edge"], yuan("400")) == 0


def test_hebei_identity_changes_reported_by_the_5th_count_next_month():
    a = _assistance(HEBEI, dt.date(2024, 6, 30))
    # 003 §三(一): 每月5日前…确保次月起享受或取消医疗救助待遇
    assert identity_effective_from(a, dt.date(2024, 3, 5)) == dt.date(2024, 4, 1)
    assert identity_effective_from(a, dt.date(2024, 3, 6)) == dt.date(2024, 5, 1)
    assert identity_effective_from(a, dt.date(2024, 12, 2)) == dt.date(2025, 1, 1)
    # Yulin has no report-day rule: a change counts from the day it is reported
    y = _assistance(YULIN, YL_DAY)
    assert identity_effective_from(y, dt.date(2024, 3, 6)) == dt.date(2024, 3, 6)


def test_hebei_critical_illness_tilt():
    a = _assistance(HEBEI, dt.date(2024, 6, 30))
    # 003 §三(三): 起付线 = 50% × 32 000 = 16 000.00, 60%以上; 特困、低保、返贫致贫:
    # 起付线降低50% → 8 000.00, +5 个百分点 → 65%, 取消封顶线
    got = critical_illness_terms(a, ["fanpin"], income_fen=HB_CITY_INCOME_2023)
    assert got == (yuan("8000"), Decimal("0.65"), False)
    got = critical_illness_terms(a, ["dibao_edge"], income_fen=HB_CITY_INCOME_2023)
    assert got == (yuan("16000"), Decimal("0.60"), True)


def test_hebei_precedence():
    a = _assistance(HEBEI, dt.date(2024, 6, 30))
    # 003 §二(三)2 就高不就低: 低保 + 突发严重困难 → 特困、低保
    assert category_for(a, ["monitor_sudden", "dibao"]).id == "cat1"
    # 脱贫不稳定户 / 脱贫人口: 衔接 policy (§二(一)), no category here
    assert category_for(a, ["monitor_unstable", "tuopin"]) is None


def _citations(value: object):
    if isinstance(value, Citation):
        yield value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _citations(getattr(value, name))
    elif isinstance(value, list):
        for item in value:
            yield from _citations(item)


BUNDLED = sorted(p.name for p in POLICIES.glob("*.yaml"))


def test_every_bundled_policy_file_is_checked_below():
    assert sorted([JINING, YULIN, JILIN, GUANGDONG, HEBEI]) == BUNDLED


@pytest.mark.parametrize("name", BUNDLED)
def test_every_quote_of_every_cite_is_the_documents_own_words(name):
    # Every `cite` of the file — versions, monitoring, routing, assistance. A quote may
    # join passages with …… or ；; each passage must be in the seed text verbatim
    # (whitespace aside). Our own words go in `note` (and `inferred`/`assumed`), never in
    # the quote. The seeds are read from the shared folder beside the checkout.
    policy = _policy(name)
    seed = SEEDS / policy.source
    assert seed.exists(), f"source document not here: {seed}"
    text = re.sub(r"\s+", "", seed.read_text(encoding="utf-8"))
    cites = list(_citations(policy))
    assert len(cites) > 20
    for cite in cites:
        assert cite.quote or cite.note, cite.clause  # nothing quoted: say why
        for passage in re.split(r"……|；", cite.quote or ""):
            assert re.sub(r"\s+", "", passage) in text, (cite.clause, passage)


def test_the_verbatim_check_catches_our_words_in_a_quote():
    # the kind of quote the audit found (our gloss in parentheses): it must not pass
    text = re.sub(r"\s+", "", (SEEDS / _policy(JINING).source).read_text(encoding="utf-8"))
    assert "普通参保人员纳入监测机制" in text
    assert "普通参保人员（职工和居民）" not in text


# --- section 1 of issue 8: who is watched, where, and what we did not invent -----------------


def test_monitoring_never_invents_what_the_text_leaves_local():
    # 000 §五(七) and 002 §四(九) name only the relapse population (低保边缘家庭成员和农村易返贫
    # 致贫人口); the impoverishment population is the locality's
    for name in (JILIN, GUANGDONG):
        rules = {r.warning_type: r for r in _policy(name).versions[0].monitoring}
        assert rules["impoverish"].population.identities == "local"
        assert rules["relapse"].population.identities == [
            "dibao_edge",
            "monitor_unstable",
            "monitor_edge",
            "monitor_sudden",
        ]


def test_effective_dates_are_the_texts_or_marked_assumed():
    # 004 末段: 自 2023 年 1 月 1 日起执行; 001 末段: 2023-02-15 .. 2028-02-14 — stated
    for name, start in [(JINING, dt.date(2023, 1, 1)), (YULIN, dt.date(2023, 2, 15))]:
        v = _policy(name).versions[0]
        assert v.effective_from == start and not v.cite.assumed
    # 002: 2022年12月27日印发, no effective date named → from issue, marked assumed
    gd = _policy(GUANGDONG).versions[0]
    assert gd.effective_from == dt.date(2022, 12, 27) and gd.cite.assumed
    # 000 and 003 name no date at all: assumed, and said so
    for name in (JILIN, HEBEI):
        v = _policy(name).versions[0]
        assert v.cite.assumed and "no" in v.cite.note


def test_inferences_are_marked():
    # 003 §二(三)2 "按照省医疗保障局确定的因病致贫监测标准执行" names no number: 1.00 × the
    # province's rural income (§四(一)) is our reading
    hb = _assistance(HEBEI, dt.date(2024, 6, 30))
    major = next(t for t in hb.tiers if t.id == "HB-MAJOR")
    assert major.threshold.factor == Decimal("1.00") and major.threshold.cite.inferred
    hb22 = _assistance(HEBEI, dt.date(2022, 6, 30))
    assert not next(t for t in hb22.tiers if t.id == "HB-MAJOR").threshold.cite.inferred
    # 002 §二(一) lists the groups without ranking them
    assert _assistance(GUANGDONG, dt.date(2024, 6, 30)).precedence.cite.inferred


@pytest.mark.parametrize(
    ("name", "category", "identities"),
    [
        # 001 §六(二): 因慢性病需长期服药或患重特大疾病需长期门诊治疗的政策范围内费用
        (YULIN, "cat3", ()),
        # 004 §四: 门诊慢特病费用 (慢性病 and 特殊疾病), sharing the inpatient cap
        (JINING, "cat2", ()),
    ],
)
def test_outpatient_special_disease_is_covered(name, category, identities):
    a = _assistance(name, dt.date(2024, 6, 30))
    rule = rule_for(a, category, "outpatient_special", identities)
    assert rule.id == rule_for(a, category, "inpatient", identities).id


def test_outpatient_special_disease_amounts():
    # 004 §四(二): (12 000 − 3 000) × 60% = 5 400.00 — as for inpatient costs
    a = _assistance(JINING, JN_DAY)
    assert assistance_for_year(a, "cat2", "outpatient_special", yuan("12000")) == yuan("5400")
    # 001 §六(二) 三类: (17 000 − 7 000) × 70% = 7 000.00
    y = _assistance(YULIN, YL_DAY)
    assert assistance_for_year(y, "cat3", "outpatient_special", yuan("17000")) == yuan("7000")
    # 004 §四(一) 再救助 covers the same costs: (6 000 − 5 000) × 70% = 700.00
    got = tier_for_year(a, "JN-C1-RE", yuan("6000"), category_id="cat1", scope="outpatient_special")
    assert got == yuan("700")
