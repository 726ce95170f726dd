"""The shipped plan moving running ``grid_case@1`` cases to ``@2``."""

from __future__ import annotations

from gridflow import GRID_CASE_V1_TO_V2, Actor, Engine, FixedClock
from gridflow.store import Store
from gridflow.workflows import grid_case_v2
from test_grid_case_v2 import GRID, T0, TITLE, dept, inspector, resident, secretary, worker

DEPTS = ["社区管理办", "清运单位"]


def test_running_v1_cases_move_to_v2(store: Store) -> None:
    engine = Engine(store=store, clock=FixedClock(T0), plugins=[grid_case_v2.PLUGIN],
                    entry_points=False)
    ids = {}
    for name in ("joint", "closed", "archived", "triaged"):
        c = engine.open("grid_case", actor=worker, grid=GRID, version=1,
                        data={"title": TITLE, "source": "visit"})
        ids[name] = c.id
        engine.fire(c.id, "triage", actor=secretary,
                    payload={"category": "违规堆物", "priority": "normal"})
        if name == "triaged":
            continue
        engine.fire(c.id, "dispatch", actor=secretary,
                    payload={"departments": DEPTS, "plan": "联合整治"})
        engine.fire(c.id, "report_done", actor=dept,
                    payload={"department": DEPTS[0], "result": "ok"})
        if name == "joint":
            continue
        engine.fire(c.id, "report_done", actor=dept,
                    payload={"department": DEPTS[1], "result": "ok"})
        engine.fire(c.id, "close", actor=secretary)
        if name == "archived":
            engine.fire(c.id, "start_revisit", actor=secretary)
            engine.fire(c.id, "confirm", actor=secretary, payload={"observation": "ok"})
    deadline = engine.get(ids["joint"]).deadline_at
    report = engine.migrate(GRID_CASE_V1_TO_V2, actor=Actor.system())
    assert report.moved == 3 and report.staying == 1
    joint = engine.get(ids["joint"])
    assert (joint.workflow_version, joint.state) == (2, "joint_action")
    assert set(joint.data["acknowledged"]) == set(DEPTS)
    assert joint.data["handling_due"] == deadline.isoformat()  # type: ignore[union-attr]
    # No 签收 needed: the dispatched department reports done right away, then 核查.
    engine.fire(joint.id, "report_done", actor=dept,
                payload={"department": DEPTS[1], "result": "ok"})
    engine.fire(joint.id, "submit_check", actor=secretary)
    assert engine.fire(joint.id, "pass_check", actor=inspector,
                       payload={"observation": "ok"}).state == "closed"
    closed = engine.get(ids["closed"])
    assert (closed.workflow_version, closed.state) == (2, "closed")
    engine.fire(closed.id, "rate", actor=resident, payload={"satisfaction": "satisfied"})
    assert engine.get(ids["triaged"]).workflow_version == 2
    archived = engine.get(ids["archived"])
    assert (archived.workflow_version, archived.state) == (1, "archived")
    for cid in ids.values():
        engine.verify(cid)
    # Running it again moves nothing.
    assert engine.migrate(GRID_CASE_V1_TO_V2, actor=Actor.system()).moved == 0
