"""The engine's contract: idempotency, expected_version, versions side by side,
reading, verify, and the machine discipline (one shared machine per spec version)."""

from __future__ import annotations

import gc
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
from transitions import Machine

import gridflow
from gridflow import (
    Actor,
    Case,
    CaseNotFound,
    ConcurrencyError,
    Engine,
    FixedClock,
    IdempotencyConflict,
    IntegrityError,
    InvalidPayload,
    InvalidTransition,
    MemoryStore,
    SpecError,
    Step,
    TransitionSpec,
    UnknownWorkflow,
    WorkflowSpec,
)
from gridflow.workflows import GRID_CASE

GRID = "第一综合网格"
T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
worker = Actor("网格员-王", ["grid_worker"], [GRID])
secretary = Actor("书记-李", ["coordinator"], [GRID])
resident = Actor("居民-陈", ["resident"], [GRID])
TRIAGE = {"category": "违规堆物", "priority": "normal"}


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def engine(clock: FixedClock) -> Engine:
    return Engine(store=MemoryStore(), clock=clock, entry_points=False)


def new_case(engine: Engine, **kw: Any) -> Case:
    kw.setdefault("version", 1)
    return engine.open("grid_case", actor=worker, grid=GRID,
                       data={"title": "小巷堆物", "source": "visit"}, **kw)


# -- idempotency -------------------------------------------------------------------------


def test_same_idempotency_key_twice_stores_one_event(engine: Engine) -> None:
    case = new_case(engine)
    first = engine.fire(case.id, "triage", actor=secretary, payload=TRIAGE,
                        idempotency_key="triage-1")
    again = engine.fire(case.id, "triage", actor=secretary, payload=TRIAGE,
                        idempotency_key="triage-1")
    assert again == first
    assert again.version == 2
    history = engine.history(case.id)
    assert [e.trigger for e in history] == ["open", "triage"]
    assert history[-1].idempotency_key == "triage-1"
    engine.verify(case.id)


def test_idempotent_replay_answers_even_after_the_state_moved_on(engine: Engine) -> None:
    # A client retrying a step that already landed must not get an error
    # although the trigger is no longer allowed in the new state.
    case = new_case(engine)
    engine.fire(case.id, "triage", actor=secretary, payload=TRIAGE, idempotency_key="k")
    engine.fire(case.id, "escalate", actor=secretary, payload={"reason": "跨网格"})
    replay = engine.fire(case.id, "triage", actor=secretary, payload=TRIAGE,
                         idempotency_key="k")
    assert replay == engine.get(case.id)
    assert replay.state == "escalated"
    assert len(engine.history(case.id)) == 3


def test_same_open_key_twice_opens_one_case(engine: Engine) -> None:
    a = new_case(engine, idempotency_key="visit-0302-1")
    b = new_case(engine, idempotency_key="visit-0302-1")
    assert a == b
    assert len(engine.store) == 1  # type: ignore[arg-type]
    assert engine.history(a.id)[0].idempotency_key == "visit-0302-1"


def test_key_of_an_open_reused_for_a_fire_is_a_conflict(engine: Engine) -> None:
    case = new_case(engine, idempotency_key="k-open")
    with pytest.raises(IdempotencyConflict, match="k-open"):
        engine.fire(case.id, "note", actor=worker, payload={"text": "x"},
                    idempotency_key="k-open")


def test_key_reused_on_another_case_is_a_conflict(engine: Engine) -> None:
    a, b = new_case(engine), new_case(engine)
    engine.fire(a.id, "note", actor=worker, payload={"text": "x"}, idempotency_key="n-1")
    with pytest.raises(IdempotencyConflict) as info:
        engine.fire(b.id, "note", actor=worker, payload={"text": "x"}, idempotency_key="n-1")
    assert a.id in str(info.value) and b.id in str(info.value)
    assert engine.get(b.id).version == 1


def test_refused_step_does_not_consume_its_key(engine: Engine) -> None:
    case = new_case(engine)
    with pytest.raises(gridflow.MissingPayload):
        engine.fire(case.id, "triage", actor=secretary, payload={"category": "x"},
                    idempotency_key="t")
    assert engine.store.event_by_key("t") is None
    case = engine.fire(case.id, "triage", actor=secretary, payload=TRIAGE,
                       idempotency_key="t")
    assert case.state == "triaged"


# -- expected_version ----------------------------------------------------------------------


def test_expected_version_matches(engine: Engine) -> None:
    case = new_case(engine)
    case = engine.fire(case.id, "triage", actor=secretary, payload=TRIAGE,
                       expected_version=case.version)
    assert case.version == 2


def test_stale_expected_version_is_refused(engine: Engine) -> None:
    case = new_case(engine)
    engine.fire(case.id, "note", actor=worker, payload={"text": "已拍照"})
    with pytest.raises(ConcurrencyError, match="no longer at version 1, it is now at version 2"):
        engine.fire(case.id, "triage", actor=secretary, payload=TRIAGE, expected_version=1)
    assert engine.get(case.id).state == "reported"


def test_retries_do_not_override_a_pinned_version(engine: Engine) -> None:
    case = new_case(engine)
    engine.fire(case.id, "note", actor=worker, payload={"text": "x"})
    with pytest.raises(ConcurrencyError):
        engine.fire(case.id, "note", actor=worker, payload={"text": "y"},
                    expected_version=1, retries=5)


# -- versions side by side -------------------------------------------------------------------


def grid_case_v3() -> WorkflowSpec:
    # Numbered 3: the shipped grid_case@2 is registered by default.
    withdraw = TransitionSpec("withdraw", "reported", "rejected", roles=["resident"],
                              label_zh="撤回", label_en="Withdraw")
    return attrs.evolve(GRID_CASE, version=3, transitions=(*GRID_CASE.transitions, withdraw))


def test_versions_side_by_side_and_a_case_keeps_its_version(engine: Engine) -> None:
    old = engine.open("grid_case", version=1, actor=resident, grid=GRID,
                      data={"title": "旧版本案件", "source": "resident"})
    engine.register_workflow(grid_case_v3())
    new = engine.open("grid_case", actor=resident, grid=GRID,
                      data={"title": "新版本案件", "source": "resident"})
    pinned = engine.open("grid_case", actor=resident, grid=GRID, version=1,
                         data={"title": "指定旧版本", "source": "resident"})
    assert (old.workflow_version, new.workflow_version, pinned.workflow_version) == (1, 3, 1)
    assert engine.workflow("grid_case").version == 3
    assert engine.workflow("grid_case", 1) == GRID_CASE
    assert {s.key for s in engine.workflows} >= {"grid_case@1", "grid_case@2", "grid_case@3"}

    # The new trigger exists only for the case on version 2.
    with pytest.raises(InvalidTransition, match="does not exist in this workflow"):
        engine.fire(old.id, "withdraw", actor=resident)
    assert "withdraw" not in engine.allowed(old.id, resident)
    assert "withdraw" in engine.allowed(new.id, resident)
    new = engine.fire(new.id, "withdraw", actor=resident)
    assert new.state == "rejected"
    # The old case still runs (and verifies) on version 1.
    old = engine.fire(old.id, "triage", actor=secretary, payload=TRIAGE)
    assert old.workflow_version == 1
    for c in (old, new, pinned):
        engine.verify(c.id)


def test_registering_the_same_spec_again_is_harmless(engine: Engine) -> None:
    engine.register_workflow(GRID_CASE)
    engine.register_workflow(WorkflowSpec.from_dict(GRID_CASE.to_dict()))
    assert [s.key for s in engine.workflows].count("grid_case@1") == 1


def test_same_version_with_other_content_is_refused(engine: Engine) -> None:
    changed = attrs.evolve(GRID_CASE, labels={"zh": "改了", "en": "changed"})
    with pytest.raises(SpecError, match="already registered with different content"):
        engine.register_workflow(changed)
    assert engine.workflow("grid_case", 1) == GRID_CASE


def test_unknown_workflow_version(engine: Engine) -> None:
    with pytest.raises(UnknownWorkflow, match="'grid_case' version 9"):
        engine.open("grid_case", actor=worker, version=9, data={"title": "x", "source": "visit"})
    with pytest.raises(UnknownWorkflow, match="registered workflows: grid_case@1"):
        engine.workflow("mediation_v0")


# -- reading ------------------------------------------------------------------------------


def test_reading_unknown_cases(engine: Engine) -> None:
    for call in (engine.get, engine.history, engine.verify, engine.linked):
        with pytest.raises(CaseNotFound, match="'nope'"):
            call("nope")
    with pytest.raises(CaseNotFound):
        engine.allowed("nope", worker)
    with pytest.raises(CaseNotFound):
        engine.fire("nope", "note", actor=worker, payload={"text": "x"})


def test_history_is_a_copy(engine: Engine) -> None:
    case = new_case(engine)
    history = engine.history(case.id)
    history.clear()
    assert len(engine.history(case.id)) == 1


def test_open_records_seq_1_without_source(engine: Engine) -> None:
    case = new_case(engine)
    (event,) = engine.history(case.id)
    assert (event.seq, event.trigger, event.source, event.dest) == (1, "open", None, "reported")
    assert event.prev_hash == "0" * 64
    assert case.head == event.hash


def test_case_id_can_be_chosen_once(engine: Engine) -> None:
    case = new_case(engine, case_id="HY-2026-0001")
    assert case.id == "HY-2026-0001"
    with pytest.raises(InvalidPayload, match="already taken"):
        new_case(engine, case_id="HY-2026-0001")


def test_clock_is_injected(engine: Engine, clock: FixedClock) -> None:
    case = new_case(engine)
    assert case.opened_at == T0
    clock.advance(timedelta(minutes=10))
    case = engine.fire(case.id, "note", actor=worker, payload={"text": "x"})
    assert case.updated_at == T0 + timedelta(minutes=10)
    assert case.opened_at == T0
    assert engine.history(case.id)[-1].at == clock.now()


# -- the caller's objects are not shared with stored history ---------------------------------


def test_caller_mutating_its_payload_afterwards_does_not_edit_history(engine: Engine) -> None:
    case = new_case(engine)
    engine.fire(case.id, "triage", actor=secretary, payload=TRIAGE)
    departments = ["社区管理办", "清运单位"]
    payload: dict[str, Any] = {"departments": departments, "plan": {"steps": ["清运"]}}
    engine.fire(case.id, "dispatch", actor=secretary, payload=payload)
    departments.append("综合执法队")
    payload["plan"]["steps"].append("拆除地锁")
    payload["extra"] = 1
    stored = engine.history(case.id)[-1]
    assert stored.payload == {"departments": ["社区管理办", "清运单位"],
                              "plan": {"steps": ["清运"]}}
    assert engine.get(case.id).data["departments"] == ["社区管理办", "清运单位"]
    engine.verify(case.id)


def test_caller_mutating_its_open_data_afterwards_does_not_edit_history(engine: Engine) -> None:
    data: dict[str, Any] = {"title": "小巷堆物", "source": "visit", "photos": ["a.jpg"]}
    case = engine.open("grid_case", version=1, actor=worker, grid=GRID, data=data)
    data["photos"].append("b.jpg")
    assert engine.get(case.id).data["photos"] == ["a.jpg"]
    assert engine.history(case.id)[0].payload["data"]["photos"] == ["a.jpg"]
    engine.verify(case.id)


# -- verify ---------------------------------------------------------------------------------


def _tamper(engine: Engine, case_id: str, edit: Any) -> None:
    store = engine.store
    assert isinstance(store, MemoryStore)
    events = store._events[case_id]
    edit(events)


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda ev: ev.__setitem__(1, attrs.evolve(ev[1], payload={"category": "改过"})),
         "hash does not match its content"),
        (lambda ev: ev.__setitem__(1, attrs.evolve(ev[1], actor=Actor("冒名", ["coordinator"],
                                                                      grids=gridflow.ALL_GRIDS))),
         "hash does not match its content"),
        (lambda ev: ev.pop(1), "expected seq 2, found seq 3"),
        (lambda ev: ev.pop(), "the case row is at version 3 but 2 events are stored"),
        (lambda ev: ev.__setitem__(slice(1, 3), [ev[2], ev[1]]), "expected seq 2"),
    ],
    ids=["edit-payload", "edit-actor", "delete-middle", "delete-last", "swap"],
)
def test_verify_detects_tampering(engine: Engine, edit: Any, problem: str) -> None:
    case = new_case(engine)
    engine.fire(case.id, "triage", actor=secretary, payload=TRIAGE)
    engine.fire(case.id, "note", actor=worker, payload={"text": "x"})
    engine.verify(case.id)
    _tamper(engine, case.id, edit)
    with pytest.raises(IntegrityError, match=problem):
        engine.verify(case.id)


def test_verify_detects_an_edit_with_a_recomputed_hash(engine: Engine) -> None:
    case = new_case(engine)
    engine.fire(case.id, "triage", actor=secretary, payload=TRIAGE)
    engine.fire(case.id, "note", actor=worker, payload={"text": "x"})

    def rehash(ev: list[gridflow.Event]) -> None:
        e = ev[1]
        ev[1] = gridflow.Event.create(e.case_id, e.seq, e.trigger, e.source, e.dest, e.actor,
                                      e.at, {"category": "改过", "priority": "low"},
                                      e.idempotency_key, e.prev_hash, e.changes)

    _tamper(engine, case.id, rehash)
    with pytest.raises(IntegrityError,
                       match=r"at seq 3 \(field 'prev_hash'\): prev_hash does not match"):
        engine.verify(case.id)


def test_verify_detects_a_case_row_that_disagrees_with_history(engine: Engine) -> None:
    case = new_case(engine)
    store = engine.store
    assert isinstance(store, MemoryStore)
    store._cases[case.id] = attrs.evolve(case, state="archived")
    with pytest.raises(IntegrityError,
                       match="the stored state is 'archived' but the events give 'reported'"):
        engine.verify(case.id)


def test_verify_detects_a_transition_the_spec_does_not_have(engine: Engine) -> None:
    case = new_case(engine)
    store = engine.store
    assert isinstance(store, MemoryStore)
    forged = gridflow.Event.create(case.id, 2, "close", "reported", "closed", secretary, T0, {},
                                   None, case.head, gridflow.Changes(deadline_at=case.deadline_at))
    store._events[case.id].append(forged)
    store._cases[case.id] = attrs.evolve(case, state="closed", version=2, head=forged.hash)
    with pytest.raises(IntegrityError, match="is not a transition of grid_case@1"):
        engine.verify(case.id)


def test_verify_detects_an_overdue_mark_not_made_by_the_timer(engine: Engine) -> None:
    case = new_case(engine)
    store = engine.store
    assert isinstance(store, MemoryStore)
    forged = gridflow.Event.create(case.id, 2, "overdue", "reported", None, secretary, T0,
                                   {"state": "reported"}, None, case.head,
                                   gridflow.Changes(deadline_at=case.deadline_at))
    store._events[case.id].append(forged)
    store._cases[case.id] = attrs.evolve(case, version=2, head=forged.hash)
    with pytest.raises(IntegrityError,
                       match=r"at seq 2 \(field 'actor'\): an 'overdue' mark not made by"):
        engine.verify(case.id)


# -- machine discipline ----------------------------------------------------------------------


def _machines() -> list[Machine]:
    gc.collect()
    return [o for o in gc.get_objects() if isinstance(o, Machine)]


def _steps() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, Step))


def test_firing_builds_no_machine_and_attaches_nothing(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiled = engine._compiled[("grid_case", 1)]
    machine = compiled.machine
    events_before = dict(machine.events)
    states_before = {name: (list(s.on_enter), list(s.on_exit))
                     for name, s in machine.states.items()}
    machines_before = len(_machines())

    built: list[object] = []
    attached: list[object] = []
    real_init, real_add_model = Machine.__init__, Machine.add_model

    def counting_init(self: Machine, *args: Any, **kwargs: Any) -> None:
        built.append(self)
        real_init(self, *args, **kwargs)

    def counting_add_model(self: Machine, model: Any, *args: Any, **kwargs: Any) -> None:
        attached.append(model)
        real_add_model(self, model, *args, **kwargs)

    monkeypatch.setattr(Machine, "__init__", counting_init)
    monkeypatch.setattr(Machine, "add_model", counting_add_model)

    departments = ["社区管理办", "城运中心"]
    for i in range(200):
        case = new_case(engine)
        case = engine.fire(case.id, "triage", actor=secretary, payload=TRIAGE)
        case = engine.fire(case.id, "dispatch", actor=secretary,
                           payload={"departments": departments, "plan": f"方案{i}"})
        for d in departments:
            case = engine.fire(case.id, "report_done", actor=Actor(d, ["department"],
                                                                   grids=gridflow.ALL_GRIDS),
                               payload={"department": d, "result": "ok"})
        if i % 2:
            with pytest.raises(InvalidTransition):
                engine.fire(case.id, "confirm", actor=secretary, payload={"observation": "x"})
        case = engine.fire(case.id, "close", actor=secretary)
        assert case.state == "closed"

    assert built == []
    assert attached == []
    assert machine.models == []
    assert len(_machines()) == machines_before
    # Nothing was added to the shared machine's events or states (transitions adds
    # a model's on_enter_* callbacks to the shared State objects when attaching).
    assert dict(machine.events) == events_before
    assert {name: (list(s.on_enter), list(s.on_exit))
            for name, s in machine.states.items()} == states_before
    # No step view outlives its step: nothing keeps a reference to a case's view.
    assert _steps() == 0


def test_each_spec_version_is_compiled_once(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[object] = []
    real_init = Machine.__init__

    def counting_init(self: Machine, *args: Any, **kwargs: Any) -> None:
        built.append(self)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(Machine, "__init__", counting_init)
    engine.register_workflow(grid_case_v3())
    engine.register_workflow(grid_case_v3())  # same content: not compiled again
    for _ in range(20):
        new_case(engine)
    assert len(built) == 1


def test_key_of_an_open_reused_for_another_workflow_is_a_conflict(engine: Engine) -> None:
    new_case(engine, idempotency_key="k-open-2")
    with pytest.raises(IdempotencyConflict):
        engine.open("mediation", actor=gridflow.Actor("m", ["mediator"], grids=gridflow.ALL_GRIDS),
                    idempotency_key="k-open-2",
                    data={"summary": "s", "source": "walk_in",
                          "parties": [{"name": "a", "side": "applicant"},
                                      {"name": "b", "side": "respondent"}]})
