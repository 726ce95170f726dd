"""Keyed commitments: what the hash chain holds instead of a personal value.

``commit(key, subject, path, value)`` is HMAC-SHA256 over the length-prefixed
encoding of ``("gridflow-commit-v1", subject, path, value)``. The key is
derived from the subject key with HKDF (`commitment_key`), so:

- while the subject key exists, the holder can show that a revealed value is
  the one recorded (same inputs, same commitment), and nobody without the key
  can test guesses against it (a phone number has only ~10**8 candidates: an
  unkeyed hash would give it away);
- once the subject key is destroyed, the commitment stays in every event and
  every hash still verifies, but the value is neither provable nor guessable.
"""

from __future__ import annotations

from gridflow._errors import KeyringError
from gridflow.personal._canonical import encode_parts
from gridflow.personal._crypto import hkdf_sha256, hmac_sha256

__all__ = ["commit", "commitment_key", "verify_commitment"]

_INFO = b"gridflow/commitment/v1"
#: ``encode_parts("gridflow-commit-v1")``: the first part of every committed message
#: (the encoding is a concatenation, so the rest is encoded on its own).
_TAG = encode_parts("gridflow-commit-v1")


def commitment_key(subject_key: bytes) -> bytes:
    """The commitment key of a subject: HKDF-SHA256(subject key, info "gridflow/commitment/v1").

    A key of its own, so that the AES key and the HMAC key never coincide.
    Derive it once per subject per step, not once per value.

    Example:
        >>> from gridflow.personal.keyring import new_subject_key
        >>> key = new_subject_key()
        >>> len(commitment_key(key)), commitment_key(key) != key
        (32, True)
    """
    if not isinstance(subject_key, bytes | bytearray) or len(subject_key) != 32:
        raise KeyringError("a subject key is 32 bytes (from new_subject_key() or "
                           "Keyring.unwrap()); got something else")
    return hkdf_sha256(bytes(subject_key), _INFO)


def commit(commit_key: bytes, subject: str, path: str, value: str) -> str:
    """The commitment to ``value`` at declared ``path`` of ``subject``: 64 hex digits.

    Example:
        >>> ck = bytes(32)
        >>> c = commit(ck, "p-17", "reporter.name", "王小明")
        >>> len(c), c == commit(ck, "p-17", "reporter.name", "王小明")
        (64, True)
        >>> c == commit(ck, "p-18", "reporter.name", "王小明")
        False
    """
    if not isinstance(commit_key, bytes | bytearray) or len(commit_key) != 32:
        raise KeyringError("a commitment key is 32 bytes, from commitment_key(subject_key)")
    return hmac_sha256(commit_key, _TAG + encode_parts(subject, path, value)).hex()


def verify_commitment(commit_key: bytes, subject: str, path: str, value: str,
                      commitment: str) -> bool:
    """Whether ``commitment`` is `commit` of these inputs (compared in constant time).

    Example:
        >>> c = commit(bytes(32), "p-17", "reporter.phone", "13812345678")
        >>> verify_commitment(bytes(32), "p-17", "reporter.phone", "13812345678", c)
        True
        >>> verify_commitment(bytes(32), "p-17", "reporter.phone", "13812345679", c)
        False
    """
    expected = commit(commit_key, subject, path, value)
    import hmac

    return isinstance(commitment, str) and hmac.compare_digest(expected, commitment)
