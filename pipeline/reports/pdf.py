"""PDF of an HTML report (weasyprint; CJK from Debian's fonts-wqy-microhei).

Deterministic: the document dates come from the template's ``dcterms`` meta tags (the first
day of the month). One font configuration per process is reused, so fonts are looked up once.

Several PDFs are rendered by two worker processes while the caller goes on (``PdfJobs``:
submit, write the 台账, then wait). The workers are forked once per process, at the first
PDFs, after the fonts have been looked up (``warm``) and with the parent's objects frozen for
the garbage collector (so the children do not copy the parent's memory page by page). Each
report step ends them when it is done (``release``; a scheduler's task process may leave
without running exit handlers), unless the caller keeps them for the month's next steps
(``workers_kept``, as ``run_month`` does). They get plain
data only (the HTML text, the target path, the umask) and call nothing but weasyprint: never
polars or DuckDB, which are not fork-safe. A worker leaves with ``os._exit``.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import cache
from pathlib import Path

POOL_FROM = 2  # fewer PDFs than this are rendered in-process
WORKERS = 2  # the machine has two cores; more workers only cost memory
_WARM_UP = (
    '<html><head><meta charset="utf-8"><style>body{font-family:"WenQuanYi Micro Hei",sans-serif}'
    "</style></head><body>预警 0123456789</body></html>"
)


@cache
def _font_config():
    from weasyprint.text.fonts import FontConfiguration

    return FontConfiguration()


def html_to_pdf(html: str) -> bytes:
    from weasyprint import HTML

    return HTML(string=html).write_pdf(font_config=_font_config())


def _write(job: tuple[str, str, int]) -> str:
    html, target, umask = job
    os.umask(umask)  # the caller's (a worker is forked from a server started earlier)
    Path(target).write_bytes(html_to_pdf(html))
    return target


def _current_umask() -> int:
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


@cache
def warm() -> None:
    """Import weasyprint and look the fonts up once, before workers are forked."""
    html_to_pdf(_WARM_UP)


_POOL: ProcessPoolExecutor | None = None


def _pool() -> ProcessPoolExecutor:
    """The process's two PDF workers, forked on first use."""
    global _POOL
    if _POOL is None:
        warm()
        gc.collect()
        gc.freeze()  # the collector would otherwise touch (so copy) every page in each child
        try:
            pool = ProcessPoolExecutor(WORKERS, mp_context=multiprocessing.get_context("fork"))
            pool.submit(os.getpid).result()  # forks both workers now, while frozen
        finally:
            gc.unfreeze()
        _POOL = pool
    return _POOL


_KEPT = 0  # open ``workers_kept`` blocks


def shutdown() -> None:
    """End the PDF workers (also at exit)."""
    global _POOL
    if _POOL is not None:
        _POOL.shutdown()
        _POOL = None


atexit.register(shutdown)


def release() -> None:
    """A report step is done: end the workers unless a ``workers_kept`` block keeps them."""
    if not _KEPT:
        shutdown()


@contextlib.contextmanager
def workers_kept() -> Iterator[None]:
    """Keep the PDF workers across the report steps inside the block (one month's counties
    and summary in one process), then end them."""
    global _KEPT
    _KEPT += 1
    try:
        yield
    finally:
        _KEPT -= 1
        release()


def _use_pool(n: int) -> bool:
    return n >= POOL_FROM and min(WORKERS, os.cpu_count() or 1) >= 2


class PdfJobs:
    """PDFs rendered beside the caller's own work: ``submit`` each, then ``wait`` (or leave
    the ``with`` block) before the files are used."""

    def __init__(self, n_expected: int) -> None:
        self._pool = _pool() if _use_pool(n_expected) else None
        self._futures: list[Future] = []
        self._local: list[tuple[str, str, int]] = []

    def submit(self, html: str, target: Path) -> None:
        job = (html, str(target), _current_umask())
        if self._pool is None:
            self._local.append(job)
        else:
            self._futures.append(self._pool.submit(_write, job))

    def wait(self) -> None:
        for job in self._local:
            _write(job)
        self._local = []
        try:
            for f in self._futures:
                f.result()
        except BrokenProcessPool:
            shutdown()  # a worker died: the next PDFs get new ones
            raise
        finally:
            for f in self._futures:
                f.cancel()
            self._futures = []

    def __enter__(self) -> PdfJobs:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.wait()
        else:
            for f in self._futures:
                f.cancel()
            for f in self._futures:  # no worker writes into a folder the caller removes
                if not f.cancelled():
                    with contextlib.suppress(Exception):
                        f.result()
            self._futures = []


def write_pdfs(jobs: list[tuple[str, Path]]) -> None:
    """Render each (html, target path); in parallel when there are several."""
    # longest first, so the two workers finish together
    work = sorted(jobs, key=lambda j: -len(j[0]))
    with PdfJobs(len(work)) as pdfs:
        for html, path in work:
            pdfs.submit(html, path)
