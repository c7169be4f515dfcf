"""The assistance schema (pipeline.assistance.calculator): what a policy file may say, what it may not,
and the arithmetic of the calculator, on small hand-written policy files."""

from __future__ import annotations

import datetime as dt
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

from pipeline.assistance.calculator import (
    assistance_for_year,
    income_effective_from,
    tier_for_year,
)
from pipeline.errors import PovwatchError
from pipeline.policy.describe import describe_assistance as describe
from pipeline.policy.load import load_policy
from pipeline.policy.types import Assistance, IncomeBase, missing_local_values

# A minimal policy after 004 (Jining) §二, §四(一), §四(二): two categories, two rules, a
# re-assistance tier, a bonus. Tests replace pieces of the text to break it.
SNIPPET = textwrap.dedent(
    """\
    policy_id: snippet
    title: 测试
    document: 测试
    source: 004_3de6df4e7d97de4d.txt
    regions: ["3708"]
    versions:
      - version: "t"
        effective_from: 2023-01-01
        cite: {clause: "004 末段", quote: 自 2023 年 1 月 1 日起执行}
        monitoring: []
        assistance:
          precedence: {kind: highest_first, cite: {clause: "004 §二", quote: 就高不重复}}
          categories:
            - id: cat1
              label: 特困人员、低保对象
              identities: [tekun, dibao]
              cite: {clause: "004 §二", quote: 特困人员、低保对象}
            - id: cat2
              label: 低保边缘家庭成员
              identities: [dibao_edge]
              cite: {clause: "004 §二", quote: 低保边缘家庭成员}
          rules:
            - id: R1
              category: cat1
              scopes: [inpatient]
              deductible: {kind: none, cite: {clause: "004 §四(一)", quote: 不设年度起付线}}
              ratio: {value: "0.70", cite: {clause: "004 §四(一)", quote: 按 70%比例救助}}
              cap: {yuan: 60000, group: G1, cite: {clause: "004 §四(一)", quote: 年度救助限额 6 万元}}
              cite: {clause: "004 §四(一)", quote: 住院费用}
            - id: R2
              category: cat2
              scopes: [inpatient]
              deductible: {kind: fixed, yuan: 3000, cite: {clause: "004 §四(二)", quote: 超过 3000 元以上部分}}
              ratio: {value: "0.60", cite: {clause: "004 §四(二)", quote: 按 60%比例给予救助}}
              cap: {yuan: 60000, group: G1, cite: {clause: "004 §四(二)", quote: 年度救助限额}}
              cite: {clause: "004 §四(二)", quote: 住院费用}
          tiers:
            - id: T1
              kind: re_assistance
              label: 再救助
              categories: [cat1]
              scopes: [inpatient]
              measured_on: after_assistance
              threshold: {kind: fixed, yuan: 5000, cite: {clause: "004 §四(一)", quote: 超过5000元以上部分}}
              ratio: {value: "0.70", cite: {clause: "004 §四(一)", quote: 按70%比例给予再救助}}
              cap: {yuan: 20000, cite: {clause: "004 §四(一)", quote: 年度再救助限额 2 万元}}
              cite: {clause: "004 §四(一)", quote: 再救助}
          bonuses:
            - id: B1
              points: "0.10"
              when: {kind: age_at_most, years: 14}
              scopes: [inpatient]
              applies_to: [R2]
              cite: {clause: "000 §四(五)", quote: 住院救助比例上浮10%}
    """
)


def _load(tmp_path: Path, text: str = SNIPPET) -> Assistance:
    path = tmp_path / "p.yaml"
    path.write_text(text, encoding="utf-8")
    assistance = load_policy(path).policy.versions[0].assistance
    assert assistance is not None
    return assistance


def _rejected(tmp_path: Path, old: str, new: str) -> str:
    assert old in SNIPPET, old
    path = tmp_path / "bad.yaml"
    path.write_text(SNIPPET.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(PovwatchError) as err:
        load_policy(path)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_the_snippet_loads(tmp_path):
    a = _load(tmp_path)
    assert [c.id for c in a.categories] == ["cat1", "cat2"]
    assert a.rules[0].ratio.value == Decimal("0.70")
    assert a.rules[1].deductible.yuan == Decimal("3000.00")


def test_a_ratio_above_100_percent_is_rejected_naming_the_key(tmp_path):
    msg = _rejected(tmp_path, 'value: "0.70"', 'value: "1.20"')
    assert "at versions.0.assistance.rules.0.ratio.value:" in msg
    assert "above 100%" in msg


def test_a_percentage_written_as_70_is_rejected(tmp_path):
    msg = _rejected(tmp_path, 'value: "0.60"', "value: 60")
    assert "at versions.0.assistance.rules.1.ratio.value:" in msg


def test_a_missing_citation_is_rejected_naming_the_key(tmp_path):
    msg = _rejected(
        tmp_path,
        'cap: {yuan: 60000, group: G1, cite: {clause: "004 §四(一)", quote: 年度救助限额 6 万元}}',
        "cap: {yuan: 60000, group: G1}",
    )
    assert "at versions.0.assistance.rules.0.cap.cite: Field required" in msg


def test_an_unknown_identity_code_is_rejected_naming_the_key(tmp_path):
    msg = _rejected(tmp_path, "identities: [dibao_edge]", "identities: [dibao_edg]")
    assert "at versions.0.assistance.categories.1.identities.0:" in msg


def test_an_unknown_category_id_is_rejected_naming_the_key(tmp_path):
    msg = _rejected(tmp_path, "category: cat2", "category: cat9")
    assert "at versions.0.assistance:" in msg
    assert "rules.R2.category: unknown category id 'cat9' (known: cat1, cat2)" in msg
    msg = _rejected(tmp_path, "categories: [cat1]", "categories: [cat3]")
    assert "tiers.T1.categories: unknown category id 'cat3'" in msg


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "category: cat2\n",
            "category: cat2\n          identities: [tekun]\n",
            "rules.R2.identities: tekun not in category cat2",
        ),
        (
            "identities: [dibao_edge]",
            "identities: [dibao]",
            "categories.cat2.identities: dibao is already in category cat1",
        ),
        (
            "applies_to: [R2]",
            "applies_to: [R9]",
            "bonuses.B1.applies_to: unknown rule or tier 'R9'",
        ),
        (
            'yuan: 60000, group: G1, cite: {clause: "004 §四(二)"',
            'yuan: 10000, group: G1, cite: {clause: "004 §四(二)"',
            "rules.R2.cap.yuan: cap group G1 is 60000.00 in rules.R1",
        ),
        ("- id: T1", "- id: R1", "rules/tiers: id R1 is used more than once"),
        ("yuan: 3000,", "yuan: 3000.005,", "more than two decimals"),
        ("yuan: 3000,", "yuan: -1,", "negative"),
        ("scopes: [inpatient]", "scopes: [ward]", "rules.0.scopes.0"),
        ("kind: re_assistance", "kind: reassistance", "tiers.0.kind"),
        ("deductible: {kind: none,", "deductible: {kind: nil,", "rules.0.deductible"),
        (
            'ratio: {value: "0.60",',
            'ratio: {value: "0.60", ration: 1,',
            "rules.1.ratio.ration: Extra inputs are not permitted",
        ),
    ],
    ids=[
        "rule-identity-outside-category",
        "identity-in-two-categories",
        "bonus-target-unknown",
        "cap-group-disagrees",
        "duplicate-id",
        "fractional-fen",
        "negative-yuan",
        "unknown-scope",
        "unknown-tier-kind",
        "unknown-deductible-kind",
        "unknown-key",
    ],
)
def test_other_inconsistencies_are_rejected_naming_the_key(tmp_path, old, new, expected):
    assert expected in _rejected(tmp_path, old, new)


def test_a_premium_subsidy_must_carry_the_value_its_kind_needs(tmp_path):
    text = SNIPPET + textwrap.indent(
        textwrap.dedent(
            """\
            premium_subsidies:
              - id: S1
                identities: [dibao]
                kind: ratio
                yuan: 300
                cite: {clause: "004 §三(二)", quote: 每人每年 300 元}
            """
        ),
        "      ",
    )
    path = tmp_path / "s.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PovwatchError, match="premium subsidy S1: ratio goes with kind ratio"):
        load_policy(path)


def test_calculator_rounds_half_up_at_the_fen(tmp_path):
    a = _load(tmp_path)
    # R2: (3 000.05 − 3 000) × 60% = 0.03 yuan exactly; 0.01 × 60% = 0.006 → 0.01;
    # 0.05 × 70% = 0.035 → 0.04 (half up)
    assert assistance_for_year(a, "cat2", "inpatient", 300_005, age=40) == 3
    assert assistance_for_year(a, "cat2", "inpatient", 300_001, age=40) == 1
    assert assistance_for_year(a, "cat1", "inpatient", 5) == 4
    # below the deductible: nothing, never negative
    assert assistance_for_year(a, "cat2", "inpatient", 100_000, age=40) == 0
    # the cap already used up: nothing, never negative
    assert assistance_for_year(a, "cat1", "inpatient", 100_000, paid_so_far_fen=7_000_000) == 0


def test_calculator_bonus_and_scope(tmp_path):
    a = _load(tmp_path)
    # R2 with B1 (+10 points, age ≤ 14): (13 000 − 3 000) × 70% = 7 000.00
    assert assistance_for_year(a, "cat2", "inpatient", 1_300_000, age=14) == 700_000
    assert assistance_for_year(a, "cat2", "inpatient", 1_300_000, age=15) == 600_000
    with pytest.raises(PovwatchError, match="no assistance rule for outpatient_chronic"):
        assistance_for_year(a, "cat2", "outpatient_chronic", 1_300_000, age=15)
    with pytest.raises(PovwatchError, match="unknown assistance category 'cat7'"):
        assistance_for_year(a, "cat7", "inpatient", 1)


def test_re_assistance_tier(tmp_path):
    a = _load(tmp_path)
    # 004 §四(一): after base 70% of 30 000.00 = 21 000.00, 9 000.00 is left;
    # (9 000 − 5 000) × 70% = 2 800.00
    left = 3_000_000 - assistance_for_year(a, "cat1", "inpatient", 3_000_000)
    assert tier_for_year(a, "T1", left, category_id="cat1", scope="inpatient") == 280_000
    assert tier_for_year(a, "T1", left, category_id="cat2", scope="inpatient") == 0
    with pytest.raises(PovwatchError, match="unknown assistance tier 'T9'"):
        tier_for_year(a, "T9", left, category_id="cat1")


def test_local_values_are_named_and_stop_the_calculator(tmp_path):
    text = (
        SNIPPET.replace('value: "0.60"', "value: local")
        .replace("yuan: 5000,", "yuan: local,")
        .replace('points: "0.10"', "points: local")
        .replace("deductible: {kind: none,", "deductible: {kind: local,")
    )
    a = _load(tmp_path, text)
    assert missing_local_values(a) == [
        "assistance.rules.R1.deductible",
        "assistance.rules.R2.ratio.value",
        "assistance.tiers.T1.threshold.yuan",
        "assistance.bonuses.B1.points",
    ]
    assert missing_local_values(None) == []
    with pytest.raises(PovwatchError, match=r"assistance\.rules\.R1\.deductible is left to"):
        assistance_for_year(a, "cat1", "inpatient", 100)
    with pytest.raises(PovwatchError, match=r"assistance\.rules\.R2\.ratio\.value is left to"):
        assistance_for_year(a, "cat2", "inpatient", 500_000, age=40)


def test_an_overlay_supplies_an_assistance_value_by_its_key(tmp_path):
    # The keys missing_local_values names are the keys a local overlay file sets.
    overlay = tmp_path / "changchun.yaml"
    overlay.write_text(
        textwrap.dedent(
            """\
            kind: overlay
            overlay_id: cc-assist
            title: 示例
            document: 示例
            extends: jilin-2022-16
            regions: ["2201"]
            set:
              assistance.rules.JL-C1.cap:
                yuan: 50000
                cite: {clause: "示例 第一条", quote: 一类人员年度救助限额5万元}
            """
        ),
        encoding="utf-8",
    )
    a = load_policy(overlay).policy.versions[0].assistance
    missing = missing_local_values(a)
    assert "assistance.rules.JL-C1.cap.yuan" not in missing
    assert "assistance.rules.JL-C2.cap.yuan" in missing  # not shared by accident
    # 000 §四(五): 一类 100%, now capped at 50 000.00 → 80 000.00 burden gives 50 000.00
    assert assistance_for_year(a, "cat1", "inpatient", 8_000_000, age=40) == 5_000_000


def test_income_takes_effect_on_or_after_publication():
    on = IncomeBase(level="city", scope="all")
    after = IncomeBase(level="city", scope="all", effective="month_after_publication")
    assert income_effective_from(dt.date(2024, 1, 25), on) == dt.date(2024, 1, 25)
    assert income_effective_from(dt.date(2024, 1, 25), after) == dt.date(2024, 2, 1)
    assert income_effective_from(dt.date(2024, 12, 31), after) == dt.date(2025, 1, 1)


def test_describe_names_every_rule_with_its_clause(tmp_path):
    text = "\n".join(describe(_load(tmp_path)))
    assert (
        "R1 cat1 inpatient: 不设起付标准，70%，年度限额 60000.00 元（共用 G1）   [004 §四(一)]"
        in text
    )
    assert "T1 再救助: 起付标准 5000.00 元，70%，年度限额 20000.00 元   [004 §四(一)]" in text
    assert "B1 比例 +10 个百分点 → R2" in text
