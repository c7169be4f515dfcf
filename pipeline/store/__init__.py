"""Storage: the DuckDB warehouse (connection, transactions, schema) and the run ledger."""
