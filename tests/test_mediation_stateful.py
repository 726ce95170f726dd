"""A hypothesis state machine over the mediation workflow: random triggers, actors
and payloads (valid and not) fired at random cases, with time passing and the
timer running, checking DESIGN.md §4 after every step:

1. each case's state is the replay of its events (and `verify` passes);
3. ``seq`` is gap-free and ``version`` counts the events;
4. an idempotency key replayed stores nothing new and returns the stored case;
5. a refused step changes nothing stored;
6. `verify` detects an edited, deleted or reordered event.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import event as record
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
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
    GridflowError,
    IdempotencyConflict,
    IntegrityError,
    MemoryStore,
    Write,
)
from gridflow.model import GENESIS_HASH
from gridflow.workflows.mediation import CHANNELS, MEDIATION, SOURCES, TIERS

T0 = datetime(2026, 6, 1, 1, 0, tzinfo=UTC)
GRIDS = ("A", "B")
NAMES = ("甲", "乙", "丙", "丁", "某公司")
TRIGGERS = (*MEDIATION.triggers, "bogus", "open", "link")
ENDINGS = frozenset({"decline", "withdraw", "refer", "resolve"})

ACTORS = (
    Actor("mediator-A", ["mediator"], ["A"]),
    Actor("mediator-B", ["mediator"], ["B"]),
    Actor("judicial", ["judicial_office"], grids=ALL_GRIDS),
    Actor("lawyer", ["lawyer"], grids=ALL_GRIDS),
    Actor("police", ["police"], grids=ALL_GRIDS),
    Actor("coordinator-A", ["coordinator"], ["A"]),
    Actor("worker-B", ["grid_worker"], ["B"]),
    Actor("resident-A", ["resident"], ["A"]),
    Actor.system(),
)
actors = st.sampled_from(ACTORS)


@st.composite
def party_lists(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 9)) == 0:  # sometimes not a valid list at all
        return draw(st.sampled_from([[], "甲 vs 乙", [{"name": "甲", "side": "applicant"}],
                                     [{"name": "甲", "side": "x"}, {"name": "乙"}]]))
    names = draw(st.lists(st.sampled_from(NAMES), min_size=2, max_size=5, unique=True))
    out = []
    for i, name in enumerate(names):
        party: dict[str, Any] = {"name": name,
                                 "side": "applicant" if i == 0 else
                                 "respondent" if i == 1 else draw(st.sampled_from(
                                     ["applicant", "respondent"]))}
        if name == "某公司" or draw(st.booleans()):
            party["kind"] = "organisation" if name == "某公司" else "person"
        out.append(party)
    return out


@st.composite
def opening_data(draw: st.DrawFn) -> dict[str, Any]:
    data: dict[str, Any] = {
        "summary": "纠纷" if draw(st.integers(0, 9)) else "",
        "parties": draw(party_lists()),
        "source": draw(st.sampled_from(SOURCES)) if draw(st.integers(0, 9)) else "rumour",
    }
    for field, values in (("injury", st.sampled_from([True, False, "yes"])),
                          ("violence_risk", st.booleans()),
                          ("claim_amount", st.sampled_from([0, 9_999, 10_000, 2.5e4, -1, "多"]))):
        if draw(st.integers(0, 3)) == 0:
            data[field] = draw(values)
    return data


def names_of(case: Case) -> list[str]:
    return [p["name"] for p in case.data.get("parties", [])]


@st.composite
def payloads(draw: st.DrawFn, trigger: str, case: Case, now: datetime) -> dict[str, Any]:
    """Mostly valid payloads for ``trigger`` on ``case``, sometimes subtly wrong."""
    names = names_of(case)
    wrong = draw(st.integers(0, 4)) == 0
    reason = draw(st.sampled_from(["理由", ""])) if wrong else "理由"
    if trigger == "accept":
        consent = dict.fromkeys(names, True)
        if wrong:
            consent = draw(st.sampled_from([
                {n: n != names[-1] for n in names}, dict.fromkeys(names[:1], True),
                {**consent, "路人": True}, names]))
        payload: dict[str, Any] = {"consent": consent}
        if draw(st.booleans()):
            payload["tier"] = draw(st.sampled_from((*TIERS, "street")))
        return payload
    if trigger == "agree":
        signed = names if not wrong else draw(st.sampled_from([names[:1], [*names, "证人"]]))
        due = now + timedelta(hours=draw(st.integers(-24, 24 * 40)))
        due_text = due.isoformat() if draw(st.integers(0, 5)) else "下周五"
        return {"terms": "条款", "signed_by": signed, "performance_due": due_text}
    if trigger == "apply_confirmation":
        return {"court": "长宁区法院"} if not wrong else {}
    if trigger == "refer":
        return {"channel": draw(st.sampled_from((*CHANNELS, "petition"))), "reason": reason}
    if trigger == "resolve":
        return {"outcome": "已履行"} if not wrong else {}
    if trigger == "note":
        payload = {"text": "备注"}
        if draw(st.booleans()):
            payload["injury"] = draw(st.sampled_from([True, False, "轻伤"]))
        if draw(st.booleans()):
            payload["claim_amount"] = draw(st.sampled_from([500, 20_000, "五千"]))
        return payload
    if trigger == "start_follow_up":
        return {}
    return {"reason": reason}


def replay(events: list[Event]) -> str | None:
    state = None
    for event in events:
        if event.dest is not None:
            state = event.dest
    return state


def store_snapshot(engine: Engine) -> dict[str, tuple[Case, tuple[Event, ...]]]:
    return {c.id: (c, tuple(engine.store.events(c.id)))
            for c in engine.store.query(limit=100_000).items}


def clone(events: list[Event], case: Case) -> MemoryStore:
    """A new store holding ``case`` with ``events`` (possibly tampered with),
    written through the public `Store.commit`."""
    store = MemoryStore()
    for i, event in enumerate(events, start=1):
        store.commit([Write(attrs.evolve(case, version=i), event, i - 1)])
    return store


class MediationMachine(RuleBasedStateMachine):
    cases = Bundle("cases")

    def __init__(self) -> None:
        super().__init__()
        self.clock = FixedClock(T0)
        self.engine = Engine(store=MemoryStore(), clock=self.clock, entry_points=False)
        self.keys: dict[str, tuple[str, str]] = {}  # key -> (case id, trigger)
        self.counter = 0

    def _new_id(self) -> str:
        # Deterministic ids: hypothesis replays choices by position, so the order of
        # cases must not depend on random uuids.
        self.counter += 1
        return f"case-{self.counter:04d}"

    def _new_key(self) -> str:
        self.counter += 1
        return f"key-{self.counter}"

    @rule(target=cases, data=opening_data(), actor=actors, grid=st.sampled_from(GRIDS),
          link=st.booleans(), pick=st.data())
    def open_case(self, data: dict[str, Any], actor: Actor, grid: str, link: bool,
                  pick: st.DataObject) -> Any:
        existing = sorted(store_snapshot(self.engine))
        links = [pick.draw(st.sampled_from(existing))] if link and existing else []
        before = store_snapshot(self.engine)
        try:
            case = self.engine.open("mediation", actor=actor, grid=grid, data=data, links=links,
                                    case_id=self._new_id())
        except GridflowError:
            assert store_snapshot(self.engine) == before
            return multiple()
        assert (case.state, case.version) == ("intake", 1)
        for other in links:
            assert case.id in self.engine.get(other).links
        return case.id

    @initialize(target=cases)
    def a_valid_case(self) -> str:
        parties = [{"name": "甲", "side": "applicant"}, {"name": "乙", "side": "respondent"}]
        data = {"summary": "纠纷", "source": "screening", "parties": parties}
        case = self.engine.open("mediation", actor=ACTORS[2], grid="A", data=data,
                                case_id=self._new_id())
        return case.id

    def _allowed(self, case_id: str, actor: Actor) -> list[str]:
        try:
            return self.engine.allowed(case_id, actor)
        except CaseNotVisible:  # outside the actor's grids: nothing to fire
            return []

    @rule(case_id=cases, pick=st.data(), keyed=st.booleans())
    def fire(self, case_id: str, pick: st.DataObject, keyed: bool) -> None:
        case = self.engine.get(case_id, actor=ACTORS[2])
        # Mostly a trigger the state has and an actor allowed to fire it, so runs get
        # deep into the workflow; otherwise anything at all.
        wf_triggers = sorted(t for t in MEDIATION.triggers if any(
            a for a in ACTORS if t in self._allowed(case_id, a)))
        if wf_triggers and pick.draw(st.integers(0, 4)):
            # Steps that move a case on are drawn three times as often as endings.
            weighted = [t for t in wf_triggers for _ in range(1 if t in ENDINGS else 3)]
            trigger = pick.draw(st.sampled_from(weighted))
            able = [a for a in ACTORS if trigger in self._allowed(case_id, a)]
            actor = pick.draw(st.sampled_from(able))
        else:
            trigger = pick.draw(st.sampled_from(TRIGGERS))
            actor = pick.draw(actors)
        payload = pick.draw(payloads(trigger, case, self.clock.now()))
        key = self._new_key() if keyed else None
        before = store_snapshot(self.engine)
        try:
            new = self.engine.fire(case_id, trigger, actor=actor, payload=payload,
                                   idempotency_key=key)
        except GridflowError as exc:
            assert store_snapshot(self.engine) == before  # a refused step stores nothing
            record(f"{trigger}: {type(exc).__name__}")
            return
        record(f"{trigger}: {case.state} -> {new.state}")
        assert new.version == case.version + 1
        last = self.engine.history(case_id, actor=ACTORS[2])[-1]
        assert (last.seq, last.trigger, last.actor, last.payload) == (
            new.version, trigger, actor, payload)
        assert last.source == case.state
        assert new.state == (last.dest or case.state)
        if key is not None:
            self.keys[key] = (case_id, trigger)
        if last.dest in TIERS and trigger in ("accept", "escalate", "remediate"):
            assert new.data["tier"] == last.dest
            assert new.data["tier_path"][-1] == last.dest

    @precondition(lambda self: bool(self.keys))
    @rule(pick=st.data())
    def replay_key(self, pick: st.DataObject) -> None:
        key = pick.draw(st.sampled_from(sorted(self.keys)))
        case_id, trigger = self.keys[key]
        before = store_snapshot(self.engine)
        again = self.engine.fire(case_id, trigger, actor=ACTORS[2], payload={},
                                 idempotency_key=key)
        assert store_snapshot(self.engine) == before
        assert again == self.engine.get(case_id, actor=ACTORS[2])
        stored = [e for e in self.engine.history(case_id) if e.idempotency_key == key]
        assert len(stored) == 1
        other = "bogus" if trigger != "bogus" else "note"
        with pytest.raises(IdempotencyConflict):
            self.engine.fire(case_id, other, actor=ACTORS[2], payload={}, idempotency_key=key)
        assert store_snapshot(self.engine) == before

    @rule(hours=st.integers(0, 24 * 20))
    def time_passes(self, hours: int) -> None:
        self.clock.advance(timedelta(hours=hours))
        for ticked in self.engine.tick():
            assert ticked.actor == Actor.system()
            assert ticked.trigger in ("escalate", "start_follow_up", "overdue")
            record(f"tick: {ticked.trigger} {ticked.source} -> {ticked.dest}")

    @rule(case_id=cases, how=st.sampled_from(["edit", "rehash", "delete", "swap"]),
          pick=st.data())
    def tampering_is_detected(self, case_id: str, how: str, pick: st.DataObject) -> None:
        case = self.engine.store.get(case_id)
        events = self.engine.store.events(case_id)
        verifier = Engine(store=clone(events, case), entry_points=False)
        assert verifier.verify(case_id) == case
        if how in ("delete", "swap") and len(events) < 2:
            how = "edit"
        i = pick.draw(st.integers(0, len(events) - 1))
        forged = list(events)
        if how == "edit":
            forged[i] = attrs.evolve(events[i], payload={**events[i].payload, "forged": True})
        elif how == "rehash":
            e = events[i]
            forged[i] = Event.create(e.case_id, e.seq, e.trigger, e.source, e.dest, e.actor,
                                     e.at, {**e.payload, "forged": True}, e.idempotency_key,
                                     e.prev_hash)
        elif how == "delete":
            j = pick.draw(st.integers(0, len(events) - 2))
            del forged[j]
        else:
            j = pick.draw(st.integers(0, len(events) - 2))
            forged[j], forged[j + 1] = forged[j + 1], forged[j]
        row = attrs.evolve(case, version=len(forged))
        verifier = Engine(store=clone(forged, row), entry_points=False)
        with pytest.raises(IntegrityError):
            verifier.verify(case_id)

    @invariant()
    def every_case_replays_and_verifies(self) -> None:
        for case_id, (case, events) in store_snapshot(self.engine).items():
            assert [e.seq for e in events] == list(range(1, len(events) + 1))
            assert case.version == len(events)
            assert events[0].prev_hash == GENESIS_HASH
            assert replay(list(events)) == case.state
            assert self.engine.verify(case_id) == case
            for other in case.links:
                assert case_id in self.engine.get(other).links
            if case.state in TIERS or "highest_tier" in case.data:
                assert case.data["highest_tier"] in TIERS


MediationMachine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestMediationMachine = MediationMachine.TestCase
