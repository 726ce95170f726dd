"""RFC 9162 (RFC 6962) Merkle tree hashes, proofs and compact ranges, with SHA-256.

This module is pure: it never touches a database. A store keeps the hash of
every *perfect subtree* of the log, addressed by ``(level, index)``: the node
at level ``L`` and index ``i`` covers the leaves ``[i * 2**L, (i + 1) * 2**L)``,
so level 0 holds the leaf hashes themselves. The store hands this module a
`NodeReader` (one method, ``get(level, index)``); everything else is computed
here:

- `append` (or `CompactRange.extend`) turns a batch of new leaf hashes into
  every new perfect-subtree node to persist, reading only the O(log n)
  "frontier" nodes of the current tree;
- `inclusion_proof` and `consistency_proof` read O(log n) nodes; a store that
  can read many nodes in one query asks `inclusion_plan` / `consistency_plan`
  which nodes it needs and calls `ProofPlan.assemble` itself;
- `verify_inclusion` and `verify_consistency` check a proof with no storage
  at all and raise `gridflow.ProofError` on any bad proof.

Nodes are never rewritten once stored: a tree of size ``n`` is a prefix of
every later tree, and a perfect subtree's hash never changes. That is what
makes the storage append-only (rows at each level are written in index
order) and what `MemoryNodes` enforces.

Example:
    >>> from gridflow.log import merkle
    >>> nodes = merkle.MemoryNodes()
    >>> leaves = [merkle.leaf_hash(bytes([i])) for i in range(5)]
    >>> head = nodes.append(leaves)
    >>> head == merkle.root(leaves)
    True
    >>> proof = merkle.inclusion_proof(3, 5, nodes)
    >>> merkle.verify_inclusion(3, 5, leaves[3], proof, head)
    >>> old = merkle.root(leaves[:2])
    >>> merkle.verify_consistency(2, 5, old, head, merkle.consistency_proof(2, 5, nodes))
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

import attrs

from gridflow._errors import LogError, ProofError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "MemoryNodes",
    "Node",
    "NodeID",
    "NodeReader",
    "ProofPlan",
    "append",
    "consistency_plan",
    "consistency_proof",
    "inclusion_plan",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "range_nodes",
    "root",
    "root_from_nodes",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
"""Bytes in every hash of the tree (SHA-256)."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""The root hash of the empty tree: SHA-256 of the empty string (RFC 9162 section 2.1.1)."""

_sha256 = hashlib.sha256

NodeID = tuple[int, int]
"""``(level, index)``: the perfect subtree over leaves ``[index * 2**level, (index+1) * 2**level)``.
"""


Node = tuple[int, int, bytes]
"""One perfect-subtree hash to store: ``(level, index, hash)``.

A plain tuple, not a named one: appending a million leaves makes two million
of them, and the garbage collector untracks plain tuples of ints and bytes
(it never does for tuple subclasses), which halves the cost of an append.
They are also ready as SQL parameters: ``executemany("INSERT ... VALUES (?, ?, ?)", nodes)``.
"""


class NodeReader(Protocol):
    """Read access to stored perfect-subtree hashes (what a store implements).

    ``get(level, index)`` returns the 32-byte hash of the perfect subtree
    ``(level, index)``. It is only ever asked for nodes that exist in the
    tree of the size the caller passed (never for a node the tree has not
    completed yet); a store should raise `gridflow.LogError` for a missing one.

    Example:
        >>> class Dict:
        ...     def __init__(self, nodes): self.nodes = {(lv, i): h for lv, i, h in nodes}
        ...     def get(self, level, index): return self.nodes[(level, index)]
        >>> new, head = append([leaf_hash(b"a"), leaf_hash(b"b")], 0, MemoryNodes())
        >>> root_from_nodes(2, Dict(new)) == head
        True
    """

    def get(self, level: int, index: int) -> bytes:
        """The hash of the perfect subtree ``(level, index)``."""
        ...


def leaf_hash(data: bytes) -> bytes:
    """The RFC 9162 hash of one leaf: SHA-256(0x00 || data).

    Example:
        >>> leaf_hash(b"").hex()[:16]
        '6e340b9cffb37a98'
    """
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The RFC 9162 hash of an interior node: SHA-256(0x01 || left || right).

    Example:
        >>> node_hash(leaf_hash(b""), leaf_hash(b"\\x00")).hex()[:16]
        'fac54203e7cc696c'
    """
    return _sha256(b"\x01" + left + right).digest()


def _check_hash(value: object, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        got = f"{len(value)} bytes" if isinstance(value, bytes) else type(value).__name__
        raise ProofError(f"{what} must be {HASH_SIZE} bytes (a SHA-256 hash), got {got}")
    return value


def _check_size(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise LogError(f"{what} must be a non-negative integer, got {value!r}")
    return value


def _fold(hashes: Sequence[bytes]) -> bytes:
    # The root of a range [a, b) with a aligned (as every range in the RFC
    # recursion is) is its perfect subtrees, largest first, hashed right to left.
    if not hashes:
        return EMPTY_ROOT
    h = hashes[-1]
    for left in reversed(hashes[:-1]):
        h = _sha256(b"\x01" + left + h).digest()
    return h


def root(leaf_hashes: Iterable[bytes]) -> bytes:
    """The root hash of the tree with these leaf hashes (any size; empty: `EMPTY_ROOT`).

    Streams the leaves once, keeping O(log n) hashes.

    Example:
        >>> root([]) == EMPTY_ROOT
        True
        >>> root([leaf_hash(b"")]) == leaf_hash(b"")
        True
        >>> root([leaf_hash(b"a"), leaf_hash(b"b")]) == node_hash(leaf_hash(b"a"), leaf_hash(b"b"))
        True
    """
    # The frontier alone, without materialising the nodes `extend` returns.
    stack: list[bytes] = []
    sha = _sha256
    for size, h in enumerate(leaf_hashes):
        if type(h) is not bytes or len(h) != HASH_SIZE:
            raise LogError(f"leaf {size} is not a {HASH_SIZE}-byte hash "
                           "(pass leaf_hash(data), not the data)")
        index = size
        while index & 1:
            h = sha(b"\x01" + stack.pop() + h).digest()
            index >>= 1
        stack.append(h)
    return _fold(stack)


def range_nodes(begin: int, end: int) -> list[NodeID]:
    """The perfect subtrees that exactly cover leaves ``[begin, end)``, left to right.

    This is the compact range of ``[begin, end)``: at most about 2 log2(end - begin)
    nodes. For ``begin == 0`` it is one node per set bit of ``end``, largest first.

    Example:
        >>> range_nodes(0, 6)
        [(2, 0), (1, 2)]
        >>> range_nodes(1, 4)
        [(0, 1), (1, 1)]
        >>> range_nodes(3, 3)
        []
    """
    _check_size(begin, "range begin")
    _check_size(end, "range end")
    if begin > end:
        raise LogError(f"range [{begin}, {end}) is reversed: begin must not exceed end")
    return _cover(begin, end)


def _cover(begin: int, end: int) -> list[NodeID]:
    n = end - begin
    if n and not n & (n - 1) and not begin & (n - 1):
        # The common case in proofs: one aligned perfect subtree.
        level = n.bit_length() - 1
        return [(level, begin >> level)]
    ids: list[NodeID] = []
    while begin < end:
        level = (end - begin).bit_length() - 1
        if begin:
            level = min(level, (begin & -begin).bit_length() - 1)
        ids.append((level, begin >> level))
        begin += 1 << level
    return ids


@attrs.frozen
class ProofPlan:
    """Which stored nodes a proof needs, and how to assemble the proof from them.

    Each element of the proof is the hash of a range of leaves, given as the
    perfect subtrees covering it (``elements[i]``); all but at most one
    element are a single stored node. A store that reads many rows in one
    query reads ``ids`` in one go and calls `assemble`.

    Example:
        >>> plan = inclusion_plan(2, 3)
        >>> plan.elements
        (((1, 0),),)
        >>> plan.ids
        ((1, 0),)
    """

    elements: tuple[tuple[NodeID, ...], ...]

    @property
    def ids(self) -> tuple[NodeID, ...]:
        """Every node to read, each once, in the order first needed.

        Example:
            >>> consistency_plan(3, 7).ids
            ((0, 2), (0, 3), (1, 0), (1, 2), (0, 6))
        """
        seen: dict[NodeID, None] = {}
        for element in self.elements:
            for node_id in element:
                seen.setdefault(node_id, None)
        return tuple(seen)

    def assemble(self, hashes: Mapping[NodeID, bytes]) -> list[bytes]:
        """The proof, from the hashes of `ids` (a mapping ``(level, index) -> hash``).

        Example:
            >>> nodes = MemoryNodes()
            >>> _ = nodes.append([leaf_hash(bytes([i])) for i in range(3)])
            >>> plan = inclusion_plan(0, 3)
            >>> plan.assemble({i: nodes.get(*i) for i in plan.ids}) == inclusion_proof(0, 3, nodes)
            True
        """
        proof = []
        for element in self.elements:
            try:
                proof.append(_fold([hashes[node_id] for node_id in element]))
            except KeyError as exc:
                raise LogError(f"node {exc.args[0]} is needed by the proof but was not given")\
                    from None
        return proof


def _largest_power_below(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_plan(index: int, size: int) -> ProofPlan:
    """The nodes an inclusion proof of leaf ``index`` in a tree of ``size`` needs.

    Follows RFC 9162 section 2.1.3.1 (PATH), deepest sibling first.

    Example:
        >>> inclusion_plan(0, 1).elements
        ()
        >>> inclusion_plan(5, 8).elements
        (((0, 4),), ((1, 3),), ((2, 0),))
    """
    _check_size(index, "leaf index")
    _check_size(size, "tree size")
    if index >= size:
        raise LogError(
            f"leaf index {index} is outside a tree of {size} leaves (indexes 0..{size - 1})"
            if size else f"leaf index {index} cannot be proved in the empty tree"
        )
    top_down: list[tuple[NodeID, ...]] = []
    a, b = 0, size
    while b - a > 1:
        k = _largest_power_below(b - a)
        if index < a + k:
            top_down.append(tuple(_cover(a + k, b)))
            b = a + k
        else:
            top_down.append(tuple(_cover(a, a + k)))
            a += k
    top_down.reverse()
    return ProofPlan(tuple(top_down))


def consistency_plan(old_size: int, new_size: int) -> ProofPlan:
    """The nodes a consistency proof from tree size ``old_size`` to ``new_size`` needs.

    Follows RFC 9162 section 2.1.4.1 (PROOF / SUBPROOF). Empty when
    ``old_size`` is 0 or equals ``new_size``.

    Example:
        >>> consistency_plan(4, 8).elements
        (((2, 1),),)
        >>> consistency_plan(5, 5).elements
        ()
    """
    _check_size(old_size, "old tree size")
    _check_size(new_size, "new tree size")
    if old_size > new_size:
        raise LogError(
            f"cannot prove consistency from {old_size} leaves to fewer ({new_size}): "
            "a log only grows"
        )
    if old_size in (0, new_size):
        return ProofPlan(())
    top_down: list[tuple[NodeID, ...]] = []
    first: tuple[NodeID, ...] = ()
    m, a, b, complete = old_size, 0, new_size, True
    while True:
        n = b - a
        if m == n:
            # The old tree's own root is omitted only when it is the whole
            # left edge (the verifier already knows it).
            if not complete:
                first = tuple(_cover(a, b))
            break
        k = _largest_power_below(n)
        if m <= k:
            top_down.append(tuple(_cover(a + k, b)))
            b = a + k
        else:
            top_down.append(tuple(_cover(a, a + k)))
            m -= k
            a += k
            complete = False
    top_down.reverse()
    return ProofPlan(((first,) if first else ()) + tuple(top_down))


def _get(nodes: NodeReader, level: int, index: int) -> bytes:
    value = nodes.get(level, index)
    if type(value) is not bytes or len(value) != HASH_SIZE:
        raise LogError(f"node storage returned no {HASH_SIZE}-byte hash for node "
                       f"({level}, {index})")
    return value


def _read(plan: ProofPlan, nodes: NodeReader) -> list[bytes]:
    # The elements cover disjoint ranges, so no node is read twice.
    return [_fold([_get(nodes, level, index) for level, index in element])
            for element in plan.elements]


def inclusion_proof(index: int, size: int, nodes: NodeReader) -> list[bytes]:
    """The RFC 9162 inclusion proof of leaf ``index`` in the tree of ``size`` leaves.

    Reads at most about 2 log2(size) nodes from ``nodes``.

    Example:
        >>> nodes = MemoryNodes()
        >>> leaves = [leaf_hash(bytes([i])) for i in range(7)]
        >>> head = nodes.append(leaves)
        >>> proof = inclusion_proof(6, 7, nodes)
        >>> len(proof)
        2
        >>> verify_inclusion(6, 7, leaves[6], proof, head)
    """
    return _read(inclusion_plan(index, size), nodes)


def consistency_proof(old_size: int, new_size: int, nodes: NodeReader) -> list[bytes]:
    """The RFC 9162 consistency proof from the tree of ``old_size`` leaves to ``new_size``.

    Reads at most about 2 log2(new_size) nodes from ``nodes``.

    Example:
        >>> nodes = MemoryNodes()
        >>> leaves = [leaf_hash(bytes([i])) for i in range(7)]
        >>> head = nodes.append(leaves)
        >>> proof = consistency_proof(3, 7, nodes)
        >>> verify_consistency(3, 7, root(leaves[:3]), head, proof)
    """
    return _read(consistency_plan(old_size, new_size), nodes)


def root_from_nodes(size: int, nodes: NodeReader) -> bytes:
    """The root hash of the tree of ``size`` leaves, from O(log size) stored nodes.

    Example:
        >>> nodes = MemoryNodes()
        >>> leaves = [leaf_hash(bytes([i])) for i in range(6)]
        >>> _ = nodes.append(leaves)
        >>> root_from_nodes(5, nodes) == root(leaves[:5])
        True
    """
    return CompactRange.from_nodes(size, nodes).root()


def verify_inclusion(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` leaves with ``root``.

    Implements RFC 9162 section 2.1.3.2. Returns nothing; raises
    `gridflow.ProofError` on any bad proof (wrong length, wrong hash, an
    index outside the tree, hashes that are not 32 bytes).

    Example:
        >>> a, b = leaf_hash(b"a"), leaf_hash(b"b")
        >>> verify_inclusion(1, 2, b, [a], node_hash(a, b))
        >>> verify_inclusion(0, 2, b, [a], node_hash(a, b))
        Traceback (most recent call last):
        ...
        gridflow._errors.ProofError: inclusion proof of leaf 0 in a tree of 2 leaves does not \
lead to the expected root
    """
    _check_hash(leaf_hash, "leaf hash")
    _check_hash(root, "root hash")
    for i, p in enumerate(proof):
        _check_hash(p, f"inclusion proof element {i}")
    where = f"inclusion proof of leaf {index} in a tree of {size} leaves"
    if (isinstance(index, bool) or not isinstance(index, int) or not isinstance(size, int)
            or not 0 <= index < size):
        raise ProofError(f"{where} is impossible: the leaf index must be in 0..size-1")
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            raise ProofError(f"{where} has {len(proof)} elements: too many")
        if fn & 1 or fn == sn:
            r = _sha256(b"\x01" + p + r).digest()
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = _sha256(b"\x01" + r + p).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"{where} has {len(proof)} elements: too few")
    if r != root:
        raise ProofError(f"{where} does not lead to the expected root")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of ``old_size`` leaves with ``old_root`` is a prefix of the
    tree of ``new_size`` leaves with ``new_root``.

    Implements RFC 9162 section 2.1.4.2. Equal sizes need an empty proof and
    equal roots; an empty old tree (root `EMPTY_ROOT`) is a prefix of every
    tree and needs an empty proof. Raises `gridflow.ProofError` on any bad proof.

    Example:
        >>> leaves = [leaf_hash(bytes([i])) for i in range(3)]
        >>> nodes = MemoryNodes()
        >>> head = nodes.append(leaves)
        >>> verify_consistency(2, 3, root(leaves[:2]), head, consistency_proof(2, 3, nodes))
        >>> verify_consistency(3, 2, head, root(leaves[:2]), [])
        Traceback (most recent call last):
        ...
        gridflow._errors.ProofError: consistency proof from 3 to 2 leaves is impossible: \
a log only grows (old size must not exceed new size)
    """
    _check_hash(old_root, "old root hash")
    _check_hash(new_root, "new root hash")
    for i, p in enumerate(proof):
        _check_hash(p, f"consistency proof element {i}")
    where = f"consistency proof from {old_size} to {new_size} leaves"
    if (isinstance(old_size, bool) or not isinstance(old_size, int)
            or not isinstance(new_size, int) or old_size < 0 or old_size > new_size):
        raise ProofError(f"{where} is impossible: a log only grows "
                         "(old size must not exceed new size)")
    if old_size == new_size:
        if proof:
            raise ProofError(f"{where} must be empty (equal sizes), it has {len(proof)} elements")
        if old_root != new_root:
            raise ProofError(f"two trees of {old_size} leaves have different roots: "
                             "the log was rewritten")
        return
    if old_size == 0:
        if proof:
            raise ProofError(f"{where} must be empty (the empty tree is a prefix of any tree)")
        if old_root != EMPTY_ROOT:
            raise ProofError("the root given for the empty tree is not SHA-256('')")
        return
    if not proof:
        raise ProofError(f"{where} is empty: it needs at least one hash")
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        # The old tree is a perfect subtree on the left edge: its root is the seed.
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError(f"{where} has {len(proof)} elements: too many")
        if fn & 1 or fn == sn:
            fr = _sha256(b"\x01" + c + fr).digest()
            sr = _sha256(b"\x01" + c + sr).digest()
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = _sha256(b"\x01" + sr + c).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"{where} has {len(proof)} elements: too few")
    if fr != old_root:
        raise ProofError(f"{where} does not lead to the old root: the old tree is not a prefix")
    if sr != new_root:
        raise ProofError(f"{where} does not lead to the new root")


def _popcount(n: int) -> int:
    return bin(n).count("1")


@attrs.frozen
class CompactRange:
    """The frontier of a tree: the O(log n) hashes that let it grow and give its root.

    ``hashes`` are the roots of the perfect subtrees covering leaves
    ``[0, size)``, largest first (one per set bit of ``size``; their ids are
    ``range_nodes(0, size)``). A store may persist this beside its tree size
    to extend the tree without reading any node, or rebuild it with
    `from_nodes`. Immutable: `extend` returns a new range.

    Example:
        >>> rng, new = CompactRange().extend([leaf_hash(bytes([i])) for i in range(3)])
        >>> rng.size, len(rng.hashes), [(level, index) for level, index, _ in new]
        (3, 2, [(0, 0), (0, 1), (1, 0), (0, 2)])
        >>> rng.root() == root([leaf_hash(bytes([i])) for i in range(3)])
        True
    """

    size: int = 0
    hashes: tuple[bytes, ...] = ()

    def __attrs_post_init__(self) -> None:
        _check_size(self.size, "compact range size")
        if len(self.hashes) != _popcount(self.size):
            raise LogError(
                f"a compact range of {self.size} leaves has {_popcount(self.size)} hashes "
                f"(one per set bit of the size), not {len(self.hashes)}"
            )
        for i, h in enumerate(self.hashes):
            if not isinstance(h, bytes) or len(h) != HASH_SIZE:
                raise LogError(f"compact range hash {i} is not a {HASH_SIZE}-byte hash")

    @classmethod
    def from_nodes(cls, size: int, nodes: NodeReader) -> CompactRange:
        """The frontier of the tree of ``size`` leaves, read from stored nodes.

        Example:
            >>> nodes = MemoryNodes()
            >>> _ = nodes.append([leaf_hash(bytes([i])) for i in range(6)])
            >>> CompactRange.from_nodes(6, nodes).ids()
            [(2, 0), (1, 2)]
        """
        ids = range_nodes(0, _check_size(size, "tree size"))
        return cls(size, tuple(_get(nodes, level, index) for level, index in ids))

    def ids(self) -> list[NodeID]:
        """The ``(level, index)`` of each hash in `hashes`.

        Example:
            >>> CompactRange(0, ()).ids()
            []
        """
        return range_nodes(0, self.size)

    def root(self) -> bytes:
        """The root hash of the tree of `size` leaves.

        Example:
            >>> CompactRange().root() == EMPTY_ROOT
            True
        """
        return _fold(self.hashes)

    def extend(self, leaf_hashes: Iterable[bytes]) -> tuple[CompactRange, list[Node]]:
        """Append leaf hashes: the grown range, and every new perfect-subtree node.

        The nodes are the new leaves (level 0) and every parent completed by
        them, in creation order (within a level, in index order), so a store
        appends them as rows in one batch.

        Example:
            >>> start, _ = CompactRange().extend([leaf_hash(b"a")])
            >>> grown, new = start.extend([leaf_hash(b"b")])
            >>> [(level, index) for level, index, _ in new]
            [(0, 1), (1, 0)]
        """
        stack = list(self.hashes)
        size = self.size
        new: list[Node] = []
        add = new.append
        sha = _sha256
        for h in leaf_hashes:
            if type(h) is not bytes or len(h) != HASH_SIZE:
                raise LogError(f"leaf {size} is not a {HASH_SIZE}-byte hash "
                               "(pass leaf_hash(data), not the data)")
            add((0, size, h))
            index, level = size, 0
            # Each trailing 1 bit of the new leaf's index completes one parent.
            while index & 1:
                h = sha(b"\x01" + stack.pop() + h).digest()
                index >>= 1
                level += 1
                add((level, index, h))
            stack.append(h)
            size += 1
        return CompactRange(size, tuple(stack)), new

    def grown(self, leaf_hashes: Iterable[bytes]) -> CompactRange:
        """`extend` without the new nodes: only the grown range (what verification,
        which recomputes the tree and stores nothing, needs).

        Example:
            >>> leaves = [leaf_hash(bytes([i])) for i in range(5)]
            >>> CompactRange().grown(leaves) == CompactRange().extend(leaves)[0]
            True
        """
        stack = list(self.hashes)
        size = self.size
        pop, push = stack.pop, stack.append
        sha = _sha256
        for h in leaf_hashes:
            if type(h) is not bytes or len(h) != HASH_SIZE:
                raise LogError(f"leaf {size} is not a {HASH_SIZE}-byte hash "
                               "(pass leaf_hash(data), not the data)")
            index = size
            while index & 1:
                h = sha(b"\x01" + pop() + h).digest()
                index >>= 1
            push(h)
            size += 1
        return CompactRange(size, tuple(stack))


def append(
    leaf_hashes: Iterable[bytes], size: int, nodes: NodeReader
) -> tuple[list[Node], bytes]:
    """Extend the stored tree of ``size`` leaves: the nodes to store, and the new root.

    Reads only the frontier of the current tree (O(log size) nodes). The
    store persists every returned node (see `CompactRange.extend` for their
    order) and the new size, atomically.

    Example:
        >>> nodes = MemoryNodes()
        >>> new, head = append([leaf_hash(b"a"), leaf_hash(b"b")], 0, nodes)
        >>> nodes.put(new)
        >>> new, head = append([leaf_hash(b"c")], 2, nodes)
        >>> [(level, index) for level, index, _ in new]
        [(0, 2)]
        >>> head == root(map(leaf_hash, [b"a", b"b", b"c"]))
        True
    """
    grown, new = CompactRange.from_nodes(size, nodes).extend(leaf_hashes)
    return new, grown.root()


class MemoryNodes:
    """Perfect-subtree hashes in memory: the node storage of tests and examples.

    Append-only like a real store: `put` accepts a node only at the next
    free index of its level (or again with the same hash) and refuses, as a
    whole batch, anything that would rewrite or skip a node.

    Example:
        >>> nodes = MemoryNodes()
        >>> head = nodes.append([leaf_hash(bytes([i])) for i in range(4)])
        >>> nodes.size, nodes.node_count, nodes.root() == head
        (4, 7, True)
    """

    def __init__(self) -> None:
        self._levels: list[list[bytes]] = []

    @property
    def size(self) -> int:
        """The number of leaves stored.

        Example:
            >>> MemoryNodes().size
            0
        """
        return len(self._levels[0]) if self._levels else 0

    @property
    def node_count(self) -> int:
        """The number of nodes stored, leaves included (2n - popcount(n) for n leaves).

        Example:
            >>> nodes = MemoryNodes()
            >>> _ = nodes.append([leaf_hash(b"x")] * 5)
            >>> nodes.node_count
            8
        """
        return sum(len(level) for level in self._levels)

    def get(self, level: int, index: int) -> bytes:
        """The stored hash of the perfect subtree ``(level, index)``.

        Example:
            >>> nodes = MemoryNodes()
            >>> _ = nodes.append([leaf_hash(b"x")])
            >>> nodes.get(0, 0) == leaf_hash(b"x")
            True
            >>> nodes.get(1, 0)
            Traceback (most recent call last):
            ...
            gridflow._errors.LogError: node (1, 0) is not stored (1 leaves)
        """
        if 0 <= level < len(self._levels) and 0 <= index < len(self._levels[level]):
            return self._levels[level][index]
        raise LogError(f"node ({level}, {index}) is not stored ({self.size} leaves)")

    def put(self, nodes: Iterable[Node]) -> None:
        """Store nodes (as returned by `append`), all or none.

        Example:
            >>> nodes = MemoryNodes()
            >>> nodes.put([(0, 1, leaf_hash(b"x"))])
            Traceback (most recent call last):
            ...
            gridflow._errors.LogError: node (0, 1) would leave a gap: level 0 has 0 nodes
        """
        staged: dict[int, list[bytes]] = {}
        for level, index, h in nodes:
            if level < 0 or type(h) is not bytes or len(h) != HASH_SIZE:
                raise LogError(f"node ({level}, {index}) is not a valid node")
            stored = self._levels[level] if level < len(self._levels) else []
            fresh = staged.setdefault(level, [])
            count = len(stored) + len(fresh)
            if index == count:
                fresh.append(h)
            elif 0 <= index < count:
                old = stored[index] if index < len(stored) else fresh[index - len(stored)]
                if old != h:
                    raise LogError(f"node ({level}, {index}) is already stored with another "
                                   "hash: the tree is append-only")
            else:
                raise LogError(f"node ({level}, {index}) would leave a gap: level {level} "
                               f"has {count} nodes")
        for level in sorted(staged):
            while len(self._levels) <= level:
                self._levels.append([])
            self._levels[level].extend(staged[level])

    def append(self, leaf_hashes: Iterable[bytes]) -> bytes:
        """Append leaf hashes and store the new nodes; returns the new root.

        Example:
            >>> MemoryNodes().append([]) == EMPTY_ROOT
            True
        """
        new, head = append(leaf_hashes, self.size, self)
        self.put(new)
        return head

    def root(self) -> bytes:
        """The root hash of the stored tree.

        Example:
            >>> MemoryNodes().root() == EMPTY_ROOT
            True
        """
        return root_from_nodes(self.size, self)
