"""Quality: Great Expectations batch gates and the quarantine of rows that cannot be used."""
