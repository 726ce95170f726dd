"""Exchange formats: Open311 GeoReport v2 service requests, CSV exports of cases,
and state diagrams of workflow specs.

Every export is built from an allow-list of fields: nothing about the person
who reported a problem (name, phone, email, device id, the opening actor's
id) ever leaves through here.

Submodules are imported on first use: ``gridflow.interop.open311``,
``gridflow.interop.export`` and ``gridflow.interop.diagram``.

Example:
    >>> import gridflow.interop
    >>> gridflow.interop.open311.FIELDS[:2]
    ('service_request_id', 'status')
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gridflow.interop import diagram, export, open311

__all__ = ["diagram", "export", "open311"]


def __getattr__(name: str) -> Any:
    # Lazy, so importing gridflow.interop stays cheap, and any submodule added
    # later (diagrams) is reachable as an attribute without editing this file.
    if name.isidentifier() and not name.startswith("_"):
        try:
            return importlib.import_module(f"gridflow.interop.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"gridflow.interop.{name}":
                raise
    raise AttributeError(f"module 'gridflow.interop' has no attribute {name!r}")
