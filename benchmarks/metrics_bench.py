"""Metrics benchmark: `gridflow.metrics.compute` over 100,000 grid cases on SQLite,
against one hand-written SQL GROUP BY over the same tables.

Seeds a SQLite file through the `SQLStore` tables with bulk inserts of
consistent rows (each case's events are a valid hash chain along a real
``grid_case`` path: rejected, closed on time, breached and escalated by the
timer then closed late, extended, reopened after the revisit, escalated by
hand, still in hand), then times, as the median of several repeats:

- the hand-written query: the grid-case counts per grid in one statement
  (the floor: what a person would write for exactly these counts);
- ``metrics.compute(by="grid", workflow="grid_case")``: the same counts plus
  the revisits and the median time in each state;
- ``metrics.compute(by=...)`` for every grouping, every workflow;
- the Python implementation over the same cases in a `MemoryStore`.

It checks that the hand-written counts equal the computed ones, and prints
one table. Nothing is asserted about time: the numbers depend on the
machine (and on who else uses its cores).

    python benchmarks/metrics_bench.py            # 100,000 cases (seeding ~1 min)
    python benchmarks/metrics_bench.py --quick    # 3,000 cases, a few seconds (CI)
    python benchmarks/metrics_bench.py --db /tmp/m.db   # keep and reuse the seeded file
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import sqlalchemy as sa

import gridflow
from gridflow import Actor, MemoryStore, Write, metrics
from gridflow.model import GENESIS_HASH, Case, Event

SINCE = datetime(2026, 2, 1, tzinfo=UTC)
UNTIL = datetime(2026, 3, 1, tzinfo=UTC)
START = datetime(2026, 1, 1, tzinfo=UTC)
SPAN_DAYS = 75

GRIDS = tuple(f"华阳-{i}" for i in range(1, 11))
AREAS = tuple(f"居民区-{i}" for i in range(1, 21))
CATEGORIES = ("违规堆物", "地锁", "市政设施", "环境卫生", "违法广告", "噪声扰民")
DAYS = {"urgent": 1, "normal": 5, "low": 15}

REPORTER = Actor("居民", ["resident"], grids=gridflow.ALL_GRIDS)
SECRETARY = Actor("书记", ["coordinator"], grids=gridflow.ALL_GRIDS)
DEPT = Actor("部门-清运单位", ["department"], grids=gridflow.ALL_GRIDS)
STREET = Actor("街道", ["street"], grids=gridflow.ALL_GRIDS)
SYSTEM = Actor.system()

#: The hand-written baseline: the grid-case counts per grid, one statement.
#: Times are compared through julianday(); the missed deadline is the one the
#: timer wrote into its breach event.
HAND_SQL = """
WITH f AS (
  SELECT e.case_id,
    MAX(e."trigger" = 'triage') AS triaged,
    MAX(e."trigger" = 'escalate') AS escalated,
    MAX(e."trigger" = 'reopen') AS reopened,
    MAX(e."trigger" = 'approve_extension') AS extended,
    MIN(CASE WHEN e.dest = 'closed' THEN julianday(e.at) END) AS closed_jd,
    MIN(CASE WHEN e.actor_id = 'system' AND e.source = 'joint_action'
             AND e."trigger" IN ('escalate', 'overdue')
        THEN julianday(json_extract(e.payload, '$.deadline_at')) END) AS missed_jd
  FROM gridflow_events e JOIN gridflow_cases c ON c.id = e.case_id
  WHERE c.workflow = 'grid_case' AND e.at < :until
  GROUP BY e.case_id
), d AS (
  SELECT c.grid, c.opened_at >= :since AND c.opened_at < :until AS received, f.*,
    CASE WHEN f.closed_jd IS NULL THEN f.missed_jd
         WHEN f.missed_jd IS NULL OR f.closed_jd <= f.missed_jd THEN f.closed_jd
         ELSE f.missed_jd END AS due_jd
  FROM f JOIN gridflow_cases c ON c.id = f.case_id
)
SELECT grid,
  SUM(received) AS received,
  SUM(received AND triaged) AS triaged,
  SUM(due_jd >= julianday(:since) AND due_jd < julianday(:until)) AS due,
  SUM(due_jd >= julianday(:since) AND due_jd < julianday(:until)
      AND closed_jd IS NOT NULL) AS closed,
  SUM(due_jd >= julianday(:since) AND due_jd < julianday(:until)
      AND closed_jd = due_jd) AS closed_on_time,
  SUM(due_jd >= julianday(:since) AND due_jd < julianday(:until) AND reopened) AS reopened,
  SUM(due_jd >= julianday(:since) AND due_jd < julianday(:until) AND extended) AS extended,
  SUM(due_jd >= julianday(:since) AND due_jd < julianday(:until)
      AND closed_jd IS NOT NULL AND NOT escalated) AS closed_in_grid
FROM d GROUP BY grid ORDER BY grid
"""
HAND_COUNTS = ("received", "triaged", "due", "closed", "closed_on_time", "reopened",
               "extended", "closed_in_grid")


# -- seeding ---------------------------------------------------------------------------------


class CaseBuilder:
    """Builds one case's events (a valid hash chain) and its final row."""

    def __init__(self, case_id: str, at: datetime, grid: str, data: dict[str, Any]) -> None:
        self.id, self.grid, self.opened_at = case_id, grid, at
        self.data = dict(data)
        self.events: list[Event] = []
        self.state = "reported"
        self.deadline: datetime | None = at + timedelta(days=1)
        self.at = at
        self._add("open", None, "reported", REPORTER, at,
                  {"data": dict(data), "grid": grid, "links": []})

    def _add(self, trigger: str, source: str | None, dest: str | None, actor: Actor,
             at: datetime, payload: dict[str, Any]) -> None:
        prev = self.events[-1].hash if self.events else GENESIS_HASH
        self.events.append(Event.create(self.id, len(self.events) + 1, trigger, source, dest,
                                        actor, at, payload, None, prev))
        self.at = at
        if dest is not None:
            self.state = dest

    def step(self, trigger: str, dest: str | None, actor: Actor, after: timedelta,
             payload: dict[str, Any] | None = None, deadline: timedelta | None = None) -> None:
        at = self.at + after
        self._add(trigger, self.state, dest, actor, at, payload or {})
        if dest is not None:
            self.deadline = at + deadline if deadline is not None else None

    def case(self) -> Case:
        return Case(self.id, "grid_case", 1, self.state, len(self.events), self.data,
                    self.grid, self.opened_at, self.at, self.deadline, (),
                    self.events[-1].hash)


def _path(rng: random.Random, b: CaseBuilder) -> None:
    """Walk one case along a random but valid grid_case path."""
    h = timedelta(hours=1)
    roll = rng.random()
    if roll < 0.08:
        b.step("reject", "rejected", SECRETARY, rng.randint(1, 30) * h, {"reason": "不予受理"})
        return
    if roll < 0.12:
        return  # still reported
    priority = rng.choice(("urgent", "normal", "normal", "normal", "low"))
    category = rng.choice(CATEGORIES)
    area = rng.choice(AREAS)
    b.data.update(category=category, priority=priority, area=area)
    b.step("triage", "triaged", SECRETARY, rng.randint(1, 20) * h,
           {"category": category, "priority": priority, "area": area},
           deadline=timedelta(days=1))
    if roll < 0.17:
        b.step("escalate", "escalated", SECRETARY, rng.randint(1, 10) * h,
               {"reason": "需街道协调"}, deadline=timedelta(days=5))
        b.data["escalations"] = 1
        dispatcher = STREET
    else:
        dispatcher = SECRETARY
    days = timedelta(days=DAYS[priority])
    b.step("dispatch", "joint_action", dispatcher, rng.randint(1, 20) * h,
           {"departments": ["清运单位"], "plan": "联合整治"}, deadline=days)
    b.data.update(departments=["清运单位"], plan="联合整治", done={})
    if roll < 0.22:
        return  # still in hand
    deadline = b.at + days
    if 0.22 <= roll < 0.27:
        until = deadline + timedelta(days=rng.randint(2, 10))
        b.step("request_extension", None, DEPT, h,
               {"reason": "材料未到", "until": until.isoformat()})
        b.step("approve_extension", None, SECRETARY, h)
        b.deadline = deadline = until
        b.data.update(extensions=1, extended_until=until.isoformat())
    late = 0.27 <= roll < 0.40
    if late:
        tick_at = deadline + rng.randint(1, 90) * timedelta(minutes=1)
        missed = deadline.astimezone(UTC).isoformat()
        b.step("escalate", "escalated", SYSTEM, tick_at - b.at,
               {"reason": f"deadline {missed} passed in state 'joint_action' (超期)",
                "deadline_at": missed}, deadline=timedelta(days=5))
        b.data["escalations"] = int(b.data.get("escalations", 0)) + 1
        b.step("dispatch", "joint_action", STREET, rng.randint(1, 48) * h,
               {"departments": ["清运单位"], "plan": "街道统筹"}, deadline=days)
    spent = (deadline - b.at) * rng.uniform(0.1, 0.9) if not late else rng.randint(2, 72) * h
    b.step("report_done", None, DEPT, spent, {"department": "清运单位", "result": "已处置"})
    b.data["done"] = {"清运单位": "已处置"}
    b.step("close", "closed", SECRETARY, h, deadline=timedelta(days=30))
    if roll < 0.55:
        return  # closed, not yet looked back at
    b.step("start_revisit", "revisit", SECRETARY, timedelta(days=rng.randint(20, 30)),
           deadline=timedelta(days=7))
    if roll < 0.62:
        b.step("reopen", "joint_action", SECRETARY, rng.randint(1, 100) * h,
               {"reason": "问题反弹"}, deadline=days)
        b.data.update(reopened=1, done={})
        b.step("report_done", None, DEPT, rng.randint(2, 72) * h,
               {"department": "清运单位", "result": "再次处置"})
        b.step("close", "closed", SECRETARY, h, deadline=timedelta(days=30))
        return
    b.step("confirm", "archived", SECRETARY, rng.randint(1, 100) * h, {"observation": "未反弹"})
    b.data["revisit"] = "passed"


def population(n: int, seed: int = 5) -> Iterator[CaseBuilder]:
    rng = random.Random(seed)
    for i in range(n):
        at = START + timedelta(seconds=rng.randint(0, SPAN_DAYS * 86400))
        b = CaseBuilder(f"c{i:07d}", at, rng.choice(GRIDS),
                        {"title": "弄堂违规堆物", "source": rng.choice(("visit", "resident"))})
        _path(rng, b)
        yield b


def seed_sql(store: gridflow.SQLStore, n: int) -> None:
    """Bulk rows as `SQLStore.commit` writes them, then the derived columns of schema
    5 (`gridflow._facts`) filled by `SQLStore.rebuild_facts`, as the upgrade does."""
    from gridflow import _facts

    derived = {*_facts.NAMES, "district", "claimed_until"}
    case_cols = {c.name for c in store.cases.c if c.name not in derived}
    chunk = 5000
    with store.engine.begin() as conn:
        cases: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        for b in population(n):
            case = b.case()
            row = {"id": case.id, **store._case_params(case)}
            assert set(row) == case_cols, set(row) ^ case_cols
            cases.append(row)
            events.extend(store._event_params(e) for e in b.events)
            if len(cases) >= chunk:
                conn.execute(sa.insert(store.cases), cases)
                conn.execute(sa.insert(store.events_table), events)
                cases, events = [], []
        if cases:
            conn.execute(sa.insert(store.cases), cases)
            conn.execute(sa.insert(store.events_table), events)
    store.rebuild_facts()
    with store.engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")


def seed_memory(n: int) -> MemoryStore:
    store = MemoryStore()
    for b in population(n):
        case = b.case()
        # One commit per event, as the engine would make; only the last row matters.
        for e in b.events[:-1]:
            store.commit([Write(attrs.evolve(case, version=e.seq, head=e.hash), e, e.seq - 1)])
        store.commit([Write(case, b.events[-1], case.version - 1)])
    return store


# -- timing ----------------------------------------------------------------------------------


def timed(fn: Callable[[], Any], repeats: int) -> tuple[tuple[float, float], Any]:
    """Median wall-clock and median CPU seconds of ``repeats`` calls, and the last result.

    SQLite runs inside this process, so CPU time measures the work itself even
    when other processes share the cores (wall time then includes waiting).
    """
    walls, cpus, result = [], [], None
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        cpus.append(time.process_time() - c0)
        walls.append(time.perf_counter() - w0)
    return (statistics.median(walls), statistics.median(cpus)), result


def hand_written(store: gridflow.SQLStore) -> dict[str, dict[str, int]]:
    params = {"since": SINCE.replace(tzinfo=None).isoformat(sep=" "),
              "until": UNTIL.replace(tzinfo=None).isoformat(sep=" ")}
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text(HAND_SQL), params).all()
    return {row[0]: dict(zip(HAND_COUNTS, map(int, row[1:]), strict=True)) for row in rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3,000 cases, 3 repeats")
    parser.add_argument("--cases", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--db", type=Path, default=None,
                        help="SQLite file to seed (reused when it already holds the cases)")
    parser.add_argument("--no-memory", action="store_true",
                        help="skip the MemoryStore (Python) row")
    args = parser.parse_args(argv)
    n = args.cases or (3_000 if args.quick else 100_000)
    repeats = args.repeats or (3 if args.quick else 5)
    tmp = None
    if args.db is None:
        tmp = tempfile.TemporaryDirectory()
        path = Path(tmp.name) / "metrics.db"
    else:
        path = args.db
    store = gridflow.SQLStore(f"sqlite:///{path}")
    try:
        store.create_schema()
        have = sum(store.counts(("workflow",)).values())
        if have not in (0, n):
            print(f"{path} holds {have} cases, not {n}; use another --db", file=sys.stderr)
            return 2
        if have == 0:
            t0 = time.perf_counter()
            seed_sql(store, n)
            print(f"seeded {n:,} cases in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        with store.engine.connect() as conn:
            n_events = conn.execute(sa.select(sa.func.count()).select_from(
                store.events_table)).scalar_one()

        rows: list[tuple[str, tuple[float, float]]] = []
        base, hand = timed(lambda: hand_written(store), repeats)
        rows.append(("hand-written SQL GROUP BY (grid-case counts per grid)", base))

        def counts_only() -> metrics.Report:
            return metrics.compute(store, since=SINCE, until=UNTIL, by="grid",
                                   workflow="grid_case", time_in_state=False)

        t, report = timed(counts_only, repeats)
        rows.append(('compute(by="grid", workflow="grid_case", time_in_state=False)', t))
        for name in hand:
            got = {c: getattr(report.row(name), c) for c in HAND_COUNTS}
            if got != hand[name]:
                print(f"MISMATCH in {name}: hand {hand[name]} vs compute {got}",
                      file=sys.stderr)
                return 1
        t, _ = timed(lambda: metrics.compute(store, since=SINCE, until=UNTIL, by="grid",
                                             workflow="grid_case"), repeats)
        rows.append(('compute(by="grid", workflow="grid_case")', t))
        for by in ("grid", "area", "category", None):
            t, _ = timed(lambda by=by: metrics.compute(store, since=SINCE, until=UNTIL, by=by),
                         repeats)
            rows.append((f"compute(by={by!r})  (every figure)", t))
        if not args.no_memory:
            memory = seed_memory(n)
            t, mem_report = timed(lambda: metrics.compute(memory, since=SINCE, until=UNTIL,
                                                          by="grid"), max(1, repeats // 2))
            rows.append(('Python on a MemoryStore: compute(by="grid")', t))
            sql_report = metrics.compute(store, since=SINCE, until=UNTIL, by="grid")
            if mem_report != sql_report:
                print("MISMATCH: MemoryStore and SQLite reports differ", file=sys.stderr)
                return 1
    finally:
        store.close()
        if tmp is not None:
            tmp.cleanup()

    total = sum(v["received"] for v in hand.values())
    print(f"metrics over {n:,} grid cases / {n_events:,} events on SQLite "
          f"(period {SINCE:%Y-%m-%d}..{UNTIL:%Y-%m-%d}: {total:,} received); "
          f"median of {repeats} runs")
    width = max(len(r[0]) for r in rows)
    print(f"{'query':<{width}}  {'wall':>8}  {'ratio':>6}  {'cpu':>8}  {'ratio':>6}")
    for label, (wall, cpu) in rows:
        print(f"{label:<{width}}  {wall * 1000:>6.0f}ms  {wall / base[0]:>5.2f}x"
              f"  {cpu * 1000:>6.0f}ms  {cpu / base[1]:>5.2f}x")
    print("counts: hand-written SQL == compute(); SQLite report == MemoryStore report")
    return 0


if __name__ == "__main__":
    sys.exit(main())
