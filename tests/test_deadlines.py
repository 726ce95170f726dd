"""Deadlines: the built-in grid_case defaults, plugin overrides, and extensions (延期)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import gridflow
from gridflow import (
    Actor,
    CalendarError,
    Case,
    Engine,
    FixedClock,
    GuardRejected,
    MemoryStore,
    PermissionDenied,
    StateSpec,
    WorkingDays,
)
from gridflow.workflows.grid_case import JOINT_ACTION_DAYS, REVISIT_AFTER

SHANGHAI = ZoneInfo("Asia/Shanghai")
GRID = "华三-1"
worker = Actor("网格员-王", ["grid_worker"], [GRID])
secretary = Actor("书记-李", ["coordinator"], [GRID])
dept = Actor("部门-清运单位", ["department"], grids=gridflow.ALL_GRIDS)
street = Actor("街道-赵", ["street"], grids=gridflow.ALL_GRIDS)
resident = Actor("居民-陈", ["resident"], [GRID])

# 15:30 Beijing time on Friday 26 September 2025, the Friday before National Day.
FRIDAY_2025 = datetime(2025, 9, 26, 7, 30, tzinfo=UTC)
# 10:00 Beijing time on Friday 25 September 2026 (itself a Mid-autumn holiday).
FRIDAY_2026 = datetime(2026, 9, 25, 2, 0, tzinfo=UTC)


def end_of(y: int, m: int, d: int) -> datetime:
    """24:00 Beijing time of that day, in UTC."""
    return (datetime(y, m, d, tzinfo=SHANGHAI) + timedelta(days=1)).astimezone(UTC)


def make_engine(start: datetime, calendar: gridflow.Calendar | None = None,
                plugins: tuple[object, ...] = ()) -> tuple[Engine, FixedClock]:
    clock = FixedClock(start)
    engine = Engine(store=MemoryStore(), clock=clock, calendar=calendar, plugins=plugins,
                    entry_points=False)
    return engine, clock


def dispatched(engine: Engine, priority: str = "normal", **triage: Any) -> Case:
    case = engine.open("grid_case", version=1, actor=worker, grid=GRID,
                       data={"title": "弄堂违规堆物", "source": "visit"})
    engine.fire(case.id, "triage", actor=secretary,
                payload={"category": "违规堆物", "priority": priority, **triage})
    return engine.fire(case.id, "dispatch", actor=secretary,
                       payload={"departments": ["清运单位"], "plan": "清运堆物"})


def closed(engine: Engine) -> Case:
    case = dispatched(engine)
    engine.fire(case.id, "report_done", actor=dept,
                payload={"department": "清运单位", "result": "已清运"})
    return engine.fire(case.id, "close", actor=secretary)


# -- the Friday before National Day --------------------------------------------------------


@pytest.mark.parametrize(
    ("priority", "due"),
    [("urgent", (2025, 9, 28)), ("normal", (2025, 10, 10)), ("low", (2025, 10, 23))],
)
def test_dispatch_before_national_day_2025(priority: str, due: tuple[int, int, int]) -> None:
    # Oct 1-8 are skipped; Sunday Sep 28 and Saturday Oct 11 are worked (调休).
    engine, _ = make_engine(FRIDAY_2025, WorkingDays.china())
    case = dispatched(engine, priority)
    assert case.state == "joint_action"
    assert case.deadline_at == end_of(*due)


@pytest.mark.parametrize(
    ("priority", "due"),
    [("urgent", (2026, 9, 28)), ("normal", (2026, 10, 9)), ("low", (2026, 10, 22))],
)
def test_dispatch_before_national_day_2026(priority: str, due: tuple[int, int, int]) -> None:
    # As chinese-calendar has it: Sep 25-27 and Oct 1-7 off, Saturday Oct 10 worked.
    engine, _ = make_engine(FRIDAY_2026, WorkingDays.china())
    assert dispatched(engine, priority).deadline_at == end_of(*due)


def test_the_low_class_counts_the_make_up_saturday() -> None:
    cal = WorkingDays.china()
    engine, _ = make_engine(FRIDAY_2025, cal)
    due = dispatched(engine, "low").deadline_at
    assert due is not None
    days = [cal.nth_working_day(FRIDAY_2025, n) for n in range(1, 16)]
    assert datetime(2025, 10, 11).date() in days  # Saturday, worked
    assert days[-1] == cal.local_date(due - timedelta(microseconds=1))


def test_with_the_default_calendar_the_classes_are_calendar_days() -> None:
    engine, _ = make_engine(FRIDAY_2025)
    for priority, days in JOINT_ACTION_DAYS.items():
        assert dispatched(engine, priority).deadline_at == FRIDAY_2025 + timedelta(days=days)


def test_other_states_keep_the_spec_deadlines_counted_by_the_calendar() -> None:
    cal = WorkingDays.china()
    engine, _ = make_engine(FRIDAY_2025, cal)
    case = engine.open("grid_case", version=1, actor=worker, grid=GRID,
                       data={"title": "井盖缺失", "source": "visit"})
    assert case.deadline_at == end_of(2025, 9, 28)  # reported: 1 working day
    case = engine.fire(case.id, "triage", actor=secretary,
                       payload={"category": "井盖", "priority": "urgent"})
    assert case.deadline_at == end_of(2025, 9, 28)  # triaged: 1 working day


def test_revisit_is_thirty_calendar_days_after_closing_even_in_working_days() -> None:
    engine, _ = make_engine(FRIDAY_2025, WorkingDays.china())
    case = closed(engine)
    assert case.state == "closed"
    assert case.deadline_at == FRIDAY_2025 + REVISIT_AFTER == FRIDAY_2025 + timedelta(days=30)


def test_a_date_the_calendar_does_not_know_refuses_the_step_and_stores_nothing() -> None:
    cal = WorkingDays.china()
    # 08:00 on the last day it knows: one working day later is a day it does not know.
    late = datetime.combine(cal.covers[1], datetime.min.time(), UTC)
    store = MemoryStore()
    engine = Engine(store=store, clock=FixedClock(late), calendar=cal, entry_points=False)
    with pytest.raises(CalendarError, match="outside the dates"):
        engine.open("grid_case", version=1,
                    actor=worker, grid=GRID, data={"title": "t", "source": "visit"})
    assert len(store) == 0


# -- overriding the defaults ----------------------------------------------------------------


class TwoDaysForUrgent:
    @gridflow.hookimpl
    def gridflow_deadline(self, case: Case, state: StateSpec) -> timedelta | None:
        if state.name == "joint_action" and case.data.get("priority") == "urgent":
            return timedelta(days=2)
        return None


def test_a_plugin_overrides_the_built_in_default_and_none_falls_through() -> None:
    engine, _ = make_engine(FRIDAY_2025, WorkingDays.china(), plugins=(TwoDaysForUrgent(),))
    assert dispatched(engine, "urgent").deadline_at == end_of(2025, 9, 29)
    assert dispatched(engine, "low").deadline_at == end_of(2025, 10, 23)  # built-in still


class LateSaturday:
    @gridflow.hookimpl
    def gridflow_deadline(self, case: Case, state: StateSpec) -> datetime | None:
        return datetime(2025, 10, 11, 10, tzinfo=UTC) if state.name == "joint_action" else None


def test_a_plugin_may_fix_an_absolute_deadline() -> None:
    engine, _ = make_engine(FRIDAY_2025, WorkingDays.china(), plugins=(LateSaturday(),))
    assert dispatched(engine).deadline_at == datetime(2025, 10, 11, 10, tzinfo=UTC)


class PermitRules:
    @gridflow.hookimpl
    def gridflow_workflows(self) -> list[gridflow.WorkflowSpec]:
        return [gridflow.WorkflowSpec.from_dict({
            "name": "permit", "version": 1, "initial": "applied",
            "states": [{"name": "applied", "deadline": 3 * 86400}, {"name": "done",
                                                                  "terminal": True}],
            "transitions": [{"trigger": "grant", "source": "applied", "dest": "done"}]})]

    @gridflow.hookimpl
    def gridflow_deadline_rules(self) -> dict[str, gridflow.plugins.DeadlineRule]:
        def rule(state: StateSpec, data: Any, now: datetime) -> timedelta | None:
            return timedelta(days=20) if data.get("big") else None
        return {"permit": rule}


def test_a_third_party_workflow_registers_its_own_default_rule() -> None:
    engine, _ = make_engine(FRIDAY_2025, plugins=(PermitRules(),))
    big = engine.open("permit", actor=worker, grid=GRID, data={"big": True})
    small = engine.open("permit", actor=worker, grid=GRID, data={})
    assert big.deadline_at == FRIDAY_2025 + timedelta(days=20)
    assert small.deadline_at == FRIDAY_2025 + timedelta(days=3)
    assert "grid_case" in engine.deadline_rules and "permit" in engine.deadline_rules


# -- extensions (延期) ------------------------------------------------------------------------


def test_extension_requested_approved_moves_the_deadline_and_is_in_history() -> None:
    engine, clock = make_engine(FRIDAY_2025, WorkingDays.china())
    case = dispatched(engine)
    assert case.deadline_at == end_of(2025, 10, 10)
    clock.advance(timedelta(days=10))
    until = "2025-10-18T00:00:00+08:00"  # the end of Friday 17 October, Beijing time
    case = engine.fire(case.id, "request_extension", actor=dept,
                       payload={"reason": "堆物量大，需分批清运", "until": until})
    assert case.deadline_at == end_of(2025, 10, 10)  # only a request so far
    request = case.data["extension_request"]
    assert request["by"] == dept.id and request["reason"] == "堆物量大，需分批清运"
    assert request["until"] == end_of(2025, 10, 17).isoformat()
    case = engine.fire(case.id, "approve_extension", actor=secretary)
    assert case.state == "joint_action"
    assert case.deadline_at == end_of(2025, 10, 17)
    assert case.data["extensions"] == 1
    assert case.data["extended_until"] == end_of(2025, 10, 17).isoformat()
    assert "extension_request" not in case.data
    triggers = [e.trigger for e in engine.history(case.id)]
    assert triggers[-2:] == ["request_extension", "approve_extension"]
    assert engine.history(case.id)[-2].payload["reason"] == "堆物量大，需分批清运"
    engine.verify(case.id)


def test_the_approver_may_grant_less_and_extensions_are_counted() -> None:
    engine, _ = make_engine(FRIDAY_2025, WorkingDays.china())
    case = dispatched(engine)
    for n, (asked, granted) in enumerate([
        ("2025-10-20T16:00:00+00:00", "2025-10-15T16:00:00+00:00"),
        ("2025-10-30T16:00:00+00:00", None),
    ], start=1):
        engine.fire(case.id, "request_extension", actor=dept,
                    payload={"reason": "材料未齐", "until": asked})
        payload = {"until": granted} if granted else {}
        case = engine.fire(case.id, "approve_extension", actor=secretary, payload=payload)
        assert case.data["extensions"] == n
        assert case.deadline_at == datetime.fromisoformat(granted or asked)


def test_an_extension_can_be_refused() -> None:
    engine, _ = make_engine(FRIDAY_2025)
    case = dispatched(engine)
    engine.fire(case.id, "request_extension", actor=dept,
                payload={"reason": "r", "until": "2025-12-01T00:00:00+08:00"})
    case = engine.fire(case.id, "reject_extension", actor=secretary,
                       payload={"reason": "工作量不大，按期完成"})
    assert "extension_request" not in case.data
    assert case.deadline_at == FRIDAY_2025 + timedelta(days=5)
    assert "extensions" not in case.data
    with pytest.raises(GuardRejected, match="no extension request is pending"):
        engine.fire(case.id, "approve_extension", actor=secretary)


@pytest.mark.parametrize(
    ("until", "message"),
    [
        ("2025-10-20", "UTC offset"),
        ("next week", "UTC offset"),
        (20251020, "UTC offset"),
        ("2025-09-01T00:00:00+08:00", "not in the future"),
        ("2025-09-30T00:00:00+08:00", "not later than the current deadline"),
    ],
)
def test_bad_requests_are_refused_and_store_nothing(until: object, message: str) -> None:
    engine, _ = make_engine(FRIDAY_2025)
    case = dispatched(engine)
    with pytest.raises(GuardRejected, match=message):
        engine.fire(case.id, "request_extension", actor=dept,
                    payload={"reason": "r", "until": until})
    assert engine.get(case.id) == case


def test_who_may_request_and_approve() -> None:
    engine, _ = make_engine(FRIDAY_2025)
    case = dispatched(engine)
    payload = {"reason": "r", "until": "2025-12-01T00:00:00+08:00"}
    with pytest.raises(PermissionDenied):
        engine.fire(case.id, "request_extension", actor=resident, payload=payload)
    engine.fire(case.id, "request_extension", actor=dept, payload=payload)
    with pytest.raises(PermissionDenied):
        engine.fire(case.id, "approve_extension", actor=dept)
    assert "approve_extension" in engine.allowed(case.id, secretary)
    assert engine.fire(case.id, "approve_extension", actor=street).data["extensions"] == 1


def test_approve_needs_a_request_made_in_the_current_state() -> None:
    engine, _ = make_engine(FRIDAY_2025)
    case = dispatched(engine)
    engine.fire(case.id, "request_extension", actor=dept,
                payload={"reason": "r", "until": "2025-12-01T00:00:00+08:00"})
    engine.fire(case.id, "escalate", actor=secretary, payload={"reason": "跨网格"})
    with pytest.raises(GuardRejected, match="no extension request is pending in state "
                                            "'escalated'"):
        engine.fire(case.id, "approve_extension", actor=street)


def test_extensions_only_while_the_case_is_being_handled() -> None:
    engine, _ = make_engine(FRIDAY_2025)
    case = engine.open("grid_case", version=1, actor=worker, grid=GRID,
                       data={"title": "t", "source": "visit"})
    assert "request_extension" not in engine.allowed(case.id, secretary)
    case = dispatched(engine)
    assert {"request_extension", "approve_extension", "reject_extension"} <= set(
        engine.allowed(case.id, secretary))
