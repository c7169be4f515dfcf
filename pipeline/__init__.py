"""povwatch: monthly early warning of households at risk of poverty through medical costs."""

import hashlib
import os
from functools import cache
from pathlib import Path

# polars allocates through jemalloc, which by default keeps freed pages for seconds before it
# gives them back. A month at province scale frees frames of a gigabyte one after another, and
# the held pages added up to the month's peak. Give them back at once, unless the operator has
# configured jemalloc (read when polars makes its first allocation, so this precedes any import
# of polars: every povwatch process imports this package first).
JEMALLOC_ENV = "_RJEM_MALLOC_CONF"
os.environ.setdefault(JEMALLOC_ENV, "dirty_decay_ms:0,muzzy_decay_ms:0")

__version__ = "0.1.0"


def code_version() -> str:
    """The package version, with the git commit when running from a checkout."""
    commit = git_commit(Path(__file__).resolve().parent.parent / ".git")
    return f"{__version__}+{commit[:12]}" if commit else __version__


def git_commit(git: Path) -> str | None:
    """The commit checked out in ``git`` (a repository's ``.git`` folder, or a worktree's
    ``.git`` file): a branch's commit from its loose ref or ``packed-refs``; None if unknown."""
    try:
        if git.is_file():  # a worktree: "gitdir: <its folder in the main repository>"
            git = (git.parent / git.read_text(encoding="utf-8").strip()[8:]).resolve()
        ref = (git / "HEAD").read_text(encoding="utf-8").strip()
        if not ref.startswith("ref: "):
            return ref  # a detached HEAD
        name = ref[5:]
        common = git / "commondir"
        root = (git / common.read_text(encoding="utf-8").strip()) if common.is_file() else git
        for loose in (git / name, root / name):
            if loose.is_file():
                return loose.read_text(encoding="utf-8").strip()
        packed = (root / "packed-refs").read_text(encoding="utf-8").splitlines()
        return next(line.split()[0] for line in packed if line.endswith(" " + name))
    except (OSError, StopIteration):
        return None


@cache
def code_digest() -> str:
    """A digest of the code that computes the figures: the package's Python files and the
    SQL models, however it is installed (a checkout with uncommitted edits, a worktree, a
    wheel). Stores kept from month to month are valid only under the same digest."""
    package = Path(__file__).resolve().parent
    return source_digest([package, package.parent / "sql", package / "_sql"])


def source_digest(roots: list[Path]) -> str:
    """sha256 of the version and every ``.py``/``.sql`` file under ``roots`` (path and bytes)."""
    h = hashlib.sha256(__version__.encode())
    for root in roots:
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            if path.suffix in (".py", ".sql") and path.is_file():
                h.update(path.relative_to(root).as_posix().encode() + b"\0")
                h.update(path.read_bytes() + b"\0")
    return h.hexdigest()
