"""Master keys and subject keys: loading, wrapping, unwrapping, rotation, KMS hook."""

from __future__ import annotations

import base64
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

import gridflow
from gridflow import GridflowError
from gridflow.personal import (
    DecryptionError,
    Keyring,
    KeyringError,
    MasterKey,
    new_subject_key,
    rewrap,
    seal,
    unseal,
)
from gridflow.personal.keyring import parse_key_text

MASTER = bytes(range(32))


def test_keyring_is_exported_lazily_from_gridflow() -> None:
    assert gridflow.Keyring is Keyring
    assert "Keyring" in gridflow.__all__


def test_import_gridflow_does_not_import_cryptography() -> None:
    code = ("import sys, gridflow; k = gridflow.Keyring(bytes(32)); "
            "import gridflow.personal; gridflow.personal.mask('name', '王小明'); "
            "gridflow.personal.Screen(['x1']).clean('x1'); "
            "print('cryptography' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False,
                          env={**os.environ, "PYTHONPATH": str(Path(gridflow.__file__).parents[1])})
    assert done.stdout.strip() == "False", done.stdout + done.stderr


def test_without_cryptography_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(sys.modules):
        if name == "cryptography" or name.startswith("cryptography."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "cryptography", None)
    ring = Keyring(MASTER)  # making a keyring needs no cryptography
    with pytest.raises(ImportError, match=r"pip install 'gridflow\[pii\]'"):
        ring.wrap(new_subject_key())


@pytest.mark.parametrize("bad", [b"", b"x" * 31, b"x" * 33, "x" * 32, None, 32])
def test_a_master_key_is_exactly_32_bytes(bad: object) -> None:
    with pytest.raises(KeyringError, match="32 random bytes") as info:
        Keyring(bad)  # type: ignore[arg-type]
    assert isinstance(info.value, GridflowError)


def test_repr_and_errors_never_show_the_key() -> None:
    ring = Keyring(MASTER)
    assert MASTER.hex() not in repr(ring)
    assert repr(ring) == f"Keyring(key_id={ring.key_id!r})"
    with pytest.raises(KeyringError) as info:
        Keyring.generate().unwrap(ring.wrap(new_subject_key()))
    assert MASTER.hex() not in str(info.value)
    assert ring.key_id not in str(info.value)  # names the keyring asked, not the other


def test_a_keyring_refuses_to_be_pickled() -> None:
    with pytest.raises(TypeError, match="not picklable"):
        pickle.dumps(Keyring(MASTER))


def test_key_id_is_stable_and_distinct() -> None:
    assert Keyring(MASTER).key_id == Keyring(bytearray(MASTER)).key_id  # type: ignore[arg-type]
    assert Keyring(MASTER).key_id != Keyring(bytes(32)).key_id
    assert Keyring(MASTER, key_id="kms-1").key_id == "kms-1"
    assert len(Keyring(MASTER).key_id) == 16


def test_generate_makes_different_keys() -> None:
    a, b = Keyring.generate(), Keyring.generate()
    key = new_subject_key()
    with pytest.raises(KeyringError):
        b.unwrap(a.wrap(key))


def test_aes_key_wrap_matches_rfc_3394_vector() -> None:
    # RFC 3394 section 4.6: 256 bits of key data with a 256-bit KEK.
    kek = bytes.fromhex("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F")
    data = bytes.fromhex("00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F")
    wrapped = bytes.fromhex("28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326"
                            "CBC7F0E71A99F43BFB988B9B7A02DD21")
    ring = Keyring(kek)
    assert ring.wrap(data) == wrapped
    assert ring.unwrap(wrapped) == data


def test_wrap_and_unwrap_round_trip() -> None:
    ring = Keyring(MASTER)
    for _ in range(5):
        key = new_subject_key()
        wrapped = ring.wrap(key)
        assert len(wrapped) == 40 and key not in wrapped
        assert ring.unwrap(wrapped) == key


@pytest.mark.parametrize("bad", [b"", b"k" * 16, b"k" * 33, "k" * 32])
def test_only_32_byte_subject_keys_are_wrapped(bad: object) -> None:
    with pytest.raises(KeyringError):
        Keyring(MASTER).wrap(bad)  # type: ignore[arg-type]


def test_an_edited_wrapped_key_does_not_unwrap() -> None:
    ring = Keyring(MASTER)
    wrapped = bytearray(ring.wrap(new_subject_key()))
    for i in range(len(wrapped)):
        edited = bytearray(wrapped)
        edited[i] ^= 0x01
        with pytest.raises(KeyringError, match="does not unwrap"):
            ring.unwrap(bytes(edited))
    with pytest.raises(KeyringError):
        ring.unwrap(bytes(wrapped[:-8]))
    with pytest.raises(KeyringError):
        ring.unwrap("not bytes")  # type: ignore[arg-type]


# -- loading --------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    MASTER.hex(), MASTER.hex().upper(), f"  {MASTER.hex()}\n",
    base64.b64encode(MASTER).decode(), base64.urlsafe_b64encode(MASTER).decode(),
    base64.b64encode(MASTER).decode().rstrip("="), base64.b64encode(MASTER).decode() + "\n",
])
def test_key_text_forms(text: str) -> None:
    assert parse_key_text(text) == MASTER


@pytest.mark.parametrize("text", ["", "abc", MASTER.hex()[:-2],
                                  base64.b64encode(b"x" * 31).decode(), "zz" * 32, "密钥" * 22])
def test_bad_key_text_is_refused_without_showing_it(text: str) -> None:
    with pytest.raises(KeyringError, match="64 hex digits or as base64") as info:
        parse_key_text(text, "the test key")
    if text:
        assert text not in str(info.value)


def test_from_file_raw_hex_and_base64(tmp_path: Path) -> None:
    expected = Keyring(MASTER).key_id
    raw = tmp_path / "raw.key"
    raw.write_bytes(MASTER)
    hexed = tmp_path / "hex.key"
    hexed.write_text(MASTER.hex() + "\n")
    b64 = tmp_path / "b64.key"
    b64.write_text(base64.b64encode(MASTER).decode())
    for path in (raw, hexed, str(b64)):
        assert Keyring.from_file(path).key_id == expected


def test_from_file_errors(tmp_path: Path) -> None:
    with pytest.raises(KeyringError, match="cannot read master key file"):
        Keyring.from_file(tmp_path / "missing.key")
    binary = tmp_path / "binary.key"
    binary.write_bytes(b"\xff" * 40)
    with pytest.raises(KeyringError, match="neither a raw 32-byte key"):
        Keyring.from_file(binary)
    short = tmp_path / "short.key"
    short.write_text("abcd")
    with pytest.raises(KeyringError, match=r"short\.key"):
        Keyring.from_file(short)


def test_from_env() -> None:
    env = {"GRIDFLOW_MASTER_KEY": MASTER.hex(), "B64": base64.b64encode(MASTER).decode()}
    assert Keyring.from_env(environ=env).key_id == Keyring(MASTER).key_id
    assert Keyring.from_env("B64", environ=env).key_id == Keyring(MASTER).key_id
    with pytest.raises(KeyringError, match="'NOPE' is not set"):
        Keyring.from_env("NOPE", environ=env)
    with pytest.raises(KeyringError, match="'EMPTY' is not set"):
        Keyring.from_env("EMPTY", environ={"EMPTY": "  "})
    with pytest.raises(KeyringError, match="environment variable 'BAD'"):
        Keyring.from_env("BAD", environ={"BAD": "short"})


def test_from_env_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDFLOW_TEST_MASTER", MASTER.hex())
    assert Keyring.from_env("GRIDFLOW_TEST_MASTER").key_id == Keyring(MASTER).key_id


# -- rotation and a KMS ---------------------------------------------------------------------


def test_rotation_rewraps_subject_keys_and_leaves_sealed_values_untouched() -> None:
    old, new = Keyring(MASTER), Keyring.generate()
    subject_key = new_subject_key()
    wrapped = old.wrap(subject_key)
    sealed = seal("13812345678", kind="phone", case_id="c-1", path="reporter.phone",
                  subject="p-17", subject_key=old.unwrap(wrapped))
    reference, ciphertext = dict(sealed.reference), sealed.ciphertext

    rotated = rewrap(old, new, wrapped)

    assert rotated != wrapped
    with pytest.raises(KeyringError):
        old.unwrap(rotated)
    with pytest.raises(KeyringError):
        new.unwrap(wrapped)
    # The event's reference and the vault's ciphertext are byte for byte the same,
    # and open with the subject key the new master key unwraps.
    assert sealed.reference == reference and sealed.ciphertext == ciphertext
    assert unseal(reference, ciphertext, case_id="c-1", path="reporter.phone", subject="p-17",
                  subject_key=new.unwrap(rotated)) == "13812345678"


def test_rewrap_with_the_wrong_old_keyring_fails() -> None:
    a, b, c = Keyring.generate(), Keyring.generate(), Keyring.generate()
    with pytest.raises(KeyringError):
        rewrap(b, c, a.wrap(new_subject_key()))


class FakeKms:
    """A host's KMS adapter: the key stays "in the KMS" (here: a private keyring)."""

    def __init__(self) -> None:
        self._inner = Keyring.generate()
        self.calls: list[str] = []

    @property
    def key_id(self) -> str:
        return "kms:alias/gridflow-test"

    def wrap(self, key: bytes) -> bytes:
        self.calls.append("wrap")
        return b"KMS1" + self._inner.wrap(key)

    def unwrap(self, wrapped: bytes) -> bytes:
        self.calls.append("unwrap")
        if not wrapped.startswith(b"KMS1"):
            raise KeyringError("not a blob of this KMS")
        return self._inner.unwrap(wrapped[4:])


def test_a_kms_plugs_in_through_the_master_key_protocol() -> None:
    kms = FakeKms()
    ring = Keyring(MASTER)
    assert isinstance(kms, MasterKey) and isinstance(ring, MasterKey)
    key = new_subject_key()
    to_kms = rewrap(ring, kms, ring.wrap(key))
    assert kms.unwrap(to_kms) == key
    back = rewrap(kms, ring, to_kms)
    assert ring.unwrap(back) == key
    assert kms.calls == ["wrap", "unwrap", "unwrap"]


def test_an_erased_subject_key_cannot_be_recovered_from_another_subjects() -> None:
    ring = Keyring(MASTER)
    a, b = new_subject_key(), new_subject_key()
    sealed = seal("王小明", kind="name", case_id="c-1", path="reporter.name", subject="p-1",
                  subject_key=a)
    ring.wrap(b)
    with pytest.raises(DecryptionError):
        unseal(sealed.reference, sealed.ciphertext, case_id="c-1", path="reporter.name",
               subject="p-1", subject_key=b)
