"""The inline charts: a province's month (thousands of warnings beside a handful) still draws."""

from __future__ import annotations

import base64
import io
import re

import pytest
from PIL import Image

from pipeline.reports import charts


def _png(markup) -> Image.Image:
    data = re.search(r"base64,([^\"]+)", str(markup)).group(1)
    return Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")


def test_a_bar_under_one_pixel_beside_a_tall_one_is_drawn_not_an_error():
    # 1 warning in January beside 50 000 in December: January's bar is 0.004 px high on a
    # 130-px plot. Pillow refused such a rectangle (y1 < y0) and stopped a 1M-person run.
    if charts._font(11) is None:
        pytest.skip("no CJK font: the chart is SVG")
    img = _png(
        charts.bar_chart(
            ["1月", "12月"],
            [("持续", "#5b8def", [0, 40_000]), ("新增", "#d9534f", [1, 10_000])],
            title="本年度各月预警人数",
        )
    )
    # January's bar: a red row on the axis (y = 166 of 200), over its slot (x 87..243 of 560);
    # the legend's red square is lower (y 188..198).
    k = charts.SCALE
    red = {
        y
        for x in range(88 * k, 242 * k, 8)
        for y in range(150 * k, 180 * k)
        if img.getpixel((x, y)) == (0xD9, 0x53, 0x4F)
    }
    assert red and max(red) - min(red) <= 1, sorted(red)


def test_the_top_bars_label_sits_below_the_title():
    # The tallest bar's total is written above the bar; the plot starts low enough that it
    # never runs into the title (the title's baseline is at y = 16).
    svg = str(charts.svg_bar_chart(["12月"], [("新增", "#d9534f", [38])], title="t"))
    label_y = float(re.search(r'<text x="[^"]+" y="([0-9.]+)" text-anchor="middle">38<', svg)[1])
    assert label_y - 11 >= 16 + 4
