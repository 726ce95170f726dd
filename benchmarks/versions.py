"""Before and after: the step and `verify` of this checkout against an earlier
gridflow release, measured in one run, interleaved round by round.

``python benchmarks/versions.py [--base 86fae08] [--rounds 7]`` extracts the
base commit's ``src/`` with ``git archive`` into a temporary directory (it needs
the repository's history: run it from a clone, not an unpacked sdist) and runs
the same timing script under each version in its own process, alternating the
two every round so a noisy machine slows both alike. One table is printed:
the median of the rounds for each version and the ratio after / before.

Measured (MemoryStore, no plugins, a fixed clock):

- ``fire``: the grid case lifecycle from ``reported`` to ``archived`` (7 fires
  per case, 200 cases), µs per fire;
- ``verify``: one case with 10 events and one with 1,000 events (notes), µs
  per call, and per event.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Runs under either version: it only uses the API both have.
PROBE = r'''
import gc, json, sys, time
import gridflow
from gridflow import Actor, Engine, FixedClock

grids = getattr(gridflow, "ALL_GRIDS", None)  # 0.2: scope fails closed
def actor(name, role):
    return Actor(name, [role], grids) if grids is not None else Actor(name, [role])

R, S, D, V = (actor("r", "resident"), actor("s", "coordinator"), actor("d", "department"),
              actor("v", "volunteer"))
LIFE = [("triage", S, {"category": "违规堆物", "priority": "normal"}),
        ("dispatch", S, {"departments": ["社区管理办", "清运单位"], "plan": "联合整治"}),
        ("report_done", D, {"department": "社区管理办", "result": "已清理"}),
        ("report_done", D, {"department": "清运单位", "result": "已清运"}),
        ("close", S, None), ("start_revisit", V, None), ("confirm", V, {"observation": "未反弹"})]
DATA = {"title": "弄堂违规堆物", "source": "visit"}

def fires(n):
    engine = Engine(clock=FixedClock(), entry_points=False)
    ids = [engine.open("grid_case", actor=R, data=DATA, grid="g").id for _ in range(n)]
    gc.collect(); gc.disable()
    t = time.perf_counter()
    for cid in ids:
        for trigger, who, payload in LIFE:
            engine.fire(cid, trigger, actor=who, payload=payload)
    t = time.perf_counter() - t
    gc.enable()
    return t / (n * len(LIFE))

def verify(events, calls):
    engine = Engine(clock=FixedClock(), entry_points=False)
    cid = engine.open("grid_case", actor=R, data=DATA, grid="g").id
    for i in range(events - 1):
        engine.fire(cid, "note", actor=S, payload={"text": f"第{i}次走访"})
    engine.verify(cid)
    gc.collect(); gc.disable()
    t = time.perf_counter()
    for _ in range(calls):
        engine.verify(cid)
    t = time.perf_counter() - t
    gc.enable()
    return t / calls

fires(20)  # warm up
print(json.dumps({"version": gridflow.__version__, "fire": fires(200),
                  "verify10": verify(10, 400), "verify1000": verify(1000, 8)}))
'''


def extract(rev: str, into: Path) -> Path:
    data = subprocess.run(["git", "archive", rev, "src"], cwd=ROOT, check=True,
                          capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def run(src: Path) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", PROBE], env={"PYTHONPATH": str(src),
                                                            "PYTHONHASHSEED": "0"},
                         check=True, capture_output=True, text=True).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="86fae08", help="the commit to compare with")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sources = {"before": extract(args.base, Path(tmp)), "after": ROOT / "src"}
        found: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
        for n in range(args.rounds):
            for name in (("before", "after") if n % 2 == 0 else ("after", "before")):
                found[name].append(run(sources[name]))
                print(f"round {n + 1}/{args.rounds}: {name} done", file=sys.stderr)
    versions = {k: v[0]["version"] for k, v in found.items()}
    print(f"before: gridflow {versions['before']} ({args.base}); after: gridflow "
          f"{versions['after']} (this checkout); median of {args.rounds} interleaved rounds")
    print(f"{'measurement':<38}{'before':>12}{'after':>12}{'after/before':>14}")
    rows = [("fire, grid case lifecycle (µs/fire)", "fire", 1),
            ("verify, 10 events (µs)", "verify10", 1),
            ("verify, 1,000 events (µs)", "verify1000", 1),
            ("verify, 1,000 events (µs/event)", "verify1000", 1000)]
    for label, key, per in rows:
        before = statistics.median(r[key] for r in found["before"]) * 1e6 / per
        after = statistics.median(r[key] for r in found["after"]) * 1e6 / per
        print(f"{label:<38}{before:>12.2f}{after:>12.2f}{after / before:>13.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
