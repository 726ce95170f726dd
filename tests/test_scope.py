"""Scope on every path: an actor acts only inside its grids, and a case in another
grid looks exactly like a missing one.

Findings on 0.1: ``open(links=[...])`` and ``mark_duplicate`` appended ``link``
events to cases in any grid (terminal ones too), bumping their versions; an
idempotency key replayed by anyone returned the stored case with the
reporter's name and phone; ``allowed()`` (``CaseNotFound`` vs ``[]``) and the
duplicate guard ("does not exist") told outsiders which ids exist; an actor
with empty ``grids`` could touch every grid, so a host whose grid look-up
returned nothing failed open; ``Actor`` accepted an empty id and role strings
like ``'co ordinator'``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import gridflow
from gridflow import (
    ALL_GRIDS,
    Actor,
    CaseNotFound,
    CaseNotVisible,
    Engine,
    GuardRejected,
    InvalidArgument,
    PermissionDenied,
    Store,
)

A, B = "华三-1", "华三-2"
WORKER_A = Actor("网格员-甲", ["grid_worker"], [A])
BOSS_A = Actor("书记-甲", ["coordinator"], [A])
BOSS_B = Actor("书记-乙", ["coordinator"], [B])
RESIDENT_B = Actor("居民-乙", ["resident"], [B])
NOBODY = Actor("无网格", ["coordinator", "resident", "department"])
MISSING = "no-such-case"


def snapshot(store: Store, *case_ids: str) -> list[Any]:
    return [(store.get(c), store.events(c)) for c in case_ids]


def in_b(engine: Engine, **kw: Any) -> gridflow.Case:
    data = {"title": "乙网格的案件", "source": "resident",
            "reporter": {"name": "王小明", "phone": "13812345678"}}
    return engine.open("grid_case", actor=RESIDENT_B, grid=B, data=data, **kw)


def same_refusal(call: Callable[[str], Any], case_id: str, *,
                 error: type[Exception] = CaseNotVisible) -> str:
    """``call(case_id)`` and ``call(MISSING)`` raise the same class with the same
    words (but for the id); return the message."""
    with pytest.raises(error) as elsewhere:
        call(case_id)
    with pytest.raises(error) as missing:
        call(MISSING)
    assert type(elsewhere.value) is type(missing.value)
    assert str(elsewhere.value) == str(missing.value).replace(MISSING, case_id)
    return str(elsewhere.value)


# -- actors -----------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "words"), [
    (("",), "the actor id is empty"),
    ((None,), "must be a string"),
    (("  w-1",), "surrounding whitespace"),
    (("w-1", ["co ordinator"]), "contains whitespace"),
    (("w-1", [""]), "a role is empty"),
    (("w-1", [" coordinator"]), "surrounding whitespace"),
    (("w-1", ["coordinator"], [""]), "a grid is empty"),
    (("w-1", ["coordinator"], ["华三-1 "]), "surrounding whitespace"),
    (("w-1", ["coordinator"], ["*"]), "pass grids=gridflow.ALL_GRIDS"),
    (("w-1", ["coordinator"], [1]), "must be a string"),
])
def test_actors_are_validated(args: tuple[Any, ...], words: str) -> None:
    with pytest.raises(InvalidArgument, match=words):
        Actor(*args)


def test_an_actor_without_grids_touches_no_case(engine: Engine) -> None:
    case = in_b(engine)
    before = snapshot(engine.store, case.id)
    with pytest.raises(CaseNotVisible):
        engine.fire(case.id, "triage", actor=NOBODY, payload={"category": "x",
                                                              "priority": "low"})
    with pytest.raises(PermissionDenied, match=r"pass grids=gridflow\.ALL_GRIDS"):
        engine.open("grid_case", version=1, actor=NOBODY, data={"title": "t", "source": "visit"})
    with pytest.raises(PermissionDenied, match=r"pass grids=gridflow\.ALL_GRIDS"):
        engine.open("grid_case", version=1,
                    actor=NOBODY, grid=B, data={"title": "t", "source": "visit"})
    assert snapshot(engine.store, case.id) == before
    street = Actor("街道-赵", ["coordinator"], ALL_GRIDS)
    assert engine.fire(case.id, "note", actor=street, payload={"text": "街道已知悉"}).version == 2


# -- links ------------------------------------------------------------------------------


def test_a_link_on_open_needs_scope_over_the_target(engine: Engine) -> None:
    target = in_b(engine)
    before = snapshot(engine.store, target.id)

    def open_linked(other: str) -> Any:
        return engine.open("grid_case", version=1, actor=WORKER_A, grid=A, links=[other],
                           data={"title": "甲网格", "source": "visit"})

    message = same_refusal(open_linked, target.id)
    assert B not in message and "乙网格" not in message
    assert isinstance(CaseNotVisible(target.id, "x"), PermissionDenied)
    assert snapshot(engine.store, target.id) == before
    assert engine.store.query(grid=A).items == []  # the linking case was not stored either


def test_a_link_to_a_terminal_case_in_another_grid_is_refused(engine: Engine) -> None:
    target = in_b(engine)
    target = engine.fire(target.id, "reject", actor=BOSS_B, payload={"reason": "不属实"})
    before = snapshot(engine.store, target.id)
    with pytest.raises(CaseNotVisible):
        engine.open("grid_case", version=1, actor=WORKER_A, grid=A, links=[target.id],
                    data={"title": "甲网格", "source": "visit"})
    assert snapshot(engine.store, target.id) == before


def test_mark_duplicate_of_a_case_in_another_grid_is_refused_as_a_missing_one(
    engine: Engine,
) -> None:
    target = in_b(engine)
    mine = engine.open("grid_case", version=1, actor=WORKER_A, grid=A,
                       data={"title": "甲网格", "source": "visit"})
    before = snapshot(engine.store, target.id, mine.id)

    def duplicate(other: str) -> Any:
        return engine.fire(mine.id, "mark_duplicate", actor=BOSS_A,
                           payload={"duplicate_of": other})

    message = same_refusal(duplicate, target.id, error=GuardRejected)
    assert "does not exist" in message and B not in message
    assert snapshot(engine.store, target.id, mine.id) == before


def test_an_effect_that_links_out_of_scope_is_refused(engine: Engine) -> None:
    # Any effect, not only the built-in ones: the engine checks every new link.
    target = in_b(engine)

    class LinkAnything:
        @gridflow.hookimpl
        def gridflow_effects(self) -> dict[str, Any]:
            return {"test.link": lambda step: step.links.append(step.payload["other"])}

        @gridflow.hookimpl
        def gridflow_workflows(self) -> list[gridflow.WorkflowSpec]:
            return [gridflow.WorkflowSpec.from_dict({
                "name": "linker", "version": 1, "initial": "open",
                "states": [{"name": "open"}, {"name": "done", "terminal": True}],
                "transitions": [
                    {"trigger": "link_to", "source": "open", "dest": None,
                     "requires": ["other"], "effects": ["test.link"]},
                    {"trigger": "finish", "source": "open", "dest": "done"}]})]

    engine.register(LinkAnything())
    mine = engine.open("linker", actor=WORKER_A, grid=A)
    before = snapshot(engine.store, target.id, mine.id)
    same_refusal(lambda other: engine.fire(mine.id, "link_to", actor=WORKER_A,
                                           payload={"other": other}), target.id)
    assert snapshot(engine.store, target.id, mine.id) == before


# -- idempotency keys -------------------------------------------------------------------


def test_an_idempotency_key_replays_only_to_an_actor_in_scope_on_open(engine: Engine) -> None:
    stored = in_b(engine, idempotency_key="open-1")
    before = snapshot(engine.store, stored.id)
    with pytest.raises(CaseNotVisible) as caught:
        engine.open("grid_case", version=1, actor=WORKER_A, grid=A, idempotency_key="open-1",
                    data={"title": "x", "source": "visit"})
    text = str(caught.value)
    assert stored.id not in text and "王小明" not in text and "13812345678" not in text
    assert snapshot(engine.store, stored.id) == before
    # An actor with no roles at all in grid Z gets nothing either.
    with pytest.raises(CaseNotVisible):
        engine.open("grid_case", version=1, actor=Actor("z", [], ["Z"]), grid="Z",
                    idempotency_key="open-1", data={})
    again = engine.open("grid_case", version=1, actor=RESIDENT_B, grid=B, idempotency_key="open-1",
                        data={"title": "乙网格的案件", "source": "resident"})
    assert again == engine.get(stored.id)


def test_an_idempotency_key_replays_only_to_an_actor_in_scope_on_fire(engine: Engine) -> None:
    case = in_b(engine)
    engine.fire(case.id, "note", actor=BOSS_B, payload={"text": "已联系"},
                idempotency_key="note-1")
    before = snapshot(engine.store, case.id)

    def replay(case_id: str) -> Any:
        return engine.fire(case_id, "note", actor=BOSS_A, payload={"text": "已联系"},
                           idempotency_key="note-1" if case_id == case.id else None)

    same_refusal(replay, case.id)
    assert snapshot(engine.store, case.id) == before
    # The key on another case, named by an outsider: refused without naming that case.
    mine = engine.open("grid_case", version=1, actor=WORKER_A, grid=A,
                       data={"title": "甲网格", "source": "visit"})
    with pytest.raises(CaseNotVisible) as caught:
        engine.fire(mine.id, "note", actor=BOSS_A, payload={"text": "x"},
                    idempotency_key="note-1")
    assert case.id not in str(caught.value)
    assert snapshot(engine.store, case.id) == before


# -- reading ----------------------------------------------------------------------------


@pytest.mark.parametrize("read", ["get", "history", "allowed", "linked", "route"])
def test_reads_with_an_actor_treat_elsewhere_as_missing(engine: Engine, read: str) -> None:
    case = in_b(engine)
    before = snapshot(engine.store, case.id)
    call: Callable[[str], Any] = {
        "get": lambda cid: engine.get(cid, actor=BOSS_A),
        "history": lambda cid: engine.history(cid, actor=BOSS_A),
        "allowed": lambda cid: engine.allowed(cid, BOSS_A),
        "linked": lambda cid: engine.linked(cid, actor=BOSS_A),
        "route": lambda cid: engine.route(cid, actor=BOSS_A),
    }[read]
    message = same_refusal(call, case.id)
    assert isinstance(CaseNotVisible(case.id, "x"), CaseNotFound)
    assert B not in message and "reported" not in message
    assert snapshot(engine.store, case.id) == before


def test_linked_leaves_out_cases_outside_the_actors_grids(engine: Engine) -> None:
    street = Actor("街道-赵", ["coordinator", "resident"], ALL_GRIDS)
    b = in_b(engine)
    a = engine.open("grid_case", version=1, actor=street, grid=A, links=[b.id],
                    data={"title": "甲", "source": "visit"})
    assert [c.id for c in engine.linked(a.id, actor=street)] == [b.id]
    assert engine.linked(a.id, actor=BOSS_A) == []
    assert [c.id for c in engine.linked(a.id)] == [b.id]  # the host reads as itself


def test_a_guard_looks_up_other_cases_through_the_actors_scope(engine: Engine) -> None:
    seen: list[Any] = []

    class Peek:
        @gridflow.hookimpl
        def gridflow_guards(self) -> dict[str, Any]:
            def peek(step: gridflow.Step) -> None:
                seen.append(step.lookup(step.payload["other"]))
            return {"test.peek": peek}

        @gridflow.hookimpl
        def gridflow_workflows(self) -> list[gridflow.WorkflowSpec]:
            return [gridflow.WorkflowSpec.from_dict({
                "name": "peeker", "version": 1, "initial": "open",
                "states": [{"name": "open"}, {"name": "done", "terminal": True}],
                "transitions": [
                    {"trigger": "peek", "source": "open", "dest": None,
                     "requires": ["other"], "guards": ["test.peek"]},
                    {"trigger": "finish", "source": "open", "dest": "done"}]})]

    engine.register(Peek())
    b = in_b(engine)
    mine = engine.open("peeker", actor=WORKER_A, grid=A)
    engine.fire(mine.id, "peek", actor=WORKER_A, payload={"other": b.id})
    engine.fire(mine.id, "peek", actor=WORKER_A, payload={"other": MISSING})
    engine.fire(mine.id, "peek", actor=WORKER_A, payload={"other": mine.id})
    assert seen[:2] == [None, None]
    assert seen[2] is not None and seen[2].id == mine.id


def test_fire_tells_an_outsider_nothing_about_the_case(engine: Engine) -> None:
    case = in_b(engine)
    for trigger in ("triage", "close", "fly"):
        message = same_refusal(lambda cid, t=trigger: engine.fire(  # type: ignore[misc]
            cid, t, actor=BOSS_A, payload={"category": "x", "priority": "low"}), case.id)
        assert "reported" not in message and trigger not in message
    with pytest.raises(CaseNotVisible):  # not a ConcurrencyError telling the version
        engine.fire(case.id, "note", actor=BOSS_A, payload={"text": "x"},
                    expected_version=7)
