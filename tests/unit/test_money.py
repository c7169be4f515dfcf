"""Money text: integer fen → yuan with exactly two decimals, to the fen, sign and nulls kept."""

import polars as pl
import pytest

from pipeline.money import fen_text, yuan

CASES = [
    (0, "0.00"),
    (1, "0.01"),
    (5, "0.05"),
    (-5, "-0.05"),
    (-50, "-0.50"),
    (99, "0.99"),
    (100, "1.00"),
    (-100, "-1.00"),
    (1_994_500, "19945.00"),
    (-1_994_517, "-19945.17"),
    (2**62, "46116860184273879.04"),  # far beyond float precision: still exact
    (-(2**63) + 1, "-92233720368547758.07"),
]


@pytest.mark.parametrize(("fen", "text"), CASES)
def test_fen_text(fen: int, text: str) -> None:
    assert pl.select(fen_text(pl.lit(fen, dtype=pl.Int64))).item() == text


def test_fen_text_column_keeps_nulls_and_order() -> None:
    col = pl.Series("f", [c[0] for c in CASES] + [None], dtype=pl.Int64)
    out = pl.DataFrame([col]).select(fen_text(pl.col("f")))["f"].to_list()
    assert out == [c[1] for c in CASES] + [None]


def test_fen_text_int32_input() -> None:
    assert pl.select(fen_text(pl.lit(-7, dtype=pl.Int32))).item() == "-0.07"


def test_yuan_groups_thousands() -> None:
    assert [yuan(None), yuan(-123_456_789), yuan(5)] == ["", "-1,234,567.89", "0.05"]
