"""SFTP delivery (paramiko): key authentication, the server's host key checked against a file."""

from __future__ import annotations

import posixpath
from pathlib import Path

from pipeline.delivery.config import SftpDest


def send_sftp(dest: SftpDest, files: list[tuple[Path, str]], remote_dir: str) -> None:
    """Upload ``files`` (local path, name) into ``remote_dir``, each through a temporary name
    renamed into place, so a reader never sees half a file. Raises on any failure."""
    import paramiko

    client = paramiko.SSHClient()
    client.load_host_keys(str(dest.known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(
            dest.host,
            port=dest.port,
            username=dest.username,
            key_filename=str(dest.key_file),
            look_for_keys=False,
            allow_agent=False,
            timeout=dest.timeout_seconds,
            banner_timeout=dest.timeout_seconds,
            auth_timeout=dest.timeout_seconds,
        )
        sftp = client.open_sftp()
        try:
            _makedirs(sftp, remote_dir)
            for local, name in files:
                target = posixpath.join(remote_dir, name)
                partial = target + ".part"
                sftp.put(str(local), partial)
                sftp.posix_rename(partial, target)
        finally:
            sftp.close()
    finally:
        client.close()


def _makedirs(sftp, path: str) -> None:
    parts = [p for p in path.split("/") if p]
    current = "/" if path.startswith("/") else ""
    for part in parts:
        current = posixpath.join(current, part) if current else part
        try:
            sftp.stat(current)
        except OSError:
            sftp.mkdir(current)
