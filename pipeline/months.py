"""Calendar months as the pipeline's clock: parsing, ranges and month ends."""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True, order=True)
class Month:
    """A calendar month, ordered; ``str(m)`` is ``YYYY-MM``."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        m = _MONTH.match(text.strip())
        if not m or not 1 <= int(m.group(2)) <= 12:
            raise ValueError(f"not a month (expected YYYY-MM): {text!r}")
        return cls(int(m.group(1)), int(m.group(2)))

    @classmethod
    def of(cls, day: dt.date) -> Month:
        return cls(day.year, day.month)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def first_day(self) -> dt.date:
        return dt.date(self.year, self.month, 1)

    @property
    def last_day(self) -> dt.date:
        return dt.date(self.year, self.month, calendar.monthrange(self.year, self.month)[1])

    @property
    def index(self) -> int:
        """Months since year 0: handy as a compact integer key."""
        return self.year * 12 + self.month - 1

    def plus(self, months: int) -> Month:
        i = self.index + months
        return Month(i // 12, i % 12 + 1)

    def through(self, last: Month) -> list[Month]:
        """Every month from this one to ``last``, both included."""
        return [self.plus(k) for k in range(last.index - self.index + 1)]
