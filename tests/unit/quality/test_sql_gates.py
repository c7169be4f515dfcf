"""The gates evaluated in SQL say exactly what Great Expectations' pandas engine says.

Each case plants one kind of failure (or none) in a table built with the real schema, then
validates it twice: in DuckDB (``validate_frame``, the run's path) and through GX on the same
rows copied to pandas (``validate_frame_gx``). Every check's success and observation must be
the same, and so the one-line message of the gate.
"""

from __future__ import annotations

import duckdb
import pytest

from pipeline.errors import PovwatchError
from pipeline.quality import evaluate as in_sql
from pipeline.quality import gates as quality
from pipeline.quality.evaluate import Frame, evaluate
from pipeline.quality.gates import (
    Band,
    QualityGateError,
    band_limits,
    gate,
    load_suite,
    read_frame,
    reference_results,
    validate_frame,
    validate_frame_gx,
)
from pipeline.store.warehouse import connect, sql

MONTH = "2024-05"

GOOD = {
    "stg_settlements": """
        insert into stg_settlements (export_month, source_file, source_row, setl_id, psn_no,
            insutype, med_type, med_class, setl_time, cost_year, medfee_sumamt, fund_pay_sumamt,
            psn_part_amt, hosp_part_amt, maf_pay, refd_setl_flag, status, reason)
        select '2024-05', 'settlements_202405.csv', i::int + 2, 'S' || i, 'P' || (i % 7),
            '390', '11', 'outpatient', timestamp '2024-05-03 09:00:00' + to_minutes(i::bigint),
            2024, 10000 + i, 6000, 4000 + i, 0, 0, 0,
            case when i % 9 = 8 then 'quarantined' else 'loaded' end,
            case when i % 9 = 8 then 'BAD_AMOUNT' end
        from range(40) t(i);
        -- an earlier month, never in the frame
        insert into stg_settlements (export_month, source_file, source_row, status)
        values ('2024-04', 'settlements_202404.csv', 2, 'loaded');
    """,
    "ref_persons": """
        insert into ref_persons
        select 'P' || i, '370811199001011234', '张三', '1', '1990-01-01', 'H' || (i // 2),
            '370811', '390', i % 2, 'persons.csv', i::int + 2
        from range(30) t(i);
    """,
    "ref_identities": """
        insert into ref_identities
        select 'P' || i, 'monitor_edge', date '2022-09-01' + i::int,
            case when i % 3 = 0 then null else date '2023-09-01' end, '乡村振兴',
            'identities.csv', i::int + 2
        from range(12) t(i);
    """,
    "ref_income": """
        insert into ref_income
        select '37' || lpad((i * 100)::varchar, 4, '0'), 2023, 'all', 3756000 + i,
            date '2024-02-01', 'income.csv', i::int + 2
        from range(5) t(i);
    """,
    "mart_warnings": """
        insert into mart_warnings
        select '2024-05', 'P' || i, 'H' || i, '370811', 'relapse', 'SD-RELAPSE',
            2000000 + i, 1994500, case when i % 2 = 0 then '2024-05' else '2024-03' end,
            case when i % 2 = 0 then 'new' else 'continuing' end, 'shandong-jining', '2024',
            '370000', 2023, 'all', 'monitor_edge'
        from range(6) t(i);
    """,
}

# (table, what is planted): one case per kind of expectation, and a few of each wording.
CASES = [
    ("stg_settlements", ""),
    ("stg_settlements", "update stg_settlements set setl_id = 'S3' where source_row = 9"),
    ("stg_settlements", "update stg_settlements set reason = null where status = 'quarantined'"),
    ("stg_settlements", "update stg_settlements set reason = 'X' where source_row in (3, 5)"),
    ("stg_settlements", "update stg_settlements set psn_no = null where source_row > 30"),
    ("stg_settlements", "update stg_settlements set setl_time = null where source_row = 4"),
    ("stg_settlements", "update stg_settlements set medfee_sumamt = null where source_row = 4"),
    ("stg_settlements", "update stg_settlements set medfee_sumamt = -5 where source_row = 6"),
    ("stg_settlements", "update stg_settlements set psn_part_amt = 0 where source_row < 6"),
    ("stg_settlements", "update stg_settlements set med_class = 'dental' where source_row = 7"),
    ("stg_settlements", "update stg_settlements set refd_setl_flag = 3 where source_row = 7"),
    ("stg_settlements", "update stg_settlements set status = 'lost' where source_row = 7"),
    ("stg_settlements", "update stg_settlements set setl_id = null"),
    (
        "stg_settlements",
        "insert into stg_settlements (export_month, source_file, source_row, status, reason) "
        "values ('2024-05', 'settlements_202405.csv', 2, 'skipped', 'REPEAT')",
    ),
    ("stg_settlements", "delete from stg_settlements where export_month = '2024-05'"),
    ("ref_persons", ""),
    ("ref_persons", "update ref_persons set psn_no = 'P1' where psn_no in ('P2', 'P3')"),
    ("ref_persons", "update ref_persons set insuplc_admdvs = '37081' where source_row = 5"),
    ("ref_persons", "update ref_persons set rural = 2 where source_row = 5"),
    ("ref_persons", "update ref_persons set hh_id = null where source_row = 5"),
    ("ref_persons", "update ref_persons set psn_no = null where source_row = 5"),
    ("ref_persons", "delete from ref_persons"),
    ("ref_identities", ""),
    (
        "ref_identities",
        "update ref_identities set end_date = date '2020-01-01' where psn_no = 'P4'",
    ),
    ("ref_identities", "update ref_identities set identity = 'poor' where psn_no = 'P4'"),
    ("ref_identities", "update ref_identities set begin_date = null where psn_no = 'P4'"),
    ("ref_income", ""),
    ("ref_income", "update ref_income set admdvs = '370000'"),
    ("ref_income", "update ref_income set amount_fen = 0 where source_row = 3"),
    ("ref_income", "update ref_income set scope = 'town', admdvs = 'x' where source_row = 3"),
    ("ref_income", "update ref_income set published_on = null where source_row = 3"),
    ("ref_income", "delete from ref_income"),
    ("mart_warnings", ""),
    ("mart_warnings", "insert into mart_warnings select * from mart_warnings where psn_no = 'P2'"),
    (
        "mart_warnings",
        "update mart_warnings set burden_ytd_fen = threshold_fen where psn_no = 'P1'",
    ),
    ("mart_warnings", "update mart_warnings set first_month = '2024-07' where psn_no = 'P3'"),
    ("mart_warnings", "update mart_warnings set first_month = '2023-12' where psn_no = 'P3'"),
    ("mart_warnings", "update mart_warnings set status = 'new' where psn_no = 'P3'"),
    ("mart_warnings", "update mart_warnings set first_month = '2024-5' where psn_no = 'P3'"),
    ("mart_warnings", "update mart_warnings set hh_id = null, admdvs = null where psn_no = 'P0'"),
    ("mart_warnings", "update mart_warnings set income_scope = 'town', warning_type = 'x'"),
    ("mart_warnings", "update mart_warnings set threshold_fen = 0 where psn_no = 'P5'"),
    ("mart_warnings", "delete from mart_warnings"),
]


@pytest.fixture
def con():
    c = duckdb.connect()
    c.execute(sql("schema/warehouse"))
    c.execute(sql("schema/macros"))
    for script in GOOD.values():
        c.execute(script)
    yield c
    c.close()


def _both(table: str, frame: Frame, limits=None):
    in_sql = validate_frame(table, frame, limits)
    in_gx = validate_frame_gx(table, frame.df(), limits)
    return in_sql, in_gx


@pytest.mark.parametrize(("table", "plant"), CASES)
def test_sql_gates_say_what_gx_says(con, table, plant):
    if plant:
        con.execute(plant)
    month = MONTH if table in ("stg_settlements", "mart_warnings") else None
    in_sql, in_gx = _both(table, read_frame(con, table, month))
    assert [(r.check, r.success, r.observed) for r in in_sql] == [
        (r.check, r.success, r.observed) for r in in_gx
    ]
    assert in_sql == in_gx
    # Emptied: only the suites that need a row fail (a month may have no warnings).
    planted = plant.startswith(("update", "insert")) or table in ("ref_persons", "ref_income")
    assert all(r.success for r in in_sql) is not (bool(plant) and planted), "failure caught"

    def message(results):
        with pytest.raises(QualityGateError) as err:
            gate(results, MONTH)
        return str(err.value)

    if not all(r.success for r in in_sql):
        assert message(in_sql) == message(in_gx)
        assert "\n" not in message(in_sql)


def test_bands_in_sql_say_what_gx_says(con):
    # Rows 40 → a band 0.5×..2.0× of a median of 100 rows (50..200) fails the row count;
    # the loaded total 36 × 10 000 + (0 + … + 39) − (8 + 17 + 26 + 35) = 360 694 fen is within
    # 0.5×..2.0× of 300 000 fen.
    limits = {
        "row_count": band_limits([100, 90, 110], Band(low=0.5, high=2.0)),
        "medfee_loaded": band_limits([300_000, 250_000, 320_000], Band(low=0.5, high=2.0)),
    }
    in_sql, in_gx = _both("stg_settlements", read_frame(con, "stg_settlements", MONTH), limits)
    assert in_sql == in_gx
    assert not in_sql[0].success
    assert in_sql[0].observed == (
        "row count 40 outside 50..200 (0.5×..2.0× median of 3 previous months)"
    )
    assert in_sql[1].success and in_sql[1].observed.startswith(
        "total medfee_sumamt of loaded rows 3 606.94 yuan within 1 500.00..6 000.00 yuan"
    )


def test_a_missing_column_fails_as_in_gx(con):
    con.execute("create table narrow as select * exclude (reason, setl_id) from stg_settlements")
    frame = Frame(con, "select * from narrow where export_month = ?", [MONTH], "source_row")
    in_sql, in_gx = _both("stg_settlements", frame)
    assert in_sql == in_gx
    assert in_sql[0].observed == "missing columns: reason, setl_id"


def test_the_month_is_never_copied_to_pandas(con, monkeypatch):
    # The run's path reads counts and at most three rows: a frame turned into pandas fails.
    def no_pandas(self):
        raise AssertionError("pandas copy")

    monkeypatch.setattr(Frame, "df", no_pandas)
    monkeypatch.setattr(duckdb.DuckDBPyConnection, "df", no_pandas)
    monkeypatch.setattr(duckdb.DuckDBPyRelation, "df", no_pandas)
    con.execute("update stg_settlements set setl_id = 'S3' where source_row = 9")
    results = validate_frame("stg_settlements", read_frame(con, "stg_settlements", MONTH))
    (failed,) = [r for r in results if not r.success]
    assert failed.observed == (
        "2 of 36 rows unexpected, e.g. settlements_202405.csv row 5 (values S3, S3)"
    )


def test_an_expectation_the_sql_gates_cannot_evaluate_stops(con):
    frame = read_frame(con, "ref_income")
    spec = {"type": "expect_column_kl_divergence_to_be_less_than", "kwargs": {"column": "year"}}
    with pytest.raises(PovwatchError, match="expect_column_kl_divergence_to_be_less_than"):
        evaluate(frame, [(0, spec)], {}, [])
    spec = {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "y", "mostly": 0.9}}
    with pytest.raises(PovwatchError, match="mostly"):
        evaluate(frame, [(0, spec)], {}, [])


def test_gx_is_not_imported_by_the_sql_gates(con, monkeypatch):
    monkeypatch.setattr(quality, "_gx", lambda: pytest.fail("GX on the run's path"))
    results = validate_frame("mart_warnings", read_frame(con, "mart_warnings", MONTH))
    assert results and all(r.success for r in results)


def test_unchanged_reference_tables_are_not_evaluated_again(tmp_path, monkeypatch):
    # The loader's digest of the reference inputs is on record: the first month evaluates the
    # reference suites, a later one shows the stored results without reading the tables.
    con = connect(tmp_path / "w.duckdb")
    con.execute(GOOD["ref_persons"])
    con.execute("insert into ref_state values ('digest-1')")
    first = reference_results(con, "ref_persons")
    assert len(first) == len(load_suite("ref_persons")["expectations"])
    assert all(r.success for r in first)
    monkeypatch.setattr(in_sql, "evaluate", lambda *a: pytest.fail("evaluated again"))
    assert reference_results(con, "ref_persons") == first
    con.execute("update ref_state set inputs_digest = 'digest-2'")
    with pytest.raises(pytest.fail.Exception, match="evaluated again"):
        reference_results(con, "ref_persons")
