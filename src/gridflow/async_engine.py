"""`AsyncEngine`: the engine for asyncio services (FastAPI, aiohttp, ...).

It runs the very code of `Engine` — every check, rule, message and hook call —
inside a greenlet, the way SQLAlchemy's asyncio extension runs its ORM: each
database round trip (on `AsyncSQLStore`) and each awaitable a hook returns is
handed to the event loop, and the step resumes with the result. No rule is
written twice, and the event loop is never blocked by the database.

**Cancellation is explicit and safe.** Cancelling a call (a client that hangs
up, a timeout) before its step begins to commit abandons the step: nothing is
stored. Once the commit has begun, the cancellation no longer reaches it: the
step commits (or fails whole), its after-hooks run, and the caller gets
`asyncio.CancelledError` all the same; a failure of that finishing step is
kept in `AsyncEngine.background_errors` and logged. Nothing else is ever
cancelled implicitly. Retry a cancelled call with the same
``idempotency_key`` to learn its result.

Example:
    >>> import asyncio, gridflow
    >>> async def main():
    ...     engine = gridflow.AsyncEngine(clock=gridflow.FixedClock(), entry_points=False)
    ...     w = gridflow.Actor("w", ["grid_worker"], ["g"])
    ...     case = await engine.open("grid_case", actor=w, grid="g",
    ...                              data={"title": "路灯坏了", "source": "visit"})
    ...     return (await engine.get(case.id)).state
    >>> asyncio.run(main())
    'reported'
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from gridflow._bridge import Run
from gridflow.engine import Engine
from gridflow.model import Actor, Case, Event
from gridflow.spec import WorkflowSpec
from gridflow.store import Store

__all__ = ["AsyncEngine"]

log = logging.getLogger("gridflow.async_engine")

T = TypeVar("T")


def _spawn(run: Run, fn: Callable[..., T], args: tuple[Any, ...],
           kwargs: dict[str, Any]) -> Any:
    from sqlalchemy.util import greenlet_spawn

    def body() -> T:
        import greenlet

        # Read by the store (commit begins) and by hook results to be awaited.
        greenlet.getcurrent().gridflow_run = run
        return fn(*args, **kwargs)

    return greenlet_spawn(body)


class AsyncEngine:
    """`Engine`'s methods as coroutines, over the same step core.

    ``store`` is an `AsyncSQLStore` or a `MemoryStore` (the default: a new one);
    every other argument is `Engine`'s. `sync` is the `Engine` underneath:
    its configuration (plugins, workflows, clock) is shared, but call it only
    through this object when the store is an `AsyncSQLStore`.

    Plugins stay pluggy: a hook may return an awaitable, and the async engine
    awaits it where the sync engine would use the value.

    Example:
        >>> import asyncio, gridflow
        >>> engine = gridflow.AsyncEngine(entry_points=False)
        >>> asyncio.run(engine.allowed("x", gridflow.Actor.system()))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        gridflow._errors.CaseNotVisible: case 'x' does not exist...
    """

    def __init__(self, store: Store | None = None, **options: Any) -> None:
        #: The sync `Engine` whose code every call runs.
        self.sync = Engine(store, **options)
        #: Failures of steps that finished after their caller was cancelled.
        self.background_errors: deque[BaseException] = deque(maxlen=100)
        self._finishing: set[asyncio.Future[Any]] = set()

    # -- the bridge ---------------------------------------------------------------------

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run any function that uses this engine or its store (e.g.
        ``gridflow.metrics.compute(engine.store, ...)``) under the engine's rules
        for awaiting and cancelling.

        Example:
            >>> import asyncio, gridflow
            >>> engine = gridflow.AsyncEngine(entry_points=False)
            >>> asyncio.run(engine.run(lambda: engine.store.counts(("state",))))
            {}
        """
        run = Run()
        task = asyncio.ensure_future(_spawn(run, fn, args, kwargs))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                raise
            if not run.committing:
                # The step has not begun to commit: abandon it (its transaction
                # rolls back at the await it is in), and wait until it has.
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                raise
            # Committing: let it finish on its own, and keep what it ends with.
            self._finishing.add(task)
            task.add_done_callback(self._finished)
            raise

    def _finished(self, task: asyncio.Future[Any]) -> None:
        self._finishing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            assert error is not None
            self.background_errors.append(error)
            log.error("a step whose caller was cancelled failed while finishing: %s: %s",
                      type(error).__name__, error)

    async def drain(self) -> None:
        """Wait for every step still finishing after its caller was cancelled (call
        it before shutting down).

        Example:
            >>> import asyncio, gridflow
            >>> asyncio.run(gridflow.AsyncEngine(entry_points=False).drain())
        """
        while self._finishing:
            await asyncio.gather(*self._finishing, return_exceptions=True)

    # -- the API (each method is Engine's, awaited) ------------------------------------

    @property
    def store(self) -> Store:
        """The store (the sync engine's).

        Example:
            >>> import gridflow
            >>> type(gridflow.AsyncEngine(entry_points=False).store).__name__
            'MemoryStore'
        """
        return self.sync.store

    def register(self, plugin: object, name: str | None = None) -> str:
        """`Engine.register` (no I/O: not a coroutine).

        Example:
            >>> import gridflow
            >>> class P:
            ...     pass
            >>> gridflow.AsyncEngine(entry_points=False).register(P(), name="p")
            'p'
        """
        return self.sync.register(plugin, name)

    def register_workflow(self, spec: WorkflowSpec) -> None:
        """`Engine.register_workflow` (no I/O: not a coroutine).

        Example:
            >>> import gridflow
            >>> from gridflow.workflows import GRID_CASE
            >>> gridflow.AsyncEngine(entry_points=False).register_workflow(GRID_CASE)
        """
        self.sync.register_workflow(spec)

    def workflow(self, name: str, version: int | None = None) -> WorkflowSpec:
        """`Engine.workflow`.

        Example:
            >>> import gridflow
            >>> gridflow.AsyncEngine(entry_points=False).workflow("mediation").initial
            'intake'
        """
        return self.sync.workflow(name, version)

    async def open(self, workflow: str, *, actor: Actor, data: Mapping[str, Any] | None = None,
                   grid: str | None = None, links: Sequence[str] = (),
                   idempotency_key: str | None = None, version: int | None = None,
                   case_id: str | None = None) -> Case:
        """`Engine.open`, awaited.

        Example:
            >>> import asyncio, gridflow
            >>> engine = gridflow.AsyncEngine(entry_points=False)
            >>> case = asyncio.run(engine.open("grid_case", grid="g",
            ...     actor=gridflow.Actor("w", ["grid_worker"], ["g"]),
            ...     data={"title": "t", "source": "visit"}))
            >>> case.version
            1
        """
        return await self.run(self.sync.open, workflow, actor=actor, data=data, grid=grid,
                              links=links, idempotency_key=idempotency_key, version=version,
                              case_id=case_id)

    async def fire(self, case_id: str, trigger: str, *, actor: Actor,
                   payload: Mapping[str, Any] | None = None,
                   idempotency_key: str | None = None, expected_version: int | None = None,
                   retries: int = 0) -> Case:
        """`Engine.fire`, awaited.

        Example:
            >>> import asyncio, gridflow
            >>> engine = gridflow.AsyncEngine(entry_points=False)
            >>> async def main():
            ...     case = await engine.open("grid_case", grid="g",
            ...         actor=gridflow.Actor("w", ["grid_worker"], ["g"]),
            ...         data={"title": "t", "source": "visit"})
            ...     case = await engine.fire(case.id, "triage",
            ...         actor=gridflow.Actor("s", ["coordinator"], ["g"]),
            ...         payload={"category": "市容", "priority": "normal"})
            ...     return case.state
            >>> asyncio.run(main())
            'triaged'
        """
        return await self.run(self.sync.fire, case_id, trigger, actor=actor, payload=payload,
                              idempotency_key=idempotency_key,
                              expected_version=expected_version, retries=retries)

    async def get(self, case_id: str, *, actor: Actor | None = None) -> Case:
        """`Engine.get`, awaited.

        Example:
            >>> import asyncio, gridflow
            >>> engine = gridflow.AsyncEngine(entry_points=False)
            >>> asyncio.run(engine.get("x"))  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            gridflow._errors.CaseNotFound: case 'x' does not exist...
        """
        return await self.run(self.sync.get, case_id, actor=actor)

    async def history(self, case_id: str, *, actor: Actor | None = None) -> list[Event]:
        """`Engine.history`, awaited.

        Example:
            >>> import asyncio, gridflow
            >>> engine = gridflow.AsyncEngine(entry_points=False)
            >>> asyncio.run(engine.history("x"))  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            gridflow._errors.CaseNotFound: case 'x' does not exist...
        """
        return await self.run(self.sync.history, case_id, actor=actor)

    async def allowed(self, case_id: str, actor: Actor, *,
                      payload: Mapping[str, Any] | None = None) -> list[str]:
        """`Engine.allowed`, awaited.

        Example:
            >>> import asyncio, gridflow
            >>> engine = gridflow.AsyncEngine(entry_points=False)
            >>> async def main():
            ...     case = await engine.open("grid_case", grid="g",
            ...         actor=gridflow.Actor("w", ["grid_worker"], ["g"]),
            ...         data={"title": "t", "source": "visit"})
            ...     return await engine.allowed(case.id,
            ...         gridflow.Actor("s", ["coordinator"], ["g"]))
            >>> "triage" in asyncio.run(main())
            True
        """
        return await self.run(self.sync.allowed, case_id, actor, payload=payload)

    async def linked(self, case_id: str, *, actor: Actor | None = None) -> list[Case]:
        """`Engine.linked`, awaited.

        Example:
            >>> import asyncio, gridflow
            >>> engine = gridflow.AsyncEngine(entry_points=False)
            >>> async def main():
            ...     case = await engine.open("grid_case", grid="g",
            ...         actor=gridflow.Actor("w", ["grid_worker"], ["g"]),
            ...         data={"title": "t", "source": "visit"})
            ...     return await engine.linked(case.id)
            >>> asyncio.run(main())
            []
        """
        return await self.run(self.sync.linked, case_id, actor=actor)

    async def route(self, case_id: str, *, actor: Actor | None = None) -> list[str]:
        """`Engine.route`, awaited.

        Example:
            >>> import asyncio, gridflow
            >>> engine = gridflow.AsyncEngine(entry_points=False)
            >>> async def main():
            ...     case = await engine.open("grid_case", grid="g",
            ...         actor=gridflow.Actor("w", ["grid_worker"], ["g"]),
            ...         data={"title": "t", "source": "visit"})
            ...     return await engine.route(case.id)
            >>> asyncio.run(main())
            []
        """
        return await self.run(self.sync.route, case_id, actor=actor)

    async def tick(self, now: datetime | None = None, limit: int = 100) -> list[Event]:
        """`Engine.tick`, awaited.

        Example:
            >>> import asyncio, gridflow
            >>> asyncio.run(gridflow.AsyncEngine(entry_points=False).tick())
            []
        """
        return await self.run(self.sync.tick, now, limit)

    async def verify(self, case_id: str) -> Case:
        """`Engine.verify`, awaited.

        Example:
            >>> import asyncio, gridflow
            >>> engine = gridflow.AsyncEngine(entry_points=False)
            >>> asyncio.run(engine.verify("x"))  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            gridflow._errors.CaseNotFound: case 'x' does not exist...
        """
        return await self.run(self.sync.verify, case_id)

    async def replay(self, case_id: str) -> Case:
        """`Engine.replay`, awaited.

        Example:
            >>> import asyncio, gridflow
            >>> engine = gridflow.AsyncEngine(entry_points=False)
            >>> asyncio.run(engine.replay("x"))  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            gridflow._errors.CaseNotFound: case 'x' does not exist...
        """
        return await self.run(self.sync.replay, case_id)

    def __getattr__(self, name: str) -> Any:
        # Engine attributes without I/O (clock, calendar, guards, hook_errors,
        # tick_errors, telemetry, plugins) read through; any other Engine method
        # (those that later versions add too) comes back as a coroutine function.
        if name.startswith("_"):
            raise AttributeError(name)
        found = getattr(self.sync, name)
        if not callable(found) or getattr(found, "__self__", None) is not self.sync:
            return found

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await self.run(found, *args, **kwargs)

        call.__name__ = call.__qualname__ = name
        call.__doc__ = found.__doc__
        return call
