"""``grid_case@2``: the closed loop that cities are assessed on (GB/T 30428.8, CJ/T 315
and the 12345 rules): 签收 ``acknowledge``, 退单 ``return_task``, 催办/督办 ``urge``,
核查 ``submit_check`` / ``pass_check`` / ``fail_check``, 满意度 ``rate``, 挂账
``park`` / ``resume``, and the inspector role (监督员).

Everything of ``grid_case@1`` except ``close`` (a case now closes when the
inspector passes the check). ``@1`` is unchanged: its guards and effects are
reused from `gridflow.workflows.grid_case` by import.

Time limits, counted in working time (`gridflow.WorkingHours`, 09:00–12:00 and
13:30–17:30 Asia/Shanghai on China's working days): a dispatched department
acknowledges within `ACK_LIMIT` (`ACK_LIMIT_URGENT` for urgent cases); the
handling limit is ``@1``'s (`JOINT_ACTION_DAYS`); the inspector checks within
`CHECK_LIMIT`. The case's ``deadline_at`` in ``joint_action`` is the earliest
of the pending acknowledgement limits and the handling limit; when it runs
out the timer fires ``urge`` as ``system``, which urges each department whose
acknowledgement limit passed (once per breach) and moves the deadline on.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from gridflow._errors import CalendarError
from gridflow.calendar import WorkingDays, WorkingHours
from gridflow.plugins import Effect, Guard, hookimpl
from gridflow.spec import StateSpec, TransitionSpec, WorkflowSpec
from gridflow.step import Step
from gridflow.workflows import grid_case as v1
from gridflow.workflows.extension import extension_transitions

__all__ = [
    "ACK_LIMIT",
    "ACK_LIMIT_URGENT",
    "CHECK_LIMIT",
    "EFFECTS",
    "ESCALATE_AFTER_REWORKS",
    "GRID_CASE_V2",
    "GUARDS",
    "PLUGIN",
    "RECURRENCE_WINDOW",
    "SATISFACTION",
    "GridCaseV2Plugin",
    "Recurrence",
    "deadline",
]

#: 签收时限: working time a dispatched department has to acknowledge the task.
ACK_LIMIT = timedelta(hours=2)
#: 签收时限 of an urgent case.
ACK_LIMIT_URGENT = timedelta(minutes=30)
#: 核查时限: one working day's worth of working time (7 working hours by default).
CHECK_LIMIT = timedelta(hours=7)
#: 提级督办: the rework (failed check or reopen) that escalates a case to the street.
ESCALATE_AFTER_REWORKS = 3
#: 一类事: a case triaged this long after an earlier one at the same place, of the same
#: category, was closed or archived, is a recurrence (反弹) of it.
RECURRENCE_WINDOW = timedelta(days=90)
#: 满意度回访 answers; the first two count as satisfied in 满意率.
SATISFACTION = ("satisfied", "basically_satisfied", "dissatisfied")

_HOURS: WorkingHours | None = None


def _hours() -> WorkingHours:
    global _HOURS
    if _HOURS is None:
        try:
            _HOURS = WorkingHours()
        except CalendarError:
            # grid_case@2 is what `open` takes by default, so a core install (without
            # gridflow[china]) must still run it: count Monday to Friday, and say once,
            # loudly, that holidays and make-up working days (调休) are not known.
            warnings.warn(
                "grid_case@2 counts its time limits in working hours; without the "
                "chinese-calendar package it counts Monday to Friday and knows no public "
                "holiday or make-up working day (调休): pip install 'gridflow[china]'",
                RuntimeWarning, stacklevel=2)
            _HOURS = WorkingHours(WorkingDays())
    return _HOURS


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat()


def _ack_limit(data: Mapping[str, Any]) -> timedelta:
    return ACK_LIMIT_URGENT if data.get("priority") == "urgent" else ACK_LIMIT


def _handling_due(step: Step) -> datetime | None:
    days = v1.JOINT_ACTION_DAYS.get(str(step.data.get("priority")))
    if days is None:
        return None
    return _hours().days.add(step.now, timedelta(days=days)).astimezone(UTC)


def _next_deadline(step: Step) -> None:
    """Fix the case's deadline in ``joint_action``: the earliest pending
    acknowledgement limit or the handling limit. Only when the step stays in or
    enters ``joint_action``: another state keeps its own limit."""
    if step.state != "joint_action":
        return
    dues = [datetime.fromisoformat(v) for v in dict(step.data.get("ack_due", {})).values()]
    handling = step.data.get("handling_due")
    if isinstance(handling, str):
        dues.append(datetime.fromisoformat(handling))
    if dues:
        step.deadline_at = min(dues)


# -- guards ---------------------------------------------------------------------------


def _dispatched(step: Step) -> str | None:
    dept = step.payload.get("department")
    dispatched = step.data.get("departments", [])
    if dept not in dispatched:
        return (f"department {dept!r} was not dispatched to this case; dispatched: "
                f"{', '.join(dispatched) or '(none)'}")
    return None


def _not_acknowledged(step: Step) -> str | None:
    refused = _dispatched(step)
    if refused:
        return refused
    if step.payload["department"] in step.data.get("acknowledged", {}):
        return f"department {step.payload['department']!r} has already acknowledged (签收) it"
    return None


def _acknowledged(step: Step) -> str | None:
    dept = step.payload.get("department")
    if dept in step.data.get("departments", []) and dept not in step.data.get(
            "acknowledged", {}):
        return f"department {dept!r} must acknowledge (签收) the task before report_done"
    return None


def _returnable(step: Step) -> str | None:
    refused = _dispatched(step)
    if refused:
        return refused
    if step.payload["department"] in step.data.get("done", {}):
        return f"department {step.payload['department']!r} already reported its part done"
    return None


def _last_department(step: Step) -> str | None:
    left = [d for d in step.data.get("departments", []) if d != step.payload.get("department")]
    return f"departments left: {', '.join(left)}" if left else None


def _reworks(step: Step) -> int:
    return int(step.data.get("checks_failed", 0)) + int(step.data.get("reopened", 0))


def _escalating_rework(step: Step) -> str | None:
    if _reworks(step) + 1 < ESCALATE_AFTER_REWORKS:
        return f"rework {_reworks(step) + 1} of {ESCALATE_AFTER_REWORKS} before 提级督办"
    return None


def _handling_breached(step: Step) -> str | None:
    if "system" not in step.actor.roles:
        return "only the timer escalates by urging"
    if any(datetime.fromisoformat(v) <= step.now
           for v in dict(step.data.get("ack_due", {})).values()):
        return "a department's acknowledgement limit passed: it is urged first"
    handling = step.data.get("handling_due")
    if not isinstance(handling, str) or datetime.fromisoformat(handling) > step.now:
        return "the handling limit has not passed"
    return None


def _not_rated(step: Step) -> str | None:
    if "satisfaction" in step.data:
        return (f"the case was already rated ({step.data['satisfaction']}); "
                "满意度回访 is once per case")
    return None


# -- effects ---------------------------------------------------------------------------


def _dispatch(step: Step) -> None:
    v1._set_departments(step)
    limit = _ack_limit(step.data)
    due = _iso(_hours().add(step.now, limit))
    step.data["acknowledged"] = {}
    step.data["ack_due"] = {d: due for d in step.data["departments"]}
    step.data["ack_late"] = {}
    handling = _handling_due(step)
    if handling is not None:
        step.data["handling_due"] = _iso(handling)
    elif "handling_due" in step.data:
        del step.data["handling_due"]
    _next_deadline(step)


def _reassign(step: Step) -> None:
    before = set(step.data.get("departments", []))
    v1._reassign(step)
    now_in = step.data["departments"]
    due = _iso(_hours().add(step.now, _ack_limit(step.data)))
    ack_due = {d: v for d, v in dict(step.data.get("ack_due", {})).items() if d in now_in}
    for d in now_in:
        if d not in before:
            ack_due[d] = due
    step.data["ack_due"] = ack_due
    for key in ("acknowledged", "ack_late"):
        step.data[key] = {d: v for d, v in dict(step.data.get(key, {})).items() if d in now_in}
    _next_deadline(step)


def _acknowledge(step: Step) -> None:
    dept = step.payload["department"]
    ack_due = dict(step.data.get("ack_due", {}))
    late = dict(step.data.get("ack_late", {}))
    due = ack_due.pop(dept, None) or late.pop(dept, None)
    step.data["ack_due"] = ack_due
    step.data["ack_late"] = late
    acknowledged = dict(step.data.get("acknowledged", {}))
    acknowledged[dept] = _iso(step.now)
    step.data["acknowledged"] = acknowledged
    # Facts for 按时签收率, derived by the engine (what the caller sent is overwritten).
    step.payload["due_at"] = due
    step.payload["on_time"] = due is None or step.now <= datetime.fromisoformat(due)
    _next_deadline(step)


def _return_task(step: Step) -> None:
    dept = step.payload["department"]
    step.data["departments"] = [d for d in step.data.get("departments", []) if d != dept]
    for key in ("ack_due", "ack_late", "acknowledged"):
        step.data[key] = {d: v for d, v in dict(step.data.get(key, {})).items() if d != dept}
    returned = dict(step.data.get("returned", {}))
    returned[dept] = int(returned.get(dept, 0)) + 1
    step.data["returned"] = returned
    if step.data["departments"]:
        _next_deadline(step)


def _urge(step: Step) -> None:
    urged = dict(step.data.get("urged", {}))
    targets: list[str] = []
    if "system" in step.actor.roles:
        # The timer: every department whose acknowledgement limit passed, once per breach.
        ack_due = dict(step.data.get("ack_due", {}))
        late = dict(step.data.get("ack_late", {}))
        for dept, due in sorted(ack_due.items()):
            if datetime.fromisoformat(due) <= step.now:
                targets.append(dept)
                late[dept] = ack_due.pop(dept)  # urged once: kept to judge the 签收 late
        step.data["ack_due"] = ack_due
        step.data["ack_late"] = late
        if not targets:
            # The handling limit passed: every department still working is urged.
            targets = [d for d in step.data.get("departments", [])
                       if d not in step.data.get("done", {})]
    elif step.payload.get("department"):
        targets = [str(step.payload["department"])]
    for dept in targets:
        urged[dept] = int(urged.get(dept, 0)) + 1
    step.data["urged"] = urged
    step.data["urges"] = int(step.data.get("urges", 0)) + 1
    step.payload["departments"] = targets
    if step.case.state == "joint_action" and step.state == "joint_action":
        _next_deadline(step)


def _submit_check(step: Step) -> None:
    step.data["checks"] = int(step.data.get("checks", 0)) + 1


def _fail_check(step: Step) -> None:
    step.data["checks_failed"] = int(step.data.get("checks_failed", 0)) + 1
    step.data["done"] = {}  # rework: every department reports again; 签收 stays valid
    _next_deadline(step)


def _rework_escalated(step: Step) -> None:
    step.data["escalations"] = int(step.data.get("escalations", 0)) + 1
    step.data["rework_escalated"] = True


def _extended(step: Step) -> None:
    """After ``extension.approved``: the granted date is the handling limit (the
    timer's 督办, and what ``pass_check`` measures), and the deadline in
    ``joint_action`` the earliest limit still pending."""
    if isinstance(step.data.get("handling_due"), str):
        step.data["handling_due"] = _iso(datetime.fromisoformat(step.data["extended_until"]))
        _next_deadline(step)


def _reopen(step: Step) -> None:
    v1._reopened(step)
    _next_deadline(step)


def _pass_check(step: Step) -> None:
    """Record the handling deadline in force and whether it was met, as ``close`` of @1."""
    handling = step.data.get("handling_due")
    if not isinstance(handling, str):
        step.payload["deadline_at"] = None
        step.payload["on_time"] = True
        return
    due = datetime.fromisoformat(handling)
    step.payload["deadline_at"] = _iso(due)
    # The moment the departments handed over is what the limit measures: the check's
    # own time is the inspector's (核查时限), not the departments'.
    submitted = step.data.get("submitted_at")
    at = datetime.fromisoformat(submitted) if isinstance(submitted, str) else step.now
    step.payload["on_time"] = at <= due


def _submitted(step: Step) -> None:
    _submit_check(step)
    step.data["submitted_at"] = _iso(step.now)


def _rate(step: Step) -> None:
    step.data["satisfaction"] = step.payload["satisfaction"]
    if step.payload["satisfaction"] == "dissatisfied":
        step.data["dissatisfied"] = True  # for the coordinator's decision: reopen or confirm


def _recurrence(step: Step) -> None:
    """Link the earlier cases `Recurrence` found (``payload["recurrence_of"]``): 反弹."""
    found = step.payload.get("recurrence_of")
    if not isinstance(found, list) or not found:
        return
    ids = [str(i) for i in found if str(i) != step.case.id]
    step.data["recurrence_of"] = ids
    for other in ids:
        if other not in step.links:
            step.links.append(other)


def _park(step: Step) -> None:
    step.data["parked"] = {"reason": step.payload["reason"], "plan": step.payload["plan"],
                           "at": _iso(step.now)}
    step.data["parks"] = int(step.data.get("parks", 0)) + 1


def _resume(step: Step) -> None:
    if "parked" in step.data:
        del step.data["parked"]
    _next_deadline(step)


GUARDS: Mapping[str, Guard] = {
    "grid_case2.not_acknowledged": _not_acknowledged,
    "grid_case2.acknowledged": _acknowledged,
    "grid_case2.returnable": _returnable,
    "grid_case2.last_department": _last_department,
    "grid_case2.escalating_rework": _escalating_rework,
    "grid_case2.not_rated": _not_rated,
    "grid_case2.handling_breached": _handling_breached,
}

EFFECTS: Mapping[str, Effect] = {
    "grid_case2.dispatch": _dispatch,
    "grid_case2.reassign": _reassign,
    "grid_case2.acknowledge": _acknowledge,
    "grid_case2.return_task": _return_task,
    "grid_case2.urge": _urge,
    "grid_case2.submitted": _submitted,
    "grid_case2.fail_check": _fail_check,
    "grid_case2.rework_escalated": _rework_escalated,
    "grid_case2.reopen": _reopen,
    "grid_case2.extended": _extended,
    "grid_case2.pass_check": _pass_check,
    "grid_case2.rate": _rate,
    "grid_case2.recurrence": _recurrence,
    "grid_case2.park": _park,
    "grid_case2.resume": _resume,
}


def _t(trigger: str, source: Any, dest: str | None, zh: str, en: str, **kw: Any) -> TransitionSpec:
    return TransitionSpec(trigger, source, dest, label_zh=zh, label_en=en, **kw)


_HANDLING = ("open", "accepted", "handling")

GRID_CASE_V2 = WorkflowSpec(
    name="grid_case",
    version=2,
    initial="reported",
    labels={"zh": "网格案件", "en": "Grid case"},
    open_roles=v1._REPORTERS,
    open_requires=("title", "source"),
    open_choices={"source": v1.SOURCES},
    states=(
        StateSpec("reported", "已上报", "Reported", deadline=timedelta(days=1), tags=("open",)),
        StateSpec("triaged", "已立案", "Triaged", deadline=timedelta(days=1),
                  tags=("open", "accepted")),
        StateSpec("joint_action", "联合处置", "Joint action", deadline=timedelta(days=5),
                  on_breach="urge", tags=_HANDLING),
        StateSpec("escalated", "上报街道", "Escalated to street level", deadline=timedelta(days=5),
                  tags=("open", "accepted")),
        StateSpec("verifying", "核查中", "Verifying (on-site check)", deadline=CHECK_LIMIT,
                  tags=("open", "accepted")),
        StateSpec("parked", "挂账", "Parked (with explanation)", tags=("open", "accepted")),
        StateSpec("closed", "已结案", "Closed", deadline=timedelta(days=30),
                  on_breach="start_revisit", tags=("closed",)),
        StateSpec("revisit", "回头看", "Revisit (look back)", deadline=timedelta(days=7),
                  tags=("closed",)),
        StateSpec("archived", "已归档", "Archived", terminal=True, tags=("closed", "ended")),
        StateSpec("rejected", "不予立案", "Rejected", terminal=True, tags=("ended",)),
    ),
    transitions=(
        _t("triage", "reported", "triaged", "立案分类", "Triage", roles=["coordinator"],
           requires=["category", "priority"], choices={"priority": v1.PRIORITIES},
           effects=["grid_case.triage", "grid_case2.recurrence"]),
        _t("reject", "reported", "rejected", "不予受理", "Reject", roles=["coordinator"],
           requires=["reason"]),
        _t("mark_duplicate", "reported", "rejected", "重复件", "Mark duplicate",
           roles=["coordinator"], requires=["duplicate_of"],
           guards=["grid_case.duplicate_exists"], effects=["grid_case.link_duplicate"]),
        _t("dispatch", ("triaged", "escalated"), "joint_action", "派遣联合处置", "Dispatch",
           roles=["coordinator", "street"], requires=["departments", "plan"],
           guards=["grid_case.departments_listed"], effects=["grid_case2.dispatch"]),
        _t("acknowledge", "joint_action", None, "签收", "Acknowledge", roles=["department"],
           requires=["department"], guards=["grid_case2.not_acknowledged"],
           effects=["grid_case2.acknowledge"]),
        _t("return_task", "joint_action", "triaged", "退单", "Return task",
           roles=["department"], requires=["department", "reason"],
           guards=["grid_case2.returnable", "grid_case2.last_department"],
           effects=["grid_case2.return_task"]),
        _t("return_task", "joint_action", None, "退单", "Return task",
           roles=["department"], requires=["department", "reason"],
           guards=["grid_case2.returnable"], effects=["grid_case2.return_task"]),
        _t("report_done", "joint_action", None, "部门处置完毕", "Department reports done",
           roles=["department"], requires=["department", "result"],
           guards=["grid_case.department_pending", "grid_case2.acknowledged"],
           effects=["grid_case.mark_done"]),
        _t("reassign", "joint_action", None, "调整处置部门", "Reassign departments",
           roles=["coordinator"], requires=["departments"],
           guards=["grid_case.departments_listed"], effects=["grid_case2.reassign"]),
        # The timer's urge once the handling limit passed (no acknowledgement overdue):
        # 督办 escalates the case to the street (提级督办), as @1's breach did.
        _t("urge", "joint_action", "escalated", "催办督办", "Urge",
           roles=["system"], requires=["text"], guards=["grid_case2.handling_breached"],
           effects=["grid_case2.urge", "grid_case.escalated"]),
        _t("urge", ("joint_action", "verifying", "parked"), None, "催办督办", "Urge",
           roles=["coordinator", "street", "system"], requires=["text"],
           effects=["grid_case2.urge"]),
        _t("submit_check", "joint_action", "verifying", "提请核查", "Submit for check",
           roles=["coordinator"], guards=["grid_case.all_departments_done"],
           effects=["grid_case2.submitted"]),
        _t("pass_check", "verifying", "closed", "核查通过", "Pass check", roles=["inspector"],
           requires=["observation"], effects=["grid_case2.pass_check"]),
        _t("fail_check", "verifying", "escalated", "核查不通过", "Fail check",
           roles=["inspector"], requires=["reason"], guards=["grid_case2.escalating_rework"],
           effects=["grid_case2.fail_check", "grid_case2.rework_escalated"]),
        _t("fail_check", "verifying", "joint_action", "核查不通过", "Fail check",
           roles=["inspector"], requires=["reason"], effects=["grid_case2.fail_check"]),
        _t("park", "joint_action", "parked", "挂账", "Park", roles=["coordinator", "street"],
           requires=["reason", "plan"], effects=["grid_case2.park"]),
        _t("resume", "parked", "joint_action", "恢复处置", "Resume",
           roles=["coordinator", "street"], effects=["grid_case2.resume"]),
        _t("escalate", ("triaged", "joint_action"), "escalated", "上报街道", "Escalate",
           roles=["coordinator", "system"], requires=["reason"],
           effects=["grid_case.escalated"]),
        _t("start_revisit", "closed", "revisit", "回头看", "Start revisit",
           roles=["coordinator", "volunteer", "system"]),
        _t("rate", ("closed", "revisit"), None, "满意度回访", "Rate satisfaction",
           roles=["resident", "coordinator"], requires=["satisfaction"],
           choices={"satisfaction": SATISFACTION}, guards=["grid_case2.not_rated"],
           effects=["grid_case2.rate"]),
        _t("confirm", "revisit", "archived", "确认未反弹", "Confirm solved",
           roles=["coordinator", "volunteer"], requires=["observation"],
           effects=["grid_case.confirmed"]),
        _t("reopen", "revisit", "escalated", "返工", "Reopen (rework)",
           roles=["coordinator", "volunteer", "resident"], requires=["reason"],
           guards=["grid_case2.escalating_rework"],
           effects=["grid_case.reopened", "grid_case2.rework_escalated"]),
        _t("reopen", "revisit", "joint_action", "返工", "Reopen (rework)",
           roles=["coordinator", "volunteer", "resident"], requires=["reason"],
           effects=["grid_case2.reopen"]),
        _t("note", "*", None, "情况备注", "Status note", requires=["text"]),
        *extension_transitions(("joint_action", "escalated"),
                               request_roles=("department", "coordinator", "street"),
                               approve_roles=("coordinator", "street"),
                               approve_effects=("grid_case2.extended",)),
    ),
)


def deadline(
    state: StateSpec, data: Mapping[str, Any], now: datetime
) -> timedelta | datetime | None:
    """The deadline rule of ``grid_case`` for both versions: ``@1``'s
    (`gridflow.workflows.grid_case.deadline`), and in ``verifying`` (``@2``)
    `CHECK_LIMIT` of working time (`gridflow.WorkingHours`).

    Example:
        >>> now = datetime(2025, 9, 30, 8, tzinfo=UTC)   # 16:00 in Shanghai, before 国庆
        >>> deadline(GRID_CASE_V2.state("verifying"), {}, now).isoformat()
        '2025-10-09T08:00:00+00:00'
    """
    if state.name == "verifying":
        return _hours().add(now, CHECK_LIMIT)
    return v1.deadline(state, data, now)


class GridCaseV2Plugin:
    """Registers `GRID_CASE_V2` with an engine (``Engine(plugins=[PLUGIN])``).

    Example:
        >>> import gridflow
        >>> engine = gridflow.Engine(plugins=[PLUGIN], entry_points=False)
        >>> engine.workflow("grid_case").version
        2
    """

    @hookimpl
    def gridflow_workflows(self) -> list[WorkflowSpec]:
        return [GRID_CASE_V2]


#: The plugin that registers `GRID_CASE_V2`.
PLUGIN = GridCaseV2Plugin()


#: The steps after which a case counts as solved (closed or archived) for 反弹.
_SOLVING = ("pass_check", "close", "confirm")


class Recurrence:
    """一类事: at ``triage`` of a ``grid_case@2``, find the cases of the same grid whose
    ``location.key`` and ``category`` match and that were closed or archived in the
    last ``window`` (default `RECURRENCE_WINDOW`, 90 days); the triage records them
    in its payload (``recurrence_of``), the case's ``links`` and
    ``data["recurrence_of"]``, and each earlier case gets a ``link`` event (反弹,
    flagged in both histories).

    ``store`` is the engine's store (read only). Register it as a plugin:
    ``Engine(store=s, plugins=[PLUGIN, Recurrence(s)])``.

    Example:
        >>> import gridflow
        >>> store = gridflow.MemoryStore()
        >>> engine = gridflow.Engine(store=store, entry_points=False,
        ...                          plugins=[PLUGIN, Recurrence(store, timedelta(days=60))])
        >>> Recurrence(store).window.days
        90
    """

    def __init__(self, store: Any, window: timedelta = RECURRENCE_WINDOW) -> None:
        self.store = store
        self.window = window

    def _solved_at(self, case_id: str) -> datetime | None:
        at = None
        for event in self.store.events(case_id):
            if event.trigger in _SOLVING:
                at = event.at
        return at

    def earlier(self, key: str, category: str, grid: str, now: datetime,
                exclude: str = "") -> list[str]:
        """Ids of the cases closed or archived within the window before ``now``."""
        found: list[str] = []
        after: str | None = None
        while True:
            page = self.store.query(workflow="grid_case", state=["closed", "revisit",
                                                                   "archived"],
                                    grid=grid, after=after, limit=500)
            for other in page.items:
                location = other.data.get("location")
                if (other.id == exclude or not isinstance(location, dict)
                        or location.get("key") != key or other.data.get("category") != category):
                    continue
                solved = self._solved_at(other.id)
                if solved is not None and now - self.window <= solved <= now:
                    found.append(other.id)
            if page.next is None:
                return found
            after = page.next

    @hookimpl
    def gridflow_before_fire(self, case: Any, trigger: str, actor: Any,
                             payload: dict[str, Any], now: datetime) -> None:
        if trigger != "triage" or case.workflow != "grid_case" or case.workflow_version < 2:
            return
        location = case.data.get("location")
        key = location.get("key") if isinstance(location, dict) else None
        if not isinstance(key, str) or not key:
            return
        found = self.earlier(key, str(payload.get("category")), case.grid, now, case.id)
        if found:
            payload["recurrence_of"] = found
        else:
            payload.pop("recurrence_of", None)


def acknowledged_on_migration(case: Any, target: str) -> Mapping[str, Any] | None:
    """The data effect of `gridflow.GRID_CASE_V1_TO_V2`: a department already
    dispatched under ``@1`` counts as having acknowledged (签收) at the time of
    its case's last step; in ``joint_action`` the handling limit in force is kept.

    Example:
        >>> import gridflow
        >>> t = datetime(2026, 1, 5, tzinfo=UTC)
        >>> c = gridflow.Case("c-1", "grid_case", 1, "joint_action", 3,
        ...                   {"departments": ["市政"]}, "A", t, t)
        >>> acknowledged_on_migration(c, "joint_action")["acknowledged"]
        {'市政': '2026-01-05T00:00:00+00:00'}
    """
    departments = case.data.get("departments")
    if not isinstance(departments, list) or not departments:
        return None
    at = _iso(case.updated_at)
    out: dict[str, Any] = {"acknowledged": {str(d): at for d in departments},
                           "ack_due": {}, "ack_late": {}}
    if target == "joint_action" and case.deadline_at is not None:
        out["handling_due"] = _iso(case.deadline_at)
    return out
