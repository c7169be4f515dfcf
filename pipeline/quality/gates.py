"""Batch-level quality gates: Great Expectations suites over the month's tables.

Row-level checks live in staging SQL (a bad row is quarantined with its reason code). Here a
table is judged as a whole: its columns and types, keys, value sets, uniqueness, cross-column
rules, and whether the month's export is of a plausible size compared with the previous
months (the batch bands of ``expectations/bands.yaml``). Suites are data, one JSON file per
table under ``expectations/``, in Great Expectations 1.x serialisation.

The suites are evaluated inside DuckDB as aggregate SQL (``pipeline.quality.evaluate``): one
pass per table counts every expectation's domain and unexpected rows, and only a failed
expectation reads its first three offending rows. No pandas copy of the month is made, and
``great_expectations`` is not imported on the run's path. The observations and messages are
worded from results shaped like GX's, the same as GX's pandas engine gives for the same rows:
``validate_frame_gx`` (GX 1.x, pandas datasource, ephemeral context) is kept as the reference
the tests hold the SQL to, check for check (``tests/unit/quality/test_sql_gates.py``).

Why not GX's own SQL datasource (checked with duckdb-engine 0.17, duckdb 1.4.4, SQLAlchemy 2.1,
GX 1.24): it fails every expectation unless GX keeps one persisted connection, which it does
only for its own list of dialects (duckdb not among them: a patch of GX internals); forced,
it validates 500 000 staged rows in ~2 s after a 2–8 s import, and the suites' column types
are pandas dtypes (``str``, ``int64``, ``datetime64``) that GX's SQL engine does not know, so
every type check fails there and the suites would have to change. The aggregate SQL does the
same 500 000 rows in ~0.3 s, with the suites unchanged.

The reference suites (registry, identities, income) are evaluated again only when the
reference inputs change (the loader's ``ref_state`` digest), else their stored results are
reused (``quality_ref_cache``) and shown as every month.

A failed expectation stops the run: ``QualityGateError`` (a ``PovwatchError``) with one line
naming the table, the month, what was observed and the expectation. Messages and stored
observations never carry resident ids or names.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import statistics
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline.errors import PovwatchError, invalid
from pipeline.quality import evaluate as in_sql
from pipeline.quality.evaluate import Frame
from pipeline.quality.quarantine import QuarantineLimits
from pipeline.quality.quarantine import cause as quarantine_cause
from pipeline.store.warehouse import resource_dir, sql

INPUT_SUITES = ("stg_settlements", "ref_persons", "ref_identities", "ref_income")
OUTPUT_SUITES = ("mart_warnings",)
SUITES = INPUT_SUITES + OUTPUT_SUITES
BANDS_ENV = "POVWATCH_QUALITY_BANDS"
LEVEL = "batch"

# Columns whose values never appear in a message or a stored observation.
_PRIVATE = frozenset({"certno", "psn_name", "brdy"})

# The frame each suite validates. Computed columns (``_…``) are described in the suite's meta.
_FRAMES = {
    "stg_settlements": """
        select *,
               case when status = 'loaded'
                    then medfee_sumamt - fund_pay_sumamt - hosp_part_amt - psn_part_amt
               end as _balance_fen,
               case when status = 'loaded' then medfee_sumamt else 0 end as _medfee_loaded_fen
        from stg_settlements
        where export_month = ?
    """,
    # Personal data (resident id, name, birth date) never enters a validation frame.
    "ref_persons": """
        select * exclude (certno, psn_name, brdy)
        from ref_persons
    """,
    "ref_identities": "select * from ref_identities",
    "ref_income": "select * from ref_income",
    "mart_warnings": """
        select *,
               case when first_month = month then 'new' else 'continuing' end
                   as _status_expected,
               left(month, 4) || '-01' as _year_start
        from mart_warnings
        where month = ?
    """,
}
# The frame's row order: which offending row a message names first.
_ORDER = {
    "stg_settlements": "source_file, source_row",
    "ref_persons": "source_file, source_row",
    "ref_identities": "source_file, source_row",
    "ref_income": "source_file, source_row",
    "mart_warnings": "psn_no, warning_type",
}
_MONTHLY = frozenset({"stg_settlements", "mart_warnings"})

# Rows and loaded total cost of the export months before the month, most recent first.
_HISTORY = """
    with files as (
        select export_month, sum(rows_read) as rows_read
        from ingested_files
        where export_month < ?
        group by export_month
    ),
    loaded as (
        select export_month, sum(medfee_sumamt) as medfee_loaded_fen
        from stg_settlements
        where export_month < ? and status = 'loaded'
        group by export_month
    )
    select f.export_month, f.rows_read, coalesce(l.medfee_loaded_fen, 0)
    from files as f
    left join loaded as l using (export_month)
    order by f.export_month desc
    limit ?
"""


@dataclass
class CheckResult:
    """One batch expectation evaluated: which, whether it held, and what was seen."""

    suite: str
    check: str
    success: bool
    observed: str
    level: str = LEVEL
    description: str = ""


class QualityGateError(PovwatchError):
    """A failed batch expectation; ``results`` holds every check of the call, for storing."""

    def __init__(self, message: str, results: list[CheckResult]) -> None:
        super().__init__(message)
        self.results = results


# --------------------------------------------------------------------------- bands


class Band(BaseModel):
    """[low × median, high × median] of the previous months, for data sets large enough."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    low: float = Field(ge=0)
    high: float = Field(gt=0)
    min_median_rows: float = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Band:
        if self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        return self


class QualityBands(BaseModel):
    """Batch band parameters (``expectations/bands.yaml`` documents each key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    previous_months: int = Field(default=6, ge=1)
    min_previous_months: int = Field(default=3, ge=1)
    row_count: Band = Band(low=0.5, high=2.0, min_median_rows=50)
    medfee_loaded: Band = Band(low=0.5, high=2.0, min_median_rows=10_000)
    quarantine: QuarantineLimits = QuarantineLimits()

    @classmethod
    def load(cls, path: Path | None = None) -> QualityBands:
        """From ``path``, else ``$POVWATCH_QUALITY_BANDS``, else ``expectations/bands.yaml``."""
        if path is None:
            env = os.environ.get(BANDS_ENV)
            path = Path(env) if env else resource_dir("expectations") / "bands.yaml"
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise PovwatchError(f"{path}: cannot read the quality bands: {exc}") from None
        if not isinstance(data, dict):
            raise PovwatchError(f"{path}: invalid quality bands: not a mapping of keys")
        # A key left out keeps its default, also inside a band.
        merged = cls().model_dump()
        for key, value in data.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
        try:
            return cls.model_validate(merged)
        except ValidationError as exc:
            raise invalid(exc, path, "quality bands") from None


@dataclass(frozen=True)
class BandLimits:
    """A band as applied: the limits, and what they were computed from (for messages)."""

    low: float
    high: float
    median: float
    months: int
    band: Band


def band_limits(previous: Sequence[float], band: Band) -> BandLimits:
    """The band around the median of the previous months' values (by hand: see the tests)."""
    median = statistics.median(previous)
    return BandLimits(band.low * median, band.high * median, median, len(previous), band)


def previous_months(con: duckdb.DuckDBPyConnection, month: str, n: int) -> list[tuple]:
    """(export_month, rows read, loaded medfee_sumamt in fen) of up to ``n`` earlier months."""
    return con.sql(_HISTORY, params=[month, month, n]).fetchall()


def month_bands(history: list[tuple], bands: QualityBands) -> dict[str, BandLimits]:
    """The bands that apply given the previous months (most recent first, as queried).

    None with fewer than ``min_previous_months``; a band also needs the previous months'
    median row count to reach its ``min_median_rows``.
    """
    if len(history) < bands.min_previous_months:
        return {}
    rows = [int(r[1]) for r in history]
    values = {"row_count": rows, "medfee_loaded": [int(r[2]) for r in history]}
    median_rows = statistics.median(rows)
    return {
        name: band_limits(values[name], band)
        for name, band in (("row_count", bands.row_count), ("medfee_loaded", bands.medfee_loaded))
        if median_rows >= band.min_median_rows
    }


def _band_parameters(limits: dict[str, BandLimits]) -> dict[str, float | int]:
    params: dict[str, float | int] = {}
    if "row_count" in limits:
        lim = limits["row_count"]
        # A row count is whole: ≥ 52.5 is ≥ 53, exactly.
        params["row_count_min"] = math.ceil(lim.low)
        params["row_count_max"] = math.floor(lim.high)
    if "medfee_loaded" in limits:
        lim = limits["medfee_loaded"]
        params["medfee_loaded_min"] = lim.low
        params["medfee_loaded_max"] = lim.high
    return params


# --------------------------------------------------------------------------- GX, once


@cache
def load_suite(name: str) -> dict:
    """The suite JSON of a table (GX 1.x ExpectationSuite serialisation)."""
    path = resource_dir("expectations") / f"{name}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise PovwatchError(f"{path}: cannot read the expectation suite: {exc}") from None


class _Gx:
    """GX imported once per process: an ephemeral context, one pandas datasource, the suites."""

    def __init__(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import great_expectations as gx
            from great_expectations.data_context.types.base import (
                DataContextConfig,
                InMemoryStoreBackendDefaults,
                ProgressBarsConfig,
            )

        self.gx = gx
        self.context = gx.get_context(
            mode="ephemeral",
            project_config=DataContextConfig(
                store_backend_defaults=InMemoryStoreBackendDefaults(),
                progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
                analytics_enabled=False,
            ),
        )
        self.datasource = self.context.data_sources.add_pandas("povwatch")
        self._batch_definitions: dict[str, Any] = {}
        self._suites: dict[tuple, Any] = {}

    def batch_definition(self, table: str) -> Any:
        if table not in self._batch_definitions:
            asset = self.datasource.add_dataframe_asset(table)
            self._batch_definitions[table] = asset.add_batch_definition_whole_dataframe(table)
        return self._batch_definitions[table]

    def suite(self, name: str, specs: list[tuple[int, dict]]) -> Any:
        """A GX suite of some of a table's expectations; each id is its JSON position."""
        key = (name, tuple(i for i, _ in specs))
        if key not in self._suites:
            suite = self.gx.ExpectationSuite(name=name, expectations=[e for _, e in specs])
            for (i, _), expectation in zip(specs, suite.expectations, strict=True):
                expectation.id = str(i)
            self._suites[key] = suite
        return self._suites[key]


_GX: _Gx | None = None


def _gx() -> _Gx:
    global _GX
    if _GX is None:
        _GX = _Gx()
    return _GX


# --------------------------------------------------------------------------- validation


def read_frame(con: duckdb.DuckDBPyConnection, table: str, month: str | None = None) -> Frame:
    """The rows a suite validates (with its computed columns), as a query inside DuckDB."""
    params = [month] if table in _MONTHLY else []
    return Frame(con, _FRAMES[table], params, _ORDER[table])


def _selected(table: str, limits: dict[str, BandLimits]) -> list[tuple[int, dict]]:
    """(JSON position, spec) of a suite's expectations; a band only when it applies."""
    return [
        (i, e)
        for i, e in enumerate(load_suite(table)["expectations"])
        if e.get("meta", {}).get("band") in (None, *limits)
    ]


def _row_ids(table: str, columns: Sequence[str]) -> list[str]:
    ids = load_suite(table).get("meta", {}).get("row_id_columns", [])
    return [c for c in ids if c in columns]


def _results(
    table: str, specs: list[tuple[int, dict]], found: dict[int, Any], row_ids: list[str], limits
) -> list[CheckResult]:
    """The check results in the suite's order, worded from GX-shaped outcomes."""
    results = []
    for i, spec in specs:
        res = found[i]
        band = spec.get("meta", {}).get("band")
        observed = _observed(spec, res, row_ids)
        if band in limits and "observed_value" in (res.result or {}):
            observed = _band_observed(band, res.result["observed_value"], limits[band])
        results.append(
            CheckResult(
                suite=table,
                check=check_name(spec),
                success=bool(res.success),
                observed=observed,
                description=spec.get("description") or "",
            )
        )
    return results


def validate_frame(
    table: str, frame: Frame, limits: dict[str, BandLimits] | None = None
) -> list[CheckResult]:
    """Validate a frame with the table's suite, in SQL inside DuckDB; results in suite order.

    ``limits``: the batch bands that apply (their expectations are left out otherwise).
    """
    limits = limits or {}
    if engine() == "gx":
        return validate_frame_gx(table, frame.df(), limits)
    specs = _selected(table, limits)
    row_ids = _row_ids(table, frame.columns)
    found = in_sql.evaluate(frame, specs, _band_parameters(limits), row_ids)
    return _results(table, specs, found, row_ids, limits)


ENGINE_ENV = "POVWATCH_QUALITY_ENGINE"


def engine() -> str:
    """``sql`` (default: the suites as aggregate SQL in DuckDB) or ``gx`` (Great Expectations'
    pandas engine on a copy of each table: slower, for an audit that wants GX itself to judge;
    the results are the same, check for check)."""
    value = os.environ.get(ENGINE_ENV, "sql").strip().lower() or "sql"
    if value not in ("sql", "gx"):
        raise PovwatchError(f"{ENGINE_ENV}={value!r}: expected sql or gx")
    return value


def validate_frame_gx(
    table: str, frame, limits: dict[str, BandLimits] | None = None
) -> list[CheckResult]:
    """The same validation by Great Expectations' pandas engine (``frame``: pandas).

    Not on the run's path: the tests hold ``validate_frame`` to it, check for check.
    Every expectation is evaluated with the BASIC result format; the failed ones once more
    with SUMMARY and the suite's ``row_id_columns``, to name an offending row.
    """
    limits = limits or {}
    specs = _selected(table, limits)
    params = _band_parameters(limits)
    found = _evaluate(table, frame, specs, params, {"result_format": "BASIC"})
    row_ids = _row_ids(table, frame.columns)
    failed = [(i, e) for i, e in specs if not found[i].success]
    if failed and row_ids:
        detail = {
            "result_format": "SUMMARY",
            "partial_unexpected_count": 3,
            "unexpected_index_column_names": row_ids,
        }
        found |= _evaluate(table, frame, failed, params, detail)
    return _results(table, specs, found, row_ids, limits)


def _evaluate(
    table: str, frame, specs: list[tuple[int, dict]], params: dict, result_format: dict
) -> dict[int, Any]:
    """GX validation results by JSON position.

    Expectations sharing a row condition ``column == value`` are validated together on the
    frame filtered once (the same rows GX would select), instead of GX filtering the frame
    again for every metric of every such expectation: the results are the same, 3–4× faster.
    """
    g = _gx()
    groups: dict[tuple | None, list[tuple[int, dict]]] = {}
    for i, spec in specs:
        key = _equality(spec["kwargs"].get("row_condition"))
        if key is not None and key[0] not in frame.columns:
            key = None  # GX reports the missing column
        if key is not None:
            kwargs = {k: v for k, v in spec["kwargs"].items() if k != "row_condition"}
            spec = {**spec, "kwargs": kwargs}
        groups.setdefault(key, []).append((i, spec))
    found: dict[int, Any] = {}
    for key, group in groups.items():
        rows = frame
        if key is not None:
            rows = frame[(frame[key[0]] == key[1]).fillna(False).astype(bool)]
        batch = g.batch_definition(table).get_batch(batch_parameters={"dataframe": rows})
        validation = batch.validate(
            g.suite(table, group), result_format=result_format, expectation_parameters=params
        )
        for res in validation.results:
            found[int(res.expectation_config.id)] = res
    return found


def _equality(cond: Any) -> tuple[str, Any] | None:
    """(column, value) of a row condition ``column == value`` (a JSON comparison)."""
    if (
        isinstance(cond, dict)
        and cond.get("type") == "comparison"
        and cond.get("operator") == "=="
        and isinstance(cond.get("parameter"), str | int)
    ):
        return cond["column"]["name"], cond["parameter"]
    return None


def check_inputs(
    con: duckdb.DuckDBPyConnection,
    month: str,
    run_id: str,
    bands: QualityBands | None = None,
    *,
    raise_on_failure: bool = True,
) -> list[CheckResult]:
    """The month's staged settlements (with the batch bands) and the reference tables."""
    month = str(month)
    bands = bands or QualityBands.load()
    limits = month_bands(previous_months(con, month, bands.previous_months), bands)
    results = validate_frame("stg_settlements", read_frame(con, "stg_settlements", month), limits)
    for table in INPUT_SUITES[1:]:
        results += reference_results(con, table)
    if raise_on_failure:
        # A failed check of the month's settlements may be a symptom of rows quarantined
        # (a cost band falls when most rows are set aside): then the message names that.
        failed = [r for r in results if not r.success]
        why = None
        if failed and failed[0].suite == "stg_settlements":
            why = quarantine_cause(con, month, at_least=CAUSE_SHARE)
        gate(results, month, cause=why)
    return results


def reference_results(con: duckdb.DuckDBPyConnection, table: str) -> list[CheckResult]:
    """A reference suite's results; validated again only when the reference inputs changed.

    Keyed by the reference tables' inputs digest (``ref_state``, written by the loader), the
    suite's JSON and this module's code; a warehouse without that digest always validates.
    """
    state = con.execute("select inputs_digest from ref_state").fetchall()
    if len(state) != 1:
        return validate_frame(table, read_frame(con, table))
    h = hashlib.sha256(state[0][0].encode())
    h.update(json.dumps(load_suite(table), sort_keys=True).encode())
    for code in (Path(__file__), Path(in_sql.__file__)):
        h.update(code.read_bytes())
    h.update(engine().encode())
    digest = h.hexdigest()
    con.execute(sql("schema/quality"))
    rows = con.execute(
        "select results from quality_ref_cache where suite = ? and inputs_digest = ?",
        [table, digest],
    ).fetchall()
    if rows:
        return [CheckResult(**r) for r in json.loads(rows[0][0])]
    results = validate_frame(table, read_frame(con, table))
    con.execute("delete from quality_ref_cache where suite = ?", [table])
    con.execute(
        "insert into quality_ref_cache values (?, ?, ?)",
        [table, digest, json.dumps([dataclasses.asdict(r) for r in results], ensure_ascii=False)],
    )
    return results


def check_outputs(
    con: duckdb.DuckDBPyConnection, month: str, run_id: str, *, raise_on_failure: bool = True
) -> list[CheckResult]:
    """The month's rows of mart_warnings."""
    month = str(month)
    results = validate_frame("mart_warnings", read_frame(con, "mart_warnings", month))
    if raise_on_failure:
        gate(results, month)
    return results


# A month's quarantined share above which a failed settlement check is blamed on it.
CAUSE_SHARE = 0.01


def gate(results: list[CheckResult], month: str, cause: str | None = None) -> None:
    """Raise QualityGateError naming the first failed check (one line), if any failed;
    ``cause``, when known, leads the message (the cause before the symptom)."""
    failed = [r for r in results if not r.success]
    if not failed:
        return
    first = failed[0]
    expectation = first.check.split("(")[0].split(" ")[0]
    if (first.suite, first.check) in _band_checks():
        what = f" {first.observed}"
    else:
        what = f": {first.description or _subject(first.check)}: {first.observed}"
    more = f" (and {len(failed) - 1} more failed checks)" if len(failed) > 1 else ""
    lead = f"{cause}; so " if cause else ""
    raise QualityGateError(
        f"{lead}quality gate failed: {first.suite} {month}{what} — {expectation}{more}", results
    )


def store_results(
    con: duckdb.DuckDBPyConnection, run_id: str, month: str, results: list[CheckResult]
) -> None:
    """Replace the run's rows of ``quality_results`` (created here when missing)."""
    con.execute(sql("schema/quality"))
    con.execute("delete from quality_results where run_id = ?", [run_id])
    if not results:
        return
    frame = pl.DataFrame(
        {
            "run_id": [run_id] * len(results),
            "month": [str(month)] * len(results),
            "seq": list(range(1, len(results) + 1)),
            "suite": [r.suite for r in results],
            "check_name": [r.check for r in results],
            "success": [r.success for r in results],
            "observed": [r.observed for r in results],
            "level": [r.level for r in results],
        },
        schema_overrides={"seq": pl.Int32},
    )
    quality_batch = frame.to_arrow()  # noqa: F841 (read by name in SQL)
    con.execute("insert into quality_results by name select * from quality_batch")


def summary_line(results: Sequence[CheckResult]) -> str:
    """E.g. ``quality: 117/117 expectations passed (5 suites)``."""
    passed = sum(r.success for r in results)
    suites = len({r.suite for r in results})
    line = f"quality: {passed}/{len(results)} expectations passed ({suites} suites)"
    failed = [r for r in results if not r.success]
    if failed:
        line += f"; failed: {failed[0].suite} {failed[0].check}"
        if len(failed) > 1:
            line += f" and {len(failed) - 1} more"
    return line


# --------------------------------------------------------------------------- wording


@cache
def _band_checks() -> frozenset[tuple[str, str]]:
    """(suite, check) of the batch bands, whose observation already says it all."""
    return frozenset(
        (name, check_name(e))
        for name in SUITES
        for e in load_suite(name)["expectations"]
        if e.get("meta", {}).get("band")
    )


def check_name(spec: dict) -> str:
    """``type(columns) where condition`` of an expectation in a suite's JSON."""
    kwargs = spec.get("kwargs", {})
    columns = (
        [kwargs["column"]]
        if "column" in kwargs
        else list(kwargs.get("column_list") or [])
        or [c for c in (kwargs.get("column_A"), kwargs.get("column_B")) if c]
    )
    name = spec["type"] + (f"({', '.join(columns)})" if columns else "")
    if kwargs.get("row_condition"):
        name += f" where {_condition(kwargs['row_condition'])}"
    return name


def _condition(cond: Any) -> str:
    if isinstance(cond, str):
        return cond
    kind = cond.get("type")
    if kind in ("and", "or"):
        return f" {kind} ".join(_condition(c) for c in cond["conditions"])
    if kind == "nullity":
        return f"{cond['column']['name']} is {'' if cond.get('is_null') else 'not '}null"
    return f"{cond['column']['name']} {cond['operator']} {cond['parameter']!r}"


def _subject(check: str) -> str:
    """What a check is about, without its expectation type: ``psn_no where …``."""
    return check[check.index("(") + 1 :].replace(")", "", 1) if "(" in check else check


def _observed(spec: dict, res: Any, row_ids: list[str]) -> str:
    info = res.exception_info or {}
    if info.get("raised_exception"):
        message = str(info.get("exception_message") or "exception").splitlines()[0]
        return f"error: {message[:200]}"
    result = res.result or {}
    kwargs = spec.get("kwargs", {})
    if spec["type"] == "expect_table_columns_to_match_set":
        missing = ((result.get("details") or {}).get("mismatched") or {}).get("missing") or []
        if missing:
            return "missing columns: " + ", ".join(sorted(missing))
        return f"{len(kwargs.get('column_set', []))} columns present"
    if "observed_value" in result:
        if spec["type"].startswith("expect_table_row_count"):
            return f"{_value(result['observed_value'])} rows"
        return _value(result["observed_value"])
    if "unexpected_count" in result:
        count, total = result["unexpected_count"] or 0, result.get("element_count") or 0
        text = f"{_num(count)} of {_num(total)} rows unexpected"
        if count:
            columns = {kwargs.get(k) for k in ("column", "column_A", "column_B")}
            columns |= set(kwargs.get("column_list") or [])
            where = _where(result.get("partial_unexpected_index_list") or [], row_ids)
            if where:
                text += f", e.g. {where}"
            values = result.get("partial_unexpected_list") or []
            if values and not (columns & _PRIVATE):
                text += " (values " + ", ".join(_value(v) for v in values[:3]) + ")"
        return text
    return "ok" if res.success else "failed"


def _where(index_list: list, row_ids: list[str]) -> str:
    if not index_list or not isinstance(index_list[0], dict):
        return ""
    row = index_list[0]
    if "source_file" in row and "source_row" in row:
        return f"{row['source_file']} row {_value(row['source_row'])}"
    return " ".join(f"{c} {_value(row[c])}" for c in row_ids if c in row and c not in _PRIVATE)


def _value(v: Any) -> str:
    if hasattr(v, "item") and not isinstance(v, (list, tuple, dict)):
        with contextlib.suppress(ValueError, AttributeError):
            v = v.item()
    if isinstance(v, dict):
        v = tuple(x for k, x in v.items() if k not in _PRIVATE)
    if isinstance(v, tuple):
        return "(" + ", ".join(_value(x) for x in v) + ")"
    if isinstance(v, list):
        return f"{len(v)} values"
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, (int, float)):
        return _num(v)
    text = str(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _num(x: float | int) -> str:
    """11050 → ``11 050``; 52.5 → ``52.5``."""
    if isinstance(x, float) and not x.is_integer():
        return f"{x:,.2f}".rstrip("0").rstrip(".").replace(",", " ")
    return f"{int(x):,}".replace(",", " ")


def _factor(x: float) -> str:
    """0.5 → ``0.5``, 2 → ``2.0``: a factor always shows its decimals."""
    text = f"{x:.3f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _yuan(fen: float | int) -> str:
    value = Decimal(round(fen)) / 100
    return f"{value:,.2f}".replace(",", " ")


def _band_observed(band: str, seen: Any, lim: BandLimits) -> str:
    seen = int(seen)
    factors = f"{_factor(lim.band.low)}×..{_factor(lim.band.high)}×"
    basis = f"({factors} median of {lim.months} previous months)"
    if band == "row_count":
        inside = math.ceil(lim.low) <= seen <= math.floor(lim.high)
        where = "within" if inside else "outside"
        return f"row count {_num(seen)} {where} {_num(lim.low)}..{_num(lim.high)} {basis}"
    where = "within" if lim.low <= seen <= lim.high else "outside"
    return (
        f"total medfee_sumamt of loaded rows {_yuan(seen)} yuan {where} "
        f"{_yuan(lim.low)}..{_yuan(lim.high)} yuan {basis}"
    )
