"""Calendar benchmark: the cost of counting a deadline in working hours.

Prints one table: the time per ``WorkingHours.add`` for 30 working minutes (签收,
urgent), 2 working hours (签收) and 15 working days' worth of working time
(``15 * day_length``, 15 × 7 h), each from starts spread over a year of Beijing
working and non-working time (so lunch, nights, weekends and holidays are all
crossed), with the days' sessions cached (``warm``, a long-running service) and
on a fresh calendar for every call (``cold``, the first count of a day). For
comparison: ``WorkingDays.add`` of 15 days and ``WorkingHours.between`` over a
month. Every figure is the median of several repeats; nothing is asserted about
time (the numbers depend on the machine).

    python benchmarks/calendar_bench.py            # about 20 seconds
    python benchmarks/calendar_bench.py --quick    # smoke run, a second (CI)
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from gridflow import WorkingDays, WorkingHours

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _starts(n: int) -> list[datetime]:
    """``n`` starts over 2025 (to the minute), the same on every run."""
    rng = random.Random(14)
    return [T0 + timedelta(minutes=rng.randrange(365 * 24 * 60)) for _ in range(n)]


def _per_call(fn: Callable[[datetime], object], starts: list[datetime],
              repeats: int) -> float:
    """Median seconds per call of ``fn`` over ``starts``."""
    fn(starts[0])
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        for start in starts:
            fn(start)
        times.append((time.perf_counter() - began) / len(starts))
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat")
    args = parser.parse_args(argv)
    n, repeats = (500, 1) if args.quick else (20_000, 5)
    starts = _starts(n)
    days = WorkingDays.china()
    hours = WorkingHours(days)
    week = 15 * hours.day_length

    def warm(delta: timedelta) -> Callable[[datetime], object]:
        return lambda start: hours.add(start, delta)

    def cold(delta: timedelta) -> Callable[[datetime], object]:
        return lambda start: WorkingHours(days).add(start, delta)

    rows: list[tuple[str, Callable[[datetime], object], list[datetime]]] = []
    for label, delta in (("30 working minutes", timedelta(minutes=30)),
                         ("2 working hours", timedelta(hours=2)),
                         ("15 x 7 working hours", week)):
        rows.append((f"WorkingHours.add {label}, warm", warm(delta), starts))
    cold_starts = starts[: max(n // 20, 50)]
    for label, delta in (("2 working hours", timedelta(hours=2)),
                         ("15 x 7 working hours", week)):
        rows.append((f"WorkingHours.add {label}, cold", cold(delta), cold_starts))
    rows.append(("WorkingDays.add 15 days", lambda s: days.add(s, timedelta(days=15)), starts))
    rows.append(("WorkingHours.between over 30 days",
                 lambda s: hours.between(s, s + timedelta(days=30)), starts))

    width = max(len(name) for name, _, _ in rows)
    print(f"{'measure':<{width}}  µs/call")
    for name, fn, sample in rows:
        print(f"{name:<{width}}  {_per_call(fn, sample, repeats) * 1e6:7.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
