"""Every refusal raises the documented error and stores nothing (DESIGN.md §4.5).

Each test snapshots the whole store (deep copies of every case, every event
list and every idempotency key) before the refused call and compares after:
case snapshot, version, history and store sizes all stay as they were.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest

from gridflow import (
    ALL_GRIDS,
    Actor,
    Case,
    CaseNotFound,
    ConcurrencyError,
    Engine,
    FixedClock,
    GridflowError,
    GuardRejected,
    HookError,
    IdempotencyConflict,
    InvalidPayload,
    InvalidTransition,
    MemoryStore,
    MissingPayload,
    PermissionDenied,
    SpecError,
    StateSpec,
    TransitionSpec,
    UnknownWorkflow,
    WorkflowSpec,
    hookimpl,
)

GRID = "第一综合网格"
OTHER_GRID = "第二综合网格"
T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
DEPARTMENTS = ["社区管理办", "城运中心"]

worker = Actor("网格员-王", ["grid_worker"], [GRID])
secretary = Actor("书记-李", ["coordinator"], [GRID])
outsider = Actor("书记-周", ["coordinator"], [OTHER_GRID])
resident = Actor("居民-陈", ["resident"], [GRID])
dept = {d: Actor(f"部门-{d}", ["department"], grids=ALL_GRIDS) for d in DEPARTMENTS}


def snapshot(store: MemoryStore) -> dict[str, Any]:
    return copy.deepcopy({
        "cases": store._cases,
        "events": store._events,
        "keys": store._keys,
        "sizes": (len(store._cases), sum(len(v) for v in store._events.values()),
                  len(store._keys)),
    })


@contextmanager
def nothing_stored(engine: Engine, case: Case | None = None) -> Iterator[None]:
    """Assert that the block leaves every stored case, event and key as it was."""
    store = engine.store
    assert isinstance(store, MemoryStore)
    before = snapshot(store)
    history = engine.history(case.id) if case else None
    yield
    assert snapshot(store) == before
    if case is not None:
        assert engine.get(case.id) == case
        assert engine.get(case.id).version == case.version
        assert engine.history(case.id) == history
        engine.verify(case.id)


@pytest.fixture
def engine() -> Engine:
    return Engine(store=MemoryStore(), clock=FixedClock(T0), entry_points=False)


def reported(engine: Engine) -> Case:
    return engine.open("grid_case", version=1, actor=worker, grid=GRID,
                       data={"title": "长宁支路324弄违规堆物", "source": "visit"})


def in_joint_action(engine: Engine) -> Case:
    case = reported(engine)
    case = engine.fire(case.id, "triage", actor=secretary,
                       payload={"category": "违规堆物", "priority": "normal"})
    return engine.fire(case.id, "dispatch", actor=secretary,
                       payload={"departments": DEPARTMENTS, "plan": "联合整治工作方案"})


# -- role, grid, payload, trigger --------------------------------------------------------


def test_wrong_role(engine: Engine) -> None:
    case = reported(engine)
    with nothing_stored(engine, case), pytest.raises(PermissionDenied) as info:
        engine.fire(case.id, "triage", actor=worker,
                    payload={"category": "违规堆物", "priority": "normal"})
    message = str(info.value)
    assert case.id in message and "'reported'" in message and "'triage'" in message
    assert "roles allowed: coordinator" in message
    assert info.value.case_id == case.id and info.value.actor_id == worker.id


def test_actor_without_any_role(engine: Engine) -> None:
    case = reported(engine)
    with nothing_stored(engine, case), pytest.raises(PermissionDenied):
        engine.fire(case.id, "reject", actor=Actor("匿名", [], [GRID]), payload={"reason": "x"})


def test_wrong_grid(engine: Engine) -> None:
    case = reported(engine)
    with nothing_stored(engine, case), pytest.raises(PermissionDenied) as info:
        engine.fire(case.id, "triage", actor=outsider,
                    payload={"category": "违规堆物", "priority": "normal"})
    # 0.2: to an outsider the case does not exist: the same words as for a missing
    # case, naming neither grid nor trigger nor state.
    with pytest.raises(PermissionDenied) as missing:
        engine.fire("no-such-case", "triage", actor=outsider,
                    payload={"category": "违规堆物", "priority": "normal"})
    assert str(info.value) == str(missing.value).replace("no-such-case", case.id)
    assert GRID not in str(info.value) and OTHER_GRID not in str(info.value)
    assert "triage" not in str(info.value) and "reported" not in str(info.value)


def test_wrong_grid_even_for_a_note(engine: Engine) -> None:
    case = reported(engine)
    with nothing_stored(engine, case), pytest.raises(PermissionDenied):
        engine.fire(case.id, "note", actor=Actor("路人", ["resident"], [OTHER_GRID]),
                    payload={"text": "x"})


@pytest.mark.parametrize(
    ("payload", "missing"),
    [
        ({}, ["category", "priority"]),
        ({"category": "违规堆物"}, ["priority"]),
        ({"category": "", "priority": "normal"}, ["category"]),
        ({"category": None, "priority": "normal"}, ["category"]),
        ({"category": [], "priority": {}}, ["category", "priority"]),
    ],
)
def test_missing_payload_field(engine: Engine, payload: dict[str, Any], missing: list[str]) -> None:
    case = reported(engine)
    with nothing_stored(engine, case), pytest.raises(MissingPayload) as info:
        engine.fire(case.id, "triage", actor=secretary, payload=payload)
    assert info.value.missing == missing
    assert info.value.required == ["category", "priority"]
    assert case.id in str(info.value) and "'triage'" in str(info.value)


def test_missing_payload_when_there_is_no_payload_at_all(engine: Engine) -> None:
    case = in_joint_action(engine)
    with nothing_stored(engine, case), pytest.raises(MissingPayload, match="department, result"):
        engine.fire(case.id, "report_done", actor=dept["城运中心"])


@pytest.mark.parametrize("priority", ["asap", "URGENT", 1, ["urgent"]])
def test_bad_choice(engine: Engine, priority: object) -> None:
    case = reported(engine)
    with nothing_stored(engine, case), pytest.raises(InvalidPayload) as info:
        engine.fire(case.id, "triage", actor=secretary,
                    payload={"category": "违规堆物", "priority": priority})
    assert not isinstance(info.value, MissingPayload)
    assert "choose one of: urgent, normal, low" in str(info.value)


def test_unknown_trigger(engine: Engine) -> None:
    case = reported(engine)
    with nothing_stored(engine, case), pytest.raises(InvalidTransition) as info:
        engine.fire(case.id, "fly_to_the_moon", actor=secretary)
    assert "does not exist in this workflow" in str(info.value)
    assert info.value.allowed == ["mark_duplicate", "note", "reject", "triage"]


def test_trigger_not_allowed_in_this_state_lists_the_allowed_ones(engine: Engine) -> None:
    case = reported(engine)
    with nothing_stored(engine, case), pytest.raises(InvalidTransition) as info:
        engine.fire(case.id, "close", actor=secretary)
    message = str(info.value)
    assert message == (
        f"case {case.id!r}: trigger 'close' is not allowed in state 'reported'; "
        "allowed in 'reported': mark_duplicate, note, reject, triage"
    )
    assert (info.value.case_id, info.value.state, info.value.trigger) == (
        case.id, "reported", "close")


def test_trigger_reserved_by_the_engine_cannot_be_fired(engine: Engine) -> None:
    case = reported(engine)
    for trigger in ("open", "link"):
        with nothing_stored(engine, case), pytest.raises(InvalidTransition):
            engine.fire(case.id, trigger, actor=secretary, payload={"case": case.id})


def test_unknown_case(engine: Engine) -> None:
    reported(engine)
    with nothing_stored(engine), pytest.raises(CaseNotFound):
        engine.fire("no-such-case", "note", actor=secretary, payload={"text": "x"})


# -- guards ------------------------------------------------------------------------------


def test_close_before_every_department_is_done(engine: Engine) -> None:
    case = in_joint_action(engine)
    case = engine.fire(case.id, "report_done", actor=dept["社区管理办"],
                       payload={"department": "社区管理办", "result": "已清理"})
    with nothing_stored(engine, case), pytest.raises(GuardRejected) as info:
        engine.fire(case.id, "close", actor=secretary)
    assert info.value.guard == "grid_case.all_departments_done"
    assert "城运中心" in info.value.reason and "社区管理办" not in info.value.reason
    assert (info.value.case_id, info.value.state, info.value.trigger) == (
        case.id, "joint_action", "close")


def test_report_done_by_a_department_not_dispatched(engine: Engine) -> None:
    case = in_joint_action(engine)
    with nothing_stored(engine, case), pytest.raises(GuardRejected) as info:
        engine.fire(case.id, "report_done", actor=Actor("部门-综合执法队", ["department"],
                                                        grids=ALL_GRIDS),
                    payload={"department": "综合执法队", "result": "x"})
    assert info.value.guard == "grid_case.department_pending"
    assert "'综合执法队' was not dispatched" in info.value.reason
    assert "社区管理办, 城运中心" in info.value.reason


def test_report_done_twice(engine: Engine) -> None:
    case = in_joint_action(engine)
    case = engine.fire(case.id, "report_done", actor=dept["城运中心"],
                       payload={"department": "城运中心", "result": "已派单"})
    with nothing_stored(engine, case), pytest.raises(GuardRejected,
                                                     match="already reported its part done"):
        engine.fire(case.id, "report_done", actor=dept["城运中心"],
                    payload={"department": "城运中心", "result": "又报一次"})


@pytest.mark.parametrize(
    "departments",
    ["社区管理办", ["社区管理办", "社区管理办"], ["社区管理办", ""], [1, 2]],
    ids=["string", "duplicate", "empty-name", "not-strings"],
)
def test_dispatch_with_bad_departments(engine: Engine, departments: object) -> None:
    case = engine.fire(reported(engine).id, "triage", actor=secretary,
                       payload={"category": "违规堆物", "priority": "low"})
    with nothing_stored(engine, case), pytest.raises(GuardRejected) as info:
        engine.fire(case.id, "dispatch", actor=secretary,
                    payload={"departments": departments, "plan": "方案"})
    assert info.value.guard == "grid_case.departments_listed"


@pytest.mark.parametrize("target", ["self", "missing"])
def test_mark_duplicate_of_a_case_that_does_not_exist(engine: Engine, target: str) -> None:
    case = reported(engine)
    other = case.id if target == "self" else "no-such-case"
    with nothing_stored(engine, case), pytest.raises(GuardRejected) as info:
        engine.fire(case.id, "mark_duplicate", actor=secretary, payload={"duplicate_of": other})
    assert info.value.guard == "grid_case.duplicate_exists"


# -- payloads that cannot be stored ---------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [object(), datetime(2026, 1, 1, tzinfo=UTC), b"bytes", math.nan, {1, 2}, {("a",): 1}],
    ids=["object", "datetime", "bytes", "nan", "set", "tuple-key"],
)
def test_payload_that_is_not_json_able(engine: Engine, value: object) -> None:
    case = reported(engine)
    with nothing_stored(engine, case), pytest.raises(InvalidPayload, match="not JSON-able"):
        engine.fire(case.id, "note", actor=worker, payload={"text": "附照片", "photo": value})


def test_open_data_that_is_not_json_able(engine: Engine) -> None:
    with nothing_stored(engine), pytest.raises(InvalidPayload, match="not JSON-able"):
        engine.open("grid_case", version=1, actor=worker, grid=GRID,
                    data={"title": "x", "source": "visit", "found_at": datetime.now(UTC)})


# -- idempotency and concurrency ---------------------------------------------------------------


def test_idempotency_key_reused_for_a_different_trigger(engine: Engine) -> None:
    case = reported(engine)
    case = engine.fire(case.id, "note", actor=worker, payload={"text": "已拍照"},
                       idempotency_key="step-7")
    with nothing_stored(engine, case), pytest.raises(IdempotencyConflict) as info:
        engine.fire(case.id, "triage", actor=secretary,
                    payload={"category": "违规堆物", "priority": "normal"},
                    idempotency_key="step-7")
    assert "'note'" in str(info.value) and "'triage'" in str(info.value)
    assert info.value.key == "step-7"


def test_stale_expected_version(engine: Engine) -> None:
    case = reported(engine)
    case = engine.fire(case.id, "note", actor=worker, payload={"text": "补充照片"})
    with nothing_stored(engine, case), pytest.raises(ConcurrencyError) as info:
        engine.fire(case.id, "triage", actor=secretary,
                    payload={"category": "违规堆物", "priority": "normal"}, expected_version=1)
    assert (info.value.expected, info.value.actual) == (1, 2)


# -- opening ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "text"),
    [
        ({"data": {"title": "x", "source": "wechat"}}, InvalidPayload,
         "choose one of: visit, resident, hotline, patrol, other"),
        ({"data": {"source": "visit"}}, MissingPayload, "title"),
        ({"data": {"title": "", "source": "visit"}}, MissingPayload, "title"),
        ({"data": None}, MissingPayload, "title, source"),
        ({"actor": Actor("部门-城运中心", ["department"], [GRID])}, PermissionDenied,
         "roles allowed: resident, grid_worker, volunteer, coordinator"),
        ({"actor": Actor("网格员-周", ["grid_worker"], [OTHER_GRID])}, PermissionDenied,
         OTHER_GRID),
        ({"grid": None}, PermissionDenied, "grid None"),
        ({"links": ["no-such-case"]}, CaseNotFound, "no-such-case"),
    ],
    ids=["bad-source", "missing-title", "empty-title", "no-data", "wrong-role", "outside-grid",
         "no-grid-for-scoped-actor", "link-to-missing-case"],
)
def test_open_refusals(engine: Engine, kwargs: dict[str, Any], error: type[Exception],
                       text: str) -> None:
    existing = reported(engine)
    call: dict[str, Any] = {"actor": worker, "grid": GRID,
                            "data": {"title": "小巷地锁", "source": "visit"}}
    call.update(kwargs)
    with nothing_stored(engine, existing), pytest.raises(error) as info:
        engine.open("grid_case", **call)
    assert text in str(info.value)


def test_unknown_workflow(engine: Engine) -> None:
    with nothing_stored(engine), pytest.raises(UnknownWorkflow) as info:
        engine.open("parking_permit", actor=worker, data={"title": "x"})
    assert "'parking_permit' is not registered" in str(info.value)
    assert "grid_case@1" in str(info.value)


# -- a bad spec -------------------------------------------------------------------------------


def test_bad_spec_reports_every_problem_at_once() -> None:
    with pytest.raises(SpecError) as info:
        WorkflowSpec.from_dict({
            "name": "bad_case", "version": 1, "initial": "new",
            "states": [
                {"name": "reported"},
                {"name": "reported"},
                {"name": "closed", "terminal": True, "deadline": "P1D"},
                {"name": "limbo"},
            ],
            "transitions": [
                {"trigger": "close", "source": "reported", "dest": "gone"},
                {"trigger": "reopen", "source": "closed", "dest": "reported"},
                {"trigger": "open", "source": "reported", "dest": "closed"},
            ],
        })
    error = info.value
    assert error.spec_name == "bad_case"
    found = {(p.where, p.what) for p in error.problems}
    expected = {
        ("initial", "initial state 'new' is not declared"),
        ("states[1]", "duplicate state name 'reported'"),
        ("states[2] (closed)", "a terminal state has a deadline or on_breach"),
        ("transitions[0] (close)", "unknown dest state 'gone'"),
        ("transitions[1] (reopen)", "source state 'closed' is terminal"),
        ("transitions[2] (open)", "trigger name 'open' is reserved"),
        ("states[3] (limbo)", "non-terminal state 'limbo' has no way out"),
    }
    assert expected <= found, found
    # Each problem says why it matters where that is not obvious.
    why = {p.what: p.why for p in error.problems}
    assert "declared states: reported, closed, limbo" in why["initial state 'new' is not declared"]
    assert why["source state 'closed' is terminal"] == "a case never leaves a terminal state"
    assert f"{len(error.problems)} problem(s)" in str(error)


def test_spec_naming_unregistered_guards_effects_and_roles_is_refused(engine: Engine) -> None:
    spec = WorkflowSpec(
        name="repair", version=1, initial="open",
        states=[StateSpec("open", "待修", "Open"),
                StateSpec("done", "已修", "Done", terminal=True)],
        transitions=[TransitionSpec("fix", "open", "done", guards=["has_photo", "in_budget"],
                                    effects=["notify_owner"], roles=["plumber"])],
        open_roles=["janitor"],
    )
    with pytest.raises(SpecError) as info:
        engine.register_workflow(spec)
    whats = [p.what for p in info.value.problems]
    assert whats == [
        "role 'janitor' is not registered",
        "guard 'has_photo' is not registered",
        "guard 'in_budget' is not registered",
        "effect 'notify_owner' is not registered",
        "role 'plumber' is not registered",
    ]
    assert all(p.why for p in info.value.problems)
    with pytest.raises(UnknownWorkflow):
        engine.workflow("repair")


# -- plugins that refuse or fail -------------------------------------------------------------------


class NoCloseOnSunday:
    @hookimpl
    def gridflow_veto(self, case: Case, trigger: str, actor: Actor,
                      payload: dict[str, Any]) -> str | None:
        return "联席会议未召开，暂不结案" if trigger == "close" else None


class RaisingVeto:
    @hookimpl
    def gridflow_veto(self, case: Case, trigger: str, actor: Actor,
                      payload: dict[str, Any]) -> str | None:
        raise RuntimeError("veto service down")


class RaisingBefore:
    def __init__(self) -> None:
        self.seen: list[str] = []

    @hookimpl
    def gridflow_before_fire(self, case: Case, trigger: str, actor: Actor,
                             payload: dict[str, Any]) -> dict[str, Any] | None:
        self.seen.append(trigger)
        payload["touched"] = True  # even a half-done change must not be stored
        raise KeyError("missing config")


def test_plugin_veto(engine: Engine) -> None:
    engine.register(NoCloseOnSunday())
    case = in_joint_action(engine)
    for d in DEPARTMENTS:
        case = engine.fire(case.id, "report_done", actor=dept[d],
                           payload={"department": d, "result": "完成"})
    with nothing_stored(engine, case), pytest.raises(GuardRejected) as info:
        engine.fire(case.id, "close", actor=secretary)
    assert info.value.guard == "NoCloseOnSunday.gridflow_veto"
    assert info.value.reason == "联席会议未召开，暂不结案"
    assert "'close'" in str(info.value) and "'joint_action'" in str(info.value)


def test_veto_hook_that_raises_refuses_the_step(engine: Engine) -> None:
    case = reported(engine)
    engine.register(RaisingVeto())
    with nothing_stored(engine, case), pytest.raises(GuardRejected) as info:
        engine.fire(case.id, "note", actor=worker, payload={"text": "x"})
    assert info.value.guard == "RaisingVeto.gridflow_veto"
    assert "veto service down" in info.value.reason
    assert isinstance(info.value.__cause__, RuntimeError)


def test_veto_hook_that_raises_refuses_opening(engine: Engine) -> None:
    engine.register(RaisingVeto())
    with nothing_stored(engine), pytest.raises(GuardRejected, match="veto service down"):
        reported(engine)


def test_before_fire_hook_that_raises_refuses_the_step(engine: Engine) -> None:
    case = reported(engine)
    before = RaisingBefore()
    engine.register(before)
    with nothing_stored(engine, case), pytest.raises(GuardRejected) as info:
        engine.fire(case.id, "note", actor=worker, payload={"text": "x"})
    assert before.seen == ["note"]
    assert info.value.guard == "RaisingBefore.gridflow_before_fire"
    assert "missing config" in info.value.reason
    assert isinstance(info.value.__cause__, KeyError)


def _boom(step: Any) -> None:
    raise ZeroDivisionError("bad arithmetic in a guard")


def _half_effect(step: Any) -> None:
    step.data["half"] = True
    raise ValueError("effect failed halfway")


class FlakyWorkflow:
    """A third-party workflow whose guard and effect raise."""

    spec = WorkflowSpec(
        name="flaky", version=1, initial="open",
        states=[StateSpec("open", "待办", "Open"),
                StateSpec("done", "完成", "Done", terminal=True)],
        transitions=[
            TransitionSpec("check", "open", "done", guards=["flaky.boom"]),
            TransitionSpec("apply", "open", None, effects=["flaky.half"]),
            TransitionSpec("finish", "open", "done"),
        ],
    )

    @hookimpl
    def gridflow_workflows(self) -> list[WorkflowSpec]:
        return [self.spec]

    @hookimpl
    def gridflow_guards(self) -> dict[str, Any]:
        return {"flaky.boom": _boom}

    @hookimpl
    def gridflow_effects(self) -> dict[str, Any]:
        return {"flaky.half": _half_effect}


def test_guard_that_raises_refuses_the_step(engine: Engine) -> None:
    engine.register(FlakyWorkflow())
    case = engine.open("flaky", actor=worker, grid=GRID)
    with nothing_stored(engine, case), pytest.raises(GuardRejected) as info:
        engine.fire(case.id, "check", actor=worker)
    assert info.value.guard == "guard 'flaky.boom'"
    assert "bad arithmetic in a guard" in info.value.reason
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    # The shared machine is not left in a broken state: the next step works.
    assert engine.fire(case.id, "finish", actor=worker).state == "done"


def test_effect_that_raises_refuses_the_step(engine: Engine) -> None:
    engine.register(FlakyWorkflow())
    case = engine.open("flaky", actor=worker, grid=GRID)
    with nothing_stored(engine, case), pytest.raises(GuardRejected) as info:
        engine.fire(case.id, "apply", actor=worker)
    assert info.value.guard == "effect 'flaky.half'"
    assert "half" not in engine.get(case.id).data


def test_every_refusal_is_a_gridflow_error() -> None:
    for error in (PermissionDenied, MissingPayload, InvalidPayload, InvalidTransition,
                  GuardRejected, IdempotencyConflict, ConcurrencyError, SpecError,
                  UnknownWorkflow, CaseNotFound):
        assert issubclass(error, GridflowError)


# -- after-hooks: the step stays -------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []

    @hookimpl
    def gridflow_after_fire(self, case: Case, event: Any) -> None:
        self.seen.append((event.trigger, case.version))


class BrokenNotifier:
    @hookimpl
    def gridflow_after_fire(self, case: Case, event: Any) -> None:
        raise ConnectionError("楼组群 unreachable")


@pytest.mark.parametrize("order", ["broken-first", "broken-last"])
def test_after_hook_that_raises_is_logged_and_the_step_stays(
    caplog: pytest.LogCaptureFixture, order: str
) -> None:
    recorder, broken = Recorder(), BrokenNotifier()
    reported_errors: list[HookError] = []
    plugins: list[object] = [recorder, broken] if order == "broken-first" else [broken, recorder]
    engine = Engine(store=MemoryStore(), clock=FixedClock(T0), entry_points=False,
                    plugins=plugins, on_hook_error=reported_errors.append)
    case = reported(engine)
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="gridflow"):
        case = engine.fire(case.id, "triage", actor=secretary,
                           payload={"category": "违规堆物", "priority": "urgent"})

    # The step is committed and verifies.
    assert case.state == "triaged"
    assert engine.get(case.id) == case
    assert [e.trigger for e in engine.history(case.id)] == ["open", "triage"]
    engine.verify(case.id)
    # The other after-hook still ran, for the open and for the triage.
    assert recorder.seen == [("open", 1), ("triage", 2)]
    # Logged, recorded, and reported, once per failed call.
    records = [r for r in caplog.records if r.name == "gridflow"]
    assert len(records) == 1
    assert records[0].levelno == logging.ERROR
    assert case.id in records[0].getMessage()
    assert records[0].exc_info is not None
    assert isinstance(records[0].exc_info[1], ConnectionError)
    assert len(engine.hook_errors) == 2  # the open's and the triage's
    failure = engine.hook_errors[-1]
    assert (failure.hook, failure.case_id, failure.seq) == ("gridflow_after_fire", case.id, 2)
    assert isinstance(failure.error, ConnectionError)
    assert reported_errors == list(engine.hook_errors)
