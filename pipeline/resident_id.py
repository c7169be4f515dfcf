"""Resident identity numbers (居民身份证号码, GB 11643-1999): check character and validity.

An 18-character id is ``AAAAAA YYYYMMDD SSS C``: the 6-digit address code, the birth date,
a 3-digit sequence (odd for men, even for women) and a check character computed from the
first 17 digits with ISO 7064 MOD 11-2 (weights ``2^(17-i) mod 11``).

A lower-case ``x`` as check character is accepted as ``X`` (real exports contain both).
"Plausible birth date" means a real calendar date with the year in 1900..2099; the check
does not look at today's date, so it gives the same answer whenever it runs.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover - typing only
    import polars as pl

WEIGHTS: tuple[int, ...] = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARS = "10X98765432"  # index = (Σ weight × digit) mod 11
MIN_BIRTH_YEAR = 1900
MAX_BIRTH_YEAR = 2099

_SHAPE = re.compile(r"[0-9]{17}[0-9Xx]")
# A resident id as a spreadsheet leaves it when it took it for a number: 3.70811E+17,
# 370811196302090000 (15 significant digits), 370811196302090085.0 (a regex, full match).
NUMERIC_LOOKING = r"[0-9]+(\.[0-9]*)?[eE][+]?[0-9]+|[0-9]+\.[0-9]*|[0-9]{15}000"
_FIRST17 = re.compile(r"[0-9]{17}")


def check_char(first17: str) -> str:
    """The GB 11643 check character ('0'–'9' or 'X') for the first 17 digits of an id."""
    if not isinstance(first17, str) or not _FIRST17.fullmatch(first17):
        raise ValueError(f"expected 17 digits, got {first17!r}")
    total = sum(w * int(d) for w, d in zip(WEIGHTS, first17, strict=True))
    return CHECK_CHARS[total % 11]


def _plausible_date(yyyymmdd: str) -> bool:
    import datetime as dt

    year, month, day = int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8])
    if not MIN_BIRTH_YEAR <= year <= MAX_BIRTH_YEAR:
        return False
    try:
        dt.date(year, month, day)
    except ValueError:
        return False
    return True


def is_valid(certno: str | None) -> bool:
    """True for an 18-character id with a correct check character and a real birth date."""
    if not isinstance(certno, str) or not _SHAPE.fullmatch(certno):
        return False
    if certno[17].upper() != check_char(certno[:17]):
        return False
    return _plausible_date(certno[6:14])


def check_char_expr(first17: pl.Expr) -> pl.Expr:
    """Vectorised :func:`check_char`: a String expression from a 17-digit String expression.

    Rows that are not 17 digits give null.
    """
    import polars as pl

    digits_ok = first17.str.contains(r"^[0-9]{17}$")
    total = pl.sum_horizontal(
        first17.str.slice(i, 1).cast(pl.Int32, strict=False) * w for i, w in enumerate(WEIGHTS)
    )
    char = (total % 11).replace_strict(
        list(range(11)), list(CHECK_CHARS), return_dtype=pl.String, default=None
    )
    return pl.when(digits_ok).then(char).otherwise(pl.lit(None, dtype=pl.String))


def valid_mask_expr(col: pl.Expr) -> pl.Expr:
    """Vectorised :func:`is_valid` as a Boolean polars expression (null in, null out)."""
    import polars as pl

    shape_ok = col.str.contains(r"^[0-9]{17}[0-9Xx]$")
    check_ok = check_char_expr(col.str.slice(0, 17)) == col.str.slice(17, 1).str.to_uppercase()
    birth = col.str.slice(6, 8).str.to_date("%Y%m%d", strict=False)
    year = birth.dt.year()
    date_ok = birth.is_not_null() & (year >= MIN_BIRTH_YEAR) & (year <= MAX_BIRTH_YEAR)
    valid = shape_ok & check_ok.fill_null(False) & date_ok.fill_null(False)
    return pl.when(col.is_null()).then(pl.lit(None, dtype=pl.Boolean)).otherwise(valid)
