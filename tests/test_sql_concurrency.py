"""Many processes on one database: no lost update, no double step, nothing torn.

Runs on a SQLite file and on PostgreSQL. Worker processes are started with the
``spawn`` method (a fresh interpreter each, as separate service replicas are).
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gridflow import ALL_GRIDS, Actor, ConcurrencyError, Engine, FixedClock, SQLStore

pytestmark = pytest.mark.slow

T0 = datetime(2026, 1, 5, 1, 0, tzinfo=UTC)
WORKERS = 8
STEPS = 200
CASES = 3
#: Seconds a parent waits on its children before calling the run hung (a
#: safety net against a stuck test, never a timing assertion).
PATIENCE = 240

_ctx = multiprocessing.get_context("spawn")


#: SQLite's busy timeout for these stores: eight writer processes on a loaded 2-core CI
#: box once waited past the default 10 s for the write lock ("database is locked");
#: what is tested here is that nothing is lost or applied twice, not how long a wait is.
BUSY = 60.0


def _store(url: str, schema: str | None) -> SQLStore:
    return SQLStore(url, schema=schema, busy_timeout=BUSY) if schema else \
        SQLStore(url, busy_timeout=BUSY)


def _engine(url: str, schema: str | None, now: datetime = T0) -> Engine:
    return Engine(store=_store(url, schema), clock=FixedClock(now), entry_points=False)


class _AsyncWriter:
    """An `AsyncEngine` on an `AsyncSQLStore` (aiosqlite, psycopg async) in a
    worker process: each call runs on the process's event loop, so the async
    writers race the sync ones through the async drivers."""

    def __init__(self, url: str, schema: str | None) -> None:
        import asyncio

        import gridflow

        self._runner = asyncio.Runner()
        store = gridflow.AsyncSQLStore(url, schema=schema, busy_timeout=BUSY) if schema \
            else gridflow.AsyncSQLStore(url, busy_timeout=BUSY)
        self._engine = gridflow.AsyncEngine(store, clock=FixedClock(T0), entry_points=False)

    def open(self, *args: Any, **kwargs: Any) -> Any:
        return self._runner.run(self._engine.open(*args, **kwargs))

    def fire(self, *args: Any, **kwargs: Any) -> Any:
        return self._runner.run(self._engine.fire(*args, **kwargs))


def _writer(url: str, schema: str | None, use_async: bool) -> Any:
    return _AsyncWriter(url, schema) if use_async else _engine(url, schema)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str | None]]:
    """(url, schema) of an empty database with the gridflow schema created."""
    if request.param == "sqlite":
        url, schema = f"sqlite:///{tmp_path / 'race.db'}", None
    else:
        url, schema = request.getfixturevalue("pg_url"), request.getfixturevalue("pg_schema")
    with _store(url, schema) as store:
        store.create_schema()
    yield url, schema


def _collect(queue: Any, procs: list[Any], expected: int) -> list[Any]:
    """Every child's result (read before join, so no child blocks on a full pipe)."""
    results = [queue.get(timeout=PATIENCE) for _ in range(expected)]
    for p in procs:
        p.join(timeout=PATIENCE)
        assert p.exitcode == 0, f"worker {p.name} exited with {p.exitcode}"
    return results


# -- 8 writers on 3 cases -----------------------------------------------------------------


def note_worker(url: str, schema: str | None, case_ids: list[str], worker: int, steps: int,
                retries: int, use_async: bool, start: Any, out: Any) -> None:
    """Fire ``note`` steps at random cases; report every attempt and its outcome."""
    engine = _writer(url, schema, use_async)
    actor = Actor(f"w-{worker}", ["grid_worker"], grids=ALL_GRIDS)
    rng = random.Random(worker)
    landed: list[tuple[str, str]] = []
    records: list[tuple[str, str, str, str]] = []
    start.wait(timeout=PATIENCE)
    for i in range(steps):
        if i % 10 == 9 and landed:
            kind = "replay"  # the same request again: must not be applied twice
            case_id, key = rng.choice(landed)
        elif i % 7 == 3:
            kind = "shared"  # both workers of a pair send this very request
            case_id, key = case_ids[(worker // 2 + i) % len(case_ids)], f"s{worker // 2}-{i}"
        else:
            kind, case_id, key = "new", rng.choice(case_ids), f"w{worker}-{i}"
        try:
            engine.fire(case_id, "note", actor=actor, payload={"text": key},
                        idempotency_key=key, retries=retries)
            outcome = "ok"
            if kind == "new":
                landed.append((case_id, key))
        except ConcurrencyError:
            outcome = "conflict"
        except Exception as exc:  # reported to the parent, which fails the test
            outcome = f"error {exc!r}"
        records.append((case_id, key, kind, outcome))
    out.put((worker, retries, records))


@pytest.mark.parametrize("writers", ["sync", "mixed"])
def test_eight_writers_lose_nothing_and_apply_nothing_twice(db: tuple[str, str | None],
                                                            writers: str) -> None:
    # "mixed": every other writer is an AsyncEngine on the async drivers.
    url, schema = db
    engine = _engine(url, schema)
    opener = Actor("opener", ["resident"], grids=ALL_GRIDS)
    case_ids = [engine.open("grid_case", version=1, actor=opener,
                            data={"title": f"热点 {n}", "source": "resident"}).id
                for n in range(CASES)]

    start, out = _ctx.Barrier(WORKERS), _ctx.Queue()
    procs = [_ctx.Process(target=note_worker, name=f"writer-{w}",
                          args=(url, schema, case_ids, w, STEPS, 0 if w % 2 else 4,
                                writers == "mixed" and w % 4 >= 2, start, out))
             for w in range(WORKERS)]
    for p in procs:
        p.start()
    results = _collect(out, procs, WORKERS)

    records = [r for _, _, rs in results for r in rs]
    assert len(records) == WORKERS * STEPS
    errors = [r for r in records if r[3] not in ("ok", "conflict")]
    assert errors == []

    stored: Counter[str] = Counter()
    stored_on: dict[str, str] = {}
    for cid in case_ids:
        history = engine.history(cid)
        case = engine.verify(cid)  # hash chain intact and replay == stored state
        assert [e.seq for e in history] == list(range(1, len(history) + 1))
        assert case.version == len(history)
        for event in history[1:]:
            assert event.idempotency_key is not None
            stored[event.idempotency_key] += 1
            stored_on[event.idempotency_key] = cid
    assert max(stored.values()) == 1, "an idempotency key was applied twice"

    new_ok = 0
    shared: dict[str, list[str]] = {}
    for case_id, key, kind, outcome in records:
        if kind == "new":
            # A fresh step either landed (once, on its case) or raised ConcurrencyError.
            assert (outcome == "ok") == (key in stored), (key, outcome)
            if outcome == "ok":
                assert stored_on[key] == case_id
                new_ok += 1
        elif kind == "replay":
            assert outcome == "ok" and stored[key] == 1
        else:
            shared.setdefault(key, []).append(outcome)
    for key, outcomes in shared.items():
        assert len(outcomes) == 2
        assert stored[key] == (1 if "ok" in outcomes else 0), (key, outcomes)
    # Every attempted step landed or raised ConcurrencyError, and every stored
    # step is one that an attempt reported as done.
    new = [r for r in records if r[2] == "new"]
    new_conflicts = sum(1 for r in new if r[3] == "conflict")
    assert len(new) == new_ok + new_conflicts
    landed_shared = sum(1 for key in shared if stored[key])
    assert sum(stored.values()) == new_ok + landed_shared


# -- a writer killed mid-run ----------------------------------------------------------------


def crash_worker(url: str, schema: str | None, use_async: bool, out: Any) -> None:
    """Open linked cases and fire steps until killed; report each commit."""
    engine = _writer(url, schema, use_async)
    resident, secretary = Actor("r", ["resident"], grids=ALL_GRIDS), Actor("s", ["coordinator"],
                                                                           grids=ALL_GRIDS)
    rng = random.Random(7)
    ids: list[str] = []
    n = 0
    while True:
        n += 1
        if not ids or n % 5 == 0:
            # Opening with links writes the new case and a 'link' event on each
            # linked case in one transaction.
            links = rng.sample(ids, min(len(ids), 2))
            ids.append(engine.open("grid_case", version=1, actor=resident, links=links,
                                   data={"title": f"事件 {n}", "source": "resident"}).id)
        else:
            engine.fire(rng.choice(ids), "note", actor=secretary,
                        payload={"text": f"第 {n} 条 " + "记录" * rng.randint(0, 200)})
        out.put(n)


@pytest.mark.parametrize("writer", ["sync", "async"])
def test_a_writer_killed_mid_run_leaves_every_case_verifying(
    db: tuple[str, str | None], writer: str,
) -> None:
    url, schema = db
    out = _ctx.Queue()
    proc = _ctx.Process(target=crash_worker, args=(url, schema, writer == "async", out),
                        name="crasher")
    proc.start()
    try:
        while out.get(timeout=PATIENCE) < 120:
            pass
    finally:
        os.kill(proc.pid or 0, signal.SIGKILL)
        proc.join(timeout=PATIENCE)
    assert proc.exitcode == -signal.SIGKILL

    engine = _engine(url, schema)
    cases = engine.store.query(limit=10_000).items
    assert len(cases) >= 120 // 5
    for case in cases:
        assert engine.verify(case.id) == case
        for other in case.links:  # both ends of every link, or neither
            linked = engine.get(other)
            assert case.id in linked.links


# -- two timer workers claiming at once -------------------------------------------------------


def claim_worker(url: str, schema: str | None, now: datetime, start: Any, out: Any) -> None:
    """Claim overdue cases in small batches, escalate each as `Engine.tick` does."""
    engine = _engine(url, schema, now)
    claimed: list[str] = []
    escalated = 0
    start.wait(timeout=PATIENCE)
    while True:
        batch = engine.store.claim_due(now, limit=3, lease=3600)
        if not batch:
            break
        for case in batch:
            claimed.append(case.id)
            try:
                engine.fire(case.id, "escalate", actor=Actor.system(),
                            payload={"reason": "deadline passed"},
                            expected_version=case.version)
                escalated += 1
            except ConcurrencyError:
                pass
    out.put((claimed, escalated))


def test_two_claim_workers_never_claim_the_same_case(db: tuple[str, str | None]) -> None:
    url, schema = db
    clock = FixedClock(T0)
    engine = Engine(store=_store(url, schema), clock=clock, entry_points=False)
    resident, secretary = Actor("r", ["resident"], grids=ALL_GRIDS), Actor("s", ["coordinator"],
                                                                           grids=ALL_GRIDS)
    ids = []
    for n in range(40):
        case = engine.open("grid_case", version=1, actor=resident,
                           data={"title": f"噪音 {n}", "source": "resident"})
        engine.fire(case.id, "triage", actor=secretary,
                    payload={"category": "噪音", "priority": "normal"})
        engine.fire(case.id, "dispatch", actor=secretary,
                    payload={"departments": ["城管"], "plan": "劝导"})
        ids.append(case.id)
    now = clock.advance(timedelta(days=6))  # joint_action's 5 days have run out

    start, out = _ctx.Barrier(2), _ctx.Queue()
    procs = [_ctx.Process(target=claim_worker, args=(url, schema, now, start, out),
                          name=f"timer-{i}") for i in range(2)]
    for p in procs:
        p.start()
    (first, esc1), (second, esc2) = _collect(out, procs, 2)

    assert set(first).isdisjoint(second), "a case was claimed by both workers"
    assert sorted(first + second) == sorted(ids)
    assert esc1 + esc2 == len(ids)
    for cid in ids:
        history = engine.history(cid)
        assert [e.trigger for e in history].count("escalate") == 1
        assert engine.verify(cid).state == "escalated"
