"""The semantic checks of a workflow spec, in time linear in its size.

``"*"`` sources are never expanded here: a ``"*"`` transition is one edge from
"every non-terminal state", so a spec with many states and many ``"*"``
transitions is checked in O(states + transitions), and its expanded size is
counted (not built) to refuse a spec whose compiled machine would be too big.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from gridflow._errors import SpecProblem
from gridflow.convert import describe, shorten
from gridflow.model import OVERDUE_KEY

if TYPE_CHECKING:
    from gridflow.spec import TransitionSpec, WorkflowSpec

__all__ = [
    "MAX_DEADLINE",
    "MAX_EXPANDED_TRANSITIONS",
    "MAX_VERSION",
    "OVERDUE_KEY",
    "RESERVED_TRIGGERS",
    "TIMER_ROLE",
    "check",
    "listing",
]

#: Triggers the engine itself records; a spec may not define them.
RESERVED_TRIGGERS = frozenset({
    "open", "link", "overdue", "upgrade", "migrate", "erased", "restricted", "disclosed",
})
#: Highest spec version: versions are stored as 32-bit integers.
MAX_VERSION = 2**31 - 1
#: Longest state deadline (about ten years): a calendar counts every day of a
#: deadline, and far beyond this it would overflow what a datetime can hold.
MAX_DEADLINE = timedelta(days=3660)
#: Most (transition, source state) pairs once ``"*"`` sources are expanded: the
#: engine compiles one per pair (``states x "*" transitions`` grows fast).
MAX_EXPANDED_TRANSITIONS = 50_000
#: The role of the actor the timer fires ``on_breach`` triggers as.
TIMER_ROLE = "system"
#: How many names a message lists before "and N more".
_LISTED = 10


def listing(names: Iterable[str], limit: int = _LISTED) -> str:
    """``names`` joined for a message, the first ``limit`` of them, each shortened.

    Example:
        >>> listing(f"s{i}" for i in range(13))
        's0, s1, s2, s3, s4, s5, s6, s7, s8, s9 and 3 more'
        >>> listing([])
        '(none)'
    """
    names = list(names)
    shown = ", ".join(n if len(n) <= 40 and n.isprintable() else shorten(n)
                      for n in names[:limit])
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return (shown or "(none)") + more


def _q(name: object) -> str:
    return shorten(name) if isinstance(name, str) else describe(name)


def _label(name: object) -> str:
    """A name as it appears in a problem's ``where`` (``states[2] (name)``)."""
    if isinstance(name, str) and len(name) <= 40 and name.isprintable() and name == name.strip():
        return name
    return _q(name)


def _bad_name(value: object, kind: str) -> str | None:
    """What is wrong with a name (state, trigger, role, field...), or None."""
    if not isinstance(value, str):
        return f"{kind} is not a string but {describe(value)}"
    if not value:
        return f"{kind} is empty"
    if value != value.strip():
        return f"{kind} {_q(value)} has spaces around it"
    return None


def check(spec: WorkflowSpec, *, graph: bool = True) -> list[SpecProblem]:
    """Every semantic problem of ``spec``; ``graph=False`` skips reachability and
    ways out (when shape errors left the graph incomplete, they would be noise)."""
    out: list[SpecProblem] = []
    add = out.append
    why_name = "write a non-empty name without spaces around it"
    if not spec.name or not isinstance(spec.name, str):
        add(SpecProblem("name", "the workflow has no name", "cases refer to it by name"))
    elif (bad := _bad_name(spec.name, "the workflow name")) is not None:
        add(SpecProblem("name", bad, why_name))
    version = spec.version
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        shown = _q(version) if isinstance(version, str) else repr(version)[:40]
        add(SpecProblem("version", f"version {shown} is not a positive integer",
                        "versions are numbered 1, 2, ..."))
    elif version > MAX_VERSION:
        add(SpecProblem("version", f"version {version} is larger than {MAX_VERSION}",
                        "versions are stored as 32-bit integers"))
    _check_roles(spec, add)
    names = _check_states(spec, add)
    if spec.initial not in names:
        add(SpecProblem("initial", f"initial state {_q(spec.initial)} is not declared",
                        f"declared states: {listing(n for n in names if n)}"))
    for field in ("open_roles", "open_requires", "open_guards", "open_effects"):
        for value in getattr(spec, field):
            if (bad := _bad_name(value, "a name")) is not None:
                add(SpecProblem(field, bad, why_name))
    _check_choices(spec.open_choices, "open_choices", add)
    _check_transitions(spec, names, add, graph=graph)
    if spec.personal is not None:
        _check_personal(spec, add)
    return out


def _check_roles(spec: WorkflowSpec, add: Any) -> None:
    seen: dict[str, int] = {}
    for i, role in enumerate(spec.roles):
        where = f"roles[{i}] ({_label(role.name)})"
        if (bad := _bad_name(role.name, "the role name")) is not None:
            add(SpecProblem(where, bad, "write a non-empty name without spaces around it"))
        elif role.name in seen:
            add(SpecProblem(where, f"duplicate role {_q(role.name)}",
                            f"already declared at roles[{seen[role.name]}]"))
        else:
            seen[role.name] = i
        for label in ("label_zh", "label_en"):
            if not isinstance(getattr(role, label), str):
                add(SpecProblem(where, f"{label} is not a string", ""))


def _check_states(spec: WorkflowSpec, add: Any) -> dict[str, int]:
    names: dict[str, int] = {}
    for i, state in enumerate(spec.states):
        where = f"states[{i}] ({_label(state.name)})"
        if not state.name:
            add(SpecProblem(f"states[{i}]", "a state has no name", ""))
        elif (bad := _bad_name(state.name, "the state name")) is not None:
            add(SpecProblem(where, bad, "write a non-empty name without spaces around it"))
        if state.name in names:
            add(SpecProblem(f"states[{i}]", f"duplicate state name {_q(state.name)}",
                            f"already declared at states[{names[state.name]}]"))
        if isinstance(state.name, str):
            names.setdefault(state.name, i)
        if not isinstance(state.terminal, bool):
            add(SpecProblem(where, f"terminal is not true or false but {describe(state.terminal)}",
                            ""))
        deadline = state.deadline
        if deadline is not None and not isinstance(deadline, timedelta):
            add(SpecProblem(where, f"deadline is not a duration but {describe(deadline)}", ""))
        elif deadline is not None and deadline <= timedelta(0):
            add(SpecProblem(where, f"deadline {deadline} is not positive", ""))
        elif deadline is not None and deadline > MAX_DEADLINE:
            add(SpecProblem(where, f"deadline {deadline.days} days is longer than the "
                            f"{MAX_DEADLINE.days} days a calendar counts", "write a shorter one"))
        elif deadline is not None and deadline % timedelta(seconds=1):
            add(SpecProblem(where, f"deadline {deadline} is not a whole number of seconds", ""))
        if state.terminal and (state.deadline is not None or state.on_breach):
            add(SpecProblem(where, "a terminal state has a deadline or on_breach",
                            "a case never leaves a terminal state"))
        for tag in state.tags:
            if not isinstance(tag, str) or not tag:
                add(SpecProblem(where, f"tag {_q(tag)} is not a non-empty string", ""))
    if not spec.states:
        add(SpecProblem("states", "the workflow has no states", ""))
    return names


def _check_choices(choices: Any, where: str, add: Any) -> None:
    for field, allowed in choices.items():
        if (bad := _bad_name(field, "a choices field")) is not None:
            add(SpecProblem(where, bad, "write the payload field's name"))
        if not allowed:
            add(SpecProblem(where, f"choices for {_q(field)} are empty", ""))
        for value in allowed:
            if not isinstance(value, str):
                add(SpecProblem(where, f"a choice for {_q(field)} is {describe(value)}, "
                                "not a string", ""))


def _check_transitions(spec: WorkflowSpec, names: dict[str, int], add: Any, *,
                       graph: bool) -> None:
    terminal = {s.name for s in spec.states if s.terminal}
    non_terminal = {s.name for s in spec.states if not s.terminal}
    declared = listing(n for n in names if n)
    edges: dict[str, set[str]] = defaultdict(set)  # explicit sources only
    star_dests: set[str] = set()  # every non-terminal state has an edge to these
    explicit: dict[tuple[str, str, str | None], int] = {}
    star: dict[tuple[str, str | None], int] = {}
    expanded = 0
    for i, tr in enumerate(spec.transitions):
        where = f"transitions[{i}] ({_label(tr.trigger)})"
        if not isinstance(tr.trigger, str) or not tr.trigger.isidentifier():
            add(SpecProblem(where, f"trigger name {_q(tr.trigger)} is not an identifier",
                            "triggers are used as names in code and URLs"))
        if tr.trigger in RESERVED_TRIGGERS:
            reserved = ", ".join(sorted(RESERVED_TRIGGERS))
            add(SpecProblem(where, f"trigger name {_q(tr.trigger)} is reserved",
                            f"the engine records {reserved} itself"))
        for field, kind in (("roles", "role"), ("requires", "required field"),
                            ("guards", "guard"), ("effects", "effect")):
            for value in getattr(tr, field):
                if (bad := _bad_name(value, f"a {kind}")) is not None:
                    add(SpecProblem(where, bad, "write a non-empty name without spaces around it"))
        if tr.dest is not None and tr.dest not in names:
            add(SpecProblem(where, f"unknown dest state {_q(tr.dest)}",
                            f"declared states: {declared}"))
        _check_choices(tr.choices, where, add)
        if tr.source == "*":
            expanded += len(non_terminal)
            key = (tr.trigger, tr.dest)
            if key in star:
                add(SpecProblem(where, f"duplicate transition {_q(tr.trigger)} from '*'",
                                f"same as transitions[{star[key]}]"))
            star.setdefault(key, i)
            if tr.dest is not None:
                star_dests.add(tr.dest)
            continue
        if not tr.source:
            add(SpecProblem(where, "the transition has no source state", ""))
        expanded += len(tr.source)
        for src in tr.source:
            if src not in names:
                add(SpecProblem(where, f"unknown source state {_q(src)}",
                                f"declared states: {declared}"))
            elif src in terminal:
                add(SpecProblem(where, f"source state {_q(src)} is terminal",
                                "a case never leaves a terminal state"))
            triple = (tr.trigger, src, tr.dest)
            if triple in explicit:
                add(SpecProblem(where, f"duplicate transition {_q(tr.trigger)} from {_q(src)}",
                                f"same as transitions[{explicit[triple]}]"))
            explicit.setdefault(triple, i)
            if tr.dest is not None:
                edges[src].add(tr.dest)
    # An explicit transition that a "*" one (same trigger and dest) already covers.
    for (trigger, src, dest), i in explicit.items():
        j = star.get((trigger, dest))
        if j is not None and src in non_terminal:
            later, earlier = max(i, j), min(i, j)
            add(SpecProblem(f"transitions[{later}] ({_label(trigger)})",
                            f"duplicate transition {_q(trigger)} from {_q(src)}",
                            f"same as transitions[{earlier}]"))
    if expanded > MAX_EXPANDED_TRANSITIONS:
        stars = sum(1 for tr in spec.transitions if tr.source == "*")
        add(SpecProblem("transitions", f"the transitions expand to {expanded:,} (transition, "
                        f"source state) pairs, more than {MAX_EXPANDED_TRANSITIONS:,}",
                        f"each of the {stars} transition(s) with source '*' applies to all "
                        f"{len(non_terminal)} non-terminal states; use fewer of either"))
    if graph:
        _check_graph(spec, names, edges, star_dests, non_terminal, add)
    _check_breaches(spec, names, non_terminal, add)


def _check_graph(spec: WorkflowSpec, names: dict[str, int], edges: dict[str, set[str]],
                 star_dests: set[str], non_terminal: set[str], add: Any) -> None:
    if spec.initial in names:
        reached = {spec.initial}
        todo = [spec.initial]
        star_followed = False
        while todo:
            here = todo.pop()
            nexts: Iterable[str] = edges.get(here, ())
            if here in non_terminal and not star_followed:
                star_followed = True  # the "*" edges leave every non-terminal state alike
                nexts = [*nexts, *star_dests]
            for nxt in nexts:
                if nxt not in reached:
                    reached.add(nxt)
                    todo.append(nxt)
        for state in spec.states:
            if state.name and state.name not in reached:
                add(SpecProblem(f"states[{names[state.name]}] ({_label(state.name)})",
                                f"state {_q(state.name)} is unreachable",
                                f"no chain of transitions leads there from {_q(spec.initial)}"))
    for state in spec.states:
        if state.terminal or state.name not in names:
            continue
        leaves = any(d != state.name for d in edges.get(state.name, ())) or (
            len(star_dests) > 1 or (bool(star_dests) and state.name not in star_dests))
        if not leaves:
            add(SpecProblem(f"states[{names[state.name]}] ({_label(state.name)})",
                            f"non-terminal state {_q(state.name)} has no way out",
                            "mark it terminal or add a transition leaving it"))


class _Ways:
    """What the transitions of one trigger from one source (or from "*") allow."""

    __slots__ = ("dests", "roles", "timer")

    def __init__(self) -> None:
        self.dests: set[str] = set()
        self.roles: set[str] = set()
        self.timer = False

    def add(self, tr: TransitionSpec) -> None:
        if tr.dest is not None:
            self.dests.add(tr.dest)
        self.roles.update(tr.roles)
        self.timer = self.timer or not tr.roles or TIMER_ROLE in tr.roles

    def leave(self, state: str) -> bool:
        return len(self.dests) > 1 or (bool(self.dests) and state not in self.dests)


_NONE = _Ways()


def _check_breaches(spec: WorkflowSpec, names: dict[str, int], non_terminal: set[str],
                    add: Any) -> None:
    wanted = {s.on_breach for s in spec.states if s.on_breach}
    ways: dict[tuple[str, str], _Ways] = {}  # (trigger, source or "*")
    for tr in spec.transitions:
        if tr.trigger in wanted:
            for src in ("*",) if tr.source == "*" else tr.source:
                way = ways.get((tr.trigger, src))
                if way is None:
                    way = ways[tr.trigger, src] = _Ways()
                way.add(tr)
    for state in spec.states:
        if not state.on_breach:
            continue
        where = f"states[{names.get(state.name, '?')}] ({_label(state.name)})"
        trigger = state.on_breach
        if state.deadline is None:
            add(SpecProblem(where, "on_breach is set but there is no deadline",
                            "a breach needs a deadline"))
        own = ways.get((trigger, state.name), _NONE)
        star = ways.get((trigger, "*"), _NONE) if state.name in non_terminal else _NONE
        if not (own.leave(state.name) or star.leave(state.name)):
            add(SpecProblem(where, f"on_breach trigger {_q(trigger)} does not leave "
                            f"state {_q(state.name)}",
                            "the breach trigger must be a transition out of the state"))
        elif not (own.timer or star.timer):
            roles = listing(sorted(own.roles | star.roles))
            add(SpecProblem(where, f"on_breach trigger {_q(trigger)} cannot be fired by the "
                            f"timer: its roles ({roles}) leave out {TIMER_ROLE!r}",
                            f"add {TIMER_ROLE!r} to its roles, or the timer only marks the case "
                            "overdue"))


def _check_personal(spec: WorkflowSpec, add: Any) -> None:
    """The declared personal fields: names, overlaps, and paths nothing can ever fill.

    A payload path belongs to triggers the spec has (``open``'s payload is the
    case data: its paths are ``data`` paths), and no path may go inside a field
    whose values are restricted to listed choices (a choice is a string: it
    holds no keys and no list).
    """
    from gridflow.personal.fields import fields_problems

    policy = spec.personal
    assert policy is not None
    for key in ("readers", "auditors"):
        for role in sorted(getattr(policy, key), key=str):
            if (bad := _bad_name(role, "a role name")) is not None:
                add(SpecProblem(f"personal.{key}", bad, "write the role's name"))
    by_trigger: dict[str, list[TransitionSpec]] = defaultdict(list)
    for tr in spec.transitions:
        by_trigger[tr.trigger].append(tr)
    triggers = listing(by_trigger)

    def choices_block(path: str, choices: Iterable[Any]) -> str | None:
        # The first field of the path, if every way of filling it restricts it to choices.
        steps = path.replace("[]", ".[]").split(".")
        top = steps[0]
        if len(steps) > 1 and all(top in c for c in choices):
            return top
        return None

    def unfillable(where: str, field: Any, whose: str, why_not: str, hint: str) -> None:
        add(SpecProblem(where, f"personal path {_q(field.path)} ({whose}) can never be "
                        f"filled: {why_not}", hint))

    for i, field in enumerate(policy.data):
        top = choices_block(field.path, [spec.open_choices])
        if top is not None:
            unfillable(f"personal.data[{i}]", field, "case data",
                       f"the opening data's {_q(top)} takes one of its listed choices, a "
                       "string", f"declare {_q(top)} itself, or a path that the data holds")
    for problem in fields_problems(policy.data, "personal.data"):
        add(problem)
    every = [tr.choices for tr in spec.transitions]
    for i, field in enumerate(policy.payload):
        where = f"personal.payload[{i}]"
        if not spec.transitions:
            unfillable(where, field, "every trigger's payload", "the workflow has no triggers",
                       "declare the opening data's paths under personal.data")
            continue
        top = choices_block(field.path, every)
        if top is not None:
            unfillable(where, field, "every trigger's payload",
                       f"every trigger restricts {_q(top)} to its listed choices, a string",
                       f"declare {_q(top)} itself, or a path that payloads hold")
    for problem in fields_problems(policy.payload, "personal.payload"):
        add(problem)
    declared = {f.path for f in (*policy.data, *policy.payload)} | {
        f.path for fields in policy.triggers.values() for f in fields}
    data_paths = {f.path for f in policy.data}
    for path, target in policy.refers_to.items():
        if path not in declared:
            add(SpecProblem("personal.refers_to", f"{_q(path)} is not a declared personal path",
                            "refers_to names paths declared under data, payload or triggers"))
        if target not in data_paths:
            add(SpecProblem("personal.refers_to", f"{_q(target)} (named by {_q(path)}) is not a "
                            "declared path of the case data",
                            "it names the list whose elements' subjects the names take, e.g. "
                            "parties[].name"))
    for trigger, fields in policy.triggers.items():
        at = f"personal.triggers.{_label(trigger)}"
        ways = by_trigger.get(trigger)
        for i, field in enumerate(fields):
            where = f"{at}[{i}]"
            whose = f"trigger {_q(trigger)}"
            if trigger == "open":
                unfillable(where, field, whose, "the opening data is the case data, not a "
                           "trigger's payload", "declare the path under personal.data")
            elif not ways:
                unfillable(where, field, whose, f"the workflow has no trigger {_q(trigger)}",
                           f"its triggers: {triggers}")
            elif (top := choices_block(field.path, [tr.choices for tr in ways])) is not None:
                unfillable(where, field, whose, f"{_q(top)} takes one of the trigger's listed "
                           "choices, a string",
                           f"declare {_q(top)} itself, or a path that the payload holds")
        for problem in fields_problems((*policy.payload, *fields), at):
            add(problem)
