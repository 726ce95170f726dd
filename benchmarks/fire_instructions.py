"""Instructions per `Engine.fire`, for callgrind (wall time on a loaded box is noise).

Run with N=0 and N=2000 and take (Ir(N) - Ir(0)) / fires from callgrind's
``Collected :`` line (the script prints how many fires it made)::

    PYTHONHASHSEED=0 PYTHONPATH=src valgrind --tool=callgrind \\
        --callgrind-out-file=/dev/null python benchmarks/fire_instructions.py note 2000

``note``: N ``note`` steps on one grid case (after a warm-up both runs share).
``life``: the lifecycle of row 1a on N // 7 cases (300 are opened in both runs).
"""

from __future__ import annotations

import random
import sys
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import COORDINATOR, LIFECYCLE, STEPS, new_engine, open_cases  # noqa: E402


def main() -> None:
    mode, n = sys.argv[1], int(sys.argv[2])
    # The same case ids every run: random ones move dict and set probes by a few
    # hundred instructions a step, as much as the changes being measured.
    rng = random.Random(7)
    uuid.uuid4 = lambda: uuid.UUID(int=rng.getrandbits(128), version=4)
    engine = new_engine()
    fire = engine.fire
    if mode == "note":
        cid = open_cases(engine, 1)[0]
        payload = {"text": "到场"}
        for _ in range(20):  # warm-up: first-call costs land in both runs
            fire(cid, "note", actor=COORDINATOR, payload=payload)
        for _ in range(n):
            fire(cid, "note", actor=COORDINATOR, payload=payload)
        fired = n
    elif mode == "life":
        ids = open_cases(engine, 301)
        for trigger, actor, payload in LIFECYCLE:  # warm-up
            fire(ids[0], trigger, actor=actor, payload=payload)
        cases = ids[1:1 + n // STEPS]
        for cid in cases:
            for trigger, actor, payload in LIFECYCLE:
                fire(cid, trigger, actor=actor, payload=payload)
        fired = len(cases) * STEPS
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print(f"fires {fired}", file=sys.stderr)


if __name__ == "__main__":
    main()
