"""The warehouse stage of one month alone: what the Airflow DAG's ``compute_month`` task runs.

``python -m bench.warehouse_stage MONTH LANDING DB OUTBOX`` (child process of ``bench.run``).
The variants judged without their reports (``povwatch_run_nogates``, ``povwatch_month1``) run
this instead of ``povwatch run``: the same stages and progress lines up to the commit, so the
benchmark does not spend minutes writing packages whose time it then subtracts.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main() -> None:
    from pipeline.run import compute_month
    from pipeline.settings import Settings

    month, landing, db, outbox = sys.argv[1:5]
    settings = Settings(landing=Path(landing), db=Path(db), outbox=Path(outbox))
    result = compute_month(month, settings)
    print(f"[{month}] done in {result.seconds:.1f} s: {result.warnings} warnings", file=sys.stderr)


if __name__ == "__main__":
    main()
