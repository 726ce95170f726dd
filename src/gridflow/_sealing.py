"""Personal values on the engine's write and read paths (PIPL): seal, unseal, mask, erase.

The pure building blocks are in `gridflow.personal`; this module connects
them to the engine and the stores:

- **policies**: which paths of a workflow's case data and trigger payloads
  are personal (`PersonalPolicy`), who reads them in clear, who reads
  restricted ones; the built-in workflows have theirs (`BUILTIN_POLICIES`);
- **the vault**: where ciphertexts and wrapped subject keys live, beside the
  cases (`MemoryVault` in a `MemoryStore`, `SQLVault` in two tables of a
  `SQLStore`);
- **`Privacy`**: what the engine calls. On the write path `seal_outcome`
  replaces every declared personal value of a decided step (its payload and
  the case data it leaves) by a reference and a keyed commitment, *before*
  the event is hashed, so the hash chain covers the commitment and never
  the value. On the read path `show_case` / `show_events` put back the
  plaintext for the policy's reader roles, a mask for everyone else, a
  tombstone for erased values.

Guards, effects and hooks see plaintext in the payload of the step they
judge (the step is sealed after it is decided). In the stored case data
they see references, unless the policy says its guards read personal data
(``unseal_for_steps``, the mediation workflow: consent and signatures are
checked against the parties' names): then the engine opens the case data for
the step, and seals it again after, reusing the stored reference of every
value the step did not change.

The vault is written in the step's own commit (`Privacy.commit`: on a
`SQLStore`, inside the same transaction as the event and the case row), so a
step that is not committed leaves no ciphertext; erase removes every
ciphertext of the subject, referenced or not, all the same.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Protocol, cast

import attrs

from gridflow._errors import (
    ConcurrencyError,
    DecryptionError,
    GuardRejected,
    InvalidPayload,
    KeyringError,
)
from gridflow.model import Actor, Case, Changes, Event, stored_links
from gridflow.personal._crypto import forget_cipher, forget_mac
from gridflow.personal.commitment import commitment_key
from gridflow.personal.fields import SUBJECT_KEY, PersonalField, case_subject, subject_of
from gridflow.personal.keyring import Keyring, MasterKey, new_subject_key
from gridflow.personal.masks import RESTRICTED, TOMBSTONE, mask
from gridflow.personal.paths import find, replace
from gridflow.personal.policy import PersonalPolicy, _steps
from gridflow.personal.reference import (
    _LEAVES,
    REF_KEY,
    Reference,
    _any_marked,
    _may_hold_reference,
    holds_reference,
    is_reference,
    map_references,
    references,
    refuse_lookalikes,
)
from gridflow.personal.seal import Sealed, seal, unseal

if TYPE_CHECKING:
    from gridflow.store import Store, Write

__all__ = [
    "BUILTIN_POLICIES",
    "ERASED",
    "PERSONAL_READ",
    "RESTRICTED_TRIGGER",
    "MemoryVault",
    "PersonalPolicy",
    "Privacy",
    "SQLVault",
    "Vault",
    "VaultEntry",
]

#: The internal event appended to every case whose values of a subject were erased.
ERASED: Final = "erased"
#: The internal event appended when a subject's values are restricted (PIPL art. 47(2)).
RESTRICTED_TRIGGER: Final = "restricted"
#: Shown for a stored value this engine cannot open (no master key, or another one).
UNREADABLE: Final = "***"
#: The internal event recording that an auditor read restricted values of a case.
PERSONAL_READ: Final = "personal_read"



_REPORTER = tuple(PersonalField(f"reporter.{k}", kind) for k, kind in (
    ("name", "name"), ("phone", "phone"), ("id_number", "id_number"), ("email", "email"),
    ("address", "address")))
_PARTIES = tuple(PersonalField(f"parties[].{k}", kind) for k, kind in (
    ("name", "name"), ("phone", "phone"), ("id_number", "id_number")))
_CONTACT = PersonalField("contact", "free_text")

_PARTY_NAME = "parties[].name"

#: The policies of the built-in workflows, by workflow name.
BUILTIN_POLICIES: Final[dict[str, PersonalPolicy]] = {
    "grid_case": PersonalPolicy(
        data=(*_REPORTER, _CONTACT), payload=(*_REPORTER, _CONTACT),
        readers=frozenset({"coordinator"})),
    "mediation": PersonalPolicy(
        # The agreement the effect records keeps its signatories' names too.
        data=(*_PARTIES, _CONTACT, PersonalField("consent", "free_text"),
              PersonalField("signed_by[]", "name"),
              PersonalField("agreement.signed_by[]", "name")),
        payload=(*_PARTIES, _CONTACT, PersonalField("consent", "free_text"),
                 PersonalField("signed_by[]", "name")),
        readers=frozenset({"mediator", "judicial_office"}), unseal_for_steps=True,
        refers_to={"consent": _PARTY_NAME, "signed_by[]": _PARTY_NAME,
                   "agreement.signed_by[]": _PARTY_NAME}),
}

#: The key of the stored form of a mapping whose keys are sealed names
#: (``{"$pii_map": [[<reference>, value], ...]}``); input cannot carry it (it
#: starts with ``$pii``), and reads turn it back into a mapping.
MAP_KEY: Final = "$pii_map"


def _unmap(node: Any) -> Any:
    """``node`` with every stored `MAP_KEY` form turned back into a mapping.

    Its keys are what the read put in place of each reference (a name, a
    mask, a tombstone); two that read the same (two erased names, two masks
    ``王**``) are told apart by a ``#2`` suffix, so no entry is lost.

    Example:
        >>> _unmap({"consent": {MAP_KEY: [["王**", True], ["王**", True], ["乙", False]]}})
        {'consent': {'王**': True, '王** #2': True, '乙': False}}
    """
    if isinstance(node, Mapping):
        pairs = node.get(MAP_KEY) if len(node) == 1 else None
        if isinstance(pairs, list):
            out: dict[str, Any] = {}
            for pair in pairs:
                if not (isinstance(pair, list | tuple) and len(pair) == 2):
                    continue
                key = TOMBSTONE if pair[0] is None else str(pair[0])
                shown, n = key, 1
                while shown in out:
                    n += 1
                    shown = f"{key} #{n}"
                out[shown] = _unmap(pair[1])
            return out
        new = {k: _unmap(v) for k, v in node.items()}
        return node if all(new[k] is v for k, v in node.items()) else new
    if isinstance(node, list):
        items = [_unmap(v) for v in node]
        return node if all(a is b for a, b in zip(items, node, strict=True)) else items
    return node


# -- the vault -----------------------------------------------------------------------------


@attrs.frozen
class VaultEntry:
    """One stored ciphertext and what it is bound to."""

    ref_id: str
    subject: str
    case_id: str
    path: str
    ciphertext: bytes = attrs.field(repr=lambda b: f"<{len(b)} bytes>")


@attrs.frozen
class SubjectKey:
    """One wrapped subject key as stored."""

    subject: str
    key_id: str
    wrapped: bytes = attrs.field(repr=False)
    state: str = "active"


class Vault(Protocol):
    """Where ciphertexts and wrapped subject keys are kept."""

    def key(self, subject: str) -> SubjectKey | None:
        """The subject's wrapped key, or ``None``."""
        ...

    def add_key(self, key: SubjectKey) -> SubjectKey:
        """Store ``key`` unless the subject has one; return the one stored."""
        ...

    def all_keys(self) -> list[SubjectKey]:
        """Every stored subject key."""
        ...

    def set_key(self, key: SubjectKey) -> None:
        """Replace a subject's stored key row (rotation, restriction)."""
        ...

    def put(self, entries: Sequence[VaultEntry]) -> None:
        """Store ciphertexts."""
        ...

    def put_with_keys(self, keys: Sequence[SubjectKey], entries: Sequence[VaultEntry]) -> bool:
        """Store new subject keys (unless the subject has one) and ciphertexts, at once.

        Returns ``False``, storing nothing, if a subject already has another key.
        """
        ...

    def put_checked(self, new_keys: Sequence[SubjectKey], used: Sequence[SubjectKey],
                    entries: Sequence[VaultEntry]) -> list[str]:
        """Store a step's new keys and ciphertexts at once, unless a key it used is no
        longer stored or a new one's subject has one: then nothing, and those subjects."""
        ...

    def take_back(self, new_keys: Sequence[SubjectKey], entries: Sequence[VaultEntry]) -> None:
        """Undo `put_checked` (the step's commit failed)."""
        ...

    def entries(self, ref_ids: Iterable[str]) -> dict[str, VaultEntry]:
        """The stored entries among ``ref_ids``."""
        ...

    def cases_of(self, subject: str) -> list[str]:
        """The ids of the cases holding values of ``subject``, sorted."""
        ...

    def entries_and_keys(self, ref_ids: Iterable[str]) -> tuple[dict[str, VaultEntry],
                                                              dict[str, SubjectKey]]:
        """The stored entries among ``ref_ids``, and their subjects' keys (one read)."""
        ...

    def forget(self, subject: str) -> int:
        """Delete the subject's key and every ciphertext; return how many ciphertexts."""
        ...

    def forget_case(self, case_id: str) -> int:
        """Delete every ciphertext of one case; return how many (0: another worker did)."""
        ...

    def retention_due(self, workflow: str, states: Sequence[str], cutoff: datetime,
                      limit: int) -> list[str]:
        """Ids of cases of ``workflow`` in ``states`` that still hold ciphertexts and
        entered their state at or before ``cutoff`` (`terminal_since`); a later write
        that changed no state (a note, an ``erased`` event) does not count."""
        ...


class MemoryVault:
    """A `Vault` in dicts, kept on a `MemoryStore`."""

    def __init__(self, store: Any = None) -> None:
        self.store = store
        self._keys: dict[str, SubjectKey] = {}
        self._values: dict[str, VaultEntry] = {}

    def key(self, subject: str) -> SubjectKey | None:
        return self._keys.get(subject)

    def add_key(self, key: SubjectKey) -> SubjectKey:
        return self._keys.setdefault(key.subject, key)

    def all_keys(self) -> list[SubjectKey]:
        return list(self._keys.values())

    def set_key(self, key: SubjectKey) -> None:
        self._keys[key.subject] = key

    def put(self, entries: Sequence[VaultEntry]) -> None:
        for e in entries:
            self._values[e.ref_id] = e

    def put_with_keys(self, keys: Sequence[SubjectKey], entries: Sequence[VaultEntry]) -> bool:
        if any(k.subject in self._keys and self._keys[k.subject].wrapped != k.wrapped
               for k in keys):
            return False
        for k in keys:
            self._keys.setdefault(k.subject, k)
        self.put(entries)
        return True

    def put_checked(self, new_keys: Sequence[SubjectKey], used: Sequence[SubjectKey],
                    entries: Sequence[VaultEntry]) -> list[str]:
        """Store a step's new keys and ciphertexts, unless a key it used or made is
        not (or no longer) the stored one: then store nothing and return those subjects."""
        stale = [k.subject for k in used if self._keys.get(k.subject) is None
                 or self._keys[k.subject].wrapped != k.wrapped
                 or self._keys[k.subject].state != k.state]
        stale += [k.subject for k in new_keys if k.subject in self._keys]
        if stale:
            return stale
        for k in new_keys:
            self._keys[k.subject] = k
        self.put(entries)
        return []

    def take_back(self, new_keys: Sequence[SubjectKey], entries: Sequence[VaultEntry]) -> None:
        """Undo `put_checked` (the step's commit failed)."""
        for e in entries:
            self._values.pop(e.ref_id, None)
        for k in new_keys:
            if self._keys.get(k.subject) == k:
                del self._keys[k.subject]

    def entries(self, ref_ids: Iterable[str]) -> dict[str, VaultEntry]:
        return {r: self._values[r] for r in ref_ids if r in self._values}

    def cases_of(self, subject: str) -> list[str]:
        return sorted({e.case_id for e in self._values.values() if e.subject == subject})

    def entries_and_keys(self, ref_ids: Iterable[str]) -> tuple[dict[str, VaultEntry],
                                                              dict[str, SubjectKey]]:
        entries = self.entries(ref_ids)
        keys = {e.subject: self._keys[e.subject] for e in entries.values()
                if e.subject in self._keys}
        return entries, keys

    def forget(self, subject: str) -> int:
        gone = [r for r, e in self._values.items() if e.subject == subject]
        for r in gone:
            del self._values[r]
        self._keys.pop(subject, None)
        return len(gone)

    def forget_case(self, case_id: str) -> int:
        gone = [r for r, e in self._values.items() if e.case_id == case_id]
        for r in gone:
            del self._values[r]
        return len(gone)

    def retention_due(self, workflow: str, states: Sequence[str], cutoff: datetime,
                      limit: int) -> list[str]:
        store = self.store
        out: list[str] = []
        for case_id in sorted({e.case_id for e in self._values.values()}):
            case = store.get(case_id) if store is not None else None
            if case is None or case.workflow != workflow or case.state not in states:
                continue
            since = terminal_since(store.events(case_id))
            if since is not None and since <= cutoff:
                out.append(case_id)
            if len(out) >= limit:
                break
        return out


class _KeyTaken(Exception):
    """Internal: another writer stored a subject's first key first (rolls back)."""


class SQLVault:
    """A `Vault` in the ``gridflow_pii_keys`` and ``gridflow_pii_values`` tables of a `SQLStore`."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self._keys_t = store.pii_keys
        self._values_t = store.pii_values
        self._q_key: Any = None

    def _key_of(self, row: Any) -> SubjectKey:
        return SubjectKey(row.subject, row.key_id, bytes(row.wrapped), row.state)

    def statements(self) -> _VaultSQL:
        """The SQL `_InCommit` runs (named parameters, as `SQLStore.commit` binds them)."""
        store = self._store
        found: _VaultSQL | None = getattr(store, "_pii_sql", None)
        if found is not None:
            return found
        import sqlalchemy as sa

        if store.dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as lite_insert

            dialect: Any = type(store.engine.dialect)(paramstyle="named")
            insert: Any = lite_insert
        else:
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            dialect, insert = store.engine.dialect, pg_insert

        def compile(stmt: Any) -> str:
            return str(stmt.compile(dialect=dialect))

        k, v = self._keys_t, self._values_t
        found = _VaultSQL(
            compile,
            compile(insert(k).values({c: sa.bindparam(c) for c in
                                      ("subject", "key_id", "wrapped", "state")})
                    .on_conflict_do_nothing()),
            compile(sa.insert(v).from_select(
                ["ref_id", "subject", "case_id", "path", "ciphertext"],
                sa.select(*(sa.bindparam(c, type_=v.c[c].type) for c in
                            ("ref_id", "subject", "case_id", "path", "ciphertext")))
                .where(sa.exists().where(
                    k.c.subject == sa.bindparam("subject", type_=k.c.subject.type),
                    k.c.wrapped == sa.bindparam("wrapped", type_=k.c.wrapped.type),
                    k.c.state == sa.bindparam("state", type_=k.c.state.type))))))
        store._pii_sql = found
        return found

    def keys_in(self, n: int, *, full: bool = False) -> str:
        """``SELECT subject, wrapped`` (``full``: subject, key_id, wrapped, state) of ``n``
        subjects (parameters ``s0``...)."""
        sql = self.statements()
        text = sql.sized.get(("keys" if not full else "full keys", n))
        if text is None:
            import sqlalchemy as sa

            k = self._keys_t
            cols = (k.c.subject, k.c.key_id, k.c.wrapped, k.c.state) if full else (
                k.c.subject, k.c.wrapped)
            text = sql.sized["keys" if not full else "full keys", n] = sql.compile(
                sa.select(*cols).where(
                    k.c.subject.in_([sa.bindparam(f"s{i}") for i in range(n)])))
        return text

    def entries_in(self, n: int) -> str:
        """The `entries_and_keys` query for ``n`` reference ids (parameters ``r0``...)."""
        sql = self.statements()
        text = sql.sized.get(("entries", n))
        if text is None:
            import sqlalchemy as sa

            v, k = self._values_t, self._keys_t
            text = sql.sized["entries", n] = sql.compile(
                sa.select(v.c.ref_id, v.c.subject, v.c.case_id, v.c.path, v.c.ciphertext,
                          k.c.key_id, k.c.wrapped, k.c.state)
                .select_from(v.outerjoin(k, k.c.subject == v.c.subject))
                .where(v.c.ref_id.in_([sa.bindparam(f"r{i}") for i in range(n)])))
        return text

    def key(self, subject: str) -> SubjectKey | None:
        import sqlalchemy as sa

        self._store._ready()
        if getattr(self._store, "_hot", None) is not None:
            # On the store's hot path (a pooled DBAPI cursor, SQL compiled once): a step
            # reads a new subject's key here before it seals.
            text = self.keys_in(1, full=True)
            with self._store._failures("reading a subject key"):
                found = self._store._hot_rows(text, {"s0": subject}, one=True)
            return None if found is None else SubjectKey(found[0], found[1], bytes(found[2]),
                                                         found[3])
        if self._q_key is None:
            self._q_key = sa.select(self._keys_t).where(
                self._keys_t.c.subject == sa.bindparam("subject"))
        with self._store._failures("reading a subject key"), \
                self._store._reader.connect() as c:
            row = c.execute(self._q_key, {"subject": subject}).first()
        return None if row is None else self._key_of(row)

    def add_key(self, key: SubjectKey) -> SubjectKey:
        import sqlalchemy as sa

        store = self._store
        store._ready()
        values = {"subject": key.subject, "key_id": key.key_id, "wrapped": key.wrapped,
                  "state": key.state}
        if store.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            stmt: Any = pg_insert(self._keys_t).values(values).on_conflict_do_nothing()
        else:
            from sqlalchemy.dialects.sqlite import insert as lite_insert

            stmt = lite_insert(self._keys_t).values(values).on_conflict_do_nothing()
        with store._failures("storing a subject key"), store._writer.begin() as conn:
            conn.execute(stmt)
            row = conn.execute(sa.select(self._keys_t).where(
                self._keys_t.c.subject == key.subject)).first()
        return self._key_of(row)

    def all_keys(self) -> list[SubjectKey]:
        import sqlalchemy as sa

        self._store._ready()
        with self._store._failures("reading subject keys"), self._store.engine.connect() as c:
            rows = c.execute(sa.select(self._keys_t).order_by(self._keys_t.c.subject)).all()
        return [self._key_of(r) for r in rows]

    def set_key(self, key: SubjectKey) -> None:
        import sqlalchemy as sa

        store = self._store
        with store._failures("updating a subject key"), store._writer.begin() as conn:
            conn.execute(sa.update(self._keys_t).where(self._keys_t.c.subject == key.subject)
                         .values(key_id=key.key_id, wrapped=key.wrapped, state=key.state))

    def put(self, entries: Sequence[VaultEntry]) -> None:
        import sqlalchemy as sa

        if not entries:
            return
        store = self._store
        with store._failures("storing personal values"), store._writer.begin() as conn:
            conn.execute(sa.insert(self._values_t), [
                {"ref_id": e.ref_id, "subject": e.subject, "case_id": e.case_id,
                 "path": e.path, "ciphertext": e.ciphertext} for e in entries])

    def put_with_keys(self, keys: Sequence[SubjectKey], entries: Sequence[VaultEntry]) -> bool:

        store = self._store
        if store.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            insert: Any = pg_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as lite_insert

            insert = lite_insert
        try:
            self._put_with_keys(insert, keys, entries)
        except _KeyTaken:
            return False  # the transaction rolled back: nothing stored
        return True

    def _put_with_keys(self, insert: Any, keys: Sequence[SubjectKey],
                       entries: Sequence[VaultEntry]) -> None:
        import sqlalchemy as sa

        store = self._store
        with store._failures("storing personal values"), store._writer.begin() as conn:
            for key in keys:
                conn.execute(insert(self._keys_t).values(
                    subject=key.subject, key_id=key.key_id, wrapped=key.wrapped,
                    state=key.state).on_conflict_do_nothing())
                stored = conn.execute(sa.select(self._keys_t.c.wrapped).where(
                    self._keys_t.c.subject == key.subject)).scalar()
                if stored is None or bytes(stored) != key.wrapped:
                    raise _KeyTaken
            if entries:
                conn.execute(sa.insert(self._values_t), [
                    {"ref_id": e.ref_id, "subject": e.subject, "case_id": e.case_id,
                     "path": e.path, "ciphertext": e.ciphertext} for e in entries])

    def put_checked(self, new_keys: Sequence[SubjectKey], used: Sequence[SubjectKey],
                    entries: Sequence[VaultEntry]) -> list[str]:
        # The engine writes a step's rows inside its commit (`_InCommit`); this is
        # the same, in a transaction of its own, for callers of the `Vault` protocol.
        known = {k.subject: (k.wrapped, k.state) for k in (*used, *new_keys)}
        missing = [e.subject for e in entries if e.subject not in known]
        if missing:
            return missing
        hook = _InCommit(self, new_keys, known, entries, (), "", 0)
        store = self._store
        try:
            with store._failures("storing personal values"), store._writer.begin() as conn:
                hook(conn.exec_driver_sql)
        except ConcurrencyError:
            return hook.stale
        return []

    def take_back(self, new_keys: Sequence[SubjectKey], entries: Sequence[VaultEntry]) -> None:
        import sqlalchemy as sa

        store = self._store
        with store._failures("removing personal values"), store._writer.begin() as conn:
            if entries:
                conn.execute(sa.delete(self._values_t).where(
                    self._values_t.c.ref_id.in_([e.ref_id for e in entries])))
            for k in new_keys:
                conn.execute(sa.delete(self._keys_t).where(
                    self._keys_t.c.subject == k.subject, self._keys_t.c.wrapped == k.wrapped))

    def entries(self, ref_ids: Iterable[str]) -> dict[str, VaultEntry]:
        import sqlalchemy as sa

        wanted = sorted(set(ref_ids))
        if not wanted:
            return {}
        t = self._values_t
        with self._store._failures("reading personal values"), \
                self._store._reader.connect() as conn:
            rows = conn.execute(sa.select(t).where(t.c.ref_id.in_(wanted))).all()
        return {r.ref_id: VaultEntry(r.ref_id, r.subject, r.case_id, r.path,
                                     bytes(r.ciphertext)) for r in rows}

    def entries_and_keys(self, ref_ids: Iterable[str]) -> tuple[dict[str, VaultEntry],
                                                              dict[str, SubjectKey]]:
        import sqlalchemy as sa

        wanted = sorted(set(ref_ids))
        if not wanted:
            return {}, {}
        v, k = self._values_t, self._keys_t
        stmt = (sa.select(v.c.ref_id, v.c.subject, v.c.case_id, v.c.path, v.c.ciphertext,
                          k.c.key_id, k.c.wrapped, k.c.state)
                .select_from(v.outerjoin(k, k.c.subject == v.c.subject))
                .where(v.c.ref_id.in_(wanted)))
        with self._store._failures("reading personal values"), \
                self._store._reader.connect() as conn:
            rows = conn.execute(stmt).all()
        entries = {r.ref_id: VaultEntry(r.ref_id, r.subject, r.case_id, r.path,
                                        bytes(r.ciphertext)) for r in rows}
        keys = {r.subject: SubjectKey(r.subject, r.key_id, bytes(r.wrapped), r.state)
                for r in rows if r.wrapped is not None}
        return entries, keys

    def cases_of(self, subject: str) -> list[str]:
        import sqlalchemy as sa

        t = self._values_t
        with self._store._failures("reading personal values"), \
                self._store._reader.connect() as conn:
            rows = conn.execute(sa.select(t.c.case_id).where(t.c.subject == subject)
                                .distinct().order_by(t.c.case_id)).all()
        return [r.case_id for r in rows]

    def forget(self, subject: str) -> int:
        import sqlalchemy as sa

        store = self._store
        with store._failures("erasing a subject"), store._writer.begin() as conn:
            gone = conn.execute(sa.delete(self._values_t).where(
                self._values_t.c.subject == subject)).rowcount
            conn.execute(sa.delete(self._keys_t).where(self._keys_t.c.subject == subject))
        return int(gone or 0)

    def forget_case(self, case_id: str) -> int:
        import sqlalchemy as sa

        store = self._store
        # The DELETE is the claim: of two workers deleting the same rows, the second
        # (after the first commits) deletes none, and records nothing.
        with store._failures("erasing a case's personal values"), \
                store._writer.begin() as conn:
            gone = conn.execute(sa.delete(self._values_t).where(
                self._values_t.c.case_id == case_id)).rowcount
        return int(gone or 0)

    def retention_due(self, workflow: str, states: Sequence[str], cutoff: datetime,
                      limit: int) -> list[str]:
        import sqlalchemy as sa

        v, c, e = self._values_t, self._store.cases, self._store.events_table
        # When the case entered its state: its last event that moved it (`terminal_since`).
        since = (sa.select(sa.func.max(e.c.at))
                 .where(e.c.case_id == c.c.id, e.c.dest.is_not(None)).scalar_subquery())
        stmt = (sa.select(c.c.id).where(
            c.c.workflow == workflow, c.c.state.in_(list(states)),
            sa.exists().where(v.c.case_id == c.c.id), since <= cutoff)
            .order_by(c.c.updated_at, c.c.id).limit(limit))
        with self._store._failures("finding cases past retention"), \
                self._store._reader.connect() as conn:
            return [r[0] for r in conn.execute(stmt)]


class _InCommit:
    """The vault's part of one step's `SQLStore.commit`, run inside its transaction.

    Stores the step's new subject keys (a subject given a key by another step
    meanwhile: lost race), checks that the known keys it sealed under are still
    the stored ones, stores its ciphertexts, and reads the entries and subject
    keys of the case's other references (for showing the result).
    """

    def __init__(self, vault: SQLVault, new_keys: Sequence[SubjectKey],
                 keys: Mapping[str, tuple[bytes, str]],
                 stored: Sequence[VaultEntry | Sealed],
                 show: Sequence[str], case_id: str, expected: int) -> None:
        self.vault, self.new_keys, self.key_of, self.stored = vault, new_keys, keys, stored
        self.show, self.case_id, self.expected = show, case_id, expected
        #: Subjects whose key turned out taken, erased or replaced.
        self.stale: list[str] = []
        self.entries: dict[str, VaultEntry] = {}
        self.keys: dict[str, SubjectKey] = {}

    def fold(self) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]] | None:
        """The rows (new keys, then ciphertexts with the key and state each was sealed
        under: `SQLStore.VAULT_KEY`, `SQLStore.VAULT_VALUE`) for `SQLStore._vault_ctes`
        to store in the step's own statement (PostgreSQL), or ``None`` when the step
        must read entries too (then `__call__` runs its statements in the transaction).
        """
        if self.show:
            return None
        key_of = self.key_of
        return ([(k.subject, k.key_id, k.wrapped, k.state) for k in self.new_keys],
                [(e.ref_id, e.subject, e.case_id, e.path, e.ciphertext,
                  *key_of[e.subject]) for e in self.stored])

    def refused(self) -> None:
        """The folded statement failed on a key no longer stored: which one is not
        said, so every subject the step sealed under counts as stale."""
        self.stale = sorted({*self.key_of, *(k.subject for k in self.new_keys)})

    def __call__(self, execute: Callable[..., Any]) -> None:
        vault = self.vault
        sql = vault.statements()
        for key in self.new_keys:
            done = execute(sql.insert_key, {"subject": key.subject, "key_id": key.key_id,
                                            "wrapped": key.wrapped, "state": key.state})
            if done.rowcount != 1:
                self.stale.append(key.subject)
        if self.stale:
            raise ConcurrencyError(self.case_id, self.expected)
        for e in self.stored:
            # Stored only if the subject's key is still the one the value was sealed
            # under: not erased, nor replaced, by another engine meanwhile.
            wrapped, state = self.key_of[e.subject]
            done = execute(sql.insert_value, {
                "ref_id": e.ref_id, "subject": e.subject, "case_id": e.case_id,
                "path": e.path, "ciphertext": e.ciphertext, "wrapped": wrapped,
                "state": state})
            if done.rowcount != 1:
                self.stale.append(e.subject)
                raise ConcurrencyError(self.case_id, self.expected)
        if self.show:
            # The case's other references' entries and subject keys, to show the result.
            params = {f"r{i}": r for i, r in enumerate(self.show)}
            for r in execute(vault.entries_in(len(params)), params).fetchall():
                self.entries[r[0]] = VaultEntry(r[0], r[1], r[2], r[3], bytes(r[4]))
                if r[6] is not None:
                    self.keys[r[1]] = SubjectKey(r[1], r[5], bytes(r[6]), r[7])


class _VaultSQL:
    """The vault statements run inside a step's commit, compiled once per store."""

    __slots__ = ("compile", "insert_key", "insert_value", "sized")

    def __init__(self, compile: Callable[[Any], str], insert_key: str,
                 insert_value: str) -> None:
        self.compile = compile
        self.insert_key = insert_key
        self.insert_value = insert_value
        self.sized: dict[tuple[str, int], str] = {}


def terminal_since(events: Iterable[Event]) -> datetime | None:
    """When a case entered the state it is in: the time of its last event that moved it.

    Retention counts from there (a case "became terminal" then); events that
    change no state (a note, ``erased``, ``restricted``, ``personal_read``) do
    not restart it. ``None`` for no events.

    Example:
        >>> from datetime import UTC, timedelta
        >>> from gridflow.model import Actor
        >>> t = datetime(2026, 1, 5, tzinfo=UTC)
        >>> def ev(seq, dest, days):
        ...     return Event("c", seq, "x", None, dest, Actor.system(), t + timedelta(days=days),
        ...                  {}, None, "", "")
        >>> terminal_since([ev(1, "reported", 0), ev(2, "rejected", 3), ev(3, None, 900)]).day
        8
    """
    since = None
    for event in events:
        if event.dest is not None:
            since = event.at
    return since


def vault_of(store: Store) -> Vault | None:
    """The vault beside ``store`` (made on first use), or ``None`` if it has none."""
    from gridflow.store.memory import MemoryStore

    if isinstance(store, MemoryStore):
        vault = getattr(store, "_pii_vault", None)
        if vault is None:
            vault = MemoryVault(store)
            store._pii_vault = vault  # type: ignore[attr-defined]
        return vault
    if hasattr(store, "pii_keys") and hasattr(store, "pii_values"):
        return SQLVault(store)
    return None


# -- the engine's side ------------------------------------------------------------------------


class _Names:
    """``{name: subject}`` of the listed elements one `PersonalPolicy.refers_to` path
    names, matched exactly and then as `gridflow.personal.screen.normalize` compares
    text (so ``王 小明`` or a full-width ``ＡＢＣ`` still finds its party).

    Example:
        >>> names = _Names({"王小明": "p-1", "李四": "p-2"}, "parties[].name")
        >>> names.get("王 小明", "case:c"), names.get("赵六", "case:c")
        ('p-1', 'case:c')
    """

    __slots__ = ("exact", "loose", "target")

    def __init__(self, exact: dict[str, str], target: str) -> None:
        from gridflow.personal.screen import normalize

        self.exact = exact
        #: The declared path of the names (``parties[].name``), for messages.
        self.target = target
        #: normalised name -> its subject, or None where names of two subjects meet.
        self.loose: dict[str, str | None] = {}
        for name, subject in exact.items():
            key = normalize(name)
            if key in self.loose and self.loose[key] != subject:
                self.loose[key] = None
            else:
                self.loose[key] = subject

    def get(self, name: str, default: str) -> str:
        """The subject of the element ``name`` names (``default``: none does).

        Raises `_AmbiguousName` when ``name`` matches no element exactly and the
        elements of two subjects loosely: sealing it under either would leave it
        readable after the other's erasure.
        """
        found = self.exact.get(name)
        if found is not None:
            return found
        from gridflow.personal.screen import normalize

        key = normalize(name)
        if key not in self.loose:
            return default
        loose = self.loose[key]
        if loose is None:
            raise _AmbiguousName
        return loose


class _AmbiguousName(Exception):
    """Internal: a name matching two subjects' elements only loosely (see `_Names.get`)."""


def _named_subjects(policy: PersonalPolicy, data: Mapping[str, Any]) -> dict[str, _Names]:
    """For each path of ``policy.refers_to``: the `_Names` of the elements it names.

    Read from the step's case data in clear (the opening data, or the data opened
    for the step); a name listed as a reference (not opened) is not known, and a
    value naming it stays the case's own.
    """
    fields = {f.path: f for f in policy.data}
    out: dict[str, _Names] = {}
    for path, target in policy.refers_to.items():
        names: dict[str, str] = {}
        field = fields.get(target)
        try:
            found = list(find(data, _steps(target)))
        except InvalidPayload:
            found = []
        for concrete, name in found:
            if isinstance(name, str) and name not in names:
                try:
                    subject = subject_of(data, concrete, field)
                except InvalidPayload:
                    subject = None
                if subject is not None:
                    names[name] = subject
        out[path] = _Names(names, target)
    return out


def _ref_nodes(node: Any) -> list[dict[str, Any]]:
    """Every reference mapping in ``node``, in the order `_refs` gives them: the one walk
    behind `_refs` and `_ref_ids`.

    Example:
        >>> ref = {"$pii": "0" * 32, "kind": "phone", "c": "a" * 64}
        >>> _ref_nodes({"reporter": {"phone": ref}, "n": [1]}) == [ref]
        True
    """
    found: list[dict[str, Any]] = []
    try:
        if not _may_hold_reference(node):
            return found  # the quick test: no "$pii" key anywhere, so no reference
    except RecursionError:
        pass
    stack = [node]
    leaves = _LEAVES
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "$pii" in item and is_reference(item):
                found.append(item)
            else:
                for child in item.values():
                    if child.__class__ not in leaves:  # nothing inside a leaf
                        stack.append(child)
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return found


def _refs(node: Any, out: list[Reference] | None = None) -> list[Reference]:
    """Every reference in ``node`` (`references` without building their paths).

    Example:
        >>> ref = {"$pii": "0" * 32, "kind": "phone", "c": "a" * 64}
        >>> [r.kind for r in _refs({"reporter": {"phone": ref}, "n": [ref, 1]})]
        ['phone', 'phone']
    """
    found: list[Reference] = [] if out is None else out
    found.extend(Reference(d["$pii"], d["kind"], d["c"]) for d in _ref_nodes(node))
    return found


def _ref_ids(node: Any) -> list[str]:
    """The reference ids of `_refs` (``[r.ref_id for r in _refs(node)]``), without
    making a `Reference` of each.

    Example:
        >>> ref = {"$pii": "0" * 32, "kind": "phone", "c": "a" * 64}
        >>> _ref_ids({"reporter": {"phone": ref}, "n": [1]})
        ['00000000000000000000000000000000']
    """
    try:
        if not _may_hold_reference(node):
            return []  # `_ref_nodes`' own quick test, without its frame and this list's
    except RecursionError:
        pass
    return [d["$pii"] for d in _ref_nodes(node)]


def _with_data(case: Case, data: dict[str, Any]) -> Case:
    """``attrs.evolve(case, data=data)``, without looking up the fields each time.

    Example:
        >>> from datetime import datetime, UTC
        >>> t = datetime(2026, 1, 5, tzinfo=UTC)
        >>> c = Case("c-1", "grid_case", 1, "reported", 1, {}, "g", t, t)
        >>> _with_data(c, {"a": 1}) == attrs.evolve(c, data={"a": 1})
        True
    """
    if case.__class__ is not Case:
        return attrs.evolve(case, data=data)
    return Case(case.id, case.workflow, case.workflow_version, case.state, case.version,
                data, case.grid, case.opened_at, case.updated_at, case.deadline_at,
                cast("tuple[str, ...]", stored_links(case)), case.head)


# Per outcome class: whether its attrs __init__ takes exactly these fields, in order.
_OUTCOME_FIELDS: Final = ("dest", "data", "payload", "links", "deadline_at", "effects")
_PLAIN_OUTCOME: dict[type, bool] = {}


def _evolved(outcome: Any, data: Any, payload: Any) -> Any:
    """``attrs.evolve(outcome, data=data, payload=payload)`` for the engine's `Outcome`,
    without looking its fields up each time.

    Example:
        >>> from gridflow.core import Outcome
        >>> o = Outcome("done", {"a": 1}, {}, (), None)
        >>> _evolved(o, {"b": 2}, {"p": 1}) == attrs.evolve(o, data={"b": 2}, payload={"p": 1})
        True
    """
    cls = outcome.__class__
    plain = _PLAIN_OUTCOME.get(cls)
    if plain is None:
        fields = attrs.fields(cls)
        plain = _PLAIN_OUTCOME[cls] = tuple(f.name for f in fields) == _OUTCOME_FIELDS and all(
            f.init and f.alias == f.name and f.converter is None for f in fields)
    if not plain:
        return attrs.evolve(outcome, data=data, payload=payload)
    return cls(outcome.dest, data, payload, outcome.links, outcome.deadline_at,
               outcome.effects)


def _view(actor: Actor | None, policy: PersonalPolicy) -> tuple[bool, bool]:
    """Whether ``actor`` reads ``policy``'s values in clear (a reader), and restricted
    ones too (an auditor).

    Example:
        >>> _view(Actor("s", ["coordinator"], ["g"]), BUILTIN_POLICIES["grid_case"])
        (True, False)
    """
    if actor is None:
        return False, False
    roles = actor.roles
    return (not policy.readers.isdisjoint(roles), not policy.auditors.isdisjoint(roles))


def _map_nodes(node: Any, fn: Callable[[dict[str, Any]], Any]) -> Any:
    """`_map_refs` with ``fn`` given each reference's stored mapping (well-formed,
    checked) instead of a `Reference`.

    Example:
        >>> ref = {"$pii": "0" * 32, "kind": "phone", "c": "a" * 64}
        >>> _map_nodes({"a": {"b": ref, "n": 1}, "l": [2]}, lambda r: r["kind"])
        {'a': {'b': 'phone', 'n': 1}, 'l': [2]}
    """
    if isinstance(node, dict):
        if "$pii" in node and is_reference(node):
            return fn(node)
        changed: dict[Any, Any] | None = None
        for k, v in node.items():
            if v.__class__ in _LEAVES:
                continue  # a leaf maps to itself
            new = _map_nodes(v, fn)
            if new is not v:
                if changed is None:
                    changed = {}
                changed[k] = new
        if changed is None:
            return node
        return {k: changed.get(k, v) for k, v in node.items()}
    if isinstance(node, list):
        items: list[Any] | None = None
        for n, v in enumerate(node):
            if v.__class__ in _LEAVES:
                continue
            new = _map_nodes(v, fn)
            if new is not v:
                if items is None:
                    items = list(node)
                items[n] = new
        return node if items is None else items
    return node


def _map_refs(node: Any, fn: Callable[[str, Reference], Any]) -> Any:
    """`map_references` without building paths (``fn`` gets ``""``): for reads.

    Objects and lists without references are shared, not copied; a copy keeps
    the order of the keys.

    Example:
        >>> ref = {"$pii": "0" * 32, "kind": "phone", "c": "a" * 64}
        >>> doc = {"a": {"b": ref, "n": 1}, "l": [ref, 2], "k": {"x": [1]}}
        >>> out = _map_refs(doc, lambda _p, r: r.kind)
        >>> out, out["k"] is doc["k"]
        ({'a': {'b': 'phone', 'n': 1}, 'l': ['phone', 2], 'k': {'x': [1]}}, True)
    """
    return _map_nodes(node, lambda d: fn("", Reference(d[REF_KEY], d["kind"], d["c"])))


def _texts(value: Any) -> list[str]:
    """The strings in ``value``, dict keys included (consent maps names to booleans)."""
    out: list[str] = []
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            out.append(node)
        elif isinstance(node, Mapping):
            out.extend(str(k) for k in node)
            stack.extend(node.values())
        elif isinstance(node, list | tuple):
            stack.extend(node)
    return out


# Per policy (held, so its id stays its own): its data top keys, and per trigger
# the payload fields' top steps (None: a field the quick test cannot judge).
_QUICK: dict[int, tuple[PersonalPolicy, frozenset[str], dict[str, tuple[str | None, ...]]]] = {}


def _nothing_to_seal(policy: PersonalPolicy, trigger: str, outcome: Any) -> bool:
    """True when `Privacy.seal_outcome` of a (non-open) step, with nothing opened,
    would seal nothing: no declared payload field's top key is in the payload
    and the step wrote no data key that may hold a personal value. (It still
    refuses ``$pii`` look-alikes in the payload.) False: the full pass decides."""
    quick = _QUICK.get(id(policy))
    if quick is None or quick[0] is not policy:
        if len(_QUICK) >= 256:
            _QUICK.clear()
        quick = _QUICK[id(policy)] = (policy, policy.top_keys(), {})
    _, keys, per_trigger = quick
    tops = per_trigger.get(trigger)
    if tops is None:
        tops = per_trigger[trigger] = tuple(
            dict.fromkeys(_steps(f.path)[0] for f in policy.payload_fields(trigger)))
    payload = outcome.payload
    if payload:
        for top in tops:
            if top is None or top in payload:
                return False
    data = outcome.data
    written = getattr(data, "written", None)
    if written is None:
        return False
    return written.isdisjoint(keys) or not any(k in written and k in data for k in keys)


#: The per-thread hand-offs `Privacy.commit` and `Privacy.show_case` take and clear.
_COMMIT_CLEARS: Final = {"pending": None, "prefetched": None, "continued": None,
                         "bare": None, "held": None}
_SHOW_CLEARS: Final = {"recent": None, "prefetched": None, "continued": None,
                       "bare": None, "held": None}


# Per policy (held, as in `_QUICK`) and trigger: the payload fields sealed without a
# walk (a top-level key, no subject path, no names), by key; and the top keys of
# every other payload field (None: one whose top step is not a key).
_TOP_FIELDS: dict[int, tuple[PersonalPolicy, dict[str, tuple[
    dict[str, PersonalField], frozenset[str | None]]]]] = {}


def _top_fields(policy: PersonalPolicy, trigger: str
                ) -> tuple[dict[str, PersonalField], frozenset[str | None]]:
    """``(simple, others)`` of `_TOP_FIELDS` for ``trigger``'s payload.

    Example:
        >>> simple, others = _top_fields(BUILTIN_POLICIES["grid_case"], "note")
        >>> sorted(simple), sorted(others)
        (['contact'], ['reporter'])
    """
    held = _TOP_FIELDS.get(id(policy))
    if held is None or held[0] is not policy:
        if len(_TOP_FIELDS) >= 256:
            _TOP_FIELDS.clear()
        held = _TOP_FIELDS[id(policy)] = (policy, {})
    found = held[1].get(trigger)
    if found is None:
        simple: dict[str, PersonalField] = {}
        others: set[str | None] = set()
        for f in policy.payload_fields(trigger):
            steps = _steps(f.path)
            top = steps[0]
            if (len(steps) == 1 and top is not None and f.subject is None
                    and f.path not in policy.refers_to and top not in simple):
                simple[top] = f
            else:
                others.add(top)
        for top in others:
            simple.pop(top, None)  # type: ignore[arg-type]
        found = held[1][trigger] = (simple, frozenset(others))
    return found


def _same(a: Any, b: Any) -> bool:
    if a.__class__ is not b.__class__:
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


class Privacy:
    """The engine's personal-data service: policies, keyring, vault.

    ``keyring`` is ``None`` for "none configured": on a `MemoryStore` an
    ephemeral one is made (kept on the store, so engines sharing it agree);
    on other stores a declared personal value is refused.
    """

    def __init__(self, store: Store, keyring: MasterKey | None,
                 policies: Mapping[str, PersonalPolicy] | None = None) -> None:
        from gridflow.store.memory import MemoryStore

        self.store = store
        self.vault = vault_of(store)
        if keyring is None and isinstance(store, MemoryStore):
            keyring = getattr(store, "_pii_keyring", None)
            if keyring is None:
                keyring = Keyring.generate()
                store._pii_keyring = keyring  # type: ignore[attr-defined]
        self.keyring: MasterKey | None = keyring
        self._opened: dict[bytes, tuple[bytes, bytes]] = {}
        self._local = threading.local()
        #: Subject key rows as last read or stored by this engine (checked again inside
        #: every step's commit, so a key erased or replaced elsewhere is never used).
        self._key_rows: dict[str, SubjectKey] = {}
        #: ``{ref id: (plaintext, subject, case id)}`` of values this engine sealed or
        #: opened, so a read skips the decryption; shown only while the vault still
        #: holds the entry (checked on every read), and purged when erased here.
        self._plain: dict[str, tuple[Any, str, str, str]] = {}
        #: ``{case id: version}``: every event of the case up to that version was this
        #: engine's own or read in a step's transaction, so the plaintexts it holds of the
        #: case (``_plain``) are the vault's; a step's result is then shown from them.
        self._seen: dict[str, int] = {}
        #: Personal-field policies by workflow name (the built-ins to start with).
        self.policies: dict[str, PersonalPolicy] = dict(
            BUILTIN_POLICIES if policies is None else policies)
        # So that exports given only the store can screen against the sealed values.
        with contextlib.suppress(AttributeError):
            store._pii_privacy = self  # type: ignore[attr-defined]

    # -- keys ----------------------------------------------------------------------------

    def _need(self, case_id: str, trigger: str) -> tuple[MasterKey, Vault]:
        if self.keyring is None or self.vault is None:
            raise InvalidPayload(
                f"case {case_id!r}: trigger {trigger!r}: the step holds declared personal "
                "values and this engine has no keyring to protect them; configure one: "
                "Engine(store=..., keyring=gridflow.Keyring.from_file(path)) (or "
                "Keyring.from_env('GRIDFLOW_MASTER_KEY'); Keyring.generate() for tests)",
                case_id=case_id, trigger=trigger)
        return self.keyring, self.vault

    def _subject_key(self, subject: str) -> tuple[bytes, bytes, str, SubjectKey | None,
                                                  SubjectKey]:
        """The subject's key, its commitment key, its state, the row to store if new,
        and the row used.

        A new subject's key is made here and stored with the step's ciphertexts, in
        the step's own transaction (`commit`); a known one is read once and checked
        again there.
        """
        keyring, vault = self.keyring, self.vault
        assert keyring is not None and vault is not None
        stored = self._key_rows.get(subject)
        if stored is None:
            stored = vault.key(subject)
            if stored is not None:
                self._remember_key(stored)
        new = None
        if stored is None:
            raw = new_subject_key()
            stored = new = SubjectKey(subject, keyring.key_id, keyring.wrap(raw))
            self._opened[stored.wrapped] = (raw, commitment_key(raw))
        key, ck = self._open_key(stored.wrapped)
        return key, ck, stored.state, new, stored

    def _remember_key(self, stored: SubjectKey) -> None:
        if len(self._key_rows) >= 4096:
            self._key_rows.clear()
        self._key_rows[stored.subject] = stored

    def _drop_opened(self, wrapped: bytes) -> None:
        opened = self._opened.pop(wrapped, None)
        if opened is not None:
            forget_cipher(opened[0])
            forget_mac(opened[1])  # the commitment key's kept HMAC states

    def _forget_cached(self, subjects: Iterable[str] = (), case_id: str | None = None) -> None:
        """Drop cached key rows and plaintexts of ``subjects`` (and of ``case_id``)."""
        gone = set(subjects)
        for subject in gone:
            stored = self._key_rows.pop(subject, None)
            if stored is not None:
                self._drop_opened(stored.wrapped)
        if gone or case_id is not None:
            for ref_id in [r for r, (_, subject, case, _s) in list(self._plain.items())
                           if subject in gone or case == case_id]:
                self._plain.pop(ref_id, None)

    def _open_key(self, wrapped: bytes) -> tuple[bytes, bytes]:
        """The subject key a stored wrapped key holds, and its commitment key.

        Cached by the wrapped bytes, which are read from the vault every time:
        a key erased (its row deleted) is never reached through the cache.
        """
        found = self._opened.get(wrapped)
        if found is None:
            assert self.keyring is not None
            key = self.keyring.unwrap(wrapped)
            if len(self._opened) >= 4096:
                self._opened.clear()
            found = self._opened[wrapped] = (key, commitment_key(key))
        return found

    # -- writing ------------------------------------------------------------------------

    def policy(self, workflow: str) -> PersonalPolicy | None:
        """The policy of ``workflow``, or ``None``."""
        return self.policies.get(workflow)

    def open_for_step(self, case: Case, data: Any) -> tuple[Any, dict[str, Any]]:
        """``data`` with the stored personal values put back in clear, for guards.

        Returns the data and ``{top key: stored value}`` of what was opened, so
        `seal_outcome` can put back the stored value of a key the step left alone.
        """
        policy = self.policies.get(case.workflow)
        if policy is None or not policy.unseal_for_steps or self.vault is None:
            return data, {}
        opened: dict[str, Any] = {}
        refs = [r for key in policy.top_keys() if key in data
                for _, r in references(data[key])]
        if not refs:
            return data, {}
        plain = self._resolver(refs, lambda _r, value, _k: value, erased=None)
        for key in policy.top_keys():
            if key in data and any(True for _ in references(data[key])):
                opened[key] = data[key]
                # Not a write of the step: bypass WorkingData's record of written keys.
                value = map_references(data[key], plain)
                dict.__setitem__(data, key, _unmap(value) if policy.refers_to else value)
        return data, opened

    def seal_outcome(self, case: Case, trigger: str, outcome: Any,
                     opened: Mapping[str, Any]) -> Any:
        """The step's outcome with every declared personal value sealed (see the module)."""
        policy = self.policies.get(case.workflow)
        if policy is None:
            return outcome
        if trigger != "open" and not opened and _nothing_to_seal(policy, trigger, outcome):
            # What the full pass below leaves when it seals nothing: no look-alike,
            # nothing pending for `commit` (not an abandoned step's), no recent values.
            payload = outcome.payload
            if payload:
                try:
                    marked = _any_marked(payload)  # `refuse_lookalikes`' own quick test
                except RecursionError:
                    marked = True
                if marked:
                    refuse_lookalikes(payload, where="payload", case_id=case.id,
                                      trigger=trigger)
            handoffs = self._local.__dict__  # the thread's attributes (see `commit`)
            handoffs["pending"] = None
            handoffs["recent"] = {}
            return outcome
        if trigger != "open" and not opened:
            quick = self._seal_top_fields(case, trigger, outcome, policy)
            if quick is not None:
                return quick
        payload_fields = policy.payload_fields(trigger) if trigger != "open" else ()
        if trigger == "open":
            refuse_lookalikes(outcome.data, where="data", trigger="open")
        else:
            refuse_lookalikes(outcome.payload, where="payload", case_id=case.id,
                              trigger=trigger)
        self._local.pending = None
        sealer = _Sealer(self, case.id, trigger)
        if policy.refers_to:
            sealer.named = _named_subjects(policy, outcome.data)
        payload = outcome.payload
        if payload_fields and payload:
            payload = sealer.seal_doc(payload, payload_fields)
        data = outcome.data
        written = getattr(data, "written", None)
        keys = policy.top_keys()
        if written is None or trigger == "open":
            touched = [k for k in keys if k in data]
        else:
            touched = [k for k in keys if k in written and k in data]
        new_values: dict[str, Any] = {}
        for key in touched:
            value = data[key]
            if key in opened and not (written is not None and key in written):
                new_values[key] = opened[key]
                continue
            fields = tuple(f for f in policy.data if _steps(f.path)[0] == key)
            sealed = sealer.seal_doc({key: value}, fields)
            new_values[key] = sealed[key]
        for key, value in opened.items():
            if key not in new_values and key in data:
                new_values[key] = value
        if new_values:
            for key, value in new_values.items():
                dict.__setitem__(data, key, value)
        # Stored by `commit`, in the step's own transaction.
        self._local.pending = (case.id, case.version, sealer) if sealer.sealed else None
        # The step's own new values, so showing its result needs no read of the vault.
        self._local.recent = sealer.plain
        if payload is outcome.payload and not sealer.sealed:
            return outcome
        return _evolved(outcome, data, payload)

    def _seal_top_fields(self, case: Case, trigger: str, outcome: Any,
                         policy: PersonalPolicy) -> Any | None:
        """`seal_outcome` of a step whose payload holds only top-level personal keys
        (a note's ``contact``) and that wrote no personal data key: those values
        sealed in one pass over the keys, no walk. ``None``: the full pass decides.
        """
        payload = outcome.payload
        if not payload:
            return None
        simple, others = _top_fields(policy, trigger)
        if None in others or any(top in payload for top in others):
            return None
        data = outcome.data
        written = getattr(data, "written", None)
        if written is None:
            return None
        keys = policy.top_keys()
        if not written.isdisjoint(keys) and any(k in written and k in data for k in keys):
            return None
        refuse_lookalikes(payload, where="payload", case_id=case.id, trigger=trigger)
        local = self._local
        local.pending = None
        sealer: _Sealer | None = None
        new: dict[str, Any] = {}
        for top, field in simple.items():
            value = payload.get(top)
            if value is None:
                continue
            if sealer is None:
                sealer = _Sealer(self, case.id, trigger)
            # As `_Sealer.seal_doc` finds the subject of a top-level key.
            own = (subject_of(payload, top, field) if payload.get(SUBJECT_KEY) is not None
                   else None) or case_subject(case.id)
            new[top] = sealer._seal(value, field.kind, field.path, own)
        if sealer is None:
            local.recent = {}
            return outcome
        local.pending = (case.id, case.version, sealer)
        local.recent = sealer.plain
        return _evolved(outcome, data, {**payload, **new})

    def commit(self, writes: Sequence[Write]) -> None:
        """``store.commit(writes)`` with the vault rows of the step just sealed, at once.

        On a `SQLStore` the subject keys and ciphertexts of the step sealed last
        (by this thread, for this case and version) are written in the step's own
        transaction, after the subject keys it used are checked to be still the
        stored ones; the same transaction reads what showing the case needs (its
        references' entries and subject states). So a step that loses a race, or
        is refused at commit, leaves no ciphertext; and a key erased or replaced by
        another engine meanwhile makes the step lose the race (`ConcurrencyError`,
        retried by ``fire(retries=n)``) instead of sealing under a destroyed key.
        On a `MemoryStore` the rows are put before the commit and taken back if it
        fails.
        """
        # The thread's own attributes, as one dict: one look-up of the thread instead
        # of one per hand-off read or cleared (a step reads and clears them all).
        handoffs = self._local.__dict__
        pending = handoffs.get("pending")
        handoffs.update(_COMMIT_CLEARS)
        store, vault = self.store, self.vault
        if not writes or vault is None or self.keyring is None:
            store.commit(writes)
            return
        first = writes[0]
        case_id, expected = first.case.id, first.expected_version
        sealer = pending[2] if (pending is not None and pending[0] == case_id
                                and pending[1] == expected) else None
        show: list[str] = []
        continued = False
        policy = self.policies.get(first.case.workflow)
        found: list[str] | None = []
        if policy is not None:
            if sealer is not None and (expected == 0 or self._seen.get(case_id) == expected):
                # As below, without the walk to list the references: they are taken to
                # be held in `_plain`. Not always so (`_forget_cached` drops values by
                # subject without touching `_seen`; a hook may copy in another case's
                # reference), and that is safe only because `show_case` then misses
                # (KeyError) and reads the vault: this branch never hands on a value.
                found, continued = None, True
            else:
                own = sealer.plain if sealer is not None else {}
                found = _ref_ids(first.case.data)
                refs = [r for r in found if r not in own]
                # Every event of the case since this engine last knew its values was its
                # own (erasure, restriction and retention append an event to each case
                # they touch): what it holds in clear for the case is still the vault's.
                continued = (expected == 0 or self._seen.get(case_id) == expected) and all(
                    r in self._plain for r in refs)
                if not continued and isinstance(vault, SQLVault):
                    show = sorted(set(refs))
        if sealer is None and not show:
            store.commit(writes)
            version = first.case.version
            if continued:  # `_continue`, inline (every step of a case ends here)
                seen = self._seen
                if len(seen) >= 8192:
                    seen.clear()
                seen[case_id] = version
                handoffs["continued"] = (case_id, version)
            else:
                self._seen.pop(case_id, None)
            if policy is not None:
                # Whether this very row holds a reference: showing it needs no second walk.
                handoffs["held" if found else "bare"] = first.case
            return
        if isinstance(vault, SQLVault):
            hook = _InCommit(vault, sealer._new_keys if sealer else (),
                             sealer.key_states() if sealer else {},
                             sealer.sealed if sealer else (),  # the rows' fields, as is
                             show, case_id, expected)
            try:
                store.commit(writes, within=hook)  # type: ignore[call-arg]
            except ConcurrencyError:
                self._forget_cached(hook.stale)
                self._seen.pop(case_id, None)
                raise
            if show:
                self._local.prefetched = (case_id, first.case.version, hook.entries,
                                          hook.keys)
                continued = True  # read in the step's own transaction
        else:
            assert sealer is not None
            entries = sealer.entries()
            stale = vault.put_checked(sealer._new_keys, sealer.used, entries)
            if stale:
                self._forget_cached(stale)
                raise ConcurrencyError(first.case.id, first.expected_version)
            try:
                store.commit(writes)
            except BaseException:
                vault.take_back(sealer._new_keys, entries)
                raise
        if sealer is not None:
            for key in sealer._new_keys:
                self._remember_key(key)
            if len(self._plain) >= 8192:
                self._plain.clear()
                self._seen.clear()  # what `_seen` vouches for is in `_plain`
            for sealed in sealer.sealed:
                value, state = sealer.plain[sealed.ref_id]
                self._plain[sealed.ref_id] = (value, sealed.subject, sealed.case_id, state)
        self._continue(case_id, first.case.version, continued)
        if found is None or found:
            # Holds a reference (or may: not walked): `show_case` maps it without asking.
            self._local.held = first.case

    def _continue(self, case_id: str, version: int, continued: bool) -> None:
        """Record whether this engine's plaintexts of ``case_id`` hold at ``version``."""
        if not continued:
            self._seen.pop(case_id, None)
            return
        if len(self._seen) >= 8192:
            self._seen.clear()
        self._seen[case_id] = version
        self._local.continued = (case_id, version)

    def clean_refusal(self, workflow: str, trigger: str, payload: Mapping[str, Any],
                      data: Mapping[str, Any], exc: GuardRejected) -> GuardRejected:
        """``exc`` with any personal value of the step masked out of its reason.

        A guard's refusal may quote what it refused (a party's name, the whole
        ``parties`` list): the reason is screened against the step's personal
        values (and phone, ID and e-mail patterns). Returns ``exc`` itself
        when nothing was found.
        """
        from gridflow.personal.screen import Screen

        policy = self.policies.get(workflow)
        if policy is None:
            return exc
        values: list[Any] = []
        for doc, fields in ((payload, policy.payload_fields(trigger) or policy.data),
                            (data, policy.data)):
            for field in fields:
                try:
                    values += [v for _, v in find(doc, _steps(field.path))]
                except InvalidPayload:
                    # A malformed shape (the guard's very complaint): screen it whole.
                    top = str(_steps(field.path)[0])
                    values.append(map_references(doc.get(top), lambda _p, _r: None))
        reason, hits = Screen(_texts(values)).clean(exc.reason)
        if not hits:
            return exc
        return GuardRejected(exc.case_id, exc.state, exc.trigger, exc.guard, reason)

    # -- reading ----------------------------------------------------------------------------

    def _resolver(self, refs: Sequence[Reference],
                  show: Callable[[Reference, Any, str], Any],
                  erased: Any = TOMBSTONE,
                  recent: Mapping[str, tuple[Any, str]] | None = None,
                  prefetched: tuple[dict[str, VaultEntry], dict[str, SubjectKey]] | None = None,
                  ) -> Callable[[str, Reference], Any]:
        """A `map_references` function: ``show(ref, plaintext, subject state)`` per value.

        ``recent`` holds values the caller has in clear already (the step's own);
        ``prefetched`` the vault entries and keys read in the step's commit.
        """
        vault = self.vault
        known = recent or {}
        if prefetched is not None:
            entries, stored_keys = prefetched
        else:
            entries, stored_keys = (vault.entries_and_keys(
                r.ref_id for r in refs if r.ref_id not in known)
                if vault is not None else ({}, {}))
        cached = self._plain
        keys: dict[str, tuple[bytes | None, str, bytes | None]] = {}

        def resolve(_path: str, ref: Reference) -> Any:
            if ref.ref_id in known:
                value, state = known[ref.ref_id]
                return show(ref, value, state)
            entry = entries.get(ref.ref_id)
            if entry is None or vault is None:
                cached.pop(ref.ref_id, None)  # erased: this engine forgets it too
                return erased
            if self.keyring is None:
                return UNREADABLE  # no master key configured: not erased, just not readable
            hit = cached.get(ref.ref_id)
            if hit is not None and entry.subject in stored_keys:
                # Known in clear, and the vault still holds it and its subject's key.
                state = stored_keys[entry.subject].state
                if hit[3] != state:
                    cached[ref.ref_id] = (hit[0], hit[1], hit[2], state)
                return show(ref, hit[0], state)
            if entry.subject not in keys:
                stored = stored_keys.get(entry.subject)
                if stored is None:
                    keys[entry.subject] = (None, "erased", None)
                else:
                    try:
                        unwrapped, ck_of = self._open_key(stored.wrapped)
                        keys[entry.subject] = (unwrapped, stored.state, ck_of)
                    except KeyringError:
                        keys[entry.subject] = (None, "unreadable", None)
            key, state, ck = keys[entry.subject]
            if key is None:
                if state == "erased":
                    cached.pop(ref.ref_id, None)
                    return erased
                return UNREADABLE
            try:
                value = unseal(ref, entry.ciphertext, case_id=entry.case_id, path=entry.path,
                               subject=entry.subject, subject_key=key, commit_key=ck)
            except DecryptionError:
                return erased
            if len(cached) >= 8192:
                cached.clear()
                self._seen.clear()  # what `_seen` vouches for is in `_plain`
            cached[ref.ref_id] = (value, entry.subject, entry.case_id, state)
            return show(ref, value, state)

        return resolve

    def _shower(self, actor: Actor | None, policy: PersonalPolicy,
                restricted_seen: list[str]) -> Callable[[Reference, Any, str], Any]:
        reader, auditor = _view(actor, policy)

        def show(ref: Reference, value: Any, state: str) -> Any:
            if state == "restricted":
                if auditor:
                    restricted_seen.append(ref.ref_id)
                    return value
                return RESTRICTED
            if reader or auditor:
                return value
            return mask(ref.kind, value)

        return show

    def show_case(self, case: Case, actor: Actor | None) -> tuple[Case, list[str]]:
        """``case`` as ``actor`` may see it; and the restricted values shown (to record)."""
        policy = self.policies.get(case.workflow)
        if policy is None:
            return case, []
        handoffs = self._local.__dict__  # the thread's attributes (see `commit`)
        get = handoffs.get
        recent, fetched, continued = get("recent"), get("prefetched"), get("continued")
        bare, held = get("bare"), get("held")
        handoffs.update(_SHOW_CLEARS)
        if bare is case or (held is not case and not holds_reference(case.data)):
            # The quick test (after the hand-offs are taken, as every path takes them):
            # no reference, nothing to show otherwise, nothing restricted seen.
            return case, []
        matches = fetched is not None and fetched[0] == case.id and fetched[1] == case.version
        if continued == (case.id, case.version) and not matches:
            # The step just committed, and this engine knows every value of the case.
            shown: list[str] = []
            reader, auditor = _view(actor, policy)
            own = recent or {}
            plain = self._plain

            def known(ref: dict[str, Any]) -> Any:
                # `_shower`'s choice, inlined: one call per value on every step's result.
                ref_id = ref[REF_KEY]
                hit = own.get(ref_id)
                if hit is None:
                    value, _subject, _case, state = plain[ref_id]
                else:
                    value, state = hit
                if state == "restricted":
                    if auditor:
                        shown.append(ref_id)
                        return value
                    return RESTRICTED
                if reader or auditor:
                    return value
                return mask(ref["kind"], value)

            try:
                data = _map_nodes(case.data, known)
            except KeyError:  # not held (erased, or dropped from the bounded cache): read
                pass
            else:
                if data is case.data:
                    return case, shown
                return _with_data(case, _unmap(data) if policy.refers_to else data), shown
        prefetched = (fetched[2], fetched[3]) if matches and fetched is not None else None
        # With what the step's commit read, no walk to collect the references first.
        refs = [] if prefetched is not None else _refs(case.data)
        if not refs and prefetched is None:
            return case, []
        seen: list[str] = []
        fn = self._resolver(refs, self._shower(actor, policy, seen), recent=recent,
                            prefetched=prefetched)
        data = _map_refs(case.data, fn)
        return _with_data(case, _unmap(data) if policy.refers_to else data), seen

    def show_events(self, workflow: str, events: list[Event],
                    actor: Actor | None) -> tuple[list[Event], list[str]]:
        """``events`` as ``actor`` may see them (payloads and changes)."""
        policy = self.policies.get(workflow)
        if policy is None:
            return events, []
        # One pass, and the quick test before any walk: a long case's history is
        # mostly events without a reference, read back in a single list.
        refs: list[Reference] = []
        may = _may_hold_reference
        try:
            for e in events:
                if e.payload and may(e.payload):
                    refs += [r for _, r in references(e.payload)]
                changes = e.changes
                if changes is not None and changes.set and may(changes.set):
                    refs += [r for _, r in references(changes.set)]
        except RecursionError:  # deeper than the quick test goes: `references` walks all
            refs = [r for e in events for _, r in references(e.payload)]
            refs += [r for e in events if e.changes is not None
                     for _, r in references(e.changes.set)]
        if not refs:
            return events, []
        seen: list[str] = []
        fn = self._resolver(refs, self._shower(actor, policy, seen))
        out = []
        unmap = _unmap if policy.refers_to else (lambda node: node)
        for e in events:
            payload = unmap(map_references(e.payload, fn))
            changes = e.changes
            if changes is not None and changes.set:
                new_set = unmap(map_references(dict(changes.set), fn))
                changes = attrs.evolve(changes, set=new_set)
            if payload is e.payload and changes is e.changes:
                out.append(e)
            else:
                # A display copy: its hash no longer matches, it is never stored.
                out.append(attrs.evolve(e, payload=payload, changes=changes))
        return out, seen

    def personal_values(self, case: Case, events: Sequence[Event] = ()) -> list[Any]:
        """Every personal value of ``case`` in clear (for export screening)."""
        refs = [r for _, r in references(case.data)]
        refs += [r for e in events for _, r in references(e.payload)]
        if not refs:
            return []
        values: list[Any] = []

        def keep(_ref: Reference, value: Any, _state: str) -> Any:
            values.append(value)
            return value

        fn = self._resolver(refs, keep)
        map_references(case.data, fn)
        for e in events:
            map_references(e.payload, fn)
        return values

    # -- erasure, restriction, rotation -----------------------------------------------------

    def append_internal(self, case_id: str, trigger: str, actor: Actor, now: datetime,
                        payload: dict[str, Any]) -> Event:
        """Append an internal event (no state change, no data change) to a case."""
        from gridflow.fold import evolve
        from gridflow.store import Write

        for _ in range(20):
            case = self.store.get(case_id)
            if case is None:
                raise InvalidPayload(f"case {case_id!r} does not exist")
            changes = Changes({}, (), case.deadline_at, (), case.workflow_version)
            event = Event.create(case.id, case.version + 1, trigger, case.state, None, actor,
                                 now, payload, None, case.head, changes)
            try:
                self.store.commit([Write(evolve(case, event), event, case.version)])
            except ConcurrencyError:
                continue
            return event
        raise ConcurrencyError(case_id, 0, 0)

    def erase(self, subject: str, actor: Actor, reason: str, now: datetime) -> list[str]:
        """Destroy ``subject``'s key and ciphertexts; an `ERASED` event on each case."""
        if self.vault is None:
            return []
        cases = self.vault.cases_of(subject)
        stored = self.vault.key(subject)
        if stored is not None:
            self._drop_opened(stored.wrapped)
        self._forget_cached([subject])
        for case_id in cases:
            self._seen.pop(case_id, None)
        count = self.vault.forget(subject)
        for case_id in cases:
            self.append_internal(case_id, ERASED, actor, now,
                                 {"subject": subject, "reason": reason, "values": count})
        return cases

    def retire(self, now: datetime, terminal: Callable[[str], Sequence[str]],
               limit: int = 100) -> list[Event]:
        """Erase the personal values of cases past their workflow's retention (`tick`).

        A case qualifies when it is in a terminal state it entered ``retention`` or
        longer before ``now`` (`terminal_since`: later writes that change no state,
        such as a note or an ``erased`` event, do not restart the clock). Its
        ciphertexts are deleted and an `ERASED` event appended, once, however many
        workers tick at the same time.
        """
        if self.vault is None:
            return []
        out: list[Event] = []
        for workflow, policy in sorted(self.policies.items()):
            if policy.retention is None or len(out) >= limit:
                continue
            states = terminal(workflow)
            if not states:
                continue
            cutoff = now - policy.retention
            for case_id in self.vault.retention_due(workflow, states, cutoff,
                                                     limit - len(out)):
                count = self.vault.forget_case(case_id)
                self._forget_cached(case_id=case_id)
                self._seen.pop(case_id, None)
                if count:
                    out.append(self.append_internal(
                        case_id, ERASED, Actor.system(), now,
                        {"retention": True, "values": count,
                         "reason": f"retention: {policy.retention.days} days after the "
                                   "case ended"}))
        return out

    def restrict(self, subject: str, actor: Actor, reason: str, now: datetime) -> list[str]:
        """Mark ``subject``'s values restricted; a `RESTRICTED_TRIGGER` event on each case."""
        if self.vault is None:
            return []
        stored = self.vault.key(subject)
        if stored is None:
            return []
        self.vault.set_key(attrs.evolve(stored, state="restricted"))
        self._key_rows.pop(subject, None)
        cases = self.vault.cases_of(subject)
        for case_id in cases:
            self._seen.pop(case_id, None)
        for case_id in cases:
            self.append_internal(case_id, RESTRICTED_TRIGGER, actor, now,
                                 {"subject": subject, "reason": reason})
        return cases

    def scrub(self) -> None:
        """Reclaim the pages freed by erasure, so no deleted ciphertext or key stays on disk.

        SQLite: ``VACUUM`` (rewrites the file without the freed pages) then
        ``PRAGMA wal_checkpoint(TRUNCATE)`` (empties the write-ahead log);
        PostgreSQL: ``VACUUM FULL`` of the two vault tables. A `MemoryStore`
        has nothing to do. Run it after `Engine.erase` (it locks the database
        while it runs: schedule it off-peak, not after every erasure).
        """
        store: Any = self.store
        dialect = getattr(store, "dialect", None)
        if dialect == "sqlite":
            raw = store.engine.raw_connection()
            try:
                cur = raw.cursor()
                cur.execute("VACUUM")
                cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                cur.close()
            finally:
                raw.close()
        elif dialect == "postgresql":
            import sqlalchemy as sa

            prep = store.engine.dialect.identifier_preparer
            with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                for table in (store.pii_values, store.pii_keys):
                    conn.execute(sa.text(f"VACUUM FULL {prep.format_table(table)}"))

    def rotate(self, new: MasterKey) -> int:
        """Re-wrap every subject key under ``new``; events and ciphertexts stay as they are."""
        if self.vault is None or self.keyring is None:
            return 0
        n = 0
        for stored in self.vault.all_keys():
            key = self.keyring.unwrap(stored.wrapped)
            self.vault.set_key(attrs.evolve(stored, key_id=new.key_id, wrapped=new.wrap(key)))
            n += 1
        self.keyring = new
        self._opened.clear()
        self._key_rows.clear()
        return n


class _Sealer:
    """Seals the values of one step, then stores their ciphertexts at once."""

    def __init__(self, privacy: Privacy, case_id: str, trigger: str) -> None:
        self.privacy = privacy
        self.case_id = case_id
        self.trigger = trigger
        self.sealed: list[Sealed] = []
        self._keys: dict[str, tuple[bytes, bytes, str]] = {}
        self._new_keys: list[SubjectKey] = []
        #: ``{ref id: (plaintext, subject state)}`` of what this step sealed.
        self.plain: dict[str, tuple[Any, str]] = {}
        #: ``{declared path: its names}`` for the policy's `PersonalPolicy.refers_to`.
        self.named: dict[str, _Names] = {}
        #: The stored key rows this step sealed under (checked again in its commit).
        self.used: list[SubjectKey] = []
        #: ``{subject: wrapped key}`` of every key the step sealed under, new or stored,
        #: and ``{subject: state}`` as the step knew it (both checked in its commit).
        self.wrapped: dict[str, bytes] = {}
        self.states: dict[str, str] = {}

    def _key(self, subject: str) -> tuple[bytes, bytes, str]:
        key = self._keys.get(subject)
        if key is None:
            self.privacy._need(self.case_id, self.trigger)
            k, ck, state, new, row = self.privacy._subject_key(subject)
            if new is not None:
                self._new_keys.append(new)
            else:
                self.used.append(row)
            self.wrapped[subject] = row.wrapped
            self.states[subject] = row.state
            key = self._keys[subject] = (k, ck, state)
        return key

    def key_states(self) -> dict[str, tuple[bytes, str]]:
        """``{subject: (wrapped key, state)}`` of the keys this step sealed under."""
        return {s: (w, self.states[s]) for s, w in self.wrapped.items()}

    def entries(self) -> list[VaultEntry]:
        """The vault rows of what this step sealed."""
        return [VaultEntry(s.ref_id, s.subject, s.case_id, s.path, s.ciphertext)
                for s in self.sealed]

    def _seal(self, value: Any, kind: str, path: str, subject: str) -> dict[str, Any]:
        key, ck, state = self._key(subject)
        s = seal(value, kind=kind, case_id=self.case_id, path=path,
                 subject=subject, subject_key=key, commit_key=ck)
        self.plain[s.ref_id] = (value, state)
        self.sealed.append(s)
        return s.reference

    def seal_doc(self, doc: Mapping[str, Any], fields: Sequence[PersonalField]) -> Any:
        new: dict[str, Any] = {}
        for field in fields:
            steps = _steps(field.path)
            top = steps[0]
            if top not in doc:
                continue  # nothing of this field in the document
            names = self.named.get(field.path)
            if len(steps) == 1 and top is not None and names is None and field.subject is None:
                # A top-level key (``contact``): no walk, no path to parse.
                value = doc[top]
                if value is None or (isinstance(value, Mapping) and (
                        "$pii" in value or MAP_KEY in value)):
                    continue
                # subject_of of a top-level key is the document's own "subject" (None:
                # the case's), so without one there is nothing to look up.
                own = (subject_of(doc, top, field) if doc.get(SUBJECT_KEY) is not None
                       else None) or case_subject(self.case_id)
                new[top] = self._seal(value, field.kind, field.path, own)
                continue
            for concrete, value in find(doc, steps):
                if isinstance(value, Mapping) and ("$pii" in value or MAP_KEY in value):
                    continue  # a reference already (stored data kept by the step)
                own = subject_of(doc, concrete, field) or case_subject(self.case_id)
                if names is None:
                    new[concrete] = self._seal(value, field.kind, field.path, own)
                    continue
                try:
                    if isinstance(value, Mapping):
                        # The keys name listed elements: each sealed under its element's
                        # subject.
                        new[concrete] = {MAP_KEY: [
                            [self._seal(k, "name", field.path, names.get(str(k), own)), v]
                            for k, v in value.items()]}
                    else:
                        subject = names.get(value, own) if isinstance(value, str) else own
                        new[concrete] = self._seal(value, field.kind, field.path, subject)
                except _AmbiguousName:
                    target = names.target
                    raise InvalidPayload(
                        f"{concrete!r} holds a name that matches no entry of {target!r} "
                        "exactly, and entries of two different subjects once spaces, "
                        "letter case and full-width forms are ignored; write the name "
                        f"exactly as it is in {target!r}, so that it is erased with the "
                        "right person", case_id=self.case_id,
                        trigger=self.trigger) from None
        if not new:
            return doc
        if all("." not in k and "[" not in k for k in new):
            return {**doc, **new}  # top-level keys only
        return replace(doc, new)
