"""One value domain on every store: what the engine accepts is stored, read back
and verified the same on MemoryStore, SQLite and PostgreSQL; what it refuses it
refuses everywhere, as `InvalidPayload` naming the path.

Findings on 0.1: payloads with non-string keys (``{2: 'a', 10: 'b'}``) and a
non-string ``case_id`` or ``idempotency_key`` were accepted, hashed, and then
failed `verify` forever on SQLite and PostgreSQL (a false tamper alarm) while
passing on MemoryStore; a payload nested 500 deep raised a bare
``RecursionError``; on SQLite an int beyond 64 bits (``tick(limit=2**64)``)
raised a bare ``OverflowError``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gridflow
from gridflow import (
    ALL_GRIDS,
    Actor,
    Engine,
    FixedClock,
    GridflowError,
    InvalidArgument,
    InvalidPayload,
    MemoryStore,
    SQLStore,
    StoreError,
)
from gridflow.values import MAX_DEPTH, MAX_EVENT_BYTES, MAX_INT, MIN_INT

GRID = "华三-1"
WORKER = Actor("网格员-陈", ["grid_worker"], [GRID])
BOSS = Actor("书记-王", ["coordinator"], [GRID])


def _engine(store: gridflow.Store) -> Engine:
    return Engine(store=store, clock=FixedClock(datetime(2026, 3, 2, 1, tzinfo=UTC)),
                  entry_points=False, keyring=gridflow.Keyring.generate())


def _open(engine: Engine, case_id: str = "c-1") -> gridflow.Case:
    return engine.open("grid_case", version=1, actor=WORKER, grid=GRID, case_id=case_id,
                       data={"title": "堆物", "source": "visit"})


def nested(depth: int) -> Any:
    value: Any = "底"
    for _ in range(depth):
        value = {"k": value}
    return value


# -- each finding, on every store ------------------------------------------------------


@pytest.mark.parametrize(("extra", "path"), [
    ({2: "a", 10: "b"}, "payload.extra has a key that is not a string: int 2"),
    ({"parties": [{}, {}, {"name": float("nan")}]}, "payload.extra.parties[2].name is nan"),
    (nested(500), f"nested more than {MAX_DEPTH} levels deep"),
    (2**64, "payload.extra is an integer outside 64 bits"),
    (-(2**63) - 1, "payload.extra is an integer outside 64 bits"),
    (-0.0, "payload.extra is -0.0"),
    ("a\x00b", "payload.extra contains a NUL character"),
    ("\udc80", "payload.extra contains a lone surrogate"),
    ({"a\x00": 1}, "payload.extra has a key that contains a NUL character"),
    ({1, 2}, "payload.extra is of type set"),
    (b"bytes", "payload.extra is of type bytes"),
    (datetime(2026, 1, 1), "payload.extra is of type datetime"),
])
def test_values_outside_the_domain_are_refused_with_their_path(
    engine: Engine, extra: Any, path: str,
) -> None:
    case = _open(engine)
    before = (engine.store.get(case.id), engine.store.events(case.id))
    with pytest.raises(InvalidPayload) as caught:
        engine.fire(case.id, "note", actor=BOSS, payload={"text": "x", "extra": extra})
    assert path in str(caught.value)
    assert (engine.store.get(case.id), engine.store.events(case.id)) == before


def test_open_data_is_checked_the_same(engine: Engine) -> None:
    with pytest.raises(InvalidPayload, match=r"data\.reporter has a key that is not a string"):
        engine.open("grid_case", version=1, actor=WORKER, grid=GRID,
                    data={"title": "t", "source": "visit", "reporter": {3: "王"}})
    assert engine.store.query().items == []


@pytest.mark.parametrize("bad", [7, b"c-1", "", " c-1", "c\x00", "x" * 201])
def test_ids_and_keys_are_plain_strings(engine: Engine, bad: Any) -> None:
    case = _open(engine)
    for call in (
        lambda: engine.fire(bad, "note", actor=BOSS, payload={"text": "x"}),
        lambda: engine.fire(case.id, "note", actor=BOSS, payload={"text": "x"},
                            idempotency_key=bad),
        lambda: engine.open("grid_case", version=1, actor=WORKER, grid=GRID, case_id=bad,
                            data={"title": "t", "source": "visit"}),
        lambda: engine.open("grid_case", version=1, actor=WORKER, grid=GRID, idempotency_key=bad,
                            data={"title": "t", "source": "visit"}),
        lambda: engine.get(bad),
    ):
        with pytest.raises(InvalidArgument):
            call()
    assert engine.verify(case.id).version == 1


@pytest.mark.parametrize("limit", [2**64, 0, -1, 1.5, True, "10"])
def test_tick_limit_is_checked(engine: Engine, limit: Any) -> None:
    with pytest.raises(InvalidArgument, match="tick"):
        engine.tick(limit=limit)



@pytest.mark.parametrize(("workflow", "version", "said"), [
    ("grid_case", True, "got bool True"),  # True == 1: it opened a grid_case@1
    ("grid_case", [1], "got list [1]"),  # a TypeError from the dict look-up
    ("grid_case", 1.0, "got float 1.0"),
    ("grid_case", "1", "got str '1'"),
    (["grid_case"], None, "workflow: expected a workflow name"),
])
def test_a_workflow_version_is_an_integer_and_its_name_a_string(
        engine: Engine, workflow: Any, version: Any, said: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(said)) as caught:
        engine.open(workflow, version=version, actor=WORKER, grid=GRID, case_id="c-9",
                    data={"title": "堆物", "source": "visit"})
    assert "registered: grid_case@1" in str(caught.value)
    assert engine.store.get("c-9") is None
    with pytest.raises(InvalidArgument, match=re.escape(said)):
        engine.workflow(workflow, version)


@pytest.mark.parametrize(("kwargs", "said"), [
    ({"limit": True}, "claim_due(limit=...) takes an int, got bool True"),  # was 1
    ({"limit": 2.5}, "claim_due(limit=...) takes an int, got float 2.5"),
    ({"lease": [1]}, "claim_due(lease=...) takes a positive number of seconds, got list"),
    ({"lease": math.inf}, "got float inf"),
    ({"lease": 0}, "got int 0"),
    ({"now": datetime(2026, 3, 3)}, "claim_due(now=...) takes an aware datetime"),
])
def test_claim_due_arguments_are_checked_and_nothing_is_claimed(
        engine: Engine, kwargs: dict[str, Any], said: str) -> None:
    # A list lease raised timedelta's bare TypeError; True was taken for limit=1.
    case = _open(engine)
    store = engine.store
    due = {"now": datetime(2027, 1, 1, tzinfo=UTC), "limit": 10, "lease": 60.0} | kwargs
    with pytest.raises(InvalidArgument, match=re.escape(said)):
        store.claim_due(due.pop("now"), due.pop("limit"), **due)
    assert [c.id for c in store.claim_due(datetime(2027, 1, 1, tzinfo=UTC))] == [case.id]

@pytest.mark.parametrize(("kwargs", "said"), [
    ({"limit": True}, "query(limit=...) takes an int from 0"),  # was a page of 1
    ({"limit": -1}, "got int -1"),  # was an empty page
    ({"limit": 2**64}, "got int 18446744073709551616"),  # OverflowError on SQLite
    ({"limit": "10"}, "got str"),  # TypeError
    ({"state": 3}, "query(state=...) takes None, a string or a list of strings, got int 3"),
    ({"grid": [GRID, None]}, "query(grid=...) takes None, a string or a list"),
    ({"workflow": 1.5}, "query(workflow=...) takes None or a workflow name"),  # matched nothing
    ({"opened_from": datetime(2026, 1, 1)}, "query(opened_from=...) takes None or an aware"),
    ({"overdue_at": "2026-01-01"}, "query(overdue_at=...) takes None or an aware datetime"),
    ({"after": datetime(2026, 1, 1, tzinfo=UTC)}, "query(after=...) takes None or the 'next'"),
])
def test_query_arguments_are_checked_on_every_store(
        store: gridflow.Store, kwargs: dict[str, Any], said: str) -> None:
    # Each was a bare TypeError / AttributeError / sqlalchemy ArgumentError, or taken
    # for something else, depending on the store.
    with pytest.raises(InvalidArgument, match=re.escape(said)):
        store.query(**kwargs)


@pytest.mark.parametrize("by", [True, None, [["state"]], "state"])
def test_counts_by_is_a_sequence_of_column_names(store: gridflow.Store, by: Any) -> None:
    with pytest.raises(InvalidPayload, match=r"counts\(by=\.\.\.\)|cannot count cases by"):
        store.counts(by)


@pytest.mark.parametrize("size", [0, -1, True, 2.5])
def test_iter_cases_page_size_is_a_positive_int(size: Any) -> None:
    from gridflow.interop.export import iter_cases

    engine = _engine(MemoryStore())
    _open(engine)
    # 0 was an export of no case at all, without a word.
    with pytest.raises(InvalidArgument, match=r"iter_cases\(page_size=\.\.\.\) takes an int"):
        list(iter_cases(engine.store, page_size=size))


def test_an_effect_or_hook_writing_a_bad_value_is_refused(engine: Engine) -> None:
    class Bad:
        @gridflow.hookimpl
        def gridflow_before_fire(self, case: Any, trigger: str, actor: Any,
                                 payload: Any) -> dict[str, Any]:
            return {"count": 2**70} if trigger == "note" else {}

    engine.register(Bad())
    case = _open(engine)
    with pytest.raises(InvalidPayload, match=r"data\.count is an integer outside 64 bits"):
        engine.fire(case.id, "note", actor=BOSS, payload={"text": "x"})
    assert engine.verify(case.id).version == 1


def test_an_event_larger_than_the_limit_is_refused(engine: Engine) -> None:
    case = _open(engine)
    with pytest.raises(InvalidPayload, match="at most 1,048,576 bytes"):
        engine.fire(case.id, "note", actor=BOSS, payload={"text": "长" * (MAX_EVENT_BYTES // 3)})
    assert engine.verify(case.id).version == 1


def test_a_raw_store_commit_the_driver_cannot_bind_is_a_store_error(tmp_path: Path) -> None:
    # Below the engine: SQLite cannot bind an int beyond 64 bits (OverflowError in 0.1).
    store = SQLStore(f"sqlite:///{tmp_path / 'x.db'}")
    store.create_schema()
    engine = _engine(store)
    case = _open(engine)
    with pytest.raises(StoreError):
        store.get(2**64)  # type: ignore[arg-type]
    assert store.get(case.id) == case
    store.close()


# -- differential: the three stores agree ----------------------------------------------

_key = st.text(max_size=4) | st.integers(-3, 3) | st.sampled_from(["a\x00", "\udc80"])
_leaf = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2**65), max_value=2**65),
    st.sampled_from([MAX_INT, MIN_INT, MAX_INT + 1, MIN_INT - 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e16, 1e308, 5e-324, -2.5e17, 0.1 + 0.2, -0.0, 0.0]),
    st.text(max_size=6),
    st.sampled_from(["a\x00b", "\udc80", "楼道\n堆物", "\u2028"]),
)
_values = st.recursive(
    _leaf,
    lambda kids: st.lists(kids, max_size=3) | st.lists(kids, max_size=2).map(tuple)
    | st.dictionaries(_key, kids, max_size=3),  # type: ignore[arg-type]
    max_leaves=10,
)


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory,
          request: pytest.FixtureRequest) -> Iterator[list[Engine]]:
    path = tmp_path_factory.mktemp("values")
    stores: list[Any] = [MemoryStore(), SQLStore(f"sqlite:///{path / 'v.db'}",
                                                 synchronous="NORMAL")]
    url = request.getfixturevalue("pg_url")
    schema = f"gfvalues_{id(stores)}"
    stores.append(SQLStore(url, schema=schema))
    for store in stores[1:]:
        store.create_schema()
    engines = [_engine(store) for store in stores]
    for engine in engines:
        _open(engine)
    yield engines
    for store in stores[1:]:
        store.close()
    from tests.conftest import drop_pg_schema

    drop_pg_schema(url, schema)


def _same(a: Any, b: Any) -> bool:
    # Equal as JSON values, floats to the bit.
    if isinstance(a, float) and isinstance(b, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@pytest.mark.postgres
@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(value=_values)
def test_every_store_accepts_and_refuses_the_same_values(three: list[Engine], value: Any) -> None:
    outcomes = []
    for engine in three:
        try:
            case = engine.fire("c-1", "note", actor=BOSS, payload={"text": "x", "v": value})
        except GridflowError as exc:
            assert type(exc) is InvalidPayload, exc
            outcomes.append(("refused", str(exc)))
        else:
            outcomes.append(("stored", case.version))
    assert len(set(outcomes)) == 1, outcomes
    if outcomes[0][0] == "stored":
        stored = [engine.history("c-1")[-1].payload["v"] for engine in three]
        for got in stored:
            assert _same(got, _plain(value)), (got, value)
        for engine in three:
            assert engine.verify("c-1").version == outcomes[0][1]


def test_actors_round_trip_on_every_store(engine: Engine) -> None:
    street = Actor("街道-赵", ["street", "coordinator"], ALL_GRIDS)
    case = engine.open("grid_case", version=1, actor=street, grid=None,
                       data={"title": "无网格", "source": "patrol"})
    assert engine.history(case.id)[0].actor == street
    assert engine.verify(case.id).version == 1


# -- hostile arguments of the figures --------------------------------------------------

_JAN = {"since": datetime(2026, 1, 1, tzinfo=UTC), "until": datetime(2026, 2, 1, tzinfo=UTC)}


@pytest.mark.parametrize(("call", "kwargs", "said"), [
    ("compute", {"tz": None}, "tz must be an IANA time zone name"),  # TypeError from zoneinfo
    ("compute", {"tz": ["Asia/Shanghai"]}, "tz must be an IANA time zone name"),
    ("problem_classes", {"tz": 8}, "tz must be an IANA time zone name"),
    ("compute", {"weights": True}, "weights must be None or a mapping"),  # TypeError
    ("compute", {"weights": ["ack_on_time_rate"]}, "weights must be None or a mapping"),
    ("compute", {"weights": {"ack_on_time_rate": math.nan}},  # every score was nan
     "weight ack_on_time_rate must be a finite number of at least 0, got float nan"),
    ("closed_loop", {"weights": {"ack_on_time_rate": "1"}}, "got str '1'"),
    ("closed_loop", {"weights": {"ack_on_time_rate": True}}, "got bool True"),
    ("compute", {"weights": {3: 1.0}}, "unknown weight(s) 3"),  # TypeError in join
    ("compute", {"by": ["grid"]}, "cannot group by ['grid']"),
    ("compute", {"workflow": 1}, "workflow must be None or a workflow name, got int"),
    ("compute", {"time_in_state": math.nan}, "time_in_state must be True or False"),
    ("closed_loop", {"since": datetime(2026, 1, 1).date()},  # TypeError comparing
     "closed_loop: since must be an aware datetime (with a time zone), got date"),
    ("closed_loop", {"until": datetime(2026, 2, 1)}, "until must be an aware datetime"),
    ("closed_loop", {"until": _JAN["since"]}, "the period is empty"),
    ("compute", {"until": datetime(9999, 12, 31).date()},  # OverflowError: its end
     "until=9999-12-31 is at the edge of the calendar"),
    ("problem_classes", {"since": datetime(1, 1, 1).date()},  # OverflowError in UTC
     "since=0001-01-01 is at the edge of the calendar"),
])
def test_metrics_arguments_are_refused_with_what_is_allowed(
        call: str, kwargs: dict[str, Any], said: str) -> None:
    from gridflow import metrics

    engine = _engine(MemoryStore())
    _open(engine)
    with pytest.raises(InvalidArgument, match=re.escape(said)):
        getattr(metrics, call)(engine.store, **(_JAN | kwargs))


# -- hostile arguments of migrations and retirement ------------------------------------


@pytest.mark.parametrize(("kwargs", "said"), [
    ({"cases": True}, "cases=... takes None or a list of case ids, got bool"),  # TypeError
    ({"query": 0}, "query=... takes None or a mapping of store.query filters, got int"),
    ({"query": []}, "got list"),  # [] and 0 were no filter: every case of the workflow
    ({"query": "x"}, "got str"),  # ValueError from dict()
    ({"query": {1: "g", "grid": "g"}}, "unknown filter(s) 1;"),  # TypeError in the join
    ({"query": {"state": 3}}, "query(state=...) takes None, a string or a list"),
])
def test_migration_selection_is_checked_before_anything_moves(
        store: gridflow.Store, kwargs: dict[str, Any], said: str) -> None:
    engine = _engine(store)
    case = _open(engine)
    for call in (engine.plan_migration, engine.migrate):
        with pytest.raises(InvalidArgument, match=re.escape(said)):
            call(gridflow.GRID_CASE_V1_TO_V2, actor=Actor.system(), **kwargs)
    assert engine.get(case.id).workflow_version == 1


@pytest.mark.parametrize(("args", "said"), [
    (("grid_case", 1, "no"), "set_retired(retired=...) takes True or False, got str"),
    (("grid_case", True, True), "set_retired(version=...) takes an int version, got bool"),
    ((["grid_case"], 1, True), "set_retired(workflow=...) takes a workflow name"),
])
def test_set_retired_arguments_are_checked(store: gridflow.Store, args: tuple[Any, ...],
                                           said: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(said)):
        store.set_retired(*args)  # type: ignore[attr-defined]
    assert store.retired() == set()  # type: ignore[attr-defined]


@pytest.mark.parametrize("retired", ["no", 0.0, None])
def test_engine_retire_takes_a_bool(retired: Any) -> None:
    engine = _engine(MemoryStore())
    with pytest.raises(InvalidArgument, match=r"retire\(retired=\.\.\.\) takes True or False"):
        engine.retire("grid_case", 1, retired=retired)  # "no" retired grid_case@1
    assert engine.retired_versions() == set()


# -- hostile arguments of specs, keyrings and actors -----------------------------------


@pytest.mark.parametrize("data", [None, 1, "grid_case", [("name", "x")]])
def test_a_spec_that_is_not_a_mapping_is_a_spec_error(data: Any) -> None:
    # Each raised a bare TypeError (a transition's stand-ins given to WorkflowSpec).
    with pytest.raises(gridflow.SpecError, match=r"spec: expected a mapping"):
        gridflow.WorkflowSpec.from_dict(data)


@pytest.mark.parametrize(("path", "said"), [
    (None, "a spec file path is a str or a pathlib.Path, got NoneType"),  # TypeError
    (b"w.yaml", "got bytes"),  # TypeError
    ("w\x00.yaml", "its name has a NUL character or a lone surrogate"),  # ValueError
    ("\ud800.yaml", "its name has a NUL character or a lone surrogate"),  # UnicodeEncodeError
])
def test_spec_load_refuses_a_path_no_file_can_have(path: Any, said: str) -> None:
    with pytest.raises(gridflow.SpecError, match=re.escape(said)):
        gridflow.WorkflowSpec.load(path)


def test_spec_state_and_label_refuse_with_gridflow_errors() -> None:
    from gridflow._errors import UnknownState

    spec = _engine(MemoryStore()).workflow("grid_case", 1)
    with pytest.raises(UnknownState, match="has no state 'nope'; its states: reported,") as caught:
        spec.state("nope")
    assert isinstance(caught.value, KeyError | InvalidArgument)  # KeyError before 0.2
    with pytest.raises(InvalidArgument, match=r"label\(lang=\.\.\.\) takes a language code"):
        spec.label(None)  # type: ignore[arg-type]  # AttributeError
    with pytest.raises(InvalidArgument, match=r"label\(lang=\.\.\.\)"):
        spec.states[0].label(1)  # type: ignore[arg-type]


@pytest.mark.parametrize(("call", "said"), [
    (lambda: gridflow.Keyring.from_file(None), "from_file(path=...) takes a file path"),
    (lambda: gridflow.Keyring.from_file("k\x00ey"), "the name has a NUL character"),
    (lambda: gridflow.Keyring.from_env(environ=True), "from_env(environ=...) takes None or"),
    (lambda: gridflow.Keyring.from_env(["K"], environ={}), "from_env(variable=...) takes"),
    (lambda: gridflow.Keyring.from_env("K", environ={"K": b"ab" * 32}),
     "environment variable 'K' holds a bytes, not text"),
])
def test_keyring_sources_refuse_with_a_keyring_error(call: Any, said: str) -> None:
    from gridflow._errors import KeyringError

    with pytest.raises(KeyringError, match=re.escape(said)) as caught:
        call()
    assert "abab" not in str(caught.value)  # never the key


@pytest.mark.parametrize(("kwargs", "said"), [
    ({"roles": True}, "roles are a string or a list of strings, got bool"),  # TypeError
    ({"grids": 3}, "grids are a string or a list of strings, got int"),  # TypeError
    ({"roles": {"coordinator": False}}, "got dict"),  # was the role 'coordinator'
])
def test_actor_roles_and_grids_are_names(kwargs: dict[str, Any], said: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(said)):
        Actor("a", **kwargs)


# -- hostile arguments of calendars and clocks -----------------------------------------


@pytest.mark.parametrize(("call", "said"), [
    (lambda c: c.nth_working_day(datetime(2026, 1, 5, tzinfo=UTC), True),  # was 1 day
     "nth_working_day needs an int n >= 1, got bool True"),
    (lambda c: c.nth_working_day(datetime(2026, 1, 5, tzinfo=UTC), 1.5), "got float 1.5"),
    (lambda c: c.nth_working_day(datetime(2026, 1, 5, tzinfo=UTC), math.nan), "got float nan"),
    (lambda c: c.nth_working_day(datetime(9999, 12, 1, tzinfo=UTC), 100),  # OverflowError
     "run past 9999-12-31"),
    (lambda c: c.nth_working_day(None, 1), "start must be a date or an aware datetime"),
    (lambda c: c.add(datetime(2026, 1, 5, tzinfo=UTC), 3), "delta must be a timedelta, got int"),
    (lambda c: c.add(None, gridflow.calendar.timedelta(days=1)), "start must be an aware"),
    (lambda c: gridflow.WorkingDays(holidays=None), "holidays must be a list, got NoneType"),
    (lambda c: gridflow.WorkingDays(weekend=True), "weekend must be a list, got bool"),
    (lambda c: gridflow.WorkingDays(weekend=[True]),  # was Tuesday
     "weekend must hold weekday numbers 0 (Monday) to 6 (Sunday), got ['True']"),
    (lambda c: gridflow.WorkingDays(tz=8), "tz must be an IANA time zone name"),  # kept as is
])
def test_calendar_arguments_are_calendar_errors(call: Any, said: str) -> None:
    with pytest.raises(gridflow.CalendarError, match=re.escape(said)):
        call(gridflow.WorkingDays())


@pytest.mark.parametrize(("call", "said"), [
    (lambda: FixedClock(0), "FixedClock(start=...) takes an aware datetime, got int"),  # default
    (lambda: FixedClock(datetime(2026, 1, 1)), "needs an aware datetime, got naive"),
    (lambda: FixedClock().set(None), "FixedClock.set takes an aware datetime, got NoneType"),
    (lambda: FixedClock().advance(60), "FixedClock.advance takes a timedelta, got int"),
    (lambda: FixedClock().advance(gridflow.calendar.timedelta(days=-1)), "does not go backwards"),
    (lambda: FixedClock().advance(gridflow.calendar.timedelta.max), "past the year 9999"),
])
def test_fixed_clock_arguments_are_invalid_arguments(call: Any, said: str) -> None:
    # Each was a bare ValueError, TypeError, AttributeError or OverflowError.
    with pytest.raises(InvalidArgument, match=re.escape(said)):
        call()


# -- hostile parts of an engine --------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "said"), [
    ({"store": 1.5}, "Engine(store=...) takes None or an object with get, events, commit"),
    ({"clock": True}, "Engine(clock=...) takes None or an object with now"),
    ({"calendar": "china"}, "Engine(calendar=...) takes None or an object with add"),
    ({"keyring": b"k" * 32}, "Engine(keyring=...) takes None or an object with wrap, unwrap"),
    ({"plugins": None}, "Engine(plugins=...) takes a list of plugin objects, got NoneType"),
    ({"telemetry": object()}, "Engine(telemetry=...) takes None or a gridflow.Telemetry"),
])
def test_engine_parts_are_checked_when_it_is_made(kwargs: dict[str, Any], said: str) -> None:
    # Each was accepted, then a bare AttributeError / TypeError at its first use.
    with pytest.raises(InvalidArgument, match=re.escape(said)):
        Engine(entry_points=False, **kwargs)


def test_register_and_register_workflow_refuse_what_they_cannot_take() -> None:
    engine = _engine(MemoryStore())
    with pytest.raises(InvalidArgument, match=r"register_workflow takes a gridflow\.WorkflowSpec"):
        engine.register_workflow({"name": "x"})  # type: ignore[arg-type]  # AttributeError
    with pytest.raises(InvalidArgument, match=r"register\(name=\.\.\.\) takes None or a string"):
        engine.register(object(), ["p"])  # type: ignore[arg-type]  # pluggy's TypeError
    assert [s.key for s in engine.workflows] == ["grid_case@1", "grid_case@2", "mediation@1"]


@pytest.mark.parametrize("key", [True, 7, b"x+01234567+AAAA", [object()]])
def test_a_verifier_key_of_the_wrong_kind_is_a_note_error(key: Any) -> None:
    # True and 7 were a bare TypeError from list(); [object()] an AttributeError later.
    engine = _engine(MemoryStore())
    for call in (lambda: engine.verify_log(None, key), lambda: gridflow.verify_bundle({}, key)):
        with pytest.raises(gridflow.NoteError, match="a checkpoint verifier is a verifier key"):
            call()


@pytest.mark.parametrize(("kwargs", "said"), [
    ({"every": math.inf}, "Worker(every=...) takes a positive number of seconds"),  # forever
    ({"every": 2**70}, "at most 31,536,000 (a year)"),
    ({"tasks": True}, "Worker(tasks=...) takes None or a list of tasks, got bool"),  # TypeError
    ({"tasks": [object()]}, "every task needs a name (a string), got object"),  # AttributeError
])
def test_worker_arguments_are_checked(kwargs: dict[str, Any], said: str) -> None:
    from gridflow.worker import Worker

    with pytest.raises(InvalidArgument, match=re.escape(said)):
        Worker(_engine(MemoryStore()), **kwargs)


@pytest.mark.parametrize(("key", "value"), [("effects", 3), ("unset", {"a": 1}),
                                            ("unset", [1])])
def test_a_plan_file_with_names_of_the_wrong_kind_is_refused(key: str, value: Any) -> None:
    # effects: 3 was a bare TypeError; unset: {a: 1} unset the key 'a'.
    data = {"workflow": "grid_case", "source_version": 1, "target_version": 2, key: value}
    with pytest.raises(InvalidArgument, match=re.escape(f"'{key}' is a name or a list of names")):
        gridflow.MigrationPlan.from_dict(data)


@pytest.mark.parametrize("ids", [True, 3])
def test_rebuild_facts_refuses_a_non_list(tmp_path: Path, ids: Any) -> None:
    store = SQLStore(f"sqlite:///{tmp_path / 'x.db'}")
    store.create_schema()
    with pytest.raises(InvalidArgument, match="case_ids must be a list of case id strings"):
        store.rebuild_facts(ids)  # a bare TypeError
    store.close()
