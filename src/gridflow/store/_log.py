"""The Merkle log of a store: leaves, perfect-subtree nodes, checkpoints, the sequencer.

Every committed event becomes one leaf of one append-only RFC 9162 tree per
store (the leaf data is the event's 32-byte hash). Steps are not serialised
on any counter: a commit only inserts its events (their ``leaf`` column is
NULL). A *sequencer step* (`LogBackend.integrate`, run by
`Engine.checkpoint`) takes the log's lock, reads the events committed since
the last step (``leaf IS NULL``, a partial index), orders them by
``(case_id, seq)``, assigns them the next leaf indexes, stores their leaves
and every perfect-subtree node they complete, and stores the signed
checkpoint of the new tree, all in one transaction.

The lock: ``BEGIN IMMEDIATE`` on SQLite (one writer at a time anyway), a
``SELECT ... FOR UPDATE`` of the ``log_size`` row of ``gridflow_meta`` on
PostgreSQL. A second checkpointer waits for the first and then integrates
what is left (possibly nothing); it never forks the tree. A checkpoint over
nothing new returns the latest stored checkpoint when it is signed by the
same key (no write).

Tables (SQLStore, schema version 3):

- ``gridflow_log_leaves``: ``idx`` (leaf index) -> ``case_id``, ``seq``,
  ``hash`` (the event hash, hex), unique ``(case_id, seq)``;
- ``gridflow_log_nodes``: ``(level, idx)`` -> 32-byte hash of that perfect
  subtree (level 0: the leaf hashes), what proofs and the next extension
  read (O(log n) rows each);
- ``gridflow_log_checkpoints``: ``id`` -> ``size``, signed checkpoint ``text``;
- ``gridflow_events.leaf``: the event's leaf index, NULL until integrated.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol, cast

from gridflow._errors import GridflowError, LogError, StoreError
from gridflow.log import merkle
from gridflow.model import Case, Event
from gridflow.store.memory import _event_hash_at, _event_seqs, _unlogged_row

if TYPE_CHECKING:
    import sqlalchemy as sa
    from sqlalchemy.engine import Connection

    from gridflow.store.memory import MemoryStore
    from gridflow.store.sql import SQLStore

__all__ = ["LeafRow", "LogBackend", "MemoryLog", "SQLLog", "log_for"]

#: One leaf as stored, joined with its event: ``(idx, case_id, seq, leaf_hash_hex,
#: event_hash_hex or None when the event is gone, the event's leaf column)``.
LeafRow = tuple[int, str, int, str, "str | None", "int | None"]

#: Called under the log's lock with ``(size, root)``; returns the signed checkpoint text.
MakeCheckpoint = Callable[[int, bytes], str]
#: Called under the lock with the latest stored checkpoint text: reuse it (nothing new)?
Reusable = Callable[[str], bool]

_CHUNK = 20_000


class LogBackend(Protocol):
    """What the checkpoint layer needs from a store's log."""

    def integrate(self, make: MakeCheckpoint, reusable: Reusable) -> tuple[str, int]:
        """Sequence pending events, store and return ``(checkpoint text, leaves added)``."""
        ...

    def size(self) -> int:
        """The number of leaves integrated."""
        ...

    def latest_checkpoint(self) -> str | None:
        """The text of the newest stored checkpoint (``None``: none yet)."""
        ...

    def checkpoints(self) -> list[str]:
        """Every stored checkpoint text, oldest first."""
        ...

    def nodes(self, ids: Sequence[merkle.NodeID]) -> dict[merkle.NodeID, bytes]:
        """The stored hashes of these perfect subtrees (missing ones left out)."""
        ...

    def leaves(self, begin: int, end: int) -> Iterator[LeafRow]:
        """Leaves ``[begin, end)`` in index order, joined with their events."""
        ...

    def unlogged(self, size: int, *, scan: bool = True) -> list[tuple[str, int]]:
        """``(case_id, seq)`` of events not in a leaf below ``size`` (``scan=False``:
        only those whose leaf is NULL, read from the partial index)."""
        ...

    def logged_count(self, size: int) -> int:
        """The number of events whose leaf column is below ``size``."""
        ...

    def case_leaves(self, case_id: str) -> list[tuple[int, int]]:
        """``(seq, leaf index)`` of the case's logged events, by seq."""
        ...

    def histories(self, case_ids: Sequence[str] | None = None
                  ) -> Iterator[tuple[Case | None, list[Event]]]:
        """Every case row (or those of ``case_ids``) with its events (either side may be
        missing), by case id."""
        ...


class _Reader:
    """A `merkle.NodeReader` over a dict of prefetched nodes."""

    def __init__(self, found: dict[merkle.NodeID, bytes]) -> None:
        self.found = found

    def get(self, level: int, index: int) -> bytes:
        try:
            return self.found[(level, index)]
        except KeyError:
            raise LogError(f"log node ({level}, {index}) is not stored: the log's node "
                           "table is incomplete") from None


def _frontier(size: int, fetch: Callable[[Sequence[merkle.NodeID]], dict[merkle.NodeID, bytes]]
              ) -> merkle.CompactRange:
    ids = merkle.range_nodes(0, size)
    return merkle.CompactRange.from_nodes(size, _Reader(fetch(ids)))


# -- memory ----------------------------------------------------------------------------


class MemoryLog:
    """The log of a `MemoryStore` (kept on the store, guarded by its lock)."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self.tree = merkle.MemoryNodes()
        self.leaf_rows: list[tuple[str, int, str]] = []
        self.leaf_of: dict[tuple[str, int], int] = {}
        self.texts: list[str] = []
        self._seq_lock = threading.Lock()

    def integrate(self, make: MakeCheckpoint, reusable: Reusable) -> tuple[str, int]:
        with self._seq_lock:
            store = self.store
            with store._lock:
                rows, ids = store._unlogged, store._unlogged_ids
                store._unlogged, store._unlogged_ids = [], []
            pending = sorted((_unlogged_row(cid, row) for cid, row in zip(ids, rows, strict=True)),
                             key=lambda e: (e[0], e[1]))
            if not pending and self.texts and reusable(self.texts[-1]):
                return self.texts[-1], 0
            start = self.tree.size
            head = self.tree.append([merkle.leaf_hash(bytes.fromhex(h)) for _, _, h in pending])
            for i, (cid, seq, h) in enumerate(pending):
                self.leaf_rows.append((cid, seq, h))
                self.leaf_of[(cid, seq)] = start + i
            text = make(self.tree.size, head)
            self.texts.append(text)
            return text, len(pending)

    def size(self) -> int:
        return self.tree.size

    def latest_checkpoint(self) -> str | None:
        return self.texts[-1] if self.texts else None

    def checkpoints(self) -> list[str]:
        return list(self.texts)

    def nodes(self, ids: Sequence[merkle.NodeID]) -> dict[merkle.NodeID, bytes]:
        out = {}
        for level, index in ids:
            with contextlib.suppress(LogError):
                out[(level, index)] = self.tree.get(level, index)
        return out

    def _event_hash(self, case_id: str, seq: int) -> str | None:
        events = self.store._events.get(case_id)
        return None if events is None else _event_hash_at(events, seq)

    def leaves(self, begin: int, end: int) -> Iterator[LeafRow]:
        for idx in range(begin, min(end, len(self.leaf_rows))):
            cid, seq, h = self.leaf_rows[idx]
            found = self._event_hash(cid, seq)
            yield idx, cid, seq, h, found, self.leaf_of.get((cid, seq)) if found else None

    def unlogged(self, size: int, *, scan: bool = True) -> list[tuple[str, int]]:
        out = []
        for cid, events in list(self.store._events.items()):
            for seq in _event_seqs(events):
                leaf = self.leaf_of.get((cid, seq))
                if leaf is None or leaf >= size:
                    out.append((cid, seq))
        return out

    def logged_count(self, size: int) -> int:
        return sum(1 for cid, events in list(self.store._events.items())
                   for seq in _event_seqs(events) if self.leaf_of.get((cid, seq), size) < size)

    def case_leaves(self, case_id: str) -> list[tuple[int, int]]:
        events = self.store._events.get(case_id)
        return [(seq, self.leaf_of[(case_id, seq)])
                for seq in (_event_seqs(events) if events is not None else ())
                if (case_id, seq) in self.leaf_of]

    def histories(self, case_ids: Sequence[str] | None = None
                  ) -> Iterator[tuple[Case | None, list[Event]]]:
        ids = sorted(set(self.store._cases) | set(self.store._events)
                     if case_ids is None else set(case_ids))
        for cid in ids:
            yield self.store._cases.get(cid), self.store.events(cid)


# -- SQL ------------------------------------------------------------------------------


def log_tables(metadata: sa.MetaData, cases: sa.Table) -> tuple[sa.Table, sa.Table, sa.Table]:
    """The three log tables of a SQLStore (leaves, nodes, checkpoints)."""
    import sqlalchemy as sa

    id_type = cases.c.id.type
    leaves = sa.Table(
        "gridflow_log_leaves", metadata,
        sa.Column("idx", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("case_id", id_type, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("case_id", "seq", name="uq_gridflow_log_leaves_event"),
    )
    nodes = sa.Table(
        "gridflow_log_nodes", metadata,
        sa.Column("level", sa.SmallInteger(), nullable=False),
        sa.Column("idx", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
        sa.PrimaryKeyConstraint("level", "idx", name="pk_gridflow_log_nodes"),
    )
    checkpoints = sa.Table(
        "gridflow_log_checkpoints", metadata,
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
    )
    return leaves, nodes, checkpoints


def leaf_column() -> sa.Column[Any]:
    """``gridflow_events.leaf``: the event's leaf index, NULL until integrated."""
    import sqlalchemy as sa

    return sa.Column("leaf", sa.BigInteger(), nullable=True)


def unlogged_index(events: sa.Table) -> sa.Index:
    """The partial index of the events not yet integrated (what a sequencer step reads)."""
    import sqlalchemy as sa

    where = events.c.leaf.is_(None)
    return sa.Index("ix_gridflow_events_unlogged", events.c.case_id, events.c.seq,
                    sqlite_where=where, postgresql_where=where)


def ensure_log_state(conn: Connection, store: SQLStore) -> None:
    """Insert the ``log_size`` row of ``gridflow_meta`` if missing (create_schema)."""
    import sqlalchemy as sa

    meta = store.tables.meta
    found = conn.execute(sa.select(meta.c.value).where(meta.c.key == "log_size")).scalar()
    if found is None:
        conn.execute(sa.insert(meta), [{"key": "log_size", "value": "0"}])


def upgrade_3_to_4(conn: Connection, store: SQLStore) -> None:
    """Schema 3 to 4: the Merkle log. Adds ``gridflow_events.leaf`` (NULL: every
    existing event is integrated by the first checkpoint) and its partial index;
    the log tables are created by create_schema before migrations run."""
    import sqlalchemy as sa

    events = store.events_table
    col = events.c.leaf
    name = conn.dialect.identifier_preparer.format_table(events)
    present = {c["name"] for c in sa.inspect(conn).get_columns(events.name,
                                                               schema=events.schema)}
    if col.name not in present:  # a half-migrated or hand-built schema may have it
        conn.execute(sa.text(f"ALTER TABLE {name} ADD COLUMN {col.name} "
                             f"{col.type.compile(dialect=conn.dialect)}"))
    for index in events.indexes:
        if index.name == "ix_gridflow_events_unlogged":
            index.create(conn, checkfirst=True)
    ensure_log_state(conn, store)


class SQLLog:
    """The log of a `SQLStore` (tables in the store's metadata)."""

    def __init__(self, store: SQLStore) -> None:
        self.store = store
        self.leaves_t, self.nodes_t, self.cps_t = store.log_tables

    def _fetch(self, conn: Connection, ids: Sequence[merkle.NodeID]) -> dict[merkle.NodeID, bytes]:
        import sqlalchemy as sa

        if not ids:
            return {}
        n = self.nodes_t.c
        out: dict[merkle.NodeID, bytes] = {}
        wanted = list(ids)
        for start in range(0, len(wanted), 200):
            part = wanted[start:start + 200]
            cond = sa.or_(*[sa.and_(n.level == lv, n.idx == ix) for lv, ix in part])
            for level, idx, h in conn.execute(sa.select(n.level, n.idx, n.hash).where(cond)):
                out[(int(level), int(idx))] = bytes(h)
        return out

    def integrate(self, make: MakeCheckpoint, reusable: Reusable) -> tuple[str, int]:
        import sqlalchemy as sa

        store = self.store
        store._ready()
        meta, events = store.tables.meta, store.events_table
        e = events.c
        with store._failures("checkpoint"), store._writer.begin() as conn:
            q = sa.select(meta.c.value).where(meta.c.key == "log_size")
            if store.dialect == "postgresql":
                q = q.with_for_update()
            found = conn.execute(q).scalar()
            if found is None:
                raise StoreError("gridflow_meta has no log_size row; run "
                                 "store.create_schema() to upgrade the schema")
            size = int(found)
            pending = conn.execute(
                sa.select(e.case_id, e.seq, e.hash).where(e.leaf.is_(None))
                .order_by(e.case_id, e.seq)).all()
            if not pending:
                latest = conn.execute(
                    sa.select(self.cps_t.c.text).order_by(self.cps_t.c.id.desc()).limit(1)
                ).scalar()
                if latest is not None and reusable(latest):
                    return str(latest), 0
            frontier = _frontier(size, lambda ids: self._fetch(conn, ids))
            grown, new = frontier.extend(
                [merkle.leaf_hash(bytes.fromhex(h)) for _, _, h in pending])
            if pending:
                conn.execute(sa.insert(self.leaves_t), [
                    {"idx": size + i, "case_id": cid, "seq": seq, "hash": h}
                    for i, (cid, seq, h) in enumerate(pending)])
                conn.execute(sa.insert(self.nodes_t), [
                    {"level": lv, "idx": ix, "hash": h} for lv, ix, h in new])
                # One statement: each new leaf's event gets its index (UPDATE ... FROM).
                lt = self.leaves_t.c
                conn.execute(sa.update(events)
                             .where(e.leaf.is_(None), e.case_id == lt.case_id,
                                    e.seq == lt.seq, lt.idx >= size)
                             .values(leaf=lt.idx))
                conn.execute(sa.update(meta).where(meta.c.key == "log_size")
                             .values(value=str(grown.size)))
            text = make(grown.size, grown.root())
            conn.execute(sa.insert(self.cps_t), [{"size": grown.size, "text": text}])
        return text, len(pending)

    def size(self) -> int:
        import sqlalchemy as sa

        meta = self.store.tables.meta
        with self.store._failures("reading the log size"), \
                self.store._reader.connect() as conn:
            found = conn.execute(sa.select(meta.c.value).where(meta.c.key == "log_size")
                                 ).scalar()
        return int(found or 0)

    def latest_checkpoint(self) -> str | None:
        import sqlalchemy as sa

        c = self.cps_t.c
        self.store._ready()
        with self.store._failures("reading the latest checkpoint"), \
                self.store._reader.connect() as conn:
            found = conn.execute(sa.select(c.text).order_by(c.id.desc()).limit(1)).scalar()
        return None if found is None else str(found)

    def checkpoints(self) -> list[str]:
        import sqlalchemy as sa

        c = self.cps_t.c
        with self.store._failures("reading the checkpoints"), \
                self.store._reader.connect() as conn:
            return [str(t) for t in conn.execute(sa.select(c.text).order_by(c.id)).scalars()]

    def nodes(self, ids: Sequence[merkle.NodeID]) -> dict[merkle.NodeID, bytes]:
        with self.store._failures("reading log nodes"), self.store._reader.connect() as conn:
            return self._fetch(conn, ids)

    def leaves(self, begin: int, end: int) -> Iterator[LeafRow]:
        import sqlalchemy as sa

        lt, ev = self.leaves_t, self.store.events_table
        stmt = (sa.select(lt.c.idx, lt.c.case_id, lt.c.seq, lt.c.hash, ev.c.hash, ev.c.leaf)
                .select_from(lt.outerjoin(ev, sa.and_(ev.c.case_id == lt.c.case_id,
                                                      ev.c.seq == lt.c.seq)))
                .where(lt.c.idx >= sa.bindparam("lo"), lt.c.idx < sa.bindparam("hi"))
                .order_by(lt.c.idx))
        store = self.store
        if store._hot is not None:
            # The DBAPI cursor (no value here needs a type's result processor).
            dialect: Any = store.engine.dialect
            if store.dialect == "sqlite":
                dialect = type(dialect)(paramstyle="named")
            sql = str(stmt.compile(dialect=dialect))
            for lo in range(begin, end, _CHUNK):
                hi = min(end, lo + _CHUNK)
                with store._failures("reading the log's leaves"), \
                        store._dbapi(autocommit=store.dialect == "postgresql") as cur:
                    cur.execute(sql, {"lo": lo, "hi": hi})
                    rows = cur.fetchall()
                yield from ((int(r[0]), r[1], int(r[2]), r[3], r[4],
                             None if r[5] is None else int(r[5])) for r in rows)
            return
        for lo in range(begin, end, _CHUNK):
            hi = min(end, lo + _CHUNK)
            with self.store._failures("reading the log's leaves"), \
                    self.store._reader.connect() as conn:
                rows = conn.execute(stmt, {"lo": lo, "hi": hi}).all()
            yield from ((int(r[0]), r[1], int(r[2]), r[3], r[4],
                         None if r[5] is None else int(r[5])) for r in rows)

    def unlogged(self, size: int, *, scan: bool = True) -> list[tuple[str, int]]:
        import sqlalchemy as sa

        e = self.store.events_table.c
        where = sa.or_(e.leaf.is_(None), e.leaf >= size) if scan else e.leaf.is_(None)
        with self.store._failures("reading unlogged events"), \
                self.store._reader.connect() as conn:
            rows = conn.execute(sa.select(e.case_id, e.seq).where(where)
                                .order_by(e.case_id, e.seq)).all()
        return [(r[0], int(r[1])) for r in rows]

    def logged_count(self, size: int) -> int:
        import sqlalchemy as sa

        e = self.store.events_table.c
        with self.store._failures("counting logged events"), \
                self.store._reader.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(
                self.store.events_table).where(e.leaf < size)).scalar() or 0)

    def case_leaves(self, case_id: str) -> list[tuple[int, int]]:
        import sqlalchemy as sa

        e = self.store.events_table.c
        with self.store._failures(f"reading the leaves of case {case_id!r}"), \
                self.store._reader.connect() as conn:
            rows = conn.execute(sa.select(e.seq, e.leaf).where(
                e.case_id == case_id, e.leaf.is_not(None)).order_by(e.seq)).all()
        return [(int(s), int(leaf)) for s, leaf in rows]

    def histories(self, case_ids: Sequence[str] | None = None
                  ) -> Iterator[tuple[Case | None, list[Event]]]:
        import sqlalchemy as sa

        store = self.store
        cases_t, ev = store.cases, store.events_table
        q_cases = sa.select(cases_t).order_by(cases_t.c.id)
        q_events = sa.select(ev).order_by(ev.c.case_id, ev.c.seq)
        if case_ids is None and store._hot is not None and store.dialect == "sqlite":
            # The hot path's DBAPI cursors and codecs (sqlite3 streams rows lazily).
            dialect = store.engine.dialect
            with store._failures("reading every case"), store._dbapi() as c1, \
                    store._dbapi() as c2:
                c1.execute(str(q_cases.compile(dialect=dialect)))
                c2.execute(str(q_events.compile(dialect=dialect)))
                yield from _merge_hot(store, c1, c2)
            return
        if case_ids is None:
            with store._failures("reading every case"), store.engine.connect() as c1, \
                    store.engine.connect() as c2:
                yield from _merge(store, c1.execution_options(yield_per=5_000).execute(q_cases),
                                  c2.execution_options(yield_per=5_000).execute(q_events))
            return
        wanted = sorted(set(case_ids))
        for start in range(0, len(wanted), 500):
            part = wanted[start:start + 500]
            with store._failures("reading cases"), store._reader.connect() as conn:
                crows = conn.execute(q_cases.where(cases_t.c.id.in_(part))).all()
                erows = conn.execute(q_events.where(ev.c.case_id.in_(part))).all()
            yield from _merge(store, crows, erows)


def _merge_hot(store: SQLStore, c1: Any, c2: Any) -> Iterator[tuple[Case | None, list[Event]]]:
    """`_merge` over DBAPI cursors (rows are tuples in table column order)."""
    read_case, read_event = store._hot_case, store._hot_event
    crow, erow = c1.fetchone(), c2.fetchone()
    fetch = c2.fetchone
    while crow is not None or erow is not None:
        if crow is not None and (erow is None or crow[0] <= erow[0]):
            cid = crow[0]
            case: Case | None = read_case(crow)
            crow = c1.fetchone()
        else:
            cid, case = erow[0], None
        batch: list[Event] = []
        while erow is not None and erow[0] == cid:
            batch.append(read_event(erow))
            erow = fetch()
        yield case, batch


def _merge(store: SQLStore, crows: Any, erows: Any) -> Iterator[tuple[Case | None, list[Event]]]:
    """Merge case rows and event rows, both ordered by case id."""
    read_case, read_event = store._case, store._event
    case_it, event_it = iter(crows), iter(erows)
    crow, erow = next(case_it, None), next(event_it, None)
    while crow is not None or erow is not None:
        if crow is not None and (erow is None or crow.id <= erow.case_id):
            cid = crow.id
            case: Case | None = read_case(crow)
            crow = next(case_it, None)
        else:
            assert erow is not None
            cid, case = erow.case_id, None
        batch: list[Event] = []
        while erow is not None and erow.case_id == cid:
            batch.append(read_event(erow))
            erow = next(event_it, None)
        yield case, batch


def log_for(store: object) -> LogBackend:
    """The log of ``store`` (a `MemoryStore` or a `SQLStore`).

    Raises `GridflowError` for a store that keeps no log.
    """
    from gridflow.store.memory import MemoryStore

    if isinstance(store, MemoryStore):
        log = store._log
        if log is None:
            with store._lock:
                if store._log is None:
                    store._log = MemoryLog(store)
                log = store._log
        return log
    log_tables_of = getattr(store, "log_tables", None)
    if log_tables_of is not None:
        sql = cast("SQLStore", store)
        cached = sql._log_backend
        if cached is None:
            cached = sql._log_backend = SQLLog(sql)
        return cast(LogBackend, cached)
    raise GridflowError(f"{type(store).__name__} keeps no Merkle log; signed checkpoints "
                        "need a MemoryStore or a SQLStore")
