"""Supervision figures (考核指标) computed from stored cases and their events.

`compute` reports, for a period ``[since, until)``, the figures Chinese
digital urban management (数字化城管) reports publish, grouped by grid,
residents' area or category:

========================= ===================================================
figure                    definition (every count is exact; see docs/metrics.md)
========================= ===================================================
立案率 filing_rate         triaged / received
结案率 closure_rate        closed / due
按期结案率 on_time_rate    closed on time / due
返工率 rework_rate         reopened / due
延期率 extension_rate      extended / due
格内解决率 in_grid_rate    closed without ever being escalated / closed
回头看通过率               revisits passed / revisits concluded
revisit_pass_rate
化解成功率                 mediations resolved / mediations ended
mediation_success_rate
tier1_share               resolved with the agreement reached in tier 1 / resolved
========================= ===================================================

plus the median time spent in each state, and the median days from intake
to agreement of mediations. A rate is ``None`` when its denominator is 0.

Everything is derived from what the store keeps: the case rows (``grid``,
``data["area"]``, ``data["category"]``, ``opened_at``) and the events
(``trigger``, ``source``, ``dest``, ``actor``, ``at``, the
``deadline_at`` the timer writes into a breach event's payload and the
``on_time`` a close records in its own payload). Only
events before ``until`` count, so a report on a past period gives the same
figures whenever it is run ("as of ``until``").

On a `SQLStore` the figures are computed by the database: a few
``GROUP BY`` queries over the ``cases`` and ``events`` tables (medians by
``percentile_cont`` on PostgreSQL, by ``ROW_NUMBER``/``COUNT`` windows on
SQLite). On any other store (`MemoryStore`) the same definitions run in
Python over every case. Both give equal reports. Times are compared and
measured in whole microseconds on every backend.

This module reads the store only; it does not need an `Engine`.

Example:
    >>> import gridflow
    >>> from datetime import datetime, timedelta, UTC
    >>> clock = gridflow.FixedClock(datetime(2026, 1, 5, 1, tzinfo=UTC))
    >>> engine = gridflow.Engine(clock=clock, entry_points=False)
    >>> c = engine.open("grid_case", actor=gridflow.Actor("r", ["resident"],
    ...                                                   grids=gridflow.ALL_GRIDS), grid="华三-1",
    ...                 data={"title": "楼道堆物", "source": "resident"})
    >>> _ = engine.fire(c.id, "triage", actor=gridflow.Actor("s", ["coordinator"],
    ...                                                      grids=gridflow.ALL_GRIDS),
    ...                 payload={"category": "违规堆物", "priority": "normal"})
    >>> report = compute(engine.store, since=datetime(2026, 1, 1, tzinfo=UTC),
    ...                  until=datetime(2026, 2, 1, tzinfo=UTC), by="grid")
    >>> row = report.row("华三-1")
    >>> row.received, row.triaged, row.filing_rate, row.closure_rate
    (1, 1, 1.0, None)
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from gridflow._closed_loop import (
    DEFAULT_WEIGHTS,
    ClosedLoopRow,
    check_weights,
    closed_loop,
    count,
    from_counts,
)
from gridflow._errors import InvalidArgument
from gridflow._figures import (
    _AGREEMENT_KEY,
    _G,
    _LOOP_COUNTS,
    _M,
    GRID_CASE_TERMS,
    GROUPINGS,
    MEDIATION_TERMS,
    OVERDUE_TRIGGER,
    RATES,
    SYSTEM_ACTOR,
    GridCaseTerms,
    MediationTerms,
    Report,
    Row,
    _assemble,
    _median,
    _micros,
    _Partial,
    sql_failures,
    sql_tables,
)
from gridflow._problem_classes import ProblemClass
from gridflow.model import Case, Event
from gridflow.store import Store

if TYPE_CHECKING:
    import sqlalchemy as sa

__all__ = [
    "DEFAULT_WEIGHTS",
    "GRID_CASE_TERMS",
    "GROUPINGS",
    "MEDIATION_TERMS",
    "RATES",
    "ClosedLoopRow",
    "GridCaseTerms",
    "MediationTerms",
    "ProblemClass",
    "Report",
    "Row",
    "closed_loop",
    "compute",
    "problem_classes",
]

# Named here too: code of 0.1 imported them from gridflow.metrics.
_REEXPORTED = (OVERDUE_TRIGGER, SYSTEM_ACTOR)


def _instant(value: object, name: str, tz: tzinfo, *, end: bool) -> datetime:
    """``since``/``until`` as an aware datetime: a date is a whole local day in
    ``tz`` (``since`` its start, ``until`` the end of it); a naive datetime is refused."""
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidArgument(
                f"metrics.compute: {name}={value.isoformat()} has no time zone; pass an aware "
                f"datetime (e.g. datetime(2026, 1, 1, tzinfo=ZoneInfo('Asia/Shanghai'))) or a "
                "date for whole local days")
    elif not isinstance(value, date):
        raise InvalidArgument(f"metrics.compute: {name} must be a date or an aware datetime, "
                              f"got {type(value).__name__}")
    try:
        if isinstance(value, datetime):
            return value.astimezone(UTC)
        day = value + timedelta(days=1) if end else value
        return datetime.combine(day, time(), tz).astimezone(UTC)
    except OverflowError:
        # date.max's end, or year 1 moved to UTC: outside what datetime holds.
        raise InvalidArgument(f"metrics.compute: {name}={value.isoformat()} is at the edge "
                              "of the calendar (year 1 or 9999); give a period between "
                              "them") from None


def _check(since: datetime, until: datetime, by: str | None) -> None:
    if until <= since:
        raise InvalidArgument(f"metrics.compute: the period is empty: since {since.isoformat()} "
                              f"is not before until {until.isoformat()}")
    if by.__class__ not in (str, type(None)) or by not in GROUPINGS:
        raise InvalidArgument(f"metrics.compute: cannot group by {by!r}; choose one of "
                              "'grid', 'area', 'category', 'version', 'department' or None")


def compute(
    store: Store,
    *,
    since: datetime | date,
    until: datetime | date,
    by: str | None = "grid",
    workflow: str | None = None,
    time_in_state: bool = True,
    tz: str | tzinfo = "Asia/Shanghai",
    weights: Mapping[str, float] | None = None,
) -> Report:
    """The supervision figures of ``store`` for the period ``[since, until)``.

    ``since`` and ``until`` are aware datetimes, or dates: whole local days in
    ``tz`` (default Asia/Shanghai), ``until`` included — ``since=date(2026, 1,
    1), until=date(2026, 1, 31)`` is January, Beijing time. A naive datetime is
    refused (`InvalidArgument`): whose midnight it means would be a guess.

    ``by`` groups the rows: ``"grid"`` (the case's grid), ``"area"``
    (``data["area"]``), ``"category"`` (``data["category"]``), ``"version"``
    (``"grid_case@2"``: the workflow version the case runs on now, so a migrated
    case counts under its new version) or ``None`` (one row; every version
    counts). ``workflow`` limits the report to one workflow: the grid-case
    figures come from ``grid_case`` cases, the mediation figures from
    ``mediation`` cases, the time in each state from every workflow named
    (every workflow when ``None``). Only events before ``until`` count.
    ``time_in_state=False`` skips the median time in each state (the costliest
    part: it ranks every stay that ended in the period).

    The closed-loop figures of ``grid_case@2`` (按时签收率 ``ack_on_time_rate``,
    退单率 ``return_rate``, 核查一次通过率 ``first_pass_rate``, 发回重办率
    ``check_rework_rate``, 满意率 ``satisfaction_rate``, 反弹率 ``recurrence_rate``,
    挂账数 ``parked``, 督办数 ``urged`` and the composite ``score``, 综合指标值 with
    ``weights``, default `DEFAULT_WEIGHTS`) are on every row, defined as in
    `closed_loop` (which computes them in Python on any store: the reference).
    ``by="department"`` gives one row per department with these figures only
    (the other figures are not split by department: they are 0 there).

    On a `SQLStore` the database computes the figures (SQL aggregation); on
    any other store, Python does, with the same definitions.

    Example:
        >>> import gridflow
        >>> from datetime import datetime, UTC
        >>> r = compute(gridflow.MemoryStore(), since=datetime(2026, 1, 1, tzinfo=UTC),
        ...             until=datetime(2026, 2, 1, tzinfo=UTC))
        >>> r.rows
        ()
    """
    zone = _zone(tz)
    since = _instant(since, "since", zone, end=False)
    until = _instant(until, "until", zone, end=True)
    _check(since, until, by)
    if workflow is not None and not isinstance(workflow, str):
        raise InvalidArgument(f"metrics.compute: workflow must be None or a workflow name, got "
                              f"{type(workflow).__name__}")
    if not isinstance(time_in_state, bool):
        raise InvalidArgument(f"metrics.compute: time_in_state must be True or False, got "
                              f"{type(time_in_state).__name__}")
    weights = check_weights(weights, "metrics.compute")
    tables = sql_tables(store)
    if tables is not None:
        with sql_failures(store, "computing the figures"):
            partial = _sql_compute(*tables, since, until, by, workflow, time_in_state)
    else:
        partial = _py_compute(store, since, until, by, workflow, time_in_state)

    def score(counts: Mapping[str, int]) -> float | None:
        return from_counts(None, counts, weights).score

    return _assemble(partial, since, until, by, workflow, score)


def problem_classes(
    store: Store,
    *,
    since: datetime | date,
    until: datetime | date,
    min_cases: int = 1,
    tz: str | tzinfo = "Asia/Shanghai",
) -> list[ProblemClass]:
    """The problem classes (一类事) of the ``grid_case`` cases opened in ``[since, until)``.

    A class is a place (``data["location"]["key"]``) and a category
    (``data["category"]``); cases without a location key are not in any. Each
    `ProblemClass` counts its cases, its recurrences (反弹: a triage before
    ``until`` linked the case to earlier ones there), the cases solved (closed
    before ``until``), and the median and total time from opening to the first
    close. Sorted with the most cases first, then the most recurrences, then by
    key and category; ``min_cases=2`` keeps the classes that came back.
    ``since``/``until``/``tz`` as in `compute`.

    On a `SQLStore` the database computes the classes (SQL aggregation); on
    any other store, Python does, with the same definitions.

    Example:
        >>> import gridflow
        >>> from datetime import datetime, UTC
        >>> problem_classes(gridflow.MemoryStore(), since=datetime(2026, 1, 1, tzinfo=UTC),
        ...                 until=datetime(2026, 2, 1, tzinfo=UTC))
        []
    """
    from gridflow import _problem_classes

    zone = _zone(tz)
    since = _instant(since, "since", zone, end=False)
    until = _instant(until, "until", zone, end=True)
    _check(since, until, None)
    if isinstance(min_cases, bool) or not isinstance(min_cases, int) or min_cases < 1:
        raise InvalidArgument(f"metrics.problem_classes: min_cases must be a whole number of "
                              f"at least 1, got {min_cases!r}")
    return _problem_classes.compute(store, since, until, min_cases)


def _zone(tz: str | tzinfo) -> tzinfo:
    if isinstance(tz, tzinfo):
        return tz
    if not isinstance(tz, str):
        raise InvalidArgument(f"metrics.compute: tz must be an IANA time zone name such as "
                              f"'Asia/Shanghai' or a tzinfo, got {type(tz).__name__}")
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidArgument(f"metrics.compute: unknown time zone {tz!r}; use an IANA name "
                              "such as 'Asia/Shanghai'") from None


# -- Python: any store ------------------------------------------------------------------


_LOOP_NAMES = {"triages": "triaged"}


def _group_of(case: Case, by: str | None) -> str | None:
    if by is None:
        return None
    if by == "version":
        return f"{case.workflow}@{case.workflow_version}"
    value = case.grid if by == "grid" else case.data.get(by)
    return None if value is None else str(value)


def _grid_case_figures(
    partial: _Partial, group: str | None, case: Case, events: Sequence[Event],
    since: datetime, until: datetime, s_us: int, u_us: int,
) -> None:
    g = _G
    received = since <= case.opened_at < until
    triaged = escalated = reopened = extended = closed_late = False
    closed_at: datetime | None = None
    missed: int | None = None
    revisits = passed = 0
    for e in events:
        trigger = e.trigger
        if trigger == g.triage:
            triaged = True
        if trigger == g.escalate:
            escalated = True
        if trigger == g.reopen:
            reopened = True
        if trigger == g.extension:
            extended = True
        # A close records the deadline in force and whether it was met ("on_time");
        # a close stored before it did (no boolean) leaves the timer's breaches to tell.
        late_close = e.dest == g.closed and e.payload.get("on_time") is False
        if e.dest == g.closed and closed_at is None:
            closed_at = e.at
            closed_late = late_close
        if (e.actor.id == SYSTEM_ACTOR and e.source in g.handling
                and trigger in (g.breach, OVERDUE_TRIGGER)):
            deadline = e.payload.get("deadline_at")
            if isinstance(deadline, str):
                at = _micros(datetime.fromisoformat(deadline))
                missed = at if missed is None else min(missed, at)
        if (e.source == g.revisit and e.at >= since
                and trigger in (g.revisit_passed, g.revisit_failed)):
            revisits += 1
            passed += trigger == g.revisit_passed
    closed_us = None if closed_at is None else _micros(closed_at)
    if closed_us is None:
        due_us = missed
    elif missed is None or closed_us <= missed:
        due_us = closed_us
    else:
        due_us = missed
    due = due_us is not None and s_us <= due_us < u_us
    closed = due and closed_us is not None
    on_time = closed and due_us == closed_us and not closed_late
    partial.add(
        group,
        received=received, triaged=received and triaged, due=due, closed=closed,
        closed_on_time=on_time, reopened=due and reopened, extended=due and extended,
        closed_in_grid=closed and not escalated, revisits=revisits, revisits_passed=passed,
    )


def _mediation_figures(
    partial: _Partial, group: str | None, case: Case, events: Sequence[Event],
    since: datetime, until: datetime, agreed: list[int],
) -> None:
    m = _M
    ended_at: datetime | None = None
    agreed_at: datetime | None = None
    resolved = tier1 = higher = False
    for e in events:
        if e.dest in m.ended and ended_at is None:
            ended_at = e.at
        if e.dest == m.resolved:
            resolved = True
        if e.dest == m.tier1:
            tier1 = True
        if e.dest in m.higher_tiers:
            higher = True
        if e.trigger == m.agree and agreed_at is None:
            agreed_at = e.at
    ended = ended_at is not None and since <= ended_at < until
    agreement = agreed_at is not None and since <= agreed_at < until
    if agreement:
        assert agreed_at is not None
        agreed.append(_micros(agreed_at) - _micros(case.opened_at))
    partial.add(
        group,
        mediations_ended=ended, mediations_resolved=ended and resolved,
        resolved_at_tier1=ended and resolved and tier1 and not higher, agreements=agreement,
    )


def _py_compute(
    store: Store, since: datetime, until: datetime, by: str | None, workflow: str | None,
    time_in_state: bool,
) -> _Partial:
    partial = _Partial()
    s_us, u_us = _micros(since), _micros(until)
    stays: dict[tuple[str | None, str, str], list[int]] = defaultdict(list)
    agreed: dict[str | None, list[int]] = defaultdict(list)
    # A case opened at or after `until` has no event before it: nothing to count.
    loop: dict[str | None, ClosedLoopRow] = {}

    def loop_row(group: str | None) -> ClosedLoopRow:
        if group not in loop:
            loop[group] = ClosedLoopRow(group)
        return loop[group]

    by_department = by == "department"
    cases = store.query(workflow=workflow, opened_until=until, limit=sys.maxsize).items
    for case in cases:
        if case.updated_at < since:
            # Its last event is before the period: it cannot count (see _metrics_sql).
            continue
        group = _group_of(case, by)
        events = [e for e in store.events(case.id) if e.at < until]
        if case.workflow == _G.workflow:
            count(case, events, since, by, loop_row, _group_of)
        if by_department:
            continue  # only the closed-loop figures are split by department
        if case.workflow == _G.workflow:
            _grid_case_figures(partial, group, case, events, since, until, s_us, u_us)
        elif case.workflow == _M.workflow:
            _mediation_figures(partial, group, case, events, since, until, agreed[group])
        if not time_in_state:
            continue
        entered: Event | None = None
        for e in events:
            if e.dest is None:
                continue
            if entered is not None and since <= e.at:
                assert entered.dest is not None
                stays[(group, case.workflow, entered.dest)].append(
                    _micros(e.at) - _micros(entered.at))
            entered = e
    for group, r in loop.items():
        partial.add(group, **{name: getattr(r, _LOOP_NAMES.get(name, name))
                              for name in _LOOP_COUNTS})
    for (group, wf, state), values in stays.items():
        partial.medians[group][(wf, state)] = _median(values)
    for group, values in agreed.items():
        if values:
            partial.medians[group][(_M.workflow, _AGREEMENT_KEY)] = _median(values)
    return partial


# -- SQL: SQLStore --------------------------------------------------------------------------


def _sql_compute(
    engine: Any, cases: sa.Table, events: sa.Table, dialect: str,
    since: datetime, until: datetime, by: str | None, workflow: str | None,
    time_in_state: bool,
) -> _Partial:
    from gridflow import _metrics_sql

    return _metrics_sql.compute(engine, cases, events, dialect, since, until, by, workflow,
                                time_in_state, _Partial())

