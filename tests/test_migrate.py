"""Fingerprints, retiring and migrating in-flight cases (issue 13), on every store.

The scenario: 300 grid cases spread over every non-terminal state of
``grid_case@1``, a test-only ``grid_case@3`` (tests/migration_v3.py) that
renames ``revisit`` to ``look_back``, adds the ``acceptance`` step after
``close`` and gives ``triaged`` 2 days instead of 1.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import attrs
import pytest

import gridflow
from gridflow import (
    Actor,
    Engine,
    FixedClock,
    MemoryStore,
    MigrationError,
    MigrationPlan,
    SpecError,
    Store,
)
from gridflow.fold import audit
from gridflow.workflows import GRID_CASE
from migration_v3 import (
    GRID,
    GRID_CASE_V3,
    PLAN,
    STATES_V1,
    V3Plugin,
    department,
    fill,
    secretary,
    volunteer,
    walk,
)

system = Actor.system()


def v2_engine(store: Store, clock: FixedClock) -> Engine:
    return Engine(store=store, clock=clock, entry_points=False, plugins=[V3Plugin()])


def snapshot(engine: Engine, ids: Any) -> dict[str, Any]:
    """Every row and every event count: what "nothing stored changed" compares."""
    return {cid: (engine.store.get(cid), len(engine.store.events(cid))) for cid in ids}


# -- fingerprints ------------------------------------------------------------------------


def test_fingerprint_is_the_hash_of_the_canonical_form() -> None:
    import hashlib

    from gridflow.model import canonical_json

    assert gridflow.fingerprint(GRID_CASE) == hashlib.sha256(
        canonical_json(GRID_CASE.to_dict()).encode()).hexdigest()
    assert gridflow.WorkflowSpec.from_dict(GRID_CASE.to_dict()).fingerprint == \
        GRID_CASE.fingerprint
    assert GRID_CASE_V3.fingerprint != GRID_CASE.fingerprint
    with pytest.raises(gridflow.InvalidArgument):
        gridflow.fingerprint("grid_case")  # type: ignore[arg-type]


def test_open_records_the_fingerprint_and_verify_checks_it(engine: Engine) -> None:
    case = walk(engine, "triaged")
    first = engine.history(case.id)[0]
    assert first.payload["fingerprint"] == GRID_CASE.fingerprint
    assert engine.verify(case.id) == case
    edited = attrs.evolve(GRID_CASE, labels={"zh": "网格案件（改）", "en": "Edited"})
    with pytest.raises(gridflow.IntegrityError, match="fingerprint") as err:
        audit(case, engine.history(case.id), edited)
    assert err.value.field == "fingerprint" and err.value.seq == 1
    assert edited.fingerprint in str(err.value) and GRID_CASE.fingerprint in str(err.value)


def test_events_without_a_fingerprint_still_verify(clock: FixedClock) -> None:
    from gridflow.model import GENESIS_HASH, Changes, Event

    t = clock.now()
    opened = Event.create("old-1", 1, "open", None, "reported", system, t,
                          {"data": {}, "grid": None, "links": []}, None, GENESIS_HASH,
                          Changes(workflow="grid_case", grid=None))
    row = gridflow.replay(GRID_CASE, [opened])
    assert audit(row, [opened], GRID_CASE) == row


def test_an_edited_spec_under_a_registered_version_is_refused_in_the_engine(
        clock: FixedClock) -> None:
    engine = Engine(clock=clock, entry_points=False)
    edited = attrs.evolve(GRID_CASE, labels={"zh": "改", "en": "Edited"})
    with pytest.raises(SpecError) as err:
        engine.register_workflow(edited)
    assert GRID_CASE.fingerprint in str(err.value) and edited.fingerprint in str(err.value)
    assert engine.workflow("grid_case", 1) == GRID_CASE


TICKET = gridflow.WorkflowSpec.from_dict({
    "name": "ticket", "version": 1, "initial": "open",
    "states": [{"name": "open", "deadline": "3d"}, {"name": "done", "terminal": True}],
    "transitions": [{"trigger": "finish", "source": "open", "dest": "done"}]})


def test_an_edited_spec_under_a_version_recorded_in_the_store_is_refused(
        store: Store, clock: FixedClock) -> None:
    first = Engine(store=store, clock=clock, entry_points=False)
    first.register_workflow(TICKET)
    case = first.open("ticket", actor=system)
    before = snapshot(first, [case.id])
    assert ("ticket", 1, TICKET.fingerprint) in store.fingerprints()  # type: ignore[attr-defined]
    # The next deploy ships an edited definition under the old version number.
    edited = gridflow.WorkflowSpec.from_dict({**TICKET.to_dict(), "states": [
        {"name": "open", "deadline": "5d"}, {"name": "done", "terminal": True}]})
    second = Engine(store=store, clock=clock, entry_points=False)
    with pytest.raises(SpecError) as err:
        second.register_workflow(edited)
    message = str(err.value)
    assert TICKET.fingerprint in message and edited.fingerprint in message
    with pytest.raises(gridflow.UnknownWorkflow):
        second.workflow("ticket", 1)  # nothing registered

    # Registered through a plugin before the engine's first step: refused at it.
    class Edited:
        @gridflow.hookimpl
        def gridflow_workflows(self) -> list[gridflow.WorkflowSpec]:
            return [edited]

    third = Engine(store=store, clock=clock, entry_points=False, plugins=[Edited()])
    with pytest.raises(SpecError, match=edited.fingerprint):
        third.fire(case.id, "finish", actor=system)
    assert snapshot(first, [case.id]) == before
    # The recorded definition is still welcome.
    assert Engine(store=store, clock=clock, entry_points=False,
                  plugins=[]).register_workflow(TICKET) is None


# -- the scenario --------------------------------------------------------------------------


def test_migrating_300_cases_from_grid_case_1_to_2(store: Store, clock: FixedClock) -> None:
    engine = v2_engine(store, clock)
    cases = fill(engine, 300)
    assert Counter(cases.values()) == dict.fromkeys(STATES_V1, 50)
    clock.advance(timedelta(hours=12))
    before = snapshot(engine, cases)

    dry = engine.plan_migration(PLAN)
    assert dry.dry_run and dry.moved == 300 and not dry.refused
    assert dry.by_source() == {s: {("look_back" if s == "revisit" else s): 50}
                               for s in sorted(STATES_V1)}
    assert snapshot(engine, cases) == before  # a dry run stores nothing
    assert "revisit -> look_back" in str(dry)

    report = engine.migrate(PLAN, actor=system)
    assert report.moved == 300 and report.by_source() == dry.by_source()
    assert not report.refused and not report.skipped and report.already == 0
    assert store.counts(("workflow_version",)) == {(3,): 300}
    assert store.counts(("workflow_version", "state"))[(3, "look_back")] == 50

    for cid, state in cases.items():
        case = engine.verify(cid)
        assert case.workflow_version == 3
        assert case.state == ("look_back" if state == "revisit" else state)
        assert engine.replay(cid) == case
        last = engine.history(cid)[-1]
        assert last.trigger == "migrate" and last.source == state and last.dest == case.state
        assert last.payload["source_version"] == 1 and last.payload["target_version"] == 3
        assert last.payload["source_fingerprint"] == GRID_CASE.fingerprint
        assert last.payload["fingerprint"] == GRID_CASE_V3.fingerprint
        assert last.payload["states"]["revisit"] == "look_back"
    assert store.fingerprints() >= {  # type: ignore[attr-defined]
        ("grid_case", 1, GRID_CASE.fingerprint), ("grid_case", 3, GRID_CASE_V3.fingerprint)}

    # Resumable: the same plan again moves nothing more.
    again = engine.migrate(PLAN, actor=system)
    assert again.moved == 0 and again.already == 300

    # The new time limit: a triaged case's clock kept its start (entered 12h ago)
    # and now runs 2 days.
    triaged = next(c for c, s in cases.items() if s == "triaged")
    entered = next(e.at for e in reversed(engine.history(triaged)) if e.trigger == "triage")
    assert engine.get(triaged).deadline_at == entered + timedelta(days=2)

    # The moved cases run on under the new rules: close now needs acceptance.
    handling = next(c for c, s in cases.items() if s == "joint_action")
    for d in ("社区管理办", "清运单位"):
        engine.fire(handling, "report_done", actor=department,
                    payload={"department": d, "result": "已处置"})
    case = engine.fire(handling, "close", actor=secretary)
    assert case.state == "acceptance"
    with pytest.raises(gridflow.MissingPayload):
        engine.fire(handling, "accept", actor=secretary)
    case = engine.fire(handling, "accept", actor=secretary, payload={"inspection": "已验收"})
    assert case.state == "closed" and engine.verify(handling) == case
    looking = next(c for c, s in cases.items() if s == "revisit")
    case = engine.fire(looking, "confirm", actor=volunteer, payload={"observation": "未反弹"})
    assert case.state == "archived"
    # A new case opens on the latest version; a v1 case can no longer start_revisit
    # into a state that does not exist: it reaches look_back.
    closed = next(c for c, s in cases.items() if s == "closed")
    assert engine.fire(closed, "start_revisit", actor=volunteer).state == "look_back"


# -- refusals, each with nothing stored changed ------------------------------------------


def test_plans_that_are_refused_change_nothing(store: Store, clock: FixedClock) -> None:
    engine = v2_engine(store, clock)
    cases = fill(engine, 12)
    before = snapshot(engine, cases)
    refused = {
        "unmapped": MigrationPlan("grid_case", 1, 3),
        "missing target state": MigrationPlan("grid_case", 1, 3, states={
            "revisit": "look_back", "triaged": "sorted"}),
        "unknown source state": MigrationPlan("grid_case", 1, 3, states={
            "revisit": "look_back", "nope": "reported"}),
        "same version": MigrationPlan("grid_case", 1, 1),
        "unknown version": MigrationPlan("grid_case", 1, 9),
    }
    messages = {}
    for what, plan in refused.items():
        for run in (lambda p=plan: engine.plan_migration(p),
                    lambda p=plan: engine.migrate(p, actor=system)):
            with pytest.raises(MigrationError) as err:
                run()
            messages[what] = str(err.value)
        assert snapshot(engine, cases) == before, what
    assert "'revisit'" in messages["unmapped"] and "not mapped" in messages["unmapped"]
    assert "'sorted'" in messages["missing target state"]
    assert "look_back" in messages["missing target state"]  # the states it could be
    engine.retire("grid_case", 3)
    with pytest.raises(MigrationError, match="retired"):
        engine.migrate(PLAN, actor=system)
    assert snapshot(engine, cases) == before


# -- retiring --------------------------------------------------------------------------------


def test_a_retired_version_opens_no_case(store: Store, clock: FixedClock) -> None:
    engine = v2_engine(store, clock)
    old = walk(engine, "triaged")
    engine.retire("grid_case", 1)
    with pytest.raises(gridflow.UnknownWorkflow, match="grid_case@3") as err:
        walk(engine, "reported")
    assert err.value.retired and "retired" in str(err.value)
    assert engine.open("grid_case", actor=secretary, grid=GRID,
                       data={"title": "x", "source": "visit"}).workflow_version == 3
    # Running cases go on on the retired version.
    assert engine.fire(old.id, "escalate", actor=secretary,
                       payload={"reason": "x"}).state == "escalated"
    # The mark is kept in the store: another engine on it sees it.
    other = v2_engine(store, clock)
    assert other.retired_versions() == {("grid_case", 1)}
    other.retire("grid_case", 1, retired=False)
    assert walk(other, "reported").workflow_version == 1
    assert store.counts(("workflow_version",)) == {(1,): 2, (3,): 1}


# -- live traffic, data effects ----------------------------------------------------------


def test_a_case_fired_on_during_migration_is_retried_then_skipped(
        store: Store, clock: FixedClock) -> None:
    engine = v2_engine(store, clock)
    cases = fill(engine, 6)
    noted: Counter[str] = Counter()

    def busy(case: gridflow.Case, target: str) -> dict[str, Any]:
        # A person notes the case between the migration's read and its commit.
        if noted[case.id] < 1:
            noted[case.id] += 1
            engine.fire(case.id, "note", actor=secretary, payload={"text": "到场"})
        return {"rules": "v2"}

    plan = attrs.evolve(PLAN, effects={"busy": busy}, unset=["nothing"])
    report = engine.migrate(plan, actor=system)
    assert report.moved == 6 and report.conflicts == 6 and not report.skipped
    for cid in cases:
        case = engine.verify(cid)
        assert case.workflow_version == 3 and case.data["rules"] == "v2"
        triggers = [e.trigger for e in engine.history(cid)]
        assert triggers[-2:] == ["note", "migrate"] and triggers.count("migrate") == 1
        assert engine.history(cid)[-1].payload["data"] == {"set": ["rules"], "unset": []}

    more = fill(engine, 3, prefix="d")

    def always(case: gridflow.Case, target: str) -> None:
        engine.fire(case.id, "note", actor=secretary, payload={"text": "又到场"})

    report = engine.migrate(attrs.evolve(PLAN, effects={"always": always}), actor=system,
                            cases=list(more), retries=1)
    assert report.moved == 0 and sorted(report.skipped) == sorted(more)
    assert report.conflicts == 6
    for cid in more:
        assert engine.verify(cid).workflow_version == 1  # never half-moved


def test_cases_that_cannot_move_are_reported_with_the_reason(
        store: Store, clock: FixedClock) -> None:
    engine = v2_engine(store, clock)
    cases = fill(engine, 6)
    bad = sorted(cases)[0]

    def picky(case: gridflow.Case, target: str) -> dict[str, Any]:
        if case.id == bad:
            raise ValueError("no ward for this address")
        return {}

    plan = attrs.evolve(PLAN, effects={"picky": picky})
    dry = engine.plan_migration(plan)
    assert dry.moved == 5 and [(r.case_id, r.state) for r in dry.refused] == [
        (bad, cases[bad])]
    assert "no ward" in dry.refused[0].reason and "picky" in dry.refused[0].reason
    report = engine.migrate(plan, actor=system, query={"grid": GRID})
    assert report.moved == 5 and len(report.refused) == 1
    assert engine.get(bad).workflow_version == 1


def test_migrating_only_some_cases_and_only_the_actors_grids(
        store: Store, clock: FixedClock) -> None:
    engine = v2_engine(store, clock)
    cases = fill(engine, 6)
    first = sorted(cases)[:2]
    report = engine.migrate(PLAN, actor=system, cases=first)
    assert report.moved == 2
    outsider = Actor("street-2", ["street"], ["另一个网格"])
    assert engine.migrate(PLAN, actor=outsider).moved == 0
    assert engine.migrate(PLAN, actor=Actor("s", ["street"], [GRID])).moved == 4


def test_figures_count_every_version_and_group_by_version(store: Store,
                                                          clock: FixedClock) -> None:
    from datetime import UTC, datetime

    import gridflow.metrics as metrics

    engine = v2_engine(store, clock)
    cases = fill(engine, 12)
    engine.migrate(PLAN, actor=system, cases=sorted(cases)[:6])
    for _ in range(3):
        engine.open("grid_case", actor=secretary, grid=GRID,
                    data={"title": "新", "source": "visit"})
    since, until = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
    total = metrics.compute(store, since=since, until=until, by=None)
    assert total.rows[0].received == 15
    report = metrics.compute(store, since=since, until=until, by="version")
    assert {r.group: r.received for r in report.rows} == {"grid_case@1": 6,
                                                          "grid_case@3": 9}
    assert store.counts(("workflow", "workflow_version")) == {("grid_case", 1): 6,
                                                              ("grid_case", 3): 9}


def test_cases_named_by_id_that_cannot_move_say_why(store: Store, clock: FixedClock) -> None:
    engine = v2_engine(store, clock)
    cases = sorted(fill(engine, 3))
    engine.migrate(PLAN, actor=system, cases=cases[:1])
    report = engine.plan_migration(PLAN, cases=[*cases, "nope"],
                                   actor=Actor("s", ["street"], ["另一个网格"]))
    assert [(r.case_id, r.reason) for r in report.refused] == [
        (cid, "no grid_case case has this id") for cid in [*cases, "nope"]]
    assert report.already == 0  # the outsider learns nothing about the migrated one
    report = engine.plan_migration(PLAN, cases=cases)
    assert report.already == 1 and report.moved == 2


def test_a_plan_between_two_specs_and_after_hooks_see_the_migrate_event(
        clock: FixedClock) -> None:
    plan = MigrationPlan.between(GRID_CASE, GRID_CASE_V3, states={"revisit": "look_back"})
    assert plan.key == "grid_case@1 -> @3" and plan.to_dict()["states"] == {
        "revisit": "look_back"}
    assert MigrationPlan.from_dict(plan.to_dict()) == plan
    with pytest.raises(gridflow.InvalidArgument):
        MigrationPlan.between(GRID_CASE, gridflow.workflows.MEDIATION)
    seen = []

    class Watcher:
        @gridflow.hookimpl
        def gridflow_after_fire(self, case: gridflow.Case, event: gridflow.Event) -> None:
            seen.append((event.trigger, case.workflow_version))

    engine = Engine(clock=clock, entry_points=False, plugins=[V3Plugin(), Watcher()])
    walk(engine, "triaged")
    seen.clear()
    assert engine.migrate(plan, actor=system).moved == 1
    assert seen == [("migrate", 3)]


def test_verify_refuses_a_forged_migrate_event(clock: FixedClock) -> None:
    from gridflow import core

    engine = v2_engine(MemoryStore(), clock)
    case = walk(engine, "revisit")
    events = engine.history(case.id)
    specs = [GRID_CASE, GRID_CASE_V3]

    def moved(**kw: Any) -> tuple[gridflow.Case, list[gridflow.Event]]:
        args: dict[str, Any] = dict(dest="look_back", target_version=3,
                                    source_fingerprint=GRID_CASE.fingerprint,
                                    fingerprint=GRID_CASE_V3.fingerprint,
                                    states={"revisit": "look_back"}, data=case.data,
                                    deadline_at=case.deadline_at)
        args.update(kw)
        event = core.migrate_event(case, system, clock.now(), **args)
        return gridflow.fold.evolve(case, event), [*events, event]

    row, good = moved()
    assert audit(row, good, specs) == row
    for kw, field in (({"dest": "revisit"}, "dest"),
                      ({"fingerprint": "0" * 64}, "fingerprint"),
                      ({"source_fingerprint": "1" * 64}, "fingerprint")):
        row, bad = moved(**kw)
        with pytest.raises(gridflow.IntegrityError) as err:
            audit(row, bad, specs)
        assert err.value.field == field and err.value.seq == len(bad)
    # A row moved without its event is found too.
    with pytest.raises(gridflow.IntegrityError, match="workflow_version"):
        audit(attrs.evolve(case, workflow_version=3), events, specs)


def test_bad_arguments_are_refused(clock: FixedClock) -> None:
    engine = v2_engine(MemoryStore(), clock)
    for kwargs in ({"query": {"colour": "red"}}, {"query": {"limit": 3}},
                   {"query": {"workflow": "mediation"}}, {"cases": "c-1"},
                   {"cases": ["c-1"], "query": {}}, {"retries": -1}):
        with pytest.raises(gridflow.InvalidArgument):
            engine.migrate(PLAN, actor=system, **kwargs)
    with pytest.raises(gridflow.InvalidArgument):
        engine.migrate("grid_case@1 -> @2", actor=system)  # type: ignore[arg-type]
    with pytest.raises(gridflow.InvalidArgument):
        engine.migrate(PLAN, actor="system")  # type: ignore[arg-type]
    for bad in ([], {"workflow": "grid_case", "source_version": "1", "target_version": 2},
                {"workflow": "grid_case", "source_version": 1, "target_version": 2,
                 "states": {"a": 1}},
                {"workflow": "grid_case", "source_version": 1, "target_version": 2,
                 "effects": ["x"]}):
        with pytest.raises(gridflow.InvalidArgument):
            MigrationPlan.from_dict(bad)  # type: ignore[arg-type]
