"""`SQLStore(url, read_url=...)`: reports and verification read a streaming replica.

The test starts its own pair of PostgreSQL 15 clusters on loopback, as the
``postgres`` OS user: a primary (``initdb`` in a temporary directory, whose
default ``pg_hba.conf`` allows local replication) and a replica of it made by
``pg_basebackup -R`` (streaming). The shared server at ``GRIDFLOW_PG_URL`` is
not used: it holds every test's schemas (gigabytes to copy) and its
``pg_hba.conf`` has no replication entry. The test skips, saying why, where
this cannot be done (no PostgreSQL 15 binaries, not root nor ``postgres``,
a cluster that does not start), also under ``GRIDFLOW_REQUIRE_PG=1``: it needs
more than a reachable server.

Replay on the replica is paused and resumed by hand (``pg_wal_replay_pause``),
so the test sees, without timing anything, that the figures come from the
replica: stale while replay is paused, equal to the primary's once
`SQLStore.wait_for_replica` returns.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NoReturn

import pytest

import gridflow
from gridflow import Actor, Engine, FixedClock, SQLStore, StoreError, metrics

BIN = Path("/usr/lib/postgresql/15/bin")
T0 = datetime(2026, 3, 2, 1, tzinfo=UTC)
SINCE, UNTIL = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)
RESIDENT = Actor("res-1", ["resident"], ["华三-1", "华三-2"])
COORDINATOR = Actor("sec-1", ["coordinator"], ["华三-1", "华三-2"])


def _unavailable(message: str) -> NoReturn:
    pytest.skip(f"cannot start a replica cluster: {message}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Clusters:
    """A primary and its streaming replica, both on loopback."""

    def __init__(self, root: Path, as_postgres: list[str]) -> None:
        self.root, self.as_postgres = root, as_postgres
        self.primary_port, self.replica_port = _free_port(), _free_port()
        self.started: list[Path] = []

    def run(self, *args: str) -> None:
        done = subprocess.run([*self.as_postgres, *args], capture_output=True, text=True,
                              timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} failed: {done.stderr.strip()[-500:]}")

    def start(self, data: Path, port: int) -> None:
        options = (f"-p {port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off")
        self.run(str(BIN / "pg_ctl"), "-D", str(data), "-o", options, "-l",
                 str(self.root / f"{data.name}.log"), "-w", "-t", "60", "start")
        self.started.append(data)

    def up(self) -> None:
        primary, replica = self.root / "primary", self.root / "replica"
        self.run(str(BIN / "initdb"), "-D", str(primary), "-U", "postgres", "--auth=trust",
                 "-E", "UTF8", "--locale=C", "--no-sync")
        self.start(primary, self.primary_port)
        self.run(str(BIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(self.primary_port),
                 "-U", "postgres", "-D", str(replica), "-R", "-X", "stream", "-c", "fast",
                 "--no-sync")
        self.start(replica, self.replica_port)

    def down(self) -> None:
        for data in reversed(self.started):
            subprocess.run([*self.as_postgres, str(BIN / "pg_ctl"), "-D", str(data), "-m",
                            "immediate", "-w", "stop"], capture_output=True, check=False)

    def url(self, port: int) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"


@pytest.fixture(scope="module")
def clusters() -> Iterator[Clusters]:
    for tool in ("initdb", "pg_ctl", "pg_basebackup"):
        if not (BIN / tool).exists():
            _unavailable(f"{BIN / tool} is missing (PostgreSQL 15 server binaries)")
    try:
        pg_user = pwd.getpwnam("postgres")
    except KeyError:
        _unavailable("there is no 'postgres' OS user to run the clusters as")
    if os.geteuid() == pg_user.pw_uid:
        as_postgres: list[str] = []
    elif os.geteuid() == 0 and shutil.which("runuser"):
        as_postgres = ["runuser", "-u", "postgres", "--"]
    else:
        _unavailable("the test must run as root (to use runuser) or as the postgres user")
    root = Path(tempfile.mkdtemp(prefix="gridflow-replica-"))
    os.chown(root, pg_user.pw_uid, pg_user.pw_gid)
    found = Clusters(root, as_postgres)
    try:
        try:
            found.up()
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            _unavailable(str(exc))
        yield found
    finally:
        found.down()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def stores(clusters: Clusters) -> Iterator[tuple[SQLStore, SQLStore]]:
    """The store with a replica, and a store on the primary alone (the reference)."""
    schema = f"gf_{os.urandom(6).hex()}"
    primary = clusters.url(clusters.primary_port)
    store = SQLStore(primary, schema=schema, read_url=clusters.url(clusters.replica_port))
    alone = SQLStore(primary, schema=schema)
    store.create_schema()
    store.wait_for_replica(timeout=60)  # the replica has the tables too
    yield store, alone
    store.close()
    alone.close()


def _population(engine: Engine, clock: FixedClock, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        clock.set(T0 + timedelta(hours=i))
        cid = engine.open("grid_case", version=1, actor=RESIDENT, grid=f"华三-{1 + i % 2}",
                          data={"title": "弄堂违规堆物", "source": "resident"}).id
        if i % 3:
            clock.advance(timedelta(minutes=20))
            engine.fire(cid, "triage", actor=COORDINATOR,
                        payload={"category": "违规堆物", "priority": "normal"})


def _replica_sql(store: SQLStore, sql: str) -> None:
    assert store.replica is not None
    with store.replica.engine.connect() as conn:
        conn.exec_driver_sql(sql)


def test_reports_and_verification_read_the_replica(stores: tuple[SQLStore, SQLStore]) -> None:
    store, alone = stores
    assert store.replica is not None
    clock = FixedClock(T0)
    engine = Engine(store=store, clock=clock, entry_points=False)
    _population(engine, clock, 12)
    assert store.wait_for_replica(timeout=60).count("/") == 1
    for by in (None, "grid"):
        assert metrics.compute(store, since=SINCE, until=UNTIL, by=by) == \
            metrics.compute(alone, since=SINCE, until=UNTIL, by=by)
    assert metrics.problem_classes(store, since=SINCE, until=UNTIL) == \
        metrics.problem_classes(alone, since=SINCE, until=UNTIL)
    assert engine.verify_all() == 12
    before = metrics.compute(store, since=SINCE, until=UNTIL, by="grid")

    # With replay paused, what the primary commits is not on the replica yet: the
    # figures read through the store are the replica's (the earlier ones).
    _replica_sql(store, "SELECT pg_wal_replay_pause()")
    assert store.replica is not None
    try:
        _population(engine, clock, 6, start=12)
        assert len(store.query(limit=100).items) == 18  # the store's own reads: the primary
        assert len(store.replica.query(limit=100).items) == 12
        assert metrics.compute(store, since=SINCE, until=UNTIL, by="grid") == before
        assert metrics.compute(alone, since=SINCE, until=UNTIL, by="grid") != before
        with pytest.raises(StoreError, match="has replayed the WAL up to"):
            store.wait_for_replica(timeout=0)
        assert engine.verify_all() == 12  # the replica's cases
    finally:
        _replica_sql(store, "SELECT pg_wal_replay_resume()")
    store.wait_for_replica(timeout=60)
    assert metrics.compute(store, since=SINCE, until=UNTIL, by="grid") == \
        metrics.compute(alone, since=SINCE, until=UNTIL, by="grid")
    assert engine.verify_all() == 18


def test_the_replica_refuses_writes(stores: tuple[SQLStore, SQLStore]) -> None:
    store, _ = stores
    replica = store.replica
    assert replica is not None
    assert replica.replica is None
    assert "read_url=" in repr(store)
    with pytest.raises(StoreError, match="read replica"):
        replica.create_schema()
    with pytest.raises(StoreError, match="read replica"):
        replica.set_retired("grid_case", 1)
    with pytest.raises(StoreError, match="read replica"):
        replica.claim_due(T0)
    engine = Engine(store=replica, clock=FixedClock(T0), entry_points=False)
    with pytest.raises(StoreError, match="read replica"):
        engine.open("grid_case", version=1, actor=RESIDENT, grid="华三-1",
                    data={"title": "井盖缺失", "source": "resident"})


def test_a_primary_as_read_url_is_refused_when_waiting(clusters: Clusters) -> None:
    primary = clusters.url(clusters.primary_port)
    with SQLStore(primary, read_url=primary) as store, \
            pytest.raises(StoreError, match="is not a replica"):
        store.wait_for_replica(timeout=1)


def test_read_url_needs_postgresql(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="read_url= needs PostgreSQL"):
        SQLStore(f"sqlite:///{tmp_path / 'x.db'}", read_url=f"sqlite:///{tmp_path / 'y.db'}")
    assert gridflow.SQLStore(f"sqlite:///{tmp_path / 'x.db'}").replica is None


# -- AsyncSQLStore(read_url=...): the same replica, on the async driver ---------------------


def test_an_async_store_reads_its_replica_and_waits_without_blocking_the_loop(
    clusters: Clusters,
) -> None:
    import asyncio

    from gridflow import AsyncEngine, AsyncSQLStore

    schema = f"gf_{os.urandom(6).hex()}"
    primary, standby = clusters.url(clusters.primary_port), clusters.url(clusters.replica_port)
    alone = SQLStore(primary, schema=schema)  # the reference: the primary, sync driver

    async def main() -> None:
        store = AsyncSQLStore(primary, schema=schema, read_url=standby)
        replica = store.replica
        assert isinstance(replica, AsyncSQLStore) and replica.replica is None
        assert repr(store).startswith("AsyncSQLStore(") and "read_url=" in repr(store)
        await store.prepare()
        await store.run(store.wait_for_replica, timeout=60)
        clock = FixedClock(T0)
        engine = AsyncEngine(store, clock=clock, entry_points=False)
        for i in range(6):
            clock.set(T0 + timedelta(hours=i))
            cid = (await engine.open("grid_case", version=1, actor=RESIDENT,
                                     grid=f"华三-{1 + i % 2}",
                                     data={"title": "弄堂违规堆物", "source": "resident"})).id
            if i % 3:
                await engine.fire(cid, "triage", actor=COORDINATOR,
                                  payload={"category": "违规堆物", "priority": "normal"})
        assert (await store.run(store.wait_for_replica, timeout=60)).count("/") == 1
        figures = await store.run(metrics.compute, store, since=SINCE, until=UNTIL, by="grid")
        assert figures == metrics.compute(alone, since=SINCE, until=UNTIL, by="grid")
        assert await engine.verify_all() == 6

        def replica_sql(sql: str) -> None:
            with replica.engine.connect() as conn:
                conn.exec_driver_sql(sql)

        # Replay paused: the primary's new case is not on the replica, whose figures
        # the store reports; waiting with timeout=0 says how far the replica got.
        await store.run(replica_sql, "SELECT pg_wal_replay_pause()")
        try:
            await engine.open("grid_case", version=1, actor=RESIDENT, grid="华三-1",
                              data={"title": "井盖缺失", "source": "resident"})
            assert len((await store.run(store.query, limit=100)).items) == 7
            assert len((await replica.run(replica.query, limit=100)).items) == 6
            assert await store.run(metrics.compute, store, since=SINCE, until=UNTIL,
                                   by="grid") == figures
            with pytest.raises(StoreError, match="has replayed the WAL up to"):
                await store.run(store.wait_for_replica, timeout=0)

            # The wait yields to the loop between polls: another task resumes replay
            # while it waits, and the wait then returns (a blocking sleep would hold
            # the loop until the timeout, and raise).
            async def resume() -> None:
                await asyncio.sleep(0.2)
                await store.run(replica_sql, "SELECT pg_wal_replay_resume()")

            waited, _ = await asyncio.gather(
                store.run(store.wait_for_replica, timeout=30), resume())
            assert waited.count("/") == 1
            # Between two polls, too: another task runs while one pause lasts.
            ran: list[bool] = []

            async def other() -> None:
                ran.append(True)

            def pause_then_look() -> bool:
                store._pause(0.05)
                return bool(ran)

            assert (await asyncio.gather(store.run(pause_then_look), other()))[0]
        finally:
            await store.run(replica_sql, "SELECT pg_wal_replay_resume()")
        assert await store.run(metrics.compute, store, since=SINCE, until=UNTIL, by="grid") \
            == metrics.compute(alone, since=SINCE, until=UNTIL, by="grid")
        assert await engine.verify_all() == 7

        # The replica refuses writes through the async engine as through the sync one.
        on_replica = AsyncEngine(replica, clock=clock, entry_points=False)
        with pytest.raises(StoreError, match="read replica"):
            await on_replica.open("grid_case", version=1, actor=RESIDENT, grid="华三-1",
                                  data={"title": "井盖缺失", "source": "resident"})
        with pytest.raises(StoreError, match="read replica"):
            await replica.prepare()

        # aclose closes the replica's pooled connections with the primary's.
        assert replica.async_engine.sync_engine.pool.checkedin() > 0
        await store.aclose()
        assert replica.async_engine.sync_engine.pool.checkedin() == 0
        assert store.async_engine.sync_engine.pool.checkedin() == 0

    try:
        asyncio.run(main())
    finally:
        alone.close()


def test_async_read_url_needs_postgresql_on_both_sides(tmp_path: Path,
                                                       clusters: Clusters) -> None:
    from gridflow import AsyncSQLStore

    with pytest.raises(StoreError, match="read_url= needs PostgreSQL"):
        AsyncSQLStore(f"sqlite:///{tmp_path / 'x.db'}", read_url=f"sqlite:///{tmp_path / 'y.db'}")
    with pytest.raises(StoreError, match="read_url= must be a PostgreSQL URL"):
        AsyncSQLStore(clusters.url(clusters.primary_port),
                      read_url=f"sqlite:///{tmp_path / 'y.db'}")
    assert AsyncSQLStore(f"sqlite:///{tmp_path / 'x.db'}").replica is None
