"""一类事: the alley problem reported again 40 days after archiving is a recurrence (反弹),
linked both ways and flagged in both histories; at 100 days it is not."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gridflow import Engine, FixedClock
from gridflow.store import Store
from gridflow.workflows import grid_case_v2
from test_grid_case_v2 import (
    DEPARTMENTS,
    GRID,
    T0,
    TITLE,
    dept,
    inspector,
    secretary,
    volunteer,
    worker,
)

LOCATION = {"address": "长宁支路324弄", "key": "CN-ZL-324", "lat": 31.22, "lng": 121.42}


def solved_case(engine: Engine) -> str:
    case = engine.open("grid_case", actor=worker, grid=GRID, version=2,
                       data={"title": TITLE, "source": "visit", "location": LOCATION})
    engine.fire(case.id, "triage", actor=secretary,
                payload={"category": "违规堆物", "priority": "normal"})
    engine.fire(case.id, "dispatch", actor=secretary,
                payload={"departments": DEPARTMENTS[:1], "plan": "清理"})
    engine.fire(case.id, "acknowledge", actor=dept, payload={"department": DEPARTMENTS[0]})
    engine.fire(case.id, "report_done", actor=dept,
                payload={"department": DEPARTMENTS[0], "result": "已清理"})
    engine.fire(case.id, "submit_check", actor=secretary)
    engine.fire(case.id, "pass_check", actor=inspector, payload={"observation": "已清理"})
    engine.fire(case.id, "start_revisit", actor=volunteer)
    engine.fire(case.id, "confirm", actor=volunteer, payload={"observation": "未反弹"})
    assert engine.get(case.id).state == "archived"
    return case.id


@pytest.mark.parametrize(("days", "linked"), [(40, True), (100, False)])
def test_recurrence_at_triage(store: Store, days: int, linked: bool) -> None:
    clock = FixedClock(T0)
    engine = Engine(store=store, clock=clock, entry_points=False,
                    plugins=[grid_case_v2.PLUGIN, grid_case_v2.Recurrence(store)])
    first = solved_case(engine)
    clock.advance(timedelta(days=days))
    again = engine.open("grid_case", actor=worker, grid=GRID, version=2,
                        data={"title": "324弄又有堆物", "source": "resident",
                              "location": {"key": "CN-ZL-324"}})
    case = engine.fire(again.id, "triage", actor=secretary,
                       payload={"category": "违规堆物", "priority": "normal"})
    triage = engine.history(again.id)[-1]
    if linked:
        assert case.links == (first,) or list(case.links) == [first]
        assert case.data["recurrence_of"] == [first]
        assert triage.payload["recurrence_of"] == [first]
        assert again.id in engine.get(first).links
        link = engine.history(first)[-1]
        assert (link.trigger, link.payload["case"]) == ("link", again.id)
    else:
        assert not case.links and "recurrence_of" not in case.data
        assert "recurrence_of" not in triage.payload
        assert again.id not in engine.get(first).links
    engine.verify(first)
    engine.verify(again.id)


def test_another_category_or_place_is_not_a_recurrence(store: Store) -> None:
    clock = FixedClock(T0)
    engine = Engine(store=store, clock=clock, entry_points=False,
                    plugins=[grid_case_v2.PLUGIN, grid_case_v2.Recurrence(store)])
    solved_case(engine)
    clock.advance(timedelta(days=10))
    for category, key in (("占道经营", "CN-ZL-324"), ("违规堆物", "CN-ZL-326")):
        c = engine.open("grid_case", actor=worker, grid=GRID, version=2,
                        data={"title": "x", "source": "resident", "location": {"key": key}})
        c = engine.fire(c.id, "triage", actor=secretary,
                        payload={"category": category, "priority": "low"})
        assert not c.links
