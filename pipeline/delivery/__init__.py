"""Delivery: getting each department's package from the outbox to where it is read."""
