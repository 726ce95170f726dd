"""The compact rows of `MemoryStore` (each event kept as the canonical text its hash
covers, less what the store shares): reads give back exactly what was committed,
on the same operations the store answers as SQLite does, and any edit of a stored
row that changes what a reader sees fails verification."""

from __future__ import annotations

import io
import itertools
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gridflow
from gridflow import (
    Actor,
    Case,
    Changes,
    Engine,
    Event,
    FixedClock,
    IntegrityError,
    MemoryStore,
    SQLStore,
    Write,
)
from gridflow.interop.export import write_csv
from gridflow.model import GENESIS_HASH
from gridflow.store.memory import _Log

T0 = datetime(2026, 3, 2, 1, tzinfo=UTC)
GRID = "华三-1"
RESIDENT = Actor("r-1", ["resident"], [GRID])
SECRETARY = Actor("s-1", ["coordinator"], [GRID])
DEPARTMENT = Actor("d-1", ["department"], grids=gridflow.ALL_GRIDS)
VOLUNTEER = Actor("v-1", ["volunteer"], [GRID])
LIFECYCLE: list[tuple[str, Actor, dict[str, Any] | None]] = [
    ("triage", SECRETARY, {"category": "违规堆物", "priority": "normal"}),
    ("dispatch", SECRETARY, {"departments": ["社区管理办", "清运单位"], "plan": "联合整治"}),
    ("report_done", DEPARTMENT, {"department": "社区管理办", "result": "已清理",
                                 "ratio": 0.75, "count": 2**40}),
    ("report_done", DEPARTMENT, {"department": "清运单位", "result": "已清运"}),
    ("close", SECRETARY, None),
    ("start_revisit", VOLUNTEER, None),
    ("confirm", VOLUNTEER, {"observation": "未反弹"}),
]
_IDS = itertools.count()


def same(a: Any, b: Any) -> bool:
    """Equal, and of the very same types all the way down (1 is not True, a tuple
    not a list, a +08:00 time not its UTC instant)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        # (The keys in any order: a MemoryStore gives them back sorted, as hashed.)
        return sorted(a) == sorted(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, datetime):
        return a == b and a.utcoffset() == b.utcoffset() and a.fold == b.fold
    if isinstance(a, Changes | Event | Actor):
        return all(same(getattr(a, f.name), getattr(b, f.name)) for f in attrs.fields(type(a)))
    return bool(a == b)


def lifecycle(engine: Engine, clock: FixedClock) -> str:
    case = engine.open("grid_case", version=1, actor=RESIDENT, grid=GRID,
                       data={"title": "弄堂违规堆物", "source": "visit"})
    for trigger, actor, payload in LIFECYCLE:
        clock.advance(timedelta(minutes=7))
        engine.fire(case.id, trigger, actor=actor, payload=payload,
                    idempotency_key=f"k-{case.id}-{trigger}-{clock.now().minute}")
    return case.id


def engines(tmp_path: Path) -> tuple[list[Engine], FixedClock, FixedClock]:
    memory_clock, sqlite_clock = FixedClock(T0), FixedClock(T0)
    sql = SQLStore(f"sqlite:///{tmp_path / 'rows.db'}")
    sql.create_schema()
    return ([Engine(store=MemoryStore(), clock=memory_clock, entry_points=False),
             Engine(store=sql, clock=sqlite_clock, entry_points=False)],
            memory_clock, sqlite_clock)


def test_every_read_agrees_with_sqlite(tmp_path: Path) -> None:
    """The same steps on a MemoryStore and on SQLite: get, history, event_by_key,
    query, counts, fingerprints and the CSV export give equal values (case ids aside:
    each store's engine draws its own, so they are mapped)."""
    (memory, sqlite), mc, sc = engines(tmp_path)
    ids = []
    for _ in range(3):
        ids.append((lifecycle(memory, mc), lifecycle(sqlite, sc)))
    log = memory.store._events[ids[0][0]]
    assert isinstance(log, _Log) and all(isinstance(row, bytes) for row in log.rows)
    for mid, sid in ids:
        m_case, s_case = memory.get(mid), sqlite.get(sid)
        assert attrs.evolve(m_case, id=sid, head=s_case.head) == s_case
        m_events, s_events = memory.history(mid), sqlite.history(sid)
        assert len(m_events) == len(s_events) == 8
        for m, s in zip(m_events, s_events, strict=True):
            assert same(m.payload, s.payload) and same(m.changes, s.changes)
            assert (m.trigger, m.source, m.dest, m.actor, m.at, m.idempotency_key) == \
                (s.trigger, s.source, s.dest, s.actor, s.at, s.idempotency_key.replace(
                    sid, mid) if s.idempotency_key else None)
        for m in m_events[1:]:
            assert m.idempotency_key is not None
            assert memory.store.event_by_key(m.idempotency_key) == m
    assert memory.store.counts(("state", "grid")) == sqlite.store.counts(("state", "grid"))
    assert memory.store.fingerprints() == sqlite.store.fingerprints()
    assert [c.state for c in memory.store.query(limit=10).items] == \
        [c.state for c in sqlite.store.query(limit=10).items]
    m_csv, s_csv = io.StringIO(), io.StringIO()
    write_csv(memory.store, m_csv, workflow="grid_case")
    write_csv(sqlite.store, s_csv, workflow="grid_case")
    text = m_csv.getvalue()
    for mid, sid in ids:
        text = text.replace(mid, sid)
    assert text == s_csv.getvalue()
    assert memory.verify_all() == sqlite.verify_all() == 3


# -- any committed event comes back exactly ------------------------------------------------

_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=6)
_scalar = (st.none() | st.booleans() | st.integers(-(2**70), 2**70)
           | st.floats(allow_nan=False, allow_infinity=False) | _text)
_json = st.recursive(_scalar, lambda inner: (st.lists(inner, max_size=3)
                                             | st.tuples(inner)
                                             | st.dictionaries(_text, inner, max_size=3)),
                     max_leaves=8)
_times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                      timezones=st.sampled_from([UTC, timezone(timedelta(hours=8))]))


@st.composite
def histories(draw: st.DrawFn) -> list[Event]:
    case_id = f"c-{next(_IDS)}"
    prev = GENESIS_HASH
    out: list[Event] = []
    for seq in range(1, draw(st.integers(1, 4)) + 1):
        payload = draw(st.dictionaries(_text, _json, max_size=3))
        changes = Changes(
            set=draw(st.dictionaries(_text, _json, max_size=3)),
            unset=tuple(draw(st.lists(_text, max_size=2))),
            deadline_at=draw(st.none() | _times),
            links=tuple(draw(st.lists(_text, max_size=2))),
            workflow_version=draw(st.integers(1, 3)),
            workflow="grid_case" if seq == 1 else None,
            grid=draw(st.none() | _text) if seq == 1 else None)
        actor = draw(st.sampled_from([RESIDENT, SECRETARY, Actor.system(),
                                      Actor.stored("x", ["a b"], ["g"])]))
        key = draw(st.none() | _text.map(f"{case_id}:{seq}:".__add__))
        event = Event.create(case_id, seq, draw(st.sampled_from(["open", "note", "触发"])),
                             None if seq == 1 else "s", draw(st.none() | st.just("t")),
                             actor, draw(_times), payload, key,
                             draw(st.just(prev) | st.just("f" * 64)), changes)
        out.append(event)
        prev = event.hash
    return out


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None, max_examples=200)
@given(histories())
def test_reads_give_back_exactly_what_was_committed(events: list[Event]) -> None:
    """Events of any values (floats, big integers, tuples, +08:00 times, a prev_hash that
    does not chain) come back equal and of the same types; those the rows keep
    compactly are the plain ones that chain."""
    store = MemoryStore()
    for event in events:
        case = Case(event.case_id, "grid_case", 1, "s", event.seq, {}, None, event.at,
                    event.at, head=event.hash)
        store.commit([Write(case, event, event.seq - 1)])
    read = store.events(events[0].case_id)
    assert all(same(a, b) for a, b in zip(read, events, strict=True))
    for event in events:
        if event.idempotency_key is not None:
            assert same(store.event_by_key(event.idempotency_key), event)
    log = store._events[events[0].case_id]
    assert isinstance(log, _Log)
    prev = GENESIS_HASH
    for row, event in zip(log.rows, events, strict=True):
        if isinstance(row, bytes):
            assert event.prev_hash == prev and event.at.utcoffset() == timedelta(0)
        prev = event.hash


# -- tampering with the stored rows themselves ----------------------------------------------


def test_every_edited_byte_of_a_row_fails_verification() -> None:
    """Each byte of a stored row flipped in turn (the hash, the header naming seq, actor
    and step, the time, payload and changes): verify and verify_all raise
    IntegrityError, unless the edit changes nothing a reader sees (``T`` → ``U`` in a
    time, which `datetime.fromisoformat` reads alike): then both pass."""
    clock = FixedClock(T0)
    engine = Engine(store=MemoryStore(), clock=clock, entry_points=False)
    cid = lifecycle(engine, clock)
    other = lifecycle(engine, clock)
    before = engine.history(cid)
    log = engine.store._events[cid]
    assert isinstance(log, _Log)
    unseen = 0
    for index in (0, 3, len(log.rows) - 1):
        original = log.rows[index]
        assert isinstance(original, bytes)
        for at in range(len(original)):
            for flip in (0x01, 0x80):
                edited = bytearray(original)
                edited[at] ^= flip
                log.rows[index] = bytes(edited)
                try:
                    try:
                        engine.verify(cid)
                    except IntegrityError:
                        with pytest.raises(IntegrityError) as raised:
                            engine.verify_all()
                        assert raised.value.case_id == cid
                    else:
                        assert engine.history(cid) == before
                        assert engine.verify_all() == 2
                        unseen += 1
                finally:
                    log.rows[index] = original
    assert unseen <= 6  # the date/time separators of the times only
    assert engine.verify_all() == 2 and other


def test_an_edited_shared_step_fails_verification() -> None:
    """The steps (trigger, source, dest) are kept once per store: editing one edits
    every event that uses it, and each such case fails."""
    clock = FixedClock(T0)
    engine = Engine(store=MemoryStore(), clock=clock, entry_points=False)
    cid = lifecycle(engine, clock)
    tables = engine.store._tables
    at = next(i for i, s in enumerate(tables.steps) if s[0] == "close")
    _, source, dest, text = tables.steps[at]
    tables.steps[at] = ("reopen", source, dest, text)
    with pytest.raises(IntegrityError) as raised:
        engine.verify_all()
    assert raised.value.case_id == cid and raised.value.field == "hash"


def test_a_row_turned_into_an_event_still_verifies() -> None:
    """Editing a history through the list interface first turns the case's rows into
    `Event` objects: what a reader sees is unchanged and verifies on the object path;
    an edited event is caught there."""
    clock = FixedClock(T0)
    engine = Engine(store=MemoryStore(), clock=clock, entry_points=False)
    cid = lifecycle(engine, clock)
    before = engine.history(cid)
    log = engine.store._events[cid]
    log[2] = log[2]
    assert not any(isinstance(row, bytes) for row in log.rows)
    assert engine.history(cid) == before and engine.verify_all() == 1
    log[2] = attrs.evolve(log[2], payload={**log[2].payload, "x": 1})
    with pytest.raises(IntegrityError) as raised:
        engine.verify_all()
    assert (raised.value.seq, raised.value.field) == (3, "hash")


def test_the_engine_text_and_the_store_encoding_agree() -> None:
    """A row is cut from the text the engine hashed (`gridflow.model.last_text`) when it
    is this event's, else encoded by the store: both give the very same bytes."""
    from gridflow import model
    from gridflow.store.memory import _encode

    clock = FixedClock(T0)
    engine = Engine(store=MemoryStore(), clock=clock, entry_points=False)
    cid = lifecycle(engine, clock)
    log = engine.store._events[cid]
    assert isinstance(log, _Log)
    for row, event in zip(log.rows, engine.history(cid), strict=True):
        model.last_text = None
        assert _encode(engine.store._tables, log.prefix, event) == row


@pytest.mark.parametrize("edit", [
    {"trigger": "close"}, {"seq": 7}, {"case_id": "c-other"}, {"source": "x"},
    {"dest": None}, {"actor": Actor.system()}, {"at": T0 + timedelta(seconds=1)},
    {"idempotency_key": "k-2"}, {"prev_hash": "a" * 64}, {"hash": "b" * 64},
])
def test_a_text_hashed_for_another_event_is_not_taken(edit: dict[str, Any]) -> None:
    """An event built from another's payload and changes objects (the engine's last text
    was written for those): the store keeps what was committed, not that text."""
    first = Event.create("c-1", 1, "open", None, "reported", RESIDENT, T0, {"a": [1]},
                         "k-1", GENESIS_HASH, Changes({"b": 2}, workflow="grid_case"))
    event = attrs.evolve(first, **edit)
    store = MemoryStore()
    case = Case(event.case_id, "grid_case", 1, "reported", event.seq, {}, None, T0, T0)
    store.commit([Write(case, event, 0)])
    assert all(same(a, b) for a, b in zip(store.events(event.case_id), [event], strict=True))
