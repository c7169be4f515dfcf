"""County names come from the national division table shipped as data, with its date."""

from __future__ import annotations

import polars as pl

from pipeline.labels import (
    ADMDVS_AS_OF,
    COUNTIES,
    _admdvs_file,
    admdvs_table,
    division_name,
    with_admdvs_name,
)


def test_the_table_covers_every_province_and_states_its_source_and_date():
    table = admdvs_table()
    assert table["code"].is_unique().all()
    assert table["code"].str.contains(r"^\d{6}$").all()
    levels = table.group_by("level").len().sort("level")
    counts = dict(levels.iter_rows())
    assert counts["province"] == 34  # 34 provincial-level divisions
    assert counts["county"] > 2800
    header = _admdvs_file().read_text(encoding="utf-8").splitlines()[:4]
    assert any("民政部" in line and ADMDVS_AS_OF in line for line in header)


def test_names_of_counties_outside_jining():
    frame = pl.DataFrame({"admdvs": ["130503", "440106", "220102", "370811", "999999"]})
    named = with_admdvs_name(frame)
    # Hebei 邢台市 信都区, Guangdong 广州市 天河区, Jilin 长春市 南关区, Jining 任城区;
    # a code the table does not know is shown as itself; the order of rows is kept.
    assert named["county"].to_list() == ["信都区", "天河区", "南关区", "任城区", "999999"]
    assert named["admdvs"].to_list() == frame["admdvs"].to_list()
    assert COUNTIES["440106"] == "天河区" and COUNTIES.get("000000") is None
    assert (division_name("13"), division_name("1305"), division_name("3708")) == (
        "河北省",
        "邢台市",
        "济宁市",
    )


def test_the_synthetic_city_uses_the_official_county_names():
    from pipeline.synth import city as synth

    frame = pl.DataFrame(
        {"admdvs": [c[0] for c in synth.COUNTIES], "synth_name": [c[1] for c in synth.COUNTIES]}
    )
    named = with_admdvs_name(frame)
    assert named.filter(pl.col("county") != pl.col("synth_name")).height == 0
