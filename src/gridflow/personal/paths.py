"""Paths to personal values in JSON-like case data: parse, find, replace.

A *declared path* names where personal values sit, for every case: dotted
keys, each optionally followed by ``[]`` meaning "every element of this
list"::

    reporter.name        parties[].id_number        contact        visits[].notes[]

A *concrete path* names one value in one document, with list indexes:
``parties[2].name``. `find` turns a declared path into the concrete paths
present in a document; `replace` writes new values at concrete paths into a
copy. Keys that are not identifiers (which a declared path cannot name, but
stored data may hold) are written ``["a key"]`` in concrete paths.

Nothing here knows about keys or encryption; see `gridflow.personal.seal`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

from gridflow._errors import InvalidPayload, SpecError, SpecProblem

__all__ = [
    "EACH",
    "concrete_steps",
    "find",
    "format_steps",
    "parse_path",
    "path_problems",
    "pattern_of",
    "replace",
]

#: The step "every element of a list" in a parsed declared path (``[]``).
EACH: Final = None

#: A parsed declared path: keys, and `EACH` for every ``[]``.
DeclaredSteps = tuple[str | None, ...]
#: A parsed concrete path: keys and list indexes.
ConcreteSteps = tuple[str | int, ...]


def path_problems(text: object, where: str = "path") -> list[SpecProblem]:
    """Every problem with ``text`` as a declared path (empty list: it is valid).

    For spec validation, which reports all problems at once.

    Example:
        >>> path_problems("parties[].name")
        []
        >>> [p.what for p in path_problems("parties[0].name")]
        ["segment 'parties[0]' names one list element"]
    """
    allowed = "write identifiers joined by '.', [] for every list element: parties[].name"
    if not isinstance(text, str):
        return [SpecProblem(where, f"a path must be a string, got {type(text).__name__}",
                            allowed)]
    if not text:
        return [SpecProblem(where, "the path is empty", allowed)]
    problems = []
    for segment in text.split("."):
        key = segment
        while key.endswith("[]"):
            key = key[:-2]
        if not segment:
            problems.append(SpecProblem(where, f"path {text!r} has an empty segment", allowed))
        elif not key:
            problems.append(SpecProblem(
                where, f"segment {segment!r} has no key before []",
                "a path starts at a key of the data object, and [] follows a key"))
        elif re.fullmatch(r"[^\[\]]+(\[\d+\])+(\[\])*", segment):
            problems.append(SpecProblem(
                where, f"segment {segment!r} names one list element",
                "a declared path covers every element: write [] instead of an index"))
        elif not key.isidentifier():
            problems.append(SpecProblem(where, f"segment {segment!r} is not a key", allowed))
    return problems


def parse_path(text: str, *, spec_name: str = "personal fields") -> DeclaredSteps:
    """Parse a declared path into its steps: keys, and `EACH` for ``[]``.

    Raises `gridflow.SpecError` listing every problem of a bad path.

    Example:
        >>> parse_path("parties[].name")
        ('parties', None, 'name')
        >>> try:
        ...     parse_path("reporter..name")
        ... except SpecError as exc:
        ...     print(exc.problems[0].what)
        path 'reporter..name' has an empty segment
    """
    problems = path_problems(text)
    if problems:
        raise SpecError(spec_name, problems)
    steps: list[str | None] = []
    for segment in text.split("."):
        key = segment
        each = 0
        while key.endswith("[]"):
            key = key[:-2]
            each += 1
        steps.append(key)
        steps.extend([EACH] * each)
    return tuple(steps)


_CONCRETE_TOKEN = re.compile(
    r"""\.?(?P<key>[^\W\d]\w*)|\[(?P<index>0|[1-9]\d*)\]|\[(?P<quoted>"(?:[^"\\]|\\.)*")\]"""
)


def concrete_steps(text: str) -> ConcreteSteps:
    """Parse a concrete path (``parties[2].name``, ``["a key"].x``) into keys and indexes.

    Raises `gridflow.InvalidPayload` for text that is not a concrete path.

    Example:
        >>> concrete_steps("parties[2].name")
        ('parties', 2, 'name')
        >>> concrete_steps('notes["客户 电话"]')
        ('notes', '客户 电话')
    """
    steps: list[str | int] = []
    pos = 0
    while pos < len(text):
        match = _CONCRETE_TOKEN.match(text, pos)
        dotted = match is not None and match.group(0).startswith(".")
        if match is None or (dotted and pos == 0) or (not dotted and match.group("key")
                                                       and pos > 0):
            raise InvalidPayload(
                f"{text!r} is not a concrete path: at character {pos}; write keys joined "
                "by '.', list indexes as [n], e.g. parties[2].name")
        if match.group("key") is not None:
            steps.append(match.group("key"))
        elif match.group("index") is not None:
            steps.append(int(match.group("index")))
        else:
            steps.append(json.loads(match.group("quoted")))
        pos = match.end()
    if not steps:
        raise InvalidPayload("an empty concrete path names no value")
    return tuple(steps)


def format_steps(steps: Sequence[str | int]) -> str:
    """Write concrete steps as a concrete path (the inverse of `concrete_steps`).

    Example:
        >>> format_steps(("parties", 2, "name"))
        'parties[2].name'
        >>> format_steps(("notes", "客户 电话"))
        'notes["客户 电话"]'
    """
    out: list[str] = []
    for step in steps:
        if isinstance(step, int):
            out.append(f"[{step}]")
        elif step.isidentifier() and re.fullmatch(r"[^\W\d]\w*", step):
            out.append(f".{step}" if out else step)
        else:
            out.append(f"[{json.dumps(step, ensure_ascii=False)}]")
    return "".join(out)


def pattern_of(concrete: str) -> str:
    """The declared path a concrete path is an instance of: indexes become ``[]``.

    Example:
        >>> pattern_of("parties[2].name")
        'parties[].name'
    """
    return re.sub(r"\[(?:0|[1-9]\d*)\]", "[]", concrete)


def find(data: Mapping[str, Any], path: str | DeclaredSteps) -> Iterator[tuple[str, Any]]:
    """Every value at a declared path in ``data``: ``(concrete path, value)`` pairs.

    An absent key, a ``None`` on the way and a ``None`` value yield nothing
    (an optional field that is not filled). A container of the wrong kind on
    the way (a string where the path needs an object, an object where it
    needs a list) raises `gridflow.InvalidPayload`: the value would otherwise
    sit in plaintext outside every declared path. The value is never shown.

    Example:
        >>> data = {"parties": [{"name": "甲"}, {"side": "x"}, {"name": "丙"}]}
        >>> list(find(data, "parties[].name"))
        [('parties[0].name', '甲'), ('parties[2].name', '丙')]
        >>> try:
        ...     list(find({"reporter": "王小明"}, "reporter.name"))
        ... except InvalidPayload as exc:
        ...     print(exc)
        personal field 'reporter.name': 'reporter' must be an object holding 'name', got a str
    """
    steps = parse_path(path) if isinstance(path, str) else path
    declared = path if isinstance(path, str) else _declared_text(steps)
    yield from _walk(data, steps, 0, (), declared)


def _walk(node: Any, steps: DeclaredSteps, i: int, at: tuple[str | int, ...],
          declared: str) -> Iterator[tuple[str, Any]]:
    if node is None:
        return
    if i == len(steps):
        yield format_steps(at), node
        return
    step = steps[i]
    where = format_steps(at) if at else "the data"
    if step is EACH:
        if not isinstance(node, list | tuple):
            raise InvalidPayload(
                f"personal field {declared!r}: {where!r} must be a list, "
                f"got {_kind_of(node)}")
        for n, item in enumerate(node):
            yield from _walk(item, steps, i + 1, (*at, n), declared)
        return
    if not isinstance(node, Mapping):
        raise InvalidPayload(
            f"personal field {declared!r}: {where!r} must be an object holding {step!r}, "
            f"got {_kind_of(node)}")
    if step in node:
        yield from _walk(node[step], steps, i + 1, (*at, step), declared)


def _kind_of(value: Any) -> str:
    names = {str: "a str", int: "an int", float: "a float", bool: "a bool"}
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return names.get(type(value), f"a {type(value).__name__}")


def _declared_text(steps: DeclaredSteps) -> str:
    out = ""
    for step in steps:
        out += "[]" if step is EACH else (f".{step}" if out else step)
    return out


def replace(data: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``data`` with each concrete path in ``values`` set to its new value.

    The input is never mutated: every object and list on the way to a
    replaced value is copied; subtrees that nothing replaces are shared with
    the input (treat both as read-only, as case data is). Each path must
    exist in ``data`` (`gridflow.InvalidPayload` otherwise): replacing is for
    values that `find` found.

    Example:
        >>> data = {"parties": [{"name": "甲"}, {"name": "乙"}], "summary": "s"}
        >>> new = replace(data, {"parties[1].name": "乙*"})
        >>> new["parties"][1]["name"], data["parties"][1]["name"]
        ('乙*', '乙')
        >>> new["parties"][0] is data["parties"][0]
        True
    """
    root: dict[str, Any] = dict(data)
    owned = {id(root)}
    for text, value in values.items():
        steps = concrete_steps(text)
        node: Any = root
        for depth, step in enumerate(steps):
            last = depth == len(steps) - 1
            if isinstance(step, int):
                ok = isinstance(node, list) and step < len(node)
            else:
                ok = isinstance(node, dict) and step in node
            if not ok:
                raise InvalidPayload(
                    f"cannot replace {text!r}: {format_steps(steps[:depth + 1])!r} is not in "
                    "the data; replace only paths that find() returned")
            if last:
                node[step] = value
                break
            child = node[step]
            if id(child) not in owned:
                if isinstance(child, Mapping):
                    child = dict(child)
                elif isinstance(child, list | tuple):
                    child = list(child)
                else:
                    raise InvalidPayload(
                        f"cannot replace {text!r}: {format_steps(steps[:depth + 1])!r} holds "
                        f"{_kind_of(child)}, not an object or a list")
                node[step] = child
                owned.add(id(child))
            node = child
    return root
