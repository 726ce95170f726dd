"""The one value domain of case data and payloads, the same on every store.

``data`` and every ``payload`` are JSON objects: string keys; values are
strings, integers, floats, booleans, ``None``, lists and objects. What every
store (MemoryStore, SQLite, PostgreSQL JSONB) keeps and gives back exactly,
and hashes the same, is narrower than what Python's ``json`` accepts, so
gridflow refuses the rest everywhere alike, as `InvalidPayload` naming the
path of the first bad value (``payload.parties[2].name``):

- keys and strings: no NUL character (``\\x00``: PostgreSQL cannot store it)
  and no lone surrogate (not UTF-8);
- integers within signed 64 bits (`MIN_INT` .. `MAX_INT`: SQLite's range);
- floats finite and not ``-0.0`` (JSONB has no negative zero);
- nesting at most `MAX_DEPTH` levels; an event's canonical text at most
  `MAX_EVENT_BYTES` bytes (checked by the engine when it hashes the event).

Tuples are accepted and stored as lists.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

from gridflow._errors import InvalidPayload

__all__ = ["MAX_DEPTH", "MAX_EVENT_BYTES", "MAX_INT", "MIN_INT", "OTHER", "PLAIN", "PLAIN_FLOAT",
           "check", "check_kind", "check_text", "detach"]

#: Deepest nesting of objects and lists in a payload or in case data.
MAX_DEPTH: Final = 32
#: Largest canonical text of one event (payload and changes included), in bytes.
MAX_EVENT_BYTES: Final = 1_048_576
#: The integer range every store keeps exactly (signed 64 bits).
MIN_INT: Final = -(2**63)
MAX_INT: Final = 2**63 - 1

_SCALARS = frozenset((str, bool, type(None)))


def _text_problem(value: str) -> str | None:
    if "\x00" in value:
        return "contains a NUL character (\\x00), which PostgreSQL cannot store"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "contains a lone surrogate (not valid UTF-8)"
    return None


def check_text(value: object, what: str, *, trigger: str = "",
               case_id: str | None = None) -> str:
    """``value`` if it is a string every store keeps exactly, else `InvalidPayload`.

    Example:
        >>> check_text("华三-1", "grid")
        '华三-1'
        >>> check_text("a\\x00b", "grid")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        gridflow._errors.InvalidPayload: grid contains a NUL character (\\x00), which ...
    """
    if not isinstance(value, str):
        raise InvalidPayload(f"{what} must be a string, got {type(value).__name__}",
                             case_id=case_id, trigger=trigger)
    problem = _text_problem(value)
    if problem is not None:
        raise InvalidPayload(f"{what} {problem}", case_id=case_id, trigger=trigger)
    return value


def _path(parts: list[str | int]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


class _Bad(Exception):
    def __init__(self, path: list[str | int], why: str) -> None:
        super().__init__(why)
        self.path = path
        self.why = why


def _copy(value: Any, depth: int, path: list[str | int]) -> Any:
    cls = value.__class__
    if cls in _SCALARS:
        if cls is str and (problem := _text_problem(value)) is not None:
            raise _Bad(path, problem)
        return value
    if cls is int:
        if MIN_INT <= value <= MAX_INT:
            return value
        raise _Bad(path, f"is an integer outside 64 bits ({MIN_INT}..{MAX_INT}); store it "
                         "as a string")
    if cls is float:
        if not math.isfinite(value):
            raise _Bad(path, f"is {value!r}, which is not JSON-able (JSON has no NaN or "
                             "infinity)")
        if value == 0.0 and math.copysign(1.0, value) < 0:
            raise _Bad(path, "is -0.0, which not every store keeps; use 0.0")
        return value
    if depth >= MAX_DEPTH:
        raise _Bad(path, f"is nested more than {MAX_DEPTH} levels deep")
    if cls is dict or isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if key.__class__ is not str:
                raise _Bad(path, f"has a key that is not a string: {type(key).__name__} "
                                 f"{key!r}; JSON keys are strings, and a store would give back "
                                 f"{str(key)!r}" if isinstance(key, int | float | bool) else
                                 f"has a key that is not a string ({type(key).__name__}), which "
                                 "is not JSON-able")
            if (problem := _text_problem(key)) is not None:
                raise _Bad(path, f"has a key that {problem}")
            out[key] = _copy(item, depth + 1, [*path, key])
        return out
    if cls is list or cls is tuple:
        return [_copy(item, depth + 1, [*path, i]) for i, item in enumerate(value)]
    if isinstance(value, bool | int | float | str):
        # A subclass (an IntEnum, a str subclass): stored as the plain value it is.
        for base in (bool, int, float, str):
            if isinstance(value, base):
                return _copy(base(value), depth, path)
    raise _Bad(path, f"is of type {type(value).__name__}, which is not JSON-able; use str, "
                     "int, float, bool, None, lists and objects with string keys")


class _Slow(Exception):
    """Internal: `_quick` met something it does not decide; `_copy` will."""


def _quick(value: Any, depth: int) -> Any:
    """The common case, fast: a checked copy of plain JSON, no path kept. Anything
    unusual (a bad value, a subclass, a deep value) raises `_Slow`."""
    # Inlined checks, not helper calls: this runs on every payload. A string
    # passes when it has no NUL and is ASCII or printable (printable text has
    # no lone surrogate); others go to the full walk, which decides exactly.
    if depth >= MAX_DEPTH:
        raise _Slow
    if value.__class__ is dict:
        out = {}
        for key, item in value.items():
            if key.__class__ is not str or "\x00" in key or not (key.isascii()
                                                              or key.isprintable()):
                raise _Slow
            cls = item.__class__
            if cls is str:
                if "\x00" in item or not (item.isascii() or item.isprintable()):
                    raise _Slow
            elif cls is int:
                if not MIN_INT <= item <= MAX_INT:
                    raise _Slow
            elif cls is dict or cls is list:
                item = _quick(item, depth + 1)
            elif cls is float:
                if not math.isfinite(item) or (item == 0.0 and math.copysign(1.0, item) < 0):
                    raise _Slow
            elif cls is not bool and item is not None:
                raise _Slow
            out[key] = item
        return out
    out_list = []
    for item in value:
        cls = item.__class__
        if cls is str:
            if "\x00" in item or not (item.isascii() or item.isprintable()):
                raise _Slow
        elif cls is int:
            if not MIN_INT <= item <= MAX_INT:
                raise _Slow
        elif cls is dict or cls is list:
            item = _quick(item, depth + 1)
        elif cls is float:
            if not math.isfinite(item) or (item == 0.0 and math.copysign(1.0, item) < 0):
                raise _Slow
        elif cls is not bool and item is not None:
            raise _Slow
        out_list.append(item)
    return out_list


def detach(value: object, where: str, *, trigger: str = "",
           case_id: str | None = None) -> dict[str, Any]:
    """A checked deep copy of the JSON object ``value``, sharing nothing with it.

    The copy is what gets stored: a caller that later changes its own dict
    cannot edit stored history. Raises `InvalidPayload` naming the path of
    the first value outside the domain (see the module's documentation).

    Example:
        >>> detach({"parties": [{"name": "甲"}, {"name": "乙"}]}, "payload")
        {'parties': [{'name': '甲'}, {'name': '乙'}]}
        >>> detach({"parties": [{}, {}, {"age": float("nan")}]}, "payload")
        ... # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        gridflow._errors.InvalidPayload: payload.parties[2].age is nan, which is not JSON-able ...
        >>> detach({2: "a"}, "payload")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        gridflow._errors.InvalidPayload: payload has a key that is not a string: int 2; ...
    """
    if value.__class__ is dict:
        try:
            quick: dict[str, Any] = _quick(value, 0)
            return quick
        except _Slow:
            pass  # the full walk decides, and names the path
    if not isinstance(value, Mapping):
        raise InvalidPayload(f"{where} must be a JSON object (a dict with string keys), got "
                             f"{type(value).__name__}", case_id=case_id, trigger=trigger)
    try:
        out: dict[str, Any] = _copy(value, 0, [where])
    except _Bad as bad:
        prefix = f"case {case_id!r}: trigger {trigger!r}: " if case_id and trigger else ""
        raise InvalidPayload(f"{prefix}{_path(bad.path)} {bad.why}", case_id=case_id,
                             trigger=trigger) from None
    except RecursionError:
        raise InvalidPayload(f"{where} is nested too deeply (at most {MAX_DEPTH} levels)",
                             case_id=case_id, trigger=trigger) from None
    return out


def check(value: Mapping[str, Any], where: str, *, trigger: str = "",
          case_id: str | None = None) -> None:
    """Refuse a JSON object with a value outside the domain, as `detach` does,
    without copying it (for values the caller already owns).

    Example:
        >>> check({"n": 1, "tags": ["a"]}, "data")
        >>> check({"n": 2**64}, "data")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        gridflow._errors.InvalidPayload: data.n is an integer outside 64 bits ...
    """
    check_kind(value, where, trigger=trigger, case_id=case_id)


#: What `check_kind` found: plain JSON without a float, plain with one, other.
PLAIN, PLAIN_FLOAT, OTHER = 1, 2, 0


def check_kind(value: Mapping[str, Any], where: str, *, trigger: str = "",
               case_id: str | None = None) -> int:
    """`check`, telling what was checked: `PLAIN` (str, int, bool, None, lists and
    dicts only), `PLAIN_FLOAT` (floats too) or `OTHER` (accepted as `detach`
    accepts it, e.g. a subclass). The hashed text's orjson path needs `PLAIN`.

    Example:
        >>> check_kind({"n": 1}, "data"), check_kind({"x": 0.5}, "data")
        (1, 2)
    """
    if value.__class__ is dict:
        try:
            kind = _plain(value, 0)
        except RecursionError:
            kind = OTHER
        if kind:
            return kind
    detach(value, where, trigger=trigger, case_id=case_id)
    return OTHER


def _plain(value: Any, depth: int) -> int:
    """`PLAIN` or `PLAIN_FLOAT` if `_quick` would take ``value`` (a dict or a list)
    as it is: the same tests, as a type walk that copies nothing. `OTHER`:
    `detach` decides (and names the path of what it refuses)."""
    if depth >= MAX_DEPTH:
        return OTHER
    kind = PLAIN
    if value.__class__ is list:
        items: Any = value
    else:
        for key in value:
            if key.__class__ is not str or "\x00" in key or not (key.isascii()
                                                               or key.isprintable()):
                return OTHER
        items = value.values()
    for item in items:
        cls = item.__class__
        if cls is str:
            if "\x00" in item or not (item.isascii() or item.isprintable()):
                return OTHER
        elif cls is int:
            if not MIN_INT <= item <= MAX_INT:
                return OTHER
        elif cls is dict or cls is list:
            inner = _plain(item, depth + 1)
            if not inner:
                return OTHER
            if inner == PLAIN_FLOAT:
                kind = PLAIN_FLOAT
        elif cls is float:
            if not math.isfinite(item) or (item == 0.0 and math.copysign(1.0, item) < 0):
                return OTHER
            kind = PLAIN_FLOAT
        elif cls is not bool and item is not None:
            return OTHER
    return kind
