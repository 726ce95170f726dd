"""Merkle log and signed-note benchmark: what the pure layer of signed checkpoints costs.

Prints one table:

- appending 1,000,000 leaf hashes to a `MemoryNodes` in batches of 10,000
  (every perfect-subtree node computed and stored), beside the floor: a bare
  hashlib loop computing the same number of SHA-256 hashes of the same sizes;
- the root of the 1,000,000-leaf tree from the stored nodes, and streamed
  from the leaves with `merkle.root`;
- inclusion and consistency proofs over that tree: generation (from the
  stored nodes) and verification, per proof;
- Ed25519 checkpoints: `sign_checkpoint` and `verify_checkpoint`, beside the
  bare `cryptography` sign / verify they wrap.

Every figure is the median of several repeats. Nothing is asserted about
time: the numbers depend on the machine.

    python benchmarks/log_bench.py            # full run, about a minute
    python benchmarks/log_bench.py --quick    # 10,000 leaves, a few seconds (CI)
    python benchmarks/log_bench.py --no-pure --events 1000000   # the stores at 1M events

The SQLite and PostgreSQL part is in `_log_store_bench.py` (checkpoint of
10,000 new events, full and incremental `verify_log` against their floors,
the size of a proof bundle).
"""

from __future__ import annotations

import argparse
import hashlib
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from gridflow.log import merkle
from gridflow.log.note import (
    Checkpoint,
    generate_key,
    sign_checkpoint,
    signer_from_key,
    verifier_from_key,
    verify_checkpoint,
)


def median_time(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeats`` runs."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def per_call_us(fn: Callable[[], Any], calls: int, repeats: int) -> float:
    """Median over ``repeats`` of the mean µs per call of ``calls`` calls."""
    def batch() -> None:
        for _ in range(calls):
            fn()
    return median_time(batch, repeats) / calls * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000 leaves, 1 repeat")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--events", type=int, default=None,
                        help="events in the SQLite / PostgreSQL stores (default 100,000; "
                             "2,000 with --quick); 1,000,000 is the issue's figure")
    parser.add_argument("--stores", default="sqlite,postgres",
                        help="comma-separated: sqlite, postgres ('' for none)")
    parser.add_argument("--no-pure", action="store_true",
                        help="skip the pure Merkle / signed-note measures")
    args = parser.parse_args(argv)
    n = 10_000 if args.quick else 1_000_000
    batch = 1_000 if args.quick else 10_000
    repeats = args.repeats or (1 if args.quick else 3)
    calls = 200 if args.quick else 2_000
    rows: list[tuple[str, str]] = []
    if not args.no_pure:
        pure(rows, n, batch, repeats, calls)
    kinds = [k for k in args.stores.split(",") if k]
    if kinds:
        from _log_store_bench import run

        events = args.events or (2_000 if args.quick else 100_000)
        rows.extend(run(events, min(10_000, events), kinds))
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  result")
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    return 0


def pure(rows: list[tuple[str, str]], n: int, batch: int, repeats: int, calls: int) -> None:
    """The pure layer: Merkle appends, roots and proofs; Ed25519 checkpoints."""
    print(f"hashing {n:,} leaves (not timed)...", file=sys.stderr)
    leaves = [merkle.leaf_hash(i.to_bytes(8, "big")) for i in range(n)]

    def append_all() -> merkle.MemoryNodes:
        nodes = merkle.MemoryNodes()
        for start in range(0, n, batch):
            nodes.append(leaves[start : start + batch])
        return nodes

    interior = n - 1  # a tree of n leaves has n - 1 interior perfect-subtree nodes at most

    def floor() -> None:
        sha = hashlib.sha256
        h = leaves[0]
        for i in range(interior):
            h = sha(b"\x01" + h + leaves[i]).digest()

    print("appending...", file=sys.stderr)
    t_append = median_time(append_all, repeats)
    t_floor = median_time(floor, repeats)
    nodes = append_all()
    rows.append((f"append {n:,} leaf hashes, batches of {batch:,} (MemoryNodes)",
                 f"{t_append:.2f} s = {t_append / n * 1e6:.2f} µs/leaf"))
    rows.append((f"  floor: {interior:,} bare hashlib SHA-256(0x01||l||r)",
                 f"{t_floor:.2f} s (append = {t_append / t_floor:.1f} ×)"))
    rows.append(("  nodes stored", f"{nodes.node_count:,}"))
    rows.append((f"root of {n:,} leaves from stored nodes",
                 f"{per_call_us(nodes.root, calls, repeats):.1f} µs"))
    rows.append((f"root of {n:,} leaves streamed (merkle.root)",
                 f"{median_time(lambda: merkle.root(leaves), repeats):.2f} s"))

    rng = random.Random(11)
    indexes = [rng.randrange(n) for _ in range(calls)]
    olds = [rng.randrange(1, n) for _ in range(calls)]
    head = nodes.root()
    it = iter(range(10**12))

    def gen_inclusion() -> None:
        i = indexes[next(it) % calls]
        merkle.inclusion_proof(i, n, nodes)

    proofs = [merkle.inclusion_proof(i, n, nodes) for i in indexes]

    def check_inclusion() -> None:
        k = next(it) % calls
        merkle.verify_inclusion(indexes[k], n, leaves[indexes[k]], proofs[k], head)

    def gen_consistency() -> None:
        merkle.consistency_proof(olds[next(it) % calls], n, nodes)

    cproofs = [merkle.consistency_proof(m, n, nodes) for m in olds]
    old_roots = [merkle.root_from_nodes(m, nodes) for m in olds]

    def check_consistency() -> None:
        k = next(it) % calls
        merkle.verify_consistency(olds[k], n, old_roots[k], head, cproofs[k])

    print("proofs...", file=sys.stderr)
    rows.append((f"inclusion proof, generate (tree of {n:,})",
                 f"{per_call_us(gen_inclusion, calls, repeats):.1f} µs "
                 f"({statistics.mean(map(len, proofs)):.1f} hashes)"))
    rows.append(("inclusion proof, verify",
                 f"{per_call_us(check_inclusion, calls, repeats):.1f} µs"))
    rows.append(("consistency proof, generate",
                 f"{per_call_us(gen_consistency, calls, repeats):.1f} µs "
                 f"({statistics.mean(map(len, cproofs)):.1f} hashes)"))
    rows.append(("consistency proof, verify",
                 f"{per_call_us(check_consistency, calls, repeats):.1f} µs"))

    print("signing...", file=sys.stderr)
    skey, vkey = generate_key("bench.example/gridflow")
    signer, verifier = signer_from_key(skey), verifier_from_key(vkey)
    cp = Checkpoint("bench.example/gridflow", n, head)
    signed = sign_checkpoint(cp, signer)
    msg = cp.to_text().encode()
    raw_sig = signer.sign(msg)
    from cryptography.hazmat.primitives.asymmetric import ed25519

    raw_key = ed25519.Ed25519PrivateKey.generate()
    raw_pub = raw_key.public_key()
    raw_key_sig = raw_key.sign(msg)
    rows.append(("sign_checkpoint (Ed25519)",
                 f"{per_call_us(lambda: sign_checkpoint(cp, signer), calls, repeats):.1f} µs"))
    rows.append(("  bare cryptography Ed25519 sign",
                 f"{per_call_us(lambda: raw_key.sign(msg), calls, repeats):.1f} µs"))
    t_verify = per_call_us(lambda: verify_checkpoint(signed, verifier), calls, repeats)
    rows.append(("verify_checkpoint (open note + parse)", f"{t_verify:.1f} µs"))
    rows.append(("  bare cryptography Ed25519 verify",
                 f"{per_call_us(lambda: raw_pub.verify(raw_key_sig, msg), calls, repeats):.1f} µs"))
    assert verifier.verify(msg, raw_sig)
    rows.append(("signed checkpoint size", f"{len(signed.encode())} bytes"))


if __name__ == "__main__":
    raise SystemExit(main())
