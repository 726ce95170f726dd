"""Sealing one personal value into a reference and a ciphertext, and opening it again.

This is the composition the engine calls for each value a declared path
finds (`gridflow.personal.paths.find`): encrypt it under the subject key,
commit to it, and put a reference in its place. The plaintext sealed is the
value's canonical JSON text (`value_text`), so a string, a number or a whole
object (a ``free_text`` ``contact`` block) round-trips exactly.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from gridflow._errors import DecryptionError, InvalidPayload
from gridflow.personal.cipher import context, decrypt, encrypt
from gridflow.personal.commitment import commit, commitment_key, verify_commitment
from gridflow.personal.fields import KINDS
from gridflow.personal.reference import (
    REF_KEY,
    Reference,
    make_reference,
    new_ref_id,
    parse_reference,
)

__all__ = ["Sealed", "seal", "unseal", "value_from_text", "value_text"]


# One encoder for every call (json.dumps with these options would make one per call).
_encode = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"),
                           allow_nan=False).encode


def value_text(value: Any, where: str = "personal value") -> str:
    """The canonical JSON text of ``value`` (sorted keys, no spaces, UTF-8 kept).

    Raises `gridflow.InvalidPayload` (without showing the value) if it is not
    JSON.

    Example:
        >>> value_text("王小明"), value_text({"b": 1, "a": [2]})
        ('"王小明"', '{"a":[2],"b":1}')
    """
    try:
        return _encode(value)
    except (TypeError, ValueError):
        raise InvalidPayload(
            f"{where!r} holds a {type(value).__name__} that is not JSON; personal values "
            "are strings, numbers, booleans, lists or objects") from None


def value_from_text(text: str) -> Any:
    """The value `value_text` wrote.

    Example:
        >>> value_from_text('"13812345678"')
        '13812345678'
    """
    return json.loads(text)


@attrs.frozen
class Sealed:
    """One sealed value: the reference to store in its place, and what the vault keeps.

    The vault (the host's table of ciphertexts) keeps ``ref_id``,
    ``case_id``, ``path``, ``subject`` and ``ciphertext``: `unseal` needs all
    of them, since the ciphertext is bound to its case, path, subject and
    reference id.

    Example:
        >>> from gridflow.personal.keyring import new_subject_key
        >>> s = seal("王小明", kind="name", case_id="c-1", path="reporter.name",
        ...          subject="p-17", subject_key=new_subject_key())
        >>> s.reference["kind"], s.ref_id == s.reference["$pii"], "王" in repr(s)
        ('name', True, False)
    """

    reference: dict[str, str]
    ref_id: str
    case_id: str
    path: str
    subject: str
    ciphertext: bytes = attrs.field(repr=lambda b: f"<{len(b)} bytes>")


def seal(value: Any, *, kind: str, case_id: str, path: str, subject: str,
         subject_key: bytes, commit_key: bytes | None = None,
         ref_id: str | None = None) -> Sealed:
    """Encrypt and commit to ``value`` (at declared ``path``, of ``subject``, in ``case_id``).

    ``commit_key`` is `commitment_key(subject_key)`, derived here if not
    given (pass it when sealing several values of one subject). ``ref_id``
    defaults to a fresh random id.

    Example:
        >>> from gridflow.personal.keyring import new_subject_key
        >>> key = new_subject_key()
        >>> s = seal("13812345678", kind="phone", case_id="c-1", path="reporter.phone",
        ...          subject="p-17", subject_key=key)
        >>> unseal(s.reference, s.ciphertext, case_id="c-1", path="reporter.phone",
        ...        subject="p-17", subject_key=key)
        '13812345678'
    """
    text = value_text(value, path)
    ck = commitment_key(subject_key) if commit_key is None else commit_key
    if ref_id is None:
        # A fresh id and a fresh commitment are well-formed: only the kind is checked.
        ref_id = new_ref_id()
        if kind not in KINDS:
            make_reference(ref_id, kind, "0" * 64)  # raises, saying what is allowed
        reference = {REF_KEY: ref_id, "kind": kind, "c": commit(ck, subject, path, text)}
    else:
        reference = make_reference(ref_id, kind, commit(ck, subject, path, text))
    aad = context(case_id=case_id, path=path, subject=subject, ref_id=ref_id)
    return Sealed(reference, ref_id, case_id, path, subject, encrypt(subject_key, text, aad))


def unseal(reference: dict[str, str] | Reference, ciphertext: bytes, *, case_id: str,
           path: str, subject: str, subject_key: bytes,
           commit_key: bytes | None = None) -> Any:
    """The value `seal` sealed; `gridflow.personal.DecryptionError` if anything does not match.

    Checks both that the ciphertext opens in its context and that the value
    is the one the reference commits to, so a reference pointed at another
    vault entry, or a vault entry swapped under a reference, is refused.

    Example:
        >>> from gridflow.personal.keyring import new_subject_key
        >>> key = new_subject_key()
        >>> s = seal("王小明", kind="name", case_id="c-1", path="reporter.name",
        ...          subject="p-17", subject_key=key)
        >>> try:
        ...     unseal(s.reference, s.ciphertext, case_id="c-2", path="reporter.name",
        ...            subject="p-17", subject_key=key)
        ... except DecryptionError:
        ...     print("refused")
        refused
    """
    ref = reference if isinstance(reference, Reference) else parse_reference(reference)
    aad = context(case_id=case_id, path=path, subject=subject, ref_id=ref.ref_id)
    text = decrypt(subject_key, ciphertext, aad)
    ck = commitment_key(subject_key) if commit_key is None else commit_key
    if not verify_commitment(ck, subject, path, text, ref.commitment):
        raise DecryptionError(
            f"case {case_id!r}, {path!r}: the value opens but is not the one reference "
            f"{ref.ref_id!r} commits to; the vault entry or the reference was replaced")
    return value_from_text(text)
