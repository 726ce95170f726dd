"""Migrating cases that are in flight to a new version of their workflow.

A `MigrationPlan` names a workflow, the version its cases run on
(``source_version``) and the version they move to (``target_version``),
maps every non-terminal source state to a target state (a state whose name
survives maps to itself unless the plan says otherwise), and may change the
data on the way (constant keys set or removed, and named data effects).

`Engine.plan_migration(plan)` is the dry run: it checks the plan against
both specs and the store, and reports per source state how many cases
would move where, and every case that cannot, with the reason.
`Engine.migrate(plan, ...)` moves each case in its own atomic step: one
``migrate`` event in the case's hash chain (both versions, both
fingerprints, the state mapping, the data changes) and the row changed by
the same fold as every step (`gridflow.fold.evolve`), so `Engine.verify`
and `Engine.replay` follow the version change.

The deadline of a moved case is recomputed under the target version's rules
*from the time the case entered its current state*: the clock that is
running keeps its start, only the limit changes (a state whose limit went
from 1 to 2 days gives a case that entered it 1.5 days ago half a day more;
a limit that is now already past makes the case due at the next `tick`). A
deadline the old rules would not have given (an approved extension, a
plugin's answer, a case already marked overdue) is kept as it is.

Example:
    >>> import gridflow
    >>> plan = MigrationPlan("grid_case", 1, 2, states={"revisit": "look_back"})
    >>> plan.key
    'grid_case@1 -> @2'
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from gridflow import core
from gridflow._bridge import committing
from gridflow._errors import (
    ConcurrencyError,
    GridflowError,
    InvalidArgument,
    MigrationError,
    SpecError,
    UnknownWorkflow,
)
from gridflow.fold import audit, evolve
from gridflow.model import Actor, Case, Event
from gridflow.spec import OVERDUE_KEY, WorkflowSpec
from gridflow.store import Write

if TYPE_CHECKING:
    from gridflow.engine import Engine

__all__ = [
    "GRID_CASE_V1_TO_V2",
    "DataEffect",
    "MigrationPlan",
    "MigrationReport",
    "Refusal",
    "fingerprint",
    "load_plan",
]

#: A named data effect of a plan: called with the case (as it is on the source
#: version) and the target state; returns the data keys to set (values in the
#: JSON value domain). Keys to remove go in `MigrationPlan.unset`.
DataEffect = Callable[[Case, str], Mapping[str, Any] | None]

#: How many cases `Engine.migrate` and `Engine.plan_migration` read per page.
PAGE = 5000


def fingerprint(spec: WorkflowSpec) -> str:
    """The spec's fingerprint: SHA-256 (hex) of its canonical JSON (`WorkflowSpec.fingerprint`).

    Example:
        >>> import gridflow
        >>> from gridflow.workflows import GRID_CASE
        >>> gridflow.fingerprint(GRID_CASE) == GRID_CASE.fingerprint
        True
    """
    if not isinstance(spec, WorkflowSpec):
        raise InvalidArgument(f"fingerprint() takes a WorkflowSpec, got {type(spec).__name__}")
    return spec.fingerprint


def _states(value: Mapping[str, str] | None) -> dict[str, str]:
    return dict(value or {})


def _effects(value: Mapping[str, DataEffect] | None) -> dict[str, DataEffect]:
    return dict(value or {})


def _names(value: Iterable[str] | str | None, key: str = "unset") -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    # A plan file's `effects: 3` was a bare TypeError; `unset: {a: 1}` took the keys.
    if isinstance(value, Mapping) or not isinstance(value, Iterable) \
            or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"migration plan: '{key}' is a name or a list of names, got "
                              f"{type(value).__name__}")
    return tuple(value)


@attrs.frozen
class MigrationPlan:
    """How cases of ``workflow@source_version`` move to ``target_version``.

    ``states`` maps source state names to target state names; every
    non-terminal source state not named maps to the state of the same name
    in the target version (a plan is refused if that state does not exist).
    Terminal states may be mapped too; cases in an unmapped terminal state
    stay on the source version (they are reported, not moved).
    ``set`` and ``unset`` change data keys on every moved case; ``effects``
    are named Python callables (`DataEffect`) run per case, whose results
    are set after ``set``. ``name`` is recorded in each ``migrate`` event.

    Example:
        >>> plan = MigrationPlan("grid_case", 1, 2, states={"revisit": "look_back"},
        ...                      set={"rules": "2027"}, name="rules-2027")
        >>> plan.states, plan.name
        ({'revisit': 'look_back'}, 'rules-2027')
    """

    workflow: str
    source_version: int
    target_version: int
    states: dict[str, str] = attrs.field(factory=dict, converter=_states)
    set: dict[str, Any] = attrs.field(factory=dict, converter=dict)
    unset: tuple[str, ...] = attrs.field(default=(), converter=_names)
    effects: dict[str, DataEffect] = attrs.field(factory=dict, converter=_effects)
    name: str = ""

    @classmethod
    def between(cls, source: WorkflowSpec, target: WorkflowSpec, **kwargs: Any
                ) -> MigrationPlan:
        """The plan from ``source`` to ``target`` (two versions of one workflow);
        ``kwargs`` are the other fields (``states``, ``set``, ``effects``...).
        Handy for a plan shipped next to the specs it joins.

        Example:
            >>> import attrs
            >>> from gridflow.workflows import GRID_CASE
            >>> MigrationPlan.between(GRID_CASE, attrs.evolve(GRID_CASE, version=2)).key
            'grid_case@1 -> @2'
        """
        if source.name != target.name:
            raise InvalidArgument(f"a plan joins two versions of one workflow, not "
                                  f"{source.key} and {target.key}")
        return cls(source.name, source.version, target.version, **kwargs)

    @property
    def key(self) -> str:
        """``workflow@source -> @target``, how the plan is named in messages."""
        return f"{self.workflow}@{self.source_version} -> @{self.target_version}"

    def state_map(self, source: WorkflowSpec, target: WorkflowSpec) -> dict[str, str]:
        """The whole mapping: every non-terminal state of ``source`` (identity
        where the plan names none), plus any terminal state the plan maps.
        Raises `MigrationError` listing every state that cannot be mapped.

        Example:
            >>> from gridflow.workflows import GRID_CASE
            >>> plan = MigrationPlan("grid_case", 1, 1)
            >>> plan.state_map(GRID_CASE, GRID_CASE)["joint_action"]
            'joint_action'
        """
        problems = self.problems(source, target)
        if problems:
            raise MigrationError(self.key, problems)
        names = set(target.state_names)
        out = {s: self.states.get(s, s) for s in source.non_terminal}
        out.update({s: t for s, t in self.states.items() if s not in out})
        assert set(out.values()) <= names
        return out

    def problems(self, source: WorkflowSpec, target: WorkflowSpec) -> list[str]:
        """Every reason this plan cannot map ``source``'s states onto ``target``.

        Example:
            >>> from gridflow.workflows import GRID_CASE
            >>> MigrationPlan("grid_case", 1, 1, states={"nope": "x"}).problems(
            ...     GRID_CASE, GRID_CASE)  # doctest: +ELLIPSIS
            ["the plan maps 'nope', which is not a state of grid_case@1", ...]
        """
        problems = []
        src, dst = set(source.state_names), set(target.state_names)
        for name, to in self.states.items():
            if name not in src:
                problems.append(f"the plan maps {name!r}, which is not a state of {source.key}")
            if to not in dst:
                problems.append(f"the plan maps {name!r} to {to!r}, which is not a state of "
                                f"{target.key}; its states: {', '.join(target.state_names)}")
        for name in source.non_terminal:
            if name not in self.states and name not in dst:
                problems.append(f"state {name!r} of {source.key} is not mapped and "
                                f"{target.key} has no state of that name; map it in "
                                f"states={{{name!r}: ...}}")
        return problems

    def to_dict(self) -> dict[str, Any]:
        """The plan as plain data (the plan file format; effects by name only).

        Example:
            >>> MigrationPlan("grid_case", 1, 2, states={"a": "b"}).to_dict()["states"]
            {'a': 'b'}
        """
        return {"workflow": self.workflow, "source_version": self.source_version,
                "target_version": self.target_version, "states": dict(self.states),
                "set": dict(self.set), "unset": list(self.unset),
                "effects": sorted(self.effects), "name": self.name}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any],
                  effects: Mapping[str, DataEffect] | None = None) -> MigrationPlan:
        """Build a plan from plain data (a plan file); ``effects`` resolves the
        effect names the data lists.

        Example:
            >>> MigrationPlan.from_dict({"workflow": "grid_case", "source_version": 1,
            ...                          "target_version": 2}).key
            'grid_case@1 -> @2'
        """
        if not isinstance(data, Mapping):
            raise InvalidArgument("a migration plan is a mapping (workflow, source_version, "
                                  "target_version, states, set, unset, effects, name)")
        known = {"workflow", "source_version", "target_version", "states", "set", "unset",
                 "effects", "name"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidArgument(f"migration plan: unknown key(s) {', '.join(unknown)}; "
                                  f"known: {', '.join(sorted(known))}")
        for key in ("workflow",):
            if not isinstance(data.get(key), str) or not data.get(key):
                raise InvalidArgument(f"migration plan: {key!r} must be a non-empty string")
        for key in ("source_version", "target_version"):
            if data.get(key).__class__ is not int:
                raise InvalidArgument(f"migration plan: {key!r} must be an integer")
        states = data.get("states") or {}
        if not isinstance(states, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in states.items()):
            raise InvalidArgument("migration plan: 'states' maps state names to state names")
        table = effects or {}
        chosen: dict[str, DataEffect] = {}
        for name in _names(data.get("effects"), "effects"):
            if name not in table:
                raise InvalidArgument(f"migration plan: unknown data effect {name!r}; known: "
                                      f"{', '.join(sorted(table)) or '(none)'}")
            chosen[name] = table[name]
        set_ = data.get("set") or {}
        if not isinstance(set_, Mapping):
            raise InvalidArgument("migration plan: 'set' is a mapping of data keys to values")
        return cls(data["workflow"], data["source_version"], data["target_version"],
                   states=states, set=set_, unset=_names(data.get("unset"), "unset"),
                   effects=chosen, name=str(data.get("name") or ""))


def load_plan(path: str | Path, effects: Mapping[str, DataEffect] | None = None
              ) -> MigrationPlan:
    """Read a plan file (``.json``, ``.yaml`` or ``.yml``; see `MigrationPlan.from_dict`).

    Example:
        >>> import os, tempfile
        >>> p = os.path.join(tempfile.mkdtemp(), "plan.json")
        >>> _ = open(p, "w").write('{"workflow": "grid_case", "source_version": 1, '
        ...                        '"target_version": 2, "states": {"revisit": "look_back"}}')
        >>> load_plan(p).states
        {'revisit': 'look_back'}
    """
    return MigrationPlan.from_dict(read_plan_data(path), effects)


def read_plan_data(path: str | Path) -> Any:
    """The plain data of a plan file (JSON, or YAML by its suffix).

    Read within the limits of a spec file (`gridflow.spec.MAX_SPEC_BYTES`, nesting
    and YAML aliases, a key given twice), so a hostile file is an `InvalidArgument`,
    not a ``RecursionError`` or a blown memory.
    """
    from gridflow._specload import read_spec

    try:
        return read_spec(path)  # a non-path is refused too
    except SpecError as exc:
        # The problem says where (file:line:column) and what; "spec" is the loader's word.
        raise InvalidArgument(f"cannot read the migration plan: {exc.problems[0]}") from None


@attrs.frozen
class Refusal:
    """One case a migration could not move, and why (nothing was stored for it)."""

    case_id: str
    state: str
    reason: str


@attrs.define
class MigrationReport:
    """What a migration did, or (``dry_run``) would do.

    ``moves`` counts cases per ``(source state, target state)``; ``refused``
    lists every case that cannot move, with the reason; ``already`` counts
    cases already on the target version (a resumed migration skips them);
    ``staying`` counts cases in unmapped terminal states; ``conflicts`` the
    cases a concurrent step changed while they were moved (each re-read and
    retried; those still conflicting after the retries are in ``skipped``).

    Example:
        >>> r = MigrationReport("grid_case@1 -> @2", True)
        >>> r.moved, r.dry_run
        (0, True)
    """

    plan: str
    dry_run: bool
    moves: Counter[tuple[str, str]] = attrs.field(factory=Counter)
    refused: list[Refusal] = attrs.field(factory=list)
    already: int = 0
    staying: int = 0
    conflicts: int = 0
    skipped: list[str] = attrs.field(factory=list)
    seconds: float = 0.0

    @property
    def moved(self) -> int:
        """How many cases moved (or, in a dry run, would move)."""
        return sum(self.moves.values())

    def by_source(self) -> dict[str, dict[str, int]]:
        """``{source state: {target state: count}}``."""
        out: dict[str, dict[str, int]] = {}
        for (src, dst), n in sorted(self.moves.items()):
            out.setdefault(src, {})[dst] = n
        return out

    def to_dict(self) -> dict[str, Any]:
        """The report as plain data (what ``gridflow migrate --json`` prints)."""
        return {"plan": self.plan, "dry_run": self.dry_run, "moved": self.moved,
                "moves": self.by_source(), "already": self.already, "staying": self.staying,
                "conflicts": self.conflicts, "skipped": list(self.skipped),
                "refused": [attrs.asdict(r) for r in self.refused]}

    def __str__(self) -> str:
        verb = "would move" if self.dry_run else "moved"
        lines = [f"migration {self.plan}{' (dry run)' if self.dry_run else ''}: "
                 f"{verb} {self.moved} case(s)"]
        for (src, dst), n in sorted(self.moves.items()):
            arrow = f"{src} -> {dst}" if src != dst else f"{src} (same name)"
            lines.append(f"  {arrow:<40} {n:>8}")
        if self.already:
            lines.append(f"  already on the target version: {self.already}")
        if self.staying:
            lines.append(f"  in unmapped terminal states (stay): {self.staying}")
        if self.conflicts:
            lines.append(f"  changed meanwhile and retried: {self.conflicts}")
        if self.skipped:
            lines.append(f"  skipped (still changing after retries): {len(self.skipped)}")
        if self.refused:
            lines.append(f"  cannot move: {len(self.refused)}")
            for r in self.refused[:20]:
                lines.append(f"    {r.case_id} ({r.state}): {r.reason}")
            if len(self.refused) > 20:
                lines.append(f"    ... and {len(self.refused) - 20} more")
        return "\n".join(lines)


# -- running (called by Engine.plan_migration / Engine.migrate) ---------------------------


@attrs.frozen
class _Checked:
    plan: MigrationPlan
    source: WorkflowSpec
    target: WorkflowSpec
    states: dict[str, str]


def check_plan(engine: Engine, plan: MigrationPlan) -> _Checked:
    """Check ``plan`` against both specs and the store; `MigrationError` lists
    every problem (nothing is stored either way)."""
    if not isinstance(plan, MigrationPlan):
        raise InvalidArgument(f"expected a gridflow.MigrationPlan, got {type(plan).__name__}")
    engine.check_definitions()
    problems: list[str] = []
    specs: list[WorkflowSpec] = []
    for version in (plan.source_version, plan.target_version):
        try:
            specs.append(engine.workflow(plan.workflow, version))
        except UnknownWorkflow as exc:
            problems.append(str(exc))
    if plan.source_version == plan.target_version:
        problems.append("the source and target versions are the same")
    if (plan.workflow, plan.target_version) in engine.retired_versions():
        problems.append(f"the target version {plan.workflow}@{plan.target_version} is retired")
    if len(specs) == 2:
        problems += plan.problems(*specs)
    if problems:
        raise MigrationError(plan.key, problems)
    source, target = specs
    return _Checked(plan, source, target, plan.state_map(source, target))


def _select(engine: Engine, plan: MigrationPlan, cases: Iterable[str] | None,
            query: Mapping[str, Any] | None) -> Iterator[Case | Refusal]:
    store = engine.store
    if cases is not None:
        if isinstance(cases, str):
            raise InvalidArgument("cases=... takes a list of case ids, not one string")
        for case_id in cases:
            found = store.get(case_id) if isinstance(case_id, str) else None
            if found is None or found.workflow != plan.workflow:
                yield Refusal(str(case_id), "", f"no {plan.workflow} case has this id")
            else:
                yield found
        return
    filters = dict(query or {})
    for bad in ("after", "limit"):
        if bad in filters:
            raise InvalidArgument(f"query=... takes store.query filters; {bad!r} is set by "
                                  "the migration itself")
    known = ("workflow", "state", "grid", "opened_from", "opened_until", "overdue_at")
    unknown = sorted(k if k.__class__ is str else repr(k) for k in filters if k not in known)
    if unknown:
        raise InvalidArgument(f"query=...: unknown filter(s) {', '.join(unknown)}; the "
                              f"filters of store.query are {', '.join(known)}")
    if filters.get("workflow", plan.workflow) != plan.workflow:
        raise InvalidArgument(f"query names workflow {filters['workflow']!r}, the plan "
                              f"{plan.workflow!r}")
    filters["workflow"] = plan.workflow
    after = None
    while True:
        page = store.query(**filters, after=after, limit=PAGE)
        yield from page.items
        if page.next is None:
            return
        after = page.next


def _entered_at(events: Sequence[Event]) -> datetime:
    """When the case entered its current state (a migration is not an entry)."""
    for event in reversed(events):
        if event.dest is not None and event.trigger != "migrate":
            return event.at
    return events[0].at


def _prepare(engine: Engine, checked: _Checked, case: Case, events: Sequence[Event],
             actor: Actor, now: datetime) -> Event | str | None:
    """The ``migrate`` event for ``case`` (whose ``events`` were read after it);
    a reason string if it cannot move; ``None`` if it stays (unmapped terminal
    state)."""
    plan, source, target = checked.plan, checked.source, checked.target
    dest = checked.states.get(case.state)
    if dest is None:
        return None
    try:
        audit(case, events, engine._spec_index)
    except GridflowError as exc:
        return f"the case fails verification: {exc}"
    data = dict(case.data)
    data.update(plan.set)
    for key in plan.unset:
        data.pop(key, None)
    for name, effect in plan.effects.items():
        try:
            out = effect(case, dest)
        except Exception as exc:
            return f"data effect {name!r} raised {exc!r}"
        if out:
            if not isinstance(out, Mapping):
                return f"data effect {name!r} returned {type(out).__name__}, not a mapping"
            data.update(out)
    entered = _entered_at(events)
    try:
        deadline = _deadline(engine, case, source, target, dest, data, entered)
        return core.migrate_event(
            case, actor, now, dest=dest, target_version=target.version,
            source_fingerprint=source.fingerprint, fingerprint=target.fingerprint,
            states=checked.states, data=data, deadline_at=deadline, plan=plan.name,
            effects=sorted(plan.effects))
    except GridflowError as exc:
        return str(exc)


def _deadline(engine: Engine, case: Case, source: WorkflowSpec, target: WorkflowSpec,
              dest: str, data: dict[str, Any], entered: datetime) -> datetime | None:
    """The deadline after the move: the target's rule counted from ``entered``;
    a deadline the source's rules would not have given is kept."""
    if case.deadline_at is None and OVERDUE_KEY in case.data:
        return None  # marked overdue: the breach stands
    old_wf = engine._get_compiled(source.name, source.version)
    new_wf = engine._get_compiled(target.name, target.version)
    old = engine._deadline(case, old_wf, core.Outcome(case.state, case.data, {}, (), None),
                           entered)
    if old != case.deadline_at:
        return case.deadline_at  # an extension, a plugin's answer: not the rule's
    moved = attrs.evolve(case, workflow_version=target.version, state=dest)
    return engine._deadline(moved, new_wf, core.Outcome(dest, data, {}, (), None), entered)


def run(engine: Engine, plan: MigrationPlan, *, actor: Actor, dry_run: bool,
        cases: Iterable[str] | None = None, query: Mapping[str, Any] | None = None,
        retries: int = 3) -> MigrationReport:
    """`Engine.plan_migration` (``dry_run=True``) and `Engine.migrate`."""
    import time

    if not isinstance(actor, Actor):
        raise InvalidArgument(f"actor must be a gridflow.Actor, got {type(actor).__name__}")
    if cases is not None and query is not None:
        raise InvalidArgument("pass cases=... or query=..., not both")
    if retries.__class__ is not int or retries < 0:
        raise InvalidArgument(f"retries must be a non-negative int, got {retries!r}")
    if cases is not None and (isinstance(cases, str) or not isinstance(cases, Iterable)):
        raise InvalidArgument(f"cases=... takes None or a list of case ids, got "
                              f"{type(cases).__name__}")
    if query is not None and not isinstance(query, Mapping):
        # query=0 or query=[] read as no filter: every case of the workflow.
        raise InvalidArgument(f"query=... takes None or a mapping of store.query filters, got "
                              f"{type(query).__name__}")
    started = time.perf_counter()
    checked = check_plan(engine, plan)
    report = MigrationReport(plan.key, dry_run)
    explicit = cases is not None
    for case in _select(engine, plan, cases, query):
        if isinstance(case, Refusal):
            report.refused.append(case)
            continue
        if not actor.can_touch(case.grid):
            # Outside the actor's grids: not this actor's to move (named only when
            # asked for by id, in the words a missing case gets).
            if explicit:
                report.refused.append(Refusal(case.id, "", f"no {plan.workflow} case has "
                                              "this id"))
            continue
        if case.workflow_version == plan.target_version:
            report.already += 1
            continue
        if case.workflow_version != plan.source_version:
            if explicit:
                report.refused.append(Refusal(
                    case.id, case.state, f"on {case.workflow}@{case.workflow_version}, not "
                    f"the plan's source version {plan.source_version}"))
            continue
        _one(engine, checked, case, actor, report, dry_run, retries)
    report.seconds = time.perf_counter() - started
    return report


_CHANGED = "(changed meanwhile)"


def _one(engine: Engine, checked: _Checked, case: Case, actor: Actor,
         report: MigrationReport, dry_run: bool, retries: int) -> None:
    plan, store = checked.plan, engine.store
    for attempt in range(retries + 1):
        events = store.events(case.id) if case.state in checked.states else ()
        if events and len(events) != case.version:
            # A step landed between reading the row and its events: read both again.
            prepared: Event | str | None = _CHANGED
        else:
            prepared = _prepare(engine, checked, case, events, actor, engine.clock.now())
        if prepared is _CHANGED:
            fresh = store.get(case.id)
            if fresh is None or fresh.workflow_version != plan.source_version:
                if fresh is not None and fresh.workflow_version == plan.target_version:
                    report.already += 1
                return
            report.conflicts += 1
            case = fresh
            if attempt == retries:
                report.skipped.append(case.id)
            continue
        if prepared is None:
            report.staying += 1
            return
        if isinstance(prepared, str):
            report.refused.append(Refusal(case.id, case.state, prepared))
            return
        if dry_run:
            report.moves[(case.state, prepared.dest or case.state)] += 1
            return
        try:
            committing()  # under AsyncEngine: a cancel now lets this case finish
            store.commit([Write(evolve(case, prepared), prepared, case.version)])
        except ConcurrencyError:
            report.conflicts += 1
            fresh = store.get(case.id)
            if fresh is None or fresh.workflow_version != plan.source_version:
                if fresh is not None and fresh.workflow_version == plan.target_version:
                    report.already += 1  # another migrator moved it
                return
            case = fresh
            if attempt == retries:
                report.skipped.append(case.id)
            continue
        report.moves[(case.state, prepared.dest or case.state)] += 1
        engine._after(evolve(case, prepared), prepared)
        return


def _grid_case_v1_to_v2() -> MigrationPlan:
    from gridflow.workflows import grid_case as v1
    from gridflow.workflows import grid_case_v2 as v2

    return MigrationPlan.between(
        v1.GRID_CASE, v2.GRID_CASE_V2, name="grid_case-1-to-2",
        effects={"grid_case2.acknowledge_dispatched": v2.acknowledged_on_migration})


GRID_CASE_V1_TO_V2: MigrationPlan = _grid_case_v1_to_v2()
"""The shipped plan moving running ``grid_case@1`` cases to ``grid_case@2``:
every non-terminal state keeps its name (``closed`` stays ``closed``;
archived and rejected cases stay on ``@1``), and a department already
dispatched counts as acknowledged (签收), see
`gridflow.workflows.grid_case_v2.acknowledged_on_migration`.

Example:
    >>> import gridflow
    >>> gridflow.GRID_CASE_V1_TO_V2.key
    'grid_case@1 -> @2'
"""
