"""Owner-only files and folders (pipeline.store.files)."""

from __future__ import annotations

import grp
import os

import pytest

from pipeline.errors import PovwatchError
from pipeline.store import files


def _mode(p):
    return p.stat().st_mode & 0o777


def test_private_dir_and_restrict_tree(tmp_path, monkeypatch):
    monkeypatch.delenv(files.GROUP_ENV, raising=False)
    old = os.umask(0o022)
    try:
        made = files.private_dir(tmp_path / "a" / "b")
        assert _mode(tmp_path / "a") == 0o700 and _mode(made) == 0o700
        (made / "x.xlsx").write_bytes(b"x")
        (made / "c").mkdir()
        (made / "c" / "y.csv").write_text("y")
        assert _mode(made / "x.xlsx") == 0o644  # written under the lax umask
        files.restrict_tree(tmp_path / "a")
        assert _mode(made / "x.xlsx") == 0o600 and _mode(made / "c" / "y.csv") == 0o600
        assert _mode(made / "c") == 0o700
    finally:
        os.umask(old)


def test_umask_makes_new_files_private(tmp_path, monkeypatch):
    monkeypatch.delenv(files.GROUP_ENV, raising=False)
    old = files.set_private_umask()
    try:
        (tmp_path / "f").write_text("f")
        (tmp_path / "d").mkdir()
        assert _mode(tmp_path / "f") == 0o600 and _mode(tmp_path / "d") == 0o700
    finally:
        os.umask(old)


def test_a_named_group_reads(tmp_path, monkeypatch):
    group = grp.getgrgid(os.getgid()).gr_name
    monkeypatch.setenv(files.GROUP_ENV, group)
    (tmp_path / "f").write_text("f")
    files.restrict(tmp_path / "f")
    assert _mode(tmp_path / "f") == 0o640 and (tmp_path / "f").stat().st_gid == os.getgid()
    assert files.modes() == (0o640, 0o750)
    monkeypatch.setenv(files.GROUP_ENV, "no-such-group-povwatch")
    with pytest.raises(PovwatchError, match="no such group"):
        files.restrict(tmp_path / "f")
