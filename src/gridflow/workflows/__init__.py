"""The built-in workflows, registered through the same hooks a third-party plugin uses.

This module *is* the built-in plugin: the engine registers it with pluggy
under the name ``gridflow.workflows``.
"""

from __future__ import annotations

from collections.abc import Mapping

from gridflow.plugins import Effect, Guard, hookimpl
from gridflow.spec import WorkflowSpec
from gridflow.workflows import grid_case
from gridflow.workflows.grid_case import GRID_CASE

__all__ = ["EFFECTS", "GRID_CASE", "GUARDS", "ROLES"]

#: The roles of the domain, with their zh-CN and English labels.
ROLES: Mapping[str, tuple[str, str]] = {
    "resident": ("居民", "Resident"),
    "grid_worker": ("网格员", "Grid worker"),
    "volunteer": ("社区志愿者", "Volunteer"),
    "coordinator": ("居民区党总支书记", "Coordinator (party branch secretary)"),
    "department": ("职能部门", "Department"),
    "street": ("街道", "Street level"),
    "system": ("系统", "System (timer)"),
    "mediator": ("调解员", "Mediator"),
    "police": ("派出所", "Police station"),
    "judicial_office": ("司法所", "Judicial office"),
    "lawyer": ("律师", "Lawyer"),
}

#: Every guard of the built-in workflows, by name.
GUARDS: dict[str, Guard] = {**grid_case.GUARDS}
#: Every effect of the built-in workflows, by name.
EFFECTS: dict[str, Effect] = {**grid_case.EFFECTS}


@hookimpl
def gridflow_workflows() -> list[WorkflowSpec]:
    return [GRID_CASE]


@hookimpl
def gridflow_guards() -> Mapping[str, Guard]:
    return GUARDS


@hookimpl
def gridflow_effects() -> Mapping[str, Effect]:
    return EFFECTS


@hookimpl
def gridflow_roles() -> Mapping[str, tuple[str, str]]:
    return ROLES
