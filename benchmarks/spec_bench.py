"""Spec loading: what hostile or huge specs cost to refuse, and what a big valid one
costs to build and compile. ``python benchmarks/spec_bench.py`` prints one table
(median of 5 repeats; ``--quick``: one repeat). Each row is wall time and the peak of
memory traced by ``tracemalloc`` (which slows the run: read the ratios).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT / "src"))

from gridflow import SpecError, WorkflowSpec  # noqa: E402
from gridflow.machine import compile_workflow  # noqa: E402
from gridflow.workflows import GRID_CASE  # noqa: E402

BOMB = "".join(
    [f"{a}: &{a} [" + ",".join([f"*{p}" if p else '"lol"'] * 9) + "]\n"
     for p, a in zip(["", *"abcdefgh"], "abcdefghi", strict=True)]
) + "name: bomb\nlabels: {en: *i}\n"


def chain(n: int, stars: int) -> dict[str, Any]:
    states = [{"name": f"s{i}", "deadline": "P1D", "on_breach": "go"} for i in range(n)]
    transitions = [{"trigger": "go", "source": f"s{i}", "dest": f"s{i + 1}" if i + 1 < n
                    else "end", "roles": ["system"]} for i in range(n)]
    transitions += [{"trigger": f"star{i}", "source": "*", "dest": None} for i in range(stars)]
    return {"name": "chain", "version": 1, "initial": "s0",
            "states": [*states, {"name": "end", "terminal": True}], "transitions": transitions}


def bad(n: int) -> dict[str, Any]:
    return {"name": "bad", "version": 1, "initial": "s0",
            "states": [{"name": f"s{i}"} for i in range(n)],
            "transitions": [{"trigger": f"t{i}", "source": f"s{i}", "dest": f"x{i}"}
                            for i in range(n)]}


def measure(run: Callable[[], object], repeats: int) -> tuple[float, float]:
    times, peaks = [], []
    for _ in range(repeats):
        tracemalloc.start()
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
        peaks.append(tracemalloc.get_traced_memory()[1] / 1e6)
        tracemalloc.stop()
    return statistics.median(times), statistics.median(peaks)


def refused(run: Callable[[], object]) -> Callable[[], None]:
    def go() -> None:
        try:
            run()
        except SpecError as exc:
            str(exc)
        else:
            raise AssertionError("expected a SpecError")

    return go


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    repeats = 1 if parser.parse_args().quick else 5
    tmp = Path(tempfile.mkdtemp())
    files = {"bomb.yaml": BOMB, "deep.json": "[" * 100_000 + "]" * 100_000,
             "deep.yaml": "x: " + "[" * 100_000 + "]" * 100_000,
             "grid_case.json": json.dumps(GRID_CASE.to_dict())}
    for name, text in files.items():
        (tmp / name).write_text(text, encoding="utf-8")
    big = WorkflowSpec.from_dict(chain(2_000, 20))
    rows = [
        (f"alias bomb (YAML, {len(BOMB.encode())} bytes) refused",
         refused(lambda: WorkflowSpec.load(tmp / "bomb.yaml"))),
        ("100,000-deep JSON refused", refused(lambda: WorkflowSpec.load(tmp / "deep.json"))),
        ("100,000-deep YAML refused", refused(lambda: WorkflowSpec.load(tmp / "deep.yaml"))),
        ("10,000 bad transitions refused (message built)", refused(
            lambda: WorkflowSpec.from_dict(bad(10_000)))),
        ("1,000 states x 1,000 '*' transitions refused", refused(
            lambda: WorkflowSpec.from_dict(chain(1_000, 1_000)))),
        ("2,000 states x 20 '*' transitions: from_dict", lambda: WorkflowSpec.from_dict(
            chain(2_000, 20))),
        ("2,000 states x 20 '*' transitions: compile", lambda: compile_workflow(big, {}, {})),
        ("grid_case.json: load", lambda: WorkflowSpec.load(tmp / "grid_case.json")),
    ]
    print(f"{'case':<52} {'median s':>10} {'peak MB':>9}")
    for label, run in rows:
        seconds, megabytes = measure(run, repeats)
        print(f"{label:<52} {seconds:>10.4f} {megabytes:>9.1f}")


if __name__ == "__main__":
    main()
