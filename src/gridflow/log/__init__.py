"""The tamper-evident log layer: RFC 9162 Merkle trees and C2SP signed checkpoints.

Pure and storage-free: `gridflow.log.merkle` hashes, extends and proves a
Merkle tree over any node storage; `gridflow.log.note` signs and verifies
notes and checkpoints. Stores and the engine build on these.

Example:
    >>> from gridflow.log import merkle, note
    >>> merkle.root([]) == merkle.EMPTY_ROOT
    True
    >>> note.Checkpoint("example.org/log", 0, merkle.EMPTY_ROOT).to_text().splitlines()[1]
    '0'
"""
