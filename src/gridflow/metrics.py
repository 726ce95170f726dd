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
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs

from gridflow._errors import InvalidPayload
from gridflow.model import Case, Event
from gridflow.store import Store

if TYPE_CHECKING:
    import sqlalchemy as sa

__all__ = [
    "GRID_CASE_TERMS",
    "GROUPINGS",
    "MEDIATION_TERMS",
    "RATES",
    "GridCaseTerms",
    "MediationTerms",
    "Report",
    "Row",
    "compute",
]

#: What ``by`` may be: the case's grid, its residents' area (``data["area"]``),
#: its category (``data["category"]``), or ``None`` for one row over everything.
GROUPINGS = ("grid", "area", "category", None)

#: The id of the actor the timer acts as (`Actor.system`).
SYSTEM_ACTOR = "system"
#: The engine's own trigger for a breach in a state without ``on_breach``.
OVERDUE_TRIGGER = "overdue"


@attrs.frozen
class GridCaseTerms:
    """The states and triggers of ``grid_case`` the figures are defined on.

    Example:
        >>> GRID_CASE_TERMS.closed, GRID_CASE_TERMS.handling
        ('closed', ('joint_action',))
    """

    workflow: str = "grid_case"
    #: 立案: the trigger that accepts a report as a case.
    triage: str = "triage"
    #: The states whose deadline is the handling time limit (处置时限).
    handling: tuple[str, ...] = ("joint_action",)
    #: The trigger the timer fires when a handling deadline is missed.
    breach: str = "escalate"
    #: 结案: the state a case enters when it is closed.
    closed: str = "closed"
    #: Escalation out of the grid (to the street level).
    escalate: str = "escalate"
    #: 返工: rework after the revisit.
    reopen: str = "reopen"
    #: 延期: an approved extension.
    extension: str = "approve_extension"
    #: 回头看: the revisit state, and the triggers that conclude it.
    revisit: str = "revisit"
    revisit_passed: str = "confirm"
    revisit_failed: str = "reopen"


@attrs.frozen
class MediationTerms:
    """The states and triggers of ``mediation`` the figures are defined on.

    Example:
        >>> MEDIATION_TERMS.tier1, MEDIATION_TERMS.resolved
        ('grid_mediation', 'resolved')
    """

    workflow: str = "mediation"
    #: The terminal states: a mediation has ended when it first enters one.
    ended: tuple[str, ...] = ("resolved", "referred", "withdrawn")
    #: 化解成功: the ended state that counts as success.
    resolved: str = "resolved"
    #: Tier 1 (the grid's own mediation) and the tiers above it.
    tier1: str = "grid_mediation"
    higher_tiers: tuple[str, ...] = ("three_office", "multi_party")
    #: 达成协议: the trigger that records a signed agreement.
    agree: str = "agree"


GRID_CASE_TERMS = GridCaseTerms()
MEDIATION_TERMS = MediationTerms()

_G = GRID_CASE_TERMS
_M = MEDIATION_TERMS

_COUNTS = (
    "received", "triaged", "due", "closed", "closed_on_time", "reopened", "extended",
    "closed_in_grid", "revisits", "revisits_passed",
    "mediations_ended", "mediations_resolved", "resolved_at_tier1", "agreements",
)
# The median key of the days to agreement: parentheses are in no state's name.
_AGREEMENT_KEY = "(agreement)"


def _rate(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


@attrs.frozen
class Row:
    """The figures of one group (a grid, an area, a category; ``None``: no value, or
    the single row when ``by=None``).

    Counts are attributes; rates are properties (``None`` when the
    denominator is 0). ``median_seconds_in_state`` maps workflow → state →
    median seconds of the stays in that state that ended in the period.

    Example:
        >>> r = Row("华三-1", received=4, triaged=3, due=2, closed=2, closed_on_time=1)
        >>> r.filing_rate, r.closure_rate, r.on_time_rate, r.rework_rate
        (0.75, 1.0, 0.5, 0.0)
        >>> Row(None).in_grid_rate is None
        True
    """

    group: str | None
    #: 受理数: cases opened in the period.
    received: int = 0
    #: 立案数: of those, triaged before ``until``.
    triaged: int = 0
    #: 应结案数: cases that fell due in the period (see docs/metrics.md).
    due: int = 0
    #: 结案数: due cases closed before ``until``.
    closed: int = 0
    #: 按期结案数: due cases closed with no handling deadline missed before (the close
    #: recorded ``on_time``, or, for closes stored without it, no breach before it).
    closed_on_time: int = 0
    #: 返工数: due cases reopened (rework) before ``until``.
    reopened: int = 0
    #: 延期数: due cases with an approved extension before ``until``.
    extended: int = 0
    #: Closed cases never escalated out of the grid before ``until``.
    closed_in_grid: int = 0
    #: Revisits (回头看) concluded in the period, and those that passed.
    revisits: int = 0
    revisits_passed: int = 0
    #: Mediations that ended in the period; those resolved; those resolved in tier 1.
    mediations_ended: int = 0
    mediations_resolved: int = 0
    resolved_at_tier1: int = 0
    #: Mediations whose first agreement was signed in the period.
    agreements: int = 0
    #: Median days from intake to the first agreement, over ``agreements``.
    median_days_to_agreement: float | None = None
    median_seconds_in_state: Mapping[str, Mapping[str, float]] = attrs.field(factory=dict)

    @property
    def filing_rate(self) -> float | None:
        """立案率 = triaged / received."""
        return _rate(self.triaged, self.received)

    @property
    def closure_rate(self) -> float | None:
        """结案率 = closed / due."""
        return _rate(self.closed, self.due)

    @property
    def on_time_rate(self) -> float | None:
        """按期结案率 = closed on time / due."""
        return _rate(self.closed_on_time, self.due)

    @property
    def rework_rate(self) -> float | None:
        """返工率 = reopened / due."""
        return _rate(self.reopened, self.due)

    @property
    def extension_rate(self) -> float | None:
        """延期率 = extended / due."""
        return _rate(self.extended, self.due)

    @property
    def in_grid_rate(self) -> float | None:
        """格内解决率 = closed without ever being escalated / closed."""
        return _rate(self.closed_in_grid, self.closed)

    @property
    def revisit_pass_rate(self) -> float | None:
        """回头看通过率 = revisits passed / revisits concluded."""
        return _rate(self.revisits_passed, self.revisits)

    @property
    def mediation_success_rate(self) -> float | None:
        """化解成功率 = mediations resolved / mediations ended."""
        return _rate(self.mediations_resolved, self.mediations_ended)

    @property
    def tier1_share(self) -> float | None:
        """Share of resolved mediations whose agreement was reached in tier 1."""
        return _rate(self.resolved_at_tier1, self.mediations_resolved)

    def rates(self) -> dict[str, float | None]:
        """Every rate by name.

        Example:
            >>> Row(None, received=2, triaged=1).rates()["filing_rate"]
            0.5
        """
        return {name: getattr(self, name) for name in RATES}

    def to_dict(self) -> dict[str, Any]:
        """Counts, rates and medians as plain JSON-able data.

        Example:
            >>> Row("g", received=1).to_dict()["received"]
            1
        """
        out: dict[str, Any] = {"group": self.group}
        out.update({name: getattr(self, name) for name in _COUNTS})
        out.update(self.rates())
        out["median_days_to_agreement"] = self.median_days_to_agreement
        out["median_seconds_in_state"] = {
            wf: dict(states) for wf, states in self.median_seconds_in_state.items()
        }
        return out


#: The rate properties of a `Row`, in report order.
RATES = (
    "filing_rate", "closure_rate", "on_time_rate", "rework_rate", "extension_rate",
    "in_grid_rate", "revisit_pass_rate", "mediation_success_rate", "tier1_share",
)


@attrs.frozen
class Report:
    """The figures of a period, one `Row` per group (sorted; ``None`` first).

    Groups with nothing to report in the period have no row.

    Example:
        >>> from datetime import datetime, UTC
        >>> r = Report(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC),
        ...            "grid", None, (Row("华三-1", received=2),))
        >>> r.row("华三-1").received, r.row("华三-2").received
        (2, 0)
    """

    since: datetime
    until: datetime
    by: str | None
    workflow: str | None
    rows: tuple[Row, ...]

    def row(self, group: str | None) -> Row:
        """The row of ``group`` (an all-zero row if the group had nothing in the period).

        Example:
            >>> from datetime import datetime, UTC
            >>> t = datetime(2026, 1, 1, tzinfo=UTC)
            >>> Report(t, t, "grid", None, ()).row("华三-9") == Row("华三-9")
            True
        """
        for row in self.rows:
            if row.group == group:
                return row
        return Row(group)

    @property
    def groups(self) -> list[str | None]:
        """The groups that have a row, in order.

        Example:
            >>> from datetime import datetime, UTC
            >>> t = datetime(2026, 1, 1, tzinfo=UTC)
            >>> Report(t, t, "grid", None, (Row(None), Row("a"))).groups
            [None, 'a']
        """
        return [row.group for row in self.rows]

    def to_dicts(self) -> list[dict[str, Any]]:
        """Every row as `Row.to_dict` data (JSON-able).

        Example:
            >>> from datetime import datetime, UTC
            >>> t = datetime(2026, 1, 1, tzinfo=UTC)
            >>> Report(t, t, "grid", None, (Row("a", received=3),)).to_dicts()[0]["received"]
            3
        """
        return [row.to_dict() for row in self.rows]

    def table(self) -> str:
        """A plain-text table of the counts and rates (rates in percent).

        Example:
            >>> from datetime import datetime, UTC
            >>> r = Report(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC),
            ...            None, None, (Row(None, received=2, triaged=1),))
            >>> print(r.table().splitlines()[1].split()[:3])
            ['(all)', '2', '1']
        """
        heads = ["group", "received", "triaged", "due", "closed", "on_time",
                 "立案率", "结案率", "按期结案率", "返工率", "延期率", "格内解决率"]
        lines = ["\t".join(heads)]

        def pct(value: float | None) -> str:
            return "-" if value is None else f"{value * 100:.1f}%"

        for r in self.rows:
            cells = [
                "(all)" if r.group is None and self.by is None else str(r.group),
                str(r.received), str(r.triaged), str(r.due), str(r.closed),
                str(r.closed_on_time), pct(r.filing_rate), pct(r.closure_rate),
                pct(r.on_time_rate), pct(r.rework_rate), pct(r.extension_rate),
                pct(r.in_grid_rate),
            ]
            lines.append("\t".join(cells))
        return "\n".join(lines)


# -- the shared arithmetic ---------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def _micros(value: datetime) -> int:
    """Microseconds since the Unix epoch (exact integer arithmetic)."""
    return (value - _EPOCH) // _US


def _median(values: Sequence[int]) -> float:
    # lo + (hi - lo) * 0.5 is what PostgreSQL's percentile_cont(0.5) computes;
    # on integers it is exact, so every backend gives the same float.
    ordered = sorted(values)
    n = len(ordered)
    lo, hi = ordered[(n + 1) // 2 - 1], ordered[(n + 2) // 2 - 1]
    return lo + (hi - lo) * 0.5


@attrs.define
class _Partial:
    """What a backend hands back: counts per group, medians (µs) per group and key."""

    counts: dict[str | None, dict[str, int]] = attrs.field(
        factory=lambda: defaultdict(lambda: dict.fromkeys(_COUNTS, 0)))
    medians: dict[str | None, dict[tuple[str, str], float]] = attrs.field(
        factory=lambda: defaultdict(dict))

    def add(self, group: str | None, **counts: int) -> None:
        row = self.counts[group]
        for name, n in counts.items():
            row[name] += n


def _assemble(partial: _Partial, since: datetime, until: datetime, by: str | None,
              workflow: str | None) -> Report:
    rows = []
    for group in sorted(set(partial.counts) | set(partial.medians),
                        key=lambda g: (g is not None, g or "")):
        counts = partial.counts.get(group) or dict.fromkeys(_COUNTS, 0)
        med = partial.medians.get(group, {})
        in_state: dict[str, dict[str, float]] = {}
        days = None
        for (wf, state), micros in sorted(med.items()):
            if state == _AGREEMENT_KEY:
                days = micros / 86_400_000_000
            else:
                in_state.setdefault(wf, {})[state] = micros / 1_000_000
        if not any(counts.values()) and not med:
            continue
        rows.append(Row(group, **counts, median_days_to_agreement=days,
                        median_seconds_in_state=in_state))
    return Report(since, until, by, workflow, tuple(rows))


def _check(since: datetime, until: datetime, by: str | None) -> None:
    for name, value in (("since", since), ("until", until)):
        if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
            raise InvalidPayload(f"metrics.compute: {name}={value!r} must be an aware datetime "
                                 "(e.g. datetime(2026, 1, 1, tzinfo=UTC))")
    if until <= since:
        raise InvalidPayload(f"metrics.compute: the period is empty: since {since.isoformat()} "
                             f"is not before until {until.isoformat()}")
    if by not in GROUPINGS:
        raise InvalidPayload(f"metrics.compute: cannot group by {by!r}; choose one of "
                             "'grid', 'area', 'category' or None")


def compute(
    store: Store,
    *,
    since: datetime,
    until: datetime,
    by: str | None = "grid",
    workflow: str | None = None,
    time_in_state: bool = True,
) -> Report:
    """The supervision figures of ``store`` for the period ``[since, until)``.

    ``by`` groups the rows: ``"grid"`` (the case's grid), ``"area"``
    (``data["area"]``), ``"category"`` (``data["category"]``) or ``None`` (one
    row). ``workflow`` limits the report to one workflow: the grid-case
    figures come from ``grid_case`` cases, the mediation figures from
    ``mediation`` cases, the time in each state from every workflow named
    (every workflow when ``None``). Only events before ``until`` count.
    ``time_in_state=False`` skips the median time in each state (the costliest
    part: it ranks every stay that ended in the period).

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
    _check(since, until, by)
    since, until = since.astimezone(UTC), until.astimezone(UTC)
    tables = _sql_tables(store)
    if tables is not None:
        partial = _sql_compute(*tables, since, until, by, workflow, time_in_state)
    else:
        partial = _py_compute(store, since, until, by, workflow, time_in_state)
    return _assemble(partial, since, until, by, workflow)


# -- Python: any store ------------------------------------------------------------------


def _group_of(case: Case, by: str | None) -> str | None:
    if by is None:
        return None
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
    cases = store.query(workflow=workflow, opened_until=until, limit=sys.maxsize).items
    for case in cases:
        if case.updated_at < since:
            # Its last event is before the period: it cannot count (see _metrics_sql).
            continue
        group = _group_of(case, by)
        events = [e for e in store.events(case.id) if e.at < until]
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
    for (group, wf, state), values in stays.items():
        partial.medians[group][(wf, state)] = _median(values)
    for group, values in agreed.items():
        if values:
            partial.medians[group][(_M.workflow, _AGREEMENT_KEY)] = _median(values)
    return partial


# -- SQL: SQLStore --------------------------------------------------------------------------


def _sql_tables(store: Store) -> tuple[Any, sa.Table, sa.Table, str] | None:
    """``(engine, cases, events, dialect)`` of a SQL store, or ``None``."""
    events = getattr(store, "events_table", None)
    cases = getattr(store, "cases", None)
    engine = getattr(store, "engine", None)
    if events is None or cases is None or engine is None:
        return None
    return engine, cases, events, str(engine.dialect.name)


def _sql_compute(
    engine: Any, cases: sa.Table, events: sa.Table, dialect: str,
    since: datetime, until: datetime, by: str | None, workflow: str | None,
    time_in_state: bool,
) -> _Partial:
    from gridflow import _metrics_sql

    return _metrics_sql.compute(engine, cases, events, dialect, since, until, by, workflow,
                                time_in_state, _Partial())

