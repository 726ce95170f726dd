"""The Merkle log of a store: the sequencer step, checkpoints, proofs (every store).

The tampering tests are in tests/test_log_tamper.py, the command line in
tests/test_cli_log.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from tests.conftest import drop_schema_5

import gridflow
from gridflow import Actor, Engine, FixedClock, GridflowError, NoteError, SQLStore
from gridflow.log import merkle, note
from gridflow.store._log import log_for

GRID = "华三-1"
RESIDENT = Actor("居民-李", ["resident"], [GRID])
WORKER = Actor("网格员-陈", ["grid_worker"], [GRID])
SKEY, VKEY = gridflow.generate_key("example.org/gridflow-test")


def _open(engine: Engine, n: int) -> list[str]:
    return [engine.open("grid_case", version=1, actor=RESIDENT, grid=GRID,
                        data={"title": f"楼道堆物 {i}", "source": "resident"}).id
            for i in range(n)]


def _note(engine: Engine, case_id: str) -> None:
    engine.fire(case_id, "note", actor=WORKER, payload={"text": "已到现场"})


def test_checkpoint_integrates_every_event_once(engine: Engine) -> None:
    ids = _open(engine, 4)
    first = engine.checkpoint(SKEY)
    cp = note.verify_checkpoint(first, VKEY)
    assert (cp.origin, cp.size) == ("example.org/gridflow-test", 4)
    for cid in ids[:2]:
        _note(engine, cid)
    second = note.verify_checkpoint(engine.checkpoint(SKEY), VKEY)
    assert second.size == 6
    log = log_for(engine.store)
    leaves = list(log.leaves(0, 6))
    assert sorted((c, s) for _, c, s, *_ in leaves) == sorted(
        [(c, 1) for c in ids] + [(c, 2) for c in ids[:2]])
    # The root is the RFC 9162 root of the leaf hashes in leaf order.
    assert second.root_hash == merkle.root(
        [merkle.leaf_hash(bytes.fromhex(h)) for *_, h, _, _ in leaves])
    assert log.unlogged(6) == []


def test_a_checkpoint_over_nothing_new_is_the_stored_one(engine: Engine) -> None:
    _open(engine, 2)
    text = engine.checkpoint(SKEY)
    assert engine.checkpoint(SKEY) == text
    assert log_for(engine.store).checkpoints() == [text]
    other, _ = gridflow.generate_key("example.org/gridflow-test")
    assert engine.checkpoint(other) != text  # another key signs anew
    assert len(log_for(engine.store).checkpoints()) == 2


def test_an_empty_store_checkpoints_the_empty_tree(engine: Engine) -> None:
    cp = note.verify_checkpoint(engine.checkpoint(SKEY), VKEY)
    assert (cp.size, cp.root_hash) == (0, merkle.EMPTY_ROOT)
    assert engine.verify_log(key=VKEY).startswith("example.org/gridflow-test\n0\n")


def test_verify_log_full_and_incremental(engine: Engine) -> None:
    ids = _open(engine, 3)
    trusted = engine.checkpoint(SKEY)
    _note(engine, ids[0])
    ids += _open(engine, 2)
    latest = engine.checkpoint(SKEY)
    assert engine.verify_log(trusted=trusted, key=VKEY) == latest
    assert engine.verify_log(trusted=trusted, key=VKEY, incremental=True) == latest
    assert engine.verify_log(key=VKEY) == latest
    assert engine.verify_log(trusted=latest, key=[VKEY]) == latest
    # Events committed after the latest checkpoint are fine: only the chain covers them.
    _note(engine, ids[1])
    assert engine.verify_log(trusted=trusted, key=VKEY) == latest


def test_a_wrong_key_or_signature_is_a_gridflow_error(engine: Engine) -> None:
    _open(engine, 1)
    trusted = engine.checkpoint(SKEY)
    _, stranger = gridflow.generate_key("example.org/gridflow-test")
    with pytest.raises(NoteError, match="signed by no trusted key"):
        engine.verify_log(trusted=trusted, key=stranger)
    forged = trusted.replace("\n1\n", "\n2\n", 1)
    with pytest.raises(NoteError, match="invalid signature"):
        engine.verify_log(trusted=forged, key=VKEY)
    with pytest.raises(NoteError, match="this is a signer"):
        engine.verify_log(trusted=trusted, key=SKEY)
    with pytest.raises(GridflowError, match="needs key="):
        engine.verify_log(trusted=trusted)
    with pytest.raises(NoteError, match="not a signer key"):
        engine.checkpoint(VKEY)


def test_verify_log_without_any_checkpoint(engine: Engine) -> None:
    _open(engine, 1)
    with pytest.raises(GridflowError, match="no checkpoint yet"):
        engine.verify_log(key=VKEY)


def test_a_pluggable_signer(engine: Engine) -> None:
    """Any object with name, key_hash and sign() signs (an SM2 signer would)."""
    inner = note.signer_from_key(SKEY)

    class Wrapped:
        name = inner.name
        key_hash = inner.key_hash
        calls = 0

        def sign(self, msg: bytes) -> bytes:
            Wrapped.calls += 1
            return inner.sign(msg)

    _open(engine, 2)
    text = engine.checkpoint(Wrapped(), origin="example.org/other-origin")
    assert Wrapped.calls == 1
    assert note.verify_checkpoint(text, VKEY).origin == "example.org/other-origin"
    assert engine.verify_log(trusted=text, key=note.verifier_from_key(VKEY)) == text


def test_prove_and_verify_bundle(engine: Engine) -> None:
    ids = _open(engine, 3)
    _note(engine, ids[1])
    _note(engine, ids[1])
    engine.checkpoint(SKEY)
    _note(engine, ids[1])  # after the checkpoint: not in the bundle
    bundle = json.loads(json.dumps(engine.prove(ids[1])))
    events = gridflow.verify_bundle(bundle, VKEY)
    assert [e.seq for e in events] == [1, 2, 3]
    assert events == engine.history(ids[1])[:3]
    assert bundle["tree_size"] == 5


def test_prove_refuses_what_is_not_logged(engine: Engine) -> None:
    with pytest.raises(GridflowError, match="no checkpoint yet"):
        engine.prove("nope")
    engine.checkpoint(SKEY)
    (cid,) = _open(engine, 1)
    with pytest.raises(GridflowError, match="no event in the latest checkpoint"):
        engine.prove(cid)
    with pytest.raises(gridflow.CaseNotFound):
        engine.prove("nope")


def test_a_store_without_a_log_is_refused() -> None:
    class Other:  # a store by its basic methods (what Engine checks), without the log's
        def get(self, case_id: str) -> None: ...
        def events(self, case_id: str) -> list[Any]: return []
        def commit(self, writes: Any) -> None: ...
        def query(self, **filters: Any) -> Any: ...

    engine = Engine(store=Other(), entry_points=False)  # type: ignore[arg-type]
    with pytest.raises(GridflowError, match="keeps no Merkle log"):
        engine.checkpoint(SKEY)


def test_upgrade_from_schema_2(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'v2.db'}"
    with SQLStore(url) as store:
        store.create_schema()
        engine = Engine(store=store, clock=FixedClock(), entry_points=False)
        ids = _open(engine, 3)
        _note(engine, ids[0])
        with store.engine.begin() as conn:  # back to what gridflow 0.2.0.dev0 wrote
            conn.execute(sa.text("DROP INDEX ix_gridflow_events_unlogged"))
            conn.execute(sa.text("ALTER TABLE gridflow_events DROP COLUMN leaf"))
            drop_schema_5(conn, store)
            for table in ("gridflow_log_leaves", "gridflow_log_nodes",
                          "gridflow_log_checkpoints"):
                conn.execute(sa.text(f"DROP TABLE {table}"))
            conn.execute(sa.text("DELETE FROM gridflow_meta WHERE key = 'log_size'"))
            conn.execute(sa.text("UPDATE gridflow_meta SET value = '2'"))
    with SQLStore(url) as store:
        with pytest.raises(gridflow.SchemaVersionError, match="older than this gridflow's 5"):
            store.get(ids[0])
        store.create_schema()
        assert store.schema_version() == 5
        engine = Engine(store=store, clock=FixedClock(), entry_points=False)
        text = engine.checkpoint(SKEY)
        assert note.verify_checkpoint(text, VKEY).size == 4
        assert engine.verify_log(trusted=text, key=VKEY) == text


def test_a_checkpointer_that_cannot_get_the_lock_fails_cleanly(tmp_path: Path) -> None:
    """While another writer holds SQLite's write lock, a checkpoint waits busy_timeout,
    then fails with a StoreError (a GridflowError) and changes nothing."""
    import sqlite3

    path = tmp_path / "locked.db"
    with SQLStore(f"sqlite:///{path}", busy_timeout=0.05) as store:
        store.create_schema()
        engine = Engine(store=store, clock=FixedClock(), entry_points=False)
        _open(engine, 2)
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(gridflow.StoreError, match="checkpoint failed"):
                engine.checkpoint(SKEY)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert log_for(store).checkpoints() == []
        assert note.verify_checkpoint(engine.checkpoint(SKEY), VKEY).size == 2
