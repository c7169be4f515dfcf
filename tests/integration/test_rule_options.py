"""Monitoring-rule options a bureau may configure: burden measure and unit (person/household)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import yaml

from pipeline.cli import warnings_csv
from pipeline.months import Month
from pipeline.run import run_month
from pipeline.settings import Settings
from tests.landing import make_landing, person, settlement


def _overlay(tmp_path: Path, values: dict) -> Path:
    path = tmp_path / "overlay.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "kind": "overlay",
                "overlay_id": "jining-test",
                "title": "测试",
                "document": "测试",
                "extends": "jining-2022-14",
                "regions": ["3708"],
                "set": values,
            },
            allow_unicode=True,
        ),
        encoding="utf-8",
    )
    return path


def _rows(s: Settings, month: str) -> list[tuple]:
    rows = csv.DictReader(io.StringIO(warnings_csv(s.db, Month.parse(month))))
    return [(r["psn_no"], r["warning_type"], r["burden_ytd"], r["threshold"]) for r in rows]


def _settings(tmp_path, *policy_files):
    return Settings(
        landing=tmp_path / "l",
        db=tmp_path / "w.duckdb",
        outbox=tmp_path / "o",
        quiet=True,
        policy_files=tuple(policy_files),
    )


def test_burden_after_assistance_leaves_out_what_medical_assistance_paid(tmp_path):
    # 20 000.00 of which maf_pay 1 000.00. Default measure (after insurance): 20 000.00 >
    # 19 945.00 (004 §六, March 2024). After insurance and assistance: 19 000.00 — not over.
    p = person("P1", "370811", seq=1)
    make_landing(
        tmp_path / "l",
        [p],
        {"2024-03": [settlement("S1", p, "2024-03-02 10:00:00", "20000.00", maf="1000.00")]},
        identities=[(p["certno"], "dibao_edge", "2023-01-01", None)],
    )
    s = _settings(tmp_path)
    run_month("2024-03", s)
    assert _rows(s, "2024-03") == [("P1", "relapse", "20000.00", "19945.00")]
    s2 = _settings(
        tmp_path / "b",
        _overlay(tmp_path, {"monitoring.relapse.burden_measure": "after_insurance_and_assistance"}),
    )
    make_landing(
        s2.landing,
        [p],
        {"2024-03": [settlement("S1", p, "2024-03-02 10:00:00", "20000.00", maf="1000.00")]},
        identities=[(p["certno"], "dibao_edge", "2023-01-01", None)],
    )
    run_month("2024-03", s2)
    assert _rows(s2, "2024-03") == []


def test_household_unit_compares_household_burden_with_size_times_threshold(tmp_path):
    # Two dibao_edge members of one household, 20 000.00 and 19 990.01: the household's
    # 39 990.01 > 2 × 19 945.00 = 39 890.00, so both members are warned with the household
    # figures; a one-person household with 19 000.00 is not (19 000.00 < 19 945.00).
    a = person("PA", "370811", hh="H1", seq=1)
    b = person("PB", "370811", hh="H1", seq=2)
    c = person("PC", "370811", hh="H2", seq=3)
    s = _settings(tmp_path, _overlay(tmp_path, {"monitoring.relapse.unit": "household"}))
    make_landing(
        s.landing,
        [a, b, c],
        {
            "2024-03": [
                settlement("S1", a, "2024-03-02 10:00:00", "20000.00"),
                settlement("S2", b, "2024-03-02 10:00:00", "19990.01"),
                settlement("S3", c, "2024-03-02 10:00:00", "19000.00"),
            ]
        },
        identities=[(x["certno"], "dibao_edge", "2023-01-01", None) for x in (a, b, c)],
    )
    run_month("2024-03", s)
    assert _rows(s, "2024-03") == [
        ("PA", "relapse", "39990.01", "39890.00"),
        ("PB", "relapse", "39990.01", "39890.00"),
    ]
