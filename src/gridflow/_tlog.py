"""Signed checkpoints over the store's Merkle log: checkpoint, verify_log, prove, verify_bundle.

The engine's `Engine.checkpoint`, `Engine.verify_log` and `Engine.prove` are
thin wrappers over the functions here; `verify_bundle` needs no engine and no
database. The storage side (leaves, nodes, the sequencer step) is
`gridflow.store._log`; hashing and proofs are `gridflow.log.merkle`, signed
notes `gridflow.log.note`.

Signers are pluggable: wherever a signer key string is accepted, any object
with the `gridflow.log.note.Signer` members (``name``, ``key_hash``,
``sign(msg)``) is accepted too (an SM2 signer, a hardware module, a signing
service), and any `gridflow.log.note.Verifier` wherever a verifier key is.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from gridflow._errors import GridflowError, IntegrityError, LogError, NoteError, ProofError
from gridflow.log import merkle, note
from gridflow.model import GENESIS_HASH, Actor, Changes, Event

if TYPE_CHECKING:
    from gridflow.engine import Engine
    from gridflow.store._log import LogBackend

__all__ = ["BUNDLE_FORMAT", "checkpoint", "prove", "verify_bundle", "verify_log"]

#: The ``format`` field of a proof bundle made by `prove`.
BUNDLE_FORMAT = "gridflow-proof/1"


def _signer(key: str | note.Signer) -> note.Signer:
    if isinstance(key, str):
        return note.signer_from_key(key)
    if not isinstance(key, note.Signer):
        raise NoteError("a checkpoint signer is a signer key string PRIVATE+KEY+... or an "
                        f"object with name, key_hash and sign(msg); got {type(key).__name__}")
    return key


def _verifiers(key: Any) -> list[note.Verifier]:
    what = ("a verifier key string <name>+<8 hex digits>+<base64 key>, an object with "
            "name, key_hash and verify(msg, sig), or a list of them")
    if isinstance(key, str | note.Verifier):
        keys = [key]
    elif isinstance(key, Iterable) and not isinstance(key, bytes | Mapping):
        keys = list(key)
    else:
        # key=True or None was a bare TypeError from list().
        raise NoteError(f"a checkpoint verifier is {what}; got {type(key).__name__}")
    if not keys:
        raise NoteError("no verifier key given")
    for k in keys:
        if not isinstance(k, str | note.Verifier):
            raise NoteError(f"a checkpoint verifier is {what}; got a list holding "
                            f"{type(k).__name__}")
    return [note.verifier_from_key(k) if isinstance(k, str) else k for k in keys]


def _open(text: str, verifiers: list[note.Verifier], what: str) -> note.Checkpoint:
    if not isinstance(text, str):
        raise NoteError(f"{what} is checkpoint text (str), got {type(text).__name__}")
    cp = note.Checkpoint.parse(note.open_note(text, verifiers).text)
    return cp


def _signed_by(text: str, signer: note.Signer, size: int) -> bool:
    """Whether stored checkpoint ``text`` is of tree ``size`` and signed by ``signer``'s key."""
    body, sep, sigs = text.partition("\n\n")
    if not sep or body.split("\n")[1:2] != [str(size)]:
        return False
    prefix = f"\u2014 {signer.name} "
    for line in sigs.splitlines():
        if line.startswith(prefix):
            try:
                raw = base64.b64decode(line[len(prefix):], validate=True)
            except ValueError:
                continue
            if int.from_bytes(raw[:4], "big") == signer.key_hash:
                return True
    return False


def checkpoint(engine: Engine, signer_key: str | note.Signer, *, origin: str | None = None
               ) -> str:
    """Integrate pending events into the log and return the signed checkpoint (stored too)."""
    from gridflow.store._log import log_for

    signer = _signer(signer_key)
    name = origin if origin is not None else signer.name
    log = log_for(engine.store)

    def make(size: int, root: bytes) -> str:
        return note.sign_checkpoint(note.Checkpoint(name, size, root), signer)

    def reusable(text: str) -> bool:
        return text.startswith(name + "\n") and _signed_by(text, signer, log.size())

    text, _ = log.integrate(make, reusable)
    return text


def _leaf(event_hash: str) -> bytes:
    return merkle.leaf_hash(bytes.fromhex(event_hash))


def _check_leaves(log: LogBackend, begin: int, end: int, start: merkle.CompactRange,
                  trusted: note.Checkpoint | None, last_seq: dict[str, int] | None
                  ) -> tuple[merkle.CompactRange, set[str]]:
    """Stream leaves [begin, end): each matches its event; returns the grown range and
    the cases touched. ``last_seq`` (full verification) also checks per-case order."""
    rng = start
    touched: set[str] = set()
    batch: list[bytes] = []
    expected = begin
    at_trusted = trusted is not None and begin < trusted.size
    sha, fromhex = hashlib.sha256, bytes.fromhex

    def flush() -> None:
        nonlocal rng
        if batch:
            rng = rng.grown(batch)
            batch.clear()

    for idx, cid, seq, leaf_h, event_h, event_leaf in log.leaves(begin, end):
        if idx != expected:
            raise IntegrityError(cid, seq, f"leaf {expected} is missing from the log table "
                                 f"(the next stored leaf is {idx}): the log was edited",
                                 field="leaf")
        if event_h is None:
            raise IntegrityError(cid, seq, f"leaf {idx} records this event but it is not "
                                 "stored: the event (or the whole case) was deleted",
                                 field="leaf")
        if event_h != leaf_h:
            raise IntegrityError(cid, seq, f"leaf {idx} records event hash {leaf_h[:12]}..., "
                                 f"the stored event has {event_h[:12]}...: the event was "
                                 "rewritten after it was logged", field="hash")
        if event_leaf != idx:
            raise IntegrityError(cid, seq, f"leaf {idx} records this event but the event "
                                 f"says leaf {event_leaf}: the log was edited", field="leaf")
        if last_seq is not None:
            before = last_seq.get(cid, 0)
            if seq != before + 1:
                raise IntegrityError(cid, seq, f"leaf {idx} logs seq {seq} after seq {before} "
                                     "of this case: the log was reordered", field="leaf")
            last_seq[cid] = seq
        else:
            touched.add(cid)  # incremental: these cases are verified afterwards
        # merkle.leaf_hash(bytes.fromhex(leaf_h)), inline.
        batch.append(sha(b"\x00" + fromhex(leaf_h)).digest())
        expected += 1
        if at_trusted and trusted is not None and expected == trusted.size:
            flush()
            if rng.root() != trusted.root_hash:
                raise IntegrityError(cid, seq, _root_problem(log, trusted.size, rng,
                                                             trusted.root_hash),
                                     field="leaf")
            at_trusted = False
        elif len(batch) >= 10_000:
            flush()
    flush()
    if expected != end:
        raise IntegrityError("(log)", None, f"the log table ends at leaf {expected}, the "
                             f"checkpoint covers {end} leaves: the log was truncated",
                             field="leaf")
    return rng, touched


def _root_problem(log: LogBackend, size: int, rng: merkle.CompactRange, signed: bytes) -> str:
    """Say where the recomputed tree parts from the signed one (first differing leaf
    against the stored level-0 nodes, when they were not rewritten too)."""
    first = _first_bad_leaf(log, size)
    where = (f"; the first leaf that differs from the stored tree is {first}"
             if first is not None else "")
    return (f"the {size} logged events recompute to root "
            f"{base64.b64encode(rng.root()).decode()}, the signed checkpoint has "
            f"{base64.b64encode(signed).decode()}: logged events were rewritten, removed or "
            f"reordered{where}")


def _first_bad_leaf(log: LogBackend, size: int) -> str | None:
    for idx, cid, seq, leaf_h, _, _ in log.leaves(0, size):
        stored = log.nodes([(0, idx)]).get((0, idx))
        if stored != _leaf(leaf_h):
            return f"leaf {idx} (case {cid!r} seq {seq})"
    return None


def verify_log(engine: Engine, trusted: str | None, key: Any, *, incremental: bool = False
               ) -> str:
    """See `Engine.verify_log`."""
    from gridflow.store._log import log_for

    verifiers = _verifiers(key)
    trusted_cp = None if trusted is None else _open(trusted, verifiers, "trusted")
    log = log_for(engine.store)
    latest_text = log.latest_checkpoint()
    if latest_text is None:
        if trusted_cp is not None and trusted_cp.size > 0:
            raise IntegrityError("(log)", None, "the store holds no checkpoint but the trusted "
                                 f"one covers {trusted_cp.size} events: the checkpoint table "
                                 "was emptied", field="checkpoint")
        raise GridflowError("the store holds no checkpoint yet; run engine.checkpoint(key) "
                            "(gridflow checkpoint --key KEYFILE) first")
    try:
        latest = _open(latest_text, verifiers, "the latest stored checkpoint")
    except NoteError as exc:
        raise IntegrityError("(log)", None, f"the latest stored checkpoint does not verify "
                             f"with the given key ({exc}): the checkpoint table was edited, "
                             "or the log is signed by another key", field="checkpoint") \
            from exc
    if trusted_cp is not None:
        if latest.origin != trusted_cp.origin:
            raise IntegrityError("(log)", None, f"the latest checkpoint is of log "
                                 f"{latest.origin!r}, the trusted one of {trusted_cp.origin!r}",
                                 field="checkpoint")
        if latest.size < trusted_cp.size:
            raise IntegrityError("(log)", None, f"the latest stored checkpoint covers "
                                 f"{latest.size} events, fewer than the trusted one's "
                                 f"{trusted_cp.size}: the log or the checkpoint table was "
                                 "cut back", field="checkpoint")
    stored_size = log.size()
    if stored_size != latest.size:
        raise IntegrityError("(log)", None, f"the log holds {stored_size} leaves but the latest "
                             f"stored checkpoint covers {latest.size}: every sequencer step "
                             "stores its checkpoint, so the checkpoint table was cut back or "
                             "the log edited", field="checkpoint")
    incremental = incremental and trusted_cp is not None
    if incremental:
        _consistent(log, trusted_cp, latest)
    text = _verify_range(engine, log, trusted_cp, latest, latest_text, incremental=incremental)
    if not incremental:
        # After the leaves, which name the first bad one where they can.
        _consistent(log, trusted_cp, latest)
    return text


def _consistent(log: LogBackend, trusted: note.Checkpoint | None,
                latest: note.Checkpoint) -> None:
    """The consistency proof from ``trusted`` to ``latest``, from stored nodes."""
    if trusted is None:
        return
    plan = merkle.consistency_plan(trusted.size, latest.size)
    try:
        proof = plan.assemble(log.nodes(plan.ids))
        merkle.verify_consistency(trusted.size, latest.size, trusted.root_hash,
                                  latest.root_hash, proof)
    except (ProofError, LogError) as exc:
        raise IntegrityError("(log)", None, f"the log is not an extension of the trusted "
                             f"checkpoint: {exc}", field="checkpoint") from exc


def _verify_range(engine: Engine, log: LogBackend, trusted: note.Checkpoint | None,
                  latest: note.Checkpoint, latest_text: str, *, incremental: bool) -> str:
    if incremental and trusted is not None:
        begin = trusted.size
        found = log.nodes(merkle.range_nodes(0, begin))
        try:
            start = merkle.CompactRange.from_nodes(begin, _Nodes(found))
        except GridflowError as exc:
            raise IntegrityError("(log)", None, f"the log's node table lacks the frontier of "
                                 f"the trusted tree: {exc}", field="leaf") from exc
        if start.root() != trusted.root_hash:
            raise IntegrityError("(log)", None, "the stored frontier of the trusted tree does "
                                 "not give the trusted root: the node table was edited",
                                 field="leaf")
        last_seq: dict[str, int] | None = None
    else:
        begin, start, last_seq = 0, merkle.CompactRange(), {}
    rng, touched = _check_leaves(log, begin, latest.size, start,
                                 None if incremental else trusted, last_seq)
    if rng.root() != latest.root_hash:
        raise IntegrityError("(log)", None, _root_problem(log, latest.size, rng,
                                                          latest.root_hash), field="leaf")
    # Events not in the log must all be newer than the logged ones of their case.
    # (Incremental: from the partial index only; the full check also scans for leaf
    # numbers beyond the tree, and counts.)
    pending = log.unlogged(latest.size, scan=not incremental)
    for cid, seq in pending:
        if last_seq is not None:
            logged = last_seq.get(cid, 0)
        else:
            known = log.case_leaves(cid)
            logged = max((s for s, leaf in known if leaf < latest.size), default=0)
        if seq <= logged:
            raise IntegrityError(cid, seq, f"the event is not in the log but seq {logged} of "
                                 "its case is: it was inserted into logged history",
                                 field="leaf")
        touched.add(cid)
    if not incremental:
        count = log.logged_count(latest.size)
        if count != latest.size:
            raise IntegrityError("(log)", None, f"{count} events say they are logged below "
                                 f"leaf {latest.size}, the log has {latest.size} leaves: "
                                 "the events' leaf column was edited", field="leaf")
        _audit_all(engine, None)
    else:
        _audit_all(engine, sorted(touched))
    return latest_text


def _audit_all(engine: Engine, case_ids: list[str] | None) -> None:
    """Every case's chain and fold (or those of ``case_ids``): a pre-check on the stored
    rows, the full path (`Engine.verify`, which names the problem) for any case it does
    not pass (`gridflow._fastverify`). The row and the events are read by two streams,
    so a step landing in between looks like a mismatch: `Engine.verify` re-reads until
    row and events agree before the case counts."""
    from gridflow._fastverify import verify_cases

    verify_cases(engine, case_ids)


class _Nodes:
    def __init__(self, found: Mapping[merkle.NodeID, bytes]) -> None:
        self.found = found

    def get(self, level: int, index: int) -> bytes:
        try:
            return self.found[(level, index)]
        except KeyError:
            raise GridflowError(f"log node ({level}, {index}) is not stored") from None


# -- bundles ---------------------------------------------------------------------------


def _event_json(e: Event) -> dict[str, Any]:
    return {"case_id": e.case_id, "seq": e.seq, "trigger": e.trigger, "source": e.source,
            "dest": e.dest, "actor": e.actor.to_json(), "at": e.at.isoformat(),
            "payload": e.payload, "idempotency_key": e.idempotency_key,
            "prev_hash": e.prev_hash, "hash": e.hash,
            "changes": None if e.changes is None else e.changes.to_json()}


def _event_from(raw: Any, i: int) -> Event:
    try:
        a = raw["actor"]
        changes = raw["changes"]
        return Event(str(raw["case_id"]), int(raw["seq"]), raw["trigger"], raw["source"],
                     raw["dest"], Actor.stored(a["id"], a["roles"], a["grids"]),
                     datetime.fromisoformat(raw["at"]), dict(raw["payload"]),
                     raw["idempotency_key"], str(raw["prev_hash"]), str(raw["hash"]),
                     None if changes is None else Changes.from_json(changes))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise IntegrityError(str(raw.get("case_id", "?")) if isinstance(raw, dict) else "?",
                             None, f"bundle event {i} is malformed: {exc}",
                             field="event") from exc


def prove(engine: Engine, case_id: str) -> dict[str, Any]:
    """See `Engine.prove`."""
    from gridflow._errors import CaseNotFound
    from gridflow.store._log import log_for

    log = log_for(engine.store)
    text = log.latest_checkpoint()
    if text is None:
        raise GridflowError("the store holds no checkpoint yet; run engine.checkpoint(key) "
                            "before proving a case")
    cp = note.Checkpoint.parse(text.partition("\n\n")[0] + "\n")
    events = engine.store.events(case_id)
    if not events:
        raise CaseNotFound(case_id)
    leaves = dict(log.case_leaves(case_id))
    out = []
    for e in events:
        idx = leaves.get(e.seq)
        if idx is None or idx >= cp.size:
            break
        plan = merkle.inclusion_plan(idx, cp.size)
        proof = plan.assemble(log.nodes(plan.ids))
        item = _event_json(e)
        item["leaf"] = idx
        item["proof"] = [base64.b64encode(h).decode("ascii") for h in proof]
        out.append(item)
    if not out:
        raise GridflowError(f"case {case_id!r} has no event in the latest checkpoint yet; "
                            "run engine.checkpoint(key) first")
    return {"format": BUNDLE_FORMAT, "case_id": case_id, "checkpoint": text,
            "tree_size": cp.size, "events": out}


def verify_bundle(bundle: Mapping[str, Any], key: Any) -> list[Event]:
    """Check a proof bundle made by `Engine.prove`, offline: no engine, no database.

    Checks the checkpoint's signature with ``key`` (a verifier key string, a
    `gridflow.log.note.Verifier`, or a list of them), that the events are
    seq 1, 2, ... of one case, that each event's content gives its hash and
    links to the previous one, and that each event's inclusion proof leads
    to the checkpoint's root. Returns the events; raises `IntegrityError`
    (field named) for an edited bundle and `NoteError` for a bad signature or
    key. What it proves: these events, in this order, were in the log when
    the checkpoint was signed; not that the case has no later events.

    Example:
        >>> import json, gridflow
        >>> engine = gridflow.Engine(entry_points=False)
        >>> skey, vkey = gridflow.generate_key("example.org/grid")
        >>> c = engine.open("grid_case", actor=gridflow.Actor("r", ["resident"], ["g"]),
        ...                 grid="g", data={"title": "井盖缺失", "source": "resident"})
        >>> _ = engine.checkpoint(skey)
        >>> bundle = json.loads(json.dumps(engine.prove(c.id)))
        >>> [e.trigger for e in gridflow.verify_bundle(bundle, vkey)]
        ['open']
        >>> bundle["events"][0]["payload"]["title"] = "x"
        >>> gridflow.verify_bundle(bundle, vkey)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        gridflow._errors.IntegrityError: case ... at seq 1 (field 'hash'): the event's content ...
    """
    verifiers = _verifiers(key)
    if not isinstance(bundle, Mapping) or bundle.get("format") != BUNDLE_FORMAT:
        raise IntegrityError("?", None, f"not a gridflow proof bundle (format "
                             f"{BUNDLE_FORMAT!r} expected)", field="format")
    case_id = bundle.get("case_id")
    if not isinstance(case_id, str):
        raise IntegrityError("?", None, "the bundle names no case", field="case_id")
    text = bundle.get("checkpoint")
    if not isinstance(text, str):
        raise IntegrityError(case_id, None, "the bundle holds no checkpoint", field="checkpoint")
    cp = _open(text, verifiers, "the bundle's checkpoint")
    if bundle.get("tree_size") != cp.size:
        raise IntegrityError(case_id, None, f"the bundle says tree size "
                             f"{bundle.get('tree_size')}, its checkpoint {cp.size}",
                             field="tree_size")
    raws = bundle.get("events")
    if not isinstance(raws, list) or not raws:
        raise IntegrityError(case_id, None, "the bundle holds no events", field="events")
    events: list[Event] = []
    prev = GENESIS_HASH
    for i, raw in enumerate(raws):
        e = _event_from(raw, i)
        if e.case_id != case_id or e.seq != i + 1:
            raise IntegrityError(case_id, i + 1, f"bundle event {i} is case {e.case_id!r} seq "
                                 f"{e.seq}, not seq {i + 1} of the case", field="seq")
        if e.expected_hash() != e.hash:
            raise IntegrityError(case_id, e.seq, "the event's content does not match its hash",
                                 field="hash")
        if e.prev_hash != prev:
            raise IntegrityError(case_id, e.seq, "the event does not link to the previous "
                                 "one (prev_hash)", field="prev_hash")
        prev = e.hash
        try:
            idx = raw["leaf"]
            proof = [base64.b64decode(p, validate=True) for p in raw["proof"]]
            if isinstance(idx, bool) or not isinstance(idx, int):
                raise TypeError("leaf is not an integer")
            merkle.verify_inclusion(idx, cp.size, _leaf(e.hash), proof, cp.root_hash)
        except (KeyError, TypeError, ValueError, GridflowError) as exc:
            raise IntegrityError(case_id, e.seq, f"the event's inclusion proof does not verify "
                                 f"against the checkpoint: {exc}", field="proof") from exc
        events.append(e)
    return events
