"""Clocks: where the engine gets "now" from, injectable for deterministic tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "FixedClock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """Anything with a ``now()`` that returns an aware UTC datetime.

    Example:
        >>> class Noon:
        ...     def now(self):
        ...         return datetime(2026, 1, 1, 12, tzinfo=UTC)
        >>> isinstance(Noon(), Clock)
        True
    """

    def now(self) -> datetime: ...


class SystemClock:
    """The real wall clock, in UTC.

    Example:
        >>> SystemClock().now().tzinfo is UTC
        True
    """

    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that only moves when told to: for tests and demos.

    Example:
        >>> clock = FixedClock(datetime(2026, 9, 30, 9, tzinfo=UTC))
        >>> clock.advance(timedelta(days=1)).isoformat()
        '2026-10-01T09:00:00+00:00'
    """

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime(2026, 1, 5, 1, 0, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError(
                f"FixedClock needs an aware datetime, got naive {start.isoformat()}; "
                "pass tzinfo=datetime.UTC (or any zone)"
            )
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Move the clock forward by ``delta`` and return the new time."""
        if delta < timedelta(0):
            raise ValueError(f"a clock does not go backwards: advance({delta!r})")
        self._now = self._now + delta
        return self._now

    def set(self, when: datetime) -> datetime:
        """Jump to ``when`` (aware), forward or back; returns it in UTC."""
        if when.tzinfo is None:
            raise ValueError(f"FixedClock.set needs an aware datetime, got {when.isoformat()}")
        self._now = when.astimezone(UTC)
        return self._now
