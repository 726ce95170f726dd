"""The closed-loop figures (按时签收率, 退单率, 核查一次通过率, 发回重办率, 满意率, 反弹率,
挂账数, 督办数, 综合指标值), exact on a population built through the engine, equal on
every store."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gridflow import Engine, FixedClock, InvalidArgument, metrics
from gridflow.store import Store
from gridflow.workflows import grid_case_v2
from test_grid_case_v2 import GRID, T0, dept, inspector, resident, secretary, worker

A, B = "城运中心", "清运单位"
LOC = {"key": "CN-ZL-324"}


def population(store: Store) -> None:
    clock = FixedClock(T0)
    e = Engine(store=store, clock=clock, entry_points=False,
               plugins=[grid_case_v2.PLUGIN, grid_case_v2.Recurrence(store)])

    def case(departments: list[str]) -> str:
        c = e.open("grid_case", actor=worker, grid=GRID, version=2,
                   data={"title": "堆物", "source": "visit", "location": LOC})
        e.fire(c.id, "triage", actor=secretary,
               payload={"category": "违规堆物", "priority": "normal"})
        e.fire(c.id, "dispatch", actor=secretary,
               payload={"departments": departments, "plan": "p"})
        return c.id

    def finish(cid: str, departments: list[str], fails: int, rating: str | None) -> None:
        for i in range(fails + 1):
            for d in departments:
                e.fire(cid, "report_done", actor=dept, payload={"department": d, "result": "r"})
            e.fire(cid, "submit_check", actor=secretary)
            if i < fails:
                e.fire(cid, "fail_check", actor=inspector, payload={"reason": "未到位"})
        e.fire(cid, "pass_check", actor=inspector, payload={"observation": "ok"})
        if rating:
            e.fire(cid, "rate", actor=resident, payload={"satisfaction": rating})

    # Case 1: A on time, B late (urged by the timer), one failed check, satisfied.
    c1 = case([A, B])
    e.fire(c1, "acknowledge", actor=dept, payload={"department": A})
    clock.advance(timedelta(hours=3))  # 12:00 Shanghai: 2 working hours passed at 11:00
    assert [ev.trigger for ev in e.tick()] == ["urge"]
    e.fire(c1, "acknowledge", actor=dept, payload={"department": B})
    finish(c1, [A, B], 1, "satisfied")
    # Case 2: B returns the task, A on time, parked then resumed; passes first; dissatisfied.
    c2 = case([A, B])
    e.fire(c2, "return_task", actor=dept, payload={"department": B, "reason": "非本单位"})
    e.fire(c2, "acknowledge", actor=dept, payload={"department": A})
    e.fire(c2, "park", actor=secretary, payload={"reason": "等物业", "plan": "下周"})
    e.fire(c2, "urge", actor=secretary, payload={"text": "督办", "department": A})
    e.fire(c2, "resume", actor=secretary)
    finish(c2, [A], 0, "dissatisfied")
    # Case 3 (the same place, same category, after case 1 and 2 closed): a recurrence.
    c3 = case([A])
    e.fire(c3, "acknowledge", actor=dept, payload={"department": A})
    finish(c3, [A], 0, "basically_satisfied")
    assert e.get(c3).data["recurrence_of"]


def figures(store: Store, by: str | None) -> dict[str | None, metrics.ClosedLoopRow]:
    return metrics.closed_loop(store, since=T0 - timedelta(days=1),
                               until=T0 + timedelta(days=30), by=by)


def test_every_figure_exactly_on_every_store(store: Store) -> None:
    population(store)
    [total] = figures(store, None).values()
    assert (total.acknowledged, total.acknowledged_on_time, total.returned) == (4, 3, 1)
    assert total.ack_on_time_rate == 3 / 4
    assert total.return_rate == 1 / 5
    assert (total.first_checks, total.first_checks_passed) == (3, 2)
    assert total.first_pass_rate == 2 / 3
    assert (total.checks, total.checks_failed) == (4, 1) and total.rework_rate == 1 / 4
    assert (total.rated, total.satisfied) == (3, 2) and total.satisfaction_rate == 2 / 3
    assert (total.triaged, total.recurrences) == (3, 2)  # c2 recurs c1, c3 recurs both
    assert total.parked == 1
    assert total.urged == 2
    by_dept = figures(store, "department")
    assert set(by_dept) == {A, B}
    a, b = by_dept[A], by_dept[B]
    assert (a.acknowledged, a.acknowledged_on_time, a.returned, a.urged) == (3, 3, 0, 1)
    assert (b.acknowledged, b.acknowledged_on_time, b.returned, b.urged) == (1, 0, 1, 1)
    assert a.ack_on_time_rate == 1.0 and b.ack_on_time_rate == 0.0 and b.return_rate == 0.5
    assert (a.first_checks, a.first_checks_passed) == (3, 2)
    assert (b.first_checks, b.first_checks_passed) == (2, 1)
    assert a.score is not None and b.score is not None and a.score > b.score


def test_the_composite_score_and_its_weights(store: Store) -> None:
    population(store)
    [total] = figures(store, None).values()
    w = metrics.DEFAULT_WEIGHTS
    expected = 100 * (w["ack_on_time_rate"] * 3 / 4 + w["return_rate"] * (1 - 1 / 5)
                      + w["first_pass_rate"] * 2 / 3 + w["rework_rate"] * (1 - 1 / 4)
                      + w["satisfaction_rate"] * 2 / 3
                      + w["recurrence_rate"] * (1 - 2 / 3)) / sum(w.values())
    assert total.score == round(expected, 6)
    [only] = metrics.closed_loop(store, since=T0, until=T0 + timedelta(days=30), by=None,
                                 weights={"satisfaction_rate": 1}).values()
    assert only.score == round(100 * 2 / 3, 6)
    with pytest.raises(InvalidArgument):
        metrics.closed_loop(store, since=T0, until=T0 + timedelta(days=1), weights={"x": 1})


def test_equal_on_all_three_stores(tmp_path: object, pg_url: str, pg_schema: str) -> None:
    import gridflow

    stores: list[Store] = [gridflow.MemoryStore(),
                           gridflow.SQLStore(f"sqlite:///{tmp_path}/f.db"),
                           gridflow.SQLStore(pg_url, schema=pg_schema)]
    for s in stores[1:]:
        s.create_schema()  # type: ignore[attr-defined]
    results = []
    for s in stores:
        population(s)
        results.append({by: {g: attrs_tuple(r) for g, r in figures(s, by).items()}
                        for by in ("department", "grid", None)})
    assert results[0] == results[1] == results[2]


def attrs_tuple(row: metrics.ClosedLoopRow) -> tuple[object, ...]:
    import attrs

    return attrs.astuple(row)
