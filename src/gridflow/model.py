"""The runtime records: who acts (`Actor`), what is stored (`Case`, `Event`),
and what a step changed (`Changes`).

All are frozen attrs classes. ``Case.data`` and ``Event.payload`` are plain
JSON objects (string keys); treat them as read-only (gridflow hands out the
stored case rows of a `MemoryStore` without copying, for speed).

A case row is a cache of the fold of its events: every event's `Changes`
records, inside the event's hash, what its step changed in the row, so that
`gridflow.replay` can recompute the row from the events alone.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Final, final

import attrs

from gridflow._errors import InvalidArgument
from gridflow._fastinit import frozen_init

__all__ = [
    "ALL_GRIDS",
    "EVENT_FIELDS",
    "GENESIS_HASH",
    "OVERDUE_KEY",
    "Actor",
    "AllGrids",
    "Case",
    "Changes",
    "Event",
    "canonical_json",
    "event_bytes",
    "event_hash",
    "event_text",
]

#: ``prev_hash`` of a case's first event.
GENESIS_HASH = "0" * 64
#: The ``data`` key where the timer keeps the deadline a case missed in a state
#: without ``on_breach`` (ISO 8601, UTC); the engine removes it when a step
#: replaces that deadline (the case enters a state, or an extension moves it).
#: Here, the lowest layer, so that the step core reads it without loading the
#: spec layer (`gridflow.spec` re-exports it).
OVERDUE_KEY = "overdue_since"


@final
class AllGrids:
    """The type of `ALL_GRIDS`: the scope of an actor that may touch every grid.

    It contains every grid (and the cases opened without one); iterating it
    yields nothing, since "every grid" is not a list of names.

    Example:
        >>> import gridflow
        >>> "华三-1" in gridflow.ALL_GRIDS, None in gridflow.ALL_GRIDS
        (True, True)
        >>> gridflow.ALL_GRIDS
        gridflow.ALL_GRIDS
    """

    __slots__ = ()
    _instance: AllGrids | None = None

    def __new__(cls) -> AllGrids:
        # A singleton: `grids is ALL_GRIDS` is how the engine tells it apart.
        if cls._instance is None:
            cls._instance = object.__new__(cls)
        return cls._instance

    def __contains__(self, grid: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __bool__(self) -> bool:
        return True

    def __repr__(self) -> str:
        return "gridflow.ALL_GRIDS"

    def __reduce__(self) -> str:
        return "ALL_GRIDS"


#: The scope of street-level actors and the timer: every grid. An actor
#: with no grids may touch no case (scope fails closed); pass
#: ``grids=gridflow.ALL_GRIDS`` where every grid is meant.
ALL_GRIDS: Final = AllGrids()

#: How `ALL_GRIDS` is written in stored and hashed actor records.
_ALL_GRIDS_JSON = "*"
_MAX_NAME = 200


def _name_problem(value: object, what: str, *, inner_space: bool) -> str | None:
    if not isinstance(value, str):
        return f"{what} must be a string, got {type(value).__name__}"
    if not value:
        return f"{what} is empty"
    if value != value.strip():
        return f"{what} {value!r} has surrounding whitespace"
    if not inner_space and any(c.isspace() for c in value):
        return f"{what} {value!r} contains whitespace"
    if len(value) > _MAX_NAME:
        return f"{what} is longer than {_MAX_NAME} characters"
    if any(ord(c) < 32 or 0xD800 <= ord(c) <= 0xDFFF for c in value):
        return f"{what} {value!r} contains a control character or a lone surrogate"
    return None


def _names(value: Iterable[str] | str | None, what: str, *, inner_space: bool) -> frozenset[str]:
    # A bare string is one name, not an iterable of one-letter names.
    if value is None:
        return frozenset()
    if not isinstance(value, str) and (isinstance(value, Mapping)
                                       or not isinstance(value, Iterable)):
        # A mapping would give its keys; a bool or a number is no list of names.
        raise InvalidArgument(f"Actor: {what}s are a string or a list of strings, got "
                              f"{type(value).__name__}")
    items = (value,) if isinstance(value, str) else tuple(value)
    for item in items:
        problem = _name_problem(item, what, inner_space=inner_space)
        if problem is not None:
            raise InvalidArgument(f"Actor: {problem}")
    return frozenset(items)


def _roles(value: Iterable[str] | str | None) -> frozenset[str]:
    return _names(value, "a role", inner_space=False)


def _grids(value: Iterable[str] | str | AllGrids | None) -> frozenset[str] | AllGrids:
    if value is ALL_GRIDS:
        return ALL_GRIDS
    grids = _names(value, "a grid", inner_space=True)
    if _ALL_GRIDS_JSON in grids:
        raise InvalidArgument("Actor: '*' is not a grid name; pass grids=gridflow.ALL_GRIDS "
                              "for street-level actors")
    return grids


def _check_id(_: Any, __: Any, value: str) -> None:
    problem = _name_problem(value, "the actor id", inner_space=True)
    if problem is not None:
        raise InvalidArgument(f"Actor: {problem}; every actor needs a non-empty string id")


@attrs.frozen(slots=True)
class Actor:
    """Who fires a trigger.

    ``id`` is a non-empty string; ``roles`` are what the actor may do and
    ``grids`` the grids (网格) whose cases the actor may touch. Both take any
    iterable of non-empty strings without surrounding whitespace (a single
    string is one name; roles contain no whitespace at all). Scope fails
    closed: an actor with no grids may touch **no** case. The street level
    and the timer pass ``grids=gridflow.ALL_GRIDS``. A bad value raises
    `InvalidArgument`.

    Example:
        >>> import gridflow
        >>> a = Actor("w-1", ["grid_worker"], ["华三-1"])
        >>> a.can_touch("华三-1"), a.can_touch("华三-2")
        (True, False)
        >>> Actor("nobody", ["resident"]).can_touch("华三-1")
        False
        >>> Actor("street-1", ["street"], gridflow.ALL_GRIDS).can_touch("华三-2")
        True
        >>> Actor.system().roles
        frozenset({'system'})
        >>> Actor("w-2", ["co ordinator"])
        Traceback (most recent call last):
        ...
        gridflow._errors.InvalidArgument: Actor: a role 'co ordinator' contains whitespace
    """

    id: str = attrs.field(validator=_check_id)
    roles: frozenset[str] = attrs.field(default=frozenset(), converter=_roles)
    grids: frozenset[str] | AllGrids = attrs.field(default=frozenset(), converter=_grids)

    @classmethod
    def system(cls) -> Actor:
        """The actor the timer acts as: id and role ``system``, `ALL_GRIDS`."""
        return _SYSTEM

    @classmethod
    def stored(cls, id: str, roles: Iterable[str], grids: Iterable[str] | str) -> Actor:
        """An actor as a store reads it back from history, without validation:
        an event written by gridflow 0.1 may hold an actor 0.2 would refuse,
        and reading history must never fail on it. ``grids`` is the stored
        form: a list of names, or ``"*"`` for `ALL_GRIDS`.

        Example:
            >>> Actor.stored("system", ["system"], "*").grids
            gridflow.ALL_GRIDS
        """
        actor = object.__new__(cls)
        object.__setattr__(actor, "id", id)
        object.__setattr__(actor, "roles", frozenset(roles))
        object.__setattr__(actor, "grids", ALL_GRIDS if grids == _ALL_GRIDS_JSON
                           else frozenset(grids))
        return actor

    def can_touch(self, grid: str | None) -> bool:
        """True if a case in ``grid`` is within this actor's scope."""
        grids = self.grids
        return grids is ALL_GRIDS or grid in grids

    def grids_json(self) -> list[str] | str:
        """``grids`` as stored and hashed: sorted names, or ``"*"`` for `ALL_GRIDS`."""
        grids = self.grids
        return _ALL_GRIDS_JSON if grids is ALL_GRIDS else sorted(grids)

    def to_json(self) -> dict[str, Any]:
        """The canonical JSON form (sorted lists; ``"*"`` for `ALL_GRIDS`), as stored."""
        return {"id": self.id, "roles": sorted(self.roles), "grids": self.grids_json()}


_SYSTEM = Actor("system", frozenset({"system"}), ALL_GRIDS)


def _utc_iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


@frozen_init
@attrs.frozen(slots=True)
class Changes:
    """What one step changed in its case row, recorded inside the event's hash.

    ``set`` holds the ``data`` keys the step set (with their new values) and
    ``unset`` the keys it removed; ``deadline_at`` is the deadline in force
    *after* the step (``None``: none); ``links`` the case ids the step linked;
    ``workflow_version`` the version of the workflow the case runs on after
    the step. An event that (re)binds the case to a workflow — ``open``, and a
    migration — also names the ``workflow`` and the ``grid``. Folding the
    changes of a case's events in order (`gridflow.replay`) gives its row.

    Example:
        >>> c = Changes(set={"category": "违规堆物"}, workflow_version=1)
        >>> c.to_json()["set"], sorted(c.to_json())
        ({'category': '违规堆物'}, ['deadline_at', 'links', 'set', 'unset', 'workflow_version'])
    """

    set: Mapping[str, Any] = attrs.field(factory=dict)
    unset: tuple[str, ...] = ()
    deadline_at: datetime | None = None
    links: tuple[str, ...] = ()
    workflow_version: int = 1
    workflow: str | None = None
    grid: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The canonical JSON form, as stored and hashed (keys in sorted order)."""
        out: dict[str, Any] = {"deadline_at": _utc_iso(self.deadline_at),
                               "links": list(self.links), "set": dict(self.set),
                               "unset": list(self.unset),
                               "workflow_version": self.workflow_version}
        if self.workflow is not None:
            out = {"deadline_at": out["deadline_at"], "grid": self.grid, "links": out["links"],
                   "set": out["set"], "unset": out["unset"], "workflow": self.workflow,
                   "workflow_version": self.workflow_version}
        return out

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Changes:
        """Read the stored form back (what `to_json` wrote).

        Example:
            >>> c = Changes(links=("c-2",), workflow_version=2)
            >>> Changes.from_json(c.to_json()) == c
            True
        """
        deadline = value.get("deadline_at")
        return cls(value.get("set") or {}, tuple(value.get("unset") or ()),
                   None if deadline is None else datetime.fromisoformat(deadline),
                   tuple(value.get("links") or ()), value.get("workflow_version", 1),
                   value.get("workflow"), value.get("grid"))


#: From this many links on, an engine-made history shares its links (`_grow`).
_INDEXED_LINKS: Final = 64


def has_link(links: tuple[str, ...], case_id: str) -> bool:
    """Whether ``case_id`` is in ``links`` (a plain tuple of `Case.links`); the
    engine's long links answer in constant time through `case_has_link`.

    Example:
        >>> has_link(("c-2", "c-3"), "c-3"), has_link((), "c-3")
        (True, False)
    """
    return case_id in links


@frozen_init
@attrs.frozen(slots=True)
class Case:
    """A frozen snapshot of one case: the fold of its events (`gridflow.replay`).

    ``version`` counts stored events and is the optimistic-concurrency token
    (``expected_version`` in `Engine.fire`). ``links`` are ids of related
    cases; ``deadline_at`` is when the current state's time limit runs out;
    ``head`` is the hash of the case's last event (the next event's ``prev_hash``).

    Example:
        >>> from datetime import datetime, UTC
        >>> t = datetime(2026, 1, 5, tzinfo=UTC)
        >>> c = Case("c-1", "grid_case", 1, "reported", 1, {"title": "堆物"}, "华三-1", t, t)
        >>> c.state, c.version, c.links
        ('reported', 1, ())
    """

    id: str
    workflow: str
    workflow_version: int
    state: str
    version: int
    data: dict[str, Any]
    grid: str | None
    opened_at: datetime
    updated_at: datetime
    deadline_at: datetime | None = None
    links: tuple[str, ...] = ()
    head: str = GENESIS_HASH


# -- long links: O(1) to extend, a tuple to every reader --------------------------------------


class _Links:
    """The links of an engine-made row with many of them: the first ``n`` ids of a
    list shared by the rows of one history, each link step appending to it.

    A tuple of n links costs O(n) to extend (the copy touches every id), so a case
    with thousands of links would pay for all of them on each new one. Along one
    history each row's links are its predecessor's plus the new ids: the rows
    share one list and one index (id -> first position), and each row counts
    only its first ``n``. A history takes this form when its links grow past
    64 (`_grow`); rows read back from a database hold plain tuples. Extending
    the newest row appends in place; extending an older one (a fork: two
    writers raced from the same version) copies once.

    Never seen outside gridflow: `Case.links` reads it as the tuple it always was
    (made once per row, when first read) through `_LinksField`.
    """

    __slots__ = ("index", "items", "n", "tuple")

    def __init__(self, items: list[str], n: int, index: dict[str, int]) -> None:
        self.items = items
        self.n = n
        self.index = index
        self.tuple: tuple[str, ...] | None = None

    def as_tuple(self) -> tuple[str, ...]:
        found = self.tuple
        if found is None:
            found = self.tuple = tuple(self.items[:self.n])
        return found

    def has(self, case_id: str) -> bool:
        at = self.index.get(case_id)
        return at is not None and at < self.n


_grow_lock = threading.Lock()


def _grow(links: tuple[str, ...] | _Links, more: tuple[str, ...]) -> tuple[str, ...] | _Links:
    """``links`` (a row's stored links) with ``more`` appended, as the next row stores them."""
    if links.__class__ is _Links:
        assert isinstance(links, _Links)
        n = links.n
        with _grow_lock:
            items, index = links.items, links.index
            if len(items) == n:  # the newest row of its history: append in place
                items.extend(more)
            else:  # a fork: this history goes on in a copy of its own
                items = items[:n] + list(more)
                index = {}
                for at, case_id in enumerate(items[:n]):
                    index.setdefault(case_id, at)
            for at, case_id in enumerate(more, n):
                index.setdefault(case_id, at)
        return _Links(items, n + len(more), index)
    assert isinstance(links, tuple)
    n = len(links) + len(more)
    if n < _INDEXED_LINKS or len(links) >= _INDEXED_LINKS:
        # Short; or long already and read back from a database, where the next
        # step reads a fresh tuple again: building the shared form would cost
        # more than the copy it saves once.
        return links + more
    items = [*links, *more]
    first: dict[str, int] = {}
    for at, case_id in enumerate(items):
        first.setdefault(case_id, at)
    return _Links(items, n, first)


class _LinksField:
    """`Case.links` as stored (the slot attrs made): a tuple, or `_Links`, which
    every read turns into its tuple (the same object each time)."""

    def __init__(self, slot: Any) -> None:
        self.slot = slot

    def __get__(self, case: Any, owner: Any = None) -> Any:
        if case is None:
            return self
        value = self.slot.__get__(case, owner)
        return value.as_tuple() if value.__class__ is _Links else value

    def __set__(self, case: Any, value: Any) -> None:
        self.slot.__set__(case, value)

    def __delete__(self, case: Any) -> None:
        self.slot.__delete__(case)


#: The slot of `Case.links`, read without turning `_Links` into a tuple.
_CASE_LINKS: Any = Case.__dict__["links"]
setattr(Case, "links", _LinksField(_CASE_LINKS))  # noqa: B010 (mypy: a slot stays typed)


def stored_links(case: Case) -> tuple[str, ...] | _Links:
    """``case.links`` as the row holds them (a tuple, or the shared form of long
    links), for the engine's own link path: nothing is copied.

    Example:
        >>> from datetime import datetime, UTC
        >>> t = datetime(2026, 1, 5, tzinfo=UTC)
        >>> stored_links(Case("c-1", "grid_case", 1, "reported", 1, {}, "g", t, t, links=("c-2",)))
        ('c-2',)
    """
    value: tuple[str, ...] | _Links = _CASE_LINKS.__get__(case, Case)
    return value


def links_count(case: Case) -> int:
    """``len(case.links)``, without making the tuple.

    Example:
        >>> from datetime import datetime, UTC
        >>> t = datetime(2026, 1, 5, tzinfo=UTC)
        >>> links_count(Case("c-1", "grid_case", 1, "reported", 1, {}, "g", t, t, links=("c-2",)))
        1
    """
    value = _CASE_LINKS.__get__(case, Case)
    return value.n if value.__class__ is _Links else len(value)


def case_has_link(case: Case, case_id: str) -> bool:
    """``case_id in case.links``, in constant time for the long links the engine made.

    Example:
        >>> from datetime import datetime, UTC
        >>> t = datetime(2026, 1, 5, tzinfo=UTC)
        >>> c = Case("c-1", "grid_case", 1, "reported", 1, {}, "g", t, t, links=("c-2",))
        >>> case_has_link(c, "c-2"), case_has_link(c, "c-3")
        (True, False)
    """
    value = _CASE_LINKS.__get__(case, Case)
    if value.__class__ is _Links:
        return bool(value.has(case_id))
    return has_link(value, case_id)


@frozen_init
@attrs.frozen(slots=True)
class Event:
    """One stored step of a case's history (append-only).

    ``source`` is ``None`` for the ``open`` event; ``dest`` is ``None`` for an
    internal transition (the state stays). ``changes`` records what the step
    changed in the case row (``None`` only for events written by gridflow
    0.1). ``hash`` is SHA-256 over the canonical JSON of every other field,
    ``prev_hash`` included (see `event_hash`). ``digests`` is not part of
    the event: a store may fill it with per-field checksums taken when the
    event was written, so that `Engine.verify` can name the field of an
    edited event; it proves nothing by itself.

    Example:
        >>> from datetime import datetime, UTC
        >>> t = datetime(2026, 1, 5, tzinfo=UTC)
        >>> e = Event.create("c-1", 1, "open", None, "reported", Actor.system(), t, {}, None,
        ...                  GENESIS_HASH, Changes(workflow="grid_case"))
        >>> e.hash == e.expected_hash()
        True
    """

    case_id: str
    seq: int
    trigger: str
    source: str | None
    dest: str | None
    actor: Actor
    at: datetime
    payload: dict[str, Any]
    idempotency_key: str | None
    prev_hash: str
    hash: str
    changes: Changes | None = None
    digests: str | None = attrs.field(default=None, eq=False, repr=False)

    @classmethod
    def create(
        cls, case_id: str, seq: int, trigger: str, source: str | None, dest: str | None,
        actor: Actor, at: datetime, payload: dict[str, Any], idempotency_key: str | None,
        prev_hash: str, changes: Changes | None = None,
    ) -> Event:
        """Build an event and compute its hash."""
        digest = event_hash(case_id, seq, trigger, source, dest, actor, at, payload,
                            idempotency_key, prev_hash, changes)
        return cls(case_id, seq, trigger, source, dest, actor, at, payload, idempotency_key,
                   prev_hash, digest, changes)

    def expected_hash(self) -> str:
        """Recompute the hash from the other fields (what `Engine.verify` checks)."""
        return event_hash(
            self.case_id, self.seq, self.trigger, self.source, self.dest, self.actor, self.at,
            self.payload, self.idempotency_key, self.prev_hash, self.changes,
        )

    def field_digests(self) -> str:
        """Short per-field checksums (CRC-32, 4 hex digits each) of `EVENT_FIELDS`,
        which a store keeps beside the event so that `Engine.verify` can say
        *which* field of an edited event changed. Diagnostics only: the hash
        is what proves.

        Example:
            >>> from datetime import datetime, UTC
            >>> t = datetime(2026, 1, 5, tzinfo=UTC)
            >>> e = Event.create("c-1", 1, "open", None, "reported", Actor.system(), t, {},
            ...                  None, GENESIS_HASH, Changes(workflow="grid_case"))
            >>> len(e.field_digests()) == 4 * len(EVENT_FIELDS)
            True
        """
        import zlib

        return "".join(f"{zlib.crc32(part.encode('utf-8', 'surrogatepass')) & 0xFFFF:04x}"
                       for part in _field_texts(self))

    def edited_fields(self) -> list[str]:
        """The fields whose checksum differs from `digests` (empty if no
        digests are kept, or none differs).

        Example:
            >>> from datetime import datetime, UTC
            >>> t = datetime(2026, 1, 5, tzinfo=UTC)
            >>> e = Event.create("c-1", 1, "open", None, "reported", Actor.system(), t, {},
            ...                  None, GENESIS_HASH, Changes(workflow="grid_case"))
            >>> e = attrs.evolve(e, digests=e.field_digests())
            >>> attrs.evolve(e, trigger="close").edited_fields()
            ['trigger']
        """
        kept = self.digests
        if not kept or len(kept) != 4 * len(EVENT_FIELDS):
            return []
        now = self.field_digests()
        return [name for i, name in enumerate(EVENT_FIELDS)
                if kept[4 * i:4 * i + 4] != now[4 * i:4 * i + 4]]


#: The fields of an event in the order they are hashed (and checksummed).
EVENT_FIELDS: tuple[str, ...] = (
    "case_id", "seq", "trigger", "source", "dest", "actor", "at", "payload",
    "idempotency_key", "prev_hash", "changes",
)


def _field_texts(event: Event) -> list[str]:
    # Every stored event pays for its digests: the usual event (plain str
    # fields, plain changes) takes the cached actor part and `_changes_text`;
    # anything else the exact encoder (the two give the same texts).
    try:
        return _field_texts_quick(event)
    except TypeError:
        return _field_texts_exact(event)


def _quoted(value: str | None) -> str:
    if value is None:
        return "null"
    if value.__class__ is not str:
        raise TypeError("not a plain str")
    text: str = _quote(value)
    return text


def _field_texts_quick(event: Event) -> list[str]:
    seq, changes, at = event.seq, event.changes, event.at
    if seq.__class__ is not int or at.__class__ is not datetime:
        raise TypeError("not a plain int or datetime")
    return [
        _quoted(event.case_id), str(seq), _quoted(event.trigger), _quoted(event.source),
        _quoted(event.dest), f"[{_actor_part(event.actor)}]", _quote(at.isoformat()),
        _dumps(event.payload), _quoted(event.idempotency_key), _quoted(event.prev_hash),
        "null" if changes is None else _changes_text(changes),
    ]


def _field_texts_exact(event: Event) -> list[str]:
    actor = event.actor
    return [
        _dumps(event.case_id), str(event.seq), _dumps(event.trigger), _dumps(event.source),
        _dumps(event.dest), _dumps([actor.id, sorted(actor.roles), actor.grids_json()]),
        _dumps(event.at.isoformat()), _dumps(event.payload), _dumps(event.idempotency_key),
        _dumps(event.prev_hash),
        "null" if event.changes is None else _dumps(event.changes.to_json()),
    ]


_encoder = json.JSONEncoder(
    ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
)
_dumps = _encoder.encode
_quote: Any = json.encoder.encode_basestring  # the C version when CPython has it


def _first_sha256(data: bytes) -> Any:
    # hashlib loads OpenSSL (~2 ms, a tenth of `import gridflow`); it is
    # imported by the first hash, which then puts hashlib.sha256 in its place.
    global _sha256
    import hashlib

    _sha256 = hashlib.sha256
    return _sha256(data)


_sha256: Any = _first_sha256


def _make_fast_dumps() -> Any:
    # JSONEncoder.encode builds a new C encoder (and a cycle-marker dict) on
    # every call, ~0.6 µs of the ~1 µs a small payload costs. One C encoder
    # built once gives the same text; without markers a cyclic value ends in
    # RecursionError, reported as the ValueError json itself raises. Falls back
    # to `_dumps` where the C encoder is missing or behaves differently.
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return _dumps
    try:
        encode = make(None, _encoder.default, _quote, None, ":", ",", True, False, False)
    except TypeError:
        return _dumps

    def fast_dumps(value: Any) -> str:
        if value.__class__ is str:
            return str(_quote(value))
        try:
            return "".join(encode(value, 0))
        except RecursionError:
            raise ValueError("Circular reference detected (or the value is nested too "
                             "deeply)") from None

    sample = {"b": [1, 2.5, None, True, "é\n\"x"], "a": {"z": -0.0, "y": ""}, "c": []}
    try:
        same = fast_dumps(sample) == _dumps(sample)
    except Exception:
        same = False
    return fast_dumps if same else _dumps


_fast_dumps: Any = _make_fast_dumps()


def canonical_json(value: Any) -> str:
    """The one JSON form that is hashed: sorted keys, no spaces, UTF-8 text, no NaN.

    Example:
        >>> canonical_json({"b": 1, "a": [True, None]})
        '{"a":[true,null],"b":1}'
    """
    return str(_fast_dumps(value))


# The actor's part of the hashed text (id, sorted roles, sorted grids), per
# distinct actor: hosts fire as a handful of actors, and sorting two sets and
# encoding them on every step was a measurable share of a step.
_actor_parts: dict[Actor, str] = {}
# The last timestamp encoded: a burst of steps at one `now()` (and FixedClock)
# reuses it; the pair is swapped in one assignment, so threads need no lock.
_last_at: tuple[datetime, str] | None = None


def _actor_part(actor: Actor) -> str:
    part = _actor_parts.get(actor)
    if part is None:
        part = _dumps([actor.id, sorted(actor.roles), actor.grids_json()])[1:-1]
        if len(_actor_parts) >= 4096:  # bounded: actors are usually few, never unbounded
            _actor_parts.clear()
        _actor_parts[actor] = part
    return part


_last_deadline: tuple[datetime, str] | None = None


def _changes_text(changes: Changes) -> str:
    # Exactly canonical_json(changes.to_json()), assembled piecewise (a step
    # pays for this on every event).
    global _last_deadline
    q = _quote
    deadline = changes.deadline_at
    if deadline is None:
        when = "null"
    else:
        # Internal steps keep the very deadline object: encode it once.
        last = _last_deadline
        if last is not None and last[0] is deadline:
            when = last[1]
        else:
            utc = deadline if deadline.tzinfo is UTC else deadline.astimezone(UTC)
            when = q(utc.isoformat())
            _last_deadline = (deadline, when)
    links = _fast_dumps(list(changes.links)) if changes.links else "[]"
    data = _fast_dumps(changes.set) if changes.set else "{}"
    unset = _fast_dumps(list(changes.unset)) if changes.unset else "[]"
    version = changes.workflow_version
    if version.__class__ is not int:
        raise TypeError("workflow_version is not a plain int")
    if changes.workflow is None:
        return (f'{{"deadline_at":{when},"links":{links},"set":{data},"unset":{unset},'
                f'"workflow_version":{version}}}')
    grid = "null" if changes.grid is None else q(changes.grid)
    return (f'{{"deadline_at":{when},"grid":{grid},"links":{links},"set":{data},'
            f'"unset":{unset},"workflow":{q(changes.workflow)},"workflow_version":{version}}}')


def _event_text(
    case_id: str, seq: int, trigger: str, source: str | None, dest: str | None,
    actor: Actor, at: datetime, payload: Mapping[str, Any], idempotency_key: str | None,
    prev_hash: str, changes: Changes | None,
) -> str:
    # Exactly the text of canonical_json([...]) in `event_hash`, assembled
    # piecewise; anything unusual raises TypeError and takes the plain path.
    global _last_at
    if seq.__class__ is not int:
        raise TypeError("seq is not a plain int")
    last = _last_at
    if last is not None and last[0] is at:
        when = last[1]
    else:
        when = _quote(at.isoformat())
        _last_at = (at, when)
    q = _quote
    text = (
        f"[{q(case_id)},{seq},{q(trigger)},{'null' if source is None else q(source)},"
        f"{'null' if dest is None else q(dest)},{_actor_part(actor)},{when},"
        f"{_fast_dumps(payload)},{'null' if idempotency_key is None else q(idempotency_key)},"
        f"{q(prev_hash)}"
    )
    if changes is None:
        return text + "]"
    return f"{text},{_changes_text(changes)}]"


def event_text(
    case_id: str, seq: int, trigger: str, source: str | None, dest: str | None,
    actor: Actor, at: datetime, payload: Mapping[str, Any], idempotency_key: str | None,
    prev_hash: str, changes: Changes | None = None,
) -> str:
    """The canonical text an event's hash is taken over.

    It is the canonical JSON (`canonical_json`) of the list ``[case_id, seq,
    trigger, source, dest, actor.id, sorted(actor.roles), grids, at.isoformat(),
    payload, idempotency_key, prev_hash, changes.to_json()]``, where ``grids``
    is ``sorted(actor.grids)`` or ``"*"`` for `ALL_GRIDS`. Events written by
    gridflow 0.1 have no ``changes`` and their list ends with ``prev_hash``.

    Example:
        >>> from datetime import datetime, UTC
        >>> t = datetime(2026, 1, 5, tzinfo=UTC)
        >>> event_text("c-1", 2, "note", "reported", None, Actor.system(), t, {"text": "到场"},
        ...            None, GENESIS_HASH[:4], Changes())
        '["c-1",2,"note","reported",null,"system",["system"],"*","2026-01-05T00:00:00+00:00",{"text":"到场"},null,"0000",{"deadline_at":null,"links":[],"set":{},"unset":[],"workflow_version":1}]'
    """
    try:
        return _event_text(case_id, seq, trigger, source, dest, actor, at, payload,
                           idempotency_key, prev_hash, changes)
    except TypeError:
        body: list[Any] = [
            case_id, seq, trigger, source, dest, actor.id, sorted(actor.roles),
            actor.grids_json(), at.isoformat(), payload, idempotency_key, prev_hash,
        ]
        if changes is not None:
            body.append(changes.to_json())
        return _dumps(body)


# -- the same text, as UTF-8 bytes, by orjson where it is byte-identical ---------------------
#
# orjson (the optional ``fast`` extra) writes str, bool, None, integers, lists and
# str-keyed dicts exactly as the canonical encoder does (sorted keys, no spaces,
# UTF-8, the same escapes), and an aware UTC datetime exactly as its
# ``isoformat()``. Floats it writes differently (``1e16`` for ``1e+16``), so a
# value holding a float, or anything else (a subclass, a big integer, a
# non-UTC time), takes the exact path. `tests/test_event_hash.py` and
# `tests/test_canonical_vectors.py` hold the vectors that the two agree byte for byte.

_ORJSON_NOT_LOADED: Any = object()
_orjson: Any = _ORJSON_NOT_LOADED


def _load_orjson() -> Any:
    # Imported by the first hash, not by `import gridflow`; None without the extra.
    global _orjson
    found: Any
    try:
        import orjson as found
    except ImportError:
        found = None
    if found is not None and not hasattr(found, "OPT_SORT_KEYS"):
        found = None  # not the orjson this code knows
    _orjson = found
    return found


def _orjson_exact(value: Any, depth: int) -> bool:
    """Whether orjson writes ``value`` (a dict or a list) byte for byte as the
    canonical encoder does: only exact str, bool, None, ints within 64 bits,
    lists and str-keyed dicts, not nested past orjson's limit."""
    if depth > 64:
        return False
    if value.__class__ is dict:
        for key in value:
            if key.__class__ is not str:
                return False
        items: Any = value.values()
    else:
        items = value
    for item in items:
        cls = item.__class__
        if cls is str or cls is bool or item is None:
            continue
        if cls is int:
            if not -9_223_372_036_854_775_808 <= item <= 18_446_744_073_709_551_615:
                return False
        elif cls is dict or cls is list:
            if item and not _orjson_exact(item, depth + 1):
                return False
        else:
            return False
    return True


# The actor's hashed fields, per distinct actor: (id, sorted roles, grids).
_actor_fields: dict[int, tuple[Actor, tuple[str, list[str], list[str] | str]]] = {}


def _fast_bytes(
    case_id: str, seq: int, trigger: str, source: str | None, dest: str | None,
    actor: Actor, at: datetime, payload: Mapping[str, Any], idempotency_key: str | None,
    prev_hash: str, changes: Changes | None, set_plain: bool = False,
    payload_plain: bool = False,
) -> bytes | None:
    """`event_text` encoded, by orjson; ``None`` where it is not exact (the caller
    then encodes `event_text`). ``set_plain`` (``payload_plain``): the caller checked
    that ``changes.set`` (``payload``) is `gridflow.values.PLAIN` (no float), so it is
    not walked again."""
    orjson = _orjson
    if orjson is _ORJSON_NOT_LOADED:
        orjson = _load_orjson()
    if orjson is None or changes is None or seq.__class__ is not int:
        return None
    if payload.__class__ is not dict or (payload and not payload_plain
                                         and not _orjson_exact(payload, 0)):
        return None
    data = changes.set
    if data.__class__ is not dict or (data and not set_plain and not _orjson_exact(data, 0)):
        return None
    version = changes.workflow_version
    if version.__class__ is not int or case_id.__class__ is not str \
            or trigger.__class__ is not str or prev_hash.__class__ is not str:
        return None
    if not ((source is None or source.__class__ is str)
            and (dest is None or dest.__class__ is str)
            and (idempotency_key is None or idempotency_key.__class__ is str)):
        return None
    workflow, grid = changes.workflow, changes.grid
    if workflow is not None and (workflow.__class__ is not str
                                 or (grid is not None and grid.__class__ is not str)):
        return None
    links, unset = changes.links, changes.unset
    if links and not _orjson_exact(links_list := list(links), 0):
        return None
    if unset and not _orjson_exact(unset_list := list(unset), 0):
        return None
    when: Any = at if at.tzinfo is UTC and at.__class__ is datetime else at.isoformat()
    deadline: Any = changes.deadline_at
    if deadline is not None:
        deadline = deadline if deadline.tzinfo is UTC and deadline.__class__ is datetime \
            else deadline.astimezone(UTC).isoformat()
    # By identity (an attrs hash of the actor costs more than the look-up saves);
    # the entry holds the actor, so its id stays its own.
    entry = _actor_fields.get(id(actor))
    if entry is not None and entry[0] is actor:
        fields = entry[1]
    else:
        fields = (actor.id, sorted(actor.roles), actor.grids_json())
        if not _orjson_exact(list(fields), 0):
            return None
        if len(_actor_fields) >= 4096:
            _actor_fields.clear()
        _actor_fields[id(actor)] = (actor, fields)
    hashed_changes: dict[str, Any] = {
        "deadline_at": deadline, "links": links_list if links else [],
        "set": data, "unset": unset_list if unset else [], "workflow_version": version}
    if workflow is not None:
        hashed_changes["workflow"] = workflow
        hashed_changes["grid"] = grid
    try:
        out: bytes = orjson.dumps(
            [case_id, seq, trigger, source, dest, fields[0], fields[1], fields[2], when,
             payload, idempotency_key, prev_hash, hashed_changes],
            option=orjson.OPT_SORT_KEYS)
    except (TypeError, ValueError):
        return None  # e.g. a lone surrogate, which orjson refuses: the exact path decides
    global last_text
    last_text = (payload, changes, at, idempotency_key, prev_hash, out)
    return out


#: ``(payload, changes, at, idempotency_key, prev_hash, text)`` of the last text
#: `_fast_bytes` wrote (``None``: none yet): a store that keeps events as their hashed
#: text (`MemoryStore`) takes it instead of encoding the event again, once it has
#: checked the text is that of the event it stores (the same objects, and the text
#: starts with the event's case id, seq, step and actor). One tuple swapped at once, so
#: threads need no lock (a store that finds another thread's text encodes the event).
last_text: tuple[Any, Any, Any, Any, Any, bytes] | None = None


def event_bytes(
    case_id: str, seq: int, trigger: str, source: str | None, dest: str | None,
    actor: Actor, at: datetime, payload: Mapping[str, Any], idempotency_key: str | None,
    prev_hash: str, changes: Changes | None = None,
) -> bytes:
    """`event_text` as the UTF-8 bytes its hash is taken over.

    Written by orjson where that is byte-identical (when the optional
    ``fast`` extra is installed), else by encoding `event_text`.

    Example:
        >>> from datetime import datetime, UTC
        >>> t = datetime(2026, 1, 5, tzinfo=UTC)
        >>> args = ("c-1", 2, "note", "reported", None, Actor.system(), t, {"n": 1.5},
        ...         None, GENESIS_HASH, Changes())
        >>> event_bytes(*args) == event_text(*args).encode()
        True
    """
    fast = _fast_bytes(case_id, seq, trigger, source, dest, actor, at, payload,
                       idempotency_key, prev_hash, changes)
    if fast is not None:
        return fast
    return event_text(case_id, seq, trigger, source, dest, actor, at, payload,
                      idempotency_key, prev_hash, changes).encode()


def event_hash(
    case_id: str, seq: int, trigger: str, source: str | None, dest: str | None,
    actor: Actor, at: datetime, payload: Mapping[str, Any], idempotency_key: str | None,
    prev_hash: str, changes: Changes | None = None,
) -> str:
    """SHA-256 (hex) of an event's canonical text (`event_text`), chained to ``prev_hash``.

    Example:
        >>> from datetime import datetime, UTC
        >>> t = datetime(2026, 1, 5, tzinfo=UTC)
        >>> args = ("c-1", 1, "open", None, "reported", Actor("r", ["resident"], ["g"]), t,
        ...         {"title": "堆物"}, None, GENESIS_HASH, Changes(workflow="grid_case"))
        >>> h = event_hash(*args)
        >>> h == _sha256(event_text(*args).encode()).hexdigest()
        True
    """
    data = event_bytes(case_id, seq, trigger, source, dest, actor, at, payload,
                       idempotency_key, prev_hash, changes)
    digest: str = _sha256(data).hexdigest()
    return digest
