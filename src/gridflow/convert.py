"""The one cattrs converter: every (un)structuring in gridflow goes through it.

Datetimes are ISO 8601 strings with a zone; timedeltas are ISO 8601 durations
(``P5D``, ``PT4H30M``), short forms (``3d``, ``2h``, ``90m``, ``1d12h``) or a
number of seconds; frozensets and tuples become sorted / ordered lists.

Structuring is strict: data read from JSON or YAML is never coerced. A string
is not a list (``"reason"`` is not ``["reason"]``), not a bool (``"false"``),
and a float or a bool is not an int. A value of the wrong shape raises
`ShapeError`, which says what was expected, what was found, and how to write
it (``write [reason]``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, get_args, get_origin

import cattrs

__all__ = [
    "ShapeError",
    "converter",
    "describe",
    "format_duration",
    "parse_datetime",
    "parse_duration",
]

_NUMBER = r"\d+(?:\.\d+)?"
_DURATION = re.compile(
    rf"^P(?:(?P<weeks>{_NUMBER})W)?(?:(?P<days>{_NUMBER})D)?"
    rf"(?:T(?:(?P<hours>{_NUMBER})H)?(?:(?P<minutes>{_NUMBER})M)?"
    rf"(?:(?P<seconds>{_NUMBER})S)?)?$"
)
_SHORT = re.compile(r"^(?:(?P<days>\d+)d)?(?:(?P<hours>\d+)h)?(?:(?P<minutes>\d+)m)?"
                    r"(?:(?P<seconds>\d+)s)?$")
_DURATION_FORMS = "ISO 8601 like 'P3D' or 'PT4H30M', or a short form like '3d', '2h', " \
                  "'90m', '45s', '1d12h'"
#: Longest text quoted back in a message (a spec value can be a whole file).
_SHOWN = 40


class ShapeError(ValueError):
    """A value read from data has the wrong type or form.

    ``path`` leads from the value given to the part that is wrong (list
    indexes and keys), ``hint`` says how to write it instead.

    Example:
        >>> from gridflow.convert import converter
        >>> try:
        ...     converter.structure("reason", tuple[str, ...])
        ... except ShapeError as exc:
        ...     print(exc)
        expected a list of strings, got the string 'reason' (write [reason])
    """

    def __init__(self, expected: str, value: object, hint: str = "",
                 path: tuple[str | int, ...] = ()) -> None:
        self.expected = expected
        self.got = describe(value)
        self.hint = hint
        self.path = path
        super().__init__(f"expected {expected}, got {self.got}" + (f" ({hint})" if hint else ""))

    def within(self, step: str | int) -> ShapeError:
        """The same error, one step further from the value it was found in."""
        self.path = (step, *self.path)
        return self


def describe(value: object) -> str:
    """What ``value`` is, in words, short and safe to show (no deep or huge repr).

    Example:
        >>> describe("false"), describe(1.9), describe(True), describe([1, 2])
        ("the string 'false'", 'the number 1.9', 'the boolean true', 'a list of 2 item(s)')
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int):
        # repr of an int beyond 4300 digits raises ValueError.
        return f"the integer {value}" if abs(value) < 10**20 else "a very large integer"
    if isinstance(value, float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {shorten(value)}"
    if isinstance(value, datetime):
        return "a date and time"
    if isinstance(value, date):
        return f"the date {value.isoformat()}"
    if isinstance(value, Mapping):
        return f"a mapping of {len(value)} key(s)"
    if isinstance(value, list | tuple):
        return f"a list of {len(value)} item(s)"
    return f"a value of type {type(value).__name__}"


def shorten(text: str) -> str:
    """``repr(text)``, cut to a readable length.

    Example:
        >>> shorten("x" * 100)
        "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...' (100 characters)"
    """
    if len(text) <= _SHOWN:
        return repr(text)
    return f"{text[:_SHOWN]!r}"[:-1] + f"...' ({len(text)} characters)"


def parse_duration(value: object) -> timedelta:
    """Read a duration: ISO 8601 (``P5D``, ``PT36H``), a short form (``3d``,
    ``2h``, ``90m``, ``45s``, ``1d12h``), or (from Python) a number of seconds.

    Years and months are refused: they have no fixed length.

    Example:
        >>> parse_duration("P1DT2H")
        datetime.timedelta(days=1, seconds=7200)
        >>> parse_duration("1d12h")
        datetime.timedelta(days=1, seconds=43200)
        >>> parse_duration(90)
        datetime.timedelta(seconds=90)
    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {describe(value)}; write {_DURATION_FORMS}")
    try:
        if isinstance(value, int | float):
            return timedelta(seconds=value)
        if isinstance(value, str) and value not in ("", "P", "PT"):
            match = _DURATION.match(value.upper()) or _SHORT.match(value.lower())
            if match and not value.upper().endswith("T"):
                parts = {k: float(v) for k, v in match.groupdict().items() if v is not None}
                return timedelta(**parts)
    except OverflowError:
        raise ValueError(f"duration {shorten(str(value))} is too long to count") from None
    raise ValueError(f"not a duration: {describe(value)}; write {_DURATION_FORMS}")


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


# -- strict structure hooks ---------------------------------------------------------------


def _str(value: Any, _: Any = None) -> str:
    if isinstance(value, str):
        return value
    hint = ""
    if isinstance(value, bool | int | float) or value is None:
        # YAML reads yes/no/on/off/null and bare numbers as non-strings.
        hint = "put it in quotes to make it a string"
    raise ShapeError("a string", value, hint)


def _int(value: Any, _: Any = None) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    hint = "write a whole number without quotes, e.g. 1" if isinstance(value, str | float) else ""
    raise ShapeError("an integer", value, hint)


def _bool(value: Any, _: Any = None) -> bool:
    if isinstance(value, bool):
        return value
    hint = "write true or false, without quotes"
    raise ShapeError("true or false", value, hint)


def _timedelta(value: Any, _: Any = None) -> timedelta:
    if isinstance(value, timedelta):  # from Python code, not from data
        return value
    if isinstance(value, str) or (isinstance(value, int | float) and not isinstance(value, bool)):
        # A number is seconds, as gridflow 0.1 documented.
        try:
            return parse_duration(value)
        except ValueError as exc:
            hint = ("it is too long to count; write a shorter one" if "too long" in str(exc)
                    else f"write {_DURATION_FORMS}")
            raise ShapeError("a duration", value, hint) from None
    raise ShapeError("a duration", value, f"write {_DURATION_FORMS}")


def _sequence(conv: cattrs.Converter, item: Any) -> Callable[[Any, Any], tuple[Any, ...]]:
    structure = conv.get_structure_hook(item)
    noun = "strings" if item is str else "items"

    def hook(value: Any, _: Any) -> tuple[Any, ...]:
        if not isinstance(value, list | tuple):
            hint = (f"write [{value}]" if isinstance(value, str) and item is str and value
                    else "write a list, e.g. [a, b]")
            raise ShapeError(f"a list of {noun}", value, hint)
        out = []
        for i, element in enumerate(value):
            try:
                out.append(structure(element, item))
            except ShapeError as exc:
                raise exc.within(i) from None
        return tuple(out)

    return hook


def _mapping(conv: cattrs.Converter, key: Any, item: Any) -> Callable[[Any, Any], dict[Any, Any]]:
    structure_key = conv.get_structure_hook(key)
    structure_item = conv.get_structure_hook(item)

    def hook(value: Any, _: Any) -> dict[Any, Any]:
        if not isinstance(value, Mapping):
            raise ShapeError("a mapping", value, "write {key: value, ...}")
        out = {}
        for k, v in value.items():
            try:
                name = structure_key(k, key)
            except ShapeError:
                raise ShapeError("string keys", k, "put the key in quotes") from None
            try:
                out[name] = structure_item(v, item)
            except ShapeError as exc:
                raise exc.within(name) from None
        return out

    return hook


def _is_sequence(cls: Any) -> bool:
    args = get_args(cls)
    return get_origin(cls) is tuple and len(args) == 2 and args[1] is Ellipsis


def _is_mapping(cls: Any) -> bool:
    return get_origin(cls) is dict and len(get_args(cls)) == 2


def _make() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True)
    conv.register_structure_hook(datetime, lambda v, _: parse_datetime(v))
    conv.register_unstructure_hook(datetime, lambda v: v.isoformat())
    conv.register_structure_hook(timedelta, _timedelta)
    conv.register_unstructure_hook(timedelta, format_duration)
    conv.register_unstructure_hook(frozenset, lambda v: sorted(v))
    conv.register_structure_hook(str, _str)
    conv.register_structure_hook(int, _int)
    conv.register_structure_hook(bool, _bool)
    conv.register_structure_hook_factory(_is_sequence,
                                         lambda cls: _sequence(conv, get_args(cls)[0]))
    conv.register_structure_hook_factory(_is_mapping, lambda cls: _mapping(conv, *get_args(cls)))
    names = _sequence(conv, str)

    def source(value: Any, _: Any) -> str | tuple[str, ...]:
        # A transition's source: one state name, "*", or a list of names.
        return value if isinstance(value, str) else names(value, None)

    conv.register_structure_hook(str | tuple[str, ...], source)
    return conv


if TYPE_CHECKING:
    #: The converter gridflow uses for specs, cases and events.
    converter: cattrs.Converter


def __getattr__(name: str) -> Any:
    # Built on first use (PEP 562): registering the hooks is a tenth of
    # `import gridflow`, and only specs read from or written to data need them.
    if name == "converter":
        return globals().setdefault("converter", _make())
    raise AttributeError(f"module 'gridflow.convert' has no attribute {name!r}")
