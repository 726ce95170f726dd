"""Compile a `WorkflowSpec` into one shared transitions machine, and run steps on it.

Each spec version is compiled once. A step drives a short-lived `Step` view
of the case through ``machine.events[trigger].trigger(step)``: the machine is
never given a model (``model=None``), so no case is ever attached to it, nothing
grows with the number of cases, and no per-model callbacks leak between cases
(transitions adds a model's ``on_enter_*`` methods to the *shared* states).
Guards and effects are passed to transitions as callables, never as names,
so transitions does not resolve them with ``getattr`` on every step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

import attrs
from transitions import Machine

from gridflow._errors import SpecError, SpecProblem
from gridflow._speccheck import listing
from gridflow.plugins import Effect, Guard
from gridflow.step import Step

if TYPE_CHECKING:
    from gridflow.spec import TransitionSpec, WorkflowSpec

__all__ = ["CompiledWorkflow", "Rule", "Step", "compile_workflow"]


@attrs.frozen(slots=True)
class Rule:
    """What is checked before a trigger runs in one state: roles, fields, choices."""

    roles: frozenset[str]
    requires: tuple[str, ...]
    choices: Mapping[str, tuple[str, ...]]
    internal: bool


def _condition(name: str, guard: Guard) -> Callable[[Any], bool]:
    def check(event_data: Any) -> bool:
        step: Step = event_data.model
        try:
            reason = guard(step)
        except Exception:
            step.failed = f"guard {name!r}"
            raise
        if reason is None or reason is True:
            return True
        step.rejected = (name, "refused" if reason is False else str(reason))
        return False

    return check


def _finish(spec: TransitionSpec, effects: list[tuple[str, Effect]]) -> Callable[[Any], None]:
    # One after-callback per transition records which transition fired and runs
    # its effects in order: transitions spends ~0.6 µs on each callback it
    # invokes, and a marker plus one callback per effect was paid on every step.
    def finish(event_data: Any) -> None:
        step: Step = event_data.model
        step.fired = spec
        for name, effect in effects:
            try:
                effect(step)
            except Exception:
                step.failed = f"effect {name!r}"
                raise

    return finish


class CompiledWorkflow:
    """A spec compiled into one shared transitions `Machine` plus look-up tables.

    Built by `compile_workflow`; the engine keeps one per registered spec version.
    """

    def __init__(
        self, spec: WorkflowSpec, machine: Machine, rules: dict[str, dict[str, Rule]],
        open_guards: list[tuple[str, Guard]], open_effects: list[tuple[str, Effect]],
    ) -> None:
        self.spec = spec
        self.machine = machine
        self.rules = rules
        self.events = machine.events
        self.triggers = frozenset(spec.triggers)
        self.open_guards = open_guards
        self.open_effects = open_effects
        self.terminal = frozenset(s.name for s in spec.states if s.terminal)
        self.states = {s.name: s for s in spec.states}
        #: What opening a case checks: the open roles, fields and choices.
        self.open_rule = Rule(frozenset(spec.open_roles), spec.open_requires,
                              dict(spec.open_choices), False)

        #: (state, trigger) -> the compiled machine's own transitions, unpacked for
        #: `run`'s direct path; ``None`` when the machine has anything that path
        #: does not cover (it then always goes through ``Event.trigger``).
        self.table = _direct_table(machine)

    def allowed(self, state: str) -> list[str]:
        """Triggers defined from ``state`` (roles and guards not considered)."""
        return list(self.rules.get(state, ()))

    def run(self, step: Step) -> bool:
        """Run ``step.trigger`` on ``step`` through the machine; False if a guard refused.

        The compiled transitions machine is the semantics. For speed, `run`
        executes the machine's own `Transition` objects — their conditions,
        then the state change, then their ``after`` callbacks — without
        ``Event.trigger``'s dispatch (event data, partials, queue checks,
        logging), wherever that is provably the same: the machine has no
        prepare/before/enter/exit/finalize/exception callbacks, which
        `compile_workflow` never adds. Anything else takes ``Event.trigger``
        (`run_trigger`); a hypothesis test compares the two outcome for outcome.
        """
        table = self.table
        if table is None:
            return self.run_trigger(step)
        found = table.get((step.state, step.trigger))
        if found is None:
            return self.run_trigger(step)  # transitions raises MachineError, as before
        event = _new_event(_Event)  # no __init__ to run: the one slot is set here
        event.model = step
        for conditions, dest, after in found:
            for check, target in conditions:
                if check(event) != target:
                    break
            else:
                if dest is not None:
                    step.state = dest
                for callback in after:
                    callback(event)
                return True
        return False

    def run_trigger(self, step: Step) -> bool:
        """Run ``step.trigger`` through ``Event.trigger``, transitions' own dispatch."""
        return bool(self.events[step.trigger].trigger(step))


class _Event:
    """What conditions and callbacks read of transitions' `EventData`: the model."""

    __slots__ = ("model",)

    model: Step


_new_event = object.__new__


_Direct = dict[tuple[str, str], list[tuple[list[tuple[Any, Any]], "str | None", list[Any]]]]


def _direct_table(machine: Machine) -> _Direct | None:
    """The machine's transitions by (source, trigger), or ``None`` if the machine
    uses anything `CompiledWorkflow.run`'s direct path does not reproduce."""
    for hook in ("prepare_event", "finalize_event", "before_state_change",
                 "after_state_change", "on_exception", "on_final"):
        if getattr(machine, hook, None):
            return None
    if getattr(machine, "has_queue", False) or not machine.send_event:
        return None
    for state in machine.states.values():
        if state.on_enter or state.on_exit or getattr(state, "final", False):
            return None
    table: _Direct = {}
    for trigger, event in machine.events.items():
        for source, transitions in event.transitions.items():
            entries = []
            for t in transitions:
                if t.prepare or t.before or not all(callable(c) for c in t.after):
                    return None
                conditions = [(c.func, c.target) for c in t.conditions]
                if not all(callable(f) for f, _ in conditions):
                    return None
                entries.append((conditions, t.dest, list(t.after)))
            table[(source, trigger)] = entries
    return table


def compile_workflow(
    spec: WorkflowSpec,
    guards: Mapping[str, Guard],
    effects: Mapping[str, Effect],
    roles: Mapping[str, object] | None = None,
) -> CompiledWorkflow:
    """Compile ``spec``; guards, effects and (if given) roles must be registered.

    Raises `SpecError` listing every name that is not registered.

    Example:
        >>> from gridflow.workflows import GRID_CASE, GUARDS, EFFECTS
        >>> compiled = compile_workflow(GRID_CASE, GUARDS, EFFECTS)
        >>> sorted(compiled.allowed("reported"))
        ['mark_duplicate', 'note', 'reject', 'triage']
    """
    problems: list[SpecProblem] = []

    def resolve(kind: str, names: tuple[str, ...], table: Mapping[str, Any], where: str) -> list[
        tuple[str, Any]
    ]:
        found = []
        for name in names:
            if name in table:
                found.append((name, table[name]))
            else:
                problems.append(SpecProblem(
                    where, f"{kind} {name!r} is not registered",
                    f"registered {kind}s: {', '.join(sorted(table)) or '(none)'}"))
        return found

    declared = {role.name for role in spec.roles}  # a spec's own roles count as registered
    known = listing(sorted({*(roles or ()), *declared}))

    def check_roles(names: tuple[str, ...], where: str) -> None:
        if roles is None:
            return
        for name in names:
            if name not in roles and name not in declared:
                problems.append(SpecProblem(
                    where, f"role {name!r} is not registered", f"registered roles: {known} "
                    "(declare it under roles: in the spec, or add it with gridflow_roles)"))

    open_guards = resolve("guard", spec.open_guards, guards, "open_guards")
    open_effects = resolve("effect", spec.open_effects, effects, "open_effects")
    check_roles(spec.open_roles, "open_roles")
    if spec.personal is not None:
        # A misspelt reader role would silently show masks to everyone; a misspelt
        # auditor role would leave restricted values unreadable even to the auditor.
        check_roles(tuple(sorted(spec.personal.readers)), "personal.readers")
        check_roles(tuple(sorted(spec.personal.auditors)), "personal.auditors")

    machine = Machine(
        model=None, states=list(spec.state_names), initial=spec.initial,
        auto_transitions=False, send_event=True, ignore_invalid_triggers=False,
        model_attribute="state",
    )
    non_terminal = spec.non_terminal
    rules: dict[str, dict[str, Rule]] = {}
    for i, tr in enumerate(spec.transitions):
        where = f"transitions[{i}] ({tr.trigger})"
        conds = [_condition(n, g) for n, g in resolve("guard", tr.guards, guards, where)]
        after = [_finish(tr, resolve("effect", tr.effects, effects, where))]
        check_roles(tr.roles, where)
        sources = list(tr.sources(non_terminal))
        try:
            machine.add_transition(
                tr.trigger, cast(Any, sources), tr.dest, conditions=cast(Any, conds),
                after=cast(Any, after),
            )
        except ValueError as exc:
            problems.append(SpecProblem(where, str(exc), "transitions refused it"))
            continue
        for src in sources:
            per_state = rules.setdefault(src, {})
            prev = per_state.get(tr.trigger)
            if prev is None:
                per_state[tr.trigger] = Rule(
                    frozenset(tr.roles), tr.requires, dict(tr.choices), tr.dest is None
                )
            else:
                # Several transitions share a trigger from one state (e.g. the
                # tiers of `accept`): whoever may fire any of them may try, and
                # every field any of them needs is required; a field both restrict
                # may take a value either allows (a plugin's extra tier).
                merged_choices = {**prev.choices, **tr.choices}
                for field in prev.choices.keys() & tr.choices.keys():
                    merged_choices[field] = tuple(
                        dict.fromkeys(prev.choices[field] + tr.choices[field]))
                per_state[tr.trigger] = Rule(
                    prev.roles | frozenset(tr.roles) if prev.roles and tr.roles else frozenset(),
                    tuple(dict.fromkeys(prev.requires + tr.requires)),
                    merged_choices,
                    prev.internal and tr.dest is None,
                )
    if problems:
        raise SpecError(spec.key, problems)
    return CompiledWorkflow(spec, machine, rules, open_guards, open_effects)
