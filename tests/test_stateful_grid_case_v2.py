"""Stateful property test of ``grid_case@2`` on the memory store.

A Hypothesis `RuleBasedStateMachine` opens cases and fires random triggers of
``@2`` at random cases, as random actors, with payloads drawn from valid and
invalid values; it advances the clock (across lunch, nights and weekends) and
runs the timer. After every step it checks:

1. a refused step stores nothing (the case and its history are unchanged), and is
   refused with the error the spec predicts (`expected_refusal`: an unknown trigger for
   the state, then the role, then a missing or unoffered payload field, then a guard),
   while a step the spec does not refuse before its guards is never refused otherwise;
2. ``verify`` passes (the row is the fold of the events, the hash chain holds);
3. the rules of the closed loop hold in every history: ``report_done`` only by
   a department that acknowledged since its dispatch; ``closed`` only through
   ``pass_check`` by an inspector; at most one ``rate``; the third rework
   (failed check or reopen) escalates; the timer urges a department at most
   once per acknowledgement limit.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import event as hyp_event
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from gridflow import (
    ALL_GRIDS,
    Actor,
    Engine,
    Event,
    FixedClock,
    GridflowError,
    GuardRejected,
    InvalidPayload,
    InvalidTransition,
    MemoryStore,
    MissingPayload,
    PermissionDenied,
)
from gridflow.workflows import grid_case_v2
from gridflow.workflows.grid_case_v2 import GRID_CASE_V2

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
GRID = "第一综合网格"
DEPTS = ("社区管理办", "城运中心", "综合执法队", "清运单位")
ROLES = ("resident", "grid_worker", "volunteer", "coordinator", "department", "street",
         "inspector")
TRIGGERS = ("triage", "reject", "dispatch", "acknowledge", "return_task", "report_done",
            "reassign", "urge", "submit_check", "pass_check", "fail_check", "park", "resume",
            "escalate", "start_revisit", "rate", "confirm", "reopen", "note", "close")
SATISFACTION = ("satisfied", "basically_satisfied", "dissatisfied", "bad")

#: The role that may fire each trigger (drawn two times in three).
FITTING = {"acknowledge": "department", "return_task": "department",
           "report_done": "department", "pass_check": "inspector", "fail_check": "inspector",
           "rate": "resident", "start_revisit": "volunteer"}

payloads = st.fixed_dictionaries({}, optional={
    "category": st.just("违规堆物"),
    "priority": st.sampled_from(("urgent", "normal", "low", "x")),
    "reason": st.just("原因"),
    "departments": st.lists(st.sampled_from(DEPTS), min_size=1, max_size=4, unique=True),
    "plan": st.just("方案"),
    "department": st.sampled_from(DEPTS),
    "result": st.just("已处置"),
    "text": st.just("请尽快"),
    "observation": st.just("现场查看"),
    "satisfaction": st.sampled_from(SATISFACTION),
})


class GridCaseV2Machine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = FixedClock(T0)
        self.engine = Engine(store=MemoryStore(), clock=self.clock,
                             plugins=[grid_case_v2.PLUGIN], entry_points=False)
        self.ids: list[str] = []

    @precondition(lambda self: len(self.ids) < 3)
    @rule()
    def open_case(self) -> None:
        case = self.engine.open("grid_case", actor=Actor("w", ["grid_worker"], [GRID]),
                                grid=GRID, version=2, data={"title": "堆物", "source": "visit"})
        self.ids.append(case.id)

    @precondition(lambda self: self.ids)
    @rule(data=st.data(), trigger=st.sampled_from(TRIGGERS), payload=payloads)
    def fire(self, data: st.DataObject, trigger: str, payload: dict[str, Any]) -> None:
        cid = data.draw(st.sampled_from(self.ids))
        state = self.engine.get(cid).state
        offered = sorted({t.trigger for t in GRID_CASE_V2.transitions
                          if t.source == "*" or state in t.source}
                         - {"note", "reject", "escalate", "mark_duplicate", "request_extension"})
        if offered and data.draw(st.integers(0, 3)):
            trigger = data.draw(st.sampled_from(offered))
            if data.draw(st.integers(0, 2)):
                case = self.engine.get(cid)
                depts = case.data.get("departments") or list(DEPTS)
                payload = {**payload, "category": "违规堆物", "priority": "normal",
                           "departments": list(DEPTS), "plan": "方案", "reason": "原因",
                           "text": "请尽快", "observation": "现场查看", "result": "ok",
                           "satisfaction": data.draw(st.sampled_from(SATISFACTION[:3])),
                           "department": data.draw(st.sampled_from(depts))}
        fitting = FITTING.get(trigger, "coordinator")
        role = data.draw(st.one_of(st.just(fitting), st.just(fitting), st.sampled_from(ROLES)))
        if trigger in ("dispatch", "reassign") and data.draw(st.booleans()):
            payload = {**payload, "departments": list(DEPTS), "plan": "方案"}
        if trigger == "triage" and data.draw(st.booleans()):
            payload = {**payload, "category": "违规堆物", "priority": "normal"}
        if trigger in ("acknowledge", "report_done", "return_task") and data.draw(st.booleans()):
            case = self.engine.get(cid)
            if case.data.get("departments"):
                payload = {**payload, "result": "ok", "reason": "r", "department": data.draw(
                    st.sampled_from(case.data["departments"]))}
        before, history = self.engine.get(cid), self.engine.history(cid)
        expected = expected_refusal(before.state, trigger, role, payload)
        try:
            self.engine.fire(cid, trigger, actor=Actor(role, [role], grids=ALL_GRIDS),
                             payload=payload)
        except GridflowError as exc:
            assert self.engine.get(cid) == before
            assert self.engine.history(cid) == history
            # The spec's own order of refusals: what is refused before the guards is
            # refused with that error, and only guards refuse what passes those checks.
            want = expected or GuardRejected
            assert isinstance(exc, want), (trigger, before.state, role, payload, exc)
            if want is InvalidPayload:
                assert not isinstance(exc, MissingPayload), exc
        else:
            assert expected is None, (trigger, before.state, role, payload, expected)

    @precondition(lambda self: self.ids)
    @rule(data=st.data())
    def advance(self, data: st.DataObject) -> None:
        """One valid step forward (so that the random steps reach every state)."""
        cid = data.draw(st.sampled_from(self.ids))
        case = self.engine.get(cid)
        d = case.data
        step: tuple[str, str, dict[str, Any]] | None = None
        if case.state == "reported":
            step = ("triage", "coordinator", {"category": "违规堆物", "priority": "normal"})
        elif case.state in ("triaged", "escalated"):
            step = ("dispatch", "coordinator" if case.state == "triaged" else "street",
                    {"departments": list(DEPTS[:data.draw(st.integers(1, 4))]), "plan": "p"})
        elif case.state == "joint_action":
            pending = [x for x in d.get("departments", []) if x not in d.get("acknowledged", {})]
            working = [x for x in d.get("departments", []) if x not in d.get("done", {})]
            if pending:
                step = ("acknowledge", "department", {"department": pending[0]})
            elif working:
                step = ("report_done", "department", {"department": working[0], "result": "r"})
            else:
                step = ("submit_check", "coordinator", {})
        elif case.state == "verifying":
            step = data.draw(st.sampled_from([("pass_check", "inspector", {"observation": "o"}),
                                              ("fail_check", "inspector", {"reason": "r"})]))
        elif case.state == "closed" and "satisfaction" in d:
            step = ("start_revisit", "volunteer", {})
        elif case.state == "closed":
            step = data.draw(st.sampled_from([("rate", "resident", {"satisfaction": "satisfied"}),
                                              ("start_revisit", "volunteer", {})]))
        elif case.state == "revisit":
            step = data.draw(st.sampled_from([("confirm", "volunteer", {"observation": "o"}),
                                              ("reopen", "volunteer", {"reason": "r"})]))
        elif case.state == "parked":
            step = ("resume", "coordinator", {})
        if step is None:
            return
        trigger, role, payload = step
        self.engine.fire(cid, trigger, actor=Actor(role, [role], grids=ALL_GRIDS),
                         payload=payload)

    @precondition(lambda self: self.ids)
    @rule(minutes=st.integers(1, 2 * 24 * 60))
    def tick(self, minutes: int) -> None:
        self.clock.advance(timedelta(minutes=minutes))
        self.engine.tick()
        assert self.engine.tick_errors == [] or all(
            e.marked_overdue for e in self.engine.tick_errors)

    def teardown(self) -> None:
        states = {self.engine.get(c).state for c in self.ids}
        hyp_event(f"reached: {','.join(sorted(states))}")

    @invariant()
    def histories_keep_the_rules(self) -> None:
        for cid in self.ids:
            self.engine.verify(cid)
            check_history(self.engine.history(cid))


def expected_refusal(state: str, trigger: str, role: str,
                     payload: dict[str, Any]) -> type[GridflowError] | None:
    """The error the spec alone predicts for firing ``trigger`` in ``state`` as ``role``
    with ``payload`` (``None``: nothing before the guards refuses it), read off
    `GRID_CASE_V2` independently of the engine's compiled rules."""
    rules = [t for t in GRID_CASE_V2.transitions
             if t.trigger == trigger and state in t.sources(GRID_CASE_V2.non_terminal)]
    if not rules:
        return InvalidTransition
    if all(t.roles for t in rules) and not any(role in t.roles for t in rules):
        return PermissionDenied
    required = {f for t in rules for f in t.requires}
    if any(payload.get(f) in (None, "", [], {}) for f in required):
        return MissingPayload
    for t in rules:
        for field, options in t.choices.items():
            if field in payload and payload[field] not in options:
                return InvalidPayload
    return None


def check_history(events: list[Event]) -> None:
    acknowledged: set[str] = set()
    current: set[str] = set()
    done: set[str] = set()
    rated = reworks = 0
    urged: dict[str, int] = {}  # the timer's urges of each department since it got its limit
    for e in events:
        t = e.trigger
        if t == "dispatch":
            acknowledged, done, urged = set(), set(), {}
            current = set(e.payload["departments"])
        elif t == "acknowledge":
            acknowledged.add(e.payload["department"])
        elif t == "return_task":
            acknowledged.discard(e.payload["department"])
            current.discard(e.payload["department"])
        elif t == "report_done":
            assert e.payload["department"] in acknowledged, e
            done.add(e.payload["department"])
        elif t == "reassign":
            new = (current & done) | set(e.payload["departments"])
            for d in new - current:
                urged.pop(d, None)  # a new assignment: a new limit
            acknowledged &= new
            current = new
        elif t == "rate":
            rated += 1
        elif t in ("fail_check", "reopen"):
            reworks += 1
            done = set()
            assert (e.dest == "escalated") == (reworks >= 3), e
        elif t == "urge" and e.actor.id == "system" and e.dest is None:
            for d in e.payload["departments"]:
                urged[d] = urged.get(d, 0) + 1
                assert urged[d] <= 1, e
        if e.dest == "closed" and e.source != "closed":
            assert t == "pass_check" and "inspector" in e.actor.roles, e
        assert t != "close"
    assert rated <= 1


GridCaseV2Machine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=100, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
TestGridCaseV2Stateful = GridCaseV2Machine.TestCase
