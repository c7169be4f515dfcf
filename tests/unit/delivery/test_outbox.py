"""Delivered files edited in place: set aside, never overwritten, 台账 read as feedback."""

from __future__ import annotations

import hashlib
import json

from pipeline.delivery.outbox import set_aside_edited


def _deliver(outbox, files: dict[str, bytes]) -> None:
    month = outbox / "2024-03"
    entries = []
    for rel, data in files.items():
        (month / rel).parent.mkdir(parents=True, exist_ok=True)
        (month / rel).write_bytes(data)
        entries.append({"path": rel, "sha256": hashlib.sha256(data).hexdigest()})
    (month / "manifest.json").write_text(json.dumps({"month": "2024-03", "files": entries}))


def test_edited_files_are_moved_aside_and_untouched_ones_stay(tmp_path):
    outbox = tmp_path / "outbox"
    ledger, summary, other = (
        "civil_affairs/370811/台账.xlsx",
        "summary_2024-03.xlsx",
        "rural_revitalization/370811/台账.xlsx",
    )
    _deliver(outbox, {ledger: b"as sent", summary: b"as sent", other: b"as sent"})
    assert set_aside_edited(outbox) == []  # nothing edited: nothing moved
    (outbox / "2024-03" / ledger).write_bytes(b"officer's answers")
    (outbox / "2024-03" / summary).write_bytes(b"notes")
    lines = set_aside_edited(outbox)
    sha = hashlib.sha256(b"officer's answers").hexdigest()[:8]
    kept = outbox / "received" / "civil_affairs" / "2024-03" / "370811" / f"台账.edited-{sha}.xlsx"
    assert kept.read_bytes() == b"officer's answers"
    assert not (outbox / "2024-03" / ledger).exists()
    assert (outbox / "2024-03" / other).read_bytes() == b"as sent"
    city = outbox / "kept" / "2024-03"
    assert [p.read_bytes() for p in city.glob("summary_2024-03.edited-*.xlsx")] == [b"notes"]
    assert len(lines) == 2 and "read as feedback" in lines[0] and "read as" not in lines[1]
    assert set_aside_edited(outbox) == []  # once aside, a later run finds nothing to move
