"""The quarantine gate (contract: "A month whose quarantined share of rows exceeds the limit in
`expectations/` (default 5%) stops with a one-line reason naming the main quarantine reason
and column; nothing is published"): plain SQL, from the first month, counts by hand."""

from __future__ import annotations

import duckdb
import pytest

from pipeline.errors import PovwatchError
from pipeline.quality import quarantine
from pipeline.quality.gates import CheckResult, QualityBands, QualityGateError, gate
from pipeline.quality.quarantine import QuarantineLimits
from pipeline.store.warehouse import sql

FILE = "settlements/2024-03/setl_202403.csv"
LIMIT = QuarantineLimits()  # the contract's default: 5%


@pytest.fixture
def con():
    c = duckdb.connect()
    c.execute(sql("schema/warehouse"))
    c.execute(sql("schema/macros"))
    yield c
    c.close()


def staged(con, rows: list[tuple[str, str | None, str | None, str | None]], file=FILE) -> None:
    """(status, reason, column, raw certno) per row of one export file of 2024-03."""
    start = con.execute("select count(*) from stg_settlements").fetchall()[0][0]
    for i, (status, reason, column, cert) in enumerate(rows, start=start + 2):
        con.execute(
            "insert into stg_settlements (export_month, source_file, source_row, status, reason,"
            " reason_column) values ('2024-03', ?, ?, ?, ?, ?)",
            [file, i, status, reason, column],
        )
        con.execute(
            "insert into raw_settlements (export_month, source_file, source_row, certno) "
            "values ('2024-03', ?, ?, ?)",
            [file, i, cert],
        )


LOADED = ("loaded", None, None, "370811197001010012")
EXCEL = ("quarantined", "bad_certno", "certno", "3.70811E+17")


def test_default_limit_is_five_percent_in_expectations():
    assert QualityBands.load().quarantine == QuarantineLimits(
        max_share=0.05, reference_max_share=0.5
    )


def test_a_spreadsheet_mangled_export_stops_naming_reason_column_file_and_cause(con):
    # 19 of 20 rows have ids turned into numbers by a spreadsheet: 95% > 5%
    staged(con, [EXCEL] * 19 + [LOADED])
    with pytest.raises(PovwatchError) as err:
        quarantine.check_month(con, "2024-03", LIMIT)
    assert str(err.value) == (
        "bad_certno: 19 of 20 rows (95%) in setl_202403.csv column certno — resident ids "
        "look numeric: was the file saved through a spreadsheet? (2024-03: 95% of the "
        "export's rows quarantined, limit 5%)"
    )


def test_at_the_limit_the_month_runs_over_it_it_stops(con):
    # 1 of 20 = 5%: not over the limit (strictly greater stops)
    staged(con, [("quarantined", "amounts_mismatch", "psn_part_amt", None)] + [LOADED] * 19)
    quarantine.check_month(con, "2024-03", LIMIT)
    # 2 of 21 = 9.5%
    staged(con, [("quarantined", "amounts_mismatch", "psn_part_amt", None)])
    with pytest.raises(PovwatchError, match=r"^amounts_mismatch: 2 of 21 rows \(9\.5%\)"):
        quarantine.check_month(con, "2024-03", LIMIT)


def test_the_main_reason_is_the_largest_group_and_a_checksum_failure_says_so(con):
    staged(
        con,
        [("quarantined", "bad_certno", "certno", "370811197001010013")] * 3
        + [("quarantined", "unknown_psn", "psn_no", None)] * 2
        + [LOADED] * 5,
    )
    with pytest.raises(PovwatchError) as err:
        quarantine.check_month(con, "2024-03", LIMIT)
    msg = str(err.value)
    assert msg.startswith("bad_certno: 3 of 10 rows (30%) in setl_202403.csv column certno")
    assert "GB 11643 check character" in msg and "spreadsheet" not in msg
    assert "(2024-03: 50% of the export's rows quarantined, limit 5%)" in msg
    assert "370811" not in msg  # never a resident id


def test_the_limit_comes_from_the_bands_file(con, tmp_path, monkeypatch):
    staged(con, [EXCEL] * 3 + [LOADED] * 7)  # 30%
    bands = tmp_path / "bands.yaml"
    bands.write_text("quarantine:\n  max_share: 0.5\n")
    monkeypatch.setenv("POVWATCH_QUALITY_BANDS", str(bands))
    quarantine.check_month(con, "2024-03")
    bands.write_text("quarantine:\n  max_share: 0.25\n")
    with pytest.raises(PovwatchError, match="limit 25%"):
        quarantine.check_month(con, "2024-03")


def test_a_failed_cost_band_names_the_quarantine_as_its_cause(con):
    staged(con, [EXCEL] * 9 + [LOADED])
    cause = quarantine.cause(con, "2024-03")
    assert cause == (
        "9 of 10 rows of 2024-03 (90%) were quarantined, mostly bad_certno: 9 of 10 rows (90%) "
        "in setl_202403.csv column certno — resident ids look numeric: was the file saved "
        "through a spreadsheet?"
    )
    band = CheckResult(
        suite="stg_settlements",
        check="expect_column_sum_to_be_between(_medfee_loaded_fen)",
        success=False,
        observed="total medfee_sumamt of loaded rows 10.00 yuan outside ...",
    )
    with pytest.raises(QualityGateError) as err:
        gate([band], "2024-03", cause=cause)
    assert str(err.value).startswith(cause + "; so quality gate failed: stg_settlements 2024-03")


def test_no_cause_when_nothing_was_quarantined(con):
    staged(con, [LOADED] * 4)
    assert quarantine.cause(con, "2024-03") is None
    quarantine.check_month(con, "2024-03", LIMIT)


def _reference(con, kind: str, rows: int, rejects: list[tuple], name: str = "") -> None:
    file = f"{kind}/{name or kind}.csv"
    con.execute("insert into ref_files values (?, ?, 'x', ?, ?)", [kind, file, rows, len(rejects)])
    for i, (reason, column, numeric) in enumerate(rejects, start=2):
        con.execute(
            "insert into ref_rejects (kind, source_file, source_row, reason, reason_column, "
            "numeric_id) values (?, ?, ?, ?, ?, ?)",
            [kind, file, i, reason, column, numeric],
        )


def test_a_mostly_invalid_registry_stops_the_run(con):
    _reference(con, "persons", 10, [("bad_certno", "certno", True)] * 6)
    with pytest.raises(PovwatchError) as err:
        quarantine.check_reference(con, LIMIT)
    assert str(err.value) == (
        "bad_certno: 6 of 10 rows (60%) in persons.csv column certno — resident ids look "
        "numeric: was the file saved through a spreadsheet? (registry: 60% of the rows "
        "rejected, limit 50%)"
    )


def test_a_few_rejected_registry_rows_are_recorded_not_fatal(con):
    _reference(con, "persons", 10, [("bad_date", "brdy", False)] * 5)  # 50%: not over
    _reference(con, "identities", 4, [("bad_date", "begin_date", False)])
    quarantine.check_reference(con, LIMIT)
    # a second identities file, all unknown codes: 5 of 8 identity rows = 62.5% > 50%
    _reference(con, "identities", 4, [("unknown_identity", "identity", False)] * 4, "more")
    with pytest.raises(PovwatchError) as err:
        quarantine.check_reference(con, LIMIT)
    assert str(err.value).startswith(
        "unknown_identity: 4 of 4 rows (100%) in more.csv column identity — identity codes"
    )
    assert str(err.value).endswith("(identities: 62% of the rows rejected, limit 50%)")


def test_identities_of_persons_insured_elsewhere_do_not_count_against_the_file(con):
    # 民政's list names people the registry does not hold: recorded, not a broken file
    _reference(con, "persons", 10, [])
    _reference(con, "identities", 4, [("unknown_person", "certno", False)] * 3)
    quarantine.check_reference(con, LIMIT)
    # … but ids mangled by a spreadsheet are: 10 of 14 rows
    _reference(con, "identities", 10, [("bad_certno", "certno", True)] * 10, "excel")
    with pytest.raises(PovwatchError, match=r"^bad_certno: 10 of 10 rows \(100%\) in excel"):
        quarantine.check_reference(con, LIMIT)


def test_ids_stored_as_numbers_in_an_xlsx_are_named_as_such(con):
    # 370811196302090085 stored as a number comes back as 370811196302090112
    xlsx = "settlements/2024-03/setl_202403.xlsx"
    staged(con, [("quarantined", "bad_certno", "certno", "370811196302090112")] * 4, xlsx)
    with pytest.raises(PovwatchError, match="are they stored as numbers in the spreadsheet"):
        quarantine.check_month(con, "2024-03", LIMIT)
