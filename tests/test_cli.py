"""The ``gridflow`` command, run through ``main(argv)`` (one test runs the installed script)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import gridflow
from gridflow import cli
from gridflow.cli import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, main

SUBCOMMANDS = ["demo", "validate", "diagram", "history", "report", "tick"]
GRID = "第一综合网格"
#: The demo's grid cases run on grid_case@2: registered for the commands that replay them.
V2 = ("--plugin", "gridflow.workflows.grid_case_v2:PLUGIN")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file holding the demo's cases (played once for the module)."""
    path = tmp_path_factory.mktemp("demo") / "demo.db"
    assert main(["demo", "--db", str(path), "--quiet"]) == EXIT_OK
    return path


# -- help and usage ---------------------------------------------------------------------


def test_help_everywhere(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == EXIT_OK
    for name in SUBCOMMANDS:
        assert name in out
    for name in SUBCOMMANDS:
        code, out, _ = run(capsys, name, "--help")
        assert code == EXIT_OK, name
        assert out.startswith(f"usage: gridflow {name}"), name


def test_no_command_and_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys)
    assert code == EXIT_USAGE and "usage: gridflow" in err
    code, _, err = run(capsys, "frobnicate")
    assert code == EXIT_USAGE and "invalid choice" in err
    code, _, err = run(capsys, "diagram", "grid_case", "--format", "png")
    assert code == EXIT_USAGE and "invalid choice: 'png'" in err
    code, _, err = run(capsys, "report", "--db", "x.db", "--tz", "Mars/Olympus")
    assert code == EXIT_USAGE and "unknown time zone" in err
    code, out, _ = run(capsys, "--version")
    assert code == EXIT_OK and out.strip() == f"gridflow {gridflow.__version__}"


def test_installed_script_runs() -> None:
    script = Path(sys.executable).with_name("gridflow")
    if not script.exists():
        pytest.skip(f"no gridflow script next to {sys.executable} (not installed with pip)")
    done = subprocess.run([str(script), "diagram", "grid_case", "--format", "dot"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith('digraph "grid_case"')
    done = subprocess.run([str(script), "history", "x", "--db", "/nonexistent/x.db"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == EXIT_USAGE
    assert "Traceback" not in done.stderr and "no database file" in done.stderr


# -- demo -------------------------------------------------------------------------------


def test_demo_plays_every_story(demo_db: Path, capsys: pytest.CaptureFixture[str],
                                tmp_path: Path) -> None:
    code, out, err = run(capsys, "demo", "--db", str(tmp_path / "d.db"))
    assert code == EXIT_OK, err
    for case_id in ("demo-alley-324", "demo-scald-xie", "demo-scald-fix", "demo-scald-wang"):
        assert f"Case {case_id}" in out
    # The alley: four departments, the timer's look-back, the volunteer's confirmation.
    for dept in ("社区管理办", "城运中心", "综合执法队", "清运单位"):
        assert f"department={dept}" in out
    assert "Closed → Revisit (look back)" in out and "system (System (timer))" in out
    assert "Revisit (look back) → Archived" in out
    # The scald: straight to the three offices, the linked rectification case.
    assert "Intake → Three-office mediation (3)" in out
    assert "linked: demo-scald-fix, demo-scald-wang" in out
    assert "Supervision figures" in out and "第二综合网格" in out
    assert "On-time closure rate 按期结案率" in out
    # grid_case@2: 签收 (one late, urged by the timer), 退单, a failed 核查, 满意度.
    assert "Grid case (grid_case@2)" in out and "Return task" in out and "Fail check" in out
    # The second grid's case was opened on @1 and migrated with the shipped plan: its
    # department was dispatched under @1, so it recorded no 签收 (no rate, not 0%).
    assert "Migrated to a new version" in out and "@1 → @2 (plan grid_case-1-to-2)" in out
    rate = next(line for line in out.splitlines() if "按时签收率" in line)
    assert rate.split()[-2:] == ["75.0%", "-"]
    first = next(line for line in out.splitlines() if "核查一次通过率" in line)
    assert first.split()[-2:] == ["0.0%", "100.0%"]
    assert "Satisfaction rate 满意率" in out and "Composite score 综合指标值" in out
    assert f"report --db sqlite:///{tmp_path / 'd.db'} --classes" in out
    assert f"gridflow history demo-alley-324 --db sqlite:///{tmp_path / 'd.db'}" in out
    assert "the hot-pot scald" in err  # progress on stderr


def test_demo_output_is_deterministic_and_chinese(capsys: pytest.CaptureFixture[str],
                                                  tmp_path: Path) -> None:
    outs = []
    for name in ("a.db", "b.db"):
        code, out, _ = run(capsys, "demo", "--db", str(tmp_path / name), "--lang", "zh", "-q")
        assert code == EXIT_OK
        outs.append(out.replace(str(tmp_path / name), "DB"))
    assert outs[0] == outs[1]
    assert "■ 案件 demo-alley-324 · 网格案件" in outs[0]
    assert "已结案 → 回头看" in outs[0] and "受理 → 三所联动调解" in outs[0]
    assert "监督考核指标" in outs[0] and "按期结案率" in outs[0]
    assert "签收" in outs[0] and "核查不通过" in outs[0] and "满意度：满意" in outs[0]
    assert "按时签收率" in outs[0] and "发回重办率" in outs[0] and "综合指标值" in outs[0]


def test_demo_refuses_a_database_that_has_its_cases(demo_db: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    def content() -> list[list[tuple[object, ...]]]:
        # What is stored, not the file's size: SQLite may fold its WAL into the
        # file whenever a connection closes, which changes the size, not the data.
        with sqlite3.connect(demo_db) as conn:
            return [conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall()
                    for t in ("gridflow_cases", "gridflow_events")]

    before = content()
    code, _, err = run(capsys, "demo", "--db", str(demo_db))
    assert code == EXIT_PROBLEMS
    assert "already exist" in err and "demo-alley-324" in err
    assert content() == before


def test_demo_default_file_is_replaced_each_run(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str],
                                                tmp_path: Path) -> None:
    monkeypatch.setattr(cli, "DEMO_DB", tmp_path / "gridflow-demo.db")
    for _ in range(2):
        code, out, _ = run(capsys, "demo", "-q")
        assert code == EXIT_OK
    assert f"sqlite:///{tmp_path / 'gridflow-demo.db'}" in out


def test_demo_without_sqlalchemy_runs_in_memory(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str],
                                                tmp_path: Path) -> None:
    monkeypatch.setattr(cli, "DEMO_DB", tmp_path / "gridflow-demo.db")
    monkeypatch.setitem(sys.modules, "gridflow.store.sql", None)  # import fails
    code, out, err = run(capsys, "demo", "-q")
    assert code == EXIT_OK
    assert "SQLAlchemy is not installed" in err and "runs in memory" in err
    assert "Case demo-alley-324" in out and "Stored in" not in out
    assert not (tmp_path / "gridflow-demo.db").exists()
    code, _, err = run(capsys, "history", "x", "--db", str(tmp_path / "y.db"))
    assert code == EXIT_USAGE  # no such file: said before SQLAlchemy is needed
    (tmp_path / "y.db").touch()
    code, _, err = run(capsys, "history", "x", "--db", str(tmp_path / "y.db"))
    assert code == EXIT_USAGE and "pip install 'gridflow[sql]'" in err


def test_demo_without_the_mediation_workflow_plays_the_alley() -> None:
    from gridflow import _demo

    clock = gridflow.FixedClock(_demo.START)
    engine = gridflow.Engine(clock=clock, entry_points=False)
    assert _demo.play(engine, clock, mediation=False) == [_demo.ALLEY]
    assert engine.get(_demo.ALLEY).state == "archived"


def test_figures_degrade_without_the_metrics_module(
    demo_db: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setitem(sys.modules, "gridflow.metrics", None)
    code, _, err = run(capsys, "report", "--db", str(demo_db))
    assert code == EXIT_USAGE and "gridflow.metrics does not import" in err
    code, out, _ = run(capsys, "demo", "--db", str(tmp_path / "d.db"), "-q")
    assert code == EXIT_OK  # the stories still play; the figures say why they are missing
    assert "Case demo-scald-wang" in out and "gridflow.metrics does not import" in out


# -- validate ---------------------------------------------------------------------------

GOOD = """\
name: ticket
version: 1
initial: open
states:
  - name: open
  - name: done
    terminal: true
transitions:
  - trigger: finish
    source: open
    dest: done
    roles: [coordinator]
"""

BAD = """\
name: ticket
version: 1
initial: open
colour: red
states:
  - name: open
  - name: done
    terminal: true
  - name: orphan
transitions:
  - trigger: finish
    source: open
    dest: nowhere
  - trigger: close
    source: open
    dest: done
    guards: [no_such_guard]
    roles: [wizard]
"""


def test_validate_good_files(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text(GOOD, encoding="utf-8")
    spec = gridflow.WorkflowSpec.load(tmp_path / "t.yaml")
    (tmp_path / "t.json").write_text(json.dumps(spec.to_dict()), encoding="utf-8")
    code, out, _ = run(capsys, "validate", str(tmp_path / "t.yaml"), str(tmp_path / "t.json"))
    assert code == EXIT_OK
    assert out.count("ok: ticket@1 (2 states, 1 transitions)") == 2


def test_validate_prints_every_problem_with_its_location(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD, encoding="utf-8")
    code, out, _ = run(capsys, "validate", str(path))
    assert code == EXIT_PROBLEMS
    # A shape error does not hide the structural checks; registration is still checked.
    assert out.splitlines()[0] == f"{path}: 6 problem(s)"
    assert f"{path}:4:1: spec: extra fields found (colour)" in out
    assert "unknown dest state 'nowhere'" in out
    assert "guard 'no_such_guard' is not registered" in out
    path.write_text(BAD.replace("colour: red\n", ""), encoding="utf-8")
    code, out, _ = run(capsys, "validate", str(path))
    assert code == EXIT_PROBLEMS
    expected = [
        f"{path}:12:5: transitions[0] (finish): unknown dest state 'nowhere'",
        f"{path}:8:5: states[2] (orphan): state 'orphan' is unreachable",
        f"{path}:8:5: states[2] (orphan): non-terminal state 'orphan' has no way out",
        # Not registered: reported although the spec is too broken to build.
        f"{path}:16:14: transitions[1] (close): guard 'no_such_guard' is not registered",
        f"{path}:17:13: transitions[1] (close): role 'wizard' is not registered",
    ]
    assert out.splitlines()[0] == f"{path}: 5 problem(s)"
    for line in expected:
        assert any(row.startswith(line) for row in out.splitlines()), line


def test_validate_json_syntax_and_shape_errors(capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"name": "x",\n "version": 1,, "initial": "a"}', encoding="utf-8")
    code, out, _ = run(capsys, "validate", str(broken))
    assert code == EXIT_PROBLEMS and f"{broken}:2:15: invalid JSON" in out
    shape = tmp_path / "shape.json"
    shape.write_text(json.dumps({"name": "x", "version": "one", "initial": "a",
                                 "states": [{"name": "a", "deadline": "forever"}],
                                 "transitions": []}, indent=1), encoding="utf-8")
    code, out, _ = run(capsys, "validate", str(shape))
    assert code == EXIT_PROBLEMS
    assert "spec.version: expected an integer, got the string 'one'" in out
    assert "spec.states[0].deadline" in out
    assert f"{shape}:3:" in out  # "version" is on line 3 of the indented JSON


def test_validate_never_executes_code(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.yaml"
    evil.write_text(f'name: !!python/object/apply:os.system ["touch {marker}"]\nversion: 1\n',
                    encoding="utf-8")
    code, out, _ = run(capsys, "validate", str(evil))
    assert code == EXIT_PROBLEMS
    assert f"{evil}:1:7: invalid YAML: could not determine a constructor" in out
    assert not marker.exists()


def test_validate_missing_file_and_plugins_switch(capsys: pytest.CaptureFixture[str],
                                                  tmp_path: Path) -> None:
    code, _, err = run(capsys, "validate", str(tmp_path / "nope.yaml"))
    assert code == EXIT_USAGE and "no such file" in err
    (tmp_path / "t.yaml").write_text(GOOD, encoding="utf-8")
    assert run(capsys, "validate", "--no-plugins", str(tmp_path / "t.yaml"))[0] == EXIT_OK


def test_validate_the_example_workflow(capsys: pytest.CaptureFixture[str]) -> None:
    path = Path(__file__).parents[1] / "examples" / "custom_workflow" / "legal_consultation.yaml"
    code, out, _ = run(capsys, "validate", str(path))
    assert code == EXIT_OK, out


# -- diagram ----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["mermaid", "dot"])
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_diagram_of_builtin_workflows(capsys: pytest.CaptureFixture[str], fmt: str,
                                      lang: str) -> None:
    from gridflow.interop.diagram import render
    from gridflow.workflows import GRID_CASE, GRID_CASE_V2, MEDIATION

    # A bare name draws the latest version (grid_case@2); NAME@VERSION an older one.
    for name, spec in (("grid_case", GRID_CASE_V2), ("grid_case@1", GRID_CASE),
                       ("mediation", MEDIATION)):
        code, out, _ = run(capsys, "diagram", name, "--format", fmt, "--lang", lang)
        assert code == EXIT_OK
        assert out == render(spec, fmt, lang)


def test_diagram_of_a_file_and_to_a_file(capsys: pytest.CaptureFixture[str],
                                         tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text(GOOD, encoding="utf-8")
    code, out, _ = run(capsys, "diagram", str(tmp_path / "t.yaml"), "--format", "dot")
    assert code == EXIT_OK and out.startswith('digraph "ticket"')
    target = tmp_path / "grid.mmd"
    code, out, err = run(capsys, "diagram", "grid_case@1", "-o", str(target), "--lang", "zh")
    assert code == EXIT_OK and out == "" and "wrote" in err
    assert "派遣联合处置" in target.read_text(encoding="utf-8")


def test_diagram_bad_input(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "diagram", "no_such_workflow")
    assert code == EXIT_PROBLEMS and "not registered" in err and "grid_case@1" in err
    code, _, err = run(capsys, "diagram", "grid_case@x")
    assert code == EXIT_USAGE and "NAME@VERSION" in err
    code, _, err = run(capsys, "diagram", str(tmp_path / "missing.yaml"))
    assert code == EXIT_USAGE and "no such file" in err
    (tmp_path / "bad.yaml").write_text(BAD, encoding="utf-8")
    code, _, err = run(capsys, "diagram", str(tmp_path / "bad.yaml"))
    assert code == EXIT_PROBLEMS and "gridflow validate" in err


# -- history ----------------------------------------------------------------------------


def test_history_prints_the_timeline_and_verifies(demo_db: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "history", "demo-alley-324", "--db", str(demo_db), "--lang", "zh",
                       *V2)
    assert code == EXIT_OK
    assert "2026-03-02 10:00  新建" in out  # times in China Standard Time
    assert "派遣联合处置" in out and "↻ 联合处置" in out
    assert "签收" in out and "退单" in out and "核查不通过" in out and "满意度：满意" in out
    assert "✓ 历史已验证:25 条事件" in out
    code, out, _ = run(capsys, "history", "demo-alley-324", "--db", str(demo_db),
                       "--tz", "UTC", *V2)
    assert "2026-03-02 02:00  Opened" in out


def test_history_json(demo_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "history", "demo-scald-xie", "--db", f"sqlite:///{demo_db}",
                       "--json")
    assert code == EXIT_OK
    data = json.loads(out)
    assert data["case"]["state"] == "resolved"
    assert [e["seq"] for e in data["events"]] == list(range(1, data["case"]["version"] + 1))
    assert data["events"][1]["dest"] == "three_office"
    assert data["events"][0]["actor"]["roles"] == ["judicial_office"]


def test_history_bad_input(demo_db: Path, capsys: pytest.CaptureFixture[str],
                           monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    code, _, err = run(capsys, "history", "nope", "--db", str(demo_db))
    assert code == EXIT_PROBLEMS and "case 'nope' does not exist" in err
    code, _, err = run(capsys, "history", "x", "--db", str(tmp_path / "none.db"))
    assert code == EXIT_USAGE and "no database file" in err
    assert not (tmp_path / "none.db").exists()  # reading never creates a database
    monkeypatch.delenv(cli.DB_ENV, raising=False)
    code, _, err = run(capsys, "history", "x")
    assert code == EXIT_USAGE and "GRIDFLOW_DB" in err
    monkeypatch.setenv(cli.DB_ENV, str(demo_db))
    assert run(capsys, "history", "demo-scald-wang")[0] == EXIT_OK
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    code, _, err = run(capsys, "history", "x", "--db", str(empty))
    assert code == EXIT_PROBLEMS and "create_schema" in err
    assert "Traceback" not in err


def test_history_detects_tampering(demo_db: Path, capsys: pytest.CaptureFixture[str],
                                   tmp_path: Path) -> None:
    copy = tmp_path / "tampered.db"
    with sqlite3.connect(demo_db) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
    with sqlite3.connect(copy) as conn:  # someone edits the triage after the fact
        conn.execute("UPDATE gridflow_events SET payload = json_set(payload, '$.priority', "
                     "'urgent') WHERE case_id = 'demo-alley-324' AND seq = 2")
    code, out, err = run(capsys, "history", "demo-alley-324", "--db", str(copy))
    assert code == EXIT_PROBLEMS
    assert "VERIFICATION FAILED" in err and "seq 2" in err
    assert "priority=urgent" in out  # the timeline is still shown


# -- report -----------------------------------------------------------------------------


def test_report_by_grid(demo_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "report", "--db", str(demo_db), "--by", "grid")
    assert code == EXIT_OK
    assert "第一综合网格" in out and "第二综合网格" in out
    received = next(line for line in out.splitlines() if line.strip().startswith("Received"))
    assert received.split()[-2:] == ["1", "1"]
    assert "report: computing the figures over 4 case(s)" in err  # progress on stderr


def test_report_period_and_json(demo_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "report", "--db", str(demo_db), "--since", "2026-03-01",
                       "--until", "2026-03-31", "--json", "-q")
    assert code == EXIT_OK
    data = json.loads(out)
    assert data["by"] is None and data["until"] == "2026-03-31T16:00:00+00:00"
    (row,) = data["rows"]
    assert row["received"] == 1  # only the alley was opened in March
    code, out, _ = run(capsys, "report", "--db", str(demo_db), "--since", "2026-01-01",
                       "--until", "2026-01-31", "--lang", "zh", "-q")
    assert code == EXIT_OK and "没有案件" in out


def test_report_by_department(demo_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A scorecard per department: the closed-loop figures of grid_case@2 only."""
    code, out, _ = run(capsys, "report", "--db", str(demo_db), "--by", "department", "-q", *V2)
    assert code == EXIT_OK
    lines = out.splitlines()
    assert lines[2].split() == ["城运中心", "清运单位", "社区管理办", "综合执法队", "绿化市容所"]
    rate = next(line for line in lines if "按时签收率" in line)
    assert rate.split()[-5:] == ["100.0%", "0.0%", "100.0%", "100.0%", "-"]
    urged = next(line for line in lines if "督办数" in line)
    assert urged.split()[-5:] == ["0", "1", "0", "0", "0"]
    assert "Received" not in out and "mediation" not in out  # not split by department
    code, out, _ = run(capsys, "report", "--db", str(demo_db), "--by", "department", "--json",
                       "-q")
    rows = {r["group"]: r for r in json.loads(out)["rows"]}
    assert rows["绿化市容所"]["returned"] == 1 and rows["清运单位"]["acknowledged_on_time"] == 0


def test_report_bad_dates(demo_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "report", "--db", str(demo_db), "--since", "March")
    assert code == EXIT_USAGE and "not a date" in err
    code, _, err = run(capsys, "report", "--db", str(demo_db), "--since", "2026-03-02",
                       "--until", "2026-03-01")
    assert code == EXIT_USAGE and "before --since" in err


# -- tick -------------------------------------------------------------------------------


@pytest.fixture
def overdue_db(tmp_path: Path) -> Path:
    """Three grid cases: one past its joint-action deadline, one reported and
    left, one on time."""
    path = tmp_path / "tick.db"
    store = gridflow.SQLStore(f"sqlite:///{path}")
    store.create_schema()
    clock = gridflow.FixedClock(datetime(2026, 3, 2, 1, tzinfo=UTC))
    engine = gridflow.Engine(store, clock=clock, entry_points=False)
    worker = gridflow.Actor("w", ["grid_worker"], [GRID])
    secretary = gridflow.Actor("s", ["coordinator"], [GRID])
    late = engine.open("grid_case", version=1, case_id="late", actor=worker, grid=GRID,
                       data={"title": "堆物", "source": "visit"})
    engine.fire(late.id, "triage", actor=secretary,
                payload={"category": "违规堆物", "priority": "normal"})
    engine.fire(late.id, "dispatch", actor=secretary,
                payload={"departments": ["清运单位"], "plan": "清运"})
    engine.open("grid_case", version=1, case_id="left", actor=worker, grid=GRID,
                data={"title": "地锁", "source": "visit"})
    clock.advance(timedelta(days=6))
    engine.open("grid_case", version=1, case_id="fresh", actor=worker, grid=GRID,
                data={"title": "新问题", "source": "visit"})
    store.close()
    return path


def test_tick_acts_on_every_overdue_case_once(overdue_db: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    now = "2026-03-08T10:00:00+08:00"
    code, out, err = run(capsys, "tick", "--db", str(overdue_db), "--now", now, "--dry-run")
    assert code == EXIT_OK and "nothing changed" in err
    assert "late" in out and "Escalate" in out and "left" in out and "fresh" not in out
    code, out, err = run(capsys, "tick", "--db", str(overdue_db), "--now", now)
    assert code == EXIT_OK, err
    assert "late  Escalate  Joint action → Escalated to street level" in out
    assert "left  Overdue  ↻ Reported" in out
    assert "tick: 2 step(s) recorded" in err
    code, out, err = run(capsys, "tick", "--db", str(overdue_db), "--now", now)
    assert code == EXIT_OK and out == "" and "tick: 0 step(s) recorded" in err
    code, out, _ = run(capsys, "history", "late", "--db", str(overdue_db))
    assert "system (System (timer))" in out and "✓ history verified" in out


def test_tick_quiet_and_zh(overdue_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "tick", "--db", str(overdue_db), "--now", "2026-03-08",
                         "--lang", "zh", "-q", "--calendar", "weekdays")
    assert code == EXIT_OK and err == ""
    assert "late  上报街道  联合处置 → 上报街道" in out


# -- PostgreSQL -------------------------------------------------------------------------


@pytest.mark.postgres
def test_demo_history_report_on_postgres(pg_url: str, pg_schema: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(pg_url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{pg_schema}"'))
    engine.dispose()
    sep = "&" if "?" in pg_url else "?"
    url = f"{pg_url}{sep}options=-csearch_path%3D{pg_schema}"  # this test's own schema
    assert run(capsys, "demo", "--db", url, "-q")[0] == EXIT_OK
    code, out, _ = run(capsys, "history", "demo-scald-fix", "--db", url, *V2)
    assert code == EXIT_OK and "✓ history verified: 9 events" in out
    code, out, _ = run(capsys, "report", "--db", url, "--by", "grid", "--json", "-q")
    assert code == EXIT_OK
    assert {r["group"] for r in json.loads(out)["rows"]} == {"第一综合网格", "第二综合网格"}
    assert run(capsys, "tick", "--db", url, "--now", "2026-06-01", "-q")[0] == EXIT_OK


def test_cli_module_imports_no_optional_dependency() -> None:
    code = ("import sys, gridflow.cli; bad = [m for m in ('yaml', 'sqlalchemy', 'fastapi') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False, env={**os.environ, "PYTHONWARNINGS": ""})
    assert done.returncode == 0, done.stdout + done.stderr


def test_hostile_files_and_dates_are_errors_not_crashes(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # Each was "unexpected error": RecursionError from json (a --data file, a bundle),
    # OverflowError from the last day of year 9999 (or year 1 moved to UTC).
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    db = f"sqlite:///{tmp_path / 'x.db'}"
    for argv, said in [
        (["open", "grid_case", "--actor", "w", "--roles", "grid_worker", "--grids", "g",
          "--db", db, "--data", f"@{deep}"], "is nested too deeply to be read"),
        (["verify-bundle", "--key", "x+01234567+AAAA", str(deep)], "is nested too deeply"),
        (["report", "--db", db, "--since", "2026-01-01", "--until", "9999-12-31"],
         "'9999-12-31' is at the edge of the calendar"),
        (["report", "--db", db, "--since", "0001-01-01", "--until", "0001-01-02"],
         "'0001-01-01' is at the edge of the calendar"),
    ]:
        if argv[0] == "report":
            gridflow.SQLStore(db).create_schema()
        code, _, err = run(capsys, *argv, *(["--no-project"] if argv[0] != "verify-bundle"
                                          else []))
        assert code != EXIT_OK and "unexpected error" not in err, err
        assert said in err, err
