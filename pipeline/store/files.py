"""Files and folders holding personal data are owner-only: files 0600, folders 0700.

The warehouse and every report hold names and resident ids. A deployment may name a group
that shares them (``POVWATCH_GROUP``, e.g. the bureau's operators): then files are 0640 and
folders 0750, owned by that group. Two mechanisms, used together:

- :func:`set_private_umask` once at the start of a run, so every file the process (and DuckDB)
  creates from then on is born private;
- :func:`private_dir` / :func:`restrict` / :func:`restrict_tree` to create a folder, or fix a
  file or a tree already written (a warehouse made by an older version, a delivered outbox).
"""

from __future__ import annotations

import grp
import os
from pathlib import Path

from pipeline.errors import PovwatchError

GROUP_ENV = "POVWATCH_GROUP"


def _group() -> int | None:
    name = os.environ.get(GROUP_ENV)
    if not name:
        return None
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise PovwatchError(f"{GROUP_ENV}={name}: no such group on this machine") from None


def modes() -> tuple[int, int]:
    """(file mode, folder mode): owner-only, or owner + the named group read-only."""
    return (0o640, 0o750) if _group() is not None else (0o600, 0o700)


def set_private_umask() -> int:
    """From now on this process creates files owner-only (group-readable with a group);
    returns the previous umask."""
    return os.umask(0o027 if _group() is not None else 0o077)


def restrict(path: Path) -> None:
    """Give one existing file or folder the private mode (and the group, when named)."""
    file_mode, dir_mode = modes()
    os.chmod(path, dir_mode if path.is_dir() else file_mode)
    gid = _group()
    if gid is not None:
        os.chown(path, -1, gid)


def private_dir(path: Path) -> Path:
    """Create a folder (and missing parents) private; an existing one is left as it is unless
    it is ours to have created."""
    missing = [p for p in [path, *path.parents] if not p.exists()]
    path.mkdir(parents=True, exist_ok=True)
    for p in missing:
        restrict(p)
    return path


def restrict_tree(root: Path) -> None:
    """Make a folder and everything under it private (a delivery's outbox, say)."""
    if not root.exists():
        return
    restrict(root)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            restrict(Path(dirpath) / name)
