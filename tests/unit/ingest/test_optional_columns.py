"""The optional hospital and diagnosis columns load from every export shape, or are absent."""

from __future__ import annotations

import polars as pl
import pytest
import xlsxwriter

from pipeline.ingest.load import SETTLEMENTS
from pipeline.ingest.readers import read_file

BASE = ["setl_id", "psn_no", "insutype", "med_type", "setl_time", "medfee_sumamt", "hifp_pay",
        "fund_pay_sumamt", "psn_pay"]  # fmt: skip
OPTIONAL = ["fixmedins_code", "fixmedins_name", "dise_codg", "dise_name"]
ROW = ["S1", "P1", "390", "21", "2024-01-05 10:00:00", "100.00", "60.00", "60.00", "40.00"]
EXTRA = ["H37081100001", "济宁市第一人民医院", "I63.900", "脑梗死"]


def _write(path, header, row):
    kind = path.suffix
    if kind == ".csv":
        enc = {"utf8.csv": "utf-8", "bom.csv": "utf-8-sig", "gbk.csv": "gb18030"}[
            path.name.split("_")[-1]
        ]
        path.write_text(",".join(header) + "\n" + ",".join(row) + "\n", encoding=enc)
    elif kind == ".parquet":
        pl.DataFrame([row], schema=header, orient="row").write_parquet(path)
    else:
        wb = xlsxwriter.Workbook(str(path))
        ws = wb.add_worksheet()
        ws.write_row(0, 0, header)
        ws.write_row(1, 0, row)
        wb.close()


SHAPES = ["s_utf8.csv", "s_bom.csv", "s_gbk.csv", "s.parquet", "s.xlsx"]


@pytest.mark.parametrize("name", SHAPES)
def test_hospital_and_diagnosis_are_kept(tmp_path, name):
    path = tmp_path / name
    _write(path, [*BASE, *OPTIONAL], [*ROW, *EXTRA])
    frame = read_file(path, SETTLEMENTS, tmp_path).frame
    assert frame.select(OPTIONAL).row(0) == tuple(EXTRA)
    assert frame["psn_part_amt"].to_list() == ["40.00"]  # the setl_d spelling psn_pay


@pytest.mark.parametrize("name", SHAPES)
def test_absent_columns_are_null_not_an_error(tmp_path, name):
    path = tmp_path / name
    _write(path, BASE, ROW)
    frame = read_file(path, SETTLEMENTS, tmp_path).frame
    assert frame.select(OPTIONAL).row(0) == (None, None, None, None)
