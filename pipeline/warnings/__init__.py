"""Warnings: year-to-date burden, the rules that flag it, and the factor simulation."""
