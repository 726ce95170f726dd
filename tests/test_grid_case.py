"""The grid case lifecycle, played on the source's alley case (长宁支路324弄).

The story (华阳路街道, 华三居民区, 第一综合网格): a grid worker finds illegal
stacking and private ground locks (违规堆物、加装地锁) in an unnamed alley near
Lane 324, Changning Branch Road during the "四百" door-to-door visits; the party
branch secretary triages it; the grid joint meeting dispatches 社区管理办, 城运中心,
综合执法队 and 清运单位 on a joint rectification plan (联合整治工作方案); each
reports its part done; the case is closed; volunteers look back (回头看) and
confirm that the problem has not returned.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from gridflow import (
    ALL_GRIDS,
    Actor,
    Case,
    CaseNotVisible,
    Engine,
    Event,
    FixedClock,
    GuardRejected,
    InvalidTransition,
)
from gridflow.model import GENESIS_HASH

GRID = "第一综合网格"
DEPARTMENTS = ["社区管理办", "城运中心", "综合执法队", "清运单位"]
TITLE = "长宁支路324弄附近无名小巷违规堆物、加装地锁"
PLAN = "联合整治工作方案：清运堆物、拆除地锁、执法告知、城运中心跟踪"

worker = Actor("网格员-王", ["grid_worker"], [GRID])
secretary = Actor("书记-李", ["coordinator"], [GRID])
volunteer = Actor("志愿者-张", ["volunteer"], [GRID])
resident = Actor("居民-陈", ["resident"], [GRID])
street = Actor("街道-赵", ["street"], grids=ALL_GRIDS)  # the street level sees every grid
departments = {name: Actor(f"部门-{name}", ["department"], grids=ALL_GRIDS) for name in DEPARTMENTS}
RESULTS = {
    "社区管理办": "已上门告知，居民自行清理部分堆物",
    "城运中心": "已派单并跟踪整改进度",
    "综合执法队": "已依法拆除私装地锁6个",
    "清运单位": "已清运堆物约3吨",
}


# ``engine`` and ``clock`` come from conftest.py: every test here runs on each
# store (memory, a SQLite file, a PostgreSQL schema).


def open_alley_case(engine: Engine) -> Case:
    return engine.open(
        "grid_case", version=1, actor=worker, grid=GRID,
        data={"title": TITLE, "source": "visit", "address": "长宁支路324弄"},
    )


def walk_to(engine: Engine, clock: FixedClock, target: str) -> Case:
    """Open the alley case and move it along the happy path until ``target``."""
    case = open_alley_case(engine)
    steps: list[tuple[str, Actor, dict[str, Any]]] = [
        ("triage", secretary, {"category": "违规堆物、加装地锁", "priority": "normal"}),
        ("dispatch", secretary, {"departments": DEPARTMENTS, "plan": PLAN}),
        *[("report_done", departments[d], {"department": d, "result": RESULTS[d]})
          for d in DEPARTMENTS],
        ("close", secretary, {}),
        ("start_revisit", volunteer, {}),
    ]
    for trigger, actor, payload in steps:
        if case.state == target:
            break
        clock.advance(timedelta(hours=3))
        case = engine.fire(case.id, trigger, actor=actor, payload=payload)
    assert case.state == target
    return case


#: The triggers of issue 2's table; other issues add more (extensions, 延期), so
#: `allowed` answers are compared on these only (the full answer is checked against
#: the spec in `test_allowed_is_filtered_by_role_and_grid`).
ISSUE_TRIGGERS = frozenset({
    "triage", "reject", "mark_duplicate", "dispatch", "report_done", "reassign", "close",
    "escalate", "start_revisit", "confirm", "reopen", "note",
})


def core_allowed(engine: Engine, case_id: str, actor: Actor) -> list[str]:
    return [t for t in engine.allowed(case_id, actor) if t in ISSUE_TRIGGERS]


def assert_chain(events: list[Event], case: Case) -> None:
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert case.version == len(events)
    prev = GENESIS_HASH
    for e in events:
        assert e.case_id == case.id
        assert e.prev_hash == prev
        assert e.hash == e.expected_hash()
        prev = e.hash
    assert case.head == prev


# -- the whole story ----------------------------------------------------------------


def test_alley_case_end_to_end(engine: Engine, clock: FixedClock) -> None:
    t0 = clock.now()
    times: list[datetime] = [t0]

    # 1. Found in a door-to-door visit ("四百"大走访) and reported by the grid worker.
    case = open_alley_case(engine)
    assert case.state == "reported"
    assert (case.workflow, case.workflow_version, case.grid) == ("grid_case", 1, GRID)
    assert case.version == 1
    assert case.opened_at == case.updated_at == t0
    assert case.deadline_at == t0 + timedelta(days=1)
    assert case.data == {"title": TITLE, "source": "visit", "address": "长宁支路324弄"}
    assert core_allowed(engine, case.id, secretary) == [
        "mark_duplicate", "note", "reject", "triage"]
    assert core_allowed(engine, case.id, worker) == ["note"]

    # 2. Triaged by the secretary into the problem list (问题清单).
    times.append(clock.advance(timedelta(hours=2)))
    case = engine.fire(case.id, "triage", actor=secretary,
                       payload={"category": "违规堆物、加装地锁", "priority": "normal",
                                "area": "环境秩序"})
    assert case.state == "triaged"
    assert case.data["category"] == "违规堆物、加装地锁"
    assert case.data["priority"] == "normal"
    assert case.data["area"] == "环境秩序"
    assert case.deadline_at == times[-1] + timedelta(days=1)
    assert core_allowed(engine, case.id, secretary) == ["dispatch", "escalate", "note"]

    # 3. The grid joint meeting dispatches four departments on one joint plan.
    times.append(clock.advance(timedelta(hours=20)))
    case = engine.fire(case.id, "dispatch", actor=secretary,
                       payload={"departments": DEPARTMENTS, "plan": PLAN})
    assert case.state == "joint_action"
    assert case.data["departments"] == DEPARTMENTS
    assert case.data["plan"] == PLAN
    assert case.data["done"] == {}
    dispatched_at = times[-1]
    assert case.deadline_at == dispatched_at + timedelta(days=5)

    # 4. Each department reports its part done; the state stays, the deadline too.
    for i, name in enumerate(DEPARTMENTS):
        assert "close" in core_allowed(engine, case.id, secretary)  # allowed, but guarded
        with pytest.raises(GuardRejected, match="departments still working"):
            engine.fire(case.id, "close", actor=secretary)
        times.append(clock.advance(timedelta(hours=6)))
        case = engine.fire(case.id, "report_done", actor=departments[name],
                           payload={"department": name, "result": RESULTS[name]})
        assert case.state == "joint_action"
        # A mapping: its key order is not kept by every store (PostgreSQL JSONB).
        assert set(case.data["done"]) == set(DEPARTMENTS[: i + 1])
        assert case.deadline_at == dispatched_at + timedelta(days=5)
    assert case.data["done"] == RESULTS

    # 5. The secretary verifies and closes (核实结案).
    times.append(clock.advance(timedelta(hours=1)))
    case = engine.fire(case.id, "close", actor=secretary)
    assert case.state == "closed"
    assert case.deadline_at == times[-1] + timedelta(days=30)

    # 6. A volunteer looks back (回头看) a week later...
    times.append(clock.advance(timedelta(days=7)))
    case = engine.fire(case.id, "start_revisit", actor=volunteer)
    assert case.state == "revisit"
    assert case.deadline_at == times[-1] + timedelta(days=7)
    assert core_allowed(engine, case.id, volunteer) == ["confirm", "note", "reopen"]

    # 7. ...and confirms that the alley stays clear (不出格).
    times.append(clock.advance(timedelta(hours=1)))
    case = engine.fire(case.id, "confirm", actor=volunteer,
                       payload={"observation": "小巷畅通整洁，堆物和地锁未反弹"})
    assert case.state == "archived"
    assert case.deadline_at is None
    assert case.data["revisit"] == "passed"
    assert case.updated_at == times[-1]
    assert core_allowed(engine, case.id, secretary) == []

    # The stored case is what fire returned.
    assert engine.get(case.id) == case

    # The full history: who did what, with which payload, chained by hashes.
    history = engine.history(case.id)
    rows = [(e.seq, e.trigger, e.source, e.dest, e.actor.id) for e in history]
    assert rows == [
        (1, "open", None, "reported", worker.id),
        (2, "triage", "reported", "triaged", secretary.id),
        (3, "dispatch", "triaged", "joint_action", secretary.id),
        (4, "report_done", "joint_action", None, "部门-社区管理办"),
        (5, "report_done", "joint_action", None, "部门-城运中心"),
        (6, "report_done", "joint_action", None, "部门-综合执法队"),
        (7, "report_done", "joint_action", None, "部门-清运单位"),
        (8, "close", "joint_action", "closed", secretary.id),
        (9, "start_revisit", "closed", "revisit", volunteer.id),
        (10, "confirm", "revisit", "archived", volunteer.id),
    ]
    assert [e.at for e in history] == times
    assert history[0].payload == {
        "data": {"title": TITLE, "source": "visit", "address": "长宁支路324弄"},
        "grid": GRID, "links": [], "fingerprint": engine.workflow("grid_case", 1).fingerprint,
    }
    assert history[1].payload == {"category": "违规堆物、加装地锁", "priority": "normal",
                                  "area": "环境秩序"}
    assert history[2].payload == {"departments": DEPARTMENTS, "plan": PLAN}
    assert [e.payload for e in history[3:7]] == [
        {"department": d, "result": RESULTS[d]} for d in DEPARTMENTS]
    # The close records the handling deadline in force and that it was met (按期结案).
    assert history[7].payload == {
        "deadline_at": (dispatched_at + timedelta(days=5)).isoformat(), "on_time": True}
    assert history[8].payload == {}
    assert history[9].payload == {"observation": "小巷畅通整洁，堆物和地锁未反弹"}
    assert history[0].actor == worker
    assert {e.actor.roles for e in history[3:7]} == {frozenset({"department"})}
    assert all(e.idempotency_key is None for e in history)
    assert_chain(history, case)
    assert engine.verify(case.id) == case


# -- branches -------------------------------------------------------------------------------


def test_reopen_from_revisit_makes_every_department_report_again(
    engine: Engine, clock: FixedClock
) -> None:
    case = walk_to(engine, clock, "revisit")
    assert case.data["done"] == RESULTS

    clock.advance(timedelta(days=1))
    case = engine.fire(case.id, "reopen", actor=resident,
                       payload={"reason": "地锁又被装回来了"})
    assert case.state == "joint_action"
    assert case.data["done"] == {}
    assert case.data["departments"] == DEPARTMENTS
    assert case.data["reopened"] == 1
    assert case.deadline_at == clock.now() + timedelta(days=5)

    # Rework (返工): closing needs every department again.
    with pytest.raises(GuardRejected, match="社区管理办, 城运中心, 综合执法队, 清运单位"):
        engine.fire(case.id, "close", actor=secretary)
    for name in DEPARTMENTS:
        case = engine.fire(case.id, "report_done", actor=departments[name],
                           payload={"department": name, "result": "返工完成"})
    case = engine.fire(case.id, "close", actor=secretary)
    case = engine.fire(case.id, "start_revisit", actor=secretary)
    case = engine.fire(case.id, "confirm", actor=volunteer, payload={"observation": "已稳定"})
    assert case.state == "archived"
    triggers = [e.trigger for e in engine.history(case.id)]
    assert triggers.count("report_done") == 8
    assert triggers.count("close") == 2
    assert "reopen" in triggers
    assert_chain(engine.history(case.id), case)
    engine.verify(case.id)


def test_escalate_to_the_street_and_dispatch_from_escalated(
    engine: Engine, clock: FixedClock
) -> None:
    case = walk_to(engine, clock, "triaged")
    case = engine.fire(case.id, "escalate", actor=secretary,
                       payload={"reason": "涉及市政道路产权，需街道协调"})
    assert case.state == "escalated"
    assert case.data["escalations"] == 1
    assert case.deadline_at == clock.now() + timedelta(days=5)
    # The street level sees every grid and may dispatch.
    assert core_allowed(engine, case.id, street) == ["dispatch", "note"]
    case = engine.fire(case.id, "dispatch", actor=street,
                       payload={"departments": ["综合执法队", "清运单位"], "plan": "街道统筹方案"})
    assert case.state == "joint_action"
    assert case.data["departments"] == ["综合执法队", "清运单位"]

    # Escalating again out of the joint action, and back.
    case = engine.fire(case.id, "escalate", actor=secretary, payload={"reason": "执法受阻"})
    assert case.state == "escalated"
    assert case.data["escalations"] == 2
    case = engine.fire(case.id, "dispatch", actor=secretary,
                       payload={"departments": DEPARTMENTS, "plan": PLAN})
    assert case.data["done"] == {}
    history = engine.history(case.id)
    assert [(e.trigger, e.source, e.dest) for e in history[-4:]] == [
        ("escalate", "triaged", "escalated"),
        ("dispatch", "escalated", "joint_action"),
        ("escalate", "joint_action", "escalated"),
        ("dispatch", "escalated", "joint_action"),
    ]
    assert history[-3].actor == street
    engine.verify(case.id)


def test_mark_duplicate_links_both_cases(engine: Engine, clock: FixedClock) -> None:
    first = open_alley_case(engine)
    clock.advance(timedelta(hours=1))
    second = engine.open("grid_case", version=1, actor=resident, grid=GRID,
                         data={"title": "324弄小巷被地锁堵住", "source": "resident"})
    clock.advance(timedelta(hours=1))
    second = engine.fire(second.id, "mark_duplicate", actor=secretary,
                         payload={"duplicate_of": first.id})
    assert second.state == "rejected"
    assert second.links == (first.id,)
    assert second.data["duplicate_of"] == first.id
    assert second.deadline_at is None

    first_now = engine.get(first.id)
    assert first_now.links == (second.id,)
    assert first_now.state == "reported"  # a link does not move the other case
    assert first_now.version == 2
    assert first_now.deadline_at == first.deadline_at
    link = engine.history(first.id)[-1]
    assert (link.seq, link.trigger, link.source, link.dest) == (2, "link", "reported", None)
    assert link.payload == {"case": second.id, "via": "mark_duplicate"}
    assert link.actor == secretary
    assert link.at == clock.now()

    assert [c.id for c in engine.linked(first.id)] == [second.id]
    assert [c.id for c in engine.linked(second.id)] == [first.id]
    assert_chain(engine.history(first.id), first_now)
    assert_chain(engine.history(second.id), second)
    engine.verify(first.id)
    engine.verify(second.id)
    # The original goes on normally after being linked.
    first_now = engine.fire(first.id, "triage", actor=secretary,
                            payload={"category": "违规堆物", "priority": "urgent"})
    assert first_now.links == (second.id,)
    engine.verify(first.id)


def test_reassign_replaces_departments_not_yet_done(engine: Engine, clock: FixedClock) -> None:
    case = walk_to(engine, clock, "triaged")
    case = engine.fire(case.id, "dispatch", actor=secretary,
                       payload={"departments": ["社区管理办", "城运中心", "综合执法队"],
                                "plan": PLAN})
    case = engine.fire(case.id, "report_done", actor=departments["社区管理办"],
                       payload={"department": "社区管理办", "result": RESULTS["社区管理办"]})
    case = engine.fire(case.id, "reassign", actor=secretary,
                       payload={"departments": ["清运单位"], "reason": "执法不需要，改派清运"})
    assert case.state == "joint_action"
    # Done departments stay; the others are replaced.
    assert case.data["departments"] == ["社区管理办", "清运单位"]
    assert case.data["done"] == {"社区管理办": RESULTS["社区管理办"]}

    # A replaced department may no longer report.
    with pytest.raises(GuardRejected, match="was not dispatched"):
        engine.fire(case.id, "report_done", actor=departments["城运中心"],
                    payload={"department": "城运中心", "result": "x"})
    with pytest.raises(GuardRejected, match="清运单位"):
        engine.fire(case.id, "close", actor=secretary)
    case = engine.fire(case.id, "report_done", actor=departments["清运单位"],
                       payload={"department": "清运单位", "result": RESULTS["清运单位"]})
    case = engine.fire(case.id, "close", actor=secretary)
    assert case.state == "closed"
    assert [e.trigger for e in engine.history(case.id)][-5:] == [
        "dispatch", "report_done", "reassign", "report_done", "close"]
    engine.verify(case.id)


def test_reassign_keeps_a_done_department_named_again(engine: Engine, clock: FixedClock) -> None:
    case = walk_to(engine, clock, "triaged")
    case = engine.fire(case.id, "dispatch", actor=secretary,
                       payload={"departments": ["社区管理办", "城运中心"], "plan": PLAN})
    case = engine.fire(case.id, "report_done", actor=departments["社区管理办"],
                       payload={"department": "社区管理办", "result": "ok"})
    case = engine.fire(case.id, "reassign", actor=secretary,
                       payload={"departments": ["社区管理办", "清运单位"]})
    assert case.data["departments"] == ["社区管理办", "清运单位"]
    assert case.data["done"] == {"社区管理办": "ok"}


def test_reject_ends_the_case(engine: Engine) -> None:
    case = open_alley_case(engine)
    case = engine.fire(case.id, "reject", actor=secretary,
                       payload={"reason": "属物业管理范围，转物业处理"})
    assert case.state == "rejected"
    assert case.deadline_at is None
    assert core_allowed(engine, case.id, secretary) == []
    with pytest.raises(InvalidTransition, match=r"\(none: the state is terminal\)"):
        engine.fire(case.id, "note", actor=secretary, payload={"text": "x"})
    engine.verify(case.id)


@pytest.mark.parametrize(
    "state", ["reported", "triaged", "joint_action", "closed", "revisit"])
def test_any_role_may_note_in_any_open_state(
    engine: Engine, clock: FixedClock, state: str
) -> None:
    case = walk_to(engine, clock, state)
    deadline = case.deadline_at
    for actor in (resident, worker, departments["城运中心"], Actor("路人", [], [GRID])):
        case = engine.fire(case.id, "note", actor=actor,
                           payload={"text": f"{actor.id}: 进展说明，等待物业配合"})
        assert case.state == state
        assert case.deadline_at == deadline  # a note does not restart the clock
    engine.verify(case.id)


def test_deadlines_follow_the_state_entered(engine: Engine, clock: FixedClock) -> None:
    expected = {"reported": 1, "triaged": 1, "joint_action": 5, "closed": 30, "revisit": 7}
    for state, days in expected.items():
        case = walk_to(engine, clock, state)
        last_entry = [e for e in engine.history(case.id) if e.dest is not None][-1]
        assert last_entry.dest == state
        assert case.deadline_at == last_entry.at + timedelta(days=days), state


def test_allowed_is_filtered_by_role_and_grid(engine: Engine, clock: FixedClock) -> None:
    case = walk_to(engine, clock, "joint_action")
    assert core_allowed(engine, case.id, secretary) == ["close", "escalate", "note", "reassign"]
    assert core_allowed(engine, case.id, departments["城运中心"]) == ["note", "report_done"]
    assert core_allowed(engine, case.id, resident) == ["note"]
    assert core_allowed(engine, case.id, Actor.system()) == ["escalate", "note"]
    other_grid = Actor("书记-周", ["coordinator"], ["第二综合网格"])
    with pytest.raises(CaseNotVisible):  # to an outsider the case does not exist
        core_allowed(engine, case.id, other_grid)
    both = Actor("书记-周", ["coordinator", "department"], ["第二综合网格", GRID])
    assert core_allowed(engine, case.id, both) == [
        "close", "escalate", "note", "reassign", "report_done"]
    # The whole answer, extensions included, is what the spec says for the state.
    spec = engine.workflow("grid_case", 1)
    for actor in (secretary, resident, both, Actor.system(), departments["城运中心"]):
        expected = sorted({
            t.trigger for t in spec.transitions
            if "joint_action" in t.sources(spec.non_terminal)
            and (not t.roles or set(t.roles) & actor.roles)
        })
        assert engine.allowed(case.id, actor) == expected, actor.id
