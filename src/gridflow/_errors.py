"""The one error hierarchy of gridflow.

Every message says what was wrong, on which case / trigger / state, and what
is allowed instead, so a host service can show it to a person unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import attrs

__all__ = [
    "CalendarError",
    "CaseNotFound",
    "ConcurrencyError",
    "GridflowError",
    "GuardRejected",
    "IdempotencyConflict",
    "IntegrityError",
    "InvalidPayload",
    "InvalidTransition",
    "MissingPayload",
    "PermissionDenied",
    "SchemaVersionError",
    "SpecError",
    "SpecProblem",
    "StoreError",
    "UnknownWorkflow",
]


class GridflowError(Exception):
    """Base class of every error gridflow raises on purpose.

    Example:
        >>> import gridflow
        >>> try:
        ...     raise gridflow.CaseNotFound("c-1")
        ... except gridflow.GridflowError as exc:
        ...     print(exc)
        case 'c-1' does not exist in this store
    """


@attrs.frozen
class SpecProblem:
    """One problem found in a workflow spec: where, what, and why it matters.

    Example:
        >>> str(SpecProblem("transitions[0]", "unknown dest state 'x'", "declare it"))
        "transitions[0]: unknown dest state 'x' (declare it)"
    """

    where: str
    what: str
    why: str = ""

    def __str__(self) -> str:
        return f"{self.where}: {self.what}" + (f" ({self.why})" if self.why else "")


#: How many problems a `SpecError` message lists (all are kept in ``problems``).
MAX_LISTED_PROBLEMS = 50
#: Longest line of a `SpecError` message: a problem quoting a huge value is cut.
_MAX_LINE = 300


class SpecError(GridflowError):
    """A workflow spec is invalid; ``problems`` lists **every** problem found.

    The message lists the first `MAX_LISTED_PROBLEMS`, then how many more there are.

    Example:
        >>> err = SpecError("t", [SpecProblem(f"states[{i}]", "bad") for i in range(52)])
        >>> str(err).splitlines()[-1]
        '  ... and 2 more problem(s)'
    """

    def __init__(self, spec_name: str, problems: Sequence[SpecProblem]) -> None:
        self.spec_name = spec_name
        self.problems = list(problems)
        lines = []
        for p in self.problems[:MAX_LISTED_PROBLEMS]:
            line = f"  - {p}"
            lines.append(line if len(line) <= _MAX_LINE else line[:_MAX_LINE - 3] + "...")
        if len(self.problems) > MAX_LISTED_PROBLEMS:
            lines.append(f"  ... and {len(self.problems) - MAX_LISTED_PROBLEMS} more problem(s)")
        name = spec_name if len(spec_name) <= 60 else spec_name[:57] + "..."
        super().__init__(
            f"workflow spec {name!r} has {len(self.problems)} problem(s):\n" + "\n".join(lines)
        )


class UnknownWorkflow(GridflowError):
    """No workflow of that name (and version) is registered."""

    def __init__(self, name: str, version: int | None, known: Iterable[str]) -> None:
        self.name = name
        self.version = version
        self.known = sorted(known)
        which = f"{name!r}" if version is None else f"{name!r} version {version}"
        super().__init__(
            f"workflow {which} is not registered; registered workflows: "
            f"{', '.join(self.known) or '(none)'}"
        )


class CaseNotFound(GridflowError):
    """No case with that id exists in the store."""

    def __init__(self, case_id: str) -> None:
        self.case_id = case_id
        super().__init__(f"case {case_id!r} does not exist in this store")


class InvalidTransition(GridflowError):
    """The trigger is unknown, or not allowed in the case's current state."""

    def __init__(
        self, case_id: str, state: str, trigger: str, allowed: Iterable[str], *, known: bool = True
    ) -> None:
        self.case_id = case_id
        self.state = state
        self.trigger = trigger
        self.allowed = sorted(allowed)
        what = (
            f"trigger {trigger!r} is not allowed in state {state!r}"
            if known
            else f"trigger {trigger!r} does not exist in this workflow"
        )
        super().__init__(
            f"case {case_id!r}: {what}; allowed in {state!r}: "
            f"{', '.join(self.allowed) or '(none: the state is terminal)'}"
        )


class GuardRejected(GridflowError):
    """A guard (spec guard, plugin veto or a failing hook) refused the step."""

    def __init__(self, case_id: str, state: str, trigger: str, guard: str, reason: str) -> None:
        self.case_id = case_id
        self.state = state
        self.trigger = trigger
        self.guard = guard
        self.reason = reason
        super().__init__(
            f"case {case_id!r} in state {state!r}: trigger {trigger!r} refused by "
            f"guard {guard!r}: {reason}"
        )


class PermissionDenied(GridflowError):
    """The actor lacks a role for the trigger, or the case is outside the actor's grids."""

    def __init__(self, message: str, *, case_id: str | None = None, actor_id: str = "") -> None:
        self.case_id = case_id
        self.actor_id = actor_id
        super().__init__(message)


class InvalidPayload(GridflowError):
    """A payload or data value is malformed (wrong type, not JSON-able, bad choice)."""

    def __init__(self, message: str, *, case_id: str | None = None, trigger: str = "") -> None:
        self.case_id = case_id
        self.trigger = trigger
        super().__init__(message)


class MissingPayload(InvalidPayload):
    """Fields the trigger (or opening the case) requires are missing from the payload."""

    def __init__(
        self, case_id: str | None, state: str, trigger: str, missing: Sequence[str],
        required: Sequence[str],
    ) -> None:
        self.state = state
        self.missing = list(missing)
        self.required = list(required)
        where = f"case {case_id!r} in state {state!r}" if case_id else f"opening in {state!r}"
        super().__init__(
            f"{where}: trigger {trigger!r} needs payload field(s) "
            f"{', '.join(self.missing)}; required: {', '.join(self.required)}",
            case_id=case_id,
            trigger=trigger,
        )


class ConcurrencyError(GridflowError):
    """The case changed since it was read: a stale ``expected_version`` or a lost race."""

    def __init__(self, case_id: str, expected: int, actual: int | None = None) -> None:
        self.case_id = case_id
        self.expected = expected
        self.actual = actual
        now = "" if actual is None else f", it is now at version {actual}"
        super().__init__(
            f"case {case_id!r} is no longer at version {expected}{now}; "
            "re-read the case and try again (or pass retries=n to fire)"
        )


class IdempotencyConflict(GridflowError):
    """An idempotency key was reused for a different case or trigger."""

    def __init__(self, key: str, stored: str, attempted: str) -> None:
        self.key = key
        super().__init__(
            f"idempotency key {key!r} was already used for {stored}; it cannot be "
            f"reused for {attempted}. Use a new key for a new step."
        )


class IntegrityError(GridflowError):
    """Stored history does not verify: an event was edited, deleted or reordered."""

    def __init__(self, case_id: str, seq: int | None, problem: str) -> None:
        self.case_id = case_id
        self.seq = seq
        self.problem = problem
        at = "" if seq is None else f" at seq {seq}"
        super().__init__(f"case {case_id!r} fails verification{at}: {problem}")


class CalendarError(GridflowError):
    """A calendar cannot count a deadline: a date outside what it knows, or bad input.

    Raised instead of guessing, so a holiday is never silently counted as a
    working day.

    Example:
        >>> import gridflow
        >>> str(gridflow.CalendarError("2031-01-02 is outside 2004-01-01..2026-12-31"))
        '2031-01-02 is outside 2004-01-01..2026-12-31'
    """


class StoreError(GridflowError):
    """The storage backend failed; the original exception is chained as ``__cause__``."""


class SchemaVersionError(StoreError):
    """The database schema is newer (or older) than this version of gridflow handles."""
