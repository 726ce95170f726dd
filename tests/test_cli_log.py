"""The signed-log commands: keygen, checkpoint, verify --all, prove, verify-bundle."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from gridflow.cli import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, main

OPEN = ["open", "grid_case", "--actor", "r", "--roles", "resident", "--grids", "g",
        "--data", '{"title": "楼道堆物", "source": "resident"}', "--no-project"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GRIDFLOW_DB", f"sqlite:///{tmp_path / 'log.db'}")
    return tmp_path


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("keygen", "checkpoint", "verify", "prove", "verify-bundle"):
        code, out, _ = run(capsys, name, "--help")
        assert code == EXIT_OK and out.startswith(f"usage: gridflow {name}"), name


def test_the_whole_round(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "keygen", "example.org/street-grid")
    assert code == EXIT_OK and "wrote example.org_street-grid.key" in err
    key, pub = project / "example.org_street-grid.key", project / "example.org_street-grid.pub"
    assert out.strip() == pub.read_text().strip()
    assert key.stat().st_mode & 0o077 == 0
    code, _, err = run(capsys, "keygen", "example.org/street-grid")
    assert code == EXIT_PROBLEMS and "exists" in err

    assert run(capsys, *OPEN, "--id", "c-1")[0] == EXIT_OK
    code, out, _ = run(capsys, "checkpoint", "--key", str(key), "-o", "week1.txt",
                       "--no-project")
    assert code == EXIT_OK and out.splitlines()[:2] == ["example.org/street-grid", "1"]
    assert (project / "week1.txt").read_text() == out
    assert run(capsys, *OPEN, "--id", "c-2")[0] == EXIT_OK
    assert run(capsys, "checkpoint", "--key", str(key), "--no-project")[0] == EXIT_OK

    code, out, _ = run(capsys, "verify", "--all", "--from", "week1.txt", "--key", str(pub),
                       "--no-project")
    assert code == EXIT_OK and "log verified (from the trusted checkpoint): 2 events" in out
    code, out, _ = run(capsys, "verify", "--all", "--from", "week1.txt", "--full",
                       "--key", pub.read_text().strip(), "--save", "week2.txt",
                       "--no-project")
    assert code == EXIT_OK and "every event" in out
    assert (project / "week2.txt").read_text().splitlines()[1] == "2"

    code, out, _ = run(capsys, "prove", "c-2", "--no-project")
    assert code == EXIT_OK
    (project / "bundle.json").write_text(out, encoding="utf-8")
    assert json.loads(out)["case_id"] == "c-2"
    code, out, _ = run(capsys, "verify-bundle", "bundle.json", "--key", str(pub))
    assert code == EXIT_OK and "1 events of case c-2 are in the log" in out

    edited = json.loads((project / "bundle.json").read_text())
    edited["events"][0]["payload"]["title"] = "已办结"
    (project / "edited.json").write_text(json.dumps(edited), encoding="utf-8")
    code, _, err = run(capsys, "verify-bundle", "edited.json", "--key", str(pub))
    assert code == EXIT_PROBLEMS and "VERIFICATION FAILED" in err and "field 'hash'" in err

    # Tampering: delete a case behind gridflow's back.
    url = f"sqlite:///{project / 'log.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM gridflow_events WHERE case_id = 'c-1'"))
        conn.execute(sa.text("DELETE FROM gridflow_cases WHERE id = 'c-1'"))
    engine.dispose()
    code, _, err = run(capsys, "verify", "--all", "--from", "week1.txt", "--full",
                       "--key", str(pub), "--no-project")
    assert code == EXIT_PROBLEMS
    assert "VERIFICATION FAILED" in err and "'c-1'" in err and "deleted" in err
    assert "Traceback" not in err


def test_usage_and_key_errors(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "keygen", "k", "--out", "k")[0] == EXIT_OK
    assert run(capsys, *OPEN)[0] == EXIT_OK
    code, _, err = run(capsys, "verify", "--key", "k.pub", "--no-project")
    assert code == EXIT_USAGE and "say --all" in err
    code, _, err = run(capsys, "checkpoint", "--key", "k.pub", "--no-project")
    assert code == EXIT_PROBLEMS and "not a signer key" in err
    code, _, err = run(capsys, "checkpoint", "--key", "missing.key", "--no-project")
    assert code == EXIT_USAGE and "no such file" in err
    code, _, err = run(capsys, "verify", "--all", "--key", "k.pub", "--no-project")
    assert code == EXIT_PROBLEMS and "no checkpoint yet" in err
    assert run(capsys, "checkpoint", "--key", "k.key", "--no-project")[0] == EXIT_OK
    assert run(capsys, "keygen", "other", "--out", "other")[0] == EXIT_OK
    code, _, err = run(capsys, "verify", "--all", "--key", "other.pub", "--no-project")
    assert code == EXIT_PROBLEMS and "VERIFICATION FAILED" in err
    code, _, err = run(capsys, "verify", "--all", "--from", "nope.txt", "--key", "k.pub",
                       "--no-project")
    assert code == EXIT_USAGE and "cannot read checkpoint file" in err
    (project / "bad.json").write_text("{", encoding="utf-8")
    code, _, err = run(capsys, "verify-bundle", "bad.json", "--key", "k.pub")
    assert code == EXIT_USAGE and "not JSON" in err
    code, _, err = run(capsys, "prove", "nope", "--no-project")
    assert code == EXIT_PROBLEMS and "nope" in err
