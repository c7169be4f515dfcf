"""`policy simulate`'s default sweep: around each rule's own factor in force."""

from __future__ import annotations

from decimal import Decimal

import polars as pl

from pipeline.warnings.simulate import default_factors, render_table


def test_the_default_sweep_is_centred_on_the_factor_in_force():
    # Jining 004 §六: impoverishment at 150 % → 75 % … 225 % in steps of 15 points.
    sweep = default_factors("impoverish", Decimal("1.50"))
    assert sweep[0] == Decimal("0.75") and sweep[-1] == Decimal("2.25") and len(sweep) == 11
    assert Decimal("1.5") in sweep and sweep[1] - sweep[0] == Decimal("0.15")
    # relapse at 50 % → 25 % … 75 %
    assert default_factors("relapse", Decimal("0.5"))[0] == Decimal("0.25")
    assert default_factors("relapse", Decimal("0.5"))[-1] == Decimal("0.75")


def test_a_local_factor_sweeps_around_the_usual_one():
    # 000 §五(七) leaves the factor local: relapse around 50 %, impoverishment around 100 %.
    assert default_factors("relapse", None)[5] == Decimal("0.5")
    imp = default_factors("impoverish", None)
    assert (imp[0], imp[5], imp[-1]) == (Decimal("0.5"), Decimal("1"), Decimal("1.5"))


def test_the_table_marks_the_factor_in_force():
    table = pl.DataFrame(
        {
            "factor": ["1.35", "1.5", "0.5"],
            "admdvs": ["370811"] * 3,
            "county": ["任城区"] * 3,
            "warning_type": ["impoverish", "impoverish", "relapse"],
            "threshold": ["1.00", "2.00", "3.00"],
            "persons": [5, 3, 7],
            "households": [4, 3, 6],
            "share_household_known": [0.0, 0.0, 0.0],
            "in_force": [False, True, True],
        }
    )
    lines = render_table(table).splitlines()
    assert lines[1].split()[0] == "0.5" and lines[1].split()[1] == "7/6*"
    assert lines[3].split() == ["1.5", "-", "3/3*"]
    assert lines[2].split() == ["1.35", "-", "5/4"]
    assert lines[-1] == "* the factor in force (现行标准)"


def _table() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "factor": ["0.5", "1.5"],
            "admdvs": ["370811", "370811"],
            "county": ["任城区", "任城区"],
            "warning_type": ["relapse", "impoverish"],
            "threshold": ["1.00", "2.00"],
            "persons": [2, 3],
            "households": [2, 3],
            "share_household_known": [0.0, 0.0],
            "in_force": [True, True],
        }
    )


def test_the_chart_is_drawn_with_or_without_a_chinese_font(tmp_path, monkeypatch):
    from pathlib import Path

    import pipeline.warnings.simulate as sim
    from pipeline.months import Month

    if Path(sim._CJK_FILES[0]).is_file():  # Debian's fonts-wqy-microhei (the Makefile's)
        assert sim._cjk_font() == "WenQuanYi Micro Hei"
    png, svg = sim._chart(_table(), tmp_path / "with", "3708", Month(2024, 12))
    assert png.stat().st_size > 5_000 and svg.read_text(encoding="utf-8").startswith("<?xml")
    # no CJK font on the machine: English words, still a chart, no error
    monkeypatch.setattr(sim, "_CJK_FONTS", ("No Such Font",))
    monkeypatch.setattr(sim, "_CJK_FILES", ())
    assert sim._cjk_font() is None
    png, _ = sim._chart(_table(), tmp_path / "without", "3708", Month(2024, 12))
    assert png.stat().st_size > 5_000
