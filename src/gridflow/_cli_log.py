"""The signed-log commands: keygen, checkpoint, verify --all, prove, verify-bundle.

Registered by `gridflow.cli.build_parser`; exit codes as every other command
(0 ok, 1 problems found — a failed verification, a refused key — 2 bad usage).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any, TextIO

from gridflow._errors import IntegrityError, NoteError
from gridflow._session import EXIT_PROBLEMS, UsageError, open_session

__all__ = ["add_log_commands"]

EXIT_OK = 0


def _key(value: str, *, private: bool) -> str:
    """A key string, or the key in a key file of that name."""
    from gridflow.log.note import read_key_file

    if Path(value).is_file():
        return read_key_file(value)
    if re.fullmatch(r"(PRIVATE\+KEY\+)?[^+\s]+\+[0-9A-Fa-f]{8}\+[A-Za-z0-9+/=]+", value):
        return value
    kind = "signer key file (gridflow keygen NAME writes NAME.key)" if private else \
        "verifier key file or key string (gridflow keygen NAME writes NAME.pub)"
    raise UsageError(f"--key {value}: no such file; give a {kind}")


def _base(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "gridflow"


def cmd_keygen(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from gridflow.log.note import generate_key, write_key_file

    skey, vkey = generate_key(args.name)
    base = args.out or _base(args.name)
    private, public = Path(f"{base}.key"), Path(f"{base}.pub")
    if private.exists() or public.exists():
        raise UsageError(f"{private} or {public} exists; remove it or pass --out BASE "
                         "(a lost or replaced signer key means rotating it)", EXIT_PROBLEMS)
    write_key_file(private, skey)
    write_key_file(public, vkey)
    err.write(f"gridflow keygen: wrote {private} (secret: for the checkpointing service only) "
              f"and {public} (publish it)\n")
    out.write(vkey + "\n")
    return EXIT_OK


def cmd_checkpoint(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    key = _key(args.key, private=True)
    session = open_session(args, database=True)
    text = session.engine.checkpoint(key, origin=args.origin)
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    out.write(text)
    return EXIT_OK


def _read(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{what} {path} is not UTF-8 text") from None


def cmd_verify(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from gridflow.log.note import Checkpoint

    if not args.all:
        raise UsageError("say --all: gridflow verify checks the whole log (one case's "
                         "history: gridflow history CASE_ID)")
    key = _key(args.key, private=False)
    trusted = _read(args.from_, "checkpoint file") if args.from_ else None
    session = open_session(args, database=True)
    try:
        latest = session.engine.verify_log(trusted=trusted, key=key,
                                           incremental=bool(trusted) and not args.full)
    except IntegrityError as exc:
        err.write(f"gridflow verify: VERIFICATION FAILED: {exc}\n")
        return EXIT_PROBLEMS
    size = Checkpoint.parse(latest.partition("\n\n")[0] + "\n").size
    if args.save:
        try:
            Path(args.save).write_text(latest, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {args.save}: {exc.strerror or exc}") from None
    how = ("from the trusted checkpoint" if trusted and not args.full
           else "every event")
    out.write(f"  ✓ log verified ({how}): {size} events in the latest checkpoint\n")
    return EXIT_OK


def cmd_prove(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    session = open_session(args, database=True)
    bundle = session.engine.prove(args.case_id)
    json.dump(bundle, out, ensure_ascii=False, indent=2)
    out.write("\n")
    return EXIT_OK


def cmd_verify_bundle(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from gridflow._tlog import verify_bundle

    key = _key(args.key, private=False)
    try:
        bundle: Any = json.loads(_read(args.bundle, "bundle"))
    except json.JSONDecodeError as exc:
        raise UsageError(f"{args.bundle} is not JSON: {exc.msg} at line {exc.lineno}") \
            from None
    except RecursionError:
        # json's decoder recurses per level: a deep enough file exhausts the stack.
        raise UsageError(f"{args.bundle} is nested too deeply to be a proof bundle (written "
                         "by gridflow prove)") from None
    try:
        events = verify_bundle(bundle, key)
    except (IntegrityError, NoteError) as exc:
        err.write(f"gridflow verify-bundle: VERIFICATION FAILED: {exc}\n")
        return EXIT_PROBLEMS
    out.write(f"  ✓ {len(events)} events of case {bundle['case_id']} are in the log "
              f"(checkpoint of {bundle['tree_size']} events)\n")
    return EXIT_OK


def add_log_commands(sub: Any, *, db: argparse.ArgumentParser,
                     project: argparse.ArgumentParser) -> None:
    """Add the signed-log subcommands to the ``gridflow`` parser's subparsers.

    Example:
        >>> from gridflow.cli import build_parser
        >>> build_parser().parse_args(["verify", "--all", "--key", "log.pub"]).all
        True
    """
    p = sub.add_parser(
        "keygen", help="make a signing key pair for checkpoints",
        description="Writes NAME's signer key to BASE.key (readable by its owner only: the "
                    "checkpointing service's secret) and its verifier key to BASE.pub "
                    "(publish it), in the signed-note key format, and prints the verifier "
                    "key. BASE is NAME with every character other than letters, digits, "
                    "'.', '_' and '-' replaced by '_', unless --out is given. Refuses to "
                    "replace existing files.")
    p.add_argument("name", metavar="NAME", help="the key (and log) name, e.g. "
                   "example.gov.cn/street-grid")
    p.add_argument("--out", metavar="BASE", help="write BASE.key and BASE.pub")
    p.set_defaults(func=cmd_keygen)

    p = sub.add_parser(
        "checkpoint", parents=[db, project],
        help="log the new events and print a signed checkpoint",
        description="Integrates every event committed since the last checkpoint into the "
                    "database's Merkle log, signs the new tree head with --key and stores "
                    "it; prints the checkpoint (publish it outside the database). Run it "
                    "from cron or a timer; over nothing new it prints the stored one.")
    p.add_argument("--key", required=True, metavar="KEYFILE", help="the signer key file")
    p.add_argument("--origin", metavar="NAME", help="the log's name (default: the key's)")
    p.add_argument("-o", "--output", metavar="FILE", help="also write the checkpoint to FILE")
    p.set_defaults(func=cmd_checkpoint)

    p = sub.add_parser(
        "verify", parents=[db, project],
        help="verify the whole log against a trusted checkpoint",
        description="Checks the latest stored checkpoint's signature with --key, its "
                    "consistency with --from (a checkpoint kept outside the database), that "
                    "every logged event matches its leaf, then every case's chain and fold. "
                    "With --from only what came after it is read (--full: everything). "
                    "Exit code 1 if anything fails.")
    p.add_argument("--all", action="store_true", help="verify the whole log")
    p.add_argument("--from", dest="from_", metavar="CHECKPOINT_FILE",
                   help="a trusted checkpoint (e.g. last week's, from the report)")
    p.add_argument("--key", required=True, metavar="KEY",
                   help="the verifier key file (or key string)")
    p.add_argument("--full", action="store_true",
                   help="with --from, still check every event, not only the new ones")
    p.add_argument("--save", metavar="FILE",
                   help="write the verified latest checkpoint to FILE (the next --from)")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser(
        "prove", parents=[db, project],
        help="print a case's proof bundle (JSON)",
        description="Prints a self-contained JSON bundle: CASE_ID's events up to the latest "
                    "checkpoint, each with its inclusion proof, and the checkpoint. "
                    "`gridflow verify-bundle` checks it with no database.")
    p.add_argument("case_id", metavar="CASE_ID")
    p.set_defaults(func=cmd_prove)

    p = sub.add_parser(
        "verify-bundle", help="check a proof bundle offline",
        description="Checks a bundle written by `gridflow prove`: the checkpoint's "
                    "signature with --key, every event's hash and chain, every inclusion "
                    "proof. Needs no database. Exit code 1 if anything fails.")
    p.add_argument("bundle", metavar="BUNDLE.json")
    p.add_argument("--key", required=True, metavar="KEY",
                   help="the verifier key file (or key string)")
    p.set_defaults(func=cmd_verify_bundle)
