"""The JSON text SQLStore sends to PostgreSQL's JSONB: the quick path is the walk's.

`_pg_dumps` walks a value for floats JSONB would not give back as written
(1e16 and more, -0.0) only when the plain text shows one may be there; the
result must be what the full walk gives, for every value.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridflow.store import sql

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=6)
    | st.sampled_from(["e+", "-0.0", "1e+16"])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([1e16, -1e16, 1.5e300, 12345678901234567.0, -0.0, 0.0, 9.99e15]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner,
                                                                 max_size=4),
    max_leaves=12)


def _walked(value: Any) -> str:
    if sql._float_trouble(value):
        return sql._jsonb_encode(value)
    return sql._plain_dumps(value)


@settings(max_examples=400, deadline=None)
@given(value=values)
def test_quick_text_is_the_walked_text(value: Any) -> None:
    try:
        want = _walked(value)
    except ValueError:
        with pytest.raises(ValueError):
            sql._pg_dumps(value)
        return
    assert sql._pg_dumps(value) == want


def test_big_floats_and_negative_zero_take_the_walk() -> None:
    assert sql._pg_dumps({"n": 1e16}) == '{"n":10000000000000000.0}'
    with pytest.raises(ValueError, match=r"-0\.0 cannot be stored"):
        sql._pg_dumps([1, {"x": -0.0}])
    assert sql._pg_dumps({"t": "e+ -0.0"}) == '{"t":"e+ -0.0"}'


# -- orjson where it writes and reads what json does ------------------------------------

_chars = st.characters(codec="utf-8") | st.characters(max_codepoint=0x7f) | st.sampled_from(
    ["\u2028", "\u2029", "\x7f", "\x00", "\x1f", '"', "\\", "/", "\ufeff"])
_texts = st.text(_chars, max_size=8)
stored = st.recursive(
    st.none() | st.booleans() | _texts
    | st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.integers()
    | st.sampled_from([10**18, 2**63 - 1, -(2**63), 1234567890123456789])
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_texts, inner, max_size=4),
    max_leaves=16)


@settings(max_examples=600, deadline=None)
@given(value=stored)
def test_the_stored_text_and_what_it_reads_back_are_json_s(value: Any) -> None:
    import json

    try:
        want = sql._json_dumps(value)
    except ValueError:
        with pytest.raises(ValueError):
            sql._plain_dumps(value)
        return
    assert sql._plain_dumps(value) == want
    # Read back: the same values of the same types as json.loads gives (repr tells
    # 1 from 1.0 and True, and -0.0 from 0.0).
    assert repr(sql._sqlite_read_json(want)) == repr(json.loads(want))


def test_text_orjson_would_read_differently_is_read_by_json() -> None:
    # orjson reads an integer past 64 bits as a float; NaN it refuses.
    for text in ("[123456789012345678901234567890]", "[-9223372036854775809]", "[NaN]",
                 '{"a":"\\ud800"}', "[1e400]"):
        assert repr(sql._sqlite_read_json(text)) == repr(__import__("json").loads(text))


# The stored text goes through orjson where it is exact; it must be, byte for byte,
# the standard encoder's (rows written before and after compare equal, and a
# reader of the raw rows sees one format). Control characters, astral and lone
# surrogate code points and integers past 64 bits are where two encoders differ.
stored_values = st.recursive(
    st.none() | st.booleans() | st.integers()
    | st.integers(min_value=2**63 - 2, max_value=2**64 + 2)
    | st.text(st.characters(codec=None, exclude_categories=()), max_size=6)
    | st.sampled_from(["\x00\x1f\x7f", "\u2028\u2029", "\ud800", "😀", '"\\/', "\t\n\r\b\f"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.text(st.characters(codec=None, exclude_categories=()), max_size=4), inner,
        max_size=4),
    max_leaves=12)


@settings(max_examples=500, deadline=None)
@given(value=stored_values)
def test_stored_text_is_the_standard_encoders(value: Any) -> None:
    # Lone surrogates and integers past 64 bits, which the strategy above leaves out.
    assert sql._sqlite_dumps(value) == sql._json_dumps(value)
    assert sql._pg_dumps(value) == _walked(value)
