"""Workflow specs as data: round trips, loading from files, validation, labels."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

import gridflow
from gridflow import SpecError, StateSpec, TransitionSpec, WorkflowSpec
from gridflow.workflows import GRID_CASE


def ticket(**changes: Any) -> dict[str, Any]:
    """A small valid spec as plain data; ``changes`` replace top-level keys."""
    data: dict[str, Any] = {
        "name": "ticket",
        "version": 1,
        "initial": "open",
        "labels": {"zh": "工单", "en": "Ticket"},
        "states": [
            {"name": "open", "label_zh": "待处理", "label_en": "Open", "deadline": "P2D",
             "on_breach": "expire"},
            {"name": "done", "label_zh": "已完成", "label_en": "Done", "terminal": True},
            {"name": "expired", "label_zh": "已过期", "label_en": "Expired", "terminal": True},
        ],
        "transitions": [
            {"trigger": "finish", "source": "open", "dest": "done", "roles": ["coordinator"],
             "requires": ["result"], "choices": {"quality": ["good", "poor"]}},
            {"trigger": "expire", "source": "open", "dest": "expired", "roles": ["system"]},
            {"trigger": "note", "source": "*", "dest": None, "requires": ["text"]},
        ],
        "open_roles": ["resident"],
        "open_requires": ["title"],
    }
    data.update(changes)
    return data


# -- round trips -------------------------------------------------------------------


def test_from_dict_to_dict_round_trip() -> None:
    spec = WorkflowSpec.from_dict(ticket())
    assert spec.state("open").deadline == timedelta(days=2)
    assert spec.transitions[0].choices == {"quality": ("good", "poor")}
    assert spec.transitions[2].source == "*"
    again = WorkflowSpec.from_dict(spec.to_dict())
    assert again == spec
    assert again.to_dict() == spec.to_dict()


def test_grid_case_round_trips_through_dict_and_json() -> None:
    data = GRID_CASE.to_dict()
    assert WorkflowSpec.from_dict(data) == GRID_CASE
    text = json.dumps(data, ensure_ascii=False)
    assert WorkflowSpec.from_dict(json.loads(text)) == GRID_CASE
    # Durations are written as ISO 8601, not as Python objects.
    states = {s["name"]: s for s in data["states"]}
    assert states["joint_action"]["deadline"] == "P5D"


def test_to_dict_is_plain_data(tmp_path: Path) -> None:
    data = GRID_CASE.to_dict()
    # safe_dump refuses anything that is not plain data (tuples, objects...).
    text = yaml.safe_dump(data, allow_unicode=True)
    assert "联合处置" in text
    assert json.loads(json.dumps(data)) == data


def test_load_json_file(tmp_path: Path) -> None:
    path = tmp_path / "grid_case.json"
    path.write_text(json.dumps(GRID_CASE.to_dict(), ensure_ascii=False), encoding="utf-8")
    assert WorkflowSpec.load(path) == GRID_CASE
    assert WorkflowSpec.load(str(path)) == GRID_CASE


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".YAML"])
def test_load_yaml_file(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"grid_case{suffix}"
    path.write_text(yaml.safe_dump(GRID_CASE.to_dict(), allow_unicode=True), encoding="utf-8")
    assert WorkflowSpec.load(path) == GRID_CASE


def test_load_handwritten_yaml(tmp_path: Path) -> None:
    path = tmp_path / "ticket.yml"
    path.write_text(
        """
name: ticket
version: 1
initial: open
states:
  - {name: open, label_zh: 待处理, label_en: Open, deadline: PT36H}
  - {name: done, label_zh: 已完成, label_en: Done, terminal: true}
transitions:
  - trigger: finish
    source: open
    dest: done
    roles: [coordinator]
""",
        encoding="utf-8",
    )
    spec = WorkflowSpec.load(path)
    assert spec.state("open").deadline == timedelta(hours=36)
    assert spec.transitions[0].source == ("open",)
    assert spec.transitions[0].roles == ("coordinator",)


def test_loading_yaml_never_executes_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.yaml"
    path.write_text(
        f"name: !!python/object/apply:os.system ['touch {marker}']\n"
        "version: 1\ninitial: a\nstates: [{name: a, terminal: true}]\ntransitions: []\n",
        encoding="utf-8",
    )
    with pytest.raises(SpecError, match="invalid YAML") as info:
        WorkflowSpec.load(path)
    assert not marker.exists()
    assert info.value.problems[0].where == str(path)


def test_loading_yaml_python_name_tag_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text("!!python/name:os.system\n", encoding="utf-8")
    with pytest.raises(SpecError):
        WorkflowSpec.load(path)


def test_load_invalid_json_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"name": "x",\n  "version": }', encoding="utf-8")
    with pytest.raises(SpecError, match="invalid JSON") as info:
        WorkflowSpec.load(path)
    assert info.value.problems[0].where.endswith(":2:14")


@pytest.mark.parametrize("text", ["[1, 2]", "just a string", ""])
def test_load_refuses_a_file_that_is_not_a_mapping(tmp_path: Path, text: str) -> None:
    path = tmp_path / "list.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SpecError, match="does not hold a mapping"):
        WorkflowSpec.load(path)


# -- validation -------------------------------------------------------------------------


def _problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(SpecError) as info:
        WorkflowSpec.from_dict(data)
    return [str(p) for p in info.value.problems]


def _with_state(name: str, **fields: Any) -> list[dict[str, Any]]:
    states = [dict(s) for s in ticket()["states"]]
    for s in states:
        if s["name"] == name:
            s.update(fields)
    return states


def _with_transition(i: int, **fields: Any) -> list[dict[str, Any]]:
    transitions = [dict(t) for t in ticket()["transitions"]]
    transitions[i].update(fields)
    return transitions


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"name": ""}, "the workflow has no name"),
        ({"version": 0}, "version 0 is not a positive integer"),
        ({"initial": "nowhere"}, "initial state 'nowhere' is not declared"),
        ({"states": []}, "the workflow has no states"),
        ({"states": [*_with_state("open"), {"name": "open"}]}, "duplicate state name 'open'"),
        ({"states": _with_state("open", deadline="P0D")}, "is not positive"),
        ({"states": _with_state("done", deadline="P1D")}, "a terminal state has a deadline"),
        ({"states": _with_state("open", on_breach="finish", deadline=None)},
         "on_breach is set but there is no deadline"),
        ({"states": _with_state("open", on_breach="note")},
         "on_breach trigger 'note' does not leave state 'open'"),
        ({"states": [*_with_state("open"), {"name": "limbo"}]}, "state 'limbo' is unreachable"),
        ({"transitions": _with_transition(0, dest="nowhere")}, "unknown dest state 'nowhere'"),
        ({"transitions": _with_transition(0, source="nowhere")},
         "unknown source state 'nowhere'"),
        ({"transitions": _with_transition(0, source=["done"])}, "source state 'done' is terminal"),
        ({"transitions": _with_transition(0, source=[])}, "the transition has no source state"),
        ({"transitions": _with_transition(0, trigger="open")}, "trigger name 'open' is reserved"),
        ({"transitions": _with_transition(0, trigger="finish now")}, "is not an identifier"),
        ({"transitions": _with_transition(0, choices={"quality": []})},
         "choices for 'quality' are empty"),
        ({"transitions": [*ticket()["transitions"], ticket()["transitions"][0]]},
         "duplicate transition 'finish' from 'open'"),
        ({"transitions": [*ticket()["transitions"][1:],
                          {"trigger": "loop", "source": "open", "dest": "open"}]},
         "state 'done' is unreachable"),
    ],
)
def test_each_structural_problem_is_reported(changes: dict[str, Any], expected: str) -> None:
    assert any(expected in p for p in _problems(ticket(**changes))), _problems(ticket(**changes))


def test_non_terminal_state_without_a_way_out_is_reported() -> None:
    problems = _problems(ticket(
        states=[*_with_state("open"), {"name": "stuck"}],
        transitions=[*ticket()["transitions"],
                     {"trigger": "park", "source": "open", "dest": "stuck"}],
    ))
    assert any("non-terminal state 'stuck' has no way out" in p for p in problems)


def test_shape_errors_are_all_reported_at_once() -> None:
    data = ticket(colour="red", version="one")
    data["states"] = [*data["states"], {"name": "x", "terminal": "maybe", "bogus": 1}]
    with pytest.raises(SpecError) as info:
        WorkflowSpec.from_dict(data)
    text = str(info.value)
    assert len(info.value.problems) >= 2, text
    assert "colour" in text
    assert "version" in text
    assert info.value.spec_name == "ticket"


def test_a_spec_built_in_code_is_validated_too() -> None:
    with pytest.raises(SpecError) as info:
        WorkflowSpec(
            name="broken", version=1, initial="a",
            states=[StateSpec("a"), StateSpec("a"), StateSpec("b")],
            transitions=[TransitionSpec("go", "a", "c"), TransitionSpec("open", "a", "b")],
        )
    problems = info.value.problems
    whats = " | ".join(p.what for p in problems)
    assert "duplicate state name 'a'" in whats
    assert "unknown dest state 'c'" in whats
    assert "trigger name 'open' is reserved" in whats
    assert "non-terminal state 'b' has no way out" in whats
    # Each problem says where it is and what is wrong; the message lists them all.
    assert all(p.where and p.what for p in problems)
    assert f"has {len(problems)} problem(s)" in str(info.value)
    for p in problems:
        assert str(p) in str(info.value)


def test_spec_is_frozen_and_hashable_data() -> None:
    spec = WorkflowSpec.from_dict(ticket())
    with pytest.raises(AttributeError):
        spec.version = 2  # type: ignore[misc]
    assert spec.key == "ticket@1"
    assert spec.triggers == ("finish", "expire", "note")
    assert spec.non_terminal == ("open",)
    assert spec.label("zh-CN") == "工单"


# -- grid_case labels and shape ----------------------------------------------------------


def test_every_grid_case_state_has_zh_and_en_labels() -> None:
    for state in GRID_CASE.states:
        assert state.label_zh and state.label_en, state.name
        assert state.label("zh") == state.label_zh
        assert state.label("en") == state.label_en
        # zh labels are Chinese, en labels are not.
        assert any("\u4e00" <= ch <= "\u9fff" for ch in state.label_zh), state.name
        assert state.label_en.isascii(), state.name


def test_every_grid_case_trigger_has_zh_and_en_labels() -> None:
    for tr in GRID_CASE.transitions:
        assert tr.label_zh and tr.label_en, tr.trigger
        assert any("\u4e00" <= ch <= "\u9fff" for ch in tr.label_zh), tr.trigger
        assert tr.label_en.isascii(), tr.trigger
    assert GRID_CASE.label("zh") == "网格案件"
    assert GRID_CASE.label("en") == "Grid case"


def test_grid_case_has_the_issue_table() -> None:
    by_trigger = {t.trigger: t for t in GRID_CASE.transitions}
    # Other issues add triggers (extensions, 延期); issue 2's table must be there as given.
    assert set(by_trigger) >= {
        "triage", "reject", "mark_duplicate", "dispatch", "report_done", "reassign", "close",
        "escalate", "start_revisit", "confirm", "reopen", "note",
    }
    expected = {
        # trigger: (sources, dest, roles, requires)
        "triage": (("reported",), "triaged", {"coordinator"}, {"category", "priority"}),
        "reject": (("reported",), "rejected", {"coordinator"}, {"reason"}),
        "mark_duplicate": (("reported",), "rejected", {"coordinator"}, {"duplicate_of"}),
        "dispatch": (("triaged", "escalated"), "joint_action", {"coordinator", "street"},
                     {"departments", "plan"}),
        "report_done": (("joint_action",), None, {"department"}, {"department", "result"}),
        "reassign": (("joint_action",), None, {"coordinator"}, {"departments"}),
        "close": (("joint_action",), "closed", {"coordinator"}, set()),
        "escalate": (("triaged", "joint_action"), "escalated", {"coordinator", "system"},
                     {"reason"}),
        "start_revisit": (("closed",), "revisit", {"coordinator", "volunteer", "system"}, set()),
        "confirm": (("revisit",), "archived", {"coordinator", "volunteer"}, {"observation"}),
        "reopen": (("revisit",), "joint_action", {"coordinator", "volunteer", "resident"},
                   {"reason"}),
        "note": ("*", None, set(), {"text"}),
    }
    for trigger, (sources, dest, roles, requires) in expected.items():
        tr = by_trigger[trigger]
        assert (tr.source, tr.dest, set(tr.roles), set(tr.requires)) == (
            sources, dest, roles, requires), trigger
    assert set(GRID_CASE.open_roles) == {"resident", "grid_worker", "volunteer", "coordinator"}
    assert set(GRID_CASE.open_requires) == {"title", "source"}
    assert set(GRID_CASE.open_choices["source"]) == {
        "visit", "resident", "hotline", "patrol", "other"}
    assert set(by_trigger["triage"].choices["priority"]) == {"urgent", "normal", "low"}
    terminal = {s.name for s in GRID_CASE.states if s.terminal}
    assert terminal == {"archived", "rejected"}


def test_gridflow_exports_the_spec_classes() -> None:
    assert gridflow.WorkflowSpec is WorkflowSpec
    assert gridflow.workflows.GRID_CASE is GRID_CASE
