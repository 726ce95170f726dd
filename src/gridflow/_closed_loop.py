"""The closed-loop figures of ``grid_case@2`` (签收, 退单, 核查, 满意度, 反弹, 挂账, 督办)
and the composite score (综合指标值); `gridflow.metrics.closed_loop` is the entry point.

Computed from the events every store keeps, by the same Python code on every
store, so the figures are equal on MemoryStore, SQLite and PostgreSQL.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import attrs

from gridflow._errors import InvalidArgument
from gridflow.model import Case, Event

__all__ = ["DEFAULT_WEIGHTS", "ClosedLoopRow", "closed_loop"]

#: The weights of the composite score (综合指标值), by figure. A rate where lower
#: is better (退单率, 发回重办率, 反弹率) counts as ``1 - rate``. Pass other weights
#: to `closed_loop` (``weights=``) to follow a city's own assessment rules.
DEFAULT_WEIGHTS: Mapping[str, float] = {
    "ack_on_time_rate": 0.2,
    "return_rate": 0.1,
    "first_pass_rate": 0.25,
    "rework_rate": 0.1,
    "satisfaction_rate": 0.25,
    "recurrence_rate": 0.1,
}
_LOWER_IS_BETTER = ("return_rate", "rework_rate", "recurrence_rate")
_SATISFIED = ("satisfied", "basically_satisfied")
_GROUPINGS = ("department", "grid", "category", None)


def _rate(num: int, den: int) -> float | None:
    return None if den == 0 else num / den


@attrs.define
class ClosedLoopRow:
    """The counts and figures of one group (a department, grid or category; ``None``: all).

    Example:
        >>> ClosedLoopRow("城运中心").ack_on_time_rate is None
        True
    """

    group: str | None
    acknowledged: int = 0
    acknowledged_on_time: int = 0
    returned: int = 0
    first_checks: int = 0
    first_checks_passed: int = 0
    checks: int = 0
    checks_failed: int = 0
    rated: int = 0
    satisfied: int = 0
    triaged: int = 0
    recurrences: int = 0
    parked: int = 0
    urged: int = 0
    score: float | None = None

    @property
    def ack_on_time_rate(self) -> float | None:
        """按时签收率 = acknowledged on time / acknowledged."""
        return _rate(self.acknowledged_on_time, self.acknowledged)

    @property
    def return_rate(self) -> float | None:
        """退单率 = returned / (acknowledged + returned)."""
        return _rate(self.returned, self.acknowledged + self.returned)

    @property
    def first_pass_rate(self) -> float | None:
        """核查一次通过率 = cases passing their first check / cases checked a first time."""
        return _rate(self.first_checks_passed, self.first_checks)

    @property
    def rework_rate(self) -> float | None:
        """发回重办率 = failed checks / checks."""
        return _rate(self.checks_failed, self.checks)

    @property
    def satisfaction_rate(self) -> float | None:
        """满意率 = (satisfied + basically satisfied) / rated."""
        return _rate(self.satisfied, self.rated)

    @property
    def recurrence_rate(self) -> float | None:
        """反弹率 = triaged cases found to be a recurrence / triaged cases."""
        return _rate(self.recurrences, self.triaged)


#: `ClosedLoopRow` counts by the name `gridflow.metrics.Row` gives them (where it differs).
_ROW_NAMES = {"triaged": "triages"}


def from_counts(group: str | None, counts: Mapping[str, int],
                weights: Mapping[str, float] | None = None) -> ClosedLoopRow:
    """The `ClosedLoopRow` of counts named as on `gridflow.metrics.Row`, its score
    computed with ``weights`` (default `DEFAULT_WEIGHTS`)."""
    row = ClosedLoopRow(group, **{
        f.name: int(counts.get(_ROW_NAMES.get(f.name, f.name), 0))
        for f in attrs.fields(ClosedLoopRow) if f.name not in ("group", "score")})
    row.score = _score(row, DEFAULT_WEIGHTS if weights is None else weights)
    return row


def check_weights(weights: Mapping[str, float] | None, where: str) -> Mapping[str, float]:
    """``weights`` (default `DEFAULT_WEIGHTS`), or `InvalidArgument` naming an unknown one."""
    weights = DEFAULT_WEIGHTS if weights is None else weights
    if not isinstance(weights, Mapping):
        raise InvalidArgument(f"{where}: weights must be None or a mapping of rate name to "
                              f"weight, got {type(weights).__name__}; weights name: "
                              f"{', '.join(DEFAULT_WEIGHTS)}")
    unknown = sorted(repr(k) if k.__class__ is not str else k
                     for k in weights if k not in DEFAULT_WEIGHTS)
    if unknown:
        raise InvalidArgument(f"{where}: unknown weight(s) {', '.join(unknown)}; "
                              f"weights name: {', '.join(DEFAULT_WEIGHTS)}")
    for name, w in weights.items():
        # A nan made every score nan; a bool or a string is no weight.
        if w.__class__ not in (int, float) or not (math.isfinite(w) and w >= 0):
            raise InvalidArgument(f"{where}: weight {name} must be a finite number of at "
                                  f"least 0, got {type(w).__name__} {repr(w)[:40]}")
    return weights


def _score(row: ClosedLoopRow, weights: Mapping[str, float]) -> float | None:
    total = weight = 0.0
    for name, w in weights.items():
        value = getattr(row, name)
        if value is None:
            continue
        total += w * ((1 - value) if name in _LOWER_IS_BETTER else value)
        weight += w
    return None if weight == 0 else round(100 * total / weight, 6)


def closed_loop(
    store: Any, *, since: datetime, until: datetime, by: str | None = "department",
    weights: Mapping[str, float] | None = None,
) -> dict[str | None, ClosedLoopRow]:
    """The closed-loop figures of the ``grid_case`` cases of ``store`` over ``[since, until)``.

    Every count is of events in the period (``since <= at < until``):
    ``acknowledge`` (on time: its recorded ``on_time``), ``return_task``, the
    first ``pass_check``/``fail_check`` of a case (核查一次通过), every check,
    ``rate``, ``triage`` (a recurrence: its ``recurrence_of``), ``park`` and
    ``urge`` (by department: the urges naming it). ``by="department"`` gives each department
    a scorecard: its own acknowledgements, returns and urges, and the checks
    and ratings of the cases it was dispatched to; ``"grid"``, ``"category"``
    or ``None`` (one row) group by the case. ``score`` is the composite score
    (综合指标值, 0..100) with ``weights`` (default `DEFAULT_WEIGHTS`) over the
    figures that are defined.

    Example:
        >>> import gridflow
        >>> from datetime import UTC
        >>> closed_loop(gridflow.MemoryStore(), since=datetime(2026, 1, 1, tzinfo=UTC),
        ...             until=datetime(2026, 2, 1, tzinfo=UTC))
        {}
    """
    for name, when in (("since", since), ("until", until)):
        if not isinstance(when, datetime) or when.utcoffset() is None:
            raise InvalidArgument(f"metrics.closed_loop: {name} must be an aware datetime "
                                  f"(with a time zone), got {type(when).__name__}")
    if until <= since:
        raise InvalidArgument(f"metrics.closed_loop: the period is empty: since "
                              f"{since.isoformat()} is not before until {until.isoformat()}")
    if by.__class__ not in (str, type(None)) or by not in _GROUPINGS:
        raise InvalidArgument(f"metrics.closed_loop: cannot group by {by!r}; choose one of "
                              "'department', 'grid', 'category' or None")
    weights = check_weights(weights, "metrics.closed_loop")
    rows: dict[str | None, ClosedLoopRow] = {}

    def row(group: str | None) -> ClosedLoopRow:
        if group not in rows:
            rows[group] = ClosedLoopRow(group)
        return rows[group]

    after: str | None = None
    while True:
        page = store.query(workflow="grid_case", opened_until=until, after=after, limit=5000)
        for case in page.items:
            if case.updated_at < since:
                continue
            events = [e for e in store.events(case.id) if e.at < until]
            count(case, events, since, by, row)
        if page.next is None:
            break
        after = page.next
    for r in rows.values():
        r.score = _score(r, weights)
    return dict(sorted(rows.items(), key=lambda kv: (kv[0] is None, kv[0] or "")))


def _group_of(case: Case, by: str | None) -> str | None:
    if by is None:
        return None
    value = case.grid if by == "grid" else case.data.get(by)
    return None if value is None else str(value)


def _recurrence(payload: Mapping[str, Any]) -> bool:
    found = payload.get("recurrence_of")
    return isinstance(found, list) and len(found) > 0


def count(case: Case, events: list[Event], since: datetime, by: str | None,
          row: Any, group_of: Callable[[Case, str | None], str | None] = _group_of) -> None:
    """Count the closed-loop steps of one case (``events``: before ``until``) into
    ``row(group)``; ``group_of(case, by)`` names a case's group unless ``by`` is
    ``"department"``."""
    def case_groups() -> list[str | None]:
        if by == "department":
            depts: dict[str, None] = {}
            for e in events:
                if e.trigger == "dispatch" or e.trigger == "reassign":
                    for d in e.payload.get("departments", []):
                        depts[str(d)] = None
            return list(depts)
        return [group_of(case, by)]

    def dept_groups(names: list[str]) -> list[str | None]:
        return list(names) if by == "department" else case_groups()

    groups = case_groups()
    first_check = True
    for e in events:
        t = e.trigger
        if t in ("pass_check", "fail_check"):
            in_period = e.at >= since
            for g in groups:
                r = row(g)
                if in_period:
                    r.checks += 1
                    r.checks_failed += t == "fail_check"
                    if first_check:
                        r.first_checks += 1
                        r.first_checks_passed += t == "pass_check"
            first_check = False
            continue
        if e.at < since:
            continue
        if t == "acknowledge":
            for g in dept_groups([str(e.payload.get("department"))]):
                r = row(g)
                r.acknowledged += 1
                r.acknowledged_on_time += e.payload.get("on_time") is True
        elif t == "return_task":
            for g in dept_groups([str(e.payload.get("department"))]):
                row(g).returned += 1
        elif t == "urge":
            named = e.payload.get("departments") or []
            for g in dept_groups([str(d) for d in named]):
                row(g).urged += 1
        elif t == "rate":
            for g in groups:
                r = row(g)
                r.rated += 1
                r.satisfied += e.payload.get("satisfaction") in _SATISFIED
        elif t == "triage" and case.workflow_version >= 2:
            for g in groups:
                r = row(g)
                r.triaged += 1
                r.recurrences += _recurrence(e.payload)
        elif t == "park":
            for g in groups:
                row(g).parked += 1
