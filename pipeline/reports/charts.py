"""Small inline charts for the HTML/PDF reports (no scripts, no external files).

Drawn as PNG (Pillow, twice the displayed size so a phone shows them sharp) with the CJK font
the PDFs use, and inlined as a data URI: weasyprint lays out every label of an SVG chart as
text and embeds a font for it, which cost about a fifth of a month's rendering; a picture it
only copies. Without that font (or Pillow's FreeType) the chart is an inline SVG instead.
Sizes are fixed numbers and PNG encoding is deterministic, so the same data gives the same
bytes.
"""

from __future__ import annotations

import base64
import io
import shutil
import subprocess
from functools import cache
from html import escape
from pathlib import Path
from typing import NamedTuple

from markupsafe import Markup

FONT_FILES = (Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),)
SCALE = 2  # pixels per displayed unit

_FONT = "font-family=\"'WenQuanYi Micro Hei','Noto Sans CJK SC','Microsoft YaHei',sans-serif\""


class _Layout(NamedTuple):
    left: int
    right: int
    top: int
    plot_h: int
    totals: list[int]
    peak: int
    step: float
    bar: float


def _layout(
    labels: list[str], series: list[tuple[str, str, list[int]]], width: int, height: int
) -> _Layout:
    """The geometry both drawings share: margins, plot height, stacked totals, bar slots."""
    left, right, top, bottom = 36, 8, 36, 34  # room for the top bar's label under the title
    totals = [sum(s[2][i] for s in series) for i in range(len(labels))]
    step = (width - left - right) / max(len(labels), 1)
    return _Layout(
        left, right, top, height - top - bottom, totals, max([*totals, 1]), step, max(step * 0.6, 2)
    )


def bar_chart(
    labels: list[str],
    series: list[tuple[str, str, list[int]]],
    *,
    title: str,
    width: int = 560,
    height: int = 200,
) -> Markup:
    """Stacked bars: ``series`` is (name, colour, values per label), stacked in order."""
    if _font(11) is not None:
        return _png_bar_chart(labels, series, title=title, width=width, height=height)
    return svg_bar_chart(labels, series, title=title, width=width, height=height)


def svg_bar_chart(
    labels: list[str],
    series: list[tuple[str, str, list[int]]],
    *,
    title: str,
    width: int = 560,
    height: int = 200,
) -> Markup:
    """The chart as inline SVG (used when the CJK font is not there for the PNG)."""
    left, right, top, plot_h, totals, peak, step, bar = _layout(labels, series, width, height)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-label="{escape(title)}" {_FONT} font-size="11">',
        f'<text x="{left}" y="16" font-size="13" font-weight="bold">{escape(title)}</text>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" '
        'stroke="#999"/>',
        f'<text x="{left - 4}" y="{top + 4}" text-anchor="end">{peak}</text>',
        f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end">0</text>',
    ]
    for i, label in enumerate(labels):
        x = left + i * step + (step - bar) / 2
        base = top + plot_h
        for _, colour, values in series:
            h = plot_h * values[i] / peak
            if h > 0:
                base -= h
                parts.append(
                    f'<rect x="{x:.1f}" y="{base:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                    f'fill="{colour}"/>'
                )
        if totals[i]:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{base - 3:.1f}" text-anchor="middle">'
                f"{totals[i]}</text>"
            )
        parts.append(
            f'<text x="{x + bar / 2:.1f}" y="{top + plot_h + 14}" text-anchor="middle">'
            f"{escape(label)}</text>"
        )
    x = left
    for name, colour, _ in series:
        parts.append(
            f'<rect x="{x}" y="{height - 12}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{x + 14}" y="{height - 3}">{escape(name)}</text>'
        )
        x += 14 + 13 * len(name) + 16
    parts.append("</svg>")
    return Markup("".join(parts))


@cache
def _font_file() -> str | None:
    for path in FONT_FILES:
        if path.is_file():
            return str(path)
    if shutil.which("fc-match"):
        found = subprocess.run(
            ["fc-match", "-f", "%{file}", "WenQuanYi Micro Hei:lang=zh-cn"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        if found.endswith((".ttc", ".ttf", ".otf")) and Path(found).is_file():
            return found
    return None


@cache
def _font(size: int):  # ImageFont.FreeTypeFont | None
    path = _font_file()
    if path is None:
        return None
    try:
        from PIL import ImageFont

        return ImageFont.truetype(path, size * SCALE)
    except (ImportError, OSError):
        return None


def _png_bar_chart(
    labels: list[str],
    series: list[tuple[str, str, list[int]]],
    *,
    title: str,
    width: int,
    height: int,
) -> Markup:
    """The same chart as ``svg_bar_chart``, drawn as a PNG and inlined."""
    from PIL import Image, ImageDraw

    k = SCALE
    font, big = _font(11), _font(13)
    left, right, top, plot_h, totals, peak, step, bar = _layout(labels, series, width, height)
    img = Image.new("RGB", (width * k, height * k), "#ffffff")
    d = ImageDraw.Draw(img)
    ink = "#1f2933"

    def text(x: float, y: float, s: str, anchor: str, f=font) -> None:
        d.text((x * k, y * k), s, fill=ink, font=f, anchor=anchor)

    text(left, 16, title, "ls", big)
    base_y = top + plot_h
    d.line([(left * k, base_y * k), ((width - right) * k, base_y * k)], fill="#999999", width=k)
    text(left - 4, top + 4, str(peak), "rs")
    text(left - 4, base_y, "0", "rs")
    for i, label in enumerate(labels):
        x = left + i * step + (step - bar) / 2
        y = base_y
        for _, colour, values in series:
            h = plot_h * values[i] / peak
            if h > 0:
                y0 = (y - h) * k  # a bar under a pixel high (1 among thousands) is one row
                d.rectangle([(x * k, y0), ((x + bar) * k - 1, max(y * k - 1, y0))], fill=colour)
                y -= h
        if totals[i]:
            text(x + bar / 2, y - 3, str(totals[i]), "ms")
        text(x + bar / 2, base_y + 14, label, "ms")
    x = left
    for name, colour, _ in series:
        d.rectangle([(x * k, (height - 12) * k), ((x + 10) * k - 1, (height - 2) * k - 1)], colour)
        text(x + 14, height - 3, name, "ls")
        x += 14 + 13 * len(name) + 16
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False, compress_level=1)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return Markup(
        f'<img class="chart" src="data:image/png;base64,{data}" alt="{escape(title)}" '
        f'width="{width}" height="{height}">'
    )
