"""The `Engine`: open cases, fire triggers, read history, verify, run the timer."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pluggy

from gridflow import workflows
from gridflow._errors import (
    CaseNotFound,
    ConcurrencyError,
    GridflowError,
    GuardRejected,
    IdempotencyConflict,
    IntegrityError,
    InvalidPayload,
    InvalidTransition,
    MissingPayload,
    PermissionDenied,
    SpecError,
    SpecProblem,
    StoreError,
    UnknownWorkflow,
)
from gridflow.calendar import Calendar, CalendarDays
from gridflow.clock import Clock, SystemClock
from gridflow.machine import CompiledWorkflow, Rule, Step, compile_workflow
from gridflow.model import GENESIS_HASH, Actor, Case, Event, canonical_json
from gridflow.plugins import DeadlineRule, Effect, Guard, make_plugin_manager
from gridflow.spec import OVERDUE_KEY, StateSpec, WorkflowSpec
from gridflow.store import Store, Write

__all__ = ["Engine", "HookError", "TickError"]

log = logging.getLogger("gridflow")

_EMPTY: Mapping[str, Any] = {}


@attrs.frozen
class HookError:
    """An after-hook that raised: the step stayed committed; this records why it failed."""

    plugin: str
    hook: str
    case_id: str
    seq: int
    error: BaseException


@attrs.frozen
class TickError:
    """A case `Engine.tick` could not act on as planned; the other cases went on.

    ``trigger`` is the ``on_breach`` trigger that was refused, or ``"breach"``
    when the failure was not a refusal (the store, a bug).
    ``marked_overdue`` is True when the breach step was refused and the case
    was marked overdue instead (so the breach is in its history, once); False
    when nothing was stored and the case is retried after its claim lapses.

    Example:
        >>> TickError("c-1", "joint_action", "escalate", ValueError("x"), False).case_id
        'c-1'
    """

    case_id: str
    state: str
    trigger: str
    error: BaseException
    marked_overdue: bool


def _not_json(case_id: str | None, trigger: str, what: str, exc: Exception) -> InvalidPayload:
    return InvalidPayload(
        f"case {case_id!r}: trigger {trigger!r}: the {what} is not JSON-able ({exc}); "
        "use str, int, float, bool, None, lists and dicts with string keys",
        case_id=case_id, trigger=trigger)


def _is_missing(value: object) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _copy_nested(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy_nested(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_copy_nested(v) for v in value]
    return value


def _detached(value: Mapping[str, Any]) -> dict[str, Any]:
    # The stored event must share no list or dict with the caller: a caller
    # that later appends to its own payload["departments"] would otherwise edit
    # stored history in a MemoryStore (and make `verify` fail). Flat payloads,
    # the common case, cost one dict copy and a type check per value.
    out = dict(value)
    for k, v in out.items():
        if isinstance(v, _NESTED):  # a tuple of classes: `dict | list | tuple` is rebuilt per call
            out[k] = _copy_nested(v)
    return out


_NESTED = (dict, list, tuple)


_NOTHING: Any = object()
#: The values `_is_missing` calls missing.
_MISSING: tuple[object, ...] = (None, "", [], {})
_STR_ONLY = frozenset((str,))
_PLAIN = frozenset((str, int, bool, type(None)))


class _AskedImpls:
    """Fallback for a pluggy whose hook callers lack ``_hookimpls``: asks each time."""

    def __init__(self, caller: pluggy.HookCaller) -> None:
        self._caller = caller

    def __bool__(self) -> bool:
        return bool(self._caller.get_hookimpls())

    def copy(self) -> list[pluggy.HookImpl]:
        return self._caller.get_hookimpls()


def _live_impls(caller: pluggy.HookCaller) -> Any:
    # pluggy (>= 1.3) keeps a hook's implementations in one list that it edits
    # in place on register / unregister; holding that list makes "does anyone
    # implement this hook?" a truth test instead of a copied list per step,
    # and stays right for plugins registered straight on `Engine.plugins`.
    impls = getattr(caller, "_hookimpls", None)
    return impls if isinstance(impls, list) else _AskedImpls(caller)


class Engine:
    """Runs workflows on a store: the whole public API of a running gridflow.

    ``store`` defaults to a new `MemoryStore`; ``clock`` to `SystemClock`;
    ``calendar`` (how deadlines are counted) to `CalendarDays`. ``plugins`` are
    registered after the built-ins; plugins from the ``gridflow`` entry-point
    group are loaded too unless ``entry_points=False``. ``on_hook_error`` is
    called with a `HookError` when an after-hook raises (it is always logged).

    Example:
        >>> import gridflow
        >>> engine = gridflow.Engine(clock=gridflow.FixedClock())
        >>> worker = gridflow.Actor("w-1", ["grid_worker"], ["华三-1"])
        >>> case = engine.open("grid_case", actor=worker, grid="华三-1",
        ...                    data={"title": "弄堂堆物", "source": "visit"})
        >>> case.state, case.version
        ('reported', 1)
    """

    def __init__(
        self,
        store: Store | None = None,
        *,
        clock: Clock | None = None,
        calendar: Calendar | None = None,
        plugins: Iterable[object] = (),
        entry_points: bool = True,
        on_hook_error: Callable[[HookError], None] | None = None,
    ) -> None:
        if store is None:
            from gridflow.store.memory import MemoryStore

            store = MemoryStore()
        self.store: Store = store
        self.clock: Clock = clock or SystemClock()
        self.calendar: Calendar = calendar or CalendarDays()
        self.on_hook_error = on_hook_error
        #: The most recent after-hook failures (at most 100), newest last.
        self.hook_errors: deque[HookError] = deque(maxlen=100)
        #: The most recent cases `tick` could not act on as planned (at most 100).
        self.tick_errors: deque[TickError] = deque(maxlen=100)
        self._pm = make_plugin_manager(plugins, entry_points=entry_points,
                                       builtins={"gridflow.workflows": workflows})
        self._compiled: dict[tuple[str, int], CompiledWorkflow] = {}
        self._latest: dict[str, int] = {}
        self.guards: dict[str, Guard] = {}
        self.effects: dict[str, Effect] = {}
        self.roles: dict[str, tuple[str, str]] = {}
        self._refresh()

    # -- plugins and workflows ------------------------------------------------------

    @property
    def plugins(self) -> pluggy.PluginManager:
        """The pluggy `PluginManager` (register plugins with `Engine.register`)."""
        return self._pm

    def register(self, plugin: object, name: str | None = None) -> None:
        """Register a plugin after construction; its workflows, guards and effects
        become available at once.

        Example:
            >>> import gridflow
            >>> engine = gridflow.Engine(entry_points=False)
            >>> class Quiet:
            ...     @gridflow.hookimpl
            ...     def gridflow_veto(self, case, trigger, actor, payload):
            ...         return None
            >>> engine.register(Quiet())
        """
        self._pm.register(plugin, name=name)
        self._refresh()

    def register_workflow(self, spec: WorkflowSpec) -> None:
        """Register one spec directly (same checks as through `gridflow_workflows`).

        Example:
            >>> import gridflow
            >>> engine = gridflow.Engine(entry_points=False)
            >>> spec = gridflow.WorkflowSpec.from_dict({"name": "ticket", "version": 1,
            ...     "initial": "open", "states": [{"name": "open"},
            ...     {"name": "done", "terminal": True}],
            ...     "transitions": [{"trigger": "finish", "source": "open", "dest": "done"}]})
            >>> engine.register_workflow(spec)
            >>> engine.workflow("ticket").version
            1
        """
        self._add_spec(spec)

    def _refresh(self) -> None:
        hook = self._pm.hook
        guards: dict[str, Guard] = {}
        for table in hook.gridflow_guards():
            guards.update(table or {})
        effects: dict[str, Effect] = {}
        for table in hook.gridflow_effects():
            effects.update(table or {})
        roles: dict[str, tuple[str, str]] = {"system": ("系统", "System")}
        for table in hook.gridflow_roles():
            roles.update(table or {})
        self.guards, self.effects, self.roles = guards, effects, roles
        rules: dict[str, DeadlineRule] = {}
        for table in hook.gridflow_deadline_rules():
            rules.update(table or {})
        #: Each workflow's default deadline rule (`gridflow_deadline_rules`), by name.
        self.deadline_rules = rules
        for specs in hook.gridflow_workflows():
            for spec in specs or ():
                self._add_spec(spec)
        # Cache the implementations of the per-step hooks: asking pluggy to call a
        # hook that nobody implements still costs ~1.5 µs a call.
        self._veto = hook.gridflow_veto
        self._before = hook.gridflow_before_fire
        self._deadline_hook = hook.gridflow_deadline
        # get_hookimpls() copies a list on every call; these stay current by themselves.
        self._veto_impls = _live_impls(self._veto)
        self._before_impls = _live_impls(self._before)
        self._deadline_impls = _live_impls(self._deadline_hook)
        self._after_impls = _live_impls(hook.gridflow_after_fire)

    def _add_spec(self, spec: WorkflowSpec) -> None:
        key = (spec.name, spec.version)
        known = self._compiled.get(key)
        if known is not None:
            if known.spec == spec:
                return
            raise SpecError(spec.key, [SpecProblem(
                "version", f"{spec.key} is already registered with different content",
                "bump the version: cases keep running on the version they were opened with")])
        self._compiled[key] = compile_workflow(spec, self.guards, self.effects, self.roles)
        if spec.version > self._latest.get(spec.name, 0):
            self._latest[spec.name] = spec.version

    def workflow(self, name: str, version: int | None = None) -> WorkflowSpec:
        """The registered spec ``name`` (its latest version unless ``version`` is given).

        Example:
            >>> import gridflow
            >>> gridflow.Engine(entry_points=False).workflow("grid_case").initial
            'reported'
        """
        return self._get_compiled(name, version).spec

    @property
    def workflows(self) -> list[WorkflowSpec]:
        """Every registered spec, every version.

        Example:
            >>> import gridflow
            >>> "grid_case@1" in [s.key for s in gridflow.Engine(entry_points=False).workflows]
            True
        """
        return [c.spec for c in self._compiled.values()]

    def _get_compiled(self, name: str, version: int | None) -> CompiledWorkflow:
        if version is None:
            version = self._latest.get(name)
        compiled = self._compiled.get((name, version)) if version is not None else None
        if compiled is None:
            raise UnknownWorkflow(name, version, (f"{n}@{v}" for n, v in self._compiled))
        return compiled

    # -- reading ----------------------------------------------------------------------

    def get(self, case_id: str) -> Case:
        """The current snapshot of a case; `CaseNotFound` if there is none.

        Example:
            >>> import gridflow
            >>> gridflow.Engine(entry_points=False).get("nope")
            Traceback (most recent call last):
            ...
            gridflow._errors.CaseNotFound: case 'nope' does not exist in this store
        """
        case = self.store.get(case_id)
        if case is None:
            raise CaseNotFound(case_id)
        return case

    def history(self, case_id: str) -> list[Event]:
        """Every event of a case, oldest first (``seq`` 1..n).

        Example:
            >>> import gridflow
            >>> engine = gridflow.Engine(entry_points=False)
            >>> c = engine.open("grid_case", actor=gridflow.Actor("r", ["resident"]),
            ...                 data={"title": "路灯坏了", "source": "resident"})
            >>> [e.trigger for e in engine.history(c.id)]
            ['open']
        """
        events = self.store.events(case_id)
        if not events and self.store.get(case_id) is None:
            raise CaseNotFound(case_id)
        return events

    def allowed(self, case_id: str, actor: Actor) -> list[str]:
        """Triggers ``actor`` may fire on the case now, judged by state, role and
        grid (guards depend on the payload, so they are checked by `fire`).

        Example:
            >>> import gridflow
            >>> engine = gridflow.Engine(entry_points=False)
            >>> c = engine.open("grid_case", actor=gridflow.Actor("r", ["resident"]),
            ...                 data={"title": "路灯坏了", "source": "resident"})
            >>> engine.allowed(c.id, gridflow.Actor("s", ["coordinator"]))
            ['mark_duplicate', 'note', 'reject', 'triage']
        """
        case = self.get(case_id)
        if not actor.can_touch(case.grid):
            return []
        wf = self._get_compiled(case.workflow, case.workflow_version)
        rules = wf.rules.get(case.state, _EMPTY)
        return sorted(
            t for t, rule in rules.items()
            if not rule.roles or not rule.roles.isdisjoint(actor.roles)
        )

    def linked(self, case_id: str) -> list[Case]:
        """The cases linked to ``case_id`` (both directions are always stored).

        Example:
            >>> import gridflow
            >>> engine = gridflow.Engine(entry_points=False)
            >>> r = gridflow.Actor("r", ["resident"])
            >>> a = engine.open("grid_case", actor=r, data={"title": "a", "source": "resident"})
            >>> b = engine.open("grid_case", actor=r, data={"title": "b", "source": "resident"},
            ...                 links=[a.id])
            >>> [c.id for c in engine.linked(a.id)] == [b.id]
            True
        """
        case = self.get(case_id)
        return [c for c in (self.store.get(i) for i in case.links) if c is not None]

    def route(self, case_id: str) -> list[str]:
        """Departments or mediation parties to involve in the case, as the
        `gridflow_route` plugins suggest (first answer wins; empty if none).

        Example:
            >>> import gridflow
            >>> class Router:
            ...     @gridflow.hookimpl
            ...     def gridflow_route(self, case):
            ...         return ["社区管理办", "清运单位"]
            >>> engine = gridflow.Engine(plugins=[Router()], entry_points=False)
            >>> c = engine.open("grid_case", actor=gridflow.Actor("r", ["resident"]),
            ...                 data={"title": "堆物", "source": "resident"})
            >>> engine.route(c.id)
            ['社区管理办', '清运单位']
        """
        case = self.get(case_id)
        found = self._pm.hook.gridflow_route(case=case)
        return list(found or [])

    # -- opening ----------------------------------------------------------------------

    def open(
        self,
        workflow: str,
        *,
        actor: Actor,
        data: Mapping[str, Any] | None = None,
        grid: str | None = None,
        links: Sequence[str] = (),
        idempotency_key: str | None = None,
        version: int | None = None,
        case_id: str | None = None,
    ) -> Case:
        """Open a case of ``workflow`` (its latest version unless ``version`` is given).

        Records event seq 1 (trigger ``open``, no source state) whose payload
        holds the opening ``data``, ``grid`` and ``links``. Each linked case
        gets the link too (and a ``link`` event), in the same transaction.

        Example:
            >>> import gridflow
            >>> engine = gridflow.Engine(entry_points=False)
            >>> c = engine.open("grid_case", actor=gridflow.Actor("v", ["volunteer"]),
            ...                 data={"title": "楼道堆物", "source": "visit"}, grid="华三-1")
            >>> c.grid, c.data["title"]
            ('华三-1', '楼道堆物')
        """
        wf = self._get_compiled(workflow, version)
        spec = wf.spec
        if idempotency_key is not None:
            done = self.store.event_by_key(idempotency_key)
            if done is not None:
                return self._replay_key(done, idempotency_key, done.case_id, "open", actor,
                                        spec.name)
        now = self.clock.now()
        if not case_id:
            import uuid  # here, not at the top: `import gridflow` stays lighter

            case_id = uuid.uuid4().hex
        if self.store.get(case_id) is not None:
            raise InvalidPayload(f"case {case_id!r} already exists; choose another case_id",
                                 case_id=case_id, trigger="open")
        if spec.open_roles and actor.roles.isdisjoint(spec.open_roles):
            raise PermissionDenied(
                f"actor {actor.id!r} with roles {sorted(actor.roles)} may not open a "
                f"{spec.name!r} case; roles allowed: {', '.join(spec.open_roles)}",
                actor_id=actor.id)
        if not actor.can_touch(grid):
            raise PermissionDenied(
                f"actor {actor.id!r} may not open a case in grid {grid!r}; the actor's grids: "
                f"{', '.join(sorted(actor.grids))}", actor_id=actor.id)
        data = _detached(data) if data else {}
        rule = Rule(frozenset(spec.open_roles), spec.open_requires, spec.open_choices, False)
        self._check_fields(None, spec.initial, "open", data, rule)
        links = list(dict.fromkeys(links))
        draft = Case(case_id, spec.name, spec.version, spec.initial, 0, data, grid, now, now,
                     None, (), GENESIS_HASH)
        data = self._run_hooks(draft, "open", actor, data)
        step = Step(draft, "open", actor, data, data, list(links), now, spec.initial,
                    self.store.get, hooks=self._pm.hook)
        for name, guard in wf.open_guards:
            reason = self._safe(step, spec.initial, "open", f"guard {name!r}", guard)
            if reason is not None and reason is not True:
                raise GuardRejected("(new)", spec.initial, "open", name,
                                    "refused" if reason is False else str(reason))
        for name, effect in wf.open_effects:
            self._safe(step, spec.initial, "open", f"effect {name!r}", effect)
        links = list(dict.fromkeys(step.links))
        payload = {"data": step.data, "grid": grid, "links": links}
        event = self._event(case_id, 1, "open", None, spec.initial, actor, now, payload,
                            idempotency_key, GENESIS_HASH)
        case = Case(case_id, spec.name, spec.version, spec.initial, 1, step.data, grid, now, now,
                    None, tuple(links), event.hash)
        case = attrs.evolve(case, deadline_at=self._deadline_at(
            case, wf.states[spec.initial], now, step.deadline_at))
        writes = [Write(case, event, 0)]
        writes += self._link_writes(case, links, actor, now, "open")
        replayed = self._commit(writes, idempotency_key, case_id, "open")
        if replayed is not None:
            return replayed
        self._after(case, event)
        return case

    # -- firing -----------------------------------------------------------------------

    def fire(
        self,
        case_id: str,
        trigger: str,
        *,
        actor: Actor,
        payload: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        expected_version: int | None = None,
        retries: int = 0,
    ) -> Case:
        """Fire ``trigger`` on a case as ``actor``: one atomic, recorded step.

        Checks, in order: the case exists, ``expected_version``, the trigger is
        allowed in the state, the actor's grid and role, required and
        restricted payload fields, plugin vetoes, then the spec's guards
        (through the transitions machine). Any refusal raises and stores
        nothing. On a lost race `ConcurrencyError` is raised, or with
        ``retries=n`` the step is re-read and re-checked up to n more times
        (not when ``expected_version`` pins the version). The same
        ``idempotency_key`` fired again returns the stored result.

        Example:
            >>> import gridflow
            >>> engine = gridflow.Engine(entry_points=False)
            >>> c = engine.open("grid_case", actor=gridflow.Actor("r", ["resident"]),
            ...                 data={"title": "地锁", "source": "resident"})
            >>> secretary = gridflow.Actor("s", ["coordinator"])
            >>> c = engine.fire(c.id, "triage", actor=secretary,
            ...                 payload={"category": "违规堆物", "priority": "normal"})
            >>> c.state, c.version
            ('triaged', 2)
        """
        attempt = 0
        while True:
            try:
                return self._fire(case_id, trigger, actor, payload, idempotency_key,
                                  expected_version)
            except ConcurrencyError:
                if attempt >= retries or expected_version is not None:
                    raise
                attempt += 1

    def _fire(
        self, case_id: str, trigger: str, actor: Actor, payload_in: Mapping[str, Any] | None,
        idempotency_key: str | None, expected_version: int | None,
    ) -> Case:
        store = self.store
        if idempotency_key is not None:
            done = store.event_by_key(idempotency_key)
            if done is not None:
                return self._replay_key(done, idempotency_key, case_id, trigger, actor)
        case = store.get(case_id)
        if case is None:
            raise CaseNotFound(case_id)
        if expected_version is not None and case.version != expected_version:
            raise ConcurrencyError(case_id, expected_version, case.version)
        wf = self._compiled.get((case.workflow, case.workflow_version))
        if wf is None:
            wf = self._get_compiled(case.workflow, case.workflow_version)
        state = case.state
        rule = wf.rules.get(state, _EMPTY).get(trigger)
        if rule is None:
            raise InvalidTransition(case_id, state, trigger, wf.allowed(state),
                                    known=trigger in wf.triggers)
        if actor.grids and case.grid not in actor.grids:
            raise PermissionDenied(
                f"case {case_id!r} is in grid {case.grid!r}, outside actor {actor.id!r}'s grids "
                f"({', '.join(sorted(actor.grids))}); trigger {trigger!r} refused",
                case_id=case_id, actor_id=actor.id)
        if rule.roles and rule.roles.isdisjoint(actor.roles):
            raise PermissionDenied(
                f"case {case_id!r} in state {state!r}: actor {actor.id!r} with roles "
                f"{sorted(actor.roles)} may not fire {trigger!r}; roles allowed: "
                f"{', '.join(sorted(rule.roles))}", case_id=case_id, actor_id=actor.id)
        payload = _detached(payload_in) if payload_in else {}
        if rule.requires or rule.choices:
            self._check_fields(case_id, state, trigger, payload, rule)
        if self._veto_impls or self._before_impls:
            data = self._run_hooks(case, trigger, actor, payload)
        else:
            data = dict(case.data)
        now = self.clock.now()
        step = Step(case, trigger, actor, payload, data, list(case.links), now, state, store.get,
                    hooks=self._pm.hook)
        try:
            ok = wf.run(step)
        except GridflowError:
            raise
        except Exception as exc:
            raise GuardRejected(case_id, state, trigger, step.failed or "transition",
                                f"raised {exc!r}") from exc
        if not ok:
            name, reason = step.rejected or ("transition", "no transition's guards passed")
            raise GuardRejected(case_id, state, trigger, name, reason)
        fired = step.fired
        assert fired is not None
        dest = fired.dest
        seq = case.version + 1
        event = self._event(case_id, seq, trigger, state, dest, actor, now, payload,
                            idempotency_key, case.head)
        data = step.data
        moved = step.deadline_at
        if (dest is not None or moved is not None) and OVERDUE_KEY in data:
            # The timer's overdue mark was about the deadline this step replaces.
            data = {k: v for k, v in data.items() if k != OVERDUE_KEY}
        if data is not case.data:
            self._check_data(case_id, trigger, case.data, data)
        new_links = [i for i in step.links if i not in case.links]
        links = case.links + tuple(dict.fromkeys(new_links)) if new_links else case.links
        new_state = state if dest is None else dest
        deadline = case.deadline_at
        if dest is not None and not self._deadline_impls:
            # No gridflow_deadline plugin needs to see the new case first: count its
            # deadline now and build the case once (attrs.evolve costs ~3 µs a step).
            deadline = self._deadline_at(case, wf.states[dest], now, step.deadline_at, data)
        new_case = Case(case_id, case.workflow, case.workflow_version, new_state, seq, data,
                        case.grid, case.opened_at, now, deadline, links, event.hash)
        if dest is not None:
            if self._deadline_impls:
                deadline = self._deadline_at(new_case, wf.states[dest], now, step.deadline_at)
                if deadline != case.deadline_at:
                    new_case = attrs.evolve(new_case, deadline_at=deadline)
        elif moved is not None:
            # An internal step whose effect moved the deadline (approve_extension, 延期).
            if moved.tzinfo is None or moved.utcoffset() is None:
                raise GuardRejected(case_id, state, trigger, "effect",
                                    f"set a naive deadline_at {moved.isoformat()}; set an "
                                    "aware datetime")
            new_case = attrs.evolve(new_case, deadline_at=moved.astimezone(UTC))
        write = Write(new_case, event, case.version)
        writes: Sequence[Write] = (write,)
        if new_links:
            writes = [write, *self._link_writes(new_case, new_links, actor, now, trigger)]
        replayed = self._commit(writes, idempotency_key, case_id, trigger)
        if replayed is not None:
            return replayed
        if self._after_impls:
            self._after(new_case, event)
        return new_case

    # -- helpers of open / fire ---------------------------------------------------------

    def _check_fields(
        self, case_id: str | None, state: str, trigger: str, payload: Mapping[str, Any], rule: Rule
    ) -> None:
        if rule.requires:
            # `in` tests each like _is_missing does (identity, then ==), minus a call per field.
            missing = [f for f in rule.requires if payload.get(f) in _MISSING]
            if missing:
                raise MissingPayload(case_id, state, trigger, missing, rule.requires)
        for field, options in rule.choices.items():
            if field in payload and payload[field] not in options:
                where = f"case {case_id!r} in state {state!r}" if case_id else "opening"
                raise InvalidPayload(
                    f"{where}: trigger {trigger!r}: {field}={payload[field]!r} is not allowed; "
                    f"choose one of: {', '.join(options)}", case_id=case_id, trigger=trigger)

    def _run_hooks(
        self, case: Case, trigger: str, actor: Actor, payload: dict[str, Any]
    ) -> dict[str, Any]:
        """Run veto and before-fire hooks; return the step's copy of the case data."""
        state = case.state
        cid = case.id if case.version else "(new)"
        if self._veto_impls:
            try:
                reasons = self._veto(case=case, trigger=trigger, actor=actor, payload=payload)
            except Exception as exc:
                raise GuardRejected(cid, state, trigger, "plugin veto",
                                    f"a veto hook raised {exc!r}") from exc
            for reason in reasons:
                if reason:
                    raise GuardRejected(cid, state, trigger, "plugin veto", str(reason))
        data = dict(case.data)
        if self._before_impls:
            try:
                updates = self._before(case=case, trigger=trigger, actor=actor, payload=payload)
            except Exception as exc:
                raise GuardRejected(cid, state, trigger, "plugin before_fire",
                                    f"a before_fire hook raised {exc!r}") from exc
            for update in reversed(updates):  # pluggy calls last-registered first
                if update:
                    data.update(update)
        return data

    def _safe(
        self, step: Step, state: str, trigger: str, what: str, fn: Callable[[Step], Any]
    ) -> Any:
        try:
            return fn(step)
        except GridflowError:
            raise
        except Exception as exc:
            raise GuardRejected("(new)", state, trigger, what, f"raised {exc!r}") from exc

    def _check_data(
        self, case_id: str, trigger: str, old: Mapping[str, Any], new: dict[str, Any]
    ) -> None:
        # Only the values the step put in need checking: the others are the very
        # objects stored (and checked) before. Encoding all of ``data`` on every
        # step was ~2 µs. Keys that are not str take the whole-dict check, whose
        # sort may refuse a mix that a subset would not show.
        changed = [v for k, v in new.items() if old.get(k, _NOTHING) is not v]
        if not changed:
            return
        if _STR_ONLY.issuperset(map(type, new)):
            # str, int, bool and None always encode; only containers and floats need a look.
            changed = [v for v in changed if v.__class__ not in _PLAIN]
            if changed:
                self._check_json(case_id, trigger, changed, "data")
        else:
            self._check_json(case_id, trigger, new, "data")

    def _check_json(self, case_id: str | None, trigger: str, value: Any, what: str) -> None:
        try:
            canonical_json(value)
        except (TypeError, ValueError) as exc:
            raise _not_json(case_id, trigger, what, exc) from None

    def _event(
        self, case_id: str, seq: int, trigger: str, source: str | None, dest: str | None,
        actor: Actor, at: datetime, payload: dict[str, Any], key: str | None, prev: str,
    ) -> Event:
        try:
            return Event.create(case_id, seq, trigger, source, dest, actor, at, payload, key, prev)
        except (TypeError, ValueError) as exc:
            raise _not_json(case_id, trigger, "payload", exc) from None

    def _deadline_at(
        self, case: Case, state: StateSpec, now: datetime, fixed: datetime | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> datetime | None:
        # Precedence: a gridflow_deadline plugin, then a deadline an effect fixed
        # (Step.deadline_at), then the workflow's deadline rule, then the spec's
        # timedelta. ``data`` is the step's new data when ``case`` is the old case.
        override = None
        if self._deadline_impls:
            override = self._deadline_hook(case=case, state=state)
        if override is None and fixed is None:
            rule = self.deadline_rules.get(case.workflow)
            if rule is not None:
                override = rule(state, case.data if data is None else data, now)
        if isinstance(override, datetime):
            if override.tzinfo is None:
                raise InvalidPayload(f"a gridflow_deadline hook returned a naive datetime for "
                                     f"case {case.id!r} in {state.name!r}; return an aware one")
            return override
        if fixed is not None and not isinstance(override, timedelta):
            return fixed
        delta = override if isinstance(override, timedelta) else state.deadline
        if delta is None:
            return None
        return self.calendar.add(now, delta)

    def _link_writes(
        self, case: Case, others: Iterable[str], actor: Actor, now: datetime, via: str
    ) -> list[Write]:
        writes = []
        for other_id in others:
            if other_id == case.id:
                raise InvalidPayload(f"case {case.id!r} cannot be linked to itself",
                                     case_id=case.id, trigger=via)
            other = self.store.get(other_id)
            if other is None:
                raise CaseNotFound(other_id)
            if case.id in other.links:
                continue
            seq = other.version + 1
            event = self._event(other.id, seq, "link", other.state, None, actor, now,
                                {"case": case.id, "via": via}, None, other.head)
            linked = attrs.evolve(other, version=seq, updated_at=now,
                                  links=(*other.links, case.id), head=event.hash)
            writes.append(Write(linked, event, other.version))
        return writes

    def _commit(
        self, writes: Sequence[Write], key: str | None, case_id: str, trigger: str
    ) -> Case | None:
        """Commit; if a racing writer landed this very idempotency key first,
        return its result instead (the step happened once)."""
        try:
            self.store.commit(writes)
        except ConcurrencyError:
            if key is not None:
                done = self.store.event_by_key(key)
                if done is not None:
                    return self._replay_key(done, key, case_id, trigger, writes[0].event.actor,
                                            writes[0].case.workflow if trigger == "open" else None)
            raise
        return None

    def _replay_key(
        self, done: Event, key: str, case_id: str, trigger: str, actor: Actor,
        workflow: str | None = None,
    ) -> Case:
        # A key names one step: retried, the stored result comes back whoever
        # sends it (a retried job may run as another worker). The key may not
        # name a different step: another trigger, case or workflow.
        case = self.get(done.case_id)
        same = (
            done.trigger == trigger
            and (trigger == "open" or done.case_id == case_id)
            and (workflow is None or case.workflow == workflow)
        )
        if not same:
            raise IdempotencyConflict(
                key, f"{done.trigger!r} on case {done.case_id!r}",
                f"{trigger!r} on case {case_id!r}" if workflow is None
                else f"opening a {workflow!r} case")
        return case

    def _after(self, case: Case, event: Event) -> None:
        if not self._after_impls:
            return
        for impl in reversed(self._after_impls.copy()):
            try:
                impl.function(*[{"case": case, "event": event}[a] for a in impl.argnames])
            except Exception as exc:
                failure = HookError(impl.plugin_name, "gridflow_after_fire", case.id,
                                    event.seq, exc)
                self.hook_errors.append(failure)
                log.exception("after-hook of plugin %r failed on case %r seq %d; the step stays "
                              "committed", impl.plugin_name, case.id, event.seq)
                if self.on_hook_error is not None:
                    self.on_hook_error(failure)

    # -- the timer ------------------------------------------------------------------------

    def tick(self, now: datetime | None = None, limit: int = 100) -> list[Event]:
        """Fire the ``on_breach`` trigger of every overdue case, as actor ``system``.

        Takes up to ``limit`` cases whose ``deadline_at`` is at or before
        ``now`` (default: the engine's clock) from `Store.claim_due`, which
        hands each case to one caller only, and for each:

        - its state has ``on_breach``: fires that trigger as actor ``system``
          with payload ``reason`` and ``deadline_at``;
        - it has none: records the engine's internal ``overdue`` event (state
          unchanged, payload ``state`` and ``deadline_at``), stores the missed
          deadline in ``data["overdue_since"]`` and clears ``deadline_at``, so
          the case is marked once per breach, not on every tick;
        - the breach trigger is refused (a veto, a guard, a role, a calendar
          that does not know the date): marks the case overdue the same way,
          with the refusal in the payload (``breach_refused``).

        Each step is committed with the version the case was claimed at, so a
        case changed meanwhile (by a person, or by another worker) is skipped:
        with several workers on one database every breach is acted on
        exactly once. A case that fails for another reason (the store, a bug)
        is logged, added to `tick_errors`, and left for a later tick; the
        other cases go on. Returns the events recorded, in claim order.

        Example:
            >>> import gridflow
            >>> from datetime import timedelta
            >>> clock = gridflow.FixedClock()
            >>> engine = gridflow.Engine(clock=clock, entry_points=False)
            >>> c = engine.open("grid_case", actor=gridflow.Actor("r", ["resident"]),
            ...                 data={"title": "路灯坏了", "source": "resident"})
            >>> _ = clock.advance(timedelta(days=2))
            >>> [(e.trigger, e.payload["state"]) for e in engine.tick()]
            [('overdue', 'reported')]
            >>> engine.tick()
            []
        """
        now = now or self.clock.now()
        out: list[Event] = []
        for case in self.store.claim_due(now, limit):
            if case.deadline_at is None or case.deadline_at > now:
                continue
            try:
                event = self._breach(case)
            except ConcurrencyError:
                continue  # the case changed after it was claimed: that step wins
            except Exception as exc:
                self._tick_failed(TickError(case.id, case.state, "breach", exc, False))
                continue
            out.append(event)
        return out

    def _breach(self, case: Case) -> Event:
        wf = self._get_compiled(case.workflow, case.workflow_version)
        state = wf.states.get(case.state)
        trigger = state.on_breach if state is not None else None
        if not trigger:
            return self._mark_overdue(case)
        assert case.deadline_at is not None
        missed = case.deadline_at.astimezone(UTC).isoformat()
        payload = {"reason": f"deadline {missed} passed in state {case.state!r} (超期)",
                   "deadline_at": missed}
        try:
            new = self._fire(case.id, trigger, Actor.system(), payload, None, case.version)
        except (ConcurrencyError, StoreError):
            raise
        except GridflowError as exc:
            # A refusal is deterministic: retrying every tick would only repeat it.
            event = self._mark_overdue(case, f"{trigger}: {exc}")
            self._tick_failed(TickError(case.id, case.state, trigger, exc, True))
            return event
        for event in reversed(self.store.events(case.id)):
            if event.seq == new.version:
                return event
        raise StoreError(f"case {case.id!r}: the breach event seq {new.version} was not stored")

    def _mark_overdue(self, case: Case, refused: str | None = None) -> Event:
        assert case.deadline_at is not None
        now = self.clock.now()
        missed = case.deadline_at.astimezone(UTC).isoformat()
        payload: dict[str, Any] = {"state": case.state, "deadline_at": missed}
        if refused is not None:
            payload["breach_refused"] = refused
        seq = case.version + 1
        event = self._event(case.id, seq, "overdue", case.state, None, Actor.system(), now,
                            payload, None, case.head)
        marked = attrs.evolve(case, version=seq, data={**case.data, OVERDUE_KEY: missed},
                              updated_at=now, deadline_at=None, head=event.hash)
        self.store.commit([Write(marked, event, case.version)])
        self._after(marked, event)
        return event

    def _tick_failed(self, failure: TickError) -> None:
        self.tick_errors.append(failure)
        if failure.marked_overdue:
            log.warning("case %r: breach trigger %r in state %r was refused (%s); marked "
                        "overdue instead", failure.case_id, failure.trigger, failure.state,
                        failure.error)
        else:
            log.error("tick could not act on overdue case %r in state %r; it is retried "
                      "after its claim lapses", failure.case_id, failure.state,
                      exc_info=failure.error)

    # -- verification ------------------------------------------------------------------

    def verify(self, case_id: str) -> Case:
        """Check a case's stored history: hash chain, gap-free ``seq``, and that
        replaying the events from the initial state gives the stored state.

        Raises `IntegrityError` naming the case and the first bad ``seq``;
        returns the case when everything verifies.

        Example:
            >>> import gridflow
            >>> engine = gridflow.Engine(entry_points=False)
            >>> c = engine.open("grid_case", actor=gridflow.Actor("r", ["resident"]),
            ...                 data={"title": "井盖缺失", "source": "resident"})
            >>> engine.verify(c.id).id == c.id
            True
        """
        case = self.get(case_id)
        events = self.store.events(case_id)
        for _ in range(3):
            # The case and its events are two reads: a step landing between them
            # would look like a missing case update. Re-read until they agree.
            if len(events) == case.version:
                break
            case = self.get(case_id)
            events = self.store.events(case_id)
        wf = self._get_compiled(case.workflow, case.workflow_version)
        prev = GENESIS_HASH
        state: str | None = None
        for index, event in enumerate(events, start=1):
            if event.seq != index:
                raise IntegrityError(case_id, index, f"expected seq {index}, found seq {event.seq} "
                                     "(an event was deleted or reordered)")
            if event.case_id != case_id:
                raise IntegrityError(case_id, index, f"event belongs to case {event.case_id!r}")
            if event.prev_hash != prev:
                raise IntegrityError(case_id, index, "prev_hash does not match the previous "
                                     "event's hash (history was edited, deleted or reordered)")
            if event.expected_hash() != event.hash:
                raise IntegrityError(case_id, index, "the event's hash does not match its content "
                                     "(the event was edited)")
            prev = event.hash
            if index == 1:
                initial = wf.spec.initial
                if event.trigger != "open" or event.source is not None or event.dest != initial:
                    raise IntegrityError(case_id, 1, "the first event is not an 'open' into "
                                         f"{wf.spec.initial!r}")
                state = event.dest
                continue
            if event.source != state:
                raise IntegrityError(case_id, index, f"event starts from {event.source!r} but "
                                     f"replay is in {state!r}")
            if event.trigger in ("link", "overdue") and event.dest is None:
                if event.trigger == "overdue" and event.actor.id != "system":
                    # Only the timer marks a case overdue; a mark by anyone else was
                    # written behind the engine's back.
                    raise IntegrityError(case_id, index, "an 'overdue' mark not made by the "
                                         f"timer (actor {event.actor.id!r}, not 'system')")
                continue
            if not any(
                t.trigger == event.trigger and t.dest == event.dest
                and state in t.sources(wf.spec.non_terminal)
                for t in wf.spec.transitions
            ):
                raise IntegrityError(case_id, index, f"{event.trigger!r} from {state!r} to "
                                     f"{event.dest!r} is not a transition of {wf.spec.key}")
            if event.dest is not None:
                state = event.dest
        if not events:
            raise IntegrityError(case_id, None, "the case has no events")
        if state != case.state:
            raise IntegrityError(case_id, len(events), f"replay ends in {state!r} but the case is "
                                 f"stored in {case.state!r}")
        if case.version != len(events):
            raise IntegrityError(case_id, len(events), f"case version {case.version} but "
                                 f"{len(events)} events are stored")
        if case.head != prev:
            raise IntegrityError(case_id, len(events), "the case's head hash is not its last "
                                 "event's hash")
        return case
