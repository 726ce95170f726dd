"""``make demo`` installs only what the demo needs; ``make test`` the rest (issue 16,
point 8). Read from ``make -n`` (what make would run), so nothing is installed."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def planned(target: str, venv: Path) -> list[str]:
    done = subprocess.run(["make", "-n", target, f"VENV={venv}"], cwd=ROOT, text=True,
                          capture_output=True, timeout=60, check=True)
    return done.stdout.splitlines()


def installs(lines: list[str]) -> list[str]:
    """What each ``pip install`` line installs (its last arguments)."""
    return [line.split(" install ", 1)[1] for line in lines if " -m pip install " in line]


def test_make_demo_installs_the_demo_only(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    lines = planned("demo", venv)
    assert installs(lines) == [f"--quiet --disable-pip-version-check -r "
                               f"{venv}/demo-requirements.txt"]
    # The requirements are written by the recipe's first command: run it (with this
    # interpreter as the venv's) and read what it asks for.
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    recipe = "\n".join(lines)
    write = recipe[recipe.index(f"{venv}/bin/python -c \"import tomllib"):]
    write = write[:write.index("demo-requirements.txt") + len("demo-requirements.txt")]
    subprocess.run(["bash", "-c", write], cwd=ROOT, check=True, timeout=60)
    wanted = (venv / "demo-requirements.txt").read_text(encoding="utf-8").split()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    # The sql extra for its database; the pii extra because its reporters' names
    # and phones are sealed; the china extra for grid_case@2's working hours.
    assert wanted == [*project["dependencies"], *extras["sql"], *extras["pii"], *extras["china"]]
    assert not {"mypy", "mkdocs", "pytest", "ruff"} & {re.split(r"[<>=\[]", w)[0]
                                                      for w in wanted}
    assert any(line.rstrip().endswith("/bin/python -m gridflow demo") for line in lines)


def test_make_test_installs_the_toolchain(tmp_path: Path) -> None:
    wanted = " ".join(installs(planned("test", tmp_path / "venv")))
    assert re.search(r'-e "\.\[dev,docs,cli\]"', wanted)
    assert "examples/plugin_package" in wanted


def test_after_the_full_install_make_demo_installs_nothing(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").touch()
    (venv / ".installed").touch()
    (venv / ".demo-installed").touch()  # the full install marks the demo's needs met
    assert installs(planned("demo", venv)) == []


def test_ci_runs_the_new_user_script() -> None:
    # The "new user" check lives in tests/new_user.sh and runs in CI on the built wheel.
    script = ROOT / "tests" / "new_user.sh"
    assert script.stat().st_mode & 0o111, "tests/new_user.sh must be executable"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "tests/new_user.sh dist/gridflow-*.whl" in ci
    assert "make demo VENV=" in ci  # make demo from nothing, on its own venv
