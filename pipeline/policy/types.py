"""Shared building blocks of policy files: identity codes, citations, `local` values."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

IdentityCode = Literal[
    "tekun",
    "orphan",
    "dibao",
    "fanpin",
    "dibao_edge",
    "monitor_unstable",
    "monitor_edge",
    "monitor_sudden",
    "tuopin",
    "illness_poor",
    "expense_poor",
]
IDENTITY_CODES: tuple[str, ...] = get_args(IdentityCode)
Local = Literal["local"]
Department = Literal["civil_affairs", "rural_revitalization"]
WarningType = Literal["relapse", "impoverish"]


class Strict(BaseModel):
    """Policy models reject unknown keys (a typo is an error, not a silent default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Citation(Strict):
    """Where a value comes from: the source file and clause, with the words quoted."""

    clause: str = Field(min_length=2)
    quote: str | None = None
