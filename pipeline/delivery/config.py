"""Where each department's packages go: one YAML file, validated (pydantic).

Example (``policies/examples/delivery.yaml``)::

    overdue_after_days: 30          # a routed warning waits this long for a decision
    retry: {attempts: 3, backoff_seconds: 2}
    departments:
      civil_affairs:
        - {kind: sftp, name: mz-sftp, host: 10.0.0.5, port: 22, username: povwatch,
           key_file: /etc/povwatch/id_ed25519, known_hosts: /etc/povwatch/known_hosts,
           remote_dir: "/incoming/{month}/{county}"}
      rural_revitalization:
        - {kind: smtp, name: xczx-mail, host: smtp.example.gov.cn, port: 587, starttls: true,
           sender: povwatch@example.gov.cn, to: [xczx@example.gov.cn],
           username: povwatch, password_env: POVWATCH_SMTP_PASSWORD}

Paths and remote folders may use ``{month}``, ``{county}`` and ``{department}``. Departments
work per county: a county office with its own mailbox or server is one more destination
with ``counties: [...]``.
The local outbox is always written (it is where packages are made); a department with no
entry gets nothing else. Secrets never sit in the file: a password is named by the
environment variable that holds it, SFTP uses a key file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.errors import PovwatchError, invalid
from pipeline.settings import Settings

ENV = "POVWATCH_DELIVERY"


class _Dest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="names the destination in the delivery log")
    counties: list[str] | None = Field(
        default=None, description="only these county codes (default: every county)"
    )


class FolderDest(_Dest):
    """A copy into another folder (a shared drive), ``{month}``/``{county}`` in the path."""

    kind: Literal["folder"]
    path: str


class SftpDest(_Dest):
    kind: Literal["sftp"]
    host: str
    port: int = 22
    username: str
    key_file: Path
    known_hosts: Path = Field(description="the server's host key must be listed here")
    remote_dir: str = Field(default="{month}/{county}", description="{month}, {county} filled in")
    timeout_seconds: float = 20.0


class SmtpDest(_Dest):
    kind: Literal["smtp"]
    host: str
    port: int = 25
    starttls: bool = False
    ssl: bool = False
    username: str | None = None
    password_env: str | None = Field(default=None, description="variable holding the password")
    sender: str
    to: list[str] = Field(min_length=1)
    timeout_seconds: float = 20.0


Destination = Annotated[FolderDest | SftpDest | SmtpDest, Field(discriminator="kind")]


class Retry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    attempts: int = Field(default=3, ge=1, le=10)
    backoff_seconds: float = Field(default=2.0, ge=0, description="doubled after each failure")


class DeliveryConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    overdue_after_days: int = Field(default=30, ge=1)
    retry: Retry = Retry()
    departments: dict[Literal["civil_affairs", "rural_revitalization"], list[Destination]] = {}


def config_path(settings: Settings) -> Path | None:
    if settings.delivery is not None:
        return settings.delivery
    env = os.environ.get(ENV)
    return Path(env) if env else None


def load_config(settings: Settings) -> DeliveryConfig:
    """The delivery file named by the settings (or ``$POVWATCH_DELIVERY``); defaults if none."""
    path = config_path(settings)
    if path is None:
        return DeliveryConfig()
    if not path.is_file():
        raise PovwatchError(f"{path}: delivery file not found")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise PovwatchError(f"{path}{where}: not valid YAML") from None
    try:
        return DeliveryConfig.model_validate(data)
    except ValidationError as exc:
        raise invalid(exc, path, "delivery file") from None


def overdue_after_days(settings: Settings) -> int:
    return load_config(settings).overdue_after_days
