"""Personal information (个人信息, PIPL) building blocks: pure, storage-free, engine-free.

One job per module, lower ones first:

- `paths`: declared paths (``parties[].name``), `find` and `replace` in JSON-like data;
- `fields`: `PersonalField` declarations, kinds, data subjects;
- `keyring`: master keys (`Keyring`, the `MasterKey` protocol for a KMS),
  subject keys, wrapping and rotation;
- `cipher`: AES-256-GCM of one value, bound to case, path, subject, reference;
- `commitment`: keyed commitments (HMAC-SHA256 under an HKDF-derived key);
- `reference`: the ``{"$pii": ...}`` object stored in place of a value;
- `seal`: value → (reference, ciphertext) and back;
- `masks`: ``王**``, ``138****5678``, tombstones;
- `screen`: finding and masking personal values in exported text;
- `policy`: a workflow's `PersonalPolicy` (its fields, readers, retention), as
  specs carry it.

Only `keyring`, `cipher`, `commitment` and `seal` need the ``pii`` extra
(``cryptography``), and import it when first used.

Example:
    >>> from gridflow.personal import Keyring, PersonalField, find, mask
    >>> field = PersonalField("reporter.phone", "phone")
    >>> [mask(field.kind, v) for _, v in find({"reporter": {"phone": "13812345678"}}, field.path)]
    ['138****5678']
"""

from __future__ import annotations

from gridflow._errors import DecryptionError, KeyringError, PersonalDataError
from gridflow.personal.cipher import context, decrypt, encrypt
from gridflow.personal.commitment import commit, commitment_key, verify_commitment
from gridflow.personal.fields import (
    KINDS,
    PersonalField,
    case_subject,
    check_subject_id,
    field_problems,
    fields_problems,
    subject_of,
)
from gridflow.personal.keyring import Keyring, MasterKey, new_subject_key, rewrap
from gridflow.personal.masks import RESTRICTED, TOMBSTONE, mask
from gridflow.personal.paths import concrete_steps, find, parse_path, pattern_of, replace
from gridflow.personal.reference import (
    REF_KEY,
    Reference,
    is_reference,
    lookalikes,
    make_reference,
    map_references,
    new_ref_id,
    parse_reference,
    references,
    refuse_lookalikes,
)
from gridflow.personal.screen import Hit, Screen, id_checksum_ok, normalize
from gridflow.personal.seal import Sealed, seal, unseal, value_from_text, value_text

__all__ = [
    "KINDS",
    "REF_KEY",
    "RESTRICTED",
    "TOMBSTONE",
    "DecryptionError",
    "Hit",
    "Keyring",
    "KeyringError",
    "MasterKey",
    "PersonalDataError",
    "PersonalField",
    "Reference",
    "Screen",
    "Sealed",
    "case_subject",
    "check_subject_id",
    "commit",
    "commitment_key",
    "concrete_steps",
    "context",
    "decrypt",
    "encrypt",
    "field_problems",
    "fields_problems",
    "find",
    "id_checksum_ok",
    "is_reference",
    "lookalikes",
    "make_reference",
    "map_references",
    "mask",
    "new_ref_id",
    "new_subject_key",
    "normalize",
    "parse_path",
    "parse_reference",
    "pattern_of",
    "references",
    "refuse_lookalikes",
    "replace",
    "rewrap",
    "seal",
    "subject_of",
    "unseal",
    "value_from_text",
    "value_text",
    "verify_commitment",
]
