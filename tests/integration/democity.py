"""A small demo city made once per test session by `povwatch demo`, in a folder laid out like a
checkout after `make demo`: ``data/`` with the demo's landing, warehouse and outbox, and
``policies/`` (a link to the repository's) so commands written for the checkout run as written.
Import the fixture into a test module: ``from tests.integration.democity import demo_city``."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PERSONS = "1500"


def povwatch(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "POVWATCH_QUALITY": "off", **(env or {})},
    )


def as_argv(line: str) -> list[str]:
    """``uv run povwatch …`` or ``povwatch …`` as the arguments after ``povwatch``."""
    words = shlex.split(line, comments=True)
    if words[:3] == ["uv", "run", "povwatch"]:
        return words[3:]
    assert words[:1] == ["povwatch"], line
    return words[1:]


@pytest.fixture(scope="session")
def demo_city(tmp_path_factory) -> tuple[Path, str]:
    """(folder, the demo's stdout). Paths given explicitly: the demo accepts all three."""
    work = tmp_path_factory.mktemp("checkout")
    (work / "policies").symlink_to(REPO / "policies", target_is_directory=True)
    done = povwatch(
        "demo",
        "--persons",
        PERSONS,
        "--landing",
        "data/landing",
        "--db",
        "data/warehouse.duckdb",
        "--outbox",
        "data/outbox",
        cwd=work,
        env={"POVWATCH_CMD": ""},
    )
    assert done.returncode == 0, done.stderr
    return work, done.stdout
