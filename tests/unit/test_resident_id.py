"""GB 11643 resident ids: check character, validity and the vectorised polars mask."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from pipeline.resident_id import check_char, check_char_expr, is_valid, valid_mask_expr

# The shared folder beside the checkout (../shared), never an absolute machine path.
SHARED = Path(__file__).resolve().parents[3] / "shared"
EXAMPLE_PERSONS = SHARED / "examples" / "jining-hebei-2024" / "landing" / "persons" / "persons.csv"

# (first 17 digits, check character) worked by hand:
# Σ digit × (7,9,10,5,8,4,2,1,6,3,7,9,10,5,8,4,2) mod 11 -> 1,0,X,9,8,7,6,5,4,3,2
KNOWN = [
    # 3·7+7·9+0·10+8·5+1·8+1·4+1·2+9·1+6·6+3·3+0·7+2·9+0·10+9·5+0·8+0·4+8·2 = 271; 271 % 11 = 7 -> 5
    ("37081119630209008", "5"),
    ("13050319931011001", "8"),
    ("37082619500128017", "6"),
    ("11010519491231002", "X"),  # the standard's own example
    ("00000000000000000", "1"),  # sum 0 -> '1'
]


def _by_hand(first17: str) -> str:
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return "10X98765432"[sum(int(d) * w for d, w in zip(first17, weights, strict=True)) % 11]


@pytest.mark.parametrize(("first17", "expected"), KNOWN)
def test_check_char_known_ids(first17: str, expected: str) -> None:
    assert _by_hand(first17) == expected
    assert check_char(first17) == expected


@pytest.mark.parametrize("bad", ["", "1234", "3708111963020900X", "37081119630209008a", None, 17])
def test_check_char_rejects_non_17_digits(bad: object) -> None:
    with pytest.raises(ValueError):
        check_char(bad)  # type: ignore[arg-type]


def test_example_ids_are_valid() -> None:
    ids = pl.read_csv(EXAMPLE_PERSONS, infer_schema=False)["certno"].to_list()
    assert len(ids) > 100
    assert all(is_valid(i) for i in ids)
    assert all(check_char(i[:17]) == i[17] for i in ids)


BAD = [
    "370811196302090084",  # wrong check character
    "37081119630209008",  # 17 characters
    "3708111963020900855",  # 19 characters
    "370811196302300085",  # 30 February: check char recomputed below
    "370811189902090085",  # born 1899
    "37081119630209008Y",
    "3708111963020900８5",  # full-width digit
    "370811196302090085 ",
    "370811196302090085\n",
    " 370811196302090085",
    "abcdefghijklmnopqr",
    "",
]


def _with_check(first17: str) -> str:
    return first17 + _by_hand(first17)


def test_is_valid_good_and_bad() -> None:
    assert is_valid("370811196302090085")
    assert is_valid("11010519491231002X")
    assert is_valid("11010519491231002x")  # lower-case x accepted
    assert is_valid(_with_check("37081120000229123"))  # leap day
    for bad in BAD:
        assert not is_valid(bad), bad
    # right check character but impossible dates
    assert not is_valid(_with_check("37081119630230008"))
    assert not is_valid(_with_check("37081119631301008"))
    assert not is_valid(_with_check("37081120230229123"))  # 2023 is not a leap year
    assert not is_valid(_with_check("37081118991231123"))
    assert not is_valid(None)
    assert not is_valid(370811196302090085)  # type: ignore[arg-type]


def test_valid_mask_expr_agrees_with_is_valid() -> None:
    good = pl.read_csv(EXAMPLE_PERSONS, infer_schema=False)["certno"].to_list()[:60]
    tricky = [
        _with_check("37081119630230008"),
        _with_check("37081120000229123"),
        _with_check("37081120230229123"),
        _with_check("37081118991231123"),
        _with_check("37081121000101123"),
        "11010519491231002x",
        "11010519491231002X",
    ]
    values = [*good, *BAD, *tricky, None]
    df = pl.DataFrame({"certno": values}, schema={"certno": pl.String})
    got = df.select(valid_mask_expr(pl.col("certno")).alias("ok"))["ok"].to_list()
    want = [None if v is None else is_valid(v) for v in values]
    assert got == want
    assert got[-1] is None  # null in, null out
    assert sum(bool(x) for x in got) == len(good) + 3


def test_valid_mask_expr_is_vectorised() -> None:
    expr = valid_mask_expr(pl.col("certno"))
    text = str(expr)
    assert "map" not in text and "python" not in text.lower()
    # and it is fast on a realistic column
    ids = pl.read_csv(EXAMPLE_PERSONS, infer_schema=False)["certno"]
    big = pl.DataFrame({"certno": pl.concat([ids] * 400)})
    assert big.select(expr.alias("ok"))["ok"].all()


def test_check_char_expr_matches_scalar() -> None:
    firsts = [k for k, _ in KNOWN] + ["1234", None]
    df = pl.DataFrame({"f": firsts}, schema={"f": pl.String})
    got = df.select(check_char_expr(pl.col("f")))["f"].to_list()
    assert got == [c for _, c in KNOWN] + [None, None]
