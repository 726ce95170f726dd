"""The stored reference format: strict recognition, fakes refused, reads mapped."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridflow import InvalidPayload
from gridflow.personal import (
    REF_KEY,
    Reference,
    is_reference,
    lookalikes,
    make_reference,
    map_references,
    new_ref_id,
    parse_reference,
    references,
    refuse_lookalikes,
)

GOOD = {"$pii": "0123456789abcdef" * 2, "kind": "phone", "c": "ab" * 32}


def test_a_good_reference() -> None:
    assert is_reference(GOOD)
    ref = parse_reference(GOOD)
    assert ref == Reference(GOOD["$pii"], "phone", GOOD["c"])
    assert ref.to_json() == GOOD
    assert make_reference(GOOD["$pii"], "phone", GOOD["c"]) == GOOD
    assert len(new_ref_id()) == 32 and is_reference({**GOOD, REF_KEY: new_ref_id()})


@pytest.mark.parametrize("fake", [
    {**GOOD, "v": "13812345678"},                        # an extra key carrying plaintext
    {k: v for k, v in GOOD.items() if k != "c"},          # missing commitment
    {**GOOD, "$pii": "0123456789ABCDEF" * 2},             # upper-case id
    {**GOOD, "$pii": "xyz"},
    {**GOOD, "$pii": 123},
    {**GOOD, "kind": "mobile"},
    {**GOOD, "kind": None},
    {**GOOD, "c": "ab" * 31},
    {**GOOD, "c": "AB" * 32},
    {**GOOD, "c": "13812345678"},
    {"＄ｐｉｉ": GOOD["$pii"], "kind": "phone", "c": GOOD["c"]},
    "13812345678",
    [GOOD],
    None,
])
def test_lookalikes_are_not_references(fake: Any) -> None:
    assert not is_reference(fake)
    with pytest.raises(InvalidPayload, match="is not a personal-value reference"):
        parse_reference(fake, "reporter.phone")


def test_make_reference_checks() -> None:
    with pytest.raises(InvalidPayload):
        make_reference("short", "phone", GOOD["c"])


@pytest.mark.parametrize("data, paths", [
    ({"reporter": {"phone": GOOD}}, ["reporter.phone"]),
    ({"reporter": {"phone": {**GOOD, "v": "x"}}}, ["reporter.phone"]),
    ({"notes": [{"text": "ok"}, {"$PII": "1"}]}, ["notes[1]"]),
    ({"notes": [{"＄ｐｉｉ": "1"}]}, ["notes[0]"]),
    ({"x": {" $pii ": 1}}, ["x"]),
    ({"x": {"$pii2": 1}}, ["x"]),
    ({"$pii": "x", "a": {"b": {"$pii": "y"}}}, ["", "a.b"]),
    ({"note": "$pii 写在文字里不算"}, []),
    ({"note": ["$pii"]}, []),
    ({"parties": [{"name": "甲"}]}, []),
])
def test_lookalikes_finds_every_reference_like_object(data: dict[str, Any],
                                                      paths: list[str]) -> None:
    assert lookalikes(data) == paths


def test_refuse_lookalikes_names_where_and_says_what_to_do() -> None:
    with pytest.raises(InvalidPayload) as info:
        refuse_lookalikes({"reporter": {"name": dict(GOOD)}}, where="payload of 'note'",
                          case_id="c-1", trigger="note")
    message = str(info.value)
    assert "'reporter.name'" in message and "send the plain value" in message
    assert GOOD["$pii"] not in message and GOOD["c"] not in message
    assert info.value.case_id == "c-1" and info.value.trigger == "note"
    with pytest.raises(InvalidPayload, match="the data itself"):
        refuse_lookalikes(dict(GOOD), where="data")
    refuse_lookalikes({"reporter": {"name": "王小明", "subject": "p-1"}})


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.recursive(
    st.one_of(st.text("abc王 ", max_size=4), st.integers(), st.none(), st.just(GOOD)),
    lambda c: st.one_of(
        st.lists(c, max_size=3),
        st.dictionaries(st.sampled_from(["$pii", "kind", "c", "name", "＄PII", "x"]), c,
                        max_size=4)),
    max_leaves=10))
def test_caller_input_with_any_pii_key_is_refused(data: Any) -> None:
    found = lookalikes(data)
    has_marker = "$pii" in repr(data) or "＄PII" in repr(data)
    if has_marker:
        assert found
        with pytest.raises(InvalidPayload):
            refuse_lookalikes(data)
    else:
        assert found == []
        refuse_lookalikes(data)


def test_references_and_map_references() -> None:
    other = {**GOOD, "$pii": "f" * 32, "kind": "name"}
    event: dict[str, Any] = {"data": {"reporter": {"subject": "p-1", "phone": GOOD, "name": other},
                      "summary": "s", "tags": ["a", {"b": 1}]}, "grid": "华三-1"}
    assert [(p, r.kind) for p, r in references(event)] == [
        ("data.reporter.phone", "phone"), ("data.reporter.name", "name")]
    shown = map_references(event, lambda path, ref: f"<{ref.kind} at {path}>")
    assert shown["data"]["reporter"] == {"subject": "p-1",
                                         "phone": "<phone at data.reporter.phone>",
                                         "name": "<name at data.reporter.name>"}
    assert event["data"]["reporter"]["phone"] == GOOD  # the input is not touched
    assert shown["data"]["tags"] is event["data"]["tags"]  # untouched subtrees are shared
    assert map_references({"a": [1, 2]}, lambda p, r: None) == {"a": [1, 2]}
    assert map_references(GOOD, lambda p, r: repr(p)) == "''"


def test_map_references_leaves_lookalikes_alone() -> None:
    fake = {**GOOD, "v": "13812345678"}
    assert map_references({"x": fake}, lambda p, r: "MAPPED") == {"x": fake}
