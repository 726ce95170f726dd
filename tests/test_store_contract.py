"""The `Store` contract, run on every store: MemoryStore, SQLite (a file) and PostgreSQL.

Also the SQL-only promises: schema creation and versioning, `StoreError` on a
broken database, and `Engine.verify` catching raw-SQL edits of stored history.
"""

from __future__ import annotations

import itertools
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import attrs
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gridflow
import gridflow._facts
from gridflow import (
    Actor,
    Case,
    Changes,
    ConcurrencyError,
    Engine,
    Event,
    FixedClock,
    GuardRejected,
    IdempotencyConflict,
    IntegrityError,
    InvalidPayload,
    MemoryStore,
    SchemaVersionError,
    SQLStore,
    Store,
    StoreError,
    Write,
    hookimpl,
)
from gridflow.model import GENESIS_HASH

T0 = datetime(2026, 1, 5, 1, 0, tzinfo=UTC)
WORKER = Actor("w-1", ["grid_worker"], ["华三-1"])
RESIDENT = Actor("r-1", ["resident"], grids=gridflow.ALL_GRIDS)
SECRETARY = Actor("s-1", ["coordinator"], grids=gridflow.ALL_GRIDS)
DEPARTMENT = Actor("d-1", ["department"], grids=gridflow.ALL_GRIDS)

#: Unique numbers for hypothesis examples that share one store.
_EXAMPLES = itertools.count()

HYPOTHESIS = settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    deadline=None, max_examples=30,
)


# -- raw writes ----------------------------------------------------------------------


def open_write(
    case_id: str, *, at: datetime = T0, data: dict[str, Any] | None = None,
    grid: str | None = "华三-1", state: str = "reported", workflow: str = "grid_case",
    deadline: datetime | None = None, key: str | None = None, actor: Actor = WORKER,
) -> Write:
    data = data or {}
    changes = Changes(data, (), deadline, (), 1, workflow, grid)
    event = Event.create(case_id, 1, "open", None, state, actor, at,
                         {"data": data, "grid": grid, "links": []}, key, GENESIS_HASH, changes)
    case = Case(case_id, workflow, 1, state, 1, data, grid, at, at, deadline, (), event.hash)
    return Write(case, event, 0)


def next_write(
    case: Case, *, trigger: str = "note", dest: str | None = None,
    payload: dict[str, Any] | None = None, key: str | None = None, at: datetime | None = None,
    expected: int | None = None, data: dict[str, Any] | None = None,
    deadline: datetime | None = None, actor: Actor = WORKER,
) -> Write:
    at = at or case.updated_at
    seq = case.version + 1
    changes = Changes(data or {}, (), deadline if deadline is not None else case.deadline_at)
    event = Event.create(case.id, seq, trigger, case.state, dest, actor, at,
                         payload or {"text": f"step {seq}"}, key, case.head, changes)
    new = attrs.evolve(case, version=seq, state=dest or case.state, updated_at=at,
                       head=event.hash, data=case.data if data is None else data,
                       deadline_at=deadline if deadline is not None else case.deadline_at)
    return Write(new, event, case.version if expected is None else expected)


def commit_all(stores: Sequence[Store], writes: Sequence[Write]) -> None:
    for s in stores:
        s.commit(writes)


def snapshot(store: Store, case_ids: Sequence[str]) -> list[tuple[Case | None, list[Event]]]:
    return [(store.get(i), store.events(i)) for i in case_ids]


# -- commit ----------------------------------------------------------------------------


def test_commit_then_read_back_exactly(store: Store) -> None:
    first = open_write("c-1", data={"title": "楼道堆物", "n": 1.5, "tags": ["a", None]},
                       deadline=T0 + timedelta(days=1))
    store.commit([first])
    second = next_write(first.case, key="k-2", at=T0 + timedelta(minutes=5),
                        payload={"text": "已联系物业", "nested": {"x": [1, 2.0, True]}})
    store.commit([second])
    third = next_write(second.case, trigger="triage", dest="triaged",
                       at=T0 + timedelta(hours=1), data={"title": "楼道堆物", "category": "环境"})
    store.commit([third])

    assert store.get("c-1") == third.case
    assert store.events("c-1") == [first.event, second.event, third.event]
    assert store.event_by_key("k-2") == second.event
    assert store.event_by_key("k-missing") is None
    assert store.get("missing") is None
    assert store.events("missing") == []
    for event in store.events("c-1"):
        assert event.expected_hash() == event.hash
        assert isinstance(event.actor, Actor)
        assert event.at.utcoffset() == timedelta(0)


@pytest.mark.parametrize("trigger, dest", [("note", None), ("note", "reported"),
                                            ("escalate", "escalated")])
def test_every_column_of_a_write_is_stored(store: Store, trigger: str, dest: str | None) -> None:
    w1 = open_write("c-1", deadline=T0 + timedelta(days=1))
    store.commit([w1])
    w2 = next_write(w1.case, trigger=trigger, dest=dest)
    # Columns that steps rarely change (a transfer to another grid, a deadline
    # extended by a plugin, a data migration) must be stored all the same.
    changed = attrs.evolve(w2.case, grid="华三-9", deadline_at=T0 + timedelta(days=9),
                           workflow="grid_case_v2", workflow_version=2,
                           opened_at=T0 - timedelta(days=1), links=("c-0",),
                           data={"moved": True})
    store.commit([Write(changed, w2.event, 1)])
    assert store.get("c-1") == changed
    w3 = next_write(changed)
    store.commit([w3])
    assert store.get("c-1") == w3.case
    with pytest.raises(ConcurrencyError):
        store.commit([w3])


@pytest.mark.parametrize("dest", [None, "triaged"])
@pytest.mark.parametrize("deadline", [None, T0 + timedelta(days=3)])
def test_state_and_deadline_changes_are_stored(
    store: Store, dest: str | None, deadline: datetime | None
) -> None:
    # SQLStore picks the UPDATE naming the fewest indexed columns (state and
    # deadline only for a step that moved the case): every mix must be stored.
    w1 = open_write("c-1", deadline=T0 + timedelta(days=1))
    store.commit([w1])
    w2 = next_write(w1.case, trigger="triage" if dest else "note", dest=dest,
                    deadline=deadline, at=T0 + timedelta(hours=1))
    store.commit([w2])
    assert store.get("c-1") == w2.case
    stale = next_write(w1.case, dest=dest, deadline=deadline)
    with pytest.raises(ConcurrencyError):
        store.commit([stale])
    assert store.get("c-1") == w2.case
    assert store.events("c-1") == [w1.event, w2.event]


def test_empty_commit_does_nothing(store: Store) -> None:
    store.commit([])
    assert store.query().items == []


def test_stale_version_raises_and_stores_nothing(store: Store) -> None:
    w1 = open_write("c-1")
    store.commit([w1])
    w2 = next_write(w1.case)
    store.commit([w2])
    before = snapshot(store, ["c-1"])

    stale = next_write(w1.case)  # built on version 1, the case is at 2
    with pytest.raises(ConcurrencyError) as caught:
        store.commit([stale])
    assert caught.value.case_id == "c-1"
    assert caught.value.expected == 1
    assert caught.value.actual == 2
    assert "c-1" in str(caught.value)
    assert snapshot(store, ["c-1"]) == before


def test_a_case_is_created_once(store: Store) -> None:
    store.commit([open_write("c-1")])
    with pytest.raises(ConcurrencyError) as caught:
        store.commit([open_write("c-1", data={"other": True})])
    assert caught.value.expected == 0
    assert caught.value.actual == 1
    assert store.get("c-1") == open_write("c-1").case
    assert len(store.events("c-1")) == 1


def test_updating_a_missing_case_is_a_conflict(store: Store) -> None:
    ghost = next_write(open_write("ghost").case)
    with pytest.raises(ConcurrencyError):
        store.commit([ghost])
    assert store.get("ghost") is None
    assert store.events("ghost") == []


@pytest.mark.parametrize("stale_first", [False, True])
def test_multi_write_commit_is_all_or_nothing(store: Store, stale_first: bool) -> None:
    a, b = open_write("c-a"), open_write("c-b")
    store.commit([a, b])
    b2 = next_write(b.case)
    store.commit([b2])
    before = snapshot(store, ["c-a", "c-b", "c-new"])

    good = next_write(a.case, key="k-good")
    fresh = open_write("c-new")
    stale = next_write(b.case)  # expects version 1; c-b is at 2
    writes = [stale, good, fresh] if stale_first else [good, fresh, stale]
    with pytest.raises(ConcurrencyError) as caught:
        store.commit(writes)
    assert caught.value.case_id == "c-b"
    assert snapshot(store, ["c-a", "c-b", "c-new"]) == before
    assert store.event_by_key("k-good") is None
    # Nothing half-done blocks the good writes afterwards.
    store.commit([good, fresh])
    assert store.get("c-a") == good.case
    assert store.get("c-new") == fresh.case


def test_writes_to_one_case_in_one_commit_are_checked_in_order(store: Store) -> None:
    w1 = open_write("c-1")
    w2 = next_write(w1.case)
    w3 = next_write(w2.case)
    store.commit([w1, w2, w3])
    assert store.get("c-1") == w3.case
    assert [e.seq for e in store.events("c-1")] == [1, 2, 3]

    w4 = next_write(w3.case)
    w4_again = next_write(w3.case, payload={"text": "the same version twice"})
    with pytest.raises(ConcurrencyError):
        store.commit([w4, w4_again])
    assert store.get("c-1") == w3.case


def test_an_idempotency_key_is_stored_once(store: Store) -> None:
    a, b = open_write("c-a"), open_write("c-b")
    store.commit([a, b])
    store.commit([next_write(a.case, key="k-1")])
    before = snapshot(store, ["c-a", "c-b"])

    with pytest.raises(ConcurrencyError):
        store.commit([next_write(b.case, key="k-1")])
    with pytest.raises(ConcurrencyError):  # the same new key twice in one commit
        store.commit([next_write(b.case, key="k-2"),
                      next_write(open_write("c-c").case, key="k-2")])
    with pytest.raises(ConcurrencyError):  # a new case with a used key
        store.commit([open_write("c-d", key="k-1")])
    assert snapshot(store, ["c-a", "c-b"]) == before
    assert store.get("c-c") is None and store.get("c-d") is None
    assert store.event_by_key("k-1") == store.events("c-a")[1]
    assert store.event_by_key("k-2") is None


def test_engine_replays_an_idempotency_key(engine: Engine) -> None:
    case = engine.open("grid_case", version=1, actor=RESIDENT, idempotency_key="open-1",
                       data={"title": "路灯坏了", "source": "resident"})
    again = engine.open("grid_case", version=1, actor=RESIDENT, idempotency_key="open-1",
                        data={"title": "路灯坏了", "source": "resident"})
    assert again == case
    triaged = engine.fire(case.id, "triage", actor=SECRETARY, idempotency_key="t-1",
                          payload={"category": "市政", "priority": "normal"})
    replay = engine.fire(case.id, "triage", actor=SECRETARY, idempotency_key="t-1",
                         payload={"category": "市政", "priority": "normal"})
    assert replay == triaged
    assert [e.trigger for e in engine.history(case.id)] == ["open", "triage"]
    with pytest.raises(IdempotencyConflict):
        engine.fire(case.id, "note", actor=SECRETARY, idempotency_key="t-1",
                    payload={"text": "x"})
    assert engine.verify(case.id).version == 2


# -- round trips ---------------------------------------------------------------------

_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                max_size=12)
_float = st.floats(allow_nan=False, allow_infinity=False).filter(
    lambda x: not (x == 0 and math.copysign(1.0, x) < 0))  # JSONB has no -0.0
_scalar = st.none() | st.booleans() | st.integers() | _float | _text | st.sampled_from(
    [1e16, 1.5e300, -2.5e17, 1e-7, 5e-324, "网格", "楼道\n堆物"])
_json = st.recursive(_scalar, lambda kids: st.lists(kids, max_size=4)
                     | st.dictionaries(_text, kids, max_size=4), max_leaves=12)
#: What Actor accepts as names (non-empty, no surrounding whitespace, no controls).
_name = st.text(st.characters(categories=("L", "N", "P", "S")), min_size=1, max_size=12)
_names = st.frozensets(_name, max_size=3)


@HYPOTHESIS
@given(data=st.dictionaries(_text, _json, max_size=5),
       payload=st.dictionaries(_text, _json, max_size=5),
       actor=st.builds(Actor, _name, _names, st.just(gridflow.ALL_GRIDS)
                       | _names.map(lambda g: g - {"*"})),
       at=st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2999, 1, 1),
                       timezones=st.just(UTC)),
       key=st.none() | _text.filter(bool))
def test_data_payload_and_actor_round_trip(
    store: Store, data: dict[str, Any], payload: dict[str, Any], actor: Actor, at: datetime,
    key: str | None,
) -> None:
    case_id = f"rt-{next(_EXAMPLES)}"
    if key is not None:
        key = f"{case_id}-{key}"
    first = open_write(case_id, at=at, data=data, actor=actor, deadline=at + timedelta(days=1))
    second = next_write(first.case, payload=payload, key=key, data=data, actor=actor)
    store.commit([first, second])
    assert store.get(case_id) == second.case
    events = store.events(case_id)
    assert events == [first.event, second.event]
    assert [e.expected_hash() == e.hash for e in events] == [True, True]
    if key is not None:
        assert store.event_by_key(key) == second.event


def test_aware_datetimes_in_any_zone_come_back_as_utc(store: Store) -> None:
    shanghai = timezone(timedelta(hours=8))
    local = datetime(2026, 10, 1, 9, 30, 15, 123456, tzinfo=shanghai)
    w = open_write("c-1", at=T0)
    case = attrs.evolve(w.case, opened_at=local, deadline_at=local + timedelta(days=5))
    store.commit([Write(case, w.event, 0)])
    got = store.get("c-1")
    assert got is not None
    assert got.opened_at == local
    assert got.deadline_at == local + timedelta(days=5)
    if not isinstance(store, MemoryStore):
        assert got.opened_at.utcoffset() == timedelta(0)
        assert got.opened_at.isoformat() == "2026-10-01T01:30:15.123456+00:00"


def test_a_whole_story_verifies(engine: Engine, clock: FixedClock) -> None:
    case = engine.open("grid_case", version=1, actor=WORKER, grid="华三-1",
                       data={"title": "弄堂违规堆物", "source": "visit", "photos": 3})
    clock.advance(timedelta(hours=2))
    engine.fire(case.id, "triage", actor=SECRETARY,
                payload={"category": "环境秩序", "priority": "urgent"})
    clock.advance(timedelta(hours=2))
    engine.fire(case.id, "dispatch", actor=SECRETARY,
                payload={"departments": ["城管", "物业"], "plan": "联合清理"})
    for dept in ("城管", "物业"):
        clock.advance(timedelta(hours=5))
        engine.fire(case.id, "report_done", actor=DEPARTMENT,
                    payload={"department": dept, "result": "已清理"})
    clock.advance(timedelta(hours=1))
    closed = engine.fire(case.id, "close", actor=SECRETARY)
    assert closed.state == "closed"
    assert engine.verify(case.id) == closed
    assert engine.get(case.id) == closed
    assert [e.seq for e in engine.history(case.id)] == list(range(1, 7))


# -- retries ----------------------------------------------------------------------------


class Racer:
    """Before its first step, lets another writer land a step on the same case."""

    def __init__(self) -> None:
        self.race: Callable[[], object] | None = None

    @hookimpl
    def gridflow_before_fire(self, case: Case, trigger: str, actor: Actor,
                             payload: dict[str, Any]) -> None:
        race, self.race = self.race, None
        if race is not None:
            race()


@pytest.fixture
def racing(store: Store, clock: FixedClock) -> tuple[Engine, Engine, Racer, Case]:
    """Two engines on one store; the first races the second once; a case in joint_action."""
    racer = Racer()
    first = Engine(store=store, clock=clock, entry_points=False, plugins=[racer])
    second = Engine(store=store, clock=clock, entry_points=False)
    case = second.open("grid_case", version=1,
                       actor=RESIDENT, data={"title": "井盖", "source": "resident"})
    second.fire(case.id, "triage", actor=SECRETARY,
                payload={"category": "市政", "priority": "normal"})
    case = second.fire(case.id, "dispatch", actor=SECRETARY,
                       payload={"departments": ["市政", "物业"], "plan": "更换井盖"})
    return first, second, racer, case


DONE = {"department": "市政", "result": "已更换"}


def test_retry_rechecks_guards_after_a_conflict(
    racing: tuple[Engine, Engine, Racer, Case],
) -> None:
    first, second, racer, case = racing
    racer.race = lambda: second.fire(case.id, "report_done", actor=DEPARTMENT, payload=DONE)
    with pytest.raises(GuardRejected) as caught:
        first.fire(case.id, "report_done", actor=DEPARTMENT, payload=DONE, retries=3)
    # The retry re-read the case, saw the department already done, and refused.
    assert caught.value.guard == "grid_case.department_pending"
    assert "already reported" in caught.value.reason
    history = second.history(case.id)
    assert [e.trigger for e in history].count("report_done") == 1
    assert second.verify(case.id).version == 4


def test_without_retries_the_lost_race_raises(
    racing: tuple[Engine, Engine, Racer, Case],
) -> None:
    first, second, racer, case = racing
    racer.race = lambda: second.fire(case.id, "note", actor=SECRETARY, payload={"text": "x"})
    with pytest.raises(ConcurrencyError) as caught:
        first.fire(case.id, "report_done", actor=DEPARTMENT, payload=DONE)
    assert (caught.value.expected, caught.value.actual) == (3, 4)
    assert [e.trigger for e in second.history(case.id)][-1] == "note"
    assert second.get(case.id).data["done"] == {}


def test_a_retry_lands_when_the_guards_still_pass(
    racing: tuple[Engine, Engine, Racer, Case],
) -> None:
    first, second, racer, case = racing
    racer.race = lambda: second.fire(case.id, "note", actor=SECRETARY, payload={"text": "x"})
    done = first.fire(case.id, "report_done", actor=DEPARTMENT, payload=DONE, retries=1)
    assert done.version == 5
    assert [e.trigger for e in first.history(case.id)][-2:] == ["note", "report_done"]
    assert first.verify(case.id) == done


def test_a_pinned_expected_version_is_never_retried(
    racing: tuple[Engine, Engine, Racer, Case],
) -> None:
    first, second, racer, case = racing
    racer.race = lambda: second.fire(case.id, "note", actor=SECRETARY, payload={"text": "x"})
    with pytest.raises(ConcurrencyError):
        first.fire(case.id, "report_done", actor=DEPARTMENT, payload=DONE, retries=5,
                   expected_version=case.version)
    assert second.get(case.id).version == case.version + 1


# -- queries ---------------------------------------------------------------------------


def _population() -> list[Write]:
    """Cases over 3 workflows, 3 grids, 4 states, opened at 12 moments (ties included)."""
    writes = []
    for i in range(40):
        writes.append(open_write(
            f"q-{(i * 7) % 40:02d}",
            at=T0 + timedelta(hours=i // 4),  # four cases share each opened_at
            workflow=("grid_case", "mediation", "ticket")[i % 3],
            grid=("华三-1", "华三-2", None)[i % 3 if i % 5 else 0],
            state=("reported", "triaged", "joint_action", "closed")[i % 4],
            deadline=None if i % 6 == 0 else T0 + timedelta(hours=i),
        ))
    return writes


@pytest.fixture
def populated(store: Store) -> tuple[Store, MemoryStore, list[Case]]:
    """``store`` and a MemoryStore twin holding the same 40 cases."""
    twin = MemoryStore()
    writes = _population()
    commit_all([store, twin], writes)
    return store, twin, [w.case for w in writes]


FILTERS: list[dict[str, Any]] = [
    {},
    {"workflow": "grid_case"},
    {"state": "triaged"},
    {"state": ["reported", "closed"]},
    {"state": []},
    {"grid": "华三-2"},
    {"grid": ["华三-1", "华三-2"]},
    {"workflow": "mediation", "state": ["reported", "joint_action"], "grid": "华三-1"},
    {"opened_from": T0 + timedelta(hours=2)},
    {"opened_until": T0 + timedelta(hours=3)},
    {"opened_from": T0 + timedelta(hours=2), "opened_until": T0 + timedelta(hours=5)},
    {"overdue_at": T0 + timedelta(hours=10)},
    {"overdue_at": T0 + timedelta(hours=10), "state": "reported"},
]


def _expected(cases: list[Case], f: dict[str, Any]) -> list[Case]:
    def keep(c: Case) -> bool:
        def match(value: Any, wanted: Any) -> bool:
            return value == wanted if isinstance(wanted, str) else value in wanted
        return all([
            "workflow" not in f or c.workflow == f["workflow"],
            "state" not in f or match(c.state, f["state"]),
            "grid" not in f or match(c.grid, f["grid"]),
            "opened_from" not in f or c.opened_at >= f["opened_from"],
            "opened_until" not in f or c.opened_at < f["opened_until"],
            "overdue_at" not in f or (c.deadline_at is not None
                                      and c.deadline_at <= f["overdue_at"]),
        ])
    return sorted((c for c in cases if keep(c)), key=lambda c: (c.opened_at, c.id))


def _all_pages(store: Store, limit: int, **f: Any) -> tuple[list[Case], list[str | None]]:
    items: list[Case] = []
    cursors: list[str | None] = []
    after = None
    while True:
        page = store.query(after=after, limit=limit, **f)
        items += page.items
        cursors.append(page.next)
        if page.next is None:
            return items, cursors
        assert len(page.items) == limit
        after = page.next


@pytest.mark.parametrize("f", FILTERS, ids=[",".join(f) or "all" for f in FILTERS])
def test_query_filters_and_pages(
    populated: tuple[Store, MemoryStore, list[Case]], f: dict[str, Any],
) -> None:
    store, twin, cases = populated
    expected = _expected(cases, f)
    assert store.query(limit=1000, **f).items == expected
    for limit in (1, 3, 4, 7, 1000):
        items, cursors = _all_pages(store, limit, **f)
        assert items == expected
        # MemoryStore hands out the very same cursors.
        assert (items, cursors) == _all_pages(twin, limit, **f)


def test_page_cursor_format(populated: tuple[Store, MemoryStore, list[Case]]) -> None:
    store, _, _ = populated
    page = store.query(limit=2)
    assert page.next == f"{page.items[-1].opened_at.isoformat()}|{page.items[-1].id}"
    assert page.next.startswith("2026-01-05T01:00:00+00:00|")
    assert store.query(limit=0) == gridflow.Page([], None)
    with pytest.raises(InvalidPayload, match="not a page cursor"):
        store.query(after="yesterday")


@HYPOTHESIS
@given(
    rows=st.lists(st.tuples(st.integers(0, 5), st.sampled_from(["a", "b", "c"]),
                            st.sampled_from(["g1", "g2", None]), st.integers(0, 6)),
                  max_size=15),
    state=st.none() | st.sampled_from(["a", "b", ["a", "c"]]),
    grid=st.none() | st.sampled_from(["g1", ["g1", "g2"]]),
    window=st.none() | st.tuples(st.integers(0, 5), st.integers(0, 5)),
    overdue=st.none() | st.integers(0, 6),
    limit=st.integers(1, 6),
)
def test_query_agrees_with_memory_store(
    store: Store, rows: list[tuple[int, str, str | None, int]], state: Any, grid: Any,
    window: tuple[int, int] | None, overdue: int | None, limit: int,
) -> None:
    # Each example gets its own workflow name, so examples never see each other's cases.
    workflow = f"wf-{next(_EXAMPLES)}"
    twin = MemoryStore()
    writes = [open_write(f"{workflow}-{i}", at=T0 + timedelta(minutes=m), state=s, grid=g,
                         workflow=workflow, deadline=T0 + timedelta(minutes=d))
              for i, (m, s, g, d) in enumerate(rows)]
    if writes:
        commit_all([store, twin], writes)
    f: dict[str, Any] = {"workflow": workflow, "state": state, "grid": grid}
    if window is not None:
        f["opened_from"] = T0 + timedelta(minutes=window[0])
        f["opened_until"] = T0 + timedelta(minutes=window[1])
    if overdue is not None:
        f["overdue_at"] = T0 + timedelta(minutes=overdue)
    assert _all_pages(store, limit, **f) == _all_pages(twin, limit, **f)
    assert store.counts(("state", "grid"), workflow=workflow) == twin.counts(
        ("state", "grid"), workflow=workflow)



def test_counts(populated: tuple[Store, MemoryStore, list[Case]]) -> None:
    store, twin, cases = populated
    by_state: dict[tuple[Any, ...], int] = {}
    for c in cases:
        by_state[(c.state,)] = by_state.get((c.state,), 0) + 1
    assert store.counts() == by_state
    assert sum(store.counts().values()) == 40
    for by in (("grid",), ("grid", "state"), ("workflow", "workflow_version"), ()):
        assert store.counts(by) == twin.counts(by)
        assert store.counts(by, workflow="mediation") == twin.counts(by, workflow="mediation")
    assert store.counts(("grid",))[(None,)] == twin.counts(("grid",))[(None,)]
    assert store.counts(workflow="nothing") == {}
    with pytest.raises(InvalidPayload, match="cannot count cases by 'title'"):
        store.counts(("title",))


# -- claim_due --------------------------------------------------------------------------


def test_claim_due_hands_each_overdue_case_out_once(store: Store) -> None:
    writes = [open_write(f"d-{i}", deadline=T0 + timedelta(hours=h))
              for i, h in enumerate([5, 1, 3, 2, 4, 30])]
    writes.append(open_write("no-deadline"))
    store.commit(writes)
    now = T0 + timedelta(hours=10)

    first = store.claim_due(now, limit=2, lease=600)
    assert [c.id for c in first] == ["d-1", "d-3"]  # oldest deadline first
    second = store.claim_due(now, limit=10, lease=600)
    assert [c.id for c in second] == ["d-2", "d-4", "d-0"]
    assert store.claim_due(now, limit=10, lease=600) == []
    assert store.claim_due(now, limit=0) == []

    # Writing a case ends its claim; the lease running out ends the others'.
    d3 = store.get("d-3")
    assert d3 is not None
    store.commit([next_write(d3)])
    assert [c.id for c in store.claim_due(now + timedelta(seconds=300), lease=600)] == ["d-3"]
    later = now + timedelta(seconds=600)
    assert [c.id for c in store.claim_due(later, lease=600)] == ["d-1", "d-2", "d-4", "d-0"]
    assert store.claim_due(T0, lease=600) == []
    # Claims hand out the stored case.
    assert store.claim_due(later + timedelta(days=2), lease=1)[-1] == store.get("d-5")


def test_tick_escalates_each_overdue_case_once(engine: Engine, clock: FixedClock) -> None:
    ids = []
    for i in range(3):
        case = engine.open("grid_case", version=1, actor=RESIDENT,
                           data={"title": f"堆物 {i}", "source": "resident"})
        engine.fire(case.id, "triage", actor=SECRETARY,
                    payload={"category": "环境", "priority": "normal"})
        engine.fire(case.id, "dispatch", actor=SECRETARY,
                    payload={"departments": ["城管"], "plan": "清理"})
        ids.append(case.id)
    clock.advance(timedelta(days=6))
    events = engine.tick()
    assert sorted(e.case_id for e in events) == sorted(ids)
    assert {engine.get(i).state for i in ids} == {"escalated"}
    assert engine.tick() == []
    for i in ids:
        engine.verify(i)


# -- SQL only: schema, failures, tampering ----------------------------------------------


@attrs.frozen
class Target:
    """Where a SQLStore test puts its database."""

    kind: str
    url: str
    options: dict[str, Any]

    def open(self, **extra: Any) -> SQLStore:
        return SQLStore(self.url, **{**self.options, **extra})


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    if request.param == "sqlite":
        return Target("sqlite", f"sqlite:///{tmp_path / 'gridflow.db'}", {})
    return Target("postgres", request.getfixturevalue("pg_url"),
                  {"schema": request.getfixturevalue("pg_schema")})


@pytest.fixture
def sql(target: Target) -> Iterator[SQLStore]:
    with target.open() as store:
        store.create_schema()
        yield store


def _raw(store: SQLStore, stmt: Any) -> None:
    with store.engine.begin() as conn:
        conn.execute(stmt)


def test_public_tables_and_columns(sql: SQLStore, target: Target) -> None:
    assert isinstance(sql.engine, sa.Engine)
    assert sql.dialect == {"sqlite": "sqlite", "postgres": "postgresql"}[target.kind]
    assert sql.cases.name == "gridflow_cases"
    assert sql.events_table is sql.tables.events
    assert [c.name for c in sql.cases.columns] == [
        "id", "workflow", "workflow_version", "state", "version", "data", "grid",
        "opened_at", "updated_at", "deadline_at", "links", "head", "claimed_until",
        *gridflow._facts.NAMES, "district"]
    assert [c.name for c in sql.events_table.columns] == [
        "case_id", "seq", "trigger", "source", "dest", "actor_id", "actor", "at", "payload",
        "idempotency_key", "prev_hash", "hash", "changes", "digests", "leaf", "stay_us",
        "district"]
    inspector = sa.inspect(sql.engine)
    schema = target.options.get("schema")
    assert {"gridflow_cases", "gridflow_events", "gridflow_meta"} <= set(
        inspector.get_table_names(schema=schema))
    index_columns = {tuple(ix["column_names"]) for ix in
                     inspector.get_indexes("gridflow_cases", schema=schema)}
    assert ("workflow", "state", "opened_at", "id") in index_columns
    assert ("deadline_at", "id") in index_columns
    assert ("grid", "opened_at", "id") in index_columns
    assert ("opened_at", "id") in index_columns
    uniques = inspector.get_unique_constraints("gridflow_events", schema=schema)
    assert [u["column_names"] for u in uniques] == [["idempotency_key"]]
    assert inspector.get_pk_constraint("gridflow_events", schema=schema)[
        "constrained_columns"] == ["case_id", "seq"]
    if target.kind == "postgres":
        types = {c["name"]: c["type"] for c in inspector.get_columns("gridflow_cases",
                                                                      schema=schema)}
        assert type(types["data"]).__name__ == "JSONB"
        assert "TIMESTAMP" in str(types["opened_at"])


def test_the_stored_sql_is_plain_and_utc(sql: SQLStore, target: Target) -> None:
    w = open_write("c-1", at=datetime(2026, 10, 1, 9, 0, tzinfo=timezone(timedelta(hours=8))),
                   data={"title": "堆物"})
    # Stored UTC; the event's own time must be UTC too (see the next test).
    event = Event.create("c-1", 1, "open", None, "reported", WORKER, T0, {}, None, GENESIS_HASH)
    sql.commit([Write(attrs.evolve(w.case, head=event.hash), event, 0)])
    with sql.engine.connect() as conn:
        row = conn.execute(sa.select(sql.cases.c.opened_at, sql.cases.c.data)).one()
        raw = conn.execute(sa.text(f"SELECT opened_at FROM {_qualified(sql, 'gridflow_cases')}"))
        text = str(raw.scalar())
    assert row.opened_at == datetime(2026, 10, 1, 1, 0, tzinfo=UTC)
    assert row.data == {"title": "堆物"}
    if target.kind == "sqlite":  # plain UTC text that SQLite's date functions read
        assert text == "2026-10-01 01:00:00.000000"


def _qualified(store: SQLStore, table: str) -> str:
    return f'"{store.schema}".{table}' if store.schema else table


def test_events_must_be_stamped_in_utc(sql: SQLStore) -> None:
    shanghai = timezone(timedelta(hours=8))
    w = open_write("c-1", at=datetime(2026, 1, 5, 9, tzinfo=shanghai))
    with pytest.raises(StoreError, match="not UTC") as caught:
        sql.commit([w])
    assert isinstance(caught.value.__cause__, ValueError)
    assert sql.get("c-1") is None


def test_sqlite_pragmas(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    for sync, code in (("FULL", 2), ("normal", 1)):
        with SQLStore(url, synchronous=sync, busy_timeout=2.5) as store:
            store.create_schema()
            with store.engine.connect() as conn:
                def pragma(name: str, conn: sa.Connection = conn) -> Any:
                    return conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                assert pragma("journal_mode") == "wal"
                assert pragma("foreign_keys") == 1
                assert pragma("synchronous") == code
                assert pragma("busy_timeout") == 2500
            assert store.synchronous == sync.upper()
    with pytest.raises(StoreError, match="synchronous='OFF' is not supported"):
        SQLStore(url, synchronous="OFF")


def test_foreign_keys_are_enforced(sql: SQLStore) -> None:
    orphan = next_write(open_write("nobody").case)
    with pytest.raises(StoreError):
        _bare_insert_event(sql, orphan.event)


def _bare_insert_event(store: SQLStore, event: Event) -> None:
    try:
        _raw(store, sa.insert(store.events_table).values(
            case_id=event.case_id, seq=event.seq, trigger=event.trigger, source=event.source,
            dest=event.dest, actor_id=event.actor.id, actor=event.actor.to_json(), at=event.at,
            payload=event.payload, idempotency_key=None, prev_hash=event.prev_hash,
            hash=event.hash))
    except sa.exc.IntegrityError as exc:
        raise StoreError("foreign key") from exc


def test_create_schema_is_idempotent(target: Target) -> None:
    with target.open() as store:
        assert store.schema_version() is None
        store.create_schema()
        store.create_schema()
        store.commit([open_write("c-1")])
        assert store.schema_version() == gridflow.store.sql.SCHEMA_VERSION == 5
    with target.open() as again:
        again.create_schema()  # keeps what is stored
        assert again.get("c-1") == open_write("c-1").case
        with again.engine.connect() as conn:
            meta = conn.execute(sa.select(again.tables.meta)).all()
        assert sorted(tuple(r) for r in meta) == [("log_size", "0"), ("schema_version", "5")]


def test_no_schema_is_a_clear_error(target: Target) -> None:
    with target.open() as store:
        with pytest.raises(StoreError, match=r"call store.create_schema\(\)"):
            store.get("c-1")
        with pytest.raises(StoreError, match="no gridflow schema"):
            store.commit([open_write("c-1")])


def _set_version(store: SQLStore, value: str) -> None:
    meta = store.tables.meta
    _raw(store, sa.update(meta).where(meta.c.key == "schema_version").values(value=value))


def test_a_newer_schema_is_refused(sql: SQLStore, target: Target) -> None:
    sql.commit([open_write("c-1")])
    _set_version(sql, "99")
    with target.open() as newer:
        for operation in (lambda: newer.get("c-1"), lambda: newer.events("c-1"),
                          lambda: newer.commit([open_write("c-2")]), newer.create_schema,
                          lambda: newer.query(), lambda: newer.claim_due(T0)):
            with pytest.raises(SchemaVersionError) as caught:
                operation()
            assert "version 99, newer than this gridflow handles (schema version 5)" in str(
                caught.value)
        assert isinstance(caught.value, StoreError)
    _set_version(sql, "3")
    assert sql.get("c-2") is None


def test_an_older_schema_is_migrated_by_create_schema(
    sql: SQLStore, target: Target, monkeypatch: pytest.MonkeyPatch,
) -> None:
    sql.commit([open_write("c-1")])
    ran: list[int] = []

    def add_trigger_index(conn: sa.Connection, store: SQLStore) -> None:
        ran.append(1)
        sa.Index("ix_gridflow_events_trigger", store.events_table.c.trigger).create(conn)

    # Pretend this gridflow is one schema version ahead, with its migration.
    sql_module = sys.modules["gridflow.store.sql"]
    ahead = sql_module.SCHEMA_VERSION + 1
    monkeypatch.setattr(sql_module, "SCHEMA_VERSION", ahead)
    monkeypatch.setitem(sql_module._MIGRATIONS, ahead - 1, add_trigger_index)
    with target.open() as store:
        with pytest.raises(SchemaVersionError, match=f"version {ahead - 1}, older than this "
                                                     rf"gridflow's {ahead}; run "
                                                     r"store.create_schema\(\)"):
            store.get("c-1")
        store.create_schema()
        store.create_schema()
        assert ran == [1]
        assert store.schema_version() == ahead
        assert store.get("c-1") == open_write("c-1").case
        indexes = sa.inspect(store.engine).get_indexes("gridflow_events", schema=store.schema)
        assert "ix_gridflow_events_trigger" in {ix["name"] for ix in indexes}


def test_a_schema_without_a_migration_path_is_refused(sql: SQLStore, target: Target) -> None:
    _set_version(sql, "0")
    with target.open() as store:
        with pytest.raises(SchemaVersionError, match="no migration from version 0 to 1"):
            store.create_schema()
        assert store.schema_version() == 0


def test_a_mangled_schema_version_is_refused(sql: SQLStore, target: Target) -> None:
    _set_version(sql, "one")
    with target.open() as store, pytest.raises(SchemaVersionError, match="not a number"):
        store.get("c-1")


@pytest.mark.parametrize("url, problem", [
    ("not a url", "not a database URL"),
    ("mysql://u@localhost/db", "supports SQLite and PostgreSQL, not 'mysql'"),
])
def test_bad_urls_are_store_errors(url: str, problem: str) -> None:
    with pytest.raises(StoreError, match=problem):
        SQLStore(url)


def test_schema_needs_postgresql(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="schema='x' needs PostgreSQL"):
        SQLStore(f"sqlite:///{tmp_path / 'x.db'}", schema="x")


def test_an_unreachable_database_is_a_store_error(tmp_path: Path) -> None:
    store = SQLStore(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")
    with pytest.raises(StoreError, match="unable to open database file") as caught:
        store.create_schema()
    assert isinstance(caught.value.__cause__, sa.exc.OperationalError)
    with pytest.raises(StoreError):
        store.get("c-1")


def test_a_removed_database_is_a_store_error(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    store = SQLStore(f"sqlite:///{folder / 'cases.db'}")
    store.create_schema()
    store.commit([open_write("c-1")])
    store.close()
    for leftover in folder.iterdir():
        leftover.unlink()
    folder.rmdir()
    with pytest.raises(StoreError, match="reading case 'c-1' failed") as caught:
        store.get("c-1")
    assert isinstance(caught.value.__cause__, sa.exc.OperationalError)


def test_postgresql_without_a_driver_means_psycopg_3() -> None:
    store = SQLStore("postgresql://gf@db.example/cases")
    assert store.url.drivername == "postgresql+psycopg"


@pytest.mark.postgres
def test_an_unreachable_server_is_a_store_error(pg_url: str) -> None:
    url = sa.make_url(pg_url).set(port=1)
    store = SQLStore(url, connect_args={"connect_timeout": 2})
    with pytest.raises(StoreError, match=":1/") as caught:
        store.get("c-1")
    assert isinstance(caught.value.__cause__, sa.exc.OperationalError)


def test_a_file_that_is_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not a SQLite database, just bytes" * 100)
    with SQLStore(f"sqlite:///{path}") as store, pytest.raises(StoreError) as caught:
        store.create_schema()
    assert "not a database" in str(caught.value)
    assert caught.value.__cause__ is not None


def test_a_read_only_database_refuses_writes_and_stays_consistent(
    sql: SQLStore, target: Target,
) -> None:
    first = open_write("c-1", deadline=T0 + timedelta(days=1))
    sql.commit([first])
    if target.kind == "sqlite":
        path = sa.make_url(target.url).database
        read_only = SQLStore(f"sqlite:///file:{path}?mode=ro&uri=true")
    else:
        read_only = target.open(
            connect_args={"options": "-c default_transaction_read_only=on"})
    with read_only:
        assert read_only.get("c-1") == first.case  # reading still works
        with pytest.raises(StoreError, match="commit of case 'c-1' seq 2 failed") as caught:
            read_only.commit([next_write(first.case), open_write("c-2")])
        assert "read" in str(caught.value).lower()
        assert caught.value.__cause__ is not None
        with pytest.raises(StoreError):
            read_only.claim_due(T0 + timedelta(days=9))
    assert snapshot(sql, ["c-1", "c-2"]) == [(first.case, [first.event]), (None, [])]
    sql.commit([next_write(first.case)])  # the database is fine for a writer


def test_a_failure_mid_commit_rolls_everything_back(sql: SQLStore) -> None:
    a, b = open_write("c-a"), open_write("c-b")
    sql.commit([a, b])
    good = next_write(a.case, key="k-1")
    # A set is not JSON: the second write fails after the first one's row was
    # already updated inside the transaction.
    plain = next_write(b.case)
    bad = attrs.evolve(plain, case=attrs.evolve(plain.case, data={"oops": {1, 2}}))
    with pytest.raises(StoreError, match="not JSON serializable") as caught:
        sql.commit([good, bad])
    assert caught.value.__cause__ is not None
    assert snapshot(sql, ["c-a", "c-b"]) == [(a.case, [a.event]), (b.case, [b.event])]
    assert sql.event_by_key("k-1") is None


def test_negative_zero_is_refused_by_postgresql_only(sql: SQLStore, target: Target) -> None:
    w = open_write("c-1", data={"x": -0.0})
    if target.kind == "postgres":
        with pytest.raises(StoreError, match=r"-0\.0 cannot be stored"):
            sql.commit([w])
        assert sql.get("c-1") is None
    else:
        sql.commit([w])
        got = sql.get("c-1")
        assert got is not None and math.copysign(1.0, got.data["x"]) < 0


def test_store_repr_hides_the_password() -> None:
    store = SQLStore("postgresql+psycopg://gf:s3cret@db.example:5432/cases", schema="gf")
    assert "s3cret" not in repr(store)
    assert repr(store) == "SQLStore('postgresql+psycopg://gf:***@db.example:5432/cases', " \
                          "schema='gf')"


def test_a_missing_sqlalchemy_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(sys.modules):
        if name == "sqlalchemy" or name.startswith("sqlalchemy.") or name == "gridflow.store.sql":
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "sqlalchemy", None)  # import sqlalchemy fails
    with pytest.raises(ImportError, match=r"pip install 'gridflow\[sql\]'"):
        gridflow.SQLStore  # noqa: B018
    with pytest.raises(ImportError, match=r"gridflow\[sql\]"):
        from gridflow.store import SQLStore as _  # noqa: F401


# -- verify on stored history ------------------------------------------------------------


@pytest.fixture
def stored_story(sql: SQLStore, clock: FixedClock) -> tuple[Engine, str]:
    engine = Engine(store=sql, clock=clock, entry_points=False)
    case = engine.open("grid_case", version=1,
                       actor=RESIDENT, data={"title": "噪音", "source": "resident"})
    for i in range(4):
        clock.advance(timedelta(minutes=10))
        engine.fire(case.id, "note", actor=SECRETARY, payload={"text": f"第{i + 1}次走访"})
    assert engine.verify(case.id).version == 5
    return engine, case.id


def _events_where(store: SQLStore, case_id: str, seq: int) -> Any:
    e = store.events_table.c
    return sa.and_(e.case_id == case_id, e.seq == seq)


def caught_field(engine: Engine, case_id: str) -> str | None:
    with pytest.raises(IntegrityError) as caught:
        engine.verify(case_id)
    return caught.value.field


def _expect_bad(engine: Engine, case_id: str, seq: int, words: str) -> None:
    with pytest.raises(IntegrityError) as caught:
        engine.verify(case_id)
    assert (caught.value.case_id, caught.value.seq) == (case_id, seq)
    assert f"case {case_id!r} fails verification at seq {seq}" in str(caught.value)
    assert words in str(caught.value)


def test_verify_catches_a_raw_sql_update(stored_story: tuple[Engine, str]) -> None:
    engine, cid = stored_story
    store = engine.store
    assert isinstance(store, SQLStore)
    _raw(store, sa.update(store.events_table).where(_events_where(store, cid, 3))
         .values(payload={"text": "改过的记录"}))
    _expect_bad(engine, cid, 3, "does not match its content")


def test_verify_catches_a_raw_sql_actor_change(stored_story: tuple[Engine, str]) -> None:
    engine, cid = stored_story
    store = engine.store
    assert isinstance(store, SQLStore)
    _raw(store, sa.update(store.events_table).where(_events_where(store, cid, 4))
         .values(actor={"id": "someone-else", "roles": ["coordinator"], "grids": []}))
    _expect_bad(engine, cid, 4, "the event's actor changed")
    assert caught_field(engine, cid) == "actor"


def test_verify_catches_a_raw_sql_delete(stored_story: tuple[Engine, str]) -> None:
    engine, cid = stored_story
    store = engine.store
    assert isinstance(store, SQLStore)
    _raw(store, sa.delete(store.events_table).where(_events_where(store, cid, 2)))
    _expect_bad(engine, cid, 2, "expected seq 2, found seq 3")


def test_verify_catches_a_deleted_last_event(stored_story: tuple[Engine, str]) -> None:
    engine, cid = stored_story
    store = engine.store
    assert isinstance(store, SQLStore)
    _raw(store, sa.delete(store.events_table).where(_events_where(store, cid, 5)))
    _expect_bad(engine, cid, 5, "the case row is at version 5 but 4 events are stored")


def test_verify_catches_raw_sql_reordering(stored_story: tuple[Engine, str]) -> None:
    engine, cid = stored_story
    store = engine.store
    assert isinstance(store, SQLStore)
    e = store.events_table.c
    with store.engine.begin() as conn:  # swap seq 2 and 3
        conn.execute(sa.update(store.events_table).where(_events_where(store, cid, 2))
                     .values(seq=1000))
        conn.execute(sa.update(store.events_table).where(_events_where(store, cid, 3))
                     .values(seq=2))
        conn.execute(sa.update(store.events_table)
                     .where(e.case_id == cid, e.seq == 1000).values(seq=3))
    _expect_bad(engine, cid, 2, "the event's seq changed")


def test_verify_catches_a_raw_sql_state_change(stored_story: tuple[Engine, str]) -> None:
    engine, cid = stored_story
    store = engine.store
    assert isinstance(store, SQLStore)
    _raw(store, sa.update(store.cases).where(store.cases.c.id == cid).values(state="closed"))
    _expect_bad(engine, cid, 1, "the stored state is 'closed' but the events give 'reported'")
