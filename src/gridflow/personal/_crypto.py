"""The few primitives of ``cryptography`` gridflow uses, imported only when first needed.

``import gridflow`` (and masking, screening, paths) must work without the
optional extra; only sealing, opening and key wrapping need it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gridflow._errors import PersonalDataError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["aes_gcm", "forget_cipher", "forget_mac", "hkdf_sha256", "hmac_sha256", "key_unwrap",
           "key_wrap", "missing_extra"]


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


_CIPHERS: dict[bytes, AESGCM] = {}


def aes_gcm(key: bytes) -> AESGCM:
    """An AES-GCM cipher object for a 32-byte key (the last few thousand are kept:
    making one costs more than sealing a short value with it).

    Example:
        >>> len(aes_gcm(bytes(32)).encrypt(bytes(12), b"x", None))
        17
        >>> aes_gcm(bytes(32)) is aes_gcm(bytes(32))
        True
    """
    found = _CIPHERS.get(key)
    if found is not None:
        return found
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError as exc:
        raise missing_extra() from exc
    if len(_CIPHERS) >= 4096:
        _CIPHERS.clear()
    found = _CIPHERS[bytes(key)] = AESGCM(key)
    return found


def forget_cipher(key: bytes) -> None:
    """Drop the kept cipher object of ``key`` (its subject was erased).

    Example:
        >>> _ = aes_gcm(b"k" * 32); forget_cipher(b"k" * 32); b"k" * 32 in _CIPHERS
        False
    """
    _CIPHERS.pop(bytes(key), None)


_MACS: dict[bytes, Any] = {}


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA256 (RFC 2104) of ``message`` under ``key``: ``hmac.digest(key, message,
    "sha256")``, with the keyed `hmac.HMAC` objects of the last few thousand keys kept
    and copied (setting a key up costs more than a short message).

    Example:
        >>> import hmac
        >>> hmac_sha256(b"k" * 32, b"m") == hmac.digest(b"k" * 32, b"m", "sha256")
        True
    """
    keyed = _MACS.get(key)
    if keyed is None:
        import hmac  # loads OpenSSL: at the first commitment, not by `import gridflow`

        if len(_MACS) >= 4096:
            _MACS.clear()
        keyed = _MACS[bytes(key)] = hmac.new(bytes(key), digestmod="sha256")
    mac = keyed.copy()
    mac.update(message)
    return bytes(mac.digest())


def forget_mac(key: bytes) -> None:
    """Drop the kept hash states of HMAC key ``key`` (its subject was erased).

    Example:
        >>> _ = hmac_sha256(b"e" * 32, b"m"); forget_mac(b"e" * 32); b"e" * 32 in _MACS
        False
    """
    _MACS.pop(bytes(key), None)


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
