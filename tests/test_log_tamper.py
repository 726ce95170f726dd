"""Tampering with raw SQL, caught by `Engine.verify_log` against a checkpoint taken before.

Each attack is what someone with write access to the database (an operator, a
vendor, an intruder) could do, every hash recomputed where the attack would:
the per-case chain alone (`Engine.verify`) is fooled by several of them; the
signed checkpoint is not.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
import sqlalchemy as sa

import gridflow
from gridflow import Actor, Engine, FixedClock, IntegrityError, NoteError, SQLStore
from gridflow.fold import replay
from gridflow.log import merkle, note
from gridflow.model import Event

GRID = "华三-1"
WORKER = Actor("网格员-陈", ["grid_worker"], [GRID])
BOSS = Actor("书记-王", ["coordinator"], [GRID])
SKEY, VKEY = gridflow.generate_key("example.org/street-log")


@pytest.fixture
def story(sql: SQLStore) -> tuple[Engine, list[str], str]:
    """Three cases of four events each, a trusted checkpoint, then two more events."""
    clock = FixedClock(datetime(2026, 3, 2, 1, tzinfo=UTC))
    engine = Engine(store=sql, clock=clock, entry_points=False)
    ids = []
    for i in range(3):
        case = engine.open("grid_case", version=1, actor=WORKER, grid=GRID,
                           data={"title": f"长宁支路{i}弄堆物", "source": "visit"})
        engine.fire(case.id, "triage", actor=BOSS,
                    payload={"category": "违规堆物", "priority": "normal"})
        for text in ("已到现场", "回访居民"):
            clock.advance(timedelta(minutes=10))
            engine.fire(case.id, "note", actor=BOSS, payload={"text": text})
        ids.append(case.id)
    trusted = engine.checkpoint(SKEY)
    engine.fire(ids[0], "note", actor=BOSS, payload={"text": "第二次回访"})
    engine.checkpoint(SKEY)
    assert engine.verify_log(trusted=trusted, key=VKEY)
    return engine, ids, trusted


def _name(sql: SQLStore, table: sa.Table) -> str:
    return sql.engine.dialect.identifier_preparer.format_table(table)


def _raw(sql: SQLStore, statement: str, **params: Any) -> int:
    t = sql.log_tables
    names = {"cases": _name(sql, sql.cases), "events": _name(sql, sql.events_table),
             "leaves": _name(sql, t[0]), "nodes": _name(sql, t[1]),
             "checkpoints": _name(sql, t[2])}
    with sql.engine.begin() as conn:
        return int(conn.execute(sa.text(statement.format(**names)), params).rowcount)


def _fix_row(engine: Engine, sql: SQLStore, case_id: str, events: list[Event]) -> None:
    """Write the case row the events fold to (what an attacker covering tracks does)."""
    row = replay(engine._spec_index, events)
    with sql.engine.begin() as conn:
        conn.execute(sa.update(sql.cases).where(sql.cases.c.id == case_id).values(
            state=row.state, version=row.version, data=row.data, deadline_at=row.deadline_at,
            links=list(row.links), head=row.head, updated_at=row.updated_at))
    sql.rebuild_facts([case_id])  # the derived columns too (schema 5): anyone can fold
    assert engine.verify(case_id).version == len(events)  # the chain alone is fooled


def _rebuild_nodes(sql: SQLStore) -> None:
    """Recompute the whole node table from the leaf table (an attacker can hash too)."""
    with sql.engine.connect() as conn:
        leaves = conn.execute(sa.select(sql.log_tables[0].c.hash)
                              .order_by(sql.log_tables[0].c.idx)).scalars().all()
    tree = merkle.MemoryNodes()
    tree.append([merkle.leaf_hash(bytes.fromhex(h)) for h in leaves])
    rows = [{"level": lv, "idx": i, "hash": tree.get(lv, i)}
            for lv in range(64) for i in range(tree.size >> lv)
            if _has(tree, lv, i)]
    with sql.engine.begin() as conn:
        conn.execute(sa.delete(sql.log_tables[1]))
        conn.execute(sa.insert(sql.log_tables[1]), rows)


def _has(tree: merkle.MemoryNodes, level: int, index: int) -> bool:
    try:
        tree.get(level, index)
    except gridflow.LogError:
        return False
    return True


def _caught(engine: Engine, trusted: str, **kw: Any) -> IntegrityError:
    with pytest.raises(IntegrityError) as caught:
        engine.verify_log(trusted=trusted, key=VKEY, **kw)
    return caught.value


def test_a_deleted_case(story: tuple[Engine, list[str], str]) -> None:
    engine, ids, trusted = story
    sql = engine.store
    assert isinstance(sql, SQLStore)
    _raw(sql, "DELETE FROM {events} WHERE case_id = :c", c=ids[1])
    _raw(sql, "DELETE FROM {cases} WHERE id = :c", c=ids[1])
    error = _caught(engine, trusted)
    assert (error.case_id, error.seq) == (ids[1], 1), str(error)
    assert "deleted" in str(error)


def test_a_truncated_tail_with_a_fixed_row(story: tuple[Engine, list[str], str]) -> None:
    engine, ids, trusted = story
    sql = engine.store
    assert isinstance(sql, SQLStore)
    kept = engine.history(ids[2])[:2]
    _raw(sql, "DELETE FROM {events} WHERE case_id = :c AND seq > 2", c=ids[2])
    _fix_row(engine, sql, ids[2], kept)
    error = _caught(engine, trusted)
    assert (error.case_id, error.seq) == (ids[2], 3), str(error)


def _rewrite(engine: Engine, sql: SQLStore, case_id: str, seq: int) -> list[Event]:
    """Rewrite event ``seq``'s payload and recompute its hash and every later one."""
    history = engine.history(case_id)
    out = history[:seq - 1]
    for e in history[seq - 1:]:
        payload = {"text": "从未到场"} if e.seq == seq else e.payload
        prev = out[-1].hash if out else e.prev_hash
        out.append(Event.create(e.case_id, e.seq, e.trigger, e.source, e.dest, e.actor, e.at,
                                payload, e.idempotency_key, prev, e.changes))
    with sql.engine.begin() as conn:
        for e in out[seq - 1:]:
            conn.execute(sa.update(sql.events_table).where(
                sql.events_table.c.case_id == case_id, sql.events_table.c.seq == e.seq
            ).values(payload=e.payload, prev_hash=e.prev_hash, hash=e.hash,
                     digests=e.field_digests()))
    _fix_row(engine, sql, case_id, out)
    return out


def test_an_event_rewritten_with_every_hash_recomputed(
        story: tuple[Engine, list[str], str]) -> None:
    engine, ids, trusted = story
    sql = engine.store
    assert isinstance(sql, SQLStore)
    _rewrite(engine, sql, ids[0], 3)
    error = _caught(engine, trusted)
    assert (error.case_id, error.seq, error.field) == (ids[0], 3, "hash"), str(error)


def test_an_event_rewritten_with_its_leaves_and_nodes_recomputed(
        story: tuple[Engine, list[str], str]) -> None:
    engine, ids, trusted = story
    sql = engine.store
    assert isinstance(sql, SQLStore)
    for e in _rewrite(engine, sql, ids[0], 3)[2:]:
        _raw(sql, "UPDATE {leaves} SET hash = :h WHERE case_id = :c AND seq = :s",
             h=e.hash, c=e.case_id, s=e.seq)
    _rebuild_nodes(sql)
    error = _caught(engine, trusted)
    assert "rewritten, removed or reordered" in str(error)
    # Incremental verification trusts what the trusted checkpoint covers, yet the
    # rewritten nodes cannot give its root.
    error = _caught(engine, trusted, incremental=True)
    assert "node table" in str(error) or "not an extension" in str(error), str(error)


def test_an_event_rewritten_with_leaves_but_not_nodes_names_the_leaf(
        story: tuple[Engine, list[str], str]) -> None:
    engine, ids, trusted = story
    sql = engine.store
    assert isinstance(sql, SQLStore)
    for e in _rewrite(engine, sql, ids[0], 3)[2:]:
        _raw(sql, "UPDATE {leaves} SET hash = :h WHERE case_id = :c AND seq = :s",
             h=e.hash, c=e.case_id, s=e.seq)
    error = _caught(engine, trusted)
    assert f"case {ids[0]!r} seq 3" in str(error), str(error)


def test_a_reordered_log(story: tuple[Engine, list[str], str]) -> None:
    engine, _ids, trusted = story
    sql = engine.store
    assert isinstance(sql, SQLStore)
    # Swap leaves 0 and 1 (seq 1 and 2 of one case), events' leaf column too, nodes rebuilt.
    _raw(sql, "UPDATE {leaves} SET idx = -1 WHERE idx = 0")
    _raw(sql, "UPDATE {leaves} SET idx = 0 WHERE idx = 1")
    _raw(sql, "UPDATE {leaves} SET idx = 1 WHERE idx = -1")
    _raw(sql, "UPDATE {events} SET leaf = 1 - leaf WHERE leaf IN (0, 1)")
    _rebuild_nodes(sql)
    error = _caught(engine, trusted)
    assert error.seq is not None and "reordered" in str(error), str(error)


def test_a_reordered_log_across_cases(story: tuple[Engine, list[str], str]) -> None:
    engine, _ids, trusted = story
    sql = engine.store
    assert isinstance(sql, SQLStore)
    # Leaf 0 is seq 1 of the first case (by id), leaf 4 seq 1 of the second.
    _raw(sql, "UPDATE {leaves} SET idx = -1 WHERE idx = 0")
    _raw(sql, "UPDATE {leaves} SET idx = 0 WHERE idx = 4")
    _raw(sql, "UPDATE {leaves} SET idx = 4 WHERE idx = -1")
    _raw(sql, "UPDATE {events} SET leaf = 4 - leaf WHERE leaf IN (0, 4)")
    _rebuild_nodes(sql)
    error = _caught(engine, trusted)
    assert "reordered" in str(error), str(error)


@pytest.mark.parametrize("edit", [
    "UPDATE {leaves} SET hash = :h WHERE idx = 5",
    "DELETE FROM {leaves} WHERE idx = 5",
    "UPDATE {events} SET leaf = NULL WHERE leaf = 5",
    "UPDATE {events} SET leaf = 99 WHERE leaf = 5",
    "UPDATE {nodes} SET hash = :b WHERE level = 0 AND idx = 5",
    "DELETE FROM {nodes} WHERE level = 2",
])
def test_an_edited_log_table(story: tuple[Engine, list[str], str], edit: str) -> None:
    engine, ids, trusted = story
    sql = engine.store
    assert isinstance(sql, SQLStore)
    assert _raw(sql, edit, h="ab" * 32, b=bytes(32)) >= 1
    if "{nodes}" in edit:
        # The full check recomputes the tree from the events, not from every node;
        # but the consistency proof, incremental verification and inclusion proofs
        # read the nodes, and an edited node makes one of them fail.
        failures = 0
        for check in (lambda: engine.verify_log(trusted=trusted, key=VKEY),
                      lambda: engine.verify_log(trusted=trusted, key=VKEY, incremental=True),
                      *[lambda c=c: gridflow.verify_bundle(engine.prove(c), VKEY)
                        for c in ids]):
            try:
                check()
            except gridflow.GridflowError:
                failures += 1
        assert failures >= 1
        return
    error = _caught(engine, trusted)
    assert error.field == "leaf" or error.field == "hash", str(error)


def test_an_event_inserted_into_logged_history(story: tuple[Engine, list[str], str]) -> None:
    engine, ids, trusted = story
    sql = engine.store
    assert isinstance(sql, SQLStore)
    # Seq 2 of the third case moved out of the log: it looks committed after the checkpoint.
    _raw(sql, "UPDATE {events} SET leaf = NULL WHERE case_id = :c AND seq = 2", c=ids[2])
    _raw(sql, "DELETE FROM {leaves} WHERE case_id = :c AND seq = 2", c=ids[2])
    error = _caught(engine, trusted)
    assert error.field == "leaf", str(error)


@pytest.mark.parametrize("edit", [
    "UPDATE {checkpoints} SET text = REPLACE(text, '\n13\n', '\n12\n')",
    "DELETE FROM {checkpoints}",
    "DELETE FROM {checkpoints} WHERE size = 13",
])
def test_an_edited_checkpoint_table(story: tuple[Engine, list[str], str], edit: str) -> None:
    engine, _ids, trusted = story
    sql = engine.store
    assert isinstance(sql, SQLStore)
    assert _raw(sql, edit) >= 1
    if "size = 13" in edit:
        # Back to the trusted checkpoint: the log holds a leaf no checkpoint covers.
        error = _caught(engine, trusted)
        assert "cut back" in str(error), str(error)
        return
    error = _caught(engine, trusted)
    assert error.field == "checkpoint", str(error)


def test_a_cut_back_checkpoint_table_against_a_later_trusted_one(
        story: tuple[Engine, list[str], str]) -> None:
    engine, _ids, _ = story
    sql = engine.store
    assert isinstance(sql, SQLStore)
    latest = engine.verify_log(key=VKEY)
    _raw(sql, "DELETE FROM {checkpoints} WHERE size = 13")
    error = _caught(engine, latest)
    assert "fewer than the trusted" in str(error)


def test_a_checkpoint_signed_by_another_key(story: tuple[Engine, list[str], str]) -> None:
    engine, ids, trusted = story
    sql = engine.store
    assert isinstance(sql, SQLStore)
    # The attacker signs a new checkpoint over rewritten history with a key of the same name.
    their_skey, their_vkey = gridflow.generate_key("example.org/street-log")
    _rewrite(engine, sql, ids[0], 3)
    _raw(sql, "DELETE FROM {checkpoints}")
    _raw(sql, "DELETE FROM {leaves}")
    _raw(sql, "DELETE FROM {nodes}")
    _raw(sql, "UPDATE {events} SET leaf = NULL")
    _raw(sql, "UPDATE gridflow_meta SET value = '0' WHERE key = 'log_size'"
         if sql.schema is None else
         f"UPDATE {sql.schema}.gridflow_meta SET value = '0' WHERE key = 'log_size'")
    forged = engine.checkpoint(their_skey)
    assert engine.verify_log(key=their_vkey) == forged
    error = _caught(engine, trusted)
    assert error.field == "checkpoint" and "does not verify" in str(error)
    # A trusted checkpoint that was itself altered, or checked with the wrong key:
    with pytest.raises(NoteError):
        engine.verify_log(trusted=trusted, key=their_vkey)
    with pytest.raises(NoteError):
        engine.verify_log(trusted=trusted.replace("\n12\n", "\n11\n"), key=VKEY)


# -- bundles ------------------------------------------------------------------------------


@pytest.fixture
def bundle(story: tuple[Engine, list[str], str]) -> dict[str, Any]:
    engine, ids, _ = story
    b = engine.prove(ids[0])
    assert [e.seq for e in gridflow.verify_bundle(b, VKEY)] == [1, 2, 3, 4, 5]
    return b


EDITS: dict[str, Any] = {
    "payload": lambda b: b["events"][2]["payload"].update(text="从未到场"),
    "hash": lambda b: b["events"][2].update(hash="0" * 64),
    "prev_hash": lambda b: b["events"][2].update(prev_hash="0" * 64),
    "seq order": lambda b: b["events"].reverse(),
    "dropped event": lambda b: b["events"].pop(1),
    "leaf": lambda b: b["events"][2].update(leaf=b["events"][2]["leaf"] + 1),
    "proof": lambda b: b["events"][2]["proof"].reverse(),
    "short proof": lambda b: b["events"][2]["proof"].pop(),
    "actor": lambda b: b["events"][0]["actor"].update(id="someone"),
    "at": lambda b: b["events"][0].update(at="2026-01-01T00:00:00+00:00"),
    "case_id": lambda b: b.update(case_id="other"),
    "tree_size": lambda b: b.update(tree_size=99),
    "checkpoint": lambda b: b.update(checkpoint=b["checkpoint"].replace("\n13\n", "\n14\n")),
    "format": lambda b: b.update(format="x"),
    "events": lambda b: b.update(events=[]),
}


@pytest.mark.parametrize("what", list(EDITS))
def test_verify_bundle_refuses_each_edit(bundle: dict[str, Any], what: str) -> None:
    import copy

    edited = copy.deepcopy(bundle)
    EDITS[what](edited)
    with pytest.raises(gridflow.GridflowError):
        gridflow.verify_bundle(edited, VKEY)


def test_verify_bundle_refuses_another_key(bundle: dict[str, Any]) -> None:
    _, other = gridflow.generate_key("example.org/street-log")
    with pytest.raises(NoteError, match="no trusted key"):
        gridflow.verify_bundle(bundle, other)


def test_a_bundle_is_plain_json(bundle: dict[str, Any]) -> None:
    import json

    again = json.loads(json.dumps(bundle, ensure_ascii=False))
    assert gridflow.verify_bundle(again, VKEY) == gridflow.verify_bundle(bundle, VKEY)
    assert attrs.has(type(gridflow.verify_bundle(again, VKEY)[0]))
    assert note.verify_checkpoint(again["checkpoint"], VKEY).size == 13
