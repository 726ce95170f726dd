"""Working-day calendars: the counting rule, 调休, time zones, coverage."""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gridflow
from gridflow import CalendarDays, CalendarError, WorkingDays

SHANGHAI = ZoneInfo("Asia/Shanghai")
CHINA = WorkingDays.china()


def local(y: int, m: int, d: int, h: int = 0, minute: int = 0) -> datetime:
    return datetime(y, m, d, h, minute, tzinfo=SHANGHAI)


def end_of(y: int, m: int, d: int) -> datetime:
    """24:00 Beijing time of that day, in UTC."""
    return (datetime(y, m, d, tzinfo=SHANGHAI) + timedelta(days=1)).astimezone(UTC)


# -- mainland China, National Day -----------------------------------------------------


def test_china_2025_national_day_and_make_up_days() -> None:
    # 2025: Oct 1-8 off; Sunday Sep 28 and Saturday Oct 11 are make-up working days.
    for day in range(1, 9):
        assert not CHINA.is_working_day(date(2025, 10, day))
    assert CHINA.is_working_day(date(2025, 9, 28))
    assert CHINA.is_working_day(date(2025, 10, 11))
    assert not CHINA.is_working_day(date(2025, 9, 27))  # an ordinary Saturday


@pytest.mark.parametrize(
    ("days", "due"),
    [
        (1, (2025, 9, 28)),   # the make-up Sunday counts
        (3, (2025, 9, 30)),
        (4, (2025, 10, 9)),   # Oct 1-8 skipped
        (5, (2025, 10, 10)),  # 12345 "normal"
        (6, (2025, 10, 11)),  # the make-up Saturday counts
        (15, (2025, 10, 23)),  # 12345 "low"
    ],
)
def test_friday_before_national_day_2025(days: int, due: tuple[int, int, int]) -> None:
    friday = local(2025, 9, 26, 15, 30)
    assert CHINA.add(friday.astimezone(UTC), timedelta(days=days)) == end_of(*due)


@pytest.mark.parametrize(
    ("days", "due"),
    [(1, (2026, 9, 28)), (3, (2026, 9, 30)), (5, (2026, 10, 9)), (6, (2026, 10, 10))],
)
def test_friday_before_national_day_2026(days: int, due: tuple[int, int, int]) -> None:
    # 2026: Fri Sep 25 is itself a Mid-autumn holiday; Oct 1-7 off; Sat Oct 10 is worked.
    friday = local(2026, 9, 25, 10)
    assert CHINA.add(friday, timedelta(days=days)) == end_of(*due)


def test_2026_agrees_with_chinese_calendar_day_by_day() -> None:
    day = date(2026, 1, 1)
    while day.year == 2026:
        assert CHINA.is_working_day(day) == chinese_calendar.is_workday(day), day
        day += timedelta(days=1)


# -- the counting rule ------------------------------------------------------------------


def test_the_start_day_is_not_counted_whatever_the_hour() -> None:
    early = CHINA.add(local(2025, 11, 3, 0, 1), timedelta(days=1))
    late = CHINA.add(local(2025, 11, 3, 23, 59), timedelta(days=1))
    assert early == late == end_of(2025, 11, 4)


def test_a_case_received_on_a_holiday_gets_full_working_days() -> None:
    assert CHINA.add(local(2025, 10, 3, 9), timedelta(days=2)) == end_of(2025, 10, 10)


def test_days_are_counted_in_the_calendars_time_zone() -> None:
    # 16:30 UTC on Thursday Sep 25 is 00:30 on Friday Sep 26 in Shanghai.
    start = datetime(2025, 9, 25, 16, 30, tzinfo=UTC)
    assert CHINA.add(start, timedelta(days=1)) == end_of(2025, 9, 28)
    in_utc = WorkingDays.china(tz="UTC")
    assert in_utc.add(start, timedelta(days=1)) == datetime(2025, 9, 27, tzinfo=UTC)


def test_results_are_utc_whatever_the_input_zone() -> None:
    result = CHINA.add(local(2025, 9, 26, 9), timedelta(days=5))
    assert result.tzinfo is UTC
    assert result.isoformat() == "2025-10-10T16:00:00+00:00"


def test_less_than_a_day_is_plain_time() -> None:
    start = local(2025, 10, 1, 9)  # a holiday: hours still run
    assert CHINA.add(start, timedelta(hours=4)) == start + timedelta(hours=4)
    assert CHINA.add(start, timedelta(0)) == start


def test_hours_beyond_whole_days_are_added_after_the_last_day() -> None:
    start = local(2025, 11, 3, 9)
    assert CHINA.add(start, timedelta(days=1, hours=2)) == end_of(2025, 11, 4) + timedelta(
        hours=2)


def test_negative_and_naive_are_refused() -> None:
    with pytest.raises(CalendarError, match="negative"):
        CHINA.add(local(2025, 11, 3), timedelta(days=-1))
    with pytest.raises(CalendarError, match="naive"):
        CHINA.add(datetime(2025, 11, 3, 9), timedelta(days=1))
    with pytest.raises(CalendarError, match="naive"):
        CHINA.add(datetime(2025, 11, 3, 9), timedelta(hours=1))
    with pytest.raises(CalendarError, match="n >= 1"):
        CHINA.nth_working_day(date(2025, 11, 3), 0)


# -- coverage ------------------------------------------------------------------------------


def test_a_date_the_library_does_not_know_raises() -> None:
    first, last = CHINA.covers
    assert first == date(2004, 1, 1) and last.month == 12 and last.day == 31
    after = last + timedelta(days=1)
    with pytest.raises(CalendarError) as caught:
        CHINA.is_working_day(after)
    assert after.isoformat() in str(caught.value)
    assert "chinese-calendar" in str(caught.value)
    # Counting from the last days of the covered year runs into the unknown year.
    with pytest.raises(CalendarError):
        CHINA.add(datetime.combine(last - timedelta(days=2), datetime.min.time(), UTC),
                  timedelta(days=5))
    with pytest.raises(CalendarError):
        CHINA.is_working_day(date(2003, 12, 31))


def test_china_coverage_can_be_extended_by_hand() -> None:
    last = CHINA.covers[1]
    next_new_year = date(last.year + 1, 1, 1)
    cal = WorkingDays.china(holidays=[next_new_year], until=date(last.year + 1, 1, 31))
    assert not cal.is_working_day(next_new_year)
    assert cal.covers[1] == date(last.year + 1, 1, 31)
    with pytest.raises(CalendarError):
        cal.is_working_day(date(last.year + 1, 2, 1))


def test_hand_given_dates_win_over_the_library() -> None:
    cal = WorkingDays.china(workdays=["2025-10-08"], holidays=["2025-10-11"])
    assert cal.is_working_day(date(2025, 10, 8))
    assert not cal.is_working_day(date(2025, 10, 11))


def test_china_without_the_package_says_which_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "chinese_calendar", None)
    with pytest.raises(CalendarError, match=r"gridflow\[china\]"):
        WorkingDays.china()


# -- one's own lists ------------------------------------------------------------------------


def test_own_lists_count_holidays_and_make_up_days() -> None:
    cal = WorkingDays(holidays=["2031-05-01", date(2031, 5, 2), "2031-05-05"],
                      workdays=["2031-04-27"], tz="Asia/Shanghai")
    assert cal.covers == (date(2031, 1, 1), date(2031, 12, 31))
    assert cal.is_working_day(date(2031, 4, 27))  # a Sunday worked
    # Fri Apr 25: Sun 27, Mon 28, Tue 29, Wed 30, then May 1-2 off, weekend, May 5 off.
    assert cal.nth_working_day(date(2031, 4, 25), 4) == date(2031, 4, 30)
    assert cal.nth_working_day(date(2031, 4, 25), 5) == date(2031, 5, 6)
    with pytest.raises(CalendarError, match="2032-01-01"):
        cal.add(local(2031, 12, 30), timedelta(days=3))


def test_own_lists_with_declared_coverage() -> None:
    cal = WorkingDays(holidays=["2031-05-01"], covers=("2031-04-01", "2031-05-31"))
    assert cal.covers == (date(2031, 4, 1), date(2031, 5, 31))
    with pytest.raises(CalendarError):
        cal.is_working_day(date(2031, 6, 2))


def test_no_lists_is_an_unbounded_monday_to_friday_calendar() -> None:
    cal = WorkingDays()
    assert cal.covers == (date.min, date.max)
    assert cal.add(local(2099, 1, 2), timedelta(days=1)) == end_of(2099, 1, 5)  # Fri -> Mon


def test_another_weekend_and_zone() -> None:
    cal = WorkingDays(weekend=(4, 5), tz="Asia/Dubai")  # Friday and Saturday off
    start = datetime(2030, 1, 3, 8, tzinfo=UTC)  # a Thursday
    assert cal.nth_working_day(start, 1) == date(2030, 1, 6)  # Sunday
    assert cal.tz == ZoneInfo("Asia/Dubai")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"holidays": ["2031-05-01"], "workdays": ["2031-05-01"]}, "both"),
        ({"holidays": ["May Day"]}, "not a date"),
        ({"holidays": [datetime(2031, 5, 1, tzinfo=UTC)]}, "datetime"),
        ({"weekend": (7,)}, "weekday"),
        ({"tz": "Mars/Olympus"}, "time zone"),
        ({"covers": ("2031-12-31", "2031-01-01")}, "before"),
    ],
)
def test_bad_lists_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(CalendarError, match=message):
        WorkingDays(**kwargs)  # type: ignore[arg-type]


def test_value_semantics() -> None:
    assert WorkingDays.china() == CHINA
    assert hash(WorkingDays.china()) == hash(CHINA)
    assert WorkingDays(holidays=["2031-05-01"]) != WorkingDays(holidays=["2031-05-02"])
    assert "covers 2004-01-01" in repr(CHINA)
    assert repr(WorkingDays()).endswith("covers unbounded)")
    assert CalendarDays() == CalendarDays() and repr(CalendarDays()) == "CalendarDays()"
    assert isinstance(CHINA, gridflow.Calendar)
    assert isinstance(CalendarDays(), gridflow.Calendar)


def test_calendar_days_is_plain_arithmetic() -> None:
    start = local(2025, 9, 30, 9)
    assert CalendarDays().add(start, timedelta(days=1)) == start + timedelta(days=1)


# -- properties -------------------------------------------------------------------------------

# Up to 60 working days (about 90 calendar days with the holidays) are added to a
# start: keep the end inside the calendar's coverage (to 2026-12-31).
_starts = st.datetimes(min_value=datetime(2004, 1, 1), max_value=datetime(2026, 9, 1),
                       timezones=st.just(UTC))


@settings(max_examples=300, deadline=None)
@given(start=_starts, n=st.integers(1, 40), more=st.integers(1, 20))
def test_add_lands_at_the_end_of_a_working_day_and_is_monotonic(
    start: datetime, n: int, more: int
) -> None:
    due = CHINA.add(start, timedelta(days=n))
    last_day = CHINA.local_date(due - timedelta(microseconds=1))
    assert CHINA.is_working_day(last_day)
    assert due == CHINA.end_of_day(last_day)
    assert due > start
    assert CHINA.add(start, timedelta(days=n + more)) > due
    # Exactly n working days lie after the start day, up to and including the last.
    day, counted = CHINA.local_date(start), 0
    while day < last_day:
        day += timedelta(days=1)
        counted += CHINA.is_working_day(day)
    assert counted == n


@settings(max_examples=200, deadline=None)
@given(
    holidays=st.sets(st.dates(date(2031, 1, 1), date(2031, 12, 31)), max_size=120),
    start=st.dates(date(2031, 1, 1), date(2031, 9, 30)),
    n=st.integers(1, 30),
)
def test_own_list_results_are_working_days(holidays: set[date], start: date, n: int) -> None:
    cal = WorkingDays(holidays=holidays, covers=(date(2031, 1, 1), date(2032, 12, 31)))
    days = [cal.nth_working_day(start, k) for k in range(1, n + 1)]
    assert all(cal.is_working_day(d) and d not in holidays for d in days)
    assert days == sorted(set(days))
