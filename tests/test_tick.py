"""The timer: `Engine.tick` acts on every breach once, durably, case by case."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gridflow
from gridflow import (
    Actor,
    Case,
    Engine,
    Event,
    FixedClock,
    MemoryStore,
    TickError,
    WorkingDays,
)
from gridflow.store import Write

GRID = "华三-1"
T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # Monday, 09:00 in Shanghai
worker = Actor("网格员-王", ["grid_worker"], [GRID])
secretary = Actor("书记-李", ["coordinator"], [GRID])
dept = Actor("部门-清运单位", ["department"], grids=gridflow.ALL_GRIDS)


def new_engine(store: gridflow.Store | None = None, clock: FixedClock | None = None,
               **kw: Any) -> tuple[Engine, FixedClock]:
    clock = clock or FixedClock(T0)
    store = MemoryStore() if store is None else store  # an empty store is falsy
    return Engine(store=store, clock=clock, entry_points=False, **kw), clock


def reported(engine: Engine) -> Case:
    return engine.open("grid_case", version=1, actor=worker, grid=GRID,
                       data={"title": "弄堂违规堆物", "source": "visit"})


def dispatched(engine: Engine, priority: str = "normal") -> Case:
    case = reported(engine)
    engine.fire(case.id, "triage", actor=secretary,
                payload={"category": "违规堆物", "priority": priority})
    return engine.fire(case.id, "dispatch", actor=secretary,
                       payload={"departments": ["清运单位"], "plan": "清运"})


def close(engine: Engine, case: Case) -> Case:
    engine.fire(case.id, "report_done", actor=dept,
                payload={"department": "清运单位", "result": "已清运"})
    return engine.fire(case.id, "close", actor=secretary)


# -- on_breach ----------------------------------------------------------------------------------


def test_tick_escalates_an_overdue_joint_action_exactly_once(store: gridflow.Store) -> None:
    engine, clock = new_engine(store)
    case = dispatched(engine)
    assert case.deadline_at == T0 + timedelta(days=5)
    clock.advance(timedelta(days=5) - timedelta(seconds=1))
    assert engine.tick() == []  # not yet
    clock.advance(timedelta(seconds=1))
    events = engine.tick()
    assert [(e.case_id, e.trigger, e.source, e.dest) for e in events] == [
        (case.id, "escalate", "joint_action", "escalated")]
    event = events[0]
    assert event.actor == Actor.system()
    assert event.payload["deadline_at"] == (T0 + timedelta(days=5)).isoformat()
    assert "超期" in event.payload["reason"]
    case = engine.get(case.id)
    assert case.state == "escalated" and case.data["escalations"] == 1
    assert case.deadline_at == clock.now() + timedelta(days=5)  # escalated's own deadline
    assert engine.tick() == []  # the second tick does nothing
    assert [e.trigger for e in engine.history(case.id)].count("escalate") == 1
    engine.verify(case.id)


def test_revisit_starts_by_itself_thirty_days_after_closing(store: gridflow.Store) -> None:
    engine, clock = new_engine(store, calendar=WorkingDays.china())
    case = close(engine, dispatched(engine))
    closed_at = clock.now()
    assert case.deadline_at == closed_at + timedelta(days=30)
    clock.set(closed_at + timedelta(days=29, hours=23))
    assert engine.tick() == []
    clock.set(closed_at + timedelta(days=30))
    [event] = engine.tick()
    assert (event.trigger, event.dest, event.actor.id) == ("start_revisit", "revisit", "system")
    assert engine.get(case.id).state == "revisit"
    assert engine.tick() == []
    engine.verify(case.id)


def test_tick_with_an_explicit_now() -> None:
    engine, _ = new_engine()
    case = dispatched(engine)
    assert engine.tick(now=T0 + timedelta(days=4)) == []
    assert [e.case_id for e in engine.tick(now=T0 + timedelta(days=6))] == [case.id]


# -- overdue without on_breach --------------------------------------------------------------------


def test_a_breach_without_on_breach_is_marked_overdue_once(store: gridflow.Store) -> None:
    engine, clock = new_engine(store)
    case = reported(engine)  # reported: 1 day, no on_breach
    deadline = case.deadline_at
    assert deadline == T0 + timedelta(days=1)
    clock.advance(timedelta(days=2))
    [event] = engine.tick()
    assert (event.trigger, event.source, event.dest) == ("overdue", "reported", None)
    assert event.payload == {"state": "reported", "deadline_at": deadline.isoformat()}
    marked = engine.get(case.id)
    assert marked.state == "reported" and marked.version == 2
    assert marked.deadline_at is None  # nothing left for the timer in this state
    assert marked.data["overdue_since"] == deadline.isoformat()
    for _ in range(3):
        clock.advance(timedelta(hours=1))
        assert engine.tick() == []
    engine.verify(case.id)  # verify accepts the engine's own overdue event
    # Entering the next state replaces the missed deadline: the mark goes, the timer is armed.
    case = engine.fire(case.id, "triage", actor=secretary,
                       payload={"category": "违规堆物", "priority": "normal"})
    assert "overdue_since" not in case.data
    assert case.deadline_at == clock.now() + timedelta(days=1)
    engine.verify(case.id)


def test_an_approved_extension_clears_the_overdue_mark_and_rearms_the_timer() -> None:
    engine, clock = new_engine()
    case = dispatched(engine)
    engine.fire(case.id, "escalate", actor=secretary, payload={"reason": "跨网格"})
    street = Actor("街道-赵", ["street"], grids=gridflow.ALL_GRIDS)
    clock.advance(timedelta(days=6))  # escalated: 5 days, no on_breach
    assert [e.trigger for e in engine.tick()] == ["overdue"]
    assert engine.get(case.id).deadline_at is None
    until = clock.now() + timedelta(days=3)
    engine.fire(case.id, "request_extension", actor=street,
                payload={"reason": "需区级协调", "until": until.isoformat()})
    case = engine.fire(case.id, "approve_extension", actor=street)
    assert case.deadline_at == until and "overdue_since" not in case.data
    clock.set(until)
    assert [e.trigger for e in engine.tick()] == ["overdue"]
    assert [e.trigger for e in engine.history(case.id)].count("overdue") == 2
    engine.verify(case.id)


def test_a_marked_backlog_does_not_starve_new_breaches() -> None:
    engine, clock = new_engine()
    old = [reported(engine).id for _ in range(5)]
    clock.advance(timedelta(days=2))
    assert len(engine.tick(limit=5)) == 5
    fresh = dispatched(engine).id
    clock.advance(timedelta(days=6))
    assert [e.case_id for e in engine.tick(limit=1)] == [fresh]
    assert all(engine.get(i).deadline_at is None for i in old)


def test_after_fire_plugins_hear_of_overdue_marks() -> None:
    heard: list[str] = []

    class Notify:
        @gridflow.hookimpl
        def gridflow_after_fire(self, case: Case, event: Event) -> None:
            heard.append(event.trigger)

    engine, clock = new_engine(plugins=[Notify()])
    reported(engine)
    clock.advance(timedelta(days=2))
    engine.tick()
    assert heard[-1] == "overdue"


# -- limits, restarts ------------------------------------------------------------------------------


def test_limit_bounds_one_tick_and_the_rest_follow(store: gridflow.Store) -> None:
    engine, clock = new_engine(store)
    ids = {dispatched(engine).id for _ in range(5)}
    clock.advance(timedelta(days=6))
    first = engine.tick(limit=2)
    second = engine.tick(limit=2)
    third = engine.tick(limit=2)
    assert [len(first), len(second), len(third)] == [2, 2, 1]
    assert {e.case_id for e in first + second + third} == ids
    assert engine.tick() == []


def test_a_restart_loses_nothing_the_deadlines_live_in_the_store(tmp_path: Path) -> None:
    pytest.importorskip("sqlalchemy")
    url = f"sqlite:///{tmp_path / 'cases.db'}"
    store = gridflow.SQLStore(url)
    store.create_schema()
    first, clock = new_engine(store=store)
    ids = {dispatched(first).id for _ in range(3)}
    del first
    store.close()
    # A new process: a new store object and a new engine on the same database.
    clock.advance(timedelta(days=6))
    second, _ = new_engine(store=gridflow.SQLStore(url), clock=clock)
    events = second.tick()
    assert {e.case_id for e in events} == ids
    assert all(e.trigger == "escalate" for e in events)
    assert second.tick() == []
    for case_id in ids:
        second.verify(case_id)


# -- several workers -------------------------------------------------------------------------------


def test_several_workers_on_one_store_escalate_each_case_exactly_once() -> None:
    store = MemoryStore()
    clock = FixedClock(T0)
    engines = [new_engine(store=store, clock=clock)[0] for _ in range(4)]
    ids = [dispatched(engines[0]).id for _ in range(200)]
    clock.advance(timedelta(days=6))
    results: list[list[Event]] = [[] for _ in engines]
    barrier = threading.Barrier(len(engines))

    def work(index: int) -> None:
        barrier.wait()
        while batch := engines[index].tick(limit=7):
            results[index].extend(batch)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(engines))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    fired = Counter(e.case_id for batch in results for e in batch)
    assert set(fired) == set(ids) and set(fired.values()) == {1}
    for case_id in ids:
        assert [e.trigger for e in store.events(case_id)].count("escalate") == 1


class StaleClaims(MemoryStore):
    """Hands out claims, then lets a person change the first case before the timer acts."""

    def __init__(self) -> None:
        super().__init__()
        self.meddle: Any = None

    def claim_due(self, now: datetime, limit: int = 100, *, lease: float = 60.0) -> list[Case]:
        claimed = super().claim_due(now, limit, lease=lease)
        if claimed and self.meddle is not None:
            self.meddle(claimed[0])
        return claimed


def test_a_case_changed_after_it_was_claimed_is_left_to_that_change() -> None:
    store = StaleClaims()
    engine, clock = new_engine(store=store)
    a, b = dispatched(engine), dispatched(engine)
    clock.advance(timedelta(days=6))
    # Both cases fall due at the same instant, so which one the store hands out
    # first depends on their (random) ids: remember the one the person changed.
    meddled: list[str] = []

    def meddle(case: Case) -> None:
        meddled.append(case.id)
        engine.fire(case.id, "escalate", actor=secretary, payload={"reason": "书记先上报"})

    store.meddle = meddle
    events = engine.tick()
    first = meddled[0]
    second = b.id if first == a.id else a.id
    assert [e.case_id for e in events] == [second]
    assert engine.tick() == []
    history = [(e.trigger, e.actor.id) for e in engine.history(first)]
    assert history.count(("escalate", secretary.id)) == 1
    assert all(actor != "system" for _, actor in history)


# -- failures, case by case ------------------------------------------------------------------------


class NoEscalationOf:
    def __init__(self, case_id: str) -> None:
        self.case_id = case_id

    @gridflow.hookimpl
    def gridflow_veto(self, case: Case, trigger: str, actor: Actor,
                      payload: dict[str, Any]) -> str | None:
        if case.id == self.case_id and trigger == "escalate":
            return "街道暂停接收"
        return None


def test_a_refused_breach_step_marks_the_case_overdue_instead() -> None:
    engine, clock = new_engine()
    refused, fine = dispatched(engine), dispatched(engine)
    engine.register(NoEscalationOf(refused.id))
    clock.advance(timedelta(days=6))
    events = {e.case_id: e for e in engine.tick()}
    assert events[fine.id].trigger == "escalate"
    marked = events[refused.id]
    assert marked.trigger == "overdue"
    assert "街道暂停接收" in marked.payload["breach_refused"]
    assert engine.get(refused.id).state == "joint_action"
    [failure] = engine.tick_errors
    assert isinstance(failure, TickError)
    assert (failure.case_id, failure.trigger, failure.marked_overdue) == (
        refused.id, "escalate", True)
    assert engine.tick() == []  # marked once, not retried on every tick
    engine.verify(refused.id)


class FlakyStore(MemoryStore):
    """A store whose commits for some cases fail like a broken connection."""

    def __init__(self) -> None:
        super().__init__()
        self.broken: set[str] = set()

    def commit(self, writes: Sequence[Write]) -> None:
        if any(w.case.id in self.broken for w in writes):
            raise gridflow.StoreError("connection reset by peer")
        super().commit(writes)


def test_one_bad_case_does_not_stop_the_others_and_is_retried_later() -> None:
    store = FlakyStore()
    engine, clock = new_engine(store=store)
    bad, *good = [dispatched(engine).id for _ in range(3)]
    store.broken.add(bad)
    clock.advance(timedelta(days=6))
    assert {e.case_id for e in engine.tick()} == set(good)
    [failure] = engine.tick_errors
    assert (failure.case_id, failure.marked_overdue) == (bad, False)
    assert isinstance(failure.error, gridflow.StoreError)
    assert engine.get(bad).state == "joint_action"  # nothing stored
    store.broken.clear()
    assert engine.tick() == []  # still claimed by the failed attempt
    clock.advance(timedelta(minutes=2))  # the claim lapses
    assert [e.case_id for e in engine.tick()] == [bad]
    assert engine.get(bad).state == "escalated"


# -- PostgreSQL: two processes, one database ------------------------------------------------------

#: The time the workers tick at: every case dispatched at T0 is 1 day past its deadline.
_TICK_AT = T0 + timedelta(days=6)


def _tick_worker(url: str, schema: str, start: Any, out: Any) -> None:
    """One timer process: its own connection pool and engine; ticks until nothing is due."""
    store = gridflow.SQLStore(url, schema=schema)
    engine = Engine(store=store, clock=FixedClock(_TICK_AT), entry_points=False)
    start.wait()
    fired: list[tuple[str, str]] = []
    while batch := engine.tick(limit=25):
        fired.extend((e.case_id, e.trigger) for e in batch)
    out.put((fired, [repr(f) for f in engine.tick_errors]))
    store.close()


@pytest.mark.slow
@pytest.mark.postgres
def test_two_processes_ticking_on_postgresql_escalate_each_case_exactly_once(
    pg_url: str, pg_schema: str
) -> None:
    import multiprocessing

    store = gridflow.SQLStore(pg_url, schema=pg_schema)
    store.create_schema()
    engine, _ = new_engine(store)
    ids = [dispatched(engine).id for _ in range(1000)]
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Barrier(3), ctx.Queue()
    workers = [ctx.Process(target=_tick_worker, args=(pg_url, pg_schema, start, out))
               for _ in range(2)]
    for w in workers:
        w.start()
    start.wait(timeout=120)  # both are connected: let them race
    results = [out.get(timeout=600) for _ in workers]
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0
    fired = Counter(case_id for events, _ in results for case_id, _ in events)
    assert [errors for _, errors in results] == [[], []]
    assert {trigger for events, _ in results for _, trigger in events} == {"escalate"}
    assert set(fired) == set(ids)
    assert set(fired.values()) == {1}  # no case was escalated by both workers
    for case_id in ids:
        history = [e.trigger for e in store.events(case_id)]
        assert history.count("escalate") == 1, case_id
        assert engine.get(case_id).state == "escalated"
    store.close()


# -- MemoryStore's deadline index equals a scan of every case ------------------------------

@settings(max_examples=150, deadline=None)
@given(script=st.lists(st.tuples(st.integers(0, 7), st.one_of(st.none(), st.integers(0, 20)),
                                 st.integers(0, 24), st.integers(1, 4)), max_size=40))
def test_memory_claims_equal_a_scan_of_every_case(
        script: list[tuple[int, int | None, int, int]]) -> None:
    """Random writes (deadlines set, moved, cleared) and claims: the heap-indexed
    `claim_due` hands out exactly what scanning every case would, in its order."""
    import attrs

    store, shadow_claims = MemoryStore(), dict[str, datetime]()
    engine, _ = new_engine(store=store)
    ids = [reported(engine).id for _ in range(8)]
    for which, deadline_h, now_h, limit in script:
        cid = ids[which]
        case = store.get(cid)
        assert case is not None
        if deadline_h is not None or which % 2:
            new = attrs.evolve(case, version=case.version + 1, deadline_at=None if
                               deadline_h is None else T0 + timedelta(hours=deadline_h))
            event = attrs.evolve(store.events(cid)[-1], seq=new.version)
            store.commit([Write(new, event, case.version)])
            shadow_claims.pop(cid, None)
        now = T0 + timedelta(hours=now_h)
        expected = sorted(
            (c for c in (store.get(i) for i in ids) if c is not None and c.deadline_at
             is not None and c.deadline_at <= now and shadow_claims.get(c.id, now) <= now),
            key=lambda c: (c.deadline_at, c.id))[:limit]
        got = store.claim_due(now, limit, lease=3600)
        assert [c.id for c in got] == [c.id for c in expected]
        for c in got:
            shadow_claims[c.id] = now + timedelta(seconds=3600)


class _CountingNow(datetime):
    """A ``now`` that counts how often a deadline is compared with it.

    ``deadline <= now`` asks this subclass first (Python tries the reflected
    operator of a right operand whose type subclasses the left one's), so every
    comparison a store makes against ``now`` is counted, whatever its layout.
    """

    compared = 0

    def __ge__(self, other: object) -> bool:
        type(self).compared += 1
        return super().__ge__(other)  # type: ignore[operator]

    def __le__(self, other: object) -> bool:
        type(self).compared += 1
        return super().__le__(other)  # type: ignore[operator]


def test_claiming_on_memory_costs_what_is_due_not_every_case() -> None:
    # 0.1's MemoryStore compared every case's deadline with now on each tick
    # (issue 17: 0.28 ms at 10k cases, 4.0 ms at 100k with nothing due).
    store = MemoryStore()
    engine, _ = new_engine(store=store)
    for _ in range(2_000):
        reported(engine)  # due a day after T0
    _CountingNow.compared = 0
    nothing_due = _CountingNow(2026, 3, 2, 2, 0, tzinfo=UTC)
    assert store.claim_due(nothing_due, 100) == []
    assert _CountingNow.compared <= 5
    _CountingNow.compared = 0
    all_due = _CountingNow(2026, 3, 10, 1, 0, tzinfo=UTC)
    assert len(store.claim_due(all_due, 10)) == 10
    assert _CountingNow.compared <= 60  # a few per case handed out, not one per case
