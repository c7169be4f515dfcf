"""Assistance: medical-assistance entitlement under a policy's assistance section."""
