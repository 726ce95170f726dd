"""gridflow.testing: clocks, stores, the pytest plugin, strategies and the transition walker."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gridflow
from gridflow import Actor, Case, WorkflowSpec
from gridflow.testing import (
    START,
    CoverageError,
    Transition,
    UnknownTrigger,
    actors,
    fixed_clock,
    make_engine,
    make_store,
    payloads,
    transitions_of,
    walk_all_transitions,
)
from gridflow.workflows import GRID_CASE

ROOT = Path(__file__).parents[1]
GRID = "第一综合网格"
FAST = settings(max_examples=25, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def _first_pending(case: Case) -> Mapping[str, Any]:
    left = [d for d in case.data["departments"] if d not in case.data.get("done", {})]
    return {"department": left[0], "result": "done"}


def grid_case_payloads(engine: gridflow.Engine) -> dict[str, Any]:
    """What the guards of grid_case need that a walker cannot invent."""
    # In the walk's grid: a duplicate must be a case the coordinator may see.
    other = engine.open("grid_case", version=1, actor=Actor("r", ["resident"], ["walk-grid"]),
                        grid="walk-grid", data={"title": "已有案件", "source": "resident"})
    return {
        "dispatch": {"departments": ["城运中心", "清运单位"], "plan": "联合整治工作方案"},
        "reassign": {"departments": ["城运中心", "综合执法队"]},
        "report_done": _first_pending,
        "mark_duplicate": {"duplicate_of": other.id},
        "request_extension": {"until": "2099-01-01T00:00:00+08:00"},
    }


PARTIES = [{"name": "谢女士", "side": "applicant", "kind": "person"},
           {"name": "某火锅店", "side": "respondent", "kind": "organisation"}]
MEDIATION_PAYLOADS: dict[str, Any] = {
    "open": {"parties": PARTIES},
    "accept": {"consent": {"谢女士": True, "某火锅店": True}},
    "agree": {"signed_by": ["谢女士", "某火锅店"], "performance_due": "2099-01-01T00:00:00+08:00"},
    "request_extension": {"until": "2099-01-01T00:00:00+08:00"},
}


# -- clock, store, engine ----------------------------------------------------------------


def test_fixed_clock_and_make_engine() -> None:
    assert fixed_clock().now() == START
    assert fixed_clock("2026-03-02T09:00:00+08:00").now() == datetime(2026, 3, 2, 1, tzinfo=UTC)
    engine = make_engine()
    assert isinstance(engine.store, gridflow.MemoryStore)
    assert engine.clock.now() == START
    assert not engine.plugins.has_plugin("neighbourhood")  # no entry points by default


def test_make_store_kinds(tmp_path: Path) -> None:
    assert isinstance(make_store(), gridflow.MemoryStore)
    sqlite = make_store("sqlite", path=tmp_path)
    try:
        assert (tmp_path / "gridflow.db").exists()
        assert sqlite.query().items == []  # schema created
    finally:
        sqlite.close()  # type: ignore[attr-defined]
    url_store = make_store(f"sqlite:///{tmp_path / 'other.db'}")
    url_store.close()  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="needs path="):
        make_store("sqlite")
    with pytest.raises(ValueError, match="unknown store kind 'mongo'"):
        make_store("mongo")


def test_import_needs_neither_pytest_nor_hypothesis() -> None:
    code = ("import sys, gridflow.testing; bad = [m for m in ('pytest', 'hypothesis', "
            "'sqlalchemy') if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_pytest_plugin_fixtures(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["gridflow.testing"]\n',
                                          encoding="utf-8")
    (tmp_path / "test_user.py").write_text(textwrap.dedent("""
        import pytest
        import gridflow

        def test_engine(gridflow_engine, gridflow_clock):
            worker = gridflow.Actor("w", ["grid_worker"], grids=gridflow.ALL_GRIDS)
            case = gridflow_engine.open("grid_case", actor=worker,
                                        data={"title": "t", "source": "visit"})
            assert case.opened_at == gridflow_clock.now()

        @pytest.mark.parametrize("gridflow_store", ["memory", "sqlite"], indirect=True)
        def test_stores(gridflow_store, gridflow_engine):
            assert gridflow_engine.store is gridflow_store
            assert gridflow_store.query().items == []
    """), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(tmp_path)], capture_output=True, text=True, timeout=300,
                          check=False, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout


@pytest.mark.postgres
def test_store_fixture_isolates_postgres_tests(pg_url: str) -> None:
    import sqlalchemy as sa

    from gridflow.testing import _test_store

    fixture = _test_store(pg_url, None)
    store = next(fixture)
    schema = store.schema  # type: ignore[attr-defined]
    assert schema.startswith("gridflow_test_")
    spec = WorkflowSpec.load(ROOT / "examples" / "custom_workflow" / "legal_consultation.yaml")
    assert walk_all_transitions(make_engine(store), spec).complete
    with pytest.raises(StopIteration):
        next(fixture)  # teardown: the schema is dropped
    probe = sa.create_engine(pg_url, poolclass=sa.pool.NullPool)
    try:
        with probe.connect() as conn:
            assert not sa.inspect(conn).has_schema(schema)
    finally:
        probe.dispose()


# -- the walker -------------------------------------------------------------------------


def test_walk_covers_every_transition_of_grid_case() -> None:
    engine = make_engine()
    report = walk_all_transitions(engine, GRID_CASE, payloads=grid_case_payloads(engine))
    assert report.complete and not report.missed
    assert report.covered == frozenset(transitions_of(GRID_CASE))
    assert set(report.transitions) == set(transitions_of(GRID_CASE))
    close = Transition("close", "joint_action", "closed")
    assert report.witness[close][-2:] == ("report_done", "report_done", "close")[-2:]
    assert Transition("note", "revisit", None) in report.covered
    assert report.summary().startswith(
        f"grid_case@1: {len(report.transitions)}/{len(report.transitions)} transitions fired")


def test_walk_covers_every_transition_of_mediation() -> None:
    engine = make_engine()
    try:
        spec = engine.workflow("mediation")
    except gridflow.UnknownWorkflow:
        pytest.skip("this gridflow has no mediation workflow")
    report = walk_all_transitions(engine, spec, payloads=MEDIATION_PAYLOADS)
    assert report.complete
    # Every tier was entered through `accept`: the choices of `tier` were each tried.
    for tier in ("grid_mediation", "three_office", "multi_party"):
        assert Transition("accept", "intake", tier) in report.covered


def test_walk_a_yaml_workflow_with_no_help() -> None:
    spec = WorkflowSpec.load(ROOT / "examples" / "custom_workflow" / "legal_consultation.yaml")
    engine = make_engine()
    report = walk_all_transitions(engine, spec)
    assert report.complete
    assert engine.workflow("legal_consultation") == spec  # registered by the walk
    # Each walked case verifies (hash chain + replay), and the walk says how much it did.
    assert report.cases >= 1 and report.steps >= len(report.transitions)


def test_walk_reports_what_it_could_not_fire() -> None:
    engine = make_engine()
    payloads_ = grid_case_payloads(engine)
    del payloads_["dispatch"]
    report = walk_all_transitions(engine, GRID_CASE, payloads=payloads_, strict=False)
    assert not report.complete
    dispatch = Transition("dispatch", "triaged", "joint_action")
    assert "departments_listed" in report.missed[dispatch]
    assert "'departments' must be a non-empty list" in report.missed[dispatch]
    assert "was never reached" in report.missed[Transition("close", "joint_action", "closed")]
    with pytest.raises(CoverageError, match="not fired:") as info:
        report.check()
    assert isinstance(info.value, AssertionError)
    assert isinstance(info.value, gridflow.GridflowError)
    assert info.value.report is report
    with pytest.raises(CoverageError):
        walk_all_transitions(make_engine(), GRID_CASE)


def test_walk_says_when_guards_always_choose_another_destination() -> None:
    engine = make_engine()
    if "mediation" not in {s.name for s in engine.workflows}:
        pytest.skip("this gridflow has no mediation workflow")
    # A payload function pinning the tier: the other tiers are never entered.
    pinned = {**MEDIATION_PAYLOADS,
              "accept": lambda case: {"consent": {"谢女士": True, "某火锅店": True},
                                      "tier": "multi_party"}}
    report = walk_all_transitions(engine, "mediation", payloads=pinned, strict=False)
    why = report.missed[Transition("accept", "intake", "grid_mediation")]
    assert "every attempt went to multi_party" in why


def test_walk_refuses_unknown_triggers_in_its_arguments() -> None:
    with pytest.raises(UnknownTrigger, match="no trigger 'triag'"):
        walk_all_transitions(make_engine(), "grid_case", payloads={"triag": {}})


def test_walk_with_a_payload_function_that_raises_reports_it() -> None:
    def broken(case: Case) -> Mapping[str, Any]:
        raise KeyError("departments")

    engine = make_engine()
    payloads_ = {**grid_case_payloads(engine), "report_done": broken}
    report = walk_all_transitions(engine, "grid_case", payloads=payloads_, strict=False)
    missed = report.missed[Transition("report_done", "joint_action", None)]
    assert "the payload function raised KeyError" in missed


def test_walk_on_sqlite(tmp_path: Path) -> None:
    # NORMAL: a power cut is not what this test is about, and FULL fsyncs every step.
    store = make_store("sqlite", path=tmp_path, synchronous="NORMAL")
    try:
        engine = make_engine(store)
        report = walk_all_transitions(engine, GRID_CASE, payloads=grid_case_payloads(engine))
        assert report.complete
    finally:
        store.close()  # type: ignore[attr-defined]


# -- strategies -------------------------------------------------------------------------


@FAST
@given(data=st.data())
def test_actors_may_fire_the_trigger(data: st.DataObject) -> None:
    for trigger in ("open", *GRID_CASE.triggers):
        actor = data.draw(actors(GRID_CASE, trigger, grid=GRID))
        allowed = GRID_CASE.open_roles if trigger == "open" else {
            r for t in GRID_CASE.transitions if t.trigger == trigger for r in t.roles}
        assert not allowed or set(allowed) & actor.roles, (trigger, actor)
        assert actor.can_touch(GRID)
        assert actor.id


@FAST
@given(actor=actors(GRID_CASE, "open", grid=GRID), data=payloads(GRID_CASE, "open"),
       secretary=actors(GRID_CASE, "triage", state="reported", grid=GRID),
       triage=payloads(GRID_CASE, "triage", state="reported"))
def test_generated_actors_and_payloads_pass_the_engine(
    actor: Actor, data: dict[str, Any], secretary: Actor, triage: dict[str, Any]
) -> None:
    engine = make_engine()
    case = engine.open("grid_case", version=1, actor=actor, data=data, grid=GRID)
    assert case.state == "reported"
    case = engine.fire(case.id, "triage", actor=secretary, payload=triage)
    assert case.state == "triaged" and case.data["priority"] in ("urgent", "normal", "low")
    engine.verify(case.id)


@FAST
@given(data=payloads(GRID_CASE, "dispatch", fields={
    "departments": st.lists(st.sampled_from(["城运中心", "清运单位", "社区管理办"]),
                            min_size=1, unique=True)}))
def test_payload_fields_satisfy_guards(data: dict[str, Any]) -> None:
    assert set(data) >= {"departments", "plan"}
    engine = make_engine()
    case = engine.open("grid_case", version=1,
                       actor=Actor("r", ["resident"], grids=gridflow.ALL_GRIDS),
                       data={"title": "t", "source": "visit"})
    engine.fire(case.id, "triage", actor=Actor("s", ["coordinator"], grids=gridflow.ALL_GRIDS),
                payload={"category": "c", "priority": "low"})
    assert engine.fire(case.id, "dispatch", actor=Actor("s", ["coordinator"],
                                                        grids=gridflow.ALL_GRIDS),
                       payload=data).state == "joint_action"


@FAST
@given(data=st.data())
def test_strategies_for_any_spec(data: st.DataObject) -> None:
    spec = WorkflowSpec.load(ROOT / "examples" / "custom_workflow" / "legal_consultation.yaml")
    for trigger in ("open", *spec.triggers):
        payload = data.draw(payloads(spec, trigger))
        actor = data.draw(actors(spec, trigger))
        if trigger == "open":
            assert payload["level"] in ("街道", "网格", "居委") and "question" in payload
        if trigger == "close":
            assert payload["satisfied"] in ("满意", "基本满意", "不满意")
        assert actor.grids is gridflow.ALL_GRIDS
    anyone = data.draw(actors(spec))
    assert anyone.roles <= {"resident", "grid_worker", "coordinator", "judicial_office",
                            "lawyer"}


def test_strategies_refuse_unknown_triggers() -> None:
    with pytest.raises(UnknownTrigger, match="its triggers: open, triage"):
        payloads(GRID_CASE, "nope")
    with pytest.raises(UnknownTrigger, match="from state 'reported'"):
        actors(GRID_CASE, "close", state="reported")
