"""Plugins (DESIGN.md §5): third parties add workflows, guards, effects, roles,
vetoes and hooks through pluggy, exactly as the built-ins do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gridflow import (
    Actor,
    Case,
    Engine,
    Event,
    FixedClock,
    GuardRejected,
    InvalidPayload,
    MemoryStore,
    SpecError,
    StateSpec,
    Step,
    TransitionSpec,
    WorkflowSpec,
    hookimpl,
)
from gridflow.plugins import make_plugin_manager
from gridflow.workflows import GRID_CASE

GRID = "第一综合网格"
T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
worker = Actor("网格员-王", ["grid_worker"], [GRID])
secretary = Actor("书记-李", ["coordinator"], [GRID])
manager = Actor("物业-孙", ["property_manager"], [GRID])
resident = Actor("居民-陈", ["resident"], [GRID])

REPAIR = WorkflowSpec(
    name="lamp_repair",
    version=1,
    initial="reported",
    labels={"zh": "路灯报修", "en": "Street lamp repair"},
    open_roles=["resident", "property_manager"],
    open_requires=["lamp"],
    states=[
        StateSpec("reported", "已报修", "Reported", deadline=timedelta(days=2)),
        StateSpec("fixed", "已修复", "Fixed", terminal=True),
    ],
    transitions=[
        TransitionSpec("fix", "reported", "fixed", roles=["property_manager"],
                       guards=["lamp.photo_attached"], effects=["lamp.keep_photo"],
                       label_zh="修复", label_en="Fix"),
        TransitionSpec("comment", "reported", None, requires=["text"],
                       label_zh="留言", label_en="Comment"),
    ],
)


def _photo_attached(step: Step) -> str | None:
    return None if step.payload.get("photo") else "attach a photo of the repaired lamp"


def _keep_photo(step: Step) -> None:
    step.data["photo"] = step.payload["photo"]
    step.data["fixed_by"] = step.actor.id


class LampPlugin:
    """A third-party plugin: one workflow, its guard, its effect, its role."""

    @hookimpl
    def gridflow_workflows(self) -> list[WorkflowSpec]:
        return [REPAIR]

    @hookimpl
    def gridflow_guards(self) -> dict[str, Any]:
        return {"lamp.photo_attached": _photo_attached}

    @hookimpl
    def gridflow_effects(self) -> dict[str, Any]:
        return {"lamp.keep_photo": _keep_photo}

    @hookimpl
    def gridflow_roles(self) -> dict[str, tuple[str, str]]:
        return {"property_manager": ("物业", "Property manager")}


def make(*plugins: object) -> Engine:
    return Engine(store=MemoryStore(), clock=FixedClock(T0), plugins=plugins,
                  entry_points=False)


def grid_case(engine: Engine) -> Case:
    return engine.open("grid_case", version=1, actor=worker, grid=GRID,
                       data={"title": "小巷堆物", "source": "visit"})


# -- the built-ins go through the same hooks ----------------------------------------------


def test_builtins_register_through_the_plugin_hooks() -> None:
    pm = Engine(entry_points=False).plugins
    assert pm.has_plugin("gridflow.workflows")
    assert not make_plugin_manager(entry_points=False).has_plugin("gridflow.workflows")
    specs = [s for batch in pm.hook.gridflow_workflows() for s in batch]
    assert GRID_CASE in specs
    guards = {k for table in pm.hook.gridflow_guards() for k in table}
    assert "grid_case.all_departments_done" in guards
    roles = {k for table in pm.hook.gridflow_roles() for k in table}
    assert {"resident", "grid_worker", "volunteer", "coordinator", "department", "street",
            "system"} <= roles


def test_without_the_builtin_plugin_there_is_no_grid_case() -> None:
    engine = make()
    engine.plugins.unregister(name="gridflow.workflows")
    pm = engine.plugins
    assert not [s for batch in pm.hook.gridflow_workflows() for s in batch]


# -- a third-party workflow ----------------------------------------------------------------------


def test_plugin_adds_a_workflow_guard_effect_and_role() -> None:
    engine = make(LampPlugin())
    assert engine.workflow("lamp_repair") == REPAIR
    assert engine.roles["property_manager"] == ("物业", "Property manager")
    case = engine.open("lamp_repair", actor=resident, grid=GRID, data={"lamp": "324弄-07"})
    assert case.deadline_at == T0 + timedelta(days=2)
    with pytest.raises(GuardRejected, match="attach a photo") as info:
        engine.fire(case.id, "fix", actor=manager)
    assert info.value.guard == "lamp.photo_attached"
    case = engine.fire(case.id, "fix", actor=manager, payload={"photo": "lamp.jpg"})
    assert case.state == "fixed"
    assert case.data == {"lamp": "324弄-07", "photo": "lamp.jpg", "fixed_by": manager.id}
    engine.verify(case.id)
    # The built-in workflow is still there beside it.
    assert engine.workflow("grid_case", 1) == GRID_CASE


def test_plugin_registered_after_construction() -> None:
    engine = make()
    with pytest.raises(Exception, match="lamp_repair"):
        engine.workflow("lamp_repair")
    engine.register(LampPlugin(), name="lamp")
    assert engine.plugins.has_plugin("lamp")
    case = engine.open("lamp_repair", actor=manager, grid=GRID, data={"lamp": "L-1"})
    assert engine.fire(case.id, "fix", actor=manager, payload={"photo": "p"}).state == "fixed"


def test_a_plugin_spec_naming_an_unregistered_guard_is_refused() -> None:
    class Broken:
        @hookimpl
        def gridflow_workflows(self) -> list[WorkflowSpec]:
            return [REPAIR]  # its guard, effect and role come from LampPlugin only

    with pytest.raises(SpecError) as info:
        make(Broken())
    whats = {p.what for p in info.value.problems}
    assert "guard 'lamp.photo_attached' is not registered" in whats
    assert "effect 'lamp.keep_photo' is not registered" in whats
    assert "role 'property_manager' is not registered" in whats


@pytest.mark.parametrize(("answer", "ok"), [(None, True), (True, True), (False, False),
                                             ("no budget", False)])
def test_guard_answers(answer: object, ok: bool) -> None:
    class Budget(LampPlugin):
        @hookimpl
        def gridflow_guards(self) -> dict[str, Any]:
            return {"lamp.photo_attached": lambda step: answer}

    engine = make(Budget())
    case = engine.open("lamp_repair", actor=manager, grid=GRID, data={"lamp": "L-1"})
    if ok:
        assert engine.fire(case.id, "fix", actor=manager, payload={"photo": "p"}).state == "fixed"
    else:
        with pytest.raises(GuardRejected) as info:
            engine.fire(case.id, "fix", actor=manager, payload={"photo": "p"})
        assert info.value.reason == ("refused" if answer is False else answer)


def test_guards_see_the_stored_case_and_can_look_up_others() -> None:
    seen: list[tuple[Case, str, str, Case | None]] = []

    class Inspect(LampPlugin):
        @hookimpl
        def gridflow_guards(self) -> dict[str, Any]:
            def guard(step: Step) -> None:
                seen.append((step.case, step.state, step.trigger,
                             step.lookup(step.payload["other"])))
            return {"lamp.photo_attached": guard}

    engine = make(Inspect())
    other = grid_case(engine)
    case = engine.open("lamp_repair", actor=manager, grid=GRID, data={"lamp": "L-1"})
    engine.fire(case.id, "fix", actor=manager, payload={"photo": "p", "other": other.id})
    assert seen == [(case, "reported", "fix", other)]


# -- veto ---------------------------------------------------------------------------------


class VetoRecorder:
    def __init__(self, refuse: str | None = None) -> None:
        self.calls: list[tuple[Case, str, Actor, dict[str, Any]]] = []
        self.refuse = refuse

    @hookimpl
    def gridflow_veto(self, case: Case, trigger: str, actor: Actor,
                      payload: dict[str, Any]) -> str | None:
        self.calls.append((case, trigger, actor, dict(payload)))
        return "联席会议未通过" if trigger == self.refuse else None


def test_veto_sees_the_step_and_a_none_answer_allows_it() -> None:
    veto = VetoRecorder()
    engine = make(veto)
    case = grid_case(engine)
    payload = {"category": "违规堆物", "priority": "low"}
    engine.fire(case.id, "triage", actor=secretary, payload=payload)
    assert veto.calls[0][1] == "open"
    assert veto.calls[1] == (case, "triage", secretary, payload)


def test_one_veto_among_several_refuses() -> None:
    engine = make(VetoRecorder(), VetoRecorder(refuse="reject"), VetoRecorder())
    case = grid_case(engine)
    with pytest.raises(GuardRejected, match="联席会议未通过"):
        engine.fire(case.id, "reject", actor=secretary, payload={"reason": "x"})
    assert engine.fire(case.id, "note", actor=secretary, payload={"text": "x"}).version == 2


# -- before_fire -----------------------------------------------------------------------------


class Stamp:
    @hookimpl
    def gridflow_before_fire(self, case: Case, trigger: str, actor: Actor,
                             payload: dict[str, Any]) -> dict[str, Any]:
        payload.setdefault("channel", "app")
        return {"last_actor": actor.id, "last_trigger": trigger}


def test_before_fire_adjusts_payload_and_data() -> None:
    engine = make(Stamp())
    case = grid_case(engine)
    assert case.data["last_trigger"] == "open"
    case = engine.fire(case.id, "note", actor=secretary, payload={"text": "已联系物业"})
    assert case.data["last_actor"] == secretary.id
    assert case.data["last_trigger"] == "note"
    event = engine.history(case.id)[-1]
    assert event.payload == {"text": "已联系物业", "channel": "app"}
    engine.verify(case.id)


def test_before_fire_returning_data_that_json_cannot_hold_is_refused() -> None:
    class Bad:
        @hookimpl
        def gridflow_before_fire(self, case: Case, trigger: str, actor: Actor,
                                 payload: dict[str, Any]) -> dict[str, Any] | None:
            return {"when": datetime.now(UTC)} if trigger == "note" else None

    engine = make(Bad())
    case = grid_case(engine)
    with pytest.raises(InvalidPayload, match="not JSON-able"):
        engine.fire(case.id, "note", actor=secretary, payload={"text": "x"})
    assert engine.get(case.id) == case


# -- after_fire -----------------------------------------------------------------------------


def test_after_fire_sees_the_committed_case_and_event_only_for_stored_steps() -> None:
    seen: list[tuple[Case, Event, Case]] = []

    class After:
        @hookimpl
        def gridflow_after_fire(self, case: Case, event: Event) -> None:
            seen.append((case, event, engine.get(case.id)))

    engine = make(After())
    case = grid_case(engine)
    with pytest.raises(GuardRejected):
        engine.fire(case.id, "mark_duplicate", actor=secretary, payload={"duplicate_of": "x"})
    case = engine.fire(case.id, "triage", actor=secretary,
                       payload={"category": "违规堆物", "priority": "normal"})
    assert [e.trigger for _, e, _ in seen] == ["open", "triage"]
    committed, event, stored = seen[-1]
    assert committed == stored == case
    assert event == engine.history(case.id)[-1]


# -- route and deadline ------------------------------------------------------------------------


class Router:
    def __init__(self, answer: list[str] | None) -> None:
        self.answer = answer

    @hookimpl
    def gridflow_route(self, case: Case) -> list[str] | None:
        return self.answer


def test_route_first_answer_wins() -> None:
    engine = make(Router(["城运中心"]), Router(None), Router(["社区管理办", "清运单位"]))
    case = grid_case(engine)
    # pluggy asks the last registered first; None passes to the next.
    assert engine.route(case.id) == ["社区管理办", "清运单位"]
    plain = make()
    assert plain.route(grid_case(plain).id) == []


def test_deadline_hook_overrides_the_spec() -> None:
    class Faster:
        @hookimpl
        def gridflow_deadline(self, case: Case, state: StateSpec) -> Any:
            if state.name == "reported":
                return timedelta(hours=4)
            if state.name == "triaged":
                return datetime(2026, 3, 3, 9, tzinfo=UTC)
            return None

    engine = make(Faster())
    case = grid_case(engine)
    assert case.deadline_at == T0 + timedelta(hours=4)
    case = engine.fire(case.id, "triage", actor=secretary,
                       payload={"category": "违规堆物", "priority": "normal"})
    assert case.deadline_at == datetime(2026, 3, 3, 9, tzinfo=UTC)


def test_deadline_hook_returning_a_naive_datetime_stores_nothing() -> None:
    class Naive:
        @hookimpl
        def gridflow_deadline(self, case: Case, state: StateSpec) -> Any:
            return datetime(2026, 3, 3, 9) if state.name == "triaged" else None

    engine = make(Naive())
    case = grid_case(engine)
    with pytest.raises(InvalidPayload, match="naive datetime"):
        engine.fire(case.id, "triage", actor=secretary,
                    payload={"category": "违规堆物", "priority": "normal"})
    assert engine.get(case.id) == case
    assert len(engine.history(case.id)) == 1
