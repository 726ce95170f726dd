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

import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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


#: Where each public name lives. Names load on first use (PEP 562), so that a
#: spec's `policy` does not bring the cipher, the keyring or the text screen
#: into every ``import gridflow``.
_HOME: dict[str, str] = {
    "DecryptionError": "gridflow._errors",
    "Hit": "gridflow.personal.screen",
    "KINDS": "gridflow.personal.fields",
    "Keyring": "gridflow.personal.keyring",
    "KeyringError": "gridflow._errors",
    "MasterKey": "gridflow.personal.keyring",
    "PersonalDataError": "gridflow._errors",
    "PersonalField": "gridflow.personal.fields",
    "REF_KEY": "gridflow.personal.reference",
    "RESTRICTED": "gridflow.personal.masks",
    "Reference": "gridflow.personal.reference",
    "Screen": "gridflow.personal.screen",
    "Sealed": "gridflow.personal.seal",
    "TOMBSTONE": "gridflow.personal.masks",
    "case_subject": "gridflow.personal.fields",
    "check_subject_id": "gridflow.personal.fields",
    "commit": "gridflow.personal.commitment",
    "commitment_key": "gridflow.personal.commitment",
    "concrete_steps": "gridflow.personal.paths",
    "context": "gridflow.personal.cipher",
    "decrypt": "gridflow.personal.cipher",
    "encrypt": "gridflow.personal.cipher",
    "field_problems": "gridflow.personal.fields",
    "fields_problems": "gridflow.personal.fields",
    "find": "gridflow.personal.paths",
    "id_checksum_ok": "gridflow.personal.screen",
    "is_reference": "gridflow.personal.reference",
    "lookalikes": "gridflow.personal.reference",
    "make_reference": "gridflow.personal.reference",
    "map_references": "gridflow.personal.reference",
    "mask": "gridflow.personal.masks",
    "new_ref_id": "gridflow.personal.reference",
    "new_subject_key": "gridflow.personal.keyring",
    "normalize": "gridflow.personal.screen",
    "parse_path": "gridflow.personal.paths",
    "parse_reference": "gridflow.personal.reference",
    "pattern_of": "gridflow.personal.paths",
    "references": "gridflow.personal.reference",
    "refuse_lookalikes": "gridflow.personal.reference",
    "replace": "gridflow.personal.paths",
    "rewrap": "gridflow.personal.keyring",
    "seal": "gridflow.personal.seal",
    "subject_of": "gridflow.personal.fields",
    "unseal": "gridflow.personal.seal",
    "value_from_text": "gridflow.personal.seal",
    "value_text": "gridflow.personal.seal",
    "verify_commitment": "gridflow.personal.commitment",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'gridflow.personal' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


class _Package(types.ModuleType):
    # The import system binds each submodule on its package once it loads, and
    # the submodule `seal` has the name of the function `seal`: the function
    # stays the package's `seal`, as when every name was imported eagerly.
    def __setattr__(self, name: str, value: Any) -> None:
        if name == "seal" and isinstance(value, types.ModuleType):
            value = value.seal
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
