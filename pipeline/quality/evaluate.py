"""The expectations of a suite evaluated as aggregate SQL inside DuckDB, as GX would report them.

One aggregate query per table counts, for every expectation at once, the rows of its domain
(its row condition) and the unexpected ones; uniqueness is a distinct count in the same pass.
Only a failed expectation costs more: one small query for its first three offending rows, in
the frame's order. Nothing is copied out of DuckDB but those counts and at most three rows.

Each expectation gives an ``Outcome`` shaped like a Great Expectations 1.x validation result
of the pandas engine (``success``, ``result`` with ``observed_value`` or ``element_count`` /
``unexpected_count`` / ``partial_unexpected_list`` / ``partial_unexpected_index_list``,
``exception_info``), so ``gates`` words it exactly as before. What the pandas engine does and
this module follows:

- a row condition selects the rows as ``DataFrame.query`` would: ``==``, ``<`` … are false on a
  missing value, ``!=`` and ``not in`` true;
- map expectations skip missing values (except the null checks), pairs skip a row where either
  value is missing, and ``element_count`` is the rows of the domain, skipped ones included;
- uniqueness marks every row of a repeated value (``keep=False``), compound keys ignore rows
  whose values are all missing;
- a column type is the pandas dtype DuckDB's ``.df()`` gives the column (``_DTYPES``): the type
  name, or for a text column without any value (pandas' ``object``) a per-value check that
  finds nothing unexpected;
- a missing value in an offending row shows as pandas shows it (``nan``, ``<NA>``, ``NaT``,
  ``None``), a date as a timestamp;
- a column the frame lacks fails the expectations that name it (a type check with GX's own
  error).
"""

from __future__ import annotations

import datetime
import decimal
from dataclasses import dataclass, field
from typing import Any

import duckdb

from pipeline.errors import PovwatchError

# DuckDB type → the name of the pandas dtype's scalar type after ``.df()`` (what GX observes).
_DTYPES = {
    "VARCHAR": "str",
    "TINYINT": "int8",
    "SMALLINT": "int16",
    "INTEGER": "int32",
    "BIGINT": "int64",
    "UTINYINT": "uint8",
    "USMALLINT": "uint16",
    "UINTEGER": "uint32",
    "UBIGINT": "uint64",
    "FLOAT": "float32",
    "DOUBLE": "float64",
    "BOOLEAN": "bool",
    "DATE": "datetime64",
    "TIMESTAMP": "datetime64",
    "TIMESTAMP_S": "datetime64",
    "TIMESTAMP_MS": "datetime64",
    "TIMESTAMP_NS": "datetime64",
}
# How pandas shows a missing value of a column of that dtype.
_MISSING = {"VARCHAR": float("nan"), "DATE": "NaT", "FLOAT": float("nan"), "DOUBLE": float("nan")}
_MISSING |= {t: "NaT" for t in _DTYPES if t.startswith("TIMESTAMP")}
_MISSING |= {t: "<NA>" for t in _DTYPES if t.endswith("INT")}

MAP_TYPES = frozenset(
    {
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_null",
        "expect_column_values_to_be_in_set",
        "expect_column_values_to_match_regex",
        "expect_column_values_to_be_between",
        "expect_column_values_to_be_unique",
        "expect_compound_columns_to_be_unique",
        "expect_column_pair_values_a_to_be_greater_than_b",
        "expect_column_pair_values_to_be_equal",
    }
)
SUPPORTED = MAP_TYPES | {
    "expect_table_row_count_to_be_between",
    "expect_table_columns_to_match_set",
    "expect_column_values_to_be_of_type",
    "expect_column_sum_to_be_between",
}
_KNOWN_KWARGS = frozenset(
    {
        "column",
        "column_A",
        "column_B",
        "column_list",
        "column_set",
        "exact_match",
        "type_",
        "value_set",
        "regex",
        "min_value",
        "max_value",
        "strict_min",
        "strict_max",
        "or_equal",
        "row_condition",
        "condition_parser",
        "ignore_row_if",
    }
)


@dataclass
class Outcome:
    """One expectation evaluated, in the shape of a GX validation result."""

    success: bool
    result: dict = field(default_factory=dict)
    exception_info: dict = field(default_factory=dict)


@dataclass
class Frame:
    """The rows a suite validates: a query inside DuckDB, never copied out.

    ``sql`` selects the rows (with the suite's computed columns), ``params`` binds it, ``order``
    is the frame's row order (which offending row is named first).
    """

    con: duckdb.DuckDBPyConnection
    sql: str
    params: list = field(default_factory=list)
    order: str = ""

    @property
    def columns(self) -> list[str]:
        return list(self.types)

    @property
    def types(self) -> dict[str, str]:
        """Column → DuckDB type, from the query's description (nothing is read)."""
        if "_types" not in self.__dict__:
            query = f"select * from ({self.sql}) as f limit 0"
            cursor = self.con.execute(query, self.params)
            self.__dict__["_types"] = {d[0]: str(d[1]) for d in cursor.description}
            cursor.fetchall()
        return self.__dict__["_types"]

    def df(self):
        """The frame in pandas, in its order (GX's pandas engine; tests only)."""
        order = f" order by {self.order}" if self.order else ""
        return self.con.execute(f"select * from ({self.sql}) as f{order}", self.params).df()


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _condition(cond: Any) -> tuple[str, list]:
    """A GX 1.x JSON row condition as a SQL predicate with ``DataFrame.query``'s semantics."""
    if cond is None:
        return "true", []
    if not isinstance(cond, dict):
        raise PovwatchError(f"row condition {cond!r}: only JSON conditions are evaluated in SQL")
    kind = cond.get("type")
    if kind in ("and", "or"):
        parts = [_condition(c) for c in cond["conditions"]]
        text = f" {kind} ".join(f"({p})" for p, _ in parts)
        return text, [v for _, ps in parts for v in ps]
    col = ident(cond["column"]["name"])
    if kind == "nullity":
        return f"{col} is {'' if cond.get('is_null') else 'not '}null", []
    op, value = cond["operator"], cond["parameter"]
    if op == "!=":
        return f"{col} is distinct from ?", [value]
    if op in ("in", "not in"):
        test = f"coalesce(list_contains(?, {col}), false)"
        return (test if op == "in" else f"not {test}"), [list(value)]
    if op in ("==", "<", "<=", ">", ">="):
        return f"coalesce({col} {'=' if op == '==' else op} ?, false)", [value]
    raise PovwatchError(f"row condition operator {op!r} is not evaluated in SQL")


def _condition_columns(cond: Any) -> set[str]:
    if not isinstance(cond, dict):
        return set()
    if cond.get("type") in ("and", "or"):
        return set().union(*(_condition_columns(c) for c in cond["conditions"]))
    return {cond["column"]["name"]}


def _value_columns(spec: dict) -> list[str]:
    """The columns whose values an expectation judges (and shows), in GX's order."""
    kw = spec["kwargs"]
    if "column_list" in kw:
        return list(kw["column_list"])
    if "column_A" in kw:
        return [kw["column_A"], kw["column_B"]]
    return [kw["column"]] if "column" in kw else []


def _unexpected(spec: dict) -> tuple[str, list]:
    """The predicate of an unexpected row of a map expectation (without its domain)."""
    kind, kw = spec["type"], spec["kwargs"]
    cols = [ident(c) for c in _value_columns(spec)]
    if kind == "expect_column_values_to_not_be_null":
        return f"{cols[0]} is null", []
    if kind == "expect_column_values_to_be_null":
        return f"{cols[0]} is not null", []
    if kind == "expect_column_values_to_be_in_set":
        return f"{cols[0]} is not null and not list_contains(?, {cols[0]})", [kw["value_set"]]
    if kind == "expect_column_values_to_match_regex":
        return f"{cols[0]} is not null and not regexp_matches({cols[0]}::varchar, ?)", [kw["regex"]]
    if kind == "expect_column_values_to_be_between":
        tests, params = [], []
        if kw.get("min_value") is not None:
            tests.append(f"{cols[0]} {'>' if kw.get('strict_min') else '>='} ?")
            params.append(kw["min_value"])
        if kw.get("max_value") is not None:
            tests.append(f"{cols[0]} {'<' if kw.get('strict_max') else '<='} ?")
            params.append(kw["max_value"])
        inside = " and ".join(tests) or "true"
        return f"{cols[0]} is not null and not ({inside})", params
    both = f"{cols[0]} is not null and {cols[1]} is not null" if len(cols) == 2 else ""
    if kind == "expect_column_pair_values_a_to_be_greater_than_b":
        op = ">=" if kw.get("or_equal") else ">"
        return f"{both} and not ({cols[0]} {op} {cols[1]})", []
    if kind == "expect_column_pair_values_to_be_equal":
        return f"{both} and {cols[0]} <> {cols[1]}", []
    raise AssertionError(kind)  # uniqueness: counted apart


def _unique_key(spec: dict) -> tuple[str, str]:
    """(the key, the rows it applies to) of a uniqueness expectation."""
    cols = [ident(c) for c in _value_columns(spec)]
    if len(cols) == 1:
        return cols[0], f"{cols[0]} is not null"
    # Compound keys: a row whose values are all missing is ignored (GX's default).
    return f"row({', '.join(cols)})", "not (" + " and ".join(f"{c} is null" for c in cols) + ")"


def check_supported(spec: dict) -> None:
    """A suite entry this module cannot evaluate exactly stops the run: never silently skipped."""
    unknown = set(spec.get("kwargs", {})) - _KNOWN_KWARGS
    if spec["type"] not in SUPPORTED or unknown:
        what = spec["type"] if spec["type"] not in SUPPORTED else ", ".join(sorted(unknown))
        raise PovwatchError(f"expectation {what} is not evaluated by the SQL gates")
    ignore = spec["kwargs"].get("ignore_row_if")
    if ignore not in (None, "either_value_is_missing", "all_values_are_missing"):
        raise PovwatchError(f"ignore_row_if {ignore!r} is not evaluated by the SQL gates")


def _bound(kwargs: dict, params: dict, key: str) -> Any:
    value = kwargs.get(key)
    if isinstance(value, dict) and "$PARAMETER" in value:
        return params[value["$PARAMETER"]]
    return value


def _shown(value: Any, duck_type: str, has_text: bool) -> Any:
    """A value of an offending row as pandas holds it (what the message shows)."""
    if value is None:
        if duck_type == "VARCHAR" and not has_text:
            return None  # a text column without any value is pandas' object dtype
        return _MISSING.get(duck_type)
    if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        return datetime.datetime(value.year, value.month, value.day)
    if isinstance(value, decimal.Decimal):
        return float(value)
    return value


class _Pass:
    """One aggregate query over the frame: each row condition computed once per row (a
    boolean column), each aggregate once however many expectations read it."""

    def __init__(self) -> None:
        self.conds: dict[tuple[str, str], tuple[str, list]] = {}
        self.aggs: dict[str, int] = {"count(*)": 0}

    def cond(self, text: str, params: list) -> str | None:
        if text == "true":
            return None
        key = (text, repr(params))
        if key not in self.conds:
            self.conds[key] = (f"_gate_c{len(self.conds)}", params)
        return self.conds[key][0]

    def agg(self, func: str, *conds: str | None) -> int:
        names = [c for c in conds if c]
        text = func + (f" filter (where {' and '.join(names)})" if names else "")
        return self.aggs.setdefault(text, len(self.aggs))

    def run(self, frame: Frame) -> tuple:
        flags = "".join(f", ({text}) as {name}" for (text, _), (name, _) in self.conds.items())
        query = f"""
            with frame as ({frame.sql}), d as (select *{flags} from frame)
            select {", ".join(self.aggs)} from d
        """
        args = [*frame.params, *(a for _, ps in self.conds.values() for a in ps)]
        (row,) = frame.con.execute(query, args).fetchall()
        return row


def evaluate(
    frame: Frame, specs: list[tuple[int, dict]], params: dict, row_ids: list[str]
) -> dict[int, Outcome]:
    """Every expectation of ``specs`` (JSON position, spec) evaluated over ``frame``."""
    types = frame.types
    columns = list(types)
    found: dict[int, Outcome] = {}
    slots: dict[int, list[int]] = {}
    one = _Pass()
    for i, spec in specs:
        check_supported(spec)
        kind, kw = spec["type"], spec["kwargs"]
        named = set(_value_columns(spec)) | _condition_columns(kw.get("row_condition"))
        if named - set(columns):
            error = "list index out of range" if kind.endswith("to_be_of_type") else None
            info = {"raised_exception": True, "exception_message": error} if error else {}
            found[i] = Outcome(False, {}, info)
            continue
        domain = one.cond(*_condition(kw.get("row_condition")))
        if kind == "expect_table_columns_to_match_set":
            wanted = list(kw["column_set"])
            missing = sorted(set(wanted) - set(columns))
            extra = sorted(set(columns) - set(wanted))
            ok = not missing and not (kw.get("exact_match") and extra)
            details = {"mismatched": {"unexpected": extra, "missing": missing}}
            found[i] = Outcome(ok, {"observed_value": columns, "details": details})
        elif kind == "expect_column_values_to_be_of_type":
            duck = types[kw["column"]]
            if duck == "VARCHAR":  # a text column without any value is pandas' object dtype
                slots[i] = [0, one.agg(f"count({ident(kw['column'])})")]
            elif duck in _DTYPES:
                seen = _DTYPES[duck]
                found[i] = Outcome(seen == kw["type_"], {"observed_value": seen})
            else:
                raise PovwatchError(f"column type {duck} is not checked by the SQL gates")
        elif kind == "expect_table_row_count_to_be_between":
            slots[i] = [one.agg("count(*)", domain)]
        elif kind == "expect_column_sum_to_be_between":
            slots[i] = [one.agg(f"sum({ident(kw['column'])})", domain)]
        elif kind in ("expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"):
            # Distinct hashes, the cheap test: as many as keyed rows → no key repeats; fewer →
            # repeated keys (or a hash collision), counted exactly by a second query.
            applies = one.cond(_unique_key(spec)[1], [])
            hashed = f"hash({', '.join(ident(c) for c in _value_columns(spec))})"
            slots[i] = [
                one.agg("count(*)", domain),
                one.agg("count(*)", domain, applies),
                one.agg(f"count(distinct {hashed})", domain, applies),
            ]
        else:
            bad = one.cond(*_unexpected(spec))
            slots[i] = [one.agg("count(*)", domain), one.agg("count(*)", domain, bad)]
    row = one.run(frame)

    for i, spec in specs:
        if i in found:
            continue
        kind, kw = spec["type"], spec["kwargs"]
        values = [row[s] for s in slots[i]]
        if kind == "expect_column_values_to_be_of_type":
            total, nonnull = values
            if nonnull:
                found[i] = Outcome(kw["type_"] == "str", {"observed_value": "str"})
            else:  # object dtype: every value (all missing) checked, none unexpected
                found[i] = Outcome(True, {"element_count": total, "unexpected_count": 0})
            continue
        if kind in ("expect_table_row_count_to_be_between", "expect_column_sum_to_be_between"):
            seen = values[0] or 0  # the sum of no rows is 0, as in pandas
            low, high = _bound(kw, params, "min_value"), _bound(kw, params, "max_value")
            ok = (low is None or seen >= low) and (high is None or seen <= high)
            found[i] = Outcome(ok, {"observed_value": seen})
            continue
        if kind in ("expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"):
            total, keyed, distinct = values
            bad = 0 if keyed == distinct else _repeated_rows(frame, spec)
        else:
            total, bad = values
        result = {"element_count": total, "unexpected_count": bad}
        if bad:
            result |= _offending_rows(frame, spec, types, row_ids)
        found[i] = Outcome(bad == 0, result)
    return found


def _repeated_rows(frame: Frame, spec: dict) -> int:
    """Rows of the domain whose key is repeated there (every row of a repeated value)."""
    domain, dparams = _condition(spec["kwargs"].get("row_condition"))
    key, applies = _unique_key(spec)
    query = f"""
        with frame as ({frame.sql})
        select coalesce(sum(n), 0) from (
            select count(*) as n from frame where ({domain}) and {applies}
            group by {key} having count(*) > 1
        )
    """
    return int(frame.con.execute(query, [*frame.params, *dparams]).fetchall()[0][0])


def _offending_rows(frame: Frame, spec: dict, types: dict[str, str], row_ids: list[str]) -> dict:
    """The first three unexpected rows in the frame's order: their values and row ids."""
    kind, kw = spec["type"], spec["kwargs"]
    domain, dparams = _condition(kw.get("row_condition"))
    value_cols = _value_columns(spec)
    if kind in ("expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"):
        key, applies = _unique_key(spec)
        rows_sql = f"""
            select * from (
                select *, count(*) over (partition by {key}) as _n
                from frame where ({domain}) and {applies}
            ) where _n > 1
        """
        args = [*dparams]
    else:
        bad, bparams = _unexpected(spec)
        rows_sql = f"select * from frame where ({domain}) and ({bad})"
        args = [*dparams, *bparams]
    ids = [c for c in row_ids if c in types]
    wanted = list(dict.fromkeys(value_cols + ids))
    order = f"order by {frame.order}" if frame.order else ""
    query = f"""
        with frame as ({frame.sql})
        select {", ".join(ident(c) for c in wanted)} from ({rows_sql}) as r {order} limit 3
    """
    rows = frame.con.execute(query, [*frame.params, *args]).fetchall()
    # A missing text shows as pandas shows it: nan, or None in a column without any text.
    blank = [
        c for c in wanted if types[c] == "VARCHAR" and any(r[wanted.index(c)] is None for r in rows)
    ]
    has_text = {}
    if blank:
        counts = ", ".join(f"count({ident(c)})" for c in blank)
        query = f"with frame as ({frame.sql}) select {counts} from frame"
        (seen,) = frame.con.execute(query, frame.params).fetchall()
        has_text = {c: bool(n) for c, n in zip(blank, seen, strict=True)}

    def shown(r: tuple, c: str) -> Any:
        return _shown(r[wanted.index(c)], types[c], has_text.get(c, True))

    if kind == "expect_compound_columns_to_be_unique":
        values = [{c: shown(r, c) for c in value_cols} for r in rows]
    elif len(value_cols) == 2:
        values = [tuple(shown(r, c) for c in value_cols) for r in rows]
    else:
        values = [shown(r, value_cols[0]) for r in rows]
    result: dict = {"partial_unexpected_list": values}
    if row_ids:
        result["partial_unexpected_index_list"] = [{c: shown(r, c) for c in wanted} for r in rows]
    return result
