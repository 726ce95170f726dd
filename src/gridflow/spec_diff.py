"""What changed between two versions of a workflow spec, and what it means for
the cases already running on the old one.

`diff(old, new)` lists the states, transitions, roles, guards, effects,
deadlines and labels added, removed and changed. Each change is classified:

- **safe** for running cases: it only changes what happens from the next
  step on (a new transition, another role or guard, a new deadline, which a
  migration recomputes, a label);
- **needs a mapping**: a case may sit where the new version has nothing
  (a non-terminal state removed or renamed, a state that became terminal or
  stopped being so); a `gridflow.MigrationPlan` must say where such cases go.

Example:
    >>> import attrs
    >>> from datetime import timedelta
    >>> from gridflow.workflows import GRID_CASE
    >>> new = attrs.evolve(GRID_CASE, version=2, states=tuple(
    ...     attrs.evolve(s, deadline=timedelta(days=2)) if s.name == "triaged" else s
    ...     for s in GRID_CASE.states))
    >>> print(diff(GRID_CASE, new))
    grid_case@1 -> grid_case@2: 1 change(s), 0 need a mapping
      safe           deadline    triaged: changed (1d -> 2d)
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import attrs

from gridflow._errors import InvalidArgument
from gridflow.spec import WorkflowSpec

__all__ = ["Change", "SpecDiff", "diff"]

#: The kinds of change `diff` reports, in the order it lists them.
KINDS = ("workflow", "state", "deadline", "transition", "role", "guard", "effect", "label")


@attrs.frozen
class Change:
    """One difference between two specs.

    ``kind`` is one of `KINDS`; ``name`` the state, trigger or role concerned;
    ``change`` is ``"added"``, ``"removed"`` or ``"changed"``; ``safe`` says
    whether running cases can go on without a state mapping; ``detail``
    says what changed, and for a change that needs a mapping, why.
    """

    kind: str
    name: str
    change: str
    safe: bool
    detail: str = ""

    def __str__(self) -> str:
        verdict = "safe" if self.safe else "NEEDS MAPPING"
        detail = f" ({self.detail})" if self.detail else ""
        return f"{verdict:<14} {self.kind:<11} {self.name}: {self.change}{detail}"


@attrs.frozen
class SpecDiff:
    """Every change from ``old`` to ``new`` (see `diff`); true when there is any."""

    old: str
    new: str
    changes: tuple[Change, ...]

    @property
    def needs_mapping(self) -> tuple[Change, ...]:
        """The changes a migration plan must map."""
        return tuple(c for c in self.changes if not c.safe)

    @property
    def safe(self) -> bool:
        """True when no change needs a mapping."""
        return not self.needs_mapping

    def __bool__(self) -> bool:
        return bool(self.changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (what ``gridflow diff --json`` prints)."""
        return {"old": self.old, "new": self.new,
                "changes": [attrs.asdict(c) for c in self.changes]}

    def __str__(self) -> str:
        head = (f"{self.old} -> {self.new}: {len(self.changes)} change(s), "
                f"{len(self.needs_mapping)} need a mapping")
        if not self.changes:
            return f"{self.old} -> {self.new}: no change"
        return "\n".join([head, *(f"  {c}" for c in self.changes)])


def _duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"


def _fmt(value: Any) -> str:
    if isinstance(value, timedelta):
        return _duration(value)
    if isinstance(value, tuple | list | set | frozenset):
        return "[" + ", ".join(sorted(map(str, value))) + "]"
    return str(value)


def _compare(out: list[Change], kind: str, name: str, old: Any, new: Any, what: str = "",
             safe: bool = True) -> None:
    if old != new:
        label = f"{what}: " if what else ""
        out.append(Change(kind, name, "changed", safe, f"{label}{_fmt(old)} -> {_fmt(new)}"))


def _sets(out: list[Change], kind: str, name: str, old: Iterable[str], new: Iterable[str],
          what: str) -> None:
    a, b = set(old), set(new)
    if b - a:
        out.append(Change(kind, name, "added", True, f"{what} {_fmt(b - a)}"))
    if a - b:
        out.append(Change(kind, name, "removed", True, f"{what} {_fmt(a - b)}"))


def _by_trigger(spec: WorkflowSpec) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for t in spec.transitions:
        entry = out.setdefault(t.trigger, {"edges": set(), "roles": set(), "guards": set(),
                                           "effects": set(), "requires": set(), "choices": {},
                                           "labels": set()})
        for src in t.sources(spec.non_terminal):
            entry["edges"].add((src, t.dest))
        entry["roles"].update(t.roles)
        entry["guards"].update(t.guards)
        entry["effects"].update(t.effects)
        entry["requires"].update(t.requires)
        entry["choices"].update(t.choices)
        entry["labels"].add((t.label_zh, t.label_en))
    return out


def _edge(edge: tuple[str, str | None]) -> str:
    return f"{edge[0]} -> {edge[1] or '(stays)'}"


def diff(old: WorkflowSpec, new: WorkflowSpec) -> SpecDiff:
    """The changes from ``old`` to ``new`` (two versions of one workflow, or any
    two specs), each classified safe for running cases or needing a mapping.

    Example:
        >>> from gridflow.workflows import GRID_CASE
        >>> diff(GRID_CASE, GRID_CASE).changes
        ()
    """
    if not isinstance(old, WorkflowSpec) or not isinstance(new, WorkflowSpec):
        raise InvalidArgument("diff(old, new) takes two WorkflowSpecs")
    out: list[Change] = []
    if old.name != new.name:
        out.append(Change("workflow", "name", "changed", False,
                          f"{old.name} -> {new.name}: a migration keeps the workflow's name"))
    _compare(out, "workflow", "initial", old.initial, new.initial, "initial state")
    for what in ("open_roles", "open_requires", "open_guards", "open_effects"):
        kind = {"open_roles": "role", "open_guards": "guard",
                "open_effects": "effect"}.get(what, "transition")
        _sets(out, kind, "open", getattr(old, what), getattr(new, what), what)
    _compare(out, "transition", "open", old.open_choices, new.open_choices, "open_choices")
    _compare(out, "label", "workflow", old.labels, new.labels)

    # States.
    olds, news = {s.name: s for s in old.states}, {s.name: s for s in new.states}
    added = [n for n in news if n not in olds]
    added_open = [n for n in added if not news[n].terminal]
    for name, state in olds.items():
        if name in news:
            continue
        if state.terminal:
            out.append(Change("state", name, "removed", True,
                              "terminal: its cases are done and stay on the old version"))
            continue
        alike = [n for n in added_open if state.label_zh and news[n].label_zh == state.label_zh]
        guess = alike or (added_open if len(added_open) == 1 else [])
        hint = f"; renamed to {guess[0]!r}?" if len(guess) == 1 else ""
        out.append(Change("state", name, "removed", False,
                          f"running cases in it need a target state{hint}"))
    for name in added:
        state = news[name]
        out.append(Change("state", name, "added", True,
                          "terminal" if state.terminal else
                          f"deadline {_fmt(state.deadline)}" if state.deadline else ""))
    for name, a in olds.items():
        b = news.get(name)
        if b is None:
            continue
        if a.terminal != b.terminal:
            out.append(Change("state", name, "changed", False,
                              "became terminal" if b.terminal else "is no longer terminal"))
        _compare(out, "deadline", name, a.deadline, b.deadline)
        _compare(out, "deadline", name, a.on_breach, b.on_breach, "on_breach")
        _compare(out, "label", name, (a.label_zh, a.label_en), (b.label_zh, b.label_en))
        _compare(out, "label", name, a.tags, b.tags, "tags")

    # Transitions, by trigger.
    oldt, newt = _by_trigger(old), _by_trigger(new)
    for trigger in [*oldt, *(t for t in newt if t not in oldt)]:
        ta, tb = oldt.get(trigger), newt.get(trigger)
        if tb is None:
            out.append(Change("transition", trigger, "removed", True,
                              ", ".join(sorted(map(_edge, ta["edges"]))) if ta else ""))
            continue
        if ta is None:
            out.append(Change("transition", trigger, "added", True,
                              ", ".join(sorted(map(_edge, tb["edges"])))))
            continue
        gone, new_edges = ta["edges"] - tb["edges"], tb["edges"] - ta["edges"]
        if gone or new_edges:
            parts = [f"+{_edge(e)}" for e in sorted(new_edges, key=str)]
            parts += [f"-{_edge(e)}" for e in sorted(gone, key=str)]
            out.append(Change("transition", trigger, "changed", True, ", ".join(parts)))
        _sets(out, "role", trigger, ta["roles"], tb["roles"], "roles")
        _sets(out, "guard", trigger, ta["guards"], tb["guards"], "guards")
        _sets(out, "effect", trigger, ta["effects"], tb["effects"], "effects")
        _sets(out, "transition", trigger, ta["requires"], tb["requires"], "requires")
        _compare(out, "transition", trigger, ta["choices"], tb["choices"], "choices")
        _compare(out, "label", trigger, ta["labels"], tb["labels"])

    # Roles the specs declare themselves.
    _sets(out, "role", "declared", (r.name for r in old.roles), (r.name for r in new.roles),
          "roles")
    order = {k: i for i, k in enumerate(KINDS)}
    out.sort(key=lambda c: (c.safe, order.get(c.kind, 99)))
    return SpecDiff(old.key, new.key, tuple(out))
