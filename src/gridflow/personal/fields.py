"""Declared personal fields (个人信息字段): where personal values sit, what kind, whose.

A workflow spec declares, for its case data and for each trigger's payload,
the paths that hold personal values::

    PersonalField("reporter.name", "name")
    PersonalField("parties[].id_number", "id_number")
    PersonalField("contact", "phone", subject="reporter.subject")

The *data subject* (个人信息主体) of a value is the person it is about; erasing
a subject forgets every value of theirs. By default it is the ``subject`` key
of the object beside the value (``reporter: {subject: "p-17", name: ...}``
gives ``"p-17"``); a field may name another path instead. Without one, the
value belongs to the case itself, which the engine maps to `case_subject`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import attrs

from gridflow._errors import InvalidPayload, SpecError, SpecProblem
from gridflow.personal.paths import (
    EACH,
    concrete_steps,
    format_steps,
    parse_path,
    path_problems,
)

__all__ = [
    "CASE_SUBJECT_PREFIX",
    "KINDS",
    "SUBJECT_KEY",
    "PersonalField",
    "case_subject",
    "check_subject_id",
    "field_problems",
    "fields_problems",
    "subject_of",
]

#: The kinds of personal value; each has its own mask (`gridflow.personal.masks`).
KINDS: Final = ("name", "phone", "id_number", "email", "address", "free_text", "other")

#: The key beside a value that names its data subject, by default.
SUBJECT_KEY: Final = "subject"

#: Subject ids the engine makes for "the case itself"; callers cannot use this prefix.
CASE_SUBJECT_PREFIX: Final = "case:"

_SUBJECT_ID = re.compile(r"[^\s\x00-\x1f\x7f]{1,128}")


def field_problems(path: object, kind: object, subject: object = None,
                   where: str = "personal field") -> list[SpecProblem]:
    """Every problem with a personal-field declaration (empty list: it is valid).

    Example:
        >>> field_problems("reporter.phone", "phone")
        []
        >>> for p in field_problems("reporter.subject", "mobile"):
        ...     print(p.what)
        kind 'mobile' is not a kind of personal value
        'reporter.subject' names the subject id itself
    """
    problems = path_problems(path, where)
    path_ok = not problems and isinstance(path, str)
    if kind not in KINDS:
        problems.append(SpecProblem(where, f"kind {kind!r} is not a kind of personal value",
                                    f"allowed: {', '.join(KINDS)}"))
    if path_ok and parse_path(str(path))[-1] == SUBJECT_KEY:
        problems.append(SpecProblem(
            where, f"{path!r} names the subject id itself",
            "the subject key says whose values sit beside it; it is a pseudonymous id, "
            "not a personal value: declare the values instead"))
    if subject is not None:
        sub = path_problems(subject, f"{where} (subject)")
        problems.extend(sub)
        if not sub and path_ok:
            problems.extend(_subject_alignment(str(path), str(subject), where))
    return problems


def _subject_alignment(path: str, subject: str, where: str) -> list[SpecProblem]:
    # A subject path may go through a list only where the value's path does,
    # so that each value has exactly one subject (the one in its own element).
    value_steps, subject_steps = parse_path(path), parse_path(subject)
    each_at = [i for i, s in enumerate(subject_steps) if s is EACH]
    if each_at and subject_steps[: each_at[-1] + 1] != value_steps[: each_at[-1] + 1]:
        return [SpecProblem(
            f"{where} (subject)",
            f"subject path {subject!r} goes through a list that {path!r} is not in",
            "each value needs one subject: a subject path may use [] only along the "
            "value's own path, e.g. parties[].pid for parties[].name")]
    return []


def _check(instance: PersonalField, attribute: Any, value: Any) -> None:
    # Validate once, all fields together, on the last attribute.
    problems = field_problems(instance.path, instance.kind, value,
                              f"personal field {instance.path!r}")
    if problems:
        raise SpecError("personal fields", problems)


@attrs.frozen
class PersonalField:
    """A declared personal field: a path in case data or a payload, its kind, its subject.

    ``subject`` is ``None`` for the default (the ``subject`` key beside the
    value, else the case itself) or a declared path, from the same document's
    root, where the subject id is read (``[]`` allowed only along the value's
    own path: ``parties[].pid`` for ``parties[].name``). A bad declaration
    raises `gridflow.SpecError` listing every problem.

    Example:
        >>> PersonalField("parties[].id_number", "id_number")
        PersonalField(path='parties[].id_number', kind='id_number', subject=None)
        >>> try:
        ...     PersonalField("parties[0].name", "nickname")
        ... except SpecError as exc:
        ...     print(len(exc.problems))
        2
    """

    path: str
    kind: str
    subject: str | None = attrs.field(default=None, validator=_check)

    def steps(self) -> tuple[str | None, ...]:
        """The parsed path (keys, and ``None`` for every ``[]``).

        Example:
            >>> PersonalField("parties[].name", "name").steps()
            ('parties', None, 'name')
        """
        return parse_path(self.path)


def check_subject_id(value: object, where: str) -> str:
    """``value`` as a subject id, or `gridflow.InvalidPayload` saying what is allowed.

    A subject id is a pseudonymous id the host chose (``p-17``, a UUID): 1 to
    128 characters, no spaces or control characters, not starting with
    ``case:`` (kept for the case's own subject). The value is never echoed:
    a person's name put there by mistake must not land in an error message.

    Example:
        >>> check_subject_id("p-17", "reporter.subject")
        'p-17'
        >>> try:
        ...     check_subject_id("王 小明", "reporter.subject")
        ... except InvalidPayload as exc:
        ...     print(str(exc).split(" (")[0], "王" in str(exc))
        'reporter.subject' must be a subject id False
    """
    if (isinstance(value, str) and _SUBJECT_ID.fullmatch(value)
            and not value.startswith(CASE_SUBJECT_PREFIX)):
        return value
    got = f"a {type(value).__name__}" if not isinstance(value, str) else "another string"
    raise InvalidPayload(
        f"{where!r} must be a subject id (1 to 128 characters, no spaces or control "
        f"characters, not starting with {CASE_SUBJECT_PREFIX!r}), got {got}; it names the "
        "data subject with a pseudonymous id such as 'p-17', never a name")


def case_subject(case_id: str) -> str:
    """The subject id of "the case itself", for values no subject is given for.

    Example:
        >>> case_subject("c-42")
        'case:c-42'
    """
    return f"{CASE_SUBJECT_PREFIX}{case_id}"


def subject_of(data: Mapping[str, Any], concrete: str,
               field: PersonalField | None = None) -> str | None:
    """The subject id of the value at ``concrete`` in ``data``, or ``None`` (the case's).

    With no ``field`` or a field without ``subject``: the ``subject`` key of
    the nearest object holding the value. With ``field.subject``: the value
    at that path, its ``[]`` filled with the value's own list indexes. A
    subject id that is present but malformed raises `gridflow.InvalidPayload`.

    Example:
        >>> data = {"reporter": {"subject": "p-17", "name": "王小明"},
        ...         "parties": [{"subject": "p-3", "name": "甲"}, {"name": "乙"}]}
        >>> subject_of(data, "reporter.name"), subject_of(data, "parties[1].name")
        ('p-17', None)
        >>> subject_of({"contact": "x", "reporter": {"subject": "p-17"}}, "contact",
        ...            PersonalField("contact", "phone", subject="reporter.subject"))
        'p-17'
    """
    steps = concrete_steps(concrete)
    if field is not None and field.subject is not None:
        # field_problems made sure every [] of the subject path is one the
        # value's path went through, so the value's own indexes fill them.
        indexes = iter([s for s in steps if isinstance(s, int)])
        at = [next(indexes, -1) if step is EACH else step for step in parse_path(field.subject)]
        value = _get(data, at)
        return None if value is None else check_subject_id(value, field.subject)
    # The nearest enclosing object: walk down, remembering the last one seen.
    holder: Any = None
    holder_at: Sequence[str | int] = ()
    node: Any = data
    for depth, step in enumerate(steps[:-1] if steps else ()):
        if isinstance(node, Mapping):
            holder, holder_at = node, steps[:depth]
        node = _step(node, step)
        if node is None:
            return None
    if isinstance(node, Mapping):
        holder, holder_at = node, steps[:-1]
    if holder is None or holder.get(SUBJECT_KEY) is None:
        return None
    where = format_steps([*holder_at, SUBJECT_KEY])
    return check_subject_id(holder[SUBJECT_KEY], where)


def _step(node: Any, step: str | int) -> Any:
    if isinstance(step, int):
        return node[step] if isinstance(node, list | tuple) and 0 <= step < len(node) else None
    return node.get(step) if isinstance(node, Mapping) else None


def _get(data: Any, steps: Iterable[str | int]) -> Any:
    node = data
    for step in steps:
        node = _step(node, step)
        if node is None:
            return None
    return node


def fields_problems(fields: Iterable[PersonalField], where: str) -> list[SpecProblem]:
    """Problems among several fields declared for one document (case data or a payload).

    The same path twice, or one declared path inside another (``reporter``
    and ``reporter.name``: sealing the outer hides the inner).

    Example:
        >>> fields_problems([PersonalField("reporter", "free_text"),
        ...                  PersonalField("reporter.name", "name")], "data")[0].what
        "'reporter.name' lies inside 'reporter', which is personal as a whole"
    """
    problems: list[SpecProblem] = []
    seen: dict[tuple[str | None, ...], PersonalField] = {}
    ordered = sorted(fields, key=lambda f: len(f.steps()))
    for field in ordered:
        steps = field.steps()
        if steps in seen:
            problems.append(SpecProblem(where, f"personal field {field.path!r} is declared twice",
                                        "declare each path once, with one kind"))
            continue
        for outer_steps, outer in seen.items():
            if steps[: len(outer_steps)] == outer_steps:
                problems.append(SpecProblem(
                    where, f"{field.path!r} lies inside {outer.path!r}, which is personal "
                    "as a whole", "declare either the object or the values in it"))
                break
        seen[steps] = field
    return problems

