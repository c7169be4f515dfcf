"""Delivery bookkeeping on a hand-made outbox: back-off, idempotence, a changed package."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from pipeline.delivery.config import DeliveryConfig
from pipeline.delivery.deliver import deliver_month, packages
from pipeline.store.warehouse import connect


def _publish(outbox: Path, content: bytes) -> None:
    month = outbox / "2024-03"
    files = {"civil_affairs/370811/a.xlsx": content, "summary_2024-03.xlsx": b"s"}
    entries = []
    for rel, data in files.items():
        (month / rel).parent.mkdir(parents=True, exist_ok=True)
        (month / rel).write_bytes(data)
        entries.append(
            {"path": rel, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "rows": 2}
        )
    (month / "manifest.json").write_text(json.dumps({"month": "2024-03", "files": entries}))


@pytest.fixture
def setup(tmp_path):
    outbox = tmp_path / "outbox"
    _publish(outbox, b"v1")
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")  # a folder destination under a file cannot be made
    config = DeliveryConfig.model_validate(
        {
            "retry": {"attempts": 3, "backoff_seconds": 1.5},
            "departments": {
                "civil_affairs": [
                    {"kind": "folder", "name": "good", "path": f"{tmp_path}/share/{{month}}/{{county}}"},
                    {"kind": "folder", "name": "bad", "path": f"{blocker}/{{month}}"},
                    {"kind": "folder", "name": "other", "path": f"{tmp_path}/o", "counties": ["370812"]},
                ]
            },
        }
    )  # fmt: skip
    con = connect(tmp_path / "w.duckdb")
    yield tmp_path, outbox, config, con
    con.close()


def test_only_department_county_folders_are_packages(setup):
    _, outbox, _, _ = setup
    (pkg,) = packages(outbox, "2024-03")
    assert (pkg.key, [f[1] for f in pkg.files]) == ("2024-03/civil_affairs/370811", ["a.xlsx"])


def test_a_package_manifest_goes_along_without_changing_the_package_identity(setup):
    tmp, outbox, config, con = setup
    own = outbox / "2024-03" / "civil_affairs" / "370811" / "manifest.json"
    own.write_text('{"run_id": "r1"}')
    (pkg,) = packages(outbox, "2024-03")
    before = pkg.sha256
    assert [n for _, n in pkg.sent] == ["a.xlsx", "manifest.json"]
    deliver_month(con, outbox, "2024-03", config, "r1", lambda _: None, lambda _: None)
    assert (tmp / "share" / "2024-03" / "370811" / "manifest.json").is_file()
    own.write_text('{"run_id": "r2"}')  # a re-run names another run: same package
    (pkg,) = packages(outbox, "2024-03")
    assert pkg.sha256 == before
    again = deliver_month(con, outbox, "2024-03", config, "r2", lambda _: None, lambda _: None)
    assert {r["destination"]: r["unchanged"] for r in again}["good"] == 1


def test_backoff_doubles_and_the_good_destination_still_gets_its_package(setup):
    tmp, outbox, config, con = setup
    slept: list[float] = []
    said: list[str] = []
    result = deliver_month(con, outbox, "2024-03", config, "r1", said.append, slept.append)
    assert slept == [1.5, 3.0]  # after attempts 1 and 2; none after the last
    assert (tmp / "share" / "2024-03" / "370811" / "a.xlsx").read_bytes() == b"v1"
    assert not (tmp / "o").exists()  # county 370811 is not among that destination's counties
    by = {r["destination"]: (r["delivered"], r["unchanged"], r["failed"]) for r in result}
    assert by == {"outbox": (1, 0, 0), "good": (1, 0, 0), "bad": (0, 0, 1)}
    assert any(line.startswith("[2024-03] delivery bad (folder): 0 delivered") for line in said)
    attempts = con.execute(
        "select attempt, outcome from delivery_log where destination = 'bad' order by attempt"
    ).fetchall()
    assert attempts == [(1, "failed"), (2, "failed"), (3, "failed")]


def test_redelivery_sends_only_what_changed(setup):
    tmp, outbox, config, con = setup
    deliver_month(con, outbox, "2024-03", config, "r1", lambda _: None, lambda _: None)
    again = deliver_month(con, outbox, "2024-03", config, "r2", lambda _: None, lambda _: None)
    assert {r["destination"]: r["unchanged"] for r in again}["good"] == 1
    _publish(outbox, b"v2")  # a re-run with new data: a new package sha256
    third = deliver_month(con, outbox, "2024-03", config, "r3", lambda _: None, lambda _: None)
    assert {r["destination"]: r["delivered"] for r in third}["good"] == 1
    assert (tmp / "share" / "2024-03" / "370811" / "a.xlsx").read_bytes() == b"v2"


def test_deliver_command_reports_a_failed_destination_in_one_line(setup, tmp_path):
    import subprocess
    import sys

    import yaml

    tmp, outbox, config, con = setup
    con.close()
    cfg = tmp / "delivery.yaml"
    cfg.write_text(
        yaml.safe_dump({"retry": {"attempts": 1, "backoff_seconds": 0}} | {
            "departments": {"civil_affairs": [
                {"kind": "folder", "name": "good", "path": f"{tmp}/share2/{{county}}"},
                {"kind": "folder", "name": "bad", "path": f"{tmp}/not-a-dir/x"},
            ]}
        })
    )  # fmt: skip
    args = ["--month", "2024-03", "--db", str(tmp / "w.duckdb"), "--outbox", str(outbox)]
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "deliver", *args, "--delivery", str(cfg), "-q"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == "povwatch: error: delivery of 2024-03 failed for: bad"
    assert "good (folder): 1 delivered, 0 unchanged, 0 failed" in done.stdout
    assert (tmp / "share2" / "370811" / "a.xlsx").read_bytes() == b"v1"
