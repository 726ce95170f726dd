"""Open311 GeoReport v2 service requests (JSON and XML) from gridflow cases.

GeoReport v2 is the civic-issue interchange format: a service request has
`FIELDS`; XML is required, JSON optional; datetimes are ISO 8601 with a
zone; text is UTF-8. Reporter fields (name, email, phone, device id) are
accepted on POST by GeoReport servers and never returned, and gridflow does
the same: every request is built from an allow-list of fields, never by
copying case data.

Where each field comes from (see docs/open311.md):

==================== =========================================================
field                source
==================== =========================================================
service_request_id   ``case.id``
status               ``closed`` if the state is terminal or tagged closed/ended
status_notes         state label, plus the latest note or reason in history
service_name         ``data["category"]`` (else the workflow's label)
service_code         ``service_codes[category]``, else the category itself
description          ``data["title"]`` and ``data["description"]`` (a
                     mediation: ``data["summary"]``), personal values blanked
agency_responsible   ``data["departments"]``, joined with ``"; "``
service_notice       ``service_notice`` argument (else null)
requested_datetime   ``case.opened_at``
updated_datetime     ``case.updated_at``
expected_datetime    ``case.deadline_at`` while open, else null
address, address_id, ``data[...]`` of the same name when present
zipcode, media_url
lat, long            ``data["lat"]``, ``data["long"]`` as numbers
==================== =========================================================

Example:
    >>> import gridflow
    >>> from gridflow.interop import open311
    >>> engine = gridflow.Engine(clock=gridflow.FixedClock(), entry_points=False)
    >>> c = engine.open("grid_case", actor=gridflow.Actor("r-9", ["resident"],
    ...                                                   grids=gridflow.ALL_GRIDS), grid="华三-1",
    ...                 data={"title": "弄堂堆物", "source": "resident",
    ...                       "reporter": {"name": "王某某", "phone": "13800000000"}})
    >>> req = open311.service_request(c)
    >>> req["status"], req["requested_datetime"]
    ('open', '2026-01-05T01:00:00+00:00')
    >>> "王某某" in open311.to_json([req]) or "13800000000" in open311.to_xml([req])
    False
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, tzinfo
from typing import Any

from gridflow._errors import InvalidArgument, InvalidPayload
from gridflow.interop._common import (
    Redactor,
    check_export,
    is_closed,
    iso,
    known_values,
    spec_of,
    spec_table,
)
from gridflow.model import Case, Event
from gridflow.spec import WorkflowSpec
from gridflow.store import Store

__all__ = [
    "FIELDS",
    "NOTE_FIELDS",
    "parse_xml",
    "service_request",
    "service_requests",
    "to_json",
    "to_xml",
]

#: Every field of a GeoReport v2 service request, in the specification's order.
FIELDS: tuple[str, ...] = (
    "service_request_id",
    "status",
    "status_notes",
    "service_name",
    "service_code",
    "description",
    "agency_responsible",
    "service_notice",
    "requested_datetime",
    "updated_datetime",
    "expected_datetime",
    "address",
    "address_id",
    "zipcode",
    "lat",
    "long",
    "media_url",
)

#: Payload fields of history events read (newest first) for ``status_notes``:
#: a status note's text, or the reason a step was taken.
NOTE_FIELDS: tuple[str, ...] = ("text", "reason", "observation", "result")

_NUMERIC = frozenset({"lat", "long"})
_PASSED = ("address", "address_id", "zipcode", "media_url")


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _notes(spec: WorkflowSpec, case: Case, events: Sequence[Event], redact: Redactor) -> str:
    state = spec.state(case.state)
    label = state.label_zh or state.name
    if state.label_en and state.label_en != label:
        label = f"{label} ({state.label_en})"
    for event in reversed(events):
        for field in NOTE_FIELDS:
            value = event.payload.get(field)
            if isinstance(value, str) and value.strip():
                return f"{label}: {redact.text(value.strip())}"
    return label


def service_request(
    case: Case,
    *,
    events: Sequence[Event] | None = None,
    specs: Iterable[WorkflowSpec] | None = None,
    service_codes: Mapping[str, str] | None = None,
    service_notice: str | None = None,
    tz: tzinfo = UTC,
    privacy: Any = None,
) -> dict[str, Any]:
    """One case as a GeoReport v2 service request (a dict with every `FIELDS` key).

    ``events`` (the case's history, e.g. ``engine.history(case.id)``) adds the
    latest note or reason to ``status_notes``. ``specs`` adds workflows other
    than the built-ins (``engine.workflows``). ``service_codes`` maps a
    category to its code; ``tz`` is the zone the datetimes are written in
    (UTC by default; ``ZoneInfo("Asia/Shanghai")`` gives ``+08:00``). Missing
    values are ``None`` (JSON ``null``, an empty XML element). ``privacy``
    (``engine.privacy``) opens the case's sealed personal values so that every
    exported string is screened against them too (`gridflow.personal.Screen`).

    Example:
        >>> import gridflow
        >>> engine = gridflow.Engine(clock=gridflow.FixedClock(), entry_points=False)
        >>> c = engine.open("grid_case", actor=gridflow.Actor("r", ["resident"],
        ...                                                   grids=gridflow.ALL_GRIDS),
        ...                 data={"title": "井盖缺失", "source": "resident",
        ...                       "address": "长宁支路324弄", "lat": 31.22, "long": 121.42})
        >>> c = engine.fire(c.id, "triage", actor=gridflow.Actor("s", ["coordinator"],
        ...                                                      grids=gridflow.ALL_GRIDS),
        ...                 payload={"category": "市政设施", "priority": "urgent"})
        >>> req = service_request(c, service_codes={"市政设施": "municipal"})
        >>> req["service_code"], req["service_name"], req["address"], req["lat"]
        ('municipal', '市政设施', '长宁支路324弄', 31.22)
    """
    check_export("service_request", tz)
    if events is not None and (isinstance(events, str) or not isinstance(events, Sequence)):
        raise InvalidArgument(f"service_request(events=...) takes None or the case's list of "
                              f"events, got {type(events).__name__}")
    return _service_request(case, events, specs, service_codes, service_notice, tz,
                            known_values(case, list(events or ()), None, privacy))[0]


def _service_request(
    case: Case, events: Sequence[Event] | None, specs: Iterable[WorkflowSpec] | None,
    service_codes: Mapping[str, str] | None, service_notice: str | None, tz: tzinfo,
    known: Sequence[Any],
) -> tuple[dict[str, Any], int]:
    spec = spec_of(case, spec_table(specs))
    history = list(events) if events is not None else []
    redact = Redactor(case, history, known)
    data = case.data
    closed = is_closed(spec, case.state)
    category = data.get("category")
    category = str(category) if category not in (None, "") else None
    codes = service_codes or {}
    title, body = data.get("title"), data.get("description")
    parts = [str(p).strip() for p in (title, body) if isinstance(p, str) and p.strip()]
    summary = data.get("summary")
    if not parts and isinstance(summary, str) and summary.strip():
        parts = [summary.strip()]  # a mediation has a summary, not a title
    departments = data.get("departments")
    agency = (
        "; ".join(str(d) for d in departments)
        if isinstance(departments, list) and departments else None
    )
    out: dict[str, Any] = {
        "service_request_id": case.id,
        "status": "closed" if closed else "open",
        "status_notes": _notes(spec, case, history, redact),
        "service_name": redact.text(category) if category else spec.label("zh"),
        "service_code": redact.text(codes.get(category, category)) if category else spec.name,
        "description": redact.text(": ".join(parts)) if parts else None,
        "agency_responsible": agency,
        "service_notice": service_notice,
        "requested_datetime": iso(case.opened_at, tz, seconds=True),
        "updated_datetime": iso(case.updated_at, tz, seconds=True),
        "expected_datetime": None if closed else iso(case.deadline_at, tz, seconds=True),
    }
    for field in _PASSED:
        value = data.get(field)
        out[field] = redact.text(value) if value not in (None, "") else None
    out["lat"] = _number(data.get("lat"))
    out["long"] = _number(data.get("long"))
    return {field: out[field] for field in FIELDS}, redact.hits


def service_requests(
    cases: Iterable[Case],
    *,
    store: Store | None = None,
    specs: Iterable[WorkflowSpec] | None = None,
    service_codes: Mapping[str, str] | None = None,
    service_notice: str | None = None,
    tz: tzinfo = UTC,
    privacy: Any = None,
    report: dict[str, int] | None = None,
) -> list[dict[str, Any]]:
    """Many cases as service requests; with ``store`` each one's history feeds
    ``status_notes``. Serialise with `to_json` or `to_xml`. ``report``, a dict
    if given, gets ``requests`` (how many) and ``screened`` (personal values
    found in exported text and masked). ``privacy`` as in `service_request`
    (default: the one of the last engine opened on ``store``).

    Example:
        >>> import gridflow
        >>> engine = gridflow.Engine(clock=gridflow.FixedClock(), entry_points=False)
        >>> c = engine.open("grid_case", actor=gridflow.Actor("r", ["resident"],
        ...                                                   grids=gridflow.ALL_GRIDS),
        ...                 data={"title": "路灯坏了", "source": "resident"})
        >>> reqs = service_requests([c], store=engine.store)
        >>> reqs[0]["status_notes"]
        '已上报 (Reported)'
    """
    check_export("service_requests", tz, report)
    spec_list = list(specs or ())
    out: list[dict[str, Any]] = []
    screened = 0
    for case in cases:
        events = store.events(case.id) if store is not None else None
        known = known_values(case, events or [], store, privacy)
        request, hits = _service_request(case, events, spec_list, service_codes,
                                         service_notice, tz, known)
        out.append(request)
        screened += hits
    if report is not None:
        report["requests"] = len(out)
        report["screened"] = screened
    return out


def to_json(requests: Iterable[Mapping[str, Any]], *, indent: int | None = None) -> str:
    """The GeoReport v2 JSON body: a list of service requests (UTF-8 text, not escaped).

    Example:
        >>> to_json([{"service_request_id": "c-1", "status": "open"}])
        '[{"service_request_id": "c-1", "status": "open"}]'
    """
    if indent is not None and (indent.__class__ is not int or not 0 <= indent <= 16):
        # json.dumps takes True for 1 and a string for the indent itself.
        raise InvalidArgument(f"to_json(indent=...) takes None or an int from 0 to 16, got "
                              f"{type(indent).__name__} {repr(indent)[:40]}")
    return json.dumps([dict(r) for r in requests], ensure_ascii=False, indent=indent)


def to_xml(requests: Iterable[Mapping[str, Any]]) -> str:
    """The GeoReport v2 XML body: ``<service_requests><request>...</request>...``.

    Every field is written, missing ones as empty elements; encode the text as
    UTF-8 (the declaration says so).

    Example:
        >>> xml = to_xml([{"service_request_id": "c-1", "status": "open", "lat": None}])
        >>> xml.split("?>")[1]  # doctest: +NORMALIZE_WHITESPACE
        '<service_requests><request><service_request_id>c-1</service_request_id>\
<status>open</status><lat /></request></service_requests>'
    """
    root = ET.Element("service_requests")
    for req in requests:
        node = ET.SubElement(root, "request")
        for field, value in req.items():
            child = ET.SubElement(node, field)
            if value is not None:
                child.text = repr(value) if isinstance(value, float) else str(value)
    return '<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(root, encoding="unicode")


def parse_xml(text: str | bytes) -> list[dict[str, Any]]:
    """Read a GeoReport v2 ``<service_requests>`` document back into dicts.

    Empty elements become ``None``; ``lat`` and ``long`` become numbers, so
    ``parse_xml(to_xml(reqs)) == reqs`` for requests made by `service_request`.

    Example:
        >>> parse_xml(to_xml([{"service_request_id": "c-1", "lat": 31.2, "zipcode": None}]))
        [{'service_request_id': 'c-1', 'lat': 31.2, 'zipcode': None}]
    """
    if not isinstance(text, str | bytes):
        raise InvalidPayload(f"parse_xml takes the XML document as str or bytes, got "
                             f"{type(text).__name__}")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        # expat's message gives the line and column, never the document's text.
        raise InvalidPayload(f"not a well-formed XML document ({exc}); expected a GeoReport "
                             "v2 <service_requests> document") from None
    except UnicodeError:
        raise InvalidPayload("not an XML document: the text cannot be encoded as UTF-8 (a "
                             "lone surrogate); expected a GeoReport v2 <service_requests> "
                             "document") from None
    if root.tag != "service_requests":
        raise InvalidPayload(f"not a GeoReport v2 document: the root element is <{root.tag}>; "
                             "expected <service_requests>")
    out: list[dict[str, Any]] = []
    for node in root.findall("request"):
        req: dict[str, Any] = {}
        for child in node:
            value = child.text if child.text not in (None, "") else None
            if value is not None and child.tag in _NUMERIC:
                try:
                    req[child.tag] = float(value)
                except ValueError:
                    raise InvalidPayload(f"request {len(out) + 1}: <{child.tag}> is not a "
                                         "number; expected a decimal latitude or longitude "
                                         "or an empty element") from None
            else:
                req[child.tag] = value
        out.append(req)
    return out
