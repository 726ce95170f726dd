"""The 1+3+N mediation workflow (多元调解), played on the source's two stories.

The stories (华阳路街道): a consumer, 谢女士, was scalded at a hot-pot restaurant
because the charcoal burner was not fully guarded (炭炉锅底未做完全防护); the
compensation dispute went straight to the three-office linkage (三所联动) when the
judicial office (司法所) learned of it; the parties were guided to lawful
channels, the restaurant had to fix the hazard (a grid case of its own), and
the dispute was settled. After the case was publicised a second scald victim,
王某某, came to the judicial office on her own and was helped the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

import gridflow
from gridflow import (
    Actor,
    Case,
    CaseNotVisible,
    Engine,
    Event,
    FixedClock,
    GridflowError,
    GuardRejected,
    InvalidPayload,
    InvalidTransition,
    MemoryStore,
    MissingPayload,
    PermissionDenied,
)
from gridflow.model import GENESIS_HASH
from gridflow.workflows.mediation import MEDIATION, TIERS

CST = timezone(timedelta(hours=8))
GRID = "华阳-第二综合网格"
OTHER_GRID = "华阳-第三综合网格"
T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # Monday 09:00 in Shanghai
RESTAURANT = "某火锅店"

judicial = Actor("司法所-周", ["judicial_office"],
                 grids=gridflow.ALL_GRIDS)  # the judicial office serves every grid
lawyer = Actor("律师-吴", ["lawyer"], grids=gridflow.ALL_GRIDS)
police = Actor("派出所-郑", ["police"], grids=gridflow.ALL_GRIDS)
mediator = Actor("调解员-孙", ["mediator"], [GRID])
far_mediator = Actor("调解员-钱", ["mediator"], [OTHER_GRID])
secretary = Actor("书记-李", ["coordinator"], [GRID])
worker = Actor("网格员-王", ["grid_worker"], [GRID])
resident = Actor("居民-陈", ["resident"], [GRID])
departments = {name: Actor(f"部门-{name}", ["department"],
                           grids=gridflow.ALL_GRIDS) for name in ("市场监管所", "综合执法队")}


def parties(victim: str = "谢女士") -> list[dict[str, str]]:
    return [
        {"name": victim, "side": "applicant", "kind": "person"},
        {"name": RESTAURANT, "side": "respondent", "kind": "organisation"},
    ]


def scald_data(victim: str = "谢女士", source: str = "screening", **extra: Any) -> dict[str, Any]:
    return {
        "summary": f"{victim}在火锅店用餐时因炭炉锅底未做完全防护腿部烫伤，与商家就赔偿发生矛盾",
        "parties": parties(victim), "source": source, **extra,
    }


def consent_of(case: Case, value: bool = True) -> dict[str, bool]:
    return {p["name"]: value for p in case.data["parties"]}


def signed(case: Case) -> list[str]:
    return [p["name"] for p in case.data["parties"]]


def cst(*args: int) -> str:
    return datetime(*args, tzinfo=CST).isoformat()  # type: ignore[misc]


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def engine(clock: FixedClock) -> Engine:
    return Engine(store=MemoryStore(), clock=clock, entry_points=False)


def snapshot(engine: Engine) -> dict[str, tuple[Case, tuple[Event, ...]]]:
    """Everything stored: every case and its events."""
    page = engine.store.query(limit=10_000)
    return {c.id: (c, tuple(engine.store.events(c.id))) for c in page.items}


def refused(engine: Engine, error: type[GridflowError], call: Callable[[], object],
            *needles: str) -> GridflowError:
    """Run ``call``, expect ``error`` whose message contains every needle, and
    check that nothing stored changed (case, version, history)."""
    before = snapshot(engine)
    with pytest.raises(error) as info:
        call()
    after = snapshot(engine)
    assert after == before
    for needle in needles:
        assert needle in str(info.value), (needle, str(info.value))
    return info.value


def assert_chain(engine: Engine, case_id: str) -> list[Event]:
    # The stored events: history() returns display copies with personal values
    # shown (or masked) in place of their references, whose hashes differ.
    events = engine.store.events(case_id)
    case = engine.get(case_id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert case.version == len(events)
    prev = GENESIS_HASH
    for e in events:
        assert e.prev_hash == prev and e.hash == e.expected_hash()
        prev = e.hash
    assert case.head == prev
    assert engine.verify(case_id) == engine.store.get(case_id)
    # As the judicial office reads them: the personal values in clear.
    return engine.history(case_id, actor=judicial)


def open_scald(engine: Engine, victim: str = "谢女士", source: str = "screening",
               **extra: Any) -> Case:
    extra.setdefault("injury", True)
    extra.setdefault("claim_amount", 12_000)
    return engine.open("mediation", actor=judicial, grid=GRID,
                       data=scald_data(victim, source, **extra))


def at_three_office(engine: Engine) -> Case:
    case = open_scald(engine)
    return engine.fire(case.id, "accept", actor=judicial, payload={"consent": consent_of(case)})


def at_agreement(engine: Engine, clock: FixedClock, due: str | None = None) -> Case:
    case = at_three_office(engine)
    clock.advance(timedelta(days=2))
    return engine.fire(case.id, "agree", actor=judicial, payload={
        "terms": "商家赔偿医药费等共计6000元", "signed_by": signed(case),
        "performance_due": due or cst(2026, 3, 14, 18)})


def at_follow_up(engine: Engine, clock: FixedClock) -> Case:
    case = at_agreement(engine, clock)
    clock.set(datetime(2026, 3, 15, 9, tzinfo=CST))
    assert [e.trigger for e in engine.tick()] == ["start_follow_up"]
    return engine.get(case.id)


# -- the spec ------------------------------------------------------------------------------


def test_spec_is_registered_and_labelled() -> None:
    assert gridflow.workflows.MEDIATION is MEDIATION
    engine = Engine(entry_points=False)
    assert engine.workflow("mediation") == MEDIATION
    assert set(MEDIATION.state_names) == {
        "intake", "grid_mediation", "three_office", "multi_party", "agreement", "follow_up",
        "resolved", "referred", "withdrawn"}
    assert set(MEDIATION.triggers) == {
        "accept", "decline", "escalate", "agree", "apply_confirmation", "start_follow_up",
        "resolve", "remediate", "refer", "withdraw", "note",
        # Extensions (延期) of the one-month limit, shared with grid_case.
        "request_extension", "approve_extension", "reject_extension"}
    for state in MEDIATION.states:
        assert state.label_zh and state.label_en, state.name
    for tr in MEDIATION.transitions:
        assert tr.label_zh and tr.label_en, tr.trigger
    assert MEDIATION.state("intake").label_zh == "受理"
    assert MEDIATION.state("agreement").label_zh == "达成协议"
    assert MEDIATION.state("follow_up").label_zh == "回访"
    assert {s.name for s in MEDIATION.states if s.terminal} == {"resolved", "referred",
                                                                "withdrawn"}
    assert MEDIATION.labels == {"zh": "多元调解", "en": "1+3+N mediation"}
    assert gridflow.WorkflowSpec.from_dict(MEDIATION.to_dict()) == MEDIATION


def test_default_deadlines() -> None:
    days = {s.name: (s.deadline.days if s.deadline else None, s.on_breach)
            for s in MEDIATION.states}
    assert days["intake"] == (3, None)
    assert days["grid_mediation"] == (10, "escalate")
    assert days["three_office"] == (15, "escalate")
    assert days["multi_party"] == (30, None)
    assert days["agreement"][1] == "start_follow_up"


def test_roles_per_trigger() -> None:
    roles: dict[str, set[str]] = {}
    for tr in MEDIATION.transitions:
        roles.setdefault(tr.trigger, set()).update(tr.roles)
    assert set(MEDIATION.open_roles) == {"mediator", "coordinator", "grid_worker", "police",
                                         "judicial_office"}
    assert roles == {
        "accept": {"mediator", "coordinator", "judicial_office"},
        "decline": {"mediator", "judicial_office"},
        "escalate": {"mediator", "coordinator", "judicial_office", "system"},
        "agree": {"mediator", "judicial_office", "lawyer"},
        "apply_confirmation": {"mediator", "lawyer", "judicial_office"},
        "start_follow_up": {"mediator", "system"},
        "resolve": {"mediator"},
        "remediate": {"mediator", "judicial_office"},
        "refer": {"mediator", "judicial_office", "lawyer"},
        "withdraw": {"mediator"},
        "note": set(),  # any role
        "request_extension": {"mediator"},
        "approve_extension": {"judicial_office", "coordinator"},
        "reject_extension": {"judicial_office", "coordinator"},
    }


# -- story 1: the hot-pot scald ---------------------------------------------------------------


def test_hot_pot_scald_end_to_end(engine: Engine, clock: FixedClock) -> None:
    # 1. The judicial office learns of the dispute and takes it in (受理).
    case = open_scald(engine)
    assert (case.state, case.version, case.grid) == ("intake", 1, GRID)
    assert case.deadline_at == T0 + timedelta(days=3)
    assert case.data["injury"] is True and case.data["claim_amount"] == 12_000
    assert engine.allowed(case.id, judicial) == ["accept", "decline", "note"]
    assert engine.allowed(case.id, mediator) == ["accept", "decline", "note", "withdraw"]
    assert engine.allowed(case.id, lawyer) == ["note"]

    # 2. Both parties consent; injury and a claim send it straight to the three offices.
    t_accept = clock.advance(timedelta(hours=1))
    case = engine.fire(case.id, "accept", actor=judicial,
                       payload={"consent": {"谢女士": True, RESTAURANT: True}})
    assert case.state == "three_office"
    assert case.data["tier"] == "three_office"
    assert case.data["highest_tier"] == "three_office"
    assert case.data["tier_path"] == ["three_office"]
    assert case.data["consent"] == {"谢女士": True, RESTAURANT: True}
    assert case.deadline_at == t_accept + timedelta(days=15)

    # 3. The lawyer's advice, as a note: guided to lawful channels.
    clock.advance(timedelta(days=1))
    advice = "律师意见：经营者未尽安全保障义务，应承担赔偿责任；建议协商确定医疗费、误工费"
    case = engine.fire(case.id, "note", actor=lawyer, payload={"text": advice})
    assert case.state == "three_office" and case.version == 3

    # 4. The restaurant must fix the hazard: a linked grid case of its own.
    hazard = engine.open("grid_case", version=1, actor=secretary, grid=GRID, links=[case.id], data={
        "title": "火锅店炭炉未做完全防护", "source": "other", "address": "华阳路某火锅店"})
    assert hazard.links == (case.id,)
    case = engine.get(case.id)
    assert case.links == (hazard.id,)
    assert case.state == "three_office" and case.version == 4
    assert [c.id for c in engine.linked(case.id)] == [hazard.id]
    assert [c.id for c in engine.linked(hazard.id)] == [case.id]

    clock.advance(timedelta(hours=2))
    engine.fire(hazard.id, "triage", actor=secretary,
                payload={"category": "安全隐患", "priority": "urgent"})
    engine.fire(hazard.id, "dispatch", actor=secretary, payload={
        "departments": list(departments), "plan": "炭炉加装防护罩，执法告知，复查"})
    for name, dept in departments.items():
        clock.advance(timedelta(hours=4))
        engine.fire(hazard.id, "report_done", actor=dept,
                    payload={"department": name, "result": "已整改"})
    hazard = engine.fire(hazard.id, "close", actor=secretary)
    assert hazard.state == "closed"

    # 5. The agreement (达成协议), signed by both parties.
    t_agree = clock.set(datetime(2026, 3, 7, 9, tzinfo=CST))
    terms = "商家一次性赔偿医药费、误工费共计6000元，并公开致歉"
    case = engine.fire(case.id, "agree", actor=judicial, payload={
        "terms": terms, "signed_by": ["谢女士", RESTAURANT],
        "performance_due": "2026-03-14T18:00:00+08:00"})
    assert case.state == "agreement"
    due = datetime(2026, 3, 14, 18, tzinfo=CST)
    assert case.deadline_at == due
    assert case.data["agreement"] == {
        "terms": terms, "signed_by": ["谢女士", RESTAURANT],
        "performance_due": "2026-03-14T10:00:00+00:00", "agreed_at": t_agree.isoformat(),
        "tier": "three_office"}

    # 6. The lawyer applies for judicial confirmation (司法确认) within 30 days.
    clock.advance(timedelta(days=1))
    case = engine.fire(case.id, "apply_confirmation", actor=lawyer,
                       payload={"court": "上海市长宁区人民法院"})
    assert case.state == "agreement"
    assert case.data["confirmation"]["court"] == "上海市长宁区人民法院"
    assert case.deadline_at == due  # an internal step keeps the deadline

    # 7. performance_due passes: the timer starts the follow-up visit (回访).
    clock.set(due - timedelta(minutes=1))
    assert engine.tick() == []
    clock.set(due + timedelta(hours=15))
    ticked = engine.tick()
    assert [(e.case_id, e.trigger, e.dest, e.actor.id) for e in ticked] == [
        (case.id, "start_follow_up", "follow_up", "system")]
    case = engine.get(case.id)
    assert case.state == "follow_up"

    # 8. The agreement was performed: resolved.
    clock.advance(timedelta(hours=2))
    case = engine.fire(case.id, "resolve", actor=mediator,
                       payload={"outcome": "赔偿款已当面付清，双方无异议"})
    assert case.state == "resolved"
    assert case.deadline_at is None
    assert case.data["outcome"] == "赔偿款已当面付清，双方无异议"
    assert case.data["highest_tier"] == "three_office"
    assert engine.allowed(case.id, mediator) == []

    # The whole history, hash-chained, replaying to the stored state.
    events = assert_chain(engine, case.id)
    assert [(e.seq, e.trigger, e.source, e.dest, e.actor.id) for e in events] == [
        (1, "open", None, "intake", judicial.id),
        (2, "accept", "intake", "three_office", judicial.id),
        (3, "note", "three_office", None, lawyer.id),
        (4, "link", "three_office", None, secretary.id),
        (5, "agree", "three_office", "agreement", judicial.id),
        (6, "apply_confirmation", "agreement", None, lawyer.id),
        (7, "start_follow_up", "agreement", "follow_up", "system"),
        (8, "resolve", "follow_up", "resolved", mediator.id),
    ]
    assert events[0].payload["data"]["source"] == "screening"
    assert events[0].payload["links"] == []
    assert events[1].payload == {"consent": {"谢女士": True, RESTAURANT: True}}
    assert events[2].payload == {"text": advice}
    assert events[3].payload == {"case": hazard.id, "via": "open"}
    assert events[4].payload["signed_by"] == ["谢女士", RESTAURANT]
    assert events[6].payload["reason"].startswith("deadline")
    hazard_events = assert_chain(engine, hazard.id)
    assert hazard_events[0].payload["links"] == [case.id]
    assert hazard_events[-1].trigger == "close"


# -- story 2: the second victim walks in --------------------------------------------------------


def test_second_victim_walks_in(engine: Engine, clock: FixedClock) -> None:
    first = at_follow_up(engine, clock)
    first = engine.fire(first.id, "resolve", actor=mediator, payload={"outcome": "已履行"})
    clock.advance(timedelta(days=10))

    # 王某某 comes on her own after reading about the first case; the judicial
    # office opens her case, linked to the first one (same restaurant).
    case = engine.open("mediation", actor=judicial, grid=GRID, links=[first.id],
                       data=scald_data("王某某", "walk_in", injury=True, claim_amount=3_000))
    assert case.data["source"] == "walk_in"
    case = engine.fire(case.id, "accept", actor=judicial, payload={"consent": consent_of(case)})
    assert case.state == "three_office"  # injury alone is enough
    case = engine.fire(case.id, "note", actor=lawyer, payload={"text": "律师释法：参照前案"})
    clock.advance(timedelta(days=3))
    case = engine.fire(case.id, "agree", actor=lawyer, payload={
        "terms": "赔偿2500元", "signed_by": signed(engine.get(case.id, actor=judicial)),
        "performance_due": (clock.now() + timedelta(days=5)).isoformat()})
    clock.advance(timedelta(days=6))
    assert [(e.case_id, e.trigger) for e in engine.tick()] == [(case.id, "start_follow_up")]
    case = engine.fire(case.id, "resolve", actor=mediator, payload={"outcome": "已履行"})
    assert case.state == "resolved"
    assert case.data["highest_tier"] == "three_office"

    # Links both ways; the first case, already resolved, records the link too.
    assert engine.get(case.id).links == (first.id,)
    first = engine.get(first.id)
    assert first.state == "resolved"
    assert case.id in first.links
    link = engine.history(first.id)[-1]
    assert (link.trigger, link.source, link.dest, link.payload) == (
        "link", "resolved", None, {"case": case.id, "via": "open"})
    assert [e.trigger for e in assert_chain(engine, case.id)] == [
        "open", "accept", "note", "agree", "start_follow_up", "resolve"]
    assert_chain(engine, first.id)


# -- a grid case spawns a mediation ---------------------------------------------------------


def test_grid_case_spawns_a_mediation(engine: Engine, clock: FixedClock) -> None:
    visit = engine.open("grid_case", version=1, actor=worker, grid=GRID,
                        data={"title": "楼上漏水致楼下墙面受损", "source": "visit"})
    dispute = engine.open("mediation", actor=worker, grid=GRID, links=[visit.id], data={
        "summary": "漏水赔偿纠纷", "source": "grid_case",
        "parties": [{"name": "张某", "side": "applicant"}, {"name": "刘某", "side": "respondent"}]})
    visit = engine.get(visit.id)
    assert visit.links == (dispute.id,) and dispute.links == (visit.id,)
    assert engine.history(visit.id)[-1].payload == {"case": dispute.id, "via": "open"}
    assert [c.id for c in engine.linked(visit.id)] == [dispute.id]
    assert [c.id for c in engine.linked(dispute.id)] == [visit.id]
    dispute = engine.fire(dispute.id, "accept", actor=mediator,
                          payload={"consent": consent_of(engine.get(dispute.id, actor=judicial))})
    assert dispute.state == "grid_mediation"  # neighbours, no injury: the grid's own tier
    assert dispute.data["highest_tier"] == "grid_mediation"
    assert_chain(engine, visit.id)
    assert_chain(engine, dispute.id)


def test_a_mediation_can_link_later_through_open_of_the_other(engine: Engine) -> None:
    case = at_three_office(engine)
    other = engine.open("mediation", actor=police, grid=GRID, links=[case.id],
                        data=scald_data("另一顾客", "police_referral"))
    assert engine.get(case.id).links == (other.id,)
    assert other.links == (case.id,)


# -- the tiers ------------------------------------------------------------------------------


def two(**kinds: str) -> list[dict[str, str]]:
    return [{"name": "甲", "side": "applicant", **({"kind": kinds["a"]} if "a" in kinds else {})},
            {"name": "乙", "side": "respondent",
             **({"kind": kinds["b"]} if "b" in kinds else {})}]


@pytest.mark.parametrize(("extra", "party_list", "payload", "tier"), [
    ({}, two(), {}, "grid_mediation"),
    ({"injury": True}, two(), {}, "three_office"),
    ({"injury": False, "claim_amount": 9_999.99}, two(), {}, "grid_mediation"),
    ({"claim_amount": 10_000}, two(), {}, "three_office"),
    ({"violence_risk": True}, two(), {}, "three_office"),
    ({}, two(b="organisation"), {}, "multi_party"),
    ({}, [*two(), *({"name": n, "side": "applicant"} for n in "丙丁")], {}, "grid_mediation"),
    ({}, [*two(), *({"name": n, "side": "applicant"} for n in "丙丁戊")], {}, "multi_party"),
    ({"injury": True}, two(b="organisation"), {}, "three_office"),
    ({"injury": True}, two(), {"tier": "grid_mediation"}, "grid_mediation"),
    ({}, two(), {"tier": "multi_party"}, "multi_party"),
])
def test_default_tier_policy(engine: Engine, extra: dict[str, Any],
                             party_list: list[dict[str, str]], payload: dict[str, Any],
                             tier: str) -> None:
    case = engine.open("mediation", actor=mediator, grid=GRID, data={
        "summary": "纠纷", "source": "screening", "parties": party_list, **extra})
    case = engine.fire(case.id, "accept", actor=mediator,
                       payload={"consent": consent_of(case), **payload})
    assert case.state == tier
    assert case.data["tier"] == case.data["highest_tier"] == tier


def test_a_note_can_raise_the_tier_before_accept(engine: Engine) -> None:
    case = engine.open("mediation", actor=mediator, grid=GRID, data={
        "summary": "邻里口角", "source": "screening", "parties": two()})
    case = engine.fire(case.id, "note", actor=police,
                       payload={"text": "双方情绪激动，有动手倾向", "violence_risk": True})
    assert case.data["violence_risk"] is True
    plain = engine.get(case.id, actor=judicial)
    case = engine.fire(case.id, "accept", actor=mediator, payload={"consent": consent_of(plain)})
    assert case.state == "three_office"


def test_escalation_records_the_highest_tier(engine: Engine, clock: FixedClock) -> None:
    case = engine.open("mediation", actor=mediator, grid=GRID, data={
        "summary": "噪音纠纷", "source": "hotline", "parties": two()})
    case = engine.fire(case.id, "accept", actor=mediator, payload={"consent": consent_of(case)})
    t1 = clock.now()
    assert (case.state, case.deadline_at) == ("grid_mediation", t1 + timedelta(days=10))

    # 10 days in the grid without agreement: the timer escalates to the three offices.
    clock.set(t1 + timedelta(days=10))
    assert [(e.trigger, e.dest) for e in engine.tick()] == [("escalate", "three_office")]
    case = engine.get(case.id)
    t2 = clock.now()
    assert case.deadline_at == t2 + timedelta(days=15)
    # 15 days with the three offices: up to every member unit (N).
    clock.set(t2 + timedelta(days=15))
    assert [(e.trigger, e.dest) for e in engine.tick()] == [("escalate", "multi_party")]
    case = engine.get(case.id)
    assert case.deadline_at == clock.now() + timedelta(days=30)
    assert case.data["tier_path"] == ["grid_mediation", "three_office", "multi_party"]
    assert case.data["highest_tier"] == "multi_party"
    assert case.data["escalations"] == 2

    # 30 days at N: flagged overdue, never moved.
    clock.advance(timedelta(days=30))
    events = engine.tick()
    assert [(e.trigger, e.dest) for e in events] == [("overdue", None)]
    assert engine.get(case.id).state == "multi_party"

    # Agreement, not performed, remediation goes back to the three offices: the
    # highest tier stays multi_party.
    case = engine.fire(case.id, "agree", actor=mediator, payload={
        "terms": "晚十点后不再装修", "signed_by": ["甲", "乙"],
        "performance_due": (clock.now() + timedelta(days=7)).isoformat()})
    case = engine.fire(case.id, "start_follow_up", actor=mediator)
    case = engine.fire(case.id, "remediate", actor=mediator, payload={"reason": "仍在夜间施工"})
    assert case.state == "three_office"
    assert case.data["tier"] == "three_office"
    assert case.data["highest_tier"] == "multi_party"
    assert case.data["remediations"] == 1
    assert case.data["tier_path"][-1] == "three_office"
    assert_chain(engine, case.id)


def test_tier_hook_is_asked_once_per_accept_and_never_otherwise(clock: FixedClock) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []

    class Counting:
        @gridflow.hookimpl
        def gridflow_mediation_tier(self, case: Case, payload: dict[str, Any]) -> None:
            calls.append((case.state, dict(payload)))

    engine = Engine(clock=clock, entry_points=False, plugins=[Counting()])
    case = engine.open("mediation", actor=mediator, grid=GRID, data={
        "summary": "纠纷", "source": "screening", "parties": two(), "claim_amount": 50_000})
    engine.fire(case.id, "note", actor=mediator, payload={"text": "x"})
    assert calls == []
    # multi_party is the last accept transition tried: the answer is shared, not re-asked.
    case = engine.fire(case.id, "accept", actor=mediator,
                       payload={"consent": consent_of(case), "tier": "multi_party"})
    assert case.state == "multi_party"
    assert calls == [("intake", {"consent": consent_of(case), "tier": "multi_party"})]
    engine.fire(case.id, "note", actor=mediator, payload={"text": "y"})
    assert len(calls) == 1


# -- deadlines ------------------------------------------------------------------------------------


def test_gridflow_deadline_overrides_the_performance_due(clock: FixedClock) -> None:
    class Quick:
        @gridflow.hookimpl
        def gridflow_deadline(self, case: Case, state: Any) -> timedelta | None:
            return timedelta(days=1) if state.name == "agreement" else None

    engine = Engine(clock=clock, entry_points=False, plugins=[Quick()])
    case = at_agreement(engine, clock, cst(2026, 4, 1, 12))
    assert case.deadline_at == clock.now() + timedelta(days=1)


def test_a_plugin_deadline_for_a_tier(clock: FixedClock) -> None:
    class WorkingWeek:
        @gridflow.hookimpl
        def gridflow_deadline(self, case: Case, state: Any) -> timedelta | None:
            return timedelta(days=7) if state.name == "three_office" else None

    engine = Engine(clock=clock, entry_points=False, plugins=[WorkingWeek()])
    case = at_three_office(engine)
    assert case.deadline_at == clock.now() + timedelta(days=7)
    # Without a plugin answer the performance_due still sets the agreement's deadline.
    clock.advance(timedelta(days=1))
    case = engine.fire(case.id, "agree", actor=judicial, payload={
        "terms": "t", "signed_by": signed(case), "performance_due": cst(2026, 3, 20, 12)})
    assert case.deadline_at == datetime(2026, 3, 20, 12, tzinfo=CST)


# -- refusals: each stores nothing ------------------------------------------------------------


def test_party_without_consent_is_refused(engine: Engine) -> None:
    case = open_scald(engine)
    refused(engine, GuardRejected, lambda: engine.fire(
        case.id, "accept", actor=judicial, payload={"consent": {"谢女士": True}}),
        "mediation.all_consent", "no consent recorded for ***", "art. 17")
    refused(engine, GuardRejected, lambda: engine.fire(
        case.id, "accept", actor=judicial,
        payload={"consent": {"谢女士": True, RESTAURANT: False}}),
        "refused mediation", "decline")
    refused(engine, GuardRejected, lambda: engine.fire(
        case.id, "accept", actor=judicial,
        payload={"consent": {"谢女士": True, RESTAURANT: True, "路人": True}}), "not a party")
    refused(engine, GuardRejected, lambda: engine.fire(
        case.id, "accept", actor=judicial,
        payload={"consent": {"谢女士": True, RESTAURANT: "yes"}}), "true or false")
    refused(engine, GuardRejected, lambda: engine.fire(
        case.id, "accept", actor=judicial, payload={"consent": ["谢女士", RESTAURANT]}),
        "must map")
    refused(engine, MissingPayload, lambda: engine.fire(
        case.id, "accept", actor=judicial, payload={}), "consent")
    # The way out when a party refuses: decline.
    case = engine.fire(case.id, "decline", actor=judicial, payload={"reason": "商家拒绝调解"})
    assert case.state == "withdrawn"
    assert case.data["ended"] == {"trigger": "decline", "reason": "商家拒绝调解"}


def test_unsigned_agreement_is_refused(engine: Engine) -> None:
    case = at_three_office(engine)
    terms = {"terms": "赔偿", "performance_due": cst(2026, 3, 20, 12)}
    refused(engine, GuardRejected, lambda: engine.fire(
        case.id, "agree", actor=judicial, payload={**terms, "signed_by": ["谢女士"]}),
        "mediation.all_signed", "*** did not sign")
    refused(engine, GuardRejected, lambda: engine.fire(
        case.id, "agree", actor=judicial,
        payload={**terms, "signed_by": ["谢女士", RESTAURANT, "证人"]}), "not a party")
    refused(engine, GuardRejected, lambda: engine.fire(
        case.id, "agree", actor=judicial, payload={**terms, "signed_by": "谢女士"}), "list")
    refused(engine, MissingPayload, lambda: engine.fire(
        case.id, "agree", actor=judicial, payload={**terms, "signed_by": []}), "signed_by")


@pytest.mark.parametrize(("due", "needle"), [
    ("next Friday", "ISO 8601"),
    ("2026-03-20T12:00:00", "no time zone"),
    (20260320, "ISO 8601"),
    ("2026-03-01T12:00:00+08:00", "already passed"),
])
def test_bad_performance_due_is_refused(engine: Engine, due: Any, needle: str) -> None:
    case = at_three_office(engine)
    refused(engine, GuardRejected, lambda: engine.fire(case.id, "agree", actor=judicial, payload={
        "terms": "赔偿", "signed_by": signed(case), "performance_due": due}),
        "performance_due", needle)


def test_judicial_confirmation_within_30_days(engine: Engine, clock: FixedClock) -> None:
    # Agreed on 2026-03-04 (Shanghai); the 30 days run 03-05 .. 04-03 inclusive.
    clock.set(datetime(2026, 3, 2, 9, tzinfo=CST))
    case = at_agreement(engine, clock, cst(2026, 5, 1, 12))
    assert case.data["agreement"]["agreed_at"] == datetime(2026, 3, 4, 9, tzinfo=CST).astimezone(
        UTC).isoformat()
    clock.set(datetime(2026, 4, 4, 0, 0, tzinfo=CST))  # day 31
    refused(engine, GuardRejected, lambda: engine.fire(
        case.id, "apply_confirmation", actor=lawyer, payload={"court": "长宁区法院"}),
        "within 30 days", "art. 33", "2026-04-03", "day 31")
    clock.set(datetime(2026, 4, 3, 23, 59, tzinfo=CST))  # day 30, late at night
    case = engine.fire(case.id, "apply_confirmation", actor=lawyer,
                       payload={"court": "长宁区法院"})
    assert case.data["confirmation"] == {"court": "长宁区法院",
                                         "applied_at": clock.now().isoformat()}
    # Once per agreement.
    refused(engine, GuardRejected, lambda: engine.fire(
        case.id, "apply_confirmation", actor=judicial, payload={"court": "长宁区法院"}),
        "already applied")


def test_judicial_confirmation_from_follow_up_counts_from_the_agreement(
    engine: Engine, clock: FixedClock
) -> None:
    case = at_follow_up(engine, clock)
    agreed = datetime.fromisoformat(case.data["agreement"]["agreed_at"])
    clock.set(agreed + timedelta(days=31))
    refused(engine, GuardRejected, lambda: engine.fire(
        case.id, "apply_confirmation", actor=mediator, payload={"court": "长宁区法院"}),
        "within 30 days")
    clock.set(agreed + timedelta(days=30))
    case = engine.fire(case.id, "apply_confirmation", actor=mediator,
                       payload={"court": "长宁区法院"})
    assert case.state == "follow_up"


def test_escalate_from_multi_party_is_refused(engine: Engine) -> None:
    case = engine.open("mediation", actor=mediator, grid=GRID, data={
        "summary": "业主与物业纠纷", "source": "screening",
        "parties": two(b="organisation")})
    case = engine.fire(case.id, "accept", actor=mediator, payload={"consent": consent_of(case)})
    assert case.state == "multi_party"
    err = refused(engine, InvalidTransition, lambda: engine.fire(
        case.id, "escalate", actor=judicial, payload={"reason": "仍未化解"}),
        "multi_party", "escalate", "refer")
    assert isinstance(err, InvalidTransition)


@pytest.mark.parametrize(("trigger", "actor", "payload"), [
    ("accept", resident, {"consent": {}}),
    ("accept", lawyer, {"consent": {}}),
    ("accept", police, {"consent": {}}),
    ("decline", secretary, {"reason": "x"}),
    ("withdraw", judicial, {"reason": "x"}),
])
def test_wrong_role_is_refused(engine: Engine, trigger: str, actor: Actor,
                               payload: dict[str, Any]) -> None:
    case = open_scald(engine)
    refused(engine, PermissionDenied, lambda: engine.fire(
        case.id, trigger, actor=actor, payload=payload), "roles allowed", actor.id)


def test_wrong_role_later_in_the_workflow(engine: Engine, clock: FixedClock) -> None:
    case = at_follow_up(engine, clock)
    refused(engine, PermissionDenied, lambda: engine.fire(
        case.id, "resolve", actor=judicial, payload={"outcome": "x"}), "mediator")
    refused(engine, PermissionDenied, lambda: engine.fire(
        case.id, "remediate", actor=lawyer, payload={"reason": "x"}), "judicial_office")
    refused(engine, PermissionDenied, lambda: engine.open(
        "mediation", actor=resident, grid=GRID, data=scald_data()), "may not open")
    refused(engine, PermissionDenied, lambda: engine.open(
        "mediation", actor=lawyer, grid=GRID, data=scald_data()), "may not open")


def test_wrong_grid_is_refused(engine: Engine) -> None:
    case = open_scald(engine)
    # Outside the mediator's grids the case does not exist (no grid, no state told).
    refused(engine, CaseNotVisible, lambda: engine.fire(
        case.id, "accept", actor=far_mediator, payload={"consent": consent_of(case)}),
        case.id, far_mediator.id)
    refused(engine, CaseNotVisible, lambda: engine.fire(
        case.id, "note", actor=far_mediator, payload={"text": "x"}), case.id)
    refused(engine, PermissionDenied, lambda: engine.open(
        "mediation", actor=far_mediator, grid=GRID, data=scald_data()), GRID)
    refused(engine, CaseNotVisible, lambda: engine.allowed(case.id, far_mediator), case.id)


@pytest.mark.parametrize(("party_list", "needle"), [
    ([{"name": "甲", "side": "applicant"}], "at least two"),
    ("甲 vs 乙", "at least two"),
    ([{"name": "甲", "side": "applicant"}, "乙"], "parties[1]"),
    ([{"name": "甲", "side": "applicant"}, {"side": "respondent"}], "no name"),
    ([{"name": "甲", "side": "applicant"}, {"name": " ", "side": "respondent"}], "no name"),
    ([{"name": "甲", "side": "applicant"}, {"name": "乙"}], "side None"),
    ([{"name": "甲", "side": "applicant"}, {"name": "乙", "side": "defendant"}], "defendant"),
    ([{"name": "甲", "side": "applicant"}, {"name": "乙", "side": "respondent",
                                             "kind": "company"}], "company"),
    ([{"name": "甲", "side": "applicant"}, {"name": "甲", "side": "respondent"}], "twice"),
    ([{"name": "甲", "side": "applicant"}, {"name": "乙", "side": "applicant"}],
     "one applicant and one respondent"),
])
def test_bad_parties_are_refused(engine: Engine, party_list: Any, needle: str) -> None:
    data = {"summary": "纠纷", "source": "screening", "parties": party_list}
    refused(engine, GuardRejected, lambda: engine.open(
        "mediation", actor=mediator, grid=GRID, data=data), "mediation.parties_valid", needle)
    assert len(engine.store) == 0


@pytest.mark.parametrize(("data", "error", "needle"), [
    ({"source": "rumour"}, InvalidPayload, "rumour"),
    ({"source": None}, MissingPayload, "source"),
    ({"summary": ""}, MissingPayload, "summary"),
    ({"injury": "yes"}, GuardRejected, "'injury' must be true or false"),
    ({"violence_risk": 1}, GuardRejected, "violence_risk"),
    ({"claim_amount": "一万"}, GuardRejected, "claim_amount"),
    ({"claim_amount": -1}, GuardRejected, "non-negative"),
    ({"claim_amount": True}, GuardRejected, "claim_amount"),
])
def test_bad_opening_data_is_refused(engine: Engine, data: dict[str, Any],
                                     error: type[GridflowError], needle: str) -> None:
    refused(engine, error, lambda: engine.open(
        "mediation", actor=mediator, grid=GRID, data={**scald_data(), **data}), needle)


def test_bad_note_facts_are_refused(engine: Engine) -> None:
    case = open_scald(engine)
    refused(engine, GuardRejected, lambda: engine.fire(
        case.id, "note", actor=police, payload={"text": "x", "injury": "轻伤"}), "injury")
    refused(engine, GuardRejected, lambda: engine.fire(
        case.id, "note", actor=police, payload={"text": "x", "claim_amount": "5000"}),
        "claim_amount")
    case = engine.fire(case.id, "note", actor=police,
                       payload={"text": "诉求调整", "claim_amount": 8_000.5, "injury": False})
    assert (case.data["claim_amount"], case.data["injury"]) == (8_000.5, False)


def test_other_refusals(engine: Engine, clock: FixedClock) -> None:
    case = open_scald(engine)
    refused(engine, InvalidPayload, lambda: engine.fire(
        case.id, "accept", actor=judicial,
        payload={"consent": consent_of(case), "tier": "street"}), "street", *TIERS)
    refused(engine, InvalidTransition, lambda: engine.fire(
        case.id, "agree", actor=judicial, payload={}), "intake")
    refused(engine, InvalidTransition, lambda: engine.fire(
        case.id, "open", actor=judicial, payload={}), "intake")
    case = engine.fire(case.id, "accept", actor=judicial, payload={"consent": consent_of(case)})
    refused(engine, InvalidPayload, lambda: engine.fire(
        case.id, "refer", actor=lawyer, payload={"channel": "petition", "reason": "x"}),
        "petition", "litigation")
    refused(engine, MissingPayload, lambda: engine.fire(
        case.id, "refer", actor=lawyer, payload={"channel": "litigation"}), "reason")
    refused(engine, InvalidTransition, lambda: engine.fire(
        case.id, "apply_confirmation", actor=lawyer, payload={"court": "c"}), "three_office")
    refused(engine, InvalidTransition, lambda: engine.fire(
        case.id, "start_follow_up", actor=mediator), "three_office")


# -- other ways out ---------------------------------------------------------------------------


@pytest.mark.parametrize("channel", ["litigation", "arbitration", "administrative"])
def test_refer_to_another_route(engine: Engine, channel: str) -> None:
    case = at_three_office(engine)
    case = engine.fire(case.id, "refer", actor=lawyer,
                       payload={"channel": channel, "reason": "赔偿数额分歧过大，调解不成"})
    assert case.state == "referred"
    assert case.data["referral"] == {"channel": channel, "reason": "赔偿数额分歧过大，调解不成"}
    assert case.deadline_at is None
    assert engine.allowed(case.id, mediator) == []
    assert_chain(engine, case.id)


def test_refer_from_follow_up_and_withdraw_from_intake(engine: Engine, clock: FixedClock) -> None:
    case = at_follow_up(engine, clock)
    case = engine.fire(case.id, "refer", actor=judicial,
                       payload={"channel": "litigation", "reason": "商家拒不履行"})
    assert case.state == "referred"
    other = open_scald(engine, "另一顾客")
    other = engine.fire(other.id, "withdraw", actor=mediator, payload={"reason": "申请人撤回"})
    assert other.state == "withdrawn"
    assert other.data["ended"] == {"trigger": "withdraw", "reason": "申请人撤回"}


def test_new_agreement_after_remediation_needs_its_own_confirmation(
    engine: Engine, clock: FixedClock
) -> None:
    case = at_follow_up(engine, clock)
    case = engine.fire(case.id, "apply_confirmation", actor=lawyer, payload={"court": "法院"})
    case = engine.fire(case.id, "remediate", actor=judicial, payload={"reason": "未按期付款"})
    assert case.state == "three_office"
    case = engine.fire(case.id, "agree", actor=judicial, payload={
        "terms": "分两期付款", "signed_by": signed(case),
        "performance_due": (clock.now() + timedelta(days=10)).isoformat()})
    assert "confirmation" not in case.data
    case = engine.fire(case.id, "apply_confirmation", actor=lawyer, payload={"court": "法院"})
    assert case.data["confirmation"]["court"] == "法院"
    assert_chain(engine, case.id)


def test_idempotent_accept(engine: Engine) -> None:
    case = open_scald(engine)
    first = engine.fire(case.id, "accept", actor=judicial,
                        payload={"consent": consent_of(case)}, idempotency_key="accept-1")
    again = engine.fire(case.id, "accept", actor=judicial,
                        payload={"consent": consent_of(case)}, idempotency_key="accept-1")
    assert again == first
    assert len(engine.history(case.id)) == 2


# -- extension of the one-month limit (人民调解工作若干规定 art. 33) -------------------------------


def test_mediation_deadline_extension(engine: Engine, clock: FixedClock) -> None:
    case = at_three_office(engine)
    due = case.deadline_at
    assert due is not None
    until = (due + timedelta(days=10)).isoformat()
    asked = engine.fire(case.id, "request_extension", actor=mediator,
                        payload={"reason": "双方同意延长调解期限", "until": until})
    assert asked.deadline_at == due and asked.state == "three_office"
    # A mediator cannot approve their own request: the judicial office decides.
    refused(engine, gridflow.PermissionDenied,
            lambda: engine.fire(case.id, "approve_extension", actor=mediator))
    moved = engine.fire(case.id, "approve_extension", actor=judicial)
    assert moved.deadline_at == due + timedelta(days=10)
    assert moved.data["extensions"] == 1
    assert [e.trigger for e in engine.history(case.id)][-2:] == [
        "request_extension", "approve_extension"]
    engine.verify(case.id)
