"""The code a run records (pipeline.code_version) and the digest the month-to-month stores are
kept under (pipeline.code_digest): a stored total must not outlive the code that made it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline import code_digest, git_commit, source_digest

SHA_A = "a" * 40
SHA_B = "b" * 40


def _repo(tmp_path: Path) -> Path:
    git = tmp_path / "repo" / ".git"
    (git / "refs" / "heads").mkdir(parents=True)
    (git / "HEAD").write_text("ref: refs/heads/main\n")
    return git


def test_a_branchs_commit_from_its_loose_ref(tmp_path):
    git = _repo(tmp_path)
    (git / "refs" / "heads" / "main").write_text(SHA_A + "\n")
    assert git_commit(git) == SHA_A


def test_a_branchs_commit_from_packed_refs_after_gc(tmp_path):
    git = _repo(tmp_path)
    (git / "packed-refs").write_text(
        f"# pack-refs with: peeled fully-peeled sorted\n{SHA_B} refs/heads/other\n"
        f"{SHA_A} refs/heads/main\n"
    )
    assert git_commit(git) == SHA_A


def test_a_worktrees_git_file_is_followed(tmp_path):
    git = _repo(tmp_path)
    (git / "refs" / "heads" / "feature").write_text(SHA_B + "\n")
    wt_dir = git / "worktrees" / "wt"
    wt_dir.mkdir(parents=True)
    (wt_dir / "HEAD").write_text("ref: refs/heads/feature\n")
    (wt_dir / "commondir").write_text("../..\n")
    checkout = tmp_path / "wt"
    checkout.mkdir()
    (checkout / ".git").write_text(f"gitdir: {wt_dir}\n")
    assert git_commit(checkout / ".git") == SHA_B


def test_a_detached_head_and_no_repository(tmp_path):
    git = _repo(tmp_path)
    (git / "HEAD").write_text(SHA_B + "\n")
    assert git_commit(git) == SHA_B
    assert git_commit(tmp_path / "nowhere" / ".git") is None


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_a_real_repository_after_gc(tmp_path):
    run = lambda *a: subprocess.run(  # noqa: E731
        ["git", *a], cwd=tmp_path, check=True, capture_output=True, text=True
    ).stdout.strip()
    run("init", "-q", "-b", "main")
    (tmp_path / "f").write_text("x")
    run("add", "f")
    run("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "m")
    run("pack-refs", "--all")
    assert not (tmp_path / ".git" / "refs" / "heads" / "main").exists()
    assert git_commit(tmp_path / ".git") == run("rev-parse", "HEAD")


def test_the_digest_follows_every_code_file(tmp_path):
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "sql").mkdir()
    (tmp_path / "pkg" / "sub" / "m.py").write_text("x = 1\n")
    (tmp_path / "sql" / "q.sql").write_text("select 1\n")
    (tmp_path / "pkg" / "notes.txt").write_text("not code\n")
    roots = [tmp_path / "pkg", tmp_path / "sql"]
    before = source_digest(roots)
    (tmp_path / "pkg" / "notes.txt").write_text("changed\n")
    assert source_digest(roots) == before  # not code
    (tmp_path / "sql" / "q.sql").write_text("select 2\n")
    after_sql = source_digest(roots)
    assert after_sql != before
    (tmp_path / "pkg" / "sub" / "m.py").write_text("x = 2\n")
    assert source_digest(roots) not in (before, after_sql)
    # the package's own digest: stable within the process
    assert code_digest() == code_digest() and len(code_digest()) == 64
