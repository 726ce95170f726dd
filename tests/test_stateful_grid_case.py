"""Stateful property test of the grid case on the memory store (DESIGN.md §4).

A Hypothesis `RuleBasedStateMachine` opens cases and fires random triggers
(including one that does not exist) at random cases, as random actors (random
roles and grids, half of the time ones that fit the trigger) with random
payloads (valid, missing or junk fields, sometimes a value JSON cannot hold),
with idempotency keys drawn from a small pool so that they get reused. It also
advances the clock and runs the timer.

The expected outcome of every call is predicted by an oracle written from issue
2's table (not from ``GRID_CASE``): the exact error class, or success and the
new state, departments, reports and links. After every step it checks the
invariants that apply to one memory store:

1. replaying the event log from the initial state gives the stored state;
4. an idempotency key reused stores one event and returns the same case;
5. a refused step stores nothing;
6. ``verify`` passes, and detects any edit, deletion or reordering of a copy of
   the history (`tamper_with_a_copy`);
plus gap-free ``seq`` 1..n with ``version == n`` and an intact hash chain.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import event as observe
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from gridflow import (
    ALL_GRIDS,
    Actor,
    Case,
    CaseNotVisible,
    Engine,
    Event,
    FixedClock,
    IdempotencyConflict,
    IntegrityError,
    InvalidPayload,
    InvalidTransition,
    MemoryStore,
    MissingPayload,
    PermissionDenied,
)
from gridflow._errors import GuardRejected

GENESIS = "0" * 64
T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
GRIDS = ("第一综合网格", "第二综合网格")
ROLES = ("resident", "grid_worker", "volunteer", "coordinator", "department", "street", "system")
DEPTS = ("社区管理办", "城运中心", "综合执法队", "清运单位")
SOURCES = ("visit", "resident", "hotline", "patrol", "other")
PRIORITIES = ("urgent", "normal", "low")
OPEN_ROLES = frozenset({"resident", "grid_worker", "volunteer", "coordinator"})
NON_TERMINAL = ("reported", "triaged", "joint_action", "escalated", "closed", "revisit")
TERMINAL = ("archived", "rejected")


@dataclass(frozen=True)
class Row:
    """One row of issue 2's table."""

    sources: tuple[str, ...]
    dest: str | None
    roles: frozenset[str]
    requires: tuple[str, ...]


def _row(sources: Any, dest: str | None, roles: str, requires: str = "") -> Row:
    return Row(tuple(sources.split()) if isinstance(sources, str) else sources, dest,
               frozenset(roles.split()), tuple(requires.split()))


TABLE: dict[str, Row] = {
    "triage": _row("reported", "triaged", "coordinator", "category priority"),
    "reject": _row("reported", "rejected", "coordinator", "reason"),
    "mark_duplicate": _row("reported", "rejected", "coordinator", "duplicate_of"),
    "dispatch": _row("triaged escalated", "joint_action", "coordinator street",
                     "departments plan"),
    "report_done": _row("joint_action", None, "department", "department result"),
    "reassign": _row("joint_action", None, "coordinator", "departments"),
    "close": _row("joint_action", "closed", "coordinator"),
    "escalate": _row("triaged joint_action", "escalated", "coordinator system", "reason"),
    "start_revisit": _row("closed", "revisit", "coordinator volunteer system"),
    "confirm": _row("revisit", "archived", "coordinator volunteer", "observation"),
    "reopen": _row("revisit", "joint_action", "coordinator volunteer resident", "reason"),
    "note": _row(NON_TERMINAL, None, "", "text"),
}
TRIGGERS = (*TABLE, "fly_to_the_moon")
#: Triggers drawn most of the time, per state: weighted towards moving the case
#: forward, so that runs reach the joint action, closing and the revisit.
PREFERRED = {
    "reported": ["triage"] * 4 + ["reject", "mark_duplicate", "note"],
    "triaged": ["dispatch"] * 4 + ["escalate", "note"],
    "joint_action": ["report_done"] * 5 + ["close"] * 2 + ["reassign", "escalate", "note"],
    "escalated": ["dispatch"] * 3 + ["note"],
    "closed": ["start_revisit"] * 3 + ["note"],
    "revisit": ["confirm", "reopen", "reopen", "note"],
}

TEXT = st.text(min_size=1, max_size=6)
JUNK = st.sampled_from([None, "", [], {}, 0, "?", ["社区管理办", "社区管理办"], [""], "社区管理办"])
UNSTORABLE = st.sampled_from([b"bytes", float("nan"), frozenset({1}), datetime(2026, 1, 1)])


def _missing(value: object) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _json_able(value: object) -> bool:
    """In the one value domain every store keeps (gridflow.values, written again)."""
    try:
        text = json.dumps(value, sort_keys=True, allow_nan=False, ensure_ascii=False)
        text.encode("utf-8")
    except (TypeError, ValueError):
        return False
    return "\x00" not in text and "\\u0000" not in text


def _departments_ok(value: object) -> bool:
    return (isinstance(value, list) and bool(value)
            and all(isinstance(d, str) and d for d in value) and len(set(value)) == len(value))


@dataclass
class Model:
    """What the oracle expects of one stored case."""

    state: str
    grid: str | None
    version: int = 1
    departments: list[str] = field(default_factory=list)
    done: dict[str, Any] = field(default_factory=dict)
    links: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class KeyUse:
    case_id: str
    trigger: str
    result: Case


def copy_store(store: MemoryStore) -> MemoryStore:
    """An independent copy of a memory store's cases, events and keys."""
    new = MemoryStore()
    new._cases = dict(store._cases)
    new._events = {k: list(v) for k, v in store._events.items()}
    new._keys = dict(store._keys)
    return new


def snapshot(store: MemoryStore) -> tuple[Any, ...]:
    # Stored cases and events are frozen; their dicts are compared through JSON
    # so that an in-place change of a stored dict would show too.
    cases = {cid: (c, json.dumps(c.data, sort_keys=True, ensure_ascii=False))
             for cid, c in store._cases.items()}
    events = {cid: tuple(v) for cid, v in store._events.items()}
    return cases, events, dict(store._keys)


class GridCaseMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = FixedClock(T0)
        self.store = MemoryStore()
        self.engine = Engine(store=self.store, clock=self.clock, entry_points=False)
        # Verifies tampered copies of the store; built once per run.
        self.checker = Engine(store=MemoryStore(), clock=self.clock, entry_points=False)
        self.model: dict[str, Model] = {}
        self.order: list[str] = []
        self.keys: dict[str, KeyUse] = {}
        self.opened = 0

    # -- drawing ----------------------------------------------------------------------

    def draw_actor(self, data: st.DataObject, roles: frozenset[str], grid: str | None) -> Actor:
        name = data.draw(st.sampled_from(["甲", "乙"]), label="actor id")
        if data.draw(st.sampled_from([True, True, True, False]), label="fitting actor"):
            chosen = {data.draw(st.sampled_from(sorted(roles)))} if roles else set()
            grids: Any = ALL_GRIDS
            if grid is not None and data.draw(st.booleans(), label="scoped"):
                grids = (grid,)
            return Actor(name, chosen, grids)
        # Any grids, none included: an actor with no grids may touch no case.
        return Actor(name, data.draw(st.frozensets(st.sampled_from(ROLES), max_size=2)),
                     data.draw(st.frozensets(st.sampled_from(GRIDS), max_size=2)))

    def valid_value(self, data: st.DataObject, name: str, case_id: str) -> Any:
        m = self.model.get(case_id)
        if name == "category":
            return data.draw(st.sampled_from(["违规堆物", "加装地锁", "环境秩序"]))
        if name == "priority":
            return data.draw(st.sampled_from(PRIORITIES))
        if name == "departments":
            return data.draw(st.lists(st.sampled_from(DEPTS), min_size=1, max_size=4,
                                      unique=True))
        if name == "department":
            pending = [d for d in m.departments if d not in m.done] if m else []
            pool = list(DEPTS) + pending * 6
            return data.draw(st.sampled_from(pool))
        if name == "duplicate_of":
            return data.draw(st.sampled_from(self.order))
        return data.draw(TEXT)

    def draw_fields(self, data: st.DataObject, names: tuple[str, ...],
                    case_id: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in names:
            mode = data.draw(st.sampled_from(["valid"] * 10 + ["omit", "junk"]), label=name)
            if mode == "valid":
                out[name] = self.valid_value(data, name, case_id)
            elif mode == "junk":
                out[name] = data.draw(JUNK)
        if data.draw(st.integers(0, 11), label="unstorable extra") == 0:
            out["extra"] = data.draw(UNSTORABLE)
        return out

    def draw_key(self, data: st.DataObject) -> str | None:
        keys = [None] * 15 + ["k1", "k2", "k3", "k4", "k5"]
        return data.draw(st.sampled_from(keys), label="idempotency key")

    # -- the oracle -------------------------------------------------------------------

    def visible(self, actor: Actor, case_id: str) -> bool:
        m = self.model.get(case_id)
        return m is not None and m.grid in actor.grids

    def expect_open(self, actor: Actor, grid: str | None, fields: dict[str, Any],
                    key: str | None, links: list[str]) -> type[Exception] | str:
        if key is not None and key in self.keys:
            use = self.keys[key]
            if not self.visible(actor, use.case_id):
                return CaseNotVisible
            return "replay" if use.trigger == "open" else IdempotencyConflict
        if actor.roles.isdisjoint(OPEN_ROLES):
            return PermissionDenied
        if grid not in actor.grids:
            return PermissionDenied
        if any(_missing(fields.get(f)) for f in ("title", "source")):
            return MissingPayload
        if fields["source"] not in SOURCES:
            return InvalidPayload
        if not _json_able(fields):
            return InvalidPayload
        if any(not self.visible(actor, link) for link in links):
            return CaseNotVisible
        return "ok"

    def expect_fire(self, case_id: str, trigger: str, actor: Actor, payload: dict[str, Any],
                    key: str | None) -> type[Exception] | str:
        if key is not None and key in self.keys:
            use = self.keys[key]
            if not self.visible(actor, use.case_id):
                return CaseNotVisible
            return "replay" if (use.case_id, use.trigger) == (case_id, trigger) else (
                IdempotencyConflict)
        m = self.model.get(case_id)
        if m is None or not self.visible(actor, case_id):
            # Scope before anything else: an outsider learns nothing of the case.
            return CaseNotVisible
        row = TABLE.get(trigger)
        if row is None or m.state not in row.sources:
            return InvalidTransition
        if row.roles and row.roles.isdisjoint(actor.roles):
            return PermissionDenied
        if any(_missing(payload.get(f)) for f in row.requires):
            return MissingPayload
        if trigger == "triage" and payload["priority"] not in PRIORITIES:
            return InvalidPayload
        if not _json_able(payload):
            # Values are checked before any guard sees them.
            return InvalidPayload
        refused = {
            "mark_duplicate": lambda: (payload["duplicate_of"] == case_id
                                       or not isinstance(payload["duplicate_of"], str)
                                       or not self.visible(actor, payload["duplicate_of"])),
            "dispatch": lambda: not _departments_ok(payload["departments"]),
            "reassign": lambda: not _departments_ok(payload["departments"]),
            "report_done": lambda: (payload["department"] not in m.departments
                                    or payload["department"] in m.done),
            "close": lambda: any(d not in m.done for d in m.departments),
        }.get(trigger, lambda: False)
        if refused():
            return GuardRejected
        return "ok"

    def apply(self, case_id: str, trigger: str, payload: dict[str, Any]) -> None:
        m = self.model[case_id]
        row = TABLE[trigger]
        m.version += 1
        if row.dest is not None:
            m.state = row.dest
        if trigger == "dispatch":
            m.departments, m.done = list(payload["departments"]), {}
        elif trigger == "report_done":
            m.done[payload["department"]] = payload["result"]
        elif trigger == "reassign":
            kept = [d for d in m.departments if d in m.done]
            m.departments = kept + [d for d in payload["departments"] if d not in kept]
        elif trigger == "reopen":
            m.done = {}
        elif trigger == "mark_duplicate":
            other = payload["duplicate_of"]
            if other not in m.links:
                m.links.add(other)
                self.model[other].links.add(case_id)
                self.model[other].version += 1

    # -- rules --------------------------------------------------------------------------

    @initialize()
    def two_reported_cases(self) -> None:
        # Most rules need cases to act on; start with two, in different grids.
        for n, grid in enumerate(GRIDS):
            actor = Actor(f"网格员-{n}", ["grid_worker"], [grid])
            case = self.engine.open("grid_case", version=1,
                                    actor=actor, grid=grid, case_id=f"seed-{n}",
                                    data={"title": f"小巷堆物{n}", "source": "visit"})
            self.model[case.id] = Model("reported", grid)
            self.order.append(case.id)

    # A few cases, each fired at many times, reach further into the lifecycle.
    @precondition(lambda self: len(self.order) < 5)
    @rule(data=st.data())
    def open_case(self, data: st.DataObject) -> None:
        grid = data.draw(st.sampled_from([*GRIDS, None]), label="grid")
        actor = self.draw_actor(data, OPEN_ROLES, grid)
        fields = self.draw_fields(data, ("title", "source"), "")
        if "source" in fields and data.draw(st.booleans(), label="valid source"):
            fields["source"] = data.draw(st.sampled_from(SOURCES))
        links: list[str] = []
        if self.order and data.draw(st.integers(0, 3), label="link") == 0:
            links = [data.draw(st.sampled_from([*self.order, "no-such-case"]))]
        key = self.draw_key(data)
        self.opened += 1
        case_id = f"case-{self.opened}"
        expected = self.expect_open(actor, grid, fields, key, links)
        before = snapshot(self.store)
        try:
            case = self.engine.open("grid_case", version=1, actor=actor, grid=grid, data=fields,
                                    links=links, idempotency_key=key, case_id=case_id)
        except Exception as exc:
            assert type(exc) is expected, (expected, exc)
            assert snapshot(self.store) == before
            return
        if expected == "replay":
            assert key is not None
            use = self.keys[key]
            assert case == self.engine.get(use.case_id)
            if case.version == use.result.version:
                assert case == use.result
            assert snapshot(self.store) == before
            return
        assert expected == "ok", (expected, case)
        assert (case.id, case.state, case.version, case.grid) == (
            case_id, "reported", 1, grid)
        assert case.data == fields
        self.model[case_id] = Model("reported", grid, links=set(links))
        self.order.append(case_id)
        for link in links:
            self.model[link].links.add(case_id)
            self.model[link].version += 1
        if key is not None:
            self.keys[key] = KeyUse(case_id, "open", case)

    # Rules are picked uniformly: three names for firing make it most steps.
    @rule(data=st.data())
    def fire(self, data: st.DataObject) -> None:
        self._fire(data)

    @rule(data=st.data())
    def fire_again(self, data: st.DataObject) -> None:
        self._fire(data)

    @rule(data=st.data())
    def fire_once_more(self, data: st.DataObject) -> None:
        self._fire(data)

    def _fire(self, data: st.DataObject) -> None:
        if data.draw(st.integers(0, 19), label="missing case") == 0:
            case_id = "no-such-case"
        else:
            case_id = data.draw(st.sampled_from(self.order), label="case")
        m = self.model.get(case_id)
        # Mostly triggers the table allows in the case's state, so runs go deep.
        preferred = PREFERRED.get(m.state, []) if m is not None else []
        if m is not None and m.state == "joint_action" and all(d in m.done
                                                              for d in m.departments):
            preferred = ["close"] * 4 + preferred
        if preferred and data.draw(st.sampled_from([True, True, True, False]), label="fits"):
            trigger = data.draw(st.sampled_from(preferred), label="trigger")
        else:
            trigger = data.draw(st.sampled_from(TRIGGERS), label="trigger")
        row = TABLE.get(trigger)
        actor = self.draw_actor(data, row.roles if row else frozenset(ROLES),
                                m.grid if m else None)
        payload = self.draw_fields(data, row.requires if row else ("text",), case_id)
        key = self.draw_key(data)
        expected = self.expect_fire(case_id, trigger, actor, payload, key)
        before = snapshot(self.store)
        old = self.store.get(case_id)
        # Shown by `pytest --hypothesis-show-statistics`: what the runs covered.
        observe(f"fire {trigger}: {expected if isinstance(expected, str) else expected.__name__}")
        if m is not None:
            observe(f"state {m.state}")
        try:
            case = self.engine.fire(case_id, trigger, actor=actor, payload=payload,
                                    idempotency_key=key)
        except Exception as exc:
            assert type(exc) is expected, (expected, exc)
            assert snapshot(self.store) == before
            return
        if expected == "replay":
            assert key is not None
            use = self.keys[key]
            assert case == self.engine.get(case_id)
            if case.version == use.result.version:
                assert case == use.result
            assert snapshot(self.store) == before
            return
        assert expected == "ok", (expected, trigger, case)
        assert old is not None
        self.apply(case_id, trigger, payload)
        assert case == self.engine.get(case_id)
        event = self.engine.history(case_id)[-1]
        assert (event.seq, event.trigger, event.source, event.actor) == (
            case.version, trigger, old.state, actor)
        want = dict(payload)
        if trigger == "close":
            # The close records the handling deadline in force and whether it was met.
            missed = old.data.get("overdue_since")
            deadline = old.deadline_at or (
                datetime.fromisoformat(missed) if isinstance(missed, str) else None)
            want["deadline_at"] = None if deadline is None else deadline.isoformat()
            want["on_time"] = deadline is None or event.at <= deadline
        assert event.payload == want
        assert event.idempotency_key == key
        if TABLE[trigger].dest is None:
            assert case.deadline_at == old.deadline_at  # internal: the clock keeps running
        else:
            assert (case.deadline_at is None) == (case.state in TERMINAL)
        if key is not None:
            self.keys[key] = KeyUse(case_id, trigger, case)

    @rule(hours=st.integers(1, 24 * 4))
    def tick(self, hours: int) -> None:
        now = self.clock.advance(timedelta(hours=hours))
        events = self.engine.tick()
        assert not self.engine.tick_errors
        recorded = 0
        for case_id, m in self.model.items():
            case = self.engine.get(case_id)
            new = self.engine.history(case_id)[m.version:]
            recorded += len(new)
            for e in new:
                assert e.actor == Actor.system()
                assert (e.trigger, e.source, e.dest) in {
                    ("escalate", "joint_action", "escalated"),
                    ("start_revisit", "closed", "revisit"),
                    ("overdue", e.source, None),
                }, e
            m.state, m.version = case.state, case.version
            assert case.deadline_at is None or case.deadline_at > now
        assert len(events) == recorded

    @precondition(lambda self: bool(self.keys))
    @rule(data=st.data())
    def repeat_a_keyed_step(self, data: st.DataObject) -> None:
        # A client retrying: the same key, case and trigger, with whatever payload.
        key = data.draw(st.sampled_from(sorted(self.keys)), label="key")
        use = self.keys[key]
        before = snapshot(self.store)
        actor = self.draw_actor(data, frozenset(ROLES), self.model[use.case_id].grid)
        try:
            if use.trigger == "open":
                case = self.engine.open("grid_case", version=1, actor=actor, data={"title": "重试"},
                                        idempotency_key=key)
            else:
                case = self.engine.fire(use.case_id, use.trigger, actor=actor,
                                        payload={"text": "重试"}, idempotency_key=key)
        except CaseNotVisible:
            # The stored result goes only to an actor who may see that case.
            assert not self.visible(actor, use.case_id)
            assert snapshot(self.store) == before
            return
        assert self.visible(actor, use.case_id)
        assert case == self.engine.get(use.case_id)
        if case.version == use.result.version:
            assert case == use.result
        assert snapshot(self.store) == before

    @rule(data=st.data())
    def tamper_with_a_copy(self, data: st.DataObject) -> None:
        case_id = data.draw(st.sampled_from(self.order), label="case")
        store = copy_store(self.store)
        events: list[Event] = store._events[case_id]
        n = len(events)
        i = data.draw(st.integers(0, n - 1), label="event")
        kinds = ["edit_payload", "edit_actor", "edit_time", "edit_dest", "delete", "rehash"]
        if n >= 2:
            kinds.append("swap")
        kind = data.draw(st.sampled_from(kinds), label="tampering")
        e = events[i]
        if kind == "edit_payload":
            events[i] = attrs.evolve(e, payload={**e.payload, "tampered": True})
        elif kind == "edit_actor":
            events[i] = attrs.evolve(e, actor=Actor("冒名顶替", ["coordinator"], grids=ALL_GRIDS))
        elif kind == "edit_time":
            events[i] = attrs.evolve(e, at=e.at + timedelta(seconds=1))
        elif kind == "edit_dest":
            events[i] = attrs.evolve(e, dest="archived" if e.dest != "archived" else None)
        elif kind == "delete":
            del events[i]
        elif kind == "rehash":
            # A forger who recomputes the edited event's own hash still breaks the chain.
            events[i] = Event.create(e.case_id, e.seq, e.trigger, e.source, e.dest, e.actor,
                                     e.at, {**e.payload, "tampered": True}, e.idempotency_key,
                                     e.prev_hash)
        else:
            j = data.draw(st.sampled_from([k for k in range(n) if k != i]), label="other")
            events[i], events[j] = events[j], events[i]
        self.checker.store = store
        with pytest.raises(IntegrityError):
            self.checker.verify(case_id)
        # The tampering touched a copy only.
        self.engine.verify(case_id)

    # -- invariants -------------------------------------------------------------------------

    @invariant()
    def history_replays_to_the_stored_case(self) -> None:
        assert len(self.store) == len(self.model)
        for case_id, m in self.model.items():
            case = self.engine.get(case_id)
            events = self.engine.history(case_id)
            assert [e.seq for e in events] == list(range(1, len(events) + 1))
            assert case.version == len(events) == m.version
            prev, state = GENESIS, None
            for e in events:
                assert e.case_id == case_id
                assert e.prev_hash == prev
                assert e.hash == e.expected_hash()
                prev = e.hash
                if e.seq == 1:
                    assert (e.trigger, e.source) == ("open", None)
                    state = e.dest
                else:
                    assert e.source == state
                    state = e.dest or state
            assert case.head == prev
            assert state == case.state == m.state
            assert self.engine.verify(case_id) == case
            assert sorted(case.links) == sorted(m.links)
            assert case.data.get("departments", []) == m.departments
            assert case.data.get("done", {}) == m.done

    @invariant()
    def each_idempotency_key_is_one_stored_event(self) -> None:
        for key, use in self.keys.items():
            event = self.store.event_by_key(key)
            assert event is not None
            assert (event.case_id, event.trigger, event.idempotency_key) == (
                use.case_id, use.trigger, key)
            stored = [e for e in self.engine.history(use.case_id) if e.idempotency_key == key]
            assert stored == [event]


GridCaseMachine.TestCase.settings = settings(
    max_examples=120,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestGridCaseStateful = GridCaseMachine.TestCase
