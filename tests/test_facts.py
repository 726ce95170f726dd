"""The facts a SQLStore keeps for the figures (schema 5, `gridflow._facts`): every
write keeps them equal to the fold of the events, the upgrade from schema 4 fills
them so the figures do not change, and verification finds one edited behind
gridflow's back."""

from __future__ import annotations

import itertools
from datetime import UTC, timedelta
from typing import Any

import attrs
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.conftest import drop_schema_5

import gridflow
from gridflow import Engine, FixedClock, IntegrityError, SQLStore, _facts, metrics
from gridflow._figures import GRID_CASE_TERMS, MEDIATION_TERMS, OVERDUE_TRIGGER, SYSTEM_ACTOR
from gridflow.model import GENESIS_HASH, Actor, Case, Event
from gridflow.store import Write
from test_closed_loop_compute import SINCE, UNTIL, random_population
from test_grid_case_v2 import T0


def _all_facts_agree(store: SQLStore) -> int:
    ids = [c.id for c in store.query(limit=10_000).items]
    for cid in ids:
        stored, stays, districts = store.stored_facts(cid)
        events = store.events(cid)
        facts, derived = _facts.derive(events)
        assert stored == {**facts, "district": _facts.opening_district(events[0])}, cid
        assert stays == derived, cid
        assert districts == [stored["district"]] * len(events), cid
    return len(ids)


def test_the_terms_are_those_of_the_figures() -> None:
    g, m = GRID_CASE_TERMS, MEDIATION_TERMS
    ours = (_facts._SYSTEM, _facts._HANDLING, _facts._BREACHES, _facts._CLOSED,
            _facts._REVISIT, _facts._REVISIT_ENDS)
    theirs = (SYSTEM_ACTOR, g.handling, (g.breach, OVERDUE_TRIGGER), g.closed, g.revisit,
              (g.revisit_passed, g.revisit_failed))
    assert ours == theirs
    assert (g.triage, g.escalate, g.reopen, g.extension) == (
        "triage", "escalate", "reopen", "approve_extension")
    assert m.ended == _facts._ENDED and _facts._ENDED[0] == m.resolved
    assert (m.tier1, m.higher_tiers, m.agree) == (
        "grid_mediation", ("three_office", "multi_party"), "agree")


def test_writes_keep_the_facts_equal_to_the_fold(sql: SQLStore) -> None:
    random_population(sql, 11, n=15)
    assert _all_facts_agree(sql) == 15


def test_the_core_statements_keep_them_too(tmp_path: Any) -> None:
    """The statements on SQLAlchemy Core (a store without the DBAPI hot path, as
    AsyncSQLStore's) write the same facts."""
    store = SQLStore(f"sqlite:///{tmp_path / 'core.db'}")
    store.create_schema()
    store._hot = None
    random_population(store, 5, n=8)
    assert _all_facts_agree(store) == 8
    store.close()


def _clear_facts_and_go_back_to_4(store: SQLStore) -> None:
    with store.engine.begin() as conn:
        drop_schema_5(conn, store)
        meta = store.tables.meta
        conn.execute(sa.update(meta).where(meta.c.key == "schema_version").values(value="4"))


def test_the_upgrade_from_schema_4_fills_the_facts(sql: SQLStore) -> None:
    random_population(sql, 3, n=20)
    before = {by: metrics.compute(sql, since=SINCE, until=UNTIL, by=by).to_dicts()
              for by in ("grid", "area", None)}
    _clear_facts_and_go_back_to_4(sql)
    sql.close()
    again = SQLStore(str(sql.engine.url), schema=sql.schema) if sql.dialect == "postgresql" \
        else SQLStore(str(sql.engine.url))
    with pytest.raises(gridflow.SchemaVersionError, match="older than this gridflow's 5"):
        again.get("x")
    again.create_schema()
    assert again.schema_version() == 5
    assert _all_facts_agree(again) == 20
    after = {by: metrics.compute(again, since=SINCE, until=UNTIL, by=by).to_dicts()
             for by in ("grid", "area", None)}
    assert after == before
    Engine(store=again, entry_points=False).verify_all()
    again.close()


def _tamper(store: SQLStore, sql: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(sa.text(sql))


def _case_with_stays(store: SQLStore) -> str:
    for case in store.query(limit=100).items:
        if sum(s is not None for s in store.stored_facts(case.id)[1]) >= 2:
            return case.id
    raise AssertionError("no case with two stays")


@pytest.mark.parametrize("column", ["f_closed_at", "f_triage", "f_at_max", "f_stay_us",
                                    "f_first_check_passed"])
def test_an_edited_fact_column_fails_verification(sql: SQLStore, column: str) -> None:
    random_population(sql, 2, n=10)
    engine = Engine(store=sql, entry_points=False)
    assert engine.verify_all() == 10
    cid = _case_with_stays(sql)
    table = sql.engine.dialect.identifier_preparer.format_table(sql.cases)
    _tamper(sql, f"UPDATE {table} SET {column} = COALESCE({column}, 0) + 1 "
                 f"WHERE id = '{cid}'")
    with pytest.raises(IntegrityError) as caught:
        engine.verify_all()
    assert (caught.value.case_id, caught.value.field) == (cid, column)
    with pytest.raises(IntegrityError, match=column):
        engine.verify(cid)
    # A repair on purpose: the facts from the events again.
    assert sql.rebuild_facts([cid]) == 1
    assert engine.verify_all() == 10


def test_an_edited_stay_fails_verification(sql: SQLStore) -> None:
    random_population(sql, 4, n=10)
    engine = Engine(store=sql, entry_points=False)
    cid = _case_with_stays(sql)
    seq = next(i + 1 for i, s in enumerate(sql.stored_facts(cid)[1]) if s is not None)
    table = sql.engine.dialect.identifier_preparer.format_table(sql.events_table)
    _tamper(sql, f"UPDATE {table} SET stay_us = stay_us - 1 "
                 f"WHERE case_id = '{cid}' AND seq = {seq}")
    with pytest.raises(IntegrityError) as caught:
        engine.verify_all()
    assert (caught.value.case_id, caught.value.seq, caught.value.field) == (cid, seq, "stay_us")


def test_a_stay_set_on_an_event_that_ends_none_is_repaired(sql: SQLStore) -> None:
    random_population(sql, 4, n=10)
    engine = Engine(store=sql, entry_points=False)
    cid = _case_with_stays(sql)
    seq = next(i + 1 for i, s in enumerate(sql.stored_facts(cid)[1]) if s is None)
    table = sql.engine.dialect.identifier_preparer.format_table(sql.events_table)
    _tamper(sql, f"UPDATE {table} SET stay_us = 7 WHERE case_id = '{cid}' AND seq = {seq}")
    with pytest.raises(IntegrityError, match="stay_us"):
        engine.verify(cid)
    assert sql.rebuild_facts([cid]) == 1
    assert engine.verify_all() == 10


def test_rebuild_facts_goes_past_a_page_of_unknown_ids(sql: SQLStore) -> None:
    random_population(sql, 2, n=3)
    engine = Engine(store=sql, entry_points=False)
    cid = _case_with_stays(sql)
    table = sql.engine.dialect.identifier_preparer.format_table(sql.cases)
    _tamper(sql, f"UPDATE {table} SET f_triage = f_triage + 1 WHERE id = '{cid}'")
    # More unknown ids than one page of the rebuild, all sorted before the case's.
    unknown = [f"!{n:05}" for n in range(2_500)]
    assert sql.rebuild_facts([*unknown, cid]) == 1
    engine.verify(cid)


@pytest.mark.parametrize("bad", ["c-1", b"c-1", [1, 2], ("c-1", None)])
def test_rebuild_facts_refuses_a_string_or_non_string_ids(sql: SQLStore, bad: Any) -> None:
    # "c-1" is a sequence of "c", "-", "1": rebuilt silently as three unknown cases.
    random_population(sql, 2, n=3)
    cid = _case_with_stays(sql)
    table = sql.engine.dialect.identifier_preparer.format_table(sql.cases)
    _tamper(sql, f"UPDATE {table} SET f_triage = f_triage + 1 WHERE id = '{cid}'")
    with pytest.raises(gridflow.InvalidArgument, match=r"rebuild_facts\(\[case_id\]\)"):
        sql.rebuild_facts(bad)
    with pytest.raises(IntegrityError):  # nothing was rebuilt
        Engine(store=sql, entry_points=False).verify(cid)

def test_the_figures_read_the_facts(sql: SQLStore) -> None:
    """A case whose events are all in the period is counted from its facts (the
    edited column shows in the figures; verify would report it)."""
    random_population(sql, 6, n=10)
    before = metrics.compute(sql, since=SINCE, until=UNTIL, by=None).row(None)
    table = sql.engine.dialect.identifier_preparer.format_table(sql.cases)
    _tamper(sql, f"UPDATE {table} SET f_parked = f_parked + 5")
    c = sql.cases.c
    with sql.engine.connect() as conn:
        whole = conn.execute(sa.select(sa.func.count()).where(
            c.f_at_min >= _facts.micros(SINCE), c.f_at_max < _facts.micros(UNTIL))).scalar()
    assert whole
    after = metrics.compute(sql, since=SINCE, until=UNTIL, by=None).row(None)
    assert after.parked == before.parked + 5 * whole


# -- the fold itself -------------------------------------------------------------------

_TRIGGERS = ("triage", "escalate", "reopen", "approve_extension", "confirm", "acknowledge",
             "return_task", "pass_check", "fail_check", "rate", "park", "urge", "agree",
             "note", "close")
_STATES = (None, "closed", "joint_action", "revisit", "resolved", "grid_mediation",
           "three_office", "referred")


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Any:
    store = SQLStore(f"sqlite:///{tmp_path_factory.mktemp('facts') / 'f.db'}")
    store.create_schema()
    yield store
    store.close()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_TRIGGERS), st.sampled_from(_STATES),
                          st.sampled_from(_STATES), st.integers(-600, 6000), st.booleans(),
                          st.sampled_from((SYSTEM_ACTOR, "u"))),
                max_size=12))
def test_the_stores_writes_are_the_fold(scratch: SQLStore, steps: list[tuple[Any, ...]]
                                        ) -> None:
    """Any events committed one by one (times may go back: nothing assumes they only
    grow) leave the facts `derive` gives: the SQL rule of each column is the fold's."""
    cid = f"h-{next(_IDS)}"
    at = T0
    open_event = Event.create(cid, 1, "open", None, "reported", Actor.system(), at, {}, None,
                              GENESIS_HASH)
    case = Case(cid, "grid_case", 1, "reported", 1, {}, None, at, at, head=open_event.hash)
    scratch.commit([Write(case, open_event, 0)])
    events = [open_event]
    for trigger, source, dest, minutes, flag, actor in steps:
        at = at + timedelta(minutes=minutes)
        payload = {"on_time": flag, "satisfaction": "satisfied" if flag else "dissatisfied",
                   "deadline_at": (at - timedelta(hours=1)).isoformat(),
                   "recurrence_of": ["x"] if flag else []}
        e = Event.create(cid, len(events) + 1, trigger, source, dest,
                         Actor(actor, ["coordinator"], grids=gridflow.ALL_GRIDS), at, payload,
                         None, events[-1].hash)
        new = attrs.evolve(case, version=e.seq, updated_at=at, head=e.hash,
                           state=dest or case.state)
        scratch.commit([Write(new, e, case.version)])
        case = new
        events.append(e)
    facts, stays = _facts.derive(events)
    assert scratch.stored_facts(cid) == ({**facts, "district": ""}, stays, [""] * len(events))


_IDS = itertools.count()


def _clock_goes_back(store: Any) -> None:
    from test_grid_case_v2 import GRID, resident, secretary

    clock = FixedClock(T0)
    e = Engine(store=store, clock=clock, entry_points=False)
    for back in (False, True):
        c = e.open("grid_case", actor=resident, grid=GRID, version=1,
                   data={"title": "t", "source": "resident"})
        clock.advance(timedelta(hours=5))
        e.fire(c.id, "triage", actor=secretary,
               payload={"category": "违规堆物", "priority": "normal"})
        if back:
            clock.set(T0 + timedelta(hours=2))  # a clock set back between two steps
        clock.advance(timedelta(hours=1))
        e.fire(c.id, "escalate", actor=secretary, payload={"reason": "需街道协调"})
        clock.set(T0 + timedelta(days=1))


@pytest.mark.parametrize("hours", [(0, 48), (0, 4), (3, 48), (5, 7)])
def test_stays_of_a_case_whose_times_go_back(sql: SQLStore, hours: tuple[int, int]) -> None:
    """A case with an event earlier than one before it: its stays come from its
    events (the window), and the figures equal the MemoryStore's."""
    memory = gridflow.MemoryStore()
    for s in (sql, memory):
        _clock_goes_back(s)
    assert {sql.stored_facts(c.id)[0][_facts.BACK] for c in sql.query().items} == {0, 1}
    since, until = T0 + timedelta(hours=hours[0]), T0 + timedelta(hours=hours[1])
    got, want = (metrics.compute(s, since=since, until=until, by="grid").to_dicts()
                 for s in (sql, memory))
    assert got == want


def test_verify_rereads_all_three_when_a_step_lands_between_its_reads(tmp_path: Any) -> None:
    """The case row, its events and its facts are three reads: a step landing between
    any two of them is re-read, never reported as tampering."""
    store = SQLStore(f"sqlite:///{tmp_path / 'race.db'}")
    store.create_schema()
    engine = Engine(store=store, entry_points=False)
    actor = Actor("u", ["resident", "coordinator"], ["g"])
    case = engine.open("grid_case", actor=actor, grid="g",
                       data={"title": "井盖缺失", "source": "resident"})
    reads = {"events": 0, "facts": 0}
    real_events, real_facts = store.events, store.stored_facts

    def landing() -> None:
        engine.fire(case.id, "note", actor=actor, payload={"text": "又一步"})

    def events(case_id: str) -> Any:
        found = real_events(case_id)
        reads["events"] += 1
        if reads["events"] == 2:
            landing()  # after the events, before the row is read again
        return found

    def stored_facts(case_id: str) -> Any:
        reads["facts"] += 1
        if reads["facts"] == 1:
            landing()  # after the row and the events, before the facts
        return real_facts(case_id)

    store.events = events  # type: ignore[method-assign]
    store.stored_facts = stored_facts  # type: ignore[method-assign]
    assert engine.verify(case.id).id == case.id
    store.close()


_TRIGGERS = ["open", "triage", "escalate", "overdue", "reopen", "approve_extension", "confirm",
             "acknowledge", "return_task", "pass_check", "fail_check", "rate", "park", "urge",
             "agree", "note", "close", "migrate"]
_STATES = [None, "reported", "joint_action", "closed", "revisit", "resolved", "referred",
           "withdrawn", "grid_mediation", "three_office", "multi_party", "escalated"]
_PAYLOAD_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.text(max_size=3),
                            st.sampled_from(["satisfied", "basically_satisfied", "unsatisfied",
                                             "2026-03-02T01:00:00+00:00", "not a time"]),
                            st.lists(st.text(max_size=2), max_size=2))


@settings(max_examples=400, deadline=None)
@given(trigger=st.sampled_from(_TRIGGERS), source=st.sampled_from(_STATES),
       dest=st.sampled_from(_STATES), system=st.booleans(), seq=st.integers(1, 3),
       at=st.datetimes(timezones=st.just(UTC)),
       payload=st.dictionaries(st.sampled_from(["on_time", "satisfaction", "recurrence_of",
                                                "deadline_at", "grid", "text"]),
                               _PAYLOAD_VALUES, max_size=4))
def test_planned_step_params_equal_every_fact_evaluated(
        trigger: str, source: str | None, dest: str | None, system: bool, seq: int,
        at: Any, payload: dict[str, Any]) -> None:
    # step_params works out the step-only facts once per step (_facts._plan); the
    # reference evaluates every fact of FACTS on the event itself.
    actor = Actor.system() if system else Actor("w", ["grid_worker"], ["g"])
    event = Event.create("c", seq, trigger, source, dest, actor, at, payload, None,
                         GENESIS_HASH)
    assert _facts.step_params(event) == _facts._step_params_direct(event)


def test_a_step_only_fact_that_reads_the_payload_is_caught(monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    # A fact added to FACTS that reads the payload but is not listed in _EVENT_FACTS
    # would be planned once per step: the probe refuses to be read.
    monkeypatch.setattr(_facts, "FACTS", (*_facts.FACTS, (
        "f_new", "sum", lambda e: 1 if e.payload.get("x") else 0)))
    monkeypatch.setattr(_facts, "_PLANS", {})
    event = Event.create("c", 2, "note", "reported", None, Actor.system(),
                         T0, {"x": True}, None, GENESIS_HASH)
    with pytest.raises(AssertionError, match="outside _EVENT_FACTS reads the payload"):
        _facts.step_params(event)


def test_the_sqlite_median_read_falls_back_to_core_rows(sql: SQLStore,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # The SQLite medians bind their parameters by reading SQLAlchemy's compiled form
    # (not public API); if a release changes it, the figures come from Core's rows.
    from gridflow import _metrics_sql

    random_population(sql, 3, n=12)
    before = metrics.compute(sql, since=SINCE, until=UNTIL, by="grid")
    calls: list[int] = []

    def changed(conn: Any, compiled: Any) -> list[Any]:
        calls.append(1)
        raise AttributeError("positiontup")

    monkeypatch.setattr(_metrics_sql, "_bound", changed)
    assert metrics.compute(sql, since=SINCE, until=UNTIL, by="grid") == before
    assert calls or sql.dialect == "postgresql"  # PostgreSQL has percentile_cont
