"""Where a run reads and writes: the only configuration a run needs besides policy files."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_LANDING = Path("data/landing")
DEFAULT_DB = Path("data/warehouse.duckdb")
DEFAULT_OUTBOX = Path("data/outbox")


class Settings(BaseModel):
    """Paths of one data set; two data sets never share any of them."""

    model_config = ConfigDict(frozen=True)

    landing: Path = DEFAULT_LANDING
    db: Path = DEFAULT_DB
    outbox: Path = DEFAULT_OUTBOX
    policy_files: tuple[Path, ...] = Field(
        default=(), description="extra policy/overlay files layered over the bundled ones"
    )
    quiet: bool = False
    delivery: Path | None = Field(
        default=None,
        description="delivery file (destinations per department, overdue_after_days); "
        "default: $POVWATCH_DELIVERY, else the local outbox only",
    )
    # contract: with --require-complete an export folder without `_SUCCESS` stops the run
    require_complete: bool = False
