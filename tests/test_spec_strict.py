"""Specs are built strictly from data: no coercion, durations in ISO 8601 or short
form, spec-declared roles, a breach trigger the timer may fire, shape and semantic
problems reported together, capped messages, and "*" sources checked in linear time.

Where a bound of time is asserted it is generous (gridflow 0.1 took 10 s and 839 MB
for 1,000 states with 1,000 "*" transitions, and printed 692 MB of errors for a spec
with 10,000 bad transitions).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import gridflow
from gridflow import Actor, Engine, FixedClock, SpecError, StateSpec, TransitionSpec, WorkflowSpec
from gridflow.cli import main
from gridflow.machine import compile_workflow


def ticket(**changes: Any) -> dict[str, Any]:
    """A small valid spec as plain data; ``changes`` replace top-level keys."""
    data: dict[str, Any] = {
        "name": "ticket",
        "version": 1,
        "initial": "open",
        "states": [
            {"name": "open", "deadline": "P2D", "on_breach": "expire"},
            {"name": "done", "terminal": True},
            {"name": "expired", "terminal": True},
        ],
        "transitions": [
            {"trigger": "finish", "source": "open", "dest": "done", "roles": ["coordinator"],
             "requires": ["result"], "choices": {"quality": ["good", "poor"]}},
            {"trigger": "expire", "source": "open", "dest": "expired", "roles": ["system"]},
            {"trigger": "note", "source": "*", "dest": None},
        ],
        "open_roles": ["resident"],
    }
    data.update(changes)
    return data


def state(i: int, **fields: Any) -> list[dict[str, Any]]:
    states = [dict(s) for s in ticket()["states"]]
    states[i].update(fields)
    return states


def transition(i: int, **fields: Any) -> list[dict[str, Any]]:
    transitions = [dict(t) for t in ticket()["transitions"]]
    transitions[i].update(fields)
    return transitions


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(SpecError) as info:
        WorkflowSpec.from_dict(data)
    return [str(p) for p in info.value.problems]


def test_the_base_spec_is_valid() -> None:
    assert WorkflowSpec.from_dict(ticket()).key == "ticket@1"


# -- 1. no coercion -----------------------------------------------------------------------


@pytest.mark.parametrize(("changes", "where", "hint"), [
    ({"transitions": transition(0, requires="reason")},
     "spec.transitions[0].requires", "write [reason]"),
    ({"transitions": transition(0, roles="coordinator")},
     "spec.transitions[0].roles", "write [coordinator]"),
    ({"transitions": transition(0, guards="ready")}, "spec.transitions[0].guards", "write [ready]"),
    ({"transitions": transition(0, choices={"quality": "good"})},
     "spec.transitions[0].choices['quality']", "write [good]"),
    ({"open_roles": "resident"}, "spec.open_roles", "write [resident]"),
    ({"states": state(1, tags="closed")}, "spec.states[1].tags", "write [closed]"),
])
def test_a_string_is_not_a_list(changes: dict[str, Any], where: str, hint: str) -> None:
    found = problems(ticket(**changes))
    assert any(p.startswith(f"{where}: expected a list of strings, got the string")
               and hint in p for p in found), found


@pytest.mark.parametrize(("changes", "where", "expected"), [
    ({"states": state(0, terminal="false")}, "spec.states[0].terminal",
     "expected true or false, got the string 'false'"),
    ({"states": state(1, terminal=1)}, "spec.states[1].terminal",
     "expected true or false, got the integer 1"),
    ({"version": 1.9}, "spec.version", "expected an integer, got the number 1.9"),
    ({"version": True}, "spec.version", "expected an integer, got the boolean true"),
    ({"version": "1"}, "spec.version", "expected an integer, got the string '1'"),
    ({"name": 7}, "spec.name", "expected a string, got the integer 7"),
    ({"states": state(0, label_en=False)}, "spec.states[0].label_en",
     "expected a string, got the boolean false"),
    ({"transitions": transition(0, source=["open", 3])}, "spec.transitions[0].source[1]",
     "expected a string, got the integer 3"),
    ({"labels": {"zh": ["工单"]}}, "spec.labels['zh']", "expected a string, got a list"),
    ({"open_choices": {1: ["a"]}}, "spec.open_choices", "expected string keys"),
])
def test_no_scalar_is_coerced(changes: dict[str, Any], where: str, expected: str) -> None:
    found = problems(ticket(**changes))
    assert any(p.startswith(f"{where}: {expected}") for p in found), found


def test_the_python_constructor_reads_a_bare_string_as_one_name() -> None:
    # The chosen leniency of the Python API (the data path refuses it).
    assert TransitionSpec("go", "a", "b", requires="reason").requires == ("reason",)


# -- 2. durations --------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("3d", timedelta(days=3)), ("2h", timedelta(hours=2)), ("90m", timedelta(minutes=90)),
    ("45s", timedelta(seconds=45)), ("1d12h", timedelta(days=1, hours=12)),
    ("P5D", timedelta(days=5)), ("PT4H30M", timedelta(hours=4, minutes=30)),
    ("P1W", timedelta(weeks=1)),
])
def test_durations_in_iso_and_short_form(text: str, expected: timedelta) -> None:
    spec = WorkflowSpec.from_dict(ticket(states=state(0, deadline=text)))
    assert spec.state("open").deadline == expected
    assert WorkflowSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize("value", ["3 days", "P1M", "P1Y", "3x", "", "PT", "d", True, [3]])
def test_a_bad_duration_says_what_it_got_and_shows_both_forms(value: Any) -> None:
    found = problems(ticket(states=state(0, deadline=value)))
    line = next(p for p in found if p.startswith("spec.states[0].deadline: expected a duration"))
    assert ", got the " in line or ", got a list" in line
    assert "'P3D'" in line and "'PT4H30M'" in line and "'3d'" in line and "'1d12h'" in line


def test_a_number_is_still_read_as_seconds() -> None:
    # gridflow 0.1 documented it; a fraction of a second cannot be stored.
    spec = WorkflowSpec.from_dict(ticket(states=state(0, deadline=3 * 86400)))
    assert spec.state("open").deadline == timedelta(days=3)
    assert any("not a whole number of seconds" in p
               for p in problems(ticket(states=state(0, deadline=2.5))))


@pytest.mark.parametrize(("value", "expected"), [
    ("P999999999D", "longer than the 3660 days a calendar counts"),
    ("P3661D", "longer than the 3660 days a calendar counts"),
    ("P99999999999D", "too long to count"),
    ("PT0.5S", "is not a whole number of seconds"),
])
def test_durations_must_be_countable(value: str, expected: str) -> None:
    found = problems(ticket(states=state(0, deadline=value)))
    assert any(expected in p for p in found), found


def test_the_longest_deadline_can_be_counted() -> None:
    spec = WorkflowSpec.from_dict(ticket(name="long", states=state(0, deadline="P3660D")))
    engine = Engine(clock=FixedClock(datetime(2026, 1, 5, tzinfo=UTC)), entry_points=False)
    engine.register_workflow(spec)
    case = engine.open("long", actor=Actor("r-1", ["resident"], ["g"]), grid="g")
    assert case.deadline_at == datetime(2026, 1, 5, tzinfo=UTC) + timedelta(days=3660)


# -- 3. roles declared by the spec ------------------------------------------------------------


ROLES = [{"name": "electrician", "label_zh": "电工", "label_en": "Electrician"}]


def test_a_spec_declares_its_own_roles() -> None:
    data = ticket(roles=ROLES, transitions=transition(0, roles=["electrician"]))
    spec = WorkflowSpec.from_dict(data)
    assert spec.roles == (gridflow.RoleSpec("electrician", "电工", "Electrician"),)
    assert spec.roles[0].label("zh") == "电工"
    assert spec.to_dict()["roles"] == ROLES
    assert WorkflowSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    engine = Engine(clock=FixedClock(datetime(2026, 1, 5, tzinfo=UTC)), entry_points=False)
    engine.register_workflow(spec)  # 'electrician' counts as registered for this spec
    case = engine.open("ticket", actor=Actor("r-1", ["resident"], ["g"]), grid="g")
    done = engine.fire(case.id, "finish", actor=Actor("e-1", ["electrician"], ["g"]),
                       payload={"result": "fixed", "quality": "good"})
    assert done.state == "done"


def test_spec_roles_in_python_and_their_checks() -> None:
    spec = WorkflowSpec.from_dict(ticket())
    built = WorkflowSpec(spec.name, 2, spec.initial, spec.states, spec.transitions,
                         roles=[gridflow.RoleSpec("electrician"), "plumber"])
    assert [r.name for r in built.roles] == ["electrician", "plumber"]
    found = problems(ticket(roles=[*ROLES, {"name": "electrician"}, {"name": " x"},
                                   {"label_zh": "无名"}, "plumber"]))
    assert any("duplicate role 'electrician'" in p for p in found), found
    assert any("roles[2]" in p and "has spaces around it" in p for p in found), found
    assert any(p.startswith("spec.roles[3].name: required field missing") for p in found), found
    assert any(p.startswith("spec.roles[4]: expected a mapping, got the string 'plumber'")
               for p in found), found


def test_an_undeclared_role_is_still_refused_by_the_engine() -> None:
    spec = WorkflowSpec.from_dict(ticket(transitions=transition(0, roles=["electrician"])))
    engine = Engine(entry_points=False)
    with pytest.raises(SpecError, match=r"role 'electrician' is not registered.*declare it"):
        engine.register_workflow(spec)


def test_validate_accepts_a_yaml_workflow_with_its_own_role(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "streetlight.yaml"
    path.write_text("""\
name: streetlight
version: 1
initial: reported
roles:
  - {name: electrician, label_zh: 电工, label_en: Electrician}
states:
  - {name: reported, deadline: 3d, on_breach: escalate}
  - {name: escalated, deadline: 1d12h}
  - {name: fixed, terminal: true}
transitions:
  - {trigger: fix, source: [reported, escalated], dest: fixed, roles: [electrician]}
  - {trigger: escalate, source: reported, dest: escalated, roles: [coordinator, system]}
""", encoding="utf-8")
    code = main(["validate", "--no-plugins", str(path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "ok: streetlight@1 (3 states, 2 transitions)" in out


# -- 4. on_breach needs the timer ------------------------------------------------------------


@pytest.mark.parametrize(("roles", "ok"), [
    (["coordinator"], False), (["coordinator", "system"], True), ([], True), (["system"], True),
])
def test_the_timer_must_be_allowed_to_fire_on_breach(roles: list[str], ok: bool) -> None:
    data = ticket(transitions=transition(1, roles=roles))
    if ok:
        WorkflowSpec.from_dict(data)
        return
    found = problems(data)
    assert found == ["states[0] (open): on_breach trigger 'expire' cannot be fired by the timer: "
                     "its roles (coordinator) leave out 'system' (add 'system' to its roles, or "
                     "the timer only marks the case overdue)"]


def test_the_timer_check_sees_every_transition_of_the_trigger() -> None:
    # One of two 'expire' transitions from 'open' (here a "*" one) lets the timer fire.
    extra = {"trigger": "expire", "source": "*", "dest": "done", "roles": ["system"]}
    data = ticket(transitions=[*transition(1, roles=["coordinator"]), extra])
    WorkflowSpec.from_dict(data)
    star_only = {"trigger": "expire", "source": "*", "dest": "expired", "roles": ["street"]}
    found = problems(ticket(transitions=[*ticket()["transitions"][::2], star_only]))
    assert any("cannot be fired by the timer: its roles (street)" in p for p in found), found


# -- 5. shape and semantic errors together ------------------------------------------------------


def test_a_bad_deadline_does_not_hide_an_unreachable_state() -> None:
    states = [*state(0, deadline="3 days"), {"name": "limbo"}]
    found = problems(ticket(states=states))
    assert any(p.startswith("spec.states[0].deadline: expected a duration") for p in found)
    assert any("state 'limbo' is unreachable" in p for p in found), found
    # The stand-in (no deadline) for the bad field is not reported as a problem of its own.
    assert not any("on_breach is set but there is no deadline" in p for p in found), found


def test_shape_errors_in_transitions_keep_the_other_checks() -> None:
    transitions = [*transition(0, roles="coordinator"),
                   {"trigger": "open", "source": "open", "dest": "nowhere"}]
    found = problems(ticket(transitions=transitions, colour="red"))
    assert any(p.startswith("spec: extra fields found (colour)") for p in found), found
    assert any(p.startswith("spec.transitions[0].roles: expected a list") for p in found)
    assert any("trigger name 'open' is reserved" in p for p in found), found
    assert any("unknown dest state 'nowhere'" in p for p in found), found


def test_a_broken_graph_field_skips_only_the_graph_checks() -> None:
    # With a source that cannot be read, reachability would be guesswork: not reported.
    transitions = [*transition(0, source=5), {"trigger": "bad", "source": "open",
                                               "dest": "nowhere"}]
    found = problems(ticket(transitions=transitions))
    assert any(p.startswith("spec.transitions[0].source: expected a list of strings") or
               p.startswith("spec.transitions[0].source: expected a string") for p in found)
    assert any("unknown dest state 'nowhere'" in p for p in found), found
    assert not any("unreachable" in p for p in found), found


def test_an_item_that_is_not_a_mapping_is_reported_with_the_rest() -> None:
    found = problems(ticket(states=[*ticket()["states"], "limbo"], version=0))
    assert any(p.startswith("spec.states[3]: expected a mapping, got the string 'limbo'")
               for p in found), found
    assert any("version 0 is not a positive integer" in p for p in found), found


# -- 6. names and versions ----------------------------------------------------------------------


@pytest.mark.parametrize(("changes", "expected"), [
    ({"states": [*state(0), {"name": " done", "terminal": True}]},
     "the state name ' done' has spaces around it"),
    ({"transitions": transition(0, roles=["coordinator "])},
     "a role 'coordinator ' has spaces around it"),
    ({"transitions": transition(0, roles=[""])}, "a role is empty"),
    ({"open_roles": ["resident", ""]}, "open_roles: a name is empty"),
    ({"transitions": transition(0, requires=[" result"])},
     "a required field ' result' has spaces around it"),
    ({"version": 2**31}, f"version {2**31} is larger than {2**31 - 1}"),
    ({"name": " ticket"}, "the workflow name ' ticket' has spaces around it"),
])
def test_names_are_trimmed_non_empty_and_versions_fit(changes: dict[str, Any],
                                                      expected: str) -> None:
    found = problems(ticket(**changes))
    assert any(expected in p for p in found), found


def test_the_largest_version_is_accepted() -> None:
    assert WorkflowSpec.from_dict(ticket(version=2**31 - 1)).version == 2**31 - 1


# -- 7. capped messages ---------------------------------------------------------------------------


def test_ten_thousand_bad_transitions_give_a_small_message() -> None:
    states = [{"name": f"s{i}"} for i in range(10_000)] + [{"name": "end", "terminal": True}]
    transitions = [{"trigger": f"t{i}", "source": f"s{i}", "dest": f"nowhere{i}"}
                   for i in range(10_000)]
    started = time.perf_counter()
    with pytest.raises(SpecError) as info:
        WorkflowSpec.from_dict({"name": "big", "version": 1, "initial": "s0",
                                "states": states, "transitions": transitions})
    message = str(info.value)
    assert time.perf_counter() - started < 5
    assert len(message) < 64_000, len(message)
    assert len(info.value.problems) >= 10_000
    assert f"... and {len(info.value.problems) - 50} more problem(s)" in message
    assert "(declared states: s0, s1, s2, s3, s4, s5, s6, s7, s8, s9 and 9991 more)" in message


def test_validate_prints_at_most_fifty_problems(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    transitions = [{"trigger": f"t{i}", "source": "a", "dest": f"x{i}"} for i in range(500)]
    path = tmp_path / "many.json"
    path.write_text(json.dumps({"name": "m", "version": 1, "initial": "a",
                                "states": [{"name": "a"}], "transitions": transitions}),
                    encoding="utf-8")
    assert main(["validate", "--no-plugins", str(path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("500 problem(s)")
    assert len(lines) == 52 and lines[-1] == "... and 450 more problem(s)"


def test_a_huge_name_is_shortened_in_messages() -> None:
    found = problems(ticket(initial="x" * 100_000))
    assert all(len(p) < 300 for p in found), [len(p) for p in found]


# -- 8. "*" sources in linear time -------------------------------------------------------------


def _chain(n: int, stars: int) -> dict[str, Any]:
    states = [{"name": f"s{i}", "deadline": "P1D", "on_breach": "go"} for i in range(n)]
    transitions = [{"trigger": "go", "source": f"s{i}", "dest": f"s{i + 1}" if i + 1 < n
                    else "end", "roles": ["system"]} for i in range(n)]
    transitions += [{"trigger": f"star{i}", "source": "*", "dest": None} for i in range(stars)]
    return {"name": "chain", "version": 1, "initial": "s0",
            "states": [*states, {"name": "end", "terminal": True}], "transitions": transitions}


def test_many_states_with_a_star_transition_compile_quickly() -> None:
    started = time.perf_counter()
    spec = WorkflowSpec.from_dict(_chain(2_000, 1))
    compiled = compile_workflow(spec, {}, {})
    assert time.perf_counter() - started < 3
    assert sorted(compiled.allowed("s1999")) == ["go", "star0"]


def test_many_states_times_many_star_transitions_are_refused_quickly() -> None:
    started = time.perf_counter()
    with pytest.raises(SpecError) as info:
        WorkflowSpec.from_dict(_chain(1_000, 1_000))
    assert time.perf_counter() - started < 2
    assert "the transitions expand to 1,001,000 (transition, source state) pairs" in str(
        info.value)


def test_star_transitions_count_for_reachability_ways_out_and_duplicates() -> None:
    data = {"name": "s", "version": 1, "initial": "a",
            "states": [{"name": "a"}, {"name": "b"}, {"name": "gone", "terminal": True}],
            "transitions": [{"trigger": "go", "source": "a", "dest": "b"},
                            {"trigger": "drop", "source": "*", "dest": "gone"}]}
    WorkflowSpec.from_dict(data)  # 'b' leaves through "*", 'gone' is reached through it
    twice = [*data["transitions"], {"trigger": "drop", "source": "b", "dest": "gone"},
             {"trigger": "drop", "source": "*", "dest": "gone"}]
    found = problems({**data, "transitions": twice})
    assert "transitions[2] (drop): duplicate transition 'drop' from 'b' (same as " \
           "transitions[1])" in found
    assert "transitions[3] (drop): duplicate transition 'drop' from '*' (same as " \
           "transitions[1])" in found


def test_a_spec_built_in_python_with_state_objects_is_checked_the_same() -> None:
    with pytest.raises(SpecError, match="cannot be fired by the timer"):
        WorkflowSpec("t", 1, "a",
                     [StateSpec("a", deadline=timedelta(days=1), on_breach="late"),
                      StateSpec("b", terminal=True)],
                     [TransitionSpec("late", "a", "b", roles=["coordinator"])])


def test_the_yaml_example_in_the_docs_is_valid(tmp_path: Path) -> None:
    text = (Path(__file__).parents[1] / "docs" / "concepts.md").read_text(encoding="utf-8")
    example = text.split("<!-- spec-example -->\n```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "streetlight.yaml"
    path.write_text(example, encoding="utf-8")
    spec = WorkflowSpec.load(path)
    assert spec.state("reported").deadline == timedelta(days=3)
    assert spec.roles[0].label("zh") == "电工"
    engine = Engine(entry_points=False)
    engine.register_workflow(spec)


def test_a_shape_error_hides_only_what_its_stand_in_causes() -> None:
    # 'limbo' has a bad deadline and no way in: the stand-in (no deadline) must not
    # report "on_breach without a deadline", but its being unreachable is real.
    states = [*state(0), {"name": "limbo", "deadline": [1], "on_breach": "expire"}]
    found = problems(ticket(states=states))
    assert any(p.startswith("spec.states[3].deadline: expected a duration") for p in found)
    assert "states[3] (limbo): state 'limbo' is unreachable (no chain of transitions leads " \
           "there from 'open')" in found
    assert not any("no deadline" in p for p in found), found
