"""gridflow.log.merkle: RFC 9162 hashing, proofs from compact node storage, appends.

The reference vectors (tests/vectors/, from transparency-dev/merkle) pin the
format; a naive implementation of the RFC's recursive definitions, written
here independently of the module, pins every proof and root for random trees.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gridflow
from gridflow.log import merkle
from gridflow.log.merkle import (
    EMPTY_ROOT,
    CompactRange,
    MemoryNodes,
    Node,
    append,
    consistency_plan,
    consistency_proof,
    inclusion_plan,
    inclusion_proof,
    leaf_hash,
    node_hash,
    range_nodes,
    root,
    root_from_nodes,
    verify_consistency,
    verify_inclusion,
)

VECTORS = Path(__file__).parent / "vectors" / "rfc6962"


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value or "")


def _load(kind: str) -> list[tuple[str, dict[str, Any]]]:
    files = sorted((VECTORS / kind).glob("*/*.json"))
    return [(f"{f.parent.name}/{f.name}", json.loads(f.read_text())) for f in files]


INCLUSION = _load("inclusion")
CONSISTENCY = _load("consistency")
REFERENCE = json.loads((VECTORS / "reference-tree.json").read_text())
REFERENCE_LEAVES = [leaf_hash(bytes.fromhex(h)) for h in REFERENCE["leaf_inputs_hex"]]
REFERENCE_ROOTS = [bytes.fromhex(h) for h in REFERENCE["root_hashes_hex_by_size"]]


# --- a naive RFC 9162 section 2.1 implementation, for comparison -------------------


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def naive_mth(leaves: Sequence[bytes]) -> bytes:
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = _k(len(leaves))
    return hashlib.sha256(b"\x01" + naive_mth(leaves[:k]) + naive_mth(leaves[k:])).digest()


def naive_path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    if len(leaves) == 1:
        return []
    k = _k(len(leaves))
    if m < k:
        return [*naive_path(m, leaves[:k]), naive_mth(leaves[k:])]
    return [*naive_path(m - k, leaves[k:]), naive_mth(leaves[:k])]


def naive_subproof(m: int, leaves: Sequence[bytes], complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [naive_mth(leaves)]
    k = _k(n)
    if m <= k:
        return [*naive_subproof(m, leaves[:k], complete), naive_mth(leaves[k:])]
    return [*naive_subproof(m - k, leaves[k:], False), naive_mth(leaves[:k])]


def naive_consistency(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    if m in (0, len(leaves)):
        return []
    return naive_subproof(m, leaves, True)


def leaves_of(n: int, salt: int = 0) -> list[bytes]:
    return [leaf_hash(f"{salt}:{i}".encode()) for i in range(n)]


class CountingNodes:
    """A NodeReader that counts reads (to check O(log n))."""

    def __init__(self, inner: MemoryNodes) -> None:
        self.inner = inner
        self.reads = 0

    def get(self, level: int, index: int) -> bytes:
        self.reads += 1
        return self.inner.get(level, index)


# --- reference vectors -------------------------------------------------------------


def test_the_vector_copies_are_complete() -> None:
    # A lost file would silently shrink the parametrized tests below.
    assert len(INCLUSION) == 86
    assert len(CONSISTENCY) == 84
    assert sum(not v["wantErr"] for _, v in INCLUSION) == 6
    assert sum(not v["wantErr"] for _, v in CONSISTENCY) == 5


@pytest.mark.parametrize(("name", "vector"), INCLUSION, ids=[n for n, _ in INCLUSION])
def test_inclusion_vectors(name: str, vector: dict[str, Any]) -> None:
    args = (vector["leafIdx"], vector["treeSize"], _b64(vector["leafHash"]),
            [_b64(p) for p in vector["proof"] or []], _b64(vector["root"]))
    if vector["wantErr"]:
        with pytest.raises(gridflow.ProofError):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)


@pytest.mark.parametrize(("name", "vector"), CONSISTENCY, ids=[n for n, _ in CONSISTENCY])
def test_consistency_vectors(name: str, vector: dict[str, Any]) -> None:
    args = (vector["size1"], vector["size2"], _b64(vector["root1"]), _b64(vector["root2"]),
            [_b64(p) for p in vector["proof"] or []])
    if vector["wantErr"]:
        with pytest.raises(gridflow.ProofError):
            verify_consistency(*args)
    else:
        verify_consistency(*args)


def test_reference_roots_are_reproduced() -> None:
    nodes = MemoryNodes()
    assert root([]) == REFERENCE_ROOTS[0] == EMPTY_ROOT
    assert nodes.root() == REFERENCE_ROOTS[0]
    for n in range(1, len(REFERENCE_LEAVES) + 1):
        assert root(REFERENCE_LEAVES[:n]) == REFERENCE_ROOTS[n]
        assert nodes.append(REFERENCE_LEAVES[n - 1 : n]) == REFERENCE_ROOTS[n]
    for n in range(len(REFERENCE_ROOTS)):
        assert root_from_nodes(n, nodes) == REFERENCE_ROOTS[n]


def _reference_nodes() -> MemoryNodes:
    nodes = MemoryNodes()
    nodes.append(REFERENCE_LEAVES)
    return nodes


@pytest.mark.parametrize(
    ("name", "vector"),
    [(n, v) for n, v in INCLUSION if not v["wantErr"] and not n.startswith("single-entry")],
)
def test_generated_inclusion_proofs_equal_the_vectors(name: str, vector: dict[str, Any]) -> None:
    size = vector["treeSize"]
    assert _b64(vector["root"]) == REFERENCE_ROOTS[size]
    proof = inclusion_proof(vector["leafIdx"], size, _reference_nodes())
    assert proof == [_b64(p) for p in vector["proof"] or []]


@pytest.mark.parametrize(("name", "vector"), [(n, v) for n, v in CONSISTENCY if not v["wantErr"]])
def test_generated_consistency_proofs_equal_the_vectors(name: str, vector: dict[str, Any]) -> None:
    assert _b64(vector["root2"]) == REFERENCE_ROOTS[vector["size2"]]
    proof = consistency_proof(vector["size1"], vector["size2"], _reference_nodes())
    assert proof == [_b64(p) for p in vector["proof"] or []]


def test_hashes_have_the_rfc_prefixes() -> None:
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    assert node_hash(a, b) == hashlib.sha256(b"\x01" + a + b).digest()
    assert hashlib.sha256(b"").digest() == EMPTY_ROOT


# --- proofs from compact node storage against the naive definitions ----------------


@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 70), salt=st.integers(0, 3))
def test_every_proof_of_a_random_tree_verifies(size: int, salt: int) -> None:
    leaves = leaves_of(size, salt)
    nodes = MemoryNodes()
    head = nodes.append(leaves)
    assert head == naive_mth(leaves) == root(leaves)
    for index in range(size):
        proof = inclusion_proof(index, size, nodes)
        assert proof == naive_path(index, leaves)
        verify_inclusion(index, size, leaves[index], proof, head)
    for old in range(size + 1):
        old_root = naive_mth(leaves[:old])
        proof = consistency_proof(old, size, nodes)
        assert proof == naive_consistency(old, leaves)
        verify_consistency(old, size, old_root, head, proof)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), size=st.integers(1, 3000))
def test_proofs_in_a_larger_tree_verify_against_smaller_trees(data: st.DataObject,
                                                              size: int) -> None:
    # The store holds the newest tree; proofs are asked about older sizes too.
    leaves = leaves_of(size + data.draw(st.integers(0, 50)))
    nodes = MemoryNodes()
    nodes.append(leaves)
    index = data.draw(st.integers(0, size - 1))
    old = data.draw(st.integers(0, size))
    head = naive_mth(leaves[:size])
    verify_inclusion(index, size, leaves[index], inclusion_proof(index, size, nodes), head)
    verify_consistency(old, size, naive_mth(leaves[:old]), head,
                       consistency_proof(old, size, nodes))


@settings(max_examples=200, deadline=None)
@given(data=st.data(), size=st.integers(2, 200))
def test_tampering_any_inclusion_proof_byte_fails(data: st.DataObject, size: int) -> None:
    leaves = leaves_of(size)
    nodes = MemoryNodes()
    head = nodes.append(leaves)
    index = data.draw(st.integers(0, size - 1))
    proof = inclusion_proof(index, size, nodes)
    element = data.draw(st.integers(0, len(proof) - 1))
    byte = data.draw(st.integers(0, 31))
    bit = data.draw(st.integers(0, 7))
    tampered = list(proof)
    changed = bytearray(tampered[element])
    changed[byte] ^= 1 << bit
    tampered[element] = bytes(changed)
    with pytest.raises(gridflow.ProofError):
        verify_inclusion(index, size, leaves[index], tampered, head)
    verify_inclusion(index, size, leaves[index], proof, head)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), size=st.integers(2, 200))
def test_tampering_any_consistency_proof_byte_fails(data: st.DataObject, size: int) -> None:
    leaves = leaves_of(size)
    nodes = MemoryNodes()
    head = nodes.append(leaves)
    old = data.draw(st.integers(1, size - 1))
    old_root = root(leaves[:old])
    proof = consistency_proof(old, size, nodes)
    element = data.draw(st.integers(0, len(proof) - 1))
    byte = data.draw(st.integers(0, 31))
    bit = data.draw(st.integers(0, 7))
    tampered = list(proof)
    changed = bytearray(tampered[element])
    changed[byte] ^= 1 << bit
    tampered[element] = bytes(changed)
    with pytest.raises(gridflow.ProofError):
        verify_consistency(old, size, old_root, head, tampered)
    verify_consistency(old, size, old_root, head, proof)


@settings(max_examples=100, deadline=None)
@given(data=st.data(), size=st.integers(2, 100))
def test_a_proof_for_other_arguments_fails(data: st.DataObject, size: int) -> None:
    leaves = leaves_of(size)
    nodes = MemoryNodes()
    head = nodes.append(leaves)
    index = data.draw(st.integers(0, size - 1))
    proof = inclusion_proof(index, size, nodes)
    other = data.draw(st.integers(0, size - 1).filter(lambda i: i != index))
    with pytest.raises(gridflow.ProofError):
        verify_inclusion(other, size, leaves[index], proof, head)
    with pytest.raises(gridflow.ProofError):
        verify_inclusion(index, size, leaves[other], proof, head)
    with pytest.raises(gridflow.ProofError):
        verify_inclusion(index, size, leaves[index], [*proof, head], head)
    old = data.draw(st.integers(1, size - 1))
    cproof = consistency_proof(old, size, nodes)
    with pytest.raises(gridflow.ProofError):
        verify_consistency(old, size, root(leaves[:old]), head, cproof[:-1])
    with pytest.raises(gridflow.ProofError):
        verify_consistency(old, size, root(leaves_of(old, salt=9)), head, cproof)
    # A rewritten old leaf: the new tree is not an extension of the old one.
    forged = [leaf_hash(b"forged"), *leaves[1:]]
    forged_nodes = MemoryNodes()
    forged_head = forged_nodes.append(forged)
    with pytest.raises(gridflow.ProofError):
        verify_consistency(old, size, root(leaves[:old]), forged_head,
                           consistency_proof(old, size, forged_nodes))


@settings(max_examples=100, deadline=None)
@given(size=st.integers(1, 1 << 20), data=st.data())
def test_proofs_read_o_log_n_nodes(size: int, data: st.DataObject) -> None:
    # Plans only (no tree of a million leaves): the number of distinct nodes
    # a proof reads is bounded by 2 log2(size).
    bound = 2 * size.bit_length()
    index = data.draw(st.integers(0, size - 1))
    old = data.draw(st.integers(0, size))
    assert len(inclusion_plan(index, size).ids) <= bound
    assert len(consistency_plan(old, size).ids) <= bound
    assert len(range_nodes(0, size)) == bin(size).count("1")


def test_proof_generation_reads_only_the_planned_nodes() -> None:
    nodes = MemoryNodes()
    nodes.append(leaves_of(5000))
    counting = CountingNodes(nodes)
    proof = inclusion_proof(1234, 5000, counting)
    assert counting.reads == len(inclusion_plan(1234, 5000).ids) <= 2 * (5000).bit_length()
    assert len(proof) == len(naive_path(1234, leaves_of(5000)))
    counting.reads = 0
    append(leaves_of(10, salt=1), 5000, counting)
    assert counting.reads == bin(5000).count("1")


def test_plans_assemble_from_a_batch_read() -> None:
    leaves = leaves_of(37)
    nodes = MemoryNodes()
    nodes.append(leaves)
    plan = consistency_plan(13, 37)
    batch = {node_id: nodes.get(*node_id) for node_id in plan.ids}
    assert plan.assemble(batch) == naive_consistency(13, leaves)
    batch.pop(plan.ids[0])
    with pytest.raises(gridflow.LogError, match="needed by the proof"):
        plan.assemble(batch)


def test_range_nodes_cover_exactly() -> None:
    for begin in range(0, 40):
        for end in range(begin, 70):
            ids = range_nodes(begin, end)
            covered: list[int] = []
            for level, index in ids:
                covered.extend(range(index << level, (index + 1) << level))
            assert covered == list(range(begin, end))


# --- appends -----------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(batches=st.lists(st.integers(0, 40), max_size=12))
def test_batched_appends_equal_one_by_one(batches: list[int]) -> None:
    leaves = leaves_of(sum(batches))
    one_by_one = MemoryNodes()
    emitted_one: list[Node] = []
    rng = CompactRange()
    for leaf in leaves:
        new, head = append([leaf], one_by_one.size, one_by_one)
        one_by_one.put(new)
        emitted_one.extend(new)
        rng, from_frontier = rng.extend([leaf])
        assert from_frontier == new and rng.root() == head

    batched = MemoryNodes()
    emitted_batched: list[Node] = []
    start = 0
    for count in batches:
        new, head = append(leaves[start : start + count], batched.size, batched)
        batched.put(new)
        emitted_batched.extend(new)
        start += count
        assert head == naive_mth(leaves[:start])
    assert emitted_batched == emitted_one
    n = len(leaves)
    assert batched.node_count == one_by_one.node_count == 2 * n - bin(n).count("1")
    assert batched.root() == one_by_one.root() == naive_mth(leaves)
    # Every stored node is the naive root of the leaves it covers.
    for level, index, h in emitted_batched:
        assert h == naive_mth(leaves[index << level : (index + 1) << level])


def test_a_persisted_frontier_extends_like_the_stored_nodes() -> None:
    leaves = leaves_of(100)
    nodes = MemoryNodes()
    nodes.append(leaves[:77])
    frontier = CompactRange.from_nodes(77, nodes)
    kept = CompactRange(frontier.size, tuple(frontier.hashes))
    grown, new = kept.extend(leaves[77:])
    assert (new, grown.root()) == append(leaves[77:], 77, nodes)
    assert grown.root() == naive_mth(leaves)


def test_memory_nodes_are_append_only() -> None:
    nodes = MemoryNodes()
    nodes.append(leaves_of(4))
    before = nodes.node_count
    with pytest.raises(gridflow.LogError, match="already stored with another hash"):
        nodes.put([(0, 4, leaf_hash(b"x")), (0, 1, leaf_hash(b"rewritten"))])
    # All or nothing: the valid first node of the refused batch was not kept.
    assert nodes.node_count == before and nodes.size == 4
    with pytest.raises(gridflow.LogError, match="gap"):
        nodes.put([(1, 3, leaf_hash(b"x"))])
    # Storing the same nodes again (a retried batch) is harmless.
    nodes.put([(0, 1, nodes.get(0, 1))])
    assert nodes.node_count == before


def test_bad_inputs_raise_gridflow_errors() -> None:
    nodes = MemoryNodes()
    nodes.append(leaves_of(3))
    with pytest.raises(gridflow.LogError, match="outside a tree of 3 leaves"):
        inclusion_proof(3, 3, nodes)
    with pytest.raises(gridflow.LogError, match="empty tree"):
        inclusion_plan(0, 0)
    with pytest.raises(gridflow.LogError, match="a log only grows"):
        consistency_proof(3, 2, nodes)
    with pytest.raises(gridflow.LogError, match="non-negative integer"):
        inclusion_plan(-1, 3)
    with pytest.raises(gridflow.LogError, match="not stored"):
        inclusion_proof(0, 4, nodes)
    with pytest.raises(gridflow.LogError, match="32-byte hash"):
        append([b"not a hash"], 3, nodes)
    with pytest.raises(gridflow.LogError, match="leaf 1 is not a 32-byte hash"):
        root([leaf_hash(b"a"), "a"])  # type: ignore[list-item]
    with pytest.raises(gridflow.LogError, match="one per set bit"):
        CompactRange(3, (leaf_hash(b"a"),))
    with pytest.raises(gridflow.ProofError, match="32 bytes"):
        verify_inclusion(0, 1, b"short", [], EMPTY_ROOT)
    with pytest.raises(gridflow.ProofError, match="impossible"):
        verify_inclusion(-1, 3, EMPTY_ROOT, [], EMPTY_ROOT)
    with pytest.raises(gridflow.ProofError, match="empty tree"):
        verify_consistency(0, 3, leaf_hash(b"a"), EMPTY_ROOT, [])
    with pytest.raises(gridflow.ProofError, match="rewritten"):
        verify_consistency(2, 2, leaf_hash(b"a"), leaf_hash(b"b"), [])


def test_error_classes() -> None:
    assert issubclass(gridflow.ProofError, gridflow.IntegrityError)
    assert issubclass(gridflow.LogError, gridflow.GridflowError)
    err = gridflow.ProofError("x")
    assert (err.case_id, err.seq, err.problem, str(err)) == ("", None, "x", "x")
    assert merkle.HASH_SIZE == 32
