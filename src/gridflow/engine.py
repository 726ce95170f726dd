"""The `Engine`: open cases, fire triggers, read history, verify, run the timer.

A step is load → decide → commit → after-hooks: the engine reads the case
from the store, asks the pure step core (`gridflow.core`) for the event,
builds the new row with `gridflow.fold.evolve`, commits both in one
transaction, then calls the after-hooks. Every path that names a case takes
the acting actor's scope: outside it, a case looks exactly like a missing one.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn

import attrs
import pluggy

from gridflow import core
from gridflow._bridge import committing, settle
from gridflow._errors import (
    CaseNotFound,
    CaseNotVisible,
    ConcurrencyError,
    GridflowError,
    GuardRejected,
    IdempotencyConflict,
    InvalidArgument,
    InvalidPayload,
    PluginError,
    SpecError,
    SpecProblem,
    StoreError,
    UnknownWorkflow,
)
from gridflow._fastinit import maker
from gridflow.clock import Clock, SystemClock
from gridflow.fold import SpecIndex, audit, evolve
from gridflow.model import ALL_GRIDS, Actor, Case, Event, case_has_link
from gridflow.plugins import DeadlineRule, Effect, Guard, make_plugin_manager
from gridflow.plugins import register as register_plugin
from gridflow.store import Store, Write
from gridflow.telemetry import _API as _OTEL_API
from gridflow.telemetry import Telemetry, _modules, committed, traced
from gridflow.values import PLAIN, check_kind, check_text, detach

if TYPE_CHECKING:
    from gridflow._sealing import Privacy
    from gridflow.calendar import Calendar
    from gridflow.machine import CompiledWorkflow
    from gridflow.migrate import MigrationPlan, MigrationReport
    from gridflow.personal.keyring import MasterKey
    from gridflow.spec import WorkflowSpec

__all__ = ["Engine", "HookError", "TickError"]

log = logging.getLogger("gridflow")

#: The most cases one `Engine.tick` takes (a larger ``limit`` is refused).
MAX_TICK_LIMIT = 100_000
_MAX_ID = 200
#: A step's write, built without ``type.__call__`` (`gridflow._fastinit.maker`).
_make_write = maker(Write)


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


def _check_id(value: object, what: str, trigger: str) -> str:
    # Ids name rows and keys in every store: a plain, bounded, printable string.
    # (isprintable also refuses NUL, other controls and lone surrogates.)
    # `Engine._fire_checked` repeats the first test for its case id: change both.
    if value.__class__ is str and 0 < len(value) <= _MAX_ID and value.isprintable() \
            and value[0] != " " and value[-1] != " ":
        return value
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"{what} must be a non-empty string, got "
                              f"{type(value).__name__}" + (f" ({value!r})" if value == "" else ""))
    raise InvalidArgument(f"{what} must be at most {_MAX_ID} printable characters without "
                          "surrounding whitespace")


def _check_actor(actor: object) -> Actor:
    if not isinstance(actor, Actor):
        raise InvalidArgument(f"actor must be a gridflow.Actor, got {type(actor).__name__}")
    return actor


def _check_grid(grid: object) -> str | None:
    if grid is None:
        return None
    if not isinstance(grid, str) or not grid or grid != grid.strip() or grid == "*":
        raise InvalidArgument("grid must be None or a non-empty string without surrounding "
                              f"whitespace (and not '*'), got {grid!r}")
    check_text(grid, "grid")
    return grid


def _subject_request(what: str, subject: object, actor: object, reason: object,
                     ground: str) -> tuple[str, Actor]:
    """The checked arguments of `Engine.erase` / `Engine.restrict`."""
    from gridflow.personal.fields import check_subject_id

    checked = _check_actor(actor)
    if not isinstance(subject, str):
        raise InvalidArgument(f"{what} takes a data subject id (a string), got "
                              f"{type(subject).__name__}")
    subject = subject if subject.startswith("case:") else check_subject_id(subject, "subject")
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidArgument(f"{what} needs a reason{ground}; got none")
    return subject, checked


def _check_links(links: object) -> list[str]:
    if isinstance(links, str) or not isinstance(links, Sequence | set | frozenset):
        raise InvalidArgument(f"links must be a list of case ids, got {type(links).__name__}")
    return [_check_id(other, "a linked case id", "open") for other in dict.fromkeys(links)]


def _check_parts(store: object, clock: object, calendar: object, plugins: object,
                 telemetry: object, keyring: object) -> None:
    """Refuse an `Engine` part that is not one, at construction: each failed only at
    its first use, as a bare AttributeError (``store=1.5`` at the first ``open``)."""
    # By the methods the engine calls (duck typing: any object with them is a part).
    for what, part, needs, example in (
            ("store", store, ("get", "events", "commit", "query"), "gridflow.MemoryStore()"),
            ("clock", clock, ("now",), "gridflow.SystemClock()"),
            ("calendar", calendar, ("add",), "gridflow.WorkingDays.china()"),
            ("keyring", keyring, ("wrap", "unwrap"), "gridflow.Keyring.from_env()")):
        if part is not None and not all(callable(getattr(part, m, None)) for m in needs):
            raise InvalidArgument(f"Engine({what}=...) takes None or an object with "
                                  f"{', '.join(needs)} (e.g. {example}), got "
                                  f"{type(part).__name__}")
    if isinstance(plugins, str | bytes | Mapping) or not isinstance(plugins, Iterable):
        raise InvalidArgument(f"Engine(plugins=...) takes a list of plugin objects, got "
                              f"{type(plugins).__name__}")
    if telemetry is not None and not isinstance(telemetry, Telemetry):
        raise InvalidArgument(f"Engine(telemetry=...) takes None or a gridflow.Telemetry, got "
                              f"{type(telemetry).__name__}")


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


def _refuse_workflow_key(name: object, version: object,
                         compiled: Mapping[tuple[str, int], Any]) -> NoReturn:
    """Raise `InvalidArgument` for a workflow name that is not a string or a version
    that is not an integer (a bool is not one)."""
    known = ", ".join(f"{n}@{v}" for n, v in compiled) or "none"
    what = "workflow" if name.__class__ is not str else "version"
    got = name if what == "workflow" else version
    expected = "a workflow name (a string)" if what == "workflow" else "an integer version"
    raise InvalidArgument(f"{what}: expected {expected}, got {type(got).__name__} "
                          f"{repr(got)[:40]}; registered: {known}")


class Engine:
    """Runs workflows on a store: the whole public API of a running gridflow.

    ``store`` defaults to a new `MemoryStore`; ``clock`` to `SystemClock`;
    ``calendar`` (how deadlines are counted) to `CalendarDays`. ``plugins`` are
    registered after the built-ins; plugins from the ``gridflow`` entry-point
    group are loaded too unless ``entry_points=False``. ``on_hook_error`` is
    called with a `HookError` when an after-hook raises (it is always logged).
    ``verify_steps=True`` verifies each case from its events before a step acts
    on it, so a forged row (say, a department's "done" written by SQL) is
    refused rather than trusted; off by default, since it reads the whole
    history on every step. ``telemetry`` says where OpenTelemetry spans and
    counters go (`gridflow.Telemetry`; by default the global providers once
    the application sets them, and nothing before).

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
        verify_steps: bool = False,
        telemetry: Telemetry | None = None,
        keyring: MasterKey | None = None,
    ) -> None:
        _check_parts(store, clock, calendar, plugins, telemetry, keyring)
        if store is None:
            from gridflow.store.memory import MemoryStore

            store = MemoryStore()
        self.store: Store = store
        self.clock: Clock = clock or SystemClock()
        # Imported here, not with the module: the sealing layer (and the personal
        # package under it) and the built-in workflows were over a third of
        # `import gridflow`, and only an engine needs them.
        from gridflow import workflows
        from gridflow._sealing import Privacy

        #: Personal values (PIPL): policies, keyring, vault (`gridflow._sealing.Privacy`).
        self.privacy: Privacy = Privacy(store, keyring)
        if not calendar:  # as `calendar or CalendarDays()`, importing only when needed
            from gridflow.calendar import CalendarDays

            calendar = CalendarDays()
        self.calendar: Calendar = calendar
        self.on_hook_error = on_hook_error
        #: Re-verify a case from its events before each step on it (`verify`):
        #: a row edited behind gridflow's back is then refused (`IntegrityError`)
        #: instead of acted on. Costs a read and a fold of the case's events.
        self.verify_steps = verify_steps
        #: Where spans and counters go (`gridflow.telemetry`); by default the
        #: global OpenTelemetry providers, once the application sets them.
        self.telemetry: Telemetry = telemetry or Telemetry()
        #: The most recent after-hook failures (at most 100), newest last.
        self.hook_errors: deque[HookError] = deque(maxlen=100)
        #: The most recent cases `tick` could not act on as planned (at most 100).
        self.tick_errors: deque[TickError] = deque(maxlen=100)
        self._pm = make_plugin_manager(plugins, entry_points=entry_points,
                                       builtins={"gridflow.workflows": workflows})
        self._compiled: dict[tuple[str, int], CompiledWorkflow] = {}
        # One resolver for every verify: it keeps each spec version's transitions.
        self._spec_index = SpecIndex(self._spec_of)
        self._latest: dict[str, int] = {}
        # The (workflow, version) -> fingerprints recorded in the store and the
        # retired versions, read once before the first step (`check_definitions`).
        self._recorded: dict[tuple[str, int], set[str]] | None = None
        self._retired: set[tuple[str, int]] = set()
        self.guards: dict[str, Guard] = {}
        self.effects: dict[str, Effect] = {}
        self.roles: dict[str, tuple[str, str]] = {}
        self._refresh()

    # -- plugins and workflows ------------------------------------------------------

    @property
    def plugins(self) -> pluggy.PluginManager:
        """The pluggy `PluginManager` (register plugins with `Engine.register`)."""
        return self._pm

    def register(self, plugin: object, name: str | None = None) -> str:
        """Register a plugin after construction; its workflows, guards and effects
        become available at once. Returns the name it is registered under (by
        default its class or module name), which every message about it uses.

        A misspelled or unknown ``gridflow_*`` hook, or one not marked
        ``@gridflow.hookimpl``, is refused (`PluginError`); a plugin whose
        workflows do not compile is refused (`SpecError`); either way the
        engine is left as it was.

        Example:
            >>> import gridflow
            >>> engine = gridflow.Engine(entry_points=False)
            >>> class Quiet:
            ...     @gridflow.hookimpl
            ...     def gridflow_veto(self, case, trigger, actor, payload):
            ...         return None
            >>> engine.register(Quiet())
            'Quiet'
        """
        if name is not None and not isinstance(name, str):
            raise InvalidArgument(f"register(name=...) takes None or a string, got "
                                  f"{type(name).__name__}")
        registered = register_plugin(self._pm, plugin, name)
        try:
            self._refresh()
        except BaseException:
            self._pm.unregister(name=registered)
            self._refresh()
            raise
        return registered

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
        from gridflow.spec import WorkflowSpec

        if not isinstance(spec, WorkflowSpec):
            raise InvalidArgument(f"register_workflow takes a gridflow.WorkflowSpec (e.g. "
                                  f"WorkflowSpec.load(path)), got {type(spec).__name__}")
        if self._recorded is None:
            # No schema yet: checked again before the first step.
            with suppress(StoreError):
                self.check_definitions()
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
        self._deadline_hook = hook.gridflow_deadline
        # get_hookimpls() copies a list on every call; these stay current by themselves.
        self._veto_impls = _live_impls(hook.gridflow_veto)
        self._before_impls = _live_impls(hook.gridflow_before_fire)
        self._deadline_impls = _live_impls(self._deadline_hook)
        self._after_impls = _live_impls(hook.gridflow_after_fire)

    def _add_spec(self, spec: WorkflowSpec) -> None:
        key = (spec.name, spec.version)
        known = self._compiled.get(key)
        if known is not None:
            if known.spec == spec:
                return
            raise SpecError(spec.key, [SpecProblem(
                "version", f"{spec.key} is already registered with different content "
                f"(registered fingerprint {known.spec.fingerprint}, new {spec.fingerprint})",
                "bump the version: cases keep running on the version they were opened with")])
        if self._recorded is not None:
            self._check_recorded(spec)
        from gridflow.machine import compile_workflow  # with the first spec: transitions too

        self._compiled[key] = compile_workflow(spec, self.guards, self.effects, self.roles)
        if spec.personal is not None and spec.version >= self._latest.get(spec.name, 0):
            # A spec's declared personal fields; the latest version's apply to the workflow.
            self.privacy.policies[spec.name] = spec.personal
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

    def check_definitions(self, *, reread: bool = False) -> None:
        """Compare every registered spec with the definitions recorded in the store.

        Each case's first event records its spec's `WorkflowSpec.fingerprint`;
        a spec registered under a name and version the store holds with another
        fingerprint is an edited definition under an old version number, and
        raises `SpecError` naming both fingerprints. Runs once by itself before
        the engine's first step (``open``, ``fire``, ``tick``, a migration) and
        for every spec registered afterwards; ``reread=True`` reads the store
        again (and the retired versions, `retire`).

        Example:
            >>> import gridflow
            >>> gridflow.Engine(entry_points=False).check_definitions()
        """
        if self._recorded is not None and not reread:
            return
        store = self.store
        recorded: dict[tuple[str, int], set[str]] = {}
        reader = getattr(store, "fingerprints", None)
        for name, version, fp in (reader() if callable(reader) else ()):
            recorded.setdefault((name, version), set()).add(fp)
        retired = getattr(store, "retired", None)
        self._retired = set(retired()) if callable(retired) else set()
        self._recorded = recorded
        for compiled in list(self._compiled.values()):
            self._check_recorded(compiled.spec)

    def _check_recorded(self, spec: WorkflowSpec) -> None:
        assert self._recorded is not None
        other = sorted(self._recorded.get((spec.name, spec.version), set()) - {spec.fingerprint})
        if other:
            raise SpecError(spec.key, [SpecProblem(
                "version", f"the store holds cases of {spec.key} recorded with fingerprint "
                f"{', '.join(other)}, but the definition registered now has fingerprint "
                f"{spec.fingerprint}",
                "an edited definition needs a new version: register the recorded one, give "
                "this one a new version, and migrate the cases (gridflow.MigrationPlan)")])

    def retire(self, name: str, version: int, *, retired: bool = True) -> None:
        """Mark ``name@version`` retired: no new case opens on it (running cases
        go on, and can be migrated away). Kept in the store, so every engine on
        it sees it (others at their next start, or `check_definitions(reread=True)`).
        ``retired=False`` takes the mark back.

        Example:
            >>> import gridflow
            >>> engine = gridflow.Engine(entry_points=False)
            >>> engine.retire("mediation", 1)
            >>> engine.open("mediation", actor=gridflow.Actor.system())  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            gridflow._errors.UnknownWorkflow: workflow mediation@1 is retired: ...
        """
        if retired.__class__ is not bool:
            # retired="no" (or 0.0) would be read by its truth: retire, or un-retire.
            raise InvalidArgument(f"retire(retired=...) takes True or False, got "
                                  f"{type(retired).__name__} {repr(retired)[:40]}")
        spec = self.workflow(name, version)
        mark = getattr(self.store, "set_retired", None)
        if not callable(mark):
            raise InvalidArgument(f"the store {type(self.store).__name__} cannot keep "
                                  "retired versions (it has no set_retired method)")
        self.check_definitions()
        mark(spec.name, spec.version, retired)
        if retired:
            self._retired.add((spec.name, spec.version))
        else:
            self._retired.discard((spec.name, spec.version))

    def retired_versions(self) -> set[tuple[str, int]]:
        """The ``(workflow, version)`` pairs marked retired (see `retire`).

        Example:
            >>> import gridflow
            >>> gridflow.Engine(entry_points=False).retired_versions()
            set()
        """
        self.check_definitions()
        return set(self._retired)

    def plan_migration(
        self, plan: MigrationPlan, *, actor: Actor | None = None,
        cases: Iterable[str] | None = None, query: Mapping[str, Any] | None = None,
    ) -> MigrationReport:
        """The dry run of a `MigrationPlan`: checks the plan against both specs
        and the store (refusals raise `MigrationError`, listing every problem),
        then reports per source state how many cases would move where, and
        every case that cannot, with the reason (a `MigrationReport`). Stores
        nothing. ``actor`` (default: the system, every grid) limits the cases
        to its grids; ``cases`` or ``query`` (`Store.query` filters) pick them.

        Example:
            >>> import gridflow
            >>> engine = gridflow.Engine(entry_points=False)
            >>> engine.plan_migration(gridflow.MigrationPlan("grid_case", 1, 7))
            ... # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            gridflow._errors.MigrationError: migration grid_case@1 -> @7 is refused ...
        """
        from gridflow import migrate

        return migrate.run(self, plan, actor=actor or Actor.system(), dry_run=True,
                           cases=cases, query=query)

    def migrate(
        self, plan: MigrationPlan, *, actor: Actor, cases: Iterable[str] | None = None,
        query: Mapping[str, Any] | None = None, retries: int = 3,
    ) -> MigrationReport:
        """Move the cases of a `MigrationPlan`, each in its own atomic step.

        Each case gets one ``migrate`` event (both versions and fingerprints,
        the state mapping, the data keys changed) and its row moves through
        the fold; its deadline is recomputed under the target's rules from
        when it entered its state (see `gridflow.migrate`). A case changed by
        a concurrent step is re-read and retried up to ``retries`` times, then
        skipped and reported; none is ever half-moved. Running the same plan
        again moves only the cases still on the source version. Returns a
        `MigrationReport` with the counts.

        Example:
            >>> import gridflow
            >>> engine = gridflow.Engine(entry_points=False)
            >>> engine.migrate(gridflow.MigrationPlan("grid_case", 1, 1),
            ...                actor=gridflow.Actor.system())  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            gridflow._errors.MigrationError: migration grid_case@1 -> @1 is refused ...
        """
        from gridflow import migrate

        return migrate.run(self, plan, actor=actor, dry_run=False, cases=cases, query=query,
                           retries=retries)

    def _get_compiled(self, name: str, version: int | None) -> CompiledWorkflow:
        if name.__class__ is not str or (version is not None and version.__class__ is not int):
            # True == 1 (and hashes alike): version=True would find @1; a list would
            # raise TypeError from the dict look-up.
            _refuse_workflow_key(name, version, self._compiled)
        if version is None:
            version = self._latest.get(name)
        compiled = self._compiled.get((name, version)) if version is not None else None
        if compiled is None:
            raise UnknownWorkflow(name, version, (f"{n}@{v}" for n, v in self._compiled))
        return compiled


    # -- reading ----------------------------------------------------------------------

    def _load(self, case_id: str, actor: Actor | None, *, checked: bool = False) -> Case:
        """The stored case, if ``actor`` (when given) may see it; else the refusal
        that a missing case gets, word for word."""
        case = self.store.get(case_id if checked else _check_id(case_id, "case_id", ""))
        if actor is not None:
            if not checked:
                _check_actor(actor)
            if case is None or not actor.can_touch(case.grid):
                raise CaseNotVisible(case_id, actor.id, no_grids=not actor.grids)
        elif case is None:
            raise CaseNotFound(case_id)
        return case

    def _lookup(self, actor: Actor) -> core.Lookup:
        """The look-up guards get: another case, or ``None`` if it is missing *or*
        outside the actor's grids (the two must look the same)."""
        get = self.store.get

        def lookup(case_id: str) -> Case | None:
            if not isinstance(case_id, str) or not case_id:
                return None
            found = get(case_id)
            return found if found is not None and actor.can_touch(found.grid) else None

        return lookup

    def get(self, case_id: str, *, actor: Actor | None = None) -> Case:
        """The current snapshot of a case.

        With ``actor``, a case outside the actor's grids is refused exactly as
        a missing one (`CaseNotVisible`, also a `CaseNotFound`); without, the
        host reads as itself (`CaseNotFound` if there is no such case).

        Example:
            >>> import gridflow
            >>> engine = gridflow.Engine(entry_points=False)
            >>> engine.get("nope")
            Traceback (most recent call last):
            ...
            gridflow._errors.CaseNotFound: case 'nope' does not exist in this store
            >>> engine.get("nope", actor=gridflow.Actor("w-1", ["grid_worker"], ["华三-1"]))
            ... # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            gridflow._errors.CaseNotVisible: case 'nope' does not exist or is outside the grids ...
        """
        return self._shown(self._load(case_id, actor), actor)

    def history(self, case_id: str, *, actor: Actor | None = None) -> list[Event]:
        """Every event of a case, oldest first (``seq`` 1..n); scoped like `get`.

        Example:
            >>> import gridflow
            >>> engine = gridflow.Engine(entry_points=False)
            >>> r = gridflow.Actor("r", ["resident"], ["华三-1"])
            >>> c = engine.open("grid_case", actor=r, grid="华三-1",
            ...                 data={"title": "路灯坏了", "source": "resident"})
            >>> [e.trigger for e in engine.history(c.id, actor=r)]
            ['open']
        """
        events = self.store.events(_check_id(case_id, "case_id", ""))
        if actor is not None or not events:
            self._load(case_id, actor)
        if events and self.privacy.policies:
            events, seen = self.privacy.show_events(self._workflow_of(events), events, actor)
            self._record_read(events[0].case_id, actor, seen)
        return events

    def allowed(self, case_id: str, actor: Actor, *,
                payload: Mapping[str, Any] | None = None) -> list[str]:
        """Triggers ``actor`` may fire on the case now, judged by state, role and
        the plugins' vetoes (`gridflow_veto`, asked with ``payload``, by default
        an empty one, at the engine clock's now).

        A case outside the actor's grids is refused as a missing one
        (`CaseNotVisible`). Spec guards check the payload's content, so they
        are left to `fire`: a trigger listed here may still be refused by one.
        A veto that decides on payload fields sees only the ``payload`` given.

        Example:
            >>> import gridflow
            >>> engine = gridflow.Engine(entry_points=False)
            >>> c = engine.open("grid_case", actor=gridflow.Actor("r", ["resident"], ["g"]),
            ...                 grid="g", data={"title": "路灯坏了", "source": "resident"})
            >>> engine.allowed(c.id, gridflow.Actor("s", ["coordinator"], ["g"]))
            ['mark_duplicate', 'note', 'reject', 'triage']
        """
        case = self._load(case_id, _check_actor(actor))
        wf = self._get_compiled(case.workflow, case.workflow_version)
        rules = wf.rules.get(case.state, {})
        found = sorted(
            t for t, rule in rules.items()
            if not rule.roles or not rule.roles.isdisjoint(actor.roles)
        )
        if not self._veto_impls or not found:
            return found
        asked = dict(payload or {})
        now = self.clock.now()
        return [t for t in found if self._vetoed(
            {"case": case, "trigger": t, "actor": actor, "payload": asked, "now": now}) is None]

    def linked(self, case_id: str, *, actor: Actor | None = None) -> list[Case]:
        """The cases linked to ``case_id`` (both directions are always stored).

        With ``actor``, the case itself is scoped like `get`, and linked cases
        outside the actor's grids are left out, as missing ones are.

        Example:
            >>> import gridflow
            >>> engine = gridflow.Engine(entry_points=False)
            >>> r = gridflow.Actor("r", ["resident"], ["g"])
            >>> a = engine.open("grid_case", actor=r, grid="g",
            ...                 data={"title": "a", "source": "resident"})
            >>> b = engine.open("grid_case", actor=r, grid="g",
            ...                 data={"title": "b", "source": "resident"}, links=[a.id])
            >>> [c.id for c in engine.linked(a.id, actor=r)] == [b.id]
            True
        """
        case = self._load(case_id, actor)
        found = (self.store.get(i) for i in case.links)
        return [c for c in found if c is not None and (actor is None or actor.can_touch(c.grid))]

    def route(self, case_id: str, *, actor: Actor | None = None) -> list[str]:
        """Departments or mediation parties to involve in the case, as the
        `gridflow_route` plugins suggest (first answer wins; empty if none).
        Scoped like `get`.

        Example:
            >>> import gridflow
            >>> class Router:
            ...     @gridflow.hookimpl
            ...     def gridflow_route(self, case):
            ...         return ["社区管理办", "清运单位"]
            >>> engine = gridflow.Engine(plugins=[Router()], entry_points=False)
            >>> r = gridflow.Actor("r", ["resident"], gridflow.ALL_GRIDS)
            >>> c = engine.open("grid_case", actor=r, data={"title": "堆物", "source": "resident"})
            >>> engine.route(c.id, actor=r)
            ['社区管理办', '清运单位']
        """
        case = self._load(case_id, actor)
        found = settle(self._pm.hook.gridflow_route(case=case), "gridflow_route")
        return list(found or [])

    # -- opening ----------------------------------------------------------------------

    @traced("open", workflow_arg=True)
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
        gets the link too (and a ``link`` event), in the same transaction; the
        actor must be in scope for every linked case (else `CaseNotVisible`,
        as for a missing one, and nothing is stored).

        Example:
            >>> import gridflow
            >>> engine = gridflow.Engine(entry_points=False)
            >>> c = engine.open("grid_case", actor=gridflow.Actor("v", ["volunteer"], ["华三-1"]),
            ...                 data={"title": "楼道堆物", "source": "visit"}, grid="华三-1")
            >>> c.grid, c.data["title"]
            ('华三-1', '楼道堆物')
        """
        actor = _check_actor(actor)
        if self._recorded is None:
            self.check_definitions()
        wf = self._get_compiled(workflow, version)
        if self._retired and (wf.spec.name, wf.spec.version) in self._retired:
            self._refuse_retired(wf.spec)
        key = None if idempotency_key is None else _check_id(idempotency_key,
                                                              "idempotency_key", "open")
        if case_id is not None:
            _check_id(case_id, "case_id", "open")
        if key is not None:
            done = self.store.event_by_key(key)
            if done is not None:
                return self._replay_key(done, key, case_id, "open", actor, wf.spec.name)
        grid = _check_grid(grid)
        rule = core.admit_open(wf, actor, grid)
        if data is not None and not isinstance(data, Mapping):
            raise InvalidPayload(f"data must be a JSON object (a dict), got {type(data).__name__}",
                                 trigger="open")
        core.check_fields(None, wf.spec.initial, "open", data or {}, rule)
        opened = detach(data or {}, "data", trigger="open")
        wanted = _check_links(links)
        now = self.clock.now()
        if case_id is None:
            import uuid  # here, not at the top: `import gridflow` stays lighter

            case_id = uuid.uuid4().hex
        elif self.store.get(case_id) is not None:
            # Ids are one namespace across grids: that an id is taken is all this says.
            raise InvalidPayload(f"case id {case_id!r} is already taken; choose another "
                                 "case_id, or let gridflow choose one", case_id=case_id,
                                 trigger="open")
        spec = wf.spec
        draft = Case(case_id, spec.name, spec.version, spec.initial, 0, opened, grid, now, now)
        start = self._pre_hooks(draft, "open", actor, opened, now)
        try:
            outcome = core.run_open(wf, draft, actor, start, wanted, now, self._lookup(actor),
                                    self._pm.hook)
        except GuardRejected as exc:
            clean = self.privacy.clean_refusal(spec.name, "open", opened, start, exc)
            if clean is exc:
                raise
            raise clean from None  # the cause may quote a personal value too
        outcome = self.privacy.seal_outcome(draft, "open", outcome, {})
        deadline = self._deadline(draft, wf, outcome, now)
        event = core.record_open(draft, actor, now, outcome, deadline, key, spec.fingerprint)
        case = evolve(None, event)
        writes = [Write(case, event, 0), *self._link_writes(case, outcome.links, actor, now,
                                                              "open")]
        replayed = self._commit(writes, key, case_id, "open")
        if replayed is not None:
            return replayed
        self._after(case, event)
        return self._shown(case, actor)

    def _refuse_retired(self, spec: WorkflowSpec) -> None:
        allowed = sorted(v for (n, v) in self._compiled if n == spec.name
                         and (n, v) not in self._retired)
        raise UnknownWorkflow(spec.name, spec.version, (f"{spec.name}@{v}" for v in allowed),
                              retired=True)

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

        Checks, in order: the case exists and is in the actor's grids (else
        `CaseNotVisible`, the same for both), ``expected_version``, the
        trigger is allowed in the state, the actor's role, required and
        restricted payload fields, plugin vetoes, then the spec's guards
        (through the transitions machine). Any refusal raises and stores
        nothing. On a lost race `ConcurrencyError` is raised, or with
        ``retries=n`` the step is re-read and re-checked up to n more times
        (not when ``expected_version`` pins the version). The same
        ``idempotency_key`` fired again returns the stored result, to an
        actor in scope for that case, for the same trigger and case.

        Example:
            >>> import gridflow
            >>> engine = gridflow.Engine(entry_points=False)
            >>> c = engine.open("grid_case", actor=gridflow.Actor("r", ["resident"], ["g"]),
            ...                 grid="g", data={"title": "地锁", "source": "resident"})
            >>> secretary = gridflow.Actor("s", ["coordinator"], ["g"])
            >>> c = engine.fire(c.id, "triage", actor=secretary,
            ...                 payload={"category": "违规堆物", "priority": "normal"})
            >>> c.state, c.version
            ('triaged', 2)
        """
        telemetry = self.telemetry
        if telemetry._explicit or _OTEL_API in _modules:
            # Maybe traced: through `traced`, as every operation is. Otherwise the same
            # steps without its wrapper (and its repacked keyword arguments).
            return self._fire_traced(case_id, trigger, actor, payload, idempotency_key,
                                     expected_version, retries)
        return self._fire_checked(case_id, trigger, actor, payload, idempotency_key,
                                  expected_version, retries)

    @traced("fire", case_arg=True, trigger_arg=True)
    def _fire_traced(
        self, case_id: str, trigger: str, actor: Actor, payload: Mapping[str, Any] | None,
        idempotency_key: str | None, expected_version: int | None, retries: int,
    ) -> Case:
        return self._fire_checked(case_id, trigger, actor, payload, idempotency_key,
                                  expected_version, retries)

    def _fire_checked(
        self, case_id: str, trigger: str, actor: Actor, payload: Mapping[str, Any] | None,
        idempotency_key: str | None, expected_version: int | None, retries: int,
    ) -> Case:
        # The checks of `_check_actor` and `_check_id`, inline for the common values
        # (each function decides, and words the refusal, for anything else). Calling
        # both costs ~770 instructions a step (0.4%), `_check_actor` alone ~430.
        if actor.__class__ is not Actor:
            actor = _check_actor(actor)
        if not (case_id.__class__ is str and 0 < len(case_id) <= _MAX_ID
                and case_id.isprintable() and case_id[0] != " " and case_id[-1] != " "):
            _check_id(case_id, "case_id", "")
        if not isinstance(trigger, str):
            raise InvalidArgument(f"trigger must be a string, got {type(trigger).__name__}")
        key = None if idempotency_key is None else _check_id(idempotency_key,
                                                              "idempotency_key", trigger)
        if retries.__class__ is not int or retries < 0 or expected_version is not None:
            for name, value in (("expected_version", expected_version), ("retries", retries)):
                if value is not None and (value.__class__ is not int or value < 0):
                    raise InvalidArgument(f"{name} must be a non-negative int, got {value!r}")
        attempt = 0
        while True:
            try:
                return self._fire(case_id, trigger, actor, payload, key, expected_version)
            except ConcurrencyError:
                if attempt >= retries or expected_version is not None:
                    raise
                attempt += 1

    def _fire(
        self, case_id: str, trigger: str, actor: Actor, payload_in: Mapping[str, Any] | None,
        key: str | None, expected_version: int | None,
    ) -> Case:
        if self._recorded is None:
            self.check_definitions()
        if key is not None:
            done = self.store.event_by_key(key)
            if done is not None:
                return self._replay_key(done, key, case_id, trigger, actor)
        # `_load(case_id, actor, checked=True)`'s read and test, inline: calling it costs
        # ~680 instructions a step (0.4%), calling `Actor.can_touch` (repeated here for
        # a plain Actor) ~350. A refusal goes to `_load`, which decides and words it.
        case = self.store.get(case_id)
        if case is None or not (actor.can_touch(case.grid) if actor.__class__ is not Actor
                                else actor.grids is ALL_GRIDS or case.grid in actor.grids):
            case = self._load(case_id, actor, checked=True)
        if self.verify_steps:
            case = self.verify(case_id)
        if expected_version is not None and case.version != expected_version:
            raise ConcurrencyError(case_id, expected_version, case.version)
        wf = self._compiled.get((case.workflow, case.workflow_version))
        if wf is None:
            wf = self._get_compiled(case.workflow, case.workflow_version)
        rule = core.admit(wf, case, trigger, actor)
        if payload_in is not None and payload_in.__class__ is not dict \
                and not isinstance(payload_in, Mapping):  # a dict: no ABC check
            raise InvalidPayload(f"case {case_id!r}: trigger {trigger!r}: the payload must be "
                                 f"a JSON object (a dict), got {type(payload_in).__name__}",
                                 case_id=case_id, trigger=trigger)
        if rule.requires or rule.choices:
            core.check_fields(case_id, case.state, trigger, payload_in or {}, rule)
        payload = detach(payload_in, "payload", trigger=trigger, case_id=case_id) \
            if payload_in else {}
        now = self.clock.now()
        if self._veto_impls or self._before_impls:
            data = self._pre_hooks(case, trigger, actor, payload, now)
        else:
            # What `_pre_hooks` starts from, with no hook: calling it costs ~770
            # instructions a step (0.4%), calling `core.working_data` ~350.
            data = core.WorkingData(case.data)
        data, opened = self.privacy.open_for_step(case, data)
        try:
            outcome = core.run(wf, case, trigger, actor, payload, data, now,
                               self._lookup(actor), self._pm.hook)
        except GuardRejected as exc:
            clean = self.privacy.clean_refusal(case.workflow, trigger, payload, data, exc)
            if clean is exc:
                raise
            raise clean from None  # the cause may quote a personal value too
        outcome = self.privacy.seal_outcome(case, trigger, outcome, opened)
        if outcome.dest is None and outcome.deadline_at is None:
            deadline = case.deadline_at  # an internal step: the clock keeps running
        else:
            deadline = self._deadline(case, wf, outcome, now)
        plain = False
        if outcome.effects and outcome.payload:
            # Effects may add derived facts to the payload (e.g. on_time): those values
            # enter the hashed history, so they meet the same domain. What the check
            # finds is kept: a plain payload (no float, no subclass) is what the hashed
            # text's orjson path would otherwise walk it again to learn.
            plain = check_kind(outcome.payload, "payload", case_id=case.id) == PLAIN
        event = core.record(case, trigger, actor, now, outcome, deadline, key,
                            payload_plain=plain)
        new_case = evolve(case, event)
        write = _make_write(new_case, event, case.version)
        writes: Sequence[Write] = (write,)
        if outcome.links:
            writes = [write, *self._link_writes(new_case, outcome.links, actor, now, trigger)]
        privacy = self.privacy
        # `_commit`, inline (it has no other caller than `open`): calling it costs ~570
        # instructions a step (0.3%). Change both.
        try:
            committing()
            privacy.commit(writes)  # the store's commit, with the step's vault rows
        except ConcurrencyError:
            replayed = self._raced(writes, key, case_id, trigger)
            if replayed is not None:
                return replayed
            raise
        committed(new_case, event)
        if self._after_impls:
            self._after(new_case, event)
        # `_shown`, inline: calling it costs ~600 instructions a step (0.3%); keep the two
        # the same.
        if not privacy.policies:
            return new_case
        shown, seen = privacy.show_case(new_case, actor)
        if seen:
            self._record_read(new_case.id, actor, seen)
        return shown

    # -- the stages of a step -------------------------------------------------------------

    def _pre_hooks(
        self, case: Case, trigger: str, actor: Actor, payload: dict[str, Any], now: datetime
    ) -> dict[str, Any]:
        """Run veto and before-fire hooks; return the data the step starts from."""
        # `_fire` repeats the no-hook case inline: change both.
        if not self._veto_impls and not self._before_impls:
            return core.working_data(case.data)
        args = {"case": case, "trigger": trigger, "actor": actor, "payload": payload,
                "now": now}
        cid = case.id if case.version else "(new)"
        veto = self._vetoed(args)
        if veto is not None:
            guard, reason, cause = veto
            raise GuardRejected(cid, case.state, trigger, guard, reason) from cause
        data = core.working_data(case.data)
        # pluggy's order: the last registered (the host's own plugins) first.
        for impl in reversed(self._before_impls.copy()):
            try:
                update = settle(impl.function(*[args[a] for a in impl.argnames]),
                                f"{impl.plugin_name}.gridflow_before_fire")
            except PluginError:
                raise
            except Exception as exc:
                raise GuardRejected(cid, case.state, trigger,
                                    f"{impl.plugin_name}.gridflow_before_fire",
                                    f"the hook raised {exc!r}") from exc
            if update:
                data.update(update)
        return data

    def _vetoed(
        self, args: Mapping[str, Any]
    ) -> tuple[str, str, BaseException | None] | None:
        """The first veto: (plugin.hook, reason, what it raised), asking each by name."""
        for impl in reversed(self._veto_impls.copy()):
            guard = f"{impl.plugin_name}.gridflow_veto"
            try:
                reason = settle(impl.function(*[args[a] for a in impl.argnames]), guard)
            except PluginError:
                raise
            except Exception as exc:
                return guard, f"the hook raised {exc!r}", exc
            if reason:
                return guard, str(reason), None
        return None

    def _deadline(
        self, case: Case, wf: CompiledWorkflow, outcome: core.Outcome, now: datetime
    ) -> datetime | None:
        """The deadline in force after the step (asks the deadline hook and rule)."""
        dest = outcome.dest
        if dest is None:
            fixed = outcome.deadline_at
            if fixed is None:
                return case.deadline_at
            if fixed.tzinfo is None or fixed.utcoffset() is None:
                raise GuardRejected(case.id, case.state, "effect", "effect",
                                    f"set a naive deadline_at {fixed.isoformat()}; set an "
                                    "aware datetime")
            return fixed.astimezone(UTC)
        state = wf.states[dest]
        override = None
        if self._deadline_impls:
            # The hook sees the case as it will be stored after entering the state.
            preview = attrs.evolve(case, state=dest, data=outcome.data, version=case.version + 1,
                                   updated_at=now, links=case.links + outcome.links)
            override = settle(self._deadline_hook(case=preview, state=state, now=now),
                              "gridflow_deadline")
        answer = None
        if override is None and outcome.deadline_at is None:
            rule = self.deadline_rules.get(case.workflow)
            if rule is not None:
                answer = rule(state, outcome.data, now)
        return core.entering_deadline(case.id, state, now, self.calendar, override=override,
                                      fixed=outcome.deadline_at, rule_answer=answer)

    def _link_writes(
        self, case: Case, others: Iterable[str], actor: Actor, now: datetime, via: str
    ) -> list[Write]:
        """A ``link`` event on every other case the step links; each must be in scope."""
        writes = []
        lookup = self._lookup(actor)
        for other_id in others:
            other = lookup(other_id)
            if other is None:
                raise CaseNotVisible(other_id, actor.id, no_grids=not actor.grids)
            if case_has_link(other, case.id):
                continue
            event = core.link_event(other, case.id, actor, now, via)
            writes.append(Write(evolve(other, event), event, other.version))
        return writes

    def _commit(
        self, writes: Sequence[Write], key: str | None, case_id: str, trigger: str
    ) -> Case | None:
        """Commit; if a racing writer landed this very idempotency key first,
        return its result instead (the step happened once)."""
        # `_fire` has a copy of this, inline (a call costs ~570 instructions a step).
        try:
            committing()
            self.privacy.commit(writes)  # the store's commit, with the step's vault rows
        except ConcurrencyError:
            replayed = self._raced(writes, key, case_id, trigger)
            if replayed is not None:
                return replayed
            raise
        committed(writes[0].case, writes[0].event)
        return None

    def _raced(
        self, writes: Sequence[Write], key: str | None, case_id: str, trigger: str
    ) -> Case | None:
        """After a lost race: the stored result if the racing writer landed this very
        idempotency key (the step happened once), else ``None`` (the race is raised)."""
        if key is not None:
            done = self.store.event_by_key(key)
            if done is not None:
                return self._replay_key(done, key, case_id, trigger, writes[0].event.actor,
                                        writes[0].case.workflow if trigger == "open" else None)
        return None

    def _replay_key(
        self, done: Event, key: str, case_id: str | None, trigger: str, actor: Actor,
        workflow: str | None = None,
    ) -> Case:
        # A key names one step: retried, the stored result comes back to whoever
        # may see that case (a retried job may run as another worker), and to no
        # one else. The key may not name a different step.
        case = self.store.get(done.case_id)
        if case is None or not actor.can_touch(case.grid):
            if trigger != "open" and case_id == done.case_id:
                raise CaseNotVisible(case_id, actor.id)
            raise CaseNotVisible(case_id or "(new)", actor.id, key=key)
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
        return self._shown(case, actor)

    def _after(self, case: Case, event: Event) -> None:
        if not self._after_impls:
            return
        for impl in reversed(self._after_impls.copy()):
            try:
                settle(impl.function(*[{"case": case, "event": event}[a]
                                        for a in impl.argnames]),
                       f"{impl.plugin_name}.gridflow_after_fire")
            except Exception as exc:
                failure = HookError(impl.plugin_name, "gridflow_after_fire", case.id,
                                    event.seq, exc)
                self.hook_errors.append(failure)
                log.exception("after-hook of plugin %r failed on case %r seq %d; the step stays "
                              "committed", impl.plugin_name, case.id, event.seq)
                if self.on_hook_error is not None:
                    self.on_hook_error(failure)

    # -- the timer ------------------------------------------------------------------------
    @traced("tick")
    def tick(self, now: datetime | None = None, limit: int = 100) -> list[Event]:
        """Fire the ``on_breach`` trigger of every overdue case, as actor ``system``.

        Takes up to ``limit`` (1 .. 100,000) cases whose ``deadline_at`` is at or before
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
            >>> c = engine.open("grid_case", actor=gridflow.Actor("r", ["resident"], ["g"]),
            ...                 grid="g", data={"title": "路灯坏了", "source": "resident"})
            >>> _ = clock.advance(timedelta(days=2))
            >>> [(e.trigger, e.payload["state"]) for e in engine.tick()]
            [('overdue', 'reported')]
            >>> engine.tick()
            []
        """
        if limit.__class__ is not int or not 1 <= limit <= MAX_TICK_LIMIT:
            raise InvalidArgument(f"tick(limit=...) takes an int from 1 to {MAX_TICK_LIMIT:,}, "
                                  f"got {limit!r}")
        if now is not None and (not isinstance(now, datetime) or now.utcoffset() is None):
            raise InvalidArgument("tick(now=...) takes an aware datetime (with a time zone)")
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
        if len(out) < limit and any(p.retention is not None
                                    for p in self.privacy.policies.values()):
            # Personal data past its workflow's retention (PIPL art. 47), once across workers.
            out.extend(self.privacy.retire(now, self._terminal_states, limit - len(out)))
        return out

    def _terminal_states(self, workflow: str) -> list[str]:
        return sorted({s.name for (name, _), wf in self._compiled.items() if name == workflow
                       for s in wf.spec.states if s.terminal})

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
        rule = wf.rules.get(case.state, {}).get(trigger)
        if rule is not None and "text" in rule.requires:
            payload["text"] = payload["reason"]  # a breach trigger asking for a note (urge)
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
        event = core.overdue_event(case, self.clock.now(), refused)
        marked = evolve(case, event)
        committing()
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

    # -- personal values (PIPL; the work is in gridflow._sealing) ---------------------------

    def _shown(self, case: Case, actor: Actor | None) -> Case:
        """``case`` with its personal values as ``actor`` may see them."""
        # `_fire` has a copy of this, inline (a call costs ~600 instructions a step).
        if not self.privacy.policies:
            return case
        shown, seen = self.privacy.show_case(case, actor)
        if seen:  # most reads show nothing personal: no call
            self._record_read(case.id, actor, seen)
        return shown

    def _workflow_of(self, events: Sequence[Event]) -> str:
        changes = events[0].changes
        if changes is not None and changes.workflow:
            return changes.workflow
        case = self.store.get(events[0].case_id)
        return case.workflow if case is not None else ""

    def _record_read(self, case_id: str, actor: Actor | None, seen: Sequence[str]) -> None:
        if seen and actor is not None:
            from gridflow._sealing import PERSONAL_READ

            self.privacy.append_internal(case_id, PERSONAL_READ, actor, self.clock.now(),
                                         {"values": len(seen), "restricted": True})

    def erase(self, subject: str, *, actor: Actor, reason: str) -> list[str]:
        """Erase a data subject (PIPL art. 47): destroy their key and every ciphertext.

        Appends an ``erased`` event (no state or data change) to every case
        that held the subject's values and returns those case ids; reads then
        show a tombstone, and `verify` still passes (the events hold only
        references and commitments).

        Example:
            >>> import gridflow
            >>> engine = gridflow.Engine(entry_points=False)
            >>> r = gridflow.Actor("r", ["resident"], ["g"])
            >>> c = engine.open("grid_case", actor=r, grid="g", data={
            ...     "title": "噪音", "source": "resident",
            ...     "reporter": {"subject": "p-17", "name": "王小明"}})
            >>> engine.erase("p-17", actor=gridflow.Actor.system(), reason="art. 47") == [c.id]
            True
            >>> engine.get(c.id).data["reporter"]["name"]
            '[已删除 erased]'
        """
        subject, actor = _subject_request("erase", subject, actor, reason,
                                          " (the legal ground, e.g. 'PIPL art. 47 request of "
                                          "2026-12-01')")
        return self.privacy.erase(subject, actor, reason, self.clock.now())

    def restrict(self, subject: str, *, actor: Actor, reason: str) -> list[str]:
        """Restrict a data subject's values (PIPL art. 47(2)): stored, read only by auditors.

        Every other reader sees ``[已限制 restricted]``; each read by an
        ``auditor`` is recorded as a ``personal_read`` event. Returns the ids
        of the cases holding the subject's values (each gets a ``restricted`` event).

        Example:
            >>> import gridflow
            >>> engine = gridflow.Engine(entry_points=False)
            >>> r = gridflow.Actor("r", ["resident"], ["g"])
            >>> c = engine.open("grid_case", actor=r, grid="g", data={
            ...     "title": "噪音", "source": "resident",
            ...     "reporter": {"subject": "p-9", "phone": "13812345678"}})
            >>> engine.restrict("p-9", actor=gridflow.Actor.system(), reason="诉讼保全") == [c.id]
            True
            >>> engine.get(c.id).data["reporter"]["phone"]
            '[已限制 restricted]'
        """
        subject, actor = _subject_request("restrict", subject, actor, reason,
                                          " (the legal ground)")
        return self.privacy.restrict(subject, actor, reason, self.clock.now())

    @traced("verify", case_arg=True)
    def verify(self, case_id: str) -> Case:
        """Recompute the case row from its events and compare every field.

        Checks the hash chain (gap-free ``seq``, each event's hash, each
        ``prev_hash``), that every step is a transition of the case's workflow
        from the state the fold is in, and that the fold of the events'
        recorded changes equals the stored row field by field (state, version,
        data, grid, workflow and version, deadline_at, links, opened_at,
        updated_at, head). Raises `IntegrityError` naming the case, the field
        and the first event where they part; returns the case.

        What this proves: no event and no row field was changed *without
        recomputing the hashes*. Whoever can write the database can recompute
        SHA-256 and rewrite a tail; signed checkpoints close that.

        Example:
            >>> import gridflow
            >>> engine = gridflow.Engine(entry_points=False)
            >>> c = engine.open("grid_case", actor=gridflow.Actor("r", ["resident"], ["g"]),
            ...                 grid="g", data={"title": "井盖缺失", "source": "resident"})
            >>> engine.verify(c.id).id == c.id
            True
        """
        case = self.store.get(_check_id(case_id, "case_id", ""))
        events = self.store.events(case_id)
        # A SQLStore keeps facts folded from the events for the figures (schema 5).
        stored_facts = getattr(self.store, "stored_facts", None)
        facts = None
        for _ in range(3):
            # The case, its events (and their facts) are separate reads: a step landing
            # between two of them would look like a missing update. Re-read all of
            # them until they agree.
            if case is None or len(events) == case.version:
                if case is None or stored_facts is None:
                    break
                facts = stored_facts(case_id)
                if len(facts[1]) == len(events):
                    break
            case = self.store.get(case_id)
            events = self.store.events(case_id)
            facts = None
        if case is None and not events:
            raise CaseNotFound(case_id)
        verified = audit(case, events, self._spec_index)
        if stored_facts is not None:
            from gridflow import _facts

            stored, stays, districts = facts if facts is not None else stored_facts(case_id)
            _facts.check(case_id, stored, stays, events, districts)
        return verified

    @traced("verify_all")
    def verify_all(self) -> int:
        """`verify` every case of the store; returns the number of cases verified.

        The same checks as `verify` for each case (chain, steps, fold against
        the row), and a case row with no events or events with no case row
        fail too. Cases are checked in case id order from a stream of stored
        rows (a pre-check that recomputes hashes and folds from the rows; any
        case it does not pass is verified again by `verify`, which names the
        problem), so the first `IntegrityError` raised is that of the first bad
        case. Needs a `MemoryStore` or a `SQLStore`. Unlike `verify_log` it needs
        no checkpoint and no key, and proves only what the hash chain proves.

        Example:
            >>> import gridflow
            >>> engine = gridflow.Engine(entry_points=False)
            >>> for title in ("井盖缺失", "路灯不亮"):
            ...     _ = engine.open("grid_case", actor=gridflow.Actor("r", ["resident"], ["g"]),
            ...                     grid="g", data={"title": title, "source": "resident"})
            >>> engine.verify_all()
            2
        """
        from gridflow._fastverify import verify_cases

        return verify_cases(self)

    def _spec_of(self, name: str, version: int) -> WorkflowSpec:
        return self._get_compiled(name, version).spec

    def replay(self, case_id: str) -> Case:
        """The case row recomputed from its stored events (`gridflow.replay`),
        without comparing it to the stored row (`verify` does both).

        Example:
            >>> import gridflow
            >>> engine = gridflow.Engine(entry_points=False)
            >>> c = engine.open("grid_case", actor=gridflow.Actor("r", ["resident"], ["g"]),
            ...                 grid="g", data={"title": "井盖缺失", "source": "resident"})
            >>> engine.replay(c.id) == engine.get(c.id)
            True
        """
        from gridflow.fold import replay

        events = self.store.events(_check_id(case_id, "case_id", ""))
        if not events:
            raise CaseNotFound(case_id)
        return replay(self._spec_index, events)

    # -- signed checkpoints (gridflow._tlog) ------------------------------------------

    @traced("checkpoint")
    def checkpoint(self, signer_key: Any, *, origin: str | None = None) -> str:
        """Integrate every event committed since the last checkpoint into the store's
        Merkle log, sign the new tree head and store it; returns the checkpoint text
        (C2SP tlog-checkpoint: origin, tree size, base64 root, signature lines) to
        publish outside the database.

        ``signer_key`` is a signer key string (``PRIVATE+KEY+...``, see
        `gridflow.generate_key`) or any object with ``name``, ``key_hash`` and
        ``sign(msg)`` (`gridflow.log.note.Signer`: an SM2 signer, a hardware
        module). ``origin`` (the log's name, first line) defaults to the key name.
        Two checkpointers at once never fork the tree (the second waits); a
        checkpoint over nothing new returns the stored one.

        Example:
            >>> import gridflow
            >>> engine = gridflow.Engine(entry_points=False)
            >>> skey, vkey = gridflow.generate_key("example.org/grid")
            >>> _ = engine.open("grid_case", actor=gridflow.Actor("r", ["resident"], ["g"]),
            ...                 grid="g", data={"title": "井盖缺失", "source": "resident"})
            >>> engine.checkpoint(skey).splitlines()[:2]
            ['example.org/grid', '1']
        """
        from gridflow._tlog import checkpoint

        return checkpoint(self, signer_key, origin=origin)

    @traced("verify_log")
    def verify_log(self, trusted: str | None = None, key: Any = None, *,
                   incremental: bool = False) -> str:
        """Verify the store's history against a trusted checkpoint; returns the latest
        stored checkpoint text (trust it next time).

        Checks the signature of ``trusted`` and of the latest stored checkpoint
        with ``key`` (a verifier key string, a `gridflow.log.note.Verifier`, or a
        list of them while keys rotate), the consistency proof from ``trusted``
        to the latest, that every leaf matches its stored event and every logged
        event has its leaf (in order), that events not yet logged are newer
        than the logged ones, then every case's chain and fold (`verify`).
        ``incremental=True`` trusts what ``trusted`` covers and reads only what
        came after it plus O(log n) hashes. Raises `IntegrityError` naming the
        first bad leaf's case and seq on tampering, `NoteError` (a
        `GridflowError`) when ``trusted`` or the key is wrong.

        Example:
            >>> import gridflow
            >>> engine = gridflow.Engine(entry_points=False)
            >>> skey, vkey = gridflow.generate_key("example.org/grid")
            >>> trusted = engine.checkpoint(skey)
            >>> engine.verify_log(trusted=trusted, key=vkey) == trusted
            True
        """
        from gridflow._tlog import verify_log

        if key is None:
            raise InvalidArgument("verify_log needs key=, the verifier key of the log")
        return verify_log(self, trusted, key, incremental=incremental)

    def prove(self, case_id: str) -> dict[str, Any]:
        """A self-contained proof bundle for one case: its events up to the latest
        checkpoint, each with its inclusion proof, and the checkpoint. A plain
        JSON-able dict; `gridflow.verify_bundle` checks it offline.

        Example:
            >>> import gridflow
            >>> engine = gridflow.Engine(entry_points=False)
            >>> skey, vkey = gridflow.generate_key("example.org/grid")
            >>> c = engine.open("grid_case", actor=gridflow.Actor("r", ["resident"], ["g"]),
            ...                 grid="g", data={"title": "井盖缺失", "source": "resident"})
            >>> _ = engine.checkpoint(skey)
            >>> [e.seq for e in gridflow.verify_bundle(engine.prove(c.id), vkey)]
            [1]
        """
        from gridflow._tlog import prove

        return prove(self, _check_id(case_id, "case_id", ""))

