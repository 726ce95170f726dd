"""`MemoryStore`: the whole store in process memory, for tests and demos."""

from __future__ import annotations

import heapq
import itertools
import json
import struct
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, MutableSequence, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, overload

from gridflow import model as _model
from gridflow._errors import ConcurrencyError, IntegrityError
from gridflow._fastinit import maker
from gridflow.model import GENESIS_HASH, Actor, Case, Changes, Event
from gridflow.store import (
    Page,
    Write,
    check_claim,
    check_count_columns,
    check_query,
    check_retired,
    cursor,
    parse_cursor,
)
from gridflow.values import PLAIN, _plain

if TYPE_CHECKING:
    from gridflow.store._log import MemoryLog

__all__ = ["MemoryStore"]


# -- the stored form of an event ------------------------------------------------------------
#
# A case's history is a `_Log`: one row per event. A row is normally one bytes object
# holding the canonical text its hash covers (`gridflow.model.event_text`), less what
# the store already knows or shares between events:
#
#   [0:32)   the hash (raw SHA-256; ``Event.hash`` is its hex);
#   [32:44)  seq, actor index, step index (3 little-endian uint32s);
#   [44:)    the hashed text after the actor (``"at",payload,key,"prev_hash",changes``
#            without the closing bracket), its ``,"prev_hash",`` replaced by one NUL
#            byte, which canonical JSON never holds (it writes ``\u0000``).
#
# The case id is the log's; prev_hash is the previous row's hash (GENESIS_HASH first);
# trigger, source and dest (a "step") and the actor are kept once per store, with their
# canonical text. So the hashed text is a concatenation of stored bytes, checked
# without decoding anything (gridflow._fastverify), and reading an event decodes its
# two JSON parts (sorted keys, as they were hashed). The text is the one the engine
# hashed (`gridflow.model.last_text`), once checked to be this event's, else encoded
# here alike. Bytes are not tracked by the garbage collector: a large store costs it
# nothing.
#
# An event a row could not give back exactly (see `_encode`: values other than plain
# JSON, a time not in UTC, a prev_hash that is not the previous row's hash, kept
# digests, a subclass) stays the `Event` itself: rows of both kinds mix.

_HEAD: Final = struct.Struct("<III")
_BODY: Final = 32 + _HEAD.size
_U32: Final = 2**32


def _first_loads(data: Any) -> Any:
    # orjson when installed (the ``fast`` extra), chosen by the first read.
    global _loads
    orjson = _orjson_module()
    _loads = json.loads if orjson is None else orjson.loads
    return _loads(data)


_loads: Callable[[Any], Any] = _first_loads


def _orjson_module() -> Any:
    found = _model._orjson
    if found is _model._ORJSON_NOT_LOADED:
        found = _model._load_orjson()
    return found


class _Tables:
    """What many events share, kept once per store: actors and steps, each with the
    canonical text it contributes to an event's hashed text."""

    __slots__ = ("actor_by_id", "actor_index", "actors", "step_index", "steps")

    def __init__(self) -> None:
        #: (actor, b',' + its hashed fields + b',')
        self.actors: list[tuple[Actor, bytes]] = []
        self.actor_index: dict[Actor, int] = {}
        # By identity first (hosts fire as the same few Actor objects); the entry
        # holds the actor, so its id stays its own.
        self.actor_by_id: dict[int, tuple[Actor, int]] = {}
        #: (trigger, source, dest, b'"trigger",source,dest')
        self.steps: list[tuple[str, str | None, str | None, bytes]] = []
        self.step_index: dict[tuple[str, str | None, str | None], int] = {}

    def actor(self, actor: Actor) -> int:
        entry = self.actor_by_id.get(id(actor))
        if entry is not None and entry[0] is actor:
            return entry[1]
        index = self.actor_index.get(actor)
        if index is None:
            index = len(self.actors)
            self.actors.append((actor, b"," + _model._actor_part(actor).encode() + b","))
            self.actor_index[actor] = index
        if len(self.actor_by_id) >= 4096:
            self.actor_by_id.clear()
        self.actor_by_id[id(actor)] = (actor, index)
        return index

    def step(self, trigger: str, source: str | None, dest: str | None) -> int:
        key = (trigger, source, dest)
        index = self.step_index.get(key)
        if index is None:
            q = _model._quote
            text = (f"{q(trigger)},{'null' if source is None else q(source)},"
                    f"{'null' if dest is None else q(dest)}").encode()
            index = len(self.steps)
            self.steps.append((trigger, source, dest, text))
            self.step_index[key] = index
        return index


def _all_str(items: object) -> bool:
    return items.__class__ is tuple and all(
        item.__class__ is str for item in items)


#: ``b"<seq>,"``, as an event's hashed text has it after the case id.
_SEQ_TEXT: Final = [b"%d," % n for n in range(1024)]

#: The classes of (trigger, source, dest, idempotency key, workflow, grid) a row keeps.
_FIELD_CLASSES: Final = frozenset(
    (str, *rest) for rest in itertools.product((str, type(None)), repeat=5))


def _encode(tables: _Tables, prefix: bytes, event: Event) -> bytes | None:
    """The row of ``event`` (``prefix``: ``b'["case id",'``; the caller checked the
    case id and prev_hash), or ``None`` when the row could not give it back exactly
    (the event is then kept as it is)."""
    changes = event.changes
    payload = event.payload
    at, digest, actor = event.at, event.hash, event.actor
    # What a row gives back as it is (the fields `_fast_bytes` does not check itself).
    if (event.__class__ is not Event or changes.__class__ is not Changes
            or event.digests is not None or at.__class__ is not datetime
            or at.tzinfo is not UTC or at.fold or actor.__class__ is not Actor
            or digest.__class__ is not str):
        return None
    assert changes is not None
    deadline = changes.deadline_at
    if (changes.links.__class__ is not tuple or changes.unset.__class__ is not tuple
            or (changes.workflow is None and changes.grid is not None)
            or not (deadline is None or (deadline.__class__ is datetime
                                         and deadline.tzinfo is UTC and not deadline.fold))):
        return None
    seq, key, prev = event.seq, event.idempotency_key, event.prev_hash
    trigger, source, dest = event.trigger, event.source, event.dest
    try:
        raw = bytes.fromhex(digest)
        if raw.hex() != digest:
            return None  # upper case, or spaces between the digits
        hashed = _model.last_text
        if (hashed is not None and hashed[0] is payload and hashed[1] is changes
                and hashed[2] is at and hashed[3] is key and hashed[4] is prev):
            # The text the engine hashed from these very objects (so plain: checked by
            # `_fast_bytes`), if it starts with this event's case id, seq, step and actor.
            step_at = tables.step_index.get((trigger, source, dest))
            if step_at is None:
                step_at = tables.step(trigger, source, dest)
            found = tables.actor_by_id.get(id(actor))
            actor_at = found[1] if found is not None and found[0] is actor \
                else tables.actor(actor)
            text = hashed[5]
            start = b"".join((prefix, _SEQ_TEXT[seq] if seq < 1024 else b"%d," % seq,
                              tables.steps[step_at][3], tables.actors[actor_at][1]))
            if text.startswith(start):
                sep = b',"' + prev.encode("ascii") + b'",'
                begin = len(start)
                end = text.find(sep, begin)
                if end > 0 and text.find(sep, end + 68) < 0:
                    return b"".join((raw, _HEAD.pack(seq, actor_at, step_at),
                                     text[begin:end], b"\x00", text[end + 68:-1]))
        if (seq.__class__ is not int or not 0 < seq < _U32
                or changes.workflow_version.__class__ is not int
                or (trigger.__class__, source.__class__, dest.__class__, key.__class__,
                    changes.workflow.__class__, changes.grid.__class__) not in _FIELD_CLASSES):
            return None
        body = _body(event, changes)
        if body is None:
            return None
        step_at = tables.step(trigger, source, dest)
        actor_at = tables.actor(actor)
        return b"".join((raw, _HEAD.pack(seq, actor_at, step_at), body))
    except (TypeError, ValueError, UnicodeError, OverflowError, struct.error):
        return None  # e.g. a lone surrogate: kept as it is


def _body(event: Event, changes: Changes) -> bytes | None:
    """The row body of ``event`` encoded here (a text `_fast_bytes` did not write)."""
    payload, data = event.payload, changes.set
    # Only values JSON gives back as they are (no subclass, no tuple, 64-bit ints).
    p_kind = _plain(payload, 0) if payload else PLAIN
    s_kind = _plain(data, 0) if data else PLAIN
    if not p_kind or not s_kind or not (changes.links == () or _all_str(changes.links)) \
            or not (changes.unset == () or _all_str(changes.unset)):
        return None
    at, key = event.at, event.idempotency_key
    orjson = _orjson_module()
    if orjson is not None and p_kind == PLAIN and s_kind == PLAIN:
        # orjson writes these exactly as the canonical encoder does (model.py).
        sort = orjson.OPT_SORT_KEYS
        mid: bytes = orjson.dumps([at, payload, key], option=sort)[1:-1]
        record: dict[str, Any] = {
            "deadline_at": changes.deadline_at, "links": list(changes.links), "set": data,
            "unset": list(changes.unset), "workflow_version": changes.workflow_version}
        if changes.workflow is not None:
            record["workflow"] = changes.workflow
            record["grid"] = changes.grid
        tail: bytes = orjson.dumps(record, option=sort)
    else:
        q = _model._quote
        mid = (f"{q(at.isoformat())},{_model._dumps(payload)},"
               f"{'null' if key is None else q(key)}").encode()
        tail = _model._changes_text(changes).encode()
    return mid + b"\x00" + tail


_make_event = maker(Event)
_make_changes = maker(Changes)


def _decode(tables: _Tables, case_id: str, row: bytes, prev: str) -> Event:
    """The event of a row (``prev``: the previous row's hash)."""
    try:
        seq, actor_at, step_at = _HEAD.unpack_from(row, 32)
        trigger, source, dest, _ = tables.steps[step_at]
        actor = tables.actors[actor_at][0]
        # One parse for both halves: JSON escapes every control character, so the
        # row's NUL is its only one.
        when, payload, key, record = _loads(
            b"[" + row[_BODY:].replace(b"\x00", b",", 1) + b"]")
        deadline = record["deadline_at"]
        changes = _make_changes(record["set"], tuple(record["unset"]),
                                None if deadline is None else datetime.fromisoformat(deadline),
                                tuple(record["links"]), record["workflow_version"],
                                record.get("workflow"), record.get("grid"))
        return _make_event(case_id, seq, trigger, source, dest, actor,
                           datetime.fromisoformat(when), payload, key, prev, row[:32].hex(),
                           changes)
    except Exception as exc:  # only an edited row: the store's own rows decode
        raise IntegrityError(case_id, None, f"a stored event cannot be read back "
                             f"({type(exc).__name__})", field="hash") from None


def _row_hash(row: bytes | Event) -> str:
    return row[:32].hex() if isinstance(row, bytes) else row.hash


def _row_seq(row: bytes | Event) -> int:
    if isinstance(row, bytes):
        seq: int = _HEAD.unpack_from(row, 32)[0]
        return seq
    return row.seq


class _Log(MutableSequence[Event]):
    """One case's events, as rows (see above); reads give `Event` objects.

    Rows are appended by `MemoryStore.commit`. Any other edit (which only a test
    that tampers with history makes) first turns every row into its `Event`, so
    that no row's prev_hash comes to depend on an edited neighbour.
    """

    __slots__ = ("case_id", "head", "prefix", "rows", "tables")

    def __init__(self, case_id: str, tables: _Tables) -> None:
        self.case_id = case_id
        self.tables = tables
        self.rows: list[bytes | Event] = []
        #: The last row's hash (GENESIS_HASH for none): the next compact row's prev_hash.
        self.head = GENESIS_HASH
        #: ``b'["case id",'``, how each of its events' hashed text starts.
        self.prefix = b"[" + _model._quote(case_id).encode("utf-8", "surrogatepass") + b","

    def append(self, event: Event) -> None:
        row: bytes | Event | None = None
        if event.prev_hash == self.head and event.case_id == self.case_id:
            row = _encode(self.tables, self.prefix, event)
        self.rows.append(event if row is None else row)
        self.head = event.hash

    def events(self) -> list[Event]:
        """Every event, oldest first."""
        rows = list(self.rows)  # one consistent snapshot, as `list(...)` was
        out: list[Event] = []
        prev = GENESIS_HASH
        tables, case_id = self.tables, self.case_id
        for row in rows:
            event = _decode(tables, case_id, row, prev) if isinstance(row, bytes) else row
            out.append(event)
            prev = event.hash
        return out

    def _materialize(self) -> list[bytes | Event]:
        rows: list[bytes | Event] = list(self.events())
        self.rows = rows
        return rows

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events())

    @overload
    def __getitem__(self, index: int) -> Event: ...

    @overload
    def __getitem__(self, index: slice) -> list[Event]: ...

    def __getitem__(self, index: int | slice) -> Event | list[Event]:
        return self.events()[index]

    @overload
    def __setitem__(self, index: int, value: Event) -> None: ...

    @overload
    def __setitem__(self, index: slice, value: Iterable[Event]) -> None: ...

    def __setitem__(self, index: int | slice, value: Any) -> None:
        rows = self._materialize()
        rows[index] = value
        self.head = _row_hash(rows[-1]) if rows else GENESIS_HASH

    def __delitem__(self, index: int | slice) -> None:
        rows = self._materialize()
        del rows[index]
        self.head = _row_hash(rows[-1]) if rows else GENESIS_HASH

    def insert(self, index: int, value: Event) -> None:
        rows = self._materialize()
        rows.insert(index, value)
        self.head = _row_hash(rows[-1])

    def pop(self, index: int = -1) -> Event:
        if index in (-1, len(self.rows) - 1):
            # The last row: no other row's prev_hash depends on it.
            event = self.events()[index]
            self.rows.pop()
            self.head = _row_hash(self.rows[-1]) if self.rows else GENESIS_HASH
            return event
        event = self[index]
        del self[index]
        return event

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _Log | list | tuple):
            return self.events() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, as a list

    def __repr__(self) -> str:
        return repr(self.events())

    def where(self, triggers: frozenset[str]) -> list[Event]:
        """The events whose trigger is one of ``triggers`` (the others not decoded)."""
        rows = list(self.rows)
        steps = self.tables.steps
        out: list[Event] = []
        for i, row in enumerate(rows):
            if not isinstance(row, bytes):
                if row.trigger in triggers:
                    out.append(row)
            elif steps[_HEAD.unpack_from(row, 32)[2]][0] in triggers:
                prev = _row_hash(rows[i - 1]) if i else GENESIS_HASH
                out.append(_decode(self.tables, self.case_id, row, prev))
        return out

    def hash_at(self, seq: int) -> str | None:
        """The hash of the event ``seq`` (``None``: no such row)."""
        rows = self.rows
        if 0 < seq <= len(rows):
            return _row_hash(rows[seq - 1])
        return None


_REBINDS: Final = frozenset(("open", "migrate"))


def _event_seqs(log: _Log | list[Event]) -> list[int]:
    """The seq of each stored event of a case (a store's ``_events`` entry)."""
    if log.__class__ is _Log:
        return [_row_seq(row) for row in log.rows]
    return [e.seq for e in log]


def _event_hash_at(log: _Log | list[Event], position: int) -> str | None:
    """The hash of the ``position``-th stored event of a case (1-based), or ``None``."""
    if log.__class__ is _Log:
        return log.hash_at(position)
    return log[position - 1].hash if 0 < position <= len(log) else None


def _unlogged_row(case_id: str, row: bytes | Event) -> tuple[str, int, str]:
    """``(case id, seq, hash)`` of an entry of ``MemoryStore._unlogged``."""
    return case_id, _row_seq(row), _row_hash(row)


def _as_set(value: str | Sequence[str] | None) -> frozenset[str] | None:
    if value is None:
        return None
    return frozenset((value,)) if isinstance(value, str) else frozenset(value)


class MemoryStore:
    """A thread-safe in-memory `Store`. Nothing survives the process.

    Case rows are handed out as they are (no copies): treat ``Case.data`` as
    read-only. Events are kept compactly (their hashed canonical text, less what
    the store shares between events) and rebuilt on each read, so each read gives
    new `Event` objects, equal to those committed; their dicts (``payload``,
    ``changes.set``) come back with their keys in sorted order, as they were hashed.

    Example:
        >>> import gridflow
        >>> engine = gridflow.Engine(store=MemoryStore())
        >>> len(engine.store)
        0
    """

    def __init__(self) -> None:
        self._cases: dict[str, Case] = {}
        # A case id -> its events (a `_Log`; a plain list of events works too).
        self._events: dict[str, _Log | list[Event]] = {}
        self._tables = _Tables()
        # An idempotency key -> (case id, seq) of its event.
        self._keys: dict[str, tuple[str, int]] = {}
        self._claims: dict[str, datetime] = {}
        # (deadline_at, case id) of every deadline ever set, stale ones included:
        # claim_due pops only what is due, so a tick where nothing is due costs the
        # same at 100,000 cases as at 1,000 (0.1 scanned every case).
        self._due: list[tuple[datetime, str]] = []
        self._due_slack = 1024  # stale heap entries tolerated beyond twice the cases
        self._retired: set[tuple[str, int]] = set()
        self._lock = threading.Lock()
        # The Merkle log (gridflow.store._log): events not yet in a leaf, in commit
        # order, as their rows, with their case ids alongside.
        self._unlogged: list[bytes | Event] = []
        self._unlogged_ids: list[str] = []
        self._log: MemoryLog | None = None

    def __len__(self) -> int:
        return len(self._cases)

    def create_schema(self) -> None:
        """Nothing to create; present so code can treat every store alike."""

    def get(self, case_id: str) -> Case | None:
        return self._cases.get(case_id)

    def events(self, case_id: str) -> list[Event]:
        log = self._events.get(case_id)
        if log is None:
            return []
        return log.events() if log.__class__ is _Log else list(log)

    def event_by_key(self, idempotency_key: str) -> Event | None:
        found = self._keys.get(idempotency_key)
        if found is None:
            return None
        case_id, seq = found
        for event in reversed(self.events(case_id)):
            if event.seq == seq:
                return event
        return None

    def _append(self, case_id: str, event: Event) -> None:
        # Under the lock: the event's row, and the row as the Merkle log's next leaf.
        log = self._events.get(case_id)
        if log is None:
            log = self._events[case_id] = _Log(case_id, self._tables)
        log.append(event)
        self._unlogged.append(log.rows[-1] if log.__class__ is _Log else event)
        self._unlogged_ids.append(case_id)
        key = event.idempotency_key
        if key is not None:
            self._keys[key] = (case_id, event.seq)

    def commit(self, writes: Sequence[Write]) -> None:
        """Apply every write or none; see `Store.commit`.

        Writes are checked in order against what the earlier writes of the same
        commit leave behind, as a database transaction would see them.

        Example:
            >>> import gridflow
            >>> store = MemoryStore()
            >>> engine = gridflow.Engine(store=store, entry_points=False)
            >>> case = engine.open("grid_case", actor=gridflow.Actor("r", ["resident"],
            ...                                                      grids=gridflow.ALL_GRIDS),
            ...                    data={"title": "路灯", "source": "resident"})
            >>> stale = gridflow.Write(case, engine.history(case.id)[0], 0)
            >>> store.commit([stale])  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            gridflow._errors.ConcurrencyError: case ... is no longer at version 0, it is now ...
        """
        if len(writes) == 1:
            self._commit_one(writes[0])
            return
        with self._lock:
            cases = self._cases
            staged: dict[str, int] = {}
            keys: set[str] = set()
            for w in writes:
                cid = w.case.id
                if cid in staged:
                    actual = staged[cid]
                else:
                    stored = cases.get(cid)
                    actual = 0 if stored is None else stored.version
                if actual != w.expected_version:
                    raise ConcurrencyError(cid, w.expected_version, actual)
                key = w.event.idempotency_key
                if key is not None:
                    if key in self._keys or key in keys:
                        raise ConcurrencyError(cid, w.expected_version, actual)
                    keys.add(key)
                staged[cid] = w.case.version
            for w in writes:
                cid = w.case.id
                deadline = w.case.deadline_at
                if deadline is not None:
                    before = cases.get(cid)
                    if before is None or before.deadline_at != deadline:
                        self._push_due(deadline, cid)
                cases[cid] = w.case
                self._append(cid, w.event)
                self._claims.pop(cid, None)

    def _push_due(self, deadline: datetime, cid: str) -> None:
        # Under the lock. Stale entries (a deadline since changed or cleared) are
        # skipped by claim_due; when they outnumber the cases, the heap is rebuilt
        # from the cases' own deadlines (amortized O(1) per push), so it does not
        # grow with every step ever taken.
        heap = self._due
        heapq.heappush(heap, (deadline, cid))
        if len(heap) > 2 * len(self._cases) + self._due_slack:
            live = [(c.deadline_at, c.id) for c in self._cases.values()
                    if c.deadline_at is not None]
            if (deadline, cid) not in live:
                live.append((deadline, cid))  # the case being written is not stored yet
            heapq.heapify(live)
            self._due = live

    def _commit_one(self, w: Write) -> None:
        # `commit` of one write (most steps): the same checks and writes, once.
        case, event = w.case, w.event
        cid = case.id
        with self._lock:
            cases = self._cases
            stored = cases.get(cid)
            actual = 0 if stored is None else stored.version
            if actual != w.expected_version:
                raise ConcurrencyError(cid, w.expected_version, actual)
            key = event.idempotency_key
            if key is not None and key in self._keys:
                raise ConcurrencyError(cid, w.expected_version, actual)
            deadline = case.deadline_at
            if deadline is not None and (stored is None or stored.deadline_at != deadline):
                self._push_due(deadline, cid)
            cases[cid] = case
            log = self._events.get(cid)
            if log is None:
                log = self._events[cid] = _Log(cid, self._tables)
            if log.__class__ is _Log:
                # `_Log.append`, inline: a step pays for every call.
                row: bytes | Event | None = None
                if event.prev_hash == log.head and event.case_id == cid:
                    row = _encode(self._tables, log.prefix, event)
                if row is None:
                    row = event
                log.rows.append(row)
                log.head = event.hash
            else:
                log.append(event)
                row = event
            self._unlogged.append(row)
            self._unlogged_ids.append(cid)
            if key is not None:
                self._keys[key] = (cid, event.seq)
            if self._claims:
                self._claims.pop(cid, None)

    def _filtered(
        self, workflow: str | None, state: str | Sequence[str] | None,
        grid: str | Sequence[str] | None, opened_from: datetime | None,
        opened_until: datetime | None, overdue_at: datetime | None,
    ) -> list[Case]:
        states, grids = _as_set(state), _as_set(grid)
        out = []
        for case in list(self._cases.values()):
            if workflow is not None and case.workflow != workflow:
                continue
            if states is not None and case.state not in states:
                continue
            if grids is not None and case.grid not in grids:
                continue
            if opened_from is not None and case.opened_at < opened_from:
                continue
            if opened_until is not None and case.opened_at >= opened_until:
                continue
            if overdue_at is not None and (
                case.deadline_at is None or case.deadline_at > overdue_at
            ):
                continue
            out.append(case)
        return out

    def query(
        self,
        *,
        workflow: str | None = None,
        state: str | Sequence[str] | None = None,
        grid: str | Sequence[str] | None = None,
        opened_from: datetime | None = None,
        opened_until: datetime | None = None,
        overdue_at: datetime | None = None,
        after: str | None = None,
        limit: int = 100,
    ) -> Page:
        check_query(workflow, state, grid, opened_from, opened_until, overdue_at, after, limit)
        found = self._filtered(workflow, state, grid, opened_from, opened_until, overdue_at)
        found.sort(key=lambda c: (c.opened_at, c.id))
        if after is not None:
            mark = parse_cursor(after)
            found = [c for c in found if (c.opened_at, c.id) > mark]
        limit = max(limit, 0)
        items = found[:limit]
        nxt = cursor(items[-1]) if len(found) > limit and items else None
        return Page(items, nxt)

    def counts(
        self, by: Sequence[str] = ("state",), *, workflow: str | None = None
    ) -> dict[tuple[Any, ...], int]:
        check_count_columns(by)
        found = self._filtered(workflow, None, None, None, None, None)
        return dict(Counter(tuple(getattr(c, col) for col in by) for c in found))

    def fingerprints(self) -> set[tuple[str, int, str]]:
        """Every ``(workflow, version, fingerprint)`` recorded in the stored events
        (the ``open`` and ``migrate`` events that carry one).

        Example:
            >>> MemoryStore().fingerprints()
            set()
        """
        found: set[tuple[str, int, str]] = set()
        for log in list(self._events.values()):
            events = log.where(_REBINDS) if log.__class__ is _Log else log
            for event in events:
                if event.trigger not in _REBINDS:
                    continue
                fp, changes = event.payload.get("fingerprint"), event.changes
                if isinstance(fp, str) and changes is not None and changes.workflow:
                    found.add((changes.workflow, changes.workflow_version, fp))
        return found

    def retired(self) -> set[tuple[str, int]]:
        """The ``(workflow, version)`` pairs marked retired (`Engine.retire`).

        Example:
            >>> MemoryStore().retired()
            set()
        """
        return set(self._retired)

    def set_retired(self, workflow: str, version: int, retired: bool = True) -> None:
        """Mark ``workflow@version`` retired (or not): no new case opens on it.

        Example:
            >>> s = MemoryStore(); s.set_retired("grid_case", 1); s.retired()
            {('grid_case', 1)}
        """
        check_retired(workflow, version, retired)
        with self._lock:
            if retired:
                self._retired.add((workflow, version))
            else:
                self._retired.discard((workflow, version))

    def claim_due(self, now: datetime, limit: int = 100, *, lease: float = 60.0) -> list[Case]:
        check_claim(now, limit, lease)
        if limit <= 0:
            return []
        with self._lock:
            heap, cases, claims = self._due, self._cases, self._claims
            due: list[Case] = []
            keep: list[tuple[datetime, str]] = []
            seen: set[str] = set()
            while heap and heap[0][0] <= now and len(due) < limit:
                entry = heapq.heappop(heap)
                deadline, cid = entry
                case = cases.get(cid)
                if case is None or case.deadline_at != deadline or cid in seen:
                    continue  # stale: the deadline changed or was cleared since
                seen.add(cid)
                # A due case stays in the heap until a write changes its deadline.
                keep.append(entry)
                if claims.get(cid, now) <= now:
                    due.append(case)
            for entry in keep:
                heapq.heappush(heap, entry)
            until = now + timedelta(seconds=lease)
            for case in due:
                claims[case.id] = until
            return due
