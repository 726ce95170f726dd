"""gridflow: community-governance case workflows as durable, pluggable state machines.

Example:
    >>> import gridflow
    >>> engine = gridflow.Engine(clock=gridflow.FixedClock())
    >>> worker = gridflow.Actor("w-1", ["grid_worker"], ["华三-1"])
    >>> case = engine.open("grid_case", actor=worker, grid="华三-1",
    ...                    data={"title": "弄堂违规堆物", "source": "visit"})
    >>> engine.get(case.id).state
    'reported'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gridflow._errors import (
    CalendarError,
    CaseNotFound,
    CaseNotVisible,
    ConcurrencyError,
    GridflowError,
    GuardRejected,
    IdempotencyConflict,
    IntegrityError,
    InvalidArgument,
    InvalidPayload,
    InvalidTransition,
    LogError,
    MigrationError,
    MissingPayload,
    NoteError,
    PermissionDenied,
    PluginError,
    ProofError,
    SchemaVersionError,
    SpecError,
    SpecProblem,
    StoreError,
    UnknownWorkflow,
    WorkerError,
)
from gridflow.clock import Clock, FixedClock, SystemClock
from gridflow.engine import Engine, HookError, TickError
from gridflow.fold import replay
from gridflow.model import ALL_GRIDS, Actor, Case, Changes, Event
from gridflow.plugins import hookimpl
from gridflow.step import Step
from gridflow.store import Page, Store, Write
from gridflow.telemetry import Telemetry

if TYPE_CHECKING:
    from gridflow._tlog import verify_bundle
    from gridflow.async_engine import AsyncEngine
    from gridflow.calendar import Calendar, CalendarDays, WorkingDays, WorkingHours
    from gridflow.log.note import generate_key
    from gridflow.migrate import GRID_CASE_V1_TO_V2, MigrationPlan, MigrationReport, fingerprint
    from gridflow.personal.keyring import Keyring
    from gridflow.spec import RoleSpec, StateSpec, TransitionSpec, WorkflowSpec
    from gridflow.spec_diff import SpecDiff, diff
    from gridflow.store.async_sql import AsyncSQLStore
    from gridflow.store.memory import MemoryStore
    from gridflow.store.sql import SQLStore
    from gridflow.worker import Worker

__version__ = "0.2.0.dev0"

__all__ = [
    "ALL_GRIDS",
    "GRID_CASE_V1_TO_V2",
    "Actor",
    "AsyncEngine",
    "AsyncSQLStore",
    "Calendar",
    "CalendarDays",
    "CalendarError",
    "Case",
    "CaseNotFound",
    "CaseNotVisible",
    "Changes",
    "Clock",
    "ConcurrencyError",
    "Engine",
    "Event",
    "FixedClock",
    "GridflowError",
    "GuardRejected",
    "HookError",
    "IdempotencyConflict",
    "IntegrityError",
    "InvalidArgument",
    "InvalidPayload",
    "InvalidTransition",
    "Keyring",
    "LogError",
    "MemoryStore",
    "MigrationError",
    "MigrationPlan",
    "MigrationReport",
    "MissingPayload",
    "NoteError",
    "Page",
    "PermissionDenied",
    "PluginError",
    "ProofError",
    "RoleSpec",
    "SQLStore",
    "SchemaVersionError",
    "SpecDiff",
    "SpecError",
    "SpecProblem",
    "StateSpec",
    "Step",
    "Store",
    "StoreError",
    "SystemClock",
    "Telemetry",
    "TickError",
    "TransitionSpec",
    "UnknownWorkflow",
    "Worker",
    "WorkerError",
    "WorkflowSpec",
    "WorkingDays",
    "WorkingHours",
    "Write",
    "__version__",
    "diff",
    "fingerprint",
    "generate_key",
    "hookimpl",
    "replay",
    "verify_bundle",
]


#: Names loaded on first use (migrations and spec diffs are for upgrades, not every
#: step; the spec classes, calendars and the memory store load with the first
#: engine, spec or store).
_LAZY = {"GRID_CASE_V1_TO_V2": "migrate", "MigrationPlan": "migrate",
         "MigrationReport": "migrate", "fingerprint": "migrate", "SpecDiff": "spec_diff",
         "diff": "spec_diff", "RoleSpec": "spec", "StateSpec": "spec",
         "TransitionSpec": "spec", "WorkflowSpec": "spec", "Calendar": "calendar",
         "CalendarDays": "calendar", "WorkingDays": "calendar", "WorkingHours": "calendar",
         "MemoryStore": "store.memory"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is not None:
        import importlib

        value = getattr(importlib.import_module(f"gridflow.{module}"), name)
        globals()[name] = value
        return value
    # SQLStore needs the optional SQLAlchemy: import it only when asked for.
    if name == "SQLStore":
        from gridflow.store.sql import SQLStore

        return SQLStore
    if name == "AsyncEngine":
        # asyncio services only: the greenlet bridge loads with it.
        from gridflow.async_engine import AsyncEngine

        return AsyncEngine
    if name == "AsyncSQLStore":
        from gridflow.store.async_sql import AsyncSQLStore

        return AsyncSQLStore
    if name == "verify_bundle":
        from gridflow._tlog import verify_bundle

        return verify_bundle
    if name == "generate_key":
        # The signed-note layer loads hashing and base64 machinery: only when asked.
        from gridflow.log.note import generate_key

        return generate_key
    if name == "Keyring":
        # The keyring's module imports `cryptography` (the pii extra) only when
        # a key is used, but personal-data code need not load for every user.
        from gridflow.personal.keyring import Keyring

        return Keyring
    if name == "Worker":
        # The worker brings an HTTP server and JSON logging: only for a worker.
        from gridflow.worker import Worker

        return Worker
    if name in ("metrics", "interop"):
        # `gridflow.metrics.compute(...)` works after a bare `import gridflow`,
        # without loading these for every user of the engine.
        import importlib

        return importlib.import_module(f"gridflow.{name}")
    raise AttributeError(f"module 'gridflow' has no attribute {name!r}")


def __dir__() -> list[str]:
    # The lazily loaded names too: `dir(gridflow)` lists the whole public API.
    return sorted({*globals(), *__all__})
