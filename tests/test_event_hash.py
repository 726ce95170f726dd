"""The fast event hash gives exactly the bytes of the plain definition.

`gridflow.model.event_hash` assembles the hashed text piecewise (for speed);
stored hash chains must not change, so it is checked here against the
definition written the slow, obvious way.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridflow.model import ALL_GRIDS, GENESIS_HASH, Actor, Changes, canonical_json, event_hash


def reference_hash(
    case_id: Any, seq: Any, trigger: str, source: str | None, dest: str | None, actor: Actor,
    at: datetime, payload: Any, key: str | None, prev: str, changes: Changes | None = None,
) -> str:
    grids: Any = "*" if actor.grids is ALL_GRIDS else sorted(actor.grids)
    body = [case_id, seq, trigger, source, dest, actor.id, sorted(actor.roles),
            grids, at.isoformat(), payload, key, prev]
    if changes is not None:
        body.append({
            "deadline_at": None if changes.deadline_at is None
            else changes.deadline_at.astimezone(UTC).isoformat(),
            "links": list(changes.links), "set": dict(changes.set),
            "unset": list(changes.unset), "workflow_version": changes.workflow_version,
            **({} if changes.workflow is None else {"workflow": changes.workflow,
                                                     "grid": changes.grid}),
        })
    text = json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":"),
                      allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


names = st.text(min_size=0, max_size=12)
#: What Actor accepts: non-empty, no whitespace, no control characters.
actor_names = st.text(st.characters(categories=("L", "N", "P", "S")), min_size=1, max_size=8)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | names
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(names, inner, max_size=4),
    max_leaves=12,
)
moments = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=8))]),
)


@settings(max_examples=300, deadline=None)
@given(
    case_id=names, seq=st.integers(min_value=1, max_value=10**12), trigger=names,
    source=st.none() | names, dest=st.none() | names,
    actor=st.builds(Actor, actor_names, st.frozensets(actor_names, max_size=3),
                    st.just(ALL_GRIDS) | st.frozensets(actor_names.filter(lambda g: g != "*"),
                                                       max_size=3)),
    at=moments, payload=st.dictionaries(names, json_values, max_size=5),
    key=st.none() | names,
    changes=st.none() | st.builds(
        Changes, st.dictionaries(names, json_values, max_size=4),
        st.lists(names, max_size=3).map(tuple), st.none() | moments,
        st.lists(names, max_size=3).map(tuple), st.integers(1, 10**6),
        st.none() | names, st.none() | names),
)
def test_fast_hash_equals_the_definition(
    case_id: str, seq: int, trigger: str, source: str | None, dest: str | None, actor: Actor,
    at: datetime, payload: dict[str, Any], key: str | None, changes: Changes | None,
) -> None:
    expected = reference_hash(case_id, seq, trigger, source, dest, actor, at, payload, key,
                              GENESIS_HASH, changes)
    assert event_hash(case_id, seq, trigger, source, dest, actor, at, payload, key,
                      GENESIS_HASH, changes) == expected
    # Twice: the second call goes through the actor and timestamp caches.
    assert event_hash(case_id, seq, trigger, source, dest, actor, at, payload, key,
                      GENESIS_HASH, changes) == expected


#: Pinned hashes of the documented canonical form: floats, unicode, nesting,
#: datetimes in other zones, an actor of every grid, a 0.1 event without changes.
#: A change of the hashed text would break every stored chain: it must fail here.
VECTORS = [
    (("c-1", 1, "open", None, "reported", Actor("网格员-1", ["grid_worker"], ["华三-1"]),
      datetime(2026, 1, 5, 9, 30, tzinfo=timezone(timedelta(hours=8))),
      {"data": {"title": "弄堂堆物 ☂", "n": 1.5, "big": 1e16, "tiny": 5e-324}, "grid": "华三-1",
       "links": []}, None, GENESIS_HASH,
      Changes({"title": "弄堂堆物 ☂"}, (), datetime(2026, 1, 6, 1, 30, tzinfo=UTC), (), 1,
              "grid_case", "华三-1")),
     "85231ba0d9874539f1340ffd030afae3dde7fb113a94ee48ac414050f89cc74d"),
    (("c-1", 2, "dispatch", "triaged", "joint_action", Actor.system(),
      datetime(2026, 1, 5, 2, 0, 0, 123456, tzinfo=UTC),
      {"departments": ["社区管理办", "清运单位"], "nested": {"b": [True, None, {"z": -1}]}},
      "key-1", "ab" * 32, Changes({"done": {}}, ("overdue_since",), None, ("c-2",), 3)),
     "9822659421c496ec14bbe2f37b2797b78c59160dca91282c76ffcee095f1d475"),
    (("c-0", 1, "open", None, "reported", Actor.stored("r", ["resident"], []),
      datetime(2025, 12, 31, 16, tzinfo=UTC), {"data": {}, "grid": None, "links": []}, None,
      GENESIS_HASH, None),
     "fa19bdff9e084e4fed49f4d6d1d3d641e7b19747132f4427a122aaf6a955c60a"),
]


@pytest.mark.parametrize("args, expected", VECTORS)
def test_hash_vectors(args: tuple[Any, ...], expected: str) -> None:
    assert reference_hash(*args) == expected
    assert event_hash(*args) == expected


def test_unusual_field_types_still_hash_like_the_definition() -> None:
    at = datetime(2026, 1, 5, tzinfo=UTC)
    actor = Actor("a", ["resident"], grids=ALL_GRIDS)
    # A bool seq and a non-str case id take the plain path, with the same result.
    for case_id, seq in (("c", True), (7, 2)):
        for changes in (None, Changes(), Changes(workflow_version=True)):  # type: ignore[arg-type]
            assert event_hash(case_id, seq, "t", None, "s", actor, at, {},  # type: ignore[arg-type]
                              None, GENESIS_HASH, changes) == reference_hash(
                case_id, seq, "t", None, "s", actor, at, {}, None, GENESIS_HASH, changes)


def test_canonical_json_refuses_what_json_refuses() -> None:
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    with pytest.raises(ValueError):
        canonical_json(cyclic)
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})
    with pytest.raises(TypeError):
        canonical_json({"x": object()})
    with pytest.raises(TypeError):
        canonical_json({1: "a", "b": 2})
    assert canonical_json("é") == '"é"'
