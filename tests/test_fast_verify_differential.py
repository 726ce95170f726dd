"""The fast verification paths agree with the reference fold, on forged histories too.

Issue 17: a fast path stands only where a differential test shows it gives the
reference's verdict. The reference is `gridflow.fold.audit` (with the stored facts
`gridflow._facts.check`): what `Engine.verify` runs for one case. The fast paths
are the pre-checks of `Engine.verify_all` (`gridflow._fastverify`: `_Checker.case` on
SQL rows, `_Checker._compact` on MemoryStore rows, `_Checker.objects`) and the
engine's own row builder (`gridflow.fold.evolve`'s quick path).

Histories are made by an `Engine` firing random steps on grid_case@1 and @2 and
mediation (opening links, ticking the timer, migrating grid_case@1 cases to @2);
then one event may be forged *with every hash recomputed* (the chain stays intact)
and the case row refolded from the forged events (as someone who can write the
database would leave it): a changes record, a payload, the trigger, source, dest,
actor, time, links, workflow_version... The forged cases are written through the
store's own `commit`, so each store keeps them in its own form.

For every case: a pre-check passes only cases the reference passes; `verify_all`
(or `verify_cases` on the example's cases) raises the reference's error for the
first bad case, or passes when the reference passes them all; untouched histories
pass both. A third, independent oracle (`_model_allows`): a history the reference
passes must keep the workflow version between rebinds, rebind only by a
``migrate`` (or the 0.2 ``upgrade``), and fire only steps of the version in force.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import gridflow
from gridflow import Actor, Engine, FixedClock, GridflowError, IntegrityError, MemoryStore, _facts
from gridflow._fastverify import _Checker, _raw_source, precheck_rows, verify_cases
from gridflow.fold import INTERNAL_TRIGGERS, _Fold, audit, evolve
from gridflow.model import GENESIS_HASH, Case, Changes, Event
from gridflow.store import Write
from gridflow.store.memory import _Log
from gridflow.testing import _rule, _synthesized, transitions_of

GRID = "华三-1"
OTHER_GRID = "华三-2"
T0 = datetime(2026, 3, 2, 1, tzinfo=UTC)
PARTIES = [{"name": "谢女士", "side": "applicant", "kind": "person"},
           {"name": "某火锅店", "side": "respondent", "kind": "organisation"}]


def _first_pending(case: Case) -> dict[str, Any]:
    left = [d for d in case.data.get("departments", []) if d not in case.data.get("done", {})]
    return {"department": left[0] if left else "城运中心", "result": "已处理"}


#: What the guards need that synthesized payloads do not give (tests/test_testing_module.py).
HINTS: dict[str, dict[str, Any]] = {
    "grid_case": {
        "open": {"title": "楼道堆物", "source": "visit"},
        "dispatch": {"departments": ["城运中心", "清运单位"], "plan": "联合整治工作方案"},
        "reassign": {"departments": ["城运中心", "综合执法队"]},
        "report_done": _first_pending,  # type: ignore[dict-item]
        "request_extension": {"until": "2099-01-01T00:00:00+08:00"},
    },
    "mediation": {
        "open": {"parties": PARTIES},
        "accept": {"consent": {"谢女士": True, "某火锅店": True}},
        "agree": {"signed_by": ["谢女士", "某火锅店"],
                  "performance_due": "2099-01-01T00:00:00+08:00"},
        "request_extension": {"until": "2099-01-01T00:00:00+08:00"},
    },
}
WORKFLOWS = [("grid_case", 1), ("grid_case", 2), ("mediation", None)]
GAPS = [timedelta(0), timedelta(microseconds=1), timedelta(minutes=7), timedelta(hours=3),
        timedelta(days=2), timedelta(days=40)]

_ids = itertools.count()


# -- valid histories ------------------------------------------------------------------------

def _payload(spec: Any, trigger: str, state: str | None, case: Case | None,
             draw: st.DrawFn) -> dict[str, Any]:
    payload = dict(draw(st.sampled_from(_synthesized(_rule(spec, trigger, state)))))
    hint = HINTS.get(spec.name, {}).get(trigger)
    if callable(hint):
        hint = hint(case)
    return {**payload, **(hint or {})}


def _drive(engine: Engine, clock: FixedClock, draw: st.DrawFn) -> list[str]:
    """Open 1-3 cases and fire random steps on them; the ids of the cases opened."""
    opened: list[str] = []
    run = next(_ids)
    for n in range(draw(st.integers(1, 3))):
        name, version = draw(st.sampled_from(WORKFLOWS))
        spec = engine.workflow(name, version)
        rule = _rule(spec, "open")
        cid = f"d{run:05d}-{n}"
        links = [opened[-1]] if opened and draw(st.booleans()) else []
        try:
            engine.open(name, version=version, actor=Actor("网格员-陈", sorted(rule.roles),
                                                           [GRID]),
                        grid=GRID, case_id=cid, links=links,
                        data=_payload(spec, "open", None, None, draw))
        except GridflowError:
            continue
        opened.append(cid)
        for _ in range(draw(st.integers(0, 7))):
            case = engine.get(cid)
            moves = [t for t in transitions_of(spec) if t.source == case.state]
            if not moves:
                break
            move = draw(st.sampled_from(moves))
            clock.advance(draw(st.sampled_from(GAPS)))
            rule = _rule(spec, move.trigger, case.state)
            actor = Actor(f"人-{move.trigger}", sorted(rule.roles), [GRID])
            payload = _payload(spec, move.trigger, case.state, case, draw)
            if move.trigger == "mark_duplicate":
                payload["duplicate_of"] = opened[0]
            with contextlib.suppress(GridflowError):
                engine.fire(cid, move.trigger, actor=actor, payload=payload)
        if draw(st.booleans()):
            clock.advance(timedelta(days=draw(st.integers(0, 30))))
            engine.tick()
    if draw(st.booleans()):
        on_v1 = [c for c in opened if engine.get(c).workflow == "grid_case"
                 and engine.get(c).workflow_version == 1]
        if on_v1:
            with contextlib.suppress(GridflowError):
                engine.migrate(gridflow.MigrationPlan("grid_case", 1, 2),
                               actor=Actor.system(), cases=on_v1)
    return opened


# -- forgeries (every hash recomputed) ------------------------------------------------------

def _rehash(events: list[Event], start: int) -> list[Event]:
    """``events`` with every hash from ``start`` on recomputed: the chain is intact."""
    out = events[:start]
    prev = out[-1].hash if out else GENESIS_HASH
    for e in events[start:]:
        e = Event.create(e.case_id, e.seq, e.trigger, e.source, e.dest, e.actor, e.at,
                         e.payload, e.idempotency_key, prev, e.changes)
        out.append(e)
        prev = e.hash
    return out


STATES = ["reported", "triaged", "joint_action", "closed", "intake", "grid_mediation",
          "agreed", "look_back", "rejected", None]
TRIGGERS = ["note", "triage", "close", "dispatch", "overdue", "link", "upgrade", "migrate",
            "erased", "reopen", "accept", "open"]
ACTORS = [Actor.system(), Actor("书记-王", ["coordinator"], [GRID]),
          Actor("网格员-陈", ["grid_worker"], [GRID]), Actor("x", [], [])]


@st.composite
def _forged_changes(draw: st.DrawFn, event: Event) -> Changes | None:
    c = event.changes
    if c is None or draw(st.integers(0, 9)) == 0:
        return None if c is not None else Changes(workflow_version=1)
    field = draw(st.sampled_from(["set", "unset", "deadline_at", "links", "workflow_version",
                                  "workflow", "grid"]))
    if field == "set":
        key = draw(st.sampled_from(["done", "category", "title", "forged", *sorted(c.set)]))
        return attrs.evolve(c, set={**c.set, key: draw(st.sampled_from(
            [{"城运中心": "已清理", "清运单位": "x"}, "x", 1, None, [1]]))})
    if field == "unset":
        return attrs.evolve(c, unset=(*c.unset, draw(st.sampled_from(["title", "category",
                                                                        "forged"]))))
    if field == "deadline_at":
        return attrs.evolve(c, deadline_at=draw(st.sampled_from(
            [None, T0, T0 + timedelta(days=400),
             (c.deadline_at or T0) + timedelta(microseconds=1)])))
    if field == "links":
        return attrs.evolve(c, links=(*c.links, draw(st.sampled_from(["d00000-0", "zz"]))))
    if field == "workflow_version":
        return attrs.evolve(c, workflow_version=draw(st.sampled_from(
            [c.workflow_version + 1, c.workflow_version - 1, 2, 9])))
    if field == "workflow":
        return attrs.evolve(c, workflow=draw(st.sampled_from(["grid_case", "mediation", None])),
                            grid=draw(st.sampled_from([c.grid, GRID, OTHER_GRID])),
                            workflow_version=draw(st.sampled_from([c.workflow_version, 1, 2])))
    return attrs.evolve(c, grid=OTHER_GRID)


@st.composite
def _forged_event(draw: st.DrawFn, event: Event) -> Event:
    field = draw(st.sampled_from(["changes", "changes", "changes", "payload", "trigger",
                                  "source", "dest", "actor", "at", "idempotency_key"]))
    if field == "changes":
        return attrs.evolve(event, changes=draw(_forged_changes(event)))
    if field == "payload":
        key = draw(st.sampled_from(["fingerprint", "source_version", "target_version",
                                    "result", "data", "forged", *sorted(event.payload)]))
        value = draw(st.sampled_from(["0" * 64, 1, 2, "x", None, {}]))
        return attrs.evolve(event, payload={**event.payload, key: value})
    if field == "trigger":
        return attrs.evolve(event, trigger=draw(st.sampled_from(TRIGGERS)))
    if field in ("source", "dest"):
        return attrs.evolve(event, **{field: draw(st.sampled_from(STATES))})
    if field == "actor":
        return attrs.evolve(event, actor=draw(st.sampled_from(ACTORS)))
    if field == "at":
        return attrs.evolve(event, at=event.at + draw(st.sampled_from(
            [timedelta(microseconds=1), -timedelta(days=1), timedelta(days=3)])))
    # Unique per case: a key is unique in the store.
    return attrs.evolve(event, idempotency_key=draw(st.sampled_from(
        [None, f"k-forged-{event.case_id}"])))


def _unchecked_rows(events: list[Event]) -> list[Case] | None:
    """The rows the fold's rule gives after each event, with no check of any step (what
    a forger refolding the row writes); ``None`` if even the rule cannot fold them."""
    try:
        fold = _Fold.opened(events[0])
        rows = [fold.case()]
        for e in events[1:]:
            fold.apply(e)
            rows.append(fold.case())
    except IntegrityError:
        return None
    return rows


@attrs.define
class History:
    #: case id -> (rows after each event, events): what is written to the store.
    cases: dict[str, tuple[list[Case], list[Event]]]
    forged: str | None = None


@st.composite
def histories(draw: st.DrawFn) -> History:
    clock = FixedClock(T0)
    engine = Engine(store=MemoryStore(), clock=clock, entry_points=False)
    ids = _drive(engine, clock, draw)
    out = History({})
    for cid in ids:
        # As stored (personal values sealed), not as `history` shows them.
        events = engine.store.events(cid)
        rows = _unchecked_rows(events)
        assert rows is not None and rows[-1] == engine.store.get(cid)
        out.cases[cid] = (rows, events)
    if not ids or not draw(st.integers(0, 5)):
        return out  # a valid history
    cid = draw(st.sampled_from(ids))
    rows, events = out.cases[cid]
    how = draw(st.sampled_from(["event", "event", "event", "event", "cut", "stale"]))
    if how == "cut" and len(events) > 1:
        events = events[:draw(st.integers(1, len(events) - 1))]
        rows = rows[:len(events)]
    elif how in ("event", "stale"):
        at = draw(st.integers(0, len(events) - 1))
        forged = _rehash([*events[:at], draw(_forged_event(events[at])), *events[at + 1:]], at)
        refolded = _unchecked_rows(forged)
        # Stale: the row as it was (a forger who did not refold it), its head moved on.
        rows = refolded if refolded is not None and how == "event" else [
            attrs.evolve(r, head=e.hash) for r, e in zip(rows, forged, strict=True)]
        events = forged
    out.cases[cid] = (rows, events)
    out.forged = cid
    return out


# -- stores and verdicts -----------------------------------------------------------------

def _write(store: Any, history: History) -> None:
    for rows, events in history.cases.values():
        store.commit([Write(row, event, i)
                      for i, (row, event) in enumerate(zip(rows, events, strict=True))])


def _reference(engine: Engine, cid: str) -> str:
    """`Engine.verify`'s verdict without any fast path: `audit`, then the stored facts."""
    store = engine.store
    try:
        audit(store.get(cid), store.events(cid), engine._spec_index)
        stored_facts = getattr(store, "stored_facts", None)
        if stored_facts is not None:
            facts, stays, districts = stored_facts(cid)
            _facts.check(cid, facts, stays, store.events(cid), districts)
    except IntegrityError as exc:
        return f"IntegrityError: {exc}"
    return "ok"


def _prechecks(engine: Engine, ids: list[str]) -> dict[str, bool]:
    store = engine.store
    if isinstance(store, MemoryStore):
        checker = _Checker(None, engine._spec_index)
        out = {}
        for cid in ids:
            row, log = store._cases.get(cid), store._events.get(cid)
            if isinstance(log, _Log):
                out[cid] = checker.compact(row, log) or checker.objects(row, log.events())
            else:
                out[cid] = checker.objects(row, list(log or ()))
        return out
    source = _raw_source(store)
    assert source is not None
    return dict(precheck_rows(source, engine._spec_index, source.histories(ids)))


def _model_allows(engine: Engine, events: list[Event]) -> bool:
    """An oracle written apart from the fold: what a verified history must look like."""
    first = events[0].changes
    if first is None:
        # A gridflow 0.1 case: no step records changes until its 'upgrade' (none made here).
        for e in events[1:]:
            if e.trigger == "upgrade":
                return True
            if e.changes is not None:
                return False
        return True
    if first.workflow is None:
        return False
    workflow, version = first.workflow, first.workflow_version
    state = events[0].dest
    for e in events[1:]:
        c = e.changes
        if c is None:
            return False
        if e.trigger == "migrate":
            if c.workflow != workflow:
                return False
            version = c.workflow_version
        elif c.workflow is not None or c.workflow_version != version:
            return False  # a rebind by anything but a migration (no 0.1 upgrade here)
        try:
            spec = engine.workflow(workflow, version)
        except GridflowError:
            return False
        if e.source != state:
            return False
        if e.trigger == "migrate" or e.trigger in INTERNAL_TRIGGERS:
            if e.trigger != "migrate" and e.dest is not None:
                return False
        elif (e.trigger, state, e.dest) not in {(t.trigger, t.source, t.dest)
                                                for t in transitions_of(spec)}:
            return False
        if e.dest is not None:
            state = e.dest
    return True


def _evolved(events: list[Event]) -> Case | None:
    """The row `evolve` (the engine's quick path) builds, event by event."""
    case = None
    try:
        for e in events:
            case = evolve(case, e)
    except IntegrityError:
        return None
    return case


def _same(a: Case, b: Case) -> bool:
    return all(getattr(a, f) == getattr(b, f) and type(getattr(a, f)) is type(getattr(b, f))
               for f in ("id", *gridflow.fold.CASE_FIELDS))


def _tag(name: str) -> None:
    """A hypothesis statistic (``--hypothesis-show-statistics``), outside it nothing."""
    from hypothesis.control import currently_in_test_context

    if currently_in_test_context():
        event(name)


def _check(engine: Engine, history: History) -> None:
    ids = sorted(history.cases)
    ref = {cid: _reference(engine, cid) for cid in ids}
    pre = _prechecks(engine, ids)
    assert sorted(pre) == ids
    for cid in ids:
        rows, events = history.cases[cid]
        if cid != history.forged:
            assert ref[cid] == "ok", (cid, ref[cid])
        # The fast verdict is never more lenient than the reference's...
        assert not pre[cid] or ref[cid] == "ok", (cid, ref[cid])
        # ... and on what the reference passes, no stricter (else it is no fast path).
        assert pre[cid] or ref[cid] != "ok", cid
        if ref[cid] == "ok":
            assert _model_allows(engine, events), (cid, [(e.trigger, e.changes)
                                                         for e in events])
            evolved = _evolved(events)
            assert evolved is not None and _same(evolved, rows[-1]), cid
        if cid == history.forged:
            _tag("forged: " + ("passes" if ref[cid] == "ok" else
                               ref[cid].split("(field ")[1].split(")")[0]))
        _tag(f"steps: {min(len(events), 9)}" + (" migrated" if any(
            e.trigger == "migrate" for e in events) else ""))
        _tag(f"workflow: {rows[-1].workflow}@{rows[-1].workflow_version}")
    bad = [cid for cid in ids if ref[cid] != "ok"]
    if not bad:
        assert verify_cases(engine, ids) == len(ids)
        return
    with pytest.raises(IntegrityError) as caught:
        verify_cases(engine, ids)
    assert f"IntegrityError: {caught.value}" == ref[bad[0]]


SETTINGS = settings(max_examples=100, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


@SETTINGS
@given(history=histories())
def test_memory_store_fast_verdicts_are_the_references(history: History) -> None:
    store = MemoryStore()
    engine = Engine(store=store, entry_points=False)
    _write(store, history)
    _check(engine, history)
    # The whole store: verify_all is the reference's verdict on its first bad case.
    bad = sorted(cid for cid in history.cases if _reference(engine, cid) != "ok")
    if bad:
        with pytest.raises(IntegrityError) as caught:
            engine.verify_all()
        assert f"IntegrityError: {caught.value}" == _reference(engine, bad[0])
    else:
        assert engine.verify_all() == len(history.cases)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sql_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """One SQLStore for all the examples of a test (each writes cases of its own ids)."""
    if request.param == "sqlite":
        store = gridflow.SQLStore(f"sqlite:///{tmp_path / 'differential.db'}")
    else:
        store = gridflow.SQLStore(request.getfixturevalue("pg_url"),
                                  schema=request.getfixturevalue("pg_schema"))
    store.create_schema()
    yield Engine(store=store, entry_points=False)
    store.close()


@SETTINGS
@given(history=histories())
def test_sql_store_fast_verdicts_are_the_references(sql_engine: Engine,
                                                    history: History) -> None:
    _write(sql_engine.store, history)
    _check(sql_engine, history)


# -- regressions ---------------------------------------------------------------------------

def _alley(engine: Engine, cid: str) -> list[Event]:
    """A grid_case@1 case: open, triage, note; its stored events."""
    worker = Actor("网格员-陈", ["grid_worker"], [GRID])
    boss = Actor("书记-王", ["coordinator"], [GRID])
    engine.open("grid_case", version=1, actor=worker, grid=GRID, case_id=cid,
                data={"title": "长宁支路324弄堆物", "source": "visit"})
    engine.fire(cid, "triage", actor=boss, payload={"category": "违规堆物",
                                                    "priority": "normal"})
    engine.fire(cid, "note", actor=boss, payload={"text": "已到现场"})
    return engine.store.events(cid)


def _forge_step(target: Any, cid: str, seq: int, **changes: Any) -> Engine:
    """``cid``'s alley history with event ``seq``'s changes edited, every hash recomputed
    and the row refolded, written to ``target``; an engine on ``target``."""
    events = _alley(Engine(store=MemoryStore(), clock=FixedClock(T0), entry_points=False),
                    cid)
    at = seq - 1
    edited = attrs.evolve(events[at], changes=attrs.evolve(events[at].changes, **changes))
    forged = _rehash([*events[:at], edited, *events[at + 1:]], at)
    rows = _unchecked_rows(forged)
    assert rows is not None
    _write(target, History({cid: (rows, forged)}, cid))
    return Engine(store=target, entry_points=False)


@pytest.fixture(params=["memory", "sqlite"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "memory":
        yield MemoryStore()
        return
    store = gridflow.SQLStore(f"sqlite:///{tmp_path / 'forged.db'}")
    store.create_schema()
    yield store
    store.close()


@pytest.mark.parametrize("version", [2, 9])
def test_a_step_may_not_change_the_workflow_version(target: Any, version: int) -> None:
    # Found by review: a 'note' moving the case to grid_case@2 (or to an unregistered
    # @9), hashes recomputed, passed verify and verify_all; every later step would
    # have been checked against that version.
    engine = _forge_step(target, "c-version", 3, workflow_version=version)
    for run in (lambda: engine.verify("c-version"), engine.verify_all):
        with pytest.raises(IntegrityError) as caught:
            run()
        error = caught.value
        assert (error.case_id, error.seq, error.field) == ("c-version", 3, "workflow_version")
        assert "'note' moves the case from grid_case@1 to version" in str(error)


#: Forgeries tried on every event of `_story` (`test_every_forgery_of_every_event`).
FORGERIES: dict[str, Any] = {
    "version +1": lambda e: _changes(e, workflow_version=e.changes.workflow_version + 1),
    "version 9": lambda e: _changes(e, workflow_version=9),
    "rebind mediation": lambda e: _changes(e, workflow="mediation", grid=GRID),
    "rebind same": lambda e: _changes(e, workflow="grid_case", grid=e.changes.grid or GRID),
    "rebind grid": lambda e: _changes(e, workflow="grid_case", grid=OTHER_GRID),
    "grid": lambda e: _changes(e, grid=OTHER_GRID),
    "set done": lambda e: _changes(e, set={**e.changes.set, "done": {"城运中心": "x"}}),
    "unset title": lambda e: _changes(e, unset=(*e.changes.unset, "title")),
    "deadline": lambda e: _changes(e, deadline_at=T0 + timedelta(days=400)),
    "no deadline": lambda e: _changes(e, deadline_at=None),
    "link": lambda e: _changes(e, links=(*e.changes.links, "zz")),
    "no changes": lambda e: attrs.evolve(e, changes=None),
    "payload": lambda e: attrs.evolve(e, payload={**e.payload, "forged": 1}),
    "fingerprint": lambda e: attrs.evolve(e, payload={**e.payload, "fingerprint": "0" * 64}),
    "trigger note": lambda e: attrs.evolve(e, trigger="note"),
    "trigger overdue": lambda e: attrs.evolve(e, trigger="overdue", dest=None),
    "trigger upgrade": lambda e: attrs.evolve(e, trigger="upgrade", dest=None),
    "trigger migrate": lambda e: attrs.evolve(e, trigger="migrate"),
    "source": lambda e: attrs.evolve(e, source="closed"),
    "dest": lambda e: attrs.evolve(e, dest="closed"),
    "actor": lambda e: attrs.evolve(e, actor=Actor("x", [], [])),
    "at": lambda e: attrs.evolve(e, at=e.at - timedelta(days=1)),
    "key": lambda e: attrs.evolve(e, idempotency_key=f"k-{e.case_id}"),
    # Values a MemoryStore row cannot give back exactly: kept as an `Event` there (the
    # object pre-check), on SQL stores read back otherwise than hashed.
    "at +08:00": lambda e: attrs.evolve(e, at=e.at.astimezone(timezone(timedelta(hours=8)))),
    "set tuple": lambda e: _changes(e, set={**e.changes.set, "photos": ("1.jpg",)}),
}


def _changes(event: Event, **changes: Any) -> Event:
    return attrs.evolve(event, changes=attrs.evolve(event.changes, **changes))


def _story(cid: str) -> list[Event]:
    """A grid_case@1 case with a link, an overdue mark and a migration to @2."""
    clock = FixedClock(T0)
    engine = Engine(store=MemoryStore(), clock=clock, entry_points=False)
    _alley(engine, cid)
    boss = Actor("书记-王", ["coordinator"], [GRID])
    clock.advance(timedelta(days=30))
    engine.tick()
    engine.fire(cid, "dispatch", actor=boss, payload=HINTS["grid_case"]["dispatch"])
    engine.open("grid_case", version=1, actor=boss, grid=GRID, links=[cid],
                data={"title": "同一弄堂地锁", "source": "visit"})
    engine.migrate(gridflow.MigrationPlan("grid_case", 1, 2), actor=Actor.system(), cases=[cid])
    engine.fire(cid, "note", actor=boss, payload={"text": "回访"})
    events = engine.store.events(cid)
    assert {"link", "overdue", "migrate"} <= {e.trigger for e in events}
    return events


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_every_forgery_of_every_event(kind: str, tmp_path: Path) -> None:
    """Each of `FORGERIES` on each event of `_story`, rehashed and refolded: the fast
    verdicts are the reference's, and what the reference passes `_model_allows`."""
    sql = None
    if kind == "sqlite":
        sql = gridflow.SQLStore(f"sqlite:///{tmp_path / 'every.db'}")
        sql.create_schema()
    try:
        story = _story("story")
        for seq in range(1, len(story) + 1):
            for name, forge in FORGERIES.items():
                cid = f"f{seq}-{name.replace(' ', '_')}"
                # The story under another id (a case id is unique in the store).
                events = _rehash([attrs.evolve(e, case_id=cid) for e in story], 0)
                try:
                    edited = forge(events[seq - 1])
                except (AttributeError, TypeError):
                    continue  # no changes record to edit
                forged = _rehash([*events[:seq - 1], edited, *events[seq:]], seq - 1)
                rows = _unchecked_rows(forged)
                if rows is None:
                    continue  # the fold's rule itself refuses it (a first event): no row
                history = History({cid: (rows, forged)}, cid)
                store = sql if sql is not None else MemoryStore()
                try:
                    _write(store, history)
                except gridflow.StoreError:
                    continue  # a value the store does not write (a time not in UTC)
                _check(Engine(store=store, entry_points=False), history)
    finally:
        if sql is not None:
            sql.close()


@pytest.mark.parametrize(("trigger", "workflow", "grid"), [
    ("triage", "grid_case", None), ("note", "mediation", GRID), ("note", "grid_case", OTHER_GRID),
])
def test_only_a_migration_rebinds_a_case(target: Any, trigger: str, workflow: str,
                                         grid: str | None) -> None:
    # Found by the differential test's model: a step whose changes name a workflow
    # rebinds the case, so a forged 'triage' (or 'note') could move it out of its grid
    # (grid None: out of every grid-scoped actor's view) or to another workflow.
    seq = 2 if trigger == "triage" else 3
    engine = _forge_step(target, "c-rebind", seq, workflow=workflow, grid=grid)
    for run in (lambda: engine.verify("c-rebind"), engine.verify_all):
        with pytest.raises(IntegrityError) as caught:
            run()
        error = caught.value
        assert (error.case_id, error.seq, error.field) == ("c-rebind", seq, "changes")
        assert f"{trigger!r} rebinds the case to {workflow!r}" in str(error)


def test_a_second_upgrade_may_not_rebind(target: Any) -> None:
    # 'upgrade' rebinds a gridflow 0.1 case (its events name no workflow); on a case
    # that names one, it is a rebind without a migration.
    events = _alley(Engine(store=MemoryStore(), clock=FixedClock(T0), entry_points=False),
                    "c-upgrade")
    last = events[-1]
    upgrade = attrs.evolve(last, trigger="upgrade", dest=None, actor=Actor.system(),
                           changes=attrs.evolve(last.changes, workflow="grid_case",
                                                workflow_version=2, grid=OTHER_GRID))
    forged = _rehash([*events[:-1], upgrade], len(events) - 1)
    rows = _unchecked_rows(forged)
    assert rows is not None and rows[-1].grid == OTHER_GRID
    _write(target, History({"c-upgrade": (rows, forged)}, "c-upgrade"))
    with pytest.raises(IntegrityError) as caught:
        Engine(store=target, entry_points=False).verify_all()
    assert (caught.value.seq, caught.value.field) == (3, "changes")


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_forgeries_around_the_shared_links_form(kind: str, tmp_path: Path) -> None:
    """A case named by more cases than `gridflow.model._INDEXED_LINKS`: its rows keep
    their links in the shared form (`_grow`) from there on; forgeries of the link
    events around that length get the reference's verdict too."""
    from gridflow.model import _INDEXED_LINKS

    engine = Engine(store=MemoryStore(), clock=FixedClock(T0), entry_points=False)
    worker = Actor("网格员-陈", ["grid_worker"], [GRID])
    engine.open("grid_case", version=1, actor=worker, grid=GRID, case_id="hub",
                data={"title": "同一弄堂", "source": "visit"})
    for n in range(_INDEXED_LINKS + 2):
        engine.open("grid_case", version=1, actor=worker, grid=GRID, case_id=f"spoke-{n}",
                    links=["hub"], data={"title": "地锁", "source": "visit"})
    story = engine.store.events("hub")
    assert len(engine.store.get("hub").links) == _INDEXED_LINKS + 2
    sql = None
    if kind == "sqlite":
        sql = gridflow.SQLStore(f"sqlite:///{tmp_path / 'links.db'}")
        sql.create_schema()
    try:
        for seq in (_INDEXED_LINKS, _INDEXED_LINKS + 1, len(story)):
            for name in ("link", "no changes", "version +1", "trigger note", "set done"):
                cid = f"h{seq}-{name.replace(' ', '_')}"
                events = _rehash([attrs.evolve(e, case_id=cid) for e in story], 0)
                forged = _rehash([*events[:seq - 1], FORGERIES[name](events[seq - 1]),
                                  *events[seq:]], seq - 1)
                rows = _unchecked_rows(forged)
                assert rows is not None
                history = History({cid: (rows, forged)}, cid)
                store = sql if sql is not None else MemoryStore()
                _write(store, history)
                _check(Engine(store=store, entry_points=False), history)
    finally:
        if sql is not None:
            sql.close()


def test_an_open_without_changes_does_not_unchain_the_steps(target: Any) -> None:
    # An 'open' without changes reads as a gridflow 0.1 case (no workflow: its steps
    # are not checked). Forged so, with every later record at version 0, the case
    # passed verify with any steps at all; a step recording changes there is refused.
    events = _alley(Engine(store=MemoryStore(), clock=FixedClock(T0), entry_points=False),
                    "c-01")
    forged = [attrs.evolve(events[0], changes=None)]
    forged += [attrs.evolve(e, trigger="close", dest="closed" if e.seq == 2 else None,
                            changes=attrs.evolve(e.changes, workflow_version=0))
               for e in events[1:]]
    forged = _rehash(forged, 0)
    rows = _unchecked_rows(forged)
    assert rows is not None and rows[-1].workflow == ""
    _write(target, History({"c-01": (rows, forged)}, "c-01"))
    with pytest.raises(IntegrityError) as caught:
        Engine(store=target, entry_points=False).verify_all()
    assert (caught.value.seq, caught.value.field) == (2, "changes")
