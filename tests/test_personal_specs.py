"""Personal fields declared in YAML/JSON specs (PIPL): loaded, sealed, validated."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import gridflow
from gridflow import Actor, Engine, FixedClock, SpecError, WorkflowSpec
from gridflow._sealing import PersonalPolicy
from gridflow.personal import TOMBSTONE, PersonalField

GRID = "华三-1"
operator = Actor("o-1", ["operator"], [GRID])
caseworker = Actor("c-1", ["caseworker"], [GRID])

NAME, PHONE, CALLBACK = "慕容秋水", "13766554433", "021-66778899"

HOTLINE = """\
name: hotline
version: 1
initial: received
roles:
  - {name: operator, label_zh: 接线员}
  - {name: caseworker, label_zh: 承办人}
states:
  - {name: received}
  - {name: closed, terminal: true}
transitions:
  - {trigger: note, source: received, dest: null, roles: [operator]}
  - trigger: close
    source: received
    dest: closed
    roles: [caseworker]
    choices: {outcome: [done, dropped]}
personal:
  readers: [caseworker]
  retention: 1095d
  data:
    - {path: caller.name, kind: name}
    - {path: caller.phone, kind: phone}
  triggers:
    note:
      - {path: callback, kind: phone, subject: caller.subject}
"""


def _write(tmp_path: Path, text: str, name: str = "hotline.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_yaml_spec_declares_the_same_structures_as_the_builtins(tmp_path: Path) -> None:
    spec = WorkflowSpec.load(_write(tmp_path, HOTLINE))
    assert spec.personal == PersonalPolicy(
        data=(PersonalField("caller.name", "name"), PersonalField("caller.phone", "phone")),
        triggers={"note": (PersonalField("callback", "phone", subject="caller.subject"),)},
        readers=frozenset({"caseworker"}), retention=__import__("datetime").timedelta(days=1095))
    # JSON reads the same, and the canonical form carries the declaration.
    again = WorkflowSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec and again.fingerprint == spec.fingerprint
    # A spec without personal fields keeps the canonical form it always had.
    assert "personal" not in gridflow.workflows.GRID_CASE.to_dict()


def test_declared_values_of_a_yaml_spec_are_sealed_on_sqlite(tmp_path: Path,
                                                             clock: FixedClock) -> None:
    spec = WorkflowSpec.load(_write(tmp_path, HOTLINE))
    db = tmp_path / "hotline.db"
    with gridflow.SQLStore(f"sqlite:///{db}") as store:
        store.create_schema()
        engine = Engine(store=store, clock=clock, entry_points=False,
                        keyring=gridflow.Keyring.generate())
        engine.register_workflow(spec)
        case = engine.open("hotline", version=1, actor=operator, grid=GRID, data={
            "topic": "噪音", "caller": {"subject": "p-9", "name": NAME, "phone": PHONE}})
        # The subject path is read from the payload itself (the document the value is in).
        engine.fire(case.id, "note", actor=operator,
                    payload={"callback": CALLBACK, "caller": {"subject": "p-9"}})

        def raw() -> bytes:
            wal = db.with_name(db.name + "-wal")
            return db.read_bytes() + (wal.read_bytes() if wal.exists() else b"")

        data = raw()
        for value in (NAME, PHONE, CALLBACK):
            assert value.encode() not in data and json.dumps(value).encode() not in data
        assert engine.get(case.id, actor=caseworker).data["caller"]["name"] == NAME
        assert engine.get(case.id, actor=operator).data["caller"] == {
            "subject": "p-9", "name": "慕***", "phone": "137****4433"}
        shown = engine.history(case.id, actor=caseworker)[-1].payload
        assert shown["callback"] == CALLBACK
        assert engine.history(case.id, actor=operator)[-1].payload["callback"] == "021-****8899"
        # The callback belongs to the caller's subject, as declared: erasing it goes.
        assert engine.erase("p-9", actor=Actor.system(), reason="本人申请") == [case.id]
        assert engine.get(case.id, actor=caseworker).data["caller"]["phone"] == TOMBSTONE
        assert engine.history(case.id, actor=caseworker)[1].payload["callback"] == TOMBSTONE
        assert engine.verify(case.id).version == 3


UNFILLABLE = HOTLINE + """\
    nte:
      - {path: contact, kind: free_text}
    close:
      - {path: outcome.by, kind: name}
"""


def test_validate_reports_a_personal_path_nothing_can_fill(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gridflow.cli import main

    path = _write(tmp_path, UNFILLABLE)
    with pytest.raises(SpecError) as caught:
        WorkflowSpec.load(path)
    whats = [p.what for p in caught.value.problems]
    assert whats == [
        "personal path 'contact' (trigger 'nte') can never be filled: the workflow has no "
        "trigger 'nte'",
        "personal path 'outcome.by' (trigger 'close') can never be filled: 'outcome' takes "
        "one of the trigger's listed choices, a string"]
    assert main(["validate", str(path), "--no-project", "--no-plugins"]) == 1
    out = capsys.readouterr().out
    assert "2 problem(s)" in out
    line = UNFILLABLE.splitlines().index("      - {path: contact, kind: free_text}") + 1
    assert (f"{path}:{line}:9: personal.triggers.nte[0]: personal path 'contact' (trigger 'nte') "
            "can never be filled") in out
    assert "personal.triggers.close[0]: personal path 'outcome.by'" in out
    assert main(["validate", str(_write(tmp_path, HOTLINE, "ok.yaml")), "--no-project",
                 "--no-plugins"]) == 0


@pytest.mark.parametrize(("section", "expected"), [
    ({"data": [{"path": "caller.phone", "kind": "mobile"}]},
     ("spec.personal.data[0]", "kind 'mobile' is not a kind of personal value")),
    ({"data": [{"path": "caller[0].phone", "kind": "phone"}]},
     ("spec.personal.data[0]", "segment 'caller[0]' names one list element")),
    ({"payload": [{"path": "contact"}]},
     ("spec.personal.payload[0]", "required field missing: kind")),
    ({"readers": "caseworker"},
     ("spec.personal.readers", "expected a list of role names, got the string 'caseworker'")),
    ({"payload": [{"path": "contact", "kind": "phone"}]} | {"data": [
        {"path": "caller", "kind": "free_text"}, {"path": "caller.name", "kind": "name"}]},
     ("personal.data", "'caller.name' lies inside 'caller', which is personal as a whole")),
    ({"triggers": {"open": [{"path": "caller.name", "kind": "name"}]}},
     ("personal.triggers.open[0]", "personal path 'caller.name' (trigger 'open') can never be "
      "filled: the opening data is the case data, not a trigger's payload")),
    ({"retention": 3},
     ("spec.personal.retention", "not a duration: the integer 3; write e.g. 1095d or P1095D")),
    ({"owners": []}, ("spec.personal", "extra fields found (owners)")),
    ({"refers_to": {"consent": "parties[].name"}},
     ("personal.refers_to", "'consent' is not a declared personal path")),
])
def test_bad_personal_sections_are_reported(section: dict[str, Any],
                                            expected: tuple[str, str]) -> None:
    import yaml

    data = yaml.safe_load(HOTLINE)
    data["personal"] = section
    with pytest.raises(SpecError) as caught:
        WorkflowSpec.from_dict(data)
    assert expected in [(p.where, p.what) for p in caught.value.problems]


def test_reader_and_auditor_roles_must_be_registered(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A misspelt reader role would show masks to everyone who should read; a
    # misspelt auditor role would leave restricted values unreadable to all.
    from gridflow.cli import main

    text = HOTLINE.replace("readers: [caseworker]",
                           "readers: [casewroker]\n  auditors: [auditer]")
    path = _write(tmp_path, text, "typo.yaml")
    spec = WorkflowSpec.load(path)
    with pytest.raises(SpecError) as caught:
        Engine(entry_points=False).register_workflow(spec)
    whats = {(p.where, p.what) for p in caught.value.problems}
    assert whats == {("personal.readers", "role 'casewroker' is not registered"),
                     ("personal.auditors", "role 'auditer' is not registered")}
    assert main(["validate", str(path), "--no-project", "--no-plugins"]) == 1
    out = capsys.readouterr().out
    assert "personal.readers: role 'casewroker' is not registered" in out
    assert "personal.auditors: role 'auditer' is not registered" in out
    # The default auditor role is a built-in one: a spec that names none is fine.
    Engine(entry_points=False).register_workflow(WorkflowSpec.load(_write(tmp_path, HOTLINE)))
