"""A registry and identity list that arrive as several files (a province's extract) load as
one: the latest snapshot's row per person, identity rows checked once and counted per file."""

from __future__ import annotations

from pipeline.ingest.load import IngestReport, load_reference
from pipeline.months import Month
from pipeline.store.warehouse import connect, transaction
from tests.landing import certno, make_landing, person, write_csv

IDENTITY_HEADER = ["certno", "psn_no", "identity", "begin_date", "end_date", "source_dept"]


def _load(tmp_path, month="2024-03"):
    con = connect(tmp_path / "w.duckdb")
    report = IngestReport()
    with transaction(con):
        load_reference(con, tmp_path / "landing", Month.parse(month), report)
    return con, report


def _landing(tmp_path):
    landing = make_landing(tmp_path / "landing", [], {"2024-03": []})
    (landing / "persons" / "persons.csv").unlink()
    (landing / "identities" / "identities.csv").unlink()
    header = list(person("x").keys())
    # January's snapshot, then February's: P2 moved household and region in February, and
    # February's file lists P3 twice (the later row wins). April's is not in force in March.
    # P0 (February) holds P1's resident id too: an identity given by that id is P0's, the
    # first holder in psn_no order.
    write_csv(
        landing / "persons" / "2024-01" / "persons.csv",
        header,
        [person("P2", hh="H-old", seq=2), person("P1", seq=1)],
    )
    write_csv(
        landing / "persons" / "2024-02" / "persons.csv",
        header,
        [
            person("P3", hh="H-first", seq=3),
            person("P2", "370812", hh="H-new", seq=2),
            person("P3", hh="H-second", seq=3),
            person("P0", hh="H0", seq=1),
        ],
    )
    write_csv(
        landing / "persons" / "2024-04" / "persons.csv", header, [person("P9", hh="H9", seq=9)]
    )
    row = dict.fromkeys(IDENTITY_HEADER, "")
    write_csv(
        landing / "identities" / "a.csv",
        IDENTITY_HEADER,
        [
            # P1's resident id (held by P0 too), P2 by person number; an unknown code
            {**row, "certno": certno("370811", "19700101", 1), "identity": "dibao",
             "begin_date": "2024-01-01"},
            {**row, "psn_no": "P2", "identity": "tekun", "begin_date": "2023-05-01"},
            {**row, "psn_no": "P1", "identity": "rich", "begin_date": "2024-01-01"},
        ],
    )  # fmt: skip
    write_csv(landing / "identities" / "b.csv", IDENTITY_HEADER, [])  # header only
    write_csv(
        landing / "identities" / "c.csv",
        IDENTITY_HEADER,
        [
            # P9 is only in April's snapshot: not a person of March's registry; a bad date;
            # P3 by resident id
            {**row, "psn_no": "P9", "identity": "dibao", "begin_date": "2024-01-01"},
            {**row, "psn_no": "P1", "identity": "dibao", "begin_date": "2024-13-01"},
            {**row, "certno": certno("370811", "19700101", 3), "identity": "dibao_edge",
             "begin_date": "2024-02-01", "end_date": "2024-12-31"},
        ],
    )  # fmt: skip
    # dates as the platform (20240105) and a spreadsheet (… 00:00:00, 2024/1/5) write them
    write_csv(
        landing / "identities" / "d.csv",
        IDENTITY_HEADER,
        [
            {**row, "psn_no": "P0", "identity": "monitor_edge", "begin_date": "20240105",
             "end_date": "2024-12-31 00:00:00"},
            {**row, "psn_no": "P2", "identity": "dibao_edge", "begin_date": "2024/1/5",
             "end_date": "20241231"},
        ],
    )  # fmt: skip
    return landing


def test_the_latest_snapshot_in_force_gives_each_persons_row(tmp_path):
    _landing(tmp_path)
    con, report = _load(tmp_path)
    assert con.sql(
        "select psn_no, hh_id, insuplc_admdvs, source_file, source_row from ref_persons"
    ).fetchall() == [  # stored in psn_no order
        ("P0", "H0", "370811", "persons/2024-02/persons.csv", 5),
        ("P1", "HP1", "370811", "persons/2024-01/persons.csv", 3),
        ("P2", "H-new", "370812", "persons/2024-02/persons.csv", 3),
        ("P3", "H-second", "370811", "persons/2024-02/persons.csv", 4),
    ]
    persons = [(f["file"], f["rows"]) for f in report.reference_files if f["kind"] == "persons"]
    assert persons == [("persons/2024-01/persons.csv", 2), ("persons/2024-02/persons.csv", 4)]
    # January's registry where it differs from March's: P2's household and region then; P0
    # and P3 not yet registered (February's snapshot is March's registry: nothing stored)
    assert con.sql(
        "select from_month, psn_no, present, hh_id, insuplc_admdvs from ref_persons_past "
        "order by all"
    ).fetchall() == [
        ("2024-01", "P0", False, None, None),
        ("2024-01", "P2", True, "H-old", "370811"),
        ("2024-01", "P3", False, None, None),
    ]
    assert con.sql("select * from ref_persons_breaks order by 1").fetchall() == [
        ("2024-01",),
        ("2024-02",),
    ]


def test_identity_files_are_checked_together_and_counted_each(tmp_path):
    _landing(tmp_path)
    con, report = _load(tmp_path)
    idents = [(f["file"], f["rows"], f["rejected"]) for f in report.reference_files]
    assert idents[2:5] == [
        ("identities/a.csv", 3, 1),
        ("identities/b.csv", 0, 0),
        ("identities/c.csv", 3, 2),
    ]
    assert con.sql(
        "select source_file, source_row, psn_no, identity from ref_identities"
    ).fetchall() == [
        ("identities/a.csv", 2, "P0", "dibao"),
        ("identities/a.csv", 3, "P2", "tekun"),
        ("identities/c.csv", 4, "P3", "dibao_edge"),
        ("identities/d.csv", 2, "P0", "monitor_edge"),
        ("identities/d.csv", 3, "P2", "dibao_edge"),
    ]
    assert con.sql(
        "select strftime(begin_date, '%Y-%m-%d'), strftime(end_date, '%Y-%m-%d') from ref_identities "
        "where source_file = 'identities/d.csv' order by source_row"
    ).fetchall() == [("2024-01-05", "2024-12-31"), ("2024-01-05", "2024-12-31")]
    assert con.sql(
        "select source_file, source_row, reason, reason_column from ref_rejects "
        "where kind = 'identities' order by all"
    ).fetchall() == [
        ("identities/a.csv", 4, "unknown_identity", "identity"),
        ("identities/c.csv", 2, "unknown_person", "psn_no"),
        ("identities/c.csv", 3, "bad_date", "begin_date"),
    ]
