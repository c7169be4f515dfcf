"""Ingest: landing files of every format read into frames and loaded into the raw layer; the
departments' decisions (``feedback/``) read and row-checked."""
