"""polars' allocator gives freed memory back at once in a povwatch process (pipeline/__init__.py):
a month at province scale frees gigabyte frames one after another, and pages jemalloc kept
for seconds added up to the month's peak."""

from __future__ import annotations

import os
import subprocess
import sys

from pipeline import JEMALLOC_ENV

# Allocates a frame of about 600 MB, frees it, and prints the resident memory (MiB) before,
# at the peak and straight after the free.
PROBE = """
import sys
if sys.argv[1] == "povwatch":
    import pipeline.cli  # the console script's module: the package comes first
import polars as pl

def rss():
    with open("/proc/self/status") as f:
        return next(int(x.split()[1]) // 1024 for x in f if x.startswith("VmRSS"))

before = rss()
df = pl.DataFrame({"a": pl.int_range(0, 20_000_000, eager=True)})
df = df.with_columns(s=pl.col("a").cast(pl.String))
peak = rss()
del df
print(before, peak, rss())
"""


def _probe(*args: str, env: dict[str, str]) -> tuple[int, int, int]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *args], env=env, capture_output=True, text=True, check=True
    )
    before, peak, after = map(int, out.stdout.split())
    return before, peak, after


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != JEMALLOC_ENV}
    return {**env, **extra}


def test_a_povwatch_process_gives_freed_frames_back_at_once():
    before, peak, after = _probe("povwatch", env=_env())
    assert peak - before > 300  # the frame was there
    assert after - before < (peak - before) / 3


def test_without_povwatch_polars_keeps_the_freed_pages():
    # the probe's check would fail without the setting: jemalloc's default keeps the pages
    before, peak, after = _probe("plain", env=_env())
    assert after - before > (peak - before) / 2


def test_an_operators_own_jemalloc_setting_is_kept():
    out = subprocess.run(
        [sys.executable, "-c", f"import os, pipeline; print(os.environ[{JEMALLOC_ENV!r}])"],
        env=_env(**{JEMALLOC_ENV: "narenas:2"}),
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "narenas:2"
