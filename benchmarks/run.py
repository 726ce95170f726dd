"""gridflow benchmarks: every figure of issue 7, measured side by side in one run.

Run ``python benchmarks/run.py`` (10-15 minutes the first time, when the
1,000,000-case report databases are built and cached under
``benchmarks/.cache/``; a few minutes afterwards) or ``python
benchmarks/run.py --quick`` (a smoke run CI does: small sizes, one repeat;
it asserts nothing about time). One table is printed on stdout; progress goes
to stderr. ``benchmarks/README.md`` explains every row.

This machine is shared and noisy, so each figure is the median of several
repeats, and each comparison is measured in the same run, repeat by repeat
interleaved with its baseline: read the ratios, not the absolute times.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import multiprocessing
import os
import platform
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import tracemalloc
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CACHE = HERE / ".cache"
if str(ROOT / "src") not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT / "src"))

import gridflow  # noqa: E402
from gridflow import Actor, Engine, MemoryStore  # noqa: E402
from gridflow.model import GENESIS_HASH, Case, Event  # noqa: E402
from gridflow.workflows import GRID_CASE  # noqa: E402

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
#: Bump when the synthetic data changes: cached databases are rebuilt.
SEED_VERSION = 1

# -- the workload: the grid case lifecycle ----------------------------------------------

GRID = "华三-1"
RESIDENT = Actor("res-1", ["resident"], [GRID])
COORDINATOR = Actor("sec-1", ["coordinator"], [GRID])
DEPARTMENT = Actor("dept-1", ["department"], grids=gridflow.ALL_GRIDS)
VOLUNTEER = Actor("vol-1", ["volunteer"], [GRID])
OPEN_DATA = {"title": "弄堂违规堆物", "source": "visit"}
#: Every fire of one grid case from reported to archived (7 steps).
LIFECYCLE: list[tuple[str, Actor, dict[str, Any] | None]] = [
    ("triage", COORDINATOR, {"category": "违规堆物", "priority": "normal"}),
    ("dispatch", COORDINATOR, {"departments": ["社区管理办", "清运单位"], "plan": "联合整治"}),
    ("report_done", DEPARTMENT, {"department": "社区管理办", "result": "已清理"}),
    ("report_done", DEPARTMENT, {"department": "清运单位", "result": "已清运"}),
    ("close", COORDINATOR, None),
    ("start_revisit", VOLUNTEER, None),
    ("confirm", VOLUNTEER, {"observation": "未反弹"}),
]
STEPS = len(LIFECYCLE)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the table --------------------------------------------------------------------------


class Skip(Exception):
    """A row's prerequisite is missing: the row prints ``skipped: <reason>``."""


@dataclass
class Row:
    key: str
    what: str
    median: str = ""
    ratio: str = ""
    target: str = ""
    result: str = ""
    values: dict[str, Any] = field(default_factory=dict)


@dataclass
class Config:
    quick: bool
    repeats: int
    pg_url: str
    require_pg: bool
    sections: set[str]
    rows: list[Row] = field(default_factory=list)
    failed: bool = False

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row

    def judge(self, value: float, limit: float) -> str:
        # Small sizes and one repeat say nothing reliable (fixed costs dominate).
        if self.quick:
            return "n/a (--quick)"
        return "met" if value <= limit else "MISSED"


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def us(seconds: float) -> str:
    return f"{seconds * 1e6:,.2f} µs"


def ms(seconds: float) -> str:
    value = seconds * 1e3
    return f"{value:,.{2 if value < 10 else 1 if value < 1000 else 0}f} ms"


def times(ratio: float) -> str:
    return f"{ratio:.2f}×"


def print_table(cfg: Config) -> None:
    headers = ("#", "measurement", "median", "ratio", "target", "result")
    cells = [[r.key, r.what, r.median, r.ratio, r.target, r.result] for r in cfg.rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]

    def line(parts: Sequence[str]) -> str:
        return "  ".join(p.ljust(w) if i < 5 else p for i, (p, w) in
                         enumerate(zip(parts, widths, strict=True))).rstrip()

    mode = "quick (smoke: small sizes, 1 repeat; times not judged)" if cfg.quick else \
        f"full, median of {cfg.repeats} repeats"
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"gridflow {gridflow.__version__} benchmarks — {mode}")
    print(f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores, "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, "
          f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(line(headers))
    print(line(["-" * w for w in widths]))
    for row in cells:
        print(line(row))


def section(cfg: Config, key: str, title: str) -> Callable[[Callable[[Config], None]], None]:
    """Run one section; a `Skip` turns into a row saying why."""

    def run(fn: Callable[[Config], None]) -> None:
        if cfg.sections and key not in cfg.sections:
            return
        log(f"section {key}: {title}")
        started = time.perf_counter()
        try:
            fn(cfg)
        except Skip as skip:
            cfg.add(Row(key, title, result=f"skipped: {skip}"))
        except Exception as exc:  # the other rows still print; the run then fails
            traceback.print_exc()
            cfg.failed = True
            first = (str(exc).splitlines() or [""])[0][:100]
            cfg.add(Row(key, title, result=f"ERROR {type(exc).__name__}: {first}"))
        log(f"section {key} done in {time.perf_counter() - started:.1f} s")

    return run


# -- shared helpers ---------------------------------------------------------------------


def new_engine(store: Any = None) -> Engine:
    # No entry points: a plugin installed in this environment would be timed too.
    return Engine(store if store is not None else MemoryStore(), entry_points=False)


def open_cases(engine: Engine, n: int) -> list[str]:
    open_ = engine.open
    return [open_("grid_case", version=1, actor=RESIDENT, data=OPEN_DATA, grid=GRID).id
            for _ in range(n)]


def run_lifecycles(engine: Engine, ids: Sequence[str]) -> float:
    """Fire the whole lifecycle on every case; seconds per fire."""
    fire = engine.fire
    gc.collect()
    started = time.perf_counter()
    for cid in ids:
        for trigger, actor, payload in LIFECYCLE:
            fire(cid, trigger, actor=actor, payload=payload)
    return (time.perf_counter() - started) / (len(ids) * STEPS)


def chunks(items: Sequence[str], parts: int) -> list[Sequence[str]]:
    size = len(items) // parts
    return [items[i * size:(i + 1) * size] for i in range(parts)]


def sql_available() -> None:
    if importlib.util.find_spec("sqlalchemy") is None:
        raise Skip("SQLAlchemy not installed (pip install 'gridflow[sql]')")
    if importlib.util.find_spec("gridflow.store.sql") is None:
        raise Skip("gridflow.store.sql (SQLStore) does not exist yet")


def pg_conninfo(url: str) -> str:
    import sqlalchemy as sa

    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def pg_available(cfg: Config) -> None:
    sql_available()
    if importlib.util.find_spec("psycopg") is None:
        raise Skip("psycopg not installed (pip install 'gridflow[postgres]')")
    import psycopg

    try:
        with psycopg.connect(pg_conninfo(cfg.pg_url), connect_timeout=3):
            pass
    except Exception as exc:
        where = cfg.pg_url.split("@")[-1]
        if cfg.require_pg:
            raise RuntimeError(f"PostgreSQL not reachable at {where} and "
                               "GRIDFLOW_REQUIRE_PG=1") from exc
        raise Skip(f"PostgreSQL not reachable at {where} "
                   f"({type(exc).__name__}); set GRIDFLOW_PG_URL") from None


@contextmanager
def pg_schemas(cfg: Config, *names: str) -> Iterator[None]:
    """Own, fresh PostgreSQL schemas, dropped afterwards (others share the database)."""
    import psycopg

    try:
        yield
    finally:
        with psycopg.connect(pg_conninfo(cfg.pg_url), autocommit=True) as conn:
            for name in names:
                conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


# -- synthetic stored cases (bulk seeding) -----------------------------------------------

_BASE = datetime(2025, 1, 1, tzinfo=UTC)


def _sqlite_time(value: datetime) -> str:
    # How SQLAlchemy's DateTime stores a value on SQLite (UTC, fixed width).
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def case_values(case: Case) -> dict[str, Any]:
    return {"id": case.id, "workflow": case.workflow,
            "workflow_version": case.workflow_version, "state": case.state,
            "version": case.version, "data": case.data, "grid": case.grid,
            "opened_at": case.opened_at, "updated_at": case.updated_at,
            "deadline_at": case.deadline_at, "links": list(case.links), "head": case.head,
            "claimed_until": None}


def event_values(event: Event) -> dict[str, Any]:
    return {"case_id": event.case_id, "seq": event.seq, "trigger": event.trigger,
            "source": event.source, "dest": event.dest, "actor_id": event.actor.id,
            "actor": event.actor.to_json(), "at": event.at, "payload": event.payload,
            "idempotency_key": event.idempotency_key, "prev_hash": event.prev_hash,
            "hash": event.hash}


def derive_facts(events: Sequence[Event]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """What a SQLStore derives from the events (schema 5), as its writes would: the
    case row's facts and district, each event's stay_us and district."""
    from gridflow._facts import derive, opening_district

    facts, stays = derive(events)
    district = opening_district(events[0])
    return {**facts, "district": district}, [{"stay_us": stay, "district": district}
                                             for stay in stays]


def column_order(table: Any, known: dict[str, Any]) -> list[str]:
    names = [c.name for c in table.columns]
    for col in table.columns:
        if col.name not in known and not col.nullable and col.server_default is None:
            raise RuntimeError(f"benchmarks do not know column {table.name}.{col.name}; "
                               "update case_values / event_values in benchmarks/run.py")
    return names


def sqlite_row(values: dict[str, Any], names: Sequence[str]) -> tuple[Any, ...]:
    out = []
    for name in names:
        v = values.get(name)
        if isinstance(v, datetime):
            v = _sqlite_time(v)
        elif isinstance(v, dict | list):
            v = _json_text(v)
        out.append(v)
    return tuple(out)


def synth_reported(i: int, tag: str) -> tuple[Case, list[Event]]:
    """A case just opened (one ``open`` event), as `Engine.open` would store it."""
    at = _BASE + timedelta(seconds=i)
    cid = f"{tag}-{i:08d}"
    payload = {"data": dict(OPEN_DATA), "grid": GRID, "links": []}
    event = Event.create(cid, 1, "open", None, "reported", RESIDENT, at, payload, None,
                         GENESIS_HASH)
    case = Case(cid, "grid_case", 1, "reported", 1, dict(OPEN_DATA), GRID, at, at,
                at + timedelta(days=1), (), event.hash)
    return case, [event]


_GRIDS = [f"华三-{n}" for n in range(1, 41)] + [f"华二-{n}" for n in range(1, 21)]
_CATEGORIES = ["违规堆物", "地锁", "噪音扰民", "群租", "占道经营", "环境卫生"]
_PRIORITIES = ["urgent", "normal", "normal", "normal", "low"]
# How far a case got by the end of the year (weights sum to 100).
_OUTCOMES = [("reported", 6), ("rejected", 6), ("triaged", 6), ("escalated", 4),
             ("joint_action", 12), ("closed", 10), ("revisit", 6), ("archived", 44),
             ("reworked", 6)]


def synth_lifecycle(i: int, rng: random.Random) -> tuple[Case, list[Event]]:
    """A grid case somewhere along its life in 2025, with a valid hash chain."""
    grid = rng.choice(_GRIDS)
    actor_r = Actor(f"res-{i % 5000}", ["resident"], [grid])
    coord = Actor(f"sec-{grid}", ["coordinator"], [grid])
    dept = Actor("dept-1", ["department"], grids=gridflow.ALL_GRIDS)
    vol = Actor(f"vol-{i % 300}", ["volunteer"], [grid])
    system = Actor.system()
    outcome = rng.choices([o for o, _ in _OUTCOMES], [w for _, w in _OUTCOMES])[0]
    at = _BASE + timedelta(seconds=rng.randrange(0, 360 * 86400))
    cid = f"r-{i:08d}"
    data: dict[str, Any] = {"title": "案件", "source": rng.choice(["visit", "resident",
                                                                   "hotline", "patrol"])}
    events: list[Event] = []
    state: str | None = None
    deadline: datetime | None = None

    def step(trigger: str, dest: str | None, actor: Actor, payload: dict[str, Any],
             hours: float, days_limit: float | None = None) -> None:
        nonlocal at, state, deadline
        at = at + timedelta(hours=hours)
        prev = events[-1].hash if events else GENESIS_HASH
        events.append(Event.create(cid, len(events) + 1, trigger, state, dest, actor, at,
                                   payload, None, prev))
        if dest is not None:
            state = dest
            deadline = None if days_limit is None else at + timedelta(days=days_limit)

    step("open", "reported", actor_r, {"data": dict(data), "grid": grid, "links": []}, 0, 1)
    if outcome == "reported":
        pass
    elif outcome == "rejected":
        step("reject", "rejected", coord, {"reason": "不属于受理范围"}, rng.uniform(1, 30))
    else:
        category, priority = rng.choice(_CATEGORIES), rng.choice(_PRIORITIES)
        data.update(category=category, priority=priority)
        step("triage", "triaged", coord, {"category": category, "priority": priority},
             rng.uniform(1, 30), 1)
        if outcome == "escalated":
            step("escalate", "escalated", coord, {"reason": "需街道协调"}, rng.uniform(2, 48), 5)
        elif outcome != "triaged":
            depts = rng.sample(["社区管理办", "城运中心", "综合执法队", "清运单位"],
                               rng.randint(1, 3))
            data.update(departments=depts, plan="联合整治", done={})
            step("dispatch", "joint_action", coord, {"departments": depts, "plan": "联合整治"},
                 rng.uniform(1, 24), 5)
            if outcome != "joint_action":
                for d in depts:
                    data["done"] = {**data["done"], d: "已处置"}
                    step("report_done", None, dept, {"department": d, "result": "已处置"},
                         rng.uniform(4, 96))
                step("close", "closed", coord, {}, rng.uniform(1, 24), 30)
                if outcome != "closed":
                    step("start_revisit", "revisit", system, {}, 24 * 30)
                    if outcome == "archived":
                        data["revisit"] = "passed"
                        step("confirm", "archived", vol, {"observation": "未反弹"},
                             rng.uniform(1, 72))
                    elif outcome == "reworked":
                        data["done"] = {}
                        data["reopened"] = 1
                        step("reopen", "joint_action", vol, {"reason": "反弹"},
                             rng.uniform(1, 72), 5)
    assert state is not None
    opened = events[0].at
    case = Case(cid, "grid_case", 1, state, len(events), data, grid, opened, events[-1].at,
                deadline, (), events[-1].hash)
    return case, events


def _plain_values(case: Case, event: Event | None) -> dict[str, Any]:
    return case_values(case) if event is None else event_values(event)


def build_sqlite(path: Path, n: int, make: Callable[[int], tuple[Case, list[Event]]],
                 values: Callable[[Case, Event | None], dict[str, Any]] = _plain_values
                 ) -> None:
    """A gridflow SQLite database of ``n`` synthetic cases, by bulk inserts
    (``values``: the column values of a case row, or of an event row)."""
    from gridflow.store.sql import SQLStore

    tmp = path.with_name(path.name + ".building")
    for leftover in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
        leftover.unlink(missing_ok=True)
    store = SQLStore(f"sqlite:///{tmp}", synchronous="NORMAL")
    store.create_schema()
    sample_case, sample_events = synth_reported(0, "x")
    case_cols = column_order(store.cases, values(sample_case, None))
    event_cols = column_order(store.events_table, values(sample_case, sample_events[0]))
    store.close()
    conn = sqlite3.connect(tmp, isolation_level=None)
    # A throw-away build, renamed when complete: no journal, no syncs. WAL (which
    # SQLStore asks for) is switched back on at the end.
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA foreign_keys = OFF")
    i_case = (f"INSERT INTO gridflow_cases ({', '.join(case_cols)}) "
              f"VALUES ({', '.join('?' * len(case_cols))})")
    i_event = (f"INSERT INTO gridflow_events ({', '.join(event_cols)}) "
               f"VALUES ({', '.join('?' * len(event_cols))})")
    conn.execute("BEGIN")
    batch_c: list[tuple[Any, ...]] = []
    batch_e: list[tuple[Any, ...]] = []
    for i in range(n):
        case, events = make(i)
        facts, derived = derive_facts(events)
        batch_c.append(sqlite_row(values(case, None) | facts, case_cols))
        batch_e.extend(sqlite_row(values(case, e) | extra, event_cols)
                       for e, extra in zip(events, derived, strict=True))
        if len(batch_c) >= 20_000 or i == n - 1:
            conn.executemany(i_case, batch_c)
            conn.executemany(i_event, batch_e)
            conn.execute("COMMIT")
            conn.execute("BEGIN")
            batch_c, batch_e = [], []
            if n >= 100_000 and (i + 1) % 100_000 == 0:
                log(f"  seeded {i + 1:,} / {n:,} cases")
    conn.execute("COMMIT")
    # No ANALYZE: SQLite never gathers statistics by itself, and neither does SQLStore.
    conn.execute("PRAGMA journal_mode = WAL")
    conn.close()
    tmp.rename(path)
    for side in ("-wal", "-shm"):
        tmp.with_name(tmp.name + side).unlink(missing_ok=True)


def cached_sqlite(kind: str, n: int, make: Callable[[int], tuple[Case, list[Event]]],
                  values: Callable[[Case, Event | None], dict[str, Any]] = _plain_values
                  ) -> Path:
    """benchmarks/.cache/<kind>-<n>-s<schema>-v<seed>.db, built once."""
    from gridflow.store.sql import SCHEMA_VERSION

    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"{kind}-{n}-s{SCHEMA_VERSION}-v{SEED_VERSION}.db"
    if not path.exists():
        log(f"building {path.name} ({n:,} cases; cached for later runs)")
        build_sqlite(path, n, make, values)
    return path


def copy_db(src: Path, dest_dir: Path) -> Path:
    dest = dest_dir / src.name
    shutil.copyfile(src, dest)
    return dest


# == 1. engine overhead ===================================================================


class Plain:
    """The plain object a raw transitions machine drives."""

    def __init__(self) -> None:
        self.state = GRID_CASE.initial
        self.steps = 0
        self.ok = True


def _cond(event: Any) -> bool:
    return bool(event.model.ok)


def _after(event: Any) -> None:
    event.model.steps += 1


def raw_machine() -> Any:
    """transitions 0.9.3 as a careful user would drive it: one shared machine, no models,
    the grid case's states and transitions, one condition and one after-callback each."""
    from transitions import Machine

    machine = Machine(model=None, states=list(GRID_CASE.state_names), initial=GRID_CASE.initial,
                      auto_transitions=False, send_event=True)
    for tr in GRID_CASE.transitions:
        machine.add_transition(tr.trigger, list(tr.sources(GRID_CASE.non_terminal)), tr.dest,
                               conditions=[_cond], after=[_after])
    return machine


def run_raw(machine: Any, n: int) -> float:
    objects = [Plain() for _ in range(n)]
    events = machine.events
    triggers = [t for t, _, _ in LIFECYCLE]
    gc.collect()
    started = time.perf_counter()
    for obj in objects:
        for trigger in triggers:
            events[trigger].trigger(obj)
    elapsed = time.perf_counter() - started
    assert all(o.state == "archived" for o in objects)
    return elapsed / (n * STEPS)


def dict_table() -> dict[tuple[str, str], tuple[str | None, Callable[[Any], bool],
                                                Callable[[Any], None]]]:
    def cond(obj: Any) -> bool:
        return bool(obj.ok)

    def after(obj: Any) -> None:
        obj.steps += 1

    table = {}
    for tr in GRID_CASE.transitions:
        for src in tr.sources(GRID_CASE.non_terminal):
            table[(src, tr.trigger)] = (tr.dest, cond, after)
    return table


def run_dict(table: dict[tuple[str, str], Any], n: int) -> float:
    objects = [Plain() for _ in range(n)]
    triggers = [t for t, _, _ in LIFECYCLE]
    gc.collect()
    started = time.perf_counter()
    for obj in objects:
        for trigger in triggers:
            dest, cond, after = table[obj.state, trigger]
            if not cond(obj):
                raise RuntimeError("refused")
            if dest is not None:
                obj.state = dest
            after(obj)
    elapsed = time.perf_counter() - started
    assert all(o.state == "archived" for o in objects)
    return elapsed / (n * STEPS)


def bench_overhead(cfg: Config) -> None:
    n = 150 if cfg.quick else 1500
    machine = raw_machine()
    table = dict_table()
    g: list[float] = []
    r: list[float] = []
    d: list[float] = []
    for _ in range(cfg.repeats):
        engine = new_engine()
        ids = open_cases(engine, n)
        g.append(run_lifecycles(engine, ids))
        r.append(run_raw(machine, n))
        d.append(run_dict(table, n))
        del engine, ids
    ratio = median(g) / median(r)
    cfg.add(Row("1a", f"gridflow fire, MemoryStore, grid case lifecycle ({n:,} × {STEPS})",
                us(median(g)) + "/fire", f"{times(ratio)} raw transitions",
                "≤ 1.5×", cfg.judge(ratio, 1.5), {"seconds": g}))
    cfg.add(Row("1b", "raw transitions 0.9.3, one shared machine, same states/triggers",
                us(median(r)) + "/trigger",
                "", "", "", {"seconds": r}))
    cfg.add(Row("1c", "hand-written dict state table (the floor)", us(median(d)) + "/step",
                f"gridflow = {median(g) / median(d):,.0f}× floor", "", "", {"seconds": d}))


# == 2. flat with scale ===================================================================


def bench_scale_memory(cfg: Config) -> None:
    small, mid, large = (300, 3_000, 6_000) if cfg.quick else (1_000, 100_000, 200_000)
    # Each repeat fires fresh cases and a store of `small` cases has only so many:
    # short repeats, so more of them (9 in a full run) for a steady median.
    reps = cfg.repeats if cfg.quick else max(cfg.repeats, 9)
    per_rep = max(20, small // reps * 9 // 10)
    stores: dict[int, tuple[Engine, list[str]]] = {}
    for size in (small, mid, large):
        log(f"  opening {size:,} cases in a MemoryStore")
        engine = new_engine()
        stores[size] = (engine, open_cases(engine, size))
    samples = {}
    for size, (_, ids) in stores.items():
        stride = len(ids) // (per_rep * reps)
        samples[size] = chunks(ids[::stride][:per_rep * reps], reps)
    found: dict[int, list[float]] = {size: [] for size in stores}
    for rep in range(reps):
        for size, (engine, _) in stores.items():
            found[size].append(run_lifecycles(engine, samples[size][rep]))
    base = median(found[small])
    cfg.add(Row("2a", f"MemoryStore fire, {small:,} cases stored", us(base) + "/fire",
                "", "", "", {"seconds": found[small]}))
    r_mid = median(found[mid]) / base
    cfg.add(Row("2b", f"MemoryStore fire, {mid:,} cases stored (issue 2)",
                us(median(found[mid])) + "/fire", f"{times(r_mid)} {small:,} cases",
                "", "", {"seconds": found[mid]}))
    r_large = median(found[large]) / base
    cfg.add(Row("2c", f"MemoryStore fire, {large:,} cases stored",
                us(median(found[large])) + "/fire", f"{times(r_large)} {small:,} cases",
                "≤ 1.2×", cfg.judge(r_large, 1.2), {"seconds": found[large]}))
    stores.clear()
    gc.collect()


def bench_scale_sqlite(cfg: Config) -> None:
    sql_available()
    from gridflow.store.sql import SQLStore

    small, large = (300, 3_000) if cfg.quick else (1_000, 200_000)
    reps = cfg.repeats
    per_rep = 8 if cfg.quick else 40
    dbs = {size: cached_sqlite("scale", size, lambda i: synth_reported(i, "s"))
           for size in (small, large)}
    found: dict[int, list[float]] = {small: [], large: []}
    with tempfile.TemporaryDirectory(prefix="gridflow-bench-") as tmp:
        engines = {}
        samples = {}
        for size, cached in dbs.items():
            work = Path(tmp) / str(size)
            work.mkdir()
            path = copy_db(cached, work)
            store = SQLStore(f"sqlite:///{path}")
            engines[size] = (store, new_engine(store))
            stride = size // (per_rep * reps)
            ids = [f"s-{i:08d}" for i in range(0, size, stride)][:per_rep * reps]
            samples[size] = chunks(ids, reps)
        for rep in range(reps):
            for size, (_, engine) in engines.items():
                found[size].append(run_lifecycles(engine, samples[size][rep]))
        sync = next(iter(engines.values()))[0].synchronous
        for store, _ in engines.values():
            store.close()
    base = median(found[small])
    cfg.add(Row("2d", f"SQLite fire (file, WAL, synchronous={sync}), {small:,} cases",
                ms(base) + "/fire", "", "", "", {"seconds": found[small]}))
    ratio = median(found[large]) / base
    cfg.add(Row("2e", f"SQLite fire (file, WAL, synchronous={sync}), {large:,} cases",
                ms(median(found[large])) + "/fire", f"{times(ratio)} {small:,} cases",
                "≤ 1.2×", cfg.judge(ratio, 1.2), {"seconds": found[large]}))


# == 3. memory ============================================================================


def bench_memory(cfg: Config) -> None:
    n = 500 if cfg.quick else 20_000
    gc.collect()
    tracemalloc.start()
    try:
        gc.collect()
        before_engine = tracemalloc.get_traced_memory()[0]
        engine = new_engine()
        gc.collect()
        with_engine = tracemalloc.get_traced_memory()[0]
        ids = [c.id for c in (engine.open("grid_case", version=1,
                                          actor=RESIDENT, data=OPEN_DATA, grid=GRID)
                              for _ in range(n))]
        for cid in ids:
            for trigger, actor, payload in LIFECYCLE:
                engine.fire(cid, trigger, actor=actor, payload=payload)
        gc.collect()
        everything = tracemalloc.get_traced_memory()[0] - with_engine - sys.getsizeof(ids)
        events = sum(len(engine.history(cid)) for cid in ids)
        compiled = getattr(engine, "_compiled", {})  # private: the engine's compiled specs
        models = sum(len(wf.machine.models) for wf in compiled.values()) if compiled else -1
        cases = [engine.get(cid) for cid in ids]
        del engine
        gc.collect()
        only_cases = (tracemalloc.get_traced_memory()[0] - before_engine
                      - sys.getsizeof(ids) - sys.getsizeof(cases))
    finally:
        tracemalloc.stop()
    per_case = only_cases / n
    per_event = (everything - only_cases) / events
    cfg.add(Row("3a", f"MemoryStore bytes per case, events excluded ({n:,} archived)",
                f"{per_case:,.0f} B/case", "",
                "≤ 1 KB", cfg.judge(per_case, 1024), {"bytes": per_case}))
    cfg.add(Row("3b", f"MemoryStore bytes per event ({events // n} events a case)",
                f"{per_event:,.0f} B/event", "", "", "",
                {"bytes": per_event}))
    cfg.add(Row("3c", f"models attached to the shared machines after {n * STEPS:,} fires",
                str(models) if models >= 0 else "?", "", "none",
                {0: "met", -1: "unknown: Engine._compiled is gone"}.get(models, "MISSED"),
                {"models": models}))


# == 4. durable steps =====================================================================


def template_lifecycle() -> list[tuple[Event, Case]]:
    """The exact event and case rows gridflow writes for each lifecycle step."""
    engine = new_engine()
    cid = engine.open("grid_case", version=1, actor=RESIDENT, data=OPEN_DATA, grid=GRID).id
    cases = [engine.fire(cid, t, actor=a, payload=p) for t, a, p in LIFECYCLE]
    return list(zip(engine.history(cid)[1:], cases, strict=True))


def bare_sqlite_connect(path: Path, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in ("busy_timeout = 10000", "foreign_keys = ON", "journal_mode = WAL",
                   f"synchronous = {synchronous}"):
        conn.execute(f"PRAGMA {pragma}")
    return conn


# The event row with every field its hash covers (``changes`` included); not the
# per-field digests, which are gridflow's own diagnostics and so its own cost.
_BARE_I_EVENT = ("INSERT INTO gridflow_events (case_id, seq, trigger, source, dest, actor_id, "
                 "actor, at, payload, idempotency_key, prev_hash, hash, changes) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
_BARE_U_CASE = ("UPDATE gridflow_cases SET state = ?, version = ?, data = ?, updated_at = ?, "
                "deadline_at = ?, links = ?, head = ?, claimed_until = NULL "
                "WHERE id = ? AND version = ?")


def _changes_json(event: Event) -> Any:
    return None if event.changes is None else event.changes.to_json()


def bare_sqlite_case(conn: sqlite3.Connection, cid: str, steps: list[tuple[Event, Case]]) -> float:
    """The same writes as gridflow's steps of one case, by hand: BEGIN IMMEDIATE, read
    the case, insert the event, compare-and-set the case row, COMMIT. Seconds in all."""
    started = time.perf_counter()
    for event, case in steps:
        now = datetime.now(UTC)
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute("SELECT * FROM gridflow_cases WHERE id = ?", (cid,)).fetchone()
        version = row[4]
        conn.execute(_BARE_I_EVENT, (cid, version + 1, event.trigger, event.source, event.dest,
                                     event.actor.id, _json_text(event.actor.to_json()),
                                     _sqlite_time(now), _json_text(event.payload), None,
                                     event.prev_hash, event.hash,
                                     _json_text(_changes_json(event))))
        cur = conn.execute(_BARE_U_CASE, (case.state, version + 1, _json_text(case.data),
                                          _sqlite_time(now),
                                          None if case.deadline_at is None
                                          else _sqlite_time(case.deadline_at),
                                          _json_text(list(case.links)), event.hash, cid,
                                          version))
        if cur.rowcount != 1:
            raise RuntimeError("lost a compare-and-set in a single-writer benchmark")
        conn.execute("COMMIT")
    return time.perf_counter() - started


def fire_case(engine: Engine, cid: str) -> float:
    """gridflow's whole lifecycle on one case; seconds in all."""
    fire = engine.fire
    started = time.perf_counter()
    for trigger, actor, payload in LIFECYCLE:
        fire(cid, trigger, actor=actor, payload=payload)
    return time.perf_counter() - started


def case_by_case(g_ids: Sequence[str], b_ids: Sequence[str], g_case: Callable[[str], float],
                 b_case: Callable[[str], float]) -> tuple[float, float]:
    """Seconds per step of both sides, interleaved case by case (the order swapped
    every case): a slow spell of a shared disk then falls on both alike."""
    gc.collect()
    g = b = 0.0
    for i, (cg, cb) in enumerate(zip(g_ids, b_ids, strict=True)):
        if i % 2:
            b += b_case(cb)
            g += g_case(cg)
        else:
            g += g_case(cg)
            b += b_case(cb)
    steps = len(g_ids) * STEPS
    return g / steps, b / steps


def bench_durable_sqlite(cfg: Config) -> None:
    sql_available()
    from gridflow.store.sql import SQLStore

    reps = cfg.repeats
    per_rep = 10 if cfg.quick else 40
    n = per_rep * reps
    steps = template_lifecycle()
    g: list[float] = []
    b: list[float] = []
    with tempfile.TemporaryDirectory(prefix="gridflow-bench-") as tmp:
        cached = cached_sqlite("scale", max(n, 300 if cfg.quick else 1_000),
                               lambda i: synth_reported(i, "s"))
        g_dir, b_dir = Path(tmp) / "g", Path(tmp) / "b"
        g_dir.mkdir()
        b_dir.mkdir()
        g_path, b_path = copy_db(cached, g_dir), copy_db(cached, b_dir)
        store = SQLStore(f"sqlite:///{g_path}")
        engine = new_engine(store)
        bare = bare_sqlite_connect(b_path, store.synchronous)
        ids = [f"s-{i:08d}" for i in range(n)]
        for rep_ids in chunks(ids, reps):
            g_rep, b_rep = case_by_case(rep_ids, rep_ids, lambda c: fire_case(engine, c),
                                        lambda c: bare_sqlite_case(bare, c, steps))
            g.append(g_rep)
            b.append(b_rep)
        bare.close()
        sync = store.synchronous
        store.close()
    ratio = median(g) / median(b)
    cfg.add(Row("4a", f"SQLite fire (file, WAL, synchronous={sync})", ms(median(g)) + "/fire",
                f"{times(ratio)} bare sqlite3", "≤ 1.2×", cfg.judge(ratio, 1.2),
                {"seconds": g}))
    cfg.add(Row("4b", "bare sqlite3 transaction, same writes, same pragmas",
                ms(median(b)) + "/step", "", "", "",
                {"seconds": b}))


def pg_seed(cfg: Config, schema: str, n: int, tag: str) -> list[str]:
    """A fresh gridflow schema with ``n`` just-opened cases, by COPY."""
    import psycopg

    from gridflow.store.sql import SQLStore

    store = SQLStore(cfg.pg_url, schema=schema)
    store.create_schema()
    case_cols = column_order(store.cases, case_values(synth_reported(0, tag)[0]))
    event_cols = column_order(store.events_table, event_values(synth_reported(0, tag)[1][0]))
    store.close()
    ids = []
    with psycopg.connect(pg_conninfo(cfg.pg_url)) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        rows = [synth_reported(i, tag) for i in range(n)]
        with conn.cursor().copy(f"COPY gridflow_cases ({', '.join(case_cols)}) FROM STDIN") as cp:
            for case, events in rows:
                cp.write_row(_pg_row(case_values(case) | derive_facts(events)[0], case_cols))
                ids.append(case.id)
        with conn.cursor().copy(
                f"COPY gridflow_events ({', '.join(event_cols)}) FROM STDIN") as cp:
            for _, events in rows:
                for event, extra in zip(events, derive_facts(events)[1], strict=True):
                    cp.write_row(_pg_row(event_values(event) | extra, event_cols))
        conn.commit()
    return ids


def _pg_row(values: dict[str, Any], names: Sequence[str]) -> tuple[Any, ...]:
    return tuple(_json_text(v) if isinstance(v := values.get(n), dict | list) else v
                 for n in names)


def bare_pg_case(conn: Any, cid: str, steps: list[tuple[Event, Case]]) -> float:
    """The same writes as gridflow's steps of one case, the naive way on psycopg: read
    the case, insert the event, compare-and-set the case row, commit (BEGIN, three
    statements and COMMIT: five round trips a step). Seconds in all."""
    from psycopg.types.json import Jsonb

    i_event = ("INSERT INTO gridflow_events (case_id, seq, trigger, source, dest, "
               "actor_id, actor, at, payload, idempotency_key, prev_hash, hash, changes) "
               "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)")
    u_case = ("UPDATE gridflow_cases SET state = %s, version = %s, data = %s, "
              "updated_at = %s, deadline_at = %s, links = %s, head = %s, "
              "claimed_until = NULL WHERE id = %s AND version = %s")
    started = time.perf_counter()
    for event, case in steps:
        now = datetime.now(UTC)
        row = conn.execute("SELECT * FROM gridflow_cases WHERE id = %s", (cid,)).fetchone()
        assert row is not None
        version = row[4]
        conn.execute(i_event, (cid, version + 1, event.trigger, event.source,
                               event.dest, event.actor.id,
                               Jsonb(event.actor.to_json()), now, Jsonb(event.payload),
                               None, event.prev_hash, event.hash,
                               Jsonb(_changes_json(event))))
        cur = conn.execute(u_case, (case.state, version + 1, Jsonb(case.data), now,
                                    case.deadline_at, Jsonb(list(case.links)),
                                    event.hash, cid, version))
        if cur.rowcount != 1:
            raise RuntimeError("lost a compare-and-set in a single-writer benchmark")
        conn.commit()
    return time.perf_counter() - started


def round_trips(pgconn: Any, work: Callable[[], Any]) -> int:
    """How many round trips ``work`` makes on the libpq connection ``pgconn``: the
    server's ReadyForQuery messages (one answers each Sync or simple query), as
    libpq's trace of the connection shows them."""
    from psycopg import pq

    with tempfile.TemporaryFile("w+") as out:
        pgconn.trace(out.fileno())
        pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
        try:
            work()
        finally:
            pgconn.untrace()
        out.seek(0)
        return sum(1 for line in out if "\tReadyForQuery" in line)  # only a server sends it


def bench_durable_pg(cfg: Config) -> None:
    pg_available(cfg)
    import psycopg

    from gridflow.store.sql import SQLStore

    reps = cfg.repeats
    per_rep = 10 if cfg.quick else 40
    n = per_rep * reps
    steps = template_lifecycle()
    g_schema, b_schema = unique("bench_fire"), unique("bench_bare")
    g: list[float] = []
    b: list[float] = []
    with pg_schemas(cfg, g_schema, b_schema):
        g_ids = pg_seed(cfg, g_schema, n + 2, "g")  # the last ones: counting round trips
        b_ids = pg_seed(cfg, b_schema, n + 1, "b")
        store = SQLStore(cfg.pg_url, schema=g_schema)
        engine = new_engine(store)
        with psycopg.connect(pg_conninfo(cfg.pg_url)) as bare:
            bare.execute(f'SET search_path TO "{b_schema}"')
            bare.commit()
            for g_rep, b_rep in zip(chunks(g_ids[:n], reps), chunks(b_ids[:n], reps),
                                    strict=True):
                g_step, b_step = case_by_case(g_rep, b_rep, lambda c: fire_case(engine, c),
                                              lambda c: bare_pg_case(bare, c, steps))
                g.append(g_step)
                b.append(b_step)
            b_trips = round_trips(bare.pgconn, lambda: bare_pg_case(bare, b_ids[-1], steps))
        store.close()
        # The round trips of one lifecycle on a store with a single pooled connection.
        counted = SQLStore(cfg.pg_url, schema=g_schema, pool_size=1, max_overflow=0)
        engine = new_engine(counted)
        fire_case(engine, g_ids[-2])  # the engine's first reads (fingerprints, retired)
        raw = counted.engine.raw_connection()
        pgconn = raw.driver_connection.pgconn  # type: ignore[union-attr]
        raw.close()
        g_trips = round_trips(pgconn, lambda: fire_case(engine, g_ids[-1]))
        counted.close()
    ratio = median(g) / median(b)
    cfg.add(Row("4c", "PostgreSQL fire (SQLStore, psycopg 3)", ms(median(g)) + "/fire",
                f"{times(ratio)} bare psycopg", "≤ 1.0×", cfg.judge(ratio, 1.0),
                {"seconds": g}))
    cfg.add(Row("4d", "bare psycopg transaction, same writes", ms(median(b)) + "/step",
                "", "", "", {"seconds": b}))
    cfg.add(Row("4g", "PostgreSQL round trips per fire (SQLStore)",
                f"{g_trips / STEPS:.1f}", f"{b_trips / STEPS:.1f} naive", "", "",
                {"round_trips": g_trips, "naive": b_trips, "steps": STEPS}))


def _pg_writer(url: str, schema: str, ids: list[str], barrier: Any, seconds: float,
               out: Any) -> None:
    sys.path.insert(0, str(ROOT / "src"))
    from gridflow.store.sql import SQLStore

    store = SQLStore(url, schema=schema)
    engine = new_engine(store)
    engine.get(ids[0])  # connect before the clock starts
    fire = engine.fire
    barrier.wait()
    started = time.perf_counter()
    done = 0
    stop = started + seconds
    for cid in ids:
        for trigger, actor, payload in LIFECYCLE:
            fire(cid, trigger, actor=actor, payload=payload)
            done += 1
        if time.perf_counter() >= stop:
            break
    out.put((done, time.perf_counter() - started))
    store.close()


def bench_pg_writers(cfg: Config) -> None:
    pg_available(cfg)
    seconds = 1.0 if cfg.quick else 4.0
    per_writer = 60 if cfg.quick else 800  # enough cases to stay busy the whole time
    reps = 1 if cfg.quick else 3
    ctx = multiprocessing.get_context("spawn")
    found: dict[int, list[float]] = {1: [], 4: []}
    schema = unique("bench_writers")
    with pg_schemas(cfg, schema):
        ids = pg_seed(cfg, schema, per_writer * (1 + 4) * reps, "w")
        pool = iter(ids)
        for _ in range(reps):
            for writers in (1, 4):
                barrier = ctx.Barrier(writers)
                out = ctx.Queue()
                procs = [ctx.Process(target=_pg_writer, args=(
                    cfg.pg_url, schema, [next(pool) for _ in range(per_writer)], barrier,
                    seconds, out)) for _ in range(writers)]
                for p in procs:
                    p.start()
                results = [out.get(timeout=120) for _ in procs]
                for p in procs:
                    p.join(timeout=60)
                    if p.exitcode != 0:
                        raise RuntimeError(f"a writer process failed (exit code {p.exitcode})")
                total = sum(d for d, _ in results)
                found[writers].append(total / max(e for _, e in results))
    one, four = median(found[1]), median(found[4])
    cfg.add(Row("4e", "PostgreSQL steps/s, 1 writer process", f"{one:,.0f} steps/s", "",
                "", "", {"steps_per_second": found[1]}))
    cfg.add(Row("4f", f"PostgreSQL steps/s, 4 writer processes ({os.cpu_count()} cores)",
                f"{four:,.0f} steps/s", f"{times(four / one)} 1 writer", "", "",
                {"steps_per_second": found[4]}))


# == 5. reports ===========================================================================

_REPORT_SINCE = datetime(2025, 1, 1, tzinfo=UTC)
_TIME_COLUMNS = {"opened_at", "updated_at", "deadline_at", "claimed_until", "at"}
_REPORT_UNTIL = datetime(2026, 1, 1, tzinfo=UTC)

_GROUP_BY = """
SELECT c.grid,
       SUM(CASE WHEN e.trigger = 'open' THEN 1 ELSE 0 END) AS received,
       SUM(CASE WHEN e.trigger = 'triage' THEN 1 ELSE 0 END) AS triaged,
       SUM(CASE WHEN e.dest = 'closed' THEN 1 ELSE 0 END) AS closed,
       SUM(CASE WHEN e.trigger = 'reopen' THEN 1 ELSE 0 END) AS reopened,
       SUM(CASE WHEN e.trigger = 'escalate' THEN 1 ELSE 0 END) AS escalated
FROM gridflow_cases c
JOIN gridflow_events e ON e.case_id = c.id AND e.at < {until}
WHERE c.workflow = 'grid_case' AND c.opened_at >= {since} AND c.opened_at < {until}
GROUP BY c.grid
"""


def _same_counts(report: Any, rows: Sequence[Any]) -> str:
    # A sanity check that both sides read the same cases: per-grid received counts.
    ours = {r.group: r.received for r in report.rows}
    theirs = {r[0]: r[1] for r in rows}
    return "" if ours == theirs else " (received counts differ from the GROUP BY!)"


def metrics_available() -> Any:
    if importlib.util.find_spec("gridflow.metrics") is None:
        raise Skip("gridflow.metrics does not exist yet")
    import gridflow.metrics

    if not hasattr(gridflow.metrics, "compute"):
        raise Skip("gridflow.metrics.compute does not exist yet")
    return gridflow.metrics


def report_cases(cfg: Config) -> int:
    # GRIDFLOW_BENCH_REPORT_CASES: a smaller full run while working on the figures.
    return 5_000 if cfg.quick else int(os.environ.get("GRIDFLOW_BENCH_REPORT_CASES",
                                                      1_000_000))


def report_db(cfg: Config) -> Path:
    n = report_cases(cfg)
    rng = random.Random(SEED_VERSION)  # cases are made in order, so the data is reproducible
    return cached_sqlite("reports", n, lambda i: synth_lifecycle(i, rng))


def bench_reports_sqlite(cfg: Config) -> None:
    sql_available()
    metrics = metrics_available()
    from gridflow.store.sql import SQLStore

    n = report_cases(cfg)
    path = report_db(cfg)
    store = SQLStore(f"sqlite:///{path}")
    sql = _GROUP_BY.format(since="?", until="?")
    args = (_sqlite_time(_REPORT_SINCE), _sqlite_time(_REPORT_UNTIL), _sqlite_time(_REPORT_UNTIL))
    m: list[float] = []
    b: list[float] = []
    reps = 1 if cfg.quick else 3
    for _ in range(reps):
        started = time.perf_counter()
        report = metrics.compute(store, since=_REPORT_SINCE, until=_REPORT_UNTIL, by="grid")
        m.append(time.perf_counter() - started)
        conn = sqlite3.connect(path)
        started = time.perf_counter()
        rows = conn.execute(sql, (args[1], args[0], args[2])).fetchall()
        b.append(time.perf_counter() - started)
        conn.close()
    store.close()
    ratio = median(m) / median(b)
    cfg.add(Row("5a", f"metrics.compute(by='grid'), {n:,} cases, SQLite",
                ms(median(m)), f"{times(ratio)} one GROUP BY", "≤ 1.5×",
                cfg.judge(ratio, 1.5) + _same_counts(report, rows), {"seconds": m}))
    cfg.add(Row("5b", "one hand-written GROUP BY, same tables, SQLite",
                ms(median(b)), "", "", "", {"seconds": b}))


def pg_report_schema(cfg: Config, fresh: str | None = None) -> str:
    """A PostgreSQL schema with the report data, loaded from the SQLite cache by COPY.

    Without ``fresh`` the schema ``gridflow_bench_reports_<n>_s<schema>`` is kept across runs
    (a fingerprint row says which data it holds); with it, that new schema is loaded.
    """
    import psycopg

    from gridflow.store.sql import SCHEMA_VERSION, SQLStore

    n = report_cases(cfg)
    schema = fresh or f"gridflow_bench_reports_{n}_s{SCHEMA_VERSION}"
    mark = f"{n}-s{SCHEMA_VERSION}-v{SEED_VERSION}"
    conninfo = pg_conninfo(cfg.pg_url)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        try:
            found = conn.execute(f'SELECT value FROM "{schema}".gridflow_meta '
                                 "WHERE key = 'bench_seed'").fetchone()
        except psycopg.Error:
            found = None
        if found is not None and found[0] == mark:
            return schema
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    path = report_db(cfg)
    log(f"loading {n:,} report cases into PostgreSQL schema {schema}"
        + ("" if fresh else " (kept for later runs)"))
    store = SQLStore(cfg.pg_url, schema=schema)
    store.create_schema()
    tables = {"gridflow_cases": store.cases, "gridflow_events": store.events_table}
    store.close()
    src = sqlite3.connect(path)
    with psycopg.connect(conninfo) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        for name, table in tables.items():
            cols = [c.name for c in table.columns]
            times_at = {i for i, c in enumerate(cols) if c in _TIME_COLUMNS}
            with conn.cursor().copy(f"COPY {name} ({', '.join(cols)}) FROM STDIN") as cp:
                for row in src.execute(f"SELECT {', '.join(cols)} FROM {name}"):
                    cp.write_row([f"{v}+00" if i in times_at and v is not None else v
                                  for i, v in enumerate(row)])
        conn.execute("INSERT INTO gridflow_meta (key, value) VALUES ('bench_seed', %s)", (mark,))
        conn.execute("ANALYZE gridflow_cases")
        conn.execute("ANALYZE gridflow_events")
        conn.commit()
    src.close()
    return schema


def bench_reports_pg(cfg: Config) -> None:
    pg_available(cfg)
    metrics_available()
    n = report_cases(cfg)
    # --quick (CI) loads its few cases into a throw-away schema: nothing is left behind.
    fresh = unique("bench_reports") if cfg.quick else None
    with pg_schemas(cfg, *([fresh] if fresh else [])):
        m, b, report, rows = _reports_pg(cfg, pg_report_schema(cfg, fresh))
    ratio = median(m) / median(b)
    cfg.add(Row("5c", f"metrics.compute(by='grid'), {n:,} cases, PostgreSQL",
                ms(median(m)), f"{times(ratio)} one GROUP BY", "≤ 1.5×",
                cfg.judge(ratio, 1.5) + _same_counts(report, rows), {"seconds": m}))
    cfg.add(Row("5d", "one hand-written GROUP BY, same tables, PostgreSQL",
                ms(median(b)), "", "", "", {"seconds": b}))


def _reports_pg(cfg: Config, schema: str) -> tuple[list[float], list[float], Any, list[Any]]:
    import psycopg

    import gridflow.metrics as metrics
    from gridflow.store.sql import SQLStore

    store = SQLStore(cfg.pg_url, schema=schema)
    sql = _GROUP_BY.format(since="%(since)s", until="%(until)s")
    m: list[float] = []
    b: list[float] = []
    reps = 1 if cfg.quick else 3
    with psycopg.connect(pg_conninfo(cfg.pg_url)) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        conn.commit()  # or the rollback below would undo the SET
        for _ in range(reps):
            started = time.perf_counter()
            report = metrics.compute(store, since=_REPORT_SINCE, until=_REPORT_UNTIL, by="grid")
            m.append(time.perf_counter() - started)
            started = time.perf_counter()
            rows = conn.execute(sql, {"since": _REPORT_SINCE, "until": _REPORT_UNTIL}).fetchall()
            b.append(time.perf_counter() - started)
            conn.rollback()
    store.close()
    return m, b, report, rows


# == 6. import cost =======================================================================


def bench_import(cfg: Config) -> None:
    reps = 3 if cfg.quick else 15
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # compile once, like an installed wheel
    CACHE.mkdir(exist_ok=True)
    env["PYTHONPYCACHEPREFIX"] = str(CACHE / "pycache")
    env["PYTHONPATH"] = str(ROOT / "src")
    commands = {
        "gridflow": "import gridflow",
        "deps": "import transitions, attrs, cattrs, pluggy",
        "bare": "pass",
    }

    def once(code: str) -> float:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], env=env, cwd=tempfile.gettempdir(),
                       check=True)
        return time.perf_counter() - started

    for code in commands.values():  # warm the bytecode cache and the page cache
        once(code)
    found: dict[str, list[float]] = {k: [] for k in commands}
    for _ in range(reps):
        for key, code in commands.items():
            found[key].append(once(code))
    g, d, bare = (median(found[k]) for k in ("gridflow", "deps", "bare"))
    ratio = g / d
    cfg.add(Row("6a", 'python -c "import gridflow"', ms(g),
                f"{times(ratio)} its dependencies", "≤ 1.2×", cfg.judge(ratio, 1.2),
                {"seconds": found["gridflow"]}))
    cfg.add(Row("6b", 'python -c "import transitions, attrs, cattrs, pluggy"', ms(d),
                f"imports alone: {ms(g - bare)} vs {ms(d - bare)}", "", "",
                {"seconds": found["deps"]}))
    cfg.add(Row("6c", 'python -c "pass" (start-up, part of both above)', ms(bare),
                "", "", "", {"seconds": found["bare"]}))


# == 7. nothing superlinear ===============================================================


def _hub(engine: Engine, links: int) -> str:
    """A case that ``links`` other cases were marked duplicates of (each links to it)."""
    hub = open_cases(engine, 1)[0]
    fire = engine.fire
    for cid in open_cases(engine, links):
        fire(cid, "mark_duplicate", actor=COORDINATOR, payload={"duplicate_of": hub})
    return hub


def bench_superlinear(cfg: Config) -> None:
    # CPU time of this process: these rows compare small costs on a shared machine,
    # where other processes' work would otherwise land in one side of a ratio.
    cpu = time.process_time
    reps = cfg.repeats if cfg.quick else max(cfg.repeats, 7)
    # Links: marking a new case a duplicate of a hub writes a link step on the hub.
    few, many, per = 10, 4_000, 20 if cfg.quick else 100
    engine = new_engine()
    log(f"  linking {many:,} cases to one hub")
    big = _hub(engine, many)
    found: dict[str, list[float]] = {"few": [], "many": [], "note_few": [], "note_many": []}
    fire = engine.fire
    for _ in range(reps):
        for size, hub in (("few", _hub(engine, few)), ("many", big)):
            ids = open_cases(engine, per)
            gc.collect()
            started = cpu()
            for cid in ids:
                fire(cid, "mark_duplicate", actor=COORDINATOR, payload={"duplicate_of": hub})
            found[size].append((cpu() - started) / per)
            started = cpu()
            for _ in range(per):
                fire(hub, "note", actor=COORDINATOR, payload={"text": "到场"})
            found[f"note_{size}"].append((cpu() - started) / per)
    base = median(found["few"])
    ratio = median(found["many"]) / base
    cfg.add(Row("7a", f"link step on a case with {few} links (a duplicate marked)",
                us(base) + "/step", "", "", "", {"seconds": found["few"]}))
    cfg.add(Row("7b", f"link step on a case with {many:,} links", us(median(found["many"])) +
                "/step", f"{times(ratio)} {few} links", "≤ 1.2×", cfg.judge(ratio, 1.2),
                {"seconds": found["many"]}))
    note = median(found["note_many"]) / median(found["note_few"])
    cfg.add(Row("7c", f"note on the case with {many:,} links (vs {few})",
                us(median(found["note_many"])) + "/step", f"{times(note)} {few} links",
                "≤ 1.2×", cfg.judge(note, 1.2), {"seconds": found["note_many"]}))
    del engine
    gc.collect()

    # tick where nothing is due: the cost of asking, at 1,000 and at 100,000 cases.
    small, large = (1_000, 10_000) if cfg.quick else (1_000, 100_000)
    calls = 200 if cfg.quick else 2_000
    ticks: dict[int, list[float]] = {small: [], large: []}
    engines = {}
    for size in (small, large):
        log(f"  opening {size:,} cases for tick")
        engines[size] = new_engine()
        open_cases(engines[size], size)
    for _ in range(reps):
        for size, eng in engines.items():
            now = eng.clock.now()  # every deadline is later: nothing is due
            tick = eng.tick
            gc.collect()
            started = cpu()
            for _ in range(calls):
                if tick(now):
                    raise RuntimeError("something was due")
            ticks[size].append((cpu() - started) / calls)
    engines.clear()
    gc.collect()
    base = median(ticks[small])
    ratio = median(ticks[large]) / base
    cfg.add(Row("7d", f"tick, nothing due, MemoryStore of {small:,} cases", us(base) + "/tick",
                "", "", "", {"seconds": ticks[small]}))
    cfg.add(Row("7e", f"tick, nothing due, MemoryStore of {large:,} cases",
                us(median(ticks[large])) + "/tick", f"{times(ratio)} {small:,} cases",
                "≤ 1.2×", cfg.judge(ratio, 1.2), {"seconds": ticks[large]}))

    # history: per event, a case of 100 events against one of 10,000, measured in a
    # fresh interpreter: after the rows above (and the sections before), this process's
    # heap holds the freed 100,000-case stores, and a 10,000-event history built in the
    # scattered free space of that heap paid cache misses a 100-event one does not (1.2-1.4x
    # here against 1.05-1.1x alone): the row is about gridflow's cost per event.
    short, long_ = 100, 10_000
    here = str(Path(__file__).resolve().parent)
    code = (f"import json, sys; sys.path.insert(0, {here!r}); import run; "
            f"print(json.dumps(run.history_per_event({cfg.quick!r}, {reps})))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).resolve().parent.parent / "src"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                          capture_output=True, text=True)
    per_event = {int(k): v for k, v in json.loads(done.stdout.splitlines()[-1]).items()}
    base = median(per_event[short])
    ratio = median(per_event[long_]) / base
    cfg.add(Row("7f", f"history of a {short}-event case, per event", us(base) + "/event", "",
                "", "", {"seconds": per_event[short]}))
    cfg.add(Row("7g", f"history of a {long_:,}-event case, per event",
                us(median(per_event[long_])) + "/event", f"{times(ratio)} {short} events",
                "≤ 1.2× (linear)", cfg.judge(ratio, 1.2), {"seconds": per_event[long_]}))


def history_per_event(quick: bool, reps: int) -> dict[int, list[float]]:
    """CPU seconds per event of `Engine.history` on a case of 100 events and one of
    10,000 (rows 7f/7g; run in a fresh interpreter by `bench_superlinear`)."""
    cpu = time.process_time
    short, long_ = 100, 10_000
    engine = new_engine()
    cases = {}
    for size in (short, long_):
        cid = open_cases(engine, 1)[0]
        for _ in range(size - 1):
            engine.fire(cid, "note", actor=COORDINATOR, payload={"text": "到场"})
        cases[size] = cid
    per_event: dict[int, list[float]] = {short: [], long_: []}
    for _ in range(reps):
        for size, cid in cases.items():
            rounds = max(1, 20_000 // size) if quick else max(2, 200_000 // size)
            gc.collect()
            started = cpu()
            for _ in range(rounds):
                engine.history(cid, actor=COORDINATOR)
            per_event[size].append((cpu() - started) / (rounds * size))
    return per_event


# == 9. verification ====================================================================
#
# Issue 17 point 4 (verify <= 3 µs per event on MemoryStore; every case of a
# 100,000-case store within 2x a bare loop reading and hashing the same rows) and
# issue 11's full verify_log (<= 3x a bare loop reading the event and leaf rows and
# hashing each). The store: grid cases that each played the whole lifecycle
# (8 events), cloned from one engine-made case under new ids and times.


def verify_cases(cfg: Config) -> int:
    return 1_000 if cfg.quick else 100_000


def _lifecycle_template() -> tuple[Case, list[Event]]:
    engine = new_engine()
    cid = engine.open("grid_case", actor=RESIDENT, data=OPEN_DATA, grid=GRID, version=1).id
    for trigger, actor, payload in LIFECYCLE:
        engine.fire(cid, trigger, actor=actor, payload=payload)
    return engine.get(cid), engine.history(cid)


def _clone(template: tuple[Case, list[Event]], i: int) -> tuple[Case, list[Event]]:
    """Case ``i``: the template's events under a new id, ``i`` minutes later, re-hashed."""
    import attrs

    case, events = template
    cid = f"v-{i:08d}"
    shift = timedelta(minutes=i)
    out: list[Event] = []
    prev = GENESIS_HASH
    for e in events:
        changes = e.changes
        if changes is not None and changes.deadline_at is not None:
            changes = attrs.evolve(changes, deadline_at=changes.deadline_at + shift)
        n = Event.create(cid, e.seq, e.trigger, e.source, e.dest, e.actor, e.at + shift,
                         e.payload, None, prev, changes)
        out.append(n)
        prev = n.hash
    row = Case(cid, case.workflow, case.workflow_version, case.state, case.version,
               case.data, case.grid, case.opened_at + shift, case.updated_at + shift,
               None if case.deadline_at is None else case.deadline_at + shift, case.links,
               prev)
    return row, out


def verify_db(cfg: Config) -> tuple[Path, str, str]:
    """benchmarks/.cache/verify-<n>-...db with a checkpoint over every event, built once;
    returns the path, the checkpoint text and the verifier key."""
    from gridflow.store.sql import SQLStore

    n = verify_cases(cfg)
    template = _lifecycle_template()
    path = cached_sqlite("verify", n, lambda i: _clone(template, i), values=_verify_values)
    stamp = path.with_name(path.name + ".checkpoint.json")
    if not stamp.exists():
        log(f"  first checkpoint over {n * len(template[1]):,} events (cached)")
        skey, vkey = gridflow.generate_key("bench.example/verify")
        store = SQLStore(f"sqlite:///{path}")
        text = new_engine(store).checkpoint(skey)
        store.close()
        stamp.write_text(json.dumps({"checkpoint": text, "key": vkey}))
    found = json.loads(stamp.read_text())
    return path, found["checkpoint"], found["key"]


def _verify_values(case: Case, event: Event | None) -> dict[str, Any]:
    if event is None:
        return case_values(case)
    values = event_values(event)
    values["changes"] = None if event.changes is None else event.changes.to_json()
    return values


def bare_read_hash(cursor: Any, tables: Sequence[str]) -> None:
    """The floor: read every row of ``tables``, one hashlib SHA-256 per row."""
    import hashlib

    sha = hashlib.sha256
    for table in tables:
        cursor.execute(f"SELECT * FROM {table}")
        while True:
            rows = cursor.fetchmany(10_000)
            if not rows:
                break
            for r in rows:
                sha("\x1f".join(map(str, r)).encode()).digest()


def _interleave(reps: int, *fns: Callable[[], Any]) -> list[list[float]]:
    found: list[list[float]] = [[] for _ in fns]
    for _ in range(reps):
        for i, fn in enumerate(fns):
            gc.collect()
            started = time.perf_counter()
            fn()
            found[i].append(time.perf_counter() - started)
    return found


def bench_verify_memory(cfg: Config) -> None:
    n = 300 if cfg.quick else 20_000
    engine = new_engine()
    ids = [engine.open("grid_case", actor=RESIDENT, data=OPEN_DATA, grid=GRID, version=1).id
           for _ in range(n)]
    for cid in ids:
        for trigger, actor, payload in LIFECYCLE:
            engine.fire(cid, trigger, actor=actor, payload=payload)
    events = [e for cid in ids for e in engine.history(cid)]
    count = len(events)

    def rehash() -> None:
        for e in events:
            e.expected_hash()

    reps = cfg.repeats
    v, h = _interleave(reps, engine.verify_all, rehash)
    per, floor = median(v) / count, median(h) / count
    cfg.add(Row("9a", f"Engine.verify_all, MemoryStore, {n:,} cases ({count:,} events)",
                us(per) + "/event", f"{times(per / floor)} 9b", "≤ 3 µs/event",
                cfg.judge(per * 1e6, 3.0), {"seconds": v}))
    cfg.add(Row("9b", "  each event's hash recomputed (Event.expected_hash), same events",
                us(floor) + "/event", "", "", "", {"seconds": h}))


def bench_verify_sqlite(cfg: Config) -> None:
    sql_available()
    from gridflow.store.sql import SQLStore

    n = verify_cases(cfg)
    path, checkpoint, vkey = verify_db(cfg)
    store = SQLStore(f"sqlite:///{path}")
    engine = new_engine(store)
    conn = sqlite3.connect(path)
    cur = conn.cursor()
    reps = 1 if cfg.quick else 3
    engine.verify_all()  # warm the page cache
    v, b, lg, lb = _interleave(
        reps, engine.verify_all,
        lambda: bare_read_hash(cur, ["gridflow_cases", "gridflow_events"]),
        lambda: engine.verify_log(trusted=checkpoint, key=vkey),
        lambda: bare_read_hash(cur, ["gridflow_events", "gridflow_log_leaves"]))
    conn.close()
    store.close()
    _verify_rows(cfg, "9c", "SQLite", n, v, b, lg, lb)


def _verify_rows(cfg: Config, key: str, label: str, n: int, v: list[float], b: list[float],
                 lg: list[float], lb: list[float]) -> None:
    letter = key[1]
    nxt = [chr(ord(letter) + i) for i in range(4)]
    r1, r2 = median(v) / median(b), median(lg) / median(lb)
    cfg.add(Row(f"9{nxt[0]}", f"Engine.verify_all, {n:,} cases, {label}", ms(median(v)),
                f"{times(r1)} 9{nxt[1]}", "≤ 2.0×", cfg.judge(r1, 2.0), {"seconds": v}))
    cfg.add(Row(f"9{nxt[1]}", "  bare loop: read every case and event row, SHA-256 each",
                ms(median(b)), "", "", "", {"seconds": b}))
    cfg.add(Row(f"9{nxt[2]}", f"Engine.verify_log (full), {n:,} cases, {label}",
                ms(median(lg)), f"{times(r2)} 9{nxt[3]}", "≤ 3.0×", cfg.judge(r2, 3.0),
                {"seconds": lg}))
    cfg.add(Row(f"9{nxt[3]}", "  bare loop: read every event and leaf row, SHA-256 each",
                ms(median(lb)), "", "", "", {"seconds": lb}))


def pg_verify_schema(cfg: Config, fresh: str | None = None) -> tuple[str, str, str]:
    """A PostgreSQL schema with the verification store, loaded from the SQLite cache by
    COPY and checkpointed; kept across runs unless ``fresh`` (a fingerprint row says
    which data it holds). Returns the schema, the checkpoint text and the verifier key."""
    import psycopg

    from gridflow.store.sql import SCHEMA_VERSION, SQLStore

    n = verify_cases(cfg)
    schema = fresh or f"gridflow_bench_verify_{n}"
    mark = f"{n}-s{SCHEMA_VERSION}-v{SEED_VERSION}"
    conninfo = pg_conninfo(cfg.pg_url)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        try:
            found = conn.execute(f'SELECT value FROM "{schema}".gridflow_meta '
                                 "WHERE key = 'bench_verify'").fetchone()
        except psycopg.Error:
            found = None
        if found is not None:
            stamp = json.loads(found[0])
            if stamp["mark"] == mark:
                return schema, stamp["checkpoint"], stamp["key"]
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    path, _, _ = verify_db(cfg)
    log(f"loading {n:,} verification cases into PostgreSQL schema {schema}"
        + ("" if fresh else " (kept for later runs)"))
    store = SQLStore(cfg.pg_url, schema=schema)
    store.create_schema()
    tables = {"gridflow_cases": store.cases, "gridflow_events": store.events_table}
    src = sqlite3.connect(path)
    with psycopg.connect(conninfo) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        for name, table in tables.items():
            cols = [c.name for c in table.columns if c.name != "leaf"]
            times_at = {i for i, c in enumerate(cols) if c in _TIME_COLUMNS}
            with conn.cursor().copy(f"COPY {name} ({', '.join(cols)}) FROM STDIN") as cp:
                for row in src.execute(f"SELECT {', '.join(cols)} FROM {name}"):
                    cp.write_row([f"{v}+00" if i in times_at and v is not None else v
                                  for i, v in enumerate(row)])
        conn.commit()
    src.close()
    skey, vkey = gridflow.generate_key("bench.example/verify")
    text = new_engine(store).checkpoint(skey)
    store.close()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        conn.execute("VACUUM ANALYZE gridflow_events")
        conn.execute("ANALYZE gridflow_cases")
        conn.execute("ANALYZE gridflow_log_leaves")
        conn.execute("INSERT INTO gridflow_meta (key, value) VALUES ('bench_verify', %s)",
                     (json.dumps({"mark": mark, "checkpoint": text, "key": vkey}),))
    return schema, text, vkey


def bench_verify_pg(cfg: Config) -> None:
    pg_available(cfg)
    import psycopg

    from gridflow.store.sql import SQLStore

    n = verify_cases(cfg)
    fresh = unique("bench_verify") if cfg.quick else None
    with pg_schemas(cfg, *([fresh] if fresh else [])):
        schema, checkpoint, vkey = pg_verify_schema(cfg, fresh)
        store = SQLStore(cfg.pg_url, schema=schema)
        engine = new_engine(store)
        reps = 1 if cfg.quick else 3
        with psycopg.connect(pg_conninfo(cfg.pg_url), autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{schema}"')
            cur = conn.cursor()
            engine.verify_all()  # warm the buffer cache
            v, b, lg, lb = _interleave(
                reps, engine.verify_all,
                lambda: bare_read_hash(cur, ["gridflow_cases", "gridflow_events"]),
                lambda: engine.verify_log(trusted=checkpoint, key=vkey),
                lambda: bare_read_hash(cur, ["gridflow_events", "gridflow_log_leaves"]))
        store.close()
    _verify_rows(cfg, "9g", "PostgreSQL", n, v, b, lg, lb)


# == main =================================================================================


def bench_personal(cfg: Config) -> None:
    """Fire with personal fields vs without (issue 12: ≤ 1.3×), on SQLite and PostgreSQL."""
    sql_available()
    from personal_bench import paired_fire

    from gridflow.store.sql import SQLStore

    cases, notes = (20, 2) if cfg.quick else (100, 4)
    with tempfile.TemporaryDirectory(prefix="gridflow-bench-") as tmp:

        def lite(tag: str) -> Any:
            store = SQLStore(f"sqlite:///{Path(tmp) / f'pii-{tag}.db'}")
            store.create_schema()
            return store

        kinds: list[tuple[str, str, Callable[[str], Any]]] = [("8s", "SQLite", lite)]
        try:
            pg_available(cfg)
        except Skip as skip:
            cfg.add(Row("8p", "PostgreSQL fire with vs without personal fields",
                        result=f"skipped: {skip}"))
        else:
            # Two fresh schemas per repeat, all named up front and dropped afterwards.
            schemas = [unique("gfbench_pii") for _ in range(2 * cfg.repeats)]
            free = iter(schemas)

            def pg(tag: str) -> Any:
                store = SQLStore(cfg.pg_url, schema=next(free))
                store.create_schema()
                return store

            kinds.append(("8p", "PostgreSQL", pg))
        for key, name, make in kinds:
            if key == "8p":
                with pg_schemas(cfg, *schemas):
                    found = paired_fire(make, cases, notes, cfg.repeats)
            else:
                found = paired_fire(make, cases, notes, cfg.repeats)
            ratio = median(found["fire_personal"]) / median(found["fire_plain"])
            cfg.add(Row(key, f"{name} fire: note sealing a contact, on cases with a sealed "
                        "reporter", ms(median(found["fire_personal"])) + "/fire",
                        f"{times(ratio)} the same without personal fields", "≤ 1.3×",
                        cfg.judge(ratio, 1.3), found))
            ratio = median(found["open_personal"]) / median(found["open_plain"])
            cfg.add(Row(key + "o", f"{name} open with a reporter (4 values, a new subject key)",
                        ms(median(found["open_personal"])) + "/open",
                        f"{times(ratio)} without", "", "", {}))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: small sizes, one repeat (what CI runs)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="repeats per measurement (default 5; 1 with --quick)")
    parser.add_argument("--only", default="",
                        help="comma-separated sections to run, e.g. 1,2m,6 "
                             "(1, 2m, 2s, 3, 4s, 4p, 4w, 5s, 5p, 6, 7, 8, 9m, 9s, 9p)")
    parser.add_argument("--json", type=Path, default=None,
                        help="also write every row, with the raw repeat values, to this file")
    args = parser.parse_args(argv)
    cfg = Config(
        quick=args.quick,
        repeats=args.repeats or (1 if args.quick else 5),
        pg_url=os.environ.get("GRIDFLOW_PG_URL") or DEFAULT_PG_URL,
        require_pg=os.environ.get("GRIDFLOW_REQUIRE_PG") == "1",
        sections={s.strip() for s in args.only.split(",") if s.strip()},
    )
    started = time.perf_counter()
    section(cfg, "1", "engine overhead")(bench_overhead)
    section(cfg, "2m", "flat with scale, MemoryStore")(bench_scale_memory)
    section(cfg, "2s", "flat with scale, SQLite")(bench_scale_sqlite)
    section(cfg, "3", "memory per case and per event")(bench_memory)
    section(cfg, "4s", "durable steps, SQLite vs bare sqlite3")(bench_durable_sqlite)
    section(cfg, "4p", "durable steps, PostgreSQL vs bare psycopg")(bench_durable_pg)
    section(cfg, "4w", "PostgreSQL writer processes")(bench_pg_writers)
    section(cfg, "5s", "reports, SQLite")(bench_reports_sqlite)
    section(cfg, "5p", "reports, PostgreSQL")(bench_reports_pg)
    section(cfg, "6", "import cost")(bench_import)
    section(cfg, "7", "nothing superlinear: links, tick, history")(bench_superlinear)
    section(cfg, "8", "personal fields: fire with vs without")(bench_personal)
    section(cfg, "9m", "verification, MemoryStore")(bench_verify_memory)
    section(cfg, "9s", "verification, SQLite")(bench_verify_sqlite)
    section(cfg, "9p", "verification, PostgreSQL")(bench_verify_pg)
    print_table(cfg)
    print(f"({time.perf_counter() - started:.0f} s in all)")
    if args.json is not None:
        args.json.write_text(json.dumps([r.__dict__ for r in cfg.rows], ensure_ascii=False,
                                        indent=1, default=str))
    return 1 if cfg.failed else 0


if __name__ == "__main__":
    sys.exit(main())
