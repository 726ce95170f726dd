"""The runtime records: Actor, Case, Event, and the canonical JSON that is hashed."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridflow import ALL_GRIDS, Actor, Case, Event, InvalidArgument
from gridflow.model import GENESIS_HASH, canonical_json, event_hash

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
GRID = "第一综合网格"


# -- Actor ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "roles",
    [
        ["grid_worker", "volunteer"],
        ("grid_worker", "volunteer"),
        {"grid_worker", "volunteer"},
        frozenset({"grid_worker", "volunteer"}),
        (r for r in ["volunteer", "grid_worker"]),
        {"grid_worker": 1, "volunteer": 2}.keys(),
        iter(["volunteer", "grid_worker", "volunteer"]),
    ],
    ids=["list", "tuple", "set", "frozenset", "generator", "dict_keys", "iterator_with_dup"],
)
def test_actor_accepts_any_iterable_of_strings(roles: object) -> None:
    actor = Actor("网格员-王", roles, (g for g in [GRID]))  # type: ignore[arg-type]
    assert actor.roles == frozenset({"grid_worker", "volunteer"})
    assert actor.grids == frozenset({GRID})


def test_actor_single_string_is_one_name_not_letters() -> None:
    actor = Actor("书记-李", "coordinator", GRID)
    assert actor.roles == frozenset({"coordinator"})
    assert actor.grids == frozenset({GRID})


def test_actor_defaults_and_none_mean_no_roles_and_no_grid() -> None:
    # 0.2: scope fails closed. No grids is no case at all; ALL_GRIDS is explicit.
    actor = Actor("街道-赵", None, None)  # type: ignore[arg-type]
    assert actor.roles == frozenset()
    assert actor.grids == frozenset()
    assert not actor.can_touch(GRID) and not actor.can_touch(None)
    street = Actor("街道-赵", grids=ALL_GRIDS)
    assert street.roles == frozenset()
    assert street.can_touch(GRID) and street.can_touch("第二综合网格") and street.can_touch(None)


@pytest.mark.parametrize("bad", [[1], ["coordinator", None], [b"coordinator"]])
def test_actor_refuses_non_string_names(bad: list[object]) -> None:
    with pytest.raises(InvalidArgument, match="must be a string"):
        Actor("x", bad, grids=ALL_GRIDS)  # type: ignore[arg-type]


def test_actor_equality_ignores_order_and_is_hashable() -> None:
    a = Actor("v", ["volunteer", "resident"], [GRID])
    b = Actor("v", ("resident", "volunteer"), {GRID})
    assert a == b
    assert hash(a) == hash(b)
    assert {a, b} == {a}


def test_actor_scope_and_json_form() -> None:
    worker = Actor("w", ["grid_worker"], [GRID])
    assert worker.can_touch(GRID)
    assert not worker.can_touch("第二综合网格")
    # A scoped actor does not reach cases without a grid either.
    assert not worker.can_touch(None)
    assert Actor("c", ["b", "a"], ["z", "y"]).to_json() == {
        "id": "c", "roles": ["a", "b"], "grids": ["y", "z"],
    }


def test_system_actor_is_the_timer_everywhere() -> None:
    system = Actor.system()
    assert system is Actor.system()
    assert system.roles == frozenset({"system"})
    assert system.grids is ALL_GRIDS


def test_actor_is_frozen() -> None:
    actor = Actor("w", ["grid_worker"], grids=ALL_GRIDS)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        actor.roles = frozenset({"coordinator"})  # type: ignore[misc]


# -- canonical JSON ------------------------------------------------------------------


def test_canonical_json_is_sorted_compact_and_keeps_chinese() -> None:
    assert canonical_json({"b": 1, "a": {"d": [1, 2], "c": None}}) == (
        '{"a":{"c":null,"d":[1,2]},"b":1}'
    )
    assert canonical_json({"title": "违规堆物"}) == '{"title":"违规堆物"}'


@pytest.mark.parametrize("bad", [math.nan, math.inf, object(), b"bytes", {1j: 1}])
def test_canonical_json_refuses_what_json_cannot_hold(bad: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        canonical_json({"x": bad})


@given(st.dictionaries(st.text(), st.integers() | st.text() | st.booleans() | st.none()))
def test_canonical_json_does_not_depend_on_insertion_order(value: dict[str, object]) -> None:
    reversed_copy = dict(reversed(list(value.items())))
    assert canonical_json(value) == canonical_json(reversed_copy)


# -- Event ------------------------------------------------------------------------------


def _event(**changes: object) -> Event:
    fields: dict[str, object] = {
        "case_id": "c-1", "seq": 2, "trigger": "triage", "source": "reported",
        "dest": "triaged", "actor": Actor("书记-李", ["coordinator"], [GRID]), "at": T0,
        "payload": {"category": "违规堆物", "priority": "normal"}, "idempotency_key": None,
        "prev_hash": "a" * 64,
    }
    fields.update(changes)
    return Event.create(**fields)  # type: ignore[arg-type]


def test_event_hash_is_sha256_hex_and_deterministic() -> None:
    a, b = _event(), _event()
    assert a == b
    assert len(a.hash) == 64
    assert int(a.hash, 16) >= 0
    assert a.hash == a.expected_hash()
    # Key order in the payload does not matter: the payload is hashed canonically.
    assert _event(payload={"priority": "normal", "category": "违规堆物"}).hash == a.hash


@pytest.mark.parametrize(
    "change",
    [
        {"case_id": "c-2"},
        {"seq": 3},
        {"trigger": "reject"},
        {"source": "triaged"},
        {"dest": None},
        {"actor": Actor("书记-李", ["coordinator", "street"], [GRID])},
        {"actor": Actor("书记-王", ["coordinator"], [GRID])},
        {"actor": Actor("书记-李", ["coordinator"], ["第二综合网格"])},
        {"at": T0 + timedelta(seconds=1)},
        {"payload": {"category": "违规堆物", "priority": "urgent"}},
        {"idempotency_key": "k-1"},
        {"prev_hash": "b" * 64},
    ],
    ids=lambda c: next(iter(c)),
)
def test_event_hash_covers_every_field(change: dict[str, object]) -> None:
    assert _event(**change).hash != _event().hash


def test_editing_an_event_is_detectable() -> None:
    event = _event()
    edited = attrs.evolve(event, payload={"category": "违规堆物", "priority": "low"})
    assert edited.hash == event.hash  # the stored hash is not recomputed by an edit
    assert edited.expected_hash() != edited.hash


def test_event_hash_function_matches_create() -> None:
    e = _event()
    assert e.hash == event_hash(
        e.case_id, e.seq, e.trigger, e.source, e.dest, e.actor, e.at, e.payload,
        e.idempotency_key, e.prev_hash,
    )


def test_event_create_refuses_a_payload_json_cannot_hold() -> None:
    with pytest.raises((TypeError, ValueError)):
        _event(payload={"when": T0})


# -- Case -----------------------------------------------------------------------------


def test_case_defaults() -> None:
    case = Case("c-1", "grid_case", 1, "reported", 1, {"title": "堆物"}, GRID, T0, T0)
    assert case.links == ()
    assert case.deadline_at is None
    assert case.head == GENESIS_HASH == "0" * 64
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        case.state = "triaged"  # type: ignore[misc]
