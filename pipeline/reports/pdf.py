"""PDF of an HTML report (weasyprint; CJK from Debian's fonts-wqy-microhei).

Deterministic: the document dates come from the template's ``dcterms`` meta tags (the first
day of the month). One font configuration per process is reused, so fonts are looked up once;
a month's PDFs are rendered by a small process pool (one worker per core, at most two).
Workers are forked: they only render (no warehouse, no polars) and leave with ``os._exit``
like every forked worker.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from functools import cache
from pathlib import Path

POOL_FROM = 4  # fewer PDFs than this are rendered in-process


@cache
def _font_config():
    from weasyprint.text.fonts import FontConfiguration

    return FontConfiguration()


def html_to_pdf(html: str) -> bytes:
    from weasyprint import HTML

    return HTML(string=html).write_pdf(font_config=_font_config())


def _write(job: tuple[str, str]) -> str:
    html, target = job
    Path(target).write_bytes(html_to_pdf(html))
    return target


def write_pdfs(jobs: list[tuple[str, Path]]) -> None:
    """Render each (html, target path); in parallel when there are several.

    The first is rendered here, which warms the font lookup that the forked workers then
    inherit; the pool lives only for this call, so no worker outlives the month's reports
    (nor holds the process's output open after it ends).
    """
    # longest first, so the two workers finish together
    work = sorted(((html, str(path)) for html, path in jobs), key=lambda j: -len(j[0]))
    workers = min(2, os.cpu_count() or 1)
    if len(work) < POOL_FROM or workers < 2:
        for job in work:
            _write(job)
        return
    _write(work[0])
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        list(pool.map(_write, work[1:]))
