"""The demo's closing hints: runnable as printed, with the paths the demo was given."""

from __future__ import annotations

import shlex
from pathlib import Path

from pipeline.demo import next_steps
from pipeline.settings import Settings


def _commands(text: str) -> list[list[str]]:
    lines = [line.removeprefix("next      :").strip() for line in text.splitlines()]
    return [shlex.split(line) for line in lines if line.startswith(("uv run", "make"))]


def test_default_paths_are_left_out(monkeypatch):
    monkeypatch.delenv("POVWATCH_CMD", raising=False)
    commands = _commands(next_steps(Settings(), 2024))
    assert commands[0] == [
        "uv",
        "run",
        "povwatch",
        "warnings",
        "--month",
        "2024-12",
        "--format",
        "csv",
    ]
    assert all("--db" not in c and "--landing" not in c for c in commands)


def test_other_paths_are_passed_on_quoted(monkeypatch):
    monkeypatch.setenv("POVWATCH_CMD", "python3 -m uv run povwatch")
    settings = Settings(
        landing=Path("my data/landing"), db=Path("my data/w.duckdb"), outbox=Path("out")
    )
    text = next_steps(settings, 2023)
    assert text.count("python3 -m uv run povwatch ") == 4
    lines = [shlex.split(line.removeprefix("next      :")) for line in text.splitlines()[:4]]
    warnings, status, simulate = lines[0], lines[1], lines[2]
    assert warnings[-2:] == ["--db", "my data/w.duckdb"] and "2023-12" in warnings
    assert status[-2:] == ["--db", "my data/w.duckdb"]
    assert simulate[simulate.index("--landing") + 1] == "my data/landing"
    assert simulate[simulate.index("--outbox") + 1] == "out"
    assert "make shell" in text.splitlines()[-1]
