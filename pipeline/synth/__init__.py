"""Synth: a synthetic city (registry, identities, income, monthly exports) for demo, tests, bench."""
