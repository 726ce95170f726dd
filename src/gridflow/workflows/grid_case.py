"""The grid case lifecycle (网格案件): reported → triaged → joint_action → closed →
revisit → archived, with reject, duplicates, escalation to the street level,
per-department reports inside the joint action, and rework (返工) from the revisit.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from gridflow.plugins import Effect, Guard
from gridflow.spec import OVERDUE_KEY, StateSpec, TransitionSpec, WorkflowSpec
from gridflow.step import Step
from gridflow.workflows.extension import extension_transitions

__all__ = [
    "EFFECTS", "GRID_CASE", "GUARDS", "JOINT_ACTION_DAYS", "PRIORITIES", "REVISIT_AFTER",
    "SOURCES", "deadline",
]

#: Where a problem came from: door-to-door visit, a resident, the 12345 hotline, patrol.
SOURCES = ("visit", "resident", "hotline", "patrol", "other")
#: Triage priorities; the Shanghai 12345 classes give them 1, 5 and 15 working days.
PRIORITIES = ("urgent", "normal", "low")

#: Days the joint action (联合处置) may take, by triage priority: the Shanghai
#: 12345 classes. Counted by the engine's calendar, so they are working days
#: with `gridflow.WorkingDays` (and calendar days with the default `CalendarDays`).
JOINT_ACTION_DAYS: Mapping[str, int] = {"urgent": 1, "normal": 5, "low": 15}

#: How long after closing the look-back (回头看) starts: calendar days whatever
#: the engine's calendar, since a problem can come back on holidays too.
REVISIT_AFTER = timedelta(days=30)

_REPORTERS = ("resident", "grid_worker", "volunteer", "coordinator")


def _departments_listed(step: Step) -> str | None:
    value = step.payload.get("departments")
    if not isinstance(value, list) or not value or not all(
        isinstance(d, str) and d for d in value
    ):
        return f"'departments' must be a non-empty list of department names, got {value!r}"
    if len(set(value)) != len(value):
        return f"'departments' lists a department twice: {value!r}"
    return None


def _department_pending(step: Step) -> str | None:
    dept = step.payload.get("department")
    dispatched = step.data.get("departments", [])
    done = step.data.get("done", {})
    if dept not in dispatched:
        return (f"department {dept!r} was not dispatched to this case; dispatched: "
                f"{', '.join(dispatched) or '(none)'}")
    if dept in done:
        return f"department {dept!r} has already reported its part done"
    return None


def _all_departments_done(step: Step) -> str | None:
    done = step.data.get("done", {})
    pending = [d for d in step.data.get("departments", []) if d not in done]
    if pending:
        return f"departments still working: {', '.join(pending)}; each must report_done first"
    return None


def _duplicate_exists(step: Step) -> str | None:
    other_id = step.payload.get("duplicate_of")
    if other_id == step.case.id:
        return "a case cannot be a duplicate of itself"
    other = step.lookup(str(other_id))
    if other is None:
        return f"case {other_id!r} (duplicate_of) does not exist"
    return None


def _set_departments(step: Step) -> None:
    step.data["departments"] = list(step.payload["departments"])
    step.data["plan"] = step.payload["plan"]
    step.data["done"] = {}


def _mark_done(step: Step) -> None:
    done = dict(step.data.get("done", {}))
    done[step.payload["department"]] = step.payload["result"]
    step.data["done"] = done


def _reassign(step: Step) -> None:
    done = step.data.get("done", {})
    kept = [d for d in step.data.get("departments", []) if d in done]
    step.data["departments"] = kept + [d for d in step.payload["departments"] if d not in kept]


def _triage(step: Step) -> None:
    for field in ("category", "priority", "area", "subcategory"):
        if field in step.payload:
            step.data[field] = step.payload[field]


def _link_duplicate(step: Step) -> None:
    other = str(step.payload["duplicate_of"])
    step.data["duplicate_of"] = other
    if other not in step.links:
        step.links.append(other)


def _escalated(step: Step) -> None:
    step.data["escalations"] = int(step.data.get("escalations", 0)) + 1


def _reopened(step: Step) -> None:
    # Rework: every department must report again.
    step.data["done"] = {}
    step.data["reopened"] = int(step.data.get("reopened", 0)) + 1


def _confirmed(step: Step) -> None:
    step.data["revisit"] = "passed"


def _closing_deadline(step: Step) -> None:
    """Record in the ``close`` event the handling deadline in force and whether it was met.

    Sets ``payload["deadline_at"]`` (ISO 8601 UTC, or ``None`` without a
    deadline) and ``payload["on_time"]`` (closed at or before it; ``True``
    without a deadline), overwriting whatever the caller put under those keys:
    they are facts the engine derives, hashed into the history like the
    ``deadline_at`` of the timer's breach events.

    Example:
        >>> import gridflow
        >>> from datetime import timedelta
        >>> clock = gridflow.FixedClock()
        >>> engine = gridflow.Engine(clock=clock, entry_points=False)
        >>> boss = gridflow.Actor("s", ["coordinator"], grids=gridflow.ALL_GRIDS)
        >>> c = engine.open("grid_case", actor=gridflow.Actor("r", ["resident"],
        ...                                                   grids=gridflow.ALL_GRIDS),
        ...                 version=1, data={"title": "井盖缺失", "source": "resident"})
        >>> _ = engine.fire(c.id, "triage", actor=boss,
        ...                 payload={"category": "市政设施", "priority": "urgent"})
        >>> _ = engine.fire(c.id, "dispatch", actor=boss,
        ...                 payload={"departments": ["市政"], "plan": "补装井盖"})
        >>> _ = engine.fire(c.id, "report_done", actor=gridflow.Actor("d", ["department"],
        ...                                                           grids=gridflow.ALL_GRIDS),
        ...                 payload={"department": "市政", "result": "已补装"})
        >>> _ = clock.advance(timedelta(days=2))   # the 1-day limit passed, no tick ran
        >>> _ = engine.fire(c.id, "close", actor=boss, payload={"on_time": True})
        >>> engine.history(c.id)[-1].payload["on_time"]
        False
    """
    # Recorded in the close event itself so 按期结案率 does not depend on how often
    # the timer runs: the current deadline_at is the only copy of the deadline,
    # and the next step replaces it.
    deadline = step.case.deadline_at
    if deadline is None:
        # The timer marked the case overdue: it cleared deadline_at and kept the missed one.
        missed = step.data.get(OVERDUE_KEY)
        deadline = datetime.fromisoformat(missed) if isinstance(missed, str) else None
    if deadline is None:
        step.payload["deadline_at"] = None
        step.payload["on_time"] = True
        return
    deadline = deadline.astimezone(UTC)
    step.payload["deadline_at"] = deadline.isoformat()
    step.payload["on_time"] = step.now <= deadline


GUARDS: Mapping[str, Guard] = {
    "grid_case.departments_listed": _departments_listed,
    "grid_case.department_pending": _department_pending,
    "grid_case.all_departments_done": _all_departments_done,
    "grid_case.duplicate_exists": _duplicate_exists,
}

EFFECTS: Mapping[str, Effect] = {
    "grid_case.triage": _triage,
    "grid_case.set_departments": _set_departments,
    "grid_case.mark_done": _mark_done,
    "grid_case.reassign": _reassign,
    "grid_case.link_duplicate": _link_duplicate,
    "grid_case.escalated": _escalated,
    "grid_case.reopened": _reopened,
    "grid_case.confirmed": _confirmed,
    "grid_case.closing_deadline": _closing_deadline,
}


def _t(trigger: str, source: Any, dest: str | None, zh: str, en: str, **kw: Any) -> TransitionSpec:
    return TransitionSpec(trigger, source, dest, label_zh=zh, label_en=en, **kw)


GRID_CASE = WorkflowSpec(
    name="grid_case",
    version=1,
    initial="reported",
    labels={"zh": "网格案件", "en": "Grid case"},
    open_roles=_REPORTERS,
    open_requires=("title", "source"),
    open_choices={"source": SOURCES},
    states=(
        StateSpec("reported", "已上报", "Reported", deadline=timedelta(days=1), tags=("open",)),
        StateSpec("triaged", "已立案", "Triaged", deadline=timedelta(days=1),
                  tags=("open", "accepted")),
        StateSpec("joint_action", "联合处置", "Joint action", deadline=timedelta(days=5),
                  on_breach="escalate", tags=("open", "accepted", "handling")),
        StateSpec("escalated", "上报街道", "Escalated to street level", deadline=timedelta(days=5),
                  tags=("open", "accepted")),
        StateSpec("closed", "已结案", "Closed", deadline=timedelta(days=30),
                  on_breach="start_revisit", tags=("closed",)),
        StateSpec("revisit", "回头看", "Revisit (look back)", deadline=timedelta(days=7),
                  tags=("closed",)),
        StateSpec("archived", "已归档", "Archived", terminal=True, tags=("closed", "ended")),
        StateSpec("rejected", "不予立案", "Rejected", terminal=True, tags=("ended",)),
    ),
    transitions=(
        _t("triage", "reported", "triaged", "立案分类", "Triage", roles=["coordinator"],
           requires=["category", "priority"], choices={"priority": PRIORITIES},
           effects=["grid_case.triage"]),
        _t("reject", "reported", "rejected", "不予受理", "Reject", roles=["coordinator"],
           requires=["reason"]),
        _t("mark_duplicate", "reported", "rejected", "重复件", "Mark duplicate",
           roles=["coordinator"], requires=["duplicate_of"],
           guards=["grid_case.duplicate_exists"], effects=["grid_case.link_duplicate"]),
        _t("dispatch", ("triaged", "escalated"), "joint_action", "派遣联合处置", "Dispatch",
           roles=["coordinator", "street"], requires=["departments", "plan"],
           guards=["grid_case.departments_listed"], effects=["grid_case.set_departments"]),
        _t("report_done", "joint_action", None, "部门处置完毕", "Department reports done",
           roles=["department"], requires=["department", "result"],
           guards=["grid_case.department_pending"], effects=["grid_case.mark_done"]),
        _t("reassign", "joint_action", None, "调整处置部门", "Reassign departments",
           roles=["coordinator"], requires=["departments"],
           guards=["grid_case.departments_listed"], effects=["grid_case.reassign"]),
        _t("close", "joint_action", "closed", "核实结案", "Close", roles=["coordinator"],
           guards=["grid_case.all_departments_done"], effects=["grid_case.closing_deadline"]),
        _t("escalate", ("triaged", "joint_action"), "escalated", "上报街道", "Escalate",
           roles=["coordinator", "system"], requires=["reason"],
           effects=["grid_case.escalated"]),
        _t("start_revisit", "closed", "revisit", "回头看", "Start revisit",
           roles=["coordinator", "volunteer", "system"]),
        _t("confirm", "revisit", "archived", "确认未反弹", "Confirm solved",
           roles=["coordinator", "volunteer"], requires=["observation"],
           effects=["grid_case.confirmed"]),
        _t("reopen", "revisit", "joint_action", "返工", "Reopen (rework)",
           roles=["coordinator", "volunteer", "resident"], requires=["reason"],
           effects=["grid_case.reopened"]),
        _t("note", "*", None, "情况备注", "Status note", requires=["text"]),
        *extension_transitions(("joint_action", "escalated"),
                               request_roles=("department", "coordinator", "street"),
                               approve_roles=("coordinator", "street")),
    ),
)


def deadline(
    state: StateSpec, data: Mapping[str, Any], now: datetime
) -> timedelta | datetime | None:
    """The built-in default deadline rule of ``grid_case`` (a `DeadlineRule`;
    any `gridflow_deadline` plugin answers first): `JOINT_ACTION_DAYS` by the
    case's ``priority`` in ``joint_action``; `REVISIT_AFTER` calendar days in
    ``closed``; ``None`` (the spec's deadline) elsewhere.

    Example:
        >>> from datetime import UTC
        >>> now = datetime(2025, 9, 26, 2, tzinfo=UTC)
        >>> deadline(GRID_CASE.state("joint_action"), {"priority": "low"}, now)
        datetime.timedelta(days=15)
        >>> deadline(GRID_CASE.state("closed"), {}, now).isoformat()
        '2025-10-26T02:00:00+00:00'
    """
    if state.name == "joint_action":
        days = JOINT_ACTION_DAYS.get(str(data.get("priority")))
        return None if days is None else timedelta(days=days)
    if state.name == "closed":
        # An absolute time, so a working-day calendar does not stretch it.
        return now + REVISIT_AFTER
    return None
