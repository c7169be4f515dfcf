"""Money is integer fen inside povwatch; these render it as yuan text with two decimals."""

from __future__ import annotations

import polars as pl


def fen_text(fen: pl.Expr) -> pl.Expr:
    """Integer fen → exact yuan text with two decimals (e.g. 1994500 → "19945.00")."""
    sign = pl.when(fen < 0).then(pl.lit("-")).otherwise(pl.lit(""))
    return pl.concat_str(
        sign,
        (fen.abs() // 100).cast(pl.String),
        pl.lit("."),
        (fen.abs() % 100).cast(pl.String).str.zfill(2),
    )


def yuan(fen: int | None) -> str:
    """Integer fen → yuan text for people, with thousands separators."""
    if fen is None:
        return ""
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100:,}.{abs(fen) % 100:02d}"
