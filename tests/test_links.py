"""Long links: an engine-made row shares its links with its history (`model._Links`,
O(1) per link step), and every reader still sees the tuple `Case.links` always was:
equal, of class tuple, the same object on each read; membership, counts, replay,
audit and the stored rows all agree with the plain tuple concatenation."""

from __future__ import annotations

import copy
import pickle
from datetime import UTC, datetime

import attrs
from hypothesis import example, given, settings
from hypothesis import strategies as st

import gridflow
from gridflow import Actor, Case, Engine, FixedClock, MemoryStore, replay
from gridflow.fold import evolve
from gridflow.model import _grow, _Links, case_has_link, links_count, stored_links

T = datetime(2026, 1, 5, tzinfo=UTC)
GRID = "第一综合网格"
RESIDENT = Actor("居民-陈", ["resident"], [GRID])
COORDINATOR = Actor("书记-李", ["coordinator"], [GRID])


def _case(links: object) -> Case:
    return Case("hub", "grid_case", 1, "reported", 1, {}, GRID, T, T, None, links, "0" * 64)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 70),
       st.lists(st.tuples(st.integers(0, 40), st.lists(st.integers(0, 300), min_size=1,
                                                       max_size=3)), max_size=40),
       st.lists(st.integers(0, 300), max_size=20))
@example(start=62, steps=[(-1, [100 + i, 200 + i]) for i in range(10)], probes=[100, 205])
@example(start=63, steps=[(0, [1]), (1, [2]), (1, [3]), (2, [4]), (3, [5])], probes=[1, 2, 3])
def test_grown_links_read_as_the_concatenated_tuple_along_every_branch(
    start: int, steps: list[tuple[int, list[int]]], probes: list[int],
) -> None:
    # Any earlier row may be extended again (a fork: two writers from one
    # version), ids may repeat; every row keeps reading as its own tuple.
    rows: list[tuple[object, tuple[str, ...]]] = [
        (base := tuple(f"c-{i}" for i in range(start)), base)]
    for parent, more in steps:
        stored, expected = rows[parent % len(rows)]
        added = tuple(f"c-{i}" for i in more)
        rows.append((_grow(stored, added), expected + added))  # type: ignore[arg-type]
    for stored, expected in rows:
        case = _case(stored)
        assert case.links == expected and case.links.__class__ is tuple
        assert case.links is case.links
        assert links_count(case) == len(expected)
        for i in [*probes, 0, start - 1, start, 63, 64]:
            assert case_has_link(case, f"c-{i}") == (f"c-{i}" in expected)


def test_short_links_stay_plain_tuples_and_long_ones_are_shared() -> None:
    short = _grow(("a",), ("b",))
    assert short == ("a", "b") and short.__class__ is tuple
    long_ = _grow(tuple(f"c-{i}" for i in range(63)), ("x",))
    assert long_.__class__ is _Links
    assert _grow(long_, ("y",)).items is long_.items  # type: ignore[union-attr]
    # A long tuple (a row read back from a database) is extended as a tuple: the
    # next step reads a fresh one again, so the shared form would not pay.
    read_back = tuple(f"c-{i}" for i in range(100))
    assert _grow(read_back, ("x",)) == (*read_back, "x")
    assert _grow(read_back, ("x",)).__class__ is tuple


def test_a_row_with_shared_links_is_equal_to_the_plain_row_everywhere() -> None:
    links = tuple(f"c-{i}" for i in range(80))
    shared, plain = _case(_grow(links[:63], links[63:])), _case(links)
    assert stored_links(shared).__class__ is _Links
    assert shared == plain and repr(shared) == repr(plain)
    assert pickle.loads(pickle.dumps(shared)) == plain
    assert copy.deepcopy(shared) == plain and attrs.evolve(shared) == plain
    assert attrs.asdict(shared) == attrs.asdict(plain)
    assert shared.links[3] == "c-3" and shared.links[-1] == "c-79"


def _hub_engine(store: gridflow.Store, links: int) -> tuple[Engine, str, list[str]]:
    engine = Engine(store=store, clock=FixedClock(T), entry_points=False,
                    keyring=gridflow.Keyring.generate())

    def open_() -> str:
        return engine.open("grid_case", version=1, actor=RESIDENT, grid=GRID,
                           data={"title": "弄堂违规堆物", "source": "visit"}).id

    hub = open_()
    others = []
    for _ in range(links):
        cid = open_()
        engine.fire(cid, "mark_duplicate", actor=COORDINATOR, payload={"duplicate_of": hub})
        others.append(cid)
    return engine, hub, others


def test_an_engine_hub_agrees_with_its_replay_on_memory_and_sqlite(tmp_path: object) -> None:
    sql = gridflow.SQLStore(f"sqlite:///{tmp_path}/links.db")
    sql.create_schema()
    try:
        for store in (MemoryStore(), sql):
            engine, hub, others = _hub_engine(store, 70)
            row = engine.get(hub)
            assert row.links == tuple(others) and row.links.__class__ is tuple
            folded = replay(engine.workflows, engine.history(hub))
            assert folded.links == row.links and folded.links.__class__ is tuple
            engine.verify(hub)
            # A step on the hub that links nothing keeps its links as they were.
            noted = engine.fire(hub, "note", actor=COORDINATOR, payload={"text": "到场"})
            assert noted.links == row.links and noted.version == row.version + 1
            engine.verify(hub)
    finally:
        sql.close()


def test_evolving_an_older_row_again_forks_without_touching_the_newer_one() -> None:
    engine, hub, others = _hub_engine(MemoryStore(), 66)
    history = engine.history(hub)
    rows = [evolve(None, history[0])]
    for event in history[1:]:
        rows.append(evolve(rows[-1], event))
    tip, older = rows[-1], rows[-3]
    link = gridflow.core.link_event(older, "c-fork", COORDINATOR, T, "open")
    forked = evolve(older, link)
    assert forked.links == (*older.links, "c-fork")
    assert tip.links == tuple(others) and not case_has_link(tip, "c-fork")
    assert case_has_link(forked, "c-fork") and not case_has_link(forked, others[-1])
