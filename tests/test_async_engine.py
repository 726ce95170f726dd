"""`AsyncEngine`: awaitable hooks, an event loop that is never blocked, and
cancellation that stores a step fully or not at all.

The contract tests (tests/test_engine.py, test_scope.py, test_refusals.py, ...)
run on the async engine too, through the ``engine`` fixture's ``async`` param;
the process races in test_sql_concurrency.py include async writers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import gridflow
from gridflow import Actor, AsyncEngine, AsyncSQLStore, Case, Event, FixedClock

T0 = datetime(2026, 1, 5, 1, 0, tzinfo=UTC)
GRID = "华三-1"
resident = Actor("r", ["resident"], [GRID])
secretary = Actor("s", ["coordinator"], [GRID])


class AsyncHooks:
    """Every deciding hook as a coroutine, each awaiting the event loop first."""

    def __init__(self) -> None:
        self.after: list[tuple[str, int]] = []

    @gridflow.hookimpl
    async def gridflow_veto(self, case: Case, trigger: str, actor: Actor,
                            payload: dict[str, Any]) -> str | None:
        await asyncio.sleep(0)
        return "夜间不派单" if payload.get("at_night") else None

    @gridflow.hookimpl
    async def gridflow_before_fire(self, case: Case, trigger: str, actor: Actor,
                                   payload: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"checked_by": "async-plugin"}

    @gridflow.hookimpl
    async def gridflow_after_fire(self, case: Case, event: Event) -> None:
        await asyncio.sleep(0)
        self.after.append((case.id, event.seq))


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres",
                                                         marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    if request.param == "memory":
        yield None
    elif request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'async.db'}"
    else:
        yield request.getfixturevalue("pg_url") + "#" + request.getfixturevalue("pg_schema")


async def _store(url: str | None) -> gridflow.Store:
    if url is None:
        return gridflow.MemoryStore()
    where, _, schema = url.partition("#")
    store = AsyncSQLStore(where, schema=schema or None)
    await store.prepare()
    return store


async def _close(store: gridflow.Store) -> None:
    if isinstance(store, AsyncSQLStore):
        await store.aclose()


def test_hooks_may_return_awaitables(url: str | None) -> None:
    async def main() -> None:
        store = await _store(url)
        hooks = AsyncHooks()
        engine = AsyncEngine(store, clock=FixedClock(T0), entry_points=False, plugins=[hooks])
        case = await engine.open("grid_case", version=1, actor=resident, grid=GRID,
                                 data={"title": "路灯坏了", "source": "resident"})
        with pytest.raises(gridflow.GuardRejected, match="夜间不派单"):
            await engine.fire(case.id, "triage", actor=secretary,
                              payload={"category": "市容", "priority": "normal",
                                       "at_night": True})
        case = await engine.fire(case.id, "triage", actor=secretary,
                                 payload={"category": "市容", "priority": "normal"})
        assert case.data["checked_by"] == "async-plugin"
        assert hooks.after == [(case.id, 1), (case.id, 2)]
        await engine.verify(case.id)
        await _close(store)

    asyncio.run(main())


def test_the_sync_engine_refuses_an_async_hook_by_name() -> None:
    engine = gridflow.Engine(clock=FixedClock(T0), entry_points=False)
    engine.register(AsyncHooks(), name="notify")
    with pytest.raises(gridflow.PluginError, match=r"notify.*gridflow_veto returned an "
                                                   r"awaitable.*AsyncEngine"):
        engine.open("grid_case", version=1, actor=resident, grid=GRID,
                    data={"title": "路灯坏了", "source": "resident"})
    assert len(engine.store) == 0  # type: ignore[arg-type]  # nothing stored


def test_the_event_loop_runs_while_steps_wait_for_the_database(tmp_path: Path) -> None:
    async def main() -> tuple[int, int]:
        store = await _store(f"sqlite:///{tmp_path / 'loop.db'}")
        engine = AsyncEngine(store, clock=FixedClock(T0), entry_points=False)
        beats = 0
        done = asyncio.Event()

        async def heartbeat() -> None:
            nonlocal beats
            while not done.is_set():
                beats += 1
                await asyncio.sleep(0)

        beat = asyncio.create_task(heartbeat())
        cases = await asyncio.gather(*(engine.open(
            "grid_case", version=1, actor=resident, grid=GRID,
            data={"title": f"堆物 {i}", "source": "resident"}) for i in range(20)))
        done.set()
        await beat
        await _close(store)
        return beats, len({c.id for c in cases})

    beats, opened = asyncio.run(main())
    # The heartbeat ran between the database's round trips: nothing blocked the loop.
    assert opened == 20 and beats > 20


def _cancel_at_every_point(url: str | None, attempts: int = 120) -> dict[str, int]:
    """Cancel one `fire` after k loop iterations, for k = 0, 1, 2, ... until one
    finishes first; after each: stored fully (event, row, after-hook once) or not
    at all (nothing, no after-hook), and the case verifies."""
    seen = {"abandoned": 0, "finished_after_cancel": 0, "completed": 0}

    async def main() -> None:
        store = await _store(url)
        hooks = AsyncHooks()
        engine = AsyncEngine(store, clock=FixedClock(T0), entry_points=False,
                             plugins=[hooks])
        for k in range(attempts):
            case = await engine.open("grid_case", version=1, actor=resident, grid=GRID,
                                     data={"title": f"堆物 {k}", "source": "resident"})
            hooks.after.clear()
            task = asyncio.ensure_future(engine.fire(
                case.id, "triage", actor=secretary,
                payload={"category": "市容", "priority": "normal"}))
            for _ in range(k):
                await asyncio.sleep(0)
            cancelled = task.cancel()
            try:
                await task
                outcome = "completed"
            except asyncio.CancelledError:
                outcome = None
            await engine.drain()
            after = await engine.get(case.id)
            await engine.verify(case.id)
            stored = after.version == 2
            assert stored == ((case.id, 2) in hooks.after), (k, stored, hooks.after)
            assert after.state == ("triaged" if stored else "reported")
            assert len(hooks.after) == (1 if stored else 0)
            if outcome is None:
                outcome = "finished_after_cancel" if stored else "abandoned"
            seen[outcome] += 1
            if not cancelled or outcome == "completed":
                break
        assert list(engine.background_errors) == []
        await _close(store)

    asyncio.run(main())
    return seen


def test_cancelling_fire_at_every_await_point_stores_all_or_nothing(url: str | None) -> None:
    seen = _cancel_at_every_point(url)
    assert seen["abandoned"] >= 1  # cancelled before the commit began: nothing stored
    if url is not None:
        # On a database some cancellations land while the commit is in flight: the
        # step finishes (after-hooks included) and the caller still sees the cancel.
        assert seen["finished_after_cancel"] + seen["completed"] >= 1


def test_newer_engine_methods_come_back_as_coroutines() -> None:
    engine = AsyncEngine(clock=FixedClock(T0), entry_points=False)
    assert engine.clock.now() == T0  # plain attributes read through

    class Extra(gridflow.Engine):
        def census(self) -> int:
            return len(self.store.query(limit=10).items)

    extra = AsyncEngine(entry_points=False)
    extra.sync.__class__ = Extra
    assert asyncio.run(extra.census()) == 0


def test_a_sync_worker_and_an_async_service_share_one_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    sync = gridflow.Engine(store=gridflow.SQLStore(url), clock=FixedClock(T0),
                           entry_points=False)
    sync.store.create_schema()  # type: ignore[attr-defined]
    case = sync.open("grid_case", version=1, actor=resident, grid=GRID,
                     data={"title": "路灯坏了", "source": "resident"})

    async def main() -> Case:
        store = AsyncSQLStore(url)
        engine = AsyncEngine(store, clock=FixedClock(T0), entry_points=False)
        moved = await engine.fire(case.id, "triage", actor=secretary,
                                  payload={"category": "市容", "priority": "normal"})
        await store.aclose()
        return moved

    moved = asyncio.run(main())
    assert sync.get(case.id) == moved
    assert sync.verify(case.id).state == "triaged"


def test_async_url_picks_the_async_driver() -> None:
    from gridflow.store.async_sql import async_url

    assert async_url("sqlite:///x.db").drivername == "sqlite+aiosqlite"
    assert async_url("sqlite+aiosqlite:///x.db").drivername == "sqlite+aiosqlite"
    assert async_url("postgresql://u@h/d").drivername == "postgresql+psycopg_async"
    with pytest.raises(gridflow.StoreError, match="no async driver"):
        async_url("mysql+pymysql://u@h/d")
