"""Encrypting one personal value under its subject key: AES-256-GCM, bound to its place.

A ciphertext is ``01 || nonce (12 bytes) || AES-GCM(plaintext) with its 16-byte
tag``: a format byte, a random 96-bit nonce (safe: a subject key encrypts
that subject's few values, far below GCM's 2**32 random-nonce bound), and the
sealed UTF-8 text. The *associated data* (`context`) binds it to the case,
the declared path, the subject and the reference id, so a ciphertext copied
to another case, field, person or reference no longer opens.
"""

from __future__ import annotations

import os
from typing import Final

from gridflow._errors import DecryptionError, KeyringError
from gridflow.personal._canonical import encode_parts
from gridflow.personal._crypto import aes_gcm

__all__ = ["FORMAT", "context", "decrypt", "encrypt"]

#: The first byte of every ciphertext: the format (AES-256-GCM, 96-bit nonce).
FORMAT: Final = b"\x01"
_NONCE = 12
_TAG = 16
#: ``encode_parts("gridflow-pii-v1")``, the first part of every context (see `context`).
_CONTEXT_TAG: Final = encode_parts("gridflow-pii-v1")


def context(*, case_id: str, path: str, subject: str, ref_id: str) -> bytes:
    """The associated data that binds a ciphertext to where it belongs.

    Length-prefixed, so no two different places encode alike. ``path`` is
    the *declared* path (``parties[].name``), recorded with the ciphertext:
    the same value sits at different concrete places in the open event
    (``data.…``), later events and the case row, and must open at all of them.

    Example:
        >>> context(case_id="c-1", path="reporter.name", subject="p-17", ref_id="ab")[:22]
        b'\\x00\\x00\\x00\\x0fgridflow-pii-v1\\x00\\x00\\x00'
    """
    return _CONTEXT_TAG + encode_parts(case_id, path, subject, ref_id)


def _check_key(subject_key: bytes) -> None:
    if subject_key.__class__ is bytes and len(subject_key) == 32:
        return
    if not isinstance(subject_key, bytes | bytearray) or len(subject_key) != 32:
        raise KeyringError("a subject key is 32 bytes (from new_subject_key() or "
                           "Keyring.unwrap()); got something else")


def encrypt(subject_key: bytes, plaintext: str, aad: bytes) -> bytes:
    """``plaintext`` sealed under ``subject_key`` with associated data ``aad``.

    Example:
        >>> from gridflow.personal.keyring import new_subject_key
        >>> key = new_subject_key()
        >>> sealed = encrypt(key, "王小明", b"ctx")
        >>> len(sealed), decrypt(key, sealed, b"ctx")
        (38, '王小明')
    """
    _check_key(subject_key)
    nonce = os.urandom(_NONCE)
    raw = plaintext.encode("utf-8", "surrogatepass")
    return FORMAT + nonce + aes_gcm(bytes(subject_key)).encrypt(nonce, raw, aad)


def decrypt(subject_key: bytes, ciphertext: bytes, aad: bytes) -> str:
    """The plaintext `encrypt` sealed, or `gridflow.personal.DecryptionError`.

    The error covers a wrong key, other associated data (the ciphertext was
    moved), an edited ciphertext and an unknown format; it never says which
    (AES-GCM cannot tell them apart, and nothing is guessed).

    Example:
        >>> from gridflow.personal.keyring import new_subject_key
        >>> key = new_subject_key()
        >>> try:
        ...     decrypt(key, encrypt(key, "13812345678", b"case c-1"), b"case c-2")
        ... except DecryptionError as exc:
        ...     print(type(exc).__name__)
        DecryptionError
    """
    _check_key(subject_key)
    data = bytes(ciphertext) if isinstance(ciphertext, bytes | bytearray | memoryview) else b""
    if len(data) < 1 + _NONCE + _TAG or data[:1] != FORMAT:
        raise DecryptionError(
            "a personal-value ciphertext is malformed (too short or an unknown format "
            f"byte; this version reads format {FORMAT.hex()}): the stored bytes were edited "
            "or truncated")
    cipher = aes_gcm(bytes(subject_key))  # first: raises the "install gridflow[pii]" error
    from cryptography.exceptions import InvalidTag

    try:
        raw = cipher.decrypt(data[1:1 + _NONCE], data[1 + _NONCE:], aad)
    except InvalidTag:
        raise DecryptionError(
            "a personal-value ciphertext does not open with this subject key and context: "
            "it was moved to another case, path, subject or reference, edited, or sealed "
            "under another key") from None
    return raw.decode("utf-8", "surrogatepass")
