"""A faster ``__init__`` for the frozen attrs classes every step builds.

attrs gives a frozen slotted class an ``__init__`` that stores each field with
``object.__setattr__(self, "name", value)``: a name look-up through the type on
every field. A step builds a `Case`, an `Event`, its `Changes`, an `Outcome`
and a `Write` (about 50 fields), and those look-ups were a measurable part of
it. `frozen_init` gives such a class an ``__init__`` with the same parameters,
defaults and order that stores each field through its slot's own descriptor
instead: the same object, built without the look-ups. The class stays frozen
(assignment still raises), and everything else attrs generated (``__eq__``,
``__repr__``, `attrs.evolve`, `attrs.fields`) is untouched.

Only what that ``__init__`` reproduces exactly is replaced: no validator, no
converter, no ``__attrs_pre_init__``/``__attrs_post_init__``, no keyword-only or
renamed field, no factory that takes ``self``; any class with one keeps attrs'
own ``__init__``. `tests/test_fast_paths.py` compares the two, argument for
argument.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any, TypeVar

import attrs

__all__ = ["frozen_init", "maker"]

C = TypeVar("C", bound=type)
T = TypeVar("T")

#: The ``__init__`` attrs generated, per class given a faster one (for the tests).
ATTRS_INIT: dict[type, Any] = {}
#: Per class given a faster ``__init__``: a plain function that builds an instance
#: from the same arguments without going through ``type.__call__`` (see `maker`).
_MAKERS: dict[type, Any] = {}


def frozen_init(cls: C) -> C:
    """Give the frozen slotted attrs class ``cls`` the faster ``__init__``; returns ``cls``.

    Example:
        >>> @frozen_init
        ... @attrs.frozen(slots=True)
        ... class Point:
        ...     x: int
        ...     y: int = 0
        >>> Point(1), Point(1) == Point(x=1, y=0)
        (Point(x=1, y=0), True)
    """
    if cls in ATTRS_INIT:
        # Applied twice: keep the first. A second pass would record the faster
        # ``__init__`` as attrs' own, and the test against attrs would compare it
        # with itself.
        return cls
    made = _make_init(cls)
    if made is not None:
        ATTRS_INIT[cls] = cls.__init__  # type: ignore[misc]
        cls.__init__, _MAKERS[cls] = made  # type: ignore[misc]
    return cls


def maker(cls: type[T]) -> Callable[..., T]:
    """A function taking ``cls``'s own arguments that returns the instance
    ``cls(...)`` would, without ``type.__call__`` running ``__init__`` (for the few
    rows built on every step); ``cls`` itself if it has no faster ``__init__``.

    Example:
        >>> @frozen_init
        ... @attrs.frozen(slots=True)
        ... class Pair:
        ...     a: int
        ...     b: int = 2
        >>> maker(Pair)(1) == Pair(1)
        True
    """
    made: Callable[..., T] = _MAKERS.get(cls, cls)
    return made


def _make_init(cls: type) -> tuple[Any, Any] | None:
    if not attrs.has(cls) or "__slots__" not in cls.__dict__ \
            or hasattr(cls, "__attrs_pre_init__") or hasattr(cls, "__attrs_post_init__"):
        return None
    if getattr(cls.__setattr__, "__name__", "") != "_frozen_setattrs":
        return None  # not frozen as attrs makes it: keep attrs' __init__
    namespace: dict[str, Any] = {"NOTHING": attrs.NOTHING}
    params: list[str] = []
    body: list[str] = []
    for n, field in enumerate(attrs.fields(cls)):
        if field.validator is not None or field.converter is not None or not field.init \
                or field.kw_only or getattr(field, "alias", field.name) != field.name \
                or field.on_setattr not in (None, attrs.setters.NO_OP):
            return None
        slot = next((klass.__dict__[field.name] for klass in cls.__mro__
                     if field.name in klass.__dict__), None)
        if not isinstance(slot, types.MemberDescriptorType):
            return None
        setter = f"_set{n}"
        namespace[setter] = slot.__set__
        name = field.name
        default = field.default
        if default is attrs.NOTHING:
            params.append(name)
            body.append(f"{setter}(self, {name})")
        elif isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            if default.takes_self:
                return None
            namespace[f"_factory{n}"] = default.factory
            params.append(f"{name}=NOTHING")
            body.append(f"{setter}(self, _factory{n}() if {name} is NOTHING else {name})")
        else:
            namespace[f"_default{n}"] = default
            params.append(f"{name}=_default{n}")
            body.append(f"{setter}(self, {name})")
    if not params or any(f.name in namespace or f.name in ("self", "_cls", "_new")
                         for f in attrs.fields(cls)):
        return None  # a field named like one of the helpers: keep attrs' own
    namespace["_cls"], namespace["_new"] = cls, object.__new__
    lines = "\n    ".join(body)
    source = (f"def __init__(self, {', '.join(params)}):\n    {lines}\n\n"
              f"def make({', '.join(params)}):\n    self = _new(_cls)\n    {lines}\n"
              "    return self\n")
    exec(compile(source, f"<gridflow frozen_init {cls.__qualname__}>", "exec"), namespace)
    init, make = namespace["__init__"], namespace["make"]
    make.__qualname__ = make.__name__ = f"make_{cls.__name__}"
    make.__module__ = cls.__module__
    original = cls.__init__
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__doc__ = original.__doc__
    init.__annotations__ = dict(getattr(original, "__annotations__", {}))
    return init, make
