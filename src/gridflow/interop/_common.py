"""What the exports share: finding a case's spec, open/closed status, times, privacy."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any

from gridflow._errors import InvalidArgument, UnknownWorkflow
from gridflow.model import Case, Event
from gridflow.spec import WorkflowSpec

#: Keys (in case data, at any depth) whose values are personal data of a
#: reporter or a party. Their values are never exported; they are also
#: collected so that a copy typed into free text (a title, a note) is blanked.
PERSONAL_KEYS = frozenset({
    "reporter", "reporters", "contact", "contacts", "name", "names", "phone", "phones",
    "mobile", "tel", "telephone", "email", "e_mail", "device_id", "id_card", "id_number",
    "first_name", "last_name", "party", "parties", "applicant", "respondent", "complainant",
})
_PERSONAL_SUFFIXES = ("_name", "_phone", "_email", "_mobile", "_tel", "_device_id", "_id_card")

#: What a personal value found in free text is replaced with.
REDACTED = "[redacted]"

#: State tags that make a state count as closed (Open311 ``status`` "closed").
CLOSED_TAGS = frozenset({"closed", "ended"})


def check_export(call: str, tz: object, report: object = None) -> None:
    """Raise `InvalidArgument` unless ``tz`` is a tzinfo and ``report`` None or a dict,
    before a row is written (each failed at the first row, a bare TypeError or
    AttributeError, with part of the export already out)."""
    if not isinstance(tz, tzinfo):
        raise InvalidArgument(f"{call}(tz=...) takes a tzinfo (e.g. datetime.UTC or "
                              f"ZoneInfo('Asia/Shanghai')), got {type(tz).__name__}")
    if report is not None and not isinstance(report, dict):
        raise InvalidArgument(f"{call}(report=...) takes None or a dict to fill, got "
                              f"{type(report).__name__}")


def builtin_specs() -> list[WorkflowSpec]:
    """The built-in workflow specs, read from the built-in plugin (mediation included
    as soon as it is registered there)."""
    from gridflow import workflows

    return list(workflows.gridflow_workflows())


def spec_table(specs: Iterable[WorkflowSpec] | None) -> dict[tuple[str, int], WorkflowSpec]:
    """``{(name, version): spec}`` of ``specs`` plus the built-ins (``specs`` win)."""
    table = {(s.name, s.version): s for s in builtin_specs()}
    for spec in specs or ():
        table[(spec.name, spec.version)] = spec
    return table


def spec_of(case: Case, table: Mapping[tuple[str, int], WorkflowSpec]) -> WorkflowSpec:
    """The spec a case runs on; `UnknownWorkflow` (saying what to pass) if not known."""
    spec = table.get((case.workflow, case.workflow_version))
    if spec is None:
        raise UnknownWorkflow(case.workflow, case.workflow_version,
                              (f"{n}@{v} (pass specs=engine.workflows for others)"
                               for n, v in table))
    return spec


def is_closed(spec: WorkflowSpec, state: str) -> bool:
    """True when ``state`` is terminal or tagged ``closed`` / ``ended``."""
    st = spec.state(state)
    return st.terminal or not CLOSED_TAGS.isdisjoint(st.tags)


def iso(value: datetime | None, tz: tzinfo = UTC, *, seconds: bool = False) -> str | None:
    """ISO 8601 with the zone's offset (``None`` stays ``None``)."""
    if value is None:
        return None
    local = value.astimezone(tz)
    return local.isoformat(timespec="seconds") if seconds else local.isoformat()


def _is_personal(key: str) -> bool:
    k = key.lower()
    return k in PERSONAL_KEYS or k.endswith(_PERSONAL_SUFFIXES)


def _strings(value: Any, out: set[str]) -> None:
    from gridflow.personal.reference import is_reference

    if is_reference(value):
        return  # a sealed value: its plaintext comes from the vault (known_values)
    if isinstance(value, str):
        # One- or two-letter fragments would blank ordinary words.
        if len(value.strip()) >= 2:
            out.add(value.strip())
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if len(str(value)) >= 5:
            out.add(str(value))
    elif isinstance(value, Mapping):
        for v in value.values():
            _strings(v, out)
    elif isinstance(value, list | tuple):
        for v in value:
            _strings(v, out)


def _collect(data: Any, out: set[str]) -> None:
    if isinstance(data, Mapping):
        for key, value in data.items():
            if isinstance(key, str) and _is_personal(key):
                _strings(value, out)
            else:
                _collect(value, out)
    elif isinstance(data, list | tuple):
        for value in data:
            _collect(value, out)


class Redactor:
    """Blanks a case's personal values (and its opener's actor id) in free text.

    The exports never copy personal fields; this guards against the same
    values typed into a title or a note.

    Example:
        >>> from datetime import datetime, UTC
        >>> t = datetime(2026, 1, 5, tzinfo=UTC)
        >>> c = Case("c", "grid_case", 1, "reported", 1,
        ...          {"title": "王某某: 13800000000 门口堆物",
        ...           "reporter": {"name": "王某某", "phone": "13800000000"}}, None, t, t)
        >>> Redactor(c).text(c.data["title"])
        '[redacted]: [redacted] 门口堆物'
    """

    def __init__(self, case: Case, events: Iterable[Event] = (),
                 known: Iterable[Any] = ()) -> None:
        from gridflow.personal.screen import Screen

        found: set[str] = set()
        _collect(case.data, found)
        for event in events:
            if event.trigger == "open" and len(event.actor.id) >= 2:
                found.add(event.actor.id)
            # Every event: a contact typed into a later note's payload is as personal.
            _collect(event.payload, found)
        plain = list(known)
        for value in plain:
            _strings(value, found)
        # Longest first, so a full name is blanked before a part of it.
        self.values = sorted(found, key=lambda s: (-len(s), s))
        self._pattern = (
            re.compile("|".join(re.escape(v) for v in self.values)) if self.values else None
        )
        # The second line (gridflow.personal.screen): the same values however they are
        # spelt (letter case, full-width, spacing), and phone / ID / e-mail patterns.
        self._screen = Screen([*self.values, *plain])
        #: How many personal values were found and masked in this case's exported text.
        self.hits = 0

    def text(self, value: Any) -> str | None:
        """``value`` as text with every personal value replaced; ``None`` stays ``None``."""
        if value is None:
            return None
        text = str(value)
        if self._pattern is not None:
            text, n = self._pattern.subn(REDACTED, text)
            self.hits += n
        cleaned, n = self._screen.clean(text)
        self.hits += n
        return cleaned


def known_values(case: Case, events: Sequence[Event], store: Any, privacy: Any) -> list[Any]:
    """The case's sealed personal values in clear, for screening (``[]`` when unknown).

    ``privacy`` is an engine's ``privacy``; without it, the one the last engine on
    ``store`` left there, if any.
    """
    if privacy is None:
        privacy = getattr(store, "_pii_privacy", None)
    if privacy is None:
        return []
    values: list[Any] = privacy.personal_values(case, events)
    return values
