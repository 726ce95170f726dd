"""Personal-data benchmark: steps with sealed personal fields vs without, and erasure.

Measures, as the median of several interleaved repeats on the same store kind:

- ``fire`` of ``note`` steps on grid cases whose reporter has a name, phone, ID
  number and e-mail, each note carrying a ``contact`` (sealed), against the
  same steps on cases and notes without personal fields (the baseline,
  target: at most 1.3x);
- ``open`` with and without the reporter block;
- ``erase`` of one data subject who appears in 100 cases.

Nothing is asserted about time; read the ratios, not the absolute figures.

    python benchmarks/personal_bench.py            # SQLite file and memory, 200 steps
    python benchmarks/personal_bench.py --quick    # a smoke run
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "src") not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT / "src"))

import gridflow  # noqa: E402
from gridflow import Actor, Engine, FixedClock, MemoryStore  # noqa: E402

GRID = "华三-1"
RESIDENT = Actor("r-1", ["resident"], [GRID])
COORDINATOR = Actor("s-1", ["coordinator"], [GRID])
SYSTEM = Actor.system()


def _engine(kind: str, tmp: Path, tag: str) -> Engine:
    if kind == "memory":
        store: Any = MemoryStore()
    else:
        store = gridflow.SQLStore(f"sqlite:///{tmp / f'{tag}.db'}", synchronous="NORMAL")
        store.create_schema()
    return Engine(store=store, clock=FixedClock(), entry_points=False,
                  keyring=gridflow.Keyring.generate())


def _data(personal: bool, n: int, subject: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"title": f"堆物 {n}", "source": "resident"}
    if personal:
        data["reporter"] = {"subject": subject or f"p-{n}", "name": "王小明",
                            "phone": "13812345678", "id_number": "310104199001011234",
                            "email": "wang@example.com"}
    return data


def _timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench(kind: str, steps: int, repeats: int) -> dict[str, float]:
    out: dict[str, list[float]] = {"open_plain": [], "open_personal": [], "fire_plain": [],
                                   "fire_personal": []}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for r in range(repeats):
            for personal in (False, True):
                engine = _engine(kind, tmp, f"{kind}-{r}-{personal}")
                tag = "personal" if personal else "plain"
                ids: list[str] = []

                def opens(engine: Engine = engine, personal: bool = personal,
                          ids: list[str] = ids) -> None:
                    for n in range(steps):
                        ids.append(engine.open("grid_case", version=1, actor=RESIDENT, grid=GRID,
                                               data=_data(personal, n)).id)

                def fires(engine: Engine = engine, personal: bool = personal,
                          ids: list[str] = ids) -> None:
                    for case_id in ids:
                        payload: dict[str, Any] = {"text": "已上门"}
                        if personal:
                            payload["contact"] = "微信 wxid_12345"
                        engine.fire(case_id, "note", actor=COORDINATOR, payload=payload)

                out[f"open_{tag}"].append(_timed(opens) / steps)
                out[f"fire_{tag}"].append(_timed(fires) / steps)
                close = getattr(engine.store, "close", None)
                if close is not None:
                    close()
        # Erasure of one subject who appears in 100 cases.
        erase_times = []
        for r in range(repeats):
            engine = _engine(kind, tmp, f"{kind}-erase-{r}")
            for n in range(100):
                engine.open("grid_case", version=1, actor=RESIDENT, grid=GRID,
                            data=_data(True, n, subject="p-many"))
            erase_times.append(_timed(lambda engine=engine: engine.erase(
                "p-many", actor=SYSTEM, reason="bench")))
            close = getattr(engine.store, "close", None)
            if close is not None:
                close()
    result = {k: statistics.median(v) for k, v in out.items()}
    result["erase_100"] = statistics.median(erase_times)
    return result


def paired_fire(make_store: Callable[[str], Any], cases: int, notes: int,
                repeats: int) -> dict[str, list[float]]:
    """Seconds per step, each repeat on two fresh stores made by ``make_store(tag)``:
    ``open`` with and without the reporter block, and ``fire`` of ``note`` steps
    after each case's first (whose ``contact`` gives the case's own subject its
    key): with a sealed ``contact`` on cases whose reporter is sealed, against the
    same notes without either. The two stores take turns every batch of ten steps
    (which goes first alternates), so a slow drift of the machine (another job, the
    disk's flush) falls on both alike."""
    out: dict[str, list[float]] = {"open_plain": [], "open_personal": [],
                                   "fire_plain": [], "fire_personal": []}
    batch = 10
    for r in range(repeats):
        sides: dict[bool, tuple[Engine, dict[str, Any], list[str], Any]] = {}
        for personal in (False, True):
            store = make_store(f"{r}-{int(personal)}")
            engine = Engine(store=store, clock=FixedClock(), entry_points=False,
                            keyring=gridflow.Keyring.generate())
            payload: dict[str, Any] = {"text": "已上门"}
            if personal:
                payload["contact"] = "微信 wxid_12345"
            sides[personal] = (engine, payload, [], store)
        opened = {False: 0.0, True: 0.0}
        for start in range(0, cases, batch):
            for personal in ((False, True) if start // batch % 2 == 0 else (True, False)):
                engine, _, ids, _ = sides[personal]
                began = time.perf_counter()
                ids.extend(engine.open("grid_case", version=1, actor=RESIDENT, grid=GRID,
                                       data=_data(personal, n)).id
                           for n in range(start, min(start + batch, cases)))
                opened[personal] += time.perf_counter() - began
        for personal in (False, True):
            engine, payload, ids, _ = sides[personal]
            for case_id in ids:
                engine.fire(case_id, "note", actor=COORDINATOR, payload=payload)
        fired = {False: 0.0, True: 0.0}
        steps = [case_id for _ in range(notes) for case_id in range(cases)]
        for turn, start in enumerate(range(0, len(steps), batch)):
            for personal in ((False, True) if turn % 2 == 0 else (True, False)):
                engine, payload, ids, _ = sides[personal]
                fire = engine.fire
                chunk = [ids[i] for i in steps[start:start + batch]]
                began = time.perf_counter()
                for case_id in chunk:
                    fire(case_id, "note", actor=COORDINATOR, payload=payload)
                fired[personal] += time.perf_counter() - began
        for personal, tag in ((False, "plain"), (True, "personal")):
            out[f"open_{tag}"].append(opened[personal] / cases)
            out[f"fire_{tag}"].append(fired[personal] / (cases * notes))
            close = getattr(sides[personal][3], "close", None)
            if close is not None:
                close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat")
    args = parser.parse_args(argv)
    steps, repeats = (20, 1) if args.quick else (args.steps, args.repeats)
    print(f"{'store':8} {'step':6} {'plain ms':>9} {'personal ms':>12} {'ratio':>6}")
    for kind in ("memory", "sqlite"):
        r = bench(kind, steps, repeats)
        for step in ("open", "fire"):
            plain, personal = r[f"{step}_plain"] * 1000, r[f"{step}_personal"] * 1000
            print(f"{kind:8} {step:6} {plain:9.3f} {personal:12.3f} {personal / plain:6.2f}x")
        print(f"{kind:8} erase of a subject in 100 cases: {r['erase_100'] * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
