"""The timer of ``grid_case@2``: 签收 limits in working time (2 working hours, 30 working
minutes for urgent cases) counted across lunch and a holiday, each unacknowledged
department urged once per breach, the handling limit's 督办 escalating, and the third
failed check escalating; exactly once with two tick workers on PostgreSQL."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

import gridflow
from gridflow import Actor, Engine, Event, FixedClock
from gridflow.store import Store
from gridflow.workflows import grid_case_v2

GRID = "第一综合网格"
DEPARTMENTS = ["社区管理办", "城运中心", "综合执法队", "清运单位"]
worker = Actor("网格员-王", ["grid_worker"], [GRID])
secretary = Actor("书记-李", ["coordinator"], [GRID])
inspector = Actor("监督员-周", ["inspector"], [GRID])
dept = Actor("部门", ["department"], grids=gridflow.ALL_GRIDS)


def shanghai(y: int, m: int, d: int, hh: int, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh - 8, mm, tzinfo=UTC) if hh >= 8 else \
        datetime(y, m, d, hh, mm, tzinfo=UTC) - timedelta(hours=8)


def new_engine(store: Store, at: datetime) -> tuple[Engine, FixedClock]:
    clock = FixedClock(at)
    return Engine(store=store, clock=clock, plugins=[grid_case_v2.PLUGIN],
                  entry_points=False), clock


def dispatched(engine: Engine, priority: str = "normal") -> str:
    case = engine.open("grid_case", actor=worker, grid=GRID, version=2,
                       data={"title": "长宁支路324弄违规堆物", "source": "visit"})
    engine.fire(case.id, "triage", actor=secretary,
                payload={"category": "违规堆物", "priority": priority})
    engine.fire(case.id, "dispatch", actor=secretary,
                payload={"departments": DEPARTMENTS, "plan": "联合整治"})
    return case.id


def urges(engine: Engine, case_id: str) -> list[Event]:
    return [e for e in engine.history(case_id) if e.trigger == "urge"]


def test_unacknowledged_departments_are_urged_once_across_lunch(store: Store) -> None:
    # Monday 2026-03-02 11:30 in Shanghai: 30 minutes before lunch, 90 after it.
    engine, clock = new_engine(store, shanghai(2026, 3, 2, 11, 30))
    cid = dispatched(engine)
    due = shanghai(2026, 3, 2, 15, 0)
    assert engine.get(cid).deadline_at == due
    engine.fire(cid, "acknowledge", actor=dept, payload={"department": "社区管理办"})
    clock.set(due - timedelta(seconds=1))
    assert engine.tick() == []
    clock.set(due)
    [event] = engine.tick()
    assert (event.trigger, event.actor.id) == ("urge", "system")
    assert event.payload["departments"] == sorted(DEPARTMENTS[1:])
    case = engine.get(cid)
    assert case.state == "joint_action"
    assert case.data["urged"] == {d: 1 for d in DEPARTMENTS[1:]}
    # Once per breach: the deadline moved on to the handling limit.
    assert case.deadline_at is not None and case.deadline_at > due
    clock.advance(timedelta(hours=1))
    assert engine.tick() == []
    assert len(urges(engine, cid)) == 1
    # A late acknowledgement is recorded as late (按时签收率).
    engine.fire(cid, "acknowledge", actor=dept, payload={"department": "城运中心"})
    assert engine.history(cid)[-1].payload["on_time"] is False
    engine.verify(cid)


def test_urgent_limit_is_30_working_minutes_across_national_day(store: Store) -> None:
    # Tuesday 2025-09-30 17:15: 15 working minutes left before 国庆 (Oct 1-8).
    engine, clock = new_engine(store, shanghai(2025, 9, 30, 17, 15))
    cid = dispatched(engine, priority="urgent")
    due = shanghai(2025, 10, 9, 9, 15)
    assert engine.get(cid).deadline_at == due
    clock.set(shanghai(2025, 10, 8, 12, 0))
    assert engine.tick() == []
    clock.set(due)
    [event] = engine.tick()
    assert event.trigger == "urge" and event.payload["departments"] == sorted(DEPARTMENTS)
    assert engine.tick() == []
    engine.verify(cid)


def test_the_handling_limit_passing_escalates_by_urging(store: Store) -> None:
    engine, clock = new_engine(store, shanghai(2026, 3, 2, 9, 0))
    cid = dispatched(engine, priority="urgent")
    for d in DEPARTMENTS:
        engine.fire(cid, "acknowledge", actor=dept, payload={"department": d})
    handling = datetime.fromisoformat(engine.get(cid).data["handling_due"])
    assert engine.get(cid).deadline_at == handling
    clock.set(handling)
    [event] = engine.tick()
    assert event.trigger == "urge" and engine.get(cid).state == "escalated"
    assert engine.get(cid).data["urged"] == {d: 1 for d in DEPARTMENTS}
    engine.verify(cid)


def _work(engines: list[Engine]) -> list[list[Event]]:
    results: list[list[Event]] = [[] for _ in engines]
    barrier = threading.Barrier(len(engines))

    def work(index: int) -> None:
        barrier.wait()
        while batch := engines[index].tick(limit=3):
            results[index].extend(batch)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(engines))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.mark.postgres
def test_two_tick_workers_on_postgresql_urge_and_escalate_exactly_once(
    pg_url: str, pg_schema: str
) -> None:
    t0 = shanghai(2026, 3, 2, 11, 30)
    setup = gridflow.SQLStore(pg_url, schema=pg_schema)
    setup.create_schema()
    engine, _clock = new_engine(setup, t0)
    ids = [dispatched(engine) for _ in range(20)]
    # Ten cases fail their check three times: escalated by the third, never by the timer.
    failing = ids[:10]
    for cid in failing:
        for d in DEPARTMENTS:
            engine.fire(cid, "acknowledge", actor=dept, payload={"department": d})
        for _ in range(3):
            for d in DEPARTMENTS:
                engine.fire(cid, "report_done", actor=dept,
                            payload={"department": d, "result": "ok"})
            engine.fire(cid, "submit_check", actor=secretary)
            engine.fire(cid, "fail_check", actor=inspector, payload={"reason": "未整改到位"})
        assert engine.get(cid).state == "escalated"
    at = shanghai(2026, 3, 2, 15, 0)
    stores = [gridflow.SQLStore(pg_url, schema=pg_schema) for _ in range(2)]
    engines = [Engine(store=s, clock=FixedClock(at), plugins=[grid_case_v2.PLUGIN],
                      entry_points=False) for s in stores]
    results = _work(engines)
    fired = Counter(e.case_id for batch in results for e in batch)
    assert set(fired) == set(ids[10:]) and set(fired.values()) == {1}
    for cid in ids:
        history = [e.trigger for e in setup.events(cid)]
        assert history.count("urge") == (0 if cid in failing else 1), cid
        assert history.count("fail_check") == (3 if cid in failing else 0)
        engine.verify(cid)
    for s in (*stores, setup):
        s.close()


def test_without_chinese_calendar_the_default_workflow_still_runs_and_says_so(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # grid_case@2 is what `open` takes by default: a core install (no gridflow[china])
    # must run it, counting Monday to Friday, with one warning naming the extra.
    import sys

    monkeypatch.setitem(sys.modules, "chinese_calendar", None)  # import raises ImportError
    monkeypatch.setattr(grid_case_v2, "_HOURS", None)
    # 17:15 on Tuesday 30 Sep 2025 (Shanghai), urgent: 30 working minutes of 签收.
    dispatched = datetime(2025, 9, 30, 9, 15, tzinfo=UTC)
    with pytest.warns(RuntimeWarning, match=r"gridflow\[china\]"):
        hours = grid_case_v2._hours()
    # Without the holiday calendar, 1 October (国庆) counts as a working day: 09:15.
    assert hours.add(dispatched, grid_case_v2.ACK_LIMIT_URGENT) == datetime(
        2025, 10, 1, 1, 15, tzinfo=UTC)
    assert grid_case_v2._hours() is hours  # said once
    monkeypatch.setattr(grid_case_v2, "_HOURS", None)
    monkeypatch.delitem(sys.modules, "chinese_calendar")
    # With it (the dev install), the same limit ends after the holiday, on 9 October.
    assert grid_case_v2._hours().add(dispatched, grid_case_v2.ACK_LIMIT_URGENT) == datetime(
        2025, 10, 9, 1, 15, tzinfo=UTC)


def test_an_approved_extension_moves_the_handling_limit(store: Store) -> None:
    # An extension (延期) moved the case's deadline but not data["handling_due"]: the
    # next acknowledgement put the deadline back to the old limit, the timer escalated
    # there, and pass_check recorded on_time False for work handed over in time.
    engine, clock = new_engine(store, shanghai(2026, 3, 2, 9, 0))
    cid = dispatched(engine)
    for d in DEPARTMENTS[:3]:
        engine.fire(cid, "acknowledge", actor=dept, payload={"department": d})
    handling = datetime.fromisoformat(engine.get(cid).data["handling_due"])
    until = handling + timedelta(days=7)
    engine.fire(cid, "request_extension", actor=dept,
                payload={"reason": "需物业配合", "until": until.isoformat()})
    engine.fire(cid, "approve_extension", actor=secretary)
    assert engine.get(cid).data["handling_due"] == until.isoformat()
    engine.fire(cid, "acknowledge", actor=dept, payload={"department": DEPARTMENTS[3]})
    assert engine.get(cid).deadline_at == until
    clock.set(handling + timedelta(days=1))
    assert engine.tick() == []
    for d in DEPARTMENTS:
        engine.fire(cid, "report_done", actor=dept, payload={"department": d, "result": "已处置"})
    engine.fire(cid, "submit_check", actor=secretary)
    case = engine.fire(cid, "pass_check", actor=inspector, payload={"observation": "已整改"})
    assert case.state == "closed"
    closing = engine.history(cid)[-1]
    assert closing.payload["deadline_at"] == until.isoformat()
    assert closing.payload["on_time"] is True
    engine.verify(cid)
