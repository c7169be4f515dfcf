"""Policy files: loading, binding by prefix, versions, overlays, and rejected files."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from pipeline.errors import PovwatchError
from pipeline.policy.load import (
    PolicySet,
    bundled_policy_files,
    load_policy,
    missing_local_values,
    threshold_fen,
)

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "policies" / "examples"


def _jining_raw() -> dict:
    return yaml.safe_load((REPO / "policies" / "jining-370800.yaml").read_text(encoding="utf-8"))


def _write(tmp_path: Path, data: dict, name="p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_longest_prefix_wins_and_unknown_regions_have_none():
    ps = PolicySet.load()
    assert ps.for_region("370811").policy.policy_id == "jining-2022-14"
    # 济政办发〔2022〕14号 is Jining's (3708): Qingdao (3702) has no policy
    assert ps.for_region("370211") is None
    assert ps.for_region("370102") is None
    assert ps.for_region("130503").policy.policy_id == "hebei-city-2022"
    assert ps.for_region("610802").policy.policy_id == "yulin-2023-4"
    assert ps.for_region("610102") is None  # Xi'an: Yulin binds 6108 only
    assert ps.for_region("110101") is None


def _policy_for(tmp_path: Path, policy_id: str, regions: list[str]) -> Path:
    data = _jining_raw()
    data.update(policy_id=policy_id, regions=regions)
    return _write(tmp_path, data, f"{policy_id}.yaml")


def test_nested_prefixes_the_longest_match_wins_whatever_the_file_order(tmp_path):
    # A province-wide file (37) and a city file (3708) and a county file (370811):
    # each region takes the longest prefix that binds it, not the first or the shortest.
    province = _policy_for(tmp_path, "shandong", ["37"])
    county = _policy_for(tmp_path, "rencheng", ["370811"])
    for extra in ([province, county], [county, province]):
        ps = PolicySet.load(extra)
        assert ps.for_region("370811").policy.policy_id == "rencheng"
        assert ps.for_region("370812").policy.policy_id == "jining-2022-14"
        assert ps.for_region("370211").policy.policy_id == "shandong"
        assert ps.for_region("37081").policy.policy_id == "jining-2022-14"


def test_assistance_binds_only_where_its_section_says():
    ps = PolicySet.load()
    day = dt.date(2024, 6, 30)
    # 004 §二–§五: the amounts are Jining's own (3708)
    assert ps.assistance_for("370811", day)[0].policy.policy_id == "jining-2022-14"
    assert ps.assistance_for("370211", day) is None  # Qingdao: no policy at all
    # 003 never names its city: its monitoring binds the province (a provincial rule
    # restated, §四(一)), its own assistance amounts bind nowhere …
    assert ps.for_region("130503").policy.policy_id == "hebei-city-2022"
    assert ps.assistance_for("130503", day) is None
    # … until a user narrows the policy to the city
    narrowed = PolicySet.load([EXAMPLES / "hebei-narrow-1305-overlay.yaml"])
    lp, version, assistance = narrowed.assistance_for("130503", day)
    assert lp.policy.policy_id == "hebei-city-1305" and assistance.regions == ["1305"]
    assert narrowed.assistance_for("130102", day) is None
    # provincial documents: the section binds wherever the policy does
    assert ps.assistance_for("610802", day)[2].regions is None


def test_a_relapse_population_that_leaves_an_identity_unwatched_is_rejected(tmp_path):
    # Contract (identities): every identity is ordinary (脱贫人口), in a relapse population
    # or in the assistance net — nobody falls through both rules silently.
    data = _jining_raw()
    data["versions"][0]["monitoring"][0]["population"]["identities"] = ["dibao_edge"]
    with pytest.raises(PovwatchError, match="monitor_unstable, monitor_edge, monitor_sudden"):
        load_policy(_write(tmp_path, data))


def test_version_in_force_by_date():
    # 004 §九: 2023-01-01 .. 2027-12-31; 003 末段: until 2025-12-31.
    ps = PolicySet.load()
    jining = ps.for_region("370811").policy
    assert jining.version_at(dt.date(2022, 12, 31)) is None
    assert jining.version_at(dt.date(2023, 1, 1)) is not None
    assert jining.version_at(dt.date(2028, 1, 1)) is None
    hebei = ps.for_region("130503").policy
    assert hebei.version_at(dt.date(2025, 12, 31)) is not None
    assert hebei.version_at(dt.date(2026, 1, 31)) is None


def test_thresholds_round_half_up_to_the_fen():
    # 004 §六: 50% × 39 890.00 = 19 945.00; 150% × 39 890.00 = 59 835.00
    assert threshold_fen(Decimal("0.50"), 3_989_000) == 1_994_500
    assert threshold_fen(Decimal("1.50"), 3_989_000) == 5_983_500
    # 0.5 × 0.03 yuan = 0.015 → 0.02 (half up)
    assert threshold_fen(Decimal("0.5"), 3) == 2


def test_provincial_documents_name_exactly_the_values_left_to_the_locality():
    by_id = {load_policy(p).policy.policy_id: load_policy(p) for p in bundled_policy_files()}
    missing = {k: missing_local_values(v.policy.versions[0]) for k, v in by_id.items()}
    assert missing["jining-2022-14"] == []
    assert missing["hebei-city-2022"] == []
    expected = [
        "monitoring.relapse.threshold.factor",
        "monitoring.relapse.threshold.income",
        # the texts name only the relapse population: whom the impoverishment warning
        # watches is the locality's to say (never invented as `ordinary`)
        "monitoring.impoverish.population.identities",
        "monitoring.impoverish.threshold.factor",
        "monitoring.impoverish.threshold.income",
    ]
    assert missing["jilin-2022-16"] == expected  # 000 §五(七) 结合实际合理确定监测标准
    assert missing["guangdong-2022-40"] == expected  # 002 §四(九) 由各统筹地区…明确
    assert "monitoring.relapse.population.identities" in missing["yulin-2023-4"]


def test_overlay_supplies_local_values_for_a_narrower_region():
    ps = PolicySet.load([EXAMPLES / "changchun-2201-overlay.yaml"])
    changchun = ps.for_region("220102")
    assert changchun.policy.policy_id == "changchun-example"
    assert missing_local_values(changchun.policy.versions[0]) == []
    assert ps.for_region("220202").policy.policy_id == "jilin-2022-16"  # Jilin city: still local


def test_narrow_overlay_unbinds_the_base():
    ps = PolicySet.load([EXAMPLES / "hebei-narrow-1305-overlay.yaml"])
    assert ps.for_region("130503").policy.policy_id == "hebei-city-1305"
    assert ps.for_region("130102") is None


@pytest.mark.parametrize(
    ("mutate", "key"),
    [
        (
            lambda d: d["versions"][0]["monitoring"][0]["population"].update(
                identities=["dibao_x"]
            ),
            "versions.0.monitoring.0.population.identities",
        ),
        (
            lambda d: d["versions"][0]["monitoring"][0]["threshold"].pop("cite"),
            "versions.0.monitoring.0.threshold.cite",
        ),
        (
            lambda d: d["versions"].append(
                {**d["versions"][0], "version": "dup", "effective_from": dt.date(2025, 1, 1)}
            ),
            "versions",
        ),
        (
            lambda d: d["versions"][0]["monitoring"][0]["threshold"].update(factor="12"),
            "versions.0.monitoring.0.threshold.factor",
        ),
        (lambda d: d.update(regions=["37x"]), "regions.0"),
        (
            lambda d: d["versions"][0]["assistance"].update(regions=["3709"]),
            "(top level)",
        ),
        (lambda d: d.update(colour="red"), "colour"),
    ],
    ids=[
        "unknown-identity",
        "missing-citation",
        "overlapping-versions",
        "factor-too-big",
        "bad-prefix",
        "assistance-region-outside",
        "unknown-key",
    ],
)
def test_invalid_policy_files_are_rejected_naming_the_key(tmp_path, mutate, key):
    data = _jining_raw()
    mutate(data)
    with pytest.raises(PovwatchError) as err:
        load_policy(_write(tmp_path, data))
    assert f"at {key}" in str(err.value)
    assert "\n" not in str(err.value)


def test_overlay_with_a_key_that_matches_nothing_is_rejected(tmp_path):
    data = {
        "kind": "overlay",
        "overlay_id": "x",
        "title": "x",
        "document": "x",
        "extends": "jilin-2022-16",
        "regions": ["2201"],
        "set": {"monitoring.relpase.threshold": {}},
    }
    with pytest.raises(PovwatchError, match="'relpase' not found"):
        load_policy(_write(tmp_path, data))


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )


def test_policy_check_exit_codes_and_text():
    # Every command takes --landing, --db and --outbox (contract), policy check too.
    ok = _cli(
        "policy",
        "check",
        "policies/jining-370800.yaml",
        "--landing",
        "l",
        "--db",
        "d",
        "--outbox",
        "o",
    )
    assert ok.returncode == 0
    assert "004 §六" in ok.stdout and "19945" not in ok.stdout
    assert "全省上年居民人均可支配收入 × 150%" in ok.stdout
    assert "binds admdvs prefixes 3708" in ok.stdout
    # outpatient special disease (门诊慢特病) is in scope, and the 12-month window shown
    assert "JN-C1 cat1 inpatient/outpatient_chronic/outpatient_special" in ok.stdout
    assert "申请之月前 12 个月（不含申请当月）" in ok.stdout
    # the one reading of ours in Jining: rural impoverishment warnings also to 乡村振兴
    marked = ok.stdout.split("(not stated by the document):")[1].strip().splitlines()
    assert marked[0].startswith(
        "- inferred: version.routing.rural_revitalization:impoverish.cite [004 §六 / §九(二)]"
    )
    assert not [line for line in marked[1:] if line.strip().startswith("- ")]
    incomplete = _cli("policy", "check", "policies/jilin-220000.yaml")
    assert incomplete.returncode == 3
    assert "monitoring.relapse.threshold.factor" in incomplete.stdout
    assert "monitoring (预警监测): INCOMPLETE" in incomplete.stdout
    # The Changchun and Guangzhou examples supply the monitoring values, so a run works: exit
    # 0. Jilin's assistance caps (000 §四(五) leaves them local) are still listed, apart, and
    # only --require-assistance makes them fatal (exit 4).
    for example in ("changchun-2201-overlay.yaml", "guangzhou-4401-overlay.yaml"):
        overlay = _cli("policy", "check", f"policies/examples/{example}")
        assert overlay.returncode == 0, overlay.stdout
        assert "for the warnings" not in overlay.stdout
        assert "monitoring (预警监测): complete" in overlay.stdout
        assert "assistance (医疗救助测算): " in overlay.stdout
        assert "local value(s) missing" in overlay.stdout.splitlines()[-1]
        strict = _cli("policy", "check", "--require-assistance", f"policies/examples/{example}")
        assert strict.returncode == 4
    changchun = _cli("policy", "check", "policies/examples/changchun-2201-overlay.yaml")
    assert "assistance.rules.JL-C1.cap.yuan" in changchun.stdout
    # Jining decides everything: 0 even when assistance values are required.
    assert (
        _cli("policy", "check", "--require-assistance", "policies/jining-370800.yaml").returncode
        == 0
    )
    # Monitoring values missing stay exit 3 with --require-assistance too.
    assert (
        _cli("policy", "check", "--require-assistance", "policies/jilin-220000.yaml").returncode
        == 3
    )
    # Jilin names no effective date; Guangdong's ranking and Hebei's 2023+ major-illness
    # threshold are our reading: policy check says so
    assert "ASSUMED: the text names no effective date" in incomplete.stdout
    guangdong = _cli("policy", "check", "policies/guangdong-440000.yaml").stdout
    assert "version 2022-12: 2022-12-27" in guangdong  # 002: 2022年12月27日印发
    assert "inferred: version.assistance.precedence.cite" in guangdong
    hebei = _cli("policy", "check", "policies/hebei-city-13.yaml").stdout
    assert "inferred: version.assistance.tiers.HB-MAJOR.threshold.cite" in hebei
    assert "binds: no region until a `mode: narrow` overlay" in hebei
    # where-not-ready values, tier conditions and bonus conditions are all shown
    jilin = incomplete.stdout
    assert "暂不具备条件的：起付标准 本市上年居民人均可支配收入 × 5%（不高于）" in jilin
    assert "暂不具备条件的不低于 40%" in jilin
    assert "条件 referred_in_province" in jilin
    assert "14 周岁（含）以下" in jilin
    broken = _cli("policy", "check", "pyproject.toml")
    assert broken.returncode == 1 and broken.stderr.count("\n") == 1


def test_broken_yaml_names_the_file_line_and_column(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("policy_id: x\ntitle: [unclosed\ndocument: y\n", encoding="utf-8")
    with pytest.raises(PovwatchError) as err:
        load_policy(path)
    message = str(err.value)
    # the flow sequence opened on line 2 is still open when line 3 starts a mapping key
    assert message.startswith(f"{path}: line 3, column 9: not valid YAML: ")
    assert "\n" not in message
    done = _cli("policy", "check", str(path))
    assert done.returncode == 1
    assert done.stderr.startswith(f"povwatch: error: {path}: line 3, column 9:")
    assert done.stderr.count("\n") == 1


def test_an_invalid_policy_lists_every_error_with_its_key(tmp_path):
    text = (REPO / "policies" / "jining-370800.yaml").read_text(encoding="utf-8")
    assert text.count('factor: "1.50"') == 1 and text.count("effective_from:") >= 1
    bad = text.replace('factor: "1.50"', 'factor: "lots"').replace(
        "effective_from:", "effective_frm:", 1
    )
    with pytest.raises(PovwatchError) as err:
        load_policy(_write_text(tmp_path, bad))
    message = str(err.value)
    assert "\n" not in message
    assert "invalid policy (3 errors): " in message
    assert "at versions.0.effective_from: Field required" in message
    assert "at versions.0.effective_frm: Extra inputs are not permitted" in message
    # one key for the union Decimal | 'local', both reasons, no pydantic branch names
    assert (
        "at versions.0.monitoring.1.threshold.factor: Input should be a valid decimal "
        "or Input should be 'local'"
    ) in message
    assert "constrained" not in message and "literal[" not in message


def _write_text(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_an_overlay_supplies_the_effective_date_the_text_does_not_give(tmp_path):
    # 000 names no effective date: 2022-01-01 is assumed (and said so) until a local file
    # states it, with its own clause
    base = load_policy(REPO / "policies" / "jilin-220000.yaml").policy.versions[0]
    assert base.effective_from == dt.date(2022, 1, 1) and base.cite.assumed
    data = {
        "kind": "overlay",
        "overlay_id": "jilin-dated",
        "title": "x",
        "document": "x",
        "extends": "jilin-2022-16",
        "regions": ["22"],
        "set": {
            "effective_from": dt.date(2022, 6, 1),
            "cite": {"clause": "示例 第九条", "quote": "自2022年6月1日起施行"},
        },
    }
    version = load_policy(_write(tmp_path, data)).policy.versions[0]
    assert version.effective_from == dt.date(2022, 6, 1) and not version.cite.assumed
    assert version.in_force(dt.date(2022, 6, 1))
    assert not version.in_force(dt.date(2022, 5, 31))
