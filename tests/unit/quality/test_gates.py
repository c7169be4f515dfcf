"""Batch quality gates: the suites as data, the band arithmetic, mart_warnings failures.

GX is imported once per test session (``pipeline.quality.gates._gx()`` caches it); the tests that
do not validate anything never import it.
"""

from __future__ import annotations

import json

import duckdb
import pytest

from pipeline.errors import PovwatchError
from pipeline.quality import gates as quality
from pipeline.quality.gates import (
    SUITES,
    Band,
    CheckResult,
    QualityBands,
    QualityGateError,
    band_limits,
    check_outputs,
    load_suite,
    month_bands,
    store_results,
    summary_line,
)
from pipeline.store.warehouse import resource_dir, sql

EXPECTATIONS = resource_dir("expectations")


@pytest.fixture
def con():
    """An in-memory warehouse with the real schema."""
    c = duckdb.connect()
    c.execute(sql("schema/warehouse"))
    c.execute(sql("schema/macros"))
    yield c
    c.close()


def _table_columns(con, table: str) -> set[str]:
    return {r[0] for r in con.sql(f"describe {table}").fetchall()}


def _referenced_columns(spec: dict) -> set[str]:
    kwargs = spec["kwargs"]
    cols = {kwargs.get(k) for k in ("column", "column_A", "column_B")} - {None}
    cols |= set(kwargs.get("column_list") or []) | set(kwargs.get("column_set") or [])
    cond = kwargs.get("row_condition")
    stack = [cond] if cond else []
    while stack:
        c = stack.pop()
        stack.extend(c.get("conditions", []))
        if "column" in c:
            cols.add(c["column"]["name"])
    return cols


# --------------------------------------------------------------------------- suites as data


def test_one_suite_file_per_guarded_table_named_for_it():
    files = {p.stem for p in EXPECTATIONS.glob("*.json")}
    assert files == set(SUITES)
    for name in SUITES:
        data = json.loads((EXPECTATIONS / f"{name}.json").read_text(encoding="utf-8"))
        assert data["name"] == name
        assert data["expectations"], name
        assert all(e["type"].startswith("expect_") for e in data["expectations"])


@pytest.mark.parametrize("name", SUITES)
def test_suites_name_real_columns_of_the_warehouse(con, name):
    # Every column a suite names is a column of the table in sql/schema/warehouse.sql, or a
    # computed column (``_…``) that the suite documents and the runner's frame produces.
    data = load_suite(name)
    table = _table_columns(con, name)
    computed = set(data["meta"].get("computed_columns", {}))
    month = "2024-05" if name in ("stg_settlements", "mart_warnings") else None
    frame_columns = set(quality.read_frame(con, name, month).columns)
    assert computed <= frame_columns
    for spec in data["expectations"]:
        for col in _referenced_columns(spec):
            if col.startswith("_"):
                assert col in computed, (name, spec["type"], col)
            else:
                assert col in table, (name, spec["type"], col)
                assert col in frame_columns, (name, spec["type"], col)


def test_suites_never_read_personal_data(con):
    # Resident ids, names and birth dates never enter a frame, so no message can carry them.
    for name in SUITES:
        month = "2024-05" if name in ("stg_settlements", "mart_warnings") else None
        columns = set(quality.read_frame(con, name, month).columns)
        assert not columns & {"certno", "psn_name", "brdy"}, name


def test_suites_hold_the_contract_value_sets():
    def value_set(name, column):
        (spec,) = [
            e
            for e in load_suite(name)["expectations"]
            if e["type"] == "expect_column_values_to_be_in_set" and e["kwargs"]["column"] == column
        ]
        return set(spec["kwargs"]["value_set"])

    assert value_set("stg_settlements", "status") == {
        "loaded",
        "duplicate",
        "skipped",
        "quarantined",
    }
    assert value_set("mart_warnings", "warning_type") == {"relapse", "impoverish"}
    assert value_set("mart_warnings", "status") == {"new", "continuing"}
    assert value_set("ref_income", "scope") == {"all", "urban", "rural"}
    assert value_set("mart_warnings", "income_scope") == {"all", "urban", "rural"}


@pytest.mark.parametrize("name", SUITES)
def test_suite_json_round_trips_through_gx(name):
    # The files are GX 1.x ExpectationSuite serialisation: loading and dumping gives them back.
    gx = quality._gx().gx
    data = load_suite(name)
    suite = gx.ExpectationSuite(**data)
    assert len(suite.expectations) == len(data["expectations"])
    assert suite.to_json_dict() == data


# --------------------------------------------------------------------------- bands


def test_band_is_low_and_high_times_the_median_of_previous_months():
    # median(100, 120, 110, 90) = (100 + 110) / 2 = 105 → 0.5 × 105 = 52.5, 2.0 × 105 = 210
    lim = band_limits([100, 120, 110, 90], Band(low=0.5, high=2.0))
    assert (lim.low, lim.high, lim.median, lim.months) == (52.5, 210.0, 105, 4)


def test_bands_need_three_previous_months_and_enough_rows():
    bands = QualityBands()
    two = [("2024-03", 100, 5_000), ("2024-02", 120, 6_000)]
    assert month_bands(two, bands) == {}
    three = [*two, ("2024-01", 110, 7_000)]
    lim = month_bands(three, bands)
    # rows: median 110 → 0.5 × 110 = 55 .. 2.0 × 110 = 220; the loaded total waits for a
    # median of 10 000 rows (heavy-tailed costs), so it has no band here.
    assert (lim["row_count"].low, lim["row_count"].high) == (55.0, 220.0)
    assert "medfee_loaded" not in lim
    big = [("2024-03", 20_000, 5_000), ("2024-02", 24_000, 6_000), ("2024-01", 22_000, 7_000)]
    # loaded medfee: median 6 000 fen → 3 000 .. 12 000
    lim = month_bands(big, bands)
    assert (lim["medfee_loaded"].low, lim["medfee_loaded"].high) == (3000.0, 12000.0)
    tiny = [("2024-03", 3, 1), ("2024-02", 4, 1), ("2024-01", 2, 1)]
    assert month_bands(tiny, bands) == {}  # median 3 rows < 50


def test_band_parameters_come_from_the_data_file_or_the_environment(tmp_path, monkeypatch):
    default = QualityBands.load()
    assert default == QualityBands()  # bands.yaml holds the documented defaults
    custom = tmp_path / "bands.yaml"
    custom.write_text("previous_months: 4\nrow_count: {low: 0.8, high: 1.25}\n", encoding="utf-8")
    monkeypatch.setenv("POVWATCH_QUALITY_BANDS", str(custom))
    bands = QualityBands.load()
    assert bands.previous_months == 4
    assert (bands.row_count.low, bands.row_count.high) == (0.8, 1.25)
    assert bands.row_count.min_median_rows == default.row_count.min_median_rows  # kept
    assert bands.medfee_loaded == default.medfee_loaded


def test_a_bad_bands_file_stops_with_its_name_and_key(tmp_path):
    bad = tmp_path / "bands.yaml"
    bad.write_text("row_count: {low: 2.0, high: 0.5}\n", encoding="utf-8")
    with pytest.raises(PovwatchError, match=r"bands\.yaml: invalid quality bands at row_count"):
        QualityBands.load(bad)
    bad.write_text("row_cuont: {low: 0.5, high: 2.0}\n", encoding="utf-8")
    with pytest.raises(PovwatchError, match=r"at row_cuont"):
        QualityBands.load(bad)


# --------------------------------------------------------------------------- mart_warnings

WARNING = {
    "month": "2024-05",
    "psn_no": "P1",
    "hh_id": "H1",
    "admdvs": "370811",
    "warning_type": "relapse",
    "rule_id": "SD-RELAPSE",
    "burden_ytd_fen": 2_000_000,
    "threshold_fen": 1_994_500,
    "first_month": "2024-03",
    "status": "continuing",
    "policy_id": "shandong-jining",
    "policy_version": "2024",
    "income_admdvs": "370000",
    "income_year": 2023,
    "income_scope": "all",
    "identities": "monitor_edge",
}


def _insert_warnings(con, rows: list[dict]) -> None:
    cols = list(WARNING)
    con.executemany(
        f"insert into mart_warnings ({', '.join(cols)}) values ({', '.join('?' * len(cols))})",
        [[r[c] for c in cols] for r in rows],
    )


def test_good_warnings_pass(con):
    _insert_warnings(
        con,
        [
            WARNING,
            {**WARNING, "warning_type": "impoverish", "first_month": "2024-05", "status": "new"},
            {**WARNING, "psn_no": "P2", "hh_id": "H2"},
        ],
    )
    results = check_outputs(con, "2024-05", "run-1")
    assert results and all(r.success for r in results)
    assert all(r.level == "batch" and r.suite == "mart_warnings" for r in results)
    assert (
        summary_line(results)
        == f"quality: {len(results)}/{len(results)} expectations passed (1 suites)"
    )


def test_a_month_without_warnings_passes(con):
    results = check_outputs(con, "2024-05", "run-1")
    assert all(r.success for r in results)


def test_a_duplicate_warning_fails_naming_the_expectation(con):
    _insert_warnings(con, [WARNING, WARNING])
    with pytest.raises(QualityGateError) as err:
        check_outputs(con, "2024-05", "run-1")
    message = str(err.value)
    assert message.startswith("quality gate failed: mart_warnings 2024-05: ")
    assert "expect_compound_columns_to_be_unique" in message
    assert "2 of 2 rows unexpected" in message and "psn_no P1" in message
    assert "\n" not in message
    failed = [r for r in err.value.results if not r.success]
    assert [r.check for r in failed] == [
        "expect_compound_columns_to_be_unique(month, psn_no, warning_type)"
    ]


def test_burden_not_above_threshold_fails_naming_the_expectation(con):
    # Flagged only when burden_ytd > threshold, strictly: equal is not a warning.
    _insert_warnings(con, [{**WARNING, "burden_ytd_fen": 1_994_500}])
    with pytest.raises(QualityGateError) as err:
        check_outputs(con, "2024-05", "run-1")
    assert "expect_column_pair_values_a_to_be_greater_than_b" in str(err.value)
    assert "burden_ytd_fen > threshold_fen" in str(err.value)


@pytest.mark.parametrize(
    ("change", "expectation"),
    [
        ({"first_month": "2024-06"}, "expect_column_pair_values_a_to_be_greater_than_b"),
        ({"first_month": "2023-12"}, "expect_column_pair_values_a_to_be_greater_than_b"),
        ({"status": "new"}, "expect_column_pair_values_to_be_equal"),
        ({"warning_type": "relapsed"}, "expect_column_values_to_be_in_set"),
        ({"income_scope": "town"}, "expect_column_values_to_be_in_set"),
        ({"hh_id": None}, "expect_column_values_to_not_be_null"),
    ],
)
def test_other_broken_warnings_fail(con, change, expectation):
    _insert_warnings(con, [{**WARNING, **change}])
    with pytest.raises(QualityGateError, match=expectation):
        check_outputs(con, "2024-05", "run-1")


def test_results_can_be_reported_without_raising_and_stored(con):
    _insert_warnings(con, [WARNING, WARNING])
    results = check_outputs(con, "2024-05", "run-1", raise_on_failure=False)
    assert sum(not r.success for r in results) == 1
    store_results(con, "run-1", "2024-05", results)
    store_results(con, "run-1", "2024-05", results)  # stored again: replaced, not doubled
    rows = con.sql(
        "select seq, suite, check_name, success, level from quality_results order by seq"
    ).fetchall()
    assert len(rows) == len(results)
    assert [r[0] for r in rows] == list(range(1, len(results) + 1))
    assert {r[4] for r in rows} == {"batch"}
    assert [r[2] for r in rows if not r[3]] == [
        "expect_compound_columns_to_be_unique(month, psn_no, warning_type)"
    ]


def test_summary_line_names_the_first_failure():
    results = [
        CheckResult("stg_settlements", "expect_a", True, "1"),
        CheckResult("mart_warnings", "expect_b(x)", False, "2 of 3 rows unexpected"),
        CheckResult("mart_warnings", "expect_c", False, "0 rows"),
    ]
    assert summary_line(results) == (
        "quality: 1/3 expectations passed (2 suites); failed: mart_warnings expect_b(x) and 1 more"
    )
