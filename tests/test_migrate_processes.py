"""Migrations across processes: a migrator SIGKILLed halfway and resumed, and a
migration of 1,000 cases on PostgreSQL while 4 processes fire steps at them."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gridflow import ALL_GRIDS, Actor, Engine, FixedClock, SQLStore
from migration_v3 import PLAN, V3Plugin, fill

pytestmark = pytest.mark.slow

T0 = datetime(2026, 1, 5, 1, 0, tzinfo=UTC)
#: Seconds a parent waits on its children before calling the run hung (a
#: safety net, never a timing assertion).
PATIENCE = 240

_ctx = multiprocessing.get_context("spawn")


def _engine(url: str, schema: str | None) -> Engine:
    store = SQLStore(url, schema=schema) if schema else SQLStore(url)
    return Engine(store=store, clock=FixedClock(T0), entry_points=False, plugins=[V3Plugin()])


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str | None]]:
    if request.param == "sqlite":
        url, schema = f"sqlite:///{tmp_path / 'migrate.db'}", None
    else:
        url, schema = request.getfixturevalue("pg_url"), request.getfixturevalue("pg_schema")
    store = SQLStore(url, schema=schema) if schema else SQLStore(url)
    store.create_schema()
    store.close()
    yield url, schema


# -- a migrator killed halfway --------------------------------------------------------------


def migrator(url: str, schema: str | None, out: Any) -> None:
    """Migrate, reporting each case before it is committed; blocks forever at case 60."""
    engine = _engine(url, schema)
    seen = [0]

    def progress(case: Any, target: str) -> None:
        seen[0] += 1
        if seen[0] == 61:
            out.put("half")
            import time

            time.sleep(PATIENCE)  # killed here: 60 cases committed, the 61st prepared
        return None

    engine.migrate(_plan_with(progress), actor=Actor.system())
    out.put("done")  # pragma: no cover - killed before


def _plan_with(effect: Any) -> Any:
    import attrs

    return attrs.evolve(PLAN, effects={"progress": effect})


def test_a_migration_killed_halfway_resumes_and_moves_each_case_once(
        db: tuple[str, str | None]) -> None:
    url, schema = db
    engine = _engine(url, schema)
    cases = fill(engine, 120)
    out = _ctx.Queue()
    proc = _ctx.Process(target=migrator, args=(url, schema, out), name="migrator")
    proc.start()
    try:
        assert out.get(timeout=PATIENCE) == "half"
    finally:
        os.kill(proc.pid or 0, signal.SIGKILL)
        proc.join(timeout=PATIENCE)
    assert proc.exitcode == -signal.SIGKILL
    store = engine.store
    assert store.counts(("workflow_version",)) == {(1,): 60, (3,): 60}

    report = engine.migrate(_plan_with(lambda case, target: None), actor=Actor.system())
    assert report.moved == 60 and report.already == 60 and not report.refused
    assert store.counts(("workflow_version",)) == {(3,): 120}
    for cid in cases:
        assert engine.verify(cid).workflow_version == 3
        assert [e.trigger for e in store.events(cid)].count("migrate") == 1
    assert engine.migrate(PLAN, actor=Actor.system()).moved == 0


# -- live traffic during a migration (PostgreSQL) ------------------------------------------------


def firer(url: str, schema: str, ids: list[str], seed: int, go: Any, out: Any) -> None:
    """Fire notes at random cases until told to stop; report how many landed."""
    engine = _engine(url, schema)
    secretary = Actor(f"s-{seed}", ["coordinator"], grids=ALL_GRIDS)
    rng = random.Random(seed)
    landed: list[str] = []
    go.wait(PATIENCE)
    for n in range(150):
        case_id = rng.choice(ids)
        engine.fire(case_id, "note", actor=secretary, payload={"text": f"{seed}-{n}"},
                    retries=50)
        landed.append(case_id)
    out.put(landed)


@pytest.mark.postgres
def test_migrating_1000_cases_while_4_processes_fire_steps(
        pg_url: str, pg_schema: str) -> None:
    store = SQLStore(pg_url, schema=pg_schema)
    store.create_schema()
    engine = Engine(store=store, clock=FixedClock(T0), entry_points=False,
                    plugins=[V3Plugin()])
    secretary = Actor("书记", ["coordinator"], grids=ALL_GRIDS)
    ids = []
    for i in range(1000):
        case = engine.open("grid_case", actor=secretary, grid="g", case_id=f"m-{i:04d}",
                           version=1, data={"title": "堆物", "source": "visit"})
        ids.append(case.id)
    go, out = _ctx.Event(), _ctx.Queue()
    procs = [_ctx.Process(target=firer, args=(pg_url, pg_schema, ids, seed, go, out))
             for seed in range(4)]
    for p in procs:
        p.start()
    go.set()
    report = engine.migrate(PLAN, actor=Actor.system(), retries=10)
    landed = [case_id for _ in procs for case_id in out.get(timeout=PATIENCE)]
    for p in procs:
        p.join(timeout=PATIENCE)
        assert p.exitcode == 0
    # Cases still changing after the retries are reported; a second run takes them.
    rest = engine.migrate(PLAN, actor=Actor.system())
    assert report.moved + rest.moved == 1000
    assert rest.moved == len(report.skipped)
    print(f"\nmigrated {report.moved} of 1000 while 4 processes fired {len(landed)} notes: "
          f"{report.conflicts} conflict(s) retried, {len(report.skipped)} skipped and "
          f"moved on the second run")
    assert store.counts(("workflow_version",)) == {(3,): 1000}
    notes = 0
    for case_id in ids:
        case = engine.verify(case_id)
        events = store.events(case_id)
        triggers = [e.trigger for e in events]
        assert triggers.count("migrate") == 1 and case.workflow_version == 3
        notes += triggers.count("note")
        # Every note after the migration ran on version 3's rules (the fold says so).
        at = triggers.index("migrate")
        assert all(e.changes is not None and e.changes.workflow_version == 3
                   for e in events[at:])
    assert notes == len(landed)  # no lost update
    store.close()
