"""Workflow specs as data: states, transitions, roles, labels; validated on construction.

A spec is pure data (no code): guards and effects are referred to by name and
resolved by the engine from plugins, so loading a spec from YAML or JSON never
executes anything from it.

Building from data (`WorkflowSpec.from_dict`, `WorkflowSpec.load`) is strict:
nothing is coerced (a string is not a list, not a bool; a float is not an int),
and every shape error is reported together with the semantic problems of the
parts that could be built. The Python constructors are lenient in one way only:
a bare string where a tuple of names is expected is one name
(``TransitionSpec(..., requires="reason")`` needs the field ``reason``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

import gridflow.convert as _convert
from gridflow._errors import InvalidArgument, SpecError, SpecProblem, UnknownState
from gridflow._speccheck import (
    MAX_DEADLINE,
    MAX_EXPANDED_TRANSITIONS,
    MAX_VERSION,
    OVERDUE_KEY,
    RESERVED_TRIGGERS,
    check,
)
from gridflow._specload import (
    MAX_SPEC_BYTES,
    MAX_SPEC_DEPTH,
    MAX_SPEC_NODES,
    personal_policy,
    personal_to_dict,
    read_spec,
    spec_path,
)
from gridflow.convert import ShapeError, describe, shorten

if TYPE_CHECKING:
    from gridflow.personal.policy import PersonalPolicy

__all__ = [
    "MAX_DEADLINE",
    "MAX_EXPANDED_TRANSITIONS",
    "MAX_SPEC_BYTES",
    "MAX_SPEC_DEPTH",
    "MAX_SPEC_NODES",
    "MAX_VERSION",
    "OVERDUE_KEY",
    "RESERVED_TRIGGERS",
    "RoleSpec",
    "StateSpec",
    "TransitionSpec",
    "WorkflowSpec",
]

#: Set while `WorkflowSpec.from_dict` builds a spec it validates itself.
_UNCHECKED: ContextVar[bool] = ContextVar("gridflow_spec_unchecked", default=False)


def _zh(lang: object) -> bool:
    if not isinstance(lang, str):
        raise InvalidArgument(f"label(lang=...) takes a language code such as 'zh' or 'en', "
                              f"got {type(lang).__name__}")
    return lang.startswith("zh")


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
        return (self.label_zh if _zh(lang) else self.label_en) or self.name


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
        return (self.label_zh if _zh(lang) else self.label_en) or self.trigger


@attrs.frozen
class RoleSpec:
    """A role a spec declares itself, so a YAML workflow needs no plugin for it.

    A spec's own roles count as registered for that spec only (plugins add
    roles for every workflow with `gridflow_roles`).

    Example:
        >>> RoleSpec("electrician", "电工", "Electrician").label("zh")
        '电工'
    """

    name: str
    label_zh: str = ""
    label_en: str = ""

    def label(self, lang: str = "en") -> str:
        """The label in ``lang`` ("zh" or "en"), falling back to the name."""
        return (self.label_zh if _zh(lang) else self.label_en) or self.name


def _states(value: Iterable[StateSpec]) -> tuple[StateSpec, ...]:
    return tuple(value)


def _transitions(value: Iterable[TransitionSpec]) -> tuple[TransitionSpec, ...]:
    return tuple(value)


def _roles(value: Iterable[RoleSpec | str]) -> tuple[RoleSpec, ...]:
    # From Python, a bare role name is a role without labels.
    return tuple(RoleSpec(r) if isinstance(r, str) else r for r in value)


@attrs.frozen
class WorkflowSpec:
    """A whole workflow: its states, transitions, roles and labels, validated when built.

    Construction raises `SpecError` listing **every** structural problem at
    once (unknown or duplicate states, unreachable states, a non-terminal
    state with no way out, a breach trigger that does not leave its state or
    that the timer may not fire, reserved trigger names...). Whether guards,
    effects and roles are registered is checked when an `Engine` registers the
    spec; the roles the spec declares itself (``roles``) count as registered.

    Example:
        >>> spec = WorkflowSpec.from_dict({
        ...     "name": "ticket", "version": 1, "initial": "open",
        ...     "roles": [{"name": "electrician", "label_zh": "电工"}],
        ...     "states": [{"name": "open", "deadline": "3d"},
        ...                {"name": "done", "terminal": True}],
        ...     "transitions": [{"trigger": "finish", "source": "open", "dest": "done",
        ...                      "roles": ["electrician"]}],
        ... })
        >>> spec.state("open").deadline
        datetime.timedelta(days=3)
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
    roles: tuple[RoleSpec, ...] = attrs.field(default=(), converter=_roles)
    #: The declared personal fields (PIPL), or ``None``: a
    #: `gridflow.personal.policy.PersonalPolicy`; in spec files, the ``personal``
    #: section (`gridflow._specload.personal_policy`).
    personal: PersonalPolicy | None = None

    def __attrs_post_init__(self) -> None:
        if _UNCHECKED.get():
            return
        problems = self.problems()
        if problems:
            raise SpecError(self.name if isinstance(self.name, str) and self.name
                            else "(unnamed)", problems)

    # -- look-ups ---------------------------------------------------------------

    @property
    def key(self) -> str:
        """``name@version``, how the spec is referred to in messages."""
        return f"{self.name}@{self.version}"

    def state(self, name: str) -> StateSpec:
        """The `StateSpec` called ``name`` (`UnknownState`, also a KeyError, if there is
        none)."""
        for state in self.states:
            if state.name == name:
                return state
        shown = repr(name) if isinstance(name, str) else f"named by a {type(name).__name__}"
        raise UnknownState(f"workflow {self.key} has no state {shown[:60]}; its states: "
                           f"{', '.join(self.state_names)}")

    @functools.cached_property
    def fingerprint(self) -> str:
        """The SHA-256 (hex) of the spec's canonical form: the canonical JSON of
        `to_dict` (sorted keys, no spaces). Two specs have the same fingerprint
        exactly when they are equal; `Engine.open` records it in each case's
        first event, and `Engine.verify` checks it.

        Example:
            >>> from gridflow.workflows import GRID_CASE
            >>> len(GRID_CASE.fingerprint), GRID_CASE.fingerprint == GRID_CASE.fingerprint
            (64, True)
        """
        import hashlib

        from gridflow.model import canonical_json

        return hashlib.sha256(canonical_json(self.to_dict()).encode()).hexdigest()

    @property
    def state_names(self) -> tuple[str, ...]:
        """Every state name, in declaration order."""
        return tuple(s.name for s in self.states)

    @functools.cached_property
    def non_terminal(self) -> tuple[str, ...]:
        """Names of the states a case can still leave (computed once: callers ask
        for it per transition, and ``"*"`` sources expand to it)."""
        return tuple(s.name for s in self.states if not s.terminal)

    @property
    def triggers(self) -> tuple[str, ...]:
        """Every trigger name, in first-declared order."""
        return tuple(dict.fromkeys(t.trigger for t in self.transitions))

    def label(self, lang: str = "en") -> str:
        """The workflow's label in ``lang`` ("zh" or "en"), falling back to its name."""
        return self.labels.get("zh" if _zh(lang) else "en") or self.name

    # -- validation -------------------------------------------------------------

    def problems(self) -> list[SpecProblem]:
        """Every structural problem of this spec (empty when it is valid).

        Example:
            >>> spec = WorkflowSpec.from_dict({"name": "x", "version": 1, "initial": "a",
            ...     "states": [{"name": "a", "terminal": True}], "transitions": []})
            >>> spec.problems()
            []
        """
        return check(self)

    # -- (de)serialisation ----------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorkflowSpec:
        """Build a spec from plain data (as loaded from JSON or YAML), strictly.

        Nothing is coerced: ``requires: reason`` is refused (write ``[reason]``),
        ``terminal: "false"`` is not a bool, ``version: 1.9`` is not an int.
        Durations are ISO 8601 (``P5D``, ``PT4H30M``) or short (``3d``, ``2h``,
        ``90m``, ``45s``, ``1d12h``). Shape errors (unknown keys, wrong types),
        with a path like ``spec.transitions[3].requires``, are reported in one
        `SpecError` together with the structural problems of every part that
        could be built.

        Example:
            >>> WorkflowSpec.from_dict({"name": "x", "version": 1, "initial": "a",
            ...     "states": [{"name": "a", "terminal": True}], "transitions": []}).initial
            'a'
            >>> WorkflowSpec.from_dict({"name": "x", "version": 1, "initial": "a",
            ...     "states": [{"name": "a", "terminal": "false"}], "transitions": []})
            Traceback (most recent call last):
            ...
            gridflow._errors.SpecError: workflow spec 'x' has 1 problem(s):
              - spec.states[0].terminal: expected true or false, got the string 'false' (write...
        """
        built = _Builder()
        kwargs = built.workflow(data)
        token = _UNCHECKED.set(True)
        try:
            spec = cls(**kwargs)
        finally:
            _UNCHECKED.reset(token)
        problems = list(built.problems)
        if built.checkable:
            problems += [p for p in check(spec, graph=built.graph) if not built.hides(p)]
        if problems:
            name = data.get("name") if isinstance(data, Mapping) else None
            raise SpecError(name if isinstance(name, str) and name else "(unnamed)", problems)
        return spec

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-able data that `from_dict` reads back to an equal spec.

        Example:
            >>> from gridflow.workflows import GRID_CASE
            >>> GRID_CASE.to_dict()["name"]
            'grid_case'
        """
        personal, bare = self.personal, self
        if personal is not None:
            token = _UNCHECKED.set(True)
            try:
                bare = attrs.evolve(self, personal=None)
            finally:
                _UNCHECKED.reset(token)
        _resolved()  # the converter reads the resolved annotations
        out: dict[str, Any] = _convert.converter.unstructure(bare)
        # A spec without personal fields keeps the canonical form (and fingerprint) it
        # had before specs could declare them.
        del out["personal"]
        if personal is not None:
            out["personal"] = personal_to_dict(personal)
        return out

    @classmethod
    def load(cls, path: str | Path) -> WorkflowSpec:
        """Read a spec from a ``.json``, ``.yaml`` or ``.yml`` file.

        YAML needs PyYAML (the ``gridflow[yaml]`` extra); it is read by a safe
        loader, which never constructs Python objects. Hostile input is refused
        as `SpecError` before it is walked: files over 1 MiB, nesting deeper than
        64 levels, more than 100,000 values once YAML aliases are expanded (the
        limits are `MAX_SPEC_BYTES`, `MAX_SPEC_DEPTH` and `MAX_SPEC_NODES`), and a
        key given twice in one mapping.

        Example:
            >>> import json, tempfile, os
            >>> p = os.path.join(tempfile.mkdtemp(), "w.json")
            >>> _ = open(p, "w").write(json.dumps({"name": "x", "version": 1, "initial": "a",
            ...     "states": [{"name": "a", "terminal": True}], "transitions": []}))
            >>> WorkflowSpec.load(p).name
            'x'
        """
        path = spec_path(path)
        data = read_spec(path)
        if not isinstance(data, Mapping):
            raise SpecError(path.name, [SpecProblem(str(path), "the file does not hold a mapping",
                                                    "a spec is an object with name, states...")])
        return cls.from_dict(data)


# -- building from data -----------------------------------------------------------------

#: Fields whose shape error leaves the graph of states and transitions unknown, so
#: reachability and "no way out" are not checked (they would report noise), nor is
#: anything else about the state or transition that has it.
_GRAPH_FIELDS = {"name", "terminal", "trigger", "source", "dest"}
#: The semantic problem a stand-in for a malformed field would cause, by field.
_CAUSED = {"deadline": "on_breach is set but there is no deadline"}
#: What a required field stands in with when it is missing or malformed.
_STAND_IN: dict[str, Any] = {"name": "", "version": 1, "initial": "", "trigger": "",
                             "source": (), "dest": None}


def _fields(cls: type[Any]) -> dict[str, Any]:
    """The attrs fields of a spec class by name, with their types resolved."""
    return _resolved()[cls]


@functools.cache
def _resolved() -> dict[type[Any], dict[str, Any]]:
    # On first use, not at import: only specs built from data or written out need
    # resolved annotations, and resolving them loads the personal-data policy.
    from gridflow.personal.policy import PersonalPolicy

    # Module globals too, where cattrs and typing.get_type_hints look the name up.
    globals().setdefault("PersonalPolicy", PersonalPolicy)
    return {cls: {f.name: f for f in attrs.fields(attrs.resolve_types(cls))}
            for cls in (RoleSpec, StateSpec, TransitionSpec, WorkflowSpec)}


class _Builder:
    """Structures spec data field by field through the strict converter hooks,
    recording each shape error and standing in a default for the bad field, so
    the rest of the spec is still built and checked."""

    def __init__(self) -> None:
        self.problems: list[SpecProblem] = []
        #: Where-prefixes (``states[2]``, ``version``) whose semantic problems may
        #: all stem from a stand-in value, so they are not reported; and pairs of
        #: (where-prefix, what) for single problems a stand-in causes.
        self.hidden: set[str] = set()
        self.caused: set[tuple[str, str]] = set()
        self.checkable = True  # False: the shape is too broken for semantic checks
        self.graph = True

    def shape(self, where: str, what: str, why: str = "") -> None:
        self.problems.append(SpecProblem(where, what, why))

    def workflow(self, data: Any) -> dict[str, Any]:
        kwargs = self.fields(WorkflowSpec, data, "spec",
                             nested={"states", "transitions", "roles", "personal"})
        if kwargs is None:
            self.checkable = False
            # Only the spec's own fields: _STAND_IN also has the transitions'.
            return {key: _STAND_IN[key] for key in ("name", "version", "initial")} | {
                "states": (), "transitions": ()}
        if "personal" in kwargs:
            policy, problems = personal_policy(kwargs.pop("personal"))
            self.problems.extend(problems)
            if policy is not None:
                kwargs["personal"] = policy
        for key in ("name", "version", "initial"):
            kwargs.setdefault(key, _STAND_IN[key])
        for key, cls in (("states", StateSpec), ("transitions", TransitionSpec),
                         ("roles", RoleSpec)):
            items = kwargs.pop(key, None)
            if items is not None:
                kwargs[key] = self.items(cls, items, key)
        for key in ("states", "transitions"):
            kwargs.setdefault(key, ())
        return kwargs

    def items(self, cls: type[Any], data: Any, key: str) -> tuple[Any, ...]:
        where = f"spec.{key}"
        if not isinstance(data, list | tuple):
            self.shape(where, f"expected a list, got {describe(data)}",
                       f"write {key}: as a list of mappings, one per item")
            self.hidden.add(key)
            if key != "roles":
                self.checkable = False
            return ()
        out = []
        for i, item in enumerate(data):
            kwargs = self.fields(cls, item, f"{where}[{i}]")
            if kwargs is None:
                self.hidden.add(f"{key}[{i}]")
                self.graph = False
                kwargs = {}
            for name, field in _fields(cls).items():
                if field.default is attrs.NOTHING:
                    kwargs.setdefault(name, _STAND_IN[name])
            out.append(cls(**kwargs))
        return tuple(out)

    def fields(self, cls: type[Any], data: Any, where: str,
               nested: frozenset[str] | set[str] = frozenset()) -> dict[str, Any] | None:
        """Keyword arguments of ``cls`` from ``data`` (None if it is not a mapping)."""
        if not isinstance(data, Mapping):
            self.shape(where, f"expected a mapping, got {describe(data)}",
                       "write it as {key: value, ...}")
            return None
        fields = _fields(cls)
        extra = [k for k in data if k not in fields]
        if extra:
            shown = ", ".join(k if isinstance(k, str) and len(k) <= 40 else
                              (shorten(k) if isinstance(k, str) else describe(k))
                              for k in extra[:10])
            more = f" and {len(extra) - 10} more" if len(extra) > 10 else ""
            self.shape(where, f"extra fields found ({shown}{more})",
                       f"allowed fields: {', '.join(fields)}")
        kwargs: dict[str, Any] = {}
        element = where.split(".", 1)[1] if "." in where else ""
        for name, field in fields.items():
            if name not in data:
                if field.default is attrs.NOTHING:
                    self.shape(f"{where}.{name}", "required field missing",
                               f"{cls.__name__} needs {name}")
                    self.taint(element, name)
                continue
            if name in nested:
                kwargs[name] = data[name]
                continue
            try:
                kwargs[name] = _convert.converter.structure(data[name], field.type)
            except ShapeError as exc:
                path = "".join(f"[{step}]" if isinstance(step, int) else f"[{step!r}]"
                               for step in exc.path)
                self.shape(f"{where}.{name}{path}", f"expected {exc.expected}, got {exc.got}",
                           exc.hint)
                self.taint(element, name)
        return kwargs

    def taint(self, element: str, field: str) -> None:
        # element: "" at the top level, else "states[2]", "transitions[0]", "roles[1]".
        if not element:
            self.hidden.add(field)
            if field in ("states", "transitions"):
                self.checkable = False
        elif field in _GRAPH_FIELDS:
            self.hidden.add(element)
            self.graph = self.graph and element.startswith("roles")
        elif field in _CAUSED:
            self.caused.add((element, _CAUSED[field]))

    def hides(self, problem: SpecProblem) -> bool:
        """Whether ``problem`` may be an effect of a stand-in, not of the spec."""
        prefix = problem.where.split(" ", 1)[0]
        return prefix in self.hidden or (prefix, problem.what) in self.caused

