"""Store benchmark: steps per second on each store, and whether a step slows down as
the number of stored cases grows.

Prints one table:

- steps/s with 1 writer and with 4 writers (4 processes for SQL stores, each on
  its own cases, as 4 service replicas would be; 4 threads for MemoryStore,
  which lives in one process);
- time per step with 10,000 and with 200,000 stored cases, and their ratio
  (about 1.0 means a step costs the same however many cases are stored).

A "step" is ``Engine.fire(case, "note", ...)`` on an existing grid case: read
the case, check, hash the event, and commit event + case row in one
transaction. Every figure is the median of several repeats. Nothing is
asserted about time: the numbers depend on the machine (and on who else uses
its 2 cores).

    python benchmarks/store_bench.py            # full run, a few minutes
    python benchmarks/store_bench.py --quick    # smoke run, a few seconds (CI)

PostgreSQL: ``GRIDFLOW_PG_URL`` or postgresql+psycopg://postgres@127.0.0.1:5432/test;
its rows say "n/a" when no server answers. The benchmark works in its own
schema and drops it afterwards.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs

import gridflow
from gridflow import Actor, Engine, FixedClock, MemoryStore, Store, Write
from gridflow.model import GENESIS_HASH, Case, Event

T0 = datetime(2026, 1, 5, 1, 0, tzinfo=UTC)
OPENER = Actor("bench-opener", ["resident"], grids=gridflow.ALL_GRIDS)
NOTER = Actor("bench-worker", ["grid_worker"], grids=gridflow.ALL_GRIDS)
GRIDS = ("华三-1", "华三-2", "华三-3", "华三-4")
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@attrs.frozen
class Settings:
    """How much work each measurement does."""

    repeats: int
    steps: int  # per repeat, per writer, SQL stores
    memory_steps: int  # per repeat, per writer, MemoryStore
    small: int  # stored cases, first size
    large: int  # stored cases, second size


FULL = Settings(repeats=5, steps=300, memory_steps=3000, small=10_000, large=200_000)
QUICK = Settings(repeats=3, steps=30, memory_steps=300, small=1_000, large=5_000)


# -- backends ---------------------------------------------------------------------------


@attrs.frozen
class Backend:
    """One row of the table: how to open its store (in any process)."""

    name: str
    kind: str  # memory | sqlite | postgres
    url: str = ""
    options: dict[str, Any] = attrs.field(factory=dict)

    def open(self) -> Store:
        if self.kind == "memory":
            return MemoryStore()
        return gridflow.SQLStore(self.url, **self.options)


def _engine(store: Store) -> Engine:
    return Engine(store=store, clock=FixedClock(T0), entry_points=False)


def _open_case(engine: Engine, n: int) -> str:
    return engine.open("grid_case", version=1, actor=OPENER, grid=GRIDS[n % len(GRIDS)],
                       data={"title": f"弄堂堆物 {n}", "source": "resident"}).id


def _steps(engine: Engine, case_ids: list[str], count: int, rng: random.Random) -> float:
    """Fire ``count`` note steps on random cases; return the seconds taken."""
    choice = rng.choice
    fire = engine.fire
    start = time.perf_counter()
    for i in range(count):
        fire(choice(case_ids), "note", actor=NOTER, payload={"text": f"走访记录 {i}"})
    return time.perf_counter() - start


# -- throughput: 1 writer, 4 writers ------------------------------------------------------


def one_writer(backend: Backend, store: Store, s: Settings) -> float:
    """Median steps/s of one writer on its own case."""
    engine = _engine(store)
    cases = [_open_case(engine, n) for n in range(4)]
    steps = s.memory_steps if backend.kind == "memory" else s.steps
    rng = random.Random(1)
    _steps(engine, cases, max(steps // 10, 5), rng)  # warm up
    return statistics.median(steps / _steps(engine, cases, steps, rng)
                             for _ in range(s.repeats))


def _writer_process(backend: Backend, worker: int, s: Settings, start: Any, out: Any) -> None:
    store = backend.open()
    engine = _engine(store)
    cases = [_open_case(engine, 1000 * worker + n) for n in range(4)]
    rng = random.Random(worker)
    _steps(engine, cases, max(s.steps // 10, 5), rng)
    for _ in range(s.repeats):
        start.wait(timeout=600)
        began = time.perf_counter()  # CLOCK_MONOTONIC: comparable across processes
        _steps(engine, cases, s.steps, rng)
        out.put((began, time.perf_counter()))


def four_writers(backend: Backend, s: Settings, writers: int = 4) -> float:
    """Median total steps/s of 4 concurrent writers, each on its own cases."""
    if backend.kind == "memory":
        return _four_threads(s, writers)
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Barrier(writers), ctx.Queue()
    procs = [ctx.Process(target=_writer_process, args=(backend, w, s, start, out))
             for w in range(writers)]
    for p in procs:
        p.start()
    rates = []
    for _ in range(s.repeats):
        spans = [out.get(timeout=600) for _ in range(writers)]
        wall = max(end for _, end in spans) - min(began for began, _ in spans)
        rates.append(writers * s.steps / wall)
    for p in procs:
        p.join(timeout=600)
    return statistics.median(rates)


def _four_threads(s: Settings, writers: int) -> float:
    engine = _engine(MemoryStore())
    per_thread = [[_open_case(engine, 1000 * w + n) for n in range(4)] for w in range(writers)]
    rates = []
    for _ in range(s.repeats):
        threads = [threading.Thread(target=_steps, args=(engine, cases, s.memory_steps,
                                                         random.Random(i)))
                   for i, cases in enumerate(per_thread)]
        began = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rates.append(writers * s.memory_steps / (time.perf_counter() - began))
    return statistics.median(rates)


def bare_sqlite(path: Path, s: Settings, synchronous: str = "FULL") -> float:
    """Baseline: the same transaction in bare sqlite3, same pragmas (steps/s)."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    db.execute("CREATE TABLE c (id TEXT PRIMARY KEY, version INT, data TEXT)")
    db.execute("CREATE TABLE e (case_id TEXT, seq INT, payload TEXT, PRIMARY KEY (case_id, seq))")
    db.execute("INSERT INTO c VALUES ('c-1', 0, '{}')")

    def run(count: int) -> float:
        start = time.perf_counter()
        for _ in range(count):
            db.execute("BEGIN IMMEDIATE")
            (version,) = db.execute("SELECT version FROM c WHERE id = 'c-1'").fetchone()
            db.execute("INSERT INTO e VALUES ('c-1', ?, '{\"text\": \"x\"}')", (version + 1,))
            db.execute("UPDATE c SET version = ?, data = '{}' WHERE id = 'c-1' AND version = ?",
                       (version + 1, version))
            db.execute("COMMIT")
        return time.perf_counter() - start

    run(max(s.steps // 10, 5))
    rate = statistics.median(s.steps / run(s.steps) for _ in range(s.repeats))
    db.close()
    return rate


# -- scale: time per step with N stored cases ---------------------------------------------


def _population(first: int, count: int) -> Iterator[tuple[Case, Event]]:
    """Consistent opened cases: each with its real open event and hash chain head."""
    for i in range(first, first + count):
        cid = f"seed-{i:07d}"
        at = T0 + timedelta(seconds=i)
        grid = GRIDS[i % len(GRIDS)]
        data = {"title": f"案件 {i}", "source": "visit"}
        event = Event.create(cid, 1, "open", None, "reported", OPENER, at,
                             {"data": data, "grid": grid, "links": []}, None, GENESIS_HASH)
        yield Case(cid, "grid_case", 1, "reported", 1, data, grid, at, at,
                   at + timedelta(days=1), (), event.hash), event


def seed(store: Store, first: int, count: int) -> None:
    """Store ``count`` opened cases fast: bulk inserts of consistent rows on SQL."""
    if not isinstance(store, gridflow.SQLStore):
        for case, event in _population(first, count):
            store.commit([Write(case, event, 0)])
        return
    chunk = 5000
    rows = _population(first, count)
    with store.engine.begin() as conn:
        while True:
            batch = [pair for _, pair in zip(range(chunk), rows, strict=False)]
            if not batch:
                break
            conn.execute(store.cases.insert(), [
                {"id": c.id, "workflow": c.workflow, "workflow_version": c.workflow_version,
                 "state": c.state, "version": c.version, "data": c.data, "grid": c.grid,
                 "opened_at": c.opened_at, "updated_at": c.updated_at,
                 "deadline_at": c.deadline_at, "links": list(c.links), "head": c.head,
                 "claimed_until": None} for c, _ in batch])
            conn.execute(store.events_table.insert(), [
                {"case_id": e.case_id, "seq": e.seq, "trigger": e.trigger, "source": e.source,
                 "dest": e.dest, "actor_id": e.actor.id, "actor": e.actor.to_json(),
                 "at": e.at, "payload": e.payload, "idempotency_key": e.idempotency_key,
                 "prev_hash": e.prev_hash, "hash": e.hash} for _, e in batch])
    if store.dialect == "postgresql":
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql(f'ANALYZE "{store.schema}".gridflow_cases')
            conn.exec_driver_sql(f'ANALYZE "{store.schema}".gridflow_events')


def time_per_step(stores: dict[int, Store], s: Settings) -> dict[int, float]:
    """Median µs per step on random stored cases, for each population size.

    The sizes are measured in turn within each repeat, so a change in the
    machine's load (it is shared) hits every size alike.
    """
    engines = {n: _engine(store) for n, store in stores.items()}
    ids = {n: [f"seed-{i:07d}" for i in range(n)] for n in stores}
    rngs = {n: random.Random(n) for n in stores}
    memory = all(isinstance(store, MemoryStore) for store in stores.values())
    steps = s.memory_steps if memory else s.steps
    for n in stores:
        _steps(engines[n], ids[n], max(steps // 10, 5), rngs[n])
    samples: dict[int, list[float]] = {n: [] for n in stores}
    for _ in range(s.repeats):
        for n in stores:
            samples[n].append(_steps(engines[n], ids[n], steps, rngs[n]) / steps * 1e6)
    return {n: statistics.median(found) for n, found in samples.items()}


# -- the run -----------------------------------------------------------------------------


def _pg_problem(url: str) -> str | None:
    try:
        import sqlalchemy as sa

        engine = sa.create_engine(url, connect_args={"connect_timeout": 3},
                                  poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}"


@contextmanager
def _postgres(url: str, count: int) -> Iterator[list[Backend]]:
    """``count`` PostgreSQL backends, each in a fresh schema, dropped afterwards."""
    backends = [Backend("PostgreSQL", "postgres", url,
                        {"schema": f"gfbench_{uuid.uuid4().hex[:12]}"}) for _ in range(count)]
    try:
        for backend in backends:
            store = backend.open()
            assert isinstance(store, gridflow.SQLStore)
            store.create_schema()
            store.close()
        yield backends
    finally:
        import sqlalchemy as sa

        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        with engine.begin() as conn:
            for backend in backends:
                conn.exec_driver_sql(
                    f'DROP SCHEMA IF EXISTS "{backend.options["schema"]}" CASCADE')
        engine.dispose()


Row = tuple[str, str, str, str, str, str]


def _fmt_rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def _fmt_us(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def measure(s: Settings, log: Callable[[str], None]) -> tuple[list[Row], list[str]]:
    """Run every measurement; return the table rows and footnotes."""
    rows: list[Row] = []
    notes: list[str] = []
    tmp = Path(tempfile.mkdtemp(prefix="gridflow-bench-"))

    def row(name: str, one: float | None, four: float | None,
            small: float | None, large: float | None) -> None:
        ratio = "n/a" if small is None or large is None else f"{large / small:.2f}"
        rows.append((name, _fmt_rate(one), _fmt_rate(four), _fmt_us(small), _fmt_us(large),
                     ratio))

    log("MemoryStore ...")
    memory = Backend("MemoryStore", "memory")
    stores: dict[int, Store] = {s.small: MemoryStore(), s.large: MemoryStore()}
    for size, store in stores.items():
        seed(store, 0, size)
    per_step = time_per_step(stores, s)
    row("MemoryStore", one_writer(memory, MemoryStore(), s), four_writers(memory, s),
        per_step[s.small], per_step[s.large])

    # One SQLite file per population size serves both synchronous settings
    # (a per-connection pragma): seed each once.
    log("SQLite, seeding ...")
    for size in (s.small, s.large):
        with gridflow.SQLStore(f"sqlite:///{tmp / f'scale-{size}.db'}") as seeder:
            seeder.create_schema()
            seed(seeder, 0, size)
    for sync in ("FULL", "NORMAL"):
        log(f"SQLite synchronous={sync} ...")
        sized = {size: gridflow.SQLStore(f"sqlite:///{tmp / f'scale-{size}.db'}",
                                         synchronous=sync) for size in (s.small, s.large)}
        per_step = time_per_step(dict(sized), s)
        for store in sized.values():
            store.close()
        backend = Backend(f"SQLite file, synchronous={sync}", "sqlite",
                          f"sqlite:///{tmp / f'bench-{sync.lower()}.db'}", {"synchronous": sync})
        with gridflow.SQLStore(backend.url, synchronous=sync) as store:
            store.create_schema()
            one = one_writer(backend, store, s)
        four = four_writers(backend, s)
        row(backend.name + (" (default)" if sync == "FULL" else " (opt-in)"), one, four,
            per_step[s.small], per_step[s.large])

    url = os.environ.get("GRIDFLOW_PG_URL") or DEFAULT_PG_URL
    problem = _pg_problem(url)
    if problem is not None:
        row("PostgreSQL", None, None, None, None)
        notes.append(f"PostgreSQL not reachable at {url.split('@')[-1]} ({problem}).")
    else:
        log("PostgreSQL ...")
        with _postgres(url, 3) as (writers, small, large):
            pg = {s.small: small.open(), s.large: large.open()}
            for size, store in pg.items():
                seed(store, 0, size)
            per_step = time_per_step(dict(pg), s)
            store = writers.open()
            one = one_writer(writers, store, s)
            four = four_writers(writers, s)
            for done in (store, *pg.values()):
                assert isinstance(done, gridflow.SQLStore)
                done.close()
            row("PostgreSQL (psycopg 3, local server)", one, four,
                per_step[s.small], per_step[s.large])

    log("bare sqlite3 baseline ...")
    base_full = bare_sqlite(tmp / "bare-full.db", s, "FULL")
    base_normal = bare_sqlite(tmp / "bare-normal.db", s, "NORMAL")
    notes.append(
        f"Baseline, bare sqlite3 (BEGIN IMMEDIATE, read version, insert event, "
        f"compare-and-set case, COMMIT; WAL): {base_full:,.0f} steps/s with "
        f"synchronous=FULL, {base_normal:,.0f} with NORMAL.")
    if s.small < 10_000:
        notes.append(f"--quick: {s.small:,} and {s.large:,} stored cases stand in for "
                     "10,000 and 200,000; figures are a smoke test only.")
    return rows, notes


HEADERS = ("store", "steps/s, 1 writer", "steps/s, 4 writers", "µs/step @ {small}",
           "µs/step @ {large}", "ratio")


def render(rows: list[Row], notes: list[str], s: Settings) -> str:
    headers = [h.format(small=f"{s.small:,}", large=f"{s.large:,}") for h in HEADERS]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Any) -> str:
        out = [str(c).ljust(w) if i == 0 else str(c).rjust(w)
               for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return "| " + " | ".join(out) + " |"

    parts = [line(headers),
             "|" + "|".join(("-" * (w + 1)) + (":" if i else "-") for i, w in
                            enumerate(widths)) + "|"]
    parts += [line(r) for r in rows]
    text = "\n".join(parts)
    text += (f"\n\nMedians of {s.repeats} repeats. 4 writers: 4 processes on their own "
             "cases (MemoryStore: 4 threads in one process). Ratio: µs/step with "
             f"{s.large:,} stored cases / with {s.small:,}; about 1.0 means flat.")
    for note in notes:
        text += "\n" + note
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--quick", action="store_true",
                        help="a few seconds of smoke testing instead of the full run")
    args = parser.parse_args(argv)
    s = QUICK if args.quick else FULL
    started = time.perf_counter()
    rows, notes = measure(s, lambda msg: print(msg, file=sys.stderr, flush=True))
    print(render(rows, notes, s))
    print(f"(gridflow {gridflow.__version__}, Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs, run took {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
