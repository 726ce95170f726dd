"""The 1+3+N multi-party mediation (多元调解): intake (受理) → the grid's own mediation
(1) → the three-office linkage of police station, judicial office and law firm
(3, 三所联动) → every other member unit (N) → agreement (达成协议) → follow-up
visit (回访) → resolved; with referral to litigation, arbitration or
administrative routes and withdrawal.

Legal basis (People's Mediation Law, 人民调解法): art. 17 no mediation where a
party refuses; art. 25 a dispute that may turn violent is reported to the
police; art. 26 failed mediation ends and the parties are told of other
routes; arts. 28-31 a written agreement signed by every party, whose
performance the committee supervises; art. 33 judicial confirmation (司法确认)
applied for within 30 days. 人民调解工作若干规定 art. 33: a mediation is
normally concluded within one month, and a follow-up visit checks performance.

Which tier ``accept`` enters is asked of the ``gridflow_mediation_tier`` hook
(once per ``accept`` step); `TierPolicy` is the default answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta, timezone
from typing import Any, TypeGuard

import attrs

from gridflow.convert import parse_datetime
from gridflow.model import Case
from gridflow.plugins import Effect, Guard, hookimpl
from gridflow.spec import StateSpec, TransitionSpec, WorkflowSpec
from gridflow.step import Step
from gridflow.workflows.extension import extension_transitions

__all__ = [
    "CHANNELS",
    "CONFIRMATION_DAYS",
    "DEFAULT_TIER_POLICY",
    "EFFECTS",
    "GUARDS",
    "LOCAL_TZ",
    "MEDIATION",
    "PARTY_KINDS",
    "SIDES",
    "SOURCES",
    "TIERS",
    "TIER_RANK",
    "TierPolicy",
    "chosen_tier",
    "entry_tier_guard",
]

#: How a dispute came to the mediators: regular screening (定期排查), a party who
#: walked in, the hotline, a referral by the police (art. 18) or a court, or a
#: grid case that found it.
SOURCES = ("screening", "walk_in", "hotline", "police_referral", "court_referral", "grid_case")
#: A party's side in the dispute.
SIDES = ("applicant", "respondent")
#: What a party is; an organisation as a party makes the dispute collective.
PARTY_KINDS = ("person", "organisation")
#: The three tiers, lowest first: 1 (grid), 3 (three offices), N (every member unit).
TIERS = ("grid_mediation", "three_office", "multi_party")
#: How high each tier is; a tier state not listed (a plugin's variant) counts as 1.
TIER_RANK: Mapping[str, int] = {"grid_mediation": 1, "three_office": 2, "multi_party": 3}
#: Where a failed mediation is referred (art. 26).
CHANNELS = ("litigation", "arbitration", "administrative")
#: Judicial confirmation must be applied for within this many days of the agreement (art. 33).
CONFIRMATION_DAYS = 30
#: Days are counted in China Standard Time (UTC+08:00, no daylight saving).
LOCAL_TZ = timezone(timedelta(hours=8), "CST")

_CASE_FACTS = ("injury", "claim_amount", "violence_risk")
_MEMO_TIER = "mediation.tier"


# -- the tier policy ------------------------------------------------------------------------


@attrs.frozen(eq=False)
class TierPolicy:
    """The default tier policy: which tier a mediation enters on ``accept``.

    In order: an explicit ``tier`` in the ``accept`` payload wins; personal
    injury, a claim of ``threshold`` yuan or more, or a risk of violence
    (art. 25) → ``three_office``; a collective dispute — ``collective_parties``
    parties or more, or an organisation among them → ``multi_party``;
    otherwise ``grid_mediation``.

    It is also a plugin: register ``TierPolicy(threshold=...)`` with an
    engine to change the numbers (a registered plugin's answer wins over the
    built-in default, which answers last).

    Example:
        >>> policy = TierPolicy(threshold=5_000)
        >>> parties = [{"name": "甲", "side": "applicant"}, {"name": "乙", "side": "respondent"}]
        >>> policy.tier({"parties": parties, "claim_amount": 6_000}, {})
        'three_office'
        >>> TierPolicy().tier({"parties": parties, "claim_amount": 6_000}, {})
        'grid_mediation'
        >>> TierPolicy().tier({"parties": parties}, {"tier": "multi_party"})
        'multi_party'
    """

    #: A claim at or above this many yuan goes to the three offices.
    threshold: float = 10_000
    #: This many parties or more make a dispute collective (群体性纠纷).
    collective_parties: int = 5

    def tier(self, data: Mapping[str, Any], payload: Mapping[str, Any]) -> str:
        """The tier for a case with ``data`` accepted with ``payload``."""
        explicit = payload.get("tier")
        if explicit:
            return str(explicit)
        claim = data.get("claim_amount")
        if (
            data.get("injury") is True
            or data.get("violence_risk") is True
            or (_is_number(claim) and claim >= self.threshold)
        ):
            return "three_office"
        parties = data.get("parties") or []
        if len(parties) >= self.collective_parties or any(
            isinstance(p, Mapping) and p.get("kind") == "organisation" for p in parties
        ):
            return "multi_party"
        return "grid_mediation"

    @hookimpl
    def gridflow_mediation_tier(self, case: Case, payload: Mapping[str, Any]) -> str | None:
        """The hook implementation: `tier` of the case's data."""
        return self.tier(case.data, payload)


#: The policy the built-in plugin answers with (last, so any plugin overrides it).
DEFAULT_TIER_POLICY = TierPolicy()


def chosen_tier(step: Step) -> str:
    """The tier the ``accept`` step enters: asked of the ``gridflow_mediation_tier``
    hook once per step (kept in ``step.memo``), `DEFAULT_TIER_POLICY` if no
    plugin answers or the step runs outside an engine.

    Example:
        >>> from gridflow.model import Actor
        >>> from datetime import datetime, UTC
        >>> t = datetime(2026, 1, 5, tzinfo=UTC)
        >>> case = Case("m-1", "mediation", 1, "intake", 1, {"injury": True}, None, t, t)
        >>> step = Step(case, "accept", Actor("j", ["judicial_office"]), {}, dict(case.data),
        ...             [], t, "intake", lambda _: None)
        >>> chosen_tier(step)
        'three_office'
    """
    memo = step.memo
    if memo is None:
        memo = step.memo = {}
    tier = memo.get(_MEMO_TIER)
    if tier is None:
        # The policy sees the data as this step does (before_fire plugins may add to it).
        case = step.case if step.data == step.case.data else attrs.evolve(step.case, data=step.data)
        if step.hooks is not None:
            tier = step.hooks.gridflow_mediation_tier(case=case, payload=step.payload,
                                                      now=step.now)
        if tier is None:
            tier = DEFAULT_TIER_POLICY.tier(case.data, step.payload)
        memo[_MEMO_TIER] = tier
    return str(tier)


def entry_tier_guard(tier: str) -> Guard:
    """A guard that passes when the tier policy chose ``tier``: put one on each
    ``accept`` transition (a plugin adding a tier state makes its own).

    Example:
        >>> guard = entry_tier_guard("building_mediation")
        >>> GUARDS_OF_MY_PLUGIN = {"building.enters_building": guard}
    """

    def guard(step: Step) -> str | None:
        chosen = chosen_tier(step)
        if chosen == tier:
            return None
        return f"the tier policy chose {chosen!r}; this transition enters {tier!r}"

    guard.__name__ = f"enters_{tier}"
    return guard


# -- helpers ----------------------------------------------------------------------------


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _party_names(data: Mapping[str, Any]) -> list[str]:
    return [str(p.get("name")) for p in data.get("parties") or () if isinstance(p, Mapping)]


def _local_day(value: datetime) -> date:
    return value.astimezone(LOCAL_TZ).date()


# -- guards ------------------------------------------------------------------------------


def _parties_valid(step: Step) -> str | None:
    parties = step.payload.get("parties")
    if not isinstance(parties, list) or len(parties) < 2:
        return ("'parties' must list at least two parties, each "
                f"{{'name': ..., 'side': 'applicant' | 'respondent'}}; got {parties!r}")
    names: list[str] = []
    for i, party in enumerate(parties):
        if not isinstance(party, dict):
            return f"parties[{i}] must be an object with 'name' and 'side', got {party!r}"
        name = party.get("name")
        if not isinstance(name, str) or not name.strip():
            return f"parties[{i}] has no name"
        if party.get("side") not in SIDES:
            return (f"party {name!r} has side {party.get('side')!r}; "
                    f"choose one of: {', '.join(SIDES)}")
        if "kind" in party and party["kind"] not in PARTY_KINDS:
            return (f"party {name!r} has kind {party['kind']!r}; "
                    f"choose one of: {', '.join(PARTY_KINDS)}")
        if name in names:
            return f"party {name!r} is listed twice; party names must be unique"
        names.append(name)
    sides = {p["side"] for p in parties}
    if sides != set(SIDES):
        return ("a dispute needs at least one applicant and one respondent; "
                f"every party listed is {next(iter(sides))!r}")
    return None


def _case_facts_valid(step: Step) -> str | None:
    for field in ("injury", "violence_risk"):
        if field in step.payload and not isinstance(step.payload[field], bool):
            return f"{field!r} must be true or false, got {step.payload[field]!r}"
    if "claim_amount" in step.payload:
        claim = step.payload["claim_amount"]
        if not _is_number(claim) or claim < 0:
            return f"'claim_amount' must be a non-negative number of yuan, got {claim!r}"
    return None


def _all_consent(step: Step) -> str | None:
    consent = step.payload.get("consent")
    names = _party_names(step.data)
    if not isinstance(consent, dict):
        return (f"'consent' must map each party's name to true or false "
                f"(parties: {', '.join(names)}); got {consent!r}")
    unknown = [n for n in consent if n not in names]
    if unknown:
        return (f"'consent' names {', '.join(map(repr, unknown))}, not a party; "
                f"parties: {', '.join(names)}")
    not_bool = [n for n, v in consent.items() if not isinstance(v, bool)]
    if not_bool:
        return f"consent of {', '.join(not_bool)} must be true or false"
    refused = [n for n in names if consent.get(n) is False]
    if refused:
        return (f"{', '.join(refused)} refused mediation: there is no mediation where a party "
                "refuses (People's Mediation Law art. 17); use 'decline' instead")
    missing = [n for n in names if n not in consent]
    if missing:
        return (f"no consent recorded for {', '.join(missing)}: every party must consent "
                "(People's Mediation Law art. 17)")
    return None


def _all_signed(step: Step) -> str | None:
    signed = step.payload.get("signed_by")
    names = _party_names(step.data)
    if not isinstance(signed, list) or not all(isinstance(n, str) for n in signed):
        return f"'signed_by' must list the names of the parties who signed; got {signed!r}"
    unknown = [n for n in signed if n not in names]
    if unknown:
        return (f"'signed_by' names {', '.join(map(repr, unknown))}, not a party; "
                f"parties: {', '.join(names)}")
    unsigned = [n for n in names if n not in signed]
    if unsigned:
        return (f"{', '.join(unsigned)} did not sign: an agreement takes effect only when "
                "every party signs (People's Mediation Law arts. 28-29)")
    return None


def _performance_due_valid(step: Step) -> str | None:
    value = step.payload.get("performance_due")
    try:
        due = parse_datetime(value)
    except ValueError as exc:
        return f"'performance_due' must be an ISO 8601 datetime with a zone: {exc}"
    if due < step.now:
        return (f"'performance_due' {value!r} has already passed "
                f"(now {step.now.isoformat()}); agree on a date to come")
    return None


def _within_confirmation_period(step: Step) -> str | None:
    agreement = step.data.get("agreement") or {}
    if "agreed_at" not in agreement:
        return "there is no agreement on record to confirm"
    if step.data.get("confirmation"):
        court = step.data["confirmation"].get("court")
        return f"judicial confirmation of this agreement was already applied for (court {court!r})"
    agreed = parse_datetime(agreement["agreed_at"])
    # Periods start the day after the agreement and end with the 30th day.
    days = (_local_day(step.now) - _local_day(agreed)).days
    if days > CONFIRMATION_DAYS:
        last = _local_day(agreed) + timedelta(days=CONFIRMATION_DAYS)
        return (f"judicial confirmation must be applied for within {CONFIRMATION_DAYS} days of "
                f"the agreement (People's Mediation Law art. 33); the agreement took effect "
                f"{_local_day(agreed).isoformat()}, the last day was {last.isoformat()}, "
                f"today is day {days}")
    return None


GUARDS: Mapping[str, Guard] = {
    "mediation.parties_valid": _parties_valid,
    "mediation.case_facts_valid": _case_facts_valid,
    "mediation.all_consent": _all_consent,
    **{f"mediation.enters_{tier}": entry_tier_guard(tier) for tier in TIERS},
    "mediation.all_signed": _all_signed,
    "mediation.performance_due_valid": _performance_due_valid,
    "mediation.within_confirmation_period": _within_confirmation_period,
}


# -- effects ------------------------------------------------------------------------------


def _enter_tier(step: Step) -> None:
    """Record the tier entered, the path of tiers, and the highest tier reached."""
    fired = step.fired
    assert fired is not None and fired.dest is not None
    tier = fired.dest
    step.data["tier"] = tier
    step.data["tier_path"] = [*step.data.get("tier_path", ()), tier]
    highest = step.data.get("highest_tier")
    if highest is None or TIER_RANK.get(tier, 1) >= TIER_RANK.get(highest, 1):
        step.data["highest_tier"] = tier


def _accepted(step: Step) -> None:
    step.data["consent"] = dict(step.payload["consent"])
    step.data["accepted_at"] = step.now.isoformat()


def _escalated(step: Step) -> None:
    step.data["escalations"] = int(step.data.get("escalations", 0)) + 1


def _record_agreement(step: Step) -> None:
    due = parse_datetime(step.payload["performance_due"])
    step.data["agreement"] = {
        "terms": step.payload["terms"],
        "signed_by": list(step.payload["signed_by"]),
        "performance_due": due.isoformat(),
        "agreed_at": step.now.isoformat(),
        "tier": step.data.get("tier"),
    }
    # A new agreement (after remediation) needs its own confirmation.
    step.data.pop("confirmation", None)
    step.deadline_at = due


def _confirmation_applied(step: Step) -> None:
    step.data["confirmation"] = {"court": step.payload["court"],
                                 "applied_at": step.now.isoformat()}


def _resolved(step: Step) -> None:
    step.data["outcome"] = step.payload["outcome"]


def _remediated(step: Step) -> None:
    step.data["remediations"] = int(step.data.get("remediations", 0)) + 1


def _referred(step: Step) -> None:
    step.data["referral"] = {"channel": step.payload["channel"],
                             "reason": step.payload["reason"]}


def _ended(step: Step) -> None:
    step.data["ended"] = {"trigger": step.trigger, "reason": step.payload["reason"]}


def _note_facts(step: Step) -> None:
    for field in _CASE_FACTS:
        if field in step.payload:
            step.data[field] = step.payload[field]


EFFECTS: Mapping[str, Effect] = {
    "mediation.enter_tier": _enter_tier,
    "mediation.accepted": _accepted,
    "mediation.escalated": _escalated,
    "mediation.record_agreement": _record_agreement,
    "mediation.confirmation_applied": _confirmation_applied,
    "mediation.resolved": _resolved,
    "mediation.remediated": _remediated,
    "mediation.referred": _referred,
    "mediation.ended": _ended,
    "mediation.note_facts": _note_facts,
}


# -- the spec ------------------------------------------------------------------------------


def _t(trigger: str, source: Any, dest: str | None, zh: str, en: str, **kw: Any) -> TransitionSpec:
    return TransitionSpec(trigger, source, dest, label_zh=zh, label_en=en, **kw)


_OPENERS = ("mediator", "coordinator", "grid_worker", "police", "judicial_office")
_ACCEPT = {"roles": ["mediator", "coordinator", "judicial_office"], "requires": ["consent"],
           "choices": {"tier": TIERS}}

MEDIATION = WorkflowSpec(
    name="mediation",
    version=1,
    initial="intake",
    labels={"zh": "多元调解", "en": "1+3+N mediation"},
    open_roles=_OPENERS,
    open_requires=("summary", "parties", "source"),
    open_choices={"source": SOURCES},
    open_guards=("mediation.parties_valid", "mediation.case_facts_valid"),
    states=(
        StateSpec("intake", "受理", "Intake", deadline=timedelta(days=3), tags=("open",)),
        StateSpec("grid_mediation", "网格调解", "Grid mediation (1)", deadline=timedelta(days=10),
                  on_breach="escalate", tags=("open", "accepted", "handling", "tier")),
        StateSpec("three_office", "三所联动调解", "Three-office mediation (3)",
                  deadline=timedelta(days=15), on_breach="escalate",
                  tags=("open", "accepted", "handling", "tier")),
        StateSpec("multi_party", "多方联合调解", "Multi-party mediation (N)",
                  deadline=timedelta(days=30), tags=("open", "accepted", "handling", "tier")),
        # The real deadline is the agreement's performance_due (set by the effect
        # mediation.record_agreement); 30 days only if no effect set one.
        StateSpec("agreement", "达成协议", "Agreement reached", deadline=timedelta(days=30),
                  on_breach="start_follow_up", tags=("open", "accepted", "agreed")),
        StateSpec("follow_up", "回访", "Follow-up visit", deadline=timedelta(days=15),
                  tags=("open", "accepted", "agreed")),
        StateSpec("resolved", "化解成功", "Resolved", terminal=True,
                  tags=("closed", "ended", "resolved")),
        StateSpec("referred", "引导其他途径", "Referred to another route", terminal=True,
                  tags=("ended",)),
        StateSpec("withdrawn", "终止调解", "Withdrawn", terminal=True, tags=("ended",)),
    ),
    transitions=(
        *(_t("accept", "intake", tier, "受理调解", "Accept for mediation",
             guards=["mediation.all_consent", f"mediation.enters_{tier}"],
             effects=["mediation.accepted", "mediation.enter_tier"], **_ACCEPT)
          for tier in TIERS),
        _t("decline", "intake", "withdrawn", "不予调解", "Decline (a party refuses)",
           roles=["mediator", "judicial_office"], requires=["reason"], effects=["mediation.ended"]),
        _t("escalate", "grid_mediation", "three_office", "升级调解", "Escalate one tier",
           roles=["mediator", "coordinator", "judicial_office", "system"], requires=["reason"],
           effects=["mediation.enter_tier", "mediation.escalated"]),
        _t("escalate", "three_office", "multi_party", "升级调解", "Escalate one tier",
           roles=["mediator", "coordinator", "judicial_office", "system"], requires=["reason"],
           effects=["mediation.enter_tier", "mediation.escalated"]),
        _t("agree", TIERS, "agreement", "签订调解协议", "Agreement signed",
           roles=["mediator", "judicial_office", "lawyer"],
           requires=["terms", "signed_by", "performance_due"],
           guards=["mediation.all_signed", "mediation.performance_due_valid"],
           effects=["mediation.record_agreement"]),
        _t("apply_confirmation", ("agreement", "follow_up"), None, "申请司法确认",
           "Apply for judicial confirmation", roles=["mediator", "lawyer", "judicial_office"],
           requires=["court"], guards=["mediation.within_confirmation_period"],
           effects=["mediation.confirmation_applied"]),
        _t("start_follow_up", "agreement", "follow_up", "开始回访", "Start follow-up visit",
           roles=["mediator", "system"]),
        _t("resolve", "follow_up", "resolved", "履行完毕", "Resolve (agreement performed)",
           roles=["mediator"], requires=["outcome"], effects=["mediation.resolved"]),
        _t("remediate", "follow_up", "three_office", "未履行再调解",
           "Remediate (agreement not performed)", roles=["mediator", "judicial_office"],
           requires=["reason"], effects=["mediation.remediated", "mediation.enter_tier"]),
        _t("refer", (*TIERS, "follow_up"), "referred", "引导其他途径",
           "Refer (litigation, arbitration, administrative)",
           roles=["mediator", "judicial_office", "lawyer"], requires=["channel", "reason"],
           choices={"channel": CHANNELS}, effects=["mediation.referred"]),
        _t("withdraw", ("intake", *TIERS), "withdrawn", "撤回调解", "Withdraw",
           roles=["mediator"], requires=["reason"], effects=["mediation.ended"]),
        _t("note", "*", None, "情况备注", "Status note", requires=["text"],
           guards=["mediation.case_facts_valid"], effects=["mediation.note_facts"]),
        # 人民调解工作若干规定 art. 33: the one-month limit may be extended with
        # both parties' consent; the mediator asks, the judicial office decides.
        *extension_transitions(TIERS, request_roles=["mediator"],
                               approve_roles=["judicial_office", "coordinator"]),
    ),
)
"""The built-in ``mediation`` workflow (1+3+N, 多元调解), version 1.

Example:
    >>> MEDIATION.state("three_office").label("zh")
    '三所联动调解'
    >>> sorted({t.dest for t in MEDIATION.transitions if t.trigger == "accept"})
    ['grid_mediation', 'multi_party', 'three_office']
"""
