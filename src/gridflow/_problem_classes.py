"""Problem classes (一类事): the ``grid_case`` cases of a period grouped by the place
and the kind of problem, ``location.key`` × ``category``; `gridflow.metrics.problem_classes`
is the entry point.

A class counts the cases opened in ``[since, until)`` whose opening data has a
``location`` with a ``key`` (a lane or building id), grouped with the case's
``category`` (set at triage; ``None`` before it). For each class:

- ``cases``: cases opened in the period;
- ``recurrences`` (反弹): those whose triage before ``until`` found earlier cases
  at the same place of the same category (a non-empty ``recurrence_of`` list
  in the triage payload, written by `gridflow.workflows.grid_case_v2.Recurrence`);
- ``solved``: those closed before ``until`` (their first step into ``closed``);
- ``median_seconds_to_solve`` and ``total_seconds_to_solve``: from opening to
  that first close, over the solved cases (the median as ``percentile_cont(0.5)``
  computes it; the total says how much time the class has cost).

On a `SQLStore` the database computes the classes (one ``GROUP BY`` over the
cases joined with their events' facts, medians as in `gridflow.metrics`); on
any other store the same definitions run in Python. Both give equal results:
durations are exact integer microseconds on every backend.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from datetime import datetime
from typing import Any

import attrs

from gridflow._figures import _median, _micros, _Partial, sql_failures, sql_tables
from gridflow.model import Case, Event

__all__ = ["ProblemClass"]

_WORKFLOW = "grid_case"
_CLOSED = "closed"
_TRIAGE = "triage"
_RECURRENCE = "recurrence_of"
_SOLVE_KEY = "(solve)"


@attrs.frozen
class ProblemClass:
    """One problem class (一类事): a place (``location.key``) and a category.

    Example:
        >>> c = ProblemClass("CN-ZL-324", "违规堆物", cases=3, recurrences=2, solved=2,
        ...                  median_seconds_to_solve=7200.0, total_seconds_to_solve=14400.0)
        >>> c.recurrence_rate, c.unsolved
        (0.6666666666666666, 1)
    """

    key: str
    category: str | None
    #: Cases opened in the period at this place, of this category.
    cases: int = 0
    #: Of those, recurrences (反弹) of an earlier case at the same place.
    recurrences: int = 0
    #: Of those, closed before ``until``.
    solved: int = 0
    #: Median and total seconds from opening to the first close, over ``solved``.
    median_seconds_to_solve: float | None = None
    total_seconds_to_solve: float = 0.0

    @property
    def recurrence_rate(self) -> float | None:
        """反弹率 of the class = recurrences / cases."""
        return self.recurrences / self.cases if self.cases else None

    @property
    def unsolved(self) -> int:
        """Cases of the class not closed before ``until``."""
        return self.cases - self.solved

    def to_dict(self) -> dict[str, Any]:
        """The class as plain JSON-able data.

        Example:
            >>> ProblemClass("k", None, cases=1).to_dict()["unsolved"]
            1
        """
        out = attrs.asdict(self)
        out["recurrence_rate"] = self.recurrence_rate
        out["unsolved"] = self.unsolved
        return out


def _order(c: ProblemClass) -> tuple[int, int, str, bool, str]:
    return (-c.cases, -c.recurrences, c.key, c.category is not None, c.category or "")


def _is_recurrence(event: Event) -> bool:
    found = event.payload.get(_RECURRENCE)
    return event.trigger == _TRIAGE and isinstance(found, list) and len(found) > 0


def _key_of(case: Case) -> str | None:
    location = case.data.get("location")
    key = location.get("key") if isinstance(location, dict) else None
    return None if key is None or key == "" else str(key)


def compute(store: Any, since: datetime, until: datetime, min_cases: int) -> list[ProblemClass]:
    """The classes of ``store`` (arguments already checked), sorted: most cases first."""
    tables = sql_tables(store)
    if tables is None:
        found = _py(store, since, until)
    else:
        with sql_failures(store, "computing the problem classes"):
            found = _sql(*tables[:3], since, until)
    return sorted((c for c in found if c.cases >= min_cases), key=_order)


# -- Python: any store ------------------------------------------------------------------


def _py(store: Any, since: datetime, until: datetime) -> list[ProblemClass]:
    counts: dict[tuple[str, str | None], list[int]] = defaultdict(lambda: [0, 0, 0])
    times: dict[tuple[str, str | None], list[int]] = defaultdict(list)
    items = store.query(workflow=_WORKFLOW, opened_from=since, opened_until=until,
                        limit=sys.maxsize).items
    for case in items:
        key = _key_of(case)
        if key is None:
            continue
        category = case.data.get("category")
        group = (key, None if category is None else str(category))
        row = counts[group]
        row[0] += 1
        closed_at: datetime | None = None
        recurrence = False
        for e in store.events(case.id):
            if e.at >= until:
                continue
            recurrence = recurrence or _is_recurrence(e)
            if e.dest == _CLOSED and closed_at is None:
                closed_at = e.at
        row[1] += recurrence
        if closed_at is not None:
            row[2] += 1
            times[group].append(_micros(closed_at) - _micros(case.opened_at))
    out = []
    for (key, category), (n, recurrences, solved) in counts.items():
        spent = times.get((key, category), [])
        out.append(ProblemClass(
            key, category, cases=n, recurrences=recurrences, solved=solved,
            median_seconds_to_solve=_median(spent) / 1_000_000 if spent else None,
            total_seconds_to_solve=sum(spent) / 1_000_000))
    return out


# -- SQL: SQLStore --------------------------------------------------------------------------


def _sql(engine: Any, c: Any, e: Any, since: datetime, until: datetime) -> list[ProblemClass]:
    import sqlalchemy as sa

    from gridflow import _metrics_sql as msql

    dialect = str(engine.dialect.name)
    us = msql._micros_of(dialect)
    one = msql._one
    key = c.c.data[("location", "key")].as_string()
    category = c.c.data["category"].as_string()
    recurrence = msql._nonempty_list(dialect, e, _RECURRENCE)
    chosen = sa.and_(c.c.workflow == _WORKFLOW, c.c.opened_at >= since, c.c.opened_at < until,
                     key.is_not(None), key != "")
    facts = (
        sa.select(
            e.c.case_id.label("case_id"),
            sa.func.max(one(sa.and_(e.c.trigger == _TRIAGE, recurrence))).label("recurrence"),
            sa.func.min(sa.case((e.c.dest == _CLOSED, e.c.at))).label("closed_at"),
        )
        .select_from(e.join(c, c.c.id == e.c.case_id))
        .where(chosen, e.c.at < until)
        .group_by(e.c.case_id)
        .subquery("facts")
    )
    f = facts.c
    per_case = (
        sa.select(
            key.label("grp"), category.label("wf"), sa.literal(_SOLVE_KEY).label("k"),
            sa.func.coalesce(f.recurrence, 0).label("recurrence"),
            f.closed_at,
            (us(f.closed_at) - us(c.c.opened_at)).label("v"),
        )
        .select_from(c.outerjoin(facts, f.case_id == c.c.id))
        .where(chosen)
        .subquery("per_case")
    )
    p = per_case.c
    query = sa.select(
        p.grp, p.wf, sa.func.count(), sa.func.sum(p.recurrence),
        sa.func.sum(one(p.closed_at.is_not(None))), sa.func.sum(p.v),
    ).group_by(p.grp, p.wf)
    medians = _Partial()
    with engine.connect() as conn:
        rows = list(conn.execute(query))
        solved = sa.select(p.grp, p.wf, p.k, p.v).where(p.v.is_not(None)).subquery("solve")
        msql._medians(conn, solved, medians)
    out = []
    for grp, wf, n, recurrences, n_solved, total in rows:
        median = medians.medians.get(msql._text(grp), {}).get((wf, _SOLVE_KEY))
        out.append(ProblemClass(
            str(grp), msql._text(wf), cases=int(n), recurrences=int(recurrences or 0),
            solved=int(n_solved or 0),
            median_seconds_to_solve=None if median is None else median / 1_000_000,
            total_seconds_to_solve=int(total or 0) / 1_000_000))
    return out
