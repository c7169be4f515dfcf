"""Decisions recorded between monthly runs (the povwatch_feedback DAG's call)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeline.errors import PovwatchError
from pipeline.months import Month
from pipeline.run import record_feedback, run_month
from pipeline.settings import Settings
from pipeline.store.warehouse import connect
from pipeline.warnings.cases import cases_frame

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "jining-hebei-2024"


def test_feedback_recorded_between_runs_reaches_cases(tmp_path, monkeypatch):
    monkeypatch.setenv("POVWATCH_QUALITY", "off")
    shutil.copytree(FIXTURE / "landing", tmp_path / "landing")
    settings = Settings(
        landing=tmp_path / "landing", db=tmp_path / "w.duckdb", outbox=tmp_path / "out", quiet=True
    )
    with pytest.raises(PovwatchError, match="no month has run yet"):
        record_feedback(settings)
    for month in ("2024-01", "2024-02"):
        run_month(month, settings)
    folder = tmp_path / "landing" / "feedback" / "rural_revitalization"
    folder.mkdir(parents=True)
    (folder / "back.csv").write_text(
        "warning_id,decision,decided_on,note\n"
        "2024-R-P1300002568,already_assisted,2024-02-29,\n"  # routed to 乡村振兴 (Jan)
        "2024-R-P9999999999,dibao,2024-02-10,\n",  # no such warning: rejected
        encoding="utf-8",
    )
    said: list[str] = []
    result = record_feedback(settings, progress=said.append)
    assert result["month"] == "2024-02"
    assert result["files"] and result["recorded"] == 1
    assert len(result["rejected"]) == 1 and "row 3" in result["rejected"][0]
    con = connect(settings.db, read_only=True)
    try:
        cases = cases_frame(con, Month.parse("2024-02"))[0]
    finally:
        con.close()
    row = cases.filter(cases["warning_id"] == "2024-R-P1300002568").row(0, named=True)
    assert (row["decision"], row["decided_on"]) == ("already_assisted", "2024-02-29")
