"""E-mail delivery: the package as one zip attachment; the body names counts, never persons."""

from __future__ import annotations

import os
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid

from pipeline.delivery.config import SmtpDest
from pipeline.errors import PovwatchError


def send_smtp(dest: SmtpDest, subject: str, body: str, attachment: tuple[str, bytes]) -> None:
    """Send one message with one attachment (file name, bytes). Raises on any failure."""
    msg = EmailMessage()
    msg["From"] = dest.sender
    msg["To"] = ", ".join(dest.to)
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain=dest.sender.rpartition("@")[2] or None)
    msg.set_content(body)
    name, data = attachment
    msg.add_attachment(data, maintype="application", subtype="zip", filename=name)
    password = None
    if dest.password_env:
        password = os.environ.get(dest.password_env)
        if password is None:
            raise PovwatchError(
                f"delivery {dest.name}: environment variable {dest.password_env} is not set"
            )
    cls = smtplib.SMTP_SSL if dest.ssl else smtplib.SMTP
    with cls(dest.host, dest.port, timeout=dest.timeout_seconds) as server:
        if dest.starttls and not dest.ssl:
            server.starttls(context=ssl.create_default_context())
        if dest.username:
            server.login(dest.username, password or "")
        server.send_message(msg)
