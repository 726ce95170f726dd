"""A database written by gridflow 0.1 (schema 1) upgrades to 0.2 (schema 2).

`tests/data/gridflow-0.1-history.json` holds the rows gridflow 0.1.0 wrote for
three cases (an alley case in the joint action, a linked case the timer marked
overdue, a mediation in the three-office tier). Loaded into a schema-1 database,
`create_schema()` migrates it: each case gets one ``upgrade`` event stating its
row, the 0.1 events keep their hashes, and from there on `verify` recomputes
the whole row, so an edit made after the upgrade is caught and named.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from tests.conftest import drop_schema_5

from gridflow import (
    ALL_GRIDS,
    Actor,
    Engine,
    FixedClock,
    IntegrityError,
    SchemaVersionError,
    SQLStore,
)

HISTORY = json.loads((Path(__file__).parent / "data" / "gridflow-0.1-history.json")
                     .read_text(encoding="utf-8"))
TIME_COLUMNS = ("opened_at", "updated_at", "deadline_at", "claimed_until", "at")


def _row(raw: dict[str, Any]) -> dict[str, Any]:
    return {k: (datetime.fromisoformat(v) if k in TIME_COLUMNS and v else v)
            for k, v in raw.items()}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def old_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A schema-1 database holding what gridflow 0.1.0 wrote."""
    if request.param == "sqlite":
        url, options = f"sqlite:///{tmp_path / 'old.db'}", {}
    else:
        url = request.getfixturevalue("pg_url")
        options = {"schema": request.getfixturevalue("pg_schema")}
    store = SQLStore(url, **options)
    store.create_schema()
    events, meta = store.events_table, store.tables.meta
    name = store.engine.dialect.identifier_preparer.format_table(events)
    index = store.engine.dialect.identifier_preparer.quote("ix_gridflow_events_unlogged")
    index = f"{store.schema}.{index}" if store.schema else index
    with store.engine.begin() as conn:
        conn.execute(sa.text(f"DROP INDEX {index}"))  # schema 3's Merkle log
        for column in ("changes", "digests", "leaf"):  # the 0.1 table had none of these
            conn.execute(sa.text(f"ALTER TABLE {name} DROP COLUMN {column}"))
        drop_schema_5(conn, store)
        conn.execute(sa.delete(meta).where(meta.c.key != "schema_version"))
        conn.execute(sa.update(meta).values(value="1"))
        old_events = sa.Table(events.name, sa.MetaData(schema=store.schema),
                              *[c._copy() for c in events.columns
                                if c.name not in ("changes", "digests", "leaf", "stay_us",
                                                   "district")])
        conn.execute(sa.insert(store.cases), [_row(c) for c in HISTORY["cases"]])
        conn.execute(sa.insert(old_events), [_row(e) for e in HISTORY["events"]])
    store.close()
    yield {"url": url, **options}


def test_a_0_1_database_upgrades_and_verifies(old_db: dict[str, Any]) -> None:
    with SQLStore(**old_db) as store:
        with pytest.raises(SchemaVersionError, match="older than this gridflow's 5"):
            store.get("old-1")
        store.create_schema()
        assert store.schema_version() == 5
        engine = Engine(store=store, clock=FixedClock(), entry_points=False)
        for raw in HISTORY["cases"]:
            case = engine.verify(raw["id"])
            history = engine.history(raw["id"])
            assert case.version == raw["version"] + 1
            assert [e.changes is None for e in history] == [True] * raw["version"] + [False]
            upgrade = history[-1]
            assert (upgrade.trigger, upgrade.source, upgrade.dest, upgrade.actor) == (
                "upgrade", raw["state"], None, Actor.system())
            assert upgrade.changes is not None and upgrade.changes.set == raw["data"]
            assert case.data == raw["data"] and case.state == raw["state"]
            # The 0.1 hashes are untouched: the upgrade extends the chain.
            assert [e.hash for e in history[:-1]] == [
                e["hash"] for e in HISTORY["events"] if e["case_id"] == raw["id"]]
        # Upgrading again changes nothing.
        store.create_schema()
        assert engine.get("old-1").version == 6


def test_an_upgraded_case_runs_on_and_an_edit_after_the_upgrade_is_caught(
    old_db: dict[str, Any],
) -> None:
    with SQLStore(**old_db) as store:
        store.create_schema()
        engine = Engine(store=store, clock=FixedClock(), entry_points=False)
        dept = Actor("清运单位", ["department"], ["华三-1"])
        boss = Actor("书记-王", ["coordinator"], ["华三-1"])
        engine.fire("old-1", "report_done", actor=dept,
                    payload={"department": "清运单位", "result": "已清运"})
        case = engine.fire("old-1", "close", actor=boss)
        assert case.state == "closed" and engine.verify("old-1") == case
        with store.engine.begin() as conn:
            conn.execute(sa.update(store.cases).where(store.cases.c.id == "old-3")
                         .values(grid="华三-9"))
        with pytest.raises(IntegrityError) as caught:
            engine.verify("old-3")
        assert (caught.value.field, caught.value.seq) == ("grid", 3)
        street = Actor("街道", ["coordinator"], ALL_GRIDS)
        assert engine.linked("old-1", actor=street)[0].id == "old-2"
