"""The SQL side of `gridflow.metrics`: the figures as GROUP BY queries (SQLAlchemy Core).

Imported only for a `SQLStore` (it needs SQLAlchemy). The definitions are
those of `gridflow.metrics`; this module states them in SQL:

1. ``facts``: one row per case that can count in the period (opened before
   ``until``, last touched at or after ``since``), aggregated over its events
   before ``until``: first close, the earliest missed handling deadline the
   timer recorded, the first close that recorded ``on_time: false``, flags.
2. ``per_case``: joined with the case row for its group and ``opened_at``;
   the due time ``min(first close, earliest missed deadline)`` and 0/1 flags.
3. One ``GROUP BY`` per group, summing the flags.

Medians: ``percentile_cont(0.5)`` on PostgreSQL; on SQLite (no median
function) the middle one or two values of each group, found with
``ROW_NUMBER()`` and ``COUNT(*)`` windows, averaged as ``lo + (hi - lo) * 0.5``
(which is what ``percentile_cont`` computes). Times are turned into integer
microseconds since the epoch in SQL for durations, so both databases, and the
Python implementation, compute on the same exact integers; comparisons of
times are exact on both (timestamptz; fixed-width UTC text on SQLite).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles

from gridflow._facts import BACK, micros
from gridflow._figures import (
    _AGREEMENT_KEY,
    _G,
    _M,
    OVERDUE_TRIGGER,
    SYSTEM_ACTOR,
    _median,
    _Partial,
)

_Expr = sa.ColumnElement[Any]


def _one(condition: _Expr) -> _Expr:
    return sa.case((condition, 1), else_=0)


def _micros_of(dialect: str) -> Callable[[_Expr], _Expr]:
    """A function turning a datetime expression into integer microseconds since the epoch.

    On SQLite, a stored time is UTC text ``YYYY-MM-DD HH:MM:SS.ffffff`` and a
    time written by the engine into a payload is ISO 8601 in UTC
    (``YYYY-MM-DDTHH:MM:SS[.ffffff]+00:00``); the whole seconds come from
    ``strftime('%s')`` of the first 19 characters and the microseconds from
    the digits after the dot: exact, unlike ``julianday`` (a float in days).
    """
    if dialect == "postgresql":
        def pg(expr: _Expr) -> _Expr:
            return sa.cast(sa.extract("epoch", expr) * 1_000_000, sa.BigInteger)

        return pg

    def sqlite(expr: _Expr) -> _Expr:
        text = sa.cast(expr, sa.String)
        seconds = sa.cast(sa.func.strftime("%s", sa.func.substr(text, 1, 19)), sa.Integer)
        # Both formats write all six digits when there is a fraction at all.
        fraction = sa.case(
            (sa.func.substr(text, 20, 1) == ".", sa.cast(sa.func.substr(text, 21, 6), sa.Integer)),
            else_=0)
        return seconds * 1_000_000 + fraction

    return sqlite


def _json_time(dialect: str, expr: _Expr, like: sa.Column[Any]) -> _Expr:
    """A JSON text field holding a UTC time as the engine writes it (ISO 8601,
    ``+00:00``), as a value that compares like the datetime column ``like``.

    PostgreSQL casts it to ``timestamptz``. On SQLite it is rewritten into the
    column's own text form, ``YYYY-MM-DD HH:MM:SS.ffffff``, so plain text
    comparison is time comparison, exact to the microsecond.
    """
    if dialect == "postgresql":
        return sa.type_coerce(sa.cast(expr, sa.DateTime(timezone=True)), like.type)
    text = sa.cast(expr, sa.String)
    fraction = sa.case((sa.func.substr(text, 20, 1) == ".", sa.func.substr(text, 20, 7)),
                       else_=".000000")
    rewritten = sa.func.substr(text, 1, 10) + " " + sa.func.substr(text, 12, 8) + fraction
    return sa.type_coerce(rewritten, like.type)


class _Scan(sa.sql.expression.ColumnElement[Any]):
    """A column SQLite's planner may not search an index on (``+column``).

    SQLStore keeps no statistics, and without them SQLite walks an index of the
    case rows (by workflow, by opening time) or of the events (by time) for a filter
    that keeps nearly every row, then looks each row up: several times slower than
    reading the table through, which is what the figures need. Other databases get
    the column."""

    inherit_cache = True

    def __init__(self, column: _Expr) -> None:
        self.column = column
        self.type = column.type


@compiles(_Scan)
def _scan(element: _Scan, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.column, **kw))


@compiles(_Scan, "sqlite")
def _scan_sqlite(element: _Scan, compiler: Any, **kw: Any) -> str:
    return "+" + str(compiler.process(element.column, **kw))


def _active(cases: sa.Table, since: datetime, until: datetime, workflow: str | None) -> _Expr:
    """The cases that can count in ``[since, until)``: opened before ``until`` and
    touched at or after ``since``. Every figure needs an event in the period
    (opening, closing, the breach of a deadline in the period, a revisit, an
    agreement, the end of a stay), and ``updated_at`` is the time of a
    case's last event; the rest is skipped without reading its events."""
    c = cases.c
    where = sa.and_(_Scan(c.opened_at) < until, _Scan(c.updated_at) >= since)
    return where if workflow is None else sa.and_(_Scan(c.workflow) == workflow, where)


def _whole(cases: sa.Table, since: datetime, until: datetime) -> _Expr:
    """The cases all of whose events are in ``[since, until)`` (schema 5's facts say
    when its first and last event were): the facts on the case row are then exactly
    the aggregates over its events in the period, and no event need be read."""
    c = cases.c
    return sa.and_(c.f_at_min >= micros(since), c.f_at_max < micros(until))


def _partly(cases: sa.Table, since: datetime, until: datetime) -> _Expr:
    """The others (an event before ``since`` or at/after ``until``; or no facts):
    their figures are aggregated from their events in the period."""
    c = cases.c
    return sa.or_(c.f_at_min.is_(None), c.f_at_max.is_(None), c.f_at_min < micros(since),
                  c.f_at_max >= micros(until))


def _in_window(value: _Expr, since: datetime, until: datetime) -> _Expr:
    return sa.and_(value >= micros(since), value < micros(until))


def _group_expr(cases: sa.Table, by: str | None) -> _Expr:
    if by is None:
        return sa.cast(sa.null(), sa.String)
    if by == "grid":
        return cases.c.grid
    if by == "version":
        version: _Expr = cases.c.workflow + "@" + sa.cast(cases.c.workflow_version, sa.String)
        return version
    extracted: _Expr = cases.c.data[by].as_string()
    return extracted


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def compute(
    engine: Any, cases: sa.Table, events: sa.Table, dialect: str,
    since: datetime, until: datetime, by: str | None, workflow: str | None,
    time_in_state: bool, partial: _Partial,
) -> _Partial:
    """Fill ``partial`` with the figures, computed by the database."""
    us = _micros_of(dialect)
    with engine.connect() as conn:
        if dialect == "postgresql":
            # These queries cost enough to be JIT-compiled, which then takes longer
            # (0.2-0.6 s a query) than the compiled code saves. For this transaction only.
            conn.exec_driver_sql("SELECT set_config('jit', 'off', true)")
        if by == "department":
            # Only the closed-loop figures are split by department.
            if workflow in (None, _G.workflow):
                _closed_loop_by_department(conn, cases, events, dialect, since, until, partial)
            return partial
        grp = _group_expr(cases, by)
        if workflow in (None, _G.workflow):
            _grid_case(conn, cases, events, dialect, grp, since, until, partial)
        if workflow in (None, _M.workflow):
            _mediation(conn, cases, events, us, grp, since, until, partial)
        if time_in_state:
            _stays(conn, cases, events, us, grp, since, until, workflow, partial)
    return partial


def _grid_case(
    conn: Any, c: sa.Table, e: sa.Table, dialect: str, grp: _Expr, since: datetime,
    until: datetime, partial: _Partial,
) -> None:
    g = _G
    breach = sa.and_(e.c.actor_id == SYSTEM_ACTOR, e.c.source.in_(g.handling),
                     e.c.trigger.in_((g.breach, OVERDUE_TRIGGER)))
    # A close records the deadline in force and whether it was met; only a JSON
    # false counts as late (a close stored before it did has no "on_time").
    if dialect == "postgresql":
        flag_false: _Expr = sa.cast(e.c.payload["on_time"], sa.Text) == "false"
    else:
        flag_false = sa.func.json_type(e.c.payload, "$.on_time") == "false"
    late_close = sa.and_(e.c.dest == g.closed, flag_false)
    missed = _json_time(dialect, e.c.payload["deadline_at"].as_string(), e.c.at)
    revisit_end = sa.and_(e.c.source == g.revisit, e.c.at >= since,
                          e.c.trigger.in_((g.revisit_passed, g.revisit_failed)))
    facts = (
        sa.select(
            e.c.case_id.label("case_id"),
            sa.func.max(_one(e.c.trigger == g.triage)).label("triaged"),
            sa.func.max(_one(e.c.trigger == g.escalate)).label("escalated"),
            sa.func.max(_one(e.c.trigger == g.reopen)).label("reopened"),
            sa.func.max(_one(e.c.trigger == g.extension)).label("extended"),
            sa.func.min(sa.case((e.c.dest == g.closed, e.c.at))).label("closed_at"),
            sa.func.min(sa.case((breach, missed))).label("missed_at"),
            sa.func.min(sa.case((late_close, e.c.at))).label("late_close_at"),
            sa.func.sum(_one(revisit_end)).label("revisits"),
            sa.func.sum(_one(sa.and_(revisit_end, e.c.trigger == g.revisit_passed)))
            .label("passed"),
            *_loop_facts(c, e, dialect, since),
            # The case row's columns the counts need, carried here rather than
            # joined again.
            grp.label("grp"), c.c.opened_at.label("opened_at"),
        )
        .select_from(e.join(c, c.c.id == e.c.case_id))
        .where(_active(c, since, until, g.workflow), _partly(c, since, until), e.c.at < until)
        .group_by(e.c.case_id, grp, c.c.opened_at)
        .subquery("facts")
    )
    f = facts.c
    # Due at the first close or the earliest missed handling deadline, whichever
    # came first; on time when that is the close and the close was not late.
    due_at = sa.type_coerce(sa.case(
        (f.closed_at.is_(None), f.missed_at),
        (sa.or_(f.missed_at.is_(None), f.closed_at <= f.missed_at), f.closed_at),
        else_=f.missed_at,
    ), e.c.at.type)
    received = sa.and_(f.opened_at >= since, f.opened_at < until)
    due = sa.and_(due_at >= since, due_at < until)
    closed = sa.and_(due, f.closed_at.is_not(None))
    on_time = sa.and_(closed, due_at == f.closed_at, sa.or_(
        f.late_close_at.is_(None), f.late_close_at != f.closed_at))
    partly = (
        sa.select(f.grp, *_flags(
            received, sa.and_(received, f.triaged == 1), due, closed, on_time,
            sa.and_(due, f.reopened == 1), sa.and_(due, f.extended == 1),
            sa.and_(closed, f.escalated == 0)),
            f.revisits, f.passed, *(f[name] for name in _LOOP_SUMS), *_first_checks(f))
    )
    received = sa.and_(c.c.opened_at >= since, c.c.opened_at < until)
    # The cases whose events are all in the period: the same, from their facts.
    k = c.c
    w_due_at = sa.case(
        (k.f_closed_at.is_(None), k.f_missed_at),
        (sa.or_(k.f_missed_at.is_(None), k.f_closed_at <= k.f_missed_at), k.f_closed_at),
        else_=k.f_missed_at)
    w_due = _in_window(w_due_at, since, until)
    w_closed = sa.and_(w_due, k.f_closed_at.is_not(None))
    v2 = k.workflow_version >= 2
    loop = {
        "acknowledged": k.f_acknowledged, "acknowledged_on_time": k.f_acknowledged_on_time,
        "returned": k.f_returned, "checks": k.f_checks, "checks_failed": k.f_checks_failed,
        "rated": k.f_rated, "satisfied": k.f_satisfied,
        "triages": sa.case((v2, k.f_triage), else_=0),
        "recurrences": sa.case((v2, k.f_recurrences), else_=0),
        "parked": k.f_parked, "urged": k.f_urged,
    }
    whole = (
        sa.select(grp.label("grp"), *_flags(
            received, sa.and_(received, k.f_triage > 0), w_due, w_closed,
            sa.and_(w_closed, w_due_at == k.f_closed_at, sa.or_(
                k.f_late_close_at.is_(None), k.f_late_close_at != k.f_closed_at)),
            sa.and_(w_due, k.f_reopen > 0), sa.and_(w_due, k.f_extension > 0),
            sa.and_(w_closed, k.f_escalate == 0)),
            k.f_revisits.label("revisits"), k.f_revisits_passed.label("passed"),
            *(loop[name].label(name) for name in _LOOP_SUMS),
            _one(k.f_checks > 0).label("first_checks"),
            _one(k.f_first_check_passed == 1).label("first_checks_passed"))
        .where(_active(c, since, until, g.workflow), _whole(c, since, until))
    )
    names = ("received", "triaged", "due", "closed", "closed_on_time", "reopened", "extended",
             "closed_in_grid", "revisits", "revisits_passed", *_LOOP_SUMS, "first_checks",
             "first_checks_passed")
    # Two statements whose sums add up (`_Partial.add`), not one over a UNION ALL:
    # PostgreSQL then reads the case rows in parallel.
    for part in (whole, partly):
        q = part.subquery("per_case").c
        query = sa.select(
            q.grp, *(sa.func.sum(q[name]) for name in _FLAGS), sa.func.sum(q.revisits),
            sa.func.sum(q.passed), *(sa.func.sum(q[name]) for name in _LOOP_SUMS),
            sa.func.sum(q.first_checks), sa.func.sum(q.first_checks_passed),
        ).group_by(q.grp)
        for row in conn.execute(query):
            partial.add(_text(row[0]),
                        **{n: int(v or 0) for n, v in zip(names, row[1:], strict=True)})


#: The 0/1 flags of a grid case, in the order of `_flags`.
_FLAGS = ("received", "triaged", "due", "closed", "on_time", "reopened", "extended",
          "in_grid")


def _flags(*conditions: _Expr) -> list[_Expr]:
    return [_one(cond).label(name) for name, cond in zip(_FLAGS, conditions, strict=True)]


def _partly_ids(c: sa.Table, since: datetime, until: datetime, workflow: str | None) -> Any:
    """The ids of the cases that can count and whose figures need their events."""
    return sa.select(c.c.id).where(_active(c, since, until, workflow), _partly(c, since, until))


def _json_is(dialect: str, e: sa.Table, key: str, value: str) -> _Expr:
    """The payload's ``key`` is the JSON literal ``value`` (``true``, ``false``)."""
    if dialect == "postgresql":
        return sa.cast(e.c.payload[key], sa.Text) == value
    return sa.func.json_type(e.c.payload, f"$.{key}") == value


def _nonempty_list(dialect: str, e: sa.Table, key: str) -> _Expr:
    """The payload's ``key`` is a JSON array with at least one element."""
    if dialect == "postgresql":
        found = e.c.payload[key]
        length = sa.case((sa.func.jsonb_typeof(found) == "array",
                          sa.func.jsonb_array_length(found)), else_=0)
    else:
        length = sa.case((sa.func.json_type(e.c.payload, f"$.{key}") == "array",
                          sa.func.json_array_length(e.c.payload, f"$.{key}")), else_=0)
    return length > 0


def _elements(dialect: str, e: sa.Table, key: str) -> Any:
    """The text elements of the payload's JSON array ``key``, as a table-valued function
    (column ``value``) to join to ``e`` (a non-array gives no row)."""
    if dialect == "postgresql":
        found = e.c.payload[key]
        array = sa.case((sa.func.jsonb_typeof(found) == "array", found),
                        else_=sa.cast(sa.literal("[]"), e.c.payload.type))
        return sa.func.jsonb_array_elements_text(array).table_valued("value")
    return sa.func.json_each(
        sa.case((sa.func.json_type(e.c.payload, f"$.{key}") == "array", e.c.payload),
                else_="[]"),
        sa.case((sa.func.json_type(e.c.payload, f"$.{key}") == "array", f"$.{key}"),
                else_="$")).table_valued("value")


#: The closed-loop counts summed per case in the grid-case facts (see `_loop_facts`).
_LOOP_SUMS = ("acknowledged", "acknowledged_on_time", "returned", "checks", "checks_failed",
              "rated", "satisfied", "triages", "recurrences", "parked", "urged")


def _loop_facts(c: sa.Table, e: sa.Table, dialect: str, since: datetime) -> list[_Expr]:
    """Per case (aggregates over its events before ``until``): the closed-loop counts
    of the steps in the period, and the facts that tell its first check — the
    ``seq`` of its first check, of its first check before ``since`` and of its first
    ``pass_check``. Read in the same scan as the other grid-case facts."""
    t = e.c.trigger
    now = e.c.at >= since
    triage = sa.and_(t == "triage", c.c.workflow_version >= 2)
    counts = {
        "acknowledged": t == "acknowledge",
        "acknowledged_on_time": sa.and_(t == "acknowledge",
                                        _json_is(dialect, e, "on_time", "true")),
        "returned": t == "return_task",
        "checks": t.in_(_CHECKS),
        "checks_failed": t == "fail_check",
        "rated": t == "rate",
        "satisfied": sa.and_(t == "rate", e.c.payload["satisfaction"].as_string().in_(
            _SATISFIED)),
        "triages": triage,
        "recurrences": sa.and_(triage, _nonempty_list(dialect, e, "recurrence_of")),
        "parked": t == "park",
        "urged": t == "urge",
    }
    out: list[_Expr] = [sa.func.sum(_one(sa.and_(cond, now))).label(name)
                        for name, cond in counts.items()]
    out += [
        sa.func.min(sa.case((t.in_(_CHECKS), e.c.seq))).label("first_check_seq"),
        sa.func.min(sa.case((sa.and_(t.in_(_CHECKS), e.c.at < since), e.c.seq)))
        .label("first_check_before_seq"),
        sa.func.min(sa.case((t == "pass_check", e.c.seq))).label("first_pass_seq"),
    ]
    return out


def _first_checks(f: Any) -> list[_Expr]:
    """0/1 per case: its first check is in the period; and it passed."""
    first = sa.and_(f.first_check_seq.is_not(None), sa.or_(
        f.first_check_before_seq.is_(None), f.first_check_before_seq != f.first_check_seq))
    return [_one(first).label("first_checks"),
            _one(sa.and_(first, f.first_pass_seq == f.first_check_seq))
            .label("first_checks_passed")]


_CHECKS = ("pass_check", "fail_check")
_CASE_LEVEL = (*_CHECKS, "rate", "triage", "park")
_SATISFIED = ("satisfied", "basically_satisfied")


def _closed_loop_by_department(
    conn: Any, c: sa.Table, e: sa.Table, dialect: str, since: datetime, until: datetime,
    partial: _Partial,
) -> None:
    """The closed-loop counts of ``grid_case@2`` per department (the definitions of
    `gridflow.metrics.closed_loop`): every step in the period counts; the first
    check of a case is its first check before ``until``. (Grouped by case, the
    grid-case facts count them in their own scan: see `_loop_facts`.)"""
    active = _active(c, since, until, _G.workflow)
    t = e.c.trigger
    firsts = (
        sa.select(e.c.case_id.label("case_id"), sa.func.min(e.c.seq).label("seq"))
        .select_from(e.join(c, c.c.id == e.c.case_id))
        .where(active, e.c.at < until, t.in_(_CHECKS))
        .group_by(e.c.case_id)
        .subquery("first_checks")
    )
    first = sa.and_(t.in_(_CHECKS), e.c.seq == firsts.c.seq)
    satisfied = e.c.payload["satisfaction"].as_string().in_(_SATISFIED)
    triage = sa.and_(t == "triage", c.c.workflow_version >= 2)
    case_level = {
        "checks": _one(t.in_(_CHECKS)),
        "checks_failed": _one(t == "fail_check"),
        "first_checks": _one(first),
        "first_checks_passed": _one(sa.and_(first, t == "pass_check")),
        "rated": _one(t == "rate"),
        "satisfied": _one(sa.and_(t == "rate", satisfied)),
        "triages": _one(triage),
        "recurrences": _one(sa.and_(triage, _nonempty_list(dialect, e, "recurrence_of"))),
        "parked": _one(t == "park"),
    }
    by_step = {
        "acknowledged": _one(t == "acknowledge"),
        "acknowledged_on_time": _one(sa.and_(t == "acknowledge",
                                             _json_is(dialect, e, "on_time", "true"))),
        "returned": _one(t == "return_task"),
    }
    in_period = sa.and_(active, e.c.at >= since, e.c.at < until)
    from_cases = e.join(c, c.c.id == e.c.case_id).outerjoin(
        firsts, firsts.c.case_id == e.c.case_id)
    queries: list[tuple[Any, tuple[str, ...]]] = []
    # A case's departments: every one a dispatch or reassign named before ``until``.
    named = _elements(dialect, e, "departments")
    depts = (
        sa.select(e.c.case_id.label("case_id"), named.c.value.label("dept"))
        .select_from(e.join(c, c.c.id == e.c.case_id).join(named, sa.true()))
        .where(active, e.c.at < until, t.in_(("dispatch", "reassign")))
        .distinct()
        .subquery("case_departments")
    )
    queries.append((
        sa.select(depts.c.dept, *(sa.func.sum(v) for v in case_level.values()))
        .select_from(from_cases.join(depts, depts.c.case_id == e.c.case_id))
        .where(in_period, t.in_(_CASE_LEVEL))
        .group_by(depts.c.dept), tuple(case_level)))
    dept = e.c.payload["department"].as_string()
    queries.append((
        sa.select(dept, *(sa.func.sum(v) for v in by_step.values()))
        .select_from(e.join(c, c.c.id == e.c.case_id))
        .where(in_period, t.in_(("acknowledge", "return_task")))
        .group_by(dept), tuple(by_step)))
    urged = _elements(dialect, e, "departments")
    queries.append((
        sa.select(urged.c.value, sa.func.count())
        .select_from(e.join(c, c.c.id == e.c.case_id).join(urged, sa.true()))
        .where(in_period, t == "urge")
        .group_by(urged.c.value), ("urged",)))
    for query, names in queries:
        for row in conn.execute(query):
            partial.add(_text(row[0]),
                        **{n: int(v or 0) for n, v in zip(names, row[1:], strict=True)})


def _mediation(
    conn: Any, c: sa.Table, e: sa.Table, us: Callable[[_Expr], _Expr], grp: _Expr,
    since: datetime, until: datetime, partial: _Partial,
) -> None:
    m = _M
    facts = (
        sa.select(
            e.c.case_id.label("case_id"),
            sa.func.min(sa.case((e.c.dest.in_(m.ended), e.c.at))).label("ended_at"),
            sa.func.min(sa.case((e.c.trigger == m.agree, e.c.at))).label("agreed_at"),
            sa.func.max(_one(e.c.dest == m.resolved)).label("resolved"),
            sa.func.max(_one(e.c.dest == m.tier1)).label("tier1"),
            sa.func.max(_one(e.c.dest.in_(m.higher_tiers))).label("higher"),
        )
        .select_from(e.join(c, c.c.id == e.c.case_id))
        .where(e.c.case_id.in_(_partly_ids(c, since, until, m.workflow)), e.c.at < until)
        .group_by(e.c.case_id)
        .subquery("facts")
    )
    f = facts.c
    # Every time in microseconds: those of the facts (schema 5) are.
    partly = (
        sa.select(
            grp.label("grp"), us(c.c.opened_at).label("opened"), us(f.ended_at).label("ended"),
            us(f.agreed_at).label("agreed"), f.resolved, f.tier1, f.higher,
        )
        .select_from(facts.join(c, c.c.id == f.case_id))
    )
    k = c.c
    whole = (
        sa.select(
            grp.label("grp"), us(k.opened_at).label("opened"), k.f_ended_at, k.f_agreed_at,
            _one(k.f_resolved > 0), _one(k.f_tier1 > 0), _one(k.f_higher > 0),
        )
        .where(_active(c, since, until, m.workflow), _whole(c, since, until))
    )
    per_case = sa.union_all(partly, whole).subquery("per_case")
    p = per_case.c
    ended = _in_window(p.ended, since, until)
    resolved = sa.and_(ended, p.resolved == 1)
    agreed = _in_window(p.agreed, since, until)
    query = sa.select(
        p.grp,
        sa.func.sum(_one(ended)),
        sa.func.sum(_one(resolved)),
        sa.func.sum(_one(sa.and_(resolved, p.tier1 == 1, p.higher == 0))),
        sa.func.sum(_one(agreed)),
    ).group_by(p.grp)
    names = ("mediations_ended", "mediations_resolved", "resolved_at_tier1", "agreements")
    for row in conn.execute(query):
        partial.add(_text(row[0]), **{n: int(v or 0) for n, v in zip(names, row[1:], strict=True)})
    values = (
        sa.select(
            p.grp.label("grp"), sa.literal(m.workflow).label("wf"),
            sa.literal(_AGREEMENT_KEY).label("k"),
            (p.agreed - p.opened).label("v"),
        )
        .where(agreed)
        .subquery("agreement_times")
    )
    _medians(conn, values, partial)


def _stays(
    conn: Any, c: sa.Table, e: sa.Table, us: Callable[[_Expr], _Expr], grp: _Expr,
    since: datetime, until: datetime, workflow: str | None, partial: _Partial,
) -> None:
    # A stay in a state starts with an event whose dest is that state and ends
    # with the case's next event that has a dest (internal steps change nothing).
    left = sa.func.lead(e.c.at, type_=e.c.at.type).over(partition_by=e.c.case_id,
                                                          order_by=e.c.seq)
    stays = sa.select(
        e.c.case_id.label("case_id"), e.c.dest.label("state"), e.c.at.label("entered"),
        left.label("left_at"),
    ).where(e.c.dest.is_not(None), e.c.at < until,
            e.c.case_id.in_(sa.select(c.c.id).where(_active(c, since, until, workflow),
                                                    _unordered(c))))
    s = stays.subquery("stays")
    partly = (
        sa.select(
            grp.label("grp"), c.c.workflow.label("wf"), s.c.state.label("k"),
            (us(s.c.left_at) - us(s.c.entered)).label("v"),
        )
        .select_from(s.join(c, c.c.id == s.c.case_id))
        .where(s.c.left_at >= since, s.c.left_at < until)
    )
    # A case whose times never go back (the facts count the events earlier than one
    # before them): the stays that ended in the period are those stored on the events
    # of the period that ended one — the state entered before the event is in no
    # later event, so before `until` too. Its source is the state (the fold checks
    # it is the state the case was in).
    ordered = (
        sa.select(grp.label("grp"), c.c.workflow.label("wf"), e.c.source.label("k"),
                  e.c.stay_us.label("v"))
        .select_from(e.join(c, c.c.id == e.c.case_id))
        .where(_active(c, since, until, workflow), c.c[BACK] == 0,
               e.c.stay_us.is_not(None), _Scan(e.c.at) >= since, _Scan(e.c.at) < until)
    )
    if not _any_unordered(conn, c, since, until, workflow):
        # Nearly always: one join, which PostgreSQL runs in parallel (a UNION ALL
        # with the window above it does not).
        _medians(conn, ordered.subquery("stay_times"), partial)
        return
    values = sa.union_all(partly, ordered).subquery("stay_times")
    _medians(conn, values, partial)


def _unordered(c: sa.Table) -> _Expr:
    """Cases with an event earlier than one before it (or without facts)."""
    return sa.or_(c.c[BACK].is_(None), c.c[BACK] != 0)


def _any_unordered(conn: Any, c: sa.Table, since: datetime, until: datetime,
                   workflow: str | None) -> bool:
    query = sa.select(sa.literal(1)).where(_active(c, since, until, workflow),
                                           _unordered(c)).limit(1)
    return conn.execute(query).first() is not None


def _medians(conn: Any, values: sa.Subquery, partial: _Partial) -> None:
    """Median of ``values.v`` per ``(grp, wf, k)``, into ``partial.medians``."""
    v = values.c
    keys = (v.grp, v.wf, v.k)
    if conn.dialect.name == "postgresql":
        # Grouped by byte order (the same groups: equality does not depend on the
        # collation): the sort that gathers each group's values compares bytes.
        by_bytes = [key.collate("C") for key in keys]
        query = sa.select(
            *by_bytes, sa.func.percentile_cont(0.5).within_group(v.v)
        ).group_by(*by_bytes)
        for grp, wf, k, median in conn.execute(query):
            partial.medians[_text(grp)][(wf, k)] = float(median)
        return
    # SQLite has no median function: its windows (ROW_NUMBER and COUNT per group)
    # sort every value twice and then group them, several times the cost of reading
    # them. The values are read instead (plain driver rows, without SQLAlchemy's row
    # objects) and the median taken in Python, by the same rule (`_median`).
    found: dict[tuple[Any, Any, Any], list[int]] = defaultdict(list)
    for grp, wf, k, value in _driver_rows(conn, sa.select(*keys, v.v)):
        found[(grp, wf, k)].append(value)
    for (grp, wf, k), values_of in found.items():
        partial.medians[_text(grp)][(wf, k)] = _median(values_of)


def _bound(conn: Any, compiled: Any) -> list[Any]:
    """The positional parameters of ``compiled`` as SQLAlchemy's execution binds them."""
    params = compiled.construct_params()
    bound = []
    for name in compiled.positiontup or ():
        value = params[name]
        # An IN list's values are rendered as <name>_1, <name>_2... (render_postcompile).
        bind = compiled.binds.get(name)
        if bind is None:
            bind = compiled.binds[name.rsplit("_", 1)[0]]
        process = bind.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
        bound.append(value if process is None else process(value))
    return bound


def _driver_rows(conn: Any, query: Any) -> list[Any]:
    """The rows of ``query`` as the DBAPI driver returns them (tuples), its
    parameters bound as SQLAlchemy would bind them."""
    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    try:
        bound = _bound(conn, compiled)
    except (AttributeError, KeyError, TypeError):
        # The binding above reads SQLAlchemy's compiled form (positiontup, binds), which
        # is not public API: a release that changes it costs the row objects, not the read.
        return [tuple(row) for row in conn.execute(query)]
    cursor = conn.connection.dbapi_connection.cursor()
    error = conn.dialect.loaded_dbapi.Error
    try:
        cursor.execute(str(compiled), tuple(bound))
        return list(cursor.fetchall())
    except error as exc:
        # As SQLAlchemy raises it through Core, so the store's `_failures` words it.
        raise sa.exc.DBAPIError.instance(str(compiled), tuple(bound), exc, error,
                                         dialect=conn.dialect) from exc
    finally:
        cursor.close()

