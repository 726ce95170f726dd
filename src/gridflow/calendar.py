"""Calendars: how a deadline of "N days" is counted.

Two calendars ship with gridflow:

- `CalendarDays` (the engine's default): every day counts; ``add`` is plain
  datetime arithmetic.
- `WorkingDays`: only working days count, in the calendar's own time zone
  (default Asia/Shanghai). `WorkingDays.china` knows mainland China's public
  holidays **and** the make-up working weekends (调休) from the
  ``chinese-calendar`` package (``pip install 'gridflow[china]'``);
  ``WorkingDays(holidays=..., workdays=...)`` takes one's own lists.

The counting rule of `WorkingDays` follows how Chinese law and the 12345
hotlines count a period of "N working days" (期间开始的日不计算在期间内; the
period ends at 24:00 of its last day): the day the clock starts on is not
counted, and the deadline is the **end of the Nth working day after it**, in
local time. A case dispatched on Friday afternoon with 1 working day is due
at the end of Monday, whatever the hour it was dispatched, and a case
received on a holiday still gets N full working days.

Stored times stay UTC: `WorkingDays.add` takes and returns aware datetimes
and only uses the time zone to decide which local day an instant falls on.

This module is ``gridflow.calendar``; it never needs the standard library's
``calendar`` module, so the shared name is harmless (absolute imports keep
``import calendar`` elsewhere pointing at the standard library).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Protocol, runtime_checkable

from gridflow._errors import CalendarError

__all__ = ["Calendar", "CalendarDays", "WorkingDays"]

_ONE_DAY = timedelta(days=1)


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

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CalendarDays)

    def __hash__(self) -> int:
        return hash(CalendarDays)


def _zone(tz: str | tzinfo) -> tzinfo:
    if not isinstance(tz, str):
        return tz
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CalendarError(
            f"unknown time zone {tz!r}; use an IANA name such as 'Asia/Shanghai' "
            "(on systems without a zone database, pip install tzdata)") from exc


def _as_date(value: date | str, what: str) -> date:
    if isinstance(value, datetime):
        # A datetime is a date subclass; accepting it would silently drop its time zone.
        raise CalendarError(f"{what}: {value!r} is a datetime; give dates (datetime.date)")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise CalendarError(f"{what}: {value!r} is not a date; give datetime.date or 'YYYY-MM-DD'")


class WorkingDays:
    """Counts deadlines in working days, in a time zone (default Asia/Shanghai).

    A day is a working day if it is listed in ``workdays`` (make-up working
    days, 调休上班), else if it is not listed in ``holidays`` and its weekday
    is not in ``weekend`` (Monday is 0; the default weekend is Saturday and
    Sunday).

    ``covers`` is the inclusive range of dates the lists are known to be
    complete for. By default it is every whole calendar year the lists
    mention (lists for 2025 cover 2025-01-01..2025-12-31); with no lists at
    all it is unbounded (a plain Monday-to-Friday calendar). Counting
    through a date outside ``covers`` raises `CalendarError`: a holiday that
    nobody listed is never counted as a working day.

    ``add(start, delta)`` with ``delta`` of N whole days returns the end of
    the Nth working day after the local day of ``start`` (24:00 local time,
    i.e. 00:00 of the next day, as an aware UTC datetime); the rest of
    ``delta`` (hours, minutes) is added after that as plain time. A
    ``delta`` of less than a day is plain time from ``start``.

    Example:
        >>> from datetime import UTC
        >>> cal = WorkingDays(holidays=["2025-10-01", "2025-10-02", "2025-10-03"],
        ...                   workdays=["2025-09-28"])
        >>> cal.is_working_day(date(2025, 9, 28))   # a make-up Sunday
        True
        >>> friday = datetime(2025, 9, 26, 7, 30, tzinfo=UTC)  # 15:30 in Shanghai
        >>> cal.add(friday, timedelta(days=1)).isoformat()  # end of Sunday the 28th
        '2025-09-28T16:00:00+00:00'
        >>> cal.add(friday, timedelta(days=4)).isoformat()  # Sep 28, 29, 30, Oct 6
        '2025-10-06T16:00:00+00:00'
    """

    __slots__ = ("_first", "_holidays", "_last", "_tz", "_weekend", "_workdays", "_zone_name")

    def __init__(
        self,
        holidays: Iterable[date | str] = (),
        workdays: Iterable[date | str] = (),
        *,
        tz: str | tzinfo = "Asia/Shanghai",
        weekend: Iterable[int] = (5, 6),
        covers: tuple[date | str, date | str] | None = None,
    ) -> None:
        self._holidays = frozenset(_as_date(d, "holidays") for d in holidays)
        self._workdays = frozenset(_as_date(d, "workdays") for d in workdays)
        both = self._holidays & self._workdays
        if both:
            listed = ", ".join(sorted(d.isoformat() for d in both))
            raise CalendarError(f"dates listed both as holidays and as workdays: {listed}; "
                                "each date is one or the other")
        self._weekend = frozenset(weekend)
        if not self._weekend <= set(range(7)):
            raise CalendarError(f"weekend must hold weekday numbers 0 (Monday) to 6 (Sunday), "
                                f"got {sorted(self._weekend)}")
        self._tz = _zone(tz)
        self._zone_name = tz if isinstance(tz, str) else str(tz)
        if covers is not None:
            first, last = _as_date(covers[0], "covers"), _as_date(covers[1], "covers")
            if last < first:
                raise CalendarError(f"covers ends ({last}) before it starts ({first})")
        elif self._holidays or self._workdays:
            years = [d.year for d in self._holidays | self._workdays]
            first, last = date(min(years), 1, 1), date(max(years), 12, 31)
        else:
            first, last = date.min, date.max
        self._first, self._last = first, last

    @classmethod
    def china(
        cls,
        *,
        tz: str | tzinfo = "Asia/Shanghai",
        holidays: Iterable[date | str] = (),
        workdays: Iterable[date | str] = (),
        until: date | str | None = None,
    ) -> WorkingDays:
        """Mainland China's working days: public holidays and make-up working
        weekends (调休) as published by the State Council, from the
        ``chinese-calendar`` package (``pip install 'gridflow[china]'``).

        The calendar covers the years the installed ``chinese-calendar``
        knows; a newer release of the package knows the next year once the
        State Council has published it. Until then, ``holidays``,
        ``workdays`` and ``until`` add dates and extend the coverage by hand.

        Example:
            >>> cal = WorkingDays.china()
            >>> cal.is_working_day(date(2025, 10, 8)), cal.is_working_day(date(2025, 10, 11))
            (False, True)
            >>> cal.covers[0]
            datetime.date(2004, 1, 1)
        """
        try:
            import chinese_calendar
        except ImportError as exc:
            raise CalendarError(
                "WorkingDays.china() needs the chinese-calendar package: "
                "pip install 'gridflow[china]'") from exc
        known_holidays = set(chinese_calendar.holidays)
        known_workdays = set(chinese_calendar.workdays)
        extra_holidays = {_as_date(d, "holidays") for d in holidays}
        extra_workdays = {_as_date(d, "workdays") for d in workdays}
        # Dates given by hand win over the library's (a corrected notice, a local rule).
        all_holidays = (known_holidays - extra_workdays) | extra_holidays
        all_workdays = (known_workdays - extra_holidays) | extra_workdays
        years = [d.year for d in known_holidays]
        first, last = date(min(years), 1, 1), date(max(years), 12, 31)
        if until is not None:
            last = max(last, _as_date(until, "until"))
        return cls(all_holidays, all_workdays, tz=tz, covers=(first, last))

    # -- looking at days ---------------------------------------------------------

    @property
    def tz(self) -> tzinfo:
        """The time zone days are counted in.

        Example:
            >>> WorkingDays().tz
            zoneinfo.ZoneInfo(key='Asia/Shanghai')
        """
        return self._tz

    @property
    def covers(self) -> tuple[date, date]:
        """The inclusive range of dates this calendar knows (``date.min..date.max``: all).

        Example:
            >>> WorkingDays(holidays=["2031-05-01"]).covers
            (datetime.date(2031, 1, 1), datetime.date(2031, 12, 31))
        """
        return self._first, self._last

    def local_date(self, when: datetime) -> date:
        """The day ``when`` (aware) falls on in the calendar's time zone.

        Example:
            >>> from datetime import UTC
            >>> WorkingDays().local_date(datetime(2025, 9, 26, 17, 0, tzinfo=UTC))
            datetime.date(2025, 9, 27)
        """
        if when.tzinfo is None or when.utcoffset() is None:
            raise CalendarError(
                f"cannot count days from a naive datetime ({when.isoformat()}); gridflow "
                "stores aware UTC times: pass tzinfo=datetime.UTC")
        return when.astimezone(self._tz).date()

    def is_working_day(self, day: date) -> bool:
        """True if ``day`` is a working day; `CalendarError` outside `covers`.

        Example:
            >>> cal = WorkingDays(holidays=["2026-01-01"])
            >>> cal.is_working_day(date(2026, 1, 1)), cal.is_working_day(date(2026, 1, 2))
            (False, True)
            >>> cal.is_working_day(date(2027, 1, 4))  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            gridflow._errors.CalendarError: 2027-01-04 is outside the dates this ...
        """
        if not self._first <= day <= self._last:
            raise CalendarError(
                f"{day.isoformat()} is outside the dates this working-day calendar knows "
                f"({self._first.isoformat()}..{self._last.isoformat()}); counting on would "
                "risk treating a holiday as a working day. Upgrade chinese-calendar (for "
                "WorkingDays.china) or give the missing holidays, workdays and coverage "
                "(holidays=, workdays=, covers= or until=)")
        if day in self._workdays:
            return True
        return day not in self._holidays and day.weekday() not in self._weekend

    def nth_working_day(self, start: datetime | date, n: int) -> date:
        """The Nth working day after the (local) day of ``start``; n >= 1.

        The start day itself is never counted, working day or not.

        Example:
            >>> cal = WorkingDays.china()
            >>> cal.nth_working_day(date(2025, 9, 26), 4)   # over National Day 2025
            datetime.date(2025, 10, 9)
        """
        if n < 1:
            raise CalendarError(f"nth_working_day needs n >= 1, got {n}")
        day = self.local_date(start) if isinstance(start, datetime) else start
        found = 0
        while found < n:
            day += _ONE_DAY
            if self.is_working_day(day):
                found += 1
        return day

    def end_of_day(self, day: date) -> datetime:
        """The instant ``day`` ends in the calendar's time zone (24:00 local), in UTC.

        Example:
            >>> WorkingDays().end_of_day(date(2025, 10, 10)).isoformat()
            '2025-10-10T16:00:00+00:00'
        """
        return datetime.combine(day + _ONE_DAY, time(), self._tz).astimezone(UTC)

    # -- the Calendar protocol -----------------------------------------------------

    def add(self, start: datetime, delta: timedelta) -> datetime:
        """When ``delta`` from ``start`` ends: whole days in working days (see the class).

        Example:
            >>> from datetime import UTC
            >>> cal = WorkingDays.china()
            >>> friday = datetime(2025, 9, 26, 2, tzinfo=UTC)   # before National Day 2025
            >>> cal.add(friday, timedelta(days=5)).isoformat()   # end of Fri Oct 10, Beijing
            '2025-10-10T16:00:00+00:00'
        """
        if delta < timedelta(0):
            raise CalendarError(f"a deadline cannot be negative: {delta!r}")
        if delta.days == 0:
            self.local_date(start)  # refuse naive datetimes here too
            return start.astimezone(UTC) + delta
        due = self.nth_working_day(start, delta.days)
        return self.end_of_day(due) + timedelta(seconds=delta.seconds,
                                                microseconds=delta.microseconds)

    # -- value semantics ---------------------------------------------------------------

    def _key(self) -> tuple[object, ...]:
        return (self._holidays, self._workdays, self._weekend, self._zone_name, self._first,
                self._last)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WorkingDays) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        span = ("unbounded" if (self._first, self._last) == (date.min, date.max)
                else f"{self._first.isoformat()}..{self._last.isoformat()}")
        return (f"WorkingDays({len(self._holidays)} holidays, {len(self._workdays)} workdays, "
                f"tz={self._zone_name!r}, covers {span})")
