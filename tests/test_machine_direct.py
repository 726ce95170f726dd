"""`CompiledWorkflow.run` executes the compiled transitions machine's own
transitions directly; `run_trigger` goes through ``Event.trigger``. They must
agree outcome for outcome: a differential test over random specs and steps.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridflow import Actor, Case, GuardRejected
from gridflow.machine import CompiledWorkflow, compile_workflow
from gridflow.spec import StateSpec, TransitionSpec, WorkflowSpec
from gridflow.step import Step
from gridflow.workflows import EFFECTS, GRID_CASE, GUARDS, MEDIATION

T0 = datetime(2026, 3, 2, 1, tzinfo=UTC)

#: Guards keyed by what they do with the payload: pass, refuse, return False,
#: return True, or raise.
TEST_GUARDS: dict[str, Any] = {
    "g.pass": lambda step: None,
    "g.refuse": lambda step: "refused by test",
    "g.false": lambda step: False,
    "g.true": lambda step: True,
    "g.payload": lambda step: None if step.payload.get("ok") else "payload says no",
    "g.raise": lambda step: 1 / 0,
}
TEST_EFFECTS: dict[str, Any] = {
    "e.count": lambda step: step.data.__setitem__("n", step.data.get("n", 0) + 1),
    "e.trace": lambda step: step.data.__setitem__("trace",
                                                  [*step.data.get("trace", []), step.state]),
    "e.link": lambda step: step.links.append("other"),
    "e.raise": lambda step: [][0],
}


@st.composite
def specs(draw: st.DrawFn) -> WorkflowSpec:
    n = draw(st.integers(2, 5))
    names = [f"s{i}" for i in range(n)]
    states = [StateSpec(name, terminal=(i == n - 1)) for i, name in enumerate(names)]
    transitions = []
    for i in range(n - 1):  # a chain keeps every state reachable and leavable
        transitions.append(TransitionSpec("next", names[i], names[i + 1]))
    for _ in range(draw(st.integers(0, 8))):
        trigger = draw(st.sampled_from(["a", "b", "next", "stay"]))
        source = draw(st.lists(st.sampled_from(names[:-1]), min_size=1, max_size=2,
                               unique=True))
        dest = None if trigger == "stay" else draw(st.sampled_from(names))
        guards = draw(st.lists(st.sampled_from(sorted(TEST_GUARDS)), max_size=2))
        effects = draw(st.lists(st.sampled_from(sorted(TEST_EFFECTS)), max_size=2))
        pairs = {(t.trigger, src, t.dest) for t in transitions for src in t.sources(())}
        if not any((trigger, src, dest) in pairs for src in source):
            transitions.append(TransitionSpec(trigger, tuple(source), dest, guards=guards,
                                              effects=effects))
    return WorkflowSpec("random", 1, names[0], states, transitions)


def _step(spec: WorkflowSpec, state: str, trigger: str, ok: bool) -> Step:
    case = Case("c-1", spec.name, spec.version, state, 1, {"n": 0}, None, T0, T0)
    return Step(case, trigger, Actor.system(), {"ok": ok}, dict(case.data), [], T0, state,
                lambda _: None)


def _outcome(compiled: CompiledWorkflow, step: Step, direct: bool) -> Any:
    run = compiled.run if direct else compiled.run_trigger
    try:
        result: Any = run(step)
    except Exception as exc:  # both paths must raise the same
        result = ("raised", type(exc).__name__)
    return (result, step.state, step.fired, step.rejected, step.failed, step.data, step.links)


@settings(max_examples=300, deadline=None)
@given(spec=specs(), data=st.data())
def test_the_direct_path_equals_event_trigger(spec: WorkflowSpec, data: st.DataObject) -> None:
    compiled = compile_workflow(spec, TEST_GUARDS, TEST_EFFECTS)
    assert compiled.table is not None
    state = data.draw(st.sampled_from(spec.non_terminal))
    trigger = data.draw(st.sampled_from(sorted({t.trigger for t in spec.transitions})))
    ok = data.draw(st.booleans())
    direct = _outcome(compiled, _step(spec, state, trigger, ok), True)
    dispatched = _outcome(compiled, _step(spec, state, trigger, ok), False)
    assert direct == dispatched


@pytest.mark.parametrize("spec", [GRID_CASE, MEDIATION], ids=["grid_case", "mediation"])
def test_the_built_in_workflows_take_the_direct_path(spec: WorkflowSpec) -> None:
    compiled = compile_workflow(spec, GUARDS, EFFECTS)
    assert compiled.table is not None
    machine = compiled.machine
    for trigger, event in machine.events.items():
        for source, transitions in event.transitions.items():
            assert [t.dest for t in transitions] == [
                dest for _, dest, _ in compiled.table[(source, trigger)]]


def test_a_machine_with_callbacks_the_direct_path_does_not_cover_falls_back() -> None:
    spec = WorkflowSpec("plain", 1, "a", [StateSpec("a"), StateSpec("b", terminal=True)],
                        [TransitionSpec("go", "a", "b")])
    compiled = compile_workflow(spec, {}, {})
    entered: list[str] = []
    compiled.machine.get_state("b").add_callback("enter", lambda event: entered.append("b"))
    rebuilt = CompiledWorkflow(spec, compiled.machine, compiled.rules, [], [])
    assert rebuilt.table is None
    step = _step(spec, "a", "go", True)
    assert rebuilt.run(step) and step.state == "b" and entered == ["b"]


def test_a_raising_guard_is_refused_the_same_way_on_both_paths() -> None:
    spec = WorkflowSpec("r", 1, "a", [StateSpec("a"), StateSpec("b", terminal=True)],
                        [TransitionSpec("go", "a", "b", guards=["g.raise"])])
    compiled = compile_workflow(spec, TEST_GUARDS, {})
    for direct in (True, False):
        step = _step(spec, "a", "go", True)
        with pytest.raises(ZeroDivisionError):
            (compiled.run if direct else compiled.run_trigger)(step)
        assert step.failed == "guard 'g.raise'"
    assert issubclass(GuardRejected, Exception)
