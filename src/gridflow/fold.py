"""The fold: a case row is `evolve` applied to its events, oldest first.

`evolve(case, event)` is the only way a case row changes: the engine builds
every new row with it, `replay` rebuilds a row from history, and `audit`
(what `Engine.verify` runs) recomputes the whole row from the events and
compares it with the stored one field by field. No engine rule runs here:
each event carries what its step changed (`Changes`), so one pass over the
events suffices and the result does not depend on plugins or on the clock.

What the per-case hash chain proves, and what it cannot: an event edited
without recomputing the hashes (or a row that disagrees with its events) is
found and named. Whoever can write the database can also recompute SHA-256:
rewrite an event and every hash after it, or cut a case's tail and fix its
row, and the chain alone still verifies. Signed checkpoints, published
outside the database, close that gap.

Fingerprints: the ``open`` event records the spec's `WorkflowSpec.fingerprint`
(``payload["fingerprint"]``) and a ``migrate`` event the target spec's; the
fold refuses a case whose recorded fingerprint is not that of the spec it
runs on (the definition was edited under the same version). Events written
before fingerprints were recorded carry none and are not checked for it.

A ``migrate`` event (`gridflow.migrate`) moves the case to another version of
its workflow: its `Changes` rebind the case (workflow, version, grid), may set
or remove data keys and state the recomputed deadline; its ``dest`` is the
state in the target version (possibly of the same name).

Events written by gridflow 0.1 carry no `Changes`: their steps fold only the
state, the version and the head; an ``upgrade`` event, appended by the
schema migration to 0.2, then states the whole row as it was at the upgrade.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, cast

from gridflow._errors import IntegrityError, UnknownWorkflow
from gridflow._fastinit import maker
from gridflow.model import GENESIS_HASH, Case, Event, _grow, _Links, stored_links

if TYPE_CHECKING:
    from gridflow.spec import WorkflowSpec

    SpecSource = WorkflowSpec | Iterable[WorkflowSpec] | Callable[[str, int], WorkflowSpec]

__all__ = ["CASE_FIELDS", "INTERNAL_TRIGGERS", "SpecIndex", "SpecSource", "audit", "evolve",
           "replay"]

#: Triggers the engine records itself as internal steps (the state stays).
INTERNAL_TRIGGERS = frozenset({"link", "overdue", "upgrade", "erased", "restricted",
                               "personal_read"})
#: Triggers only the timer (actor ``system``) records.
_TIMER_ONLY = frozenset({"overdue"})

#: Every field of a case row, in the order `audit` compares them.
CASE_FIELDS: tuple[str, ...] = (
    "workflow", "workflow_version", "state", "version", "data", "grid", "opened_at",
    "updated_at", "deadline_at", "links", "head",
)


def __getattr__(name: str) -> Any:
    # `SpecSource`: what `replay` and `audit` accept as "the spec": one spec,
    # several versions of it, or a look-up ``(name, version) -> WorkflowSpec``.
    # Built when first asked for, so that the fold does not load the spec classes.
    if name == "SpecSource":
        from gridflow.spec import WorkflowSpec

        alias = WorkflowSpec | Iterable[WorkflowSpec] | Callable[[str, int], WorkflowSpec]
        return globals().setdefault(name, alias)
    raise AttributeError(f"module 'gridflow.fold' has no attribute {name!r}")


#: A row built without ``type.__call__`` (`gridflow._fastinit.maker`), for `evolve`.
_make_case = maker(Case)


class _Fold:
    """The fold's running state: the rule of `evolve`, applied event by event.

    `evolve` folds one event onto a case; `replay` and `audit` fold a whole
    history without building a `Case` per event. Both run this one rule.
    """

    __slots__ = (
        "case_id",
        "data",
        "deadline_at",
        "grid",
        "head",
        "links",
        "opened_at",
        "share_links",
        "state",
        "updated_at",
        "version",
        "workflow",
        "workflow_version",
    )

    def __init__(self, case: Case) -> None:
        self.case_id = case.id
        self.workflow = case.workflow
        self.workflow_version = case.workflow_version
        self.state = case.state
        self.version = case.version
        self.data = case.data  # replaced, never edited in place: `case` stays as it was
        self.grid = case.grid
        self.opened_at = case.opened_at
        self.updated_at = case.updated_at
        self.deadline_at = case.deadline_at
        # As the row holds them: long links are not copied into a tuple here.
        self.links: tuple[str, ...] | _Links = stored_links(case)
        self.head = case.head
        # `evolve` (an engine-made row): long links grow in the shared form (`_grow`).
        self.share_links = False

    @classmethod
    def opened(cls, event: Event) -> _Fold:
        if event.seq != 1 or event.source is not None or event.dest is None:
            raise IntegrityError(event.case_id, event.seq, "a case's first event must be an "
                                 "'open' into the initial state", field="trigger")
        changes = event.changes
        if changes is None:
            # gridflow 0.1: the upgrade event states the rest.
            return cls(Case(event.case_id, "", 0, event.dest, 1, {}, None, event.at, event.at,
                            None, (), event.hash))
        if changes.workflow is None:
            raise IntegrityError(event.case_id, 1, "the 'open' event names no workflow",
                                 field="changes")
        data = dict(changes.set)
        for key in changes.unset:
            data.pop(key, None)
        return cls(Case(event.case_id, changes.workflow, changes.workflow_version, event.dest,
                        1, data, changes.grid, event.at, event.at, changes.deadline_at,
                        tuple(changes.links), event.hash))

    def apply(self, event: Event) -> None:
        if event.seq != self.version + 1:
            raise IntegrityError(self.case_id, event.seq, f"event seq {event.seq} cannot "
                                 f"follow version {self.version}", field="seq")
        if event.dest is not None:
            self.state = event.dest
        self.version = event.seq
        self.updated_at = event.at
        self.head = event.hash
        changes = event.changes
        if changes is None:
            return
        if changes.workflow is not None:
            # A rebind (open, upgrade, migration) names the workflow and the grid.
            self.workflow = changes.workflow
            self.grid = changes.grid
        self.workflow_version = changes.workflow_version
        self.deadline_at = changes.deadline_at
        if changes.set or changes.unset:
            data = {**self.data, **changes.set}
            for key in changes.unset:
                data.pop(key, None)
            self.data = data
        if changes.links:
            # The engine's new rows share their long links along the history
            # (`gridflow.model._grow`: O(1) per link step); a replay's throw-away
            # rows are plain tuples.
            more = tuple(changes.links)
            links = self.links
            self.links = _grow(links, more) if self.share_links or links.__class__ is _Links \
                else cast("tuple[str, ...]", links) + more

    def case(self) -> Case:
        # `_Links` stands in for the tuple in the row's slot: `Case.links` reads the tuple.
        return Case(self.case_id, self.workflow, self.workflow_version, self.state, self.version,
                    self.data, self.grid, self.opened_at, self.updated_at, self.deadline_at,
                    cast("tuple[str, ...]", self.links), self.head)


def evolve(case: Case | None, event: Event) -> Case:
    """The case after ``event``: ``case`` with the event's `Changes` applied.

    ``case`` is ``None`` for a case's first event (``open``). Pure: no I/O, no
    rule, no clock. `IntegrityError` if the event cannot follow ``case``.

    Example:
        >>> from datetime import datetime, UTC
        >>> from gridflow.model import Actor, Changes
        >>> t = datetime(2026, 1, 5, tzinfo=UTC)
        >>> opened = Event.create("c-1", 1, "open", None, "reported", Actor.system(), t,
        ...     {"data": {"title": "堆物"}, "grid": "g", "links": []}, None, GENESIS_HASH,
        ...     Changes(set={"title": "堆物"}, workflow="grid_case", grid="g"))
        >>> case = evolve(None, opened)
        >>> (case.state, case.version, case.data, case.grid)
        ('reported', 1, {'title': '堆物'}, 'g')
        >>> triage = Event.create("c-1", 2, "triage", "reported", "triaged", Actor.system(), t,
        ...     {"category": "违规堆物"}, None, opened.hash, Changes(set={"category": "违规堆物"}))
        >>> evolve(case, triage).data
        {'title': '堆物', 'category': '违规堆物'}
    """
    if case is None:
        return _Fold.opened(event).case()
    changes = event.changes
    if changes is not None and changes.workflow is None and event.seq == case.version + 1:
        # Every step the engine records that does not rebind the case: `_Fold.apply`'s
        # rule written out for one event, without a fold object to build and read
        # back (the bulk of a step's evolve). Anything else goes through the fold.
        data = case.data
        if changes.set or changes.unset:
            data = {**data, **changes.set}
            for key in changes.unset:
                data.pop(key, None)
        # As the row holds them; long links grow in their shared form (`_grow`), as
        # `_Fold.apply` grows them for `evolve`.
        links: Any = stored_links(case)
        if changes.links:
            links = _grow(links, tuple(changes.links))
        dest = event.dest
        return _make_case(case.id, case.workflow, changes.workflow_version,
                          case.state if dest is None else dest, event.seq, data, case.grid,
                          case.opened_at, event.at, changes.deadline_at, links, event.hash)
    fold = _Fold(case)
    fold.share_links = True
    fold.apply(event)
    return fold.case()


class SpecIndex:
    """Resolves ``(workflow, version)`` to a spec and its set of transitions,
    keeping each version's transitions once computed: reuse one across calls
    of `replay` and `audit` (the engine does).

    Example:
        >>> from gridflow.workflows import GRID_CASE
        >>> ("triage", "reported", "triaged") in SpecIndex(GRID_CASE).edges("grid_case", 1)
        True
    """

    def __init__(self, source: SpecSource) -> None:
        self._edges: dict[tuple[str, int], frozenset[tuple[str, str, str | None]]] = {}
        self._fingerprints: dict[tuple[str, int], str] = {}
        from gridflow.spec import WorkflowSpec

        if isinstance(source, WorkflowSpec):
            source = [source]
        if callable(source):
            self._lookup: Callable[[str, int], WorkflowSpec] = source
        else:
            table = {(s.name, s.version): s for s in source}

            def lookup(name: str, version: int) -> WorkflowSpec:
                found = table.get((name, version))
                if found is None:
                    raise UnknownWorkflow(name, version, (f"{n}@{v}" for n, v in table))
                return found

            self._lookup = lookup

    def spec(self, name: str, version: int) -> WorkflowSpec:
        return self._lookup(name, version)

    def fingerprint(self, name: str, version: int) -> str | None:
        """The fingerprint of ``name@version``, or ``None`` if it is not known here."""
        key = (name, version)
        found = self._fingerprints.get(key)
        if found is None:
            try:
                found = self._lookup(name, version).fingerprint
            except UnknownWorkflow:
                return None
            self._fingerprints[key] = found
        return found

    def edges(self, name: str, version: int) -> frozenset[tuple[str, str, str | None]]:
        key = (name, version)
        found = self._edges.get(key)
        if found is None:
            spec = self._lookup(name, version)
            found = frozenset(
                (t.trigger, src, t.dest) for t in spec.transitions
                for src in t.sources(spec.non_terminal))
            self._edges[key] = found
        return found


def _check_event(index: int, event: Event, case_id: str, prev: str) -> None:
    """The per-case chain: seq, case, the event's own hash, the link to the previous."""
    if event.seq != index:
        raise IntegrityError(case_id, index, f"expected seq {index}, found seq {event.seq} "
                             "(an event was deleted or reordered)", field="seq")
    if event.case_id != case_id:
        raise IntegrityError(case_id, index, f"the event belongs to case {event.case_id!r}",
                             field="case_id")
    if event.expected_hash() != event.hash:
        edited = event.edited_fields()
        what = f"the event's {', '.join(edited)} changed" if edited else "the event was edited"
        raise IntegrityError(case_id, index, f"the event's hash does not match its content "
                             f"({what} after it was written)",
                             field=edited[0] if edited else "hash")
    if event.prev_hash != prev:
        raise IntegrityError(case_id, index, "prev_hash does not match the previous event's "
                             "hash (history before this event was edited, deleted or "
                             "reordered)", field="prev_hash")


def _check_fingerprint(case_id: str, index: int, recorded: object, name: str, version: int,
                       specs: SpecIndex) -> None:
    """A recorded spec fingerprint must be that of the spec the case runs on."""
    if recorded is None:
        return  # written before fingerprints were recorded
    known = specs.fingerprint(name, version)
    if known is None or recorded == known:
        return
    raise IntegrityError(case_id, index, f"the case was recorded on {name}@{version} with "
                         f"fingerprint {recorded!s:.64}, but the registered {name}@{version} has "
                         f"fingerprint {known}: the definition was edited under the same "
                         "version (register the recorded definition, or give the edited one "
                         "a new version and migrate the cases)", field="fingerprint")


def _check_migrate(index: int, event: Event, case: _Fold, specs: SpecIndex) -> None:
    """A ``migrate`` event: a rebind to another version of the same workflow."""
    changes, payload = event.changes, event.payload
    if changes is None or changes.workflow is None or changes.workflow != case.workflow:
        raise IntegrityError(case.case_id, index, "a 'migrate' event must rebind the case to "
                             f"another version of {case.workflow!r}", field="changes")
    if payload.get("source_version") != case.workflow_version \
            or payload.get("target_version") != changes.workflow_version:
        raise IntegrityError(case.case_id, index, "the 'migrate' event's versions do not match "
                             f"the case (on {case.workflow}@{case.workflow_version})",
                             field="payload")
    _check_fingerprint(case.case_id, index, payload.get("source_fingerprint"), case.workflow,
                       case.workflow_version, specs)
    target = changes.workflow_version
    _check_fingerprint(case.case_id, index, payload.get("fingerprint"), case.workflow, target,
                       specs)
    if event.dest is None or event.dest not in specs.spec(case.workflow, target).state_names:
        raise IntegrityError(case.case_id, index, f"the 'migrate' event moves the case to "
                             f"{event.dest!r}, not a state of {case.workflow}@{target}",
                             field="dest")


def _check_step(index: int, event: Event, case: _Fold, specs: SpecIndex) -> None:
    """The step is one the workflow allows from the state the fold is in."""
    if event.changes is None and case.version and case.workflow:
        raise IntegrityError(case.case_id, index, "an event without recorded changes after the "
                             "case was upgraded to gridflow 0.2", field="changes")
    if event.source != case.state:
        raise IntegrityError(case.case_id, index, f"the event starts from {event.source!r} but the "
                             f"fold is in {case.state!r}", field="source")
    trigger = event.trigger
    if trigger == "migrate":
        _check_migrate(index, event, case, specs)
        return
    changes = event.changes
    if changes is not None and not case.workflow and changes.workflow is None:
        # A case whose events name no workflow is a gridflow 0.1 case before its upgrade:
        # its steps recorded no changes, and none is checked against a workflow. A step
        # recording changes there would go unchecked (a forged 'open' without changes
        # turned the whole history into such a case).
        raise IntegrityError(case.case_id, index, "an event with recorded changes on a case "
                             "whose events name no workflow (a gridflow 0.1 case before its "
                             "'upgrade' event)", field="changes")
    if changes is not None and changes.workflow is not None \
            and (trigger != "upgrade" or case.workflow):
        # A rebind names the workflow, its version and the grid: only a migration (above)
        # and the upgrade of a gridflow 0.1 case (whose events name no workflow) make
        # one. Any other step rebinding the case would move it to another workflow or
        # grid (out of its actors' scope) with no migration on record.
        raise IntegrityError(case.case_id, index, f"{trigger!r} rebinds the case to "
                             f"{changes.workflow!r}; only a 'migrate' event (or the "
                             "'upgrade' of a gridflow 0.1 case) rebinds a case",
                             field="changes")
    if changes is not None and changes.workflow is None \
            and changes.workflow_version != case.workflow_version:
        # Only a rebind (upgrade, migration) moves a case to another version: a step
        # that does would run the case on a version it was never migrated to (or one
        # not registered at all), and every later step would be checked against it.
        raise IntegrityError(case.case_id, index, f"{trigger!r} moves the case from "
                             f"{case.workflow}@{case.workflow_version} to version "
                             f"{changes.workflow_version!r}; only a rebinding event "
                             "('migrate', 'upgrade') changes the workflow version",
                             field="workflow_version")
    if trigger in INTERNAL_TRIGGERS:
        if event.dest is not None:
            raise IntegrityError(case.case_id, index, f"{trigger!r} must keep the state",
                                 field="dest")
        if trigger in _TIMER_ONLY and event.actor.id != "system":
            # Only the timer marks a case overdue: a mark by anyone else was
            # written behind the engine's back.
            raise IntegrityError(case.case_id, index, f"an {trigger!r} mark not made by the timer "
                                 f"(actor {event.actor.id!r}, not 'system')", field="actor")
        return
    if not case.workflow:
        return  # a 0.1 case before its upgrade event: the workflow is not known yet
    edges = specs.edges(case.workflow, case.workflow_version)
    if (trigger, case.state, event.dest) not in edges:
        raise IntegrityError(case.case_id, index, f"{trigger!r} from {case.state!r} to "
                             f"{event.dest!r} is not a transition of "
                             f"{case.workflow}@{case.workflow_version}", field="trigger")


def replay(spec: SpecSource | SpecIndex, events: Sequence[Event]) -> Case:
    """The case row that ``events`` (one case's whole history, oldest first) fold to.

    Checks the hash chain and that every step is a transition of ``spec``
    (one `WorkflowSpec`, several versions, or a look-up ``(name, version) ->
    spec``) on the way; raises `IntegrityError` naming the first bad event.

    Example:
        >>> import gridflow
        >>> engine = gridflow.Engine(entry_points=False)
        >>> r = gridflow.Actor("r", ["resident"], gridflow.ALL_GRIDS)
        >>> c = engine.open("grid_case", actor=r, data={"title": "路灯", "source": "resident"})
        >>> gridflow.replay(engine.workflow("grid_case"), engine.history(c.id)) == engine.get(c.id)
        True
    """
    if not events:
        raise IntegrityError("(none)", None, "there are no events to replay", field="version")
    case_id = events[0].case_id
    index = spec if isinstance(spec, SpecIndex) else SpecIndex(spec)
    return _fold(case_id, events, index)[0]


def _fold(case_id: str, events: Sequence[Event],
          specs: SpecIndex) -> tuple[Case, dict[str, int], dict[str, int]]:
    """Fold with every check; also return, per field and per data key, the seq of
    the last event that changed it (where a disagreeing row parts from the fold)."""
    prev = GENESIS_HASH
    fold: _Fold | None = None
    touched: dict[str, int] = {}
    keys: dict[str, int] = {}
    for index, event in enumerate(events, start=1):
        _check_event(index, event, case_id, prev)
        prev = event.hash
        if fold is None:
            fold = _Fold.opened(event)
            touched = dict.fromkeys(CASE_FIELDS, 1)
            if fold.workflow:
                _check_fingerprint(case_id, 1, event.payload.get("fingerprint"), fold.workflow,
                                   fold.workflow_version, specs)
            continue
        _check_step(index, event, fold, specs)
        state, deadline, links, version = (fold.state, fold.deadline_at, fold.links,
                                           fold.workflow_version)
        fold.apply(event)
        if fold.state != state:
            touched["state"] = index
        if fold.deadline_at != deadline:
            touched["deadline_at"] = index
        if fold.links is not links:
            touched["links"] = index
        changes = event.changes
        if changes is not None:
            for key in changes.set:
                keys[key] = index
            for key in changes.unset:
                keys[key] = index
            if changes.workflow is not None:
                # A rebind (upgrade, migration) states the row as of this event.
                touched.update(workflow=index, workflow_version=index, grid=index, data=index)
            elif changes.workflow_version != version:
                touched["workflow_version"] = index
    assert fold is not None
    for field in ("version", "updated_at", "head"):
        touched[field] = len(events)
    return fold.case(), touched, keys


def audit(row: Case | None, events: Sequence[Event], specs: SpecSource | SpecIndex) -> Case:
    """Check a stored case row against its events: the hash chain, every step,
    and the fold compared with ``row`` field by field (`CASE_FIELDS`).

    Returns the row when everything agrees; otherwise raises `IntegrityError`
    naming the case, the field and the first event where stored and
    recomputed values part (for ``data``, the last event that set or removed
    the key that disagrees). One pass, no engine rule re-run.

    Example:
        >>> import attrs, gridflow
        >>> engine = gridflow.Engine(entry_points=False)
        >>> r = gridflow.Actor("r", ["resident"], gridflow.ALL_GRIDS)
        >>> c = engine.open("grid_case", actor=r, data={"title": "路灯", "source": "resident"},
        ...                 grid="华三-1")
        >>> audit(attrs.evolve(c, grid="华三-2"), engine.history(c.id), engine.workflows)
        ... # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        gridflow._errors.IntegrityError: case ... at seq 1 (field 'grid'): the stored grid is ...
    """
    if row is None:
        case_id = events[0].case_id if events else "(none)"
        raise IntegrityError(case_id, None, "the events have no case row", field="version")
    if not events:
        raise IntegrityError(row.id, None, "the case has no events", field="version")
    index = specs if isinstance(specs, SpecIndex) else SpecIndex(specs)
    folded, touched, keys = _fold(row.id, events, index)
    if folded.version != row.version:
        raise IntegrityError(row.id, min(folded.version, row.version) + 1,
                             f"the case row is at version {row.version} but {folded.version} "
                             "events are stored (events were deleted, or the row was edited)",
                             field="version")
    for field in CASE_FIELDS:
        stored, recomputed = getattr(row, field), getattr(folded, field)
        if stored == recomputed and type(stored) is type(recomputed):
            continue
        if field == "data":
            raise _data_mismatch(row.id, stored, recomputed, keys, touched)
        # Values of the row are never personal: those live in data.
        raise IntegrityError(row.id, touched.get(field, len(events)),
                             f"the stored {field} is {stored!r} but the events give "
                             f"{recomputed!r}", field=field)
    return row


def _data_mismatch(case_id: str, stored: dict[str, Any], folded: dict[str, Any],
                   keys: dict[str, int], touched: dict[str, int]) -> IntegrityError:
    differing = sorted(k for k in stored.keys() | folded.keys()
                       if k not in stored or k not in folded or stored[k] != folded[k]
                       or type(stored[k]) is not type(folded[k]))
    if not differing:  # the same keys and values, in a different type (e.g. a tuple)
        differing = sorted(stored)
    seq = min(keys.get(k, touched.get("data", 1)) for k in differing)
    # Name the keys, never their values: data may hold personal information.
    return IntegrityError(case_id, seq, f"the stored data differs from the events in "
                          f"key(s) {', '.join(map(repr, differing[:10]))}"
                          + (f" and {len(differing) - 10} more" if len(differing) > 10 else ""),
                          field="data")
