"""Migration benchmark: cases migrated per second, and the dry run over many cases.

Prints one table:

- ``Engine.migrate`` of N grid cases from a ``grid_case@1`` to the test-only ``grid_case@3``
  (one ``migrate`` event per case: read the history, verify it, recompute the
  deadline, commit at the read version), per store, beside the baseline measured
  in the same run on the same store: one ordinary ``note`` step per case;
- ``Engine.plan_migration`` (the dry run: everything but the commit) over a
  large number of cases (default 100,000), per store.

Cases are bulk-filled: opened (half of them also triaged) on a `MemoryStore`,
then copied into the SQL store with `Store.commit` of 1,000 cases per
transaction. Nothing is asserted about time.

    python benchmarks/migrate_bench.py            # 5,000 migrated, 100,000 dry run
    python benchmarks/migrate_bench.py --quick    # 300 and 2,000, seconds (CI)
    python benchmarks/migrate_bench.py --no-pg    # SQLite and memory only
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for extra in (ROOT / "src", ROOT / "tests"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

import gridflow  # noqa: E402
from gridflow import Actor, Engine, FixedClock, MemoryStore, Store, Write  # noqa: E402
from gridflow.fold import evolve  # noqa: E402
from migration_v3 import PLAN, V3Plugin  # noqa: E402

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
GRID = "华三-1"
REPORTER = Actor("w-1", ["grid_worker"], [GRID])
SECRETARY = Actor("s-1", ["coordinator"], grids=gridflow.ALL_GRIDS)


def log(message: str) -> None:
    print(f"[migrate-bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr,
          flush=True)


def fill(store: Store, n: int, prefix: str) -> list[str]:
    """``n`` grid_case@1 cases (every other one triaged), copied in batches."""
    clock = FixedClock()
    memory = MemoryStore()
    engine = Engine(store=memory, clock=clock, entry_points=False)
    ids = []
    for i in range(n):
        case = engine.open("grid_case", actor=REPORTER, grid=GRID, version=1,
                           case_id=f"{prefix}-{i:06d}",
                           data={"title": "弄堂堆物", "source": "visit"})
        if i % 2:
            engine.fire(case.id, "triage", actor=SECRETARY,
                        payload={"category": "违规堆物", "priority": "normal"})
        ids.append(case.id)
    if store is memory:
        return ids
    batch: list[Write] = []
    for cid in ids:
        events = memory.events(cid)
        # The row as of each event: the open (a new case), then the triage.
        batch.append(Write(evolve(None, events[0]), events[0], 0))
        if len(batch) >= 1000:
            store.commit(batch)
            batch = []
    if batch:
        store.commit(batch)
    # Second events (triage) one batch per 1,000 cases as well.
    batch = []
    for cid in ids:
        events = memory.events(cid)
        if len(events) > 1:
            row = memory.get(cid)
            assert row is not None
            batch.append(Write(row, events[1], 1))
        if len(batch) >= 1000:
            store.commit(batch)
            batch = []
    if batch:
        store.commit(batch)
    return ids


def stores(pg: bool, tmp: Path) -> dict[str, Callable[[], Store]]:
    out: dict[str, Callable[[], Store]] = {"memory": MemoryStore}

    def sqlite() -> Store:
        s = gridflow.SQLStore(f"sqlite:///{tmp / f'{uuid.uuid4().hex}.db'}",
                              synchronous="NORMAL")
        s.create_schema()
        return s

    out["sqlite"] = sqlite
    if pg:
        def postgres() -> Store:
            s = gridflow.SQLStore(DEFAULT_PG_URL, schema=f"gfbench_mig_{uuid.uuid4().hex[:10]}")
            s.create_schema()
            return s

        out["postgres"] = postgres
    return out


def drop(store: Store) -> None:
    schema = getattr(store, "schema", None)
    if schema:
        import sqlalchemy as sa

        with store.engine.begin() as conn:  # type: ignore[attr-defined]
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    close = getattr(store, "close", None)
    if close:
        close()


def engine_on(store: Store) -> Engine:
    clock = FixedClock()
    clock.advance(timedelta(hours=6))
    return Engine(store=store, clock=clock, entry_points=False, plugins=[V3Plugin()])


def bench_migrate(make: Callable[[], Store], n: int, repeats: int) -> tuple[float, float]:
    """(cases migrated per second, note steps per second) on fresh stores."""
    rates, notes = [], []
    for r in range(repeats):
        store = make()
        try:
            ids = fill(store, n, f"m{r}")
            engine = engine_on(store)
            start = time.perf_counter()
            for cid in ids:
                engine.fire(cid, "note", actor=SECRETARY, payload={"text": "巡查"})
            notes.append(n / (time.perf_counter() - start))
            start = time.perf_counter()
            report = engine.migrate(PLAN, actor=Actor.system())
            rates.append(n / (time.perf_counter() - start))
            assert report.moved == n, report
        finally:
            drop(store)
    return statistics.median(rates), statistics.median(notes)


def bench_dry_run(make: Callable[[], Store], n: int) -> tuple[float, float]:
    """(seconds for the dry run over ``n`` cases, seconds to fill them)."""
    store = make()
    try:
        start = time.perf_counter()
        fill(store, n, "d")
        filled = time.perf_counter() - start
        engine = engine_on(store)
        start = time.perf_counter()
        report = engine.plan_migration(PLAN)
        took = time.perf_counter() - start
        assert report.moved == n, report
        return took, filled
    finally:
        drop(store)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat")
    parser.add_argument("--no-pg", action="store_true", help="skip PostgreSQL")
    parser.add_argument("--cases", type=int, default=None, help="cases migrated per run")
    parser.add_argument("--dry-cases", type=int, default=None, help="cases in the dry run")
    args = parser.parse_args(argv)
    n = args.cases or (300 if args.quick else 5000)
    dry = args.dry_cases or (2000 if args.quick else 100_000)
    repeats = 1 if args.quick else 3
    pg = not args.no_pg
    if pg:
        try:
            import sqlalchemy as sa

            probe = sa.create_engine(DEFAULT_PG_URL, connect_args={"connect_timeout": 3})
            with probe.connect():
                pass
            probe.dispose()
        except Exception as exc:
            log(f"PostgreSQL not reachable ({type(exc).__name__}); skipping it")
            pg = False
    rows: list[tuple[str, str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in stores(pg, Path(tmp)).items():
            log(f"{name}: migrating {n:,} cases x {repeats}")
            rate, note = bench_migrate(make, n, repeats)
            rows.append((f"migrate {n:,} cases", name, f"{rate:,.0f} cases/s",
                         f"{rate / note:.2f} x a note step ({note:,.0f}/s)"))
            log(f"{name}: dry run over {dry:,} cases")
            took, filled = bench_dry_run(make, dry)
            rows.append((f"dry run over {dry:,} cases", name, f"{took:.2f} s",
                         f"{dry / took:,.0f} cases/s (fill took {filled:.1f} s)"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    header = ("what", "store", "figure", "against the baseline")
    widths = [max(w, len(h)) for w, h in zip(widths, header, strict=True)]
    for row in (header, tuple("-" * w for w in widths), *rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
