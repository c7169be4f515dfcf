"""Every label a person reads, in one place (Chinese for departments, English for logs)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import cache, cached_property
from pathlib import Path

import polars as pl

from pipeline.errors import PovwatchError

WARNING_TYPES = {"relapse": "因病返贫预警", "impoverish": "因病致贫预警"}
STATUSES = {"new": "新增", "continuing": "持续"}
DEPARTMENTS = {"civil_affairs": "民政部门", "rural_revitalization": "乡村振兴部门"}
IDENTITIES = {
    "tekun": "特困人员",
    "orphan": "孤儿/事实无人抚养儿童",
    "dibao": "低保对象",
    "fanpin": "返贫致贫人口",
    "dibao_edge": "低保边缘家庭成员",
    "monitor_unstable": "脱贫不稳定户",
    "monitor_edge": "边缘易致贫户",
    "monitor_sudden": "突发严重困难户",
    "tuopin": "脱贫人口",
    "illness_poor": "因病致贫重病患者",
    "expense_poor": "支出型困难家庭中的重病患者",
    "ordinary": "普通参保人员",
}
INSUTYPES = {"310": "职工基本医疗保险", "390": "城乡居民基本医疗保险"}

# Names of China's administrative divisions (province, prefecture, county level) from the
# Ministry of Civil Affairs' official code list, shipped as data: policies/codes/admdvs.csv
# (source and date in its header). A code missing from it (e.g. one abolished before that
# date) is shown as the code itself.
ADMDVS_AS_OF = "2024-12-31"
_ADMDVS_SCHEMA = {
    "code": pl.String,
    "name": pl.String,
    "level": pl.String,
    "prefecture": pl.String,
    "province": pl.String,
}


def _admdvs_file() -> Path:
    here = Path(__file__).resolve().parent
    for folder in (here.parent / "policies", here / "_policies"):  # checkout, then wheel
        path = folder / "codes" / "admdvs.csv"
        if path.is_file():
            return path
    raise PovwatchError("policies/codes/admdvs.csv (the administrative division codes) not found")


@cache
def admdvs_table() -> pl.DataFrame:
    """One row per division code: ``code, name, level, prefecture, province``."""
    return pl.read_csv(_admdvs_file(), comment_prefix="#", schema=_ADMDVS_SCHEMA)


def with_admdvs_name(
    frame: pl.DataFrame, code: str = "admdvs", name: str = "county"
) -> pl.DataFrame:
    """``frame`` with a ``name`` column: the division name of ``code`` (a join; the code itself
    when the list does not know it). Row order is kept."""
    names = admdvs_table().select(pl.col("code").alias(code), pl.col("name").alias(name))
    return frame.join(names, on=code, how="left", maintain_order="left").with_columns(
        pl.col(name).fill_null(pl.col(code))
    )


def division_name(prefix: str) -> str:
    """The name of a 2-, 4- or 6-digit admdvs prefix (province, prefecture, county)."""
    code = prefix.ljust(6, "0")
    hit = admdvs_table().filter(pl.col("code") == code)
    return hit["name"][0] if hit.height else prefix


class _CountyNames(Mapping[str, str]):
    """``COUNTIES[code]``: a division's name by its 6-digit code, read from the table on
    first use (for single lookups; frames use ``with_admdvs_name``)."""

    @cached_property
    def _names(self) -> dict[str, str]:
        table = admdvs_table()
        return dict(zip(table["code"].to_list(), table["name"].to_list(), strict=True))

    def __getitem__(self, code: str) -> str:
        return self._names[code]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


COUNTIES: Mapping[str, str] = _CountyNames()
