"""`Step`: the working view of one step that guards, effects and plugins are handed.

It belongs to the pure step core, below the plugin hooks and the built-in
workflows that use it: none of them needs the engine to name it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

from gridflow.model import Actor, Case

if TYPE_CHECKING:
    import pluggy

    from gridflow.spec import TransitionSpec

__all__ = ["Step"]


@attrs.define(slots=True, eq=False)
class Step:
    """The working view of one step, handed to guards and effects.

    ``case`` is the case as stored before the step. ``state`` is moved by
    transitions; ``data`` and ``links`` are the step's own copies, which
    effects change (assign new values; do not mutate nested values of
    ``case.data`` in place). ``lookup`` reads another case from the store,
    scoped to the acting actor: a case outside the actor's grids looks
    exactly like a missing one (``None``).

    Example:
        >>> def needs_plan(step):
        ...     return None if step.payload.get("plan") else "a joint plan (联合整治方案) is needed"
    """

    case: Case
    trigger: str
    actor: Actor
    payload: dict[str, Any]
    data: dict[str, Any]
    links: list[str]
    now: datetime
    state: str
    lookup: Callable[[str], Case | None]
    fired: TransitionSpec | None = None
    rejected: tuple[str, str] | None = None
    failed: str | None = None
    #: The plugin manager's hook relay (``pm.hook``), so a guard or effect can ask
    #: plugins for a policy (e.g. ``gridflow_mediation_tier``) only on the steps
    #: that need one; ``None`` outside an engine.
    hooks: pluggy.HookRelay | None = None
    #: Scratch space for this step only (never stored): lets several guards of
    #: one trigger share an answer computed once, e.g. a policy hook's result.
    memo: dict[str, Any] | None = None
    #: Set by an effect to fix when the case's time limit runs out: the state
    #: being entered (e.g. a date agreed in the payload; a `gridflow_deadline`
    #: plugin still overrides it), or on an internal step the current one.
    deadline_at: datetime | None = None

    def __getattr__(self, name: str) -> Any:
        # The engine's core may leave ``links`` unset until someone reads it
        # (`gridflow.core.run`): a case with 4,000 links is not copied on a step
        # whose guards and effects never look at them. The copy is the same
        # ``list(case.links)`` it always was, made on first access.
        if name == "links":
            links = list(self.case.links)
            self.links = links
            return links
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
