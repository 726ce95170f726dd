"""Where sync gridflow code meets asyncio: the one place an awaitable is awaited.

`AsyncEngine` runs the engine's own (sync) step code inside a greenlet, the
way SQLAlchemy's asyncio extension runs its ORM: every database call and
every awaitable a hook returns is handed to the event loop at that point, and
the step resumes with the result. So each rule is written once, in the sync
code, and the async engine never blocks its event loop.

Outside such a greenlet (the sync `Engine`) an awaitable hook result is a
`PluginError`: a coroutine nobody awaits would silently do nothing.
"""

from __future__ import annotations

from typing import Any

from gridflow._errors import PluginError

__all__ = ["Run", "committing", "current_run", "settle"]


class Run:
    """One async call in flight: set by `AsyncEngine`, read by `AsyncSQLStore`.

    ``committing`` turns true when the call's store commit begins: from then on
    a cancellation no longer stops the step (it commits, or fails whole, and
    its after-hooks run); before it, a cancellation abandons the step and
    nothing is stored.
    """

    __slots__ = ("committing",)

    def __init__(self) -> None:
        self.committing = False


def current_run() -> Run | None:
    """The async call the running code belongs to, if any.

    Example:
        >>> current_run() is None
        True
    """
    getcurrent = _getcurrent
    if getcurrent is _UNKNOWN:
        getcurrent = _find_getcurrent()
    if getcurrent is None:
        return None
    run: Run | None = getattr(getcurrent(), "gridflow_run", None)
    return run


_UNKNOWN: Any = object()
#: greenlet.getcurrent once greenlet is imported (None while it is not installed).
_getcurrent: Any = _UNKNOWN


def _find_getcurrent() -> Any:
    # Asked on every step, answered once: the import machinery's look-up (or a
    # failing import, without greenlet) was a measurable part of a step.
    global _getcurrent
    try:
        import greenlet
    except ImportError:
        _getcurrent = None
        return None
    _getcurrent = greenlet.getcurrent
    return _getcurrent


def committing() -> None:
    """Say that the running step begins to commit (called by the engine right
    before `Store.commit`): from here on an async caller's cancellation lets the
    step finish, after-hooks included.

    Example:
        >>> committing()  # in the sync engine: nothing to tell
    """
    # `current_run`, inline: asked once per step.
    getcurrent = _getcurrent
    if getcurrent is _UNKNOWN:
        getcurrent = _find_getcurrent()
    if getcurrent is None:
        return
    run: Run | None = getattr(getcurrent(), "gridflow_run", None)
    if run is not None:
        run.committing = True


def settle(value: Any, where: str) -> Any:
    """``value`` itself, or, if it is awaitable, what it resolves to (in the async
    engine); ``where`` names the hook for the error.

    Example:
        >>> settle("a reason", "plugin.gridflow_veto")
        'a reason'
    """
    if value is None or not hasattr(value, "__await__"):
        return value
    if current_run() is None:
        close = getattr(value, "close", None)
        if close is not None:
            close()  # no "coroutine was never awaited" warning on top of the error
        plugin, _, hook = where.rpartition(".")
        raise PluginError(plugin or "?", [
            f"{hook} returned an awaitable: async hooks need gridflow.AsyncEngine (the "
            "sync Engine cannot await them); make the hook a plain function or use "
            "AsyncEngine"])
    from sqlalchemy.util import await_only

    return await_only(value)
