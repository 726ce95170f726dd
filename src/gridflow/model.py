"""The runtime records: who acts (`Actor`), what is stored (`Case`, `Event`).

All three are frozen attrs classes. ``Case.data`` and ``Event.payload`` are
plain JSON-able dicts; treat them as read-only (gridflow hands out the stored
objects of a `MemoryStore` without copying, for speed).
"""

from __future__ import annotations

import hashlib
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


_dumps = json.JSONEncoder(
    ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
).encode
_sha256 = hashlib.sha256


def canonical_json(value: Any) -> str:
    """The one JSON form that is hashed: sorted keys, no spaces, UTF-8 text, no NaN.

    Example:
        >>> canonical_json({"b": 1, "a": [True, None]})
        '{"a":[true,null],"b":1}'
    """
    return _dumps(value)


def event_hash(
    case_id: str, seq: int, trigger: str, source: str | None, dest: str | None,
    actor: Actor, at: datetime, payload: Mapping[str, Any], idempotency_key: str | None,
    prev_hash: str,
) -> str:
    """SHA-256 (hex) of an event's canonical JSON, chained to ``prev_hash``."""
    # A fixed-order list is cheaper to encode than a dict with sort_keys and
    # is just as unambiguous; only the payload needs key sorting.
    body = [
        case_id, seq, trigger, source, dest, actor.id, sorted(actor.roles), sorted(actor.grids),
        at.isoformat(), payload, idempotency_key, prev_hash,
    ]
    return _sha256(_dumps(body).encode()).hexdigest()
