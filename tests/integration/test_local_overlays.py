"""Jilin and Guangdong leave their thresholds to the locality: once a local policy file
supplies them, a city runs end to end; until then the run stops naming what is missing."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from pipeline.cli import warnings_csv
from pipeline.errors import PovwatchError
from pipeline.months import Month
from pipeline.run import run_month
from pipeline.settings import Settings
from tests.landing import INCOME, make_landing, person, settlement

EXAMPLES = Path(__file__).resolve().parents[2] / "policies" / "examples"
# Invented figures for the test (published before 2024).
LOCAL_INCOME = [
    *INCOME,
    ("220000", 2023, "rural", "19000", "2024-01-20"),
    ("440100", 2023, "all", "80000", "2024-01-25"),
]


def _landing(tmp_path: Path) -> Settings:
    cc_edge = person("PCC1", "220102", seq=1)  # 长春市 南关区, 低保边缘
    cc_ord = person("PCC2", "220102", seq=2)
    gz_edge = person("PGZ1", "440104", seq=3)  # 广州市 越秀区, 监测对象
    s = Settings(
        landing=tmp_path / "l", db=tmp_path / "w.duckdb", outbox=tmp_path / "o", quiet=True
    )
    make_landing(
        s.landing,
        [cc_edge, cc_ord, gz_edge],
        {
            "2024-03": [
                settlement("S1", cc_edge, "2024-03-05 10:00:00", "9500.01"),
                settlement("S2", cc_ord, "2024-03-05 10:00:00", "19000.00"),
                settlement("S3", gz_edge, "2024-03-05 10:00:00", "32000.01"),
            ]
        },
        identities=[
            (cc_edge["certno"], "dibao_edge", "2023-01-01", None),
            (gz_edge["certno"], "monitor_edge", "2023-01-01", None),
        ],
        income=LOCAL_INCOME,
    )
    return s


def test_without_the_local_file_the_run_names_the_missing_value(tmp_path):
    s = _landing(tmp_path)
    with pytest.raises(
        PovwatchError,
        match=r"region 220102: policy jilin-2022-16 .* leaves "
        r"monitoring\.relapse\.threshold\.factor",
    ):
        run_month("2024-03", s)


def test_jilin_and_guangdong_cities_run_with_their_local_files(tmp_path):
    s = _landing(tmp_path).model_copy(
        update={
            "policy_files": (
                EXAMPLES / "changchun-2201-overlay.yaml",
                EXAMPLES / "guangzhou-4401-overlay.yaml",
            )
        }
    )
    run_month("2024-03", s)
    rows = list(csv.DictReader(io.StringIO(warnings_csv(s.db, Month.parse("2024-03")))))
    got = [(r["psn_no"], r["warning_type"], r["threshold"]) for r in rows]
    # 长春 example: 50% × Jilin 2023 rural 19 000 = 9 500.00 (relapse); 100% = 19 000.00
    # (impoverish: 19 000.00 is not over it). 广州 example: 40% × 80 000 = 32 000.00.
    assert got == [
        ("PCC1", "relapse", "9500.00"),
        ("PGZ1", "relapse", "32000.00"),
    ]
