"""The month's warnings: flag every person against the rules in force, with first_month/status."""

from __future__ import annotations

import duckdb
import polars as pl

from pipeline.months import Month
from pipeline.warnings import state
from pipeline.warnings.burden import (
    _SQL_MEASURES,
    _SQL_SUMS,
    MEASURE_COLUMNS,
    burden_as_of_sql,
    burden_history,
    per_export_sql,
    store_year_to_date,
)
from pipeline.warnings.rules import flag, identities_by_month

# mart_warnings, one row per person and warning type; then what the report needs besides.
WARNING_SCHEMA: dict[str, pl.DataType] = {
    "month": pl.String,
    "psn_no": pl.String,
    "hh_id": pl.String,
    "admdvs": pl.String,
    "warning_type": pl.String,
    "rule_id": pl.String,
    "burden_ytd_fen": pl.Int64,
    "threshold_fen": pl.Int64,
    "first_month": pl.String,
    "status": pl.String,
    "policy_id": pl.String,
    "policy_version": pl.String,
    "income_admdvs": pl.String,
    "income_year": pl.Int32,
    "income_scope": pl.String,
    "identities": pl.String,
    "rural": pl.Int32,
    "insutype": pl.String,
}
WARNING_COLUMNS = list(WARNING_SCHEMA)[:-2]  # the mart's columns (not rural, insutype)


def people_sql(
    con: duckdb.DuckDBPyConnection,
    persons: pl.Series | None = None,
    *,
    households: bool = False,
) -> pl.DataFrame:
    """The registry's columns the rules need — psn_no, hh_id, admdvs, insutype, rural and
    hh_size (the household's members in the registry; null without a household) — for
    ``persons`` (None: the whole registry), and with ``households`` for every member of
    their households too. Read in DuckDB: a province's registry is not copied out for a few
    thousand persons."""
    columns = "psn_no, hh_id, insuplc_admdvs as admdvs, insutype, rural"
    if persons is None:
        return con.sql(
            f"""
            select {columns}, s.hh_size from ref_persons
            left join (
                select hh_id, count(*) as hh_size from ref_persons
                where hh_id is not null group by hh_id
            ) s using (hh_id)
            """
        ).pl()
    # read by name in the SQL below (warehouse.py, "Frames into SQL")
    _wanted = pl.DataFrame({"psn_no": persons.unique()}).to_arrow()  # noqa: F841
    if households:  # every member of the households: their count is the household's size
        query = f"""
            with hh as (
                select distinct hh_id from ref_persons semi join _wanted using (psn_no)
                where hh_id is not null
            ),
            p as (
                select {columns} from ref_persons
                where psn_no in (select psn_no from _wanted) or hh_id in (select hh_id from hh)
            )
            select p.*, s.hh_size from p left join (
                select hh_id, count(*) as hh_size from p where hh_id is not null group by hh_id
            ) s using (hh_id)
        """
    else:
        query = f"""
            with p as (select {columns} from ref_persons semi join _wanted using (psn_no))
            select p.*, s.hh_size from p left join (
                select hh_id, count(*) as hh_size from ref_persons
                where hh_id in (select hh_id from p) group by hh_id
            ) s using (hh_id)
        """
    return con.sql(query).pl()


def people_by_month(
    con: duckdb.DuckDBPyConnection, persons: pl.Series, months: list[Month]
) -> pl.DataFrame:
    """:func:`people_sql` of ``persons`` as the registry in force in each of ``months`` had
    them (ref_persons_past), with ``m``; a person not yet in the registry that month has no
    row. When the registry did not change in those months: :func:`people_sql` (no ``m``)."""
    wanted = [str(x) for x in months]
    _wanted = pl.DataFrame({"psn_no": persons.unique()}).to_arrow()  # noqa: F841 (SQL)
    changed = con.execute(
        "select count(*) from ref_persons_past semi join _wanted using (psn_no) "
        "where from_month <= ?",
        [max(wanted)],
    ).fetchone()
    if not changed or changed[0] == 0:
        return people_sql(con, persons)
    _months = pl.DataFrame({"m": wanted}).to_arrow()  # noqa: F841 (read by name in SQL)
    return con.sql(
        """
        with mb as (
            select m, (select max(from_month) from ref_persons_breaks where from_month <= m) as b
            from _months
        ),
        past as (select * from ref_persons_past semi join _wanted using (psn_no)),
        final as (
            select psn_no, hh_id, insuplc_admdvs as admdvs, insutype, rural
            from ref_persons semi join _wanted using (psn_no)
        ),
        rows as (
            select mb.m, f.* from final as f cross join mb
            where not exists (
                select 1 from past as p where p.psn_no = f.psn_no and p.from_month = mb.b)
            union all
            select mb.m, p.psn_no, p.hh_id, p.insuplc_admdvs, p.insutype, p.rural
            from past as p join mb on p.from_month = mb.b
            where p.present
        ),
        -- a household's size in month m: the registry then in force (ref_persons, less the
        -- persons whose row differed then, plus their row then)
        households as (select distinct hh_id from rows where hh_id is not null),
        now_size as (
            select hh_id, count(*) as n from ref_persons
            where hh_id in (select hh_id from households) group by hh_id
        ),
        moved_out as (
            select mb.m, f.hh_id, count(*) as n
            from ref_persons_past as p join mb on p.from_month = mb.b
            join ref_persons as f using (psn_no)
            where f.hh_id in (select hh_id from households)
            group by all
        ),
        moved_in as (
            select mb.m, p.hh_id, count(*) as n
            from ref_persons_past as p join mb on p.from_month = mb.b
            where p.present and p.hh_id in (select hh_id from households)
            group by all
        )
        select r.psn_no, r.m, r.hh_id, r.admdvs, r.insutype, r.rural,
            case when r.hh_id is not null then
                coalesce(s.n, 0) - coalesce(o.n, 0) + coalesce(i.n, 0) end as hh_size
        from rows as r
        left join now_size as s using (hh_id)
        left join moved_out as o using (m, hh_id)
        left join moved_in as i using (m, hh_id)
        order by r.psn_no, r.m
        """
    ).pl()


def compute_warnings(
    con: duckdb.DuckDBPyConnection, m: Month, rules: pl.DataFrame, *, store: bool = False
) -> pl.DataFrame:
    """The month's warnings: one row per person and warning type, sorted by psn_no.

    ``store``: keep the running totals and first flags through ``m`` for the next month
    (``state.py``; the month's run does, inside its transaction). Without it nothing is
    written (read-only connections).
    """
    # Sums per person are taken inside DuckDB. With person rules only, a person whose every
    # measure is at most the lowest threshold is flagged by no rule: those stay in DuckDB
    # (household rules need every member's burden).
    lowest = rules["threshold_fen"].min() if rules.height else None
    person_rules = lowest is not None and (rules["unit"] == "person").all()
    above = int(lowest) if person_rules else None
    burden = store_year_to_date(con, m, above) if store else burden_as_of_sql(con, m, above)
    people = people_sql(con, burden["psn_no"] if person_rules else None)
    identities = con.sql("select psn_no, identity, begin_date, end_date from ref_identities").pl()
    now = flag(burden, people, identities_by_month(identities, [m]), rules)
    first = _first_flags(con, m, now, people, identities, rules, store=store)
    if now.height == 0:
        return pl.DataFrame(schema=WARNING_SCHEMA)
    return (
        now.join(first, on=["psn_no", "warning_type"], how="left")
        .with_columns(
            pl.lit(str(m)).alias("month"),
            pl.when(pl.col("first_month") == str(m))
            .then(pl.lit("new"))
            .otherwise(pl.lit("continuing"))
            .alias("status"),
            pl.col("identities").list.join(",").alias("identities"),
        )
        .select(*WARNING_SCHEMA)
        .sort("psn_no", "warning_type")
    )


def _first_flags(
    con: duckdb.DuckDBPyConnection,
    m: Month,
    now: pl.DataFrame,
    people: pl.DataFrame,
    identities: pl.DataFrame,
    rules: pl.DataFrame,
    *,
    store: bool,
) -> pl.DataFrame:
    """(psn_no, warning_type, first_month) for the flags of ``now``: the first month of the
    year each was flagged. From the stored first flags through the month before when they
    still hold; else the year's flags are computed again (and stored when ``store``)."""
    keys = now.select("psn_no", "warning_type").unique()
    prev = m.plus(-1)
    if m.month == 1:
        stored = pl.DataFrame(schema=_FIRST_SCHEMA)
    elif state.valid(con, "first", prev, state.first_fingerprint(con, prev, rules)):
        stored = con.execute(
            "select psn_no, warning_type, first_month from state_first where through_month = ?",
            [str(prev)],
        ).pl()
    elif rules.height == 0:
        stored = pl.DataFrame(schema=_FIRST_SCHEMA)  # no rule, no flag
    elif (rules["unit"] == "person").all():
        stored = None  # the year's flags, from cumulative sums per export month (below)
    else:
        # Household rules: replay the year for the households warned now (no store).
        if store:
            state.replace(con, "first", m, None)
        return _replay(con, m, now, people, identities, rules)
    if stored is None:
        year = _year_flags(con, m, identities, rules)
        firsts = year.group_by("psn_no", "warning_type").agg(pl.col("m").min().alias("first_month"))
    else:
        firsts = pl.concat(
            [
                stored.cast(_FIRST_SCHEMA),
                keys.join(stored, on=["psn_no", "warning_type"], how="anti").with_columns(
                    pl.lit(str(m)).alias("first_month")
                ),
            ]
        )
    if store:
        state.replace(con, "first", m, state.first_fingerprint(con, m, rules))
        _firsts = firsts.to_arrow()  # noqa: F841 (read by name in SQL)
        con.execute(
            "insert into state_first select $m, psn_no, warning_type, first_month from _firsts",
            {"m": str(m)},
        )
    return keys.join(firsts, on=["psn_no", "warning_type"], how="left")


_FIRST_SCHEMA = {"psn_no": pl.String, "warning_type": pl.String, "first_month": pl.String}


def _year_flags(
    con: duckdb.DuckDBPyConnection, m: Month, identities: pl.DataFrame, rules: pl.DataFrame
) -> pl.DataFrame:
    """Every person rule's flags in every month of the year up to ``m``: the cumulative sums
    per export month (in DuckDB), for the persons and months where some measure is over the
    lowest threshold (no rule flags the others)."""
    lowest = int(rules["threshold_fen"].min())
    cums = ", ".join(f"sum({c}) over w as {c}" for c in MEASURE_COLUMNS)
    bounds = ", ".join(f"sum(greatest({e}, 0))" for e in _SQL_MEASURES.values())
    burden = con.execute(
        f"""
        with year_rows as not materialized (
            select psn_no, export_month, psn_part_amt, maf_pay, fulamt_ownpay_amt
            from stg_settlements
            where status = 'loaded' and export_month between $jan and $month
              and cost_year = $year
        ),
        -- a year to date is at most the sum of the person's positive amounts: the persons
        -- whose every such bound is at most the lowest threshold are never flagged
        bounded as (
            select psn_no from year_rows group by psn_no
            having greatest({bounds}) > $lowest
        ),
        per_export as (
            select psn_no, cast(substr(export_month, 6, 2) as integer) as k, {_SQL_SUMS}
            from year_rows semi join bounded using (psn_no)
            group by psn_no, export_month
        ),
        cum as (
            select psn_no, k, lead(k) over (partition by psn_no order by k) as next_k, {cums}
            from per_export
            window w as (partition by psn_no order by k rows unbounded preceding)
        ),
        over as (
            select * from cum where greatest({", ".join(MEASURE_COLUMNS)}) > $lowest
        )
        select psn_no, printf('%d-%02d', $year, mm) as m, {", ".join(MEASURE_COLUMNS)}
        from over, unnest(range(k, coalesce(next_k, $end))) as t(mm)
        """,
        {
            "jan": str(Month(m.year, 1)),
            "month": str(m),
            "year": m.year,
            "lowest": lowest,
            "end": m.month + 1,
        },
    ).pl()
    months = Month(m.year, 1).through(m)
    persons = burden["psn_no"].unique()
    mine = identities.filter(pl.col("psn_no").is_in(persons.implode()))
    people = people_by_month(con, persons, months)
    return flag(burden, people, identities_by_month(mine, months), rules)


def _replay(
    con: duckdb.DuckDBPyConnection,
    m: Month,
    now: pl.DataFrame,
    people: pl.DataFrame,
    identities: pl.DataFrame,
    rules: pl.DataFrame,
) -> pl.DataFrame:
    """first_month by replaying the months of the year for the persons warned now, the
    members of their households, and whoever shared a household with them in an earlier month
    of the year (household rules sum the members a household had then)."""
    months = Month(m.year, 1).through(m)
    members = people.filter(pl.col("hh_id").is_in(now["hh_id"].implode()))["psn_no"]
    replay = _household_circle(con, members) if now.height else members.clear()
    history = flag(
        burden_history(None, replay, m, per_export_sql(con, replay, m)),
        people_by_month(con, replay, months),
        identities_by_month(identities.filter(pl.col("psn_no").is_in(replay.implode())), months),
        rules,
    )
    return history.group_by("psn_no", "warning_type").agg(pl.col("m").min().alias("first_month"))


def _household_circle(con: duckdb.DuckDBPyConnection, persons: pl.Series) -> pl.Series:
    """``persons`` and everyone who was in one of their households in some month of the year
    so far: the registry in force now (ref_persons) or in an earlier month (ref_persons_past,
    only where it differed). Sorted, so the replay reads the same rows in the same order."""
    _persons = pl.DataFrame({"psn_no": persons.unique()}).to_arrow()  # noqa: F841 (SQL)
    return con.sql(
        """
        with registry as (
            select psn_no, hh_id from ref_persons
            union all
            select psn_no, hh_id from ref_persons_past where present
        ),
        households as (
            select distinct hh_id from registry semi join _persons using (psn_no)
            where hh_id is not null
        )
        select psn_no from _persons
        union
        select psn_no from registry semi join households using (hh_id)
        order by psn_no
        """
    ).pl()["psn_no"]


def warning_id_expr() -> pl.Expr:
    """预警编号: stable for a person, warning type and year (contract: feedback).

    ``<year>-R-<psn_no>`` for relapse, ``<year>-I-<psn_no>`` for impoverishment; needs the
    columns ``month`` (YYYY-MM), ``warning_type`` and ``psn_no``.
    """
    kind = pl.when(pl.col("warning_type") == "relapse").then(pl.lit("R")).otherwise(pl.lit("I"))
    return pl.format("{}-{}-{}", pl.col("month").str.slice(0, 4), kind, pl.col("psn_no")).alias(
        "warning_id"
    )
