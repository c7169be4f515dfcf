"""Reports: one package per department × county (台账 XLSX, HTML, PDF, manifest) and the city
summary, written into the month's outbox; every warning explained by ``warnings.explain``."""
