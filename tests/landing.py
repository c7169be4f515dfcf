"""Build small landing folders by hand for tests: a few persons, a few settlements.

Settlement rows are given by their burden; the other amounts are filled in so they add up
(psn_part_amt = medfee_sumamt − fund_pay_sumamt − hosp_part_amt).
"""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

from pipeline.resident_id import check_char

SETTLEMENT_HEADER = [
    "setl_id",
    "mdtrt_id",
    "psn_no",
    "certno",
    "insutype",
    "med_type",
    "setl_time",
    "medfee_sumamt",
    "hifp_pay",
    "hifmi_pay",
    "maf_pay",
    "fund_pay_sumamt",
    "psn_part_amt",
    "hosp_part_amt",
    "insu_admdvs",
    "refd_setl_flag",
    "init_setl_id",
    "vali_flag",
]

# Shandong / Hebei income figures as in ../shared/examples (published dates matter).
INCOME = [
    ("370000", 2021, "all", "35705", "2022-01-20"),
    ("370000", 2022, "all", "37560", "2023-01-20"),
    ("370000", 2023, "all", "39890", "2024-02-15"),
    ("130000", 2022, "rural", "19364", "2023-01-18"),
    ("130000", 2023, "rural", "20688", "2024-03-10"),
    ("220000", 2023, "all", "29797", "2024-02-01"),
]


def certno(region: str, birth: str, seq: int) -> str:
    first17 = f"{region}{birth}{seq:03d}"
    return first17 + check_char(first17)


def person(
    psn_no: str,
    region: str = "370811",
    *,
    hh: str | None = None,
    insutype="390",
    rural="1",
    seq: int = 1,
) -> dict:
    return {
        "psn_no": psn_no,
        "certno": certno(region, "19700101", seq),
        "psn_name": "张三",
        "gend": "1",
        "brdy": "1970-01-01",
        "hh_id": hh or f"H{psn_no}",
        "insuplc_admdvs": region,
        "insutype": insutype,
        "rural": rural,
    }


def settlement(
    setl_id: str,
    psn: dict,
    when: str,
    burden: str,
    *,
    maf: str = "0.00",
    reversal_of: str | None = None,
    vali: str = "1",
    med_type: str = "21",
) -> dict:
    """A settlement whose personal burden (psn_part_amt + maf_pay) is ``burden`` yuan."""
    b = Decimal(burden)
    maf_d = Decimal(maf)
    part = b - maf_d
    sign = -1 if b < 0 else 1
    hifp = Decimal(sign * 1000)
    fund = hifp + maf_d
    total = fund + part
    return {
        "setl_id": setl_id,
        "mdtrt_id": "M" + setl_id,
        "psn_no": psn["psn_no"],
        "certno": psn["certno"],
        "insutype": psn["insutype"],
        "med_type": med_type,
        "setl_time": when,
        "medfee_sumamt": f"{total:.2f}",
        "hifp_pay": f"{hifp:.2f}",
        "hifmi_pay": "0.00",
        "maf_pay": f"{maf_d:.2f}",
        "fund_pay_sumamt": f"{fund:.2f}",
        "psn_part_amt": f"{part:.2f}",
        "hosp_part_amt": "0.00",
        "insu_admdvs": psn["insuplc_admdvs"],
        "refd_setl_flag": "1" if reversal_of else "0",
        "init_setl_id": reversal_of or "",
        "vali_flag": vali,
    }


def write_csv(path: Path, header: list[str], rows: list[dict], encoding="utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding=encoding) as fh:
        w = csv.DictWriter(fh, fieldnames=header, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return path


def make_landing(
    root: Path,
    persons: list[dict],
    settlements: dict[str, list[dict]],
    identities: list[tuple] = (),
    income: list[tuple] = INCOME,
) -> Path:
    """identities: (certno, identity, begin_date, end_date); income: INCOME-shaped tuples."""
    write_csv(root / "persons" / "persons.csv", list(person("x").keys()), persons)
    write_csv(
        root / "identities" / "identities.csv",
        ["certno", "identity", "begin_date", "end_date", "source_dept"],
        [
            {
                "certno": c,
                "identity": i,
                "begin_date": b,
                "end_date": e or "",
                "source_dept": "civil_affairs",
            }
            for c, i, b, e in identities
        ],
    )
    write_csv(
        root / "reference" / "income.csv",
        ["admdvs", "year", "scope", "amount", "published_on"],
        [
            dict(zip(["admdvs", "year", "scope", "amount", "published_on"], r, strict=True))
            for r in income
        ],
    )
    for month, rows in settlements.items():
        write_csv(root / "settlements" / month / f"setl_{month}.csv", SETTLEMENT_HEADER, rows)
    return root


def lenient_quarantine_gate(folder: Path) -> Path:
    """A quality-bands file whose quarantine gate never stops, for tests of single bad rows
    in tiny exports (one quarantined row of five is 20%, over the contract's 5% limit).
    Use: ``monkeypatch.setenv("POVWATCH_QUALITY_BANDS", str(lenient_quarantine_gate(tmp)))``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "bands-lenient.yaml"
    path.write_text("quarantine:\n  max_share: 1.0\n  reference_max_share: 1.0\n")
    return path


def run_months(work: Path, months: list, name: str = "w.duckdb") -> Path:
    """Run ``compute_month`` for ``months`` in order on ``work/landing`` (gates off, quiet),
    each month from the stores of the month before; returns the warehouse file."""
    import pytest

    from pipeline.run import compute_month
    from pipeline.settings import Settings

    settings = Settings(
        landing=work / "landing", db=work / name, outbox=work / "outbox", quiet=True
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POVWATCH_QUALITY", "off")
        for m in months:
            compute_month(m, settings)
    return settings.db
