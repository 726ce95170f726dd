"""Plugins found through the ``gridflow`` entry-point group, by the real discovery code.

The test plugin is a distribution of its own in ``tests/plugins/gridflow_testplugin``
(``[project.entry-points.gridflow] testplugin = "gridflow_testplugin"``). The
tests do not install it into the venv and do not mock pluggy or importlib:
they put what an installer would leave on ``sys.path`` — a ``.dist-info``
directory whose ``entry_points.txt`` is written from the distribution's own
``pyproject.toml``, and the package's source directory — and let
``importlib.metadata`` find it and pluggy's ``load_setuptools_entrypoints`` load it.
When the distribution really is installed (``pip install -e
tests/plugins/gridflow_testplugin``), `test_installed_distribution_is_discovered`
checks that too.
"""

from __future__ import annotations

import importlib.metadata
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gridflow import (
    Actor,
    Engine,
    FixedClock,
    GuardRejected,
    MemoryStore,
    UnknownWorkflow,
)
from gridflow.plugins import ENTRY_POINT_GROUP

DIST_DIR = Path(__file__).parent / "plugins" / "gridflow_testplugin"
GRID = "第一综合网格"
T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
resident = Actor("居民-陈", ["resident"], [GRID])
manager = Actor("物业-孙", ["property_manager"], [GRID])
mediator = Actor("调解员-吴", ["mediator"], [GRID])
secretary = Actor("书记-李", ["coordinator"], [GRID])


def _pyproject() -> dict[str, Any]:
    with (DIST_DIR / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


@pytest.fixture
def discoverable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Make the test distribution discoverable exactly as an installer would."""
    project = _pyproject()["project"]
    name, version = project["name"], project["version"]
    dist_info = tmp_path / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8")
    lines = []
    for group, entries in project["entry-points"].items():
        lines.append(f"[{group}]")
        lines += [f"{ep_name} = {target}" for ep_name, target in entries.items()]
    (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(DIST_DIR / "src"))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield dist_info


def _engine(**kw: Any) -> Engine:
    return Engine(store=MemoryStore(), clock=FixedClock(T0), **kw)


def test_the_distribution_declares_the_entry_point() -> None:
    project = _pyproject()["project"]
    assert project["entry-points"][ENTRY_POINT_GROUP] == {"testplugin": "gridflow_testplugin"}
    assert "gridflow" in project["dependencies"]


def test_importlib_metadata_finds_the_entry_point(discoverable: Path) -> None:
    found = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP, name="testplugin")
    assert [ep.value for ep in found] == ["gridflow_testplugin"]
    (ep,) = list(found)[:1]
    assert ep.dist is not None and ep.dist.metadata["Name"] == "gridflow-testplugin"


def test_entry_point_plugin_adds_a_workflow(discoverable: Path) -> None:
    import gridflow_testplugin

    engine = _engine()  # entry_points=True is the default
    assert engine.plugins.get_plugin("testplugin") is gridflow_testplugin
    dists = {d.project_name for _, d in engine.plugins.list_plugin_distinfo()}
    assert "gridflow-testplugin" in dists
    assert engine.roles["property_manager"] == ("物业", "Property manager")

    case = engine.open("noise_complaint", actor=resident, grid=GRID,
                       data={"address": "长宁支路324弄5号"})
    assert case.state == "reported"
    with pytest.raises(GuardRejected, match="positive number measured on site") as info:
        engine.fire(case.id, "measure", actor=manager, payload={"decibels": "loud"})
    assert info.value.guard == "testplugin.measured"
    case = engine.fire(case.id, "measure", actor=manager, payload={"decibels": 68})
    case = engine.fire(case.id, "resolve", actor=mediator,
                       payload={"agreement": "晚十点后停止装修"})
    assert case.state == "resolved"
    engine.verify(case.id)


def test_entry_point_plugin_vetoes_steps_on_builtin_workflows(discoverable: Path) -> None:
    engine = _engine()
    held = engine.open("grid_case", version=1, actor=resident, grid=GRID,
                       data={"title": "小巷堆物", "source": "resident", "audit_hold": "区审计抽查"})
    free = engine.open("grid_case", version=1, actor=resident, grid=GRID,
                       data={"title": "小巷地锁", "source": "resident"})
    triage = {"category": "违规堆物", "priority": "normal"}
    with pytest.raises(GuardRejected) as info:
        engine.fire(held.id, "triage", actor=secretary, payload=triage)
    assert info.value.guard == "testplugin.gridflow_veto"
    assert "审计冻结: 区审计抽查" in info.value.reason
    assert engine.get(held.id) == held
    assert len(engine.history(held.id)) == 1
    # Notes still go through; other cases are not affected.
    assert engine.fire(held.id, "note", actor=secretary, payload={"text": "等待审计"}).version == 2
    assert engine.fire(free.id, "triage", actor=secretary, payload=triage).state == "triaged"


def test_entry_points_false_ignores_the_group(discoverable: Path) -> None:
    engine = _engine(entry_points=False)
    assert not engine.plugins.has_plugin("testplugin")
    with pytest.raises(UnknownWorkflow):
        engine.workflow("noise_complaint")


def test_plugin_passed_explicitly_and_also_installed_is_registered_once(
    discoverable: Path,
) -> None:
    import gridflow_testplugin

    engine = _engine(plugins=[gridflow_testplugin])
    registered = [p for p in engine.plugins.get_plugins() if p is gridflow_testplugin]
    assert registered == [gridflow_testplugin]
    assert engine.workflow("noise_complaint").version == 1


def test_blocked_entry_point_is_not_loaded(discoverable: Path) -> None:
    # A host can refuse an installed plugin by name, the pluggy way.
    engine = _engine(entry_points=False)
    engine.plugins.set_blocked("testplugin")
    engine.plugins.load_setuptools_entrypoints(ENTRY_POINT_GROUP)  # other plugins may load
    assert engine.plugins.get_plugin("testplugin") is None
    assert engine.plugins.is_blocked("testplugin")


def test_installed_distribution_is_discovered() -> None:
    try:
        dist = importlib.metadata.distribution("gridflow-testplugin")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("gridflow-testplugin is not installed in this environment "
                    "(pip install -e tests/plugins/gridflow_testplugin); the tests above "
                    "cover discovery from the source tree")
    assert any(ep.group == ENTRY_POINT_GROUP and ep.name == "testplugin"
               for ep in dist.entry_points)
    engine = _engine()
    assert engine.plugins.has_plugin("testplugin")
    assert engine.workflow("noise_complaint").label("en") == "Noise complaint"
