"""The quick tests in front of the slower exact walks decide exactly as the walks do.

Each quick path (a test that says "nothing here" before the walk that names
paths) is compared with the walk alone over random JSON-like values, keys
that look like ``$pii`` in several spellings included.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gridflow.personal import reference as ref_mod

_KEYS = st.sampled_from(["a", "b", "$pii", "$PII", " $pii", "＄ｐｉｉ", "kind", "c", "$x",
                         "﹩pii", "名", "$ p i i", "x$pii"])
_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False),
                  st.text(max_size=3), st.just("0" * 32), st.just("a" * 64),
                  st.sampled_from(["phone", "name"]))
_VALUES = st.recursive(_LEAF, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.tuples(inner, inner),
    st.dictionaries(_KEYS, inner, max_size=4)), max_leaves=20)
_REF = st.builds(lambda k: {"$pii": "0" * 32, "kind": k, "c": "a" * 64},
                 st.sampled_from(["phone", "name", "email"]))
_WITH_REFS = st.recursive(st.one_of(_LEAF, _REF), lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(_KEYS, inner, max_size=4)), max_leaves=20)


def _slow_lookalikes(data: Any) -> list[str]:
    found: list[str] = []
    ref_mod._collect(data, (), found)
    return found


@settings(max_examples=400, deadline=None)
@given(_VALUES)
def test_lookalikes_quick_test_is_exact(data: Any) -> None:
    assert ref_mod.lookalikes(data) == _slow_lookalikes(data)


@settings(max_examples=400, deadline=None)
@given(st.one_of(_WITH_REFS, _VALUES))
def test_references_quick_test_is_exact(data: Any) -> None:
    quick = [(p, r) for p, r in ref_mod.references(data)]
    held = ref_mod._may_hold_reference(data)
    if not held:
        assert quick == []
    # The walk alone (the quick test forced to "maybe").
    original = ref_mod._may_hold_reference
    ref_mod._may_hold_reference = lambda _d: True  # type: ignore[assignment]
    try:
        slow = [(p, r) for p, r in ref_mod.references(data)]
    finally:
        ref_mod._may_hold_reference = original
    assert quick == slow
