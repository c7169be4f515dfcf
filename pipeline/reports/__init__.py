"""Reports: the department 台账 and the city summary, written into the month's outbox."""
