"""The one cattrs converter: every (un)structuring in gridflow goes through it.

Datetimes are ISO 8601 strings with a zone; timedeltas are ISO 8601 durations
(``P5D``, ``PT4H30M``; plain numbers are read as seconds); frozensets and
tuples become sorted / ordered lists.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import cattrs

__all__ = ["converter", "format_duration", "parse_datetime", "parse_duration"]

_DURATION = re.compile(
    r"^P(?:(?P<weeks>\d+(?:\.\d+)?)W)?(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


def parse_duration(value: object) -> timedelta:
    """Read an ISO 8601 duration (``P5D``, ``PT36H``) or a number of seconds.

    Years and months are refused: they have no fixed length.

    Example:
        >>> parse_duration("P1DT2H")
        datetime.timedelta(days=1, seconds=7200)
        >>> parse_duration(90)
        datetime.timedelta(seconds=90)
    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    if isinstance(value, str):
        match = _DURATION.match(value.strip().upper())
        if match and value.strip().upper() not in ("P", "PT"):
            parts = {k: float(v) for k, v in match.groupdict().items() if v is not None}
            return timedelta(**parts)
    raise ValueError(
        f"not a duration: {value!r}; use ISO 8601 like 'P5D' or 'PT4H', or seconds as a number"
    )


def format_duration(value: timedelta) -> str:
    """Write a timedelta as an ISO 8601 duration.

    Example:
        >>> format_duration(timedelta(days=5, hours=2))
        'P5DT2H'
        >>> format_duration(timedelta(0))
        'PT0S'
    """
    total = int(value.total_seconds())
    if total != value.total_seconds() or total < 0:
        raise ValueError(f"durations must be whole, non-negative seconds, got {value!r}")
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    out = "P" + (f"{days}D" if days else "")
    clock = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    clock += f"{seconds}S" if seconds else ""
    if clock:
        out += "T" + clock
    return out if out != "P" else "PT0S"


def parse_datetime(value: object) -> datetime:
    """Read an aware datetime from ISO 8601 text (``Z`` accepted); result in UTC.

    Example:
        >>> parse_datetime("2026-10-01T08:00:00+08:00").isoformat()
        '2026-10-01T00:00:00+00:00'
    """
    if isinstance(value, datetime):
        result = value
    elif isinstance(value, str):
        try:
            result = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValueError(f"not an ISO 8601 datetime: {value!r}") from exc
    else:
        raise ValueError(f"not an ISO 8601 datetime: {value!r}")
    if result.tzinfo is None:
        raise ValueError(f"datetime {value!r} has no time zone; add one (e.g. +08:00 or Z)")
    return result.astimezone(UTC)


def _make() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True)
    conv.register_structure_hook(datetime, lambda v, _: parse_datetime(v))
    conv.register_unstructure_hook(datetime, lambda v: v.isoformat())
    conv.register_structure_hook(timedelta, lambda v, _: parse_duration(v))
    conv.register_unstructure_hook(timedelta, format_duration)
    conv.register_unstructure_hook(frozenset, lambda v: sorted(v))

    def _tuple_or_star(value: Any, _: Any) -> str | tuple[str, ...]:
        if isinstance(value, str):
            return value
        return tuple(str(v) for v in value)

    conv.register_structure_hook(str | tuple[str, ...], _tuple_or_star)
    return conv


#: The converter gridflow uses for specs, cases and events.
converter: cattrs.Converter = _make()
