"""Every `povwatch` command in README.md's ```sh blocks runs on what `make demo` makes.

A line ending in ``# exit N`` is a deliberate failure and must exit with N; every other
command must exit 0. Lines that are not `povwatch` commands (``make demo``) are left out.
"""

from __future__ import annotations

import re

import pytest

from tests.integration.democity import REPO, as_argv, demo_city, povwatch  # noqa: F401

BLOCK = re.compile(r"^```sh\n(.*?)^```", re.S | re.M)
EXIT = re.compile(r"#\s*exit (\d+)")


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    lines = [line.strip() for block in BLOCK.findall(text) for line in block.splitlines()]
    return [line for line in lines if line.startswith(("povwatch ", "uv run povwatch "))]


def test_the_readme_has_commands_to_try():
    commands = readme_commands()
    assert len(commands) >= 8
    # what works right after `make demo`: through uv, not a bare povwatch off the PATH
    assert all(c.startswith("uv run povwatch ") for c in commands)


@pytest.mark.parametrize("line", readme_commands())
def test_a_readme_command_runs_on_the_demo_city(demo_city, line):  # noqa: F811
    work, _ = demo_city
    expected = EXIT.search(line)
    done = povwatch(*as_argv(line), cwd=work)
    want = int(expected.group(1)) if expected else 0
    assert done.returncode == want, f"{line}\n{done.stderr}"
    if want == 0:
        assert done.stderr.count("povwatch: error") == 0
