"""Clocks: where the engine gets "now" from, injectable for deterministic tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

from gridflow._errors import InvalidArgument

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


def _aware(when: object, what: str) -> datetime:
    # InvalidArgument is a ValueError too: what this raised before 0.2.
    if not isinstance(when, datetime):
        raise InvalidArgument(f"{what} takes an aware datetime, got {type(when).__name__}")
    if when.tzinfo is None or when.utcoffset() is None:
        raise InvalidArgument(f"{what} needs an aware datetime, got naive {when.isoformat()}; "
                              "pass tzinfo=datetime.UTC (or any zone)")
    try:
        return when.astimezone(UTC)
    except OverflowError:
        raise InvalidArgument(f"{what}: {when.isoformat()} is outside the datetimes UTC can "
                              "hold (year 1 or 9999 moved to UTC)") from None


class FixedClock:
    """A clock that only moves when told to: for tests and demos.

    Example:
        >>> clock = FixedClock(datetime(2026, 9, 30, 9, tzinfo=UTC))
        >>> clock.advance(timedelta(days=1)).isoformat()
        '2026-10-01T09:00:00+00:00'
    """

    def __init__(self, start: datetime | None = None) -> None:
        # `is None`, not `or`: FixedClock(0) is no start time, not the default one.
        start = datetime(2026, 1, 5, 1, 0, tzinfo=UTC) if start is None else start
        self._now = _aware(start, "FixedClock(start=...)")

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Move the clock forward by ``delta`` and return the new time."""
        if not isinstance(delta, timedelta):
            raise InvalidArgument(f"FixedClock.advance takes a timedelta, got "
                                  f"{type(delta).__name__}")
        if delta < timedelta(0):
            raise InvalidArgument(f"a clock does not go backwards: advance({delta!r}); "
                                  "use set() to jump back")
        try:
            self._now = self._now + delta
        except OverflowError:
            raise InvalidArgument(f"advance({delta!r}) runs the clock past the year 9999"
                                  ) from None
        return self._now

    def set(self, when: datetime) -> datetime:
        """Jump to ``when`` (aware), forward or back; returns it in UTC."""
        self._now = _aware(when, "FixedClock.set")
        return self._now
