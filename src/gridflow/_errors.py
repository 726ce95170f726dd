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
    "CaseNotVisible",
    "ConcurrencyError",
    "DecryptionError",
    "GridflowError",
    "GuardRejected",
    "IdempotencyConflict",
    "IntegrityError",
    "InvalidArgument",
    "InvalidPayload",
    "InvalidTransition",
    "KeyringError",
    "LogError",
    "MigrationError",
    "MissingPayload",
    "NoteError",
    "PermissionDenied",
    "PersonalDataError",
    "PluginError",
    "ProofError",
    "SchemaVersionError",
    "SpecError",
    "SpecProblem",
    "StoreError",
    "UnknownWorkflow",
    "WorkerError",
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


class MigrationError(GridflowError):
    """A migration plan is refused before anything is stored; ``problems``
    lists every reason (an unmapped state, a missing target state, a retired
    target version...).

    Example:
        >>> print(MigrationError("grid_case@1 -> @2", ["state 'revisit' is not mapped"]))
        migration grid_case@1 -> @2 is refused (nothing was changed):
          - state 'revisit' is not mapped
    """

    def __init__(self, plan: str, problems: Sequence[str]) -> None:
        self.plan = plan
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems[:MAX_LISTED_PROBLEMS])
        more = len(self.problems) - MAX_LISTED_PROBLEMS
        super().__init__(f"migration {plan} is refused (nothing was changed):\n{lines}"
                         + (f"\n  ... and {more} more" if more > 0 else ""))


class UnknownWorkflow(GridflowError):
    """No workflow of that name (and version) is registered."""

    def __init__(self, name: str, version: int | None, known: Iterable[str], *,
                 retired: bool = False) -> None:
        self.name = name
        self.version = version
        self.known = sorted(known)
        #: True when the version is registered but retired (no new case opens on it).
        self.retired = retired
        if retired:
            super().__init__(
                f"workflow {name}@{version} is retired: no new case opens on it; versions "
                f"open for new cases: {', '.join(self.known) or '(none)'}")
            return
        which = f"{name!r}" if version is None else f"{name!r} version {version}"
        super().__init__(
            f"workflow {which} is not registered; registered workflows: "
            f"{', '.join(self.known) or '(none)'}"
        )


class InvalidArgument(GridflowError, ValueError):
    """An argument of a gridflow call is malformed (an actor, a limit, a date, an id).

    Also a `ValueError`, so code that already catches that keeps working.

    Example:
        >>> import gridflow
        >>> try:
        ...     gridflow.Actor("")
        ... except gridflow.InvalidArgument as exc:
        ...     print(exc)
        Actor: the actor id is empty; every actor needs a non-empty string id
    """


class UnknownState(InvalidArgument, KeyError):
    """`WorkflowSpec.state` was asked for a state the spec does not have.

    Also a `KeyError`, which that method raised before 0.2.
    """

    __str__ = Exception.__str__  # KeyError's would quote the whole message


class CaseNotFound(GridflowError):
    """No case with that id exists in the store."""

    case_id: str | None

    def __init__(self, case_id: str) -> None:
        self.case_id = case_id
        super().__init__(f"case {case_id!r} does not exist in this store")


def _not_visible_text(case_id: str, actor_id: str) -> str:
    return (f"case {case_id!r} does not exist or is outside the grids of actor {actor_id!r}")


class PermissionDenied(GridflowError):
    """The actor lacks a role for the trigger, or the case is outside the actor's grids."""

    case_id: str | None

    def __init__(self, message: str, *, case_id: str | None = None, actor_id: str = "") -> None:
        self.case_id = case_id
        self.actor_id = actor_id
        super().__init__(message)


class CaseNotVisible(CaseNotFound, PermissionDenied):
    """The case does not exist, or it is outside the acting actor's grids.

    Raised wherever an actor names a case: the two are told apart by no
    type, attribute or word of the message, so an actor cannot learn which
    case ids exist in other grids. It is both a `CaseNotFound` and a
    `PermissionDenied`.

    Example:
        >>> print(CaseNotVisible("c-9", "w-1"))
        case 'c-9' does not exist or is outside the grids of actor 'w-1'
    """

    def __init__(self, case_id: str, actor_id: str, *, key: str | None = None,
                 no_grids: bool = False) -> None:
        self.case_id = case_id
        self.actor_id = actor_id
        if key is None:
            text = _not_visible_text(case_id, actor_id)
        else:
            # A replayed idempotency key whose step is on a case the actor cannot
            # see: say so without naming that case.
            text = (f"idempotency key {key!r} names a step on a case that does not exist or "
                    f"is outside the grids of actor {actor_id!r}")
        if no_grids:
            # Said of the actor, never of the case: the same for a missing one.
            text += ("; the actor has no grids and may touch no case: pass grids=gridflow."
                     "ALL_GRIDS for street-level actors")
        GridflowError.__init__(self, text)


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
    """Stored history does not verify: an event or the case row was edited,
    deleted or reordered.

    ``field`` names what disagrees (``"data"``, ``"grid"``, ``"payload"``,
    ``"hash"``, ...) and ``seq`` the first event where stored and recomputed
    values part (``None`` when the case has no events).

    Example:
        >>> print(IntegrityError("c-1", 3, "the row's data differs from the fold", field="data"))
        case 'c-1' fails verification at seq 3 (field 'data'): the row's data differs from the fold
    """

    def __init__(self, case_id: str, seq: int | None, problem: str, *,
                 field: str | None = None) -> None:
        self.case_id = case_id
        self.seq = seq
        self.problem = problem
        self.field = field
        at = "" if seq is None else f" at seq {seq}"
        what = "" if field is None else f" (field {field!r})"
        super().__init__(f"case {case_id!r} fails verification{at}{what}: {problem}")


class ProofError(IntegrityError):
    """A Merkle inclusion or consistency proof does not verify: the log was tampered with.

    Unlike its parent it names no case: a proof is about the whole log (its
    leaf indexes and tree sizes), and the caller that knows which case a leaf
    belongs to adds that itself.

    Example:
        >>> import gridflow
        >>> err = gridflow.ProofError("inclusion proof for leaf 3 of 8: wrong root")
        >>> isinstance(err, gridflow.IntegrityError), str(err)
        (True, 'inclusion proof for leaf 3 of 8: wrong root')
    """

    def __init__(self, problem: str) -> None:
        # Skip IntegrityError's "case ... fails verification" wording: no case here.
        GridflowError.__init__(self, problem)
        self.case_id = ""
        self.seq = None
        self.problem = problem


class LogError(GridflowError):
    """The Merkle log was used wrongly: a leaf index or tree size out of range, a node
    missing from the node storage, or an append that would rewrite stored nodes.

    Example:
        >>> import gridflow
        >>> str(gridflow.LogError("leaf index 9 is outside a tree of 4 leaves"))
        'leaf index 9 is outside a tree of 4 leaves'
    """


class NoteError(GridflowError):
    """A signed note, checkpoint or key string is malformed, signed by no trusted key,
    or carries a signature that does not verify.

    Example:
        >>> import gridflow
        >>> str(gridflow.NoteError("note text must end with a newline"))
        'note text must end with a newline'
    """


class CalendarError(GridflowError):
    """A calendar cannot count a deadline: a date outside what it knows, or bad input.

    Raised instead of guessing, so a holiday is never silently counted as a
    working day.

    Example:
        >>> import gridflow
        >>> str(gridflow.CalendarError("2031-01-02 is outside 2004-01-01..2026-12-31"))
        '2031-01-02 is outside 2004-01-01..2026-12-31'
    """


class PluginError(GridflowError):
    """A plugin cannot be registered: a misspelled or unknown ``gridflow_*`` hook,
    a hook not marked ``@gridflow.hookimpl``, or an entry point that does not load.
    ``plugin`` is the plugin's registered (or entry-point) name.

    Example:
        >>> print(PluginError("NoNightWork", ["'gridflow_vetoo' is not a gridflow hook"]))
        plugin 'NoNightWork': 'gridflow_vetoo' is not a gridflow hook
    """

    def __init__(self, plugin: str, problems: Sequence[str]) -> None:
        self.plugin = plugin
        self.problems = list(problems)
        super().__init__(f"plugin {plugin!r}: " + "; ".join(self.problems))


class StoreError(GridflowError):
    """The storage backend failed; the original exception is chained as ``__cause__``."""


class SchemaVersionError(StoreError):
    """The database schema is newer (or older) than this version of gridflow handles."""


class PersonalDataError(GridflowError):
    """Personal data (个人信息) could not be protected or opened: keys, ciphertexts.

    Messages name the subject, case or path involved, never a personal value
    and never key material.
    """


class KeyringError(PersonalDataError):
    """A master key is missing or malformed, or a wrapped key was not made by it.

    Example:
        >>> import gridflow
        >>> try:
        ...     gridflow.Keyring(b"too short")
        ... except gridflow.GridflowError as exc:
        ...     print(type(exc).__name__)
        KeyringError
    """


class DecryptionError(PersonalDataError):
    """A ciphertext does not open: wrong subject key, moved to another place, or edited.

    AES-GCM authenticates the ciphertext together with where it belongs (case,
    path, subject, reference id), so any of these raise this rather than return
    a wrong value.
    """


class WorkerError(GridflowError):
    """The worker cannot start as configured: its metrics endpoint cannot listen,
    or ``prometheus-client`` is missing.

    Example:
        >>> raise WorkerError("the metrics endpoint cannot listen on 127.0.0.1:9464")
        Traceback (most recent call last):
        gridflow._errors.WorkerError: the metrics endpoint cannot listen on 127.0.0.1:9464
    """
