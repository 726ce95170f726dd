"""The pure step core: the rules of a step, as functions that do no I/O.

A step is *decided* here and *stored* by the engine:

1. `admit` / `admit_open`: scope, state, trigger and role (refusals raise);
2. `check_fields`: required and restricted payload fields;
3. `run` / `run_open`: guards and effects through the compiled transitions
   machine, giving an `Outcome` (the destination, the new data, the links);
4. `entering_deadline`: the deadline in force after the step;
5. `record` / `record_open` (and `link_event`, `overdue_event`): the event to
   append, whose `Changes` say exactly what the step changed in the row.

The new row is then `gridflow.fold.evolve(case, event)`. The engine (and
the async engine) supply what needs the outside world: the case read from
the store, the plugin hooks' answers, a scoped look-up for guards, the
clock's ``now``. No rule is written anywhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs

import gridflow.model as _model
from gridflow._errors import (
    CalendarError,
    CaseNotVisible,
    GridflowError,
    GuardRejected,
    InvalidPayload,
    InvalidTransition,
    MissingPayload,
    PermissionDenied,
)
from gridflow._fastinit import frozen_init, maker
from gridflow.model import (
    GENESIS_HASH,
    OVERDUE_KEY,
    Actor,
    Case,
    Changes,
    Event,
    _fast_bytes,
    case_has_link,
    event_text,
    links_count,
)
from gridflow.step import Step
from gridflow.values import MAX_EVENT_BYTES, PLAIN, check, check_kind, detach

if TYPE_CHECKING:
    from gridflow.calendar import Calendar
    from gridflow.machine import CompiledWorkflow, Rule
    from gridflow.spec import StateSpec

__all__ = [
    "Lookup",
    "Outcome",
    "WorkingData",
    "admit",
    "admit_open",
    "check_fields",
    "entering_deadline",
    "link_event",
    "migrate_event",
    "overdue_event",
    "record",
    "record_open",
    "run",
    "run_open",
    "working_data",
]

#: Reads another case for a guard, scoped to the acting actor (``None``: the
#: case does not exist *or* is outside the actor's grids).
Lookup = Callable[[str], "Case | None"]

_EMPTY_DATA: Mapping[str, Any] = {}

#: The values `check_fields` calls missing.
_MISSING: tuple[object, ...] = (None, "", [], {})


@frozen_init
@attrs.frozen(slots=True)
class Outcome:
    """What the transitions machine decided for one step.

    ``data`` is the case data as the step leaves it; ``payload`` the payload
    as effects left it (an effect may add derived facts, e.g. ``on_time``);
    ``links`` the case ids the step links that the case did not hold yet;
    ``deadline_at`` a deadline an effect fixed (`Step.deadline_at`).
    """

    dest: str | None
    data: dict[str, Any]
    payload: dict[str, Any]
    links: tuple[str, ...]
    deadline_at: datetime | None
    #: Whether effects ran (and so may have added to the payload).
    effects: bool = True


_make_outcome = maker(Outcome)


# -- 1. admission ---------------------------------------------------------------------


def admit(wf: CompiledWorkflow, case: Case, trigger: str, actor: Actor) -> Rule:
    """The rule of ``trigger`` for ``actor`` on ``case``, or the refusal.

    Scope comes first: to an actor outside the case's grid, the case does not
    exist (`CaseNotVisible`), so nothing about it (its state, its triggers)
    is told.

    Example:
        >>> import gridflow
        >>> from gridflow.workflows import GRID_CASE, GUARDS, EFFECTS
        >>> from gridflow.machine import compile_workflow
        >>> from datetime import datetime, UTC
        >>> wf = compile_workflow(GRID_CASE, GUARDS, EFFECTS)
        >>> t = datetime(2026, 1, 5, tzinfo=UTC)
        >>> case = gridflow.Case("c-1", "grid_case", 1, "reported", 1, {}, "A", t, t)
        >>> admit(wf, case, "triage", gridflow.Actor("s", ["coordinator"], ["B"]))
        ... # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        gridflow._errors.CaseNotVisible: case 'c-1' does not exist or is outside the grids ...
    """
    if not actor.can_touch(case.grid):
        raise CaseNotVisible(case.id, actor.id, no_grids=not actor.grids)
    state = case.state
    rule = wf.rules.get(state, _EMPTY).get(trigger)
    if rule is None:
        raise InvalidTransition(case.id, state, trigger, wf.allowed(state),
                                known=trigger in wf.triggers)
    if rule.roles and rule.roles.isdisjoint(actor.roles):
        raise PermissionDenied(
            f"case {case.id!r} in state {state!r}: actor {actor.id!r} with roles "
            f"{sorted(actor.roles)} may not fire {trigger!r}; roles allowed: "
            f"{', '.join(sorted(rule.roles))}", case_id=case.id, actor_id=actor.id)
    return rule


_EMPTY: Mapping[str, Rule] = {}

#: The rows a step builds, without ``type.__call__`` (`gridflow._fastinit.maker`).
_make_event = maker(Event)
_make_changes = maker(Changes)


def admit_open(wf: CompiledWorkflow, actor: Actor, grid: str | None) -> Rule:
    """The rule of opening a case of ``wf`` in ``grid`` as ``actor``, or the refusal.

    Example:
        >>> import gridflow
        >>> from gridflow.workflows import GRID_CASE, GUARDS, EFFECTS
        >>> from gridflow.machine import compile_workflow
        >>> wf = compile_workflow(GRID_CASE, GUARDS, EFFECTS)
        >>> admit_open(wf, gridflow.Actor("r", ["resident"]), "华三-1")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        gridflow._errors.PermissionDenied: actor 'r' may not open a case in grid '华三-1'; ...
    """
    spec = wf.spec
    if spec.open_roles and actor.roles.isdisjoint(spec.open_roles):
        raise PermissionDenied(
            f"actor {actor.id!r} with roles {sorted(actor.roles)} may not open a "
            f"{spec.name!r} case; roles allowed: {', '.join(spec.open_roles)}",
            actor_id=actor.id)
    if not actor.can_touch(grid):
        grids = actor.grids
        scope = ", ".join(sorted(grids)) if grids else "(none)"
        raise PermissionDenied(
            f"actor {actor.id!r} may not open a case in grid {grid!r}; the actor's grids: "
            f"{scope}" + (". An actor with no grids may touch no case; pass its grids, or "
                          "pass grids=gridflow.ALL_GRIDS for street-level actors"
                          if not grids else ""), actor_id=actor.id)
    return wf.open_rule


def check_fields(
    case_id: str | None, state: str, trigger: str, payload: Mapping[str, Any], rule: Rule
) -> None:
    """Refuse a payload that lacks a required field or picks a value not offered.

    Example:
        >>> from gridflow.machine import Rule
        >>> rule = Rule(frozenset(), ("reason",), {}, False)
        >>> check_fields("c-1", "reported", "reject", {}, rule)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        gridflow._errors.MissingPayload: ... trigger 'reject' needs payload field(s) reason; ...
    """
    # `in` tests each like "missing" means (identity, then ==), minus a call per field;
    # a loop, not a comprehension: the list is made only for the refusal.
    for f in rule.requires:
        if payload.get(f) in _MISSING:
            missing = [f for f in rule.requires if payload.get(f) in _MISSING]
            raise MissingPayload(case_id, state, trigger, missing, rule.requires)
    for field, options in rule.choices.items():
        if field in payload and payload[field] not in options:
            where = f"case {case_id!r} in state {state!r}" if case_id else "opening"
            raise InvalidPayload(
                f"{where}: trigger {trigger!r}: {field}={payload[field]!r} is not allowed; "
                f"choose one of: {', '.join(options)}", case_id=case_id, trigger=trigger)


# -- 3. running the transition ----------------------------------------------------------


_dict_init = dict.__init__
_dict_setitem = dict.__setitem__


class WorkingData(dict[str, Any]):
    """The step's own copy of the case data: a plain dict that remembers which
    keys were written, so recording the step's changes costs what it wrote,
    not the size of the data.

    A shallow copy: effects assign new values (``step.data["done"] = {...}``),
    as `Step` documents. A nested value edited in place would bypass the
    recorded changes; `Engine.verify` then reports the case's data as
    differing. Reads are plain dict reads.

    Example:
        >>> d = WorkingData({"a": 1, "b": 2})
        >>> d["c"] = 3; d.pop("a"); sorted(d.written)
        1
        ['a', 'c']
    """

    __slots__ = ("written",)

    # `dict`'s own methods called by name, not through ``super()``: a step makes one
    # and writes through it several times, and each ``super()`` is an object made.
    def __init__(self, data: Mapping[str, Any] = _EMPTY_DATA) -> None:
        _dict_init(self, data)
        self.written: set[str] = set()

    def __setitem__(self, key: str, value: Any) -> None:
        self.written.add(key)
        _dict_setitem(self, key, value)

    def __delitem__(self, key: str) -> None:
        self.written.add(key)
        super().__delitem__(key)

    def update(self, *args: Any, **kwargs: Any) -> None:
        new = dict(*args, **kwargs)
        self.written.update(new)
        super().update(new)

    def pop(self, key: str, *default: Any) -> Any:
        self.written.add(key)
        return super().pop(key, *default)

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self.written.add(key)
        return super().setdefault(key, default)

    def popitem(self) -> tuple[str, Any]:
        key, value = super().popitem()
        self.written.add(key)
        return key, value

    def clear(self) -> None:
        self.written.update(self)
        super().clear()

    def __ior__(self, other: Any) -> WorkingData:  # type: ignore[override,misc]
        self.update(other)
        return self


def working_data(data: Mapping[str, Any]) -> WorkingData:
    """The step's working copy of ``data`` (see `WorkingData`).

    Example:
        >>> working_data({"a": 1})["a"]
        1
    """
    return WorkingData(data)


def _new_links(case: Case, wanted: Iterable[str], trigger: str) -> tuple[str, ...]:
    out: list[str] = []
    for other in wanted:
        if not isinstance(other, str) or not other:
            raise InvalidPayload(f"case {case.id!r}: trigger {trigger!r}: a link must name a "
                                 f"case id (a non-empty string), got {type(other).__name__}",
                                 case_id=case.id, trigger=trigger)
        if other == case.id:
            raise InvalidPayload(f"case {case.id!r} cannot be linked to itself",
                                 case_id=case.id, trigger=trigger)
        if not case_has_link(case, other) and other not in out:
            out.append(other)
    return tuple(out)


#: The slot of `Step.links` (reads and unsets it without `Step.__getattr__`).
_STEP_LINKS: Any = Step.__dict__["links"]
_NO_LINKS: list[str] = []


def run(
    wf: CompiledWorkflow, case: Case, trigger: str, actor: Actor, payload: dict[str, Any],
    data: Mapping[str, Any], now: datetime, lookup: Lookup, hooks: Any = None,
) -> Outcome:
    """Run ``trigger`` through the compiled transitions machine: guards, then effects.

    ``data`` is the case data the step starts from (the stored data with any
    ``gridflow_before_fire`` updates), best a `WorkingData` so the keys hooks
    wrote are recorded too. A guard refusing, or a guard or effect
    raising, is `GuardRejected`; nothing is decided then.

    Example:
        >>> import gridflow
        >>> from gridflow.workflows import GRID_CASE, GUARDS, EFFECTS
        >>> from gridflow.machine import compile_workflow
        >>> from datetime import datetime, UTC
        >>> wf = compile_workflow(GRID_CASE, GUARDS, EFFECTS)
        >>> t = datetime(2026, 1, 5, tzinfo=UTC)
        >>> case = gridflow.Case("c-1", "grid_case", 1, "reported", 1, {}, "A", t, t)
        >>> boss = gridflow.Actor("s", ["coordinator"], ["A"])
        >>> out = run(wf, case, "triage", boss, {"category": "堆物", "priority": "low"}, {},
        ...           t, lambda _: None)
        >>> out.dest, out.data
        ('triaged', {'category': '堆物', 'priority': 'low'})
    """
    state = case.state
    working = data if data.__class__ is WorkingData else WorkingData(data)
    # How many links the case holds, without making the tuple of a long shared form.
    known = links_count(case)
    # A case without links: the step's own empty list, what reading it would make.
    # Positional (fired, rejected, failed, then hooks): no keyword matching per step.
    step = Step(case, trigger, actor, payload, working, _NO_LINKS if known else [], now,
                state, lookup, None, None, None, hooks)
    if known:
        # Unset: `Step.links` copies ``case.links`` when first read (O(links) otherwise).
        _STEP_LINKS.__delete__(step)
    try:
        ok = wf.run(step)
    except GridflowError:
        raise
    except Exception as exc:
        raise GuardRejected(case.id, state, trigger, step.failed or "transition",
                            f"raised {exc!r}") from exc
    if not ok:
        name, reason = step.rejected or ("transition", "no transition's guards passed")
        raise GuardRejected(case.id, state, trigger, name, reason)
    fired = step.fired
    assert fired is not None
    # Links only grow (a step cannot unlink): nothing appended, nothing to check.
    links: tuple[str, ...] = ()
    if not known:
        wanted = step.links  # set from the start (no probe that raises, ~5k instructions)
        if len(wanted) != 0:
            links = _new_links(case, wanted, trigger)
    else:
        try:
            wanted = _STEP_LINKS.__get__(step)
        except AttributeError:
            pass  # never read, so never changed
        else:
            if len(wanted) != known:
                links = _new_links(case, wanted, trigger)
    return _make_outcome(fired.dest, step.data, step.payload, links, step.deadline_at,
                         bool(fired.effects))


def run_open(
    wf: CompiledWorkflow, draft: Case, actor: Actor, data: dict[str, Any],
    links: Iterable[str], now: datetime, lookup: Lookup, hooks: Any = None,
) -> Outcome:
    """Run the spec's opening guards and effects on the ``draft`` of a new case.

    Example:
        >>> import gridflow
        >>> from gridflow.workflows import GRID_CASE, GUARDS, EFFECTS
        >>> from gridflow.machine import compile_workflow
        >>> from datetime import datetime, UTC
        >>> wf = compile_workflow(GRID_CASE, GUARDS, EFFECTS)
        >>> t = datetime(2026, 1, 5, tzinfo=UTC)
        >>> draft = gridflow.Case("c-1", "grid_case", 1, "reported", 0, {}, "A", t, t)
        >>> run_open(wf, draft, gridflow.Actor.system(), {"title": "x"}, ["c-2"], t,
        ...          lambda _: None).links
        ('c-2',)
    """
    spec = wf.spec
    # Opening guards read the opening data as the step's payload (it is one).
    step = Step(draft, "open", actor, data, data, list(links), now, spec.initial, lookup,
                hooks=hooks)
    for name, guard in wf.open_guards:
        reason = _call("(new)", spec.initial, f"guard {name!r}", guard, step)
        if reason is not None and reason is not True:
            raise GuardRejected("(new)", spec.initial, "open", name,
                                "refused" if reason is False else str(reason))
    for name, effect in wf.open_effects:
        _call("(new)", spec.initial, f"effect {name!r}", effect, step)
    return Outcome(spec.initial, step.data, {}, _new_links(draft, step.links, "open"),
                   step.deadline_at)


def _call(case_id: str, state: str, what: str, fn: Callable[[Step], Any], step: Step) -> Any:
    try:
        return fn(step)
    except GridflowError:
        raise
    except Exception as exc:
        raise GuardRejected(case_id, state, "open", what, f"raised {exc!r}") from exc


# -- 4. deadlines ---------------------------------------------------------------------


def entering_deadline(
    case_id: str, state: StateSpec, now: datetime, calendar: Calendar, *,
    override: object = None, fixed: datetime | None = None, rule_answer: object = None,
) -> datetime | None:
    """When the time limit of ``state`` runs out for a case entering it at ``now``.

    Precedence: a ``gridflow_deadline`` plugin's answer (``override``), then a
    deadline an effect fixed (``fixed``), then the workflow's deadline rule
    (``rule_answer``), then the spec's ``deadline``. A `timedelta` is counted
    by ``calendar``; a `datetime` is taken as it is (it must be aware).

    Example:
        >>> from gridflow.calendar import CalendarDays
        >>> from gridflow.spec import StateSpec
        >>> from datetime import datetime, UTC, timedelta
        >>> t = datetime(2026, 1, 5, tzinfo=UTC)
        >>> s = StateSpec("triaged", deadline=timedelta(days=1))
        >>> entering_deadline("c-1", s, t, CalendarDays()).isoformat()
        '2026-01-06T00:00:00+00:00'
    """
    answer = override if override is not None else (fixed if fixed is not None
                                                    else rule_answer)
    if isinstance(answer, datetime):
        if answer.tzinfo is None or answer.utcoffset() is None:
            raise InvalidPayload(f"case {case_id!r}: the deadline for state {state.name!r} is "
                                 f"a naive datetime ({answer.isoformat()}); deadlines must be "
                                 "aware datetimes", case_id=case_id)
        return answer.astimezone(UTC)
    delta = answer if isinstance(answer, timedelta) else state.deadline
    if delta is None:
        return None
    try:
        return calendar.add(now, delta).astimezone(UTC)
    except OverflowError:
        raise CalendarError(f"case {case_id!r}: the deadline of state {state.name!r} "
                            f"({delta}) after {now.isoformat()} is beyond the year 9999") from None


# -- 5. the event -------------------------------------------------------------------------


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON values: ``True`` is not ``1``, ``1`` is not ``1.0``."""
    if a is b:
        return True
    if a.__class__ is not b.__class__:
        return False
    if a.__class__ is dict:
        return a.keys() == b.keys() and all(_same(v, b[k]) for k, v in a.items())
    if a.__class__ is list:
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    # Recorded: the keys whose value changed as JSON values (1 and True differ).
    # Compared by value, not identity, so that the same step records the same
    # changes on every store (a store may or may not hand back the very objects
    # it was given). A `WorkingData` says which keys were written: only those
    # are compared; a value not written is the very object stored before.
    missing = _NOTHING
    if new.__class__ is WorkingData:
        written = new.written
        if not written:
            return {}, ()
        # One loop, not a comprehension and a generator (each a frame of its own).
        changed: dict[str, Any] = {}
        gone: list[str] | None = None
        for k in written:
            if k in new:
                v = new[k]
                if (o := old.get(k, missing)) is missing or not _same(o, v):
                    changed[k] = v
            elif k in old:
                if gone is None:
                    gone = []
                gone.append(k)
        # Sorted: the hashed list must not depend on a set's or a store's order.
        return changed, (tuple(sorted(gone)) if gone is not None else ())
    changed = {k: v for k, v in new.items()
               if (o := old.get(k, missing)) is not v and (o is missing or not _same(o, v))}
    removed = tuple(sorted(old.keys() - new.keys()))
    return changed, removed


_NOTHING: Any = object()


def _hashed(case_id: str, seq: int, trigger: str, source: str | None, dest: str | None,
            actor: Actor, at: datetime, payload: dict[str, Any], key: str | None, prev: str,
            changes: Changes, set_plain: bool = False, payload_plain: bool = False) -> Event:
    data = _fast_bytes(case_id, seq, trigger, source, dest, actor, at, payload, key, prev,
                       changes, set_plain, payload_plain)
    if data is None:
        try:
            text = event_text(case_id, seq, trigger, source, dest, actor, at, payload, key,
                              prev, changes)
        except (TypeError, ValueError) as exc:
            raise InvalidPayload(f"case {case_id!r}: trigger {trigger!r}: the step's values "
                                 f"are not JSON-able ({exc})", case_id=case_id,
                                 trigger=trigger) from None
        data = text.encode()
    if len(data) > MAX_EVENT_BYTES:
        raise InvalidPayload(f"case {case_id!r}: trigger {trigger!r}: the event would be "
                             f"{len(data):,} bytes; at most {MAX_EVENT_BYTES:,} bytes are stored "
                             "per step (keep documents outside gridflow and store a reference)",
                             case_id=case_id, trigger=trigger)
    return _make_event(case_id, seq, trigger, source, dest, actor, at, payload, key, prev,
                       _model._sha256(data).hexdigest(), changes)


def record(
    case: Case, trigger: str, actor: Actor, now: datetime, outcome: Outcome,
    deadline_at: datetime | None, key: str | None, *, payload_plain: bool = False,
) -> Event:
    """The event of a decided step on ``case``, its `Changes` included.

    ``deadline_at`` is the deadline in force after the step (see
    `entering_deadline`; on an internal step, the case's own unless an
    effect moved it). The data keys set and removed are what ``outcome``
    changed, checked against the value domain (`gridflow.values`).

    Example:
        >>> import gridflow
        >>> from datetime import datetime, UTC
        >>> t = datetime(2026, 1, 5, tzinfo=UTC)
        >>> case = gridflow.Case("c-1", "grid_case", 1, "reported", 1, {"a": 1}, "A", t, t)
        >>> out = Outcome(None, {"a": 1, "b": [2]}, {"text": "到场"}, (), None)
        >>> e = record(case, "note", gridflow.Actor.system(), t, out, None, None)
        >>> e.seq, e.changes.set, e.changes.unset
        (2, {'b': [2]}, ())
    """
    data = outcome.data
    if (outcome.dest is not None or outcome.deadline_at is not None) and OVERDUE_KEY in data:
        # The timer's overdue mark was about the deadline this step replaces.
        data = {k: v for k, v in data.items() if k != OVERDUE_KEY}
    changed, removed = _diff(case.data, data)
    # ``payload_plain``: the caller found the payload `gridflow.values.PLAIN`
    # (`check_kind`), so the hashed text does not walk it again.
    # Checked, not copied: the values are the step's own (copied from the
    # payload on the way in, or made by an effect).
    kind = check_kind(changed, "data", trigger=trigger, case_id=case.id) if changed else PLAIN
    changes = _make_changes(changed, removed, deadline_at, outcome.links, case.workflow_version)
    return _hashed(case.id, case.version + 1, trigger, case.state, outcome.dest, actor, now,
                   outcome.payload, key, case.head, changes, kind == PLAIN, payload_plain)


def record_open(
    draft: Case, actor: Actor, now: datetime, outcome: Outcome, deadline_at: datetime | None,
    key: str | None, fingerprint: str | None = None,
) -> Event:
    """The ``open`` event (seq 1) of the new case ``draft``.

    Its payload is ``{"data", "grid", "links"}`` as opened, plus
    ``"fingerprint"`` (the spec's `WorkflowSpec.fingerprint`) when given (the
    engine always gives it; events of older gridflow lack it); its `Changes`
    bind the case to its workflow, version and grid and set every data key.

    Example:
        >>> import gridflow
        >>> from datetime import datetime, UTC
        >>> t = datetime(2026, 1, 5, tzinfo=UTC)
        >>> draft = gridflow.Case("c-1", "grid_case", 1, "reported", 0, {}, "A", t, t)
        >>> out = Outcome("reported", {"title": "堆物"}, {}, (), None)
        >>> e = record_open(draft, gridflow.Actor.system(), t, out, None, None)
        >>> e.payload, e.changes.workflow, e.changes.grid
        ({'data': {'title': '堆物'}, 'grid': 'A', 'links': []}, 'grid_case', 'A')
    """
    data = detach(outcome.data, "data", trigger="open")
    payload = {"data": data, "grid": draft.grid, "links": list(outcome.links)}
    if fingerprint is not None:
        payload["fingerprint"] = fingerprint
    changes = Changes(data, (), deadline_at, outcome.links, draft.workflow_version,
                      draft.workflow, draft.grid)
    return _hashed(draft.id, 1, "open", None, draft.state, actor, now, payload, key,
                   GENESIS_HASH, changes)


def link_event(other: Case, case_id: str, actor: Actor, now: datetime, via: str) -> Event:
    """The ``link`` event that records, in ``other``'s history, its link to ``case_id``.

    Example:
        >>> import gridflow
        >>> from datetime import datetime, UTC
        >>> t = datetime(2026, 1, 5, tzinfo=UTC)
        >>> other = gridflow.Case("c-2", "grid_case", 1, "closed", 4, {}, "A", t, t)
        >>> e = link_event(other, "c-1", gridflow.Actor.system(), t, "open")
        >>> e.trigger, e.payload, e.changes.links
        ('link', {'case': 'c-1', 'via': 'open'}, ('c-1',))
    """
    changes = Changes({}, (), other.deadline_at, (case_id,), other.workflow_version)
    return _hashed(other.id, other.version + 1, "link", other.state, None, actor, now,
                   {"case": case_id, "via": via}, None, other.head, changes)


def overdue_event(case: Case, now: datetime, refused: str | None = None) -> Event:
    """The timer's ``overdue`` mark: the missed deadline kept in
    ``data["overdue_since"]``, ``deadline_at`` cleared, the state unchanged.

    Example:
        >>> import gridflow
        >>> from datetime import datetime, UTC
        >>> t = datetime(2026, 1, 5, tzinfo=UTC)
        >>> c = gridflow.Case("c-1", "grid_case", 1, "reported", 1, {}, "A", t, t, t)
        >>> e = overdue_event(c, t)
        >>> e.payload["state"], e.changes.set, e.changes.deadline_at
        ('reported', {'overdue_since': '2026-01-05T00:00:00+00:00'}, None)
    """
    assert case.deadline_at is not None
    missed = case.deadline_at.astimezone(UTC).isoformat()
    payload: dict[str, Any] = {"state": case.state, "deadline_at": missed}
    if refused is not None:
        payload["breach_refused"] = refused
    changes = Changes({OVERDUE_KEY: missed}, (), None, (), case.workflow_version)
    return _hashed(case.id, case.version + 1, "overdue", case.state, None, Actor.system(), now,
                   payload, None, case.head, changes)


def migrate_event(
    case: Case, actor: Actor, now: datetime, *, dest: str, target_version: int,
    source_fingerprint: str, fingerprint: str, states: Mapping[str, str],
    data: Mapping[str, Any], deadline_at: datetime | None, plan: str = "",
    effects: Iterable[str] = (),
) -> Event:
    """The ``migrate`` event that moves ``case`` to ``target_version`` of its
    workflow, into state ``dest``, with ``data`` as the case data afterwards.

    The payload names the plan, both versions and fingerprints, the whole
    state mapping, the data effects that ran and the data keys set and
    removed (keys only; the values are in the `Changes`). The `Changes`
    rebind the case (workflow, version, grid) and carry the deadline.

    Example:
        >>> import gridflow
        >>> from datetime import datetime, UTC
        >>> t = datetime(2026, 1, 5, tzinfo=UTC)
        >>> c = gridflow.Case("c-1", "grid_case", 1, "revisit", 5, {}, "A", t, t)
        >>> e = migrate_event(c, gridflow.Actor.system(), t, dest="look_back", target_version=2,
        ...     source_fingerprint="a" * 64, fingerprint="b" * 64,
        ...     states={"revisit": "look_back"}, data={"v2": True}, deadline_at=None)
        >>> e.trigger, e.dest, e.changes.workflow_version, e.payload["data"]
        ('migrate', 'look_back', 2, {'set': ['v2'], 'unset': []})
    """
    changed, removed = _diff(case.data, data)
    if changed:
        check(changed, "data", trigger="migrate", case_id=case.id)
    payload: dict[str, Any] = {
        "plan": plan, "source_version": case.workflow_version, "target_version": target_version,
        "source_fingerprint": source_fingerprint, "fingerprint": fingerprint,
        "states": dict(states), "effects": list(effects),
        "data": {"set": sorted(changed), "unset": list(removed)},
    }
    changes = Changes(changed, removed, deadline_at, (), target_version, case.workflow,
                      case.grid)
    return _hashed(case.id, case.version + 1, "migrate", case.state, dest, actor, now, payload,
                   None, case.head, changes)
