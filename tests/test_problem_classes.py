"""Problem classes (一类事): location key × category, with cases, recurrences (反弹) and
time to solve, exact on a population built through the engine, equal on every store,
and ``gridflow report --classes``."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import gridflow
from gridflow import Engine, FixedClock, InvalidArgument, metrics
from gridflow.cli import EXIT_OK, EXIT_USAGE
from gridflow.store import Store
from gridflow.workflows import grid_case_v2
from test_cli import run
from test_grid_case_v2 import GRID, T0, dept, inspector, secretary, worker

ALLEY, LANE = "CN-ZL-324", "CN-HS-12"
HEAP, STALL = "违规堆物", "占道经营"
SINCE, UNTIL = T0 - timedelta(days=1), T0 + timedelta(days=30)


def population(store: Store) -> None:
    """p0 (before the period): ALLEY × STALL, solved in 1 h.
    In the period: a1, a2, a3 at ALLEY × HEAP (a1 solved in 2 h, a2 a recurrence solved
    in 4 h, a3 a recurrence left open); b1 at ALLEY × STALL (a recurrence of p0, solved in
    6 h); z1 at LANE, never triaged (no category); n1 without a location."""
    clock = FixedClock(T0 - timedelta(days=10))
    e = Engine(store=store, clock=clock, entry_points=False,
               plugins=[grid_case_v2.PLUGIN, grid_case_v2.Recurrence(store)])

    def case(key: str | None, category: str | None) -> str:
        data: dict[str, Any] = {"title": "堆物", "source": "visit"}
        if key is not None:
            data["location"] = {"key": key, "address": "长宁支路324弄"}
        c = e.open("grid_case", actor=worker, grid=GRID, version=2, data=data)
        if category is not None:
            e.fire(c.id, "triage", actor=secretary,
                   payload={"category": category, "priority": "normal"})
        return c.id

    def solve(cid: str, hours: int) -> None:
        e.fire(cid, "dispatch", actor=secretary, payload={"departments": ["城运中心"], "plan": "p"})
        e.fire(cid, "acknowledge", actor=dept, payload={"department": "城运中心"})
        e.fire(cid, "report_done", actor=dept, payload={"department": "城运中心", "result": "r"})
        e.fire(cid, "submit_check", actor=secretary)
        clock.advance(timedelta(hours=hours))
        e.fire(cid, "pass_check", actor=inspector, payload={"observation": "ok"})

    solve(case(ALLEY, STALL), 1)
    clock.set(T0)
    solve(case(ALLEY, HEAP), 2)
    clock.set(T0 + timedelta(days=1))
    a2 = case(ALLEY, HEAP)
    assert e.get(a2).data["recurrence_of"]
    solve(a2, 4)
    clock.advance(timedelta(hours=1))
    case(ALLEY, HEAP)
    solve(case(ALLEY, STALL), 6)
    case(LANE, None)
    solve(case(None, HEAP), 3)


def classes(store: Store, **kw: Any) -> list[metrics.ProblemClass]:
    return metrics.problem_classes(store, **{"since": SINCE, "until": UNTIL, **kw})


def test_every_class_exactly_on_every_store(store: Store) -> None:
    population(store)
    assert classes(store) == [
        metrics.ProblemClass(ALLEY, HEAP, cases=3, recurrences=2, solved=2,
                             median_seconds_to_solve=3 * 3600.0,
                             total_seconds_to_solve=6 * 3600.0),
        metrics.ProblemClass(ALLEY, STALL, cases=1, recurrences=1, solved=1,
                             median_seconds_to_solve=6 * 3600.0,
                             total_seconds_to_solve=6 * 3600.0),
        metrics.ProblemClass(LANE, None, cases=1),
    ]
    [heap] = classes(store, min_cases=2)
    assert (heap.key, heap.category, heap.unsolved, heap.recurrence_rate) == (ALLEY, HEAP, 1,
                                                                               2 / 3)


def test_as_of_until(store: Store) -> None:
    """Only what happened before ``until`` counts: a2 is open then, a3 not yet reported."""
    population(store)
    [heap] = classes(store, until=T0 + timedelta(days=1, hours=1))
    assert heap == metrics.ProblemClass(ALLEY, HEAP, cases=2, recurrences=1, solved=1,
                                        median_seconds_to_solve=7200.0,
                                        total_seconds_to_solve=7200.0)
    assert classes(store, since=T0 + timedelta(days=40), until=T0 + timedelta(days=41)) == []


def test_equal_on_all_three_stores(tmp_path: Path, pg_url: str, pg_schema: str) -> None:
    stores: list[Store] = [gridflow.MemoryStore(),
                           gridflow.SQLStore(f"sqlite:///{tmp_path}/c.db"),
                           gridflow.SQLStore(pg_url, schema=pg_schema)]
    results = []
    for s in stores:
        if isinstance(s, gridflow.SQLStore):
            s.create_schema()
        population(s)
        results.append([c.to_dict() for c in classes(s)]
                       + [c.to_dict() for c in classes(s, until=T0 + timedelta(hours=1))])
        if isinstance(s, gridflow.SQLStore):
            s.close()
    assert results[0] == results[1] == results[2]
    assert len(results[0]) == 3 + 1


def test_refusals() -> None:
    store = gridflow.MemoryStore()
    with pytest.raises(InvalidArgument, match="min_cases"):
        classes(store, min_cases=0)
    with pytest.raises(InvalidArgument, match="empty"):
        classes(store, since=UNTIL, until=SINCE)


@pytest.fixture
def classes_db(tmp_path: Path) -> Path:
    path = tmp_path / "classes.db"
    store = gridflow.SQLStore(f"sqlite:///{path}")
    store.create_schema()
    population(store)
    store.close()
    return path


def test_report_classes(classes_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    period = ("--since", "2026-03-01", "--until", "2026-03-31")
    code, out, err = run(capsys, "report", "--db", str(classes_db), "--classes", *period)
    assert code == EXIT_OK, err
    lines = out.splitlines()
    assert "Problem classes (一类事)" in out
    heads = next(i for i, line in enumerate(lines) if line.split()[:2] == ["Place", "Category"])
    assert lines[heads + 1].split() == [ALLEY, HEAP, "3", "2", "2", "3.0", "h", "6.0", "h"]
    assert lines[heads + 2].split() == [ALLEY, STALL, "1", "1", "1", "6.0", "h", "6.0", "h"]
    assert lines[heads + 3].split() == [LANE, "-", "1", "0", "0", "-", "-"]
    code, out, _ = run(capsys, "report", "--db", str(classes_db), "--classes", *period,
                       "--lang", "zh", "--min-cases", "2")
    assert code == EXIT_OK and "一类事" in out and "反弹数" in out and "3.0 小时" in out
    assert STALL not in out
    code, out, _ = run(capsys, "report", "--db", str(classes_db), "--classes", *period,
                       "--json", "-q")
    assert code == EXIT_OK
    data = json.loads(out)
    assert data["until"] == "2026-03-31T16:00:00+00:00" and data["min_cases"] == 1
    assert [(c["key"], c["category"], c["cases"], c["recurrences"], c["solved"],
             c["median_seconds_to_solve"], c["total_seconds_to_solve"])
            for c in data["classes"]] == [
        (ALLEY, HEAP, 3, 2, 2, 10800.0, 21600.0), (ALLEY, STALL, 1, 1, 1, 21600.0, 21600.0),
        (LANE, None, 1, 0, 0, None, 0.0)]
    code, out, _ = run(capsys, "report", "--db", str(classes_db), "--classes",
                       "--since", "2027-01-01", "--until", "2027-01-31")
    assert code == EXIT_OK and "no grid case opened in the period has a location key" in out
    code, _, err = run(capsys, "report", "--db", str(classes_db), "--classes",
                       "--min-cases", "0")
    assert code == EXIT_USAGE and "at least 1" in err
