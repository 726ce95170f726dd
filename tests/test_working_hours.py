"""Working hours: lunch, nights, weekends, National Day and the Spring Festival with their
make-up days (调休), exact boundaries, zones, coverage, and the laws of add and between."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import chinese_calendar
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import gridflow
from gridflow import CalendarError, WorkingDays, WorkingHours
from gridflow.calendar import Calendar

BJ = ZoneInfo("Asia/Shanghai")
CHINA = WorkingDays.china()
HOURS = WorkingHours(CHINA)
DOCS = Path(__file__).resolve().parents[1] / "docs" / "deadlines.md"

H, M = timedelta(hours=1), timedelta(minutes=1)


def bj(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=BJ)


def in_bj(when: datetime) -> datetime:
    return when.astimezone(BJ)


# -- the holiday data the tables below rely on ----------------------------------------


def test_the_installed_chinese_calendar_has_the_days_these_tests_use() -> None:
    # National Day 2025: Oct 1-8 off, Sun Sep 28 and Sat Oct 11 worked.
    # 2026: Mid-autumn Sep 25-27 and Oct 1-7 off, Sun Sep 20 and Sat Oct 10 worked.
    # Spring Festival 2025: Jan 28 - Feb 4 off, Sun Jan 26 and Sat Feb 8 worked;
    # 2026: Feb 15-23 off, Sat Feb 14 and Sat Feb 28 worked.
    off = [date(2025, 10, d) for d in range(1, 9)] + [date(2026, 9, d) for d in (25, 26, 27)]
    off += [date(2026, 10, d) for d in range(1, 8)] + [date(2025, 1, 28), date(2025, 2, 4)]
    off += [date(2026, 2, d) for d in range(15, 24)]
    worked = [date(2025, 9, 28), date(2025, 10, 11), date(2026, 9, 20), date(2026, 10, 10),
              date(2025, 1, 26), date(2025, 2, 8), date(2026, 2, 14), date(2026, 2, 28)]
    assert all(chinese_calendar.is_holiday(d) for d in off)
    assert all(chinese_calendar.is_workday(d) for d in worked)
    assert CHINA.covers == (date(2004, 1, 1), date(2026, 12, 31))


# -- add: table-driven ----------------------------------------------------------------

ADD_CASES = [
    # (start in Beijing time, working time, due in Beijing time, what it shows)
    # An ordinary week: Wed 24 Sep 2025, Fri 14 Nov 2025.
    (bj(2025, 9, 24, 11), 2 * H, bj(2025, 9, 24, 14, 30), "across lunch"),
    (bj(2025, 9, 24, 11), 1 * H, bj(2025, 9, 24, 12), "ends at 12:00 sharp and stays"),
    (bj(2025, 9, 24, 11, 59), 1 * M, bj(2025, 9, 24, 12), "the last minute before lunch"),
    (bj(2025, 9, 24, 12), 1 * M, bj(2025, 9, 24, 13, 31), "a start at 12:00 is in lunch"),
    (bj(2025, 9, 24, 12, 10), 30 * M, bj(2025, 9, 24, 14), "a start in lunch waits"),
    (bj(2025, 9, 24, 13, 30), 4 * H, bj(2025, 9, 24, 17, 30), "the afternoon exactly"),
    (bj(2025, 9, 24, 9), 7 * H, bj(2025, 9, 24, 17, 30), "a full day ends that day"),
    (bj(2025, 9, 24, 9), 7 * H + M, bj(2025, 9, 25, 9, 1), "a minute more: next morning"),
    (bj(2025, 9, 24, 15), 7 * H, bj(2025, 9, 25, 15), "one day's worth: same time"),
    (bj(2025, 9, 24, 8), 30 * M, bj(2025, 9, 24, 9, 30), "before the office opens"),
    (bj(2025, 9, 24, 0), 2 * H, bj(2025, 9, 24, 11), "from midnight"),
    (bj(2025, 9, 24, 16), 2 * H, bj(2025, 9, 25, 9, 30), "overnight"),
    (bj(2025, 9, 24, 17, 30), 30 * M, bj(2025, 9, 25, 9, 30), "a start at the close"),
    (bj(2025, 9, 24, 20), 2 * H, bj(2025, 9, 25, 11), "from the evening"),
    (bj(2025, 9, 24, 10), timedelta(0), bj(2025, 9, 24, 10), "nothing to count"),
    (bj(2025, 9, 24, 12, 30), timedelta(0), bj(2025, 9, 24, 12, 30), "zero stays, even in lunch"),
    (bj(2025, 9, 24, 10), timedelta(microseconds=1),
     bj(2025, 9, 24, 10) + timedelta(microseconds=1), "to the microsecond"),
    (bj(2025, 11, 14, 17), 2 * H, bj(2025, 11, 17, 10, 30), "Friday 17:00 to Monday"),
    (bj(2025, 11, 14, 17), 30 * M, bj(2025, 11, 14, 17, 30), "Friday's last half hour"),
    (bj(2025, 11, 15, 10), 30 * M, bj(2025, 11, 17, 9, 30), "a start on Saturday"),
    # National Day 2025.
    (bj(2025, 9, 26, 17), 2 * H, bj(2025, 9, 28, 10, 30), "to the make-up Sunday"),
    (bj(2025, 9, 27, 10), 30 * M, bj(2025, 9, 28, 9, 30), "Saturday off, Sunday worked"),
    (bj(2025, 9, 28, 11, 50), 30 * M, bj(2025, 9, 28, 13, 50), "lunch on the make-up Sunday"),
    (bj(2025, 9, 30, 17), 2 * H, bj(2025, 10, 9, 10, 30), "over Oct 1-8"),
    (bj(2025, 9, 30, 16), 7 * H, bj(2025, 10, 9, 16), "a day's worth over the holiday"),
    (bj(2025, 10, 3, 10), 30 * M, bj(2025, 10, 9, 9, 30), "a start on a holiday"),
    (bj(2025, 10, 10, 16), 2 * H, bj(2025, 10, 11, 9, 30), "to the make-up Saturday"),
    (bj(2025, 10, 11, 17), 2 * H, bj(2025, 10, 13, 10, 30), "from the make-up Saturday"),
    (bj(2025, 9, 26, 15, 30), 15 * 7 * H, bj(2025, 10, 23, 15, 30), "15 days' worth"),
    # National Day 2026, with Mid-autumn just before it.
    (bj(2026, 9, 19, 17), 30 * M, bj(2026, 9, 20, 9, 30), "to the make-up Sunday (Sep 20)"),
    (bj(2026, 9, 24, 17), 2 * H, bj(2026, 9, 28, 10, 30), "over Mid-autumn, Sep 25-27"),
    (bj(2026, 9, 30, 11), 2 * H, bj(2026, 9, 30, 14, 30), "across lunch"),
    (bj(2026, 9, 30, 17), 2 * H, bj(2026, 10, 8, 10, 30), "over Oct 1-7"),
    (bj(2026, 10, 9, 17), 2 * H, bj(2026, 10, 10, 10, 30), "to the make-up Saturday"),
    (bj(2026, 10, 9, 17), 7 * H, bj(2026, 10, 10, 17), "a day's worth on the make-up day"),
    # Spring Festival 2025 and 2026.
    (bj(2025, 1, 24, 17), 2 * H, bj(2025, 1, 26, 10, 30), "to the make-up Sunday"),
    (bj(2025, 1, 27, 17), 2 * H, bj(2025, 2, 5, 10, 30), "over Jan 28 - Feb 4"),
    (bj(2025, 2, 7, 17), 30 * M, bj(2025, 2, 7, 17, 30), "Friday's close"),
    (bj(2025, 2, 7, 17, 30), 30 * M, bj(2025, 2, 8, 9, 30), "to the make-up Saturday"),
    (bj(2026, 2, 13, 17), 2 * H, bj(2026, 2, 14, 10, 30), "to the make-up Saturday"),
    (bj(2026, 2, 14, 17, 30), 30 * M, bj(2026, 2, 24, 9, 30), "over Feb 15-23"),
    (bj(2026, 2, 27, 17), 2 * H, bj(2026, 2, 28, 10, 30), "to the second make-up Saturday"),
]


@pytest.mark.parametrize(("start", "delta", "due", "why"), ADD_CASES,
                         ids=[f"{c[0]:%Y-%m-%d %H:%M}+{c[1]}" for c in ADD_CASES])
def test_add(start: datetime, delta: timedelta, due: datetime, why: str) -> None:
    got = HOURS.add(start, delta)
    assert got == due, f"{why}: got {in_bj(got):%Y-%m-%d %H:%M} (Beijing)"
    assert got.tzinfo is UTC
    assert HOURS.between(start, got) == delta


def test_an_answer_in_the_break_after_a_deadline_at_a_session_end_is_late() -> None:
    dispatched = bj(2025, 9, 24, 11)
    deadline = HOURS.add(dispatched, H)
    assert deadline == bj(2025, 9, 24, 12)
    in_lunch = bj(2025, 9, 24, 12, 30)
    assert in_lunch > deadline                         # late: the timer acted at 12:00
    assert HOURS.between(dispatched, in_lunch) == H    # though lunch adds no working time
    assert HOURS.between(dispatched, bj(2025, 9, 24, 13, 31)) > H


def test_add_does_not_depend_on_the_offset_the_start_is_written_in() -> None:
    instant = bj(2025, 9, 26, 17)
    seen = {HOURS.add(instant.astimezone(tz), 2 * H)
            for tz in (UTC, BJ, timezone(timedelta(hours=9)), timezone(timedelta(hours=-5)),
                       ZoneInfo("America/New_York"))}
    assert seen == {bj(2025, 9, 28, 10, 30)}


def test_the_local_day_is_the_calendars() -> None:
    # 23:30 UTC on Friday 26 September 2025 is already Saturday 07:30 in Beijing (a day
    # off); the next session is on the make-up Sunday.
    late_friday_utc = datetime(2025, 9, 26, 23, 30, tzinfo=UTC)
    assert HOURS.add(late_friday_utc, 30 * M) == bj(2025, 9, 28, 9, 30)
    assert not HOURS.is_working_time(late_friday_utc)


def test_a_calendar_in_utc_places_the_sessions_in_utc() -> None:
    hours = WorkingHours(WorkingDays(), tz="UTC")
    start = datetime(2025, 9, 24, 11, tzinfo=UTC)
    assert hours.add(start, 2 * H) == datetime(2025, 9, 24, 14, 30, tzinfo=UTC)
    assert hours.tz == ZoneInfo("UTC")


def test_a_fixed_offset_zone_counts_like_asia_shanghai() -> None:
    fixed = WorkingHours(CHINA, tz=timezone(timedelta(hours=8)))
    for start, delta, due, _ in ADD_CASES:
        assert fixed.add(start, delta) == due


def test_the_zone_defaults_to_the_days_zone() -> None:
    days = WorkingDays(tz="Europe/Berlin")
    assert WorkingHours(days).tz == ZoneInfo("Europe/Berlin")
    assert WorkingHours(tz="Asia/Tokyo").days.tz == ZoneInfo("Asia/Tokyo")


# -- between and is_working_time ------------------------------------------------------

BETWEEN_CASES = [
    (bj(2025, 9, 24, 9), bj(2025, 9, 24, 17, 30), 7 * H),
    (bj(2025, 9, 24, 11), bj(2025, 9, 24, 14, 30), 2 * H),
    (bj(2025, 9, 24, 12), bj(2025, 9, 24, 13, 30), timedelta(0)),
    (bj(2025, 9, 24, 10), bj(2025, 9, 24, 10), timedelta(0)),
    (bj(2025, 9, 24, 0), bj(2025, 9, 25, 0), 7 * H),
    (bj(2025, 11, 15, 0), bj(2025, 11, 17, 0), timedelta(0)),             # a weekend
    (bj(2025, 11, 17, 0), bj(2025, 11, 24, 0), 35 * H),                   # a whole week
    (bj(2025, 9, 29, 0), bj(2025, 10, 13, 0), 35 * H),                    # 29, 30, 9, 10, 11
    (bj(2025, 9, 30, 16), bj(2025, 10, 9, 9, 20), 1 * H + 50 * M),
    (bj(2026, 9, 28, 0), bj(2026, 10, 12, 0), 42 * H),                    # 28-30, 8-10
    (bj(2026, 2, 14, 0), bj(2026, 3, 2, 0), 42 * H),                      # 14, 24-28
]


@pytest.mark.parametrize(("start", "end", "expected"), BETWEEN_CASES)
def test_between(start: datetime, end: datetime, expected: timedelta) -> None:
    assert HOURS.between(start, end) == expected


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        (bj(2025, 9, 24, 8, 59), False), (bj(2025, 9, 24, 9), True),
        (bj(2025, 9, 24, 11, 59), True), (bj(2025, 9, 24, 12), False),
        (bj(2025, 9, 24, 13, 29), False), (bj(2025, 9, 24, 13, 30), True),
        (bj(2025, 9, 24, 17, 29), True), (bj(2025, 9, 24, 17, 30), False),
        (bj(2025, 9, 27, 10), False),   # an ordinary Saturday
        (bj(2025, 9, 28, 10), True),    # the make-up Sunday
        (bj(2025, 10, 8, 10), False),   # the last day of National Day 2025
        (bj(2025, 10, 11, 10), True),   # the make-up Saturday
        (bj(2026, 2, 16, 10), False),   # Spring Festival 2026
        (bj(2026, 2, 14, 10), True),    # its make-up Saturday
    ],
)
def test_is_working_time(instant: datetime, expected: bool) -> None:
    assert HOURS.is_working_time(instant) is expected
    assert HOURS.is_working_time(instant.astimezone(UTC)) is expected


# -- configuration --------------------------------------------------------------------


def test_own_sessions() -> None:
    hours = WorkingHours(CHINA, sessions=[(time(8, 30), time(12)), ("13:00", "17:00")])
    assert hours.day_length == 7.5 * H
    assert hours.sessions == ((time(8, 30), time(12)), (time(13), time(17)))
    assert hours.add(bj(2025, 9, 24, 11), 2 * H) == bj(2025, 9, 24, 14)
    assert hours.add(bj(2025, 9, 24, 16, 30), 1 * H) == bj(2025, 9, 25, 9)


def test_one_session_a_day() -> None:
    hours = WorkingHours(WorkingDays(), sessions=[("00:00", "23:59")])
    assert hours.between(bj(2025, 9, 22), bj(2025, 9, 29)) == 5 * (24 * H - M)


@pytest.mark.parametrize(
    ("sessions", "message"),
    [
        ([], "sessions is empty"),
        ([("12:00", "09:00")], r"sessions\[0\] ends \(09:00:00\) at or before it starts"),
        ([("09:00", "09:00")], "at or before it starts"),
        ([("09:00", "12:00"), ("11:00", "17:00")], r"sessions\[1\] starts \(11:00:00\) at"),
        ([("09:00", "12:00"), ("12:00", "17:00")], "join touching sessions"),
        ([("13:30", "17:30"), ("09:00", "12:00")], "in the order of the day"),
        ([("09:00", "25:00")], r"sessions\[0\] end: '25:00' is not a local time"),
        ([("9h", "12:00")], r"sessions\[0\] start: '9h'"),
        ([("09:00+08:00", "12:00")], "without a time zone"),
        ([(time(9, tzinfo=UTC), time(12))], "without a time zone"),
        ([("09:00", "12:00", "13:00")], r"sessions\[0\] must be a \(start, end\) pair"),
        (["09:00-12:00"], "must be a \\(start, end\\) pair"),
        ("09:00-12:00", "sessions must be a list"),
        (None, "sessions must be a list"),
    ],
)
def test_bad_sessions_are_refused(sessions: object, message: str) -> None:
    with pytest.raises(CalendarError, match=message):
        WorkingHours(WorkingDays(), sessions=sessions)  # type: ignore[arg-type]


def test_bad_days_and_zones_are_refused() -> None:
    with pytest.raises(CalendarError, match="days must be a WorkingDays"):
        WorkingHours(gridflow.CalendarDays())  # type: ignore[arg-type]
    with pytest.raises(CalendarError, match="unknown time zone 'Mars/Base'"):
        WorkingHours(WorkingDays(), tz="Mars/Base")


def test_without_chinese_calendar_the_default_says_which_extra(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "chinese_calendar", None)
    with pytest.raises(CalendarError, match=r"pip install 'gridflow\[china\]'"):
        WorkingHours()
    assert WorkingHours(WorkingDays()).day_length == 7 * H  # one's own days need nothing


def test_value_semantics_and_protocol() -> None:
    assert WorkingHours(CHINA) == HOURS and hash(WorkingHours(CHINA)) == hash(HOURS)
    assert WorkingHours(CHINA, sessions=[("09:00", "17:00")]) != HOURS
    assert WorkingHours(CHINA, tz="UTC") != HOURS
    assert isinstance(HOURS, Calendar)
    assert repr(HOURS).startswith("WorkingHours(09:00-12:00, 13:30-17:30, tz='Asia/Shanghai'")
    assert HOURS.covers == CHINA.covers and HOURS.days is CHINA
    assert gridflow.WorkingHours is WorkingHours


# -- refusals -------------------------------------------------------------------------


def test_bad_input_raises_calendar_error() -> None:
    naive = datetime(2025, 9, 24, 10)
    with pytest.raises(CalendarError, match="naive datetime"):
        HOURS.add(naive, H)
    with pytest.raises(CalendarError, match="naive datetime"):
        HOURS.between(naive, bj(2025, 9, 25))
    with pytest.raises(CalendarError, match="naive datetime"):
        HOURS.is_working_time(naive)
    with pytest.raises(CalendarError, match="timedelta >= 0"):
        HOURS.add(bj(2025, 9, 24), -M)
    with pytest.raises(CalendarError, match="timedelta >= 0"):
        HOURS.add(bj(2025, 9, 24), 2)  # type: ignore[arg-type]
    with pytest.raises(CalendarError, match="is not a datetime"):
        HOURS.add(date(2025, 9, 24), H)  # type: ignore[arg-type]
    with pytest.raises(CalendarError, match=r"end \(.*\) is before start"):
        HOURS.between(bj(2025, 9, 25), bj(2025, 9, 24))


def test_outside_the_holiday_data_raises_never_guesses() -> None:
    last = bj(2026, 12, 31, 10)  # Thursday, the last covered day
    assert HOURS.add(last, H) == bj(2026, 12, 31, 11)  # no look-ahead when none is needed
    with pytest.raises(CalendarError, match="2027-01-01 is outside the dates"):
        HOURS.add(last, 7 * H)
    with pytest.raises(CalendarError, match="2027-01-01 is outside"):
        HOURS.between(last, bj(2027, 1, 4))
    with pytest.raises(CalendarError, match="2027-01-04 is outside"):
        HOURS.is_working_time(bj(2027, 1, 4, 10))
    with pytest.raises(CalendarError, match="2003-12-31 is outside"):
        HOURS.add(bj(2003, 12, 31, 10), timedelta(0))
    extended = WorkingHours(WorkingDays.china(holidays=["2027-01-01"], until="2027-01-31"))
    assert extended.add(last, 7 * H) == bj(2027, 1, 4, 10)


def test_a_calendar_without_working_days_raises_instead_of_spinning() -> None:
    nothing = WorkingHours(WorkingDays(weekend=range(7)))
    with pytest.raises(CalendarError, match="no working time in the 366 days"):
        nothing.add(bj(2025, 9, 24), M)
    assert nothing.between(bj(2025, 1, 1), bj(2026, 1, 1)) == timedelta(0)


def test_the_ends_of_time_raise_calendar_error() -> None:
    hours = WorkingHours(WorkingDays(), tz="UTC")
    with pytest.raises(CalendarError, match="ran past 9999-12-31"):
        hours.add(datetime(9999, 12, 31, 18, tzinfo=UTC), H)
    early = WorkingHours(WorkingDays(), sessions=[("00:00", "01:00")])
    with pytest.raises(CalendarError, match="0001-01-01 is outside the dates a calendar"):
        early.add(datetime(1, 1, 1, 12, tzinfo=UTC), H)


# -- a zone with daylight saving time (the zone only places the sessions) ------------


def test_a_dst_zone_counts_elapsed_time() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    hours = WorkingHours(WorkingDays(weekend=()), sessions=[("01:00", "04:00")], tz=berlin)
    spring, autumn = date(2025, 3, 30), date(2025, 10, 26)  # 02:00 -> 03:00, 03:00 -> 02:00
    day = [datetime.combine(d, time(), berlin) for d in (spring, autumn)]
    assert hours.between(day[0], day[0] + 24 * H) == 2 * H
    assert hours.between(day[1], day[1] + 25 * H) == 4 * H
    assert hours.add(datetime.combine(spring, time(1), berlin), 90 * M).astimezone(
        berlin).time() == time(3, 30)
    skipped = WorkingHours(WorkingDays(weekend=()), sessions=[("02:15", "02:45")], tz=berlin)
    assert skipped.between(day[0], day[0] + 24 * H) == timedelta(0)
    assert skipped.between(day[0] + 24 * H, day[0] + 48 * H) == 30 * M
    # A session starting in the skipped hour opens when the clock jumps to 03:00.
    half = WorkingHours(WorkingDays(weekend=()), sessions=[("02:30", "04:00")], tz=berlin)
    assert half.between(day[0], day[0] + 24 * H) == 1 * H
    assert half.add(day[0], M) == datetime.combine(spring, time(3, 1), berlin)


# -- the docs' table --------------------------------------------------------------------


def _docs_rows() -> list[tuple[datetime, timedelta, datetime]]:
    page = DOCS.read_text(encoding="utf-8")
    table = page.split("<!-- working-hours-examples -->")[1].split("<!-- /working-hours")[0]
    rows = []
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not re.match(r"\d{4}-", cells[0]):
            continue
        start, due = (datetime.strptime(c[:16], "%Y-%m-%d %H:%M").replace(tzinfo=BJ)
                      for c in (cells[0], cells[2]))
        amount = re.fullmatch(r"(?:(\d+) × )?(\d+) (h|min)", cells[1])
        assert amount, f"cannot read the working time {cells[1]!r} in docs/deadlines.md"
        unit = H if amount[3] == "h" else M
        rows.append((start, int(amount[1] or 1) * int(amount[2]) * unit, due))
    return rows


def test_the_docs_national_day_table() -> None:
    rows = _docs_rows()
    assert len(rows) >= 10
    for start, delta, due in rows:
        assert HOURS.add(start, delta) == due, f"docs/deadlines.md: {start} + {delta}"


# -- laws (hypothesis) ------------------------------------------------------------------

# Starts from 2024 to October 2026 and at most 30 working days' worth of working time
# keep every count inside the data's coverage (up to 2026-12-31).
_BOUNDARIES = [time(0), time(9), time(12), time(13, 30), time(17, 30)]
_NUDGES = [timedelta(0), timedelta(microseconds=1), -timedelta(microseconds=1), M, -M]

uniform_starts = st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2026, 10, 31),
                              timezones=st.just(UTC))
boundary_starts = st.builds(
    lambda day, at, nudge: datetime.combine(day, at, BJ).astimezone(UTC) + nudge,
    st.dates(date(2024, 1, 1), date(2026, 10, 31)), st.sampled_from(_BOUNDARIES),
    st.sampled_from(_NUDGES))
starts = st.one_of(uniform_starts, boundary_starts)
deltas = st.one_of(
    st.timedeltas(timedelta(0), 30 * 7 * H),
    st.sampled_from([timedelta(0), 30 * M, 2 * H, 3 * H, 4 * H, 7 * H, 15 * 7 * H]),
    st.timedeltas(timedelta(0), timedelta(seconds=1)))


@given(starts, deltas, deltas)
def test_add_is_strictly_increasing_in_delta(start: datetime, d1: timedelta,
                                             d2: timedelta) -> None:
    lo, hi = sorted((d1, d2))
    assume(lo != hi)
    assert HOURS.add(start, lo) < HOURS.add(start, hi)


@given(starts, deltas)
def test_between_inverts_add_for_every_start(start: datetime, delta: timedelta) -> None:
    # Stronger than "for starts in working time": add is the earliest instant, so the
    # working time from any start to it is exactly delta.
    assert HOURS.between(start, HOURS.add(start, delta)) == delta


@given(starts, deltas, deltas)
def test_add_composes_for_every_start(start: datetime, a: timedelta, b: timedelta) -> None:
    # Holds for every start and every a, b >= 0 (within the coverage): add(s, a) is the
    # earliest instant with a of working time, and between is additive. Together a and
    # b stay within the 30 working days that keep every count inside the coverage (two
    # of them from late October would reach past 2026-12-31: CalendarError, rightly).
    assume(a + b <= 30 * 7 * H)
    assert HOURS.add(HOURS.add(start, a), b) == HOURS.add(start, a + b)


@given(starts, deltas)
def test_add_is_aware_utc_and_ends_on_working_time(start: datetime, delta: timedelta) -> None:
    due = HOURS.add(start, delta)
    assert due.tzinfo is UTC and due >= start
    if delta:
        # The earliest instant: the last microsecond before it was working time, so it
        # never lies inside a break (a 12:00 deadline stays 12:00).
        assert HOURS.is_working_time(due - timedelta(microseconds=1))
    else:
        assert due == start


@given(starts, st.timedeltas(timedelta(0), timedelta(days=20)),
       st.timedeltas(timedelta(0), timedelta(days=20)))
def test_between_is_additive_and_bounded(start: datetime, x: timedelta, y: timedelta) -> None:
    mid, end = start + x, start + x + y
    total = HOURS.between(start, end)
    assert total == HOURS.between(start, mid) + HOURS.between(mid, end)
    assert timedelta(0) <= total <= end - start


def _oracle_minutes(start: datetime, minutes: int) -> int:
    """Working minutes from a minute-aligned start, counted by chinese-calendar itself."""
    count = 0
    for i in range(minutes):
        local = (start + i * M).astimezone(BJ)
        clock = local.time()
        if chinese_calendar.is_workday(local.date()) and (
                time(9) <= clock < time(12) or time(13, 30) <= clock < time(17, 30)):
            count += 1
    return count


@settings(max_examples=60, deadline=None)
@given(st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2026, 12, 20),
                    timezones=st.just(UTC)).map(lambda d: d.replace(second=0, microsecond=0)),
       st.integers(0, 4 * 24 * 60))
def test_between_agrees_with_a_minute_by_minute_count(start: datetime, minutes: int) -> None:
    assert HOURS.between(start, start + minutes * M) == _oracle_minutes(start, minutes) * M


@given(starts, deltas)
def test_a_fixed_offset_zone_equals_asia_shanghai(start: datetime, delta: timedelta) -> None:
    # Asia/Shanghai has had no DST since 1991: +08:00 throughout the data's years.
    fixed = WorkingHours(CHINA, tz=timezone(timedelta(hours=8)))
    assert fixed.add(start, delta) == HOURS.add(start, delta)
