"""Ingest throughput per format (child process of ``bench.run``).

``python -m bench.throughput ROOT YEAR``: reads one district file of a GB18030 CSV month and of
a Parquet month with povwatch's reader, and an XLSX sample (written once with the synthetic
city's XLSX writer, cached beside the landing folder); prints rows/s and MB/s per format.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

XLSX_SAMPLE_PERSONS = 100_000


def main() -> None:
    root, year = Path(sys.argv[1]), int(sys.argv[2])
    from pipeline.ingest.load import SETTLEMENTS
    from pipeline.ingest.readers import read_file

    landing = root / "landing"
    sample = root / "xlsx-sample" / "settlements" / f"{year}-06" / "setl.xlsx"
    if not sample.is_file():
        from pipeline.synth import city as c

        sample.parent.mkdir(parents=True, exist_ok=True)
        c._write_xlsx(c._build(XLSX_SAMPLE_PERSONS, 7, year).exports[6], sample, year)
    files = {
        "csv_gb18030": landing / "settlements" / f"{year}-12" / f"setl_{year}12_d00.csv",
        "parquet": landing / "settlements" / f"{year}-11" / f"setl_{year}11_d00.parquet",
        "xlsx": sample,
    }
    out = {}
    for fmt, path in files.items():
        t = time.perf_counter()
        result = read_file(path, SETTLEMENTS, path.parents[2])
        s = time.perf_counter() - t
        out[fmt] = {
            "rows": result.rows,
            "mb": round(path.stat().st_size / 1e6, 1),
            "seconds": round(s, 2),
            "rows_per_s": round(result.rows / s),
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
