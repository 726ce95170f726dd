"""The closed-loop figures inside `metrics.compute` (SQL aggregation on SQLStore) equal
`metrics.closed_loop` (the Python reference) on the same population, on every store."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

import gridflow
from gridflow import Engine, FixedClock, InvalidArgument, metrics
from gridflow.store import Store
from gridflow.workflows import grid_case_v2
from test_grid_case_v2 import GRID, T0, dept, inspector, resident, secretary, worker
from test_grid_case_v2_figures import A, B, population

C = "综合执法队"

SINCE, UNTIL = T0 - timedelta(days=1), T0 + timedelta(days=30)
#: After `population`: c4 fails its first check on day 5, passes on day 6 (rated then).
DAY5 = T0 + timedelta(days=5)


def more(store: Store) -> None:
    clock = FixedClock(DAY5)
    e = Engine(store=store, clock=clock, entry_points=False,
               plugins=[grid_case_v2.PLUGIN, grid_case_v2.Recurrence(store)])
    c = e.open("grid_case", actor=worker, grid=GRID, version=2,
               data={"title": "地锁", "source": "visit", "area": "华三",
                     "location": {"key": "CN-HS-9"}})
    e.fire(c.id, "triage", actor=secretary, payload={"category": "地锁", "priority": "normal"})
    e.fire(c.id, "dispatch", actor=secretary, payload={"departments": [A], "plan": "p"})
    e.fire(c.id, "reassign", actor=secretary, payload={"departments": [A, C]})
    for d in (A, C):
        e.fire(c.id, "acknowledge", actor=dept, payload={"department": d})
        e.fire(c.id, "report_done", actor=dept, payload={"department": d, "result": "r"})
    e.fire(c.id, "submit_check", actor=secretary)
    e.fire(c.id, "fail_check", actor=inspector, payload={"reason": "未拆除"})
    clock.advance(timedelta(days=1))
    e.fire(c.id, "urge", actor=secretary, payload={"text": "督办"})
    for d in (A, C):
        e.fire(c.id, "report_done", actor=dept, payload={"department": d, "result": "r"})
    e.fire(c.id, "submit_check", actor=secretary)
    e.fire(c.id, "pass_check", actor=inspector, payload={"observation": "ok"})
    e.fire(c.id, "rate", actor=resident, payload={"satisfaction": "basically_satisfied"})
BYS = (None, "grid", "category", "department")


Figures = dict[str | None, tuple[object, ...]]


def from_compute(store: Store, by: str | None, **kw: object) -> Figures:
    report = metrics.compute(store, since=kw.pop("since", SINCE), until=kw.pop("until", UNTIL),
                             by=by, **kw)  # type: ignore[arg-type]
    rows = {row.group: attrs.astuple(row.closed_loop()) for row in report.rows}
    # A row of the other figures only (e.g. cases not triaged: no category) has none.
    return {g: t for g, t in rows.items() if any(t[1:-1])}


def from_oracle(store: Store, by: str | None, **kw: object) -> Figures:
    rows = metrics.closed_loop(store, since=kw.pop("since", SINCE),
                               until=kw.pop("until", UNTIL), by=by, **kw)  # type: ignore[arg-type]
    # closed_loop keeps a group whose only step was outside the period (all zero).
    return {g: attrs.astuple(r) for g, r in rows.items() if any(attrs.astuple(r)[1:-1])}


@pytest.mark.parametrize("by", BYS)
def test_compute_equals_closed_loop(store: Store, by: str | None) -> None:
    population(store)
    more(store)
    assert from_compute(store, by) == from_oracle(store, by)
    # A period that cuts c4's story: only the steps inside it count, and its first
    # check (failed, before the period) is not a first check in it.
    cut = {"since": DAY5 + timedelta(hours=12), "until": UNTIL}
    got = from_compute(store, by, **cut)
    assert got == from_oracle(store, by, **cut)
    assert len(got) == (2 if by == "department" else 1)
    [c4] = [r for g, r in metrics.closed_loop(store, by=None, **cut).items()]  # type: ignore[arg-type]
    assert (c4.checks, c4.checks_failed, c4.first_checks, c4.rated, c4.urged) == (1, 0, 0, 1, 1)
    weights = {"satisfaction_rate": 2.0, "return_rate": 1.0}
    assert (from_compute(store, by, weights=weights)
            == from_oracle(store, by, weights=weights))


def test_exact_figures_in_compute(store: Store) -> None:
    population(store)
    [row] = metrics.compute(store, since=SINCE, until=UNTIL, by=None).rows
    assert (row.acknowledged, row.acknowledged_on_time, row.returned) == (4, 3, 1)
    assert (row.ack_on_time_rate, row.return_rate) == (3 / 4, 1 / 5)
    assert (row.first_checks, row.first_checks_passed, row.first_pass_rate) == (3, 2, 2 / 3)
    assert (row.checks, row.checks_failed, row.check_rework_rate) == (4, 1, 1 / 4)
    assert (row.rated, row.satisfied, row.satisfaction_rate) == (3, 2, 2 / 3)
    assert (row.triages, row.recurrences, row.recurrence_rate) == (3, 2, 2 / 3)
    assert (row.parked, row.urged) == (1, 2)
    assert row.score == metrics.closed_loop(store, since=SINCE, until=UNTIL,
                                            by=None)[None].score
    # The figures of 0.1 are still there, unchanged in meaning.
    assert (row.received, row.triaged, row.closed) == (3, 3, 3)
    by_dept = metrics.compute(store, since=SINCE, until=UNTIL, by="department")
    assert by_dept.groups == [A, B]
    a, b = by_dept.row(A), by_dept.row(B)
    assert (a.acknowledged, a.acknowledged_on_time, a.returned, a.urged) == (3, 3, 0, 1)
    assert (b.acknowledged, b.acknowledged_on_time, b.returned, b.urged) == (1, 0, 1, 1)
    assert a.received == 0 and a.median_seconds_in_state == {}  # not split by department
    assert a.score is not None and b.score is not None and a.score > b.score
    d = row.to_dict()
    assert (d["acknowledged"], d["urged"], d["score"], d["check_rework_rate"]) == (
        4, 2, row.score, 1 / 4)


def test_equal_on_all_three_stores(tmp_path: Path, pg_url: str, pg_schema: str) -> None:
    stores: list[Store] = [gridflow.MemoryStore(),
                           gridflow.SQLStore(f"sqlite:///{tmp_path}/f.db"),
                           gridflow.SQLStore(pg_url, schema=pg_schema)]
    results = []
    for s in stores:
        if isinstance(s, gridflow.SQLStore):
            s.create_schema()
        population(s)
        more(s)
        results.append({by: metrics.compute(s, since=SINCE, until=UNTIL, by=by).to_dicts()
                        for by in (*BYS, "area", "version")})
        if isinstance(s, gridflow.SQLStore):
            s.close()
    assert results[0] == results[1] == results[2]


def test_unknown_weight_refused() -> None:
    with pytest.raises(InvalidArgument, match="unknown weight"):
        metrics.compute(gridflow.MemoryStore(), since=SINCE, until=UNTIL, weights={"x": 1.0})


# -- random stories ------------------------------------------------------------------------

DEPTS = (A, B, C)
PLACES = ({"key": "CN-ZL-324"}, {"key": "CN-HS-9"}, None)


def _steps(e: Engine, cid: str, rng: Any) -> list[Callable[[], object]]:
    """The steps a random walk may try on case ``cid``."""
    return [
        lambda: e.fire(cid, "triage", actor=secretary, payload={
            "category": rng.choice(("违规堆物", "地锁")),
            "priority": rng.choice(("normal", "urgent"))}),
        lambda: e.fire(cid, "dispatch", actor=secretary, payload={
            "departments": rng.sample(DEPTS, rng.randrange(1, 4)), "plan": "p"}),
        lambda: e.fire(cid, "reassign", actor=secretary, payload={
            "departments": rng.sample(DEPTS, rng.randrange(1, 4))}),
        lambda: e.fire(cid, "acknowledge", actor=dept,
                       payload={"department": rng.choice(DEPTS)}),
        lambda: e.fire(cid, "return_task", actor=dept,
                       payload={"department": rng.choice(DEPTS), "reason": "r"}),
        lambda: e.fire(cid, "report_done", actor=dept,
                       payload={"department": rng.choice(DEPTS), "result": "r"}),
        lambda: e.fire(cid, "urge", actor=secretary, payload={
            "text": "t", **({"department": rng.choice(DEPTS)} if rng.random() < .7
                            else {})}),
        lambda: e.fire(cid, "submit_check", actor=secretary),
        lambda: e.fire(cid, "pass_check", actor=inspector, payload={"observation": "o"}),
        lambda: e.fire(cid, "fail_check", actor=inspector, payload={"reason": "r"}),
        lambda: e.fire(cid, "park", actor=secretary, payload={"reason": "r", "plan": "p"}),
        lambda: e.fire(cid, "resume", actor=secretary),
        lambda: e.fire(cid, "close", actor=secretary),
        lambda: e.fire(cid, "rate", actor=resident, payload={
            "satisfaction": rng.choice(grid_case_v2.SATISFACTION)}),
    ]


def _progress(e: Engine, cid: str, rng: Any) -> None:
    """The step that moves case ``cid`` on (a random one where there are several)."""
    case = e.get(cid)
    data = case.data
    if case.state == "reported":
        e.fire(cid, "triage", actor=secretary, payload={
            "category": rng.choice(("违规堆物", "地锁")),
            "priority": rng.choice(("normal", "urgent"))})
    elif case.state in ("triaged", "escalated"):
        e.fire(cid, "dispatch", actor=secretary, payload={
            "departments": rng.sample(DEPTS, rng.randrange(1, 4)), "plan": "p"})
    elif case.state == "joint_action":
        waiting = [d for d in data.get("departments", []) if d not in data.get("acknowledged", {})]
        undone = [d for d in data.get("departments", []) if d not in data.get("done", {})]
        if waiting:
            e.fire(cid, "acknowledge", actor=dept, payload={"department": rng.choice(waiting)})
        elif undone:
            e.fire(cid, "report_done", actor=dept,
                   payload={"department": rng.choice(undone), "result": "r"})
        elif case.workflow_version == 1:
            e.fire(cid, "close", actor=secretary)
        else:
            e.fire(cid, "submit_check", actor=secretary)
    elif case.state == "verifying":
        if rng.random() < 0.6:
            e.fire(cid, "pass_check", actor=inspector, payload={"observation": "o"})
        else:
            e.fire(cid, "fail_check", actor=inspector, payload={"reason": "r"})
    elif case.state == "parked":
        e.fire(cid, "resume", actor=secretary)
    elif case.state in ("closed", "revisit"):
        e.fire(cid, "rate", actor=resident,
               payload={"satisfaction": rng.choice(grid_case_v2.SATISFACTION)})


def random_population(store: Store, seed: int, n: int = 25) -> None:
    """Random walks through grid_case@2 (refused steps are skipped: they change
    nothing), with the timer, over a few weeks; a few @1 cases among them."""
    import random

    from gridflow import GridflowError

    rng = random.Random(seed)
    clock = FixedClock(T0)
    e = Engine(store=store, clock=clock, entry_points=False,
               plugins=[grid_case_v2.PLUGIN, grid_case_v2.Recurrence(store)])
    for i in range(n):
        clock.advance(timedelta(minutes=rng.randrange(10, 600)))
        version = 1 if i % 7 == 6 else 2
        data: dict[str, object] = {"title": "t", "source": "visit",
                                   "area": rng.choice(("华三", "华一"))}
        place = rng.choice(PLACES)
        if place is not None:
            data["location"] = place
        c = e.open("grid_case", actor=worker, grid=GRID, version=version, data=data)
        steps = _steps(e, c.id, rng)
        for _ in range(rng.randrange(2, 30)):
            clock.advance(timedelta(minutes=rng.randrange(1, 300)))
            if rng.random() < 0.1:
                e.tick()
                continue
            with contextlib.suppress(GridflowError):
                if rng.random() < 0.7:
                    _progress(e, c.id, rng)
                else:
                    rng.choice(steps)()
    clock.advance(timedelta(days=3))
    e.tick()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_stories_equal_the_reference(store: Store, seed: int) -> None:
    random_population(store, seed)
    import random

    rng = random.Random(seed)
    periods = [(SINCE, UNTIL)]
    for _ in range(3):
        a = T0 + timedelta(minutes=rng.randrange(0, 60 * 24 * 6))
        periods.append((a, a + timedelta(minutes=rng.randrange(30, 60 * 24 * 4))))
    total = 0
    for since, until in periods:
        for by in BYS:
            got = from_compute(store, by, since=since, until=until)
            assert got == from_oracle(store, by, since=since, until=until), (since, until, by)
            total += sum(sum(v for v in t[1:-1] if isinstance(v, int)) for t in got.values())
    assert total > 0


def test_random_stories_equal_on_all_three_stores(tmp_path: Path, pg_url: str,
                                                  pg_schema: str) -> None:
    stores: list[Store] = [gridflow.MemoryStore(),
                           gridflow.SQLStore(f"sqlite:///{tmp_path}/r.db"),
                           gridflow.SQLStore(pg_url, schema=pg_schema)]
    results = []
    for s in stores:
        if isinstance(s, gridflow.SQLStore):
            s.create_schema()
        random_population(s, 7)
        results.append({by: metrics.compute(s, since=SINCE, until=UNTIL, by=by).to_dicts()
                        for by in (*BYS, "area", "version")}
                       | {"classes": [c.to_dict() for c in metrics.problem_classes(
                           s, since=SINCE, until=UNTIL)]})
        if isinstance(s, gridflow.SQLStore):
            s.close()
    assert results[0] == results[1] == results[2]
    assert results[0]["classes"]
