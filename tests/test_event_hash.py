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

from gridflow.model import GENESIS_HASH, Actor, canonical_json, event_hash


def reference_hash(
    case_id: Any, seq: Any, trigger: str, source: str | None, dest: str | None, actor: Actor,
    at: datetime, payload: Any, key: str | None, prev: str,
) -> str:
    body = [case_id, seq, trigger, source, dest, actor.id, sorted(actor.roles),
            sorted(actor.grids), at.isoformat(), payload, key, prev]
    text = json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":"),
                      allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


names = st.text(min_size=0, max_size=12)
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
    actor=st.builds(Actor, names, st.frozensets(names, max_size=3),
                    st.frozensets(names, max_size=3)),
    at=moments, payload=st.dictionaries(names, json_values, max_size=5),
    key=st.none() | names,
)
def test_fast_hash_equals_the_definition(
    case_id: str, seq: int, trigger: str, source: str | None, dest: str | None, actor: Actor,
    at: datetime, payload: dict[str, Any], key: str | None,
) -> None:
    expected = reference_hash(case_id, seq, trigger, source, dest, actor, at, payload, key,
                              GENESIS_HASH)
    assert event_hash(case_id, seq, trigger, source, dest, actor, at, payload, key,
                      GENESIS_HASH) == expected
    # Twice: the second call goes through the actor and timestamp caches.
    assert event_hash(case_id, seq, trigger, source, dest, actor, at, payload, key,
                      GENESIS_HASH) == expected


def test_unusual_field_types_still_hash_like_the_definition() -> None:
    at = datetime(2026, 1, 5, tzinfo=UTC)
    actor = Actor("a", ["resident"])
    # A bool seq and a non-str case id take the plain path, with the same result.
    for case_id, seq in (("c", True), (7, 2)):
        assert event_hash(case_id, seq, "t", None, "s", actor, at, {}, None,  # type: ignore[arg-type]
                          GENESIS_HASH) == reference_hash(case_id, seq, "t", None, "s", actor,
                                                          at, {}, None, GENESIS_HASH)


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
