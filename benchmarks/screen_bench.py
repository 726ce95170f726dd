"""Screening benchmark: `gridflow.personal.Screen` over 10,000 export strings × 100 values.

The strings look like what Open311 and CSV exports carry (titles, categories,
status notes, addresses, timestamps), 1 in 20 with a planted personal value
in another spelling (full-width, spaced, upper-case). It times, as the
median of several repeats:

- building the screen (normalising 100 values, compiling one trie regex);
- ``clean_all`` of the 10,000 strings, with and without the pattern
  detectors, on plain text and on text needing full normalisation;
- the naive floor: normalise each string and test ``value in text`` for
  each of the 100 values (detection only: it neither maps spans back nor
  masks anything).

Nothing is asserted about time; the figures depend on the machine.

    python benchmarks/screen_bench.py            # 10,000 strings, 100 values
    python benchmarks/screen_bench.py --strings 1000 --values 1000
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "src") not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT / "src"))

from gridflow.personal.screen import Screen, normalize  # noqa: E402

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林谢"
GIVEN = "小明伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛超霞平刚桂"
PHRASES = ["弄堂违规堆物", "楼道噪音扰民", "已派单至居委会", "网格员上门核实", "处理完毕，回访满意",
           "长宁支路324弄", "2026-10-01 08:30", "按期结案", "华三-1", "违规搭建", "漏水",
           "共3件", "派至城管中队", "需要二次上门"]


def values(rng: random.Random, n: int) -> list[str]:
    out: list[str] = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            out.append(rng.choice(SURNAMES) + "".join(rng.choices(GIVEN, k=rng.choice((1, 2)))))
        elif kind == 1:
            out.append(f"1{rng.choice('3456789')}{rng.randrange(10**9):09d}")
        elif kind == 2:
            region, year, month = rng.randrange(110000, 659999), rng.randrange(50, 99), \
                rng.randrange(1, 9)
            out.append(f"{region}19{year}0{month}1{rng.randrange(0, 9)}"
                       f"{rng.randrange(1000):03d}{rng.choice('0123456789X')}")
        else:
            out.append(f"user{i}.x@example.com")
    return out


def respell(value: str, rng: random.Random) -> str:
    out = []
    for char in value:
        if rng.random() < 0.3 and "!" <= char <= "~":
            char = chr(ord(char) + 0xFEE0)
        out.append(char.upper() if rng.random() < 0.3 else char)
        if rng.random() < 0.2:
            out.append(" ")
    return "".join(out)


def strings(rng: random.Random, n: int, known: list[str], wide: bool) -> list[str]:
    out = []
    for i in range(n):
        text = "，".join(rng.sample(PHRASES, 3))
        if i % 20 == 0:
            text += f"，联系 {respell(rng.choice(known), rng)}"
        if wide:
            text = text.replace("3", "３").replace("-", "－")  # full-width: the slow path
        out.append(text)
    return out


def timed(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strings", type=int, default=10_000)
    parser.add_argument("--values", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = random.Random(12)
    known = values(rng, args.values)
    plain = strings(rng, args.strings, known, wide=False)
    wide = strings(rng, args.strings, known, wide=True)
    screen = Screen(known)
    no_patterns = Screen(known, patterns=False)
    normalised = [normalize(v) for v in known]

    def naive() -> int:
        found = 0
        for text in plain:
            compact = normalize(text)
            found += any(v in compact for v in normalised)
        return found

    hits = screen.clean_all(plain)[1]
    rows = [
        ("build Screen (per value)", timed(lambda: Screen(known), args.repeats), len(known)),
        ("clean_all, plain text", timed(lambda: screen.clean_all(plain), args.repeats),
         len(plain)),
        ("clean_all, plain text, patterns off",
         timed(lambda: no_patterns.clean_all(plain), args.repeats), len(plain)),
        ("clean_all, full-width text (slow path)",
         timed(lambda: screen.clean_all(wide), args.repeats), len(wide)),
        ("naive floor: normalize + `v in text` per value", timed(naive, args.repeats),
         len(plain)),
    ]
    print(f"{args.strings} strings x {args.values} values; {hits} hits in the plain set; "
          f"median of {args.repeats}")
    print(f"{'measure':<50} {'total ms':>10} {'us each':>10}")
    for name, seconds, per in rows:
        print(f"{name:<50} {seconds * 1e3:>10.1f} {seconds * 1e6 / per:>10.2f}")


if __name__ == "__main__":
    main()
