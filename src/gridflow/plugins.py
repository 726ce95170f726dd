"""Extension points: pluggy hook specifications, the ``hookimpl`` marker, and the
plugin manager that loads plugins from arguments and the ``gridflow``
entry-point group.

A plugin is any object or module with functions marked ``@gridflow.hookimpl``
whose names match the hooks below.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pluggy

from gridflow._errors import PluginError
from gridflow.model import Actor, Case, Event

if TYPE_CHECKING:
    from gridflow.spec import StateSpec, WorkflowSpec
    from gridflow.step import Step

__all__ = [
    "ENTRY_POINT_GROUP",
    "PROJECT",
    "DeadlineRule",
    "Effect",
    "Guard",
    "HookSpecs",
    "hookimpl",
    "hookspec",
    "make_plugin_manager",
    "plugin_name",
    "register",
]

#: pluggy project name and the entry-point group plugins are discovered in.
PROJECT = "gridflow"
ENTRY_POINT_GROUP = "gridflow"

hookspec = pluggy.HookspecMarker(PROJECT)
#: Mark a plugin function as an implementation of a gridflow hook.
hookimpl = pluggy.HookimplMarker(PROJECT)

#: A guard gets the step being tried; it returns ``None`` to allow it or a
#: reason (shown to the user) to refuse it. Guards must not change anything.
#: (``True`` / ``False`` are accepted too: False refuses with a generic reason.)
Guard = Callable[["Step"], "str | bool | None"]
#: An effect gets the step after its guards passed and may change
#: ``step.data`` and ``step.links``: that is how a step changes case data.
Effect = Callable[["Step"], None]
#: A workflow's default deadline rule: given the state being entered, the case
#: data as the step leaves it, and the time of the step, return a `timedelta`
#: (counted by the engine's calendar), an aware `datetime`, or ``None`` for the
#: spec's deadline. Consulted only when no `gridflow_deadline` plugin answered.
DeadlineRule = Callable[["StateSpec", Mapping[str, Any], datetime], "timedelta | datetime | None"]


class HookSpecs:
    """The hooks a gridflow plugin may implement (DESIGN.md §5)."""

    @hookspec
    def gridflow_workflows(self) -> Iterable[WorkflowSpec]:  # type: ignore[empty-body]
        """Return workflow specs to register (collect: every plugin's list is used).

        Example:
            >>> from gridflow.spec import StateSpec, TransitionSpec, WorkflowSpec
            >>> TICKET = WorkflowSpec("ticket", 1, "open",
            ...     [StateSpec("open"), StateSpec("done", terminal=True)],
            ...     [TransitionSpec("finish", "open", "done")])
            >>> class MyPlugin:
            ...     @hookimpl
            ...     def gridflow_workflows(self):
            ...         return [TICKET]
            >>> import gridflow
            >>> gridflow.Engine(plugins=[MyPlugin()], entry_points=False).workflow("ticket").key
            'ticket@1'
        """

    @hookspec
    def gridflow_guards(self) -> Mapping[str, Guard]:  # type: ignore[empty-body]
        """Return ``{name: guard}``; specs refer to guards by name (collect).

        Example:
            >>> class MyPlugin:
            ...     @hookimpl
            ...     def gridflow_guards(self):
            ...         return {"has_photo": lambda step: None if step.payload.get("photo")
            ...                 else "attach a photo of the site"}
        """

    @hookspec
    def gridflow_effects(self) -> Mapping[str, Effect]:  # type: ignore[empty-body]
        """Return ``{name: effect}``; specs refer to effects by name (collect).

        Example:
            >>> class MyPlugin:
            ...     @hookimpl
            ...     def gridflow_effects(self):
            ...         return {"keep_photo": lambda step: step.data.update(
            ...             photo=step.payload["photo"])}
        """

    @hookspec
    def gridflow_roles(self) -> Mapping[str, tuple[str, str]]:  # type: ignore[empty-body]
        """Return ``{role: (label_zh, label_en)}`` for roles that specs may name (collect).

        Example:
            >>> class MyPlugin:
            ...     @hookimpl
            ...     def gridflow_roles(self):
            ...         return {"property_manager": ("物业", "Property manager")}
        """

    @hookspec
    def gridflow_deadline_rules(self) -> Mapping[str, DeadlineRule]:  # type: ignore[empty-body]
        """Return ``{workflow name: rule}``: a workflow's default deadlines (collect).

        Collected once when plugins are registered, not on every step. The
        engine asks, in order: a `gridflow_deadline` plugin, a deadline an
        effect fixed (``Step.deadline_at``), the workflow's rule, the spec's
        ``deadline``. The built-in ``grid_case`` rule gives the joint action
        1, 5 or 15 days by priority and starts the revisit 30 calendar days
        after closing.

        Example:
            >>> from datetime import timedelta
            >>> class Permits:
            ...     @hookimpl
            ...     def gridflow_deadline_rules(self):
            ...         def rule(state, data, now):
            ...             return timedelta(days=20) if data.get("big") else None
            ...         return {"permit": rule}
        """

    @hookspec
    def gridflow_veto(
        self, case: Case, trigger: str, actor: Actor, payload: Mapping[str, Any], now: datetime
    ) -> str | None:
        """Return a reason string to refuse the step, or ``None`` (collect).

        Runs before the transition; raising also refuses the step. Nothing is
        stored. ``now`` is the step's time (the engine's clock): decide on it,
        not on the wall clock, so tests with a `FixedClock` see what production
        sees. Like every hook argument it is optional: take only those you use.
        `Engine.allowed` asks vetoes too (with an empty payload).

        Example:
            >>> class NoNightWork:
            ...     @hookimpl
            ...     def gridflow_veto(self, case, trigger, actor, payload):
            ...         return "no dispatch at night" if trigger == "dispatch" else None
        """

    @hookspec
    def gridflow_before_fire(
        self, case: Case, trigger: str, actor: Actor, payload: dict[str, Any], now: datetime
    ) -> Mapping[str, Any] | None:
        """Adjust the step before it runs (call every plugin); ``now`` is the step's time.

        ``payload`` is the step's own copy and may be changed in place; a
        returned mapping is merged into the case's ``data``. Raising refuses
        the step and stores nothing.

        Example:
            >>> class Stamp:
            ...     @hookimpl
            ...     def gridflow_before_fire(self, case, trigger, actor, payload):
            ...         payload.setdefault("channel", "app")
            ...         return {"last_actor": actor.id}
        """

    @hookspec
    def gridflow_after_fire(self, case: Case, event: Event) -> None:
        """Side effects after the step is committed (notify, award points).

        An exception here is logged and reported to the engine's
        ``on_hook_error``; the committed step stays, and other plugins still run.

        Example:
            >>> sent = []
            >>> class Notify:
            ...     @hookimpl
            ...     def gridflow_after_fire(self, case, event):
            ...         sent.append(f"{case.id}: {event.trigger}")
        """

    @hookspec(firstresult=True)
    def gridflow_route(self, case: Case) -> list[str] | None:
        """Departments or mediation parties to involve in ``case`` (first answer wins).

        Example:
            >>> class Router:
            ...     @hookimpl
            ...     def gridflow_route(self, case):
            ...         if case.data.get("category") == "违规堆物":
            ...             return ["社区管理办", "清运单位"]
            ...         return None
        """

    @hookspec(firstresult=True)
    def gridflow_deadline(
        self, case: Case, state: StateSpec, now: datetime
    ) -> timedelta | datetime | None:
        """Override how long ``case`` may stay in ``state`` (first answer wins);
        ``now`` is when the case enters it.

        Return a `timedelta` (counted by the engine's calendar), an absolute
        aware `datetime`, or ``None`` to keep the spec's deadline. ``case`` is
        the case as it will be stored after entering ``state``.

        Example:
            >>> class UrgentFaster:
            ...     @hookimpl
            ...     def gridflow_deadline(self, case, state):
            ...         if state.name == "joint_action" and case.data.get("priority") == "urgent":
            ...             return timedelta(days=1)
            ...         return None
        """

    @hookspec(firstresult=True)
    def gridflow_mediation_tier(
        self, case: Case, payload: Mapping[str, Any], now: datetime
    ) -> str | None:
        """The tier a mediation enters on ``accept``: the name of its destination
        state, e.g. ``grid_mediation``, ``three_office``, ``multi_party`` (first answer wins).

        Asked once per ``accept`` step, never on other steps. ``case`` is the
        case being accepted (its data as the step sees it), ``payload`` the
        ``accept`` payload, ``now`` the step's time. Return ``None`` to leave the choice to the next
        plugin; the built-in `gridflow.workflows.mediation.TierPolicy` answers
        last (``trylast``), so any plugin's answer wins over it.

        Example:
            >>> class NeighboursFirst:
            ...     @hookimpl
            ...     def gridflow_mediation_tier(self, case, payload):
            ...         # Leave it to the default unless the dispute is between neighbours.
            ...         return "grid_mediation" if case.data.get("kind") == "邻里纠纷" else None
        """


def plugin_name(plugin: object) -> str:
    """The name a plugin is registered under when none is given: a module's
    ``__name__``, a class's name, an instance's class name — never
    the number pluggy would use.

    Example:
        >>> class NoNightWork:
        ...     pass
        >>> plugin_name(NoNightWork()), plugin_name(NoNightWork)
        ('NoNightWork', 'NoNightWork')
    """
    if inspect.ismodule(plugin):
        return plugin.__name__
    if inspect.isclass(plugin):
        return plugin.__name__
    name = getattr(plugin, "__name__", None)
    return name if isinstance(name, str) and name else type(plugin).__name__


def _hook_problems(pm: pluggy.PluginManager, plugin: object, name: str) -> list[str]:
    """Methods of ``plugin`` that look like hooks but would never be called."""
    known = {n for n in dir(HookSpecs) if n.startswith("gridflow_")}
    problems = []
    for attr in dir(plugin):
        if not attr.startswith("gridflow_") or attr.endswith(("_impl", "_spec")):
            continue
        try:
            value = getattr(plugin, attr)
        except Exception:  # a property that raises is not a hook
            continue
        if not callable(value):
            continue
        if inspect.ismodule(plugin) and getattr(value, "__module__", None) != plugin.__name__:
            continue  # imported into the module, not defined there
        marked = getattr(value, f"{PROJECT}_impl", None) is not None
        if attr not in known:
            import difflib  # only to name a misspelled hook

            close = difflib.get_close_matches(attr, sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else \
                f"; gridflow's hooks: {', '.join(sorted(known))}"
            problems.append(f"{attr!r} is not a gridflow hook{hint}")
        elif not marked:
            problems.append(f"{attr!r} is not marked @gridflow.hookimpl, so it would never "
                            "be called")
    return problems


def register(pm: pluggy.PluginManager, plugin: object, name: str | None = None) -> str:
    """Register ``plugin`` on ``pm`` under ``name`` (default `plugin_name`), refusing
    a misspelled or unmarked ``gridflow_*`` hook with `PluginError` (and then
    registering nothing). Returns the name used.

    Example:
        >>> class Typo:
        ...     @hookimpl
        ...     def gridflow_after_fired(self, case, event):
        ...         pass
        >>> register(make_plugin_manager(entry_points=False), Typo())  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        gridflow._errors.PluginError: plugin 'Typo': ... did you mean 'gridflow_after_fire'?
    """
    if name is None:
        base = plugin_name(plugin)
        name, n = base, 1
        while pm.get_plugin(name) is not None:
            n += 1
            name = f"{base}#{n}"
    problems = _hook_problems(pm, plugin, name)
    if problems:
        raise PluginError(name, problems)
    try:
        pm.register(plugin, name=name)
    except ValueError as exc:  # pluggy: the same object or name twice
        raise PluginError(name, [str(exc)]) from None
    except pluggy.PluginValidationError as exc:
        # A hook's arguments that the hookspec does not have, and the like.
        raise PluginError(name, [str(exc)]) from None
    return name


def make_plugin_manager(
    plugins: Iterable[object] = (),
    *,
    entry_points: bool = True,
    builtins: Mapping[str, object] | None = None,
) -> pluggy.PluginManager:
    """A plugin manager with gridflow's hooks, ``builtins``, (unless
    ``entry_points=False``) everything in the ``gridflow`` entry-point group, and ``plugins``.

    They are registered in that order; pluggy calls the last registered first,
    so the host's own ``plugins`` answer before installed ones. A plugin that
    is both installed and passed in ``plugins`` is registered once.
    ``builtins`` maps names to plugins registered first: the `Engine` passes
    the module ``gridflow.workflows`` (the built-in workflows sit above this
    module, so it does not import them itself).

    Example:
        >>> from gridflow import workflows
        >>> pm = make_plugin_manager(entry_points=False,
        ...                          builtins={"gridflow.workflows": workflows})
        >>> pm.has_plugin("gridflow.workflows")
        True
    """
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(HookSpecs)
    for name, builtin in (builtins or {}).items():
        register(pm, builtin, name)
    if entry_points:
        # Before `plugins`: pluggy refuses an object registered twice, and a
        # host may well pass a plugin that is also installed.
        _load_entry_points(pm)
    for plugin in plugins:
        if not pm.is_registered(plugin):
            register(pm, plugin)
    return pm


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    # pluggy loads them (named by their entry point, and it keeps their
    # distributions for list_plugin_distinfo); each is then checked as
    # `register` checks a plugin passed in.
    try:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    except pluggy.PluginValidationError as exc:
        raise PluginError(plugin_name(exc.plugin), [str(exc)]) from None
    except Exception as exc:
        raise PluginError("(entry point)", [f"an entry point of group {ENTRY_POINT_GROUP!r} "
                                            f"does not load: {type(exc).__name__}: {exc}"]) from exc
    for plugin, dist in pm.list_plugin_distinfo():
        name = pm.get_name(plugin) or plugin_name(plugin)
        problems = _hook_problems(pm, plugin, name)
        if problems:
            pm.unregister(plugin)
            raise PluginError(name, [*problems, f"(installed by {dist.project_name})"])
