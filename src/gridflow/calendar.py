"""Calendars: how a deadline of "N days" is counted."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

__all__ = ["Calendar", "CalendarDays"]


@runtime_checkable
class Calendar(Protocol):
    """Counts deadlines: ``add(start, delta)`` is when ``delta`` from ``start`` ends.

    Whole days of ``delta`` are counted in the calendar's own days (calendar
    days, or working days); the rest (hours, minutes) is added as time.

    Example:
        >>> from datetime import UTC
        >>> CalendarDays().add(datetime(2026, 1, 1, tzinfo=UTC), timedelta(days=2)).day
        3
    """

    def add(self, start: datetime, delta: timedelta) -> datetime: ...


class CalendarDays:
    """Every day counts: ``add`` is plain datetime arithmetic (the default).

    Example:
        >>> from datetime import UTC
        >>> CalendarDays().add(datetime(2026, 9, 30, tzinfo=UTC), timedelta(days=1)).isoformat()
        '2026-10-01T00:00:00+00:00'
    """

    def add(self, start: datetime, delta: timedelta) -> datetime:
        return start + delta

    def __repr__(self) -> str:
        return "CalendarDays()"
