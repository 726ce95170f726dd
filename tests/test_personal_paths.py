"""Declared personal paths and fields: parsing, find, replace, data subjects."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridflow import InvalidPayload, SpecError
from gridflow.personal import (
    KINDS,
    PersonalField,
    case_subject,
    check_subject_id,
    concrete_steps,
    field_problems,
    fields_problems,
    find,
    parse_path,
    pattern_of,
    replace,
    subject_of,
)
from gridflow.personal.paths import format_steps, path_problems

MEDIATION: dict[str, Any] = {
    "summary": "烫伤纠纷",
    "parties": [
        {"subject": "p-3", "name": "谢女士", "id_number": "310104199001011234",
         "side": "applicant"},
        {"name": "某浴室", "side": "respondent", "kind": "organisation"},
        {"subject": "p-9", "name": "陈先生", "side": "respondent"},
    ],
    "reporter": {"subject": "p-17", "name": "王小明", "phone": "13812345678"},
    "contact": "021-62341234",
}


# -- parsing --------------------------------------------------------------------------------


@pytest.mark.parametrize("text, steps", [
    ("contact", ("contact",)),
    ("reporter.name", ("reporter", "name")),
    ("parties[].id_number", ("parties", None, "id_number")),
    ("visits[].notes[]", ("visits", None, "notes", None)),
    ("matrix[][]", ("matrix", None, None)),
    ("报告人.姓名", ("报告人", "姓名")),
])
def test_valid_paths_parse(text: str, steps: tuple[str | None, ...]) -> None:
    assert parse_path(text) == steps
    assert path_problems(text) == []


@pytest.mark.parametrize("text, what", [
    ("", "the path is empty"),
    ("reporter..name", "empty segment"),
    (".name", "empty segment"),
    ("reporter.", "empty segment"),
    ("parties[0].name", "names one list element"),
    ("[].name", "has no key before []"),
    ("parties[.name", "is not a key"),
    ("a-b.c", "is not a key"),
    ("1st.name", "is not a key"),
    ("a[]b", "is not a key"),
    ("a b", "is not a key"),
])
def test_bad_paths_are_refused_with_a_spec_error(text: str, what: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_path(text)
    assert any(what in p.what for p in info.value.problems)
    assert "[]" in str(info.value)  # says what is allowed


def test_every_problem_of_a_path_is_reported() -> None:
    problems = path_problems("a..b[0].1c")
    assert len(problems) == 3


def test_non_string_path() -> None:
    assert "must be a string" in path_problems(3)[0].what


@pytest.mark.parametrize("text, steps", [
    ("parties[2].name", ("parties", 2, "name")),
    ("contact", ("contact",)),
    ('notes["客户 电话"][0]', ("notes", "客户 电话", 0)),
    ("m[0][10]", ("m", 0, 10)),
])
def test_concrete_paths_round_trip(text: str, steps: tuple[str | int, ...]) -> None:
    assert concrete_steps(text) == steps
    assert format_steps(steps) == text


@pytest.mark.parametrize("text", ["", "parties[]", "parties[01]", ".a", "a..b", "a[x]", "[0]a"])
def test_bad_concrete_paths(text: str) -> None:
    with pytest.raises(InvalidPayload):
        concrete_steps(text)


def test_pattern_of() -> None:
    assert pattern_of("parties[12].name") == "parties[].name"
    assert pattern_of("visits[0].notes[3]") == "visits[].notes[]"


# -- find -----------------------------------------------------------------------------------


def test_find_in_objects_and_lists() -> None:
    assert list(find(MEDIATION, "reporter.phone")) == [("reporter.phone", "13812345678")]
    assert list(find(MEDIATION, "parties[].name")) == [
        ("parties[0].name", "谢女士"), ("parties[1].name", "某浴室"), ("parties[2].name", "陈先生")]
    assert list(find(MEDIATION, "parties[].id_number")) == [
        ("parties[0].id_number", "310104199001011234")]
    assert list(find(MEDIATION, "contact")) == [("contact", "021-62341234")]


def test_find_skips_absent_and_none() -> None:
    assert list(find(MEDIATION, "witness.name")) == []
    assert list(find({"reporter": None}, "reporter.name")) == []
    assert list(find({"reporter": {"name": None}}, "reporter.name")) == []
    assert list(find({"parties": None}, "parties[].name")) == []
    assert list(find({"parties": [None, {"name": "甲"}]}, "parties[].name")) == [
        ("parties[1].name", "甲")]


def test_find_nested_lists() -> None:
    data = {"visits": [{"notes": ["a", "b"]}, {"notes": []}, {"notes": ["c"]}]}
    assert list(find(data, "visits[].notes[]")) == [
        ("visits[0].notes[0]", "a"), ("visits[0].notes[1]", "b"), ("visits[2].notes[0]", "c")]


def test_find_yields_whole_objects_at_a_leaf() -> None:
    data = {"contact": {"phone": "13812345678", "wechat": "wx-1"}}
    assert list(find(data, "contact")) == [("contact", data["contact"])]


@pytest.mark.parametrize("data, path, where", [
    ({"reporter": "王小明"}, "reporter.name", "'reporter' must be an object"),
    ({"parties": {"name": "甲"}}, "parties[].name", "'parties' must be a list"),
    ({"parties": ["谢女士"]}, "parties[].name", "'parties[0]' must be an object"),
    ({"parties": "谢女士, 陈先生"}, "parties[].name", "'parties' must be a list"),
])
def test_find_refuses_a_shape_that_would_hide_a_value(data: dict[str, Any], path: str,
                                                      where: str) -> None:
    with pytest.raises(InvalidPayload) as info:
        list(find(data, path))
    message = str(info.value)
    assert where in message
    assert "谢女士" not in message and "王小明" not in message and "甲" not in message


def test_find_accepts_parsed_steps() -> None:
    assert list(find(MEDIATION, parse_path("reporter.name"))) == [("reporter.name", "王小明")]


# -- replace --------------------------------------------------------------------------------


def test_replace_returns_a_new_dict_and_leaves_the_input_alone() -> None:
    before = copy.deepcopy(MEDIATION)
    new = replace(MEDIATION, {"parties[2].name": "陈**", "reporter.phone": "138****5678",
                              "contact": "x"})
    assert before == MEDIATION
    assert new["parties"][2]["name"] == "陈**"
    assert new["reporter"]["phone"] == "138****5678"
    assert new["contact"] == "x"
    assert new["parties"][0] == MEDIATION["parties"][0]
    assert new["parties"] is not MEDIATION["parties"]


def test_replace_copies_a_container_once_for_several_paths() -> None:
    new = replace(MEDIATION, {"parties[0].name": "A", "parties[0].id_number": "B",
                              "parties[2].name": "C"})
    assert [p["name"] for p in new["parties"]] == ["A", "某浴室", "C"]
    assert new["parties"][0]["id_number"] == "B"
    assert MEDIATION["parties"][0]["name"] == "谢女士"


@pytest.mark.parametrize("path", ["witness.name", "parties[3].name", "reporter.name.first",
                                  "summary[0]"])
def test_replace_refuses_paths_not_in_the_data(path: str) -> None:
    with pytest.raises(InvalidPayload):
        replace(MEDIATION, {path: "x"})


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5))
json_values = st.recursive(
    json_leaf,
    lambda children: st.one_of(st.lists(children, max_size=3),
                               st.dictionaries(st.sampled_from(["name", "phone", "x", "parties"]),
                                               children, max_size=3)),
    max_leaves=12)
documents = st.dictionaries(st.sampled_from(["parties", "reporter", "contact", "name"]),
                            json_values, max_size=4)


# The first st.text draw of a fresh process builds Hypothesis's Unicode tables.
@settings(suppress_health_check=[HealthCheck.too_slow])
@given(documents, st.sampled_from(["parties[].name", "reporter.phone", "contact",
                                   "parties[].x[]", "name"]))
def test_find_then_replace_touches_exactly_the_found_values(data: dict[str, Any],
                                                            path: str) -> None:
    before = copy.deepcopy(data)
    try:
        found = list(find(data, path))
    except InvalidPayload:
        return  # a shape the path cannot go through: refused, nothing to replace
    new = replace(data, {p: ["replaced", p] for p, _ in found})
    assert data == before
    assert list(find(new, path)) == [(p, ["replaced", p]) for p, _ in found]
    # Everything else is as it was: undo the replacement and compare.
    assert replace(new, dict(found)) == data


# -- fields and subjects --------------------------------------------------------------------


def test_personal_field_is_frozen_and_validated() -> None:
    field = PersonalField("parties[].name", "name")
    assert field.steps() == ("parties", None, "name")
    with pytest.raises(AttributeError):
        field.kind = "phone"  # type: ignore[misc]
    for kind in KINDS:
        assert PersonalField("x", kind).kind == kind


def test_bad_declarations_list_every_problem() -> None:
    with pytest.raises(SpecError) as info:
        PersonalField("parties[0].name", "mobile", subject="a..b")
    whats = [p.what for p in info.value.problems]
    assert len(whats) == 3
    assert any("kind 'mobile'" in w for w in whats)
    assert "name, phone, id_number" in str(info.value)


def test_the_subject_key_itself_is_not_a_personal_field() -> None:
    assert "subject id itself" in field_problems("reporter.subject", "other")[0].what


def test_a_subject_path_only_goes_through_the_values_own_lists() -> None:
    assert field_problems("parties[].name", "name", "parties[].pid") == []
    assert field_problems("contact", "phone", "reporter.subject") == []
    problems = field_problems("contact", "phone", "parties[].subject")
    assert "goes through a list" in problems[0].what
    assert field_problems("a[].b[].c", "name", "a[].sid") == []
    assert field_problems("a[].c", "name", "b[].sid") != []


def test_fields_problems_finds_duplicates_and_nesting() -> None:
    fields = [PersonalField("reporter.name", "name"), PersonalField("reporter.name", "other"),
              PersonalField("parties[].name", "name"), PersonalField("parties", "free_text"),
              PersonalField("contact", "phone")]
    whats = [p.what for p in fields_problems(fields, "data")]
    assert "personal field 'reporter.name' is declared twice" in whats
    assert "'parties[].name' lies inside 'parties', which is personal as a whole" in whats
    assert len(whats) == 2


def test_subject_beside_the_value() -> None:
    assert subject_of(MEDIATION, "reporter.name") == "p-17"
    assert subject_of(MEDIATION, "parties[0].id_number") == "p-3"
    assert subject_of(MEDIATION, "parties[1].name") is None
    assert subject_of(MEDIATION, "parties[2].name") == "p-9"
    assert subject_of(MEDIATION, "contact") is None
    assert subject_of({"subject": "p-1", "contact": "x"}, "contact") == "p-1"


def test_subject_of_a_list_element_is_the_nearest_object() -> None:
    data = {"reporter": {"subject": "p-17", "phones": ["1", "2"]}}
    assert subject_of(data, "reporter.phones[1]") == "p-17"


def test_subject_from_a_declared_subject_path() -> None:
    field = PersonalField("contact", "phone", subject="reporter.subject")
    assert subject_of(MEDIATION, "contact", field) == "p-17"
    field = PersonalField("parties[].name", "name", subject="parties[].pid")
    data = {"parties": [{"pid": "p-1", "name": "甲"}, {"name": "乙"}]}
    assert subject_of(data, "parties[0].name", field) == "p-1"
    assert subject_of(data, "parties[1].name", field) is None


@pytest.mark.parametrize("bad", ["", "王 小明", "case:c-9", "a\nb", 17, ["p-1"], "x" * 129])
def test_malformed_subject_ids_are_refused_without_echoing_them(bad: object) -> None:
    with pytest.raises(InvalidPayload) as info:
        subject_of({"reporter": {"subject": bad, "name": "x"}}, "reporter.name")
    assert "'reporter.subject' must be a subject id" in str(info.value)
    if isinstance(bad, str) and bad:
        assert bad not in str(info.value)


def test_subject_ids_and_the_case_subject() -> None:
    assert check_subject_id("p-17", "x") == "p-17"
    assert check_subject_id("居民-0017", "x") == "居民-0017"
    assert case_subject("c-1") == "case:c-1"
    with pytest.raises(InvalidPayload):
        check_subject_id(case_subject("c-1"), "x")
