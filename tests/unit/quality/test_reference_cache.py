"""Reference suites are validated again only when the reference inputs change."""

from __future__ import annotations

from pipeline.quality import gates as quality
from pipeline.quality.gates import CheckResult, reference_results
from pipeline.store.warehouse import connect


def test_reference_suite_results_come_from_the_cache_until_the_inputs_change(tmp_path, monkeypatch):
    calls = []

    def fake_validate(table, frame, limits=None):
        calls.append(table)
        return [CheckResult(table, f"check {len(calls)}", True, "0 of 2 rows unexpected")]

    monkeypatch.setattr(quality, "validate_frame", fake_validate)
    monkeypatch.setattr(quality, "read_frame", lambda con, table, month=None: None)
    con = connect(tmp_path / "w.duckdb")

    # No digest on record (a warehouse loaded before ref_state existed): always validated.
    first = reference_results(con, "ref_persons")
    assert reference_results(con, "ref_persons") != first
    assert calls == ["ref_persons", "ref_persons"]

    con.execute("insert into ref_state values ('digest-1')")
    a = reference_results(con, "ref_persons")
    assert reference_results(con, "ref_persons") == a  # cached: same results, no validation
    assert len(calls) == 3
    assert a == [CheckResult("ref_persons", "check 3", True, "0 of 2 rows unexpected")]

    con.execute("update ref_state set inputs_digest = 'digest-2'")
    b = reference_results(con, "ref_persons")
    assert len(calls) == 4 and b[0].check == "check 4"  # new inputs: validated again
