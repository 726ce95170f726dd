"""CSV export of cases with one timestamp column per state: when the case first
entered it (a request users of civic systems make again and again).

Columns, in order: `BASE_COLUMNS`, then ``entered_<state>`` for every state of
the exported workflows (declaration order; states shared by two workflows
get one column). ``entered_<state>`` is the time of the *first* event whose
``dest`` is that state (the ``open`` event for the initial state); a case
that re-enters a state (rework, 返工) keeps its first time, and the number
of re-entries shows in ``reopened`` / ``escalations``. Empty when the case
never entered the state. Times are ISO 8601 with the zone's offset.

No personal data: the columns are an allow-list; names, phones, emails,
device ids and the opening actor never appear, and copies of them typed into
the title are blanked (see docs/open311.md, "Privacy").

Example:
    >>> import io, gridflow
    >>> from gridflow.interop import export
    >>> engine = gridflow.Engine(clock=gridflow.FixedClock(), entry_points=False)
    >>> c = engine.open("grid_case", actor=gridflow.Actor("r", ["resident"],
    ...                                                   grids=gridflow.ALL_GRIDS), grid="华三-1",
    ...                 data={"title": "楼道堆物", "source": "resident"})
    >>> out = io.StringIO()
    >>> export.write_csv(engine.store, out)
    1
    >>> rows = out.getvalue().splitlines()
    >>> rows[0].split(",")[:4], rows[1].split(",")[3]
    (['case_id', 'workflow', 'workflow_version', 'state'], 'reported')
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, tzinfo
from typing import IO, Any

from gridflow._errors import InvalidArgument
from gridflow.interop._common import (
    Redactor,
    check_export,
    is_closed,
    iso,
    known_values,
    spec_of,
    spec_table,
)
from gridflow.model import Case, Event
from gridflow.spec import WorkflowSpec
from gridflow.store import Store

__all__ = ["BASE_COLUMNS", "COUNTED_TRIGGERS", "case_row", "columns", "iter_cases", "write_csv"]

#: Columns before the per-state timestamps.
BASE_COLUMNS: tuple[str, ...] = (
    "case_id", "workflow", "workflow_version", "state", "status", "grid", "area", "category",
    "subcategory", "priority", "source", "title", "departments", "escalations", "reopened",
    "extensions", "opened_at", "updated_at", "deadline_at",
)

#: Count columns and the triggers they count in a case's history.
COUNTED_TRIGGERS: dict[str, tuple[str, ...]] = {
    "escalations": ("escalate",),
    "reopened": ("reopen",),
    "extensions": ("approve_extension",),
}

_DATA_COLUMNS = ("area", "category", "subcategory", "priority", "source")


def columns(specs: Sequence[WorkflowSpec]) -> list[str]:
    """The header for cases of ``specs``: `BASE_COLUMNS` + ``entered_<state>``.

    Example:
        >>> from gridflow.workflows import GRID_CASE
        >>> columns([GRID_CASE])[len(BASE_COLUMNS):][:3]
        ['entered_reported', 'entered_triaged', 'entered_joint_action']
    """
    states: dict[str, None] = {}
    for spec in specs:
        for name in spec.state_names:
            states.setdefault(name, None)
    return [*BASE_COLUMNS, *(f"entered_{s}" for s in states)]


def case_row(
    case: Case, events: Sequence[Event], spec: WorkflowSpec, *, tz: tzinfo = UTC,
    known: Sequence[Any] = (), report: dict[str, int] | None = None,
) -> dict[str, str]:
    """One CSV row of a case (column name -> text; empty text for no value).

    Example:
        >>> import gridflow
        >>> engine = gridflow.Engine(clock=gridflow.FixedClock(), entry_points=False)
        >>> c = engine.open("grid_case", actor=gridflow.Actor("r", ["resident"],
        ...                                                   grids=gridflow.ALL_GRIDS),
        ...                 data={"title": "路灯坏了", "source": "resident"})
        >>> row = case_row(c, engine.history(c.id), engine.workflow("grid_case"))
        >>> row["entered_reported"], row["entered_closed"], row["status"]
        ('2026-01-05T01:00:00+00:00', '', 'open')
    """
    data = case.data
    redact = Redactor(case, events, known)
    first: dict[str, datetime] = {}
    counts = dict.fromkeys(COUNTED_TRIGGERS, 0)
    by_trigger = {t: col for col, triggers in COUNTED_TRIGGERS.items() for t in triggers}
    for event in events:
        if event.dest is not None and event.dest not in first:
            first[event.dest] = event.at
        col = by_trigger.get(event.trigger)
        if col is not None:
            counts[col] += 1
    departments = data.get("departments")

    def text(value: Any) -> str:
        return "" if value is None else str(value)

    row = {
        "case_id": case.id,
        "workflow": case.workflow,
        "workflow_version": str(case.workflow_version),
        "state": case.state,
        "status": "closed" if is_closed(spec, case.state) else "open",
        "grid": text(case.grid),
        **{col: text(redact.text(data.get(col))) for col in _DATA_COLUMNS},
        "title": text(redact.text(data.get("title"))),
        "departments": "; ".join(map(str, departments)) if isinstance(departments, list) else "",
        **{col: str(n) for col, n in counts.items()},
        "opened_at": text(iso(case.opened_at, tz)),
        "updated_at": text(iso(case.updated_at, tz)),
        "deadline_at": text(iso(case.deadline_at, tz)),
    }
    for name in spec.state_names:
        row[f"entered_{name}"] = text(iso(first.get(name), tz))
    if report is not None:
        report["screened"] = report.get("screened", 0) + redact.hits
    return row


def iter_cases(
    store: Store, *, workflow: str | None = None, grid: str | Sequence[str] | None = None,
    opened_from: datetime | None = None, opened_until: datetime | None = None,
    page_size: int = 500,
) -> Iterator[Case]:
    """Every matching case, page by page (keyset pagination; ``(opened_at, id)`` order).

    Example:
        >>> from gridflow.store.memory import MemoryStore
        >>> list(iter_cases(MemoryStore()))
        []
    """
    if page_size.__class__ is not int or page_size < 1:
        # 0 read as an empty first page: an export of nothing, without a word.
        raise InvalidArgument(f"iter_cases(page_size=...) takes an int from 1, got "
                              f"{type(page_size).__name__} {repr(page_size)[:40]}")
    after: str | None = None
    while True:
        page = store.query(workflow=workflow, grid=grid, opened_from=opened_from,
                           opened_until=opened_until, after=after, limit=page_size)
        yield from page.items
        if page.next is None:
            return
        after = page.next


def write_csv(
    store: Store,
    out: IO[str],
    *,
    cases: Iterable[Case] | None = None,
    workflow: str | None = None,
    grid: str | Sequence[str] | None = None,
    opened_from: datetime | None = None,
    opened_until: datetime | None = None,
    specs: Iterable[WorkflowSpec] | None = None,
    tz: tzinfo = UTC,
    privacy: Any = None,
    report: dict[str, int] | None = None,
) -> int:
    """Write cases as CSV to ``out`` (open it with ``newline=""``); returns the row count.

    Exports ``cases`` if given, else every case of ``store`` matching the
    filters (``opened_from`` inclusive, ``opened_until`` exclusive). The
    ``entered_<state>`` columns cover the workflows present (all of them
    when no ``workflow`` is named); ``specs`` adds non-built-in workflows.
    Every exported string is screened against the case's personal values
    (opened with ``privacy``, ``engine.privacy``; default: the one of the last
    engine on ``store``) and phone, ID-card and e-mail patterns; ``report``, a
    dict if given, gets ``screened``: how many were found and masked.

    Example:
        >>> import io
        >>> from gridflow.store.memory import MemoryStore
        >>> buf = io.StringIO()
        >>> write_csv(MemoryStore(), buf, workflow="grid_case")
        0
        >>> buf.getvalue().startswith("case_id,workflow,")
        True
    """
    check_export("write_csv", tz, report)
    table = spec_table(specs)
    if cases is None:
        if workflow is not None:
            names = [workflow]
        else:
            names = sorted({str(k[0]) for k in store.counts(("workflow",))})
        chosen = [s for (n, _), s in sorted(table.items()) if n in names]
        source: Iterable[Case] = iter_cases(store, workflow=workflow, grid=grid,
                                            opened_from=opened_from, opened_until=opened_until)
    else:
        materialised = list(cases)
        one_each: dict[tuple[str, int], Case] = {}
        for c in materialised:
            one_each.setdefault((c.workflow, c.workflow_version), c)
        chosen = [spec_of(one_each[k], table) for k in sorted(one_each)]
        source = materialised
    header = columns(chosen)
    writer = csv.DictWriter(out, fieldnames=header, restval="", extrasaction="raise")
    writer.writeheader()
    n = 0
    for case in source:
        events = store.events(case.id)
        writer.writerow(case_row(case, events, spec_of(case, table), tz=tz,
                                 known=known_values(case, events, store, privacy),
                                 report=report))
        n += 1
    return n
