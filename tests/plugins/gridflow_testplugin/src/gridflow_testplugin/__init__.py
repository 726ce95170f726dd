"""gridflow_testplugin: a third-party gridflow plugin, found through entry points.

This module is the plugin (its hook implementations are module functions),
declared in its distribution's ``pyproject.toml``::

    [project.entry-points.gridflow]
    testplugin = "gridflow_testplugin"

It adds the ``noise_complaint`` workflow (噪音投诉) with its own guard and role,
and a veto that freezes any case under audit (审计冻结). It imports only
gridflow's public API: a third party extends gridflow without touching it.

Example:
    >>> import gridflow
    >>> import gridflow_testplugin
    >>> engine = gridflow.Engine(plugins=[gridflow_testplugin], entry_points=False)
    >>> engine.workflow("noise_complaint").label("zh")
    '噪音投诉'
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import gridflow
from gridflow import StateSpec, TransitionSpec, WorkflowSpec, hookimpl

__all__ = [
    "AUDIT_HOLD",
    "NOISE_COMPLAINT",
    "gridflow_guards",
    "gridflow_roles",
    "gridflow_veto",
    "gridflow_workflows",
]

#: The data key that puts a case on audit hold (审计冻结): only notes are accepted.
AUDIT_HOLD = "audit_hold"


def _measured(step: gridflow.Step) -> str | None:
    value = step.payload.get("decibels")
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return f"'decibels' must be a positive number measured on site, got {value!r}"
    return None


#: 噪音投诉: a resident complains, the property manager measures, then it is
#: resolved in the grid or referred to the police station (派出所).
NOISE_COMPLAINT = WorkflowSpec(
    name="noise_complaint",
    version=1,
    initial="reported",
    labels={"zh": "噪音投诉", "en": "Noise complaint"},
    open_roles=("resident", "grid_worker"),
    open_requires=("address",),
    states=(
        StateSpec("reported", "已投诉", "Reported", deadline=timedelta(days=1)),
        StateSpec("measured", "已测量", "Measured", deadline=timedelta(days=3)),
        StateSpec("resolved", "已化解", "Resolved", terminal=True),
        StateSpec("referred", "已移交派出所", "Referred to the police", terminal=True),
    ),
    transitions=(
        TransitionSpec("measure", "reported", "measured", roles=("property_manager",),
                       requires=("decibels",), guards=("testplugin.measured",),
                       label_zh="现场测量", label_en="Measure on site"),
        TransitionSpec("resolve", "measured", "resolved", roles=("property_manager", "mediator"),
                       requires=("agreement",), label_zh="调解化解", label_en="Resolve"),
        TransitionSpec("refer", "measured", "referred", roles=("mediator",),
                       requires=("reason",), label_zh="移交派出所", label_en="Refer to police"),
        TransitionSpec("note", "*", None, requires=("text",),
                       label_zh="情况备注", label_en="Status note"),
    ),
)


@hookimpl
def gridflow_workflows() -> list[WorkflowSpec]:
    """The workflows this plugin adds.

    Example:
        >>> [spec.key for spec in gridflow_workflows()]
        ['noise_complaint@1']
    """
    return [NOISE_COMPLAINT]


@hookimpl
def gridflow_guards() -> Mapping[str, Any]:
    """The guards ``noise_complaint`` names.

    Example:
        >>> sorted(gridflow_guards())
        ['testplugin.measured']
    """
    return {"testplugin.measured": _measured}


@hookimpl
def gridflow_roles() -> Mapping[str, tuple[str, str]]:
    """The role this plugin adds to gridflow's.

    Example:
        >>> gridflow_roles()["property_manager"]
        ('物业', 'Property manager')
    """
    return {"property_manager": ("物业", "Property manager")}


@hookimpl
def gridflow_veto(
    case: gridflow.Case, trigger: str, actor: gridflow.Actor, payload: Mapping[str, Any]
) -> str | None:
    """Refuse every step but a note on a case under audit hold (审计冻结), in any workflow.

    Example:
        >>> from datetime import datetime, UTC
        >>> t = datetime(2026, 1, 5, tzinfo=UTC)
        >>> held = gridflow.Case("c-1", "grid_case", 1, "reported", 1,
        ...                      {"audit_hold": "区审计抽查"}, None, t, t)
        >>> gridflow_veto(held, "triage", gridflow.Actor.system(), {})
        'case c-1 is on audit hold (审计冻结: 区审计抽查); only notes are accepted'
        >>> gridflow_veto(held, "note", gridflow.Actor.system(), {}) is None
        True
    """
    hold = case.data.get(AUDIT_HOLD)
    if hold and trigger not in ("note", "open"):
        return f"case {case.id} is on audit hold (审计冻结: {hold}); only notes are accepted"
    return None
