"""Small inline SVG charts for the HTML/PDF reports (no scripts, no external files).

Every label is XML-escaped; sizes are fixed numbers so the same data gives the same bytes.
"""

from __future__ import annotations

from html import escape

from markupsafe import Markup

_FONT = "font-family=\"'WenQuanYi Micro Hei','Noto Sans CJK SC','Microsoft YaHei',sans-serif\""


def bar_chart(
    labels: list[str],
    series: list[tuple[str, str, list[int]]],
    *,
    title: str,
    width: int = 560,
    height: int = 200,
) -> Markup:
    """Stacked bars: ``series`` is (name, colour, values per label), stacked in order."""
    n = max(len(labels), 1)
    left, right, top, bottom = 36, 8, 26, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(s[2][i] for s in series) for i in range(len(labels))]
    peak = max([*totals, 1])
    step = plot_w / n
    bar = max(step * 0.6, 2)
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
