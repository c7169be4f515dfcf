"""Readers: every shape to the same text, money exactly as written (or to the fen)."""

from __future__ import annotations

import datetime as dt

import polars as pl
import xlsxwriter

from pipeline.ingest.load import SETTLEMENTS
from pipeline.ingest.readers import read_file

HEADER = "setl_id,psn_no,insutype,med_type,setl_time,medfee_sumamt,hifp_pay,fund_pay_sumamt,psn_pay"


def test_csv_money_is_taken_as_written_and_blank_records_are_not_rows(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text(
        HEADER + "\nS1,P1,390,11,2024-01-01 10:00:00,1e3,0,0,1e3\n,,,,,,,,\n\n"
        "S2,P1,390,11,2024-01-02 10:00:00,12.30,0.00,0.00,12.3\n",
        encoding="utf-8",
    )
    frame = read_file(path, SETTLEMENTS, tmp_path).frame
    assert frame["setl_id"].to_list() == ["S1", "S2"]
    assert frame["source_row"].to_list() == [2, 5]  # as a spreadsheet numbers them
    assert frame["medfee_sumamt"].to_list() == ["1e3", "12.30"]  # staging quarantines 1e3
    assert frame["psn_part_amt"].to_list() == ["1e3", "12.3"]  # setl_d spelling psn_pay


def test_spreadsheet_floats_become_exact_cents(tmp_path):
    path = tmp_path / "s.xlsx"
    wb = xlsxwriter.Workbook(str(path))
    ws = wb.add_worksheet()
    ws.write_row(0, 0, ["导出标题"])  # a title row above the header
    ws.write_row(1, 0, HEADER.split(","))
    # 0.1 + 0.2 is 0.30000000000000004 as a double: still 0.30 yuan exactly
    ws.write_row(
        2,
        0,
        [
            "S1",
            "P1",
            "390",
            "11",
            "2024-01-01 10:00:00",
            918.17,
            0.1 + 0.2,
            0.30000000000000004,
            12.345,
        ],
    )
    wb.close()
    frame = read_file(path, SETTLEMENTS, tmp_path).frame
    row = frame.row(0, named=True)
    assert (row["source_row"], row["medfee_sumamt"], row["hifp_pay"]) == (3, "918.17", "0.30")
    assert row["psn_part_amt"] == "12.345"  # not a whole fen: left for staging to quarantine


def test_parquet_float_money_and_timestamps(tmp_path):
    path = tmp_path / "s.parquet"
    pl.DataFrame(
        {
            "setl_id": ["S1"],
            "psn_no": ["P1"],
            "insutype": ["390"],
            "med_type": ["21"],
            "setl_time": [dt.datetime(2024, 1, 1, 10)],
            "medfee_sumamt": [2019.97],
            "hifp_pay": [1101.8],
            "fund_pay_sumamt": [1101.8],
            "psn_part_amt": [918.17],
        }
    ).with_columns(pl.col("setl_time").cast(pl.Datetime("ms"))).write_parquet(path)
    row = read_file(path, SETTLEMENTS, tmp_path).frame.row(0, named=True)
    assert (row["setl_time"], row["medfee_sumamt"], row["hifp_pay"]) == (
        "2024-01-01 10:00:00",
        "2019.97",
        "1101.80",
    )


def test_parquet_boolean_flags_are_0_and_1(tmp_path):
    # contract: vali_flag and refd_setl_flag are 0/1; a typed export may store them as
    # booleans: true is 1, false 0 (not the text "true", which staging would quarantine)
    path = tmp_path / "s.parquet"
    pl.DataFrame(
        {
            "setl_id": ["S1", "S2"],
            "psn_no": ["P1", "P1"],
            "insutype": ["390", "390"],
            "med_type": ["21", "21"],
            "setl_time": ["2024-01-01 10:00:00", "2024-01-02 10:00:00"],
            "medfee_sumamt": ["1.00", "-1.00"],
            "hifp_pay": ["0.00", "0.00"],
            "fund_pay_sumamt": ["0.00", "0.00"],
            "psn_part_amt": ["1.00", "-1.00"],
            "vali_flag": [True, False],
            "refd_setl_flag": [False, True],
        }
    ).write_parquet(path)
    frame = read_file(path, SETTLEMENTS, tmp_path).frame
    assert frame["vali_flag"].to_list() == ["1", "0"]
    assert frame["refd_setl_flag"].to_list() == ["0", "1"]


def test_csv_title_rows_above_the_header_are_skipped_and_rows_keep_their_numbers(tmp_path):
    # A spreadsheet saved as CSV: a title and a blank-ish line above the header (as the XLSX
    # reader allows); rows are numbered as the spreadsheet shows them (the header is row 3).
    path = tmp_path / "s.csv"
    path.write_text(
        "某市医保结算明细导出\n导出日期：2024-03-31,,\n" + HEADER + "\n"
        "S1,P1,390,11,2024-01-01 10:00:00,12.30,0.00,0.00,12.30\n"
        "S2,P1,390,11,2024-01-02 10:00:00,1.00,0.00,0.00,1.00\n",
        encoding="gb18030",
    )
    frame = read_file(path, SETTLEMENTS, tmp_path).frame
    assert frame["setl_id"].to_list() == ["S1", "S2"]
    assert frame["source_row"].to_list() == [4, 5]
    assert frame["medfee_sumamt"].to_list() == ["12.30", "1.00"]
