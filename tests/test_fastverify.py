"""The verification pre-check (`gridflow._fastverify`) agrees with the full path.

`Engine.verify_all` and `Engine.verify_log` first check each case from its
stored rows (a pre-check) and send any case that does not pass to the full path
(`Engine.verify`). The pre-check must never pass a case the full path fails.
A differential test: one column of one stored row is edited with raw SQL (a
random value, another row's value, a re-encoded value); for every case, the
pre-check's pass / fail must be the full path's, and `verify_all` must raise
exactly the error `verify` raises for the first bad case.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gridflow
from gridflow import Actor, Engine, FixedClock, IntegrityError, SQLStore
from gridflow._fastverify import _raw_source, precheck_rows
from gridflow.fold import audit

GRID = "华三-1"
WORKER = Actor("网格员-陈", ["grid_worker"], [GRID])
BOSS = Actor("书记-王", ["coordinator"], [GRID])
DEPT = Actor("城运中心", ["department"], [GRID])
SKEY, VKEY = gridflow.generate_key("example.org/fastverify")


def _story(store: Any) -> Engine:
    """Four cases: opened only; triaged and noted; dispatched, reported, extended,
    linked; rejected. Every kind of column value the fold reads is present."""
    clock = FixedClock(datetime(2026, 3, 2, 1, tzinfo=UTC))
    engine = Engine(store=store, clock=clock, entry_points=False)
    a = engine.open("grid_case", actor=WORKER, grid=GRID, version=1, case_id="c-4",
                    data={"title": "井盖缺失", "source": "visit"})
    b = engine.open("grid_case", actor=WORKER, grid=GRID, version=1, case_id="c-2",
                    data={"title": "楼道堆物", "source": "resident", "photos": ["1.jpg"]})
    engine.fire(b.id, "triage", actor=BOSS, payload={"category": "违规堆物",
                                                     "priority": "normal"})
    clock.advance(timedelta(minutes=7, microseconds=250))
    engine.fire(b.id, "note", actor=BOSS, payload={"text": "已到现场", "n": 1, "x": 1.5})
    c = engine.open("grid_case", actor=WORKER, grid=GRID, version=1, case_id="c-1",
                    data={"title": "长宁支路324弄堆物", "source": "visit"})
    engine.fire(c.id, "triage", actor=BOSS, payload={"category": "违规堆物",
                                                     "priority": "urgent"})
    engine.fire(c.id, "dispatch", actor=BOSS, payload={
        "departments": ["城运中心", "清运单位"], "plan": "联合整治工作方案"})
    clock.advance(timedelta(hours=2))
    engine.fire(c.id, "report_done", actor=DEPT,
                payload={"department": "城运中心", "result": "已清理"})
    engine.fire(c.id, "request_extension", actor=DEPT,
                payload={"reason": "需协调物业", "until": "2026-03-20T00:00:00+08:00"})
    engine.fire(c.id, "approve_extension", actor=BOSS)
    engine.open("grid_case", actor=WORKER, grid=GRID, links=[c.id], version=1, case_id="c-3",
                data={"title": "同一弄堂地锁", "source": "visit"})
    engine.fire(a.id, "reject", actor=BOSS, payload={"reason": "重复"})
    engine.checkpoint(SKEY)
    return engine


def _full(engine: Engine, case_id: str) -> str:
    """The full path's verdict on one case: ``ok`` or the exception it raises."""
    store = engine.store
    try:
        audit(store.get(case_id), store.events(case_id), engine._spec_index)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return "ok"


def _case_ids(sql: SQLStore) -> list[str]:
    with sql.engine.connect() as conn:
        ids = set(conn.execute(sa.select(sql.cases.c.id)).scalars())
        ids |= set(conn.execute(sa.select(sql.events_table.c.case_id)).scalars())
    return sorted(ids)


def _check_agreement(engine: Engine, sql: SQLStore) -> None:
    source = _raw_source(sql)
    assert source is not None
    try:
        pre = dict(precheck_rows(source, engine._spec_index, source.histories(None)))
    except Exception as exc:  # the stream itself (a row the driver cannot read)
        pre = {}
        reading = exc
    else:
        reading = None
    ids = _case_ids(sql)
    full = {cid: _full(engine, cid) for cid in ids}
    if reading is None:
        assert sorted(pre) == ids
        for cid in ids:
            assert pre[cid] == (full[cid] == "ok"), (cid, full[cid])
        # A subset of the cases too (what incremental verify_log reads).
        part = dict(precheck_rows(source, engine._spec_index, source.histories(ids[1:3])))
        assert part == {cid: pre[cid] for cid in ids[1:3]}
    bad = [cid for cid in ids if full[cid] != "ok"]
    if not bad:
        assert engine.verify_all() == len(ids)
        assert engine.verify_log(key=VKEY)
        return
    with pytest.raises(Exception) as caught:
        engine.verify_all()
    assert f"{type(caught.value).__name__}: {caught.value}" == full[bad[0]]


# -- the edits ------------------------------------------------------------------------------

_EVENT_COLUMNS = ["seq", "trigger", "source", "dest", "actor_id", "actor", "at", "payload",
                  "idempotency_key", "prev_hash", "hash", "changes", "case_id"]
_CASE_COLUMNS = ["workflow", "workflow_version", "state", "version", "data", "grid",
                 "opened_at", "updated_at", "deadline_at", "links", "head"]
_JSON = {"actor", "payload", "changes", "data", "links"}
_TIMES = {"at", "opened_at", "updated_at", "deadline_at"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from([1.0, 1.5, -0.5])
    | st.text(alphabet="ab城", max_size=3),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(["text", "a", "set", "roles", "grids", "n"]), inner,
                      max_size=3),
    max_leaves=6)


def _reencode(value: Any, how: int) -> Any:
    """The same JSON value written another way (keys reordered, spaces, escapes)."""
    if how == 0 and isinstance(value, dict):
        return json.dumps(dict(reversed(list(value.items()))), ensure_ascii=False)
    if how == 1:
        return json.dumps(value, ensure_ascii=True)
    return json.dumps(value, ensure_ascii=False, indent=1)


#: Edits of a stored JSON object's text: its deadline, a repeated or an unknown key.
_TEXT_EDITS = [
    ("deadline", "null"), ("deadline", '"2026-03-02T09:00:00+08:00"'),
    ("deadline", '"2026-03-02T01:00:00"'), ("deadline", '"2026-02-30T01:00:00+00:00"'),
    ("deadline", '"2026-03-02T01:00:00.000001+00:00"'), ("deadline", '"x"'),
    ("deadline", '"2026-03-02T01:00:00\\u002b00:00"'), ("deadline", "1"),
    ("append", '"deadline_at":null'), ("append", '"deadline_at":"2026-01-01T00:00:00+00:00"'),
    ("append", '"deadline\\u005fat":null'), ("append", '"extra":1'),
    ("append", '"workflow_version":2'), ("append", '"set":{}'),
]


def _text_edit(text: str, edit: tuple[str, str]) -> str:
    how, what = edit
    if how == "deadline" and text.startswith('{"deadline_at":'):
        end = text.index(",", len('{"deadline_at":'))
        return '{"deadline_at":' + what + text[end:]
    return text[:-1] + ("," if len(text) > 2 else "") + what + "}"


@st.composite
def edits(draw: st.DrawFn, rows: list[dict[str, Any]], cases: list[dict[str, Any]]
          ) -> tuple[str, dict[str, Any], str, Any]:
    """``(table, row, column, new value)``: a value as the database stores it."""
    if draw(st.booleans()):
        table, pool, columns = "events", rows, _EVENT_COLUMNS
    else:
        table, pool, columns = "cases", cases, _CASE_COLUMNS
    row = draw(st.sampled_from(pool))
    column = draw(st.sampled_from(columns))
    others = [r[column] for r in pool if r[column] != row[column]]
    kind = draw(st.sampled_from(["other", "random", "reencode", "nudge", "text"]))
    value: Any
    if kind == "text" and column in _JSON and (row[column] or "").startswith("{"):
        value = _text_edit(row[column], draw(st.sampled_from(_TEXT_EDITS)))
    elif kind == "other" and others:
        value = draw(st.sampled_from(others))
    elif kind == "reencode" and column in _JSON and row[column] is not None:
        value = _reencode(json.loads(row[column]), draw(st.integers(0, 2)))
    elif kind == "nudge" and column in _TIMES and row[column] is not None:
        when = datetime.fromisoformat(row[column]).replace(tzinfo=UTC)
        value = draw(st.sampled_from([
            (when + timedelta(microseconds=1)).strftime("%Y-%m-%d %H:%M:%S.%f"),
            when.strftime("%Y-%m-%d %H:%M:%S"),
            when.isoformat(),
        ]))
    elif kind == "nudge" and column in ("seq", "version", "workflow_version"):
        value = row[column] + draw(st.sampled_from([-1, 1, 10]))
    elif column in _JSON:
        value = json.dumps(draw(json_values), ensure_ascii=False)
    elif column in _TIMES:
        value = draw(st.sampled_from(["2026-03-02 01:00:00.000000", "2026-03-02 09:00:00",
                                      "2026-01-01 00:00:00.000001"]))
    elif column in ("seq", "version", "workflow_version"):
        value = draw(st.integers(1, 12))
    else:
        value = draw(st.none() | st.text(alphabet="ab城 ", max_size=4)
                     | st.sampled_from(["note", "triage", "reported", "triaged"]))
    return table, row, column, value


def _stored(sql: SQLStore) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every event and case row with JSON and times as SQLite text (the edit's form)."""
    def text(name: str, value: Any) -> Any:
        if value is None:
            return None
        if name in _JSON:
            return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        if name in _TIMES and isinstance(value, datetime):
            return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        return value

    with sql.engine.connect() as conn:
        out = []
        for table, cols in ((sql.events_table, _EVENT_COLUMNS), (sql.cases, _CASE_COLUMNS)):
            keys = ["case_id", "seq"] if table is sql.events_table else ["id"]
            names = sorted(set(cols) | set(keys))
            q = sa.text(f"SELECT {', '.join(names)} FROM "
                        f"{sql.engine.dialect.identifier_preparer.format_table(table)} "
                        f"ORDER BY {', '.join(keys)}")
            out.append([{n: text(n, v) for n, v in zip(names, r, strict=True)}
                        for r in conn.execute(q)])
    return out[0], out[1]


def _apply(sql: SQLStore, table: str, row: dict[str, Any], column: str, value: Any) -> bool:
    """Write ``value`` into one column of one row; False if the database refuses it."""
    t = sql.events_table if table == "events" else sql.cases
    name = sql.engine.dialect.identifier_preparer.format_table(t)
    where = "case_id = :k1 AND seq = :k2" if table == "events" else "id = :k1"
    keys = {"k1": row["case_id"], "k2": row["seq"]} if table == "events" else {"k1": row["id"]}
    target = ":v"
    if sql.dialect == "postgresql":
        if column in _JSON:
            target = "CAST(:v AS JSONB)"
        elif column in _TIMES:
            target = "CAST(:v AS TIMESTAMPTZ)"
            value = None if value is None else value + ("" if "+" in value else "+00")
    try:
        with sql.engine.begin() as conn:
            conn.execute(sa.text(f"UPDATE {name} SET {column} = {target} WHERE {where}"),
                         {"v": value, **keys})
    except sa.exc.DBAPIError:
        return False
    return True


@settings(max_examples=100, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(data=st.data())
def test_the_precheck_agrees_with_the_full_path(sql: SQLStore, data: st.DataObject) -> None:
    if not hasattr(sql, "_fast_story"):
        engine = _story(sql)
        object.__setattr__(sql, "_fast_story", engine)
        _check_agreement(engine, sql)  # untouched: every case passes both
    engine = sql._fast_story
    rows, cases = _stored(sql)
    table, row, column, value = data.draw(edits(rows, cases))
    if not _apply(sql, table, row, column, value):
        return
    try:
        _check_agreement(engine, sql)
    finally:
        assert _apply(sql, table, {**row, column: value} if column in ("case_id", "seq")
                      else row, column, row[column])


def test_every_text_edit_of_every_changes_and_payload(sql: SQLStore) -> None:
    """The pre-check reads a changes record's deadline from its text: each edit of it
    (another value, an offset, a bad date, an escape, a repeated or unknown key), in
    every event, gives the full path's verdict."""
    engine = _story(sql)
    rows, _ = _stored(sql)
    for row in rows:
        for column in ("changes", "payload"):
            for edit in _TEXT_EDITS:
                if row[column] is None:
                    continue
                value = _text_edit(row[column], edit)
                if not _apply(sql, "events", row, column, value):
                    continue
                try:
                    _check_agreement(engine, sql)
                finally:
                    assert _apply(sql, "events", row, column, row[column])


def test_a_store_without_the_hot_path_uses_the_full_path(tmp_path: Path) -> None:
    store = SQLStore(f"sqlite:///{tmp_path / 'echo.db'}", echo=True)
    store.create_schema()
    engine = _story(store)
    assert _raw_source(store) is None
    assert engine.verify_all() == 4
    store.close()


def test_verify_all_on_a_memory_store_names_the_first_bad_case() -> None:
    store = gridflow.MemoryStore()
    engine = _story(store)
    assert engine.verify_all() == 4
    first = min(cid for cid, events in store._events.items() if len(events) > 1)
    store._events[first].pop()
    with pytest.raises(IntegrityError) as caught:
        engine.verify_all()
    assert caught.value.case_id == first and "events are stored" in str(caught.value)


# -- MemoryStore: the pre-check on objects -------------------------------------------------

_EVENT_FIELDS = ["seq", "trigger", "source", "dest", "actor", "at", "payload",
                 "idempotency_key", "prev_hash", "hash", "changes", "case_id"]


@st.composite
def memory_edits(draw: st.DrawFn, store: gridflow.MemoryStore) -> tuple[str, int, str, Any]:
    """``(case id, index, field, value)``: index -1 edits the case row."""
    cid = draw(st.sampled_from(sorted(store._events)))
    events = store._events[cid]
    index = draw(st.integers(-1, len(events) - 1))
    fields = ["state", "version", "data", "grid", "opened_at", "updated_at", "deadline_at",
              "links", "head", "workflow_version"] if index < 0 else _EVENT_FIELDS
    field = draw(st.sampled_from(fields))
    pool = ([getattr(c, field) for c in store._cases.values()] if index < 0 else
            [getattr(e, field) for es in store._events.values() for e in es])
    current = getattr(store._cases[cid] if index < 0 else events[index], field)
    value = draw(st.sampled_from([v for v in pool if v != current] or [current])
                 | st.sampled_from([None, 0, 1, True, 1.0, "", "note", (), {}, [],
                                    datetime(2026, 3, 2, 1, tzinfo=UTC),
                                    datetime(2026, 3, 2, 9, tzinfo=timedelta_zone(8))])
                 | json_values)
    return cid, index, field, value


def timedelta_zone(hours: int) -> Any:
    from datetime import timezone

    return timezone(timedelta(hours=hours))


@settings(max_examples=150, deadline=None, derandomize=True)
@given(data=st.data())
def test_the_object_precheck_agrees_with_audit(data: st.DataObject) -> None:
    import attrs

    from gridflow._fastverify import _Checker

    store = gridflow.MemoryStore()
    engine = _story(store)
    cid, index, field, value = data.draw(memory_edits(store))
    try:
        if index < 0:
            store._cases[cid] = attrs.evolve(store._cases[cid], **{field: value})
        else:
            store._events[cid][index] = attrs.evolve(store._events[cid][index],
                                                     **{field: value})
    except (TypeError, ValueError):
        return
    checker = _Checker(None, engine._spec_index)
    for case_id in sorted(store._events):
        row, events = store._cases.get(case_id), store._events[case_id]
        full = _full(engine, case_id)
        assert checker.objects(row, events) == (full == "ok"), (case_id, full)


def test_verify_all_needs_a_store_that_lists_its_cases() -> None:
    class Bare:
        """A store that only stores (no listing of its cases)."""

        def __init__(self) -> None:
            self.inner = gridflow.MemoryStore()

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    engine = Engine(store=Bare(), entry_points=False)
    with pytest.raises(gridflow.GridflowError, match="MemoryStore or a SQLStore"):
        engine.verify_all()
