"""Plugins that change the mediation workflow without touching gridflow's code:
a replacement tier policy, a configured `TierPolicy`, and a tier-1 variant with
building-level mediation (楼组调解) before grid mediation, as version 2 of the
workflow.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest

import gridflow
from gridflow import (
    Actor,
    Case,
    Engine,
    Event,
    FixedClock,
    GuardRejected,
    InvalidTransition,
    MemoryStore,
    StateSpec,
    TransitionSpec,
    WorkflowSpec,
)
from gridflow.plugins import Guard
from gridflow.workflows.mediation import (
    MEDIATION,
    TierPolicy,
    entry_tier_guard,
)

GRID = "华阳-第一综合网格"
T0 = datetime(2026, 5, 4, 1, 0, tzinfo=UTC)
mediator = Actor("调解员-孙", ["mediator"], [GRID])
judicial = Actor("司法所-周", ["judicial_office"], grids=gridflow.ALL_GRIDS)
building_lead = Actor("楼组长-何", ["building_lead"], [GRID])

NEIGHBOURS = [{"name": "302室 张某", "side": "applicant"},
              {"name": "402室 刘某", "side": "respondent"}]


def consent(case: Case) -> dict[str, bool]:
    return {p["name"]: True for p in case.data["parties"]}


def snapshot(engine: Engine) -> dict[str, tuple[Case, tuple[Event, ...]]]:
    return {c.id: (c, tuple(engine.store.events(c.id)))
            for c in engine.store.query(limit=10_000).items}


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


def open_case(engine: Engine, **extra: Any) -> Case:
    return engine.open("mediation", actor=mediator, grid=GRID, data={
        "summary": "楼上漏水", "source": "screening", "parties": NEIGHBOURS, **extra})


# -- replacing the tier policy ----------------------------------------------------------------


class EverythingInTheGridFirst:
    """A street that wants every dispute tried inside the grid first, whatever the claim."""

    @gridflow.hookimpl
    def gridflow_mediation_tier(self, case: Case, payload: Mapping[str, Any]) -> str:
        return "grid_mediation"


class PoliceReferralsToThreeOffices:
    """Changes one rule and leaves every other case to the next policy (returns None)."""

    @gridflow.hookimpl
    def gridflow_mediation_tier(self, case: Case, payload: Mapping[str, Any]) -> str | None:
        return "three_office" if case.data["source"] == "police_referral" else None


def test_a_plugin_replaces_the_tier_policy(clock: FixedClock) -> None:
    engine = Engine(clock=clock, entry_points=False, plugins=[EverythingInTheGridFirst()])
    case = open_case(engine, injury=True, claim_amount=80_000)
    case = engine.fire(case.id, "accept", actor=mediator, payload={"consent": consent(case)})
    assert case.state == "grid_mediation"
    # Even an explicit tier: the replacement decides (the default honours it, this one not).
    case = open_case(engine)
    case = engine.fire(case.id, "accept", actor=mediator,
                       payload={"consent": consent(case), "tier": "multi_party"})
    assert case.state == "grid_mediation"


def test_a_plugin_that_answers_none_leaves_the_default(clock: FixedClock) -> None:
    engine = Engine(clock=clock, entry_points=False, plugins=[PoliceReferralsToThreeOffices()])
    referred = engine.open("mediation", actor=mediator, grid=GRID, data={
        "summary": "口角", "source": "police_referral", "parties": NEIGHBOURS})
    referred = engine.fire(referred.id, "accept", actor=mediator,
                           payload={"consent": consent(referred)})
    assert referred.state == "three_office"
    other = open_case(engine)
    other = engine.fire(other.id, "accept", actor=mediator, payload={"consent": consent(other)})
    assert other.state == "grid_mediation"
    injured = open_case(engine, injury=True)
    injured = engine.fire(injured.id, "accept", actor=mediator,
                          payload={"consent": consent(injured)})
    assert injured.state == "three_office"


@pytest.mark.parametrize(("threshold", "claim", "tier"), [
    (5_000, 4_999, "grid_mediation"),
    (5_000, 5_000, "three_office"),
    (50_000, 20_000, "grid_mediation"),
])
def test_a_configured_tier_policy(clock: FixedClock, threshold: int, claim: int,
                                  tier: str) -> None:
    engine = Engine(clock=clock, entry_points=False,
                    plugins=[TierPolicy(threshold=threshold)])
    case = open_case(engine, claim_amount=claim)
    case = engine.fire(case.id, "accept", actor=mediator, payload={"consent": consent(case)})
    assert case.state == tier


def test_collective_threshold_is_configurable(clock: FixedClock) -> None:
    engine = Engine(clock=clock, entry_points=False, plugins=[TierPolicy(collective_parties=3)])
    case = engine.open("mediation", actor=mediator, grid=GRID, data={
        "summary": "三户共用管道堵塞", "source": "screening",
        "parties": [*NEIGHBOURS, {"name": "502室 赵某", "side": "applicant"}]})
    case = engine.fire(case.id, "accept", actor=mediator, payload={"consent": consent(case)})
    assert case.state == "multi_party"


class Broken:
    @gridflow.hookimpl
    def gridflow_mediation_tier(self, case: Case, payload: Mapping[str, Any]) -> str:
        raise RuntimeError("policy service down")


class Nonsense:
    @gridflow.hookimpl
    def gridflow_mediation_tier(self, case: Case, payload: Mapping[str, Any]) -> str:
        return "street"


@pytest.mark.parametrize(("plugin", "needle"), [
    (Broken(), "policy service down"),
    (Nonsense(), "the tier policy chose 'street'"),
])
def test_a_failing_tier_policy_refuses_and_stores_nothing(
    clock: FixedClock, plugin: object, needle: str
) -> None:
    engine = Engine(clock=clock, entry_points=False, plugins=[plugin])
    case = open_case(engine)
    before = snapshot(engine)
    with pytest.raises(GuardRejected) as info:
        engine.fire(case.id, "accept", actor=mediator, payload={"consent": consent(case)})
    assert needle in str(info.value)
    assert snapshot(engine) == before


# -- a tier-1 variant: building-level mediation (楼组调解) before the grid --------------------


def _with_sources(tr: TransitionSpec, extra: str) -> TransitionSpec:
    assert isinstance(tr.source, tuple)
    return attrs.evolve(tr, source=(extra, *tr.source))


def building_variant() -> WorkflowSpec:
    """Version 2 of ``mediation``: building-level mediation (楼组调解) by the
    building's lead before the grid mediates; ``escalate`` goes from the building to
    the grid. Built from the built-in spec's data, nothing of gridflow changed."""
    spread = {"agree", "refer", "withdraw"}
    transitions = [
        _with_sources(tr, "building_mediation") if tr.trigger in spread else tr
        for tr in MEDIATION.transitions
    ]
    transitions.insert(0, TransitionSpec(
        "accept", "intake", "building_mediation", label_zh="受理调解",
        label_en="Accept for mediation", roles=["mediator", "coordinator", "judicial_office"],
        requires=["consent"], choices={"tier": ("building_mediation", "grid_mediation",
                                                "three_office", "multi_party")},
        guards=["mediation.all_consent", "building.enters_building_mediation"],
        effects=["mediation.accepted", "mediation.enter_tier"]))
    transitions.append(TransitionSpec(
        "escalate", "building_mediation", "grid_mediation", label_zh="升级调解",
        label_en="Escalate one tier", roles=["mediator", "building_lead", "system"],
        requires=["reason"], effects=["mediation.enter_tier", "mediation.escalated"]))
    states = list(MEDIATION.states)
    states.insert(1, StateSpec("building_mediation", "楼组调解", "Building-level mediation (1)",
                               deadline=timedelta(days=5), on_breach="escalate",
                               tags=("open", "accepted", "handling", "tier")))
    return attrs.evolve(MEDIATION, version=2, states=tuple(states),
                        transitions=tuple(transitions))


class BuildingMediation:
    """The plugin: the v2 workflow, its guard, its role, and a tier rule that sends
    disputes inside one building (same ``building``) to the building's lead first."""

    spec = building_variant()

    @gridflow.hookimpl
    def gridflow_workflows(self) -> list[WorkflowSpec]:
        return [self.spec]

    @gridflow.hookimpl
    def gridflow_guards(self) -> Mapping[str, Guard]:
        return {"building.enters_building_mediation": entry_tier_guard("building_mediation")}

    @gridflow.hookimpl
    def gridflow_roles(self) -> Mapping[str, tuple[str, str]]:
        return {"building_lead": ("楼组长", "Building lead")}

    @gridflow.hookimpl
    def gridflow_mediation_tier(self, case: Case, payload: Mapping[str, Any]) -> str | None:
        if case.workflow_version < 2 or payload.get("tier"):
            return None
        if case.data.get("building") and not (
            case.data.get("injury") or case.data.get("violence_risk")
            or case.data.get("claim_amount", 0) >= 1_000
        ):
            return "building_mediation"
        return None  # the default policy decides


@pytest.fixture
def variant(clock: FixedClock) -> Engine:
    return Engine(store=MemoryStore(), clock=clock, entry_points=False,
                  plugins=[BuildingMediation()])


def test_variant_is_the_latest_version_and_v1_still_runs(variant: Engine) -> None:
    assert variant.workflow("mediation").version == 2
    assert variant.workflow("mediation", 1) == MEDIATION
    old = variant.open(
        "mediation", actor=mediator, grid=GRID, version=1,
        data={"summary": "s", "source": "screening", "parties": NEIGHBOURS, "building": "3号楼"})
    old = variant.fire(old.id, "accept", actor=mediator, payload={"consent": consent(old)})
    # A v1 case cannot enter the v2 state: the plugin's rule only speaks for v2.
    assert (old.workflow_version, old.state) == (1, "grid_mediation")
    variant.verify(old.id)


def test_building_level_mediation_resolves_inside_the_building(
    variant: Engine, clock: FixedClock
) -> None:
    case = open_case(variant, building="3号楼")
    assert case.workflow_version == 2
    case = variant.fire(case.id, "accept", actor=mediator, payload={"consent": consent(case)})
    assert case.state == "building_mediation"
    assert case.deadline_at == clock.now() + timedelta(days=5)
    assert case.data["tier_path"] == ["building_mediation"]
    case = variant.fire(case.id, "note", actor=building_lead, payload={"text": "楼组长上门协调"})
    case = variant.fire(case.id, "agree", actor=mediator, payload={
        "terms": "302室负责维修防水层", "signed_by": [p["name"] for p in NEIGHBOURS],
        "performance_due": (clock.now() + timedelta(days=3)).isoformat()})
    clock.advance(timedelta(days=4))
    assert [e.trigger for e in variant.tick()] == ["start_follow_up"]
    case = variant.fire(case.id, "resolve", actor=mediator, payload={"outcome": "已修好"})
    assert case.state == "resolved"
    assert case.data["highest_tier"] == "building_mediation"
    assert variant.verify(case.id) == variant.store.get(case.id)


def test_building_level_mediation_escalates_to_the_grid(
    variant: Engine, clock: FixedClock
) -> None:
    case = open_case(variant, building="3号楼")
    case = variant.fire(case.id, "accept", actor=mediator, payload={"consent": consent(case)})
    clock.advance(timedelta(days=5))
    assert [(e.trigger, e.dest) for e in variant.tick()] == [("escalate", "grid_mediation")]
    case = variant.get(case.id)
    assert case.data["tier_path"] == ["building_mediation", "grid_mediation"]
    assert case.data["highest_tier"] == "grid_mediation"
    clock.advance(timedelta(days=10))
    assert [(e.trigger, e.dest) for e in variant.tick()] == [("escalate", "three_office")]
    # From the grid on, the variant is the built-in workflow.
    with pytest.raises(InvalidTransition):
        variant.fire(case.id, "start_follow_up", actor=mediator)
    assert variant.verify(case.id).state == "three_office"


def test_variant_defers_to_the_default_policy(variant: Engine) -> None:
    no_building = open_case(variant)
    no_building = variant.fire(no_building.id, "accept", actor=mediator,
                               payload={"consent": consent(no_building)})
    assert no_building.state == "grid_mediation"
    injured = open_case(variant, building="3号楼", injury=True)
    injured = variant.fire(injured.id, "accept", actor=judicial,
                           payload={"consent": consent(injured)})
    assert injured.state == "three_office"
    explicit = open_case(variant, building="3号楼")
    explicit = variant.fire(explicit.id, "accept", actor=mediator,
                            payload={"consent": consent(explicit), "tier": "grid_mediation"})
    assert explicit.state == "grid_mediation"


def test_variant_accepts_an_explicit_building_tier(variant: Engine) -> None:
    # The v2 spec lists building_mediation among the allowed `tier` values of its own
    # accept transition; the built-in three list theirs: either is accepted.
    case = open_case(variant, claim_amount=5_000)
    case = variant.fire(case.id, "accept", actor=mediator,
                        payload={"consent": consent(case), "tier": "building_mediation"})
    assert case.state == "building_mediation"
