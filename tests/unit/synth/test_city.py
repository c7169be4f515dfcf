"""The synthetic city writes a landing folder in exactly the contract's shapes."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import polars as pl
import pytest

from pipeline.resident_id import is_valid, valid_mask_expr
from pipeline.synth import city as synth
from pipeline.synth.city import ANOMALY_OUTCOME, COLUMNS, MONEY, SETL_D_NAMES, generate_city

YEAR = 2024
COUNTY_CODES = {c[0] for c in synth.COUNTIES}
SERIOUS_KINDS = ("bad_sum", "non_numeric_amount")  # rows whose amounts are not to be trusted


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> synth.SynthSummary:
    return generate_city(tmp_path_factory.mktemp("city") / "landing", persons=300, seed=7)


def _read_settlements(path: Path) -> pl.DataFrame:
    """Read one export with every column as text, under the contract's names."""
    if path.suffix == ".csv":
        raw = path.read_bytes()
        try:
            raw.decode("utf-8")
            encoding = "utf8"
        except UnicodeDecodeError:
            encoding = "gb18030"
        df = pl.read_csv(path, encoding=encoding, infer_schema=False)
    elif path.suffix == ".parquet":
        df = pl.read_parquet(path)
        df = df.with_columns(
            pl.col("setl_time").dt.strftime("%Y-%m-%d %H:%M:%S"),
            pl.exclude("setl_time").cast(pl.String),
        )
    else:
        df = pl.read_excel(path, engine="calamine", infer_schema_length=0)
    return df.rename({v: k for k, v in SETL_D_NAMES.items() if v in df.columns})


@pytest.fixture(scope="module")
def exports(city: synth.SynthSummary) -> dict[str, pl.DataFrame]:
    files = [f for f in city.files if "settlements" in f.parts]
    return {m: _read_settlements(f) for m, f in zip(city.months, files, strict=True)}


def _fen(col: str) -> pl.Expr:
    return (pl.col(col).cast(pl.Float64, strict=False) * 100).round().cast(pl.Int64)


# ---------------------------------------------------------------------------------------------


def test_summary_and_layout(city: synth.SynthSummary) -> None:
    root = city.landing
    assert city.persons == 300
    assert city.months == [f"{YEAR}-{m:02d}" for m in range(1, 13)]
    assert {p.relative_to(root).parts[0] for p in city.files} == {
        "persons",
        "identities",
        "reference",
        "settlements",
    }
    assert all(p.is_file() for p in city.files)
    names = [p.name for p in city.files if "settlements" in p.parts]
    assert names == [
        f"setl_{YEAR}{m:02d}.{ext}"
        for m, ext in zip(
            range(1, 13),
            ["csv"] * 4 + ["parquet", "xlsx"] + ["csv"] * 4 + ["parquet", "xlsx"],
            strict=True,
        )
    ]
    assert city.settlements == sum(city.rows_by_month.values())
    assert set(city.anomalies) == set(ANOMALY_OUTCOME)
    for kind, n in city.anomalies.items():
        assert n == len(city.anomaly_ids[kind]) and n > 0, kind
    counts = city.expected_counts()
    assert (
        counts["read"]
        == counts["loaded"] + counts["duplicate"] + counts["skipped"] + counts["quarantined"]
    )


def test_six_shapes(city: synth.SynthSummary) -> None:
    files = [f for f in city.files if "settlements" in f.parts]
    raw = [f.read_bytes() for f in files]
    # 1: UTF-8 without BOM, 2: UTF-8 with BOM, 3: GB18030 (not UTF-8), 4: setl_d spellings
    assert not raw[0].startswith(b"\xef\xbb\xbf") and raw[0].decode("utf-8")
    assert raw[1].startswith(b"\xef\xbb\xbf") and raw[1].decode("utf-8-sig")
    with pytest.raises(UnicodeDecodeError):
        raw[2].decode("utf-8")
    assert "济宁" in raw[2].decode("gb18030") or "县" in raw[2].decode("gb18030")
    header = raw[3].decode("utf-8").splitlines()[0].split(",")
    assert {"psn_pay", "cash_payamt", "othfund_pay", "inscp_amt"} <= set(header)
    assert not {"psn_part_amt", "psn_cash_pay", "oth_pay", "inscp_scp_amt"} & set(header)
    for i in (0, 1, 2, 6, 7, 8):
        text = raw[i].decode("gb18030" if i in (2, 8) else "utf-8-sig")
        assert text.splitlines()[0].split(",") == list(COLUMNS)
    assert raw[6:10] != raw[0:4]
    assert raw[7].startswith(b"\xef\xbb\xbf") and "psn_pay" in raw[9].decode("utf-8")
    # 5: Parquet with decimal(16,2) money
    pq = pl.read_parquet(files[4])
    assert list(pq.columns) == list(COLUMNS)
    for c in MONEY:
        assert pq.schema[c] == pl.Decimal(16, 2), c
    assert pq.schema["setl_time"] == pl.Datetime("ms")
    # 6: XLSX with float money and a real datetime
    xl = pl.read_excel(files[5], engine="calamine")
    assert list(xl.columns) == list(COLUMNS)
    assert xl.schema["setl_time"].base_type() == pl.Datetime
    # money cells are numbers; a column where a non-numeric cell was planted reads as text
    fee = xl["medfee_sumamt"]
    planted = fee.cast(pl.Float64, strict=False).null_count() > fee.null_count()
    assert fee.dtype == pl.Float64 or (fee.dtype == pl.String and planted)
    assert sum(xl.schema[c] == pl.Float64 for c in MONEY) >= 5


def test_read_back_counts_and_columns(
    city: synth.SynthSummary, exports: dict[str, pl.DataFrame]
) -> None:
    for month, df in exports.items():
        assert df.height == city.rows_by_month[month], month
        assert df.columns == list(COLUMNS), month


def test_csv_money_has_two_decimals(city: synth.SynthSummary) -> None:
    bad_cells = set(city.anomaly_ids["non_numeric_amount"])
    for f in city.files:
        if f.suffix != ".csv" or "settlements" not in f.parts:
            continue
        df = _read_settlements(f)
        df = df.filter(~pl.col("setl_id").is_in(list(bad_cells)))
        for c in MONEY:
            assert df[c].str.contains(r"^-?\d+\.\d{2}$").all(), (f.name, c)


def test_amounts_add_up_to_the_fen(
    city: synth.SynthSummary, exports: dict[str, pl.DataFrame]
) -> None:
    untrusted = {i for k in SERIOUS_KINDS for i in city.anomaly_ids[k]}
    rows = pl.concat([df.with_columns(export=pl.lit(m)) for m, df in exports.items()])
    ok = rows.filter(~pl.col("setl_id").is_in(list(untrusted))).with_columns(
        **{c: _fen(c) for c in MONEY}
    )
    assert ok.select(pl.any_horizontal(pl.col(MONEY).is_null()).sum()).item() == 0
    fund = pl.sum_horizontal("hifp_pay", "hifmi_pay", "hifob_pay", "maf_pay", "oth_pay")
    assert (ok["fund_pay_sumamt"] == ok.select(fund).to_series()).all()
    part = pl.col("medfee_sumamt") - pl.col("fund_pay_sumamt") - pl.col("hosp_part_amt")
    assert ok.select((pl.col("psn_part_amt") == part).all()).item()
    assert ok.select(
        (pl.col("acct_pay") + pl.col("psn_cash_pay") == pl.col("psn_part_amt")).all()
    ).item()
    assert ok.select((pl.col("inscp_scp_amt").abs() <= pl.col("medfee_sumamt").abs()).all()).item()
    normal = ok.filter(pl.col("refd_setl_flag") == "0")
    for c in MONEY:
        assert (normal[c] >= 0).all(), c
    # and the bad ones really are bad
    bad = rows.filter(pl.col("setl_id").is_in(city.anomaly_ids["bad_sum"])).with_columns(
        **{c: _fen(c) for c in MONEY}
    )
    broken = (pl.col("psn_part_amt") - part).abs() >= 100  # off by a yuan or more
    assert bad.height == city.anomalies["bad_sum"]
    assert bad.select(broken.all()).item()
    nn = rows.filter(pl.col("setl_id").is_in(city.anomaly_ids["non_numeric_amount"]))
    assert nn.height == city.anomalies["non_numeric_amount"]
    cast = nn.with_columns(**{c: pl.col(c).cast(pl.Float64, strict=False) for c in MONEY})
    assert cast.select(pl.any_horizontal(pl.col(MONEY).is_null()).all()).item()


def test_anomalies_are_where_the_summary_says(
    city: synth.SynthSummary, exports: dict[str, pl.DataFrame]
) -> None:
    ids = city.anomaly_ids
    months = list(exports)
    rows = pl.concat(
        [df.with_columns(export=pl.lit(i)) for i, df in enumerate(exports.values(), start=1)]
    ).with_columns(t=pl.col("setl_time").str.to_datetime("%Y-%m-%d %H:%M:%S"))
    first_seen = rows.group_by("setl_id").agg(pl.col("export").min().alias("first"))
    first = dict(first_seen.iter_rows())

    def pick(kind: str) -> pl.DataFrame:
        return rows.filter(pl.col("setl_id").is_in(ids[kind])).unique("setl_id", keep="first")

    # reversals: flag 1, negative amounts, init_setl_id seen no later than the reversal
    for kind in ("reversal_same_month", "reversal_later_month"):
        rev = pick(kind)
        assert rev.height == city.anomalies[kind]
        assert (rev["refd_setl_flag"] == "1").all()
        assert (rev["medfee_sumamt"].cast(pl.Float64) < 0).all()
        for r in rev.iter_rows(named=True):
            orig = first[r["init_setl_id"]]
            assert orig == r["export"] if kind == "reversal_same_month" else orig < r["export"]
            o = rows.filter(pl.col("setl_id") == r["init_setl_id"]).row(0, named=True)
            for c in MONEY:
                assert round(float(o[c]) * 100) == -round(float(r[c]) * 100), c
            assert o["mdtrt_id"] == r["mdtrt_id"]
    # orphan reversals point at ids that are nowhere
    orphans = pick("orphan_reversal")
    assert (orphans["refd_setl_flag"] == "1").all()
    assert not set(orphans["init_setl_id"]) & set(first)
    # duplicates
    for sid in ids["reexport_duplicate"]:
        exps = rows.filter(pl.col("setl_id") == sid)["export"].to_list()
        assert len(exps) >= 2 and min(exps) < max(exps)
    for sid in ids["duplicate_in_file"]:
        same = rows.filter(pl.col("setl_id") == sid)
        counts = same.group_by("export").len()
        assert counts["len"].max() >= 2
        dup = same.filter(pl.col("export") == counts.sort("len")["export"][-1])
        assert dup.drop("export").unique().height == 1  # exactly the same row
    # invalidated, bad certno, missing psn_no, future dates, late rows
    assert (pick("invalidated")["vali_flag"] == "0").all()
    assert not any(is_valid(c) for c in pick("bad_certno")["certno"])
    assert pick("missing_psn_no")["psn_no"].is_null().all()
    for r in pick("future_setl_time").iter_rows(named=True):
        y, m = divmod(YEAR * 12 + r["export"], 12)  # first day of the next month
        assert r["t"] >= dt.datetime(y, m + 1, 1)
    for r in pick("late_row").iter_rows(named=True):
        assert r["t"].month == r["export"] - 1
        assert first[r["setl_id"]] == r["export"]
    # apart from the future rows, every row is dated within or before its export month
    ends = {i: dt.datetime(YEAR + (i == 12), i % 12 + 1, 1) for i in range(1, 13)}
    normal = rows.filter(~pl.col("setl_id").is_in(ids["future_setl_time"]))
    assert all(t < ends[e] for t, e in normal.select("t", "export").iter_rows())
    assert len(months) == 12
    # every other row of a file has a unique setl_id
    for m, df in exports.items():
        extra = df.height - df["setl_id"].n_unique()
        assert extra == sum(1 for s in ids["duplicate_in_file"] if df["setl_id"].eq(s).sum() > 1), m


def test_a_small_city_stays_under_the_quarantine_limit(
    city: synth.SynthSummary, exports: dict[str, pl.DataFrame]
) -> None:
    """300 persons: the quarantined imperfections of each export stay within 4 % of its rows
    (the contract's default limit is 5 %: `povwatch demo --persons 300` runs every month),
    and the city still has some of them."""
    ids = city.anomaly_ids
    bad = {i for kind, out in ANOMALY_OUTCOME.items() if out == "quarantined" for i in ids[kind]}
    shares = {m: df["setl_id"].is_in(list(bad)).sum() / df.height for m, df in exports.items()}
    assert max(shares.values()) <= synth.QUARANTINE_SHARE == 0.04
    assert sum(1 for share in shares.values() if share > 0) >= 6


def test_persons_registry(city: synth.SynthSummary) -> None:
    p = pl.read_csv(city.landing / "persons" / "persons.csv", infer_schema=False)
    assert p.columns == [
        "psn_no",
        "certno",
        "psn_name",
        "gend",
        "brdy",
        "hh_id",
        "insuplc_admdvs",
        "insutype",
        "rural",
    ]
    assert p.height == 300
    assert p["certno"].n_unique() == 300 and p["psn_no"].n_unique() == 300
    assert p.select(valid_mask_expr(pl.col("certno")).all()).item()
    assert (p["certno"].str.slice(0, 6) == p["insuplc_admdvs"]).all()
    assert (p["certno"].str.slice(6, 8) == p["brdy"].str.replace_all("-", "")).all()
    parity = p["certno"].str.slice(16, 1).cast(pl.Int32) % 2
    assert ((parity == 1) == (p["gend"] == "1")).all()
    assert set(p["insuplc_admdvs"]) <= COUNTY_CODES
    assert p["psn_no"].str.contains(r"^P37\d{8}$").all()
    assert p["hh_id"].str.contains(r"^H37\d{4}\d{5}$").all()
    assert (p["hh_id"].str.slice(1, 6) == p["insuplc_admdvs"]).all()
    assert set(p["gend"]) == {"1", "2"} and set(p["insutype"]) == {"310", "390"}
    assert set(p["rural"]) == {"0", "1"}
    assert p["psn_name"].str.len_chars().is_between(2, 3).all()
    hh = p.group_by("hh_id").agg(
        n=pl.len(), counties=pl.col("insuplc_admdvs").n_unique(), rural=pl.col("rural").n_unique()
    )
    assert hh["n"].max() <= 6 and (hh["counties"] == 1).all() and (hh["rural"] == 1).all()
    assert hh["n"].min() == 1 and hh["n"].max() >= 4


def test_identities_and_income(city: synth.SynthSummary) -> None:
    p = pl.read_csv(city.landing / "persons" / "persons.csv", infer_schema=False)
    ids = pl.read_csv(city.landing / "identities" / "identities.csv", infer_schema=False)
    assert ids.columns == ["certno", "identity", "begin_date", "end_date", "source_dept"]
    assert set(ids["certno"]) <= set(p["certno"])
    assert set(ids["identity"]) <= set(synth._IDENTITY_DEPT)
    assert set(ids["source_dept"]) <= {"civil_affairs", "rural_revitalization"}
    joined = ids.join(p, on="certno")
    mon = joined.filter(pl.col("identity").str.starts_with("monitor_"))
    assert (mon["rural"] == "1").all()
    assert (mon["source_dept"] == "rural_revitalization").all()
    # whole households share their identities
    per_hh = joined.group_by("hh_id", "identity", "begin_date").agg(n=pl.len())
    sizes = p.group_by("hh_id").agg(size=pl.len())
    assert (per_hh.join(sizes, on="hh_id").select(pl.col("n") == pl.col("size")).to_series()).all()
    inc = pl.read_csv(city.landing / "reference" / "income.csv", infer_schema=False)
    assert inc.rows() == [(a, str(y), s, str(v), d) for a, y, s, v, d in synth.INCOME_ROWS]


def test_determinism(city: synth.SynthSummary, tmp_path: Path) -> None:
    again = generate_city(tmp_path / "again", persons=300, seed=7)
    assert [f.relative_to(again.landing) for f in again.files] == [
        f.relative_to(city.landing) for f in city.files
    ]
    for a, b in zip(city.files, again.files, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name
    assert again.anomalies == city.anomalies
    other = generate_city(tmp_path / "other", persons=300, seed=8)
    assert other.files[0].read_bytes() != city.files[0].read_bytes()


def test_xlsx_written_by_helper_process_is_identical(
    city: synth.SynthSummary, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(synth._XlsxHelper, "MIN_ROWS", 0)
    monkeypatch.setattr(synth.os, "cpu_count", lambda: 2)
    again = generate_city(tmp_path / "helper", persons=300, seed=7)
    for a, b in zip(city.files, again.files, strict=True):
        assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()


def test_regenerate_replaces_only_its_folders(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    generate_city(landing, persons=200, seed=1)
    stale = landing / "settlements" / "2030-01" / "old.csv"
    stale.parent.mkdir(parents=True)
    stale.write_text("x")
    keep = landing / "feedback" / "civil_affairs" / "decisions.csv"
    keep.parent.mkdir(parents=True)
    keep.write_text("warning_id\n")
    s = generate_city(landing, persons=200, seed=1, year=2023)
    assert not stale.exists() and keep.exists()
    assert s.months[0] == "2023-01" and (landing / "settlements" / "2023-12").is_dir()
    assert not (landing / "settlements" / "2024-01").exists()
    inc = pl.read_csv(landing / "reference" / "income.csv", infer_schema=False)
    assert inc.filter(pl.col("amount") == "39890")["year"].to_list() == ["2022"]
    assert inc.filter(pl.col("amount") == "39890")["published_on"].to_list() == ["2023-02-15"]
    x = pl.read_excel(s.files[-1], engine="calamine")
    x = x.filter(~pl.col("setl_id").is_in(s.anomaly_ids["future_setl_time"]))
    assert x["setl_time"].dt.year().unique().to_list() == [2023]


def test_identity_shares_at_20000(tmp_path: Path) -> None:
    s = generate_city(tmp_path / "big", persons=20_000, seed=3)
    assert s.households > 6_000
    p = pl.read_csv(s.landing / "persons" / "persons.csv", infer_schema=False)
    ids = pl.read_csv(s.landing / "identities" / "identities.csv", infer_schema=False)
    share = {
        k: v / p.height
        for k, v in ids.group_by("identity").agg(pl.col("certno").n_unique()).iter_rows()
    }
    assert 0.022 <= share["dibao"] <= 0.042
    assert 0.013 <= share["dibao_edge"] <= 0.028
    monitor = ids.filter(pl.col("identity").str.starts_with("monitor_"))["certno"].n_unique()
    assert 0.009 <= monitor / p.height <= 0.022
    assert {"monitor_unstable", "monitor_edge", "monitor_sudden"} <= set(share)
    assert 0.002 <= share["tekun"] <= 0.009
    assert share.get("fanpin", 0) > 0 and share.get("tuopin", 0) > 0
    # a few change during the year
    begins = ids["begin_date"].str.slice(0, 4) == str(YEAR)
    ends = ids["end_date"].str.slice(0, 4) == str(YEAR)
    assert 0 < begins.sum() < 0.3 * ids.height and 0 < ends.sum() < 0.3 * ids.height
    assert (ids["begin_date"] < f"{YEAR}-01-01").mean() > 0.6
    # insutype and rural mix
    assert 0.25 <= (p["insutype"] == "310").mean() <= 0.35
    assert 0.50 <= (p["rural"] == "1").mean() <= 0.60
    big = p["insuplc_admdvs"].value_counts(sort=True)["insuplc_admdvs"].to_list()
    assert big[:2] == ["370811", "370883"]
