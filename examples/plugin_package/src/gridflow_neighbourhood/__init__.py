"""gridflow-neighbourhood: building group chat notices and volunteer points.

A gridflow plugin is any object with methods marked ``@gridflow.hookimpl``.
This one is registered through the ``gridflow`` entry-point group (see
``pyproject.toml``): the module-level `plugin` is what every `gridflow.Engine`
built with entry points (the default) registers, under the name
``neighbourhood``. A host can also register its own instance explicitly,
``Engine(plugins=[NeighbourhoodPlugin(chat=my_sender)], entry_points=False)``.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Protocol

import attrs

import gridflow
from gridflow.workflows import GRID_CASE, MEDIATION

__all__ = [
    "HONOURS", "POINTS_PER_REVISIT", "BuildingGroupChat", "Message", "NeighbourhoodPlugin",
    "Sender", "VolunteerPoints", "plugin",
]

#: Points a volunteer earns for confirming a revisit (回头看).
POINTS_PER_REVISIT = 5
#: Honours (荣誉) volunteer points are exchanged for, by the points they need.
HONOURS = ((10, "社区志愿之星"), (50, "优秀社区志愿者"), (100, "金牌社区志愿者"))

_SPECS = {(s.name, s.version): s for s in (GRID_CASE, MEDIATION)}


@attrs.frozen
class Message:
    """One message sent to a building group chat."""

    group: str
    text: str
    case_id: str
    seq: int


class Sender(Protocol):
    """Where notices go: a WeChat work group bot, an SMS gateway... or a stand-in."""

    def send(self, group: str, text: str, *, case_id: str, seq: int) -> None: ...


class BuildingGroupChat:
    """A stand-in for the building group chat (楼组群): records what would be sent."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    def send(self, group: str, text: str, *, case_id: str, seq: int) -> None:
        self.messages.append(Message(group, text, case_id, seq))

    def to(self, group: str) -> list[str]:
        """The texts sent to ``group``, oldest first."""
        return [m.text for m in self.messages if m.group == group]


class VolunteerPoints:
    """The volunteer points ledger (志愿积分): who earned how much, for what."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, int, str, str]] = []  # volunteer, points, case, why
        self._exchanged: dict[str, list[str]] = defaultdict(list)

    def award(self, volunteer: str, points: int, *, case_id: str, reason: str) -> None:
        self.entries.append((volunteer, points, case_id, reason))

    def balance(self, volunteer: str) -> int:
        """Points earned, minus points already exchanged for honours."""
        return sum(p for v, p, _, _ in self.entries if v == volunteer)

    def exchange(self, volunteer: str, honour: str) -> str:
        """Exchange points for an honour (志愿积分兑换荣誉); the points are spent."""
        needed = {name: points for points, name in HONOURS}.get(honour)
        if needed is None:
            raise ValueError(f"no honour {honour!r}; honours: "
                             f"{', '.join(name for _, name in HONOURS)}")
        if self.balance(volunteer) < needed:
            raise ValueError(f"{volunteer} has {self.balance(volunteer)} points; "
                             f"{honour} needs {needed}")
        self.entries.append((volunteer, -needed, "", f"兑换荣誉: {honour}"))
        self._exchanged[volunteer].append(honour)
        return honour

    def honours(self, volunteer: str) -> list[str]:
        return list(self._exchanged[volunteer])


def _labels(case: gridflow.Case, event: gridflow.Event) -> tuple[str, str, str]:
    """Workflow, step and new-state labels in Chinese (names for unknown workflows)."""
    spec = _SPECS.get((case.workflow, case.workflow_version))
    if spec is None:
        return case.workflow, event.trigger, case.state
    step = "新建" if event.trigger == "open" else next(
        (t.label("zh") for t in spec.transitions if t.trigger == event.trigger), event.trigger)
    return spec.label("zh"), step, spec.state(case.state).label("zh")


class NeighbourhoodPlugin:
    """Notices to the building group chat after every step; volunteer points for
    confirmed revisits. ``chat`` is any `Sender` (default: a `BuildingGroupChat`)."""

    def __init__(self, chat: Sender | None = None, points: VolunteerPoints | None = None,
                 *, points_per_revisit: int = POINTS_PER_REVISIT) -> None:
        self.chat: Any = chat if chat is not None else BuildingGroupChat()
        self.points = points if points is not None else VolunteerPoints()
        self.points_per_revisit = points_per_revisit

    @gridflow.hookimpl
    def gridflow_after_fire(self, case: gridflow.Case, event: gridflow.Event) -> None:
        # Runs after the step is committed: nothing here can undo it.
        group = str(case.data.get("building") or case.grid or "居民区")
        workflow, step, state = _labels(case, event)
        title = case.data.get("title") or case.data.get("summary") or case.id
        text = f"【{workflow}】{title}:{step}(当前:{state})"
        self.chat.send(group, text, case_id=case.id, seq=event.seq)
        if (case.workflow == GRID_CASE.name and event.trigger == "confirm"
                and "volunteer" in event.actor.roles):
            self.points.award(event.actor.id, self.points_per_revisit, case_id=case.id,
                              reason="回头看确认未反弹")
            self.chat.send(group, f"感谢志愿者 {event.actor.id} 回头看,"
                                  f"获得志愿积分 {self.points_per_revisit} 分",
                           case_id=case.id, seq=event.seq)


#: The instance the ``gridflow`` entry point names.
plugin = NeighbourhoodPlugin()
