"""A deterministic synthetic city (济宁市, 370800) written as a landing folder.

``generate_city(landing, persons=…, seed=…, year=…)`` writes, in exactly the shapes of the data
contract (``persons/``, ``identities/``, ``reference/``, ``settlements/YYYY-MM/``):

* a registry of persons living in households of 1–6 in Jining's eleven counties;
* assistance identities given per household (低保, 低保边缘, 防止返贫监测对象, 特困, …), most in force
  before the year, a few beginning or ending during it;
* Shandong's and Jining's published per-capita disposable income;
* twelve monthly settlement exports that rotate the six shapes real exports come in (CSV UTF-8,
  CSV UTF-8 with BOM, CSV GB18030, CSV with the ``setl_d`` spellings, Parquet with decimal money,
  XLSX with float money), with many small outpatient/pharmacy rows, chronic-disease rows, fewer
  inpatient stays and a heavy tail of catastrophic costs, every fund split exact in integer fen;
* a few imperfections per month of each kind in :data:`ANOMALY_OUTCOME` (reversals, late rows,
  re-exported and in-file duplicates, invalidated rows and rows that must be quarantined), counted
  in :attr:`SynthSummary.anomalies` and listed by ``setl_id`` in
  :attr:`SynthSummary.anomaly_ids`.

Everything is vectorised (numpy/polars); the only per-row Python loop is the XLSX writer, which
xlsxwriter requires (for a big city one of the two XLSX exports is written by a child
interpreter in parallel, see :class:`_XlsxHelper`). The same arguments give byte-identical files.

Calibration (persons=50 000, seed 7, Jining's rule: relapse when burden > 50 % and impoverishment
when > 150 % of Shandong's income): 71 relapse and 198 impoverishment warnings in December,
growing from 2/0 in January.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from pipeline.money import fen_text
from pipeline.resident_id import check_char_expr

# ---------------------------------------------------------------------------------------------
# Reference tables
# ---------------------------------------------------------------------------------------------

CITY = "370800"
PROVINCE = "370000"

# code, name, resident population (10k, ~2020 census), share of persons with rural hukou
COUNTIES: tuple[tuple[str, str, float, float], ...] = (
    ("370811", "任城区", 128.0, 0.30),
    ("370812", "兖州区", 62.0, 0.45),
    ("370826", "微山县", 58.0, 0.65),
    ("370827", "鱼台县", 42.0, 0.70),
    ("370828", "金乡县", 57.0, 0.65),
    ("370829", "嘉祥县", 74.0, 0.68),
    ("370830", "汶上县", 66.0, 0.68),
    ("370831", "泗水县", 52.0, 0.70),
    ("370832", "梁山县", 73.0, 0.65),
    ("370881", "曲阜市", 61.0, 0.50),
    ("370883", "邹城市", 110.0, 0.45),
)
_TOWNSHIPS = (
    ("唐口街道社区卫生服务中心", "长沟镇卫生院"),
    ("新兖镇卫生院", "漕河镇卫生院"),
    ("韩庄镇卫生院", "两城镇卫生院"),
    ("王鲁镇卫生院", "张黄镇卫生院"),
    ("鸡黍镇卫生院", "羊山镇卫生院"),
    ("纸坊镇卫生院", "梁宝寺镇卫生院"),
    ("南旺镇卫生院", "康驿镇卫生院"),
    ("泉林镇卫生院", "星村镇卫生院"),
    ("馆驿镇卫生院", "小路口镇卫生院"),
    ("陵城镇卫生院", "尼山镇卫生院"),
    ("峄山镇卫生院", "太平镇卫生院"),
)
_CITY_HOSPITALS = ("济宁医学院附属医院", "济宁市第一人民医院", "济宁市中医院")
_PHARMACY_CHAINS = ("漱玉平民大药房", "老百姓大药房")

# Published per-capita disposable income (yuan): admdvs, year, scope, amount, published_on.
# Years are for 2024; other years shift every date by the same number of years.
INCOME_ROWS: tuple[tuple[str, int, str, int, str], ...] = (
    ("370000", 2021, "all", 35705, "2022-01-20"),
    ("370000", 2022, "all", 37560, "2023-01-20"),
    ("370000", 2023, "all", 39890, "2024-02-15"),
    ("370000", 2024, "all", 41562, "2025-02-14"),
    ("370000", 2022, "rural", 22110, "2023-01-20"),
    ("370000", 2023, "rural", 23776, "2024-02-15"),
    ("370000", 2022, "urban", 49050, "2023-01-20"),
    ("370000", 2023, "urban", 51571, "2024-02-15"),
    ("370800", 2022, "all", 34100, "2023-01-25"),
    ("370800", 2023, "all", 36123, "2024-01-25"),
)

_SURNAMES = (
    "王李张刘陈杨孔孟赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕"
    "苏卢蒋蔡贾丁魏薛叶阎余潘杜戴夏钟汪田任姜范方石姚谭廖邹熊金陆郝颜商颜郗"
)
# rough frequency weights: the first few surnames dominate (王李张刘 in Shandong, 孔孟 in 曲阜/邹城)
_SURNAME_W = np.array(
    [9.0, 8.0, 8.0, 7.0, 3.0, 3.0, 2.5, 2.0, 2.5, 2.0, 2.0, 2.0, 2.0, 2.0, 1.6, 1.6, 1.6, 1.5]
    + [1.2] * (len(_SURNAMES) - 18)
)
_MALE_GIVEN = "伟强磊军勇杰涛明超刚平辉鹏华飞鑫波斌宇浩凯健俊帆帅旭宁龙林欣建国庆民春生福德文志"
_FEMALE_GIVEN = "芳娜敏静丽艳娟霞秀英兰玲桂萍红梅琳燕雪婷颖慧倩洁琴云莉凤珍玉荣爱彩丹晶翠萍"

COLUMNS: tuple[str, ...] = (
    "setl_id",
    "mdtrt_id",
    "psn_no",
    "psn_name",
    "certno",
    "insutype",
    "med_type",
    "setl_time",
    "medfee_sumamt",
    "fulamt_ownpay_amt",
    "overlmt_selfpay",
    "preselfpay_amt",
    "inscp_scp_amt",
    "hifp_pay",
    "hifmi_pay",
    "hifob_pay",
    "maf_pay",
    "oth_pay",
    "fund_pay_sumamt",
    "psn_part_amt",
    "hosp_part_amt",
    "acct_pay",
    "psn_cash_pay",
    "insu_admdvs",
    "refd_setl_flag",
    "init_setl_id",
    "vali_flag",
    "fixmedins_name",
)
MONEY: tuple[str, ...] = COLUMNS[8:23]
# the internal columns of an export, as the writers read them
_EXPORT_COLUMNS: tuple[str, ...] = (
    *COLUMNS[:8],
    *MONEY,
    "insu_admdvs",
    "refd",
    "init_setl_id",
    "vali",
    "fixmedins_name",
    "_bad_col",
    "_bad_val",
)
SETL_D_NAMES = {
    "psn_part_amt": "psn_pay",
    "psn_cash_pay": "cash_payamt",
    "oth_pay": "othfund_pay",
    "inscp_scp_amt": "inscp_amt",
}
# month m (1..12) uses SHAPES[(m - 1) % 6]
SHAPES: tuple[str, ...] = (
    "csv_utf8",
    "csv_utf8_bom",
    "csv_gb18030",
    "csv_setl_d",
    "parquet",
    "xlsx",
)

# what the contract makes of each kind of imperfection
ANOMALY_OUTCOME: dict[str, str] = {
    "reversal_same_month": "loaded",  # refd_setl_flag=1, original in the same export
    "reversal_later_month": "loaded",  # refd_setl_flag=1, original in an earlier export
    "resettlement": "loaded",  # 退费重结: new settlement of a reversed visit (same mdtrt_id)
    "late_row": "loaded",  # setl_time in the previous month, first seen in this export
    "reexport_duplicate": "duplicate",  # an earlier export's row again (same setl_id)
    "duplicate_in_file": "duplicate",  # the same row twice in one file
    "invalidated": "skipped",  # vali_flag = 0
    "bad_sum": "quarantined",  # amounts that do not add up
    "non_numeric_amount": "quarantined",  # a money cell that is not a number (CSV/XLSX only)
    "bad_certno": "quarantined",  # certno with a wrong check character
    "future_setl_time": "quarantined",  # setl_time after the end of the export month
    "orphan_reversal": "quarantined",  # reversal whose init_setl_id is unknown
    "missing_psn_no": "quarantined",  # empty psn_no
}

# The quarantined imperfections of an export are at most this share of its rows, below the
# contract's default limit (5 %): a small demo city still runs every month (a few per kind
# would otherwise be a tenth of a 300-person city's export). Larger cities never reach it.
QUARANTINE_SHARE = 0.04

_IDENTITY_DEPT = {
    "tekun": "civil_affairs",
    "dibao": "civil_affairs",
    "dibao_edge": "civil_affairs",
    "monitor_unstable": "rural_revitalization",
    "monitor_edge": "rural_revitalization",
    "monitor_sudden": "rural_revitalization",
    "fanpin": "rural_revitalization",
    "tuopin": "rural_revitalization",
}
# medical assistance (医疗救助) share of the remaining policy-scope personal part
_MAF_RATE = {
    "tekun": 1.0,
    "dibao": 0.7,
    "fanpin": 0.7,
    "dibao_edge": 0.6,
    "monitor_unstable": 0.5,
    "monitor_edge": 0.5,
    "monitor_sudden": 0.5,
    "tuopin": 0.0,
}
# share of persons (identities are given to whole households)
IDENTITY_SHARES = {
    "dibao": 0.030,
    "dibao_edge": 0.020,
    "monitor": 0.015,  # split over monitor_unstable/edge/sudden, rural persons only
    "tekun": 0.005,
    "fanpin": 0.002,
    "tuopin": 0.010,
}

# settlement categories: 0 ordinary outpatient, 1 pharmacy, 2 chronic/special, 3 inpatient
_CAT_11, _CAT_41, _CAT_14, _CAT_21 = 0, 1, 2, 3
# hifp rate by [insutype 0=390 1=310, category, level 0 township 1 county 2 city]
_RATE = np.array(
    [
        [[0.60, 0.50, 0.40], [0.50, 0.50, 0.50], [0.65, 0.60, 0.55], [0.85, 0.75, 0.60]],
        [[0.70, 0.65, 0.60], [0.50, 0.50, 0.50], [0.80, 0.80, 0.75], [0.92, 0.90, 0.88]],
    ]
)
# inpatient deductible (fen) by [insutype, level]
_DEDUCTIBLE = np.array([[20_000, 50_000, 100_000], [30_000, 60_000, 90_000]], dtype=np.int64)


# ---------------------------------------------------------------------------------------------
# Summary
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SynthSummary:
    """What :func:`generate_city` wrote.

    ``settlements`` counts every settlement row written (all exports, imperfections included),
    i.e. the contract's "rows read"; ``rows_by_month`` splits it by export. ``anomalies`` counts
    each kind of imperfection (see :data:`ANOMALY_OUTCOME` for what the contract does with it) and
    ``anomaly_ids`` lists the ``setl_id`` of each such row (for duplicates, the duplicated id).
    """

    landing: Path
    persons: int
    households: int
    settlements: int
    files: list[Path]
    months: list[str]
    anomalies: dict[str, int] = field(default_factory=dict)
    anomaly_ids: dict[str, list[str]] = field(default_factory=dict)
    rows_by_month: dict[str, int] = field(default_factory=dict)

    def expected_counts(self) -> dict[str, int]:
        """Rows read / loaded / duplicate / skipped / quarantined over all exports."""
        out = {"read": self.settlements, "duplicate": 0, "skipped": 0, "quarantined": 0}
        for kind, n in self.anomalies.items():
            outcome = ANOMALY_OUTCOME[kind]
            if outcome != "loaded":
                out[outcome] += n
        out["loaded"] = out["read"] - out["duplicate"] - out["skipped"] - out["quarantined"]
        return out


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------


def _rng(seed: int, stage: int) -> np.random.Generator:
    return np.random.default_rng([seed, stage])


def _persons(n: int, seed: int, year: int) -> pl.DataFrame:
    rng = _rng(seed, 1)
    size_p = np.array([0.22, 0.30, 0.20, 0.15, 0.08, 0.05])
    sizes = rng.choice(np.arange(1, 7), size=n, p=size_p)  # n households always suffice
    ends = np.cumsum(sizes)
    n_hh = int(np.searchsorted(ends, n) + 1)
    sizes = sizes[:n_hh].copy()
    sizes[-1] -= int(ends[n_hh - 1] - n)

    pop = np.array([c[2] for c in COUNTIES])
    rural_share = np.array([c[3] for c in COUNTIES])
    hh_county = rng.choice(len(COUNTIES), size=n_hh, p=pop / pop.sum())
    hh_rural = rng.random(n_hh) < rural_share[hh_county]
    hh_surname = rng.choice(len(_SURNAMES), size=n_hh, p=_SURNAME_W / _SURNAME_W.sum())

    hh = np.repeat(np.arange(n_hh), sizes)
    start = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    member = np.arange(n) - start[hh]

    # ages: head, spouse, children (or the head's parents), grandchildren/grandparents
    bands = np.array([20, 30, 40, 50, 60, 70, 80, 91])
    band_p = np.array([0.12, 0.17, 0.18, 0.20, 0.17, 0.11, 0.05])
    b = rng.choice(len(band_p), size=n_hh, p=band_p)
    head_age = bands[b] + (rng.random(n_hh) * (bands[b + 1] - bands[b])).astype(np.int64)
    ha = head_age[hh]
    age = ha.copy()
    spouse = member == 1
    age[spouse] = np.clip(ha[spouse] + np.round(rng.normal(0, 3, spouse.sum())), 18, 98)
    kid = (member == 2) | (member == 3)
    kid_age = ha[kid] - rng.integers(22, 37, kid.sum())
    parent_age = ha[kid] + rng.integers(22, 33, kid.sum())
    age[kid] = np.where(kid_age >= 0, kid_age, np.minimum(parent_age, 99))
    far = member >= 4
    grandkid = np.clip(ha[far] - rng.integers(45, 63, far.sum()), 0, None)
    grandparent = np.minimum(ha[far] + rng.integers(22, 33, far.sum()), 99)
    age[far] = np.where(ha[far] >= 50, grandkid, grandparent)
    age = np.clip(age, 0, 99).astype(np.int64)

    male = rng.random(n) < 0.5
    male[member == 0] = rng.random(n_hh) < 0.7
    male[spouse] = ~male[np.flatnonzero(spouse) - 1]

    y0 = np.datetime64(f"{year}-01-01", "D")
    birth = y0 - (age * 365.25).astype(np.int64) - rng.integers(1, 366, n)
    birth = np.maximum(birth, np.datetime64("1900-01-01", "D"))

    county = hh_county[hh]
    rural = hh_rural[hh]
    p310 = np.where(age < 18, 0.0, np.where(age < 60, 0.62, 0.50))
    p310 = np.where(rural & (age >= 18), np.where(age < 60, 0.17, 0.06), p310)
    insutype = np.where(rng.random(n) < p310, "310", "390")

    surname = hh_surname[hh]
    own = spouse & (rng.random(n) < 0.95)
    surname[own] = rng.choice(len(_SURNAMES), size=own.sum(), p=_SURNAME_W / _SURNAME_W.sum())
    sur_chars = np.array(list(_SURNAMES))[surname]
    m_chars, f_chars = np.array(list(_MALE_GIVEN)), np.array(list(_FEMALE_GIVEN))
    g1 = np.where(
        male, m_chars[rng.integers(0, len(m_chars), n)], f_chars[rng.integers(0, len(f_chars), n)]
    )
    g2 = np.where(
        male, m_chars[rng.integers(0, len(m_chars), n)], f_chars[rng.integers(0, len(f_chars), n)]
    )
    two = rng.random(n) < 0.7
    name = np.char.add(np.char.add(sur_chars, g1), np.where(two, g2, ""))

    # household number within its county, in household order
    hh_no = np.zeros(n_hh, dtype=np.int64)
    for c in range(len(COUNTIES)):
        idx = np.flatnonzero(hh_county == c)
        hh_no[idx] = np.arange(1, idx.size + 1)
    codes = np.array([c[0] for c in COUNTIES])
    psn_num = np.cumsum(rng.integers(1, 10, n))

    df = pl.DataFrame(
        {
            "idx": np.arange(n),
            "hh": hh,
            "member": member,
            "county_i": county,
            "insuplc_admdvs": codes[county],
            "psn_num": psn_num,
            "hh_no": hh_no[hh],
            "psn_name": name,
            "gend": np.where(male, "1", "2"),
            "brdy_d": birth,
            "age": age,
            "insutype": insutype,
            "rural": rural.astype(np.int8),
            "seq_h": rng.integers(0, 499, n),
        }
    )
    df = df.with_columns(
        pl.col("brdy_d").cast(pl.Date),
        psn_no=pl.lit("P37") + pl.col("psn_num").cast(pl.String).str.zfill(8),
        hh_id=pl.lit("H") + pl.col("insuplc_admdvs") + pl.col("hh_no").cast(pl.String).str.zfill(5),
    )
    # certno: county + birth date + sequence (odd for men) + check; unique by construction:
    # within (county, birth date, gender) the k-th person gets (h + 37 k) mod 499.
    df = df.with_columns(
        seq_k=(
            pl.col("seq_h").first().over(["county_i", "brdy_d", "gend"], order_by="idx")
            + 37 * pl.int_range(pl.len()).over(["county_i", "brdy_d", "gend"], order_by="idx")
        )
        % 499
    ).with_columns(
        seq=(2 * pl.col("seq_k") + pl.when(pl.col("gend") == "1").then(1).otherwise(2))
        .cast(pl.String)
        .str.zfill(3),
        brdy=pl.col("brdy_d").dt.strftime("%Y-%m-%d"),
    )
    first17 = pl.col("insuplc_admdvs") + pl.col("brdy_d").dt.strftime("%Y%m%d") + pl.col("seq")
    df = df.with_columns(certno=first17 + check_char_expr(first17))
    return df.drop("seq_h", "seq_k", "seq", "psn_num", "hh_no")


# ---------------------------------------------------------------------------------------------
# Identities
# ---------------------------------------------------------------------------------------------


def _identities(persons: pl.DataFrame, seed: int, year: int) -> pl.DataFrame:
    """Household-level identity spells: hh, identity, begin (date), end (date or null)."""
    rng = _rng(seed, 2)
    hh = persons.group_by("hh", maintain_order=True).agg(
        size=pl.len(), rural=pl.col("rural").first(), head_age=pl.col("age").first()
    )
    n = persons.height
    n_hh = hh.height
    size = hh["size"].to_numpy()
    rural = hh["rural"].to_numpy().astype(bool)
    head_age = hh["head_age"].to_numpy()
    rural_persons = max(float((size * rural).sum()) / n, 1e-9)
    alone_old = (size == 1) & (head_age >= 50)
    alone_share = max(float(alone_old.sum()) / n, 1e-9)

    s = IDENTITY_SHARES
    p = np.zeros((6, n_hh))
    p[0] = np.where(alone_old, min(s["tekun"] / alone_share, 0.5), 0.0)
    p[1] = s["dibao"]
    p[2] = s["dibao_edge"]
    p[3] = np.where(rural, s["monitor"] / rural_persons, 0.0)
    p[4] = np.where(rural, s["fanpin"] / rural_persons, 0.0)
    p[5] = np.where(rural, s["tuopin"] / rural_persons, 0.0)
    cum = np.cumsum(p, axis=0)
    u = rng.random(n_hh)
    kind = np.where(u < cum[-1], (u[None, :] >= cum).sum(axis=0), -1)
    mon = rng.choice(3, size=n_hh, p=[0.45, 0.35, 0.20])
    names = np.array(["tekun", "dibao", "dibao_edge", "monitor", "fanpin", "tuopin"])
    mon_names = np.array(["monitor_unstable", "monitor_edge", "monitor_sudden"])
    has = kind >= 0
    ident = np.where(kind == 3, mon_names[mon], names[np.maximum(kind, 0)])

    sel = np.flatnonzero(has)
    ident = ident[sel]
    k = len(sel)
    # begin: first of a month some years before; a few during the year; a few ended last year
    back_years = {
        "tekun": (2, 10),
        "dibao": (1, 8),
        "dibao_edge": (1, 3),
        "fanpin": (1, 3),
        "tuopin": (4, 8),
    }
    lo = np.array([back_years.get(i, (1, 3))[0] for i in ident])
    hi = np.array([back_years.get(i, (1, 3))[1] for i in ident])
    b_year = year - (lo + (rng.random(k) * (hi - lo + 1)).astype(np.int64))
    b_month = rng.integers(1, 13, k)
    r = rng.random(k)
    mid_begin = (r < 0.08) & (ident != "tuopin")
    b_year = np.where(mid_begin, year, b_year)
    b_month = np.where(mid_begin, rng.integers(2, 12, k), b_month)
    mid_end = (r >= 0.08) & (r < 0.14) & (ident != "tuopin")
    ended_before = (r >= 0.14) & (r < 0.17) & (ident != "tuopin")
    e_month = rng.integers(1, 12, k)  # ends on the last day of month 1..11
    begin = _first_of_month(b_year, b_month)
    end = np.full(k, np.datetime64("NaT"), dtype="datetime64[D]")
    end[mid_end] = _first_of_month(np.full(mid_end.sum(), year), e_month[mid_end] + 1) - 1
    prev_end = (
        _first_of_month(np.full(ended_before.sum(), year - 1), rng.integers(2, 13, k)[ended_before])
        - 1
    )
    end[ended_before] = np.maximum(prev_end, begin[ended_before] + 31)
    rows = pl.DataFrame(
        {"hh": hh["hh"].to_numpy()[sel], "identity": ident, "begin": begin, "end": end}
    )

    # a low-income-edge family that ends mid-year often becomes 低保 the next day
    to_dibao = mid_end & (ident == "dibao_edge") & (rng.random(k) < 0.5)
    follow = pl.DataFrame(
        {
            "hh": hh["hh"].to_numpy()[sel][to_dibao],
            "identity": np.full(to_dibao.sum(), "dibao"),
            "begin": end[to_dibao] + 1,
            "end": np.full(to_dibao.sum(), np.datetime64("NaT"), dtype="datetime64[D]"),
        }
    )
    # many 脱贫不稳定户 are also 脱贫人口
    also = (ident == "monitor_unstable") & (rng.random(k) < 0.4)
    tp_year = year - rng.integers(4, 9, also.sum())
    tuopin = pl.DataFrame(
        {
            "hh": hh["hh"].to_numpy()[sel][also],
            "identity": np.full(also.sum(), "tuopin"),
            "begin": _first_of_month(tp_year, np.full(also.sum(), 12)),
            "end": np.full(also.sum(), np.datetime64("NaT"), dtype="datetime64[D]"),
        }
    )
    out = pl.concat([rows, follow, tuopin]).with_columns(
        pl.col("begin").cast(pl.Date), pl.col("end").cast(pl.Date)
    )
    return out.sort(["hh", "begin", "identity"])


def _first_of_month(years: np.ndarray, months: np.ndarray) -> np.ndarray:
    years = np.asarray(years, dtype=np.int64)
    months = np.asarray(months, dtype=np.int64)
    total = (years - 1970) * 12 + (months - 1)
    return total.astype("datetime64[M]").astype("datetime64[D]")


# ---------------------------------------------------------------------------------------------
# Settlements
# ---------------------------------------------------------------------------------------------


def _visits(persons: pl.DataFrame, hh_ident: pl.DataFrame, seed: int, year: int) -> pl.DataFrame:
    """One row per settlement of the year: person, category, med_type, level, time, cost."""
    rng = _rng(seed, 3)
    n = persons.height
    age = persons["age"].to_numpy()
    ins310 = (persons["insutype"] == "310").to_numpy()
    # persons in a household with an assistance identity are sicker (illness drives poverty)
    flagged = (
        hh_ident.filter(pl.col("identity") != "tuopin")
        .group_by("hh")
        .agg(sudden=(pl.col("identity") == "monitor_sudden").any())
    )
    pf = persons.select("hh").join(flagged, on="hh", how="left", maintain_order="left")
    poor = pf["sudden"].is_not_null().to_numpy()
    sudden = pf["sudden"].fill_null(False).to_numpy()

    child, elder = age < 15, age >= 60
    grp = np.where(child, 0, np.where(elder, 2, 1))
    n_days = (np.datetime64(f"{year + 1}-01-01") - np.datetime64(f"{year}-01-01")).astype(int)

    parts = []

    def add(person, cat, cost, day, level):
        parts.append((person, np.full(person.size, cat), cost, day, level))

    # ordinary outpatient (11)
    lam = np.array([1.8, 1.5, 3.0])[grp]
    cnt = rng.poisson(lam)
    p = np.repeat(np.arange(n), cnt)
    level = rng.choice(3, size=p.size, p=[0.55, 0.35, 0.10])
    cost = np.exp(rng.normal(np.log(85), 0.75, p.size)) * np.array([0.8, 1.0, 1.5])[level]
    add(p, _CAT_11, np.clip(cost, 6, 2500), rng.integers(0, n_days, p.size), level)
    # pharmacy (41)
    lam = np.array([0.8, 1.5, 2.5])[grp] + np.where(ins310, 2.0, 0.0)
    cnt = rng.poisson(lam)
    p = np.repeat(np.arange(n), cnt)
    cost = np.exp(rng.normal(np.log(65), 0.8, p.size))
    add(
        p,
        _CAT_41,
        np.clip(cost, 5, 1500),
        rng.integers(0, n_days, p.size),
        np.zeros(p.size, int),
    )
    # chronic / special-disease outpatient (14): roughly monthly visits
    chronic = rng.random(n) < np.array([0.01, 0.07, 0.30])[grp] * np.where(poor, 1.5, 1.0)
    cnt = np.where(chronic, rng.binomial(12, 0.75, n), 0)
    p = np.repeat(np.arange(n), cnt)
    level = rng.choice(3, size=p.size, p=[0.2, 0.5, 0.3])
    cost = np.exp(rng.normal(np.log(320), 0.7, p.size))
    add(p, _CAT_14, np.clip(cost, 30, 6000), rng.integers(0, n_days, p.size), level)
    # inpatient (21)
    lam = np.array([0.06, 0.07, 0.22])[grp] * np.where(poor, 1.5, 1.0)
    cnt = rng.poisson(lam)
    p = np.repeat(np.arange(n), cnt)
    level = rng.choice(3, size=p.size, p=[0.15, 0.55, 0.30])
    cost = np.exp(rng.normal(np.log(6500), 0.8, p.size)) * np.array([0.45, 1.0, 1.9])[level]
    add(p, _CAT_21, np.clip(cost, 600, 180_000), rng.integers(0, n_days, p.size), level)

    # catastrophic illness: a yearly total from onset month to December, over several stays
    # (75%) or monthly special-disease outpatient treatment (25%, e.g. dialysis, chemotherapy)
    p_sev = np.array([0.003, 0.010, 0.025])[grp] * np.where(sudden, 5.0, np.where(poor, 3.0, 1.0))
    sev = np.flatnonzero(rng.random(n) < p_sev)
    total = np.clip(np.exp(rng.normal(np.log(130_000), 0.55, sev.size)), 30_000, 420_000)
    onset = rng.integers(0, 12, sev.size)
    outpatient = rng.random(sev.size) < 0.25
    months_left = 12 - onset
    k = np.where(outpatient, months_left, np.minimum(1 + rng.poisson(2.0, sev.size), 6))
    p = np.repeat(sev, k)
    owner = np.repeat(np.arange(sev.size), k)
    w = rng.gamma(2.0, 1.0, p.size)
    w = w / np.bincount(owner, weights=w)[owner]
    cost = np.maximum(total[owner] * w, 2_000)
    start_day = (
        _first_of_month(np.full(sev.size, year), onset + 1) - np.datetime64(f"{year}-01-01")
    ).astype(int)
    # treatment is heaviest soon after onset
    day = start_day[owner] + (rng.random(p.size) ** 1.6 * (n_days - start_day[owner])).astype(int)
    level = np.where(rng.random(p.size) < 0.7, 2, 1)
    cat = np.where(outpatient[owner], _CAT_14, _CAT_21)
    parts.append((p, cat, cost, day, level))

    person = np.concatenate([x[0] for x in parts])
    cat = np.concatenate([x[1] for x in parts])
    cost = np.concatenate([x[2] for x in parts])
    day = np.concatenate([x[3] for x in parts])
    level = np.concatenate([x[4] for x in parts])
    m = person.size
    # local med_type codes: 14 → 1401 / 140104, 21 → 2101
    u = rng.random(m)
    med_type = np.select(
        [cat == _CAT_11, cat == _CAT_41, (cat == _CAT_14) & (u < 0.7), cat == _CAT_14, u < 0.85],
        ["11", "41", "14", np.where(u < 0.85, "1401", "140104"), "21"],
        "2101",
    )
    hour_lo = np.array([8, 8, 8, 8])[cat]
    hour_span = np.array([10, 14, 10, 9])[cat]
    secs = (
        day.astype(np.int64) * 86_400
        + (hour_lo + (rng.random(m) * hour_span).astype(np.int64)) * 3600
        + rng.integers(0, 60, m) * 60
    )
    t = np.datetime64(f"{year}-01-01T00:00:00", "s") + secs
    return pl.DataFrame(
        {
            "person": person,
            "cat": cat.astype(np.int8),
            "med_type": med_type,
            "level": level.astype(np.int8),
            "setl_time": t.astype("datetime64[ms]"),
            "medfee_fen": np.round(cost * 100).astype(np.int64),
            "u_hosp": rng.random(m),  # picks the institution
        }
    )


def _institutions() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Names and an index: (names, start[county, kind], count[county, kind]).

    kind 0 township, 1 county hospital, 2 city hospital, 3 pharmacy.
    """
    names: list[str] = []
    start = np.zeros((len(COUNTIES), 4), dtype=np.int64)
    count = np.zeros((len(COUNTIES), 4), dtype=np.int64)
    city_start = 0
    names.extend(_CITY_HOSPITALS)
    for c, (_code, cname, _pop, _r) in enumerate(COUNTIES):
        short = cname[:-1]
        groups = (
            [f"{cname}{t}" for t in _TOWNSHIPS[c]],
            [f"{cname}人民医院", f"{cname}中医院"],
            None,
            [f"{chain}{short}店" for chain in _PHARMACY_CHAINS],
        )
        for kind, g in enumerate(groups):
            if g is None:
                start[c, kind], count[c, kind] = city_start, len(_CITY_HOSPITALS)
            else:
                start[c, kind], count[c, kind] = len(names), len(g)
                names.extend(g)
    return np.array(names), start, count


def _split(
    rng: np.random.Generator,
    cat: np.ndarray,
    ins310: np.ndarray,
    level: np.ndarray,
    maf_rate: np.ndarray,
    med: np.ndarray,
) -> dict[str, np.ndarray]:
    """Fund splits in integer fen; every identity of the contract holds exactly."""
    m = med.size
    u = rng.random((10, m))
    ins = ins310.astype(np.int64)
    inpatient = cat == _CAT_21
    full_lo = np.array([0.0, 0.0, 0.01, 0.04])[cat] + np.where(inpatient & (level == 2), 0.04, 0.0)
    full_hi = np.array([0.06, 0.10, 0.06, 0.18])[cat] + np.where(
        inpatient & (level == 2), 0.04, 0.0
    )
    full = np.floor(med * (full_lo + u[0] * (full_hi - full_lo))).astype(np.int64)
    over = np.where(inpatient & (u[1] < 0.25), np.floor(med * 0.02 * u[2]), 0).astype(np.int64)
    inscp = med - full - over
    pre_frac = np.select(
        [inpatient, cat == _CAT_14, u[3] < 0.3],
        [0.02 + 0.05 * u[4], 0.03 * u[4], 0.05 * u[4]],
        0.0,
    )
    pre = np.floor(inscp * pre_frac).astype(np.int64)
    ded = np.where(inpatient, _DEDUCTIBLE[ins, level], 0)
    rate = _RATE[ins, cat, level]
    rate = np.where(ins310 & (cat == _CAT_41) & (u[5] < 0.6), 0.0, rate)  # paid from the account
    hifp = np.floor(np.maximum(inscp - pre - ded, 0) * rate).astype(np.int64)
    serious = (cat == _CAT_21) | (cat == _CAT_14)
    hifmi = np.where(
        serious & ~ins310, np.floor(0.6 * np.maximum(inscp - hifp - 1_200_000, 0)), 0
    ).astype(np.int64)
    hifob = np.where(
        inpatient & ins310, np.floor(0.7 * np.maximum(inscp - hifp - 1_000_000, 0)), 0
    ).astype(np.int64)
    maf = np.where(
        serious, np.floor(maf_rate * np.maximum(inscp - hifp - hifmi - hifob, 0)), 0
    ).astype(np.int64)
    rest = med - hifp - hifmi - hifob - maf
    oth = np.where(inpatient & (u[6] < 0.01), np.floor(rest * (0.1 + 0.2 * u[7])), 0).astype(
        np.int64
    )
    fund = hifp + hifmi + hifob + maf + oth
    hosp = np.where(inpatient & (u[8] < 0.02), np.floor(med * (0.005 + 0.025 * u[9])), 0)
    hosp = np.minimum(hosp.astype(np.int64), med - fund)
    part = med - fund - hosp
    v = rng.random((3, m))
    acct = np.select(
        [
            ins310 & ~inpatient & (v[0] < 0.7),
            ins310 & ~inpatient,
            ins310 & inpatient & (v[0] < 0.3),
            ~ins310 & (v[0] < 0.03),
        ],
        [
            part,
            np.floor(part * v[1]),
            np.minimum(part, np.floor(200_000 * v[2])),
            np.floor(part * v[1]),
        ],
        0,
    ).astype(np.int64)
    return {
        "medfee_sumamt": med,
        "fulamt_ownpay_amt": full,
        "overlmt_selfpay": over,
        "preselfpay_amt": pre,
        "inscp_scp_amt": inscp,
        "hifp_pay": hifp,
        "hifmi_pay": hifmi,
        "hifob_pay": hifob,
        "maf_pay": maf,
        "oth_pay": oth,
        "fund_pay_sumamt": fund,
        "psn_part_amt": part,
        "hosp_part_amt": hosp,
        "acct_pay": acct,
        "psn_cash_pay": part - acct,
    }


def _maf_rates(rows: pl.DataFrame, persons: pl.DataFrame, hh_ident: pl.DataFrame) -> np.ndarray:
    """The medical-assistance rate in force for each row's person on its settlement day."""
    keyed = rows.select(
        pl.int_range(pl.len()).alias("_r"),
        pl.col("person"),
        pl.col("setl_time").dt.date().alias("_day"),
    ).join(persons.select(pl.col("idx").alias("person"), "hh"), on="person", how="left")
    rates = hh_ident.with_columns(
        rate=pl.col("identity").replace_strict(_MAF_RATE, return_dtype=pl.Float64)
    )
    hit = (
        keyed.join(rates, on="hh", how="inner")
        .filter(
            (pl.col("begin") <= pl.col("_day"))
            & (pl.col("end").is_null() | (pl.col("end") >= pl.col("_day")))
        )
        .group_by("_r")
        .agg(pl.col("rate").max())
    )
    out = np.zeros(rows.height)
    out[hit["_r"].to_numpy()] = hit["rate"].to_numpy()
    return out


def _with_splits(
    rows: pl.DataFrame, persons: pl.DataFrame, hh_ident: pl.DataFrame, rng: np.random.Generator
) -> pl.DataFrame:
    ins310 = (persons["insutype"] == "310").to_numpy()[rows["person"].to_numpy()]
    money = _split(
        rng,
        rows["cat"].to_numpy().astype(np.int64),
        ins310,
        rows["level"].to_numpy().astype(np.int64),
        _maf_rates(rows, persons, hh_ident),
        rows["medfee_fen"].to_numpy(),
    )
    return rows.with_columns(**{k: pl.Series(k, v) for k, v in money.items()})


@dataclass
class _City:
    persons: pl.DataFrame
    hh_ident: pl.DataFrame
    identities: pl.DataFrame
    exports: dict[int, pl.DataFrame]  # export month -> rows to write (internal columns)
    anomalies: dict[str, int]
    anomaly_ids: dict[str, list[str]]


def _ts(a: np.ndarray) -> pl.Series:
    return pl.Series("setl_time", np.asarray(a).astype("datetime64[ms]"))


def _month_end(year: int, month: np.ndarray) -> np.ndarray:
    """First second after the end of each month (datetime64[s])."""
    y = np.where(month == 12, year + 1, year)
    m = np.where(month == 12, 1, month + 1)
    return _first_of_month(y, m).astype("datetime64[s]")


def _build(n_persons: int, seed: int, year: int) -> _City:
    persons = _persons(n_persons, seed, year)
    hh_ident = _identities(persons, seed, year)
    identities = (
        hh_ident.join(persons.select("hh", "idx", "certno"), on="hh", how="inner")
        .sort(["hh", "idx", "begin", "identity"])
        .select(
            "certno",
            "identity",
            pl.col("begin").dt.strftime("%Y-%m-%d").alias("begin_date"),
            pl.col("end").dt.strftime("%Y-%m-%d").alias("end_date"),
            pl.col("identity")
            .replace_strict(_IDENTITY_DEPT, return_dtype=pl.String)
            .alias("source_dept"),
        )
    )
    visits = _visits(persons, hh_ident, seed, year).sort(
        ["setl_time", "person", "cat", "medfee_fen", "u_hosp"], maintain_order=True
    )
    rng = _rng(seed, 4)
    base = _with_splits(visits, persons, hh_ident, rng).with_columns(
        key=pl.int_range(pl.len(), dtype=pl.Int64),
        kind=pl.lit("base"),
        orig_key=pl.lit(None, dtype=pl.Int64),
        refd=pl.lit(0, dtype=pl.Int8),
        vali=pl.lit(1, dtype=pl.Int8),
        export=pl.col("setl_time").dt.month().cast(pl.Int64),
    )
    money_cols = list(MONEY)
    next_key = base.height
    arng = _rng(seed, 5)
    counts: dict[str, int] = {k: 0 for k in ANOMALY_OUTCOME}

    def few(lo: int = 1, hi: int = 3) -> int:
        return int(arng.integers(lo, hi + 1))

    # late rows: a few settlements of month m-1 first arrive in export m
    exp = base["export"].to_numpy().copy()
    month_of = base["setl_time"].dt.month().to_numpy()
    late_keys: list[int] = []
    for m in range(2, 13):
        cand = np.flatnonzero(month_of == m - 1)
        pick = arng.choice(cand, size=min(few(), cand.size), replace=False) if cand.size else []
        exp[pick] = m
        late_keys.extend(int(x) for x in pick)
    counts["late_row"] = len(late_keys)
    base = base.with_columns(export=pl.Series(exp))

    # reversals (some followed by a re-settlement of the same visit)
    used = np.zeros(base.height, dtype=bool)
    used[late_keys] = True
    rev_orig: list[int] = []
    rev_month: list[int] = []
    rev_same: list[bool] = []
    for m in range(1, 13):
        same = np.flatnonzero((exp == m) & ~used & (month_of == m))
        pick = arng.choice(same, size=min(few(), same.size), replace=False) if same.size else []
        used[pick] = True
        rev_orig.extend(int(x) for x in pick)
        rev_month.extend([m] * len(pick))
        rev_same.extend([True] * len(pick))
        if m >= 2:
            earlier = np.flatnonzero((exp < m) & ~used)
            pick = (
                arng.choice(earlier, size=min(few(), earlier.size), replace=False)
                if earlier.size
                else []
            )
            used[pick] = True
            rev_orig.extend(int(x) for x in pick)
            rev_month.extend([m] * len(pick))
            rev_same.extend([False] * len(pick))
    orig = base[rev_orig] if rev_orig else base.clear()
    k = orig.height
    rev_month_a = np.array(rev_month, dtype=np.int64)
    same_a = np.array(rev_same, dtype=bool)
    eom = _month_end(year, rev_month_a)
    ot = orig["setl_time"].to_numpy().astype("datetime64[s]")
    som = _first_of_month(np.full(k, year), rev_month_a).astype("datetime64[s]")
    # same month: a later day of the month in office hours, or shortly after on the last day
    ot_day = ot.astype("datetime64[D]")
    days_left = (eom.astype("datetime64[D]") - ot_day).astype(np.int64) - 1
    t_same = (
        ot_day.astype("datetime64[s]")
        + (arng.random(k) * (days_left + 1)).astype(np.int64) * 86_400
        + arng.integers(8, 18, k) * 3600
        + arng.integers(0, 60, k) * 60
    )
    soon = np.minimum(ot + arng.integers(10, 91, k) * 60, eom - 60)
    t_same = np.where(t_same > ot, t_same, soon)
    t_later = som + (
        arng.integers(0, 28, k) * 86_400
        + arng.integers(8, 18, k) * 3600
        + arng.integers(0, 60, k) * 60
    )
    rev_time = np.where(same_a, t_same, t_later)
    reversals = orig.with_columns(
        **{c: -pl.col(c) for c in money_cols},
        setl_time=_ts(rev_time),
        key=pl.Series(np.arange(next_key, next_key + k, dtype=np.int64)),
        orig_key=pl.col("key"),
        refd=pl.lit(1, dtype=pl.Int8),
        kind=pl.Series(np.where(same_a, "reversal_same_month", "reversal_later_month")),
        export=pl.Series(rev_month_a),
    )
    next_key += k
    counts["reversal_same_month"] = int(same_a.sum())
    counts["reversal_later_month"] = int((~same_a).sum())
    # re-settlement: same visit, slightly lower cost, shortly after the reversal, same export
    again = arng.random(k) < 0.5
    rs_time = np.minimum(rev_time + arng.integers(10, 61, k) * 60, eom - 60)
    resettle = orig.filter(pl.Series(again)).with_columns(
        setl_time=_ts(rs_time[again]),
        medfee_fen=(pl.col("medfee_sumamt") * pl.Series(0.85 + 0.13 * arng.random(k)[again]))
        .floor()
        .cast(pl.Int64),
        key=pl.Series(np.arange(next_key, next_key + int(again.sum()), dtype=np.int64)),
        orig_key=pl.col("key"),  # links the visit (mdtrt_id), not a reversal
        kind=pl.lit("resettlement"),
        export=pl.Series(rev_month_a[again]),
    )
    next_key += resettle.height
    resettle = _with_splits(resettle.drop(money_cols), persons, hh_ident, arng).select(base.columns)
    counts["resettlement"] = resettle.height
    truth = pl.concat([base, reversals.select(base.columns), resettle])

    # rows that do not count: invalidated and bad rows, each a copy of a normal row of the export
    extras = []
    kinds = (
        "invalidated",
        "bad_sum",
        "non_numeric_amount",
        "bad_certno",
        "future_setl_time",
        "orphan_reversal",
        "missing_psn_no",
    )
    quarantined = [k for k in kinds if ANOMALY_OUTCOME[k] == "quarantined"]
    for m in range(1, 13):
        pool = np.flatnonzero((exp == m) & (month_of == m) & ~used)
        # each quarantined kind's share of the export's budget; the remainder goes round the
        # kinds month by month, so that a small city still has every kind in its year
        budget, q = int(np.count_nonzero(exp == m) * QUARANTINE_SHARE), len(quarantined)
        for kind in kinds:
            if kind == "non_numeric_amount" and SHAPES[(m - 1) % 6] == "parquet":
                continue  # a decimal column cannot hold text
            n_k = min(few(), pool.size)  # (drawn whatever the budget: the same city above it)
            if kind in quarantined:
                i = quarantined.index(kind)
                n_k = min(n_k, budget // q + int((i - m) % q < budget % q))
            if n_k == 0:
                continue
            pick = arng.choice(pool, size=n_k, replace=False)
            extras.append(
                base[pick].with_columns(
                    kind=pl.lit(kind),
                    key=pl.Series(np.arange(next_key, next_key + n_k, dtype=np.int64)),
                    orig_key=pl.lit(None, dtype=pl.Int64),
                    export=pl.lit(m, dtype=pl.Int64),
                    vali=pl.lit(0 if kind == "invalidated" else 1, dtype=pl.Int8),
                )
            )
            next_key += n_k
            counts[kind] += n_k
    extra = pl.concat(extras) if extras else base.clear()
    if extra.height:
        ex_n = extra.height
        xt = extra["setl_time"].to_numpy().astype("datetime64[s]")
        xm = extra["export"].to_numpy()
        jitter = arng.integers(1, 240, ex_n) * 60
        xt = np.where(xt + jitter < _month_end(year, xm), xt + jitter, xt - jitter)
        future = (extra["kind"] == "future_setl_time").to_numpy()
        xt = np.where(
            future,
            _month_end(year, xm)
            + arng.integers(0, 9, ex_n) * 86_400
            + arng.integers(8, 18, ex_n) * 3600,
            xt,
        )
        orphan = (extra["kind"] == "orphan_reversal").to_numpy()
        extra = extra.with_columns(setl_time=_ts(xt)).with_columns(
            **{
                c: pl.when(pl.Series(orphan)).then(-pl.col(c)).otherwise(pl.col(c))
                for c in money_cols
            },
            refd=pl.when(pl.Series(orphan)).then(1).otherwise(0).cast(pl.Int8),
        )

    # numbering: setl_id / mdtrt_id in time order with small gaps
    allrows = pl.concat([truth, extra.select(truth.columns)]).sort(["setl_time", "key"])
    gaps = arng.integers(1, 4, allrows.height)
    allrows = allrows.with_columns(num=pl.Series(np.cumsum(gaps)))
    ids = allrows.select("key", "num")
    allrows = (
        allrows.join(
            ids.rename({"key": "orig_key", "num": "orig_num"}),
            on="orig_key",
            how="left",
            maintain_order="left",
        )
        .with_columns(
            setl_id=pl.lit(f"S{year}") + pl.col("num").cast(pl.String).str.zfill(9),
            mdtrt_num=pl.when(pl.col("orig_num").is_not_null())
            .then(pl.col("orig_num"))
            .otherwise(pl.col("num")),
        )
        .with_columns(
            mdtrt_id=pl.lit("M") + pl.col("mdtrt_num").cast(pl.String).str.zfill(9),
            init_setl_id=pl.when(pl.col("refd") == 1)
            .then(pl.lit(f"S{year}") + pl.col("orig_num").cast(pl.String).str.zfill(9))
            .otherwise(pl.lit(None, dtype=pl.String)),
        )
    )
    # orphan reversals point at ids that were never issued
    n_orphan = counts["orphan_reversal"]
    orphan_ids = [f"S{year}9{int(x):08d}" for x in arng.choice(10**8, size=n_orphan, replace=False)]
    orphan_mask = pl.col("kind") == "orphan_reversal"
    allrows = allrows.with_columns(
        _o=pl.when(orphan_mask).then(pl.cum_count("kind").over(orphan_mask) - 1).otherwise(None)
    )
    if n_orphan:
        allrows = allrows.with_columns(
            init_setl_id=pl.when(orphan_mask)
            .then(
                pl.col("_o").replace_strict(
                    list(range(n_orphan)), orphan_ids, default=None, return_dtype=pl.String
                )
            )
            .otherwise(pl.col("init_setl_id"))
        )
    allrows = allrows.drop("_o", "orig_num", "mdtrt_num", "num")

    # person and institution columns
    names, inst_start, inst_count = _institutions()
    p = persons.select(
        pl.col("idx").alias("person"),
        "psn_no",
        "psn_name",
        "certno",
        "insutype",
        "insuplc_admdvs",
        "county_i",
    )
    allrows = allrows.join(p, on="person", how="left", maintain_order="left")
    ci = allrows["county_i"].to_numpy()
    kind_i = np.where(allrows["cat"].to_numpy() == _CAT_41, 3, allrows["level"].to_numpy())
    inst = inst_start[ci, kind_i] + (allrows["u_hosp"].to_numpy() * inst_count[ci, kind_i]).astype(
        np.int64
    )
    allrows = allrows.with_columns(
        fixmedins_name=pl.Series(names[inst]), insu_admdvs=pl.col("insuplc_admdvs")
    )

    # row corruptions
    kinds = allrows["kind"]
    bad_sum = (kinds == "bad_sum").to_numpy()
    delta = arng.integers(100, 50_000, allrows.height)
    which = arng.random(allrows.height) < 0.5
    # either the personal part or the total is off by 1–500 yuan, so that
    # psn_part_amt ≠ medfee_sumamt − fund_pay_sumamt − hosp_part_amt (the contract's check)
    allrows = allrows.with_columns(
        psn_part_amt=pl.col("psn_part_amt") + pl.Series(np.where(bad_sum & which, delta, 0)),
        medfee_sumamt=pl.col("medfee_sumamt") + pl.Series(np.where(bad_sum & ~which, delta, 0)),
        certno=pl.when(kinds == "bad_certno")
        .then(pl.col("certno").str.slice(0, 17) + _wrong_check(pl.col("certno").str.slice(17, 1)))
        .otherwise(pl.col("certno")),
        psn_no=pl.when(kinds == "missing_psn_no")
        .then(pl.lit(None, dtype=pl.String))
        .otherwise(pl.col("psn_no")),
    )
    nn = pl.Series((kinds == "non_numeric_amount").to_numpy())
    bad_col = pl.Series(["medfee_sumamt", "hifp_pay", "psn_part_amt", "fund_pay_sumamt"]).gather(
        arng.integers(0, 4, allrows.height)
    )
    bad_val = pl.Series(["#VALUE!", "12O.50", "--", "一百二十"]).gather(
        arng.integers(0, 4, allrows.height)
    )
    allrows = allrows.with_columns(
        _bad_col=pl.when(pl.lit(nn)).then(pl.lit(bad_col)),
        _bad_val=pl.when(pl.lit(nn)).then(pl.lit(bad_val)),
    )

    # exports: each month's rows plus duplicates (row positions in numpy: one pass, no filters
    # of the whole year per month)
    ids_by_kind: dict[str, list[str]] = {k: [] for k in ANOMALY_OUTCOME}
    exports: dict[int, pl.DataFrame] = {}
    marked = allrows.select("kind", "setl_id").filter(pl.col("kind") != "base")
    for kind in ANOMALY_OUTCOME:
        ids_by_kind[kind] = marked.filter(pl.col("kind") == kind)["setl_id"].to_list()
    key_a = allrows["key"].to_numpy()
    late_a = np.isin(key_a, np.asarray(late_keys, dtype=np.int64))
    ids_by_kind["late_row"] = allrows["setl_id"].filter(pl.Series(late_a)).to_list()
    export_a = allrows["export"].to_numpy()
    clean_a = (allrows["kind"] == "base").to_numpy() & ~np.isin(
        key_a, np.asarray(sorted(set(late_keys) | set(rev_orig)), dtype=np.int64)
    )
    out = allrows.select(_EXPORT_COLUMNS)  # what the writers read: the year's rows gathered
    for m in range(1, 13):  # once more for the month's file, so no more columns than needed
        rows = out[np.flatnonzero(export_a == m)]
        add = []
        if m >= 2:
            prior = np.flatnonzero((export_a < m) & clean_a)
            if prior.size:
                pick = arng.choice(prior.size, size=min(few(), prior.size), replace=False)
                dup = out[np.sort(prior[pick])]
                add.append(dup)
                ids_by_kind["reexport_duplicate"].extend(dup["setl_id"].to_list())
        own = np.flatnonzero((export_a == m) & clean_a)
        if own.size:
            dup = out[int(own[int(arng.integers(0, own.size))])]
            add.append(dup)
            ids_by_kind["duplicate_in_file"].extend(dup["setl_id"].to_list())
        exports[m] = pl.concat([rows, *add]).sort("setl_id", maintain_order=True)
    counts["reexport_duplicate"] = len(ids_by_kind["reexport_duplicate"])
    counts["duplicate_in_file"] = len(ids_by_kind["duplicate_in_file"])
    return _City(persons, hh_ident, identities, exports, counts, ids_by_kind)


def _wrong_check(check: pl.Expr) -> pl.Expr:
    """A check character that is certainly wrong."""
    order = "10X98765432"
    return check.replace_strict(list(order), list(order[1:] + order[0]), return_dtype=pl.String)


# ---------------------------------------------------------------------------------------------
# Writers
# ---------------------------------------------------------------------------------------------


def _money_text(col: str) -> pl.Expr:
    text = fen_text(pl.col(col))
    return pl.when(pl.col("_bad_col") == col).then(pl.col("_bad_val")).otherwise(text).alias(col)


def _text_frame(rows: pl.DataFrame) -> pl.DataFrame:
    return rows.select(
        "setl_id",
        "mdtrt_id",
        "psn_no",
        "psn_name",
        "certno",
        "insutype",
        "med_type",
        pl.col("setl_time").dt.strftime("%Y-%m-%d %H:%M:%S"),
        *[_money_text(c) for c in MONEY],
        "insu_admdvs",
        pl.col("refd").cast(pl.String).alias("refd_setl_flag"),
        "init_setl_id",
        pl.col("vali").cast(pl.String).alias("vali_flag"),
        "fixmedins_name",
    )


def _write_csv(rows: pl.DataFrame, path: Path, shape: str) -> None:
    df = _text_frame(rows)
    if shape == "csv_setl_d":
        df = df.rename(SETL_D_NAMES)
    if shape == "csv_gb18030":
        path.write_bytes(df.write_csv(None, line_terminator="\n").encode("gb18030"))
        return
    with path.open("wb") as f:  # UTF-8 straight from polars, no Python string in between
        if shape == "csv_utf8_bom":
            f.write(b"\xef\xbb\xbf")
        df.write_csv(f, line_terminator="\n")


def _write_parquet(rows: pl.DataFrame, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    text = _text_frame(rows)
    arrays = {}
    for c in COLUMNS:  # through Arrow's own casts (text → decimal in C++, no Python strings)
        if c in MONEY:
            arrays[c] = text[c].to_arrow().cast(pa.string()).cast(pa.decimal128(16, 2))
        elif c == "setl_time":
            arrays[c] = pa.array(
                rows["setl_time"].cast(pl.Datetime("ms")).to_numpy(), pa.timestamp("ms")
            )
        elif c in ("refd_setl_flag", "vali_flag"):
            arrays[c] = pa.array(text[c].cast(pl.Int32).to_numpy(), pa.int32())
        elif c == "init_setl_id":  # real Parquet exports carry "" (not null) when absent
            arrays[c] = text[c].fill_null("").to_arrow().cast(pa.string())
        else:
            arrays[c] = text[c].to_arrow().cast(pa.string())
    pq.write_table(pa.table(arrays), path, compression="snappy")


def _write_xlsx(rows: pl.DataFrame, path: Path, year: int) -> None:
    import xlsxwriter

    wb = xlsxwriter.Workbook(
        str(path),
        {"constant_memory": True, "default_date_format": "yyyy-mm-dd hh:mm:ss"},
    )
    stamp = dt.datetime(year, 12, 31, 0, 0, 0)
    wb.set_properties({"created": stamp, "author": "povwatch synth"})
    ws = wb.add_worksheet("settlements")
    ws.write_row(0, 0, COLUMNS)
    frame = rows.select(
        "setl_id",
        "mdtrt_id",
        "psn_no",
        "psn_name",
        "certno",
        "insutype",
        "med_type",
        pl.col("setl_time").cast(pl.Datetime("us")),
        *[(pl.col(c) / 100).alias(c) for c in MONEY],
        "insu_admdvs",
        pl.col("refd").cast(pl.Int64).alias("refd_setl_flag"),
        "init_setl_id",
        pl.col("vali").cast(pl.Int64).alias("vali_flag"),
        "fixmedins_name",
    )
    bad = rows.select(pl.int_range(pl.len()).alias("r"), "_bad_col", "_bad_val").filter(
        pl.col("_bad_col").is_not_null()
    )
    patches = {r: (COLUMNS.index(c), v) for r, c, v in bad.iter_rows()}
    write_row = ws.write_row
    for r, row in enumerate(frame.iter_rows()):
        if r in patches:
            col, val = patches[r]
            row = row[:col] + (val,) + row[col + 1 :]
        write_row(r + 1, 0, row)
    wb.close()


def _write_registry(city: _City, landing: Path) -> list[Path]:
    persons = city.persons.sort("idx").select(
        "psn_no",
        "certno",
        "psn_name",
        "gend",
        "brdy",
        "hh_id",
        "insuplc_admdvs",
        "insutype",
        pl.col("rural").cast(pl.String),
    )
    p1 = landing / "persons" / "persons.csv"
    p2 = landing / "identities" / "identities.csv"
    for p in (p1, p2):
        p.parent.mkdir(parents=True, exist_ok=True)
    p1.write_bytes(persons.write_csv(None, line_terminator="\n").encode("utf-8"))
    p2.write_bytes(city.identities.write_csv(None, line_terminator="\n").encode("utf-8"))
    return [p1, p2]


def _write_income(landing: Path, year: int) -> Path:
    shift = year - 2024
    buf = io.StringIO()
    buf.write("admdvs,year,scope,amount,published_on\n")
    for admdvs, y, scope, amount, published in INCOME_ROWS:
        py = int(published[:4]) + shift
        buf.write(f"{admdvs},{y + shift},{scope},{amount},{py:04d}{published[4:]}\n")
    path = landing / "reference" / "income.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue().encode("utf-8"))
    return path


class _XlsxHelper:
    """Writes one XLSX export in a child interpreter while this process writes the rest.

    xlsxwriter is pure Python (about 3 s for a 23 000-row export), so on two cores a big city
    is written in about half the time. The child runs the very same :func:`_write_xlsx`, so the
    bytes do not depend on who wrote them. Small cities, single-core machines and any failure of
    the child fall back to writing in this process.
    """

    MIN_ROWS = 8_000  # below this, starting an interpreter costs more than it saves
    TIMEOUT = 600  # seconds

    def __init__(self, city: _City, paths: dict[int, Path], months: list[int], year: int) -> None:
        self.city, self.paths, self.year = city, paths, year
        self.delegated: list[int] = []
        self._proc = None
        self._tmp = None
        big = [m for m in months if city.exports[m].height >= self.MIN_ROWS]
        if len(months) >= 2 and big and (os.cpu_count() or 1) >= 2:
            self.delegated = [big[0]]

    def __enter__(self) -> _XlsxHelper:
        if not self.delegated:
            return self
        import subprocess
        import sys
        import tempfile

        m = self.delegated[0]
        try:
            self._tmp = tempfile.TemporaryDirectory(prefix="povwatch-synth-")
            ipc = Path(self._tmp.name) / "rows.arrow"
            self.city.exports[m].write_ipc(ipc)
            root = str(Path(__file__).resolve().parents[2])
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
            code = (
                "import sys; from pipeline.synth.city import _xlsx_child; "
                "_xlsx_child(sys.argv[1], sys.argv[2], int(sys.argv[3]))"
            )
            self._proc = subprocess.Popen(
                [sys.executable, "-c", code, str(ipc), str(self.paths[m]), str(self.year)],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        except Exception:  # noqa: BLE001 - any trouble: write it here instead
            self._abandon()
        return self

    def _abandon(self) -> None:
        self.delegated = []
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._proc is None:
            self._abandon()
            return
        proc, self._proc = self._proc, None
        if exc_type is not None:
            proc.kill()
            proc.wait()
            self._abandon()
            return
        try:
            proc.communicate(timeout=self.TIMEOUT)
        except Exception:  # noqa: BLE001 - a stuck child: write the file here
            proc.kill()
            proc.wait()
            proc.returncode = proc.returncode or 1
        m = self.delegated[0] if self.delegated else None
        self._abandon()
        if m is not None and (proc.returncode != 0 or not self.paths[m].is_file()):
            _write_xlsx(self.city.exports[m], self.paths[m], self.year)


def _xlsx_child(ipc: str, out: str, year: int) -> None:
    """Entry point of the child interpreter started by :class:`_XlsxHelper`."""
    _write_xlsx(pl.read_ipc(ipc), Path(out), year)


def generate_city(
    landing: Path, *, persons: int = 50_000, seed: int = 7, year: int = 2024
) -> SynthSummary:
    """(Re)create ``landing`` with a synthetic Jining: registry, identities, income, 12 exports."""
    if persons < 20:
        raise ValueError("persons must be at least 20")
    landing = Path(landing)
    for sub in ("persons", "identities", "reference", "settlements"):
        shutil.rmtree(landing / sub, ignore_errors=True)
    landing.mkdir(parents=True, exist_ok=True)
    city = _build(persons, seed, year)
    months = [f"{year:04d}-{m:02d}" for m in range(1, 13)]
    paths: dict[int, Path] = {}
    for m, month in enumerate(months, start=1):
        folder = landing / "settlements" / month
        folder.mkdir(parents=True, exist_ok=True)
        suffix = {"parquet": "parquet", "xlsx": "xlsx"}.get(SHAPES[(m - 1) % 6], "csv")
        paths[m] = folder / f"setl_{year:04d}{m:02d}.{suffix}"
    xlsx_months = [m for m in paths if SHAPES[(m - 1) % 6] == "xlsx"]
    with _XlsxHelper(city, paths, xlsx_months, year) as helper:
        files = _write_registry(city, landing)
        files.append(_write_income(landing, year))
        for m in range(1, 13):
            shape = SHAPES[(m - 1) % 6]
            if shape == "parquet":
                _write_parquet(city.exports[m], paths[m])
            elif shape != "xlsx":
                _write_csv(city.exports[m], paths[m], shape)
        for m in xlsx_months:
            if m not in helper.delegated:
                _write_xlsx(city.exports[m], paths[m], year)
    files.extend(paths[m] for m in range(1, 13))
    rows_by_month = {month: city.exports[m].height for m, month in enumerate(months, start=1)}
    return SynthSummary(
        landing=landing,
        persons=persons,
        households=int(city.persons["hh"].n_unique()),
        settlements=sum(rows_by_month.values()),
        files=files,
        months=months,
        anomalies=dict(city.anomalies),
        anomaly_ids={k: list(v) for k, v in city.anomaly_ids.items()},
        rows_by_month=rows_by_month,
    )
