"""`gridflow.diff`: what changed between two spec versions, and what needs a mapping."""

from __future__ import annotations

from datetime import timedelta

import attrs
import pytest

import gridflow
from gridflow.spec import RoleSpec, StateSpec
from gridflow.workflows import GRID_CASE
from migration_v3 import GRID_CASE_V3


def _found(d: gridflow.SpecDiff) -> set[tuple[str, str, str, bool]]:
    return {(c.kind, c.name, c.change, c.safe) for c in d.changes}


def test_the_test_v2_diff() -> None:
    d = gridflow.diff(GRID_CASE, GRID_CASE_V3)
    found = _found(d)
    assert ("state", "revisit", "removed", False) in found
    assert {("state", "look_back", "added", True), ("state", "acceptance", "added", True),
            ("deadline", "triaged", "changed", True), ("transition", "accept", "added", True),
            ("transition", "close", "changed", True)} <= found
    assert [c.name for c in d.needs_mapping] == ["revisit"]
    assert "renamed to 'look_back'?" in d.needs_mapping[0].detail
    text = str(d)
    assert text.splitlines()[0] == "grid_case@1 -> grid_case@3: 10 change(s), 1 need a mapping"
    assert "NEEDS MAPPING  state       revisit: removed" in text
    assert "triaged: changed (1d -> 2d)" in text
    assert not d.safe and d
    assert d.to_dict()["changes"][0]["name"] == "revisit"


def test_no_change_and_every_kind() -> None:
    assert not gridflow.diff(GRID_CASE, GRID_CASE)
    assert str(gridflow.diff(GRID_CASE, GRID_CASE)) == "grid_case@1 -> grid_case@1: no change"
    states = tuple(
        attrs.evolve(s, terminal=False) if s.name == "rejected" else
        attrs.evolve(s, label_en="Sorted") if s.name == "triaged" else s
        for s in GRID_CASE.states)
    transitions = tuple(
        attrs.evolve(t, roles=(*t.roles, "street"), guards=(*t.guards, "g.x"),
                     effects=(), requires=(*t.requires, "ward"))
        if t.trigger == "triage" else t for t in GRID_CASE.transitions
        if t.trigger != "mark_duplicate")
    other = gridflow.WorkflowSpec(
        "grid_case", 3, GRID_CASE.initial, (*states, StateSpec("gone", terminal=True)),
        (*transitions, gridflow.TransitionSpec("rejected_again", "rejected", "gone")),
        labels={"zh": "网格案件", "en": "Grid cases"}, open_roles=GRID_CASE.open_roles,
        open_requires=GRID_CASE.open_requires, open_choices=GRID_CASE.open_choices,
        roles=[RoleSpec("ward")])
    found = _found(gridflow.diff(GRID_CASE, other))
    assert {("state", "rejected", "changed", False), ("label", "triaged", "changed", True),
            ("role", "triage", "added", True), ("guard", "triage", "added", True),
            ("effect", "triage", "removed", True), ("transition", "triage", "added", True),
            ("transition", "mark_duplicate", "removed", True),
            ("label", "workflow", "changed", True), ("role", "declared", "added", True),
            ("state", "gone", "added", True)} <= found
    back = _found(gridflow.diff(other, GRID_CASE))
    assert ("state", "gone", "removed", True) in back  # terminal: nothing runs there
    with pytest.raises(gridflow.InvalidArgument):
        gridflow.diff(GRID_CASE, "grid_case@2")  # type: ignore[arg-type]


def test_a_deadline_added_or_removed() -> None:
    states = tuple(attrs.evolve(s, deadline=None) if s.name == "escalated" else s
                   for s in GRID_CASE.states)
    found = gridflow.diff(GRID_CASE, attrs.evolve(GRID_CASE, version=2, states=states))
    assert [str(c) for c in found.changes] == ["safe           deadline    escalated: changed "
                                               "(5d -> None)"]
    assert timedelta(days=5) == GRID_CASE.state("escalated").deadline
