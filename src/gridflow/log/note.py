"""C2SP signed notes and tlog-checkpoints, byte for byte as golang.org/x/mod/sumdb/note.

A *signed note* (https://c2sp.org/signed-note) is UTF-8 text ending in a
newline, a blank line, then one line per signature:

    — <key name> <base64(4-byte key hash || signature)>

(U+2014 EM DASH, space, name, space, base64). A *checkpoint*
(https://c2sp.org/tlog-checkpoint) is a signed note whose text is the log's
origin, its tree size and the base64 root hash, one per line, then optional
extension lines.

Keys are strings (they go in key files, environment variables, docs):

    PRIVATE+KEY+<name>+<8 hex digits key hash>+<base64(alg || private key)>   signer
    <name>+<8 hex digits key hash>+<base64(alg || public key)>               verifier

with key hash = the first 4 bytes (big-endian) of SHA-256(name || "\\n" ||
alg || public key). Ed25519 (alg 0x01, RFC 8032) is built in, through the
``cryptography`` package (``pip install 'gridflow[sign]'``).

Other algorithms (SM2 with SM3, GB/T 39786)
-------------------------------------------
Signing and verifying go through two small protocols, `Signer` (``name``,
``key_hash``, ``sign(msg)``) and `Verifier` (``name``, ``key_hash``,
``verify(msg, sig)``): `sign_note`, `open_note`, `sign_checkpoint` and
`verify_checkpoint` accept any object with those members, so a signer backed
by an SM2 library, a hardware module (密码机) or a signing service plugs in
without changing gridflow. To make such keys travel as key strings too, write
a `KeyAlgorithm` (``signer(name, private_key)``, ``verifier(name,
public_key)``, both given the decoded key bytes, algorithm byte first) and
pass it to `signer_from_key` / `verifier_from_key` under its algorithm byte:

    algorithms = {**DEFAULT_ALGORITHMS, 0xFF: MySM2()}
    signer = signer_from_key(text, algorithms=algorithms)

The signed-note spec reserves byte 0xFF for algorithms it assigns no byte to,
followed by a longer identifier (e.g. ``b"\\xffgbt39786/sm2-sm3"`` then the
key); `key_hash`, `signer_key_text` and `verifier_key_text` build the key
strings. tests/test_log_note.py shows a complete (fake) algorithm.

Example:
    >>> skey = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
    >>> vkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
    >>> signed = sign_note("If you think cryptography is the answer to your problem,\\n"
    ...                    "then you don't know what your problem is.\\n", signer_from_key(skey))
    >>> print(signed, end="")  # doctest: +ELLIPSIS
    If you think cryptography is the answer to your problem,
    then you don't know what your problem is.
    <BLANKLINE>
    — PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqf...AM=
    >>> open_note(signed, [vkey]).signatures[0].name
    'PeterNeumann'
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import unicodedata
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

import attrs

from gridflow._errors import NoteError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

__all__ = [
    "ALG_ED25519",
    "DEFAULT_ALGORITHMS",
    "ED25519",
    "MAX_SIGNATURES",
    "Checkpoint",
    "Ed25519",
    "Ed25519Signer",
    "Ed25519Verifier",
    "KeyAlgorithm",
    "Note",
    "Signature",
    "Signer",
    "Verifier",
    "generate_key",
    "key_hash",
    "open_note",
    "read_key_file",
    "sign_checkpoint",
    "sign_note",
    "signer_from_key",
    "signer_key_text",
    "verifier_from_key",
    "verifier_key_text",
    "verify_checkpoint",
    "write_key_file",
]

ALG_ED25519 = 0x01
"""The signed-note signature type of Ed25519."""

MAX_SIGNATURES = 100
"""More signature lines than this make a note malformed (the spec asks for at least 16)."""

_EM_DASH_SPACE = "\u2014 "
_PRIVATE_PREFIX = "PRIVATE+KEY+"
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_HEX8 = re.compile(r"[0-9A-Fa-f]{8}")
_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_TREE_SIZE = re.compile(r"0|[1-9][0-9]*")
# Go's unicode.IsSpace outside the Z categories.
_GO_SPACES = frozenset("\t\n\v\f\r\x85")


@runtime_checkable
class Signer(Protocol):
    """Signs note texts with one key: what `sign_note` needs.

    ``key_hash`` is the 32-bit key id that starts each signature;
    ``sign(msg)`` returns the raw signature of the UTF-8 note text.

    Example:
        >>> s = signer_from_key(
        ...     "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")
        >>> isinstance(s, Signer), s.name, f"{s.key_hash:08x}", len(s.sign(b"hi\\n"))
        (True, 'PeterNeumann', 'c74f20a3', 64)
    """

    @property
    def name(self) -> str:
        """The key name (a schema-less URL such as ``example.org/log`` is recommended)."""
        ...

    @property
    def key_hash(self) -> int:
        """The 32-bit key id."""
        ...

    def sign(self, msg: bytes) -> bytes:
        """The signature of ``msg``."""
        ...


@runtime_checkable
class Verifier(Protocol):
    """Verifies signatures by one key: what `open_note` needs.

    Example:
        >>> v = verifier_from_key(
        ...     "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
        >>> isinstance(v, Verifier), v.verify(b"hi\\n", bytes(64))
        (True, False)
    """

    @property
    def name(self) -> str:
        """The key name."""
        ...

    @property
    def key_hash(self) -> int:
        """The 32-bit key id."""
        ...

    def verify(self, msg: bytes, sig: bytes) -> bool:
        """Whether ``sig`` is a valid signature of ``msg`` by this key."""
        ...


class KeyAlgorithm(Protocol):
    """Builds signers and verifiers from decoded key strings of one algorithm.

    Both methods get the key name and the base64-decoded key data, algorithm
    byte first; they raise `gridflow.NoteError` when the data is malformed.
    The caller checks the returned object's ``key_hash`` against the key
    string's, so a signer must compute it from its *public* key.

    Example:
        >>> signer = ED25519.signer("PeterNeumann", base64.b64decode(
        ...     "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"))
        >>> f"{signer.key_hash:08x}"
        'c74f20a3'
    """

    def signer(self, name: str, private_key: bytes) -> Signer:
        """The signer of key ``name`` with ``private_key`` (algorithm byte first)."""
        ...

    def verifier(self, name: str, public_key: bytes) -> Verifier:
        """The verifier of key ``name`` with ``public_key`` (algorithm byte first)."""
        ...


def _is_valid_name(name: object) -> bool:
    # Go: non-empty, valid UTF-8, no unicode.IsSpace, no '+'. We also refuse
    # control characters: a note may not contain them, so such a key could
    # never sign an openable note.
    if not isinstance(name, str) or not name or "+" in name:
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return not any(
        c in _GO_SPACES or unicodedata.category(c) in ("Zs", "Zl", "Zp", "Cc") for c in name
    )


def _check_name(name: object, what: str) -> str:
    if not _is_valid_name(name):
        raise NoteError(
            f"{what} must be a non-empty name without spaces, '+' or control characters "
            "(a schema-less URL such as 'example.org/gridflow' is recommended)"
        )
    assert isinstance(name, str)
    return name


def _b64decode(text: str) -> bytes | None:
    # Standard base64 with padding, nothing else: what Go's StdEncoding accepts.
    if not text.isascii() or not _B64.fullmatch(text):
        return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def key_hash(name: str, public_key: bytes) -> int:
    """The signed-note key id: the first 4 bytes of SHA-256(name || "\\n" || public_key).

    ``public_key`` is the encoded key, algorithm byte first.

    Example:
        >>> pub = base64.b64decode("ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
        >>> f"{key_hash('PeterNeumann', pub):08x}"
        'c74f20a3'
    """
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def verifier_key_text(name: str, public_key: bytes) -> str:
    """The verifier key string ``<name>+<hash>+<base64(public_key)>``.

    Example:
        >>> pub = base64.b64decode("ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
        >>> verifier_key_text("PeterNeumann", pub)
        'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW'
    """
    _check_name(name, "the key name")
    return f"{name}+{key_hash(name, public_key):08x}+{base64.b64encode(public_key).decode()}"


def signer_key_text(name: str, private_key: bytes, public_key: bytes) -> str:
    """The signer key string ``PRIVATE+KEY+<name>+<hash of public_key>+<base64(private_key)>``.

    Example:
        >>> signer_key_text("example.org/log", b"\\x01" + bytes(32), b"\\x01" + bytes(32))[:28]
        'PRIVATE+KEY+example.org/log+'
    """
    _check_name(name, "the key name")
    return (f"{_PRIVATE_PREFIX}{name}+{key_hash(name, public_key):08x}+"
            f"{base64.b64encode(private_key).decode()}")


def _ed25519() -> Any:
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as exc:
        raise ImportError(
            "Ed25519 signing and verifying need the 'cryptography' package: "
            "pip install 'gridflow[sign]'"
        ) from exc
    return ed25519


@attrs.frozen
class Ed25519Signer:
    """A `Signer` with an Ed25519 private key (build it with `signer_from_key`).

    Example:
        >>> skey, vkey = generate_key("example.org/log")
        >>> signer = signer_from_key(skey)
        >>> verifier_from_key(vkey).verify(b"x\\n", signer.sign(b"x\\n"))
        True
    """

    name: str
    key_hash: int
    _key: Ed25519PrivateKey = attrs.field(repr=False, alias="key")

    def sign(self, msg: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``msg``.

        Example:
            >>> skey, _ = generate_key("example.org/log")
            >>> len(signer_from_key(skey).sign(b"x\\n"))
            64
        """
        return self._key.sign(msg)


@attrs.frozen
class Ed25519Verifier:
    """A `Verifier` with an Ed25519 public key (build it with `verifier_from_key`).

    Example:
        >>> v = verifier_from_key(
        ...     "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
        >>> v.name, f"{v.key_hash:08x}"
        ('PeterNeumann', 'c74f20a3')
    """

    name: str
    key_hash: int
    _key: Ed25519PublicKey = attrs.field(repr=False, alias="key")

    def verify(self, msg: bytes, sig: bytes) -> bool:
        """Whether ``sig`` is this key's Ed25519 signature of ``msg``.

        Example:
            >>> v = verifier_from_key(
            ...     "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
            >>> v.verify(b"x\\n", b"short")
            False
        """
        from cryptography.exceptions import InvalidSignature

        if len(sig) != 64:
            return False
        try:
            self._key.verify(sig, msg)
        except InvalidSignature:
            return False
        return True


class Ed25519:
    """The built-in `KeyAlgorithm`: Ed25519, signature type 0x01.

    Example:
        >>> pub = base64.b64decode("ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
        >>> f"{ED25519.verifier('PeterNeumann', pub).key_hash:08x}"
        'c74f20a3'
    """

    def signer(self, name: str, private_key: bytes) -> Ed25519Signer:
        """The signer of a 0x01 || 32-byte seed private key.

        Example:
            >>> ED25519.signer("n", b"\\x01" + bytes(31))
            Traceback (most recent call last):
            ...
            gridflow._errors.NoteError: an Ed25519 signer key holds 0x01 and a 32-byte seed \
(33 bytes), this one has 32 bytes
        """
        if len(private_key) != 33 or private_key[0] != ALG_ED25519:
            raise NoteError("an Ed25519 signer key holds 0x01 and a 32-byte seed (33 bytes), "
                            f"this one has {len(private_key)} bytes")
        key = _ed25519().Ed25519PrivateKey.from_private_bytes(private_key[1:])
        public = b"\x01" + key.public_key().public_bytes_raw()
        return Ed25519Signer(name, key_hash(name, public), key)

    def verifier(self, name: str, public_key: bytes) -> Ed25519Verifier:
        """The verifier of a 0x01 || 32-byte public key.

        Example:
            >>> ED25519.verifier("n", b"\\x01" + bytes(33))
            Traceback (most recent call last):
            ...
            gridflow._errors.NoteError: an Ed25519 verifier key holds 0x01 and a 32-byte \
public key (33 bytes), this one has 34 bytes
        """
        if len(public_key) != 33 or public_key[0] != ALG_ED25519:
            raise NoteError("an Ed25519 verifier key holds 0x01 and a 32-byte public key "
                            f"(33 bytes), this one has {len(public_key)} bytes")
        try:
            key = _ed25519().Ed25519PublicKey.from_public_bytes(public_key[1:])
        except ValueError as exc:
            raise NoteError("the Ed25519 verifier key is not a valid public key") from exc
        return Ed25519Verifier(name, key_hash(name, public_key), key)


ED25519 = Ed25519()
"""The Ed25519 `KeyAlgorithm`."""

DEFAULT_ALGORITHMS: Mapping[int, KeyAlgorithm] = MappingProxyType({ALG_ED25519: ED25519})
"""The algorithms key strings may use unless told otherwise: Ed25519 only."""


def generate_key(name: str) -> tuple[str, str]:
    """A new Ed25519 key pair named ``name``: ``(signer_key, verifier_key)`` strings.

    The signer key is secret (keep it in a key file readable only by the
    checkpointing service, see `write_key_file`); publish the verifier key.

    Example:
        >>> import gridflow
        >>> skey, vkey = gridflow.generate_key("example.org/gridflow")
        >>> skey.startswith("PRIVATE+KEY+example.org/gridflow+"), vkey.split("+")[0]
        (True, 'example.org/gridflow')
        >>> signer_from_key(skey).key_hash == verifier_from_key(vkey).key_hash
        True
    """
    _check_name(name, "the key name")
    key = _ed25519().Ed25519PrivateKey.generate()
    public = b"\x01" + key.public_key().public_bytes_raw()
    private = b"\x01" + key.private_bytes_raw()
    return signer_key_text(name, private, public), verifier_key_text(name, public)


def _split_key(text: object, private: bool) -> tuple[str, int, bytes]:
    kind = "signer" if private else "verifier"
    shape = ("PRIVATE+KEY+<name>+<8 hex digits>+<base64 key>" if private
             else "<name>+<8 hex digits>+<base64 key>")
    if not isinstance(text, str):
        raise NoteError(f"a {kind} key is a string {shape}, got {type(text).__name__}")
    if private and not text.startswith(_PRIVATE_PREFIX):
        raise NoteError(f"this is not a signer key: signing needs the private key {shape}"
                        + (" (this looks like a verifier key)" if text.count("+") >= 2 else ""))
    if not private and text.startswith(_PRIVATE_PREFIX):
        raise NoteError("this is a signer (private) key: verifying needs the verifier key "
                        "<name>+<8 hex digits>+<base64 key>; never hand out the private key")
    rest = text[len(_PRIVATE_PREFIX):] if private else text
    name, _, rest = rest.partition("+")
    hash16, _, key64 = rest.partition("+")
    data = _b64decode(key64)
    if not _HEX8.fullmatch(hash16) or data is None or not data or not _is_valid_name(name):
        raise NoteError(f"malformed {kind} key: expected {shape}")
    return name, int(hash16, 16), data


def _algorithm(data: bytes, algorithms: Mapping[int, KeyAlgorithm], kind: str) -> KeyAlgorithm:
    algorithm = algorithms.get(data[0])
    if algorithm is None:
        known = ", ".join(f"0x{a:02x}" for a in sorted(algorithms)) or "none"
        raise NoteError(f"the {kind} key uses unknown algorithm 0x{data[0]:02x}; known: {known} "
                        "(pass algorithms= to add one)")
    return algorithm


def signer_from_key(
    text: str, *, algorithms: Mapping[int, KeyAlgorithm] = DEFAULT_ALGORITHMS
) -> Signer:
    """The `Signer` of a signer key string ``PRIVATE+KEY+<name>+<hash>+<key>``.

    Refuses (`gridflow.NoteError`) a malformed key, an unknown algorithm and
    a key hash that does not match the key.

    Example:
        >>> signer_from_key("PRIVATE+KEY+PeterNeumann+c74f20a3+"
        ...                 "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz").name
        'PeterNeumann'
        >>> signer_from_key("PRIVATE+KEY+PeterNeumann+00000000+"
        ...                 "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")
        Traceback (most recent call last):
        ...
        gridflow._errors.NoteError: the signer key's hash 00000000 does not match its key
    """
    name, declared, data = _split_key(text, private=True)
    signer = _algorithm(data, algorithms, "signer").signer(name, data)
    if signer.key_hash != declared or signer.name != name:
        raise NoteError(f"the signer key's hash {declared:08x} does not match its key")
    return signer


def verifier_from_key(
    text: str, *, algorithms: Mapping[int, KeyAlgorithm] = DEFAULT_ALGORITHMS
) -> Verifier:
    """The `Verifier` of a verifier key string ``<name>+<hash>+<key>``.

    Refuses (`gridflow.NoteError`) a malformed key, an unknown algorithm and
    a key hash that does not match the key.

    Example:
        >>> verifier_from_key("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
        ...                   ).name
        'PeterNeumann'
        >>> verifier_from_key("PeterNeumann+c74f20a3+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
        Traceback (most recent call last):
        ...
        gridflow._errors.NoteError: the verifier key uses unknown algorithm 0x65; known: 0x01 \
(pass algorithms= to add one)
    """
    name, declared, data = _split_key(text, private=False)
    verifier = _algorithm(data, algorithms, "verifier").verifier(name, data)
    if verifier.key_hash != declared or verifier.name != name:
        raise NoteError(f"the verifier key's hash {declared:08x} does not match its key")
    return verifier


@attrs.frozen
class Signature:
    """One signature line of a note: key name, key hash and the base64 of hash || signature.

    Example:
        >>> sig = Signature("PeterNeumann", 0xC74F20A3, "x08go/ZJ...")
        >>> sig.line()
        '— PeterNeumann x08go/ZJ...\\n'
    """

    name: str
    key_hash: int
    b64: str

    def line(self) -> str:
        """The signature line as it appears in the note, newline included.

        Example:
            >>> Signature("k", 1, "AAAAAQA=").line()
            '— k AAAAAQA=\\n'
        """
        return f"{_EM_DASH_SPACE}{self.name} {self.b64}\n"


@attrs.frozen
class Note:
    """An opened note: its text, the signatures verified, and those by unknown keys.

    ``unverified`` signatures were ignored (the spec requires it: they may be
    witnesses' cosignatures or a rotated key); `sign_note` keeps them when it
    adds signatures to a note.

    Example:
        >>> n = Note("hello\\n")
        >>> n.text, n.signatures, n.unverified
        ('hello\\n', (), ())
    """

    text: str
    signatures: tuple[Signature, ...] = ()
    unverified: tuple[Signature, ...] = ()


def _check_text(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise NoteError(f"{what} must be a string, got {type(text).__name__}")
    if not text.endswith("\n"):
        raise NoteError(f"{what} must end with a newline")
    if _CONTROL.search(text):
        raise NoteError(f"{what} must not contain control characters other than newline")
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise NoteError(f"{what} is not valid Unicode text (lone surrogate)") from exc


def sign_note(note: str | Note, *signers: Signer) -> str:
    """Sign a note text (or add signatures to an opened `Note`): the signed note.

    The text must end with a newline and contain no control character but
    newline (it may contain blank lines). Signatures already on a `Note` come
    first, except those by one of ``signers``, which are replaced.

    Example:
        >>> skey, vkey = generate_key("example.org/log")
        >>> signed = sign_note("hello\\n", signer_from_key(skey))
        >>> signed.startswith("hello\\n\\n— example.org/log "), signed.endswith("\\n")
        (True, True)
        >>> sign_note("no newline", signer_from_key(skey))
        Traceback (most recent call last):
        ...
        gridflow._errors.NoteError: the note text must end with a newline
    """
    text, existing = (note.text, note.signatures + note.unverified) if isinstance(note, Note) \
        else (note, ())
    msg = _check_text(text, "the note text")
    if not signers:
        raise NoteError("sign_note needs at least one signer: a note without a signature "
                        "cannot be opened")
    new_lines: list[str] = []
    replaced: set[tuple[str, int]] = set()
    for signer in signers:
        name, kh = signer.name, signer.key_hash
        _check_name(name, "the signer's key name")
        if isinstance(kh, bool) or not isinstance(kh, int) or not 0 <= kh < 1 << 32:
            raise NoteError(f"signer {name!r} has no 32-bit key hash")
        sig = signer.sign(msg)
        if not isinstance(sig, bytes) or not sig:
            raise NoteError(f"signer {name!r} returned no signature bytes")
        replaced.add((name, kh))
        b64 = base64.b64encode(kh.to_bytes(4, "big") + sig).decode("ascii")
        new_lines.append(Signature(name, kh, b64).line())
    kept = []
    for old in existing:
        if (old.name, old.key_hash) in replaced:
            continue
        raw = _b64decode(old.b64)
        if not _is_valid_name(old.name) or raw is None or len(raw) < 5 \
                or int.from_bytes(raw[:4], "big") != old.key_hash:
            raise NoteError("an existing signature of the note is malformed")
        kept.append(old.line())
    if len(kept) + len(new_lines) > MAX_SIGNATURES:
        raise NoteError(f"a note may carry at most {MAX_SIGNATURES} signatures")
    return text + "\n" + "".join(kept) + "".join(new_lines)


def _verifier_list(
    verifiers: Verifier | str | Iterable[Verifier | str],
) -> dict[tuple[str, int], list[Verifier]]:
    # hasattr, not isinstance(..., Verifier): a runtime Protocol check costs
    # tens of microseconds, more than the rest of opening a checkpoint.
    items: Iterable[Verifier | str]
    if isinstance(verifiers, str) or hasattr(verifiers, "verify"):
        items = [cast("Verifier | str", verifiers)]
    else:
        items = verifiers
    known: dict[tuple[str, int], list[Verifier]] = {}
    for item in items:
        v = verifier_from_key(item) if isinstance(item, str) else item
        if not all(hasattr(v, a) for a in ("name", "key_hash", "verify")):
            raise NoteError(f"a verifier is a verifier key string or an object with name, "
                            f"key_hash and verify(msg, sig), got {type(v).__name__}")
        known.setdefault((v.name, v.key_hash), []).append(v)
    return known


def open_note(
    signed: str | bytes, verifiers: Verifier | str | Iterable[Verifier | str]
) -> Note:
    """Parse a signed note and verify its signatures by the known ``verifiers``.

    ``verifiers`` are `Verifier` objects or verifier key strings. Signatures
    by other keys are kept in `Note.unverified` and otherwise ignored (even
    when they share a name or a key hash, but not both, with a known key).
    Raises `gridflow.NoteError` when the note is malformed (not UTF-8, a
    control character, no blank line before the signatures, a bad signature
    line, more than `MAX_SIGNATURES`), when a known key's signature does not
    verify, and when no known key signed it.

    Example:
        >>> skey, vkey = generate_key("example.org/log")
        >>> other_skey, other_vkey = generate_key("example.org/log")
        >>> open_note(sign_note("hello\\n", signer_from_key(skey)), [vkey]).text
        'hello\\n'
        >>> open_note(sign_note("hello\\n", signer_from_key(skey)), [other_vkey])
        Traceback (most recent call last):
        ...
        gridflow._errors.NoteError: the note is signed by no trusted key (1 signature by \
unknown keys)
    """
    if isinstance(signed, bytes):
        try:
            signed = signed.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NoteError("malformed note: it is not valid UTF-8") from exc
    if not isinstance(signed, str):
        raise NoteError(f"a signed note is text, got {type(signed).__name__}")
    if _CONTROL.search(signed):
        raise NoteError("malformed note: it contains a control character other than newline")
    split = signed.rfind("\n\n")
    if split < 0:
        raise NoteError("malformed note: no blank line separates the text from the signatures")
    text, block = signed[: split + 1], signed[split + 2 :]
    if not block:
        raise NoteError("malformed note: no signature line after the last blank line")
    if not block.endswith("\n"):
        raise NoteError("malformed note: the signature lines must end with a newline")
    try:
        msg = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise NoteError("malformed note: it is not valid Unicode text") from exc
    known = _verifier_list(verifiers)
    verified: list[Signature] = []
    unverified: list[Signature] = []
    seen: set[tuple[str, int]] = set()
    seen_unverified: set[str] = set()
    for count, line in enumerate(block[:-1].split("\n"), start=1):
        if count > MAX_SIGNATURES:
            raise NoteError(f"malformed note: more than {MAX_SIGNATURES} signatures")
        if not line.startswith(_EM_DASH_SPACE):
            raise NoteError(f"malformed note: signature line {count} does not start with "
                            "'\u2014 ' (U+2014 EM DASH, space)")
        name, _, b64 = line[len(_EM_DASH_SPACE) :].partition(" ")
        raw = _b64decode(b64)
        if raw is None or not b64 or len(raw) < 5 or not _is_valid_name(name):
            raise NoteError(f"malformed note: signature line {count} is not "
                            "'\u2014 <key name> <base64(key hash || signature)>'")
        kh = int.from_bytes(raw[:4], "big")
        candidates = known.get((name, kh))
        if candidates is None:
            if line not in seen_unverified:
                seen_unverified.add(line)
                unverified.append(Signature(name, kh, b64))
            continue
        if len(candidates) > 1:
            raise NoteError(f"ambiguous verifiers: {len(candidates)} different keys are named "
                            f"{name!r} with hash {kh:08x}")
        if (name, kh) in seen:
            continue
        seen.add((name, kh))
        if not candidates[0].verify(msg, raw[4:]):
            raise NoteError(f"invalid signature by key {name}+{kh:08x}: the note was altered "
                            "or signed by another key")
        verified.append(Signature(name, kh, b64))
    if not verified:
        n = len(unverified)
        raise NoteError(f"the note is signed by no trusted key ({n} signature"
                        f"{'' if n == 1 else 's'} by unknown keys)")
    return Note(text, tuple(verified), tuple(unverified))


def _check_line(value: object, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise NoteError(f"the checkpoint {what} must be a non-empty string")
    if "\n" in value or _CONTROL.search(value):
        raise NoteError(f"the checkpoint {what} must be one line without control characters")
    return value


def _lines(value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        raise NoteError("checkpoint extension lines are a sequence of strings, not one string")
    return tuple(value)


@attrs.frozen
class Checkpoint:
    """A tlog-checkpoint: origin, tree size, root hash, optional extension lines.

    Example:
        >>> from gridflow.log import merkle
        >>> cp = Checkpoint("example.org/log", 2, merkle.root([merkle.leaf_hash(b"a")] * 2))
        >>> print(cp.to_text(), end="")
        example.org/log
        2
        gCXedHuv4lYNa5kb2xfKie/htv7dob4gnA7gFTOIYeo=
        >>> Checkpoint.parse(cp.to_text()) == cp
        True
    """

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = attrs.field(default=(), converter=_lines)

    def __attrs_post_init__(self) -> None:
        _check_line(self.origin, "origin")
        if isinstance(self.size, bool) or not isinstance(self.size, int) \
                or not 0 <= self.size < 1 << 64:
            raise NoteError("the checkpoint tree size must be an integer in 0..2**64-1")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != 32:
            raise NoteError("the checkpoint root hash must be 32 bytes (SHA-256)")
        for line in self.extensions:
            _check_line(line, "extension line")

    def to_text(self) -> str:
        """The note text: one line each for origin, size, base64 root, extensions.

        Example:
            >>> Checkpoint("o", 0, bytes(32), ("x=1",)).to_text()
            'o\\n0\\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\\nx=1\\n'
        """
        lines = [self.origin, str(self.size), base64.b64encode(self.root_hash).decode("ascii"),
                 *self.extensions]
        return "\n".join(lines) + "\n"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """The checkpoint of a note text (not the signed note: see `verify_checkpoint`).

        Refuses (`gridflow.NoteError`) fewer than three lines, an empty line,
        a size that is not plain decimal, a root that is not canonical base64
        of 32 bytes.

        Example:
            >>> Checkpoint.parse("o\\n007\\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\\n")
            Traceback (most recent call last):
            ...
            gridflow._errors.NoteError: malformed checkpoint: the tree size line must be \
decimal digits without leading zeros
        """
        _check_text(text, "the checkpoint text")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise NoteError("malformed checkpoint: it needs an origin, a tree size and a root "
                            f"hash line, it has {len(lines)} line(s)")
        origin, size_line, root_line, *extensions = lines
        if not _TREE_SIZE.fullmatch(size_line):
            raise NoteError("malformed checkpoint: the tree size line must be decimal digits "
                            "without leading zeros")
        root_hash = _b64decode(root_line)
        if root_hash is None or len(root_hash) != 32 \
                or base64.b64encode(root_hash).decode("ascii") != root_line:
            raise NoteError("malformed checkpoint: the root hash line must be the base64 of "
                            "32 bytes")
        if any(not line for line in [origin, *extensions]):
            raise NoteError("malformed checkpoint: the origin and extension lines must not "
                            "be empty")
        return cls(origin, int(size_line), root_hash, tuple(extensions))


def sign_checkpoint(cp: Checkpoint, signer: Signer | str) -> str:
    """The signed checkpoint note; ``signer`` is a `Signer` or a signer key string.

    Example:
        >>> from gridflow.log import merkle
        >>> skey, vkey = generate_key("example.org/log")
        >>> text = sign_checkpoint(Checkpoint("example.org/log", 0, merkle.EMPTY_ROOT), skey)
        >>> verify_checkpoint(text, vkey).size
        0
    """
    if isinstance(signer, str):
        signer = signer_from_key(signer)
    return sign_note(cp.to_text(), signer)


def verify_checkpoint(
    text: str | bytes, verifier: Verifier | str, *, origin: str | None = None
) -> Checkpoint:
    """Open a signed checkpoint with ``verifier`` (a `Verifier` or a verifier key string).

    With ``origin``, also refuse a checkpoint of another log. Raises
    `gridflow.NoteError` on a malformed note or checkpoint, a signature that
    does not verify, or no signature by ``verifier``.

    Example:
        >>> from gridflow.log import merkle
        >>> skey, vkey = generate_key("example.org/log")
        >>> text = sign_checkpoint(Checkpoint("example.org/log", 0, merkle.EMPTY_ROOT), skey)
        >>> verify_checkpoint(text.replace("\\n0\\n", "\\n1\\n"), vkey)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        gridflow._errors.NoteError: invalid signature by key example.org/log+...: the note was \
altered or signed by another key
    """
    cp = Checkpoint.parse(open_note(text, [verifier]).text)
    if origin is not None and cp.origin != origin:
        raise NoteError(f"the checkpoint is of log {cp.origin!r}, not of {origin!r}")
    return cp


def read_key_file(path: str | os.PathLike[str]) -> str:
    """The key string in a key file (one line; a final newline is allowed).

    Example:
        >>> import tempfile, pathlib
        >>> skey, vkey = generate_key("example.org/log")
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "log.pub"
        >>> write_key_file(path, vkey)
        >>> read_key_file(path) == vkey
        True
    """
    try:
        data = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise NoteError(f"cannot read key file {os.fspath(path)!r}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise NoteError(f"key file {os.fspath(path)!r} is not UTF-8 text") from exc
    key = data[:-2] if data.endswith("\r\n") else data[:-1] if data.endswith("\n") else data
    if not key or any(c in key for c in "\r\n") or key != key.strip():
        raise NoteError(f"key file {os.fspath(path)!r} must hold exactly one key string on one "
                        "line")
    return key


def write_key_file(path: str | os.PathLike[str], key: str, *, overwrite: bool = False) -> None:
    """Write a key string to a new key file (one line), readable only by its owner if private.

    Refuses to replace an existing file unless ``overwrite``: losing a signer
    key by accident means rotating it.

    Example:
        >>> import os, tempfile, pathlib
        >>> skey, vkey = generate_key("example.org/log")
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "log.key"
        >>> write_key_file(path, skey)
        >>> oct(path.stat().st_mode & 0o777) if os.name == "posix" else "0o600"
        '0o600'
        >>> write_key_file(path, skey)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        gridflow._errors.NoteError: key file '...log.key' exists; pass overwrite=True to replace it
    """
    private = isinstance(key, str) and key.startswith(_PRIVATE_PREFIX)
    _split_key(key, private=private)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    mode = 0o600 if private else 0o644
    try:
        fd = os.open(path, flags, mode)
    except FileExistsError:
        raise NoteError(f"key file {os.fspath(path)!r} exists; pass overwrite=True to replace "
                        "it") from None
    except OSError as exc:
        raise NoteError(f"cannot write key file {os.fspath(path)!r}: {exc.strerror}") from exc
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
        if private and hasattr(os, "fchmod"):
            # O_TRUNC keeps an existing file's mode: a private key must not stay readable.
            os.fchmod(fd, 0o600)
        f.write(key + "\n")
