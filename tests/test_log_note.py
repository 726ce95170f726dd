"""gridflow.log.note: signed notes, checkpoints, keys, a plugged-in algorithm.

The signed-note vector (tests/vectors/signed-note.json, from
golang.org/x/mod/sumdb/note) pins byte-exactness with Go's implementation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("cryptography")

import gridflow
from gridflow.log import merkle
from gridflow.log.note import (
    DEFAULT_ALGORITHMS,
    MAX_SIGNATURES,
    Checkpoint,
    Note,
    Signature,
    Signer,
    Verifier,
    generate_key,
    key_hash,
    open_note,
    read_key_file,
    sign_checkpoint,
    sign_note,
    signer_from_key,
    signer_key_text,
    verifier_from_key,
    verifier_key_text,
    verify_checkpoint,
    write_key_file,
)

VECTOR = json.loads((Path(__file__).parent / "vectors" / "signed-note.json").read_text())
SKEY, VKEY, TEXT, SIGNED = (VECTOR[k] for k in ("signer_key", "verifier_key", "text", "signed"))
PETER_LINE = SIGNED[len(TEXT) + 1 :]


# --- the reference vector ----------------------------------------------------------


def test_the_vector_note_is_reproduced_byte_for_byte() -> None:
    signed = sign_note(TEXT, signer_from_key(SKEY))
    assert signed == SIGNED
    assert signed.encode("utf-8") == SIGNED.encode("utf-8")
    assert "\u2014 PeterNeumann " in signed


def test_the_vector_note_verifies() -> None:
    note = open_note(SIGNED, [verifier_from_key(VKEY)])
    assert note.text == TEXT
    assert note.signatures == (Signature("PeterNeumann", 0xC74F20A3, PETER_LINE[15:-1]),)
    assert note.unverified == ()
    # Key strings and bytes are accepted too.
    assert open_note(SIGNED.encode(), VKEY).text == TEXT


@pytest.mark.parametrize("key", VECTOR["malformed_keys_must_be_refused"])
def test_the_vector_malformed_keys_are_refused(key: str) -> None:
    with pytest.raises(gridflow.NoteError):
        verifier_from_key(key)


def test_the_vector_keys_agree() -> None:
    signer, verifier = signer_from_key(SKEY), verifier_from_key(VKEY)
    assert (signer.name, signer.key_hash) == (verifier.name, verifier.key_hash)
    pub = base64.b64decode(VKEY.split("+")[2])
    assert key_hash("PeterNeumann", pub) == 0xC74F20A3
    assert verifier_key_text("PeterNeumann", pub) == VKEY


# --- keys --------------------------------------------------------------------------


def test_generate_key_makes_a_working_pair() -> None:
    skey, vkey = gridflow.generate_key("shanghai.example/gridflow")
    assert skey.startswith("PRIVATE+KEY+shanghai.example/gridflow+")
    name, hash16, key64 = vkey.split("+", 2)
    assert name == "shanghai.example/gridflow" and len(hash16) == 8
    raw = base64.b64decode(key64)
    assert raw[0] == 0x01 and len(raw) == 33
    assert int(hash16, 16) == int.from_bytes(
        hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4], "big")
    signed = sign_note("x\n", signer_from_key(skey))
    assert open_note(signed, [vkey]).signatures[0].name == name
    other_skey, _ = generate_key("shanghai.example/gridflow")
    assert other_skey != skey


@pytest.mark.parametrize("name", ["", "a b", "a+b", "a\tb", "a\u3000b", "a\nb", "a\x01b"])
def test_bad_key_names_are_refused(name: str) -> None:
    with pytest.raises(gridflow.NoteError, match="name"):
        generate_key(name)


@pytest.mark.parametrize(
    "key",
    [
        "",
        "PeterNeumann",
        "PeterNeumann+c74f20a3",
        "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+0xc74f20+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW ",
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeuman+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ],
)
def test_malformed_verifier_keys_are_refused(key: str) -> None:
    with pytest.raises(gridflow.NoteError):
        verifier_from_key(key)


@pytest.mark.parametrize(
    "key",
    [
        "PRIVATE+KEY+PeterNeumann+c74f20a4+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDF",
        "PRIVATE+KEY+PeterNeumann+c74f20a3+ZYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        "PRIVATE+KEY+Peter+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        "PRIVATE+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        "private+key+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
    ],
)
def test_malformed_signer_keys_are_refused(key: str) -> None:
    with pytest.raises(gridflow.NoteError):
        signer_from_key(key)


def test_swapped_keys_get_a_helpful_message() -> None:
    with pytest.raises(gridflow.NoteError, match="never hand out the private key"):
        verifier_from_key(SKEY)
    with pytest.raises(gridflow.NoteError, match="looks like a verifier key"):
        signer_from_key(VKEY)


def test_errors_never_show_key_material() -> None:
    secret = SKEY.rsplit("+", 1)[1]
    for bad in (SKEY[:-2], SKEY.replace("c74f20a3", "c74f20a4")):
        with pytest.raises(gridflow.NoteError) as info:
            signer_from_key(bad)
        assert secret[:10] not in str(info.value)


def test_missing_cryptography_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives.asymmetric", None)
    with pytest.raises(ImportError, match=r"pip install 'gridflow\[sign\]'"):
        generate_key("example.org/log")


# --- opening notes -----------------------------------------------------------------


def _peter() -> list[Verifier]:
    return [verifier_from_key(VKEY)]


@pytest.mark.parametrize(
    ("signed", "problem"),
    [
        (TEXT + PETER_LINE, "no blank line"),
        (TEXT + "\n" + PETER_LINE[:-1], "end with a newline"),
        (TEXT + "\n", "no signature line"),
        (TEXT + "\n" + PETER_LINE.replace("\u2014", "-"), "EM DASH"),
        (TEXT + "\n" + PETER_LINE.replace("\u2014 ", "\u2014"), "EM DASH"),
        (TEXT + "\n" + PETER_LINE.replace(" x08go", "  x08go"), "signature line 1"),
        (TEXT + "\n" + PETER_LINE.replace("=\n", "\n"), "signature line 1"),
        (TEXT + "\n" + "\u2014 PeterNeumann x08g\n", "signature line 1"),
        (TEXT + "\n" + "\u2014 PeterNeumann\n", "signature line 1"),
        (TEXT + "\n" + "\u2014  x08go/ZJ\n", "signature line 1"),
        (TEXT + "\n" + PETER_LINE + "\n", "no signature line after the last blank line"),
        (TEXT + "\n" + PETER_LINE + "x\n", "signature line 2"),
        (TEXT.replace("answer", "ans\x07wer") + "\n" + PETER_LINE, "control character"),
        (TEXT + "\n" + PETER_LINE.replace("\n", "\r\n"), "control character"),
        (TEXT + "\n" + PETER_LINE * (MAX_SIGNATURES + 1), "more than 100"),
    ],
)
def test_malformed_notes_are_refused(signed: str, problem: str) -> None:
    with pytest.raises(gridflow.NoteError, match=problem):
        open_note(signed, _peter())


def test_invalid_utf8_is_refused() -> None:
    with pytest.raises(gridflow.NoteError, match="UTF-8"):
        open_note(SIGNED.encode().replace(b"answer", b"ans\xffwer"), _peter())


def test_an_altered_text_fails_its_signature() -> None:
    with pytest.raises(gridflow.NoteError, match="invalid signature by key PeterNeumann"):
        open_note(SIGNED.replace("problem,", "problem;"), _peter())
    sig = PETER_LINE[15:-1]
    forged = base64.b64decode(sig)
    forged = forged[:10] + bytes([forged[10] ^ 1]) + forged[11:]
    line = f"\u2014 PeterNeumann {base64.b64encode(forged).decode()}\n"
    with pytest.raises(gridflow.NoteError, match="invalid signature"):
        open_note(TEXT + "\n" + line, _peter())


def test_unknown_keys_are_ignored_but_never_enough() -> None:
    skey, vkey = generate_key("EnochRoot")
    both = sign_note(Note(TEXT, open_note(SIGNED, _peter()).signatures), signer_from_key(skey))
    assert both.startswith(SIGNED)
    note = open_note(both, _peter())
    assert [s.name for s in note.signatures] == ["PeterNeumann"]
    assert [s.name for s in note.unverified] == ["EnochRoot"]
    assert [s.name for s in open_note(both, [vkey]).signatures] == ["EnochRoot"]
    assert len(open_note(both, [vkey, VKEY]).signatures) == 2
    with pytest.raises(gridflow.NoteError, match="signed by no trusted key"):
        open_note(SIGNED, [vkey])
    with pytest.raises(gridflow.NoteError, match="signed by no trusted key"):
        open_note(SIGNED, [])


def test_a_key_sharing_only_the_name_or_only_the_hash_is_ignored() -> None:
    # Same name, other key (so another hash): the signature is not its to check.
    _, same_name = generate_key("PeterNeumann")
    with pytest.raises(gridflow.NoteError, match="no trusted key"):
        open_note(SIGNED, [same_name])
    # Same hash, other name: a different key id as well.
    line = PETER_LINE.replace("PeterNeumann", "PaulNeumann")
    note = open_note(TEXT + "\n" + line + PETER_LINE, _peter())
    assert [s.name for s in note.unverified] == ["PaulNeumann"]


def test_a_non_verifier_is_refused() -> None:
    with pytest.raises(gridflow.NoteError, match="got int"):
        open_note(SIGNED, [42])  # type: ignore[list-item]


def test_duplicate_signatures_are_dropped() -> None:
    note = open_note(TEXT + "\n" + PETER_LINE * 3, _peter())
    assert len(note.signatures) == 1


def test_ambiguous_verifiers_are_refused_when_used() -> None:
    class Twin:
        name = "PeterNeumann"
        key_hash = 0xC74F20A3

        def verify(self, msg: bytes, sig: bytes) -> bool:
            return True

    with pytest.raises(gridflow.NoteError, match="ambiguous"):
        open_note(SIGNED, [verifier_from_key(VKEY), Twin()])
    skey, vkey = generate_key("Other")
    open_note(sign_note("x\n", signer_from_key(skey)), [vkey, Twin(), verifier_from_key(VKEY)])


@pytest.mark.parametrize(
    "text",
    [
        "\n",
        "a\n\nb\n",
        "a\n\n",
        "a\n\n\n\n",
        "x\n\n\u2014 PeterNeumann AAAAAAAAAAAA\n",
        "网格案件 华三-1\n多元调解\n",
    ],
)
def test_blank_lines_and_signature_lookalikes_in_the_text_round_trip(text: str) -> None:
    skey, vkey = generate_key("example.org/log")
    note = open_note(sign_note(text, signer_from_key(skey)), [vkey])
    assert note.text == text and len(note.signatures) == 1 and note.unverified == ()


@pytest.mark.parametrize("text", ["", "no newline", "a\x00b\n", "tab\there\n", "\ud800\n"])
def test_unsignable_texts_are_refused(text: str) -> None:
    with pytest.raises(gridflow.NoteError):
        sign_note(text, signer_from_key(SKEY))


def test_signing_needs_a_signer() -> None:
    with pytest.raises(gridflow.NoteError, match="at least one signer"):
        sign_note("x\n")


def test_resigning_replaces_the_signers_old_signature() -> None:
    skey, vkey = generate_key("example.org/log")
    signer = signer_from_key(skey)
    first = open_note(sign_note("x\n", signer), [vkey])
    again = sign_note(first, signer)
    assert again.count("\u2014 ") == 1
    assert open_note(again, [vkey]).text == "x\n"


_text_line = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=30
)


@settings(max_examples=50, deadline=None)
@given(lines=st.lists(_text_line, max_size=6), data=st.data())
def test_any_text_round_trips_and_any_edit_is_detected(lines: list[str],
                                                       data: st.DataObject) -> None:
    text = "".join(line + "\n" for line in lines) or "\n"
    signed = sign_note(text, signer_from_key(SKEY))
    assert open_note(signed, _peter()).text == text
    position = data.draw(st.integers(0, len(text) - 1))
    replacement = data.draw(st.sampled_from(["a", "\u7f51", "Z"]).filter(
        lambda c: c != text[position]))
    edited = text[:position] + replacement + text[position + 1 :]
    with pytest.raises(gridflow.NoteError):
        open_note(edited + signed[len(text) :], _peter())


# --- checkpoints -------------------------------------------------------------------


def test_the_spec_example_checkpoint_parses() -> None:
    text = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    cp = Checkpoint.parse(text)
    assert (cp.origin, cp.size, cp.extensions) == ("example.com/behind-the-sofa", 20852163, ())
    assert cp.root_hash == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert cp.to_text() == text


_origin = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1,
                  max_size=20)


@settings(max_examples=100, deadline=None)
@given(origin=_origin, size=st.integers(0, 2**64 - 1), root_hash=st.binary(min_size=32,
       max_size=32), extensions=st.lists(_origin, max_size=3))
def test_checkpoints_round_trip(origin: str, size: int, root_hash: bytes,
                                extensions: list[str]) -> None:
    cp = Checkpoint(origin, size, root_hash, tuple(extensions))
    text = cp.to_text()
    assert text.count("\n") == 3 + len(extensions)
    assert Checkpoint.parse(text) == cp


ROOT64 = base64.b64encode(merkle.EMPTY_ROOT).decode()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (f"o\n0\n{ROOT64}", "end with a newline"),
        ("o\n0\n", "3 line|2 line"),
        (f"o\n012\n{ROOT64}\n", "decimal"),
        (f"o\n+12\n{ROOT64}\n", "decimal"),
        (f"o\n-1\n{ROOT64}\n", "decimal"),
        (f"o\n 1\n{ROOT64}\n", "decimal"),
        (f"o\n\u0661\n{ROOT64}\n", "decimal"),
        (f"o\n\n{ROOT64}\n", "decimal"),
        (f"o\n{2**64}\n{ROOT64}\n", "2\\*\\*64"),
        ("o\n1\nAAAA\n", "32 bytes"),
        (f"o\n1\n{ROOT64[:-1]}\n", "32 bytes"),
        (f"o\n1\n{ROOT64[:-2]}V=\n", "32 bytes"),  # non-canonical: padding bits set
        (f"\n1\n{ROOT64}\n", "must not be empty"),
        (f"o\n1\n{ROOT64}\n\n", "must not be empty"),
        (f"o\n1\n{ROOT64}\next\n\nmore\n", "must not be empty"),
    ],
)
def test_malformed_checkpoints_are_refused(text: str, problem: str) -> None:
    with pytest.raises(gridflow.NoteError, match=problem):
        Checkpoint.parse(text)


@pytest.mark.parametrize(
    "args",
    [
        ("", 0, merkle.EMPTY_ROOT),
        ("a\nb", 0, merkle.EMPTY_ROOT),
        ("o", -1, merkle.EMPTY_ROOT),
        ("o", True, merkle.EMPTY_ROOT),
        ("o", 0, merkle.EMPTY_ROOT[:31]),
        ("o", 0, merkle.EMPTY_ROOT, ("",)),
        ("o", 0, merkle.EMPTY_ROOT, "ext"),
    ],
)
def test_invalid_checkpoints_cannot_be_built(args: tuple[object, ...]) -> None:
    with pytest.raises(gridflow.NoteError):
        Checkpoint(*args)  # type: ignore[arg-type]


def test_signed_checkpoints_verify_and_detect_changes() -> None:
    skey, vkey = generate_key("shanghai.example/gridflow")
    leaves = [merkle.leaf_hash(bytes([i])) for i in range(10)]
    cp = Checkpoint("shanghai.example/gridflow", 10, merkle.root(leaves))
    signed = sign_checkpoint(cp, skey)
    assert signed.startswith(cp.to_text() + "\n\u2014 shanghai.example/gridflow ")
    assert sign_checkpoint(cp, signer_from_key(skey)) == signed  # Ed25519 is deterministic
    assert verify_checkpoint(signed, vkey) == cp
    assert verify_checkpoint(signed, verifier_from_key(vkey),
                             origin="shanghai.example/gridflow") == cp
    with pytest.raises(gridflow.NoteError, match="not of"):
        verify_checkpoint(signed, vkey, origin="other.example/log")
    with pytest.raises(gridflow.NoteError, match="invalid signature"):
        verify_checkpoint(signed.replace("\n10\n", "\n11\n"), vkey)
    _, other = generate_key("shanghai.example/gridflow")
    with pytest.raises(gridflow.NoteError, match="no trusted key"):
        verify_checkpoint(signed, other)
    unsigned_garbage = sign_note("not a checkpoint\n", signer_from_key(skey))
    with pytest.raises(gridflow.NoteError, match="malformed checkpoint"):
        verify_checkpoint(unsigned_garbage, vkey)


# --- a plugged-in algorithm (the way an SM2/SM3 signer plugs in) --------------------

FAKE_ID = b"\xfftest.invalid/hmac-sha256"


class FakeHMACSigner:
    """A stand-in for an SM2 signer: HMAC-SHA256 under a private identifier.

    Symmetric (the 'public' key is the secret), so only fit for tests: it
    shows the plumbing a real GB/T 39786 signer would use.
    """

    def __init__(self, name: str, secret: bytes) -> None:
        self.name = name
        self.secret = secret
        self.key_hash = key_hash(name, FAKE_ID + secret)

    def sign(self, msg: bytes) -> bytes:
        return hmac.new(self.secret, msg, "sha256").digest()


class FakeHMACVerifier(FakeHMACSigner):
    def verify(self, msg: bytes, sig: bytes) -> bool:
        return hmac.compare_digest(self.sign(msg), sig)


class _WrongSecret(FakeHMACVerifier):
    """Claims the witness's key id but holds another secret."""

    def sign(self, msg: bytes) -> bytes:
        return hmac.new(b"other", msg, "sha256").digest()


class FakeHMACAlgorithm:
    def _secret(self, key: bytes) -> bytes:
        if not key.startswith(FAKE_ID) or len(key) != len(FAKE_ID) + 32:
            raise gridflow.NoteError("not a fake HMAC key")
        return key[len(FAKE_ID) :]

    def signer(self, name: str, private_key: bytes) -> Signer:
        return FakeHMACSigner(name, self._secret(private_key))

    def verifier(self, name: str, public_key: bytes) -> Verifier:
        return FakeHMACVerifier(name, self._secret(public_key))


def test_a_plugged_in_algorithm_signs_and_verifies_through_key_strings() -> None:
    secret = bytes(range(32))
    key = FAKE_ID + secret
    skey = signer_key_text("example.org/log", key, key)
    vkey = verifier_key_text("example.org/log", key)
    algorithms = {**DEFAULT_ALGORITHMS, 0xFF: FakeHMACAlgorithm()}
    signer = signer_from_key(skey, algorithms=algorithms)
    verifier = verifier_from_key(vkey, algorithms=algorithms)
    cp = Checkpoint("example.org/log", 0, merkle.EMPTY_ROOT)
    signed = sign_checkpoint(cp, signer)
    assert verify_checkpoint(signed, verifier) == cp
    raw = base64.b64decode(signed.rsplit(" ", 1)[1])
    assert raw[:4] == key_hash("example.org/log", key).to_bytes(4, "big")
    assert raw[4:] == hmac.new(secret, cp.to_text().encode(), "sha256").digest()
    # Without the plug-in the key strings are refused, naming the algorithm byte.
    with pytest.raises(gridflow.NoteError, match="unknown algorithm 0xff"):
        verifier_from_key(vkey)
    with pytest.raises(gridflow.NoteError, match="not a fake HMAC key"):
        signer_from_key(signer_key_text("example.org/log", b"\xff" + secret, key),
                        algorithms=algorithms)


def test_a_plugged_in_signer_object_cosigns_with_ed25519() -> None:
    fake = FakeHMACVerifier("witness.example/w1", b"k" * 32)
    assert isinstance(fake, Signer) and isinstance(fake, Verifier)
    signed = sign_note(TEXT, signer_from_key(SKEY), fake)
    note = open_note(signed, [verifier_from_key(VKEY), fake])
    assert [s.name for s in note.signatures] == ["PeterNeumann", "witness.example/w1"]
    with pytest.raises(gridflow.NoteError, match="invalid signature by key witness"):
        open_note(signed, [_WrongSecret("witness.example/w1", b"k" * 32)])


def test_a_signer_with_a_bad_name_is_refused() -> None:
    with pytest.raises(gridflow.NoteError, match="name"):
        sign_note("x\n", FakeHMACSigner("bad name", b"k" * 32))


# --- key files ---------------------------------------------------------------------


def test_key_files_round_trip(tmp_path: Path) -> None:
    skey, vkey = generate_key("example.org/log")
    write_key_file(tmp_path / "log.key", skey)
    write_key_file(tmp_path / "log.pub", vkey)
    assert (tmp_path / "log.key").read_text() == skey + "\n"
    assert read_key_file(tmp_path / "log.key") == skey
    assert read_key_file(str(tmp_path / "log.pub")) == vkey
    if os.name == "posix":
        assert (tmp_path / "log.key").stat().st_mode & 0o777 == 0o600
    signed = sign_note("x\n", signer_from_key(read_key_file(tmp_path / "log.key")))
    open_note(signed, [read_key_file(tmp_path / "log.pub")])


def test_key_files_are_not_overwritten_by_accident(tmp_path: Path) -> None:
    skey, vkey = generate_key("example.org/log")
    path = tmp_path / "log.key"
    write_key_file(path, vkey)
    with pytest.raises(gridflow.NoteError, match="exists"):
        write_key_file(path, skey)
    assert read_key_file(path) == vkey
    write_key_file(path, skey, overwrite=True)
    assert read_key_file(path) == skey
    if os.name == "posix":
        assert path.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("content", ["", "\n", "a\nb\n", " key\n", "key \n", "k\n\n"])
def test_key_files_hold_exactly_one_line(tmp_path: Path, content: str) -> None:
    path = tmp_path / "k"
    path.write_text(content)
    with pytest.raises(gridflow.NoteError, match="exactly one key string"):
        read_key_file(path)


def test_key_file_problems_are_gridflow_errors(tmp_path: Path) -> None:
    with pytest.raises(gridflow.NoteError, match="cannot read key file"):
        read_key_file(tmp_path / "missing.key")
    (tmp_path / "bin").write_bytes(b"\xff\xfe")
    with pytest.raises(gridflow.NoteError, match="not UTF-8"):
        read_key_file(tmp_path / "bin")
    with pytest.raises(gridflow.NoteError, match="malformed"):
        write_key_file(tmp_path / "bad.pub", "not a key")
    assert not (tmp_path / "bad.pub").exists()
    with pytest.raises(gridflow.NoteError, match="cannot write key file"):
        write_key_file(tmp_path / "no" / "such" / "dir.pub", VKEY)
