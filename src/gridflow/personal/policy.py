"""A workflow's personal-data policy: its declared fields, readers, retention.

The engine's use of it is in `gridflow._sealing` (which re-exports
`PersonalPolicy`); specs carry one as `gridflow.WorkflowSpec.personal`, which is
why it lives here, below the spec, the stores and the engine.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import timedelta

import attrs

from gridflow.personal.fields import PersonalField
from gridflow.personal.paths import parse_path

__all__ = ["PersonalPolicy"]


@functools.lru_cache(maxsize=1024)
def _steps(path: str) -> tuple[str | None, ...]:
    return parse_path(path)


@attrs.frozen
class PersonalPolicy:
    """The personal paths of one workflow, and who may read them.

    ``data`` are the declared paths in case data (also in the ``open``
    data); ``payload`` the paths declared for every trigger's payload, and
    ``triggers`` extra paths per trigger. ``readers`` see plaintext,
    everyone else a mask; ``auditors`` alone read a restricted subject's
    values (each read recorded). ``retention`` is how long after a case
    becomes terminal its personal values are kept (``None``: until erased).

    Example:
        >>> from gridflow._sealing import BUILTIN_POLICIES
        >>> p = BUILTIN_POLICIES["grid_case"]
        >>> [f.path for f in p.data][:2], sorted(p.readers)
        (['reporter.name', 'reporter.phone'], ['coordinator'])
    """

    data: tuple[PersonalField, ...] = ()
    payload: tuple[PersonalField, ...] = ()
    triggers: Mapping[str, tuple[PersonalField, ...]] = attrs.field(factory=dict)
    readers: frozenset[str] = frozenset()
    auditors: frozenset[str] = frozenset({"auditor"})
    retention: timedelta | None = None
    unseal_for_steps: bool = False
    #: Declared paths whose values (or, for a mapping, whose keys) are the names of
    #: the elements listed at another declared path: ``{"consent": "parties[].name"}``.
    #: Each such name is sealed under the subject of the element it names (so
    #: erasing a party erases their name in ``consent`` too, not the other party's).
    refers_to: Mapping[str, str] = attrs.field(factory=dict)

    def payload_fields(self, trigger: str) -> tuple[PersonalField, ...]:
        """The declared paths of ``trigger``'s payload (``open``: none, its data is ``data``).

        Example:
            >>> from gridflow._sealing import BUILTIN_POLICIES
            >>> [f.path for f in BUILTIN_POLICIES["grid_case"].payload_fields("note")][-1]
            'contact'
        """
        return (*self.payload, *self.triggers.get(trigger, ()))

    def top_keys(self) -> frozenset[str]:
        """The top-level data keys under which personal values may sit.

        Example:
            >>> from gridflow._sealing import BUILTIN_POLICIES
            >>> sorted(BUILTIN_POLICIES["mediation"].top_keys())
            ['agreement', 'consent', 'contact', 'parties', 'signed_by']
        """
        found = _TOP_KEYS.get(id(self))
        if found is None or found[0] is not self:
            if len(_TOP_KEYS) >= 256:
                _TOP_KEYS.clear()
            found = _TOP_KEYS[id(self)] = (
                self, frozenset(str(_steps(f.path)[0]) for f in self.data))
        return found[1]


#: ``{id(policy): (policy, its top keys)}`` (policies are frozen; the policy kept so
#: that an id reused after it is gone is not mistaken for it).
_TOP_KEYS: dict[int, tuple[PersonalPolicy, frozenset[str]]] = {}
