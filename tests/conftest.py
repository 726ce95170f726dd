"""Shared fixtures: a fixed clock, the PostgreSQL server, and every store.

- ``clock``: a `FixedClock` at 2026-01-05 01:00 UTC (advance it by hand).
- ``pg_url``: the PostgreSQL URL (env ``GRIDFLOW_PG_URL``, default the local
  server). Tests using it skip when no server answers, and fail instead when
  ``GRIDFLOW_REQUIRE_PG=1`` (CI sets it).
- ``pg_schema``: a fresh PostgreSQL schema name for this test, dropped after it
  (several people run the tests on one database at once).
- ``store``: parametrized over ``memory``, ``sqlite`` (a file in ``tmp_path``)
  and ``postgres`` (marked ``postgres``); its schema is created.
- ``engine``: an `Engine` on ``store`` with ``clock`` and no entry points, and the
  same `AsyncEngine` (parametrised ``sync`` / ``async``).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import gridflow
from gridflow import Engine, FixedClock, MemoryStore, Store

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

_pg_status: dict[str, str | None] = {}


def _pg_problem(url: str) -> str | None:
    """Why the server at ``url`` cannot be used (``None``: it answers). Asked once."""
    if url not in _pg_status:
        try:
            import sqlalchemy as sa

            engine = sa.create_engine(url, connect_args={"connect_timeout": 3},
                                      poolclass=sa.pool.NullPool)
            try:
                with engine.connect() as conn:
                    conn.execute(sa.text("SELECT 1"))
            finally:
                engine.dispose()
            _pg_status[url] = None
        except Exception as exc:
            _pg_status[url] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}"
    return _pg_status[url]


@pytest.fixture
def clock() -> FixedClock:
    """A `FixedClock` at 2026-01-05 01:00 UTC."""
    return FixedClock()


@pytest.fixture(scope="session")
def pg_url() -> str:
    """The PostgreSQL URL; skips (or fails under GRIDFLOW_REQUIRE_PG=1) without a server."""
    url = os.environ.get("GRIDFLOW_PG_URL") or DEFAULT_PG_URL
    problem = _pg_problem(url)
    if problem is not None:
        shown = url.split("@")[-1]
        message = (f"PostgreSQL not reachable at {shown} ({problem}); start it or set "
                   "GRIDFLOW_PG_URL (CI sets GRIDFLOW_REQUIRE_PG=1)")
        if os.environ.get("GRIDFLOW_REQUIRE_PG") == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return url


def drop_pg_schema(url: str, schema: str) -> None:
    """Drop a PostgreSQL schema and everything in it (no error if it is missing)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        engine.dispose()


@pytest.fixture
def pg_schema(pg_url: str) -> Iterator[str]:
    """A unique schema name for this test; `SQLStore.create_schema` creates it, and it
    is dropped (CASCADE) after the test."""
    schema = f"gftest_{uuid.uuid4().hex[:16]}"
    yield schema
    drop_pg_schema(pg_url, schema)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file URL in this test's ``tmp_path``."""
    return f"sqlite:///{tmp_path / 'gridflow.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sql(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """Each SQL store in turn, schema created: a SQLite file, a PostgreSQL schema (the
    tampering tests edit their rows with raw SQL)."""
    from gridflow import SQLStore

    if request.param == "sqlite":
        sql_store = SQLStore(f"sqlite:///{tmp_path / 'tamper.db'}")
    else:
        sql_store = SQLStore(request.getfixturevalue("pg_url"),
                             schema=request.getfixturevalue("pg_schema"))
    sql_store.create_schema()
    try:
        yield sql_store
    finally:
        sql_store.close()


@pytest.fixture(params=["memory", "sqlite",
                        pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Each store in turn, schema created: MemoryStore, SQLite file, PostgreSQL schema."""
    kind = request.param
    if kind == "memory":
        yield MemoryStore()
        return
    if kind == "sqlite":
        sql = gridflow.SQLStore(f"sqlite:///{tmp_path / 'gridflow.db'}")
    else:
        url = request.getfixturevalue("pg_url")
        sql = gridflow.SQLStore(url, schema=request.getfixturevalue("pg_schema"))
    sql.create_schema()
    try:
        yield sql
    finally:
        sql.close()


class AsyncDriven:
    """An `AsyncEngine` driven from sync test code, so that the same contract tests
    run on both engines (parametrised, not copied).

    Each coroutine method runs to completion on this test's event loop; any
    other callable of the engine underneath (private helpers included) runs
    through `AsyncEngine.run`, inside the greenlet, as the async engine runs it.
    ``store`` is the test's sync store on the same database: a sync reader and
    the async engine share it.
    """

    def __init__(self, engine: gridflow.AsyncEngine, store: Store,
                 runner: asyncio.Runner) -> None:
        self.async_engine = engine
        self.store = store
        self._runner = runner

    def __getattr__(self, name: str) -> Any:
        source = self.async_engine if not name.startswith("_") else self.async_engine.sync
        found = getattr(source, name)
        if inspect.iscoroutinefunction(found):
            return lambda *a, **k: self._runner.run(found(*a, **k))
        if callable(found) and getattr(found, "__self__", None) is self.async_engine.sync:
            return lambda *a, **k: self._runner.run(self.async_engine.run(found, *a, **k))
        return found

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("async_engine", "store", "_runner"):
            object.__setattr__(self, name, value)
        else:
            setattr(self.async_engine.sync, name, value)


@pytest.fixture(params=["sync", "async"])
def engine(request: pytest.FixtureRequest, store: Store, clock: FixedClock) -> Iterator[Any]:
    """An `Engine` on ``store`` with the fixed ``clock`` and no entry-point plugins,
    and the same as an `AsyncEngine` (on an `AsyncSQLStore` for the same database)."""
    if request.param == "sync":
        # A keyring of this test only (a SQL store refuses personal values without one).
        yield Engine(store=store, clock=clock, entry_points=False,
                     keyring=gridflow.Keyring.generate())
        return
    with asyncio.Runner() as runner:
        if isinstance(store, gridflow.SQLStore):
            inner: Store = gridflow.AsyncSQLStore(store.url, schema=store.schema)
        else:
            inner = store
        driven = AsyncDriven(gridflow.AsyncEngine(inner, clock=clock, entry_points=False,
                                                  keyring=gridflow.Keyring.generate()),
                             store, runner)
        try:
            yield driven
        finally:
            if isinstance(inner, gridflow.AsyncSQLStore):
                runner.run(inner.aclose())


def drop_schema_5(conn: Any, store: Any) -> None:
    """Back to what schema 4 had: no facts for the figures (`gridflow._facts`) and no
    district on the case rows and events (for the tests that build an older database)."""
    import sqlalchemy as sa

    from gridflow import _facts

    prep = store.engine.dialect.identifier_preparer
    for table, columns in ((store.cases, (*_facts.NAMES, "district")),
                           (store.events_table, ("stay_us", "district"))):
        for column in columns:
            conn.execute(sa.text(f"ALTER TABLE {prep.format_table(table)} DROP COLUMN {column}"))
