"""Warnings: year-to-date burden, the rules that flag it, the factor simulation, and each
warning's lifecycle with the decisions fed back (cases)."""
