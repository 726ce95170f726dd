"""Per-case facts (schema 5): what the supervision figures need, folded from the events.

A `SQLStore` keeps, on each case row, a few columns derived from the case's
events (the first close, the earliest missed handling deadline, how many
acknowledgements, checks, rates... it has) and, on each event that ends a
stay in a state, that stay's length. `gridflow.metrics.compute` reads them
instead of aggregating every event of every case (see `gridflow._metrics_sql`).

They are a fold of the events, like the rest of the case row, and this module
is the one definition of it: `FACTS` says, for each column, which events
count and how they combine. The store applies one step of the fold at each
write (`step_params` gives the event's values, the SQL ``UPDATE`` combines
them with the stored column as `FACTS` says), the schema upgrade from
version 4 and verification run the whole fold in Python (`derive`). So a
column the events do not give is found by `Engine.verify` and
`Engine.verify_all`.

Times are whole microseconds since the Unix epoch (integers, as the figures
compute them on every backend).

Example:
    >>> from datetime import datetime, timedelta, UTC
    >>> from gridflow.model import Actor, Event, GENESIS_HASH
    >>> t = datetime(2026, 1, 5, tzinfo=UTC)
    >>> a = Actor.system()
    >>> e1 = Event.create("c", 1, "open", None, "reported", a, t, {}, None, GENESIS_HASH)
    >>> e2 = Event.create("c", 2, "triage", "reported", "triaged", a, t + timedelta(hours=1),
    ...                   {}, None, e1.hash)
    >>> facts, stays = derive([e1, e2])
    >>> facts["f_triage"], stays
    (1, [None, 3600000000])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from gridflow.model import Event

__all__ = ["BACK", "FACTS", "NAMES", "STAY", "derive", "district_of", "micros", "opening_district",
           "step_params"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def micros(value: datetime) -> int:
    """Microseconds since the Unix epoch (exact integer arithmetic).

    Example:
        >>> micros(datetime(1970, 1, 1, 0, 0, 1, 5, tzinfo=UTC))
        1000005
    """
    return (value - _EPOCH) // _US


# The terms of the figures (gridflow._figures.GRID_CASE_TERMS / MEDIATION_TERMS, which
# the store layer may not import): a test checks they are the same.
_SYSTEM = "system"
_HANDLING = ("joint_action",)
_BREACHES = ("escalate", "overdue")
_CLOSED = "closed"
_REVISIT = "revisit"
_REVISIT_ENDS = ("confirm", "reopen")
_ENDED = ("resolved", "referred", "withdrawn")
_SATISFIED = ("satisfied", "basically_satisfied")
_CHECKS = ("pass_check", "fail_check")

#: How a column combines the stored value with an event's: the smallest, the largest,
#: the sum, the first event's that has one, the last event's that has one.
Op = Literal["min", "max", "sum", "first", "last"]


def _at(e: Event) -> int:
    return micros(e.at)


def _when(cond: Callable[[Event], bool]) -> Callable[[Event], int | None]:
    return lambda e: micros(e.at) if cond(e) else None


def _n(cond: Callable[[Event], bool]) -> Callable[[Event], int]:
    return lambda e: 1 if cond(e) else 0


def _missed(e: Event) -> int | None:
    """The handling deadline a timer's breach event recorded as missed."""
    if not (e.actor.id == _SYSTEM and e.source in _HANDLING and e.trigger in _BREACHES):
        return None
    deadline = e.payload.get("deadline_at")
    if not isinstance(deadline, str):
        return None
    try:
        return micros(datetime.fromisoformat(deadline))
    except (ValueError, TypeError):  # not an aware ISO time: the figures cannot read it
        return None


def _recurrence(e: Event) -> bool:
    found = e.payload.get("recurrence_of")
    return e.trigger == "triage" and isinstance(found, list) and len(found) > 0


def _first_check(e: Event) -> int | None:
    if e.trigger not in _CHECKS:
        return None
    return 1 if e.trigger == "pass_check" else 0


#: ``(column, op, the event's value)``: the facts of the case row, in column order.
FACTS: tuple[tuple[str, Op, Callable[[Event], int | None]], ...] = (
    ("f_at_min", "min", _at),
    ("f_at_max", "max", _at),
    # grid_case (gridflow.metrics: the grid-case figures)
    ("f_closed_at", "min", _when(lambda e: e.dest == _CLOSED)),
    ("f_late_close_at", "min", _when(
        lambda e: e.dest == _CLOSED and e.payload.get("on_time") is False)),
    ("f_missed_at", "min", _missed),
    ("f_triage", "sum", _n(lambda e: e.trigger == "triage")),
    ("f_escalate", "sum", _n(lambda e: e.trigger == "escalate")),
    ("f_reopen", "sum", _n(lambda e: e.trigger == "reopen")),
    ("f_extension", "sum", _n(lambda e: e.trigger == "approve_extension")),
    ("f_revisits", "sum", _n(lambda e: e.source == _REVISIT and e.trigger in _REVISIT_ENDS)),
    ("f_revisits_passed", "sum", _n(
        lambda e: e.source == _REVISIT and e.trigger == _REVISIT_ENDS[0])),
    # grid_case@2's closed loop (gridflow.metrics.closed_loop)
    ("f_acknowledged", "sum", _n(lambda e: e.trigger == "acknowledge")),
    ("f_acknowledged_on_time", "sum", _n(
        lambda e: e.trigger == "acknowledge" and e.payload.get("on_time") is True)),
    ("f_returned", "sum", _n(lambda e: e.trigger == "return_task")),
    ("f_checks", "sum", _n(lambda e: e.trigger in _CHECKS)),
    ("f_checks_failed", "sum", _n(lambda e: e.trigger == "fail_check")),
    ("f_first_check_passed", "first", _first_check),
    ("f_rated", "sum", _n(lambda e: e.trigger == "rate")),
    ("f_satisfied", "sum", _n(
        lambda e: e.trigger == "rate" and e.payload.get("satisfaction") in _SATISFIED)),
    ("f_recurrences", "sum", _n(_recurrence)),
    ("f_parked", "sum", _n(lambda e: e.trigger == "park")),
    ("f_urged", "sum", _n(lambda e: e.trigger == "urge")),
    # mediation
    ("f_ended_at", "min", _when(lambda e: e.dest in _ENDED)),
    ("f_agreed_at", "min", _when(lambda e: e.trigger == "agree")),
    ("f_resolved", "sum", _n(lambda e: e.dest == _ENDED[0])),
    ("f_tier1", "sum", _n(lambda e: e.dest == "grid_mediation")),
    ("f_higher", "sum", _n(lambda e: e.dest in ("three_office", "multi_party"))),
    # the time in each state: when the case entered its state (the last event with a
    # dest), and how long the stay the last event ended lasted (``None``: it ended none)
    ("f_entered_us", "last", _when(lambda e: e.dest is not None)),
)
#: The case row's stay column: set at each event to the length of the stay it ends.
STAY = "f_stay_us"
#: How many events are earlier than an event before them (0: the times never go back,
#: so the stays that end before any ``until`` are those `derive` gives).
BACK = "f_back"
#: Every fact column of the case row, in column order.
NAMES: tuple[str, ...] = (*(name for name, _, _ in FACTS), STAY, BACK)


def district_of(grid: object) -> str:
    """The district of a case opened in ``grid``: the grid's name up to its first
    ``-`` (``"华三-1"`` is in ``"华三"``), the whole name if it has none, ``""`` for a
    case opened without a grid. Set when the case opens and never changed (a case
    transferred to another grid stays in its district): the key a sharded store
    (Citus) distributes the case and its events by.

    Example:
        >>> district_of("华三-1"), district_of("华三"), district_of(None)
        ('华三', '华三', '')
    """
    if not isinstance(grid, str):
        return ""
    return grid.split("-", 1)[0]


def opening_district(event: Any) -> str:
    """The district of the case an ``open`` event opens (its payload's ``grid``).

    Example:
        >>> from datetime import datetime, UTC
        >>> from gridflow.model import Actor, Event, GENESIS_HASH
        >>> e = Event.create("c", 1, "open", None, "reported", Actor.system(),
        ...                  datetime(2026, 1, 5, tzinfo=UTC), {"grid": "华三-1"}, None,
        ...                  GENESIS_HASH)
        >>> opening_district(e)
        '华三'
    """
    return district_of(event.payload.get("grid"))


def _combine(op: Op, old: int | None, new: int | None) -> int | None:
    if op == "sum":
        return (old or 0) + (new or 0)
    if new is None:
        return old
    if old is None or op == "last":
        return new
    if op == "min":
        return min(old, new)
    if op == "max":
        return max(old, new)
    return old  # first


#: The facts whose value reads more of an event than its step (trigger, source, dest)
#: and its time: its payload or actor. Every other fact is worked out once per step
#: (`_plan`), and a probe that holds no payload nor actor checks that it needs none.
_EVENT_FACTS = frozenset({"f_late_close_at", "f_missed_at", "f_acknowledged_on_time",
                          "f_satisfied", "f_recurrences"})
#: ``(p_<column>, the event's value)`` of the facts in `_EVENT_FACTS`.
_EVENT_PARAMS: tuple[tuple[str, Callable[[Event], int | None]], ...] = tuple(
    (f"p_{name}", value) for name, _, value in FACTS if name in _EVENT_FACTS)


class _Probe:
    """A stand-in event of one step at a given time, for `_plan`: reading its payload
    or actor raises (the fact then belongs in `_EVENT_FACTS`)."""

    __slots__ = ("at", "dest", "source", "trigger")

    def __init__(self, step: tuple[str, str | None, str | None], at: datetime) -> None:
        self.trigger, self.source, self.dest = step
        self.at = at

    @property
    def payload(self) -> Any:
        raise AssertionError("a fact outside _EVENT_FACTS reads the payload")

    @property
    def actor(self) -> Any:
        raise AssertionError("a fact outside _EVENT_FACTS reads the actor")


#: Per step: the constant ``p_<column>`` values of its step-only facts, and the
#: columns whose value is the event's time.
_PLANS: dict[tuple[str, str | None, str | None], tuple[dict[str, Any], tuple[str, ...]]] = {}
_PLAN_LIMIT = 4096  # steps are a spec's edges: few; a bound all the same


def _plan(step: tuple[str, str | None, str | None]) -> tuple[dict[str, Any], tuple[str, ...]]:
    # Each step-only fact is a constant or the event's time: evaluated at two times,
    # a constant gives the same value twice, the time gives each time back.
    one, two = (_Probe(step, _EPOCH + n * _US) for n in (1, 2))
    const: dict[str, Any] = {}
    timed: list[str] = []
    for name, _, value in FACTS:
        if name in _EVENT_FACTS:
            continue
        a, b = value(one), value(two)  # type: ignore[arg-type]
        if (a, b) == (1, 2):
            timed.append(f"p_{name}")
        elif a == b:
            const[f"p_{name}"] = a
        else:
            raise AssertionError(f"fact {name} is neither constant nor the time per step")
    if len(_PLANS) >= _PLAN_LIMIT:
        _PLANS.clear()
    plan = _PLANS[step] = (const, tuple(timed))
    return plan


def step_params(event: Event) -> dict[str, Any]:
    """The values one event brings to each fact (what the store's write combines with
    the stored row), ``p_<column>`` for each column of `FACTS`.

    Example:
        >>> from datetime import datetime, UTC
        >>> from gridflow.model import Actor, Event, GENESIS_HASH
        >>> e = Event.create("c", 1, "open", None, "reported", Actor.system(),
        ...                  datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC), {}, None, GENESIS_HASH)
        >>> step_params(e)["p_f_at_min"], step_params(e)["p_f_triage"]
        (1000000, 0)
    """
    step = (event.trigger, event.source, event.dest)
    found = _PLANS.get(step)
    const, timed = _plan(step) if found is None else found
    params = const.copy()
    if timed:
        at = micros(event.at)
        for key in timed:
            params[key] = at
    for key, value in _EVENT_PARAMS:
        params[key] = value(event)
    params["p_district"] = opening_district(event) if event.seq == 1 else None
    return params


def _step_params_direct(event: Event) -> dict[str, Any]:
    """`step_params` evaluating every fact on the event (the reference `tests` hold
    the planned one to)."""
    params: dict[str, Any] = {f"p_{name}": value(event) for name, _, value in FACTS}
    params["p_district"] = opening_district(event) if event.seq == 1 else None
    return params


def derive(events: Sequence[Any]) -> tuple[dict[str, int | None], list[int | None]]:
    """The facts of a case whose events are ``events`` (in ``seq`` order), and the
    length of the stay each event ends (``None`` for an event that ends none).

    A stay in a state starts with an event whose dest is that state and ends with
    the case's next event that has a dest (internal steps change nothing): its
    length is the difference of their times. Example: see the module.
    """
    facts: dict[str, int | None] = {name: None for name in NAMES}
    stays: list[int | None] = []
    facts[BACK] = 0
    for event in events:
        entered, latest = facts["f_entered_us"], facts["f_at_max"]
        if latest is not None and micros(event.at) < latest:
            facts[BACK] = (facts[BACK] or 0) + 1
        for name, op, value in FACTS:
            facts[name] = _combine(op, facts[name], value(event))
        stay = None if event.dest is None or entered is None else micros(event.at) - entered
        facts[STAY] = stay
        stays.append(stay)
    return facts, stays


def check(case_id: str, stored: dict[str, Any], stored_stays: Sequence[Any],
          events: Sequence[Event], districts: Sequence[Any] | None = None) -> None:
    """Raise `IntegrityError` if the stored facts of a case (its row's fact columns
    and ``district``, each event's ``stay_us`` and ``district``) are not those `derive`
    and `opening_district` give for ``events``.

    Example:
        >>> from datetime import datetime, UTC
        >>> from gridflow.model import Actor, Event, GENESIS_HASH
        >>> e = Event.create("c", 1, "open", None, "reported", Actor.system(),
        ...                  datetime(2026, 1, 5, tzinfo=UTC), {}, None, GENESIS_HASH)
        >>> facts, stays = derive([e])
        >>> check("c", facts, stays, [e])
        >>> check("c", {**facts, "f_triage": 1}, stays, [e])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        gridflow._errors.IntegrityError: case 'c' fails verification at seq 1 (field ...
    """
    from gridflow._errors import IntegrityError

    facts, stays = derive(events)
    last = events[-1].seq if events else None
    district = opening_district(events[0]) if events else ""
    if "district" in stored and stored["district"] != district:
        raise IntegrityError(case_id, 1, "the row's district is not that of the grid the "
                             "case was opened in", field="district")
    for name in NAMES:
        if stored.get(name) != facts[name]:
            raise IntegrityError(case_id, last, f"the row's {name} is not the fold of its "
                                 "events", field=name)
    for event, found in zip(events, districts or (), strict=False):
        if found != district:
            raise IntegrityError(case_id, event.seq, "the event's district is not its case's",
                                 field="district")
    for event, found, expected in zip(events, stored_stays, stays, strict=False):
        if found != expected:
            raise IntegrityError(case_id, event.seq, "the event's stay_us is not the length "
                                 "of the stay it ends", field="stay_us")
