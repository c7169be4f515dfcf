"""Warnings: year-to-date burden, the rules that flag it, why a person is (not) warned
(explain), the factor simulation, and each warning's lifecycle with the decisions fed back
(cases)."""
