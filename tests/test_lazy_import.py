"""`import gridflow` loads only what an engine's first step needs; every other
public name loads on first use (PEP 562) and is then the very object its home
module defines, exactly as when everything was imported eagerly."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import pytest

import gridflow
import gridflow.personal

#: Modules a bare ``import gridflow`` must not load (optional dependencies, and
#: gridflow's own layers that only an engine, a spec or a store of that kind needs).
NOT_AT_IMPORT = (
    "sqlalchemy", "cryptography", "yaml", "opentelemetry",
    "gridflow.store.sql", "gridflow.store.async_sql", "gridflow.async_engine",
    "gridflow.metrics", "gridflow.interop", "gridflow.cli", "gridflow.worker",
    "gridflow.migrate", "gridflow.spec_diff", "gridflow.log",
    "gridflow._sealing", "gridflow.spec", "gridflow.workflows", "gridflow.personal",
    # Loaded by the first engine (compiling its workflows, counting its deadlines),
    # spec or store: the state-machine library and the converter with them.
    "gridflow.machine", "gridflow.calendar", "gridflow.convert", "gridflow._speccheck",
    "gridflow.store.memory", "transitions", "cattrs",
)


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False, env={**os.environ, "PYTHONWARNINGS": ""})
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip()


def test_import_loads_no_optional_or_upper_layer() -> None:
    code = ("import sys, gridflow; print(sorted(m for m in sys.modules if any("
            f"m == n or m.startswith(n + '.') for n in {NOT_AT_IMPORT!r})))")
    assert _run(code) == "[]"


def test_an_engine_loads_what_it_needs_and_works() -> None:
    code = ("import sys, gridflow; e = gridflow.Engine(clock=gridflow.FixedClock(), "
            "entry_points=False); w = gridflow.Actor('w-1', ['grid_worker'], ['g-1']); "
            "c = e.open('grid_case', actor=w, grid='g-1', version=1, "
            "data={'title': 't', 'source': 'visit'}); "
            "print(e.get(c.id).state, 'gridflow._sealing' in sys.modules, "
            "'gridflow.workflows' in sys.modules)")
    assert _run(code) == "reported True True"


def test_every_public_name_resolves_in_a_fresh_process() -> None:
    # One process per check would be slow; each name is looked up first thing
    # after the import, in a fresh interpreter, through `from gridflow import`.
    code = ("import gridflow\n"
            "for name in gridflow.__all__:\n"
            "    exec(f'from gridflow import {name}')\n"
            "from gridflow import *\n"
            "print(len(gridflow.__all__))")
    assert _run(code) == str(len(gridflow.__all__))


@pytest.mark.parametrize("name", sorted(gridflow.__all__))
def test_public_name_is_its_home_modules_object(name: str) -> None:
    value = getattr(gridflow, name)
    assert name in dir(gridflow)
    home = getattr(value, "__module__", None)
    if isinstance(home, str) and home.startswith("gridflow.") and hasattr(value, "__name__"):
        assert getattr(importlib.import_module(home), value.__name__) is value


@pytest.mark.parametrize("name", sorted(gridflow.personal.__all__))
def test_personal_name_resolves_to_its_submodules_object(name: str) -> None:
    value = getattr(gridflow.personal, name)
    assert name in dir(gridflow.personal)
    module = importlib.import_module(gridflow.personal._HOME[name])
    assert getattr(module, name) is value


def test_personal_seal_stays_the_function_once_its_module_loads() -> None:
    # The submodule `gridflow.personal.seal` shares its name with the function.
    code = ("import gridflow.personal.seal, gridflow.personal as p; "
            "from gridflow.personal import seal; "
            "print(callable(seal), seal is p.seal, type(p.seal).__name__)")
    assert _run(code) == "True True function"


def test_lazy_module_attributes_are_built_once() -> None:
    import gridflow.convert
    import gridflow.fold
    from gridflow.spec import WorkflowSpec

    assert gridflow.convert.converter is gridflow.convert.converter
    assert WorkflowSpec in gridflow.fold.SpecSource.__args__
    with pytest.raises(AttributeError):
        gridflow.convert.nothing  # noqa: B018
    with pytest.raises(AttributeError):
        gridflow.personal.nothing  # noqa: B018
