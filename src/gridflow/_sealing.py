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

The vault is written just before the step's commit, in its own transaction:
if the commit then loses a race, the ciphertexts stay unreferenced until the
subject is erased (erase removes every ciphertext of the subject, referenced
or not).
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Protocol

import attrs

from gridflow._errors import (
    ConcurrencyError,
    DecryptionError,
    GuardRejected,
    InvalidPayload,
    KeyringError,
)
from gridflow.model import Actor, Case, Changes, Event
from gridflow.personal.commitment import commitment_key
from gridflow.personal.fields import PersonalField, case_subject, subject_of
from gridflow.personal.keyring import Keyring, MasterKey, new_subject_key
from gridflow.personal.masks import RESTRICTED, TOMBSTONE, mask
from gridflow.personal.paths import find, parse_path, replace
from gridflow.personal.reference import (
    Reference,
    holds_reference,
    map_references,
    references,
    refuse_lookalikes,
)
from gridflow.personal.seal import Sealed, seal, unseal

if TYPE_CHECKING:
    from gridflow.store import Store

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


@attrs.frozen
class PersonalPolicy:
    """The personal paths of one workflow, and who may read them.

    ``data`` are the declared paths in case data (also in the ``open``
    data); ``payload`` the paths declared for every trigger's payload, and
    ``triggers`` extra paths per trigger. ``readers`` see plaintext,
    everyone else a mask; ``auditors`` alone read a restricted subject's
    values (each read recorded). ``retention`` is how long after a case
    becomes terminal its personal values are kept (``None``: until erased).

    Example:
        >>> p = BUILTIN_POLICIES["grid_case"]
        >>> [f.path for f in p.data][:2], sorted(p.readers)
        (['reporter.name', 'reporter.phone'], ['coordinator'])
    """

    data: tuple[PersonalField, ...] = ()
    payload: tuple[PersonalField, ...] = ()
    triggers: Mapping[str, tuple[PersonalField, ...]] = attrs.field(factory=dict)
    readers: frozenset[str] = frozenset()
    auditors: frozenset[str] = frozenset({"auditor"})
    retention: timedelta | None = None
    unseal_for_steps: bool = False

    def payload_fields(self, trigger: str) -> tuple[PersonalField, ...]:
        """The declared paths of ``trigger``'s payload (``open``: none, its data is ``data``).

        Example:
            >>> [f.path for f in BUILTIN_POLICIES["grid_case"].payload_fields("note")][-1]
            'contact'
        """
        return (*self.payload, *self.triggers.get(trigger, ()))

    def top_keys(self) -> frozenset[str]:
        """The top-level data keys under which personal values may sit.

        Example:
            >>> sorted(BUILTIN_POLICIES["mediation"].top_keys())
            ['consent', 'contact', 'parties', 'signed_by']
        """
        return frozenset(str(_steps(f.path)[0]) for f in self.data)


_REPORTER = tuple(PersonalField(f"reporter.{k}", kind) for k, kind in (
    ("name", "name"), ("phone", "phone"), ("id_number", "id_number"), ("email", "email"),
    ("address", "address")))
_PARTIES = tuple(PersonalField(f"parties[].{k}", kind) for k, kind in (
    ("name", "name"), ("phone", "phone"), ("id_number", "id_number")))
_CONTACT = PersonalField("contact", "free_text")

#: The policies of the built-in workflows, by workflow name.
BUILTIN_POLICIES: Final[dict[str, PersonalPolicy]] = {
    "grid_case": PersonalPolicy(
        data=(*_REPORTER, _CONTACT), payload=(*_REPORTER, _CONTACT),
        readers=frozenset({"coordinator"})),
    "mediation": PersonalPolicy(
        data=(*_PARTIES, _CONTACT, PersonalField("consent", "free_text"),
              PersonalField("signed_by[]", "name")),
        payload=(*_PARTIES, _CONTACT, PersonalField("consent", "free_text"),
                 PersonalField("signed_by[]", "name")),
        readers=frozenset({"mediator", "judicial_office"}), unseal_for_steps=True),
}


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
        """Ids of cases of ``workflow`` in ``states``, last written at or before
        ``cutoff``, that still hold ciphertexts."""
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
            if (case is not None and case.workflow == workflow and case.state in states
                    and case.updated_at <= cutoff):
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

    def key(self, subject: str) -> SubjectKey | None:
        import sqlalchemy as sa

        self._store._ready()
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

        v, c = self._values_t, self._store.cases
        stmt = (sa.select(c.c.id).where(
            c.c.workflow == workflow, c.c.state.in_(list(states)), c.c.updated_at <= cutoff,
            sa.exists().where(v.c.case_id == c.c.id)).order_by(c.c.updated_at, c.c.id)
            .limit(limit))
        with self._store._failures("finding cases past retention"), \
                self._store._reader.connect() as conn:
            return [r[0] for r in conn.execute(stmt)]


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


@functools.lru_cache(maxsize=1024)
def _steps(path: str) -> tuple[str | None, ...]:
    return parse_path(path)


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

    def _subject_key(self, subject: str) -> tuple[bytes, bytes, str, SubjectKey | None]:
        """The subject's key, its commitment key, its state, and the row to store if new.

        A new subject's key is made here and stored with the step's ciphertexts
        (`Vault.put_with_keys`), in one transaction.
        """
        keyring, vault = self.keyring, self.vault
        assert keyring is not None and vault is not None
        stored = vault.key(subject)
        new = None
        if stored is None:
            stored = new = SubjectKey(subject, keyring.key_id, keyring.wrap(new_subject_key()))
        key, ck = self._open_key(stored.wrapped)
        return key, ck, stored.state, new

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
                dict.__setitem__(data, key, map_references(data[key], plain))
        return data, opened

    def seal_outcome(self, case: Case, trigger: str, outcome: Any,
                     opened: Mapping[str, Any]) -> Any:
        """The step's outcome with every declared personal value sealed (see the module)."""
        policy = self.policies.get(case.workflow)
        if policy is None:
            return outcome
        if trigger != "open" and not opened and _nothing_to_seal(policy, trigger, outcome):
            refuse_lookalikes(outcome.payload, where="payload", case_id=case.id,
                              trigger=trigger)
            self._local.recent = {}
            return outcome
        payload_fields = policy.payload_fields(trigger) if trigger != "open" else ()
        if trigger == "open":
            refuse_lookalikes(outcome.data, where="data", trigger="open")
        else:
            refuse_lookalikes(outcome.payload, where="payload", case_id=case.id,
                              trigger=trigger)
        sealer = _Sealer(self, case.id, trigger)
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
        sealer.flush()
        # The step's own new values, so showing its result needs no read of the vault.
        self._local.recent = sealer.plain
        if payload is outcome.payload and not sealer.sealed:
            return outcome
        return attrs.evolve(outcome, data=data, payload=payload)

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
                  ) -> Callable[[str, Reference], Any]:
        """A `map_references` function: ``show(ref, plaintext, subject state)`` per value.

        ``recent`` holds values the caller has in clear already (the step's own).
        """
        vault = self.vault
        known = recent or {}
        entries, stored_keys = (vault.entries_and_keys(
            r.ref_id for r in refs if r.ref_id not in known)
            if vault is not None else ({}, {}))
        keys: dict[str, tuple[bytes | None, str, bytes | None]] = {}

        def resolve(_path: str, ref: Reference) -> Any:
            if ref.ref_id in known:
                value, state = known[ref.ref_id]
                return show(ref, value, state)
            entry = entries.get(ref.ref_id)
            if entry is None or vault is None:
                return erased
            if self.keyring is None:
                return UNREADABLE  # no master key configured: not erased, just not readable
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
                return erased if state == "erased" else UNREADABLE
            try:
                value = unseal(ref, entry.ciphertext, case_id=entry.case_id, path=entry.path,
                               subject=entry.subject, subject_key=key, commit_key=ck)
            except DecryptionError:
                return erased
            return show(ref, value, state)

        return resolve

    def _shower(self, actor: Actor | None, policy: PersonalPolicy,
                restricted_seen: list[str]) -> Callable[[Reference, Any, str], Any]:
        roles = frozenset(actor.roles) if actor is not None else frozenset()
        reader = bool(roles & policy.readers)
        auditor = bool(roles & policy.auditors)

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
        if policy is None or not holds_reference(case.data):  # (the quick test first)
            return case, []
        refs = [r for _, r in references(case.data)]
        if not refs:
            return case, []
        recent = getattr(self._local, "recent", None)
        self._local.recent = None
        seen: list[str] = []
        fn = self._resolver(refs, self._shower(actor, policy, seen), recent=recent)
        return attrs.evolve(case, data=map_references(case.data, fn)), seen

    def show_events(self, workflow: str, events: list[Event],
                    actor: Actor | None) -> tuple[list[Event], list[str]]:
        """``events`` as ``actor`` may see them (payloads and changes)."""
        policy = self.policies.get(workflow)
        if policy is None:
            return events, []
        refs = [r for e in events for _, r in references(e.payload)]
        refs += [r for e in events if e.changes is not None for _, r in references(
            dict(e.changes.set))]
        if not refs:
            return events, []
        seen: list[str] = []
        fn = self._resolver(refs, self._shower(actor, policy, seen))
        out = []
        for e in events:
            payload = map_references(e.payload, fn)
            changes = e.changes
            if changes is not None and changes.set:
                new_set = map_references(dict(changes.set), fn)
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
            self._opened.pop(stored.wrapped, None)
        count = self.vault.forget(subject)
        for case_id in cases:
            self.append_internal(case_id, ERASED, actor, now,
                                 {"subject": subject, "reason": reason, "values": count})
        return cases

    def retire(self, now: datetime, terminal: Callable[[str], Sequence[str]],
               limit: int = 100) -> list[Event]:
        """Erase the personal values of cases past their workflow's retention (`tick`).

        A case qualifies when it is in a terminal state and was last written
        ``retention`` or longer before ``now``. Its ciphertexts are deleted and an
        `ERASED` event appended, once, however many workers tick at the same time.
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
        cases = self.vault.cases_of(subject)
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

    def _key(self, subject: str) -> tuple[bytes, bytes, str]:
        key = self._keys.get(subject)
        if key is None:
            self.privacy._need(self.case_id, self.trigger)
            k, ck, state, new = self.privacy._subject_key(subject)
            if new is not None:
                self._new_keys.append(new)
            key = self._keys[subject] = (k, ck, state)
        return key

    def seal_doc(self, doc: Mapping[str, Any], fields: Sequence[PersonalField]) -> Any:
        new: dict[str, Any] = {}
        for field in fields:
            steps = _steps(field.path)
            if steps[0] is not None and steps[0] not in doc:
                continue  # what `find` yields for an absent key: nothing (the quick test)
            for concrete, value in find(doc, steps):
                if isinstance(value, Mapping) and "$pii" in value:
                    continue  # a reference already (stored data kept by the step)
                subject = subject_of(doc, concrete, field) or case_subject(self.case_id)
                key, ck, state = self._key(subject)
                s = seal(value, kind=field.kind, case_id=self.case_id, path=field.path,
                         subject=subject, subject_key=key, commit_key=ck)
                self.plain[s.ref_id] = (value, state)
                self.sealed.append(s)
                new[concrete] = s.reference
        return replace(doc, new) if new else doc

    def flush(self) -> None:
        if not self.sealed:
            return
        _, vault = self.privacy._need(self.case_id, self.trigger)
        entries = [VaultEntry(s.ref_id, s.subject, s.case_id, s.path, s.ciphertext)
                   for s in self.sealed]
        if not vault.put_with_keys(self._new_keys, entries):
            # Another step made this subject's first key at the same moment: ours
            # sealed nothing that was stored; the step is retried like a lost race.
            raise ConcurrencyError(self.case_id, 0)
