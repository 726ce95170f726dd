"""A team's own workflow is first-class in the ``gridflow`` command (issue 16, point 1):
``--spec`` / ``--plugin`` on every command, the project file (``gridflow.toml`` or
``[tool.gridflow]`` in ``pyproject.toml``), ``open`` / ``fire``, and no traceback for
anything a user can cause (point 1's last sentence)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import gridflow
from gridflow import cli
from gridflow.cli import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, main

#: A workflow of the team's own, with a role only it declares (``roles:``) and a
#: deadline in the short form.
STREETLIGHT = """\
name: streetlight
version: 1
initial: reported
labels: {zh: 路灯报修, en: Streetlight repair}
roles:
  - {name: electrician, label_zh: 电工, label_en: Electrician}
open_roles: [resident, grid_worker]
open_requires: [title]
states:
  - {name: reported, label_zh: 已报修, label_en: Reported, deadline: 2d, on_breach: escalate}
  - {name: escalated, label_zh: 已上报街道, label_en: Escalated}
  - {name: fixed, label_zh: 已修复, label_en: Fixed, terminal: true}
transitions:
  - {trigger: fix, source: [reported, escalated], dest: fixed, roles: [electrician],
     requires: [result], label_zh: 修复, label_en: Fix}
  - {trigger: escalate, source: reported, dest: escalated, roles: [system],
     label_zh: 上报街道, label_en: Escalate}
"""

#: A plugin module: a guard the spec below names, so the spec needs the plugin.
PLUGIN = '''\
import gridflow

def _has_photo(step):
    return None if step.payload.get("photo") else "a photo of the repaired lamp is required"

@gridflow.hookimpl
def gridflow_guards():
    return {"team.has_photo": _has_photo}
'''

TYPO_PLUGIN = '''\
import gridflow

@gridflow.hookimpl
def gridflow_after_fired(case, event):
    pass
'''

GRID = "第三综合网格"
WORKER = gridflow.Actor("w-1", ["grid_worker"], [GRID])
ELECTRICIAN = gridflow.Actor("e-1", ["electrician"], [GRID])


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err, err
    return code, out, err


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "streetlight.yaml"
    path.write_text(STREETLIGHT, encoding="utf-8")
    return path


@pytest.fixture
def lamp_db(tmp_path: Path, spec_file: Path) -> Path:
    """Two streetlight cases opened with the Python API on 2 March, 01:00 UTC: ``l1``
    left reported (it falls due on 4 March), ``l2`` fixed three hours later."""
    path = tmp_path / "lamps.db"
    store = gridflow.SQLStore(f"sqlite:///{path}")
    store.create_schema()
    clock = gridflow.FixedClock(datetime(2026, 3, 2, 1, tzinfo=UTC))
    engine = gridflow.Engine(store, clock=clock, entry_points=False)
    engine.register_workflow(gridflow.WorkflowSpec.load(spec_file))
    for case_id in ("l1", "l2"):
        engine.open("streetlight", case_id=case_id, actor=WORKER, grid=GRID,
                    data={"title": "路灯不亮"})
    clock.advance(timedelta(hours=3))
    engine.fire("l2", "fix", actor=ELECTRICIAN, payload={"result": "更换灯泡"})
    store.close()
    return path


# -- history ----------------------------------------------------------------------------


def test_history_of_an_own_workflow_is_verified_with_its_spec(
    lamp_db: Path, spec_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "history", "l2", "--db", str(lamp_db), "--spec", str(spec_file))
    assert code == EXIT_OK, err
    assert "Streetlight repair (streetlight@1)" in out
    assert "Reported → Fixed" in out and "e-1 (Electrician)" in out
    assert "✓ history verified: 2 events" in out


def test_history_that_cannot_be_verified_fails(lamp_db: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    # Without the spec the history cannot be checked: that is a failed check, said plainly.
    code, out, err = run(capsys, "history", "l2", "--db", str(lamp_db))
    assert code == EXIT_PROBLEMS
    assert "not verified" in err and "'streetlight' version 1 is not registered" in err
    assert "--spec" in err and "gridflow.toml" in err
    assert "history verified" not in out


# -- tick -------------------------------------------------------------------------------


def test_tick_of_an_own_workflow(lamp_db: Path, spec_file: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    now = "2026-03-05T10:00+08:00"
    code, out, err = run(capsys, "tick", "--db", str(lamp_db), "--now", now)
    assert code == EXIT_PROBLEMS  # the case could not be handled: said, with what to do
    assert "case 'l1'" in err and "--spec" in err
    # The next run (the claim of the failed one has lapsed) handles it.
    code, out, err = run(capsys, "tick", "--db", str(lamp_db), "--now", "2026-03-05T10:05+08:00",
                         "--spec", str(spec_file))
    assert code == EXIT_OK, err
    assert out == "l1  Escalate  Reported → Escalated\n"
    code, out, err = run(capsys, "history", "l1", "--db", str(lamp_db), "--spec", str(spec_file))
    assert code == EXIT_OK and "system (System (timer))" in out


def test_tick_without_the_spec_prints_no_traceback_when_installed(
    lamp_db: Path, tmp_path: Path
) -> None:
    # The engine logs the failure with its traceback; the command shows one line.
    script = Path(sys.executable).with_name("gridflow")
    argv = ([str(script)] if script.exists() else
            [sys.executable, "-c", "import sys, gridflow.cli as c; sys.exit(c.main())"])
    done = subprocess.run([*argv, "tick", "--db", str(lamp_db), "--now", "2026-03-05"],
                          capture_output=True, text=True, timeout=120, check=False,
                          cwd=tmp_path, env={"PATH": "/usr/bin:/bin",
                                             "PYTHONPATH": str(Path(cli.__file__).parents[1])})
    assert done.returncode == EXIT_PROBLEMS
    assert "Traceback" not in done.stderr and "case 'l1'" in done.stderr


# -- report -----------------------------------------------------------------------------


def test_report_of_an_own_workflow_says_what_applies(
    lamp_db: Path, spec_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "report", "--db", str(lamp_db), "--spec", str(spec_file))
    assert code == EXIT_OK, err
    # No wall of zeros: the grid-case figures do not apply to these cases.
    assert "Received" not in out and "Filing rate" not in out
    assert "Streetlight repair (streetlight): no supervision figures are defined" in out
    lines = [line.split() for line in out.splitlines()]
    assert ["Reported", "1"] in lines and ["Fixed", "1"] in lines
    assert "Median time in each state" in out
    # l2's stay in "reported" (three hours) ended in the period; l1's has not ended.
    assert ["Reported", "3.0", "h"] in lines
    code, out, _ = run(capsys, "report", "--db", str(lamp_db), "--spec", str(spec_file),
                       "--lang", "zh", "-q")
    assert "路灯报修 (streetlight)" in out and "已报修" in out and "没有为此流程定义考核指标" in out
    code, out, _ = run(capsys, "report", "--db", str(lamp_db), "--json", "-q", "--by", "grid")
    data = json.loads(out)
    states = {(r["workflow"], r["state"], r["group"]): r["cases"]
              for r in data["cases_by_state"]}
    assert states == {("streetlight", "reported", GRID): 1, ("streetlight", "fixed", GRID): 1}
    assert data["workflows"] == {"streetlight": {"figures": None, "cases": 2}}


def test_report_of_mixed_workflows_labels_each_block(
    lamp_db: Path, spec_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = gridflow.SQLStore(f"sqlite:///{lamp_db}")
    engine = gridflow.Engine(store, clock=gridflow.FixedClock(datetime(2026, 3, 2, 2,
                                                                       tzinfo=UTC)),
                             entry_points=False)
    engine.open("grid_case", version=1,
                actor=WORKER, grid=GRID, data={"title": "堆物", "source": "visit"})
    store.close()
    code, out, _ = run(capsys, "report", "--db", str(lamp_db), "--spec", str(spec_file), "-q")
    assert code == EXIT_OK
    assert "Grid case (grid_case): figures of grid_case cases only" in out
    received = next(line for line in out.splitlines() if line.strip().startswith("Received"))
    assert received.split()[-1] == "1"
    assert "Mediations ended" not in out  # no mediation case: no mediation block
    assert "Streetlight repair (streetlight): no supervision figures" in out


# -- diagram and validate ---------------------------------------------------------------


def test_diagram_and_validate_take_specs_and_plugins(
    spec_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, out, _ = run(capsys, "diagram", "streetlight", "--spec", str(spec_file),
                       "--lang", "zh")
    assert code == EXIT_OK and "已报修" in out
    # A spec naming a guard a plugin provides: refused without the plugin, ok with it.
    monkeypatch.chdir(tmp_path)  # a plugin module is imported from the current directory
    (tmp_path / "photo_plugin.py").write_text(PLUGIN, encoding="utf-8")
    guarded = tmp_path / "guarded.yaml"
    guarded.write_text(STREETLIGHT.replace("requires: [result],",
                                           "requires: [result], guards: [team.has_photo],"),
                       encoding="utf-8")
    code, out, _ = run(capsys, "validate", str(guarded))
    assert code == EXIT_PROBLEMS and "guard 'team.has_photo' is not registered" in out
    code, out, _ = run(capsys, "validate", str(guarded), "--plugin", "photo_plugin")
    assert code == EXIT_OK and "ok: streetlight@1" in out
    code, out, _ = run(capsys, "validate", "--spec", str(guarded), "--plugin", "photo_plugin")
    assert code == EXIT_OK and "ok: streetlight@1" in out


def test_plugins_are_checked(spec_file: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str],
                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "typo_plugin.py").write_text(TYPO_PLUGIN, encoding="utf-8")
    code, _, err = run(capsys, "diagram", "grid_case", "--plugin", "typo_plugin")
    assert code == EXIT_USAGE
    assert "plugin 'typo_plugin'" in err and "did you mean 'gridflow_after_fire'" in err
    code, _, err = run(capsys, "diagram", "grid_case", "--plugin", "no_such_module_x")
    assert code == EXIT_USAGE and "cannot import plugin 'no_such_module_x'" in err
    (tmp_path / "broken_plugin.py").write_text("raise RuntimeError('boom')\n", encoding="utf-8")
    code, _, err = run(capsys, "diagram", "grid_case", "--plugin", "broken_plugin")
    assert code == EXIT_USAGE and "RuntimeError: boom" in err
    (tmp_path / "team_plugin.py").write_text(PLUGIN + "\nclass Thing:\n    pass\n",
                                             encoding="utf-8")
    code, _, err = run(capsys, "diagram", "grid_case", "--plugin", "team_plugin:Nope")
    assert code == EXIT_USAGE and "has no attribute 'Nope'" in err
    code, _, err = run(capsys, "diagram", "grid_case", "--plugin", "team_plugin:")
    assert code == EXIT_USAGE and "MODULE or MODULE:ATTRIBUTE" in err
    assert run(capsys, "diagram", "grid_case", "--plugin", "team_plugin:Thing")[0] == EXIT_OK


# -- the project file -------------------------------------------------------------------


def _project(tmp_path: Path, text: str, name: str = "gridflow.toml") -> None:
    (tmp_path / name).write_text(text, encoding="utf-8")


def test_project_file_names_database_specs_lang_and_tz(
    lamp_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(cli.DB_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    _project(tmp_path, 'database = "lamps.db"\nspecs = ["*.yaml"]\nlang = "zh"\ntz = "UTC"\n')
    code, out, err = run(capsys, "history", "l2")
    assert code == EXIT_OK, err
    assert "2026-03-02 01:00  新建" in out and "已报修 → 已修复" in out  # zh, UTC
    assert "✓ 历史已验证" in out
    # The command line wins over the file.
    code, out, _ = run(capsys, "history", "l2", "--lang", "en", "--tz", "+08:00")
    assert "2026-03-02 09:00  Opened" in out
    code, _, err = run(capsys, "history", "l2", "--db", str(tmp_path / "other.db"))
    assert code == EXIT_USAGE and "other.db" in err
    # ... and the environment variable wins over the file, not over --db.
    monkeypatch.setenv(cli.DB_ENV, str(tmp_path / "env.db"))
    code, _, err = run(capsys, "history", "l2")
    assert code == EXIT_USAGE and "env.db" in err
    monkeypatch.delenv(cli.DB_ENV)
    # --no-project leaves the file out.
    code, _, err = run(capsys, "history", "l2", "--no-project")
    assert code == EXIT_USAGE and "no database given" in err
    # The timer uses the file's specs too.
    code, out, _ = run(capsys, "tick", "--now", "2026-03-05", "-q")
    assert code == EXIT_OK and out.startswith("l1  上报街道")


def test_pyproject_tool_table_and_relative_paths(
    lamp_db: Path, spec_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(cli.DB_ENV, raising=False)
    work = tmp_path / "sub"
    work.mkdir()
    monkeypatch.chdir(work)
    _project(work, '[project]\nname = "team"\n\n[tool.gridflow]\ndatabase = "../lamps.db"\n'
                   'specs = ["../streetlight.yaml"]\ncalendar = "weekdays"\n', "pyproject.toml")
    code, out, err = run(capsys, "history", "l2")
    assert code == EXIT_OK and "✓ history verified" in out, err
    # A pyproject.toml without [tool.gridflow] is no project file.
    _project(work, '[project]\nname = "team"\n', "pyproject.toml")
    code, _, err = run(capsys, "history", "l2")
    assert code == EXIT_USAGE and "no database given" in err


@pytest.mark.parametrize(("text", "expected"), [
    ("database = \n", "gridflow.toml: not valid TOML: Invalid value (at line 1, column 12)"),
    ('databse = "x.db"\n', "unknown key 'databse'"),
    ('specs = "a.yaml"\n', "'specs' must be a list of strings"),
    ('lang = "fr"\n', "'lang' must be one of: en, zh"),
    ('calendar = "lunar"\n', "'calendar' must be one of: days, weekdays, china"),
    ('tz = "Mars/Olympus"\n', "unknown time zone 'Mars/Olympus'"),
    ('specs = ["missing.yaml"]\n', "no spec file matches 'missing.yaml'"),
    ('plugins = [1]\n', "'plugins' must be a list of strings"),
])
def test_a_bad_project_file_is_a_usage_error(
    text: str, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    _project(tmp_path, text)
    code, _, err = run(capsys, "diagram", "grid_case")
    assert code == EXIT_USAGE, err
    assert expected in err
    assert "gridflow.toml" in err
    assert run(capsys, "diagram", "grid_case", "--no-project")[0] == EXIT_OK


# -- open and fire ----------------------------------------------------------------------


def test_open_and_fire_through_the_command(
    spec_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "new.db")
    common = ["--db", db, "--spec", str(spec_file)]
    code, out, err = run(capsys, "open", "streetlight", *common, "--id", "lamp-7",
                         "--actor", "w-1", "--roles", "grid_worker", "--grids", GRID,
                         "--data", '{"title": "路灯闪烁"}', "--now", "2026-03-02T09:00+08:00")
    assert code == EXIT_OK, err
    assert out == f"opened lamp-7 · Streetlight repair (streetlight@1) · grid {GRID} · " \
                  "state: Reported\n"
    code, out, err = run(capsys, "fire", "lamp-7", "fix", *common, "--actor", "e-1",
                         "--roles", "electrician", "--grids", "*", "--json",
                         "--data", '{"result": "更换镇流器"}')
    assert code == EXIT_OK, err
    case = json.loads(out)
    assert case["state"] == "fixed" and case["version"] == 2
    code, out, _ = run(capsys, "history", "lamp-7", *common)
    assert code == EXIT_OK and "e-1 (Electrician)" in out and "✓ history verified" in out


def test_open_and_fire_refusals_and_bad_input(
    spec_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "new.db")
    common = ["--db", db, "--spec", str(spec_file)]
    who = ["--actor", "w-1", "--roles", "grid_worker", "--grids", GRID]
    assert run(capsys, "open", "streetlight", *common, *who, "--id", "x",
               "--data", '{"title": "灯"}')[0] == EXIT_OK
    # Refused by the workflow: exit 1 with the engine's message.
    code, _, err = run(capsys, "fire", "x", "fix", *common, *who, "--data", '{"result": "r"}')
    assert code == EXIT_PROBLEMS and "role" in err and "electrician" in err
    code, _, err = run(capsys, "fire", "x", "fix", *common, "--actor", "e", "--roles",
                       "electrician", "--grids", "另一个网格", "--data", '{"result": "r"}')
    assert code == EXIT_PROBLEMS and "does not exist" in err  # out of scope looks missing
    code, _, err = run(capsys, "open", "streetlight", *common, *who)
    assert code == EXIT_PROBLEMS and "title" in err
    # Bad input: exit 2, never a traceback.
    for argv, expected in [
        ([*who, "--data", "{title"], "--data is not valid JSON"),
        ([*who, "--data", "[1, 2]"], "--data must be a JSON object"),
        ([*who, "--data", "@" + str(tmp_path / "none.json")], "cannot read --data file"),
        (["--actor", "w-1", "--roles", "grid_worker"], "--grids"),
        (["--actor", " ", "--roles", "grid_worker", "--grids", GRID], "actor"),
        ([*who, "--now", "soon"], "not a date or date-time"),
    ]:
        code, _, err = run(capsys, "open", "streetlight", *common, *argv)
        assert code == EXIT_USAGE and expected in err, (argv, err)
    code, _, err = run(capsys, "open", "nope", *common, *who)
    assert code == EXIT_PROBLEMS and "not registered" in err
    (tmp_path / "d.json").write_text('{"title": "从文件读入"}', encoding="utf-8")
    code, out, _ = run(capsys, "open", "streetlight", *common, *who, "--json",
                       "--data", "@" + str(tmp_path / "d.json"))
    assert code == EXIT_OK and json.loads(out)["data"]["title"] == "从文件读入"


# -- no traceback for anything a user can cause -----------------------------------------

BAD_SPEC = "name: streetlight\nversion: 1\ninitial: nowhere\nstates: []\ntransitions: []\n"


@pytest.fixture
def junk_db(tmp_path: Path) -> Path:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not a database" * 100)
    return path


def _bad_inputs(tmp_path: Path, junk: Path) -> list[tuple[list[str], int, str]]:
    bad_spec = tmp_path / "bad.yaml"
    bad_spec.write_text(BAD_SPEC, encoding="utf-8")
    missing = str(tmp_path / "missing.yaml")
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    who = ["--actor", "a", "--roles", "resident", "--grids", "*"]
    return [
        # bad files
        (["validate", missing], EXIT_USAGE, "no such file"),
        (["diagram", missing], EXIT_USAGE, "no such file"),
        (["history", "x", "--db", str(empty), "--spec", missing], EXIT_USAGE, "no such file"),
        (["diagram", "grid_case", "--spec", str(bad_spec)], EXIT_PROBLEMS, "gridflow validate"),
        (["report", "--db", str(empty), "--spec", str(bad_spec)], EXIT_PROBLEMS,
         "not a valid workflow spec"),
        # bad database URLs and files
        (["history", "x", "--db", "foo://bar"], EXIT_USAGE, "SQLite and PostgreSQL"),
        (["report", "--db", "postgresql+psycopg://u@[::1"], EXIT_USAGE, "database"),
        (["tick", "--db", str(tmp_path / "nope.db")], EXIT_USAGE, "no database file"),
        (["history", "x", "--db", str(junk)], EXIT_PROBLEMS, "not a database"),
        (["report", "--db", str(empty)], EXIT_PROBLEMS, "create_schema"),
        (["open", "grid_case", "--db", str(junk), *who], EXIT_PROBLEMS, "not a database"),
        (["fire", "c", "note", "--db", str(empty), *who], EXIT_PROBLEMS, "create_schema"),
        (["demo", "--db", str(tmp_path / "no" / "dir" / "d.db")], EXIT_PROBLEMS,
         "unable to open database file"),
        # bad option values
        (["tick", "--db", str(empty), "--batch", "0"], EXIT_USAGE, "--batch"),
        (["tick", "--db", str(empty), "--batch", "many"], EXIT_USAGE, "--batch"),
        (["report", "--db", str(empty), "--since", "March"], EXIT_USAGE, "not a date"),
        (["history", "x", "--db", str(empty), "--tz", "Nowhere/City"], EXIT_USAGE,
         "unknown time zone"),
        (["diagram", "grid_case", "--lang", "fr"], EXIT_USAGE, "invalid choice"),
        (["fire", "c", "note", "--db", str(empty), "--actor", "a"], EXIT_USAGE, "--grids"),
        (["diagram", "grid_case", "-o", str(tmp_path / "no" / "dir" / "x.mmd")], EXIT_USAGE,
         "cannot write"),
    ]


def test_no_traceback_for_bad_input(tmp_path: Path, junk_db: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    for argv, expected_code, expected in _bad_inputs(tmp_path, junk_db):
        code = main(argv)
        out, err = capsys.readouterr()
        assert "Traceback" not in err + out, argv
        assert code == expected_code, (argv, code, err)
        assert expected in err, (argv, err)
        # A message, not a dump (argparse's own errors repeat the usage first).
        assert err.count("\n") <= 2 or err.startswith("usage: "), (argv, err)


def test_missing_extras_are_named(tmp_path: Path, spec_file: Path,
                                  capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch, lamp_db: Path) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)
    code, _, err = run(capsys, "diagram", "streetlight", "--spec", str(spec_file))
    assert code == EXIT_USAGE and "pip install 'gridflow[yaml]'" in err
    monkeypatch.delitem(sys.modules, "yaml")
    monkeypatch.setitem(sys.modules, "chinese_calendar", None)
    code, _, err = run(capsys, "tick", "--db", str(lamp_db), "--calendar", "china",
                       "--spec", str(spec_file))
    assert code == EXIT_USAGE and "gridflow[china]" in err
    monkeypatch.setitem(sys.modules, "psycopg", None)
    code, _, err = run(capsys, "report", "--db", "postgresql+psycopg://u@127.0.0.1/x")
    assert code == EXIT_USAGE and "gridflow[postgres]" in err


def test_interrupt_is_quiet(monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    import gridflow.interop.diagram as diagram

    def interrupted(*_args: object) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(diagram, "render", interrupted)
    assert main(["diagram", "grid_case"]) == 130
    out, err = capsys.readouterr()
    assert out == "" and err == ""


def test_a_plugin_that_fails_at_run_time_is_one_line(
    spec_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "crash_veto.py").write_text(
        "import gridflow\n\n@gridflow.hookimpl\ndef gridflow_veto(case, trigger, actor, "
        "payload):\n    raise ZeroDivisionError('plugin bug')\n", encoding="utf-8")
    (tmp_path / "crash_after.py").write_text(
        "import gridflow\n\n@gridflow.hookimpl\ndef gridflow_after_fire(case, event):\n"
        "    raise ZeroDivisionError('plugin bug')\n", encoding="utf-8")
    common = ["--db", str(tmp_path / "c.db"), "--spec", str(spec_file), "--actor", "w",
              "--roles", "grid_worker", "--grids", GRID, "--data", '{"title": "t"}']
    code, _, err = run(capsys, "open", "streetlight", *common, "--plugin", "crash_veto")
    assert code == EXIT_PROBLEMS  # a refusal: the step is not stored
    assert "crash_veto.gridflow_veto" in err and "ZeroDivisionError" in err
    assert err.count("\n") == 1
    # An after-hook failing leaves the step committed: a warning of one line, exit 0.
    code, out, err = run(capsys, "open", "streetlight", *common, "--plugin", "crash_after")
    assert code == EXIT_OK and out.startswith("opened ")
    assert "crash_after" in err and err.count("\n") == 1


def test_an_unexpected_error_is_one_line(capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import gridflow.interop.diagram as diagram

    def broken(*_args: object) -> str:
        raise RuntimeError("a bug")

    monkeypatch.setattr(diagram, "render", broken)
    monkeypatch.delenv("GRIDFLOW_DEBUG", raising=False)
    code, _, err = run(capsys, "diagram", "grid_case")
    assert code == EXIT_PROBLEMS
    assert "unexpected error: RuntimeError: a bug" in err and "GRIDFLOW_DEBUG=1" in err
    monkeypatch.setenv("GRIDFLOW_DEBUG", "1")  # ... which shows where it came from
    with pytest.raises(RuntimeError):
        main(["diagram", "grid_case"])
