"""The delivery file: validated, defaults when absent, one-line errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.delivery.config import load_config
from pipeline.errors import PovwatchError
from pipeline.settings import Settings

EXAMPLE = Path(__file__).resolve().parents[3] / "policies" / "examples" / "delivery.yaml"


def test_the_example_file_is_valid():
    config = load_config(Settings(delivery=EXAMPLE))
    assert config.overdue_after_days == 30
    kinds = {d: [x.kind for x in dests] for d, dests in config.departments.items()}
    assert kinds == {"civil_affairs": ["sftp"], "rural_revitalization": ["smtp", "folder"]}


def test_no_file_means_the_outbox_only_and_30_days(monkeypatch):
    monkeypatch.delenv("POVWATCH_DELIVERY", raising=False)
    config = load_config(Settings())
    assert (config.departments, config.overdue_after_days) == ({}, 30)


def test_the_environment_names_the_file(monkeypatch, tmp_path):
    f = tmp_path / "d.yaml"
    f.write_text("overdue_after_days: 45\n")
    monkeypatch.setenv("POVWATCH_DELIVERY", str(f))
    assert load_config(Settings()).overdue_after_days == 45


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("departments: {health: []}\n", "departments.health"),
        ("departments: {civil_affairs: [{kind: ftp, name: x}]}\n", "departments.civil_affairs.0"),
        ("overdue_after_days: 0\n", "overdue_after_days"),
        ("departments: {civil_affairs: [{kind: smtp, name: m, host: h, sender: s, to: []}]}\n",
         "departments.civil_affairs.0.smtp.to"),
    ],
)  # fmt: skip
def test_a_bad_file_is_one_line_naming_the_key(tmp_path, text, where):
    f = tmp_path / "d.yaml"
    f.write_text(text)
    with pytest.raises(PovwatchError) as err:
        load_config(Settings(delivery=f))
    message = str(err.value)
    assert "\n" not in message and str(f) in message and where in message
