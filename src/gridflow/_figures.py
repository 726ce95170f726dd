"""The definitions behind `gridflow.metrics`: the terms each figure counts, the
`Row` and `Report` a computation returns, and the partial sums every backend
(Python over a store, SQL in the database) fills in the same shape.

Both backends import from here; `gridflow.metrics` re-exports the public names.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

__all__ = [
    "GRID_CASE_TERMS",
    "GROUPINGS",
    "MEDIATION_TERMS",
    "OVERDUE_TRIGGER",
    "RATES",
    "SYSTEM_ACTOR",
    "GridCaseTerms",
    "MediationTerms",
    "Report",
    "Row",
]

#: What ``by`` may be: the case's grid, its residents' area (``data["area"]``),
#: its category (``data["category"]``), its workflow version, the department
#: (a scorecard of the closed-loop figures only), or ``None`` for one row over everything.
GROUPINGS = ("grid", "area", "category", "version", "department", None)

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
#: The counts of the closed loop of ``grid_case@2`` (see `gridflow.metrics.closed_loop`).
_LOOP_COUNTS = (
    "acknowledged", "acknowledged_on_time", "returned", "first_checks", "first_checks_passed",
    "checks", "checks_failed", "rated", "satisfied", "triages", "recurrences", "parked", "urged",
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
    # -- the closed loop of grid_case@2 (steps in the period; see docs/metrics.md) --
    #: 签收: acknowledgements, and those within the 签收 limit.
    acknowledged: int = 0
    acknowledged_on_time: int = 0
    #: 退单: tasks sent back by a department.
    returned: int = 0
    #: 核查: first checks of a case, those passed; every check, those failed (发回重办).
    first_checks: int = 0
    first_checks_passed: int = 0
    checks: int = 0
    checks_failed: int = 0
    #: 满意度回访: ratings, and those satisfied or basically satisfied.
    rated: int = 0
    satisfied: int = 0
    #: Triage steps of ``@2`` cases, and those that found a recurrence (反弹).
    triages: int = 0
    recurrences: int = 0
    #: 挂账数 and 督办数: parks, and urges (by department: the urges naming it).
    parked: int = 0
    urged: int = 0
    #: 综合指标值 (0..100) over the closed-loop rates that are defined, or ``None``.
    score: float | None = None

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
        """核查一次通过率 = first checks passed / first checks."""
        return _rate(self.first_checks_passed, self.first_checks)

    @property
    def check_rework_rate(self) -> float | None:
        """发回重办率 = failed checks / checks (``rework_rate`` is 返工率, of reopens)."""
        return _rate(self.checks_failed, self.checks)

    @property
    def satisfaction_rate(self) -> float | None:
        """满意率 = (satisfied + basically satisfied) / rated."""
        return _rate(self.satisfied, self.rated)

    @property
    def recurrence_rate(self) -> float | None:
        """反弹率 = triages that found a recurrence / triages (of ``@2`` cases)."""
        return _rate(self.recurrences, self.triages)

    def closed_loop(self) -> Any:
        """This row's closed-loop counts and score as a `gridflow.metrics.ClosedLoopRow`
        (what `gridflow.metrics.closed_loop` returns for the group).

        Example:
            >>> row = Row("城运中心", acknowledged=2, acknowledged_on_time=1)
            >>> row.closed_loop().ack_on_time_rate
            0.5
        """
        from gridflow._closed_loop import ClosedLoopRow

        counts = {"triaged" if n == "triages" else n: getattr(self, n) for n in _LOOP_COUNTS}
        return ClosedLoopRow(self.group, **counts, score=self.score)

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
        out.update({name: getattr(self, name) for name in _LOOP_COUNTS})
        out["score"] = self.score
        return out


#: The rate properties of a `Row`, in report order.
RATES = (
    "filing_rate", "closure_rate", "on_time_rate", "rework_rate", "extension_rate",
    "in_grid_rate", "revisit_pass_rate", "mediation_success_rate", "tier1_share",
    "ack_on_time_rate", "return_rate", "first_pass_rate", "check_rework_rate",
    "satisfaction_rate", "recurrence_rate",
)


@attrs.frozen
class Report:
    """The figures of a period, one `Row` per group (sorted; ``None`` first).

    Groups with nothing to report in the period have no row. ``print(report)``
    shows an aligned table (`table` gives the same cells tab-separated).

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

    def __str__(self) -> str:
        return _report_str(self)

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


def _width(text: str) -> int:
    # Chinese characters take two columns in a terminal.
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _report_str(report: Report) -> str:
    rows = [line.split("\t") for line in report.table().splitlines()]
    widths = [max(_width(r[i]) for r in rows) for i in range(len(rows[0]))]

    def line(cells: list[str]) -> str:
        out = [cells[0] + " " * (widths[0] - _width(cells[0]))]
        out += [" " * (w - _width(c)) + c for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join(out)

    span = f"{report.since.isoformat()} .. {report.until.isoformat()}"
    title = (f"supervision figures {span}, by {report.by or '(all)'}"
             + (f", workflow {report.workflow}" if report.workflow else ""))
    body = [line(rows[0]), "  ".join("-" * w for w in widths), *(line(r) for r in rows[1:])]
    if len(rows) == 1:
        body.append("(no case had anything to report in the period)")
    return "\n".join([title, *body])


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
        factory=lambda: defaultdict(lambda: dict.fromkeys(_COUNTS + _LOOP_COUNTS, 0)))
    medians: dict[str | None, dict[tuple[str, str], float]] = attrs.field(
        factory=lambda: defaultdict(dict))

    def add(self, group: str | None, **counts: int) -> None:
        row = self.counts[group]
        for name, n in counts.items():
            row[name] += n


def _assemble(partial: _Partial, since: datetime, until: datetime, by: str | None,
              workflow: str | None,
              score: Callable[[Mapping[str, int]], float | None] | None = None) -> Report:
    rows = []
    for group in sorted(set(partial.counts) | set(partial.medians),
                        key=lambda g: (g is not None, g or "")):
        counts = partial.counts.get(group) or dict.fromkeys(_COUNTS + _LOOP_COUNTS, 0)
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
                        median_seconds_in_state=in_state,
                        score=None if score is None else score(counts)))
    return Report(since, until, by, workflow, tuple(rows))


def sql_failures(store: Any, what: str) -> AbstractContextManager[None]:
    """The SQL store's own turning of database failures into `StoreError` (as every
    other read of it), around the figures' queries (``what``: what was being done)."""
    store = getattr(store, "replica", None) or store
    failures: AbstractContextManager[None] = store._failures(what)
    return failures


def sql_tables(store: Any) -> tuple[Any, Any, Any, str] | None:
    """``(engine, cases, events, dialect)`` of a SQL store (its read replica when it has
    one: ``SQLStore(read_url=)``), or ``None`` for a store the figures read in Python."""
    store = getattr(store, "replica", None) or store
    events = getattr(store, "events_table", None)
    cases = getattr(store, "cases", None)
    engine = getattr(store, "engine", None)
    if events is None or cases is None or engine is None:
        return None
    return engine, cases, events, str(engine.dialect.name)
