"""The few primitives of ``cryptography`` gridflow uses, imported only when first needed.

``import gridflow`` (and masking, screening, paths) must work without the
optional extra; only sealing, opening and key wrapping need it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gridflow._errors import PersonalDataError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["aes_gcm", "hkdf_sha256", "key_unwrap", "key_wrap", "missing_extra"]


class _MissingCryptography(PersonalDataError, ImportError):
    """The ``pii`` extra is not installed: a `GridflowError` (so the command line
    reports it in one line) that ``except ImportError`` still catches."""


def missing_extra() -> ImportError:
    """The error raised when the ``pii`` extra is not installed.

    Example:
        >>> "gridflow[pii]" in str(missing_extra())
        True
    """
    return _MissingCryptography(
        "protecting personal data needs the 'cryptography' package; "
        "install it with: pip install 'gridflow[pii]'"
    )


def aes_gcm(key: bytes) -> AESGCM:
    """An AES-GCM cipher object for a 32-byte key.

    Example:
        >>> len(aes_gcm(bytes(32)).encrypt(bytes(12), b"x", None))
        17
    """
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError as exc:
        raise missing_extra() from exc
    return AESGCM(key)


def key_wrap(kek: bytes, key: bytes) -> bytes:
    """AES key wrap (RFC 3394) of ``key`` under ``kek``.

    Example:
        >>> len(key_wrap(bytes(32), bytes(32)))
        40
    """
    try:
        from cryptography.hazmat.primitives.keywrap import aes_key_wrap
    except ImportError as exc:
        raise missing_extra() from exc
    return aes_key_wrap(kek, key)


def key_unwrap(kek: bytes, wrapped: bytes) -> bytes | None:
    """The key `key_wrap` wrapped, or ``None`` when ``wrapped`` does not check out.

    Example:
        >>> key_unwrap(bytes(32), key_wrap(bytes(32), b"k" * 32)) == b"k" * 32
        True
        >>> key_unwrap(b"x" * 32, key_wrap(bytes(32), b"k" * 32)) is None
        True
    """
    try:
        from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap
    except ImportError as exc:
        raise missing_extra() from exc
    try:
        return aes_key_unwrap(kek, wrapped)
    except (InvalidUnwrap, ValueError):
        return None


def hkdf_sha256(key: bytes, info: bytes, length: int = 32) -> bytes:
    """HKDF-SHA256 (RFC 5869) without salt: derive a separate key for one purpose.

    Example:
        >>> hkdf_sha256(bytes(32), b"a") != hkdf_sha256(bytes(32), b"b")
        True
    """
    try:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    except ImportError as exc:
        raise missing_extra() from exc
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(key)
