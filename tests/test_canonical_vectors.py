"""Canonical-hash vectors: the event hash is byte-identical to the documented form.

The documented form (`gridflow.model.event_text`) is the canonical JSON of one
list, hashed with SHA-256. gridflow writes it three ways: piecewise with the
standard library's encoder, by orjson where orjson is byte-identical (the
``fast`` extra: str, bool, None, 64-bit ints, lists, str-keyed dicts, UTC
datetimes), and the plain definition. Each vector's hash below was computed
from the plain definition; every path must give it. Floats, big integers and
non-UTC times must leave the orjson path.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridflow import core, model
from gridflow.model import GENESIS_HASH, Actor, Changes, event_bytes, event_hash, event_text

T = datetime(2026, 1, 5, 8, 30, 0, 123456, tzinfo=UTC)
ACTOR = Actor("sec-1", ["coordinator", "a"], ["华三-1"])

#: name -> (payload, data set by the step, orjson may write it)
VECTORS: dict[str, tuple[dict[str, Any], dict[str, Any], bool]] = {
    "plain": ({"text": "到场", "n": 3, "ok": True, "none": None}, {}, True),
    "floats": ({"score": 1.5, "big": 1e16, "small": 1e-7, "neg": -2.25, "int_like": 100.0},
               {"ratio": 0.1}, False),
    "unicode": ({"名称": "弄堂违规堆物", "emoji": "🚧", "ctrl": "a\x01\x1f\x7f\u2028\u2029b",
                 "quote": "\"\\/\n\r\t\b\f", "é": "ℌ"}, {"Ａ": "全角"}, True),
    "nested": ({"parties": [{"name": "甲", "tags": ["a", ["b", {"c": []}]]}, {}],
                "deep": {"x": {"y": {"z": [1, -9223372036854775808, 9223372036854775807]}}}},
               {"done": {"社区管理办": "已清理"}}, True),
    "big_int": ({"n": 2**70}, {}, False),
}

#: The SHA-256 of each vector's documented canonical text, at T in UTC and at +08:00.
EXPECTED = {
    "plain-utc": "6a53828682194ce1d433b1fe96b7929c39a71ed58f63d169da77b2d704319bb6",
    "plain-plus8": "ca3ad4b6e5ba6b960674274996844df286bd3728da442fbd37e44cfcaabb7cf4",
    "floats-utc": "9f417c1d702c5eb28408aaa542ad65e0bdb1feecd04d535f6bd504d649ff16c6",
    "floats-plus8": "1e7ba3f6ab6116d360b87bdb4ac39fcd451f632d127239ddb9cc08bdad9860a1",
    "unicode-utc": "cbb76d90622a1b60524bbce2be45f47746f26334a31d54fb603f91557dbea326",
    "unicode-plus8": "5b96d4c10505df19ac7e4d8c3b55f2ef745050b60f48055a4de155e5616cdbd6",
    "nested-utc": "5565005fac790172a57daade7a5b3359732a11a8e2e9eb6148a2ac5c53f68571",
    "nested-plus8": "8172097b051a211f5be6a92baab66180d96f86fe5518a369d9f64acc715db079",
    "big_int-utc": "513d42092fd69cb7c4e30f0cb50703f682aa7dceb3c2ffa75e14e2537f35a357",
    "big_int-plus8": "f21ae0341adfa00d961bb3653d795b594f5bc2069f5c56ed6284c2e82c128077",
}

PLUS8 = timezone(timedelta(hours=8))


def _args(name: str, tz: str) -> tuple[Any, ...]:
    payload, data, _ = VECTORS[name]
    at = T if tz == "utc" else T.astimezone(PLUS8)
    changes = Changes(data, ("gone",), at + timedelta(days=1), ("c-2",), 2)
    return ("c-1", 7, "note", "triaged", None, ACTOR, at, payload, "k-1", GENESIS_HASH, changes)


def _documented(args: tuple[Any, ...]) -> bytes:
    """The canonical text written the plain way (the documented definition)."""
    (case_id, seq, trigger, source, dest, actor, at, payload, key, prev, changes) = args
    body = [case_id, seq, trigger, source, dest, actor.id, sorted(actor.roles),
            sorted(actor.grids), at.isoformat(), payload, key, prev,
            {"deadline_at": changes.deadline_at.astimezone(UTC).isoformat(),
             "links": list(changes.links), "set": dict(changes.set),
             "unset": list(changes.unset), "workflow_version": changes.workflow_version}]
    return json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":"),
                      allow_nan=False).encode()


@pytest.mark.parametrize("vector", sorted(EXPECTED))
def test_every_path_gives_the_documented_hash(vector: str) -> None:
    name, tz = vector.rsplit("-", 1)
    args = _args(name, tz)
    want = EXPECTED[vector]
    assert model._sha256(_documented(args)).hexdigest() == want
    assert event_bytes(*args) == _documented(args)
    assert event_text(*args).encode() == _documented(args)
    assert event_hash(*args) == want
    assert core._hashed(*args).hash == want


@pytest.mark.parametrize("vector", sorted(EXPECTED))
def test_orjson_writes_only_what_it_writes_exactly(vector: str) -> None:
    pytest.importorskip("orjson")
    name, tz = vector.rsplit("-", 1)
    fast = model._fast_bytes(*_args(name, tz))
    exact_kind = VECTORS[name][2]
    if exact_kind:
        # Non-UTC times are written as their isoformat text: still the fast path.
        assert fast == _documented(_args(name, tz))
    else:
        assert fast is None  # floats and big integers take the exact path


def test_without_orjson_the_exact_path_gives_the_same_hash() -> None:
    saved = model._orjson
    model._orjson = None
    try:
        for vector, want in EXPECTED.items():
            name, tz = vector.rsplit("-", 1)
            assert model._fast_bytes(*_args(name, tz)) is None
            assert event_hash(*_args(name, tz)) == want
    finally:
        model._orjson = saved


texts = st.text(st.characters(codec="utf-8"), max_size=8) | st.sampled_from(
    ["\x00", "\x1f\x7f", "\u2028", "\"\\", "\ud800", "名", "🚧"])
ints = st.integers(-(2**63), 2**64 - 1) | st.integers()
values = st.recursive(
    st.none() | st.booleans() | ints | texts | st.floats(allow_nan=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=16)
moments = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9998, 12, 31),
                       timezones=st.sampled_from([UTC, PLUS8, timezone(timedelta(0), "Z0"),
                                                  timezone(timedelta(hours=-5, minutes=-30))]))


@settings(max_examples=500, deadline=None)
@given(payload=st.dictionaries(texts, values, max_size=5),
       data=st.dictionaries(texts, values, max_size=4), at=moments,
       deadline=st.none() | moments, links=st.lists(texts, max_size=3),
       workflow=st.none() | texts, seq=ints)
def test_orjson_path_is_byte_identical_when_taken(
    payload: dict[str, Any], data: dict[str, Any], at: datetime, deadline: datetime | None,
    links: list[str], workflow: str | None, seq: int,
) -> None:
    changes = Changes(data, ("u",), deadline, tuple(links), 3, workflow,
                      None if workflow is None else "g")
    args = ("c-1", seq, "t", None, "s", ACTOR, at, payload, None, GENESIS_HASH, changes)
    fast = model._fast_bytes(*args)
    try:
        exact = event_text(*args).encode()
    except (TypeError, ValueError):
        assert fast is None  # nothing the exact path refuses is written by orjson
        return
    if fast is not None:
        assert fast == exact
