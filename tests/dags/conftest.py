"""An isolated Airflow for the DAG tests: temp AIRFLOW_HOME, SQLite metadata DB, our dags/.

Airflow reads its configuration once, when ``airflow`` is first imported, so the environment
must be set before that import. Nothing under tests/ imports airflow at module level (the
DAG tests import it inside fixtures and tests), so the first import happens in
``airflow_env`` below, after the variables are set. If something imported airflow earlier,
the fixture stops with a clear message instead of testing against ~/airflow.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAGS_FOLDER = REPO / "dags"


@pytest.fixture(scope="session")
def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Configure and migrate a throwaway Airflow; yields its AIRFLOW_HOME."""
    home = tmp_path_factory.mktemp("airflow_home")
    if "airflow" in sys.modules:
        pytest.fail(
            "airflow was imported before tests/dags/conftest.py could point it at a temp "
            "AIRFLOW_HOME; import airflow only inside tests and fixtures"
        )
    mp = pytest.MonkeyPatch()
    mp.setenv("AIRFLOW_HOME", str(home))
    mp.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(DAGS_FOLDER))
    mp.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    mp.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{home / 'airflow.db'}")
    # The DAG takes its paths from these at run time; each test sets its own.
    for name in ("POVWATCH_LANDING", "POVWATCH_DB", "POVWATCH_OUTBOX"):
        mp.delenv(name, raising=False)
    # Read when the DAG file is parsed: quick retries and pokes for the tests.
    mp.setenv("POVWATCH_RETRY_DELAY_SECONDS", "1")
    mp.setenv("POVWATCH_POKE_SECONDS", "1")
    mp.setenv("POVWATCH_FEEDBACK_POKE_SECONDS", "1")
    mp.setenv("POVWATCH_FEEDBACK_WAIT_SECONDS", "3")

    from airflow.utils import db

    db.initdb()
    try:
        yield home
    finally:
        mp.undo()


@pytest.fixture(scope="session")
def dagbag(airflow_env: Path):
    """The repo's dags/ folder parsed the way the scheduler parses it."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_FOLDER))


@pytest.fixture(autouse=True)
def _batch_gates_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """The DAG tests check wiring, not the Great Expectations gates (their import costs
    seconds per task). Per test, so the setting never leaks into the rest of the session."""
    monkeypatch.setenv("POVWATCH_QUALITY", "off")
