"""`Event.field_digests`: the quick per-field texts equal the exact encoder's.

Every stored event carries its digests (SQLStore's ``digests`` column), so the
texts they are taken over are assembled from cached parts for the usual event;
anything unusual falls back to the exact encoder. Both must give the same texts.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gridflow import model
from gridflow.model import GENESIS_HASH, Actor, Changes, Event

PLUS8 = timezone(timedelta(hours=8))
texts = st.text(st.characters(codec="utf-8"), max_size=8) | st.sampled_from(
    ["\x00", "\x1f\x7f", "\u2028", "\"\\", "\ud800", "名", "🚧"])
values = st.recursive(
    st.none() | st.booleans() | st.integers() | texts | st.floats(allow_nan=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12)
moments = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9998, 12, 31),
                       timezones=st.sampled_from([UTC, PLUS8]))


@settings(max_examples=300, deadline=None)
@given(payload=st.dictionaries(texts, values, max_size=4),
       data=st.dictionaries(texts, values, max_size=3), at=moments,
       deadline=st.none() | moments, links=st.lists(texts, max_size=3),
       workflow=st.none() | texts, source=st.none() | texts, dest=st.none() | texts,
       key=st.none() | texts,
       roles=st.lists(st.sampled_from(["resident", "协调员", "b"]), max_size=3),
       with_changes=st.booleans())
def test_quick_texts_are_the_exact_texts(
    payload: dict[str, Any], data: dict[str, Any], at: datetime, deadline: datetime | None,
    links: list[str], workflow: str | None, source: str | None, dest: str | None,
    key: str | None, roles: list[str], with_changes: bool,
) -> None:
    changes = (Changes(data, ("u",), deadline, tuple(links), 3, workflow,
                       None if workflow is None else "g") if with_changes else None)
    event = Event("c-1", 4, "note", source, dest, Actor("a-1", roles, ["g"]), at, payload,
                  key, GENESIS_HASH, "0" * 64, changes)
    try:
        exact = model._field_texts_exact(event)
    except (TypeError, ValueError):
        return
    assert model._field_texts(event) == exact


def test_unusual_fields_take_the_exact_path() -> None:
    t = datetime(2026, 1, 5, tzinfo=UTC)
    odd = Event("c-1", True, "note", None, None, Actor.system(), t, {}, None,
                GENESIS_HASH, "0" * 64, Changes(workflow_version=True))
    assert model._field_texts(odd) == model._field_texts_exact(odd)
    assert len(odd.field_digests()) == 4 * len(model.EVENT_FIELDS)
