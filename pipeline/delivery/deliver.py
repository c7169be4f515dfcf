"""Deliver a month's packages to every configured destination, logged in ``delivery_log``.

A package is one department × county folder of ``outbox/<month>/`` (files and sha256 from the
month's manifest); its sha256 is that of its file list (``path sha256`` lines). Delivery is
idempotent: a package already delivered with the same sha256 to a destination is not sent
again (logged ``unchanged``). A failing destination is retried with back-off (doubling) and
reported, while the other destinations still get their packages.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import shutil
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from pipeline.delivery.config import DeliveryConfig, FolderDest, SftpDest, SmtpDest
from pipeline.delivery.sftp import send_sftp
from pipeline.delivery.smtp import send_smtp
from pipeline.labels import (
    COUNTIES,
    DELIVERY_BODY,
    DELIVERY_KIND,
    DELIVERY_SUBJECT,
    DEPARTMENTS,
)

Say = Callable[[str], None]


@dataclass(frozen=True)
class Package:
    month: str
    department: str
    admdvs: str
    files: tuple[tuple[Path, str, str, int], ...]  # local path, name, sha256, rows
    # Sent along but not part of the package's identity: the package's own manifest, which
    # names the run, so an unchanged package is not sent again just because it was re-run.
    extras: tuple[tuple[Path, str], ...] = ()

    @property
    def sent(self) -> list[tuple[Path, str]]:
        return [(p, n) for p, n, _, _ in self.files] + list(self.extras)

    @property
    def key(self) -> str:
        return f"{self.month}/{self.department}/{self.admdvs}"

    @property
    def sha256(self) -> str:
        lines = "".join(f"{name} {sha}\n" for _, name, sha, _ in self.files)
        return hashlib.sha256(lines.encode("utf-8")).hexdigest()

    @property
    def rows(self) -> int:
        return sum(r for *_, r in self.files)


def packages(outbox: Path, month: str) -> list[Package]:
    """The department × county packages listed in ``outbox/<month>/manifest.json``."""
    manifest = outbox / month / "manifest.json"
    if not manifest.is_file():
        return []
    doc = json.loads(manifest.read_text(encoding="utf-8"))
    groups: dict[tuple[str, str], list] = {}
    for entry in doc.get("files", []):
        parts = Path(entry["path"]).parts
        if len(parts) >= 3 and parts[0] in DEPARTMENTS:
            groups.setdefault((parts[0], parts[1]), []).append(
                (outbox / month / entry["path"], parts[-1], entry["sha256"], entry.get("rows", 0))
            )
    out = []
    for (dept, county), files in sorted(groups.items()):
        own = outbox / month / dept / county / "manifest.json"
        listed = {f[1] for f in files}
        extras = ((own, own.name),) if own.is_file() and own.name not in listed else ()
        out.append(Package(month, dept, county, tuple(sorted(files, key=lambda f: f[1])), extras))
    return out


def zip_package(pkg: Package) -> tuple[str, bytes]:
    """A deterministic zip of the package (fixed timestamps), and its file name."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path, name in pkg.sent:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.flag_bits |= 0x800  # UTF-8 file names
            zf.writestr(info, path.read_bytes())
    county = COUNTIES.get(pkg.admdvs, pkg.admdvs)
    return (
        f"{DELIVERY_KIND.replace('/', '_')}_{DEPARTMENTS[pkg.department]}_{county}_{pkg.month}.zip",
        buf.getvalue(),
    )


def _fill(template: str, pkg: Package) -> str:
    return template.format(month=pkg.month, county=pkg.admdvs, department=pkg.department)


def _send(dest, pkg: Package) -> None:
    if isinstance(dest, FolderDest):
        target = Path(_fill(dest.path, pkg))
        target.mkdir(parents=True, exist_ok=True)
        for path, name in pkg.sent:
            tmp = target / f".{name}.part"
            shutil.copyfile(path, tmp)
            os.replace(tmp, target / name)
    elif isinstance(dest, SftpDest):
        send_sftp(dest, pkg.sent, _fill(dest.remote_dir, pkg))
    elif isinstance(dest, SmtpDest):
        y, m = pkg.month.split("-")
        words = {
            "kind": DELIVERY_KIND,
            "month_label": f"{y}年{m}月",
            "department": DEPARTMENTS[pkg.department],
            "county": f"{COUNTIES.get(pkg.admdvs, pkg.admdvs)}({pkg.admdvs})",
            "files": len(pkg.files),
            "rows": pkg.rows,
            "sha256": pkg.sha256,
        }
        send_smtp(
            dest,
            DELIVERY_SUBJECT.format(**words),
            DELIVERY_BODY.format(**words),
            zip_package(pkg),
        )
    else:  # pragma: no cover - the config's union is closed
        raise TypeError(type(dest).__name__)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def deliver_month(
    con: duckdb.DuckDBPyConnection,
    outbox: Path,
    month: str,
    config: DeliveryConfig,
    run_id: str | None,
    say: Say,
    sleep: Callable[[float], None] = time.sleep,
) -> list[dict]:
    """Deliver every package of the month; returns one summary per destination."""
    pkgs = packages(outbox, month)

    def log(pkg, name, kind, attempt, outcome, message=None):
        con.execute(
            "insert into delivery_log values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                run_id,
                month,
                pkg.department,
                pkg.admdvs,
                pkg.key,
                name,
                kind,
                pkg.sha256,
                dt.datetime.now(dt.UTC).replace(tzinfo=None),
                attempt,
                outcome,
                message,
            ],
        )

    def done_before(pkg, name) -> bool:
        return bool(
            con.execute(
                "select count(*) from delivery_log where package = ? and destination = ? "
                "and sha256 = ? and outcome = 'delivered'",
                [pkg.key, name, pkg.sha256],
            ).fetchall()[0][0]
        )

    summary: dict[str, dict] = {}

    def tally(name, kind, outcome, message=None):
        s = summary.setdefault(
            name,
            {"destination": name, "kind": kind, "delivered": 0, "unchanged": 0, "failed": 0},
        )
        s[outcome] += 1
        if message:
            s["message"] = message

    for pkg in pkgs:  # the outbox itself: where every package is made
        outcome = "unchanged" if done_before(pkg, "outbox") else "delivered"
        log(pkg, "outbox", "outbox", 0 if outcome == "unchanged" else 1, outcome)
        tally("outbox", "outbox", outcome)
    for dept, dests in config.departments.items():
        for dest in dests:
            down = False  # once a destination failed all attempts, its other packages fail fast
            for pkg in pkgs:
                if pkg.department != dept or (
                    dest.counties is not None and pkg.admdvs not in dest.counties
                ):
                    continue
                if done_before(pkg, dest.name):
                    log(pkg, dest.name, dest.kind, 0, "unchanged")
                    tally(dest.name, dest.kind, "unchanged")
                    continue
                attempts = 1 if down else config.retry.attempts
                for attempt in range(1, attempts + 1):
                    try:
                        _send(dest, pkg)
                    except Exception as exc:  # any transport error: retried, then reported
                        message = _one_line(exc)
                        log(pkg, dest.name, dest.kind, attempt, "failed", message)
                        if attempt < attempts:
                            sleep(config.retry.backoff_seconds * 2 ** (attempt - 1))
                        continue
                    log(pkg, dest.name, dest.kind, attempt, "delivered")
                    tally(dest.name, dest.kind, "delivered")
                    break
                else:
                    down = True
                    tally(dest.name, dest.kind, "failed", message)
    out = list(summary.values())
    for s in out:
        line = (
            f"[{month}] delivery {s['destination']} ({s['kind']}): {s['delivered']} delivered, "
            f"{s['unchanged']} unchanged"
        )
        if s["failed"]:
            line += (
                f", {s['failed']} FAILED after {config.retry.attempts} attempts "
                f"({s.get('message', '')}); re-run or `povwatch deliver --month {month}` retries"
            )
        say(line)
    return out


def deliver_run(
    con: duckdb.DuckDBPyConnection, settings, month: str, run_id: str | None, say: Say
) -> list[dict]:
    """Deliver the month's packages as the settings' delivery file says; the run's ledger row
    records what went where (``run_ledger.deliveries``) and names failed destinations."""
    from pipeline.delivery.config import load_config

    result = deliver_month(con, settings.outbox, month, load_config(settings), run_id, say)
    if run_id is not None:
        failed = [s["destination"] for s in result if s["failed"]]
        con.execute(
            "update run_ledger set deliveries = ?, message = ? where run_id = ?",
            [
                json.dumps(result, ensure_ascii=False),
                f"delivery failed: {', '.join(failed)}" if failed else None,
                run_id,
            ],
        )
    return result


def deliver_packages(settings, month: str, run_id: str | None, say: Say) -> list[dict]:
    """``deliver_run`` on its own warehouse connection: for a stage (an Airflow task) or a
    command that holds none."""
    from pipeline.store.warehouse import connect

    con = connect(settings.db)
    try:
        return deliver_run(con, settings, month, run_id, say)
    finally:
        con.close()
