"""Delivery against real local servers: OpenSSH ``sshd`` (SFTP, key auth) and aiosmtpd (SMTP).

One month of the example fixture is run with civil_affairs → SFTP and rural_revitalization →
e-mail plus a destination that refuses connections: the broken one is retried with back-off
and reported, the others still get every package; a re-run sends nothing twice.
"""

from __future__ import annotations

import email
import io
import json
import os
import shutil
import socket
import subprocess
import time
import zipfile
from email import policy
from pathlib import Path

import duckdb
import pytest
import yaml

from pipeline.run import run_month
from pipeline.settings import Settings

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "jining-hebei-2024"
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, seconds: float = 10) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            pytest.skip(f"sshd could not start here: {' '.join(err.split())[:200]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    pytest.skip("sshd did not listen within 10 s")


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    if not Path(SSHD).is_file():
        pytest.skip("OpenSSH sshd is not installed (make install adds Debian openssh-server)")
    d = tmp_path_factory.mktemp("sshd")
    for name in ("host", "client"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True
        )
    shutil.copy(d / "client.pub", d / "authorized_keys")
    port = _free_port()
    (d / "sshd_config").write_text(
        f"""Port {port}
ListenAddress 127.0.0.1
HostKey {d / "host"}
PidFile {d / "sshd.pid"}
AuthorizedKeysFile {d / "authorized_keys"}
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
Subsystem sftp internal-sftp
LogLevel ERROR
"""
    )
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory
    proc = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stderr=subprocess.PIPE
    )
    try:
        _wait_port(port, proc)
        host_pub = (d / "host.pub").read_text().split()
        (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
        yield {"port": port, "key": d / "client", "known_hosts": d / "known_hosts", "dir": d}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def smtpd():
    from aiosmtpd.controller import Controller

    class Inbox:
        def __init__(self):
            self.messages: list[bytes] = []

        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd API
            self.messages.append(envelope.original_content or envelope.content)
            return "250 OK"

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        yield {"port": controller.port, "inbox": inbox}
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def delivered(tmp_path_factory, sshd, smtpd):
    work = tmp_path_factory.mktemp("deliver")
    shutil.copytree(FIXTURE / "landing", work / "landing")
    remote = work / "remote"
    config = {
        "overdue_after_days": 30,
        "retry": {"attempts": 3, "backoff_seconds": 0.01},
        "departments": {
            "civil_affairs": [
                {
                    "kind": "sftp",
                    "name": "mz-sftp",
                    "host": "127.0.0.1",
                    "port": sshd["port"],
                    "username": _user(),
                    "key_file": str(sshd["key"]),
                    "known_hosts": str(sshd["known_hosts"]),
                    "remote_dir": f"{remote}/{{month}}/{{county}}",
                }
            ],
            "rural_revitalization": [
                {
                    "kind": "smtp",
                    "name": "xczx-mail",
                    "host": "127.0.0.1",
                    "port": smtpd["port"],
                    "sender": "povwatch@example.gov.cn",
                    "to": ["xczx@example.gov.cn"],
                },
                {
                    "kind": "smtp",
                    "name": "broken",
                    "host": "127.0.0.1",
                    "port": _free_port(),  # nothing listens here
                    "sender": "povwatch@example.gov.cn",
                    "to": ["nobody@example.gov.cn"],
                    "timeout_seconds": 2,
                },
            ],
        },
    }
    (work / "delivery.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    settings = Settings(
        landing=work / "landing",
        db=work / "w.duckdb",
        outbox=work / "outbox",
        delivery=work / "delivery.yaml",
        quiet=True,
    )
    said: list[str] = []
    first = run_month("2024-03", settings, progress=said.append)
    mails_after_first = len(smtpd["inbox"].messages)
    said2: list[str] = []
    second = run_month("2024-03", settings, progress=said2.append)
    return {
        "work": work,
        "remote": remote,
        "first": first,
        "second": second,
        "said": said,
        "said2": said2,
        "mails_after_first": mails_after_first,
        "inbox": smtpd["inbox"],
    }


def _user() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name  # the account sshd runs as accepts its own key


def _packages(work: Path, dept: str) -> dict[str, list[Path]]:
    root = work / "outbox" / "2024-03" / dept
    return {d.name: sorted(d.glob("*.xlsx")) for d in sorted(root.iterdir())}


def test_sftp_destination_has_every_civil_affairs_package(delivered):
    packages = _packages(delivered["work"], "civil_affairs")
    assert len(packages) == 5
    for county, files in packages.items():
        for f in files:
            remote = delivered["remote"] / "2024-03" / county / f.name
            assert remote.read_bytes() == f.read_bytes()
    assert not list(delivered["remote"].rglob("*.part"))


def test_each_rural_package_is_mailed_once_with_the_package_attached(delivered):
    packages = _packages(delivered["work"], "rural_revitalization")
    assert delivered["mails_after_first"] == len(packages) == 4
    seen = {}
    for raw in delivered["inbox"].messages:
        msg = email.message_from_bytes(raw, policy=policy.default)
        (att,) = list(msg.iter_attachments())
        with zipfile.ZipFile(io.BytesIO(att.get_content())) as zf:
            for name in zf.namelist():
                seen[name] = zf.read(name)
    for files in packages.values():
        for f in files:
            assert seen[f.name] == f.read_bytes()


def test_messages_and_mails_never_name_a_resident(delivered):
    con = duckdb.connect(str(delivered["work"] / "w.duckdb"), read_only=True)
    people = con.sql(
        "select p.psn_no, p.certno, p.psn_name from ref_persons p "
        "join mart_warnings w using (psn_no)"
    ).fetchall()
    log = " ".join(str(r) for r in con.sql("select * from delivery_log").fetchall())
    con.close()
    texts = [log, *delivered["said"], *delivered["said2"]]
    for raw in delivered["inbox"].messages:
        msg = email.message_from_bytes(raw, policy=policy.default)
        texts.append(str(msg["Subject"]) + msg.get_body(("plain",)).get_content())
    blob = "\n".join(texts)
    for psn_no, certno, name in people:
        assert psn_no not in blob and certno not in blob
        assert not name or name not in blob


def test_a_failed_destination_is_retried_reported_and_the_others_still_go(delivered):
    con = duckdb.connect(str(delivered["work"] / "w.duckdb"), read_only=True)
    run_id = delivered["first"].run_id
    broken = con.execute(
        "select package, attempt, outcome from delivery_log where run_id = ? "
        "and destination = 'broken' order by attempted_at, attempt",
        [run_id],
    ).fetchall()
    ledger = con.execute(
        "select outcome, deliveries, message from run_ledger where run_id = ?", [run_id]
    ).fetchall()[0]
    con.close()
    # first package: three attempts with back-off; the destination is then known down
    first_pkg = broken[0][0]
    assert [(a, o) for p, a, o in broken if p == first_pkg] == [
        (1, "failed"),
        (2, "failed"),
        (3, "failed"),
    ]
    assert {o for _, _, o in broken} == {"failed"}
    outcome, deliveries, message = ledger
    assert outcome == "success" and message == "delivery failed: broken"
    by_dest = {d["destination"]: d for d in json.loads(deliveries)}
    assert by_dest["mz-sftp"]["delivered"] == 5 and by_dest["mz-sftp"]["failed"] == 0
    assert by_dest["xczx-mail"]["delivered"] == 4
    assert by_dest["broken"]["failed"] == 4
    assert any(
        "broken (smtp)" in line and "FAILED after 3 attempts" in line for line in delivered["said"]
    )


def test_redelivering_the_month_is_idempotent(delivered):
    assert len(delivered["inbox"].messages) == delivered["mails_after_first"]
    con = duckdb.connect(str(delivered["work"] / "w.duckdb"), read_only=True)
    second = json.loads(
        con.execute(
            "select deliveries from run_ledger where run_id = ?", [delivered["second"].run_id]
        ).fetchall()[0][0]
    )
    con.close()
    by_dest = {d["destination"]: d for d in second}
    assert (by_dest["mz-sftp"]["delivered"], by_dest["mz-sftp"]["unchanged"]) == (0, 5)
    assert (by_dest["xczx-mail"]["delivered"], by_dest["xczx-mail"]["unchanged"]) == (0, 4)
    assert (by_dest["outbox"]["delivered"], by_dest["outbox"]["unchanged"]) == (0, 9)
    assert by_dest["broken"]["failed"] == 4  # still down: tried again, still reported
