"""`povwatch explain` on the shared example (six export shapes), with a reversal added.

Hand-computed numbers (income in tests/fixtures/jining-hebei-2024/landing/reference):
- Jining (004 §六): relapse 50 % × 39890 = 19945.00, impoverish 150 % × 39890 = 59835.00 from
  February 2024 (2023's figure published 2024-02-15); in January 2024 only 2022's 37560 is in
  force: 150 % × 37560 = 56340.00.
- Hebei city (003 §四(一)): impoverishment only for insutype 390, 100 % × 20688 = 20688.00.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from pipeline.months import Month
from pipeline.run import run_month
from pipeline.settings import Settings
from pipeline.warnings.explain import explain_person, render_text

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "jining-hebei-2024"

# A reversal in February of P3700000008's January inpatient settlement S2024000000009
# (personal part 4543.29), and a new settlement with the optional hospital/diagnosis columns.
EXTRA = """\
setl_id,mdtrt_id,psn_no,certno,insutype,med_type,setl_time,medfee_sumamt,hifp_pay,fund_pay_sumamt,psn_part_amt,maf_pay,refd_setl_flag,init_setl_id,fixmedins_code,fixmedins_name,dise_codg,dise_name
S2024900000001,M000000009,P3700000008,370811196302090085,390,21,2024-02-05 10:00:00,-9995.24,-4361.56,-5451.95,-4543.29,0.00,1,S2024000000009,H37081100001,济宁医学院附属医院,I63.900,脑梗死
S2024900000002,M900000002,P3700000008,370811196302090085,390,21,2024-02-10 09:30:00,1000.00,600.00,600.00,400.00,0.00,0,,H37081100002,济宁市第一人民医院,I63.900,脑梗死
"""


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> Settings:
    work = tmp_path_factory.mktemp("explain")
    landing = work / "landing"
    shutil.copytree(FIXTURE / "landing", landing)
    (landing / "settlements" / "2024-02" / "extra_202402.csv").write_text(EXTRA, encoding="utf-8")
    settings = Settings(landing=landing, db=work / "w.duckdb", outbox=work / "outbox", quiet=True)
    mp = pytest.MonkeyPatch()
    mp.setenv("POVWATCH_QUALITY", "off")
    try:
        for m in Month(2024, 1).through(Month(2024, 6)):
            run_month(m, settings)
    finally:
        mp.undo()
    return settings


def _explain(s: Settings, month: str, psn: str) -> dict:
    return explain_person(s.db, s.landing, (), Month.parse(month), psn)


def test_warned_person_every_settlement_rule_clause_and_income(example):
    doc = _explain(example, "2024-06", "P3700000057")
    assert doc["warned"] is True
    assert (doc["rule_id"], doc["warning_type"], doc["status"]) == (
        "JN-RELAPSE-50",
        "relapse",
        "continuing",
    )
    assert doc["first_month"] == "2024-04"
    assert doc["warning_id"] == "2024-R-P3700000057"
    assert doc["burden_ytd"] == "31454.96"  # expected/warnings_2024-06.csv
    assert doc["threshold"] == "19945.00"  # 004 §六: 50% × 39890 = 19945.00
    assert doc["difference"] == "11509.96"
    assert doc["factor"] == "0.50"
    assert doc["policy_id"] == "jining-2022-14"
    assert doc["policy_file"] == "jining-370800.yaml"
    assert doc["clause"] == "004 §六"
    assert "50%" in doc["quote"]
    assert doc["income"] == {
        "admdvs": "370000",
        "year": 2023,
        "scope": "all",
        "amount": "39890.00",
        "published_on": "2024-02-15",
    }
    assert doc["departments"] == ["civil_affairs"]  # dibao_edge → 民政 (004 §九(二))
    amounts = [Decimal(s["amount"]) for s in doc["settlements"]]
    assert sum(amounts) == Decimal("31454.96")
    assert len(doc["settlements"]) == 5
    first = doc["settlements"][0]
    assert set(first) >= {"setl_id", "setl_time", "med_type", "fixmedins_name", "amount"}
    assert first["setl_id"] == "S2024000000058"
    assert first["fixmedins_name"] == "微山县中医院"
    assert first["setl_time"] == "2024-03-13 09:02:00"
    # the impoverishment rule is listed with why it does not apply
    other = {r["rule_id"]: r for r in doc["rules"]}["JN-IMPOVERISH-150"]
    assert other["reason"] == "population" and other["warned"] is False


def test_reversal_cancels_its_original_and_optional_columns_are_shown(example):
    doc = _explain(example, "2024-02", "P3700000008")
    by_id = {s["setl_id"]: s for s in doc["settlements"]}
    assert by_id["S2024900000001"]["reversal_of"] == "S2024000000009"
    assert by_id["S2024900000001"]["amount"] == "-4543.29"
    assert by_id["S2024000000009"]["reversed_by"] == "S2024900000001"
    assert by_id["S2024000000009"]["reversal_of"] is None
    assert by_id["S2024900000002"]["dise_name"] == "脑梗死"
    assert by_id["S2024900000002"]["fixmedins_code"] == "H37081100002"
    # 4543.29 + 697.17 (January) − 4543.29 (reversal) + 400.00 = 1097.17
    assert doc["burden_ytd"] == "1097.17"
    assert doc["warned"] is False
    assert doc["rule_id"] == "JN-IMPOVERISH-150" and doc["reason"] == "below"
    assert doc["threshold"] == "59835.00"  # 004 §六: 150% × 39890
    assert doc["difference"] == "-58737.83"  # 1097.17 − 59835.00
    text = render_text(doc)
    assert "冲销 S2024000000009" in text and "已被 S2024900000001 冲销" in text
    assert "距标准还差 58737.83 元" in text


def test_january_uses_the_income_published_by_then(example):
    # 2023's income was published 2024-02-15: in January 2022's 37560 is in force.
    doc = _explain(example, "2024-01", "P3700000008")
    assert doc["income"]["year"] == 2022 and doc["income"]["published_on"] == "2023-01-20"
    assert doc["threshold"] == "56340.00"  # 150% × 37560
    assert doc["burden_ytd"] == "5240.46"  # 4543.29 + 697.17, the reversal is February's
    assert [s["reversed_by"] for s in doc["settlements"]] == [None, None]


def test_not_warned_for_insurance_type_and_population(example):
    # P1300000072: Hebei, employee insurance (310), no identity.
    doc = _explain(example, "2024-06", "P1300000072")
    assert doc["warned"] is False
    rules = {r["rule_id"]: r for r in doc["rules"]}
    assert rules["HB-IMPOVERISH-100"]["reason"] == "insutype"  # 003 §四(一): 390 only
    assert rules["HB-IMPOVERISH-100"]["threshold"] == "20688.00"  # 100% × 20688
    assert rules["HB-RELAPSE-50"]["reason"] == "population"
    assert rules["HB-RELAPSE-50"]["threshold"] == "10344.00"  # 50% × 20688
    assert "城乡居民基本医疗保险" in rules["HB-IMPOVERISH-100"]["why"]


def test_new_warning_crosses_the_line_in_june(example):
    march = _explain(example, "2024-03", "P3700002227")
    june = _explain(example, "2024-06", "P3700002227")
    assert march["warned"] is False and march["burden_ytd"] == "24037.45"
    assert june["warned"] is True and june["status"] == "new"
    assert june["burden_ytd"] == "66859.04" and june["threshold"] == "59835.00"


def _cli(s: Settings, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.cli",
            "explain",
            *args,
            "--db",
            str(s.db),
            "--landing",
            str(s.landing),
            "--outbox",
            str(s.outbox),
        ],
        capture_output=True,
        timeout=120,
    )


def test_cli_json_and_one_line_errors(example):
    out = _cli(example, "--month", "2024-06", "--psn", "P3700000057", "--format", "json")
    assert out.returncode == 0, out.stderr.decode()
    doc = json.loads(out.stdout)
    for key in (
        "burden_ytd",
        "threshold",
        "settlements",
        "income",
        "rule_id",
        "policy_id",
        "clause",
    ):
        assert key in doc
    text = _cli(example, "--month", "2024-06", "--psn", "P3700000057")
    assert "已预警" in text.stdout.decode() and "004 §六" in text.stdout.decode()
    unknown = _cli(example, "--month", "2024-06", "--psn", "P9999999999")
    assert unknown.returncode != 0 and unknown.stdout == b""
    assert len(unknown.stderr.decode().strip().splitlines()) == 1
    assert "P9999999999" not in unknown.stderr.decode()
    unrun = _cli(example, "--month", "2024-07", "--psn", "P3700000057")
    assert unrun.returncode != 0
    assert len(unrun.stderr.decode().strip().splitlines()) == 1
    assert "2024-07" in unrun.stderr.decode()


def test_a_person_already_in_the_assistance_net_is_in_no_rule(example):
    # P3700000453 holds tekun (特困人员) since 2021: neither Jining rule watches them
    # (004 §六: relapse watches 低保边缘 and monitoring objects, impoverish ordinary persons).
    doc = _explain(example, "2024-06", "P3700000453")
    assert doc["identities"] == ["tekun"] and doc["warned"] is False
    assert {r["reason"] for r in doc["rules"]} == {"population"}
    text = render_text(doc)
    assert "已在救助范围" in text and "特困人员" in text


def test_published_household_members_are_in_psn_no_order(tmp_path, monkeypatch):
    # The explained households' members go into the month's published Parquet, which must be
    # the same bytes on every run: in psn_no order, not the order the registry query's rows
    # arrive in (on several cores, a different one each run; here: reversed).
    from pipeline.store import published
    from pipeline.warnings import explain as explain_module

    people_sql = explain_module.people_sql
    monkeypatch.setattr(
        explain_module,
        "people_sql",
        lambda *a, **k: people_sql(*a, **k).sort("psn_no", descending=True),
    )
    s = Settings(
        landing=FIXTURE / "landing",
        db=tmp_path / "w.duckdb",
        outbox=tmp_path / "outbox",
        quiet=True,
    )
    monkeypatch.setenv("POVWATCH_QUALITY", "off")
    for m in Month(2024, 1).through(Month(2024, 2)):
        run_month(m, s)
    members = published.read(s.db, "2024-02", "report_members")["psn_no"].to_list()
    assert len(members) > 1
    assert members == sorted(members)
