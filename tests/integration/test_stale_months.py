"""A later month run before an earlier export folder changed is named as stale until run again.

Contract: the data as of M are the export folders up to M. When a late or corrected file lands
in an earlier folder and that earlier month is run again, every later month already run was
computed from the folder as it was: `run`, `backfill`, `warnings`, `cases` and `status` say so.
"""

from __future__ import annotations

from pipeline.store.ledger import stale_months
from pipeline.store.warehouse import connect
from tests.integration.democity import povwatch
from tests.landing import make_landing, person, settlement, write_csv


def _city(tmp_path):
    p = person("P1", "370811", seq=1)
    landing = make_landing(
        tmp_path / "landing",
        [p],
        {
            "2024-01": [settlement("S1", p, "2024-01-10 09:00:00", "15000.00")],
            "2024-02": [settlement("S2", p, "2024-02-10 09:00:00", "4000.00")],
            "2024-03": [settlement("S3", p, "2024-03-10 09:00:00", "10.00")],
        },
        identities=[(p["certno"], "dibao_edge", "2023-01-01", None)],
    )
    return p, landing


ARGS = ["--landing", "landing", "--db", "w.duckdb", "--outbox", "out"]


def _stale(tmp_path) -> list[str]:
    con = connect(tmp_path / "w.duckdb", read_only=True)
    try:
        return stale_months(con)
    finally:
        con.close()


def test_a_late_file_in_january_makes_the_later_months_stale_until_run_again(tmp_path):
    p, landing = _city(tmp_path)
    a = ARGS
    done = povwatch("backfill", "--from", "2024-01", "--to", "2024-03", "-q", *a, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "note:" not in done.stderr
    assert _stale(tmp_path) == []
    # running January again on the same files changes nothing
    done = povwatch("run", "--month", "2024-01", "-q", *a, cwd=tmp_path)
    assert "note:" not in done.stderr and _stale(tmp_path) == []
    # a late file lands in January's folder: 15000 + 5000 > 18780.00 (50 % of 2022's 37560,
    # 004 §六), and February's data now hold 24000.00 > 19945.00 (before: 19000.00, no warning)
    rows = [settlement("S9", p, "2024-01-20 09:00:00", "5000.00")]
    write_csv(landing / "settlements" / "2024-01" / "setl_late.csv", list(rows[0]), rows)
    done = povwatch("run", "--month", "2024-01", "-q", *a, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == (
        "povwatch: note: 2024-02, 2024-03 were computed from settlement exports that have "
        "changed since; run them again: povwatch backfill --from 2024-02 --to 2024-03\n"
    )
    assert _stale(tmp_path) == ["2024-02", "2024-03"]
    # reading a stale month says so (its CSV as it was computed, unchanged: no warning yet)
    done = povwatch("warnings", "--month", "2024-02", "--db", "w.duckdb", cwd=tmp_path)
    assert done.stdout.count("\n") == 1
    assert done.stderr == (
        "povwatch: note: 2024-02 was computed from settlement exports that have changed "
        "since; run it again: povwatch backfill --from 2024-02 --to 2024-02\n"
    )
    done = povwatch("cases", "--month", "2024-03", *a, cwd=tmp_path)
    assert "note: 2024-03 was computed" in done.stderr
    done = povwatch("warnings", "--month", "2024-01", "--db", "w.duckdb", cwd=tmp_path)
    assert done.stderr == ""  # January itself is current
    done = povwatch("status", "--db", "w.duckdb", cwd=tmp_path)
    assert "stale: 2024-02, 2024-03 (computed from settlement exports" in done.stdout
    # February run again: March is still stale, then the backfill the note gives clears it
    done = povwatch("run", "--month", "2024-02", "-q", *a, cwd=tmp_path)
    assert "note: 2024-03 was computed" in done.stderr
    assert _stale(tmp_path) == ["2024-03"]
    done = povwatch("backfill", "--from", "2024-03", "--to", "2024-03", "-q", *a, cwd=tmp_path)
    assert "note:" not in done.stderr and _stale(tmp_path) == []
    done = povwatch("warnings", "--month", "2024-02", "--db", "w.duckdb", cwd=tmp_path)
    assert done.stdout.splitlines()[1] == (
        "2024-02,P1,HP1,370811,relapse,JN-RELAPSE-50,24000.00,19945.00,2024-01,continuing"
    )
    assert done.stderr == ""


def test_a_file_removed_from_an_earlier_folder_is_a_change_too(tmp_path):
    p, landing = _city(tmp_path)
    a = ARGS
    rows = [settlement("S9", p, "2024-01-20 09:00:00", "5000.00")]
    write_csv(landing / "settlements" / "2024-01" / "setl_late.csv", list(rows[0]), rows)
    done = povwatch("backfill", "--from", "2024-01", "--to", "2024-02", "-q", *a, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (landing / "settlements" / "2024-01" / "setl_late.csv").unlink()
    povwatch("run", "--month", "2024-01", "-q", *a, cwd=tmp_path)
    assert _stale(tmp_path) == ["2024-02"]
