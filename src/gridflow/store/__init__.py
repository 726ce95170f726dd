"""Storage: the `Store` protocol every backend implements, and the backends.

The protocol is shaped for a transactional database: `Store.commit` takes
every write of one step (the case's new row and its event, plus any linked
case touched by the same step) and applies all of them or none, each
guarded by the version it expects the stored case to have.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, runtime_checkable

import attrs

from gridflow._errors import InvalidArgument, InvalidPayload
from gridflow._fastinit import frozen_init
from gridflow.model import Case, Event
from gridflow.values import MAX_INT

if TYPE_CHECKING:
    from gridflow.store.memory import MemoryStore
    from gridflow.store.sql import SQLStore

__all__ = [
    "COUNT_COLUMNS",
    "MemoryStore",
    "Page",
    "SQLStore",
    "Store",
    "Write",
    "check_claim",
    "check_count_columns",
    "check_query",
    "check_retired",
    "cursor",
    "parse_cursor",
]

#: The columns `Store.counts` can group by.

COUNT_COLUMNS = ("workflow", "workflow_version", "state", "grid")


@frozen_init
@attrs.frozen(slots=True)
class Write:
    """One case write inside a `Store.commit`.

    ``expected_version`` is the version the stored case must have now (0: the
    case must not exist yet). ``case.version`` must equal ``event.seq``.
    """

    case: Case
    event: Event
    expected_version: int


@attrs.frozen
class Page:
    """One page of a keyset-paginated query: pass ``next`` back as ``after``.

    ``next`` is ``None`` on the last page.
    """

    items: list[Case]
    next: str | None


def cursor(case: Case) -> str:
    """The keyset cursor just after ``case``: ``"<opened_at in UTC, ISO 8601>|<id>"``.

    Every store writes and reads this same format, so a cursor from one page
    of a query is valid on the next whichever backend answers it.

    Example:
        >>> from datetime import datetime, UTC
        >>> t = datetime(2026, 1, 5, 9, tzinfo=UTC)
        >>> cursor(Case("c-1", "grid_case", 1, "reported", 1, {}, None, t, t))
        '2026-01-05T09:00:00+00:00|c-1'
    """
    return f"{case.opened_at.astimezone(UTC).isoformat()}|{case.id}"


def parse_cursor(after: str) -> tuple[datetime, str]:
    """Split a cursor made by `cursor` into ``(opened_at, id)``.

    Example:
        >>> parse_cursor("2026-01-05T09:00:00+00:00|c-1")
        (datetime.datetime(2026, 1, 5, 9, 0, tzinfo=datetime.timezone.utc), 'c-1')
    """
    from gridflow.convert import parse_datetime  # cursors only: not at import

    at, sep, last_id = after.partition("|")
    try:
        if not sep:
            raise ValueError("no '|'")
        return parse_datetime(at), last_id
    except ValueError:
        raise InvalidPayload(f"not a page cursor: {after!r}; pass the 'next' of the previous "
                             "Page as 'after'") from None


def _refuse(call: str, arg: str, wanted: str, got: object) -> NoReturn:
    raise InvalidArgument(f"{call}({arg}=...) takes {wanted}, got {type(got).__name__}"
                          + ("" if isinstance(got, str) else f" {repr(got)[:40]}"))


def _check_names(call: str, arg: str, value: object) -> None:
    # One name or a collection of names; a bare str is one name (not its letters).
    if value is None or isinstance(value, str):
        return
    if not isinstance(value, list | tuple | set | frozenset) \
            or not all(isinstance(v, str) for v in value):
        _refuse(call, arg, "None, a string or a list of strings", value)


def check_query(workflow: object = None, state: object = None, grid: object = None,
                opened_from: object = None, opened_until: object = None,
                overdue_at: object = None, after: object = None, limit: object = 100) -> None:
    """Raise `InvalidArgument` unless `Store.query`'s filters have their types: names
    as strings (or lists of them), instants as aware datetimes, ``after`` a cursor
    string and ``limit`` an int from 0 (a bool is not one).

    Example:
        >>> check_query(state=["reported"], limit=10)
        >>> check_query(limit=True)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        gridflow._errors.InvalidArgument: query(limit=...) takes an int from 0 to ..., got bool True
    """
    if workflow is not None and not isinstance(workflow, str):
        _refuse("query", "workflow", "None or a workflow name (a string)", workflow)
    _check_names("query", "state", state)
    _check_names("query", "grid", grid)
    for arg, when in (("opened_from", opened_from), ("opened_until", opened_until),
                      ("overdue_at", overdue_at)):
        if when is not None and (not isinstance(when, datetime) or when.utcoffset() is None):
            _refuse("query", arg, "None or an aware datetime (with a time zone)", when)
    if after is not None and not isinstance(after, str):
        _refuse("query", "after", "None or the 'next' cursor of a previous Page", after)
    # The SQL stores bind it as a 64-bit integer.
    if limit.__class__ is not int or not 0 <= limit <= MAX_INT:
        _refuse("query", "limit", f"an int from 0 to {MAX_INT:,}", limit)


def check_retired(workflow: object, version: object, retired: object) -> None:
    """Raise `InvalidArgument` unless ``set_retired`` gets a workflow name, an int
    version and a bool (``retired="no"`` would retire, ``version=True`` is ``@1``).

    Example:
        >>> check_retired("grid_case", 1, False)
        >>> check_retired("grid_case", 1, "no")
        Traceback (most recent call last):
        ...
        gridflow._errors.InvalidArgument: set_retired(retired=...) takes True or False, got str
    """
    if not isinstance(workflow, str):
        _refuse("set_retired", "workflow", "a workflow name (a string)", workflow)
    if version.__class__ is not int:
        _refuse("set_retired", "version", "an int version", version)
    if retired.__class__ is not bool:
        _refuse("set_retired", "retired", "True or False", retired)


def check_count_columns(by: Sequence[str]) -> None:
    """Refuse `Store.counts` columns that are not in `COUNT_COLUMNS`.

    Example:
        >>> check_count_columns(["grid", "state"])
        >>> check_count_columns(["title"])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        gridflow._errors.InvalidPayload: cannot count cases by 'title'; choose from: workflow, ...
    """
    if isinstance(by, str):
        raise InvalidPayload(f"counts(by=...) takes a sequence of column names, got the "
                             f"string {by!r}; write by=({by!r},)")
    if not isinstance(by, list | tuple):
        raise InvalidPayload(f"counts(by=...) takes a sequence of column names, got "
                             f"{type(by).__name__}; choose from: {', '.join(COUNT_COLUMNS)}")
    for name in by:
        if name.__class__ is not str or name not in COUNT_COLUMNS:
            raise InvalidPayload(f"cannot count cases by {name!r}; choose from: "
                                 f"{', '.join(COUNT_COLUMNS)}")


@runtime_checkable
class Store(Protocol):
    """What the engine needs from storage.

    Implementations: `MemoryStore` (tests, demos) and `SQLStore` (SQLite,
    PostgreSQL). Every method raises `StoreError` (cause chained) when the
    backend fails.
    """

    def create_schema(self) -> None:
        """Create tables / indexes if missing (idempotent)."""

    def get(self, case_id: str) -> Case | None:
        """The stored case, or ``None``."""

    def events(self, case_id: str) -> list[Event]:
        """The case's events, oldest first (by ``seq``)."""

    def event_by_key(self, idempotency_key: str) -> Event | None:
        """The event stored with this idempotency key, or ``None``."""

    def commit(self, writes: Sequence[Write]) -> None:
        """Apply every write atomically, or none.

        Raises `ConcurrencyError` if a case is not at its ``expected_version``
        or an idempotency key is already stored; nothing is written then.
        """

    def query(
        self,
        *,
        workflow: str | None = None,
        state: str | Sequence[str] | None = None,
        grid: str | Sequence[str] | None = None,
        opened_from: datetime | None = None,
        opened_until: datetime | None = None,
        overdue_at: datetime | None = None,
        after: str | None = None,
        limit: int = 100,
    ) -> Page:
        """Cases matching every given filter, ordered by ``(opened_at, id)``."""

    def counts(self, by: Sequence[str] = ("state",), *, workflow: str | None = None) -> dict[
        tuple[Any, ...], int
    ]:
        """Number of cases per group; ``by`` names columns (``state``, ``grid``, ``workflow``)."""

    def claim_due(self, now: datetime, limit: int = 100, *, lease: float = 60.0) -> list[Case]:
        """Overdue cases (``deadline_at <= now``), each handed to one caller only.

        A claimed case is not handed out again for ``lease`` seconds, so
        several timer workers never act on the same case at once.
        """


def check_claim(now: object, limit: object, lease: object) -> None:
    """Raise `InvalidArgument` unless ``claim_due``'s arguments are an aware datetime,
    an int (a bool is not one) and a finite positive number of seconds.

    Example:
        >>> check_claim(datetime(2026, 1, 5, tzinfo=UTC), 10, 60.0)
        >>> check_claim(datetime(2026, 1, 5, tzinfo=UTC), True, 60.0)
        Traceback (most recent call last):
        ...
        gridflow._errors.InvalidArgument: claim_due(limit=...) takes an int, got bool True
    """
    if not isinstance(now, datetime) or now.utcoffset() is None:
        _refuse("claim_due", "now", "an aware datetime (with a time zone)", now)
    if limit.__class__ is not int:
        _refuse("claim_due", "limit", "an int", limit)
    if lease.__class__ not in (int, float) or not (
            math.isfinite(lease) and lease > 0):
        _refuse("claim_due", "lease", "a positive number of seconds", lease)


def __getattr__(name: str) -> Any:
    # Backends are imported lazily: SQLStore needs the optional SQLAlchemy.
    if name == "MemoryStore":
        from gridflow.store.memory import MemoryStore

        return MemoryStore
    if name == "SQLStore":
        from gridflow.store.sql import SQLStore

        return SQLStore
    raise AttributeError(f"module 'gridflow.store' has no attribute {name!r}")
