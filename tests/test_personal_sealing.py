"""AES-GCM of one value, keyed commitments, and sealing a value into a reference."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridflow import GridflowError, InvalidPayload
from gridflow.personal import (
    DecryptionError,
    KeyringError,
    commit,
    commitment_key,
    context,
    decrypt,
    encrypt,
    is_reference,
    new_subject_key,
    seal,
    unseal,
    value_text,
    verify_commitment,
)
from gridflow.personal._canonical import encode_parts
from gridflow.personal._crypto import hkdf_sha256

KEY = bytes(range(32))
AAD = context(case_id="c-1", path="reporter.phone", subject="p-17", ref_id="0" * 32)
quick = settings(suppress_health_check=[HealthCheck.too_slow], max_examples=60)


# -- AES-GCM --------------------------------------------------------------------------------


def test_encrypt_decrypt_round_trip_and_format() -> None:
    sealed = encrypt(KEY, "13812345678", AAD)
    assert sealed[:1] == b"\x01"
    assert len(sealed) == 1 + 12 + len("13812345678") + 16
    assert b"13812345678" not in sealed
    assert decrypt(KEY, sealed, AAD) == "13812345678"


def test_nonces_are_random() -> None:
    one, two = encrypt(KEY, "王小明", AAD), encrypt(KEY, "王小明", AAD)
    assert one != two and one[1:13] != two[1:13]


@pytest.mark.parametrize("other", [
    dict(case_id="c-2", path="reporter.phone", subject="p-17", ref_id="0" * 32),
    dict(case_id="c-1", path="reporter.name", subject="p-17", ref_id="0" * 32),
    dict(case_id="c-1", path="reporter.phone", subject="p-18", ref_id="0" * 32),
    dict(case_id="c-1", path="reporter.phone", subject="p-17", ref_id="1" * 32),
])
def test_a_ciphertext_moved_elsewhere_does_not_open(other: dict[str, str]) -> None:
    sealed = encrypt(KEY, "13812345678", AAD)
    with pytest.raises(DecryptionError) as info:
        decrypt(KEY, sealed, context(**other))
    assert isinstance(info.value, GridflowError)
    assert "13812345678" not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_the_context_encoding_is_unambiguous() -> None:
    a = context(case_id="c-1", path="ab", subject="c", ref_id="r")
    b = context(case_id="c-1", path="a", subject="bc", ref_id="r")
    assert a != b
    assert encode_parts("a", "") != encode_parts("", "a")


@quick
@given(st.text(max_size=40), st.data())
def test_any_edited_byte_is_refused(plaintext: str, data: st.DataObject) -> None:
    sealed = bytearray(encrypt(KEY, plaintext, AAD))
    i = data.draw(st.integers(0, len(sealed) - 1), label="byte")
    bit = data.draw(st.integers(0, 7), label="bit")
    sealed[i] ^= 1 << bit
    with pytest.raises(DecryptionError):
        decrypt(KEY, bytes(sealed), AAD)


@quick
@given(st.text(max_size=60))
def test_any_text_round_trips(plaintext: str) -> None:
    assert decrypt(KEY, encrypt(KEY, plaintext, AAD), AAD) == plaintext


def test_wrong_key_truncated_and_unknown_format() -> None:
    sealed = encrypt(KEY, "x", AAD)
    with pytest.raises(DecryptionError):
        decrypt(new_subject_key(), sealed, AAD)
    with pytest.raises(DecryptionError, match="malformed"):
        decrypt(KEY, sealed[:20], AAD)
    with pytest.raises(DecryptionError, match="malformed"):
        decrypt(KEY, b"\x02" + sealed[1:], AAD)
    with pytest.raises(DecryptionError):
        decrypt(KEY, "text", AAD)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [b"", b"k" * 16, "k" * 32])
def test_subject_keys_are_32_bytes(bad: Any) -> None:
    with pytest.raises(KeyringError):
        encrypt(bad, "x", AAD)
    with pytest.raises(KeyringError):
        decrypt(bad, b"\x01" + bytes(40), AAD)
    with pytest.raises(KeyringError):
        commitment_key(bad)


# -- commitments ----------------------------------------------------------------------------


def test_hkdf_matches_rfc_5869_test_case_3() -> None:
    # RFC 5869 A.3: SHA-256, no salt, no info.
    okm = hkdf_sha256(bytes.fromhex("0b" * 22), b"", 42)
    assert okm.hex() == ("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
                         "9d201395faa4b61a96c8")


def test_commitment_is_hmac_sha256_of_the_length_prefixed_fields() -> None:
    ck = commitment_key(KEY)
    message = (b"\x00\x00\x00\x12gridflow-commit-v1" + b"\x00\x00\x00\x04p-17"
               + b"\x00\x00\x00\x0dreporter.name" + b"\x00\x00\x00\x09" + "王小明".encode())
    assert commit(ck, "p-17", "reporter.name", "王小明") == hmac.new(
        ck, message, hashlib.sha256).hexdigest()


def test_commitment_key_is_derived_not_the_subject_key() -> None:
    ck = commitment_key(KEY)
    assert ck != KEY and ck == commitment_key(KEY)
    assert ck != commitment_key(new_subject_key())


values = st.text(min_size=0, max_size=20)


@quick
@given(values, values, values)
def test_same_input_same_commitment(subject: str, path: str, value: str) -> None:
    ck = commitment_key(KEY)
    c = commit(ck, subject, path, value)
    assert len(c) == 64 and c == commit(ck, subject, path, value)
    assert verify_commitment(ck, subject, path, value, c)


@quick
@given(st.tuples(values, values, values), st.tuples(values, values, values))
def test_different_input_different_commitment(a: tuple[str, str, str],
                                              b: tuple[str, str, str]) -> None:
    ck = commitment_key(KEY)
    if a != b:
        assert commit(ck, *a) != commit(ck, *b)
        assert not verify_commitment(ck, *b, commit(ck, *a))


def test_shifting_characters_between_fields_changes_the_commitment() -> None:
    ck = commitment_key(KEY)
    assert commit(ck, "p-1", "ab", "c") != commit(ck, "p-1", "a", "bc")
    assert commit(ck, "p-1a", "b", "c") != commit(ck, "p-1", "ab", "c")


def test_without_the_key_a_commitment_cannot_be_recomputed() -> None:
    ck = commitment_key(KEY)
    c = commit(ck, "p-17", "reporter.phone", "13812345678")
    message = encode_parts("gridflow-commit-v1", "p-17", "reporter.phone", "13812345678")
    # Neither an unkeyed hash of the same encoding nor another key gives it.
    assert c != hashlib.sha256(message).hexdigest()
    assert c != commit(commitment_key(new_subject_key()), "p-17", "reporter.phone", "13812345678")
    assert c != commit(KEY, "p-17", "reporter.phone", "13812345678")  # the raw subject key
    assert not verify_commitment(ck, "p-17", "reporter.phone", "13812345678", c.upper())
    assert not verify_commitment(ck, "p-17", "reporter.phone", "13812345678", 5)  # type: ignore[arg-type]


def test_commit_refuses_a_short_key() -> None:
    with pytest.raises(KeyringError):
        commit(b"short", "p", "x", "v")


# -- seal / unseal --------------------------------------------------------------------------


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8),
              st.floats(allow_nan=False, allow_infinity=False)),
    lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(st.text(max_size=4), c,
                                                                 max_size=3)),
    max_leaves=8)


@quick
@given(json_values)
def test_any_json_value_seals_and_opens(value: Any) -> None:
    key = new_subject_key()
    sealed = seal(value, kind="free_text", case_id="c-1", path="contact", subject="p-1",
                  subject_key=key)
    assert is_reference(sealed.reference)
    assert unseal(sealed.reference, sealed.ciphertext, case_id="c-1", path="contact",
                  subject="p-1", subject_key=key) == value


def test_the_reference_holds_nothing_of_the_value() -> None:
    key = new_subject_key()
    sealed = seal("王小明", kind="name", case_id="c-1", path="reporter.name", subject="p-17",
                  subject_key=key)
    assert set(sealed.reference) == {"$pii", "kind", "c"}
    assert "王" not in str(sealed.reference) and "王" not in repr(sealed)
    assert sealed.reference["c"] == commit(commitment_key(key), "p-17", "reporter.name",
                                           value_text("王小明"))


def test_seal_with_a_given_commit_key_and_ref_id() -> None:
    key = new_subject_key()
    ck = commitment_key(key)
    one = seal("a", kind="other", case_id="c", path="x", subject="s", subject_key=key,
               commit_key=ck, ref_id="a" * 32)
    assert one.ref_id == "a" * 32 == one.reference["$pii"]
    two = seal("a", kind="other", case_id="c", path="x", subject="s", subject_key=key)
    assert two.reference["c"] == one.reference["c"] and two.ref_id != one.ref_id


def test_swapped_vault_entries_are_refused() -> None:
    key = new_subject_key()
    name = seal("谢女士", kind="name", case_id="c-1", path="parties[].name", subject="case:c-1",
                subject_key=key)
    other = seal("陈先生", kind="name", case_id="c-1", path="parties[].name",
                 subject="case:c-1", subject_key=key)
    common = dict(case_id="c-1", path="parties[].name", subject="case:c-1", subject_key=key)
    # The ciphertext of another value under this reference: its context names another id.
    with pytest.raises(DecryptionError):
        unseal(name.reference, other.ciphertext, **common)  # type: ignore[arg-type]
    # A reference whose commitment was swapped in from another value.
    forged = {**name.reference, "c": other.reference["c"]}
    with pytest.raises(DecryptionError, match="not the one reference"):
        unseal(forged, name.ciphertext, **common)  # type: ignore[arg-type]
    assert unseal(name.reference, name.ciphertext, **common) == "谢女士"  # type: ignore[arg-type]


def test_seal_refuses_non_json_and_bad_kinds_without_showing_the_value() -> None:
    with pytest.raises(InvalidPayload, match="not JSON") as info:
        seal({1, 2}, kind="other", case_id="c", path="x", subject="s",
             subject_key=new_subject_key())
    assert "{1, 2}" not in str(info.value)
    with pytest.raises(InvalidPayload):
        seal("x", kind="mobile", case_id="c", path="x", subject="s",
             subject_key=new_subject_key())
    with pytest.raises(InvalidPayload):
        value_text(float("nan"))
