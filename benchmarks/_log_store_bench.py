"""The store side of signed checkpoints, for ``benchmarks/log_bench.py``.

Fills a SQLite file and a PostgreSQL schema with N valid events by bulk
inserts (a template case — open then notes — re-hashed under new case ids,
rows written with ``executemany``), then measures:

- ``checkpoint`` of 10,000 new events (the sequencer step and the signature);
- a full ``verify_log`` of the N events, beside the floor: a bare loop that
  reads the same rows (every event row, every leaf row) with the DBAPI cursor
  and recomputes a SHA-256 per row with hashlib (target: <= 3x);
- an incremental ``verify_log`` of 10,000 new events after a trusted
  checkpoint over N, beside a full verification of a store holding only
  those 10,000 events (target: <= 2x);
- the size of one case's proof bundle (JSON).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import gridflow
from gridflow import Actor, Engine, FixedClock, SQLStore
from gridflow.model import GENESIS_HASH, Case, Event

PER_CASE = 5  # events per case: open + 4 notes
PG_URL = os.environ.get("GRIDFLOW_PG_URL") or "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _template() -> tuple[Case, list[Event]]:
    engine = Engine(clock=FixedClock(datetime(2026, 1, 5, 1, tzinfo=UTC)), entry_points=False)
    r = Actor("r-1", ["resident", "grid_worker"], ["g"])
    case = engine.open("grid_case", version=1, actor=r, grid="g",
                       data={"title": "楼道堆物", "source": "resident"})
    for i in range(PER_CASE - 1):
        case = engine.fire(case.id, "note", actor=r, payload={"text": f"回访 {i}"})
    return case, engine.history(case.id)


def _clone(case: Case, events: list[Event], case_id: str, shift: timedelta
           ) -> tuple[Case, list[Event]]:
    out, prev = [], GENESIS_HASH
    for e in events:
        n = Event.create(case_id, e.seq, e.trigger, e.source, e.dest, e.actor, e.at + shift,
                         e.payload, None, prev, e.changes)
        out.append(n)
        prev = n.hash
    row = Case(case_id, case.workflow, case.workflow_version, case.state, case.version,
               case.data, case.grid, case.opened_at + shift, case.updated_at + shift,
               None if case.deadline_at is None else case.deadline_at + shift,
               case.links, prev)
    return row, out


def fill(store: SQLStore, n_events: int, tag: str) -> list[str]:
    """Bulk-insert ``n_events`` valid events (``n_events / 5`` cases); returns the ids."""
    template, events = _template()
    ids: list[str] = []
    batch_cases: list[dict[str, Any]] = []
    batch_events: list[dict[str, Any]] = []

    def flush() -> None:
        if not batch_cases:
            return
        with store.engine.begin() as conn:
            conn.execute(store.cases.insert(), batch_cases)
            conn.execute(store.events_table.insert(), batch_events)
        batch_cases.clear()
        batch_events.clear()

    for i in range(n_events // PER_CASE):
        cid = f"{tag}-{i:08d}"
        row, evs = _clone(template, events, cid, timedelta(0))
        params = store._case_params(row)
        params["id"] = cid
        batch_cases.append(params)
        batch_events.extend(store._event_params(e) for e in evs)
        ids.append(cid)
        if len(batch_cases) >= 2_000:
            flush()
    flush()
    return ids


def floor(store: SQLStore) -> float:
    """Read every event row and every leaf row, one SHA-256 per row: the bare floor."""
    ev, lt = store.events_table, store.log_tables[0]
    name = store.engine.dialect.identifier_preparer.format_table
    start = time.perf_counter()
    raw = store.engine.raw_connection()
    try:
        sha = hashlib.sha256
        for table in (ev, lt):
            cur = raw.cursor()
            cur.execute(f"SELECT * FROM {name(table)}")
            while True:
                rows = cur.fetchmany(10_000)
                if not rows:
                    break
                for r in rows:
                    sha("\x1f".join(map(str, r)).encode()).digest()
            cur.close()
    finally:
        raw.close()
    return time.perf_counter() - start


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


class _PG:
    """PostgreSQL schemas made for one run, dropped afterwards."""

    def __init__(self) -> None:
        self.schemas: list[str] = []

    def make(self) -> SQLStore:
        schema = f"gflogbench_{uuid.uuid4().hex[:10]}"
        self.schemas.append(schema)
        return SQLStore(PG_URL, schema=schema)

    def drop(self) -> None:
        import sqlalchemy as sa

        engine = sa.create_engine(PG_URL)
        with engine.begin() as conn:
            for s in self.schemas:
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{s}" CASCADE'))
        engine.dispose()


def _pg_reachable() -> bool:
    import sqlalchemy as sa

    try:
        probe = sa.create_engine(PG_URL)
        with probe.connect():
            pass
        probe.dispose()
    except Exception as exc:  # no server: say so, run the rest
        print(f"PostgreSQL not reachable ({type(exc).__name__}); skipped", file=sys.stderr)
        return False
    return True


def _stores(kinds: list[str]) -> Iterator[tuple[str, Callable[[], SQLStore], Callable[[], None]]]:
    for kind in kinds:
        if kind == "sqlite":
            folder = tempfile.mkdtemp(prefix="gridflow-logbench-")

            def make(folder: str = folder) -> SQLStore:
                return SQLStore(f"sqlite:///{folder}/log-{uuid.uuid4().hex[:6]}.db",
                                synchronous="NORMAL")

            yield "SQLite", make, lambda: None
        elif kind == "postgres" and _pg_reachable():
            pg = _PG()
            yield "PostgreSQL", pg.make, pg.drop


def run(n: int, new: int, kinds: list[str]) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    skey, vkey = gridflow.generate_key("bench.example/gridflow")
    for label, make, cleanup in _stores(kinds):
        try:
            rows.extend(_bench(label, make, n, new, skey, vkey))
        finally:
            cleanup()
    return rows


def _bench(label: str, make: Callable[[], SQLStore], n: int, new: int, skey: str, vkey: str
           ) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    store = make()
    store.create_schema()
    engine = Engine(store=store, entry_points=False)
    print(f"{label}: filling {n:,} events...", file=sys.stderr)
    t_fill, _ = _timed(lambda: fill(store, n, "base"))
    t_cp_n, trusted = _timed(lambda: engine.checkpoint(skey))
    rows.append((f"{label}: bulk insert {n:,} events / first checkpoint over them",
                 f"{t_fill:.1f} s / {t_cp_n:.2f} s"))
    if store.dialect == "postgresql":
        # After a bulk load and the first checkpoint over it (every event row
        # updated once), as an operator would: see docs/trust.md.
        import sqlalchemy as sa

        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text(f"VACUUM ANALYZE {store.schema}.gridflow_events"))
            conn.execute(sa.text(f"ANALYZE {store.schema}.gridflow_log_leaves"))
    print(f"{label}: full verify_log...", file=sys.stderr)
    t_full, _ = _timed(lambda: engine.verify_log(trusted=trusted, key=vkey))
    t_floor = floor(store)
    rows.append((f"{label}: full verify_log of {n:,} events",
                 f"{t_full:.2f} s = {t_full / n * 1e6:.1f} µs/event"))
    rows.append(("  floor: read the same rows, one hashlib SHA-256 each",
                 f"{t_floor:.2f} s (verify_log = {t_full / t_floor:.1f} ×, target <= 3 ×)"))
    fill(store, new, "new")
    t_cp, latest = _timed(lambda: engine.checkpoint(skey))
    rows.append((f"{label}: checkpoint of {new:,} new events (tree of {n + new:,})",
                 f"{t_cp:.3f} s"))
    t_nothing, again = _timed(lambda: engine.checkpoint(skey))
    assert again == latest
    rows.append((f"{label}: checkpoint over nothing new", f"{t_nothing * 1e3:.1f} ms"))
    print(f"{label}: incremental verify_log...", file=sys.stderr)
    t_inc, _ = _timed(lambda: engine.verify_log(trusted=trusted, key=vkey, incremental=True))
    bundle = engine.prove("new-00000000")
    size = len(json.dumps(bundle, ensure_ascii=False).encode())
    store.close()
    # The same new events alone, verified from scratch.
    alone = make()
    alone.create_schema()
    engine2 = Engine(store=alone, entry_points=False)
    fill(alone, new, "new")
    first = engine2.checkpoint(skey)
    t_scratch, _ = _timed(lambda: engine2.verify_log(trusted=first, key=vkey))
    alone.close()
    rows.append((f"{label}: incremental verify_log of {new:,} new after a trusted "
                 f"checkpoint over {n:,}", f"{t_inc:.2f} s"))
    rows.append((f"  the same {new:,} events verified from scratch (alone)",
                 f"{t_scratch:.2f} s (incremental = {t_inc / t_scratch:.2f} ×, target <= 2 ×)"))
    rows.append((f"{label}: proof bundle of one case ({PER_CASE} events, tree of {n + new:,})",
                 f"{size:,} bytes of JSON"))
    return rows
