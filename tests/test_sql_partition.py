"""`SQLStore(url, partition="month")`: the events table range-partitioned by month.

The same population is built through the engine, with the same clock and case
ids, on a partitioned store and on a plain one: every result (verification,
history, figures) is the same, steps land in their month's partition (or in
the default one, moved into its month when the month is added), idempotency
keys stay unique across partitions, and an old month can be detached for
archive without changing the figures of the months after it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from tests.conftest import drop_pg_schema

from gridflow import Actor, Engine, FixedClock, SQLStore, StoreError, metrics

pytestmark = pytest.mark.postgres

RESIDENT = Actor("res-1", ["resident"], ["华三-1", "华三-2"])
COORDINATOR = Actor("sec-1", ["coordinator"], ["华三-1", "华三-2"])
DEPARTMENT = Actor("dept-1", ["department"], ["华三-1", "华三-2"])
JAN, FEB, MAR, APR = (datetime(2026, m, 1, tzinfo=UTC) for m in (1, 2, 3, 4))


@pytest.fixture
def two(pg_url: str, pg_schema: str) -> Iterator[tuple[SQLStore, SQLStore]]:
    plain_schema = pg_schema + "_plain"
    parted = SQLStore(pg_url, schema=pg_schema, partition="month")
    plain = SQLStore(pg_url, schema=plain_schema)
    parted.create_schema()
    plain.create_schema()
    yield parted, plain
    parted.close()
    plain.close()
    drop_pg_schema(pg_url, plain_schema)


def _populate(store: SQLStore, months: list[datetime], tag: str = "c") -> Engine:
    clock = FixedClock(months[0])
    engine = Engine(store=store, clock=clock, entry_points=False)
    for m, first in enumerate(months):
        for i in range(6):
            clock.set(first + timedelta(days=2 + i, hours=1))
            cid = engine.open("grid_case", version=1, actor=RESIDENT, case_id=f"{tag}{m}-{i}",
                              grid=f"华三-{1 + i % 2}",
                              data={"title": "弄堂违规堆物", "source": "resident"}).id
            if i % 3 == 0:
                continue
            clock.advance(timedelta(minutes=30))
            engine.fire(cid, "triage", actor=COORDINATOR, idempotency_key=f"t-{cid}",
                        payload={"category": "违规堆物", "priority": "normal"})
            if i % 3 == 2:
                clock.advance(timedelta(hours=2))
                engine.fire(cid, "dispatch", actor=COORDINATOR,
                            payload={"departments": ["社区管理办"], "plan": "清理"})
                clock.advance(timedelta(hours=3))
                engine.fire(cid, "report_done", actor=DEPARTMENT,
                            payload={"department": "社区管理办", "result": "已清理"})
                clock.advance(timedelta(hours=1))
                engine.fire(cid, "close", actor=COORDINATOR)
    return engine


def _figures(store: SQLStore, since: datetime, until: datetime) -> list[object]:
    return [metrics.compute(store, since=since, until=until, by=by) for by in (None, "grid")]


def _per_partition(store: SQLStore) -> dict[str, int]:
    t = store.events_table
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(sa.text("tableoid::regclass::text"), sa.func.count())
                            .select_from(t).group_by(sa.text("1"))).all()
    return {str(name).rsplit(".", 1)[-1]: int(n) for name, n in rows}


def test_results_are_those_of_a_plain_store(two: tuple[SQLStore, SQLStore]) -> None:
    parted, plain = two
    assert [name for name, _ in parted.partitions()][:1] != []  # this month and the next two
    assert parted.add_partitions(JAN, months=2) == ["gridflow_events_y2026m01",
                                                    "gridflow_events_y2026m02"]
    assert parted.add_partitions(JAN, months=2) == []  # idempotent
    months = [JAN, FEB, MAR]
    e1, e2 = _populate(parted, months), _populate(plain, months)
    # March has no partition yet: its steps are in the default partition.
    counts = _per_partition(parted)
    assert counts["gridflow_events_y2026m01"] == counts["gridflow_events_y2026m02"] > 0
    assert counts["gridflow_events_default"] == counts["gridflow_events_y2026m01"]
    for _ in range(2):
        assert _figures(parted, JAN, APR) == _figures(plain, JAN, APR)
        assert e1.verify_all() == e2.verify_all() == 18
        for cid in ("c0-2", "c1-4", "c2-5"):
            assert e1.history(cid) == e2.history(cid)
            assert e1.verify(cid) == e2.verify(cid)
        assert parted.event_by_key("t-c1-4") == plain.event_by_key("t-c1-4")
        # Adding March moves its rows out of the default partition: same results.
        assert parted.add_partitions(MAR, months=1) in (["gridflow_events_y2026m03"], [])
    counts = _per_partition(parted)
    assert "gridflow_events_default" not in counts
    assert counts["gridflow_events_y2026m03"] == counts["gridflow_events_y2026m01"]


@pytest.mark.parametrize("contract", [
    "test_commit_then_read_back_exactly", "test_stale_version_raises_and_stores_nothing",
    "test_a_case_is_created_once", "test_updating_a_missing_case_is_a_conflict",
    "test_writes_to_one_case_in_one_commit_are_checked_in_order",
    "test_an_idempotency_key_is_stored_once", "test_empty_commit_does_nothing",
])
def test_the_store_contract_holds(two: tuple[SQLStore, SQLStore], contract: str) -> None:
    # The commit tests of the store contract, on the partitioned store; the
    # idempotency keys among them land in different partitions.
    from tests import test_store_contract

    parted, _ = two
    parted.add_partitions(datetime(2026, 1, 1, tzinfo=UTC), months=1)
    getattr(test_store_contract, contract)(parted)


@pytest.mark.parametrize("stale_first", [False, True])
def test_multi_write_commits_are_all_or_nothing(two: tuple[SQLStore, SQLStore],
                                                stale_first: bool) -> None:
    from tests import test_store_contract

    test_store_contract.test_multi_write_commit_is_all_or_nothing(two[0], stale_first)


def test_an_old_month_is_detached_for_archive(two: tuple[SQLStore, SQLStore]) -> None:
    parted, plain = two
    parted.add_partitions(JAN, months=3)
    _populate(parted, [JAN, FEB, MAR])
    _populate(plain, [JAN, FEB, MAR])
    assert parted.detach_partitions(FEB - timedelta(seconds=1)) == []
    detached = parted.detach_partitions(FEB)
    assert detached == [f"{parted.schema}.gridflow_events_y2026m01"]
    assert "gridflow_events_y2026m01" not in [n for n, _ in parted.partitions()]
    # January's cases were opened and finished in January: the months after it
    # report the same; the detached table keeps January's events.
    assert _figures(parted, FEB, APR) == _figures(plain, FEB, APR)
    with parted.engine.connect() as conn:
        kept = conn.execute(sa.text(f"SELECT count(*) FROM {detached[0]}")).scalar()
    assert kept == len([e for i in range(6) for e in plain.events(f"c0-{i}")])


def test_partition_needs_postgresql_and_the_layout_it_was_created_with(
    pg_url: str, pg_schema: str, tmp_path: object
) -> None:
    with pytest.raises(StoreError, match="on PostgreSQL only"):
        SQLStore("sqlite://", partition="month")
    with pytest.raises(StoreError, match="partition='week' is not supported"):
        SQLStore(pg_url, schema=pg_schema, partition="week")
    SQLStore(pg_url, schema=pg_schema).create_schema()
    with pytest.raises(StoreError, match="was created with no partition="):
        SQLStore(pg_url, schema=pg_schema, partition="month").create_schema()
    with pytest.raises(StoreError, match="is not partitioned"):
        SQLStore(pg_url, schema=pg_schema).detach_partitions(JAN)
    other = pg_schema + "_p"
    try:
        SQLStore(pg_url, schema=other, partition="month").create_schema()
        with pytest.raises(StoreError, match="was created with partition='month'"):
            SQLStore(pg_url, schema=other).get("x")
    finally:
        drop_pg_schema(pg_url, other)


def test_the_merkle_log_spans_the_partitions(two: tuple[SQLStore, SQLStore]) -> None:
    import gridflow

    skey, vkey = gridflow.generate_key("example.org/gridflow-partitions")
    parted, _ = two
    parted.add_partitions(JAN, months=1)
    engine = _populate(parted, [JAN])
    trusted = engine.checkpoint(skey)
    _populate(parted, [FEB], tag="f")  # February: the default partition
    latest = engine.checkpoint(skey)
    assert engine.verify_log(trusted=trusted, key=vkey) == latest
    parted.add_partitions(FEB, months=1)  # moves February's logged events into its month
    assert engine.verify_log(trusted=trusted, key=vkey) == latest
    assert engine.verify_log(trusted=trusted, key=vkey, incremental=True) == latest


def test_an_async_store_on_a_partitioned_schema(pg_url: str, pg_schema: str) -> None:
    # AsyncSQLStore takes the same partition= (it is a SQLStore on the async driver):
    # the same steps, a keyed retry, the layout check, and verification through it.
    import asyncio

    from gridflow import AsyncEngine, AsyncSQLStore

    async def main() -> None:
        store = AsyncSQLStore(pg_url, schema=pg_schema, partition="month")
        await store.prepare()
        clock = FixedClock(FEB + timedelta(days=3))
        engine = AsyncEngine(store, clock=clock, entry_points=False)
        case = await engine.open("grid_case", version=1, actor=RESIDENT, grid="华三-1",
                                 data={"title": "井盖缺失", "source": "resident"})
        clock.advance(timedelta(hours=1))
        first = await engine.fire(case.id, "triage", actor=COORDINATOR, idempotency_key="k-1",
                                  payload={"category": "市政设施", "priority": "urgent"})
        again = await engine.fire(case.id, "triage", actor=COORDINATOR, idempotency_key="k-1",
                                  payload={"category": "市政设施", "priority": "urgent"})
        assert again == first and first.state == "triaged"
        assert (await engine.verify(case.id)) == first
        assert [e.trigger for e in await engine.history(case.id)] == ["open", "triage"]
        # The schema made partitions from this month on, so February 2026's steps went to
        # the default partition; adding February moves them into it.
        await engine.run(store.add_partitions, FEB, months=1)
        names = [name for name, first in await engine.run(store.partitions) if first == FEB]
        assert len(names) == 1

        def in_february() -> int:
            with store.engine.connect() as conn:
                return int(conn.execute(sa.text(
                    f'SELECT count(*) FROM "{pg_schema}"."{names[0]}"')).scalar_one())

        assert await engine.run(in_february) == 2
        await store.aclose()
        plain = AsyncSQLStore(pg_url, schema=pg_schema)  # opened without its layout
        with pytest.raises(StoreError, match="partition="):
            await plain.prepare()
        await plain.aclose()

    asyncio.run(main())
