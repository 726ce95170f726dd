"""Personal values through the engine (PIPL): sealed on write, shown or masked on read,
erased and restricted without breaking the hash chain."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import gridflow
from gridflow import ALL_GRIDS, Actor, Engine, FixedClock, InvalidPayload, MemoryStore
from gridflow.personal import RESTRICTED, TOMBSTONE
from gridflow.store import Store

GRID = "华三-1"
resident = Actor("r-1", ["resident"], [GRID])
coordinator = Actor("s-1", ["coordinator"], [GRID])
worker = Actor("w-1", ["grid_worker"], [GRID])
auditor = Actor("a-1", ["auditor"], grids=ALL_GRIDS)
judicial = Actor("j-1", ["judicial_office"], grids=ALL_GRIDS)
system = Actor.system()

NAME, PHONE, ID_NUMBER = "欧阳娜娜", "13912345678", "310104199001011234"
EMAIL = "Nana.OY@Example.com"
ADDRESS = "上海市长宁区长宁支路324弄5号302室"


def reporter(subject: str | None = "p-17") -> dict[str, Any]:
    out: dict[str, Any] = {"name": NAME, "phone": PHONE, "id_number": ID_NUMBER,
                           "email": EMAIL, "address": ADDRESS}
    if subject is not None:
        out["subject"] = subject
    return out


def open_case(engine: Engine, subject: str | None = "p-17", **extra: Any) -> gridflow.Case:
    return engine.open("grid_case", version=1, actor=resident, grid=GRID, data={
        "title": "楼道堆物", "source": "resident", "reporter": reporter(subject), **extra})


def stored_text(store: Store, case_id: str) -> str:
    case = store.get(case_id)
    assert case is not None
    events = store.events(case_id)
    return json.dumps([case.data, [e.payload for e in events],
                       [dict(e.changes.set) for e in events if e.changes is not None]],
                      ensure_ascii=False)


def keyed(store: Store, clock: FixedClock) -> Engine:
    return Engine(store=store, clock=clock, entry_points=False,
                  keyring=gridflow.Keyring.generate())


def test_values_are_sealed_in_rows_and_events(store: Store, clock: FixedClock) -> None:
    engine = keyed(store, clock)
    case = open_case(engine)
    engine.fire(case.id, "triage", actor=coordinator,
                payload={"category": "堆物", "priority": "normal", "contact": "微信 nana_oy"})
    text = stored_text(store, case.id)
    for value in (NAME, PHONE, ID_NUMBER, EMAIL, ADDRESS, "nana_oy"):
        assert value not in text
    assert '"$pii"' in text
    assert engine.verify(case.id).version == 2


def test_readers_see_plaintext_and_everyone_else_masks(store: Store, clock: FixedClock) -> None:
    engine = keyed(store, clock)
    case = open_case(engine)
    assert engine.get(case.id, actor=coordinator).data["reporter"] == reporter()
    for actor in (worker, resident, None):
        shown = engine.get(case.id, actor=actor).data["reporter"]
        assert shown == {"subject": "p-17", "name": "欧***", "phone": "139****5678",
                         "id_number": "310***********1234", "email": "N***@Example.com",
                         "address": "上海市长宁区长宁支路324弄***"}
    plain = engine.history(case.id, actor=coordinator)[0].payload["data"]["reporter"]
    masked = engine.history(case.id, actor=worker)[0].payload["data"]["reporter"]
    assert plain == reporter() and masked["name"] == "欧***"
    # The case returned to the opening resident is masked too.
    assert case.data["reporter"]["phone"] == "139****5678"


def test_a_sql_store_without_a_keyring_refuses_personal_values(
        sqlite_url: str, clock: FixedClock) -> None:
    with gridflow.SQLStore(sqlite_url) as store:
        store.create_schema()
        engine = Engine(store=store, clock=clock, entry_points=False)
        with pytest.raises(InvalidPayload, match=r"keyring=gridflow\.Keyring") as caught:
            open_case(engine)
        assert NAME not in str(caught.value) and PHONE not in str(caught.value)
        assert store.query().items == []
        # Cases without personal values need no keyring.
        engine.open("grid_case", version=1, actor=resident, grid=GRID,
                    data={"title": "路灯坏了", "source": "resident"})


def test_a_memory_store_gets_an_ephemeral_keyring(clock: FixedClock) -> None:
    store = MemoryStore()
    one = Engine(store=store, clock=clock, entry_points=False)
    case = open_case(one)
    two = Engine(store=store, clock=clock, entry_points=False)
    assert two.get(case.id, actor=coordinator).data["reporter"]["name"] == NAME


def test_forged_references_in_input_are_refused(clock: FixedClock) -> None:
    engine = Engine(clock=clock, entry_points=False)
    with pytest.raises(InvalidPayload, match=r"\$pii"):
        engine.open("grid_case", version=1, actor=resident, grid=GRID, data={
            "title": "t", "source": "resident",
            "reporter": {"name": {"$pii": "0" * 32, "kind": "name", "c": "a" * 64}}})


def test_the_case_is_the_subject_when_none_is_given(clock: FixedClock) -> None:
    engine = Engine(clock=clock, entry_points=False)
    case = open_case(engine, subject=None)
    assert engine.erase(f"case:{case.id}", actor=system, reason="PIPL art. 47") == [case.id]
    assert engine.get(case.id, actor=coordinator).data["reporter"]["name"] == TOMBSTONE


def test_erase_leaves_tombstones_and_a_verifiable_chain(store: Store, clock: FixedClock) -> None:
    engine = keyed(store, clock)
    first = open_case(engine, subject="p-2")
    engine.fire(first.id, "triage", actor=coordinator,
                payload={"category": "堆物", "priority": "normal"})
    # The second victim is also a witness in the first case, and reports a case of her own.
    engine.fire(first.id, "note", actor=coordinator,
                payload={"text": "证人", "reporter": {"subject": "p-9", "name": "王小明",
                                                      "phone": "13800001111"}})
    second = engine.open("grid_case", version=1, actor=resident, grid=GRID, data={
        "title": "烫伤", "source": "resident",
        "reporter": {"subject": "p-9", "name": "王小明", "phone": "13800001111"}})
    before = {c: engine.get(c, actor=coordinator).state for c in (first.id, second.id)}
    erased = engine.erase("p-9", actor=system, reason="本人申请删除 (PIPL art. 47)")
    assert sorted(erased) == sorted([first.id, second.id])
    for case_id in erased:
        history = engine.history(case_id, actor=coordinator)
        assert history[-1].trigger == "erased"
        assert history[-1].payload["subject"] == "p-9"
        assert engine.verify(case_id).version == len(history)
        assert engine.get(case_id, actor=coordinator).state == before[case_id]
        assert "王小明" not in json.dumps([e.payload for e in history], ensure_ascii=False)
    assert engine.get(second.id, actor=coordinator).data["reporter"]["name"] == TOMBSTONE
    note = engine.history(first.id, actor=coordinator)[2]
    assert note.payload["reporter"]["phone"] == TOMBSTONE
    # The other subject of the first case is untouched.
    assert engine.get(first.id, actor=coordinator).data["reporter"]["name"] == NAME
    # Erasing again finds nothing.
    assert engine.erase("p-9", actor=system, reason="again") == []


def test_restricted_values_are_read_only_by_auditors_and_recorded(
        store: Store, clock: FixedClock) -> None:
    engine = keyed(store, clock)
    case = open_case(engine)
    assert engine.restrict("p-17", actor=system, reason="诉讼保全 (PIPL art. 47(2))") == [case.id]
    assert engine.get(case.id, actor=coordinator).data["reporter"]["name"] == RESTRICTED
    assert engine.get(case.id).data["reporter"]["phone"] == RESTRICTED
    version = engine.get(case.id).version
    seen = engine.get(case.id, actor=auditor)
    assert seen.data["reporter"]["name"] == NAME
    history = engine.history(case.id, actor=coordinator)
    assert [e.trigger for e in history][-2:] == ["restricted", "personal_read"]
    assert history[-1].actor == auditor and len(history) == version + 1
    assert engine.verify(case.id).version == version + 1


def test_master_key_rotation_rewraps_without_touching_events(
        store: Store, clock: FixedClock) -> None:
    engine = keyed(store, clock)
    case = open_case(engine)
    events = store.events(case.id)
    new = gridflow.Keyring.generate()
    assert engine.privacy.rotate(new) == 1
    assert store.events(case.id) == events
    again = Engine(store=store, clock=clock, entry_points=False, keyring=new)
    assert again.get(case.id, actor=coordinator).data["reporter"]["name"] == NAME
    assert again.verify(case.id).version == 1


def test_mediation_parties_are_sealed_and_guards_still_see_names(clock: FixedClock) -> None:
    engine = Engine(clock=clock, entry_points=False)
    case = engine.open("mediation", actor=judicial, grid=GRID, data={
        "summary": "烫伤赔偿", "source": "screening",
        "parties": [{"subject": "p-9", "name": "谢女士", "side": "applicant",
                     "id_number": ID_NUMBER},
                    {"name": "某火锅店", "side": "respondent", "kind": "organisation"}]})
    assert "谢女士" not in stored_text(engine.store, case.id)
    case = engine.fire(case.id, "accept", actor=judicial,
                       payload={"consent": {"谢女士": True, "某火锅店": True}})
    assert case.state == "multi_party"  # an organisation among the parties
    assert "谢女士" not in stored_text(engine.store, case.id)
    lawyer = Actor("l-1", ["lawyer"], grids=ALL_GRIDS)
    assert engine.get(case.id, actor=lawyer).data["parties"][0]["name"] == "谢**"
    assert engine.get(case.id, actor=judicial).data["parties"][0]["name"] == "谢女士"
    assert engine.verify(case.id) == engine.store.get(case.id)


# -- the raw bytes on disk ------------------------------------------------------------------

PLANTED = ("司马懿昭", "13987654321", "11010519491231002X", "Sima.Yizhao@Planted.example")


def _plant(engine: Engine) -> str:
    name, phone, id_number, email = PLANTED
    case = engine.open("grid_case", version=1, actor=resident, grid=GRID, data={
        "title": "井盖缺失", "source": "resident",
        "reporter": {"subject": "p-planted", "name": name, "phone": phone}})
    engine.fire(case.id, "triage", actor=coordinator, payload={
        "category": "市政", "priority": "urgent",
        "reporter": {"subject": "p-planted", "id_number": id_number, "email": email},
        "contact": f"{name} {phone}"})
    engine.fire(case.id, "note", actor=coordinator,
                payload={"text": "已联系", "contact": {"email": email, "id": id_number}})
    return case.id


def _needles() -> list[bytes]:
    out = []
    for value in PLANTED:
        out += [value.encode(), value.lower().encode(), json.dumps(value).encode()]
    return out


def _vault_secrets(store: gridflow.SQLStore, subject: str) -> list[bytes]:
    import sqlalchemy as sa

    with store.engine.connect() as conn:
        blobs = [bytes(r[0]) for r in conn.execute(
            sa.select(store.pii_values.c.ciphertext).where(
                store.pii_values.c.subject == subject))]
        blobs += [bytes(r[0]) for r in conn.execute(
            sa.select(store.pii_keys.c.wrapped).where(store.pii_keys.c.subject == subject))]
    assert blobs
    return blobs


def test_no_plaintext_in_the_sqlite_file_or_its_wal(tmp_path: Any, clock: FixedClock) -> None:
    path = tmp_path / "pii.db"
    with gridflow.SQLStore(f"sqlite:///{path}") as store:
        store.create_schema()
        engine = keyed(store, clock)
        case_id = _plant(engine)

        def raw() -> bytes:
            wal = path.with_name(path.name + "-wal")
            return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")

        data = raw()
        assert all(n not in data for n in _needles())
        secrets = _vault_secrets(store, "p-planted")
        assert all(s in data for s in secrets)  # the search does find what is there
        assert engine.verify(case_id)
        engine.erase("p-planted", actor=system, reason="PIPL art. 47")
        engine.erase(f"case:{case_id}", actor=system, reason="PIPL art. 47")
        engine.privacy.scrub()
        data = raw()
        assert all(n not in data for n in _needles())
        assert all(s not in data for s in secrets)
        assert engine.verify(case_id).version == 5


@pytest.mark.postgres
def test_no_plaintext_in_a_pg_dump(pg_url: str, pg_schema: str, clock: FixedClock) -> None:
    import shutil
    import subprocess

    if shutil.which("pg_dump") is None:
        pytest.skip("pg_dump is not installed")
    with gridflow.SQLStore(pg_url, schema=pg_schema) as store:
        store.create_schema()
        engine = keyed(store, clock)
        case_id = _plant(engine)
        url = store.engine.url

        def dump() -> bytes:
            return subprocess.run(
                ["pg_dump", "-h", url.host or "127.0.0.1", "-p", str(url.port or 5432),
                 "-U", url.username or "postgres", "-n", pg_schema, url.database or "test"],
                check=True, capture_output=True).stdout

        data = dump()
        assert all(n not in data for n in _needles())
        secrets = [s.hex().encode() for s in _vault_secrets(store, "p-planted")]
        assert all(s in data for s in secrets)
        engine.erase("p-planted", actor=system, reason="PIPL art. 47")
        engine.privacy.scrub()
        data = dump()
        assert all(n not in data for n in _needles())
        assert all(s not in data for s in secrets)
        assert engine.verify(case_id).version == 4


def test_a_schema_2_database_upgrades_to_the_current_schema(sqlite_url: str,
                                                            clock: FixedClock) -> None:
    import sqlalchemy as sa
    from tests.conftest import drop_schema_5

    with gridflow.SQLStore(sqlite_url) as store:
        store.create_schema()
        engine = Engine(store=store, clock=clock, entry_points=False)
        old = engine.open("grid_case", version=1, actor=resident, grid=GRID,
                          data={"title": "路灯坏了", "source": "resident"})
        with store.engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE gridflow_pii_values"))
            conn.execute(sa.text("DROP TABLE gridflow_pii_keys"))
            drop_schema_5(conn, store)
            conn.execute(sa.update(store.tables.meta).values(value="2"))
    with gridflow.SQLStore(sqlite_url) as store:
        with pytest.raises(gridflow.SchemaVersionError, match="older than this gridflow's 5"):
            store.get(old.id)
        store.create_schema()
        assert store.schema_version() == 5
        tables = set(sa.inspect(store.engine).get_table_names())
        assert {"gridflow_pii_keys", "gridflow_pii_values"} <= tables
        engine = keyed(store, clock)
        case = open_case(engine)
        assert engine.verify(old.id) and engine.verify(case.id)
        assert engine.get(case.id, actor=coordinator).data["reporter"]["name"] == NAME


def test_cli_erase_and_restrict(tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    from gridflow.cli import main

    db = tmp_path / "cli.db"
    monkeypatch.setenv("GRIDFLOW_MASTER_KEY", "ab" * 32)
    monkeypatch.chdir(tmp_path)
    with gridflow.SQLStore(f"sqlite:///{db}") as store:
        store.create_schema()
        engine = Engine(store=store, clock=FixedClock(), entry_points=False,
                        keyring=gridflow.Keyring(b"\xab" * 32))
        one, two = open_case(engine, "p-5"), open_case(engine, "p-6")
    assert main(["restrict", "p-6", "--reason", "诉讼保全", "--db", str(db),
                 "--no-project"]) == 0
    out = capsys.readouterr().out
    assert two.id in out and "restricted: subject 'p-6', 1 case(s)" in out
    assert main(["erase", "p-5", "--reason", "本人申请", "--scrub", "--db", str(db),
                 "--no-project"]) == 0
    out = capsys.readouterr().out
    assert one.id in out and "erased: subject 'p-5', 1 case(s)" in out
    assert main(["erase", "p-5", "--db", str(db), "--no-project"]) == 2  # no --reason
    capsys.readouterr()
    assert main(["history", one.id, "--db", str(db), "--no-project"]) == 0
    out = capsys.readouterr().out
    assert NAME not in out and PHONE not in out
    with gridflow.SQLStore(f"sqlite:///{db}") as store:
        engine = Engine(store=store, entry_points=False, keyring=gridflow.Keyring(b"\xab" * 32))
        assert engine.get(one.id, actor=coordinator).data["reporter"]["name"] == TOMBSTONE
        assert engine.get(two.id, actor=coordinator).data["reporter"]["name"] == RESTRICTED
        assert engine.verify(one.id) and engine.verify(two.id)


def _retaining(engine: Engine) -> Engine:
    from datetime import timedelta

    import attrs

    policy = engine.privacy.policies["grid_case"]
    engine.privacy.policies["grid_case"] = attrs.evolve(policy, retention=timedelta(days=3 * 365))
    return engine


def test_retention_erases_by_tick_once(store: Store, clock: FixedClock) -> None:
    from datetime import timedelta

    engine = _retaining(keyed(store, clock))
    ended = open_case(engine, "p-1")
    engine.fire(ended.id, "reject", actor=coordinator, payload={"reason": "不属于受理范围"})
    live = open_case(engine, "p-2")
    engine.fire(live.id, "triage", actor=coordinator,
                payload={"category": "堆物", "priority": "normal"})
    clock.advance(timedelta(days=3 * 365 - 1))
    assert [e.trigger for e in engine.tick() if e.trigger == "erased"] == []
    clock.advance(timedelta(days=2))
    erased = [e for e in engine.tick() if e.trigger == "erased"]
    assert [e.case_id for e in erased] == [ended.id]
    assert engine.get(ended.id, actor=coordinator).data["reporter"]["name"] == TOMBSTONE
    assert engine.get(live.id, actor=coordinator).data["reporter"]["name"] == NAME
    assert [e for e in engine.tick() if e.trigger == "erased"] == []
    assert engine.verify(ended.id).state == "rejected"


@pytest.mark.postgres
def test_retention_by_tick_happens_once_with_two_workers_on_postgres(
        pg_url: str, pg_schema: str, clock: FixedClock) -> None:
    import threading
    from datetime import timedelta

    keyring = gridflow.Keyring.generate()
    one = gridflow.SQLStore(pg_url, schema=pg_schema)
    two = gridflow.SQLStore(pg_url, schema=pg_schema)
    try:
        one.create_schema()
        first = _retaining(Engine(store=one, clock=clock, entry_points=False, keyring=keyring))
        second = _retaining(Engine(store=two, clock=clock, entry_points=False, keyring=keyring))
        ids = []
        for n in range(30):
            case = open_case(first, f"p-{n}")
            first.fire(case.id, "reject", actor=coordinator, payload={"reason": "重复"})
            ids.append(case.id)
        clock.advance(timedelta(days=3 * 365 + 1))
        results: list[list[gridflow.Event]] = [[], []]
        barrier = threading.Barrier(2)

        def work(engine: Engine, slot: int) -> None:
            barrier.wait()
            for _ in range(5):
                results[slot] += [e for e in engine.tick(limit=7) if e.trigger == "erased"]

        threads = [threading.Thread(target=work, args=(e, i))
                   for i, e in enumerate((first, second))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        done = sorted(e.case_id for r in results for e in r)
        assert done == sorted(ids)  # every case once, none twice
        for case_id in ids:
            history = first.history(case_id, actor=coordinator)
            assert [e.trigger for e in history].count("erased") == 1
            assert first.verify(case_id)
    finally:
        one.close()
        two.close()


def test_a_refusal_never_quotes_a_personal_value(clock: FixedClock) -> None:
    engine = Engine(clock=clock, entry_points=False)
    with pytest.raises(gridflow.GuardRejected) as caught:
        engine.open("mediation", actor=judicial, grid=GRID, data={
            "summary": "纠纷", "source": "screening",
            "parties": [{"name": "谢女士", "side": "applicant", "phone": PHONE},
                        {"name": "谢女士", "side": "respondent"}]})
    assert "谢女士" not in str(caught.value) and "listed twice" in str(caught.value)
    case = engine.open("mediation", actor=judicial, grid=GRID, data={
        "summary": "纠纷", "source": "screening",
        "parties": [{"name": "谢女士", "side": "applicant"},
                    {"name": "某火锅店", "side": "respondent"}]})
    with pytest.raises(gridflow.GuardRejected) as caught:
        engine.fire(case.id, "accept", actor=judicial, payload={"consent": {"谢女士": True}})
    assert "谢女士" not in str(caught.value) and "某火锅店" not in str(caught.value)
    assert "art. 17" in str(caught.value)


def test_without_the_master_key_values_read_as_hidden_not_erased(
        sqlite_url: str, clock: FixedClock) -> None:
    with gridflow.SQLStore(sqlite_url) as store:
        store.create_schema()
        case = open_case(keyed(store, clock))
        blind = Engine(store=store, clock=clock, entry_points=False)
        assert blind.get(case.id, actor=coordinator).data["reporter"]["name"] == "***"
        other = Engine(store=store, clock=clock, entry_points=False,
                       keyring=gridflow.Keyring.generate())
        assert other.get(case.id, actor=coordinator).data["reporter"]["phone"] == "***"
        assert blind.verify(case.id).version == 1


def test_a_subjects_first_key_is_stored_once(store: Store, clock: FixedClock) -> None:
    from gridflow._sealing import SubjectKey, VaultEntry

    vault = keyed(store, clock).privacy.vault
    assert vault is not None
    first = SubjectKey("p-race", "k", b"a" * 40)
    assert vault.put_with_keys([first], [VaultEntry("0" * 32, "p-race", "c-1", "p", b"x")])
    # A second writer that made another first key for the same subject stores nothing.
    assert not vault.put_with_keys([SubjectKey("p-race", "k", b"b" * 40)],
                                   [VaultEntry("1" * 32, "p-race", "c-2", "p", b"y")])
    assert sorted(vault.entries(["0" * 32, "1" * 32])) == ["0" * 32]
    stored = vault.key("p-race")
    assert stored is not None and stored.wrapped == first.wrapped


def test_retention_counts_from_when_the_case_ended_not_from_its_last_write(
        store: Store, clock: FixedClock) -> None:
    from datetime import timedelta

    engine = _retaining(keyed(store, clock))
    case = engine.open("grid_case", version=1, actor=resident, grid=GRID, data={
        "title": "楼道堆物", "source": "resident", "reporter": reporter("p-1")})
    # A witness's phone in the refusal's payload: a second subject in the case.
    engine.fire(case.id, "reject", actor=coordinator, payload={
        "reason": "不属于受理范围", "reporter": {"subject": "p-w", "phone": "13600001111"}})
    ended = clock.now()
    clock.advance(timedelta(days=700))
    # Unrelated later writes: the witness is erased (an `erased` event), the reporter's
    # values are restricted (a `restricted` event) and read by an auditor (recorded).
    assert engine.erase("p-w", actor=system, reason="本人申请") == [case.id]
    engine.restrict("p-1", actor=system, reason="诉讼保全")
    assert engine.get(case.id, actor=auditor).data["reporter"]["name"] == NAME
    last = engine.store.get(case.id)
    assert last is not None and last.updated_at == clock.now() and last.version == 5
    clock.set(ended + timedelta(days=3 * 365) - timedelta(seconds=1))
    assert [e for e in engine.tick() if e.trigger == "erased"] == []
    clock.set(ended + timedelta(days=3 * 365))
    erased = [e for e in engine.tick() if e.trigger == "erased"]
    assert [(e.case_id, e.payload["retention"]) for e in erased] == [(case.id, True)]
    assert engine.get(case.id, actor=auditor).data["reporter"]["name"] == TOMBSTONE
    assert [e for e in engine.tick() if e.trigger == "erased"] == []
    assert engine.verify(case.id).state == "rejected"


def test_a_partys_name_in_consent_and_signatures_is_erased_with_that_party(
        store: Store, clock: FixedClock) -> None:
    from datetime import timedelta

    engine = keyed(store, clock)
    mediator = Actor("m-1", ["mediator"], grids=ALL_GRIDS)
    case = engine.open("mediation", version=1, actor=judicial, grid=GRID, data={
        "summary": "烫伤赔偿", "source": "screening",
        "parties": [{"subject": "p-A", "name": "谢女士", "side": "applicant"},
                    {"subject": "p-B", "name": "某火锅店", "side": "respondent"}]})
    engine.fire(case.id, "accept", actor=judicial, payload={
        "consent": {"谢女士": True, "某火锅店": True}, "tier": "grid_mediation"})
    due = (clock.now() + timedelta(days=10)).isoformat()
    engine.fire(case.id, "agree", actor=mediator, payload={
        "terms": "赔偿医药费", "signed_by": ["谢女士", "某火锅店"], "performance_due": due})
    text = stored_text(store, case.id)
    assert "谢女士" not in text and "某火锅店" not in text  # agreement.signed_by too
    shown = engine.get(case.id, actor=judicial).data
    assert shown["consent"] == {"谢女士": True, "某火锅店": True}
    assert shown["agreement"]["signed_by"] == ["谢女士", "某火锅店"]
    masked = engine.get(case.id, actor=None).data
    assert masked["consent"] == {"谢**": True, "某***": True}

    assert engine.erase("p-A", actor=system, reason="本人申请删除") == [case.id]
    shown = engine.get(case.id, actor=judicial).data
    assert shown["parties"][0]["name"] == TOMBSTONE
    assert shown["parties"][1]["name"] == "某火锅店"
    assert shown["consent"] == {TOMBSTONE: True, "某火锅店": True}
    assert shown["agreement"]["signed_by"] == [TOMBSTONE, "某火锅店"]
    history = engine.history(case.id, actor=judicial)
    assert history[1].payload["consent"] == {TOMBSTONE: True, "某火锅店": True}
    assert history[2].payload["signed_by"] == [TOMBSTONE, "某火锅店"]
    # The case's own subject holds none of the parties' names.
    assert engine.erase(f"case:{case.id}", actor=system, reason="x") == []
    # The case goes on: steps after the erasure keep B's name and A's tombstone.
    engine.fire(case.id, "note", actor=mediator, payload={"text": "回访"})
    assert engine.get(case.id, actor=judicial).data["consent"] == {TOMBSTONE: True,
                                                                   "某火锅店": True}
    assert engine.erase("p-B", actor=system, reason="本人申请删除") == [case.id]
    assert engine.get(case.id, actor=judicial).data["consent"] == {
        TOMBSTONE: True, f"{TOMBSTONE} #2": True}
    assert engine.verify(case.id).version == 6




#: A host's workflow whose ``attendees[]`` name parties with no guard insisting on the
#: exact spelling (the built-in mediation's guards refuse any other).
MEETING = """\
name: meeting
version: 1
initial: open
roles:
  - {name: convener, label_zh: 召集人}
states:
  - {name: open}
  - {name: closed, terminal: true}
transitions:
  - {trigger: minutes, source: open, dest: null, roles: [convener]}
  - {trigger: close, source: open, dest: closed, roles: [convener]}
personal:
  readers: [convener]
  unseal_for_steps: true
  data:
    - {path: "parties[].name", kind: name}
  triggers:
    minutes:
      - {path: "attendees[]", kind: name}
  refers_to: {"attendees[]": "parties[].name"}
"""


def _meeting(store: Store, clock: FixedClock, names: list[str]) -> tuple[Engine, str]:
    engine = keyed(store, clock)
    import yaml

    engine.register_workflow(gridflow.WorkflowSpec.from_dict(yaml.safe_load(MEETING)))
    convener = Actor("c-1", ["convener"], grids=ALL_GRIDS)
    case = engine.open("meeting", version=1, actor=convener, grid=GRID, data={
        "parties": [{"subject": f"p-{n}", "name": name} for n, name in enumerate(names)]})
    return engine, case.id


def test_a_name_written_loosely_is_still_that_partys(store: Store, clock: FixedClock) -> None:
    # Names were matched to parties by exact string: "谢 女士" (a space) or a
    # full-width "ＡＢＣ公司" was sealed under the case's own subject, so erasing the
    # party left it readable.
    engine, case_id = _meeting(store, clock, ["谢女士", "ABC公司"])
    convener = Actor("c-1", ["convener"], grids=ALL_GRIDS)
    engine.fire(case_id, "minutes", actor=convener,
                payload={"attendees": ["谢 女士", "ＡＢＣ公司", "旁听者"]})
    assert engine.history(case_id, actor=convener)[1].payload["attendees"] == [
        "谢 女士", "ＡＢＣ公司", "旁听者"]
    assert engine.erase("p-0", actor=system, reason="本人申请删除") == [case_id]
    assert engine.history(case_id, actor=convener)[1].payload["attendees"] == [
        TOMBSTONE, "ＡＢＣ公司", "旁听者"]
    assert engine.erase("p-1", actor=system, reason="本人申请删除") == [case_id]
    assert engine.history(case_id, actor=convener)[1].payload["attendees"] == [
        TOMBSTONE, TOMBSTONE, "旁听者"]
    # A name that is no party's stays the case's own.
    assert engine.erase(f"case:{case_id}", actor=system, reason="x") == [case_id]
    assert engine.history(case_id, actor=convener)[1].payload["attendees"] == [
        TOMBSTONE, TOMBSTONE, TOMBSTONE]
    assert engine.verify(case_id).version == 5


def test_a_name_two_parties_match_only_loosely_is_refused_and_nothing_is_stored(
        store: Store, clock: FixedClock) -> None:
    engine, case_id = _meeting(store, clock, ["王小明", "王 小明"])
    convener = Actor("c-1", ["convener"], grids=ALL_GRIDS)
    before = stored_text(store, case_id)
    with pytest.raises(InvalidPayload) as caught:
        engine.fire(case_id, "minutes", actor=convener, payload={"attendees": ["王小 明"]})
    message = str(caught.value)
    assert "'attendees[0]'" in message and "'parties[].name'" in message
    assert "exactly" in message and "王" not in message
    assert caught.value.case_id == case_id and caught.value.trigger == "minutes"
    assert stored_text(store, case_id) == before
    assert engine.verify(case_id).version == 1
    # Written exactly as one party's name, it is that party's.
    engine.fire(case_id, "minutes", actor=convener, payload={"attendees": ["王 小明"]})
    assert engine.erase("p-1", actor=system, reason="本人申请删除") == [case_id]
    assert engine.history(case_id, actor=convener)[1].payload["attendees"] == [TOMBSTONE]

# -- the vault is written in the step's own commit -------------------------------------------


def _vault_rows(store: gridflow.SQLStore) -> int:
    import sqlalchemy as sa

    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(store.pii_values))
                   .scalar_one())


class _Interferer:
    """Before engine A's step, engine B fires on the same case: A's commit loses."""

    def __init__(self) -> None:
        self.other: Engine | None = None
        self.times = 0

    @gridflow.hookimpl
    def gridflow_before_fire(self, case: gridflow.Case, trigger: str, actor: Actor,
                             payload: dict[str, Any], now: Any) -> None:
        if self.times and self.other is not None:
            self.times -= 1
            self.other.fire(case.id, "note", actor=coordinator,
                            payload={"text": "抢先", "contact": "微信 other_1"})


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_step_that_loses_its_race_leaves_no_ciphertext(
        kind: str, request: pytest.FixtureRequest, tmp_path: Any, clock: FixedClock) -> None:
    if kind == "sqlite":
        url, schema = f"sqlite:///{tmp_path / 'race.db'}", None
    else:
        url, schema = request.getfixturevalue("pg_url"), request.getfixturevalue("pg_schema")
    keyring = gridflow.Keyring.generate()
    interferer = _Interferer()
    with gridflow.SQLStore(url, schema=schema) as one, \
            gridflow.SQLStore(url, schema=schema) as two:
        one.create_schema()
        first = Engine(store=one, clock=clock, entry_points=False, keyring=keyring,
                       plugins=[interferer])
        interferer.other = Engine(store=two, clock=clock, entry_points=False, keyring=keyring)
        case = first.open("grid_case", version=1, actor=resident, grid=GRID, data={
            "title": "楼道堆物", "source": "resident", "reporter": reporter("p-r")})
        before = _vault_rows(one)
        assert before == 5
        # A's note seals a new value and a new subject's key; B's lands first.
        interferer.times = 1
        with pytest.raises(gridflow.ConcurrencyError):
            first.fire(case.id, "note", actor=coordinator, payload={
                "text": "回访", "contact": "微信 mine_1",
                "reporter": {"subject": "p-new", "phone": "13700007777"}})
        assert _vault_rows(one) == before + 1  # B's contact only: none of A's
        assert one.get(case.id).version == 2  # type: ignore[union-attr]
        assert first.privacy.vault.key("p-new") is None  # type: ignore[union-attr]
        # Retried, A's step lands once and stores exactly its own two values.
        interferer.times = 1
        shown = first.fire(case.id, "note", actor=coordinator, retries=1, payload={
            "text": "回访", "contact": "微信 mine_1",
            "reporter": {"subject": "p-new", "phone": "13700007777"}})
        assert shown.version == 4 and _vault_rows(one) == before + 4
        payload = first.history(case.id, actor=coordinator)[-1].payload
        assert payload["contact"] == "微信 mine_1"
        assert payload["reporter"]["phone"] == "13700007777"
        assert first.verify(case.id).version == 4


def _two_urls(kind: str, request: pytest.FixtureRequest, tmp_path: Any
              ) -> tuple[str, str | None]:
    """The URL and schema of a store two engines share: a SQLite file or a PG schema."""
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'two.db'}", None
    return request.getfixturevalue("pg_url"), request.getfixturevalue("pg_schema")


_KINDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@contextmanager
def _two_engines(kind: str, request: pytest.FixtureRequest, tmp_path: Any, clock: FixedClock
                 ) -> Iterator[tuple[gridflow.SQLStore, Engine, Engine]]:
    """Two engines with one keyring on two stores of one database (``first`` on the
    store yielded, whose schema is created): "this engine" and "another one"."""
    url, schema = _two_urls(kind, request, tmp_path)
    keyring = gridflow.Keyring.generate()
    with gridflow.SQLStore(url, schema=schema) as one, \
            gridflow.SQLStore(url, schema=schema) as two:
        one.create_schema()
        yield (one, Engine(store=one, clock=clock, entry_points=False, keyring=keyring),
               Engine(store=two, clock=clock, entry_points=False, keyring=keyring))


@pytest.mark.parametrize("kind", _KINDS)
def test_a_subject_erased_elsewhere_is_not_sealed_under_its_old_key(
        kind: str, request: pytest.FixtureRequest, tmp_path: Any, clock: FixedClock) -> None:
    with _two_engines(kind, request, tmp_path, clock) as (_, first, other):
        case = open_case(first, "p-e")
        first.fire(case.id, "note", actor=coordinator,
                   payload={"text": "a", "reporter": {"subject": "p-e", "phone": PHONE}})
        # Another engine erases p-e; this engine still knows (caches) p-e's key row.
        other.erase("p-e", actor=system, reason="本人申请")
        with pytest.raises(gridflow.ConcurrencyError):
            first.fire(case.id, "note", actor=coordinator,
                       payload={"text": "b", "reporter": {"subject": "p-e", "phone": PHONE}})
        # Retried, the step makes the subject a new key (the old one is gone for good).
        first.fire(case.id, "note", actor=coordinator, retries=1,
                   payload={"text": "b", "reporter": {"subject": "p-e", "phone": PHONE}})
        history = first.history(case.id, actor=coordinator)
        assert history[1].payload["reporter"]["phone"] == TOMBSTONE
        assert history[-1].payload["reporter"]["phone"] == PHONE
        assert first.verify(case.id).version == 4


@pytest.mark.parametrize("kind", _KINDS)
def test_a_subject_erased_elsewhere_is_not_sealed_into_a_case_that_held_none_of_it(
        kind: str, request: pytest.FixtureRequest, tmp_path: Any, clock: FixedClock) -> None:
    # The erasure appends no event to this case, so the step's commit has nothing else
    # to read: only the vault's check of the key, in the step's own statement, stops it.
    with _two_engines(kind, request, tmp_path, clock) as (one, first, other):
        holder, fresh = open_case(first, "p-e"), open_case(first, "p-f")
        other.erase("p-e", actor=system, reason="本人申请")
        before = _vault_rows(one)
        payload = {"text": "b", "reporter": {"subject": "p-e", "phone": PHONE}}
        with pytest.raises(gridflow.ConcurrencyError):
            first.fire(fresh.id, "note", actor=coordinator, payload=payload)
        assert _vault_rows(one) == before
        assert one.get(fresh.id).version == 1  # type: ignore[union-attr]
        # Retried, the step makes the subject a new key (the old one is gone for good).
        first.fire(fresh.id, "note", actor=coordinator, retries=1, payload=payload)
        assert _vault_rows(one) == before + 1
        assert first.history(fresh.id, actor=coordinator)[-1].payload["reporter"][
            "phone"] == PHONE
        assert first.get(holder.id, actor=coordinator).data["reporter"]["name"] == TOMBSTONE
        assert first.verify(fresh.id).version == 2


@pytest.mark.parametrize("kind", _KINDS)
def test_a_subject_restricted_elsewhere_is_not_sealed_as_active(
        kind: str, request: pytest.FixtureRequest, tmp_path: Any, clock: FixedClock) -> None:
    with _two_engines(kind, request, tmp_path, clock) as (one, first, other):
        case = open_case(first, "p-x")
        first.fire(case.id, "note", actor=coordinator,
                   payload={"text": "a", "reporter": {"subject": "p-x", "phone": PHONE}})
        before = _vault_rows(one)
        # Another engine restricts p-x; this engine still holds p-x's key row as active.
        other.restrict("p-x", actor=system, reason="诉讼保全")
        version = one.get(case.id).version  # type: ignore[union-attr]
        with pytest.raises(gridflow.ConcurrencyError):
            first.fire(case.id, "note", actor=coordinator,
                       payload={"text": "b", "reporter": {"subject": "p-x", "phone": PHONE}})
        assert _vault_rows(one) == before
        assert one.get(case.id).version == version  # type: ignore[union-attr]
        # Retried, the step reads the key again and seals under it, restricted.
        first.fire(case.id, "note", actor=coordinator, retries=1,
                   payload={"text": "b", "reporter": {"subject": "p-x", "phone": PHONE}})
        assert _vault_rows(one) == before + 1
        assert first.history(case.id, actor=coordinator)[-1].payload["reporter"][
            "phone"] == RESTRICTED
        assert first.verify(case.id).version == version + 1


@pytest.mark.parametrize("kind", _KINDS)
def test_a_new_subjects_key_stored_elsewhere_first_loses_the_race(
        kind: str, request: pytest.FixtureRequest, tmp_path: Any, clock: FixedClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    with _two_engines(kind, request, tmp_path, clock) as (one, first, other):
        mine, theirs = open_case(first, "p-a"), open_case(other, "p-b")
        before = _vault_rows(one)
        commit = one.commit
        pending = [True]

        def commit_after_theirs(writes: Any, **kw: Any) -> None:
            # Between this engine's sealing (a new key for p-new) and its commit,
            # the other engine stores p-new's first key on another case.
            if pending and writes[0].case.id == mine.id:
                pending.clear()
                other.fire(theirs.id, "note", actor=coordinator, payload={
                    "text": "x", "reporter": {"subject": "p-new", "phone": PHONE}})
            commit(writes, **kw)

        monkeypatch.setattr(one, "commit", commit_after_theirs)
        payload = {"text": "y", "reporter": {"subject": "p-new", "phone": "13700007777"}}
        with pytest.raises(gridflow.ConcurrencyError):
            first.fire(mine.id, "note", actor=coordinator, payload=payload)
        assert _vault_rows(one) == before + 1  # theirs only
        assert one.get(mine.id).version == 1  # type: ignore[union-attr]
        # Retried, the step seals under the key the other engine stored.
        first.fire(mine.id, "note", actor=coordinator, retries=1, payload=payload)
        assert _vault_rows(one) == before + 2
        assert first.history(mine.id, actor=coordinator)[-1].payload["reporter"][
            "phone"] == "13700007777"
        assert other.history(mine.id, actor=coordinator)[-1].payload["reporter"][
            "phone"] == "13700007777"
        assert first.verify(mine.id).version == 2


@pytest.mark.parametrize("kind", _KINDS)
def test_a_steps_result_never_shows_what_another_engine_erased_or_restricted(
        kind: str, request: pytest.FixtureRequest, tmp_path: Any, clock: FixedClock) -> None:
    with _two_engines(kind, request, tmp_path, clock) as (_, first, other):
        kept, gone = open_case(first, "p-kept"), open_case(first, "p-gone")
        for case in (kept, gone):  # this engine knows every value of both cases
            shown = first.fire(case.id, "note", actor=coordinator,
                               payload={"text": "a", "contact": "微信 abc_1"})
            assert shown.data["reporter"]["name"] == NAME
        other.restrict("p-kept", actor=system, reason="诉讼保全")
        other.erase("p-gone", actor=system, reason="本人申请")
        shown = first.fire(kept.id, "note", actor=coordinator,
                           payload={"text": "b", "contact": "微信 abc_2"})
        assert shown.data["reporter"]["name"] == RESTRICTED
        shown = first.fire(gone.id, "note", actor=coordinator,
                           payload={"text": "b", "contact": "微信 abc_2"})
        assert shown.data["reporter"]["name"] == TOMBSTONE
        # And the next steps too (what the first read in its transaction is remembered).
        for case, expected in ((kept, RESTRICTED), (gone, TOMBSTONE)):
            shown = first.fire(case.id, "note", actor=coordinator, payload={"text": "c"})
            assert shown.data["reporter"]["name"] == expected
            assert first.get(case.id, actor=coordinator).data["reporter"]["name"] == expected


@pytest.mark.postgres
def test_personal_steps_on_a_partitioned_postgres_store(
        pg_url: str, pg_schema: str, clock: FixedClock) -> None:
    # The step's one statement there also stores its idempotency key (its own CTE).
    with gridflow.SQLStore(pg_url, schema=pg_schema, partition="month") as store:
        store.create_schema()
        engine = keyed(store, clock)
        case = open_case(engine, "p-part")
        shown = engine.fire(case.id, "note", actor=coordinator, idempotency_key="k-part",
                            payload={"text": "回访", "contact": "微信 part_1"})
        again = engine.fire(case.id, "note", actor=coordinator, idempotency_key="k-part",
                            payload={"text": "回访", "contact": "微信 part_1"})
        assert shown.version == again.version == 2
        assert shown.data["reporter"]["name"] == NAME
        assert engine.history(case.id, actor=coordinator)[-1].payload["contact"] == "微信 part_1"
        assert _vault_rows(store) == 6
        assert "part_1" not in stored_text(store, case.id)
        assert engine.verify(case.id).version == 2
