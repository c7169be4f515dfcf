"""The composition root's reconciliation guard: per file, rows read = loaded + duplicate +
skipped + quarantined (contract), and every row read is staged — else the run stops."""

from __future__ import annotations

import duckdb
import pytest

from pipeline.errors import PovwatchError
from pipeline.months import Month
from pipeline.run import _reconcile
from pipeline.store.warehouse import sql

FILE = "settlements/2024-03/setl_202403.csv"


@pytest.fixture
def con():
    c = duckdb.connect()
    c.execute(sql("schema/warehouse"))
    yield c
    c.close()


def _file(con, rows_read: int, statuses: list[str]) -> None:
    con.execute(
        "insert into ingested_files values ('2024-03', ?, 'sha', 1, 'csv', 'utf-8', ?)",
        [FILE, rows_read],
    )
    for i, status in enumerate(statuses, start=2):
        con.execute(
            "insert into stg_settlements (export_month, source_file, source_row, status, "
            "medfee_sumamt, psn_part_amt, maf_pay) values ('2024-03', ?, ?, ?, 100, 40, 10)",
            [FILE, i, status],
        )


def test_rows_read_equal_to_rows_staged_reconcile(con):
    _file(con, 4, ["loaded", "duplicate", "skipped", "quarantined"])
    (row,) = _reconcile(con, Month(2024, 3))
    assert (row["rows_read"], row["loaded"], row["duplicate"], row["skipped"]) == (4, 1, 1, 1)
    assert (row["quarantined"], row["burden_loaded_fen"]) == (1, 50)


@pytest.mark.parametrize("statuses", [["loaded", "loaded"], ["loaded"] * 4])
def test_rows_read_not_equal_to_rows_staged_stop_the_run(con, statuses):
    _file(con, 3, statuses)
    with pytest.raises(PovwatchError) as err:
        _reconcile(con, Month(2024, 3))
    assert str(err.value) == (
        f"{FILE}: reconciliation failed: read 3 rows but staged {len(statuses)}"
    )


def test_a_counted_month_is_counted_again_only_when_it_is_staged_again(con):
    from pipeline.ingest.load import _forget_export

    _file(con, 2, ["loaded", "loaded"])
    assert _reconcile(con, Month(2024, 3))[0]["loaded"] == 2
    # counted once: the year's staged rows are not read again by the next run
    con.execute("update stg_settlements set status = 'duplicate' where source_row = 3")
    assert _reconcile(con, Month(2024, 3))[0]["loaded"] == 2
    # the export read again (changed file): staged and counted anew
    _forget_export(con, "2024-03")
    _file(con, 3, ["loaded", "skipped", "quarantined"])
    (row,) = _reconcile(con, Month(2024, 3))
    assert (row["rows_read"], row["loaded"], row["skipped"], row["quarantined"]) == (3, 1, 1, 1)
