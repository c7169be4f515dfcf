"""Money is integer fen inside povwatch; these render it as yuan text with two decimals."""

from __future__ import annotations

from decimal import Decimal

import polars as pl


def fen_text(fen: pl.Expr) -> pl.Expr:
    """Integer fen → exact yuan text with two decimals (e.g. 1994500 → "19945.00").

    As a decimal: the whole number of fen times 0.01 is exact (scale 2, 20 digits hold any
    Int64), and polars prints a decimal with all its places — a third of the time of composing
    the text from ``// 100`` and ``% 100`` (measured on 21M values).
    """
    return (fen.cast(pl.Decimal(20, 0)) * pl.lit(Decimal("0.01"), dtype=pl.Decimal(3, 2))).cast(
        pl.String
    )


def yuan(fen: int | None) -> str:
    """Integer fen → yuan text for people, with thousands separators."""
    if fen is None:
        return ""
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100:,}.{abs(fen) % 100:02d}"
