"""The reference: the JSON object that stands in stored data for one personal value.

Format (version 1), exactly three keys, all strings::

    {"$pii": "<ref id>", "kind": "<kind>", "c": "<commitment>"}

- ``$pii``: the reference id, 32 lowercase hex digits (128 random bits), the
  key of the ciphertext in the host's vault. Random, so two references to the
  same value do not show it is the same.
- ``kind``: one of `gridflow.personal.fields.KINDS`, so a reader can mask or
  show a tombstone without the spec at hand.
- ``c``: the keyed commitment (`gridflow.personal.commitment.commit`), 64
  lowercase hex digits: what the hash chain and the Merkle log cover.

Nothing else: no subject, no mask, no hint of the value (whatever the event
holds is kept forever, also after erasure). `is_reference` accepts only this
exact shape. Callers never supply references: the engine makes them, after
`refuse_lookalikes` has refused any object in caller input carrying a
``$pii``-like key (a forged reference could otherwise point at another
case's value, or a lookalike could pass as protected while holding plaintext).
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

import attrs

from gridflow._errors import InvalidPayload
from gridflow.personal.fields import KINDS
from gridflow.personal.paths import format_steps

__all__ = [
    "REF_KEY",
    "Reference",
    "holds_reference",
    "is_reference",
    "lookalikes",
    "make_reference",
    "map_references",
    "new_ref_id",
    "parse_reference",
    "references",
    "refuse_lookalikes",
]

#: The key that marks a reference.
REF_KEY: Final = "$pii"
_KEYS: Final = frozenset({REF_KEY, "kind", "c"})
_REF_ID = re.compile(r"[0-9a-f]{32}")
_COMMITMENT = re.compile(r"[0-9a-f]{64}")


@attrs.frozen
class Reference:
    """A parsed reference (see the module docstring for the format).

    Example:
        >>> ref = Reference("0" * 32, "phone", "a" * 64)
        >>> ref.to_json() == {"$pii": "0" * 32, "kind": "phone", "c": "a" * 64}
        True
    """

    ref_id: str
    kind: str
    commitment: str

    def to_json(self) -> dict[str, str]:
        """The reference as it is stored.

        Example:
            >>> sorted(Reference("0" * 32, "name", "f" * 64).to_json())
            ['$pii', 'c', 'kind']
        """
        return {REF_KEY: self.ref_id, "kind": self.kind, "c": self.commitment}


def new_ref_id() -> str:
    """A fresh random reference id: 32 lowercase hex digits.

    Example:
        >>> ref_id = new_ref_id()
        >>> len(ref_id), ref_id != new_ref_id()
        (32, True)
    """
    # What secrets.token_hex(16) returns (os.urandom's bytes in hex), without importing
    # `secrets` (which loads `random`) or its two calls in between.
    return os.urandom(16).hex()


#: Reference ids and commitments already found well-formed (strings are immutable, so
#: a string once checked stays so): `_problem` of a stored reference read again skips
#: the two regular expressions. Not secret (both sit in every event); bounded (4096),
#: exact ``str`` only.
_GOOD_IDS: set[str] = set()
_GOOD_CS: set[str] = set()


def _problem(value: object) -> str | None:
    if value.__class__ is dict and len(value) == 3:
        # The quick test: a reference read before (same strings, same kind).
        ref_id, c = value.get(REF_KEY), value.get("c")
        if ref_id.__class__ is str and c.__class__ is str and ref_id in _GOOD_IDS \
                and c in _GOOD_CS and value.get("kind") in KINDS:
            return None
    problem = _full_problem(value)
    if problem is None:
        ref_id, c = value[REF_KEY], value["c"]  # type: ignore[index]
        if ref_id.__class__ is str and c.__class__ is str:
            if len(_GOOD_IDS) >= 4096:
                _GOOD_IDS.clear()
                _GOOD_CS.clear()
            _GOOD_IDS.add(ref_id)
            _GOOD_CS.add(c)
    return problem


def _full_problem(value: object) -> str | None:
    if not isinstance(value, Mapping):
        return "it is not an object"
    if set(value) != _KEYS:
        return f"its keys must be exactly {', '.join(sorted(_KEYS))}"
    ref_id, kind, c = value[REF_KEY], value["kind"], value["c"]
    if not isinstance(ref_id, str) or not _REF_ID.fullmatch(ref_id):
        return "its $pii must be 32 lowercase hex digits"
    if kind not in KINDS:
        return f"its kind must be one of {', '.join(KINDS)}"
    if not isinstance(c, str) or not _COMMITMENT.fullmatch(c):
        return "its c must be 64 lowercase hex digits"
    return None


def is_reference(value: object) -> bool:
    """Whether ``value`` is exactly a reference: the three keys, each well-formed.

    Example:
        >>> is_reference({"$pii": "0" * 32, "kind": "phone", "c": "a" * 64})
        True
        >>> is_reference({"$pii": "0" * 32, "kind": "phone", "c": "a" * 64, "v": "138"})
        False
    """
    return _problem(value) is None


def parse_reference(value: object, where: str = "value") -> Reference:
    """``value`` as a `Reference`, or `gridflow.InvalidPayload` saying what is wrong.

    Example:
        >>> parse_reference({"$pii": "0" * 32, "kind": "email", "c": "b" * 64}).kind
        'email'
        >>> try:
        ...     parse_reference({"$pii": "x"}, "reporter.phone")
        ... except InvalidPayload as exc:
        ...     print(exc)
        'reporter.phone' is not a personal-value reference: its keys must be exactly $pii, c, kind
    """
    problem = _problem(value)
    if problem is not None:
        raise InvalidPayload(f"{where!r} is not a personal-value reference: {problem}")
    assert isinstance(value, Mapping)
    return Reference(value[REF_KEY], value["kind"], value["c"])


def make_reference(ref_id: str, kind: str, commitment: str) -> dict[str, str]:
    """The stored form of a reference, checked (`gridflow.InvalidPayload` if malformed).

    Example:
        >>> make_reference("0" * 32, "name", "c" * 64)["kind"]
        'name'
    """
    value = {REF_KEY: ref_id, "kind": kind, "c": commitment}
    parse_reference(value, "new reference")
    return value


def _marks_reference(key: object) -> bool:
    # Also the full-width, upper-case and spaced spellings: none is read as a
    # reference here, but an export or a later tool that normalises keys would.
    if not isinstance(key, str):
        return False
    folded = unicodedata.normalize("NFKC", key).casefold()
    return "".join(folded.split()).startswith(REF_KEY)


def _any_marked(node: Any) -> bool:
    """Whether some key anywhere in ``node`` may mark a reference (the quick test
    before `_collect`): an ASCII key without ``$`` never does (NFKC and
    casefold leave ASCII ASCII, and cannot make a ``$``); every other key is
    asked `_marks_reference`, exactly."""
    cls = node.__class__
    # An exact list or tuple is asked first: it is never a Mapping, and the ABC's
    # isinstance test is most of the walk's cost on it.
    if cls is list or cls is tuple:
        for child in node:
            if child.__class__ not in _LEAVES and _any_marked(child):
                return True
    elif cls is dict or (cls is not str and isinstance(node, Mapping)):
        for key, child in node.items():
            if not (key.__class__ is str and key.isascii() and "$" not in key) \
                    and _marks_reference(key):
                return True
            if child.__class__ not in _LEAVES and _any_marked(child):
                return True
    elif cls is not str and isinstance(node, list | tuple):
        for child in node:
            if child.__class__ not in _LEAVES and _any_marked(child):
                return True
    return False


#: Values with nothing inside (no key, no child) for the quick walks.
_LEAVES: Final = frozenset((str, int, float, bool, type(None)))


def lookalikes(data: Any) -> list[str]:
    """Concrete paths of every object in ``data`` that carries a ``$pii``-like key.

    In caller input each is refused, a perfect reference as much as a sloppy
    fake: only the engine makes references. ``""`` stands for ``data`` itself.

    Example:
        >>> lookalikes({"note": "ok", "parties": [{"name": {"$pii": "0" * 32}},
        ...                                      {"ＰＩＩ": 1, "＄ｐｉｉ": 2}]})
        ['parties[0].name', 'parties[1]']
    """
    found: list[str] = []
    try:
        marked = _any_marked(data)
    except RecursionError:
        marked = True  # _collect decides
    if marked:
        _collect(data, (), found)
    return found


def _collect(node: Any, at: tuple[str | int, ...], found: list[str]) -> None:
    if isinstance(node, Mapping):
        if any(_marks_reference(k) for k in node):
            found.append(format_steps(at) if at else "")
        for key, child in node.items():
            _collect(child, (*at, str(key)), found)
    elif isinstance(node, list | tuple):
        for n, child in enumerate(node):
            _collect(child, (*at, n), found)


def refuse_lookalikes(data: Any, *, where: str = "payload", case_id: str | None = None,
                      trigger: str = "") -> None:
    """Raise `gridflow.InvalidPayload` if caller input holds anything reference-like.

    Example:
        >>> refuse_lookalikes({"reporter": {"name": "王小明"}})
        >>> try:
        ...     refuse_lookalikes({"reporter": {"name": {"$pii": "0" * 32}}}, trigger="note")
        ... except InvalidPayload as exc:
        ...     print(str(exc).split(";")[0])
        payload: 'reporter.name' holds a '$pii' key
    """
    found = lookalikes(data)
    if found:
        paths = ", ".join(repr(p) if p else f"the {where} itself" for p in found)
        raise InvalidPayload(
            f"{where}: {paths} holds a '$pii' key; '$pii' marks the references gridflow "
            "makes for personal values, and input cannot carry one: send the plain value "
            "in a declared personal field and gridflow protects it",
            case_id=case_id, trigger=trigger)


def references(data: Any) -> Iterator[tuple[str, Reference]]:
    """Every reference in ``data``, anywhere: ``(concrete path, Reference)`` pairs.

    Example:
        >>> ref = {"$pii": "0" * 32, "kind": "phone", "c": "a" * 64}
        >>> [(p, r.kind) for p, r in references({"data": {"reporter": {"phone": ref}}})]
        [('data.reporter.phone', 'phone')]
    """
    try:
        if not _may_hold_reference(data):
            return
    except RecursionError:
        pass  # the walk below decides
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(data, ())]
    while stack:
        node, at = stack.pop()
        if isinstance(node, Mapping):
            if is_reference(node):
                yield format_steps(at), parse_reference(node)
                continue
            stack.extend((child, (*at, str(k))) for k, child in reversed(list(node.items())))
        elif isinstance(node, list | tuple):
            stack.extend((child, (*at, n)) for n, child in reversed(list(enumerate(node))))


def holds_reference(data: Any) -> bool:
    """Whether ``data`` holds a reference anywhere (`references` would yield one).

    Example:
        >>> ref = {"$pii": "0" * 32, "kind": "phone", "c": "a" * 64}
        >>> holds_reference({"a": [1, {"b": ref}]}), holds_reference({"a": [1, "b"]})
        (True, False)
    """
    try:
        if not _may_hold_reference(data):
            return False
    except RecursionError:
        pass
    # `references`' walk, without building paths or references: stops at the first.
    stack = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, Mapping):
            if REF_KEY in node and _problem(node) is None:
                return True
            stack.extend(node.values())
        elif isinstance(node, list | tuple):
            stack.extend(node)
    return False


def _may_hold_reference(node: Any) -> bool:
    """False only if ``node`` holds no object with a ``$pii`` key (so no reference):
    the quick test before `references` walks with paths."""
    cls = node.__class__
    if cls is list or cls is tuple:  # first: never a Mapping (see `_any_marked`)
        for child in node:
            if child.__class__ not in _LEAVES and _may_hold_reference(child):
                return True
    elif cls is dict or (cls is not str and isinstance(node, Mapping)):
        if REF_KEY in node:
            return True
        for child in node.values():
            if child.__class__ not in _LEAVES and _may_hold_reference(child):
                return True
    elif cls is not str and isinstance(node, list | tuple):
        for child in node:
            if child.__class__ not in _LEAVES and _may_hold_reference(child):
                return True
    return False


def map_references(data: Any, fn: Callable[[str, Reference], Any]) -> Any:
    """A copy of ``data`` with every reference replaced by ``fn(concrete path, reference)``.

    For reads: ``fn`` returns the plaintext, a mask or a tombstone. The path
    is where the reference was found (``data.reporter.phone`` in an open
    event), for messages; what the ciphertext is bound to is recorded with it
    in the vault. Objects and lists without references are shared, not copied.

    Example:
        >>> ref = {"$pii": "0" * 32, "kind": "phone", "c": "a" * 64}
        >>> map_references({"reporter": {"phone": ref}, "n": [1]}, lambda p, r: f"<{r.kind}>")
        {'reporter': {'phone': '<phone>'}, 'n': [1]}
    """
    return _map(data, (), fn)


def _map(node: Any, at: tuple[str | int, ...], fn: Callable[[str, Reference], Any]) -> Any:
    if isinstance(node, Mapping):
        if REF_KEY in node and _problem(node) is None:
            return fn(format_steps(at), Reference(node[REF_KEY], node["kind"], node["c"]))
        out = {k: _map(v, (*at, str(k)), fn) for k, v in node.items()}
        return node if all(out[k] is v for k, v in node.items()) else out
    if isinstance(node, list | tuple):
        items = [_map(v, (*at, n), fn) for n, v in enumerate(node)]
        return node if all(a is b for a, b in zip(items, node, strict=True)) else items
    return node
