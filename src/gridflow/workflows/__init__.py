"""The built-in workflows, registered through the same hooks a third-party plugin uses.

This module *is* the built-in plugin: the engine registers it with pluggy
under the name ``gridflow.workflows``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gridflow.model import Case
from gridflow.plugins import DeadlineRule, Effect, Guard, hookimpl
from gridflow.spec import WorkflowSpec
from gridflow.workflows import extension, grid_case, grid_case_v2, mediation
from gridflow.workflows.grid_case import GRID_CASE
from gridflow.workflows.grid_case_v2 import GRID_CASE_V2
from gridflow.workflows.mediation import MEDIATION

__all__ = ["DEADLINES", "EFFECTS", "GRID_CASE", "GRID_CASE_V2", "GUARDS", "MEDIATION", "ROLES"]

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
    "inspector": ("监督员", "Inspector"),
    # The default reader of restricted personal data (PIPL art. 47(2); `Engine.restrict`).
    "auditor": ("审计员", "Auditor (reads restricted personal data)"),
}

#: Every guard of the built-in workflows, by name.
GUARDS: dict[str, Guard] = {**grid_case.GUARDS, **grid_case_v2.GUARDS, **mediation.GUARDS,
                            **extension.GUARDS}
#: Every effect of the built-in workflows, by name.
EFFECTS: dict[str, Effect] = {**grid_case.EFFECTS, **grid_case_v2.EFFECTS,
                              **mediation.EFFECTS, **extension.EFFECTS}

#: The built-in default deadline rule of each workflow, by workflow name; a
#: `gridflow_deadline` plugin answers before them (see `gridflow_deadline_rules`).
DEADLINES: dict[str, DeadlineRule] = {"grid_case": grid_case_v2.deadline}


@hookimpl
def gridflow_workflows() -> list[WorkflowSpec]:
    # Both grid_case versions: @2 is the latest, so `open` takes it unless a
    # version is named; @1 stays for the cases opened on it (and `version=1`).
    return [GRID_CASE, GRID_CASE_V2, MEDIATION]


@hookimpl(trylast=True)
def gridflow_mediation_tier(case: Case, payload: Mapping[str, Any]) -> str | None:
    # trylast: the default policy answers only when no other plugin did.
    return mediation.DEFAULT_TIER_POLICY.tier(case.data, payload)


@hookimpl
def gridflow_deadline_rules() -> Mapping[str, DeadlineRule]:
    return DEADLINES


@hookimpl
def gridflow_guards() -> Mapping[str, Guard]:
    return GUARDS


@hookimpl
def gridflow_effects() -> Mapping[str, Effect]:
    return EFFECTS


@hookimpl
def gridflow_roles() -> Mapping[str, tuple[str, str]]:
    return ROLES
