"""Read a spec file into plain data, refusing input that is too big, too deep or a bomb.

A spec file may come from anyone (a pull request, an upload), so reading it is
bounded before anything walks the data: the file is at most `MAX_SPEC_BYTES`,
nested at most `MAX_SPEC_DEPTH` levels, and holds at most `MAX_SPEC_NODES` values once
YAML aliases are expanded (a 547-byte "billion laughs" file expands to 10**9).
Aliases are counted on the composed node graph, where an aliased node is one
shared object, so the count never expands anything. YAML is read by the safe
loader only (no Python objects), and a key given twice in one mapping is
refused rather than silently keeping the last value.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any, cast

from gridflow._errors import SpecError, SpecProblem

__all__ = [
    "MAX_SPEC_BYTES", "MAX_SPEC_DEPTH", "MAX_SPEC_NODES", "PERSONAL_KEYS", "parse_spec",
    "personal_policy", "personal_to_dict", "read_spec", "read_text",
]

#: Largest spec file read, in bytes (1 MiB; the built-in specs are under 20 KB).
MAX_SPEC_BYTES = 1 << 20
#: Deepest nesting of lists and mappings in a spec (a valid one needs 4).
MAX_SPEC_DEPTH = 64
#: Most values (scalars, lists, mappings) in a spec, counting every expansion of
#: a YAML alias (the built-in specs hold under 2,000).
MAX_SPEC_NODES = 100_000

_LIMITS = (f"a spec or migration plan file may have {MAX_SPEC_BYTES:,} bytes, "
           f"{MAX_SPEC_DEPTH} levels of nesting and {MAX_SPEC_NODES:,} values, "
           "YAML aliases expanded")


def _refuse(name: str, where: str, what: str, why: str = _LIMITS) -> SpecError:
    return SpecError(name, [SpecProblem(where, what, why)])


def spec_path(path: object) -> Path:
    """``path`` as a `Path`, or `SpecError` if it is no file path (a bool, bytes, None...)."""
    if isinstance(path, str | os.PathLike) and isinstance(os.fspath(path), str):
        return Path(path)
    raise _refuse("(unnamed)", "path", f"a spec file path is a str or a pathlib.Path, got "
                  f"{type(path).__name__}", "give the path of a .json, .yaml or .yml file")


def read_text(path: str | Path) -> str:
    """The text of a spec file: UTF-8, at most `MAX_SPEC_BYTES` (else `SpecError`).

    Example:
        >>> import os, tempfile
        >>> p = os.path.join(tempfile.mkdtemp(), "big.yaml")
        >>> _ = open(p, "w").write("#" * (MAX_SPEC_BYTES + 1))
        >>> read_text(p)
        Traceback (most recent call last):
        ...
        gridflow._errors.SpecError: workflow spec 'big.yaml' has 1 problem(s):
          - ...big.yaml: the file is larger than 1,048,576 bytes (a spec or migration plan ...)
    """
    path = spec_path(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_SPEC_BYTES + 1)
    except ValueError:
        # A NUL or a lone surrogate in the name: no file can have it.
        raise _refuse(path.name, "path", "cannot read the file: its name has a NUL character "
                      "or a lone surrogate", "give the path of a .json, .yaml or .yml file") \
            from None
    except OSError as exc:
        raise _refuse(path.name, str(path), f"cannot read the file: {exc.strerror or exc}",
                      "") from None
    if len(raw) > MAX_SPEC_BYTES:
        raise _refuse(path.name, str(path), f"the file is larger than {MAX_SPEC_BYTES:,} bytes")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _refuse(path.name, str(path), f"the file is not UTF-8 text (byte {exc.start})",
                      "save it as UTF-8") from None


def read_spec(path: str | Path) -> Any:
    """The plain data of a ``.json``, ``.yaml`` or ``.yml`` spec file, within the limits.

    Example:
        >>> import os, tempfile
        >>> p = os.path.join(tempfile.mkdtemp(), "w.yaml")
        >>> _ = open(p, "w").write("name: x\\nversion: 1\\n")
        >>> read_spec(p)
        {'name': 'x', 'version': 1}
    """
    path = Path(path)
    return parse_spec(read_text(path), path)


def parse_spec(text: str, path: str | Path) -> Any:
    """Parse spec ``text``; ``path``'s suffix says YAML or JSON, its name goes in errors.

    Example:
        >>> bomb = 'a: &a [x, x, x, x, x, x, x, x, x, x]\\n' + ''.join(
        ...     f'{b}: &{b} [*{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}]\\n'
        ...     for a, b in zip('abcdefgh', 'bcdefghi'))
        >>> parse_spec(bomb, "bomb.yaml")
        Traceback (most recent call last):
        ...
        gridflow._errors.SpecError: workflow spec 'bomb.yaml' has 1 problem(s):
          - bomb.yaml:5:4: the file holds more than 100,000 values once its YAML aliases are...
    """
    path = Path(path)
    if len(text) > MAX_SPEC_BYTES:
        raise _refuse(path.name, str(path), f"the text is longer than {MAX_SPEC_BYTES:,} "
                      "characters")
    if path.suffix.lower() in (".yaml", ".yml"):
        return _yaml(text, path)
    return _json(text, path)


# -- JSON ------------------------------------------------------------------------------------


def _json(text: str, path: Path) -> Any:
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out = dict(items)
        if len(out) != len(items):
            counted: dict[str, int] = {}
            for k, _ in items:
                counted[k] = counted.get(k, 0) + 1
            duplicates.extend(k for k, n in counted.items() if n > 1)
        return out

    try:
        data = json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        raise _refuse(path.name, f"{path}:{exc.lineno}:{exc.colno}", f"invalid JSON: {exc.msg}",
                      "") from None
    except RecursionError:
        raise _refuse(path.name, str(path), f"the file is nested more than {MAX_SPEC_DEPTH} levels "
                      "deep") from None
    except ValueError as exc:  # an integer of more than 4,300 digits
        raise _refuse(path.name, str(path), f"invalid JSON: {str(exc)[:100]}", "") from None
    if duplicates:
        keys = ", ".join(repr(k[:40]) for k in dict.fromkeys(duplicates))
        raise _refuse(path.name, str(path), f"a key appears twice in one object: {keys}",
                      "each key may be given once; the second would silently win")
    _check_plain(data, path)
    return data


def _check_plain(data: Any, path: Path) -> None:
    """Depth and size of parsed JSON, walked without recursion."""
    count = 0
    todo: list[tuple[Any, int]] = [(data, 1)]
    while todo:
        value, depth = todo.pop()
        count += 1
        if count > MAX_SPEC_NODES:
            raise _refuse(path.name, str(path),
                          f"the file holds more than {MAX_SPEC_NODES:,} values")
        if depth > MAX_SPEC_DEPTH:
            raise _refuse(path.name, str(path), f"the file is nested more than {MAX_SPEC_DEPTH} "
                          "levels deep")
        if isinstance(value, dict):
            todo.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            todo.extend((v, depth + 1) for v in value)


# -- YAML ------------------------------------------------------------------------------------


def _yaml(text: str, path: Path) -> Any:
    try:
        import yaml
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise _refuse(path.name, str(path), "PyYAML is not installed",
                      "pip install 'gridflow[yaml]'") from exc
    loader = _loader_class(yaml)(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_graph(yaml, node, path)
        return loader.construct_document(node)
    except _TooDeep as exc:
        raise _refuse(path.name, _at(path, exc.mark),
                      f"the file is nested more than {MAX_SPEC_DEPTH} levels deep") from None
    except yaml.YAMLError as exc:
        if "maximum nesting depth" in str(exc):  # libyaml's own limit (1,000 levels)
            raise _refuse(path.name, str(path), f"the file is nested more than {MAX_SPEC_DEPTH} "
                          "levels deep") from None
        raise _refuse(path.name, str(path), f"invalid YAML: {exc}", "") from None
    except (ValueError, RecursionError) as exc:  # an int of over 4,300 digits; a deep merge
        raise _refuse(path.name, str(path), f"invalid YAML: {str(exc)[:100]}", "") from None
    finally:
        loader.dispose()


class _TooDeep(Exception):
    def __init__(self, mark: Any) -> None:
        super().__init__("too deep")
        self.mark = mark


def _loader_class(yaml: Any) -> type[Any]:
    """libyaml's safe loader if PyYAML has it (it limits nesting itself and is ~10x
    faster), else a pure-Python safe loader that counts depth as it composes."""
    if getattr(yaml, "__with_libyaml__", False):
        return cast(type[Any], yaml.CSafeLoader)
    return _python_loader(yaml)


@functools.cache
def _python_loader(yaml: Any) -> type[Any]:
    class DepthLimitedSafeLoader(yaml.SafeLoader):  # type: ignore[misc]
        """Deep input fails on `MAX_SPEC_DEPTH`, not on Python's recursion limit."""

        def __init__(self, stream: str) -> None:
            super().__init__(stream)
            self.gridflow_depth = 0

        def fetch_flow_collection_start(self, token_class: Any) -> None:
            # The scanner reads ahead over every "[" that may start a key, so deep
            # flow nesting is stopped here, before the composer sees any of it.
            if self.flow_level >= MAX_SPEC_DEPTH:
                raise _TooDeep(self.get_mark())
            super().fetch_flow_collection_start(token_class)

        def compose_node(self, parent: Any, index: Any) -> Any:
            self.gridflow_depth += 1
            try:
                if self.gridflow_depth > MAX_SPEC_DEPTH:
                    raise _TooDeep(self.peek_event().start_mark)
                return super().compose_node(parent, index)
            finally:
                self.gridflow_depth -= 1

    return DepthLimitedSafeLoader


def _at(path: Path, mark: Any) -> str:
    return f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)


def _check_graph(yaml: Any, root: Any, path: Path) -> None:
    """Refuse a node graph whose expansion is too big or too deep, or is recursive,
    or has a key twice in one mapping: one pass over the distinct nodes, each
    node's expanded size and depth memoised (an alias reuses its node's)."""
    done: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded values, depth)
    active: set[int] = set()
    todo: list[tuple[Any, bool]] = [(root, False)]
    while todo:
        node, children_done = todo.pop()
        key = id(node)
        if key in done:
            continue
        children = _children(yaml, node)
        if not children_done:
            if key in active:
                raise _refuse(path.name, _at(path, node.start_mark),
                              "a YAML alias refers to a node that contains it",
                              "a spec cannot be a recursive structure")
            active.add(key)
            if isinstance(node, yaml.MappingNode):
                _check_keys(yaml, node, path)
            todo.append((node, True))
            todo.extend((child, False) for child in children if id(child) not in done)
            continue
        active.discard(key)
        size, depth = 1, 1
        for child in children:
            child_size, child_depth = done[id(child)]
            size += child_size
            depth = max(depth, child_depth + 1)
        if size > MAX_SPEC_NODES:
            raise _refuse(path.name, _at(path, node.start_mark),
                          f"the file holds more than {MAX_SPEC_NODES:,} values once its YAML "
                          "aliases are expanded")
        if depth > MAX_SPEC_DEPTH:
            raise _refuse(path.name, _at(path, node.start_mark),
                          f"the file is nested more than {MAX_SPEC_DEPTH} levels deep once its "
                          "YAML aliases are expanded")
        done[key] = (size, depth)


def _children(yaml: Any, node: Any) -> list[Any]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_keys(yaml: Any, node: Any, path: Path) -> None:
    seen: set[tuple[str, str]] = set()
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
            continue
        if (key.tag, key.value) in seen:
            raise _refuse(path.name, _at(path, key.start_mark),
                          f"key {key.value[:40]!r} appears twice in one mapping",
                          "each key may be given once; the second would silently win")
        seen.add((key.tag, key.value))


# -- declared personal fields ------------------------------------------------------------------

#: The keys of a spec's ``personal`` section (those of `gridflow._sealing.PersonalPolicy`).
PERSONAL_KEYS = ("readers", "auditors", "data", "payload", "triggers", "retention",
                 "unseal_for_steps", "refers_to")
_FIELD_KEYS = ("path", "kind", "subject")


def personal_policy(data: Any, where: str = "spec.personal") -> tuple[Any, list[SpecProblem]]:
    """A spec's ``personal`` section as a `gridflow._sealing.PersonalPolicy`, and its
    shape problems (the policy is ``None`` when there is any).

    The section names the personal paths of case data (``data``), of every
    trigger's payload (``payload``) and of one trigger's (``triggers``), each
    ``{path, kind, subject?}``; the roles that read them in clear
    (``readers``) and read restricted ones (``auditors``, default
    ``[auditor]``); optionally ``retention`` (a duration after the case became
    terminal), ``unseal_for_steps`` (guards read the stored values) and
    ``refers_to`` (``{consent: parties[].name}``: those values, or a mapping's
    keys, name listed elements, and are sealed under each one's subject).

    Example:
        >>> policy, problems = personal_policy({"readers": ["coordinator"],
        ...     "data": [{"path": "reporter.phone", "kind": "phone"}],
        ...     "triggers": {"note": [{"path": "contact", "kind": "free_text",
        ...                            "subject": "reporter.subject"}]}})
        >>> problems, [f.path for f in policy.payload_fields("note")], sorted(policy.readers)
        ([], ['contact'], ['coordinator'])
        >>> _, problems = personal_policy({"data": [{"path": "reporter.phone", "kind": "mobile"}]})
        >>> [(p.where, p.what) for p in problems]
        [('spec.personal.data[0]', "kind 'mobile' is not a kind of personal value")]
    """
    from datetime import timedelta

    from gridflow.convert import describe, parse_duration
    from gridflow.personal.fields import PersonalField, field_problems
    from gridflow.personal.policy import PersonalPolicy

    problems: list[SpecProblem] = []
    add = problems.append
    if not isinstance(data, dict):
        add(SpecProblem(where, f"expected a mapping, got {describe(data)}",
                        f"write personal: as a mapping with {', '.join(PERSONAL_KEYS)}"))
        return None, problems
    extra = [k for k in data if k not in PERSONAL_KEYS]
    if extra:
        add(SpecProblem(where, f"extra fields found ({', '.join(map(str, extra[:10]))})",
                        f"allowed fields: {', '.join(PERSONAL_KEYS)}"))

    def roles(key: str, default: frozenset[str]) -> frozenset[str]:
        value = data.get(key)
        if value is None:
            return default
        if not isinstance(value, list) or not all(isinstance(r, str) and r for r in value):
            add(SpecProblem(f"{where}.{key}", f"expected a list of role names, got "
                            f"{describe(value)}", f"write {key}: [coordinator, ...]"))
            return default
        return frozenset(value)

    def fields(value: Any, at: str) -> tuple[PersonalField, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            add(SpecProblem(at, f"expected a list, got {describe(value)}",
                            "write one {path: ..., kind: ...} mapping per personal path"))
            return ()
        out = []
        for i, item in enumerate(value):
            here = f"{at}[{i}]"
            if not isinstance(item, dict):
                add(SpecProblem(here, f"expected a mapping, got {describe(item)}",
                                "write {path: reporter.phone, kind: phone}"))
                continue
            bad = [k for k in item if k not in _FIELD_KEYS]
            if bad:
                add(SpecProblem(here, f"extra fields found ({', '.join(map(str, bad[:10]))})",
                                f"allowed fields: {', '.join(_FIELD_KEYS)}"))
            if "path" not in item or "kind" not in item:
                missing = [k for k in ("path", "kind") if k not in item]
                add(SpecProblem(here, f"required field missing: {', '.join(missing)}",
                                "a personal field needs a path and a kind"))
                continue
            found = field_problems(item["path"], item["kind"], item.get("subject"), here)
            if found:
                problems.extend(found)
                continue
            out.append(PersonalField(item["path"], item["kind"], item.get("subject")))
        return tuple(out)

    readers = roles("readers", frozenset())
    auditors = roles("auditors", frozenset({"auditor"}))
    own = fields(data.get("data"), f"{where}.data")
    every = fields(data.get("payload"), f"{where}.payload")
    per: dict[str, tuple[PersonalField, ...]] = {}
    triggers = data.get("triggers")
    if triggers is not None and not isinstance(triggers, dict):
        add(SpecProblem(f"{where}.triggers", f"expected a mapping, got {describe(triggers)}",
                        "write triggers: {note: [{path: contact, kind: free_text}]}"))
    for trigger, value in (triggers or {}).items() if isinstance(triggers, dict) else ():
        per[str(trigger)] = fields(value, f"{where}.triggers.{trigger}")
    retention: timedelta | None = None
    if data.get("retention") is not None:
        try:
            if isinstance(data["retention"], int | float):
                raise ValueError(f"not a duration: {describe(data['retention'])}; write e.g. "
                                 "1095d or P1095D")
            retention = parse_duration(data["retention"])
        except ValueError as exc:
            add(SpecProblem(f"{where}.retention", str(exc), ""))
    refers = data.get("refers_to") or {}
    if not isinstance(refers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in refers.items()):
        add(SpecProblem(f"{where}.refers_to", f"expected a mapping of paths to paths, got "
                        f"{describe(refers)}", "write refers_to: {consent: parties[].name}"))
        refers = {}
    unseal = data.get("unseal_for_steps", False)
    if not isinstance(unseal, bool):
        add(SpecProblem(f"{where}.unseal_for_steps",
                        f"expected true or false, got {describe(unseal)}", ""))
    if problems:
        return None, problems
    return PersonalPolicy(data=own, payload=every, triggers=per, readers=readers,
                          auditors=auditors, retention=retention,
                          unseal_for_steps=unseal, refers_to=dict(refers)), []


def personal_to_dict(policy: Any) -> dict[str, Any]:
    """A `gridflow._sealing.PersonalPolicy` as the plain data `personal_policy` reads back.

    Example:
        >>> from gridflow._sealing import BUILTIN_POLICIES
        >>> d = personal_to_dict(BUILTIN_POLICIES["grid_case"])
        >>> d["readers"], d["data"][0]
        (['coordinator'], {'path': 'reporter.name', 'kind': 'name'})
        >>> personal_policy(d)[0] == BUILTIN_POLICIES["grid_case"]
        True
        >>> m = personal_to_dict(BUILTIN_POLICIES["mediation"])
        >>> m["refers_to"]["consent"], personal_policy(m)[0] == BUILTIN_POLICIES["mediation"]
        ('parties[].name', True)
    """
    from gridflow.convert import format_duration

    def fields(items: Any) -> list[dict[str, Any]]:
        return [{"path": f.path, "kind": f.kind,
                 **({"subject": f.subject} if f.subject is not None else {})} for f in items]

    out: dict[str, Any] = {"readers": sorted(policy.readers),
                           "auditors": sorted(policy.auditors),
                           "data": fields(policy.data), "payload": fields(policy.payload)}
    if policy.triggers:
        out["triggers"] = {t: fields(v) for t, v in sorted(policy.triggers.items())}
    if policy.retention is not None:
        out["retention"] = format_duration(policy.retention)
    if policy.unseal_for_steps:
        out["unseal_for_steps"] = True
    if policy.refers_to:
        out["refers_to"] = dict(sorted(policy.refers_to.items()))
    return out
