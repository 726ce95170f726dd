"""Steps from 4 processes while 2 processes checkpoint in a loop: one tree, no fork.

Afterwards every event is a leaf exactly once, the stored checkpoints form one
chain (each consistent with the next), and `verify_log` passes from the first.
Runs on a SQLite file and on PostgreSQL, processes started with ``spawn``.
"""

from __future__ import annotations

import itertools
import multiprocessing
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import gridflow
from gridflow import ALL_GRIDS, Actor, ConcurrencyError, Engine, FixedClock, SQLStore
from gridflow.log import merkle, note
from gridflow.store._log import log_for

pytestmark = pytest.mark.slow

T0 = datetime(2026, 1, 5, 1, 0, tzinfo=UTC)
STEPPERS, CHECKPOINTERS, STEPS = 4, 2, 40
PATIENCE = 240  # a safety net against a hung child, never a timing assertion
SKEY, VKEY = gridflow.generate_key("example.org/race-log")  # children get SKEY passed
_ctx = multiprocessing.get_context("spawn")


def _engine(url: str, schema: str | None) -> Engine:
    store = SQLStore(url, schema=schema) if schema else SQLStore(url)
    return Engine(store=store, clock=FixedClock(T0), entry_points=False)


def stepper(url: str, schema: str | None, worker: int, start: Any, out: Any) -> None:
    engine = _engine(url, schema)
    actor = Actor(f"w-{worker}", ["grid_worker", "resident"], grids=ALL_GRIDS)
    start.wait(timeout=PATIENCE)
    made = 0
    case = None
    for i in range(STEPS):
        try:
            if i % 4 == 0:
                case = engine.open("grid_case", version=1, actor=actor, grid="g",
                                   data={"title": f"w{worker}-{i}", "source": "resident"})
            else:
                assert case is not None
                engine.fire(case.id, "note", actor=actor, payload={"text": str(i)})
            made += 1
        except ConcurrencyError:
            pass
    engine.store.close()  # type: ignore[attr-defined]
    out.put(("steps", made))


def checkpointer(url: str, schema: str | None, skey: str, start: Any, out: Any) -> None:
    engine = _engine(url, schema)
    start.wait(timeout=PATIENCE)
    texts = [engine.checkpoint(skey) for _ in range(15)]
    engine.store.close()  # type: ignore[attr-defined]
    out.put(("checkpoints", texts))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str | None]]:
    if request.param == "sqlite":
        url, schema = f"sqlite:///{tmp_path / 'race.db'}", None
    else:
        url, schema = request.getfixturevalue("pg_url"), request.getfixturevalue("pg_schema")
    with (SQLStore(url, schema=schema) if schema else SQLStore(url)) as store:
        store.create_schema()
    yield url, schema


def test_concurrent_steps_and_checkpoints_make_one_tree(db: tuple[str, str | None]) -> None:
    url, schema = db
    start, out = _ctx.Event(), _ctx.Queue()
    procs = [_ctx.Process(target=stepper, args=(url, schema, w, start, out))
             for w in range(STEPPERS)]
    procs += [_ctx.Process(target=checkpointer, args=(url, schema, SKEY, start, out))
              for _ in range(CHECKPOINTERS)]
    for p in procs:
        p.start()
    start.set()
    results = [out.get(timeout=PATIENCE) for _ in procs]
    for p in procs:
        p.join(timeout=PATIENCE)
        assert p.exitcode == 0
    steps = sum(r for kind, r in results if kind == "steps")
    engine = _engine(url, schema)
    final = engine.checkpoint(SKEY)
    log = log_for(engine.store)
    size = note.verify_checkpoint(final, VKEY).size
    assert size == steps
    # Every event a leaf exactly once.
    leaves = list(log.leaves(0, size))
    assert [idx for idx, *_ in leaves] == list(range(size))
    assert all(event_h == leaf_h for _, _, _, leaf_h, event_h, _ in leaves)
    assert max(Counter((c, s) for _, c, s, *_ in leaves).values()) == 1
    assert log.unlogged(size) == []
    # One chain of checkpoints: sizes never shrink, each consistent with the next.
    stored = [note.verify_checkpoint(t, VKEY) for t in log.checkpoints()]
    for old, new in itertools.pairwise(stored):
        assert old.size <= new.size
        plan = merkle.consistency_plan(old.size, new.size)
        merkle.verify_consistency(old.size, new.size, old.root_hash, new.root_hash,
                                  plan.assemble(log.nodes(plan.ids)))
    # What each checkpointer was handed is one of the stored ones.
    handed = {t for kind, r in results if kind == "checkpoints" for t in r}
    assert handed <= set(log.checkpoints())
    assert engine.verify_log(trusted=log.checkpoints()[0], key=VKEY) == final
    engine.store.close()  # type: ignore[attr-defined]
