"""`MemoryStore`: the whole store in process memory, for tests and demos."""

from __future__ import annotations

import heapq
import threading
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from gridflow._errors import ConcurrencyError
from gridflow.model import Case, Event
from gridflow.store import Page, Write, check_count_columns, cursor, parse_cursor

if TYPE_CHECKING:
    from gridflow.store._log import MemoryLog

__all__ = ["MemoryStore"]


def _as_set(value: str | Sequence[str] | None) -> frozenset[str] | None:
    if value is None:
        return None
    return frozenset((value,)) if isinstance(value, str) else frozenset(value)


class MemoryStore:
    """A thread-safe in-memory `Store`. Nothing survives the process.

    Stored objects are handed out as they are (no copies): treat ``Case.data``
    and ``Event.payload`` as read-only.

    Example:
        >>> import gridflow
        >>> engine = gridflow.Engine(store=MemoryStore())
        >>> len(engine.store)
        0
    """

    def __init__(self) -> None:
        self._cases: dict[str, Case] = {}
        self._events: dict[str, list[Event]] = {}
        self._keys: dict[str, Event] = {}
        self._claims: dict[str, datetime] = {}
        # (deadline_at, case id) of every deadline ever set, stale ones included:
        # claim_due pops only what is due, so a tick where nothing is due costs the
        # same at 100,000 cases as at 1,000 (0.1 scanned every case).
        self._due: list[tuple[datetime, str]] = []
        self._due_slack = 1024  # stale heap entries tolerated beyond twice the cases
        self._retired: set[tuple[str, int]] = set()
        self._lock = threading.Lock()
        # The Merkle log (gridflow.store._log): events not yet in a leaf, in commit order.
        self._unlogged: list[Event] = []
        self._log: MemoryLog | None = None

    def __len__(self) -> int:
        return len(self._cases)

    def create_schema(self) -> None:
        """Nothing to create; present so code can treat every store alike."""

    def get(self, case_id: str) -> Case | None:
        return self._cases.get(case_id)

    def events(self, case_id: str) -> list[Event]:
        return list(self._events.get(case_id, ()))

    def event_by_key(self, idempotency_key: str) -> Event | None:
        return self._keys.get(idempotency_key)

    def commit(self, writes: Sequence[Write]) -> None:
        """Apply every write or none; see `Store.commit`.

        Writes are checked in order against what the earlier writes of the same
        commit leave behind, as a database transaction would see them.

        Example:
            >>> import gridflow
            >>> store = MemoryStore()
            >>> engine = gridflow.Engine(store=store, entry_points=False)
            >>> case = engine.open("grid_case", actor=gridflow.Actor("r", ["resident"],
            ...                                                      grids=gridflow.ALL_GRIDS),
            ...                    data={"title": "路灯", "source": "resident"})
            >>> stale = gridflow.Write(case, engine.history(case.id)[0], 0)
            >>> store.commit([stale])  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            gridflow._errors.ConcurrencyError: case ... is no longer at version 0, it is now ...
        """
        if len(writes) == 1:
            self._commit_one(writes[0])
            return
        with self._lock:
            cases = self._cases
            staged: dict[str, int] = {}
            keys: set[str] = set()
            for w in writes:
                cid = w.case.id
                if cid in staged:
                    actual = staged[cid]
                else:
                    stored = cases.get(cid)
                    actual = 0 if stored is None else stored.version
                if actual != w.expected_version:
                    raise ConcurrencyError(cid, w.expected_version, actual)
                key = w.event.idempotency_key
                if key is not None:
                    if key in self._keys or key in keys:
                        raise ConcurrencyError(cid, w.expected_version, actual)
                    keys.add(key)
                staged[cid] = w.case.version
            for w in writes:
                cid = w.case.id
                deadline = w.case.deadline_at
                if deadline is not None:
                    before = cases.get(cid)
                    if before is None or before.deadline_at != deadline:
                        self._push_due(deadline, cid)
                cases[cid] = w.case
                log = self._events.get(cid)
                if log is None:
                    self._events[cid] = [w.event]
                else:
                    log.append(w.event)
                if w.event.idempotency_key is not None:
                    self._keys[w.event.idempotency_key] = w.event
                self._unlogged.append(w.event)
                self._claims.pop(cid, None)

    def _push_due(self, deadline: datetime, cid: str) -> None:
        # Under the lock. Stale entries (a deadline since changed or cleared) are
        # skipped by claim_due; when they outnumber the cases, the heap is rebuilt
        # from the cases' own deadlines (amortized O(1) per push), so it does not
        # grow with every step ever taken.
        heap = self._due
        heapq.heappush(heap, (deadline, cid))
        if len(heap) > 2 * len(self._cases) + self._due_slack:
            live = [(c.deadline_at, c.id) for c in self._cases.values()
                    if c.deadline_at is not None]
            if (deadline, cid) not in live:
                live.append((deadline, cid))  # the case being written is not stored yet
            heapq.heapify(live)
            self._due = live

    def _commit_one(self, w: Write) -> None:
        # `commit` of one write (most steps): the same checks and writes, once.
        case, event = w.case, w.event
        cid = case.id
        with self._lock:
            cases = self._cases
            stored = cases.get(cid)
            actual = 0 if stored is None else stored.version
            if actual != w.expected_version:
                raise ConcurrencyError(cid, w.expected_version, actual)
            key = event.idempotency_key
            if key is not None and key in self._keys:
                raise ConcurrencyError(cid, w.expected_version, actual)
            deadline = case.deadline_at
            if deadline is not None and (stored is None or stored.deadline_at != deadline):
                self._push_due(deadline, cid)
            cases[cid] = case
            log = self._events.get(cid)
            if log is None:
                self._events[cid] = [event]
            else:
                log.append(event)
            if key is not None:
                self._keys[key] = event
            self._unlogged.append(event)
            if self._claims:
                self._claims.pop(cid, None)

    def _filtered(
        self, workflow: str | None, state: str | Sequence[str] | None,
        grid: str | Sequence[str] | None, opened_from: datetime | None,
        opened_until: datetime | None, overdue_at: datetime | None,
    ) -> list[Case]:
        states, grids = _as_set(state), _as_set(grid)
        out = []
        for case in list(self._cases.values()):
            if workflow is not None and case.workflow != workflow:
                continue
            if states is not None and case.state not in states:
                continue
            if grids is not None and case.grid not in grids:
                continue
            if opened_from is not None and case.opened_at < opened_from:
                continue
            if opened_until is not None and case.opened_at >= opened_until:
                continue
            if overdue_at is not None and (
                case.deadline_at is None or case.deadline_at > overdue_at
            ):
                continue
            out.append(case)
        return out

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
        found = self._filtered(workflow, state, grid, opened_from, opened_until, overdue_at)
        found.sort(key=lambda c: (c.opened_at, c.id))
        if after is not None:
            mark = parse_cursor(after)
            found = [c for c in found if (c.opened_at, c.id) > mark]
        limit = max(limit, 0)
        items = found[:limit]
        nxt = cursor(items[-1]) if len(found) > limit and items else None
        return Page(items, nxt)

    def counts(
        self, by: Sequence[str] = ("state",), *, workflow: str | None = None
    ) -> dict[tuple[Any, ...], int]:
        check_count_columns(by)
        found = self._filtered(workflow, None, None, None, None, None)
        return dict(Counter(tuple(getattr(c, col) for col in by) for c in found))

    def fingerprints(self) -> set[tuple[str, int, str]]:
        """Every ``(workflow, version, fingerprint)`` recorded in the stored events
        (the ``open`` and ``migrate`` events that carry one).

        Example:
            >>> MemoryStore().fingerprints()
            set()
        """
        found: set[tuple[str, int, str]] = set()
        for log in list(self._events.values()):
            for event in log:
                if event.trigger not in ("open", "migrate"):
                    continue
                fp, changes = event.payload.get("fingerprint"), event.changes
                if isinstance(fp, str) and changes is not None and changes.workflow:
                    found.add((changes.workflow, changes.workflow_version, fp))
        return found

    def retired(self) -> set[tuple[str, int]]:
        """The ``(workflow, version)`` pairs marked retired (`Engine.retire`).

        Example:
            >>> MemoryStore().retired()
            set()
        """
        return set(self._retired)

    def set_retired(self, workflow: str, version: int, retired: bool = True) -> None:
        """Mark ``workflow@version`` retired (or not): no new case opens on it.

        Example:
            >>> s = MemoryStore(); s.set_retired("grid_case", 1); s.retired()
            {('grid_case', 1)}
        """
        with self._lock:
            if retired:
                self._retired.add((workflow, version))
            else:
                self._retired.discard((workflow, version))

    def claim_due(self, now: datetime, limit: int = 100, *, lease: float = 60.0) -> list[Case]:
        if limit <= 0:
            return []
        with self._lock:
            heap, cases, claims = self._due, self._cases, self._claims
            due: list[Case] = []
            keep: list[tuple[datetime, str]] = []
            seen: set[str] = set()
            while heap and heap[0][0] <= now and len(due) < limit:
                entry = heapq.heappop(heap)
                deadline, cid = entry
                case = cases.get(cid)
                if case is None or case.deadline_at != deadline or cid in seen:
                    continue  # stale: the deadline changed or was cleared since
                seen.add(cid)
                # A due case stays in the heap until a write changes its deadline.
                keep.append(entry)
                if claims.get(cid, now) <= now:
                    due.append(case)
            for entry in keep:
                heapq.heappush(heap, entry)
            until = now + timedelta(seconds=lease)
            for case in due:
                claims[case.id] = until
            return due
