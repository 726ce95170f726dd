"""The runtime records: who acts (`Actor`), what is stored (`Case`, `Event`).

All three are frozen attrs classes. ``Case.data`` and ``Event.payload`` are
plain JSON-able dicts; treat them as read-only (gridflow hands out the stored
objects of a `MemoryStore` without copying, for speed).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import attrs

__all__ = ["GENESIS_HASH", "Actor", "Case", "Event", "canonical_json", "event_hash"]

#: ``prev_hash`` of a case's first event.
GENESIS_HASH = "0" * 64


def _strings(value: Iterable[str] | str | None) -> frozenset[str]:
    # A bare string is one name, not an iterable of one-letter names.
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset((value,))
    out = frozenset(value)
    for item in out:
        if not isinstance(item, str):
            raise TypeError(f"roles and grids must be strings, got {item!r}")
    return out


@attrs.frozen(slots=True)
class Actor:
    """Who fires a trigger.

    ``roles`` are what the actor may do; ``grids`` scope the cases the actor may
    touch (empty: every grid, for the street level and the system). Both accept
    any iterable of strings (a single string is one name).

    Example:
        >>> a = Actor("w-1", ["grid_worker"], ["华三-1"])
        >>> a.can_touch("华三-1"), a.can_touch("华三-2")
        (True, False)
        >>> Actor.system().roles
        frozenset({'system'})
    """

    id: str
    roles: frozenset[str] = attrs.field(default=frozenset(), converter=_strings)
    grids: frozenset[str] = attrs.field(default=frozenset(), converter=_strings)

    @classmethod
    def system(cls) -> Actor:
        """The actor the timer acts as: role ``system``, every grid."""
        return _SYSTEM

    def can_touch(self, grid: str | None) -> bool:
        """True if a case in ``grid`` is within this actor's scope."""
        return not self.grids or grid in self.grids

    def to_json(self) -> dict[str, Any]:
        """The canonical JSON form (sorted lists), as stored and hashed."""
        return {"id": self.id, "roles": sorted(self.roles), "grids": sorted(self.grids)}


_SYSTEM = Actor("system", frozenset({"system"}), frozenset())


@attrs.frozen(slots=True)
class Case:
    """A frozen snapshot of one case.

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


@attrs.frozen(slots=True)
class Event:
    """One stored step of a case's history (append-only).

    ``source`` is ``None`` for the ``open`` event; ``dest`` is ``None`` for an
    internal transition (the state stays). ``hash`` is SHA-256 over the
    canonical JSON of every other field, ``prev_hash`` included, so any edit,
    deletion or reordering of stored history is detectable.

    Example:
        >>> from datetime import datetime, UTC
        >>> t = datetime(2026, 1, 5, tzinfo=UTC)
        >>> e = Event.create("c-1", 1, "open", None, "reported", Actor.system(), t, {}, None,
        ...                  GENESIS_HASH)
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

    @classmethod
    def create(
        cls, case_id: str, seq: int, trigger: str, source: str | None, dest: str | None,
        actor: Actor, at: datetime, payload: dict[str, Any], idempotency_key: str | None,
        prev_hash: str,
    ) -> Event:
        """Build an event and compute its hash."""
        digest = event_hash(
            case_id, seq, trigger, source, dest, actor, at, payload, idempotency_key, prev_hash
        )
        return cls(
            case_id, seq, trigger, source, dest, actor, at, payload, idempotency_key,
            prev_hash, digest,
        )

    def expected_hash(self) -> str:
        """Recompute the hash from the other fields (what `Engine.verify` checks)."""
        return event_hash(
            self.case_id, self.seq, self.trigger, self.source, self.dest, self.actor, self.at,
            self.payload, self.idempotency_key, self.prev_hash,
        )


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
        part = _dumps([actor.id, sorted(actor.roles), sorted(actor.grids)])[1:-1]
        if len(_actor_parts) >= 4096:  # bounded: actors are usually few, never unbounded
            _actor_parts.clear()
        _actor_parts[actor] = part
    return part


def _event_text(
    case_id: str, seq: int, trigger: str, source: str | None, dest: str | None,
    actor: Actor, at: datetime, payload: Mapping[str, Any], idempotency_key: str | None,
    prev_hash: str,
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
    return (
        f"[{q(case_id)},{seq},{q(trigger)},{'null' if source is None else q(source)},"
        f"{'null' if dest is None else q(dest)},{_actor_part(actor)},{when},"
        f"{_fast_dumps(payload)},{'null' if idempotency_key is None else q(idempotency_key)},"
        f"{q(prev_hash)}]"
    )


def event_hash(
    case_id: str, seq: int, trigger: str, source: str | None, dest: str | None,
    actor: Actor, at: datetime, payload: Mapping[str, Any], idempotency_key: str | None,
    prev_hash: str,
) -> str:
    """SHA-256 (hex) of an event's canonical JSON, chained to ``prev_hash``.

    The hashed text is the canonical JSON of the list ``[case_id, seq, trigger,
    source, dest, actor.id, sorted(actor.roles), sorted(actor.grids),
    at.isoformat(), payload, idempotency_key, prev_hash]``.

    Example:
        >>> from datetime import datetime, UTC
        >>> t = datetime(2026, 1, 5, tzinfo=UTC)
        >>> h = event_hash("c-1", 1, "open", None, "reported", Actor("r", ["resident"]), t,
        ...                {"title": "堆物"}, None, GENESIS_HASH)
        >>> h == _sha256(canonical_json(["c-1", 1, "open", None, "reported", "r", ["resident"],
        ...     [], t.isoformat(), {"title": "堆物"}, None, GENESIS_HASH]).encode()).hexdigest()
        True
    """
    # A fixed-order list is cheaper to encode than a dict with sort_keys and
    # is just as unambiguous; only the payload needs key sorting.
    try:
        text = _event_text(case_id, seq, trigger, source, dest, actor, at, payload,
                           idempotency_key, prev_hash)
    except TypeError:
        body = [
            case_id, seq, trigger, source, dest, actor.id, sorted(actor.roles),
            sorted(actor.grids), at.isoformat(), payload, idempotency_key, prev_hash,
        ]
        text = _dumps(body)
    digest: str = _sha256(text.encode()).hexdigest()
    return digest
