"""The quick tests in front of the slower exact walks decide exactly as the walks do.

Each quick path (a test that says "nothing here" before the walk that names
paths) is compared with the walk alone over random JSON-like values, keys
that look like ``$pii`` in several spellings included.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridflow import model
from gridflow.personal import reference as ref_mod
from test_machine_direct import TEST_EFFECTS, TEST_GUARDS, specs

_KEYS = st.sampled_from(["a", "b", "$pii", "$PII", " $pii", "＄ｐｉｉ", "kind", "c", "$x",
                         "﹩pii", "名", "$ p i i", "x$pii"])
_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False),
                  st.text(max_size=3), st.just("0" * 32), st.just("a" * 64),
                  st.sampled_from(["phone", "name"]))
_VALUES = st.recursive(_LEAF, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.tuples(inner, inner),
    st.dictionaries(_KEYS, inner, max_size=4)), max_leaves=20)
_REF = st.builds(lambda k: {"$pii": "0" * 32, "kind": k, "c": "a" * 64},
                 st.sampled_from(["phone", "name", "email"]))
_WITH_REFS = st.recursive(st.one_of(_LEAF, _REF), lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(_KEYS, inner, max_size=4)), max_leaves=20)


def _slow_lookalikes(data: Any) -> list[str]:
    found: list[str] = []
    ref_mod._collect(data, (), found)
    return found


@settings(max_examples=400, deadline=None)
@given(_VALUES)
def test_lookalikes_quick_test_is_exact(data: Any) -> None:
    assert ref_mod.lookalikes(data) == _slow_lookalikes(data)


@settings(max_examples=400, deadline=None)
@given(st.one_of(_WITH_REFS, _VALUES))
def test_references_quick_test_is_exact(data: Any) -> None:
    quick = [(p, r) for p, r in ref_mod.references(data)]
    held = ref_mod._may_hold_reference(data)
    if not held:
        assert quick == []
    # The walk alone (the quick test forced to "maybe").
    original = ref_mod._may_hold_reference
    ref_mod._may_hold_reference = lambda _d: True  # type: ignore[assignment]
    try:
        slow = [(p, r) for p, r in ref_mod.references(data)]
    finally:
        ref_mod._may_hold_reference = original
    assert quick == slow


# -- the personal layer's quick "nothing to seal" ----------------------------------------

_TRIGGERS = st.sampled_from(["note", "triage", "dispatch", "close", "report_done"])
_TOP = st.sampled_from(["reporter", "contact", "title", "plan", "done", "parties"])
_FIELD_VALUES = st.one_of(st.text(max_size=3), st.dictionaries(
    st.sampled_from(["name", "phone", "x"]), st.text(max_size=3), max_size=2))


@settings(max_examples=300, deadline=None)
@given(trigger=_TRIGGERS, payload=st.dictionaries(_TOP, _FIELD_VALUES, max_size=3),
       before=st.dictionaries(_TOP, _FIELD_VALUES, max_size=3),
       writes=st.dictionaries(_TOP, _FIELD_VALUES | st.none(), max_size=3),
       workflow=st.sampled_from(["grid_case", "mediation"]))
def test_nothing_to_seal_only_when_the_full_pass_seals_nothing(
    trigger: str, payload: dict[str, Any], before: dict[str, Any], writes: dict[str, Any],
    workflow: str,
) -> None:
    from datetime import UTC, datetime

    import gridflow
    from gridflow import _sealing, core

    privacy = gridflow.Engine(entry_points=False).privacy
    policy = privacy.policies[workflow]
    t = datetime(2026, 1, 5, tzinfo=UTC)
    case = gridflow.Case("c-1", workflow, 1, "s", 1, dict(before), "g", t, t)
    data = core.working_data(before)
    for key, value in writes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    outcome = core.Outcome(None, data, payload, (), None)
    if not _sealing._nothing_to_seal(policy, trigger, outcome):
        return
    # The full pass (the quick test forced off) must seal nothing and change nothing.
    original = _sealing._nothing_to_seal
    _sealing._nothing_to_seal = lambda *_a: False  # type: ignore[assignment]
    try:
        full = privacy.seal_outcome(case, trigger, outcome, {})
    finally:
        _sealing._nothing_to_seal = original
    assert full is outcome
    assert dict(full.data) == dict(data) and full.payload == payload


# -- the data check: a type walk that decides as the copying walk does -----------------

_ANY = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=3),
              st.sampled_from(["\x00", "\ud800", "a\x00"])),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.tuples(inner),
                            st.dictionaries(st.one_of(st.text(max_size=2), st.integers(0, 2),
                                                      st.just("\x00")), inner, max_size=3)),
    max_leaves=12)


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(st.text(max_size=3), _ANY, max_size=4))
def test_check_refuses_exactly_what_detach_refuses(value: dict[str, Any]) -> None:
    from gridflow._errors import InvalidPayload
    from gridflow.values import PLAIN, PLAIN_FLOAT, check, check_kind, detach

    try:
        detach(value, "data", trigger="t", case_id="c-1")
    except InvalidPayload as exc:
        expected: str | None = str(exc)
    else:
        expected = None
    try:
        check(value, "data", trigger="t", case_id="c-1")
    except InvalidPayload as exc:
        assert str(exc) == expected
    else:
        assert expected is None
        kind = check_kind(value, "data")
        if kind == PLAIN:  # what lets the hashed text skip its own walk of it
            assert model._orjson_exact(value, 0)
        if kind:
            assert (kind == PLAIN_FLOAT) == ("float" in repr(_types(value)))


def _types(value: Any) -> set[str]:
    if isinstance(value, dict):
        return {t for v in value.values() for t in _types(v)}
    if isinstance(value, list | tuple):
        return {t for v in value for t in _types(v)}
    return {type(value).__name__}


# -- links: a step copies the case's links only when it first reads them ------------------


def test_step_links_are_copied_when_first_read() -> None:
    from datetime import UTC, datetime

    import gridflow
    from gridflow import core
    from gridflow.step import Step

    t = datetime(2026, 1, 5, tzinfo=UTC)
    case = gridflow.Case("c-1", "grid_case", 1, "reported", 1, {}, "g", t, t, links=("c-2",))
    step = Step(case, "note", gridflow.Actor.system(), {}, {}, [], t, "reported",
                lambda _: None)
    core._STEP_LINKS.__delete__(step)
    assert not hasattr(step, "nothing_here")
    assert step.links == ["c-2"] and step.links is step.links
    step.links.append("c-3")
    assert case.links == ("c-2",)


# -- MemoryStore's deadline heap, rebuilt when stale entries pile up ---------------------


@settings(max_examples=150, deadline=None)
@given(script=st.lists(st.tuples(st.integers(0, 7), st.one_of(st.none(), st.integers(0, 20)),
                                 st.integers(0, 24), st.integers(1, 4)), max_size=40))
def test_memory_claims_equal_a_scan_with_the_heap_rebuilt_often(
        script: list[tuple[int, int | None, int, int]]) -> None:
    from datetime import UTC, datetime, timedelta

    import attrs

    import gridflow
    from gridflow.store import Write

    t0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    store = gridflow.MemoryStore()
    store._due_slack = 0  # rebuild whenever stale entries outnumber the cases
    engine = gridflow.Engine(store=store, clock=gridflow.FixedClock(t0), entry_points=False)
    worker = gridflow.Actor("w", ["grid_worker"], ["g"])
    ids = [engine.open("grid_case", actor=worker, grid="g", version=1,
                       data={"title": "t", "source": "visit"}).id for _ in range(8)]
    claims: dict[str, datetime] = {}
    for which, deadline_h, now_h, limit in script:
        cid = ids[which]
        case = store.get(cid)
        assert case is not None
        if deadline_h is not None or which % 2:
            new = attrs.evolve(case, version=case.version + 1, deadline_at=None if
                               deadline_h is None else t0 + timedelta(hours=deadline_h))
            event = attrs.evolve(store.events(cid)[-1], seq=new.version)
            store.commit([Write(new, event, case.version)])
            claims.pop(cid, None)
        assert len(store._due) <= 2 * len(store) + 1
        now = t0 + timedelta(hours=now_h)
        expected = sorted(
            (c for c in (store.get(i) for i in ids) if c is not None and c.deadline_at
             is not None and c.deadline_at <= now and claims.get(c.id, now) <= now),
            key=lambda c: (c.deadline_at, c.id))[:limit]
        got = store.claim_due(now, limit, lease=3600)
        assert [c.id for c in got] == [c.id for c in expected]
        for c in got:
            claims[c.id] = now + timedelta(seconds=3600)


# -- the whole `core.run` (lazy Step.links included): direct path vs Event.trigger ------


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_core_run_direct_equals_event_trigger(data: st.DataObject) -> None:
    import copy
    from datetime import UTC, datetime

    from gridflow import Actor, Case, core
    from gridflow.machine import compile_workflow

    spec = data.draw(specs())
    direct = compile_workflow(spec, TEST_GUARDS, TEST_EFFECTS)
    dispatched = compile_workflow(spec, TEST_GUARDS, TEST_EFFECTS)
    dispatched.table = None  # every step through Event.trigger
    state = data.draw(st.sampled_from(spec.non_terminal))
    trigger = data.draw(st.sampled_from(sorted({t.trigger for t in spec.transitions} |
                                               {"unknown"})))
    ok = data.draw(st.booleans())
    links = tuple(data.draw(st.lists(st.sampled_from(["c-2", "c-3", "other"]), unique=True,
                                     max_size=2)))
    t = datetime(2026, 3, 2, 1, tzinfo=UTC)
    case = Case("c-1", spec.name, spec.version, state, 1, {"n": 0}, None, t, t, links=links)

    def outcome(wf: Any) -> Any:
        try:
            out = core.run(wf, case, trigger, Actor.system(), {"ok": ok},
                           copy.deepcopy(case.data), t, lambda _: None)
        except Exception as exc:
            return ("raised", type(exc).__name__, str(exc))
        return (out.dest, dict(out.data), out.payload, out.links, out.effects)

    assert outcome(direct) == outcome(dispatched)


# -- the quick exits keep the sealing layer's per-thread hand-offs as the full pass does --


def _vault_refs(engine: Any) -> set[str]:
    vault = engine.privacy.vault
    return set(vault._values) if hasattr(vault, "_values") else set()


def test_a_step_that_seals_nothing_does_not_commit_an_abandoned_steps_ciphertexts() -> None:
    """A step sealed a ``contact`` and then failed before its commit (an event over
    the size limit): the next step on the case, which seals nothing, must not
    write that step's ciphertexts with its own commit."""
    from datetime import UTC, datetime

    import pytest

    import gridflow
    from gridflow import InvalidPayload

    t = datetime(2026, 3, 2, 1, tzinfo=UTC)
    for store in (gridflow.MemoryStore(),):
        engine = gridflow.Engine(store=store, clock=gridflow.FixedClock(t), entry_points=False,
                                 keyring=gridflow.Keyring.generate())
        worker = gridflow.Actor("w", ["grid_worker"], ["g"])
        boss = gridflow.Actor("s", ["coordinator"], ["g"])
        case = engine.open("grid_case", actor=worker, grid="g", version=1,
                           data={"title": "t", "source": "visit"})
        before = _vault_refs(engine)
        with pytest.raises(InvalidPayload, match="bytes"):
            engine.fire(case.id, "note", actor=boss,
                        payload={"text": "x" * 1_100_000, "contact": "微信 nana_oy"})
        engine.fire(case.id, "note", actor=boss, payload={"text": "到场"})
        assert _vault_refs(engine) == before
        assert engine.verify(case.id).version == 2


def test_showing_a_result_without_references_takes_the_hand_offs_as_every_path_does() -> None:
    from datetime import UTC, datetime

    import gridflow

    t = datetime(2026, 3, 2, 1, tzinfo=UTC)
    engine = gridflow.Engine(clock=gridflow.FixedClock(t), entry_points=False,
                             keyring=gridflow.Keyring.generate())
    worker = gridflow.Actor("w", ["grid_worker"], ["g"])
    boss = gridflow.Actor("s", ["coordinator"], ["g"])
    case = engine.open("grid_case", actor=worker, grid="g", version=1,
                       data={"title": "t", "source": "visit"})
    shown = engine.fire(case.id, "note", actor=boss,
                        payload={"text": "到场", "contact": "微信 nana_oy"})
    assert shown == engine.store.get(case.id) or shown.data == engine.store.get(case.id).data
    local = engine.privacy._local
    for name in ("recent", "prefetched", "continued"):
        assert getattr(local, name, None) is None, name


@settings(max_examples=300, deadline=None)
@given(st.one_of(_WITH_REFS, _VALUES))
def test_refs_quick_test_is_exact(data: Any) -> None:
    from gridflow import _sealing

    quick = _sealing._refs(data)
    original = _sealing._may_hold_reference
    _sealing._may_hold_reference = lambda _d: True  # type: ignore[assignment]
    try:
        slow = _sealing._refs(data)
    finally:
        _sealing._may_hold_reference = original
    assert quick == slow


def test_a_committed_row_without_references_is_shown_without_a_second_walk() -> None:
    from datetime import UTC, datetime

    import gridflow
    from gridflow import _sealing

    t = datetime(2026, 3, 2, 1, tzinfo=UTC)
    engine = gridflow.Engine(clock=gridflow.FixedClock(t), entry_points=False,
                             keyring=gridflow.Keyring.generate())
    worker = gridflow.Actor("w", ["grid_worker"], ["g"])
    boss = gridflow.Actor("s", ["coordinator"], ["g"])
    plain = engine.open("grid_case", actor=worker, grid="g", version=1,
                        data={"title": "t", "source": "visit"})
    sealed = engine.open("grid_case", actor=worker, grid="g", version=1,
                         data={"title": "t", "source": "visit",
                               "reporter": {"name": "王小明", "phone": "13812345678"}})
    walks: list[object] = []
    original = _sealing.holds_reference
    _sealing.holds_reference = lambda d: walks.append(d) or original(d)  # type: ignore
    try:
        shown = engine.fire(plain.id, "note", actor=boss, payload={"text": "到场"})
        assert walks == [] and shown == engine.store.get(plain.id)
        shown = engine.fire(sealed.id, "note", actor=boss, payload={"text": "到场"})
        assert shown.data["reporter"]["name"] == "王小明"  # a coordinator reads it
        assert getattr(engine.privacy._local, "bare", None) is None  # taken
    finally:
        _sealing.holds_reference = original


# -- pii-speed: the reference checks' quick paths -----------------------------------------


class _Str(str):
    __slots__ = ()


_HEXISH = st.one_of(st.sampled_from(["0" * 32, "a" * 64, "f" * 32, "0" * 64, "A" * 32,
                                     "0" * 31, "g" * 32, "0" * 32 + "\n", "b" * 64]),
                    st.text("0123456789abcdefA", min_size=31, max_size=65),
                    st.builds(_Str, st.sampled_from(["0" * 32, "a" * 64])),
                    st.integers(0, 3), st.none(), st.lists(st.none(), max_size=1))
_KIND = st.one_of(st.sampled_from(["phone", "name", "email", "mobile", "", "PHONE"]),
                  st.builds(_Str, st.just("phone")), st.none(), st.lists(st.none(), max_size=1))
_REF_LIKE = st.one_of(
    st.fixed_dictionaries({"$pii": _HEXISH, "kind": _KIND, "c": _HEXISH}),
    st.fixed_dictionaries({"$pii": _HEXISH, "kind": _KIND, "c": _HEXISH},
                          optional={"v": st.just(1), "d": st.just(2)}),
    st.fixed_dictionaries({"$pii": _HEXISH, "kind": _KIND}, optional={"x": _HEXISH}),
    _REF)
_WITH_REF_LIKES = st.recursive(st.one_of(_LEAF, _REF_LIKE), lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.tuples(inner, inner),
    st.dictionaries(_KEYS, inner, max_size=4)), max_leaves=20)


@settings(max_examples=500, deadline=None)
@given(st.lists(_REF_LIKE, min_size=1, max_size=6))
def test_problem_quick_test_is_exact(values: list[dict[str, Any]]) -> None:
    # Checked twice: the second time the strings checked good the first time are known.
    for _ in range(2):
        for value in values:
            assert ref_mod._problem(value) == ref_mod._full_problem(value)
            assert ref_mod.is_reference(value) == (ref_mod._full_problem(value) is None)


def _old_holds_reference(data: Any) -> bool:
    return any(True for _ in ref_mod.references(data))


@settings(max_examples=400, deadline=None)
@given(st.one_of(_WITH_REF_LIKES, _WITH_REFS, _VALUES))
def test_holds_reference_is_references_yielding_one(data: Any) -> None:
    assert ref_mod.holds_reference(data) == _old_holds_reference(data)


def _old_map_refs(node: Any, fn: Any) -> Any:
    """`_sealing._map_refs` as it was (the oracle of the copying-only-what-changes walk)."""
    if isinstance(node, dict):
        if "$pii" in node and ref_mod.is_reference(node):
            return fn("", ref_mod.Reference(node["$pii"], node["kind"], node["c"]))
        out = {k: _old_map_refs(v, fn) for k, v in node.items()}
        return node if all(out[k] is v for k, v in node.items()) else out
    if isinstance(node, list):
        items = [_old_map_refs(v, fn) for v in node]
        return node if all(a is b for a, b in zip(items, node, strict=True)) else items
    return node


def _same_sharing(a: Any, b: Any, given: Any) -> None:
    """``a`` (new result) and ``b`` (old result) alike, sharing the same parts of ``given``."""
    assert (a is given) == (b is given)
    assert type(a) is type(b)
    if isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            if isinstance(given, dict) and k in given:
                _same_sharing(a[k], b[k], given[k])
    elif isinstance(a, list) and isinstance(given, list) and len(a) == len(given):
        for x, y, g in zip(a, b, given, strict=True):
            _same_sharing(x, y, g)


@settings(max_examples=400, deadline=None)
@given(st.one_of(_WITH_REF_LIKES, _WITH_REFS, _VALUES))
def test_map_refs_equals_the_copying_walk(data: Any) -> None:
    from gridflow import _sealing

    seen_new: list[Any] = []
    seen_old: list[Any] = []
    new = _sealing._map_refs(data, lambda p, r: seen_new.append((p, r)) or f"<{r.kind}>")
    old = _old_map_refs(data, lambda p, r: seen_old.append((p, r)) or f"<{r.kind}>")
    assert seen_new == seen_old  # the same references, in the same order
    assert new == old
    _same_sharing(new, old, data)


@settings(max_examples=300, deadline=None)
@given(st.one_of(_WITH_REF_LIKES, _WITH_REFS))
def test_refs_walk_equals_references(data: Any) -> None:
    from gridflow import _sealing

    assert sorted(map(repr, _sealing._refs(data))) == sorted(
        repr(r) for _, r in ref_mod.references(data))


@settings(max_examples=300, deadline=None)
@given(st.one_of(_WITH_REF_LIKES, _WITH_REFS, _VALUES))
def test_ref_ids_are_the_refs_ids(data: Any) -> None:
    from gridflow import _sealing

    assert _sealing._ref_ids(data) == [r.ref_id for r in _sealing._refs(data)]


def test_with_data_is_evolve_over_every_field_of_case() -> None:
    from datetime import UTC, datetime

    import attrs

    from gridflow import _sealing

    # _with_data names Case's fields positionally: it must name all of them, in order.
    assert [f.name for f in attrs.fields(model.Case)] == [
        "id", "workflow", "workflow_version", "state", "version", "data", "grid",
        "opened_at", "updated_at", "deadline_at", "links", "head"]
    t = datetime(2026, 1, 5, tzinfo=UTC)
    case = model.Case("c-1", "grid_case", 2, "reported", 3, {"a": 1}, "g", t, t,
                      deadline_at=t, links=("c-2",), head="f" * 64)
    for data in ({}, {"b": [1]}):
        made, want = _sealing._with_data(case, data), attrs.evolve(case, data=data)
        assert made == want and made.data is data
        assert [getattr(made, f.name) for f in attrs.fields(model.Case)] == [
            getattr(want, f.name) for f in attrs.fields(model.Case)]


def test_a_committed_row_with_references_is_shown_without_a_second_walk() -> None:
    from datetime import UTC, datetime

    import gridflow
    from gridflow import _sealing

    t = datetime(2026, 3, 2, 1, tzinfo=UTC)
    engine = gridflow.Engine(clock=gridflow.FixedClock(t), entry_points=False,
                             keyring=gridflow.Keyring.generate())
    worker = gridflow.Actor("w", ["grid_worker"], ["g"])
    boss = gridflow.Actor("s", ["coordinator"], ["g"])
    sealed = engine.open("grid_case", actor=worker, grid="g", version=1,
                         data={"title": "t", "source": "visit",
                               "reporter": {"name": "王小明", "phone": "13812345678"}})
    walks: list[object] = []
    original = _sealing.holds_reference
    _sealing.holds_reference = lambda d: walks.append(d) or original(d)  # type: ignore
    try:
        for payload in ({"text": "到场"}, {"text": "到场", "contact": "微信 nana_oy"}):
            shown = engine.fire(sealed.id, "note", actor=boss, payload=payload)
            assert walks == []
            assert shown.data["reporter"] == {"name": "王小明", "phone": "13812345678"}
            assert getattr(engine.privacy._local, "held", None) is None  # taken
        # Shown to someone else (not the committed row): the walk decides.
        assert engine.privacy.show_case(engine.store.get(sealed.id), worker)[0].data[
            "reporter"]["name"] != "王小明"
        assert len(walks) == 1
    finally:
        _sealing.holds_reference = original


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=6), min_size=4, max_size=4))
def test_commitment_and_context_encode_every_part_as_before(parts: list[str]) -> None:
    import hmac

    from gridflow.personal._canonical import encode_parts
    from gridflow.personal.cipher import context
    from gridflow.personal.commitment import commit

    key = bytes(range(32))
    subject, path, value, ref_id = parts
    assert commit(key, subject, path, value) == hmac.digest(
        key, encode_parts("gridflow-commit-v1", subject, path, value), "sha256").hex()
    assert context(case_id=value, path=path, subject=subject, ref_id=ref_id) == encode_parts(
        "gridflow-pii-v1", value, path, subject, ref_id)


def test_a_fresh_reference_id_is_32_hex_digits_each_time() -> None:
    ids = {ref_mod.new_ref_id() for _ in range(200)}
    assert len(ids) == 200 and all(ref_mod._REF_ID.fullmatch(i) for i in ids)


@settings(max_examples=300, deadline=None)
@given(doc=st.dictionaries(st.sampled_from(["contact", "text", "subject", "note", "x"]),
                           st.one_of(st.none(), st.text(max_size=4), st.integers(0, 3),
                                     st.dictionaries(st.sampled_from(["subject", "a"]),
                                                     st.text(max_size=3), max_size=2)),
                           max_size=4),
       top=st.sampled_from(["contact", "text", "note", "x"]))
def test_a_top_level_fields_subject_is_none_without_a_subject_key(
        doc: dict[str, Any], top: str) -> None:
    # seal_doc skips subject_of for a top-level field when the document holds no subject.
    from gridflow.personal.fields import PersonalField, subject_of

    if doc.get("subject") is None:
        assert subject_of(doc, top, PersonalField(top, "free_text")) is None


def test_evolved_outcome_is_attrs_evolve() -> None:
    from datetime import UTC, datetime

    import attrs

    from gridflow import _sealing
    from gridflow.core import Outcome

    t = datetime(2026, 1, 5, tzinfo=UTC)
    for o in (Outcome("done", {"a": 1}, {"p": 0}, ("c-2",), t, False),
              Outcome(None, {}, {}, (), None)):
        made = _sealing._evolved(o, {"b": [2]}, {"q": 1})
        want = attrs.evolve(o, data={"b": [2]}, payload={"q": 1})
        assert type(made) is type(want) and made == want

    @attrs.frozen
    class Other:
        data: dict[str, Any]
        payload: dict[str, Any]
        dest: str | None = None

    assert _sealing._evolved(Other({}, {}, "x"), {"a": 1}, {"b": 2}) == Other(
        {"a": 1}, {"b": 2}, "x")


@settings(max_examples=300, deadline=None)
@given(key=st.binary(max_size=100), message=st.binary(max_size=200))
def test_kept_hmac_states_give_hmac_digest(key: bytes, message: bytes) -> None:
    import hmac

    from gridflow.personal._crypto import hmac_sha256

    for _ in range(2):  # made, then kept
        assert hmac_sha256(key, message) == hmac.digest(key, message, "sha256")


def test_an_erased_subjects_commitment_key_is_not_kept() -> None:
    from datetime import UTC, datetime

    import gridflow
    from gridflow.personal import _crypto

    t = datetime(2026, 3, 2, 1, tzinfo=UTC)
    engine = gridflow.Engine(clock=gridflow.FixedClock(t), entry_points=False,
                             keyring=gridflow.Keyring.generate())
    worker = gridflow.Actor("w", ["grid_worker"], ["g"])
    boss = gridflow.Actor("s", ["coordinator", "privacy_officer"], ["g"])
    engine.open("grid_case", actor=worker, grid="g", version=1,
                data={"title": "t", "source": "visit",
                      "reporter": {"subject": "p-9", "name": "王小明"}})
    stored = engine.privacy._key_rows["p-9"]
    raw, ck = engine.privacy._opened[stored.wrapped]
    assert ck in _crypto._MACS and raw in _crypto._CIPHERS
    engine.erase("p-9", actor=boss, reason="request")
    assert ck not in _crypto._MACS and raw not in _crypto._CIPHERS


# -- evolve: a step's row written out directly equals the fold's rule ---------------------

_DATA = st.dictionaries(st.sampled_from(["a", "b", "c", "done"]),
                        st.one_of(st.integers(-3, 3), st.text(max_size=2),
                                  st.lists(st.integers(0, 3), max_size=2)), max_size=3)


@settings(max_examples=400, deadline=None)
@given(data=_DATA, set_=_DATA, unset=st.lists(st.sampled_from(["a", "b", "x"]), max_size=2),
       dest=st.sampled_from([None, "s1", "s2"]), links=st.lists(
           st.sampled_from(["c-2", "c-3", "c-4"]), max_size=2),
       more=st.lists(st.sampled_from(["c-3", "c-5"]), max_size=2),
       deadline=st.sampled_from([None, 0, 3]), version=st.integers(1, 3),
       seq_shift=st.sampled_from([1, 1, 1, 0, 2]), rebind=st.booleans())
def test_evolve_of_a_step_equals_the_fold(
    data: dict[str, Any], set_: dict[str, Any], unset: list[str], dest: str | None,
    links: list[str], more: list[str], deadline: int | None, version: int, seq_shift: int,
    rebind: bool,
) -> None:
    from datetime import UTC, datetime, timedelta

    from gridflow import Actor, Case, IntegrityError
    from gridflow.fold import _Fold, evolve
    from gridflow.model import Changes, Event

    t = datetime(2026, 3, 2, 1, tzinfo=UTC)
    case = Case("c-1", "w", 1, "s0", 4, dict(data), "g", t, t, t, tuple(links), "h" * 64)
    changes = Changes(dict(set_), tuple(unset),
                      None if deadline is None else t + timedelta(days=deadline),
                      tuple(more), version, *(("w2", "g2") if rebind else ()))
    event = Event("c-1", 4 + seq_shift, "x", "s0", dest, Actor.system(),
                  t + timedelta(hours=1), {}, None, "h" * 64, "e" * 64, changes)

    def folded() -> Any:
        fold = _Fold(case)
        fold.share_links = True
        fold.apply(event)
        return fold.case()

    outcomes = []
    for run in (lambda: evolve(case, event), folded):
        try:
            outcomes.append(run())
        except IntegrityError as exc:
            outcomes.append(("refused", str(exc)))
    assert outcomes[0] == outcomes[1]
    assert case.data == data  # the stored row is never edited


# -- the frozen rows' faster __init__ builds what attrs' own does -------------------------


def _attrs_built(cls: type, *args: Any, **kwargs: Any) -> Any:
    from gridflow._fastinit import ATTRS_INIT

    made = object.__new__(cls)
    ATTRS_INIT[cls](made, *args, **kwargs)
    return made


def _every_field(obj: Any) -> tuple[Any, ...]:
    import attrs

    return tuple((f.name, getattr(obj, f.name)) for f in attrs.fields(type(obj)))


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_the_faster_init_builds_what_attrs_init_builds(data: st.DataObject) -> None:
    import inspect
    from datetime import UTC, datetime

    import attrs

    from gridflow import Actor, core, model
    from gridflow._fastinit import ATTRS_INIT
    from gridflow.store import Write

    assert {model.Case, model.Event, model.Changes, core.Outcome, Write} <= ATTRS_INIT.keys()
    value = st.one_of(st.none(), st.integers(0, 3), st.text(max_size=2),
                      st.just(datetime(2026, 1, 5, tzinfo=UTC)), st.just(Actor.system()),
                      st.dictionaries(st.text(max_size=1), st.integers(0, 2), max_size=2))
    for cls, original in ATTRS_INIT.items():
        if cls.__module__.startswith("gridflow._fastinit"):
            continue  # a doctest's class
        fields = attrs.fields(cls)
        assert inspect.signature(cls.__init__) == inspect.signature(original)
        required = [f for f in fields if f.default is attrs.NOTHING]
        given_ = data.draw(st.integers(len(required), len(fields)))
        args = [data.draw(value) for _ in fields[:given_]]
        by_name = data.draw(st.booleans())
        if by_name:
            kwargs = {f.name: a for f, a in zip(fields, args, strict=False)}
            fast, slow = cls(**kwargs), _attrs_built(cls, **kwargs)
        else:
            fast, slow = cls(*args), _attrs_built(cls, *args)
        assert type(fast) is cls and _every_field(fast) == _every_field(slow)
        assert fast == slow
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            fast.__setattr__(fields[0].name, None)
    # A factory default is called per instance, never shared.
    assert model.Changes().set is not model.Changes().set


def test_the_recorded_init_is_attrs_own_even_if_decorated_twice() -> None:
    import attrs

    from gridflow._fastinit import ATTRS_INIT, frozen_init

    # Else the comparison above would hold the faster __init__ against itself.
    for cls, original in ATTRS_INIT.items():
        assert original.__code__.co_filename.startswith("<attrs generated"), cls

    @frozen_init
    @frozen_init
    @attrs.frozen(slots=True)
    class Twice:
        x: int

    assert ATTRS_INIT[Twice].__code__.co_filename.startswith("<attrs generated")
    assert Twice(1) == Twice(x=1)


def test_a_class_the_faster_init_does_not_reproduce_keeps_attrs_init() -> None:
    import attrs

    from gridflow._fastinit import ATTRS_INIT, frozen_init

    @attrs.frozen(slots=True)
    class Checked:
        x: int = attrs.field(validator=attrs.validators.instance_of(int))

    @attrs.define(slots=True)
    class Mutable:
        x: int

    @attrs.frozen(slots=True)
    class Posted:
        x: int

        def __attrs_post_init__(self) -> None:
            pass

    for cls in (Checked, Mutable, Posted):
        before = cls.__init__
        assert frozen_init(cls).__init__ is before and cls not in ATTRS_INIT
    with pytest.raises(TypeError):
        Checked("1")


# -- a payload the engine found PLAIN is hashed without a second walk, to the same bytes --


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=3), _ANY, max_size=4))
def test_a_plain_payload_skips_the_orjson_walk_with_the_same_bytes(payload: dict[str, Any]) -> None:
    from datetime import UTC, datetime

    from gridflow import Actor
    from gridflow.model import GENESIS_HASH, Changes, _fast_bytes, event_text
    from gridflow.values import PLAIN, check_kind

    try:
        plain = check_kind(payload, "payload") == PLAIN
    except Exception:
        return
    if not plain:
        return
    t = datetime(2026, 1, 5, tzinfo=UTC)
    args = ("c-1", 2, "note", "s", None, Actor.system(), t, payload, None, GENESIS_HASH,
            Changes({"a": 1}, (), None, (), 1))
    fast = _fast_bytes(*args, payload_plain=True)
    assert fast is None or fast == event_text(*args).encode()
    assert fast == _fast_bytes(*args)


@pytest.mark.parametrize("held", [(), ("c-2",)], ids=["no links", "links"])
def test_every_way_an_effect_touches_links_is_recorded_with_or_without_links(
    held: tuple[str, ...],
) -> None:
    from datetime import UTC, datetime

    from gridflow import Actor, Case, GuardRejected, core
    from gridflow.machine import compile_workflow
    from gridflow.spec import StateSpec, TransitionSpec, WorkflowSpec

    def assign(step: Any) -> None:
        step.links = [*held, "c-7"]

    def delete(step: Any) -> None:
        del step.links

    effects: dict[str, Any] = {
        "read": lambda step: len(step.links),
        "append": lambda step: step.links.append("c-5"),
        "assign": assign,
        "delete": delete,
        "delete_append": lambda step: (delete(step), step.links.append("c-6")),
    }
    expected: dict[str, Any] = {"read": (), "append": ("c-5",), "assign": ("c-7",),
                                "delete": (), "delete_append": ("c-6",)}
    if held:
        # Unread, the lazy slot is unset: deleting it first raises, as it always did
        # (a case without links hands the step a list of its own from the start).
        expected["delete"] = expected["delete_append"] = "refused"
    t = datetime(2026, 3, 2, 1, tzinfo=UTC)
    for name, want in expected.items():
        spec = WorkflowSpec("l", 1, "a", [StateSpec("a"), StateSpec("b", terminal=True)],
                            [TransitionSpec("go", "a", "b", effects=[name])])
        wf = compile_workflow(spec, {}, effects)
        case = Case("c-1", "l", 1, "a", 1, {}, None, t, t, links=held)
        try:
            out = core.run(wf, case, "go", Actor.system(), {}, {}, t, lambda _: None)
        except GuardRejected:
            assert want == "refused", name
        else:
            assert out.links == want, name
        assert case.links == held


# -- Engine.fire's inline argument checks refuse exactly what the helpers refuse ---------


@settings(max_examples=300, deadline=None)
@given(case_id=st.one_of(st.text(max_size=4), st.sampled_from([" a", "a ", "a" * 200,
                                                                "a" * 201, "\x00", "\ud800"]),
                         st.integers(0, 2), st.none()),
       retries=st.one_of(st.integers(-2, 2), st.none(), st.booleans(), st.just(1.0)),
       expected=st.one_of(st.none(), st.integers(-1, 2), st.just("1")))
def test_fire_refuses_its_arguments_as_the_helpers_do(case_id: Any, retries: Any,
                                                      expected: Any) -> None:
    import gridflow
    from gridflow import engine as engine_mod

    engine = gridflow.Engine(entry_points=False)
    actor = gridflow.Actor("s", ["coordinator"], ["g"])

    def want() -> str:
        # The rules as the helpers state them, in `fire`'s order.
        try:
            engine_mod._check_id(case_id, "case_id", "")
        except gridflow.InvalidArgument as exc:
            return f"InvalidArgument: {exc}"
        for name, value in (("expected_version", expected), ("retries", retries)):
            if value is not None and (value.__class__ is not int or value < 0):
                return f"InvalidArgument: {name} must be a non-negative int, got {value!r}"
        return "CaseNotVisible"

    try:
        engine.fire(case_id, "triage", actor=actor, retries=retries,
                    expected_version=expected)
    except gridflow.InvalidArgument as exc:
        got = f"InvalidArgument: {exc}"
    except gridflow.CaseNotVisible:
        got = "CaseNotVisible"
    assert got == want()


def test_fire_asks_an_actor_subclass_its_own_scope() -> None:
    import gridflow

    class Everywhere(gridflow.Actor):
        def can_touch(self, grid: str | None) -> bool:
            return True

    engine = gridflow.Engine(entry_points=False)
    case = engine.open("grid_case", version=1, actor=gridflow.Actor("r", ["resident"], ["g"]),
                       grid="g", data={"title": "t", "source": "visit"})
    boss = Everywhere("s", ["coordinator"], ["elsewhere"])
    fired = engine.fire(case.id, "triage", actor=boss,
                        payload={"category": "违规堆物", "priority": "normal"})
    assert fired.state == "triaged"
    with pytest.raises(gridflow.CaseNotVisible):
        engine.fire(case.id, "note", actor=gridflow.Actor("x", ["coordinator"], ["elsewhere"]),
                    payload={"text": "t"})


# -- the personal layer's one-pass sealing of top-level payload keys ----------------------

_SEAL_TOP = st.sampled_from(["reporter", "contact", "title", "subject", "consent", "parties",
                             "signed_by", "note"])
_SEAL_VALUES = st.one_of(
    st.none(), st.text(max_size=3), st.integers(0, 3), st.sampled_from(["p-1", "case:c-1", " "]),
    st.lists(st.text(max_size=2), max_size=2),
    st.dictionaries(st.sampled_from(["name", "phone", "subject", "x"]),
                    st.text(max_size=3) | st.none(), max_size=2))


def _seal_view(privacy: Any, case: Any, trigger: str, outcome: Any) -> Any:
    """What `seal_outcome` gives (or raises), with each reference named by the order it
    was sealed in (ids and ciphertexts are random), and what it hands to `commit`."""
    from gridflow.personal.reference import map_references

    try:
        out = privacy.seal_outcome(case, trigger, outcome, {})
    except Exception as exc:  # both paths must refuse alike
        return ("raised", type(exc), str(exc))
    local = privacy._local.__dict__
    pending = local.get("pending")
    sealed = pending[2].sealed if pending is not None else []
    order = {s.ref_id: n for n, s in enumerate(sealed)}
    def named(_path: str, ref: Any) -> Any:
        return ("ref", order.get(ref.ref_id), ref.kind)

    plain = pending[2].plain if pending is not None else {}
    return (out is outcome, map_references(out.payload, named),
            map_references(dict(out.data), named),
            [(s.subject, s.case_id, s.path, plain[s.ref_id]) for s in sealed],
            sorted((v for v in (local.get("recent") or {}).values()), key=repr))


@settings(max_examples=300, deadline=None)
@given(trigger=_TRIGGERS, payload=st.dictionaries(_SEAL_TOP, _SEAL_VALUES, max_size=4),
       before=st.dictionaries(_TOP, _FIELD_VALUES, max_size=2),
       writes=st.dictionaries(_TOP, _FIELD_VALUES | st.none(), max_size=2),
       workflow=st.sampled_from(["grid_case", "mediation"]))
def test_sealing_top_level_payload_keys_in_one_pass_equals_the_full_pass(
    trigger: str, payload: dict[str, Any], before: dict[str, Any], writes: dict[str, Any],
    workflow: str,
) -> None:
    from datetime import UTC, datetime

    import gridflow
    from gridflow import _sealing, core

    t = datetime(2026, 1, 5, tzinfo=UTC)
    case = gridflow.Case("c-1", workflow, 1, "s", 1, dict(before), "g", t, t)

    def outcome() -> Any:
        data = core.working_data(before)
        for key, value in writes.items():
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
        return core.Outcome(None, data, dict(payload), (), None)

    keyring = gridflow.Keyring(b"\xab" * 32)
    quick = _seal_view(gridflow.Engine(entry_points=False, keyring=keyring).privacy, case,
                       trigger, outcome())
    original = _sealing.Privacy._seal_top_fields
    _sealing.Privacy._seal_top_fields = lambda *_a: None  # type: ignore[method-assign]
    try:
        full = _seal_view(gridflow.Engine(entry_points=False, keyring=keyring).privacy, case,
                          trigger, outcome())
    finally:
        _sealing.Privacy._seal_top_fields = original  # type: ignore[method-assign]
    assert quick == full
