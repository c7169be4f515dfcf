"""What a newcomer meets in the first hour: exit codes, messages with absolute paths, help
texts, and the demo's closing hints that run as printed."""

from __future__ import annotations

import re

import pytest

from tests.integration.democity import as_argv, demo_city, povwatch  # noqa: F401

USAGE_ERRORS = [
    (["warnings", "--month", "2024-13"], "'--month'"),
    (["warnings", "--month", "March"], "'--month'"),
    (["warnings", "--month", "2024-03", "--format", "xml"], "'--format'"),
    (["warnings"], "--month"),  # missing option
    (["warnings", "--month", "2024-03", "--frobnicate"], "--frobnicate"),
    (["run", "--month", "24-3"], "'--month'"),
    (["status", "--month", "2024/03"], "'--month'"),
    (["backfill", "--from", "2024-05", "--to", "2024-01"], "'--to'"),
    (["backfill", "--from", "2024-5", "--to", "2024-06"], "'--from'"),
    (["demo", "--persons", "many"], "'--persons'"),
    (["demo", "--persons", "19"], "'--persons'"),  # the generator's smallest city is 20
    (["policy", "simulate", "--month", "2024-03", "--region", "37x"], "'--region'"),
    (["policy", "simulate", "--month", "2024-03", "--region", "3708", "--factor", "a:b"], "'--factor'"),
    (["policy", "simulate", "--month", "2024-03", "--region", "3708", "--income", "moon:all"], "'--income'"),
    (["policy", "simulate", "--month", "2024-3", "--region", "3708"], "'--month'"),
    (["policy", "check"], "FILE"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "names"), USAGE_ERRORS)
def test_usage_errors_exit_2_with_one_line_and_touch_nothing(tmp_path, args, names):
    done = povwatch(*args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("povwatch: error: ")
    assert names in done.stderr and "--help" in done.stderr
    assert list(tmp_path.iterdir()) == []  # no warehouse, no folders made


def test_format_is_case_insensitive(demo_city):  # noqa: F811
    work, _ = demo_city
    lower = povwatch("warnings", "--month", "2024-12", "--format", "csv", cwd=work)
    upper = povwatch("warnings", "--month", "2024-12", "--format", "CSV", cwd=work)
    assert lower.returncode == upper.returncode == 0
    assert upper.stdout == lower.stdout and upper.stdout.startswith("month,psn_no,hh_id,")


def test_a_landing_folder_that_does_not_exist_is_named_with_its_full_path(tmp_path):
    full = (tmp_path / "no" / "such" / "dir").resolve()
    for args in (
        ["run", "--month", "2024-03"],
        ["backfill", "--from", "2024-01", "--to", "2024-02"],
        ["policy", "simulate", "--month", "2024-03", "--region", "3708"],
    ):
        done = povwatch(*args, "--landing", "no/such/dir", cwd=tmp_path)
        assert done.returncode == 1
        assert done.stderr.count("\n") == 1
        assert f"{full}: the landing folder does not exist" in done.stderr
    assert list(tmp_path.iterdir()) == []  # stopped before the warehouse was made


def test_no_warehouse_names_the_full_path_it_looked_at(tmp_path):
    for args in (["warnings", "--month", "2024-03"], ["status"]):
        done = povwatch(*args, "--db", "elsewhere/w.duckdb", cwd=tmp_path)
        assert done.returncode == 1 and done.stderr.count("\n") == 1
        assert f"{(tmp_path / 'elsewhere' / 'w.duckdb').resolve()}: no warehouse here yet" in (
            done.stderr
        )


HELP = [
    ["--help"],
    ["run", "--help"],
    ["backfill", "--help"],
    ["warnings", "--help"],
    ["status", "--help"],
    ["demo", "--help"],
    ["policy", "--help"],
    ["policy", "check", "--help"],
    ["policy", "simulate", "--help"],
]


@pytest.mark.parametrize("args", HELP)
def test_help_shows_flags_as_flags(tmp_path, args):
    done = povwatch(*args, cwd=tmp_path)
    assert done.returncode == 0
    assert "<bool>" not in done.stdout and "<str>" not in done.stdout
    if "--quiet" in done.stdout:
        assert re.search(r"-q, --quiet\s+no progress output", done.stdout)


def test_help_offers_only_options_that_do_something(tmp_path):
    warnings = povwatch("warnings", "--help", cwd=tmp_path).stdout
    assert "month to run" not in warnings and "--month YYYY-MM" in warnings
    assert "--db FILE" in warnings
    for args in (["warnings"], ["status"], ["policy", "check"]):
        text = povwatch(*args, "--help", cwd=tmp_path).stdout
        assert "--landing" not in text and "--outbox" not in text, args
    assert "--landing DIR" in povwatch("run", "--help", cwd=tmp_path).stdout
    check = povwatch("policy", "check", "--help", cwd=tmp_path).stdout
    assert "--require-assistance" in check and re.search(r"^\s+3\s", check, re.M)


def test_hidden_options_are_still_accepted(demo_city):  # noqa: F811
    work, _ = demo_city
    extra = ["--landing", "data/landing", "--outbox", "data/outbox"]
    assert povwatch("warnings", "--month", "2024-12", *extra, cwd=work).returncode == 0
    assert povwatch("status", "--month", "2024-12", *extra, cwd=work).returncode == 0


def test_the_demo_prints_next_steps_that_run_as_printed(demo_city):  # noqa: F811
    work, stdout = demo_city
    block = stdout[stdout.index("next      :") :].splitlines()
    commands = [line.removeprefix("next      :").strip() for line in block]
    commands = [c for c in commands if c.startswith("uv run povwatch ")]
    assert len(commands) >= 3
    assert "make shell" in stdout and "source .venv/bin/activate" in stdout
    for line in commands:
        done = povwatch(*as_argv(line), cwd=work)
        assert done.returncode == 0, f"{line}\n{done.stderr}"
    # the simulate hint wrote its analysis beside the outbox, not into a delivery folder
    assert (work / "data" / "analysis" / "2024-12" / "simulate_3708_2024-12.csv").is_file()
    assert not (work / "data" / "outbox" / "2024-12" / "simulate").exists()


def test_the_demo_table_names_jining_counties(demo_city):  # noqa: F811
    _, stdout = demo_city
    head = stdout.splitlines()[1]
    assert "任城区" in head and "全市" in head


def test_failures_name_what_is_wrong_with_full_paths(demo_city):  # noqa: F811
    work, _ = demo_city
    other = povwatch("policy", "simulate", "--month", "2024-12", "--region", "2201", cwd=work)
    assert other.returncode == 1 and other.stderr.count("\n") == 1
    assert "--region 2201: no insured person" in other.stderr and "3708" in other.stderr
    missing = povwatch("policy", "check", "policies/nope.yaml", cwd=work)
    assert missing.returncode == 1
    assert f"{work.resolve() / 'policies' / 'nope.yaml'}: cannot read policy file" in (
        missing.stderr
    )
    never = povwatch("run", "--month", "2025-01", "--quiet", cwd=work)
    assert never.returncode == 1 and never.stderr.count("\n") == 1
    full = (work / "data" / "landing" / "settlements" / "2025-01").resolve()
    assert f"{full}: no settlement export for 2025-01" in never.stderr
