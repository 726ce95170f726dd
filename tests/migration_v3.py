"""A test-only ``grid_case@3`` and its plan from ``grid_case@1`` (not the shipped ``@2``).

It is numbered 3 because the shipped ``grid_case@2`` is registered by default.

Against version 1 it renames ``revisit`` to ``look_back``, adds one step
(``close`` now leads to ``acceptance``, where ``accept`` with an
``inspection`` note leads to ``closed``) and changes a time limit
(``triaged``: 1 day -> 2 days).
"""

from __future__ import annotations

from datetime import timedelta

import attrs

import gridflow
from gridflow.spec import StateSpec, TransitionSpec, WorkflowSpec
from gridflow.workflows import GRID_CASE

RENAMED = {"revisit": "look_back"}


def _rename(name: str) -> str:
    return RENAMED.get(name, name)


def _state(state: StateSpec) -> StateSpec:
    if state.name == "triaged":
        return attrs.evolve(state, deadline=timedelta(days=2))
    if state.name == "revisit":
        return attrs.evolve(state, name="look_back", label_en="Look back")
    return state


def _transition(t: TransitionSpec) -> TransitionSpec:
    source = t.source if t.source == "*" else tuple(_rename(s) for s in t.source)
    dest = None if t.dest is None else _rename(t.dest)
    if t.trigger == "close":
        dest = "acceptance"
    return attrs.evolve(t, source=source, dest=dest)


def _states() -> tuple[StateSpec, ...]:
    out: list[StateSpec] = []
    for s in GRID_CASE.states:
        out.append(_state(s))
        if s.name == "joint_action":
            out.append(StateSpec("acceptance", "验收", "Acceptance", deadline=timedelta(days=2),
                                 tags=("open", "accepted")))
    return tuple(out)


GRID_CASE_V3: WorkflowSpec = attrs.evolve(
    GRID_CASE, version=3, states=_states(),
    transitions=(*(_transition(t) for t in GRID_CASE.transitions),
                 TransitionSpec("accept", "acceptance", "closed", roles=["coordinator"],
                                requires=["inspection"], label_zh="验收通过",
                                label_en="Accept")),
)

#: The plan: every other non-terminal state keeps its name.
PLAN = gridflow.MigrationPlan("grid_case", 1, 3, states=RENAMED, name="test-v2")


class V3Plugin:
    """Registers `GRID_CASE_V3` (for engines in subprocesses)."""

    @gridflow.hookimpl
    def gridflow_workflows(self) -> list[WorkflowSpec]:
        return [GRID_CASE_V3]


GRID = "第一综合网格"
DEPARTMENTS = ["社区管理办", "清运单位"]
worker = gridflow.Actor("网格员-王", ["grid_worker"], [GRID])
secretary = gridflow.Actor("书记-李", ["coordinator"], [GRID])
volunteer = gridflow.Actor("志愿者-张", ["volunteer"], [GRID])
department = gridflow.Actor("部门", ["department"], grids=gridflow.ALL_GRIDS)

#: Every non-terminal state of grid_case@1, and the steps that lead there.
PATHS: dict[str, list[tuple[str, gridflow.Actor, dict[str, object]]]] = {
    "reported": [],
    "triaged": [("triage", secretary, {"category": "违规堆物", "priority": "normal"})],
    "escalated": [("triage", secretary, {"category": "违规堆物", "priority": "normal"}),
                  ("escalate", secretary, {"reason": "需街道协调"})],
    "joint_action": [("triage", secretary, {"category": "违规堆物", "priority": "normal"}),
                     ("dispatch", secretary, {"departments": DEPARTMENTS, "plan": "联合整治"})],
    "closed": [("triage", secretary, {"category": "违规堆物", "priority": "normal"}),
               ("dispatch", secretary, {"departments": DEPARTMENTS, "plan": "联合整治"}),
               *[("report_done", department, {"department": d, "result": "已处置"})
                 for d in DEPARTMENTS],
               ("close", secretary, {})],
}
PATHS["revisit"] = [*PATHS["closed"], ("start_revisit", volunteer, {})]
STATES_V1 = tuple(PATHS)


def walk(engine: gridflow.Engine, state: str, case_id: str | None = None) -> gridflow.Case:
    """Open a grid_case@1 case and walk it to ``state``."""
    case = engine.open("grid_case", actor=worker, grid=GRID, version=1, case_id=case_id,
                       data={"title": "弄堂堆物", "source": "visit"})
    for trigger, actor, payload in PATHS[state]:
        case = engine.fire(case.id, trigger, actor=actor, payload=payload)
    return case


def fill(engine: gridflow.Engine, n: int, prefix: str = "c") -> dict[str, str]:
    """``n`` cases spread evenly over `STATES_V1`; returns {case id: state}."""
    out = {}
    for i in range(n):
        state = STATES_V1[i % len(STATES_V1)]
        case = walk(engine, state, f"{prefix}-{i:05d}")
        out[case.id] = state
    return out


def stamp(case: gridflow.Case, target: str) -> dict[str, str]:
    """A data effect for plan files (``migration_v3:stamp``)."""
    return {"rules": "v2"}
