"""Master keys and per-subject keys: generate, load, wrap, unwrap, rotate.

Every data subject (个人信息主体) gets its own random 32-byte *subject key*;
their values are encrypted under it (`gridflow.personal.cipher`) and their
commitments keyed from it (`gridflow.personal.commitment`). Destroying it
forgets the person (crypto-shredding) without touching any event.

Subject keys are stored only *wrapped* (AES key wrap, RFC 3394 / NIST SP
800-38F) by a master key the host provides: a `Keyring` (a key file, an
environment variable) or anything implementing `MasterKey`, such as a KMS
client. Rotating the master key re-wraps the subject keys (`rewrap`); the
events, commitments and ciphertexts stay as they are.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable

from gridflow._errors import KeyringError
from gridflow.personal._crypto import key_unwrap, key_wrap

__all__ = ["KEY_SIZE", "Keyring", "MasterKey", "new_subject_key", "parse_key_text", "rewrap"]

#: Bytes in a master key and in a subject key (AES-256).
KEY_SIZE = 32

_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")


@runtime_checkable
class MasterKey(Protocol):
    """What wraps subject keys: a `Keyring`, or a host's adapter over a KMS.

    ``wrap`` must be authenticated (``unwrap`` of anything it did not make
    raises `gridflow.personal.KeyringError` or another `gridflow.GridflowError`),
    and ``key_id`` names the master key so that a store can record which one
    wrapped each subject key (and rotation can tell old from new).

    Example:
        >>> class Kms:
        ...     key_id = "kms:alias/gridflow"
        ...     def wrap(self, key: bytes) -> bytes: ...
        ...     def unwrap(self, wrapped: bytes) -> bytes: ...
        >>> isinstance(Kms(), MasterKey), isinstance(Keyring.generate(), MasterKey)
        (True, True)
    """

    @property
    def key_id(self) -> str:
        """A stable, non-secret name of this master key."""
        ...

    def wrap(self, key: bytes) -> bytes:
        """``key`` wrapped (encrypted and authenticated) under the master key."""
        ...

    def unwrap(self, wrapped: bytes) -> bytes:
        """The key `wrap` wrapped; raises a `gridflow.GridflowError` if it does not check out."""
        ...


def new_subject_key() -> bytes:
    """A fresh random subject key (32 bytes from the OS's CSPRNG).

    Example:
        >>> len(new_subject_key()), new_subject_key() != new_subject_key()
        (32, True)
    """
    import secrets  # loaded when a key is first made, not by `import gridflow`

    return secrets.token_bytes(KEY_SIZE)


def parse_key_text(text: str, where: str = "the key text") -> bytes:
    """A 32-byte key from its text form: 64 hex digits, or base64 (standard or URL-safe).

    Surrounding whitespace is ignored. The text itself is never shown in the
    error.

    Example:
        >>> parse_key_text("00" * 32) == bytes(32)
        True
        >>> import base64
        >>> parse_key_text(base64.b64encode(b"k" * 32).decode() + "\\n") == b"k" * 32
        True
    """
    text = text.strip()
    if _HEX_KEY.fullmatch(text):
        return bytes.fromhex(text)
    raw: bytes | None = None
    if re.fullmatch(r"[A-Za-z0-9+/_-]+={0,2}", text):
        import base64
        import binascii

        standard = text.rstrip("=").replace("-", "+").replace("_", "/")
        try:
            raw = base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
        except (binascii.Error, ValueError):
            raw = None
    if raw is None or len(raw) != KEY_SIZE:
        got = f"{len(raw)} bytes" if raw is not None else f"{len(text)} characters of other text"
        raise KeyringError(
            f"{where} is not a {KEY_SIZE}-byte master key (got {got}); write it as 64 hex "
            "digits or as base64 (44 characters), e.g. the output of "
            "python -c \"import secrets; print(secrets.token_hex(32))\""
        )
    return raw


class Keyring:
    """A master key held in memory: wraps and unwraps subject keys (a `MasterKey`).

    ``master_key`` must be exactly 32 bytes (`gridflow.personal.KeyringError`
    otherwise). ``key_id`` defaults to a fingerprint: the first 16 hex digits
    of HMAC-SHA256(master key, "gridflow key id"), which names the key without
    revealing it. The key never appears in ``repr`` or in an error.

    Example:
        >>> ring = Keyring(bytes(range(32)))
        >>> ring
        Keyring(key_id='c166eace82736c3a')
        >>> key = new_subject_key()
        >>> ring.unwrap(ring.wrap(key)) == key
        True
    """

    __slots__ = ("_key", "_key_id")

    def __init__(self, master_key: bytes, *, key_id: str | None = None) -> None:
        if not isinstance(master_key, bytes | bytearray) or len(master_key) != KEY_SIZE:
            got = (f"{len(master_key)} bytes" if isinstance(master_key, bytes | bytearray)
                   else f"a {type(master_key).__name__}")
            raise KeyringError(
                f"a master key is {KEY_SIZE} random bytes, got {got}; make one with "
                "gridflow.Keyring.generate(), or load one with Keyring.from_file(path) / "
                "Keyring.from_env(variable)"
            )
        self._key = bytes(master_key)
        import hashlib
        import hmac

        self._key_id = key_id or hmac.new(self._key, b"gridflow key id",
                                          hashlib.sha256).hexdigest()[:16]

    @classmethod
    def generate(cls) -> Keyring:
        """A keyring with a fresh random master key, for tests and demos.

        Its key lives only in this process: values sealed under it cannot be
        read after a restart. Production hosts load a key they keep.

        Example:
            >>> Keyring.generate().key_id != Keyring.generate().key_id
            True
        """
        return cls(new_subject_key())

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Keyring:
        """A keyring whose master key is read from a file.

        The file holds the 32 raw bytes, or their text form (64 hex digits or
        base64, surrounding whitespace ignored). Keep it readable only by the
        service (``chmod 600``) and outside the database's backups.

        Example:
            >>> import tempfile, pathlib
            >>> with tempfile.TemporaryDirectory() as tmp:
            ...     key_file = pathlib.Path(tmp, "master.key")
            ...     _ = key_file.write_text("ab" * 32)
            ...     Keyring.from_file(key_file).key_id == Keyring(b"\\xab" * 32).key_id
            True
        """
        if not isinstance(path, str | os.PathLike) or not isinstance(os.fspath(path), str):
            raise KeyringError(f"from_file(path=...) takes a file path (a str or a "
                               f"pathlib.Path), got {type(path).__name__}")
        where = f"master key file {os.fspath(path)!r}"
        try:
            raw = Path(path).read_bytes()
        except ValueError:
            # A NUL or a lone surrogate in the name: no file can have it.
            raise KeyringError(f"cannot read {where}: the name has a NUL character or a lone "
                               "surrogate; give the path of the master key file") from None
        except OSError as exc:
            raise KeyringError(
                f"cannot read {where}: {exc.strerror or exc}; give the path of a file "
                f"holding a {KEY_SIZE}-byte key (raw, 64 hex digits or base64)"
            ) from None
        if len(raw) == KEY_SIZE:
            return cls(raw)
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            raise KeyringError(
                f"{where} holds {len(raw)} bytes that are neither a raw {KEY_SIZE}-byte key "
                "nor its text form (64 hex digits or base64)"
            ) from None
        return cls(parse_key_text(text, where))

    @classmethod
    def from_env(cls, variable: str = "GRIDFLOW_MASTER_KEY", *,
                 environ: Mapping[str, str] | None = None) -> Keyring:
        """A keyring whose master key is an environment variable's value (hex or base64).

        ``environ`` defaults to `os.environ` (pass a mapping in tests).

        Example:
            >>> Keyring.from_env("KEY", environ={"KEY": "ab" * 32}).key_id
            'd6d77943fcdff9c6'
        """
        if not isinstance(variable, str) or not variable:
            raise KeyringError(f"from_env(variable=...) takes the name of an environment "
                               f"variable (a string), got {type(variable).__name__}")
        if environ is not None and not isinstance(environ, Mapping):
            raise KeyringError(f"from_env(environ=...) takes None or a mapping of variable "
                               f"names to values, got {type(environ).__name__}")
        env = os.environ if environ is None else environ
        text = env.get(variable)
        if text is not None and not isinstance(text, str):
            # Never the value itself: it is the key, or meant to be.
            raise KeyringError(f"environment variable {variable!r} holds a "
                               f"{type(text).__name__}, not text; set it to a {KEY_SIZE}-byte "
                               "master key as 64 hex digits or base64")
        if text is None or not text.strip():
            raise KeyringError(
                f"environment variable {variable!r} is not set; set it to a {KEY_SIZE}-byte "
                "master key as 64 hex digits or base64"
            )
        return cls(parse_key_text(text, f"environment variable {variable!r}"))

    @property
    def key_id(self) -> str:
        """The non-secret name of this master key (see the class docstring)."""
        return self._key_id

    def wrap(self, key: bytes) -> bytes:
        """``key`` (32 bytes) wrapped with AES key wrap: 40 bytes.

        Example:
            >>> len(Keyring.generate().wrap(new_subject_key()))
            40
        """
        if not isinstance(key, bytes | bytearray) or len(key) != KEY_SIZE:
            raise KeyringError(f"only {KEY_SIZE}-byte subject keys are wrapped "
                               "(make one with new_subject_key())")
        return key_wrap(self._key, bytes(key))

    def unwrap(self, wrapped: bytes) -> bytes:
        """The subject key `wrap` wrapped; `KeyringError` if another master key wrapped it.

        Example:
            >>> old, new = Keyring.generate(), Keyring.generate()
            >>> try:
            ...     new.unwrap(old.wrap(new_subject_key()))
            ... except KeyringError as exc:
            ...     print(str(exc).split(";")[0] == f"a wrapped subject key does not "
            ...           f"unwrap with master key {new.key_id!r}")
            True
        """
        key = key_unwrap(self._key, bytes(wrapped)) if isinstance(
            wrapped, bytes | bytearray) else None
        if key is None:
            raise KeyringError(
                f"a wrapped subject key does not unwrap with master key {self._key_id!r}; "
                "it was wrapped by another master key (after a rotation, unwrap with the "
                "old keyring or rewrap(old, new, wrapped)) or the stored bytes were edited"
            )
        return key

    def __repr__(self) -> str:
        return f"Keyring(key_id={self._key_id!r})"

    def __reduce__(self) -> tuple[object, ...]:
        # A pickled keyring would write the master key wherever the pickle
        # goes (a task queue, a cache): refuse rather than leak it.
        raise TypeError("a Keyring is not picklable: give each process the key file or "
                        "environment variable instead")


def rewrap(old: MasterKey, new: MasterKey, wrapped: bytes) -> bytes:
    """A subject key wrapped by ``old``, re-wrapped by ``new`` (master-key rotation).

    Only the wrapped subject keys change: ciphertexts, commitments and events
    stay byte for byte, so every hash still verifies.

    Example:
        >>> old, new, key = Keyring.generate(), Keyring.generate(), new_subject_key()
        >>> new.unwrap(rewrap(old, new, old.wrap(key))) == key
        True
    """
    return new.wrap(old.unwrap(wrapped))
