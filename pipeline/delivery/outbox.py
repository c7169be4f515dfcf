"""The local outbox: packages per department × county, and delivered files edited in place.

An officer may answer in the delivered 台账 itself, in the outbox. Such a file (its sha256 no
longer the manifest's) is never overwritten: each run first moves it to
``outbox/received/<department>/<month>/<county>/<name>.edited-<sha8>.<ext>``, where the
feedback reader finds it (``pipeline.ingest.feedback.feedback_roots``), and says so. An
edited file outside the department folders (the city summary) goes to ``outbox/kept/<month>/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from pipeline.labels import DEPARTMENTS

RECEIVED = "received"
KEPT = "kept"
_MONTH = re.compile(r"^\d{4}-\d{2}$")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def manifests(outbox: Path) -> list[tuple[str, dict]]:
    """(month, manifest) of every month folder in the outbox, by month."""
    out = []
    for path in sorted(outbox.glob("*/manifest.json")):
        if _MONTH.match(path.parent.name):
            try:
                out.append((path.parent.name, json.loads(path.read_text(encoding="utf-8"))))
            except (OSError, ValueError):
                continue  # a damaged manifest: its month is re-made by a re-run
    return out


def edited_files(outbox: Path) -> list[tuple[str, Path, Path, str]]:
    """(month, path in the month's folder, file, sha256) of every delivered file whose sha256
    is no longer its manifest's: edited in place since delivery."""
    out = []
    for month, doc in manifests(outbox):
        for entry in doc.get("files", []):
            rel = Path(entry["path"])
            path = outbox / month / rel
            if not path.is_file():
                continue
            digest = _sha256(path)
            if digest != entry.get("sha256"):
                out.append((month, rel, path, digest))
    return out


def is_department_file(rel: Path) -> bool:
    """A file of a department's package (its decisions are feedback), not the city summary."""
    return rel.parts[0] in DEPARTMENTS


def set_aside_edited(outbox: Path) -> list[str]:
    """Move every delivered file whose sha256 differs from its manifest to ``received/``.

    Returns one progress line per file moved (paths only, never contents).
    """
    lines = []
    for month, rel, path, digest in edited_files(outbox):
        name = f"{path.stem}.edited-{digest[:8]}{path.suffix}"
        dept = rel.parts[0] if is_department_file(rel) else None
        if dept:
            target = outbox / RECEIVED / dept / month / Path(*rel.parts[1:]).parent / name
        else:  # the city summary and the like: kept, not read as feedback
            target = outbox / KEPT / month / rel.parent / name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
        lines.append(
            f"[{month}] {month}/{rel.as_posix()} was edited after delivery (sha256 differs "
            f"from the manifest): kept as {target.relative_to(outbox).as_posix()}"
            + (", its decisions are read as feedback" if dept else "")
        )
    return lines
