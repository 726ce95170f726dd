"""``grid_case@2`` on the alley case (长宁支路324弄): 签收, 退单, 催办, 核查, 满意度, 挂账.

Every test runs on each store (memory, SQLite, PostgreSQL) through ``engine2``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gridflow import (
    ALL_GRIDS,
    Actor,
    Case,
    Engine,
    FixedClock,
    GuardRejected,
    InvalidTransition,
    MemoryStore,
    metrics,
)
from gridflow.store import Store
from gridflow.workflows import grid_case_v2
from gridflow.workflows.grid_case_v2 import GRID_CASE_V2

GRID = "第一综合网格"
DEPARTMENTS = ["社区管理办", "城运中心", "综合执法队", "清运单位"]
TITLE = "长宁支路324弄附近无名小巷违规堆物、加装地锁"
PLAN = "联合整治工作方案：清运堆物、拆除地锁、执法告知、城运中心跟踪"

worker = Actor("网格员-王", ["grid_worker"], [GRID])
secretary = Actor("书记-李", ["coordinator"], [GRID])
volunteer = Actor("志愿者-张", ["volunteer"], [GRID])
resident = Actor("居民-陈", ["resident"], [GRID])
inspector = Actor("监督员-周", ["inspector"], [GRID])
street = Actor("街道-赵", ["street"], grids=ALL_GRIDS)
dept = Actor("部门", ["department"], grids=ALL_GRIDS)

#: Monday 2026-03-02 09:00 in Shanghai.
T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def engine2(store: Store, clock: FixedClock) -> Iterator[Engine]:
    yield Engine(store=store, clock=clock, plugins=[grid_case_v2.PLUGIN], entry_points=False)


def open_case(engine: Engine, **data: Any) -> Case:
    return engine.open("grid_case", actor=worker, grid=GRID, version=2,
                       data={"title": TITLE, "source": "visit", **data})


def dispatched(engine: Engine, departments: list[str] | None = None,
               priority: str = "normal") -> Case:
    case = open_case(engine)
    engine.fire(case.id, "triage", actor=secretary,
                payload={"category": "违规堆物", "priority": priority})
    return engine.fire(case.id, "dispatch", actor=secretary,
                       payload={"departments": departments or DEPARTMENTS, "plan": PLAN})


def all_done(engine: Engine, case: Case, departments: list[str] | None = None) -> Case:
    for d in departments or DEPARTMENTS:
        case = engine.fire(case.id, "report_done", actor=dept,
                           payload={"department": d, "result": f"{d}已处置"})
    return case


def test_the_spec_has_every_trigger_of_the_issue_with_labels() -> None:
    triggers = {t.trigger for t in GRID_CASE_V2.transitions}
    assert {"acknowledge", "return_task", "urge", "submit_check", "pass_check", "fail_check",
            "rate", "park", "resume"} <= triggers
    assert "close" not in triggers
    for t in GRID_CASE_V2.transitions:
        assert t.label_zh and t.label_en, t.trigger
    assert GRID_CASE_V2.version == 2
    from gridflow.workflows import ROLES
    assert ROLES["inspector"] == ("监督员", "Inspector")


def test_alley_case_through_every_new_step(engine2: Engine, clock: FixedClock) -> None:
    e = engine2
    case = dispatched(e)
    assert (case.state, case.workflow_version) == ("joint_action", 2)
    # 签收 by three departments; 清运单位 sends the task back (退单) as misrouted.
    for d in DEPARTMENTS[:3]:
        clock.advance(timedelta(minutes=10))
        case = e.fire(case.id, "acknowledge", actor=dept, payload={"department": d})
    ack = e.history(case.id)[-1]
    assert ack.payload["on_time"] is True and ack.payload["due_at"]
    case = e.fire(case.id, "return_task", actor=dept,
                  payload={"department": "清运单位", "reason": "非本单位职责，应由物业负责"})
    assert case.state == "joint_action"
    assert case.data["departments"] == DEPARTMENTS[:3]
    assert case.data["returned"] == {"清运单位": 1}
    # The secretary urges (催办) one department, then reassigns the cleaning unit back.
    case = e.fire(case.id, "urge", actor=secretary,
                  payload={"text": "请尽快处置", "department": "城运中心"})
    assert case.data["urged"] == {"城运中心": 1}
    case = e.fire(case.id, "reassign", actor=secretary, payload={"departments": DEPARTMENTS})
    case = e.fire(case.id, "acknowledge", actor=dept, payload={"department": "清运单位"})
    # 挂账 while waiting for the property company, then resume.
    case = e.fire(case.id, "park", actor=secretary,
                  payload={"reason": "需物业配合清运", "plan": "下周一联合清运"})
    assert case.state == "parked"
    case = e.fire(case.id, "urge", actor=street, payload={"text": "街道督办"})
    case = e.fire(case.id, "resume", actor=secretary)
    assert case.state == "joint_action" and "parked" not in case.data
    case = all_done(e, case)
    case = e.fire(case.id, "submit_check", actor=secretary)
    assert case.state == "verifying"
    # 核查不通过: rework; acknowledgements stay, every department reports again.
    case = e.fire(case.id, "fail_check", actor=inspector, payload={"reason": "地锁仍有2个未拆"})
    assert case.state == "joint_action" and case.data["done"] == {}
    assert set(case.data["acknowledged"]) == set(DEPARTMENTS)
    case = all_done(e, case)
    case = e.fire(case.id, "submit_check", actor=secretary)
    clock.advance(timedelta(hours=1))
    case = e.fire(case.id, "pass_check", actor=inspector, payload={"observation": "现场已整改"})
    assert case.state == "closed"
    closing = e.history(case.id)[-1]
    assert closing.payload["on_time"] is True and closing.payload["deadline_at"]
    # 满意度回访: once per case.
    case = e.fire(case.id, "rate", actor=resident, payload={"satisfaction": "satisfied"})
    assert case.data["satisfaction"] == "satisfied"
    case = e.fire(case.id, "start_revisit", actor=volunteer)
    case = e.fire(case.id, "confirm", actor=volunteer, payload={"observation": "未反弹"})
    assert case.state == "archived"
    triggers = [ev.trigger for ev in e.history(case.id)]
    assert triggers == [
        "open", "triage", "dispatch", "acknowledge", "acknowledge", "acknowledge",
        "return_task", "urge", "reassign", "acknowledge", "park", "urge", "resume",
        *["report_done"] * 4, "submit_check", "fail_check", *["report_done"] * 4,
        "submit_check", "pass_check", "rate", "start_revisit", "confirm"]
    assert case.data["checks"] == 2 and case.data["checks_failed"] == 1
    e.verify(case.id)
    # The figures of the closed loop on this one case.
    [row] = metrics.closed_loop(e.store, since=T0, until=T0 + timedelta(days=60),
                                by=None).values()
    assert (row.acknowledged, row.acknowledged_on_time, row.returned) == (4, 4, 1)
    assert (row.ack_on_time_rate, row.return_rate) == (1.0, 1 / 5)
    assert (row.first_pass_rate, row.rework_rate, row.satisfaction_rate) == (0.0, 0.5, 1.0)
    assert (row.parked, row.urged, row.recurrence_rate) == (1, 2, 0.0)


def test_return_task_by_the_last_department_goes_back_to_triage(engine2: Engine) -> None:
    case = dispatched(engine2, ["清运单位"])
    case = engine2.fire(case.id, "return_task", actor=dept,
                        payload={"department": "清运单位", "reason": "非本单位职责"})
    assert case.state == "triaged" and case.data["departments"] == []
    engine2.verify(case.id)


def test_dissatisfied_flags_and_does_not_reopen(engine2: Engine) -> None:
    case = all_done(engine2, _acked(engine2, dispatched(engine2)))
    engine2.fire(case.id, "submit_check", actor=secretary)
    engine2.fire(case.id, "pass_check", actor=inspector, payload={"observation": "ok"})
    case = engine2.fire(case.id, "rate", actor=resident, payload={"satisfaction": "dissatisfied"})
    assert case.state == "closed" and case.data["dissatisfied"] is True


def test_third_failed_check_escalates_to_the_street(engine2: Engine) -> None:
    case = _acked(engine2, dispatched(engine2))
    for i in range(3):
        case = all_done(engine2, case)
        engine2.fire(case.id, "submit_check", actor=secretary)
        case = engine2.fire(case.id, "fail_check", actor=inspector,
                            payload={"reason": f"第{i + 1}次核查不通过"})
        assert case.state == ("escalated" if i == 2 else "joint_action")
    assert case.data["checks_failed"] == 3 and case.data["escalations"] == 1
    engine2.verify(case.id)


def _acked(engine: Engine, case: Case) -> Case:
    for d in case.data["departments"]:
        case = engine.fire(case.id, "acknowledge", actor=dept, payload={"department": d})
    return case


# -- refusals: nothing stored changed ------------------------------------------------------


@pytest.fixture
def mem() -> Engine:
    return Engine(store=MemoryStore(), clock=FixedClock(T0), plugins=[grid_case_v2.PLUGIN],
                  entry_points=False)


def _refused(engine: Engine, case: Case, trigger: str, actor: Actor,
             payload: dict[str, Any] | None, error: type[Exception]) -> str:
    from test_refusals import nothing_stored

    case = engine.get(case.id)
    with nothing_stored(engine, case), pytest.raises(error) as info:
        engine.fire(case.id, trigger, actor=actor, payload=payload)
    return str(info.value)


def test_report_done_before_acknowledge_is_refused(mem: Engine) -> None:
    case = dispatched(mem)
    msg = _refused(mem, case, "report_done", dept,
                   {"department": "城运中心", "result": "x"}, GuardRejected)
    assert "acknowledge" in msg


def test_submit_check_with_a_department_missing_is_refused(mem: Engine) -> None:
    case = all_done(mem, _acked(mem, dispatched(mem)), DEPARTMENTS[:3])
    msg = _refused(mem, case, "submit_check", secretary, None, GuardRejected)
    assert "清运单位" in msg


def test_pass_check_by_a_coordinator_is_refused(mem: Engine) -> None:
    case = all_done(mem, _acked(mem, dispatched(mem)))
    mem.fire(case.id, "submit_check", actor=secretary)
    _refused(mem, case, "pass_check", secretary, {"observation": "ok"}, Exception)


def test_a_second_rate_is_refused(mem: Engine) -> None:
    case = all_done(mem, _acked(mem, dispatched(mem)))
    mem.fire(case.id, "submit_check", actor=secretary)
    mem.fire(case.id, "pass_check", actor=inspector, payload={"observation": "ok"})
    mem.fire(case.id, "rate", actor=resident, payload={"satisfaction": "satisfied"})
    msg = _refused(mem, case, "rate", secretary, {"satisfaction": "dissatisfied"},
                   GuardRejected)
    assert "once per case" in msg


def test_return_task_by_a_department_not_dispatched_is_refused(mem: Engine) -> None:
    case = dispatched(mem, DEPARTMENTS[:2])
    msg = _refused(mem, case, "return_task", dept,
                   {"department": "清运单位", "reason": "x"}, GuardRejected)
    assert "not dispatched" in msg


def test_acknowledge_twice_and_close_are_refused(mem: Engine) -> None:
    case = _acked(mem, dispatched(mem))
    _refused(mem, case, "acknowledge", dept, {"department": "城运中心"}, GuardRejected)
    _refused(mem, case, "close", secretary, None, InvalidTransition)
