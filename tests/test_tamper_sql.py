"""Raw-SQL tampering with every field of the case row and of the event row.

0.1's `verify` checked the chain, the state, the version and the head only: an
``UPDATE gridflow_cases SET data=...`` forging a department's "done" let
``close`` pass ``all_departments_done``, and a changed ``grid``,
``deadline_at``, ``links`` or ``events.actor_id`` passed `verify`. In 0.2 the
row is recomputed from the events; each edit below is caught and named: the
case, the field, and the first event where stored and recomputed values part.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from gridflow import (
    ALL_GRIDS,
    Actor,
    Engine,
    FixedClock,
    IntegrityError,
    SQLStore,
)

GRID = "华三-1"
WORKER = Actor("网格员-陈", ["grid_worker"], [GRID])
BOSS = Actor("书记-王", ["coordinator"], [GRID])
DEPT = Actor("城运中心", ["department"], [GRID])


@pytest.fixture
def story(sql: SQLStore) -> tuple[Engine, str]:
    """The alley case, eight events (seq in brackets):

    [1] open  [2] triage  [3] dispatch to 城运中心 and 清运单位  [4] 城运中心 done
    [5] request_extension  [6] approve_extension (the deadline moves)
    [7] link (a second case names this one)  [8] note
    """
    clock = FixedClock(datetime(2026, 3, 2, 1, tzinfo=UTC))
    engine = Engine(store=sql, clock=clock, entry_points=False)
    case = engine.open("grid_case", version=1, actor=WORKER, grid=GRID,
                       data={"title": "长宁支路324弄堆物", "source": "visit"})
    engine.fire(case.id, "triage", actor=BOSS, payload={"category": "违规堆物",
                                                        "priority": "normal"})
    engine.fire(case.id, "dispatch", actor=BOSS, payload={
        "departments": ["城运中心", "清运单位"], "plan": "联合整治工作方案"})
    clock.advance(timedelta(hours=2))
    engine.fire(case.id, "report_done", actor=DEPT,
                payload={"department": "城运中心", "result": "已清理"})
    engine.fire(case.id, "request_extension", actor=DEPT,
                payload={"reason": "需协调物业", "until": "2026-03-20T00:00:00+08:00"})
    engine.fire(case.id, "approve_extension", actor=BOSS)
    engine.open("grid_case", version=1, actor=WORKER, grid=GRID, links=[case.id],
                data={"title": "同一弄堂地锁", "source": "visit"})
    clock.advance(timedelta(hours=1))
    engine.fire(case.id, "note", actor=BOSS, payload={"text": "回访居民"})
    assert engine.verify(case.id).version == 8
    return engine, case.id


def _update(sql: SQLStore, table: sa.Table, where: Any, **values: Any) -> None:
    with sql.engine.begin() as conn:
        assert conn.execute(sa.update(table).where(where).values(**values)).rowcount == 1


def _caught(engine: Engine, case_id: str) -> IntegrityError:
    with pytest.raises(IntegrityError) as caught:
        engine.verify(case_id)
    error = caught.value
    assert error.case_id == case_id and case_id in str(error)
    assert f"(field {error.field!r})" in str(error)
    assert f"at seq {error.seq}" in str(error)
    return error


# -- the case row ------------------------------------------------------------------------

LATER = datetime(2026, 4, 1, tzinfo=UTC)

#: field -> (how to edit the row, the first event where the row and the events part)
CASE_EDITS: dict[str, tuple[Any, int]] = {
    # The finding: a forged "done" for the department that has not reported.
    "data": (lambda row: {"data": {**row.data, "done": {"城运中心": "已清理",
                                                        "清运单位": "已清运"}}}, 4),
    "grid": (lambda row: {"grid": "华三-2"}, 1),
    "deadline_at": (lambda row: {"deadline_at": LATER}, 6),
    "links": (lambda row: {"links": []}, 7),
    "state": (lambda row: {"state": "closed"}, 3),
    "version": (lambda row: {"version": 9}, 9),
    "head": (lambda row: {"head": "f" * 64}, 8),
    "workflow_version": (lambda row: {"workflow_version": 2}, 1),
    "workflow": (lambda row: {"workflow": "mediation"}, 1),
    "opened_at": (lambda row: {"opened_at": row.opened_at - timedelta(days=1)}, 1),
    "updated_at": (lambda row: {"updated_at": LATER}, 8),
}


@pytest.mark.parametrize("field", list(CASE_EDITS))
def test_every_field_of_the_case_row_is_checked(story: tuple[Engine, str], field: str) -> None:
    engine, cid = story
    sql = engine.store
    assert isinstance(sql, SQLStore)
    edit, seq = CASE_EDITS[field]
    row = sql.get(cid)
    _update(sql, sql.cases, sql.cases.c.id == cid, **edit(row))
    error = _caught(engine, cid)
    assert (error.field, error.seq) == (field, seq), str(error)


def test_forged_data_names_the_key_but_never_its_value(story: tuple[Engine, str]) -> None:
    engine, cid = story
    sql = engine.store
    assert isinstance(sql, SQLStore)
    row = sql.get(cid)
    assert row is not None
    _update(sql, sql.cases, sql.cases.c.id == cid,
            data={**row.data, "reporter_phone": "13812345678"})
    error = _caught(engine, cid)
    assert "'reporter_phone'" in str(error) and "13812345678" not in str(error)


def test_a_forged_done_is_refused_before_close_with_verify_steps(
    story: tuple[Engine, str],
) -> None:
    engine, cid = story
    sql = engine.store
    assert isinstance(sql, SQLStore)
    row = sql.get(cid)
    assert row is not None
    forged = {**row.data, "done": {"城运中心": "已清理", "清运单位": "已清运"}}
    _update(sql, sql.cases, sql.cases.c.id == cid, data=forged)
    strict = Engine(store=sql, clock=engine.clock, entry_points=False, verify_steps=True)
    with pytest.raises(IntegrityError) as caught:
        strict.fire(cid, "close", actor=BOSS)
    assert caught.value.field == "data"
    assert len(sql.events(cid)) == 8  # nothing stored
    # Without verify_steps the forged row is acted on, and verify still names it.
    engine.fire(cid, "close", actor=BOSS)
    assert _caught(engine, cid).field == "data"


# -- the event row -----------------------------------------------------------------------

#: field -> how to edit event seq 4 (城运中心's report), without recomputing any hash
EVENT_EDITS: dict[str, Any] = {
    "actor": lambda row: {"actor_id": "清运单位"},
    "actor roles": lambda row: {"actor": {**row.actor, "roles": ["coordinator"]}},
    "payload": lambda row: {"payload": {**row.payload, "result": "未处理"}},
    "at": lambda row: {"at": row.at - timedelta(hours=1)},
    "trigger": lambda row: {"trigger": "reassign"},
    "changes": lambda row: {"changes": {**row.changes,
                                        "set": {"done": {"城运中心": "已清理", "清运单位": "x"}}}},
    "source": lambda row: {"source": "triaged"},
    "dest": lambda row: {"dest": "closed"},
    "idempotency_key": lambda row: {"idempotency_key": "k-forged"},
}


@pytest.mark.parametrize("edit", list(EVENT_EDITS))
def test_every_field_of_the_event_row_is_checked(story: tuple[Engine, str], edit: str) -> None:
    engine, cid = story
    sql = engine.store
    assert isinstance(sql, SQLStore)
    events = sql.events_table
    where = sa.and_(events.c.case_id == cid, events.c.seq == 4)
    with sql.engine.connect() as conn:
        row = conn.execute(sa.select(events).where(where)).one()
    _update(sql, events, where, **EVENT_EDITS[edit](row))
    error = _caught(engine, cid)
    assert (error.field, error.seq) == (edit.split()[0], 4), str(error)


def test_an_event_rewritten_with_its_hash_recomputed_breaks_the_next_link(
    story: tuple[Engine, str],
) -> None:
    # What a keyless chain can and cannot show: the rewritten event itself verifies;
    # the next event's prev_hash no longer matches. (Rewriting the whole tail and
    # the row would pass: that is what signed checkpoints are for.)
    engine, cid = story
    sql = engine.store
    assert isinstance(sql, SQLStore)
    event = sql.events(cid)[3]
    forged = type(event).create(event.case_id, event.seq, event.trigger, event.source,
                                event.dest, event.actor, event.at,
                                {**event.payload, "result": "未处理"}, event.idempotency_key,
                                event.prev_hash, event.changes)
    events = sql.events_table
    _update(sql, events, sa.and_(events.c.case_id == cid, events.c.seq == 4),
            payload=forged.payload, hash=forged.hash, digests=forged.field_digests())
    error = _caught(engine, cid)
    assert (error.field, error.seq) == ("prev_hash", 5)


def test_actor_id_is_read_from_its_own_column(story: tuple[Engine, str]) -> None:
    engine, cid = story
    assert [e.actor.id for e in engine.history(cid)][3] == "城运中心"
    assert engine.history(cid)[0].actor == WORKER
    assert Actor.system().grids is ALL_GRIDS
