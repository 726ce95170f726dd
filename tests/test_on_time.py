"""按期结案 (closed on time) is decided by the close event itself, whatever the timer's cadence.

The ``close`` step of ``grid_case`` records the handling deadline in force and
whether it was met (``payload["deadline_at"]``, ``payload["on_time"]``), so
`gridflow.metrics` no longer needs the timer to have recorded the breach
before the case was closed. None of these scenarios runs `Engine.tick`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest

from gridflow import ALL_GRIDS, Actor, Engine, FixedClock, MemoryStore, Store, metrics
from gridflow.machine import Step
from gridflow.spec import OVERDUE_KEY
from gridflow.workflows.grid_case import EFFECTS

resident = Actor("居民-张", ["resident"], grids=ALL_GRIDS)
secretary = Actor("书记-李", ["coordinator"], grids=ALL_GRIDS)
dept = Actor("部门-清运单位", ["department"], grids=ALL_GRIDS)

H = timedelta(hours=1)
D = timedelta(days=1)
SINCE = datetime(2026, 3, 1, tzinfo=UTC)
UNTIL = datetime(2026, 4, 1, tzinfo=UTC)


def at(month: int, day: int, hour: int = 0) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


def handled(engine: Engine, clock: FixedClock, cid: str, when: datetime, priority: str,
            grid: str = "华三-1") -> None:
    """Opened at ``when``, triaged an hour later, dispatched two hours later (so the
    handling deadline is ``when + 2h + JOINT_ACTION_DAYS[priority]`` days)."""
    clock.set(when)
    engine.open("grid_case", version=1, actor=resident, grid=grid, case_id=cid,
                data={"title": "弄堂违规堆物", "source": "resident"})
    clock.set(when + H)
    engine.fire(cid, "triage", actor=secretary,
                payload={"category": "违规堆物", "priority": priority})
    clock.set(when + 2 * H)
    engine.fire(cid, "dispatch", actor=secretary,
                payload={"departments": ["清运单位"], "plan": "联合整治方案"})


def close(engine: Engine, clock: FixedClock, cid: str, when: datetime,
          **payload: Any) -> None:
    clock.set(when - H)
    engine.fire(cid, "report_done", actor=dept,
                payload={"department": "清运单位", "result": "已清运"})
    clock.set(when)
    engine.fire(cid, "close", actor=secretary, payload=payload)


def extend(engine: Engine, clock: FixedClock, cid: str, when: datetime,
           until: datetime) -> None:
    clock.set(when)
    engine.fire(cid, "request_extension", actor=dept,
                payload={"reason": "需协调物业", "until": until.isoformat()})
    clock.set(when + H)
    engine.fire(cid, "approve_extension", actor=secretary)


def scenarios(store: Store) -> Engine:
    """Each case and what it must count in March, in the docstring of its line."""
    clock = FixedClock(at(1, 5))
    engine = Engine(store=store, clock=clock, entry_points=False)
    # late: urgent (1 day), deadline 3 Mar 10:00, closed an hour after it; no tick.
    handled(engine, clock, "late", at(3, 2, 8), "urgent")
    close(engine, clock, "late", at(3, 3, 11))
    # on time: normal (5 days), closed a day after dispatch.
    handled(engine, clock, "ontime", at(3, 4, 8), "normal", grid="华三-2")
    close(engine, clock, "ontime", at(3, 5, 10))
    # exactly at the deadline: on time ("at or before").
    handled(engine, clock, "edge", at(3, 6, 8), "urgent")
    close(engine, clock, "edge", at(3, 7, 10))
    # extended: deadline 10 Mar 10:00 extended to 15 Mar; closed 12 Mar.
    handled(engine, clock, "extended", at(3, 5, 8), "normal", grid="华三-2")
    extend(engine, clock, "extended", at(3, 8), at(3, 15, 10))
    close(engine, clock, "extended", at(3, 12, 9))
    # extended, then closed after the extended deadline: late, due at 15 Mar 10:00.
    handled(engine, clock, "ext_late", at(3, 5, 9), "normal")
    extend(engine, clock, "ext_late", at(3, 8), at(3, 15, 10))
    close(engine, clock, "ext_late", at(3, 16, 9))
    # deadline missed in February (27 Feb 10:00), closed in March with no breach
    # recorded: due at its close (March), late.
    handled(engine, clock, "feb", at(2, 26, 8), "urgent")
    close(engine, clock, "feb", at(3, 2, 9))
    # a caller's own on_time/deadline_at are overwritten by the engine's.
    handled(engine, clock, "claims", at(3, 10, 8), "urgent", grid="华三-2")
    close(engine, clock, "claims", at(3, 20, 8), on_time=True, deadline_at=None)
    return engine


EXPECTED = {
    # case: (due in March, closed, on time, extended)
    "late": (1, 1, 0, 0),
    "ontime": (1, 1, 1, 0),
    "edge": (1, 1, 1, 0),
    "extended": (1, 1, 1, 1),
    "ext_late": (1, 1, 0, 1),
    "feb": (1, 1, 0, 0),
    "claims": (1, 1, 0, 0),
}


def test_close_event_records_the_deadline_and_verifies() -> None:
    engine = scenarios(MemoryStore())
    want = {
        "late": ("2026-03-03T10:00:00+00:00", False),
        "ontime": ("2026-03-09T10:00:00+00:00", True),
        "edge": ("2026-03-07T10:00:00+00:00", True),
        "extended": ("2026-03-15T10:00:00+00:00", True),
        "ext_late": ("2026-03-15T10:00:00+00:00", False),
        "feb": ("2026-02-27T10:00:00+00:00", False),
        "claims": ("2026-03-11T10:00:00+00:00", False),
    }
    for cid, (deadline, on_time) in want.items():
        closing = engine.history(cid)[-1]
        assert closing.trigger == "close"
        assert (closing.payload["deadline_at"], closing.payload["on_time"]) == (
            deadline, on_time), cid
        # The payload is hashed after the effect ran: the chain verifies.
        assert engine.verify(cid).state == "closed"


def test_idempotent_close_keeps_the_recorded_fields(clock: FixedClock) -> None:
    engine = Engine(store=MemoryStore(), clock=clock, entry_points=False)
    handled(engine, clock, "c1", at(3, 2, 8), "urgent")
    clock.set(at(3, 3, 10))
    engine.fire("c1", "report_done", actor=dept,
                payload={"department": "清运单位", "result": "已清运"})
    clock.set(at(3, 3, 11))
    first = engine.fire("c1", "close", actor=secretary, idempotency_key="close-c1")
    clock.set(at(3, 3, 12))
    again = engine.fire("c1", "close", actor=secretary, idempotency_key="close-c1")
    assert again == first
    closes = [e for e in engine.history("c1") if e.trigger == "close"]
    assert len(closes) == 1
    assert closes[0].payload == {"deadline_at": "2026-03-03T10:00:00+00:00", "on_time": False}
    assert engine.verify("c1") == first


def test_closing_after_an_overdue_mark_uses_the_missed_deadline(clock: FixedClock) -> None:
    """When the timer marked the case overdue (breach refused), deadline_at is cleared
    and the missed deadline is in data[OVERDUE_KEY]: the close records that one."""
    engine = Engine(store=MemoryStore(), clock=clock, entry_points=False)
    handled(engine, clock, "c1", at(3, 2, 8), "urgent")
    case = engine.get("c1")
    missed = "2026-03-03T10:00:00+00:00"
    marked = attrs.evolve(case, deadline_at=None, data={**case.data, OVERDUE_KEY: missed})
    effect = EFFECTS["grid_case.closing_deadline"]
    for now, on_time in ((at(3, 3, 9), True), (at(3, 3, 11), False)):
        payload: dict[str, Any] = {}
        step = Step(marked, "close", secretary, payload, dict(marked.data), [], now,
                    "joint_action", engine.store.get)
        effect(step)
        assert payload == {"deadline_at": missed, "on_time": on_time}
    # No deadline at all: nothing could be missed.
    payload = {}
    bare = attrs.evolve(case, deadline_at=None)
    effect(Step(bare, "close", secretary, payload, dict(bare.data), [], at(3, 9),
                "joint_action", engine.store.get))
    assert payload == {"deadline_at": None, "on_time": True}


def _expected_march(by_grid: bool) -> dict[str | None, tuple[int, int, int, int]]:
    grids = {"late": "华三-1", "ontime": "华三-2", "edge": "华三-1", "extended": "华三-2",
             "ext_late": "华三-1", "feb": "华三-1", "claims": "华三-2"}
    out: dict[str | None, tuple[int, int, int, int]] = {}
    for cid, counts in EXPECTED.items():
        key = grids[cid] if by_grid else None
        old = out.get(key, (0, 0, 0, 0))
        out[key] = tuple(a + b for a, b in zip(old, counts, strict=True))  # type: ignore[assignment]
    return out


def test_on_time_without_any_tick(store: Store) -> None:
    """On every store: the late close is late, the others as expected; SQL equals Python."""
    engine = scenarios(store)
    memory = scenarios(MemoryStore()).store
    for by in ("grid", None):
        report = metrics.compute(store, since=SINCE, until=UNTIL, by=by)
        for group, (due, closed, on_time, extended) in _expected_march(by == "grid").items():
            row = report.row(group)
            assert (row.due, row.closed, row.closed_on_time, row.extended) == (
                due, closed, on_time, extended), (by, group)
        assert report == metrics.compute(memory, since=SINCE, until=UNTIL, by=by)
    # As of 1 March nothing recorded the February miss: February's report (which a
    # later close must not change) does not count the case; March counts it once, late.
    feb = metrics.compute(store, since=at(2, 1), until=SINCE, by=None).row(None)
    assert (feb.due, feb.closed, feb.closed_on_time) == (0, 0, 0)
    # As of `until` just before the late close, only "feb" is due: nothing recorded
    # the miss of "late" yet (no tick ran).
    early = metrics.compute(store, since=SINCE, until=at(3, 3, 11), by=None)
    assert early == metrics.compute(memory, since=SINCE, until=at(3, 3, 11), by=None)
    assert (early.row(None).due, early.row(None).closed_on_time) == (1, 0)
    assert engine.verify("late").state == "closed"


def _strip_close_fields(store: Store, case_id: str) -> None:
    """Make the case's close look like one stored before closes recorded on_time."""
    if isinstance(store, MemoryStore):
        events = store._events[case_id]
        for i, e in enumerate(events):
            if e.trigger == "close":
                events[i] = attrs.evolve(e, payload={})
        return
    table = store.events_table  # type: ignore[attr-defined]
    with store.engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(table.update().where(table.c.case_id == case_id,
                                          table.c.trigger == "close").values(payload={}))
    # As the schema 5 upgrade fills them for events stored before (gridflow._facts).
    store.rebuild_facts([case_id])  # type: ignore[attr-defined]


def test_closes_without_the_field_keep_the_breach_rule(store: Store) -> None:
    """A history written before closes recorded on_time: with no breach recorded by the
    timer, a late close still counts as on time (the old rule, bounded by the tick)."""
    scenarios(store)
    _strip_close_fields(store, "late")
    row = metrics.compute(store, since=SINCE, until=UNTIL, by=None).row(None)
    want = _expected_march(False)[None]
    assert (row.due, row.closed, row.closed_on_time) == (want[0], want[1], want[2] + 1)


@pytest.mark.parametrize("hour", [9, 10, 11])
def test_python_and_sqlite_agree_around_the_deadline(tmp_path: Any, hour: int) -> None:
    import gridflow

    results = []
    for store in (MemoryStore(), gridflow.SQLStore(f"sqlite:///{tmp_path / f'{hour}.db'}")):
        if not isinstance(store, MemoryStore):
            store.create_schema()
        clock = FixedClock(at(1, 5))
        engine = Engine(store=store, clock=clock, entry_points=False)
        handled(engine, clock, "c", at(3, 2, 8), "urgent")  # deadline 3 Mar 10:00
        close(engine, clock, "c", at(3, 3, hour))
        row = metrics.compute(store, since=SINCE, until=UNTIL, by=None).row(None)
        results.append((row.due, row.closed, row.closed_on_time))
        if not isinstance(store, MemoryStore):
            store.close()
    assert results[0] == results[1] == (1, 1, int(hour <= 10))
