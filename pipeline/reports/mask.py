"""Masked identities for everything but the responsible department's 台账.

``370811195001011234`` → ``370811********1234`` (region code and last four kept);
``王小明`` → ``王*明``, ``王明`` → ``王*``, ``欧阳小明`` → ``欧**明``.
"""

from __future__ import annotations

import polars as pl

_STARS = pl.lit("*" * 32)


def _stars(n: pl.Expr) -> pl.Expr:
    return _STARS.str.head(n)


def certno_masked(col: pl.Expr) -> pl.Expr:
    n = col.str.len_chars()
    return (
        pl.when(col.is_null())
        .then(None)
        .when(n >= 10)
        .then(col.str.slice(0, 6) + _stars(n - 10) + col.str.tail(4))
        .otherwise(_stars(n))
    )


def name_masked(col: pl.Expr) -> pl.Expr:
    n = col.str.len_chars()
    return (
        pl.when(col.is_null())
        .then(None)
        .when(n <= 1)
        .then(pl.lit("*"))
        .when(n == 2)
        .then(col.str.head(1) + pl.lit("*"))
        .otherwise(col.str.head(1) + _stars(n - 2) + col.str.tail(1))
    )
