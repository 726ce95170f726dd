"""Helpers for your own tests of code that uses gridflow.

- `fixed_clock`, `make_store` and `make_engine` build what a test needs, with
  no test framework involved.
- pytest fixtures ``gridflow_clock``, ``gridflow_store`` and
  ``gridflow_engine``: add ``pytest_plugins = ["gridflow.testing"]`` to your
  top-level ``conftest.py``. ``gridflow_store`` is a `MemoryStore` unless the
  test parametrizes it indirectly with ``"memory"``, ``"sqlite"`` (a file in
  the test's ``tmp_path``) or a SQLAlchemy URL.
- hypothesis strategies `actors` and `payloads` for any spec.
- `walk_all_transitions`: fire every transition of a workflow at least once,
  in one call, and report what it could not reach.

Importing this module needs neither pytest nor hypothesis: pytest is imported
only when pytest itself loads the module as a plugin, and hypothesis only
when a strategy is asked for (install ``gridflow[testing]`` to get both).

Example:
    >>> from gridflow.testing import make_engine, walk_all_transitions
    >>> engine = make_engine()
    >>> report = walk_all_transitions(engine, "grid_case", strict=False)
    >>> report.covered_count > 0
    True
"""

from __future__ import annotations

import os
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, cast

import attrs

from gridflow._errors import GridflowError
from gridflow.clock import FixedClock
from gridflow.convert import parse_datetime
from gridflow.engine import Engine
from gridflow.model import ALL_GRIDS, Actor, Case
from gridflow.spec import WorkflowSpec
from gridflow.store import Store
from gridflow.store.memory import MemoryStore

if TYPE_CHECKING:
    import pytest
    from hypothesis.strategies import SearchStrategy

__all__ = [
    "START",
    "CoverageError",
    "FixedClock",
    "PayloadSource",
    "Transition",
    "UnknownTrigger",
    "WalkReport",
    "actors",
    "fixed_clock",
    "make_engine",
    "make_store",
    "payloads",
    "pytest_configure",
    "walk_all_transitions",
]

#: Where `fixed_clock` starts: Monday 5 January 2026, 09:00 in Shanghai (01:00 UTC).
START = datetime(2026, 1, 5, 1, 0, tzinfo=UTC)

#: A payload for a trigger: a mapping, or a function of the case as it stands
#: right before the step (for values that depend on it, like a department
#: that was dispatched or a date after the current deadline).
PayloadSource: TypeAlias = Mapping[str, Any] | Callable[[Case], Mapping[str, Any]]


class UnknownTrigger(GridflowError, ValueError):
    """A strategy or the walker was asked about a trigger the workflow does not have."""


class CoverageError(GridflowError, AssertionError):
    """`walk_all_transitions` could not fire every transition; ``report`` says which and why.

    It is an `AssertionError` too, so a test runner shows it as a failed check.
    """

    def __init__(self, report: WalkReport) -> None:
        self.report = report
        super().__init__(report.summary())


# -- clock, store, engine -----------------------------------------------------------


def fixed_clock(start: datetime | str | None = None) -> FixedClock:
    """A `FixedClock` at ``start`` (an aware datetime or ISO 8601 text), `START` by default.

    Example:
        >>> fixed_clock("2026-03-02T09:00:00+08:00").now().isoformat()
        '2026-03-02T01:00:00+00:00'
        >>> fixed_clock().now() == START
        True
    """
    if start is None:
        return FixedClock(START)
    return FixedClock(parse_datetime(start) if isinstance(start, str) else start)


def make_store(kind: str = "memory", *, path: str | os.PathLike[str] | None = None,
               **options: Any) -> Store:
    """A fresh, empty store with its schema created.

    ``kind`` is ``"memory"`` (a `MemoryStore`), ``"sqlite"`` (a SQLite file:
    ``path`` is the file, or a directory to put ``gridflow.db`` in) or any
    SQLAlchemy URL. SQL stores need the ``gridflow[sql]`` extra; ``options``
    go to `SQLStore` (e.g. ``schema=`` on PostgreSQL, ``synchronous="NORMAL"``
    for faster, less durable SQLite commits in tests).

    Example:
        >>> make_store()
        <gridflow.store.memory.MemoryStore object at ...>
        >>> import tempfile
        >>> store = make_store("sqlite", path=tempfile.mkdtemp())
        >>> store.dialect, store.get("nope") is None
        ('sqlite', True)
        >>> store.close()
    """
    if kind == "memory":
        if options:
            raise ValueError(f"a MemoryStore takes no options, got {sorted(options)}")
        return MemoryStore()
    if kind == "sqlite":
        if path is None:
            raise ValueError("make_store('sqlite') needs path= (a file, or a directory for "
                             "gridflow.db); a pytest test can pass its tmp_path")
        file = Path(path)
        if file.is_dir():
            file = file / "gridflow.db"
        url = f"sqlite:///{file}"
    elif "://" in kind:
        url = kind
    else:
        raise ValueError(f"unknown store kind {kind!r}; use 'memory', 'sqlite' or a "
                         "SQLAlchemy URL such as 'postgresql+psycopg://user@host/db'")
    from gridflow.store.sql import SQLStore

    store: Store = SQLStore(url, **options)
    store.create_schema()
    return store


def make_engine(
    store: Store | None = None,
    *,
    clock: FixedClock | None = None,
    plugins: Iterable[object] = (),
    entry_points: bool = False,
    **kwargs: Any,
) -> Engine:
    """An `Engine` for a test: a new `MemoryStore` and a `fixed_clock` unless given.

    Installed plugins (the ``gridflow`` entry-point group) are **not** loaded
    unless ``entry_points=True``, so a test sees only what it registers.
    Other keyword arguments go to `Engine`.

    Example:
        >>> engine = make_engine()
        >>> engine.clock.now() == START
        True
    """
    return Engine(store if store is not None else MemoryStore(),
                  clock=clock if clock is not None else fixed_clock(),
                  plugins=plugins, entry_points=entry_points, **kwargs)


def _close(store: object) -> None:
    for name in ("close", "dispose"):
        method = getattr(store, name, None)
        if callable(method):
            method()
            return


def _test_store(kind: str, tmp_path: Path | None) -> Iterator[Store]:
    """The ``gridflow_store`` fixture without pytest: yields the store, then cleans up.

    A PostgreSQL URL gets a schema of its own (``gridflow_test_<random>``),
    dropped afterwards, so tests sharing one database never see each other's cases.
    """
    if kind.startswith("postgresql"):
        schema = f"gridflow_test_{uuid.uuid4().hex[:12]}"
        store = make_store(kind, schema=schema)
        try:
            yield store
        finally:
            import sqlalchemy as sa

            sql_engine = cast(Any, store).engine
            with sql_engine.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            _close(store)
        return
    store = make_store(kind, path=tmp_path)
    try:
        yield store
    finally:
        _close(store)


# -- the pytest plugin -----------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    """pytest hook: registers the ``gridflow_*`` fixtures when pytest loads this
    module as a plugin (``pytest_plugins = ["gridflow.testing"]``).

    The fixtures are defined here, not at module level, so that importing
    ``gridflow.testing`` never imports pytest.
    """
    import pytest

    class GridflowFixtures:
        @pytest.fixture
        def gridflow_clock(self) -> FixedClock:
            """A `FixedClock` at `START`; move it with ``advance`` / ``set``."""
            return fixed_clock()

        @pytest.fixture
        def gridflow_store(self, request: pytest.FixtureRequest) -> Iterator[Store]:
            """An empty store: memory, or ``"sqlite"`` / a URL by indirect parametrization
            (a PostgreSQL URL gets its own schema, dropped after the test)."""
            kind = getattr(request, "param", "memory")
            path = request.getfixturevalue("tmp_path") if kind == "sqlite" else None
            yield from _test_store(kind, path)

        @pytest.fixture
        def gridflow_engine(self, gridflow_store: Store, gridflow_clock: FixedClock) -> Engine:
            """An `Engine` on ``gridflow_store`` and ``gridflow_clock``, no entry points."""
            return make_engine(gridflow_store, clock=gridflow_clock)

    name = "gridflow.testing.fixtures"
    if not config.pluginmanager.has_plugin(name):
        config.pluginmanager.register(GridflowFixtures(), name)


# -- what a trigger needs ----------------------------------------------------------------


@attrs.frozen
class _Rule:
    roles: frozenset[str]  # empty: any role
    requires: tuple[str, ...]
    choices: Mapping[str, tuple[str, ...]]


def _spec(engine: Engine | None, workflow: str | WorkflowSpec) -> WorkflowSpec:
    if isinstance(workflow, WorkflowSpec):
        return workflow
    if engine is None:
        raise TypeError("pass a WorkflowSpec, or an engine to look the workflow name up in")
    return engine.workflow(workflow)


def _rule(spec: WorkflowSpec, trigger: str, state: str | None = None) -> _Rule:
    """The merged rule of ``trigger`` (from ``state``), as the engine checks it."""
    if trigger == "open":
        return _Rule(frozenset(spec.open_roles), spec.open_requires, spec.open_choices)
    matching = [tr for tr in spec.transitions if tr.trigger == trigger
                and (state is None or state in tr.sources(spec.non_terminal))]
    if not matching:
        where = f" from state {state!r}" if state is not None else ""
        raise UnknownTrigger(
            f"workflow {spec.key} has no trigger {trigger!r}{where}; its triggers: "
            f"open, {', '.join(spec.triggers)}")
    roles: frozenset[str] = frozenset(matching[0].roles)
    requires: tuple[str, ...] = ()
    choices: dict[str, tuple[str, ...]] = {}
    for tr in matching:
        # Same merge as the compiled machine: a transition open to any role
        # opens the trigger to any role; every required field is required.
        roles = roles | frozenset(tr.roles) if roles and tr.roles else frozenset()
        requires = tuple(dict.fromkeys(requires + tr.requires))
        choices.update(tr.choices)
    return _Rule(roles, requires, choices)


# -- hypothesis strategies -----------------------------------------------------------------


def _st() -> Any:
    try:
        from hypothesis import strategies
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("gridflow.testing strategies need hypothesis: "
                          "pip install 'gridflow[testing]'") from exc
    return strategies


def _spec_roles(spec: WorkflowSpec) -> list[str]:
    names = dict.fromkeys(spec.open_roles)
    for tr in spec.transitions:
        names.update(dict.fromkeys(tr.roles))
    return list(names)


def _text(st: Any, min_size: int = 1, max_size: int = 20) -> Any:
    # No NUL: PostgreSQL refuses it in text and JSONB; no surrogates: not UTF-8.
    alphabet = st.characters(codec="utf-8", exclude_characters="\x00")
    return st.text(alphabet, min_size=min_size, max_size=max_size)


def _name(st: Any) -> Any:
    # What Actor accepts as an id or a grid: no whitespace at the ends, no control
    # characters; letters (CJK included), digits, '-' and '_'.
    alphabet = st.characters(categories=("L", "N"), include_characters="-_")
    return st.text(alphabet, min_size=1, max_size=12)


def actors(
    spec: WorkflowSpec, trigger: str | None = None, *, state: str | None = None,
    grid: str | None = None,
) -> SearchStrategy[Actor]:
    """Hypothesis strategy: actors allowed to fire ``trigger`` (``"open"`` to open
    a case) of ``spec`` — from ``state`` if given — on a case in ``grid``.

    Roles are drawn from the roles the spec names, always including at least
    one the trigger allows. Grids are `ALL_GRIDS` or a set that includes
    ``grid``; with ``grid=None`` they are `ALL_GRIDS` (cases without a grid
    are only in that scope). Without ``trigger``, any mix of the spec's roles.
    Ids and grid names are valid `Actor` names (letters, digits, ``-``, ``_``).

    Example:
        >>> from hypothesis import given
        >>> from gridflow.workflows import GRID_CASE
        >>> @given(actors(GRID_CASE, "triage", grid="华三-1"))
        ... def test(actor):
        ...     assert "coordinator" in actor.roles and actor.can_touch("华三-1")
        >>> test()
    """
    st = _st()
    every = _spec_roles(spec)
    if trigger is None:
        roles = st.frozensets(st.sampled_from(every)) if every else st.just(frozenset())
    else:
        allowed = sorted(_rule(spec, trigger, state).roles)
        if not allowed:
            roles = st.frozensets(st.sampled_from(every)) if every else st.just(frozenset())
        else:
            roles = st.tuples(st.sampled_from(allowed),
                              st.frozensets(st.sampled_from(every), max_size=2)).map(
                lambda pair: frozenset({pair[0], *pair[1]}))
    if grid is None:
        grids = st.just(ALL_GRIDS)
    else:
        grids = st.one_of(st.just(ALL_GRIDS),
                          st.frozensets(_name(st), max_size=2).map(
                              lambda extra: frozenset({grid, *extra})))
    ids = _name(st)
    return cast("SearchStrategy[Actor]", st.builds(Actor, ids, roles, grids))


def _json_value(st: Any) -> Any:
    """Any JSON value the engine does not count as missing."""
    return st.one_of(
        _text(st),
        st.integers(min_value=-(10**9), max_value=10**9),
        st.booleans(),
        st.lists(_text(st, max_size=8), min_size=1, max_size=3),
    )


def payloads(
    spec: WorkflowSpec, trigger: str, *, state: str | None = None,
    fields: Mapping[str, Any] | None = None,
) -> SearchStrategy[dict[str, Any]]:
    """Hypothesis strategy: payloads that pass ``trigger``'s ``requires`` and
    ``choices`` checks (``"open"``: the opening data).

    Required fields get a non-empty JSON value (one of the choices when the
    field has choices); optional fields with choices are sometimes present,
    always with an allowed value. Guards are not known to the strategy: give
    ``fields`` (name -> value or strategy) for what a guard checks.

    Example:
        >>> from hypothesis import given, strategies as st
        >>> from gridflow.workflows import GRID_CASE
        >>> @given(payloads(GRID_CASE, "triage", fields={"category": st.just("违规堆物")}))
        ... def test(payload):
        ...     assert payload["priority"] in ("urgent", "normal", "low")
        ...     assert payload["category"] == "违规堆物"
        >>> test()
    """
    st = _st()
    rule = _rule(spec, trigger, state)
    given = dict(fields or {})

    def strategy(name: str) -> Any:
        if name in given:
            value = given[name]
            return value if isinstance(value, st.SearchStrategy) else st.just(value)
        if name in rule.choices:
            return st.sampled_from(rule.choices[name])
        return _json_value(st)

    required = {name: strategy(name) for name in (*rule.requires, *given)}
    optional = {name: st.sampled_from(options) for name, options in rule.choices.items()
                if name not in required}
    return cast("SearchStrategy[dict[str, Any]]",
                st.fixed_dictionaries(required, optional=optional))


# -- walking every transition ----------------------------------------------------------------


@attrs.frozen(order=True)
class Transition:
    """One concrete transition of a spec: ``trigger`` from ``source`` to ``dest``
    (``None``: internal, the state stays). ``"*"`` sources are expanded.

    Example:
        >>> str(Transition("triage", "reported", "triaged"))
        'triage: reported -> triaged'
        >>> str(Transition("note", "reported", None))
        'note: reported (internal)'
    """

    trigger: str
    source: str
    dest: str | None

    def __str__(self) -> str:
        where = f"{self.source} -> {self.dest}" if self.dest is not None else (
            f"{self.source} (internal)")
        return f"{self.trigger}: {where}"


def transitions_of(spec: WorkflowSpec) -> tuple[Transition, ...]:
    """Every concrete transition of ``spec``, in spec order.

    Example:
        >>> from gridflow.workflows import GRID_CASE
        >>> transitions_of(GRID_CASE)[0]
        Transition(trigger='triage', source='reported', dest='triaged')
    """
    out = dict.fromkeys(Transition(tr.trigger, src, tr.dest)
                        for tr in spec.transitions for src in tr.sources(spec.non_terminal))
    return tuple(out)


@attrs.frozen
class WalkReport:
    """What `walk_all_transitions` did: which transitions fired and which did not.

    ``missed`` maps each transition never fired to the last reason it was
    refused (or why it was never tried); ``witness`` gives, for each covered
    transition, the triggers (after ``open``) of the first case that fired it.

    Example:
        >>> from gridflow.testing import make_engine
        >>> report = walk_all_transitions(make_engine(), "grid_case", strict=False)
        >>> report.complete, Transition("triage", "reported", "triaged") in report.covered
        (False, True)
    """

    workflow: str
    transitions: tuple[Transition, ...]
    covered: frozenset[Transition]
    missed: Mapping[Transition, str]
    witness: Mapping[Transition, tuple[str, ...]]
    cases: int
    steps: int

    @property
    def complete(self) -> bool:
        """True when every transition fired at least once."""
        return not self.missed

    @property
    def covered_count(self) -> int:
        """How many transitions fired."""
        return len(self.covered)

    def summary(self) -> str:
        """A readable account: counts, then every missed transition with its reason."""
        head = (f"{self.workflow}: {len(self.covered)}/{len(self.transitions)} transitions "
                f"fired ({self.cases} cases, {self.steps} steps)")
        if not self.missed:
            return head
        lines = [head, "not fired:"]
        lines += [f"  - {tr}: {why}" for tr, why in self.missed.items()]
        lines.append("give payloads={trigger: {...}} (or a function of the case) for the "
                     "fields their guards check, or actors={trigger: Actor(...)}")
        return "\n".join(lines)

    def check(self) -> WalkReport:
        """Raise `CoverageError` unless `complete`; return the report otherwise."""
        if self.missed:
            raise CoverageError(self)
        return self


_Recipe: TypeAlias = tuple[str, Actor, PayloadSource]


@attrs.define
class _Path:
    steps: tuple[_Recipe, ...]
    state: str
    internal_run: int  # internal steps since the state was entered


def _alternatives(value: PayloadSource | Sequence[PayloadSource]) -> list[PayloadSource]:
    if isinstance(value, Mapping) or callable(value):
        return [value]
    return list(value)


def _synthesized(rule: _Rule) -> list[dict[str, Any]]:
    """Payloads that pass the required / choices checks: one base, and one
    variant per other allowed value of each field with choices (a guard may
    branch on it, like the tiers of an ``accept``)."""
    base: dict[str, Any] = {}
    for name in rule.requires:
        base[name] = rule.choices[name][0] if name in rule.choices else f"walk:{name}"
    out = [base]
    for name, options in rule.choices.items():
        for option in options:
            variant = {**base, name: option}
            if variant not in out:
                out.append(variant)
    return out


class _PayloadFailed(Exception):
    """A payload function given to the walker raised (its case did not fit it)."""


def _resolve(source: PayloadSource, case: Case) -> dict[str, Any]:
    if not callable(source):
        return dict(source)
    try:
        return dict(source(case))
    except _PayloadFailed:
        raise
    except Exception as exc:
        raise _PayloadFailed(f"the payload function raised {exc!r}") from exc


def walk_all_transitions(
    engine: Engine,
    workflow: str | WorkflowSpec,
    *,
    payloads: Mapping[str, PayloadSource | Sequence[PayloadSource]] | None = None,
    actors: Mapping[str, Actor] | None = None,
    grid: str | None = "walk-grid",
    max_internal: int = 3,
    paths_per_state: int = 3,
    max_steps: int = 20_000,
    verify: bool = True,
    strict: bool = True,
) -> WalkReport:
    """Drive cases through ``workflow`` until every transition has fired once.

    A breadth-first search over states: a state is reached by replaying, on
    a fresh case, the steps that first led there; from it every trigger is
    tried, with an actor holding every role the trigger allows (scoped to
    ``grid``) and a payload that has every required field (``"walk:<field>"``,
    or an allowed choice — each choice is tried, since a guard may branch on
    it). Internal transitions that fire are kept on the path (up to
    ``max_internal`` in a row) because guards often need what they record —
    a department that reported its part done before the case can close.

    Guards that check values need help: ``payloads`` maps a trigger (or
    ``"open"``) to a payload, a function of the case returning one, or a list
    of such alternatives; the given fields are laid over the synthesized
    ones. ``actors`` maps a trigger to the actor to fire it as.

    Every case the walk opened is verified (`Engine.verify`) unless
    ``verify=False``. The walk writes to ``engine.store``: give it a
    throwaway engine. With ``strict`` (the default) a `CoverageError` is
    raised when something could not be fired; either way the `WalkReport`
    tells what fired, what did not and why.

    Example:
        >>> from gridflow.testing import make_engine
        >>> from gridflow.workflows import GRID_CASE   # grid_case@1
        >>> engine = make_engine()
        >>> r = engine.open("grid_case", actor=Actor("r", ["resident"], ["walk-grid"]),
        ...                 grid="walk-grid", version=1,
        ...                 data={"title": "旧案", "source": "resident"})
        >>> def pending(case):  # the first department that has not reported yet
        ...     left = [d for d in case.data["departments"] if d not in case.data["done"]]
        ...     return {"department": left[0], "result": "done"}
        >>> report = walk_all_transitions(engine, GRID_CASE, payloads={
        ...     "dispatch": {"departments": ["城运中心"], "plan": "联合整治工作方案"},
        ...     "report_done": pending,
        ...     "reassign": {"departments": ["城运中心", "清运单位"]},
        ...     "mark_duplicate": {"duplicate_of": r.id},
        ...     "request_extension": lambda case: {"until": "2099-01-01T00:00:00+08:00"},
        ... })
        >>> report.complete
        True
    """
    spec = _spec(engine, workflow)
    # Registers a spec the engine does not know; refuses one that differs from
    # the registered spec of the same name and version.
    engine.register_workflow(spec)
    given = dict(payloads or {})
    who = dict(actors or {})
    for trigger in (*given, *who):
        if trigger != "open" and trigger not in spec.triggers:
            raise UnknownTrigger(f"workflow {spec.key} has no trigger {trigger!r} (given in "
                                 f"payloads/actors); its triggers: {', '.join(spec.triggers)}")

    everything = transitions_of(spec)
    uncovered = dict.fromkeys(everything)
    witness: dict[Transition, tuple[str, ...]] = {}
    refusals: dict[tuple[str, str], str] = {}
    went: dict[tuple[str, str], set[str | None]] = {}
    grids: Any = (grid,) if grid is not None else ALL_GRIDS
    opened: list[str] = []
    steps = 0

    def actor_for(trigger: str, state: str | None) -> Actor:
        if trigger in who:
            return who[trigger]
        rule = _rule(spec, trigger, state)
        return Actor(f"walker:{trigger}", sorted(rule.roles), grids)

    def sources_for(trigger: str, state: str | None) -> list[PayloadSource]:
        synthesized = _synthesized(_rule(spec, trigger, state))
        if trigger not in given:
            return list(synthesized)

        def laid_over(base: dict[str, Any], extra: PayloadSource) -> PayloadSource:
            if callable(extra):
                return lambda case: {**base, **_resolve(extra, case)}
            return {**base, **extra}

        out: list[PayloadSource] = []
        for extra in _alternatives(given[trigger]):
            for base in synthesized:
                source = laid_over(base, extra)
                if callable(source) or source not in out:
                    out.append(source)
        return out

    open_actor = actor_for("open", None)
    open_sources = sources_for("open", None)

    def replay(path: _Path) -> Case:
        nonlocal steps
        draft = Case("(new)", spec.name, spec.version, spec.initial, 0, {}, grid, START, START)
        data = _resolve(open_sources[0], draft)
        case = engine.open(spec.name, actor=open_actor, data=data, grid=grid,
                           version=spec.version)
        opened.append(case.id)
        steps += 1
        for trigger, actor, source in path.steps:
            case = engine.fire(case.id, trigger, actor=actor, payload=_resolve(source, case))
            steps += 1
        return case

    queue: deque[_Path] = deque([_Path((), spec.initial, 0)])
    visits: dict[str, int] = {spec.initial: 1}

    def wanted(state: str) -> bool:
        return any(tr.source == state for tr in uncovered)

    def worth(path: _Path, here: list[Transition]) -> bool:
        if any(t in uncovered for t in here):
            return True
        if all(t.dest is None for t in here):
            # A covered internal step can still be worth firing: what it
            # records may be what another guard of this state needs.
            return path.internal_run < max_internal and wanted(path.state)
        # Another way into a state whose own transitions still refuse.
        return any(t.dest is not None and wanted(t.dest)
                   and visits.get(t.dest, 0) < paths_per_state for t in here)

    while queue and uncovered and steps < max_steps:
        path = queue.popleft()
        state = path.state
        triggers = dict.fromkeys(
            tr.trigger for tr in spec.transitions if state in tr.sources(spec.non_terminal))
        for trigger in triggers:
            here = [t for t in everything if t.source == state and t.trigger == trigger]
            actor = actor_for(trigger, state)
            for source in sources_for(trigger, state):
                if steps >= max_steps or not worth(path, here):
                    break
                try:
                    case = replay(path)
                except (GridflowError, _PayloadFailed) as exc:
                    refusals.setdefault((state, trigger), f"replaying the path failed: {exc}")
                    break
                steps += 1
                try:
                    after = engine.fire(case.id, trigger, actor=actor,
                                        payload=_resolve(source, case))
                except (GridflowError, _PayloadFailed) as exc:
                    refusals[(state, trigger)] = f"{type(exc).__name__}: {exc}"
                    continue
                dest = engine.history(case.id)[-1].dest
                went.setdefault((state, trigger), set()).add(dest)
                fired = Transition(trigger, state, dest)
                uncovered.pop(fired, None)
                witness.setdefault(fired, (*(s[0] for s in path.steps), trigger))
                child = (*path.steps, (trigger, actor, source))
                if dest is None:
                    changed = (after.data, after.links, after.deadline_at) != (
                        case.data, case.links, case.deadline_at)
                    if changed and path.internal_run < max_internal and wanted(state):
                        queue.append(_Path(child, state, path.internal_run + 1))
                elif visits.get(dest, 0) < paths_per_state and (
                    not visits.get(dest) or wanted(dest)
                ):
                    visits[dest] = visits.get(dest, 0) + 1
                    queue.append(_Path(child, dest, 0))

    missed: dict[Transition, str] = {}
    for tr in uncovered:
        key = (tr.source, tr.trigger)
        if tr.source not in visits:
            missed[tr] = f"state {tr.source!r} was never reached"
        elif key in went:
            elsewhere = ", ".join(sorted(str(d) for d in went[key]))
            missed[tr] = (f"every attempt went to {elsewhere}; give payloads that make "
                          f"its guards choose {tr.dest!r}")
        else:
            missed[tr] = refusals.get(key, "never tried: the step budget ran out")
    if verify:
        for case_id in opened:
            engine.verify(case_id)
    report = WalkReport(spec.key, everything, frozenset(witness), missed, witness,
                        len(opened), steps)
    return report.check() if strict else report
