"""Calendars: how a deadline of "N days" (or "N working hours") is counted.

Three calendars ship with gridflow:

- `CalendarDays` (the engine's default): every day counts; ``add`` is plain
  datetime arithmetic.
- `WorkingDays`: only working days count, in the calendar's own time zone
  (default Asia/Shanghai). `WorkingDays.china` knows mainland China's public
  holidays **and** the make-up working weekends (调休) from the
  ``chinese-calendar`` package (``pip install 'gridflow[china]'``);
  ``WorkingDays(holidays=..., workdays=...)`` takes one's own lists.
- `WorkingHours`: only working time counts — the office hours (default
  09:00–12:00 and 13:30–17:30) of the working days of a `WorkingDays`, so
  that "2 working hours" (签收时限) is exact across lunch, nights, weekends
  and 调休. It also measures working time between two instants.

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

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Protocol, runtime_checkable

from gridflow._errors import CalendarError

__all__ = ["Calendar", "CalendarDays", "WorkingDays", "WorkingHours"]

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
    if isinstance(tz, tzinfo):
        return tz
    if not isinstance(tz, str):
        # tz=True was kept as the zone, and failed only at the first deadline.
        raise CalendarError(f"tz must be an IANA time zone name such as 'Asia/Shanghai' or a "
                            f"tzinfo, got {type(tz).__name__}")
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
        for what, listed in (("holidays", holidays), ("workdays", workdays),
                             ("weekend", weekend)):
            if isinstance(listed, str | bytes) or not isinstance(listed, Iterable):
                raise CalendarError(f"{what} must be a list, got {type(listed).__name__}")
        self._holidays = frozenset(_as_date(d, "holidays") for d in holidays)
        self._workdays = frozenset(_as_date(d, "workdays") for d in workdays)
        both = self._holidays & self._workdays
        if both:
            listed = ", ".join(sorted(d.isoformat() for d in both))
            raise CalendarError(f"dates listed both as holidays and as workdays: {listed}; "
                                "each date is one or the other")
        days = list(weekend)
        # A bool is no weekday number (True would be Tuesday).
        if not all(d.__class__ is int and 0 <= d <= 6 for d in days):
            raise CalendarError(f"weekend must hold weekday numbers 0 (Monday) to 6 (Sunday), "
                                f"got {[d if d.__class__ is int else repr(d) for d in days]}")
        self._weekend = frozenset(days)
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
        if n.__class__ is not int or n < 1:
            # True counted as 1, 1.5 as 2 and nan as 0 days.
            raise CalendarError(f"nth_working_day needs an int n >= 1, got "
                                f"{type(n).__name__} {repr(n)[:40]}")
        if isinstance(start, datetime):
            day = self.local_date(start)
        elif isinstance(start, date):
            day = start
        else:
            raise CalendarError(f"nth_working_day: start must be a date or an aware datetime, "
                                f"got {type(start).__name__}")
        found = 0
        try:
            while found < n:
                day += _ONE_DAY
                if self.is_working_day(day):
                    found += 1
        except OverflowError:
            raise CalendarError(f"nth_working_day: {n:,} working days run past "
                                f"{date.max.isoformat()}, the last date there is") from None
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
        if not isinstance(delta, timedelta):
            raise CalendarError(f"add: delta must be a timedelta, got {type(delta).__name__}")
        if delta < timedelta(0):
            raise CalendarError(f"a deadline cannot be negative: {delta!r}")
        if not isinstance(start, datetime):
            raise CalendarError(f"add: start must be an aware datetime, got "
                                f"{type(start).__name__}")
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


# -- working hours ------------------------------------------------------------------------

#: The office hours of mainland China's administrations (and the issue's default).
DEFAULT_SESSIONS: tuple[tuple[str, str], ...] = (("09:00", "12:00"), ("13:30", "17:30"))

_ZERO = timedelta(0)
#: Days whose session instants are kept; a year of lookups, so a tick over many cases
#: never recomputes a day, and memory stays bounded in a long-running service.
_PLAN_CACHE_SIZE = 4096

_Spans = tuple[tuple[datetime, datetime], ...]
_Plan = tuple[_Spans, timedelta]
_NO_WORK: _Plan = ((), _ZERO)
#: More days off in a row than any real calendar has: the calendar has no working time.
_MAX_IDLE_DAYS = 366


def _as_time(value: object, what: str) -> time:
    if isinstance(value, time):
        if value.tzinfo is None:
            return value
    elif isinstance(value, str):
        try:
            parsed = time.fromisoformat(value)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is None:
                return parsed
    raise CalendarError(
        f"{what}: {value!r} is not a local time of day; give datetime.time without a "
        "time zone or 'HH:MM' (the calendar's tz= says which zone the hours are in)")


def _as_sessions(value: object) -> tuple[tuple[time, time], ...]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise CalendarError(f"sessions must be a list of (start, end) times, got {value!r}")
    out: list[tuple[time, time]] = []
    for i, pair in enumerate(value):
        if isinstance(pair, str | bytes) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise CalendarError(f"sessions[{i}] must be a (start, end) pair such as "
                                f"('09:00', '12:00'), got {pair!r}")
        start = _as_time(pair[0], f"sessions[{i}] start")
        end = _as_time(pair[1], f"sessions[{i}] end")
        if end <= start:
            raise CalendarError(
                f"sessions[{i}] ends ({end.isoformat()}) at or before it starts "
                f"({start.isoformat()}); a session is a stretch of one day with start < end")
        if out and start <= out[-1][1]:
            raise CalendarError(
                f"sessions[{i}] starts ({start.isoformat()}) at or before sessions[{i - 1}] "
                f"ends ({out[-1][1].isoformat()}); give the sessions in the order of the "
                "day, each after the previous one's end (join touching sessions into one)")
        out.append((start, end))
    if not out:
        raise CalendarError("sessions is empty; give at least one (start, end) pair such as "
                            "('09:00', '17:00')")
    return tuple(out)


def _since_midnight(t: time) -> timedelta:
    return timedelta(hours=t.hour, minutes=t.minute, seconds=t.second,
                     microseconds=t.microsecond)


class WorkingHours:
    """Counts working time: office hours on working days, in a time zone.

    Working time is every instant inside a **session** (default 09:00–12:00 and
    13:30–17:30 local time, i.e. 7 hours a day) of a working day of ``days``
    (default `WorkingDays.china`: public holidays skipped, make-up working
    weekends 调休 worked). A session is half-open: 09:00 is working time,
    12:00 is not. ``sessions`` are local ``(start, end)`` times (``time`` or
    ``'HH:MM'``), in the order of the day, each with start < end and after the
    previous one's end. ``tz`` is the zone of the sessions (default: the zone
    of ``days``, Asia/Shanghai for China).

    **add.** ``add(start, delta)`` is the *earliest* instant ``t >= start``
    with ``between(start, t) == delta``, as an aware UTC datetime. So:

    - a start outside working time (lunch, night, a holiday) waits for the next
      session: 2 working hours from 11:00 end at 14:30, from 17:00 on the
      Friday before a weekend at 10:30 on the next working day;
    - a deadline that runs out exactly at a session's end **stays there**:
      1 working hour from 11:00 is due at 12:00, not at 13:30, so the timer
      acts at 12:00 and an answer at 12:30 is late — although
      ``between(11:00, 12:30)`` is still 1 hour, lunch not counting. Judge
      "on time" by comparing with the deadline (``answered <= add(start,
      limit)``), as the timer does; ``between`` measures how long it took;
    - ``add(start, timedelta(0))`` is ``start`` itself.

    **Days.** All of ``delta`` is working time: ``timedelta(days=1)`` is 24
    working hours (3 working days and 3 hours with the default sessions). Python
    cannot tell ``timedelta(days=1)`` from ``timedelta(hours=24)`` (they are
    equal objects), so reading a day as "one working day" (7 h, or "the end of
    the next working day") would make 23 working hours end *later* than 24, and
    ``add`` would no longer be monotonic in ``delta``, nor ``between`` its inverse.
    For a limit of N working days, use `WorkingDays` (the end of the Nth working
    day, the rule of Chinese law and the 12345 hotlines), or ``N * day_length``
    for N working days' worth of working time counted from the start instant.
    Hence the engine's calendar should stay a `WorkingDays` for specs stating
    their limits in days; a deadline rule or plugin can return
    ``hours.add(now, timedelta(hours=2))``, an aware datetime.

    **Laws** (for every aware ``s``, ``d, a, b >= 0``, while the dates stay
    within `covers`): ``add`` is strictly increasing in ``delta`` (more working
    time always ends later); ``between(s, add(s, d)) == d``; ``add(add(s, a), b) ==
    add(s, a + b)``. The last two hold for starts outside working time too,
    because ``add`` is the earliest such instant and ``between`` is additive
    (``between(s, u) == between(s, t) + between(t, u)`` for ``s <= t <= u``).
    Counting is exact to the microsecond (``timedelta``).

    **Coverage.** Every local date the count looks at is checked with
    ``days.is_working_day``: a date outside `covers` raises `CalendarError`,
    never a guess (`WorkingDays.china` covers the years the installed
    ``chinese-calendar`` knows).

    **Time zones.** Working time is elapsed time between UTC instants; the
    zone only places the sessions. Asia/Shanghai has had no daylight saving
    time since 1991, so every day there has the same 7 hours. In a zone with
    DST, each session boundary is the first instant at which the local clock
    reads that time: a session a clock change cuts into is shorter (or longer)
    by the change, and the part of a session that a spring-forward skips counts
    nothing (a session of 02:15–02:45 on that day has no working time).

    **Cost.** O(days spanned): each day's session instants are computed once
    and cached; a whole day inside the span is subtracted in one step.

    Example:
        >>> from datetime import UTC
        >>> from zoneinfo import ZoneInfo
        >>> bj = ZoneInfo("Asia/Shanghai")
        >>> hours = WorkingHours()                       # China, 09:00-12:00, 13:30-17:30
        >>> hours.add(datetime(2025, 9, 24, 11, 0, tzinfo=bj),
        ...           timedelta(hours=2)).astimezone(bj).isoformat()   # across lunch
        '2025-09-24T14:30:00+08:00'
        >>> due = hours.add(datetime(2025, 9, 30, 17, 0, tzinfo=bj), timedelta(hours=2))
        >>> due.isoformat()                              # after National Day, in UTC
        '2025-10-09T02:30:00+00:00'
        >>> hours.between(datetime(2025, 9, 30, 17, 0, tzinfo=bj), due)
        datetime.timedelta(seconds=7200)
        >>> hours.day_length
        datetime.timedelta(seconds=25200)
    """

    __slots__ = ("_cache", "_days", "_offsets", "_sessions", "_span", "_tz", "_zone_name")

    def __init__(
        self,
        days: WorkingDays | None = None,
        *,
        sessions: Iterable[tuple[time | str, time | str]] = DEFAULT_SESSIONS,
        tz: str | tzinfo | None = None,
    ) -> None:
        if days is None:
            days = WorkingDays.china() if tz is None else WorkingDays.china(tz=tz)
        elif not isinstance(days, WorkingDays):
            raise CalendarError(f"days must be a WorkingDays (e.g. WorkingDays.china()), "
                                f"got {type(days).__name__}")
        self._days = days
        self._sessions = _as_sessions(sessions)
        self._offsets = tuple((_since_midnight(a), _since_midnight(b))
                              for a, b in self._sessions)
        self._span = sum((b - a for a, b in self._offsets), _ZERO)
        if tz is None:
            self._tz = days.tz
            self._zone_name = days._zone_name
        else:
            self._tz = _zone(tz)
            self._zone_name = tz if isinstance(tz, str) else str(tz)
        self._cache: dict[date, _Plan] = {}

    # -- looking at the calendar -----------------------------------------------------------

    @property
    def days(self) -> WorkingDays:
        """The working days the sessions are held on.

        Example:
            >>> WorkingHours(WorkingDays()).days
            WorkingDays(0 holidays, 0 workdays, tz='Asia/Shanghai', covers unbounded)
        """
        return self._days

    @property
    def sessions(self) -> tuple[tuple[time, time], ...]:
        """The sessions of a working day, as local ``(start, end)`` times.

        Example:
            >>> WorkingHours(WorkingDays(), sessions=[("08:30", "17:00")]).sessions
            ((datetime.time(8, 30), datetime.time(17, 0)),)
        """
        return self._sessions

    @property
    def tz(self) -> tzinfo:
        """The time zone the sessions are in.

        Example:
            >>> WorkingHours(WorkingDays(), tz="UTC").tz
            zoneinfo.ZoneInfo(key='UTC')
        """
        return self._tz

    @property
    def covers(self) -> tuple[date, date]:
        """The inclusive range of dates ``days`` knows; counting beyond it raises.

        Example:
            >>> WorkingHours().covers[1] >= date(2026, 12, 31)
            True
        """
        return self._days.covers

    @property
    def day_length(self) -> timedelta:
        """The working time of one working day: the sessions' lengths added up (7 h by
        default). ``n * day_length`` is n working days' worth of working time.

        Example:
            >>> WorkingHours(WorkingDays(), sessions=[("08:30", "12:00"), ("13:00", "17:00")]
            ...              ).day_length
            datetime.timedelta(seconds=27000)
        """
        return self._span

    def is_working_time(self, instant: datetime) -> bool:
        """True if ``instant`` (aware) lies inside a session of a working day.

        Sessions are half-open: a session's start is working time, its end is not.

        Example:
            >>> from zoneinfo import ZoneInfo
            >>> bj = ZoneInfo("Asia/Shanghai")
            >>> hours = WorkingHours()
            >>> [hours.is_working_time(datetime(2025, 9, 28, h, m, tzinfo=bj))   # 调休 Sunday
            ...  for h, m in [(9, 0), (11, 59), (12, 0), (13, 30), (17, 30)]]
            [True, True, False, True, False]
            >>> hours.is_working_time(datetime(2025, 10, 3, 10, 0, tzinfo=bj))  # National Day
            False
        """
        at = self._utc(instant, "is_working_time")
        spans, _ = self._plan(self._local_date(at))
        return any(a <= at < b for a, b in spans)

    # -- counting -------------------------------------------------------------------------

    def add(self, start: datetime, delta: timedelta) -> datetime:
        """The earliest instant at which ``delta`` of working time has passed since
        ``start``, as an aware UTC datetime (see the class for the conventions).

        Example:
            >>> from zoneinfo import ZoneInfo
            >>> bj = ZoneInfo("Asia/Shanghai")
            >>> hours = WorkingHours()
            >>> def due(start, **delta):
            ...     return hours.add(start, timedelta(**delta)).astimezone(bj).isoformat()
            >>> due(datetime(2025, 9, 26, 17, 0, tzinfo=bj), hours=2)  # Fri -> 调休 Sunday
            '2025-09-28T10:30:00+08:00'
            >>> due(datetime(2025, 9, 24, 11, 0, tzinfo=bj), hours=1)  # ends at 12:00 sharp
            '2025-09-24T12:00:00+08:00'
            >>> due(datetime(2025, 9, 24, 12, 10, tzinfo=bj), minutes=30)  # lunch waits
            '2025-09-24T14:00:00+08:00'
        """
        if not isinstance(delta, timedelta) or delta < _ZERO:
            raise CalendarError(f"a working time to add must be a timedelta >= 0, "
                                f"got {delta!r}")
        at = self._utc(start, "add")
        day = self._local_date(at)
        plan = self._plan(day)
        remaining = delta
        if not remaining:
            return at
        idle = 0
        while True:
            spans, total = plan
            if not spans:
                idle += 1
                if idle > _MAX_IDLE_DAYS:
                    # Only a calendar without any working day gets here (no weekday
                    # left, or sessions a clock change swallows): stop rather than spin.
                    raise CalendarError(
                        f"no working time in the {_MAX_IDLE_DAYS} days after "
                        f"{day - timedelta(days=_MAX_IDLE_DAYS)}; check the calendar's "
                        "weekend, holidays and sessions")
            elif at <= spans[0][0] and total < remaining:
                idle = 0
                remaining -= total  # a whole working day inside the span: one step
            else:
                idle = 0
                for a, b in spans:
                    if b <= at:
                        continue
                    begin = a if a > at else at
                    left = b - begin
                    if left >= remaining:
                        return begin + remaining
                    remaining -= left
            day = self._next_day(day)
            plan = self._plan(day)

    def between(self, start: datetime, end: datetime) -> timedelta:
        """The working time from ``start`` to ``end`` (aware; ``end >= start``).

        It is additive (``between(s, u) == between(s, t) + between(t, u)``) and
        the inverse of `add`: ``between(s, add(s, d)) == d``. Useful for figures
        such as the working time taken to acknowledge (签收) a task. For 按时签收率
        compare with the deadline instead: an answer in the break right after a
        deadline at a session's end is late, though ``between`` equals the limit.

        Example:
            >>> from zoneinfo import ZoneInfo
            >>> bj = ZoneInfo("Asia/Shanghai")
            >>> hours = WorkingHours()
            >>> dispatched = datetime(2025, 9, 30, 16, 0, tzinfo=bj)   # before National Day
            >>> acknowledged = datetime(2025, 10, 9, 9, 20, tzinfo=bj)
            >>> str(hours.between(dispatched, acknowledged))
            '1:50:00'
            >>> acknowledged <= hours.add(dispatched, timedelta(hours=2))   # on time
            True
        """
        lo = self._utc(start, "between")
        hi = self._utc(end, "between")
        if hi < lo:
            raise CalendarError(
                f"between: end ({hi.isoformat()}) is before start ({lo.isoformat()}); "
                "give the earlier instant first")
        day, last = self._local_date(lo), self._local_date(hi)
        total = _ZERO
        while True:
            spans, whole = self._plan(day)
            if spans and lo <= spans[0][0] and spans[-1][1] <= hi:
                total += whole
            else:
                for a, b in spans:
                    begin = a if a > lo else lo
                    finish = b if b < hi else hi
                    if finish > begin:
                        total += finish - begin
            if day >= last:
                return total
            day = self._next_day(day)

    # -- days and their sessions ----------------------------------------------------------

    def _utc(self, when: object, what: str) -> datetime:
        if not isinstance(when, datetime):
            raise CalendarError(f"{what}: {when!r} is not a datetime; give an aware datetime "
                                "(tzinfo=datetime.UTC)")
        if when.tzinfo is None or when.utcoffset() is None:
            raise CalendarError(
                f"{what}: cannot count working time from a naive datetime "
                f"({when.isoformat()}); gridflow stores aware UTC times: pass "
                "tzinfo=datetime.UTC")
        return when.astimezone(UTC)

    def _local_date(self, at: datetime) -> date:
        try:
            return at.astimezone(self._tz).date()
        except OverflowError as exc:
            raise CalendarError(f"{at.isoformat()} is outside the dates a calendar can "
                                "count") from exc

    def _next_day(self, day: date) -> date:
        try:
            return day + _ONE_DAY
        except OverflowError as exc:
            raise CalendarError(f"counting working time ran past {day.isoformat()}, the last "
                                "date Python can represent") from exc

    def _plan(self, day: date) -> _Plan:
        """The UTC spans of ``day``'s sessions and their total (none on a day off)."""
        plan = self._cache.get(day)
        if plan is None:
            # Raises CalendarError outside the coverage; such a day is never cached.
            plan = self._build(day) if self._days.is_working_day(day) else _NO_WORK
            if len(self._cache) >= _PLAN_CACHE_SIZE:
                self._cache.clear()
            self._cache[day] = plan
        return plan

    def _build(self, day: date) -> _Plan:
        midnight = datetime.combine(day, time())
        spans: list[tuple[datetime, datetime]] = []
        total = _ZERO
        floor: datetime | None = None
        try:
            for start, end in self._offsets:
                a = self._instant(midnight + start)
                b = self._instant(midnight + end)
                # Kept ordered and apart whatever a zone's rules do on this day.
                if floor is not None and a < floor:
                    a = floor
                if b > a:
                    spans.append((a, b))
                    total += b - a
                    floor = b
                else:
                    floor = a
        except OverflowError as exc:
            raise CalendarError(f"{day.isoformat()} is outside the dates a calendar can "
                                "count") from exc
        return tuple(spans), total

    def _instant(self, wall: datetime) -> datetime:
        """The first instant at which the local clock reads ``wall`` or has passed it."""
        at = wall.replace(tzinfo=self._tz).astimezone(UTC)  # fold=0: the first reading
        if at.astimezone(self._tz).replace(tzinfo=None) == wall:
            return at
        # ``wall`` lies in a gap a clock change skipped (spring forward): the boundary is
        # the instant of the jump, found between the two readings PEP 495 offers.
        before = wall.replace(tzinfo=self._tz, fold=1).astimezone(UTC)
        lo, hi = min(before, at), max(before, at)
        tick = timedelta(microseconds=1)
        while hi - lo > tick:
            mid = lo + (hi - lo) // 2
            if mid.astimezone(self._tz).replace(tzinfo=None) >= wall:
                hi = mid
            else:
                lo = mid
        return hi

    # -- value semantics ------------------------------------------------------------------

    def _key(self) -> tuple[object, ...]:
        return (self._days, self._sessions, self._zone_name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WorkingHours) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        sessions = ", ".join(f"{a.isoformat('minutes')}-{b.isoformat('minutes')}"
                             for a, b in self._sessions)
        return f"WorkingHours({sessions}, tz={self._zone_name!r}, days={self._days!r})"
