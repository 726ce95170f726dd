"""Workflow specs as data: states, transitions, labels; validated on construction.

A spec is pure data (no code): guards and effects are referred to by name and
resolved by the engine from plugins, so loading a spec from YAML or JSON never
executes anything from it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import cattrs

from gridflow._errors import SpecError, SpecProblem
from gridflow.convert import converter

__all__ = ["OVERDUE_KEY", "RESERVED_TRIGGERS", "StateSpec", "TransitionSpec", "WorkflowSpec"]

#: Triggers the engine itself records; a spec may not define them.
RESERVED_TRIGGERS = frozenset({
    "open", "link", "overdue", "upgrade", "migrate", "erased", "restricted", "disclosed",
})

#: The ``data`` key where the timer keeps the deadline a case missed in a state
#: without ``on_breach`` (ISO 8601, UTC); the engine removes it when a step
#: replaces that deadline (the case enters a state, or an extension moves it).
OVERDUE_KEY = "overdue_since"


def _tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def _source(value: Any) -> str | tuple[str, ...]:
    if isinstance(value, str):
        return value if value == "*" else (value,)
    return tuple(value)


def _choices(value: Any) -> dict[str, tuple[str, ...]]:
    return {str(k): _tuple(v) for k, v in (value or {}).items()}


def _find_spec_error(exc: BaseException) -> SpecError | None:
    # cattrs wraps the SpecError raised by __attrs_post_init__ in its own group.
    if isinstance(exc, SpecError):
        return exc
    for sub in getattr(exc, "exceptions", ()):
        found = _find_spec_error(sub)
        if found is not None:
            return found
    return None


@attrs.frozen
class StateSpec:
    """One state of a workflow.

    ``deadline`` is how long a case may stay here (counted by the engine's
    calendar); ``on_breach`` names the trigger the timer fires when it runs out.

    Example:
        >>> StateSpec("triaged", "已立案", "Triaged", deadline=timedelta(days=1)).deadline
        datetime.timedelta(days=1)
    """

    name: str
    label_zh: str = ""
    label_en: str = ""
    terminal: bool = False
    deadline: timedelta | None = None
    on_breach: str | None = None
    tags: tuple[str, ...] = attrs.field(default=(), converter=_tuple)

    def label(self, lang: str = "en") -> str:
        """The label in ``lang`` ("zh" or "en"), falling back to the name."""
        return (self.label_zh if lang.startswith("zh") else self.label_en) or self.name


@attrs.frozen
class TransitionSpec:
    """One transition: ``trigger`` takes a case from ``source`` to ``dest``.

    ``source`` is a state name, a tuple of names, or ``"*"`` (every
    non-terminal state). ``dest=None`` is an internal transition: an event is
    recorded, the state stays. ``requires`` names payload fields that must be
    present, ``choices`` restricts payload fields to listed values, ``roles``
    are the actor roles allowed (empty: any role), ``guards`` and ``effects``
    name callables registered by plugins (`gridflow_guards`,
    `gridflow_effects`).

    Example:
        >>> t = TransitionSpec("triage", "reported", "triaged", roles=["coordinator"],
        ...                    requires=["category"], label_zh="立案", label_en="Triage")
        >>> t.sources(["reported", "triaged"])
        ('reported',)
    """

    trigger: str
    source: str | tuple[str, ...] = attrs.field(converter=_source)
    dest: str | None
    guards: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    roles: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    requires: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    label_zh: str = ""
    label_en: str = ""
    effects: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    choices: dict[str, tuple[str, ...]] = attrs.field(factory=dict, converter=_choices)

    def sources(self, non_terminal: list[str] | tuple[str, ...]) -> tuple[str, ...]:
        """The concrete source states, with ``"*"`` expanded to ``non_terminal``."""
        if self.source == "*":
            return tuple(non_terminal)
        assert isinstance(self.source, tuple)
        return self.source

    def label(self, lang: str = "en") -> str:
        """The label in ``lang`` ("zh" or "en"), falling back to the trigger name."""
        return (self.label_zh if lang.startswith("zh") else self.label_en) or self.trigger


def _states(value: Iterable[StateSpec]) -> tuple[StateSpec, ...]:
    return tuple(value)


def _transitions(value: Iterable[TransitionSpec]) -> tuple[TransitionSpec, ...]:
    return tuple(value)


@attrs.frozen
class WorkflowSpec:
    """A whole workflow: its states, transitions and labels, validated when built.

    Construction raises `SpecError` listing **every** structural problem at
    once (unknown or duplicate states, unreachable states, a non-terminal
    state with no way out, a breach trigger that does not leave its state,
    reserved trigger names...). Whether guards, effects and roles are
    registered is checked when an `Engine` registers the spec.

    Example:
        >>> spec = WorkflowSpec.from_dict({
        ...     "name": "ticket", "version": 1, "initial": "open",
        ...     "states": [{"name": "open"}, {"name": "done", "terminal": True}],
        ...     "transitions": [{"trigger": "finish", "source": "open", "dest": "done"}],
        ... })
        >>> spec.state("done").terminal
        True
        >>> WorkflowSpec.from_dict(spec.to_dict()) == spec
        True
    """

    name: str
    version: int
    initial: str
    states: tuple[StateSpec, ...] = attrs.field(converter=_states)
    transitions: tuple[TransitionSpec, ...] = attrs.field(converter=_transitions)
    labels: dict[str, str] = attrs.field(factory=dict)
    open_roles: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    open_requires: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    open_guards: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    open_choices: dict[str, tuple[str, ...]] = attrs.field(factory=dict, converter=_choices)
    open_effects: tuple[str, ...] = attrs.field(default=(), converter=_tuple)

    def __attrs_post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise SpecError(self.name or "(unnamed)", problems)

    # -- look-ups ---------------------------------------------------------------

    @property
    def key(self) -> str:
        """``name@version``, how the spec is referred to in messages."""
        return f"{self.name}@{self.version}"

    def state(self, name: str) -> StateSpec:
        """The `StateSpec` called ``name`` (KeyError if there is none)."""
        for state in self.states:
            if state.name == name:
                return state
        raise KeyError(f"workflow {self.key} has no state {name!r}")

    @property
    def state_names(self) -> tuple[str, ...]:
        """Every state name, in declaration order."""
        return tuple(s.name for s in self.states)

    @property
    def non_terminal(self) -> tuple[str, ...]:
        """Names of the states a case can still leave."""
        return tuple(s.name for s in self.states if not s.terminal)

    @property
    def triggers(self) -> tuple[str, ...]:
        """Every trigger name, in first-declared order."""
        return tuple(dict.fromkeys(t.trigger for t in self.transitions))

    def label(self, lang: str = "en") -> str:
        """The workflow's label in ``lang`` ("zh" or "en"), falling back to its name."""
        return self.labels.get("zh" if lang.startswith("zh") else "en") or self.name

    # -- validation -------------------------------------------------------------

    def problems(self) -> list[SpecProblem]:
        """Every structural problem of this spec (empty when it is valid)."""
        out: list[SpecProblem] = []
        add = out.append
        if not self.name or not isinstance(self.name, str):
            add(SpecProblem("name", "the workflow has no name", "cases refer to it by name"))
        if not isinstance(self.version, int) or isinstance(self.version, bool) or self.version < 1:
            add(SpecProblem("version", f"version {self.version!r} is not a positive integer",
                            "versions are numbered 1, 2, ..."))
        names: dict[str, int] = {}
        for i, state in enumerate(self.states):
            if not state.name:
                add(SpecProblem(f"states[{i}]", "a state has no name", ""))
            if state.name in names:
                add(SpecProblem(f"states[{i}]", f"duplicate state name {state.name!r}",
                                f"already declared at states[{names[state.name]}]"))
            names.setdefault(state.name, i)
            if state.deadline is not None and state.deadline <= timedelta(0):
                add(SpecProblem(f"states[{i}] ({state.name})",
                                f"deadline {state.deadline} is not positive", ""))
            if state.terminal and (state.deadline is not None or state.on_breach):
                add(SpecProblem(f"states[{i}] ({state.name})",
                                "a terminal state has a deadline or on_breach",
                                "a case never leaves a terminal state"))
        if not self.states:
            add(SpecProblem("states", "the workflow has no states", ""))
        if self.initial not in names:
            add(SpecProblem("initial", f"initial state {self.initial!r} is not declared",
                            f"declared states: {', '.join(names) or '(none)'}"))
        terminal = {s.name for s in self.states if s.terminal}
        non_terminal = [s.name for s in self.states if not s.terminal]
        leaves: set[str] = set()
        edges: dict[str, set[str]] = defaultdict(set)
        seen: dict[tuple[str, str, str | None], int] = {}
        for i, tr in enumerate(self.transitions):
            where = f"transitions[{i}] ({tr.trigger})"
            if not tr.trigger or not tr.trigger.isidentifier():
                add(SpecProblem(where, f"trigger name {tr.trigger!r} is not an identifier",
                                "triggers are used as names in code and URLs"))
            if tr.trigger in RESERVED_TRIGGERS:
                reserved = ", ".join(sorted(RESERVED_TRIGGERS))
                add(SpecProblem(where, f"trigger name {tr.trigger!r} is reserved",
                                f"the engine records {reserved} itself"))
            sources = tr.sources(non_terminal)
            if tr.source != "*" and not sources:
                add(SpecProblem(where, "the transition has no source state", ""))
            for src in sources:
                if src not in names:
                    add(SpecProblem(where, f"unknown source state {src!r}",
                                    f"declared states: {', '.join(names)}"))
                elif src in terminal:
                    add(SpecProblem(where, f"source state {src!r} is terminal",
                                    "a case never leaves a terminal state"))
                key = (tr.trigger, src, tr.dest)
                if key in seen:
                    add(SpecProblem(where, f"duplicate transition {tr.trigger!r} from {src!r}",
                                    f"same as transitions[{seen[key]}]"))
                seen.setdefault(key, i)
                if tr.dest is not None:
                    edges[src].add(tr.dest)
                    if tr.dest != src:
                        leaves.add(src)
            if tr.dest is not None and tr.dest not in names:
                add(SpecProblem(where, f"unknown dest state {tr.dest!r}",
                                f"declared states: {', '.join(names)}"))
            for field in tr.choices:
                if not tr.choices[field]:
                    add(SpecProblem(where, f"choices for {field!r} are empty", ""))
        # Reachability from the initial state.
        if self.initial in names:
            reached = {self.initial}
            todo = [self.initial]
            while todo:
                for nxt in edges.get(todo.pop(), ()):
                    if nxt not in reached:
                        reached.add(nxt)
                        todo.append(nxt)
            for state in self.states:
                if state.name and state.name not in reached:
                    add(SpecProblem(f"states[{names[state.name]}] ({state.name})",
                                    f"state {state.name!r} is unreachable",
                                    f"no chain of transitions leads there from {self.initial!r}"))
        for state in self.states:
            if not state.terminal and state.name not in leaves and state.name in names:
                add(SpecProblem(f"states[{names[state.name]}] ({state.name})",
                                f"non-terminal state {state.name!r} has no way out",
                                "mark it terminal or add a transition leaving it"))
            if state.on_breach:
                ok = any(
                    tr.trigger == state.on_breach and tr.dest is not None
                    and tr.dest != state.name and state.name in tr.sources(non_terminal)
                    for tr in self.transitions
                )
                if not ok:
                    add(SpecProblem(f"states[{names.get(state.name, '?')}] ({state.name})",
                                    f"on_breach trigger {state.on_breach!r} does not leave "
                                    f"state {state.name!r}",
                                    "the breach trigger must be a transition out of the state"))
            if state.on_breach and state.deadline is None:
                add(SpecProblem(f"states[{names.get(state.name, '?')}] ({state.name})",
                                "on_breach is set but there is no deadline",
                                "a breach needs a deadline"))
        return out

    # -- (de)serialisation ----------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorkflowSpec:
        """Build a spec from plain data (as loaded from JSON or YAML).

        Shape errors (unknown keys, wrong types) and structural problems are all
        reported together in one `SpecError`.

        Example:
            >>> WorkflowSpec.from_dict({"name": "x", "version": 1, "initial": "a",
            ...     "states": [{"name": "a", "terminal": True}], "transitions": []}).initial
            'a'
        """
        try:
            return converter.structure(dict(data), cls)
        except SpecError:
            raise
        except cattrs.BaseValidationError as exc:
            inner = _find_spec_error(exc)
            if inner is not None:
                raise inner from None
            problems = []
            for message in cattrs.transform_error(exc, path="spec"):
                where, _, what = message.rpartition(" @ ")
                problems.append(SpecProblem(what or "spec", where or message, ""))
            raise SpecError(str(data.get("name", "(unnamed)")), problems) from None
        except (TypeError, ValueError, KeyError) as exc:
            raise SpecError(str(data.get("name", "(unnamed)")),
                            [SpecProblem("spec", str(exc), "")]) from None

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-able data that `from_dict` reads back to an equal spec.

        Example:
            >>> from gridflow.workflows import GRID_CASE
            >>> GRID_CASE.to_dict()["name"]
            'grid_case'
        """
        out: dict[str, Any] = converter.unstructure(self)
        return out

    @classmethod
    def load(cls, path: str | Path) -> WorkflowSpec:
        """Read a spec from a ``.json``, ``.yaml`` or ``.yml`` file.

        YAML needs PyYAML (the ``gridflow[yaml]`` extra); it is read with
        ``safe_load``, which never constructs Python objects.

        Example:
            >>> import tempfile, os
            >>> p = os.path.join(tempfile.mkdtemp(), "w.json")
            >>> _ = open(p, "w").write(json.dumps({"name": "x", "version": 1, "initial": "a",
            ...     "states": [{"name": "a", "terminal": True}], "transitions": []}))
            >>> WorkflowSpec.load(p).name
            'x'
        """
        path = Path(path)
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError as exc:  # pragma: no cover - depends on the environment
                raise SpecError(path.name, [SpecProblem(
                    str(path), "PyYAML is not installed", "pip install 'gridflow[yaml]'")]) from exc
            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                problem = SpecProblem(str(path), f"invalid YAML: {exc}")
                raise SpecError(path.name, [problem]) from None
        else:
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise SpecError(path.name, [SpecProblem(
                    f"{path}:{exc.lineno}:{exc.colno}", f"invalid JSON: {exc.msg}")]) from None
        if not isinstance(data, Mapping):
            raise SpecError(path.name, [SpecProblem(str(path), "the file does not hold a mapping",
                                                    "a spec is an object with name, states...")])
        return cls.from_dict(data)
