"""Reference tables reloaded only when their inputs change; files hashed only when changed."""

from __future__ import annotations

import os
import time
from pathlib import Path

from pipeline.ingest.digests import file_sha256
from pipeline.ingest.load import IngestReport, load_reference
from pipeline.ingest.readers import sha256_of
from pipeline.months import Month
from pipeline.store.warehouse import connect, transaction
from tests.landing import certno, make_landing, person


def _landing(tmp_path):
    return make_landing(
        tmp_path / "landing",
        [person("P1"), person("P2", seq=3)],
        {"2024-03": []},
        identities=[(certno("370811", "19700101", 3), "dibao_edge", "2023-01-01", None)],
    )


def _load(con, landing, month="2024-03") -> IngestReport:
    report = IngestReport()
    with transaction(con):
        load_reference(con, landing, Month.parse(month), report)
    return report


def test_unchanged_reference_is_kept_and_a_changed_registry_reloads(tmp_path):
    landing = _landing(tmp_path)
    con = connect(tmp_path / "w.duckdb")
    first = _load(con, landing)
    assert con.sql("select count(*) from ref_persons").fetchall() == [(2,)]
    # A marker row survives only if the tables are not reloaded.
    con.execute(
        "insert into ref_rejects (kind, source_file, source_row, reason, reason_column) values ('persons', 'marker', 0, 'x', null)"
    )
    second = _load(con, landing)
    assert second.reference_files == first.reference_files  # the ledger sees the same inputs
    assert con.sql("select count(*) from ref_rejects where source_file = 'marker'").fetchall() == [
        (1,)
    ]
    # One more person in the registry: reloaded, the marker is gone, 3 persons.
    persons = landing / "persons" / "persons.csv"
    persons.write_text(
        persons.read_text(encoding="utf-8")
        + ",".join(str(v) for v in person("P3", seq=5).values())
        + "\n",
        encoding="utf-8",
    )
    third = _load(con, landing)
    assert con.sql("select count(*) from ref_persons").fetchall() == [(3,)]
    assert con.sql("select count(*) from ref_rejects where source_file = 'marker'").fetchall() == [
        (0,)
    ]
    assert third.reference_files[0]["sha256"] == sha256_of(persons)
    assert third.reference_files[0]["sha256"] != first.reference_files[0]["sha256"]


def test_a_registry_snapshot_coming_into_force_reloads(tmp_path):
    landing = _landing(tmp_path)
    later = landing / "persons" / "persons_2024-05.csv"
    later.write_text((landing / "persons" / "persons.csv").read_text(encoding="utf-8"))
    con = connect(tmp_path / "w.duckdb")
    march = _load(con, landing, "2024-03")
    may = _load(con, landing, "2024-05")
    assert [f["file"] for f in march.reference_files if f["kind"] == "persons"] == [
        "persons/persons.csv"
    ]
    assert [f["file"] for f in may.reference_files if f["kind"] == "persons"] == [
        "persons/persons.csv",
        "persons/persons_2024-05.csv",
    ]


def _counting_hashes(monkeypatch) -> list[Path]:
    from pipeline.ingest import digests

    hashed: list[Path] = []
    real = digests.sha256_of
    monkeypatch.setattr(digests, "sha256_of", lambda p: hashed.append(p) or real(p))
    return hashed


def test_an_unchanged_file_is_not_hashed_again(tmp_path, monkeypatch):
    hashed = _counting_hashes(monkeypatch)
    con = connect(tmp_path / "w.duckdb")
    path = tmp_path / "a.csv"
    path.write_bytes(b"abc")
    assert file_sha256(con, path) == sha256_of(path)
    assert file_sha256(con, path) == sha256_of(path)
    assert hashed == [path]
    # a new mtime: hashed again
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert file_sha256(con, path) == sha256_of(path)
    assert hashed == [path, path]


def test_a_file_corrected_in_place_with_its_old_mtime_is_hashed_again(tmp_path, monkeypatch):
    """Same size, the old mtime put back (touch -r, cp -p): the write moved its ctime."""
    hashed = _counting_hashes(monkeypatch)
    con = connect(tmp_path / "w.duckdb")
    path = tmp_path / "a.csv"
    path.write_bytes(b"60000.00")
    before = file_sha256(con, path)
    st = path.stat()
    time.sleep(0.01)  # (ctime has the file system's clock granularity)
    path.write_bytes(b"50000.00")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    assert file_sha256(con, path) == sha256_of(path) != before
    assert len(hashed) == 2


def test_a_copy_put_in_its_place_is_hashed_again(tmp_path, monkeypatch):
    """Another file (another inode) renamed over it, with the same size and mtime."""
    hashed = _counting_hashes(monkeypatch)
    con = connect(tmp_path / "w.duckdb")
    path, new = tmp_path / "a.csv", tmp_path / "a.csv.new"
    path.write_bytes(b"60000.00")
    before = file_sha256(con, path)
    st = path.stat()
    new.write_bytes(b"50000.00")
    os.utime(new, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(new, path)
    assert file_sha256(con, path) == sha256_of(path) != before
    assert len(hashed) == 2


def test_digests_of_an_older_warehouse_are_taken_once_more(tmp_path, monkeypatch):
    """A cache row without ctime and inode (before they were kept): hashed again, once."""
    import duckdb

    db = tmp_path / "w.duckdb"
    path = tmp_path / "a.csv"
    path.write_bytes(b"abc")
    st = path.stat()
    old = duckdb.connect(str(db))
    old.execute(
        "create table file_digests (path varchar primary key, bytes bigint not null, "
        "mtime_ns bigint not null, sha256 varchar not null)"
    )
    old.execute(
        "insert into file_digests values (?, ?, ?, 'stale')",
        [str(path.resolve()), st.st_size, st.st_mtime_ns],
    )
    old.close()
    hashed = _counting_hashes(monkeypatch)
    con = connect(db)
    assert file_sha256(con, path) == sha256_of(path) != "stale"
    assert file_sha256(con, path) == sha256_of(path)
    assert hashed == [path]
