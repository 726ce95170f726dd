"""Extensions (延期): ask for more time, and approve or refuse it.

Three internal transitions (the state stays) that any workflow can add with
`extension_transitions`:

- ``request_extension`` (payload ``reason``, ``until``): who asked (the
  actor), why, and until when; kept in ``data["extension_request"]`` until
  it is decided. A new request replaces a pending one.
- ``approve_extension`` (optional payload ``until`` to grant less than was
  asked): moves the case's ``deadline_at`` to ``until`` and counts the
  extension in ``data["extensions"]`` (延期数, for 延期率); the granted date is
  kept in ``data["extended_until"]``.
- ``reject_extension`` (payload ``reason``): drops the pending request.

``until`` is an ISO 8601 date-time **with** a UTC offset, e.g.
``"2025-10-21T00:00:00+08:00"`` (the end of 20 October, Beijing time). A
bare date is refused: whose midnight it means would be a guess.

Every step is in the case's history, like any other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from gridflow.plugins import Effect, Guard
from gridflow.spec import OVERDUE_KEY, TransitionSpec
from gridflow.step import Step

__all__ = ["EFFECTS", "GUARDS", "REQUEST_KEY", "extension_transitions", "parse_until"]

#: Where a pending request is kept in the case's data.
REQUEST_KEY = "extension_request"


def parse_until(value: object) -> datetime | str:
    """``value`` as an aware UTC datetime, or a sentence saying what is wrong with it.

    Example:
        >>> parse_until("2025-10-21T00:00:00+08:00").isoformat()
        '2025-10-20T16:00:00+00:00'
        >>> parse_until("2025-10-20").startswith("'until' must be a date-time with a UTC offset")
        True
    """
    example = "'until' must be a date-time with a UTC offset, e.g. '2025-10-21T00:00:00+08:00'"
    if not isinstance(value, str):
        return f"{example}; got {value!r}"
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return f"{example}; got {value!r}"
    if when.tzinfo is None or when.utcoffset() is None:
        return f"{example}; got {value!r}"
    return when.astimezone(UTC)


def _current_deadline(step: Step) -> datetime | None:
    # After the timer marked the case overdue, the missed deadline is in the data.
    if step.case.deadline_at is not None:
        return step.case.deadline_at
    missed = step.data.get(OVERDUE_KEY)
    return datetime.fromisoformat(missed) if isinstance(missed, str) else None


def _check_until(step: Step, value: object) -> str | None:
    until = parse_until(value)
    if isinstance(until, str):
        return until
    if until <= step.now:
        return f"'until' {until.isoformat()} is not in the future (now {step.now.isoformat()})"
    current = _current_deadline(step)
    if current is not None and until <= current:
        return (f"'until' {until.isoformat()} is not later than the current deadline "
                f"{current.isoformat()}; an extension must give more time")
    return None


def _pending(step: Step) -> Mapping[str, Any] | None:
    request = step.data.get(REQUEST_KEY)
    # A request made in an earlier state was about that state's deadline.
    if isinstance(request, Mapping) and request.get("state") == step.state:
        return request
    return None


def _valid_request(step: Step) -> str | None:
    return _check_until(step, step.payload.get("until"))


def _request_pending(step: Step) -> str | None:
    if _pending(step) is None:
        return f"no extension request is pending in state {step.state!r}; request_extension first"
    return None


def _approvable(step: Step) -> str | None:
    request = _pending(step)
    if request is None:
        return f"no extension request is pending in state {step.state!r}; request_extension first"
    return _check_until(step, step.payload.get("until") or request.get("until"))


def _requested(step: Step) -> None:
    until = parse_until(step.payload["until"])
    assert isinstance(until, datetime)  # the guard checked it
    step.data[REQUEST_KEY] = {
        "by": step.actor.id,
        "reason": step.payload["reason"],
        "until": until.isoformat(),
        "at": step.now.isoformat(),
        "state": step.state,
    }


def _approved(step: Step) -> None:
    request = step.data.pop(REQUEST_KEY)
    until = parse_until(step.payload.get("until") or request["until"])
    assert isinstance(until, datetime)  # the guard checked it
    step.deadline_at = until
    step.data["extensions"] = int(step.data.get("extensions", 0)) + 1
    step.data["extended_until"] = until.isoformat()


def _rejected(step: Step) -> None:
    step.data.pop(REQUEST_KEY, None)


#: The extension guards, by registered name.
GUARDS: Mapping[str, Guard] = {
    "extension.valid_request": _valid_request,
    "extension.pending": _request_pending,
    "extension.approvable": _approvable,
}

#: The extension effects, by registered name.
EFFECTS: Mapping[str, Effect] = {
    "extension.requested": _requested,
    "extension.approved": _approved,
    "extension.rejected": _rejected,
}


def extension_transitions(
    sources: str | Sequence[str],
    *,
    request_roles: Sequence[str],
    approve_roles: Sequence[str],
    approve_effects: Sequence[str] = (),
) -> tuple[TransitionSpec, ...]:
    """The three extension transitions from ``sources``, for a workflow's spec;
    ``approve_effects`` run after ``extension.approved`` (a workflow whose data keeps
    its own copy of the limit moves it there).

    Example:
        >>> [t.trigger for t in extension_transitions(
        ...     "joint_action", request_roles=["department"], approve_roles=["coordinator"])]
        ['request_extension', 'approve_extension', 'reject_extension']
    """
    source = (sources,) if isinstance(sources, str) else tuple(sources)
    return (
        TransitionSpec("request_extension", source, None, label_zh="申请延期",
                       label_en="Request extension", roles=tuple(request_roles),
                       requires=("reason", "until"), guards=("extension.valid_request",),
                       effects=("extension.requested",)),
        TransitionSpec("approve_extension", source, None, label_zh="批准延期",
                       label_en="Approve extension", roles=tuple(approve_roles),
                       guards=("extension.approvable",),
                       effects=("extension.approved", *approve_effects)),
        TransitionSpec("reject_extension", source, None, label_zh="不予延期",
                       label_en="Refuse extension", roles=tuple(approve_roles),
                       requires=("reason",), guards=("extension.pending",),
                       effects=("extension.rejected",)),
    )
