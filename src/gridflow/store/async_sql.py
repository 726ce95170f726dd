"""`AsyncSQLStore`: the SQL store on SQLAlchemy's asyncio extension (aiosqlite,
psycopg's async mode), for `AsyncEngine`.

It is `SQLStore` — the same schema, the same statements, the same checks —
with an async driver underneath: SQLAlchemy's asyncio extension runs Core's
sync API inside a greenlet and hands every database round trip to the event
loop. So a sync worker and an async service share one database, and a rule of
the store is written once.

Its `Store` methods are called by `AsyncEngine` inside that greenlet; from your
own async code use the coroutines `prepare` (create the schema), `run`
(any store call, e.g. ``await store.run(store.query, state="triaged")``) and
`aclose`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gridflow._errors import StoreError
from gridflow.store.sql import SQLStore

__all__ = ["AsyncSQLStore", "async_url"]

T = TypeVar("T")

#: The async driver of each backend (gridflow[async]).
_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+psycopg_async"}


def async_url(url: str | sa.URL) -> sa.URL:
    """``url`` with its backend's async driver (``sqlite`` → ``sqlite+aiosqlite``,
    ``postgresql``/``postgresql+psycopg`` → ``postgresql+psycopg_async``); an
    async driver named already is kept.

    Example:
        >>> async_url("sqlite:///cases.db").drivername
        'sqlite+aiosqlite'
        >>> async_url("postgresql+psycopg://u@db/cases").drivername
        'postgresql+psycopg_async'
    """
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise StoreError(f"not a database URL: {url!r}; use e.g. 'sqlite:///cases.db' or "
                         "'postgresql+psycopg://user@host/dbname'") from exc
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    if driver in ("aiosqlite", "psycopg_async", "asyncpg"):
        return parsed
    if backend in _ASYNC_DRIVERS and driver in ("pysqlite", "psycopg", "psycopg2", ""):
        return parsed.set(drivername=_ASYNC_DRIVERS[backend])
    if backend in _ASYNC_DRIVERS and parsed.drivername == backend:
        return parsed.set(drivername=_ASYNC_DRIVERS[backend])
    raise StoreError(f"AsyncSQLStore has no async driver for {parsed.drivername!r}; use "
                     "sqlite+aiosqlite:// or postgresql+psycopg_async://")


class AsyncSQLStore(SQLStore):
    """`SQLStore` over an async driver, for `AsyncEngine`.

    Takes the same arguments as `SQLStore`; a sync URL is given its backend's
    async driver (`async_url`). Needs ``pip install 'gridflow[async]'``.
    With ``read_url=`` (PostgreSQL) the read replica is an `AsyncSQLStore` too;
    ``await store.run(store.wait_for_replica)`` waits for it without blocking
    the event loop, and `aclose` closes it with the primary.

    Example:
        >>> import asyncio, os, tempfile, gridflow
        >>> async def main():
        ...     store = gridflow.AsyncSQLStore(
        ...         "sqlite:///" + os.path.join(tempfile.mkdtemp(), "cases.db"))
        ...     await store.prepare()
        ...     engine = gridflow.AsyncEngine(store, clock=gridflow.FixedClock(),
        ...                                   entry_points=False)
        ...     case = await engine.open("grid_case",
        ...                              actor=gridflow.Actor("w", ["grid_worker"], ["g"]),
        ...                              grid="g", data={"title": "路灯坏了", "source": "visit"})
        ...     await store.aclose()
        ...     return case.state
        >>> asyncio.run(main())
        'reported'
    """

    _hot_path = False

    def __init__(self, url: str | sa.URL, **kwargs: Any) -> None:
        super().__init__(async_url(url), **kwargs)

    def _create_engine(self, url: sa.URL, options: dict[str, Any]) -> Engine:
        from sqlalchemy.ext.asyncio import create_async_engine

        self.async_engine = create_async_engine(url, **options)
        # Core's sync API on the async driver: valid inside AsyncEngine's greenlet.
        return self.async_engine.sync_engine

    def _pause(self, seconds: float) -> None:
        # Called inside the greenlet (`wait_for_replica` through `run`): a
        # time.sleep here would stop every other task of the event loop, the one
        # that resumes the replica's replay included.
        import asyncio

        from sqlalchemy.util import await_only

        await_only(asyncio.sleep(seconds))

    def __repr__(self) -> str:
        return "Async" + super().__repr__()

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call a store method (or any function using this store) without blocking
        the event loop.

        Example:
            >>> import asyncio, gridflow
            >>> async def main():
            ...     store = gridflow.AsyncSQLStore("sqlite://")
            ...     await store.prepare()
            ...     return await store.run(store.counts, ("state",))
            >>> asyncio.run(main())
            {}
        """
        from sqlalchemy.util import greenlet_spawn

        return await greenlet_spawn(fn, *args, **kwargs)

    async def prepare(self) -> None:
        """`create_schema`, awaited.

        Example:
            >>> import asyncio, gridflow
            >>> asyncio.run(gridflow.AsyncSQLStore("sqlite://").prepare())
        """
        await self.run(self.create_schema)

    async def aclose(self) -> None:
        """Close every pooled connection, the read replica's (``read_url=``) too.

        Example:
            >>> import asyncio, gridflow
            >>> asyncio.run(gridflow.AsyncSQLStore("sqlite://").aclose())
        """
        await self.async_engine.dispose()
        if isinstance(self.replica, AsyncSQLStore):
            await self.replica.aclose()
