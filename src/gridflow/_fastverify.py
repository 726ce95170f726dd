"""Fast verification of every case: a pre-check on stored rows, the full path on failure.

`Engine.verify_all` and `Engine.verify_log` check every case's hash chain and
fold. The full path (`gridflow.fold.audit` over decoded `Case` and `Event`
objects) builds an object per row and names the first bad field of the first
bad event; over a whole store most of its time goes into decoding rows that
are fine. This module first runs a **pre-check** on the stored rows
themselves (on SQL stores: the columns as the database driver returns them):

- each event's canonical text (`gridflow.model.event_text`) is rebuilt from
  its columns with the very functions the full path uses (the same JSON
  decoding, the same `Actor.stored`, `Changes.from_json` and encoders, pieces
  that repeat — an actor, a changes record — computed once per run), and its
  SHA-256 compared with the stored hash; each ``prev_hash`` links to the hash
  before it, ``seq`` runs 1, 2, 3...;
- the fold runs the rule of `gridflow.fold` (its `_Fold`, `_check_step` and
  fingerprint check) on the events and the result is compared with the case
  row, field by field, as `audit` compares them.

On a `MemoryStore` the rows are already the hashed text (`gridflow.store.memory`:
each event's canonical bytes less the case id, prev_hash and the shared step and
actor texts), so the pre-check hashes a concatenation of stored bytes and folds the
changes records as the store decodes them (`_Checker.compact`).

A case passes the pre-check only if the full path would pass it; anything
the pre-check does not recognise, or any disagreement at all, sends that case
to the full path (`Engine.verify`, which re-reads the case and raises the
`IntegrityError` naming the case, seq and field). So errors, and their
order (by case id), are exactly those of the full path; only the cost of the
cases that verify changes. The pre-check may be stricter than the full path
(it compares some stored values as text); never more lenient. Differential
tests check both agree: ``tests/test_fastverify.py`` on randomly tampered stores,
``tests/test_fast_verify_differential.py`` on random engine histories and forged
ones whose hashes were all recomputed.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import re
import sys
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from itertools import chain, groupby
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Literal, cast

from gridflow import _facts
from gridflow._errors import GridflowError
from gridflow.fold import (
    _TIMER_ONLY,
    CASE_FIELDS,
    INTERNAL_TRIGGERS,
    SpecIndex,
    _check_fingerprint,
    _check_step,
    _Fold,
)
from gridflow.model import (
    GENESIS_HASH,
    Actor,
    Case,
    Changes,
    Event,
    _actor_part,
    _changes_text,
    _fast_dumps,
    _quote,
)
from gridflow.store import memory as _memory
from gridflow.store.memory import _BODY, MemoryStore, _Log

if TYPE_CHECKING:
    from gridflow.engine import Engine
    from gridflow.store.sql import SQLStore

__all__ = ["RawSource", "precheck_rows", "verify_cases"]

#: The columns of a case row before the facts of the figures (schema 4).
_CASE_COLUMNS = 13
#: Entries kept in each per-run cache (actors, changes, times) before it is cleared.
_CACHE_LIMIT = 50_000
#: Payload texts kept (they repeat less, and weigh more).
_PAYLOAD_LIMIT = 10_000


class _Ev:
    """The attributes of an `Event` that the fold's rules read, from a stored row."""

    __slots__ = ("actor", "at", "case_id", "changes", "dest", "hash", "payload", "seq",
                 "source", "trigger")

    def __init__(self, case_id: str, seq: int, trigger: str, source: str | None,
                 dest: str | None, actor: Actor, at: datetime, payload: dict[str, Any],
                 hash: str, changes: Changes | None) -> None:
        self.case_id = case_id
        self.seq = seq
        self.trigger = trigger
        self.source = source
        self.dest = dest
        self.actor = actor
        self.at = at
        self.payload = payload
        self.hash = hash
        self.changes = changes


class RawSource:
    """How one store's rows are read and decoded for the pre-check.

    ``histories(case_ids)`` yields ``(case row or None, event rows)`` per case, by
    case id; event rows are tuples ``(case_id, seq, trigger, source, dest,
    actor_id, actor, at, payload, idempotency_key, prev_hash, hash, changes)`` and
    case rows the columns of ``gridflow_cases`` in table order, as the driver
    returns them; ``read_case``, ``read_json`` and ``read_when`` decode them as the
    full path does.
    """

    def __init__(self, *, read_case: Callable[[Any], Case], read_json: Callable[[Any], Any],
                 read_when: Callable[[Any], datetime | None], json_text: bool,
                 histories: Callable[[Sequence[str] | None],
                                     Iterator[tuple[Any, list[Any]]]]) -> None:
        self.read_case = read_case
        self.read_json = read_json
        self.read_when = read_when
        #: JSON columns come back as text (SQLite), not decoded (PostgreSQL JSONB).
        self.json_text = json_text
        self.histories = histories


def _text_key(value: Any) -> Any:
    return value


#: The start of a changes record as SQLStore writes it on SQLite (`Changes.to_json`).
_HEAD = '{"deadline_at":'
#: What a JSON string's text may not hold to be its value: quotes, escapes, controls.
_UNSAFE = re.compile(r'["\\\x00-\x1f]')

#: How SQLStore writes a time on SQLite (UTC, fixed width, ASCII digits).
_SQLITE_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} (?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
                          r"\.[0-9]{6}")


class _SqliteTimes:
    """The quoted ``isoformat()`` of a stored SQLite time, as the full path computes it
    (`datetime.fromisoformat`, UTC, `isoformat`), without building a datetime when the
    text has the exact form SQLStore writes: then it is a rearrangement of the text
    (the date part's validity checked once per distinct date)."""

    def __init__(self, read_when: Callable[[Any], datetime | None]) -> None:
        self._exact = _exact_iso(read_when)
        self.dates: dict[str, bool] = {}

    def iso(self, value: Any) -> str:
        if value.__class__ is str and len(value) == 26 and _SQLITE_TIME.fullmatch(value):
            day = value[:10]
            ok = self.dates.get(day)
            if ok is None:
                try:
                    ok = datetime.fromisoformat(value).isoformat(" ", "microseconds") == value
                except ValueError:
                    ok = False
                if len(self.dates) >= _CACHE_LIMIT:
                    self.dates.clear()
                self.dates[day] = ok
            if ok:
                frac = value[19:]
                return (f'"{day}T{value[11:19]}'
                        f'{"" if frac == ".000000" else frac}+00:00"')
        return self._exact(value)


def _exact_iso(read_when: Callable[[Any], datetime | None]) -> Callable[[Any], str]:
    def iso(value: Any) -> str:
        when = read_when(value)
        if when is None:
            raise ValueError("no time")
        return str(_quote(when.isoformat()))

    return iso


class _Checker:
    """One run's pre-check: the caches of decoded pieces, the spec index."""

    def __init__(self, source: RawSource | None, specs: SpecIndex) -> None:
        self.source = cast(RawSource, source)  # None: objects() only
        self.specs = specs
        self.actors: dict[Any, tuple[str, Actor]] = {}
        self.changes: dict[Any, tuple[str, Changes, datetime | None]] = {}
        self.tails: dict[str, tuple[str, Changes] | Literal[False]] = {}
        self.deadlines: dict[str, tuple[str, datetime | None] | Literal[False]] = {}
        self.payloads: dict[str, tuple[str, Any]] = {}
        #: (workflow, version) -> `_allowed` steps of MemoryStore rows.
        self.steps: dict[tuple[str, int], dict[int, bool]] = {}
        self.seqs: list[bytes] = [b""]
        if source is None:
            return
        self.key: Callable[[Any], Any] = _text_key if source.json_text else _fast_dumps
        self.iso: Callable[[Any], str] = (_SqliteTimes(source.read_when).iso
                                          if source.json_text else
                                          _exact_iso(source.read_when))

    def _actor(self, actor_id: Any, raw: Any) -> tuple[str, Actor]:
        key = (actor_id, self.key(raw))
        found = self.actors.get(key)
        if found is None:
            a = self.source.read_json(raw)
            actor = Actor.stored(actor_id, a["roles"], a["grids"])
            found = (_actor_part(actor), actor)
            if len(self.actors) >= _CACHE_LIMIT:
                self.actors.clear()
            self.actors[key] = found
        return found

    def _changes(self, raw: Any) -> tuple[str, Changes, datetime | None]:
        """The canonical text of a stored changes record, the `Changes` the fold reads
        (its ``deadline_at`` is not read: the third item is), and the deadline."""
        if self.source.json_text and raw.__class__ is str and raw.startswith(_HEAD):
            # {"deadline_at":X,rest: X is null or a string (checked below, once per X).
            if raw.startswith("null,", 15):
                value, rest = "null", raw[20:]
            else:
                end = raw.find('"', 16) + 1
                value, rest = raw[15:end], raw[end + 1:]
                if not end or raw[end:end + 1] != ",":
                    value = ""
            tail = self.tails.get(rest)
            if tail is None:
                tail = self._tail(rest)
                if len(self.tails) >= _CACHE_LIMIT:
                    self.tails.clear()
                self.tails[rest] = tail
            known = self.deadlines.get(value)
            if known is None:
                known = self._deadline(value)
                if len(self.deadlines) >= _CACHE_LIMIT:
                    self.deadlines.clear()
                self.deadlines[value] = known
            if tail is not False and known is not False:
                return known[0] + tail[0], tail[1], known[1]
        key = self.key(raw)
        found = self.changes.get(key)
        if found is None:
            changes = Changes.from_json(self.source.read_json(raw))
            found = (_changes_text(changes), changes, changes.deadline_at)
            if len(self.changes) >= _CACHE_LIMIT:
                self.changes.clear()
            self.changes[key] = found
        return found

    @staticmethod
    def _deadline(value: str) -> tuple[str, datetime | None] | Literal[False]:
        """The canonical text's start for a stored deadline ``value`` (JSON ``null`` or a
        string) and the deadline, as `Changes.from_json` and the changes text make
        them; ``False`` for anything else (the exact way decides)."""
        if value == "null":
            return '{"deadline_at":null', None
        if len(value) < 2 or not value.startswith('"') or not value.endswith('"') \
                or _UNSAFE.search(value, 1, len(value) - 1):
            return False
        # A JSON string without quotes, escapes or control characters is its text.
        try:
            deadline = datetime.fromisoformat(value[1:-1])
            utc = deadline if deadline.tzinfo is UTC else deadline.astimezone(UTC)
        except (ValueError, OverflowError, OSError):
            return False
        return '{"deadline_at":' + _quote(utc.isoformat()), deadline

    def _tail(self, rest: str) -> tuple[str, Changes] | Literal[False]:
        """For stored changes ``{"deadline_at":X,`` + ``rest``: the canonical text after
        the deadline and the record without it, when they do not depend on X (``rest``
        names no other deadline_at); ``False`` otherwise."""
        text = '{"deadline_at":null,' + rest
        top: list[list[tuple[str, Any]]] = []

        def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
            top.append(items)
            return dict(items)

        try:
            json.loads(text, object_pairs_hook=pairs)
            changes = Changes.from_json(self.source.read_json(text))
            canonical = _changes_text(changes)
        except Exception:
            return False
        head = '{"deadline_at":null'
        if [k for k, _ in top[-1]].count("deadline_at") != 1 or not canonical.startswith(head):
            return False
        return canonical[len(head):], changes

    def _payload(self, raw: Any) -> tuple[str, Any]:
        if not self.source.json_text:
            return _fast_dumps(raw), raw
        found = self.payloads.get(raw)
        if found is None:
            value = self.source.read_json(raw)
            found = (_fast_dumps(value), value)
            if len(self.payloads) >= _PAYLOAD_LIMIT:
                self.payloads.clear()
            self.payloads[raw] = found
        return found

    def objects(self, row: Case | None, events: Sequence[Event]) -> bool:
        """The pre-check on decoded objects (a `MemoryStore`): the checks of `audit`
        without its bookkeeping of where a field last changed."""
        try:
            return self._objects(row, events)
        except Exception:
            return False

    def _objects(self, row: Case | None, events: Sequence[Event]) -> bool:
        if row is None or not events:
            return False
        case_id = row.id
        specs = self.specs
        prev = GENESIS_HASH
        fold: _Fold | None = None
        index = 0
        for event in events:
            index += 1
            # The model's own hash (and its fast encoder where one is installed).
            if event.seq != index or event.case_id != case_id or event.prev_hash != prev \
                    or event.expected_hash() != event.hash:
                return False
            prev = event.hash
            if fold is None:
                fold = _Fold.opened(event)
                if fold.workflow:
                    _check_fingerprint(case_id, 1, event.payload.get("fingerprint"),
                                       fold.workflow, fold.workflow_version, specs)
                continue
            _check_step(index, event, fold, specs)
            fold.apply(event)
        assert fold is not None
        return _same(row, fold)

    def compact(self, row: Case | None, log: _Log) -> bool:
        """The pre-check on the rows of a `MemoryStore` (`gridflow.store.memory`): each
        row's hashed text is a concatenation of stored bytes, so it is hashed as it is
        stored; the fold reads the changes records (and the first row's payload)."""
        try:
            return self._compact(row, log)
        except Exception:
            return False

    def _compact(self, row: Case | None, log: _Log) -> bool:
        rows = list(log.rows)
        if row is None or not rows or log.case_id != row.id or row.version != len(rows):
            return False
        case_id = row.id
        steps, actors = log.tables.steps, log.tables.actors
        seqs = self.seqs
        while len(seqs) <= len(rows):
            seqs.append(b"%d," % len(seqs))
        prefix = log.prefix
        unpack, sha, hexlify = _memory._HEAD.unpack_from, hashlib.sha256, binascii.hexlify
        loads = _memory._loads
        # The chain: each row's hashed text is stored bytes around the previous hash.
        prev = GENESIS_HASH.encode()
        tails: list[bytes] = []
        kinds: list[int] = []
        for index, blob in enumerate(rows, 1):
            # (An event kept as an Event is no buffer: unpack raises, the pre-check fails.)
            seq, actor_at, step_at = unpack(blob, 32)  # type: ignore[arg-type]
            if seq != index:
                return False
            cut = blob.index(b"\x00", _BODY)  # type: ignore[union-attr]
            tail = blob[cut + 1:]  # type: ignore[index]
            digest = sha(b"".join((prefix, seqs[seq], steps[step_at][3], actors[actor_at][1],
                                   blob[_BODY:cut], b',"', prev, b'",', tail,  # type: ignore[index]
                                   b"]"))).digest()
            if not blob.startswith(digest):  # type: ignore[union-attr]
                return False
            prev = hexlify(digest)
            tails.append(tail)
            kinds.append(step_at << 32 | actor_at)
        # The fold (`_Fold.opened`, `_check_step`, `_Fold.apply`) on the changes records
        # as the rows read them back (decoded in one call).
        records = loads(b"[" + b",".join(tails) + b"]")
        record = records[0]
        trigger, source, dest, _ = steps[kinds[0] >> 32]
        workflow, grid = record.get("workflow"), record.get("grid")
        if source is not None or dest is None or workflow is None:
            return False
        version = record["workflow_version"]
        data = dict(record["set"])
        for key in record["unset"]:
            data.pop(key, None)
        links = tuple(record["links"])
        deadline = record["deadline_at"]
        state = dest
        first = rows[0]
        opened, payload, _ = loads(b"[" + first[_BODY:first.index(b"\x00", _BODY)] + b"]")  # type: ignore[index,union-attr]
        _check_fingerprint(case_id, 1, payload.get("fingerprint"), workflow, version,
                           self.specs)
        allowed = self._allowed(workflow, version)
        for index in range(1, len(records)):
            kind = kinds[index]
            trigger, source, dest, _ = steps[kind >> 32]
            if source != state:
                return False
            ok = allowed.get(kind)
            if ok is None:
                actor_at = kind & 0xFFFFFFFF
                if trigger == "migrate":
                    return False  # its own rules: the full path decides
                if trigger in INTERNAL_TRIGGERS:
                    ok = dest is None and (trigger not in _TIMER_ONLY
                                           or actors[actor_at][0].id == "system")
                else:
                    ok = not workflow or (trigger, state, dest) in self.specs.edges(
                        workflow, version)
                allowed[kind] = ok
            if not ok:
                return False
            if dest is not None:
                state = dest
            record = records[index]
            if record.get("workflow") is not None or record["workflow_version"] != version:
                # A rebind (a migration was sent to the full path above) or a version
                # changed without one: `_check_step` refuses both; the full path names it.
                return False
            deadline = record["deadline_at"]
            changed, removed = record["set"], record["unset"]
            if changed or removed:
                data = {**data, **changed}
                for key in removed:
                    data.pop(key, None)
            if record["links"]:
                links = links + tuple(record["links"])
        fromiso = datetime.fromisoformat
        first_at = fromiso(opened)
        last_at = first_at if len(rows) == 1 else fromiso(_row_at(rows[-1]))  # type: ignore[arg-type]
        when = None if deadline is None else fromiso(deadline)
        # `_same`: every field equal and of the same type.
        head = prev.decode()
        return (row.workflow == workflow and row.workflow_version == version
                and row.state == state and row.data == data and row.grid == grid
                and row.opened_at == first_at and row.updated_at == last_at
                and row.deadline_at == when and row.links == links and row.head == head
                and type(row.workflow) is type(workflow)
                and type(row.workflow_version) is type(version)
                and type(row.state) is type(state) and type(row.data) is type(data)
                and type(row.grid) is type(grid) and type(row.opened_at) is type(first_at)
                and type(row.updated_at) is type(last_at)
                and type(row.deadline_at) is type(when) and type(row.links) is type(links)
                and type(row.head) is type(head))

    def _allowed(self, workflow: str, version: int) -> dict[int, bool]:
        """(step index << 32 | actor index) -> whether `_check_step` allows that step of a
        MemoryStore row, for a case on ``workflow@version``."""
        key = (workflow, version)
        found = self.steps.get(key)
        if found is None:
            if len(self.steps) >= _CACHE_LIMIT:
                self.steps.clear()
            found = self.steps[key] = {}
        return found

    def case(self, crow: Any, erows: Sequence[Any]) -> bool:
        """Whether the full path would verify this case (``False``: ask it)."""
        try:
            return self._case(crow, erows)
        except Exception:  # anything unusual: the full path decides, and names it
            return False

    def _case(self, crow: Any, erows: Sequence[Any]) -> bool:
        if crow is None or not erows:
            return False
        case_id = crow[0]
        iso = self.iso
        specs = self.specs
        actors, payloads = self.actors, self.payloads
        text_json = self.source.json_text
        q = _quote
        sha = hashlib.sha256
        prev = GENESIS_HASH
        fold: _Fold | None = None
        deadline: datetime | None = None
        index = 0
        seen_events: list[_Ev] = []
        for (cid, seq, trigger, source, dest, actor_id, actor_raw, at_raw, payload_raw,
             key, prev_hash, hash_, changes_raw, *_) in erows:
            index += 1
            if seq.__class__ is not int or seq != index or cid != case_id \
                    or prev_hash != prev or hash_.__class__ is not str:
                return False
            found = actors.get((actor_id, actor_raw)) if text_json else None
            part, actor = found if found is not None else self._actor(actor_id, actor_raw)
            seen = payloads.get(payload_raw) if text_json else None
            payload_text, payload = seen if seen is not None else self._payload(payload_raw)
            if changes_raw is None:
                changes = None
                tail = "]"
            else:
                changes_text, changes, deadline = self._changes(changes_raw)
                tail = f",{changes_text}]"
            text = (
                f"[{q(cid)},{seq},{q(trigger)},{'null' if source is None else q(source)},"
                f"{'null' if dest is None else q(dest)},{part},{iso(at_raw)},"
                f"{payload_text},{'null' if key is None else q(key)},{q(prev_hash)}{tail}"
            )
            if sha(text.encode()).hexdigest() != hash_:
                return False
            prev = hash_
            # ``at`` is the stored value: the fold only carries it to opened_at and
            # updated_at, which are decoded below (first and last event).
            event: Any = _Ev(cid, seq, trigger, source, dest, actor, at_raw, payload, hash_,
                             changes)
            seen_events.append(event)
            if fold is None:
                fold = _Fold.opened(event)
                if fold.workflow:
                    _check_fingerprint(case_id, 1, payload.get("fingerprint"), fold.workflow,
                                       fold.workflow_version, specs)
                continue
            _check_step(index, event, fold, specs)
            fold.apply(event)
        assert fold is not None
        # The deadline in force is that of the last event with changes (what the fold's
        # rule leaves): the records the fold read may not carry it.
        return (self._same_row(crow, fold, erows[0][7], erows[-1][7], deadline)
                and self._same_facts(crow, erows, seen_events))

    def _same_facts(self, crow: Any, erows: Sequence[Any], seen: Sequence[_Ev]) -> bool:
        """The stored facts of the figures (schema 5: the case row's columns after the
        13 of schema 4, each event's last column) are the fold `gridflow._facts.derive`
        of the events (``seen``: as the fold read them, ``at`` as stored)."""
        if len(crow) <= _CASE_COLUMNS:
            return True  # a store without facts
        read_when = self.source.read_when
        events = [_Ev(e.case_id, e.seq, e.trigger, e.source, e.dest, e.actor,
                      cast(datetime, read_when(e.at)), e.payload, e.hash, None) for e in seen]
        facts, stays = _facts.derive(events)
        end = _CASE_COLUMNS + len(_facts.NAMES)
        if tuple(facts[n] for n in _facts.NAMES) != tuple(crow[_CASE_COLUMNS:end]):
            return False
        district = _facts.opening_district(events[0])
        if crow[end] != district or any(erow[14] != district for erow in erows):
            return False
        return [erow[13] for erow in erows] == stays


    def _same_row(self, crow: Any, fold: _Fold, first_at: Any, last_at: Any,
                  deadline: datetime | None) -> bool:
        """`_same` of the case row as the full path decodes it (`SQLStore._hot_case`) and
        the fold, decoding only what differs from the events' stored values."""
        read_when, read_json = self.source.read_when, self.source.read_json
        for stored, recomputed in (
                (crow[1], fold.workflow), (crow[2], fold.workflow_version),
                (crow[3], fold.state), (crow[4], fold.version), (crow[6], fold.grid),
                (crow[11], fold.head), (read_json(crow[5]), fold.data)):
            if not (stored == recomputed and type(stored) is type(recomputed)):
                return False
        # opened_at and updated_at are decoded as the first and the last event's ``at``:
        # the same stored text decodes the same.
        for stored, at in ((crow[7], first_at), (crow[8], last_at)):
            if not (stored.__class__ is str and stored == at):
                when, expected = read_when(stored), read_when(at)
                if not (when == expected and type(when) is type(expected)):
                    return False
        when = read_when(crow[9])
        if not (when == deadline and type(when) is type(deadline)):
            return False
        links = () if crow[10] == "[]" and self.source.json_text else tuple(read_json(crow[10]))
        return links == fold.links and type(links) is type(fold.links)


def _row_at(row: bytes) -> str:
    """The time of a MemoryStore row, as its decoding reads it (the JSON string first in
    its ``"at",payload,key`` part, here without escapes)."""
    end = row.index(b'"', _BODY + 1)
    if row[_BODY] != 0x22 or row[end + 1] != 0x2C or 0x5C in row[_BODY:end]:
        raise ValueError("not a plain time")
    return row[_BODY + 1:end].decode()


def _same(row: Case, folded: Case | _Fold) -> bool:
    """`audit`'s comparison of the stored row with the fold (``folded``: the fold's
    `Case`, or the fold itself, whose attributes that `Case` is made of): every
    field, equal and of the same type."""
    if folded.version != row.version:
        return False
    for field in CASE_FIELDS:
        stored, recomputed = getattr(row, field), getattr(folded, field)
        if not (stored == recomputed and type(stored) is type(recomputed)):
            return False
    return True


def precheck_rows(source: RawSource, specs: SpecIndex,
                  histories: Iterable[tuple[Any, list[Any]]]) -> Iterator[tuple[str, bool]]:
    """``(case id, passed)`` for each stored case of ``histories`` (raw rows)."""
    checker = _Checker(source, specs)
    for crow, erows in histories:
        cid = crow[0] if crow is not None else erows[0][0]
        yield cid, checker.case(crow, erows)


#: Each SQLStore's raw-row reader, built once (compiling its statements is not free).
_SOURCES: weakref.WeakKeyDictionary[Any, RawSource | None] = weakref.WeakKeyDictionary()


def _raw_source(store: object) -> RawSource | None:
    """The raw-row reader of ``store`` (``None``: a store without one). Built here,
    not by the store, so that the store layer never imports verification."""
    # A SQLStore exists only once its module was imported (it needs SQLAlchemy,
    # which a MemoryStore-only install lacks).
    sql = sys.modules.get("gridflow.store.sql")
    if sql is None or not isinstance(store, sql.SQLStore):
        return None
    if store not in _SOURCES:
        _SOURCES[store] = sql_source(store)
    return _SOURCES[store]


def verify_cases(engine: Engine, case_ids: Sequence[str] | None = None) -> int:
    """Verify every case (or those of ``case_ids``): pre-check, then the full path for
    any case the pre-check does not pass. Returns the number of cases checked;
    raises the full path's `IntegrityError` for the first bad case (by id)."""
    from gridflow.store._log import log_for

    # SQLStore(read_url=): the rows are read from the replica; a case they do not
    # pass is verified again on the primary (`verify`), which names the problem.
    store = getattr(engine.store, "replica", None) or engine.store
    index = engine._spec_index
    source = _raw_source(store)
    count = 0
    if source is not None:
        for cid, passed in precheck_rows(source, index, source.histories(case_ids)):
            count += 1
            if not passed:
                engine.verify(cid)
        return count
    if isinstance(store, MemoryStore):
        return _verify_memory(engine, store, case_ids)
    try:
        log = log_for(store)
    except GridflowError:
        raise GridflowError(f"{type(store).__name__} cannot list its cases; verifying every "
                            "case needs a MemoryStore or a SQLStore (verify(case_id) "
                            "works on any store)") from None
    checker = _Checker(None, index)
    for row, events in log.histories(case_ids):
        count += 1
        if not checker.objects(row, events):
            # `verify` re-reads (a step may have landed between the two reads) and
            # names the problem.
            engine.verify(row.id if row is not None else events[0].case_id)
    return count


def _verify_memory(engine: Engine, store: MemoryStore, case_ids: Sequence[str] | None) -> int:
    """`verify_cases` on a `MemoryStore`: its rows pre-checked as stored (`_Checker.compact`),
    a case with an event kept as an object by the object pre-check."""
    checker = _Checker(None, engine._spec_index)
    cases, histories = store._cases, store._events
    ids = sorted(set(cases) | set(histories) if case_ids is None else set(case_ids))
    for cid in ids:
        row, log = cases.get(cid), histories.get(cid)
        if log.__class__ is _Log:
            assert isinstance(log, _Log)
            passed = checker.compact(row, log) or checker.objects(row, log.events())
        else:
            passed = checker.objects(row, list(log or ()))
        if not passed:
            # `verify` re-reads (a step may have landed between the two reads) and
            # names the problem.
            engine.verify(cid)
    return len(ids)


def sql_source(store: SQLStore) -> RawSource | None:
    """The raw-row reader of a `SQLStore` (``None`` when its hot path is off)."""
    hot = store._hot
    if hot is None:
        return None
    import sqlalchemy as sa

    cases_t, ev = store.cases, store.events_table
    e = ev.c
    cols = [e.case_id, e.seq, e.trigger, e.source, e.dest, e.actor_id, e.actor, e.at,
            e.payload, e.idempotency_key, e.prev_hash, e.hash, e.changes, e.stay_us,
            e.district]
    dialect = store.engine.dialect
    sqlite = store.dialect == "sqlite"
    if sqlite:
        named: Any = type(dialect)
        dialect = named(paramstyle="qmark")
    q_cases = sa.select(cases_t).order_by(cases_t.c.id)
    q_events = sa.select(*cols).order_by(e.case_id, e.seq)

    def sql(stmt: Any) -> str:
        return str(stmt.compile(dialect=dialect))

    all_cases, all_events = sql(q_cases), sql(q_events)
    name = dialect.identifier_preparer.format_table
    select_cases, select_events = sql(sa.select(cases_t)), sql(sa.select(*cols))

    def part_sql(n: int) -> tuple[str, str]:
        """The two statements reading ``n`` given cases (their rows, their events)."""
        where = f"IN ({', '.join('?' * n)})" if sqlite else "= ANY(%s)"
        return (f"{select_cases} WHERE {name(cases_t)}.id {where} ORDER BY {name(cases_t)}.id",
                f"{select_events} WHERE {name(ev)}.case_id {where} "
                f"ORDER BY {name(ev)}.case_id, {name(ev)}.seq")
    read_case = store._hot_case

    def histories(case_ids: Sequence[str] | None) -> Iterator[tuple[Any, list[Any]]]:
        if case_ids is None:
            with store._failures("reading every case"), store._dbapi() as c1, \
                    store._dbapi() as c2:
                if sqlite:
                    c1.execute(all_cases)
                    c2.execute(all_events)
                    yield from _merge(c1, c2)
                    return
                # PostgreSQL: server-side cursors, so a large store streams.
                with c1.connection.cursor(name="gridflow_verify_cases") as s1, \
                        c2.connection.cursor(name="gridflow_verify_events") as s2:
                    s1.execute(all_cases)
                    s2.execute(all_events)
                    yield from _merge(s1, s2)
            return
        wanted = sorted(set(case_ids))
        for start in range(0, len(wanted), 500):
            part = wanted[start:start + 500]
            args = tuple(part) if sqlite else (part,)
            part_cases, part_events = part_sql(len(part))
            with store._failures("reading cases"), store._dbapi() as cur:
                cur.execute(part_cases, args)
                crows = cur.fetchall()
                cur.execute(part_events, args)
                erows = cur.fetchall()
            yield from _merge_lists(crows, erows)

    return RawSource(read_case=read_case, read_json=hot.read_json,
                     read_when=hot.read_when,
                     json_text=sqlite, histories=histories)


def _rows(cur: Any) -> Iterator[Any]:
    fetch = cur.fetchmany
    return chain.from_iterable(iter(lambda: fetch(5_000), []))


def _merge(c1: Any, c2: Any) -> Iterator[tuple[Any, list[Any]]]:
    return _merge_lists(_rows(c1), _rows(c2))


def _merge_lists(crows: Iterable[Any], erows: Iterable[Any]
                 ) -> Iterator[tuple[Any, list[Any]]]:
    """Case rows and event rows, both ordered by case id, grouped per case (a case row
    without events, or events without a case row, come with an empty side)."""
    case_it = iter(crows)
    crow = next(case_it, None)
    for cid, group in groupby(erows, key=itemgetter(0)):
        while crow is not None and crow[0] < cid:
            yield crow, []
            crow = next(case_it, None)
        if crow is not None and crow[0] == cid:
            yield crow, list(group)
            crow = next(case_it, None)
        else:
            yield None, list(group)
    while crow is not None:
        yield crow, []
        crow = next(case_it, None)
