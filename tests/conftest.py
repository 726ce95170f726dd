"""Shared fixtures: a fixed clock, the PostgreSQL server, and every store.

- ``clock``: a `FixedClock` at 2026-01-05 01:00 UTC (advance it by hand).
- ``pg_url``: the PostgreSQL URL (env ``GRIDFLOW_PG_URL``, default the local
  server). Tests using it skip when no server answers, and fail instead when
  ``GRIDFLOW_REQUIRE_PG=1`` (CI sets it).
- ``pg_schema``: a fresh PostgreSQL schema name for this test, dropped after it
  (several people run the tests on one database at once).
- ``store``: parametrized over ``memory``, ``sqlite`` (a file in ``tmp_path``)
  and ``postgres`` (marked ``postgres``); its schema is created.
- ``engine``: an `Engine` on ``store`` with ``clock`` and no entry points.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

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


@pytest.fixture
def engine(store: Store, clock: FixedClock) -> Engine:
    """An `Engine` on ``store`` with the fixed ``clock``, no entry-point plugins, and a
    keyring of this test only (a SQL store refuses personal values without one)."""
    return Engine(store=store, clock=clock, entry_points=False,
                  keyring=gridflow.Keyring.generate())
