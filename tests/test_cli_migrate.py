"""``gridflow diff`` and ``gridflow migrate`` (plan files, dry run, resume)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import gridflow
from gridflow.cli import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, main
from migration_v3 import GRID_CASE_V3, V3Plugin, fill


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    spec = tmp_path / "grid_case_v3.json"
    spec.write_text(json.dumps(GRID_CASE_V3.to_dict(), ensure_ascii=False), encoding="utf-8")
    plan = tmp_path / "plan.yaml"
    plan.write_text("workflow: grid_case\nsource_version: 1\ntarget_version: 3\n"
                    "states:\n  revisit: look_back\neffects: [\"migration_v3:stamp\"]\n"
                    "name: rules-2027\n", encoding="utf-8")
    db = tmp_path / "cases.db"
    store = gridflow.SQLStore(f"sqlite:///{db}")
    store.create_schema()
    fill(gridflow.Engine(store=store, entry_points=False, plugins=[V3Plugin()]), 12)
    store.close()
    return {"spec": spec, "plan": plan, "db": db}


def test_diff_files_and_registered_versions(capsys: pytest.CaptureFixture[str],
                                            files: dict[str, Path]) -> None:
    code, out, _ = run(capsys, "diff", "grid_case@1", str(files["spec"]), "--no-project",
                       "--no-plugins")
    assert code == EXIT_PROBLEMS  # a change needs a mapping
    assert "NEEDS MAPPING  state       revisit: removed" in out
    assert "triaged: changed (1d -> 2d)" in out
    code, out, _ = run(capsys, "diff", "grid_case@1", "grid_case@1", "--no-project",
                       "--no-plugins", "--json")
    assert code == EXIT_OK and json.loads(out)["changes"] == []
    code, _, err = run(capsys, "diff", "grid_case@9", "grid_case@1", "--no-project",
                       "--no-plugins")
    assert code == EXIT_PROBLEMS and "grid_case" in err and "Traceback" not in err
    code, _, err = run(capsys, "diff", "grid_case@x", "grid_case@1", "--no-project")
    assert code == EXIT_USAGE and "not a version number" in err


def test_migrate_dry_run_then_for_real(capsys: pytest.CaptureFixture[str],
                                       files: dict[str, Path]) -> None:
    common = ["--db", str(files["db"]), "--spec", str(files["spec"]), "--no-project",
              "--no-plugins"]
    code, out, err = run(capsys, "migrate", str(files["plan"]), "--dry-run", *common)
    assert code == EXIT_OK, err
    assert "(dry run): would move 12 case(s)" in out and "revisit -> look_back" in out
    store = gridflow.SQLStore(f"sqlite:///{files['db']}")
    assert store.counts(("workflow_version",)) == {(1,): 12}
    code, out, err = run(capsys, "migrate", str(files["plan"]), *common, "--case", "c-00000",
                          "--json")
    assert code == EXIT_OK, err
    assert json.loads(out)["moved"] == 1
    code, out, _ = run(capsys, "migrate", str(files["plan"]), *common, "--actor", "ops-1")
    assert code == EXIT_OK and "moved 11 case(s)" in out and "already on the target version: 1" \
        in out
    assert store.counts(("workflow_version",)) == {(3,): 12}
    event = store.events("c-00001")[-1]
    assert event.trigger == "migrate" and event.actor.id == "ops-1"
    assert event.payload["plan"] == "rules-2027" and store.get("c-00001").data["rules"] == "v2"
    store.close()


def test_migrate_refusals(capsys: pytest.CaptureFixture[str], files: dict[str, Path],
                          tmp_path: Path) -> None:
    common = ["--db", str(files["db"]), "--spec", str(files["spec"]), "--no-project",
              "--no-plugins"]
    bad = tmp_path / "bad.json"
    bad.write_text('{"workflow": "grid_case", "source_version": 1, "target_version": 3}')
    code, _, err = run(capsys, "migrate", str(bad), *common, "--dry-run")
    assert code == EXIT_PROBLEMS and "'revisit'" in err and "refused" in err
    bad.write_text('{"workflow": "grid_case", "source_version": 1, "target": 2}')
    code, _, err = run(capsys, "migrate", str(bad), *common)
    assert code == EXIT_USAGE and "unknown key(s) target" in err
    bad.write_text('{"workflow": "grid_case", "source_version": 1, "target_version": 3, '
                   '"effects": ["nowhere:fn"]}')
    code, _, err = run(capsys, "migrate", str(bad), *common)
    assert code == EXIT_USAGE and "cannot be imported" in err
    code, _, err = run(capsys, "migrate", str(tmp_path / "missing.json"), *common)
    assert code == EXIT_USAGE and "cannot read" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(("name", "content", "said"), [
    ("deep.json", b'{"workflow": "grid_case", "set": {"k": ' + b"[" * 5000 + b"]" * 5000
     + b"}}", "nested more than 64 levels deep"),  # a bare RecursionError
    ("latin1.json", '{"workflow": "网格"}'.encode("gb18030"), "is not UTF-8 text"),
    ("twice.json", b'{"workflow": "grid_case", "workflow": "mediation"}', "twice"),
    ("bomb.yaml", ("a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{b}: &{b} [*{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}]\n"
        for a, b in zip("abcdefgh", "bcdefghi", strict=True))).encode(),
     "more than 100,000 values"),
])
def test_a_hostile_plan_file_is_a_usage_error_not_a_crash(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str, content: bytes,
        said: str) -> None:
    # The deep plan and the GB18030 one were "unexpected error" (RecursionError,
    # UnicodeDecodeError); a key given twice silently took the last.
    plan = tmp_path / name
    plan.write_bytes(content)
    code, _, err = run(capsys, "migrate", str(plan), "--dry-run", "--db",
                       str(tmp_path / "x.db"), "--no-project", "--no-plugins")
    assert code != EXIT_OK and "unexpected error" not in err and "Traceback" not in err
    assert "cannot read the migration plan" in err and said in err
