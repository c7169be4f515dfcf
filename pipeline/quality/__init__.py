"""Quality: batch gates (Great Expectations suites, evaluated in DuckDB) and the quarantine of
rows that cannot be used."""
