"""Reference tables reloaded only when their inputs change; files hashed only when changed."""

from __future__ import annotations

import os

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


def test_file_hashed_again_only_when_size_or_mtime_changes(tmp_path):
    con = connect(tmp_path / "w.duckdb")
    path = tmp_path / "a.csv"
    path.write_bytes(b"abc")
    assert file_sha256(con, path) == sha256_of(path)
    # Same size and mtime: the recorded digest is trusted (here deliberately stale).
    st = path.stat()
    path.write_bytes(b"xyz")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert file_sha256(con, path) != sha256_of(path)
    # A new mtime: hashed again.
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert file_sha256(con, path) == sha256_of(path)
