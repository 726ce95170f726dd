"""The docs site: every hook and public name is documented, the code on the pages runs,
and ``mkdocs build --strict`` produces pages whose diagrams are the current specs'."""

from __future__ import annotations

import html
import importlib
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import gridflow
from gridflow.plugins import PROJECT, HookSpecs

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
HOOK_FILE = DOCS / "hooks" / "gridflow_docs.py"

#: Modules outside ``gridflow.__all__`` that the API reference must cover.
API_MODULES = ("gridflow.metrics", "gridflow.interop.open311", "gridflow.testing")
#: Pages whose ``python`` code blocks run in order, as a reader would paste them.
RUNNABLE_PAGES = ("getting-started.md", "concepts.md", "plugins.md")

_FENCE = re.compile(
    r"(?P<skip><!-- docs-test: skip[^>]*-->\n)?^```python\n(?P<code>.*?)^```", re.S | re.M
)
_MERMAID = re.compile(r'<pre class="mermaid"><code>(.*?)</code></pre>', re.S)

has_mkdocs = all(
    importlib.util.find_spec(name) is not None
    for name in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")
)
needs_mkdocs = pytest.mark.skipif(
    not has_mkdocs, reason="mkdocs, mkdocs-material or mkdocstrings[python] is not installed: "
    "pip install -e '.[docs]'"
)


def _sources() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(DOCS.rglob("*.md")))


def _hooks() -> list[str]:
    return [name for name, fn in vars(HookSpecs).items()
            if callable(fn) and hasattr(fn, f"{PROJECT}_spec")]


def _load_module(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load_hook_module() -> ModuleType:
    return _load_module(HOOK_FILE, "gridflow_docs_hook")


def _has_diagram_module() -> bool:
    try:
        importlib.import_module("gridflow.interop.diagram")
    except ImportError:
        return False
    return True


# -- coverage of the sources -----------------------------------------------------------


@pytest.mark.parametrize("hook", _hooks())
def test_every_hook_has_a_section_with_an_example(hook: str) -> None:
    page = (DOCS / "plugins.md").read_text(encoding="utf-8")
    heading = re.search(rf"^### `{hook}`.*$", page, re.M)
    assert heading, f"docs/plugins.md has no '### `{hook}`' section"
    following = page[heading.end():]
    nxt = re.search(r"^#{2,3} ", following, re.M)
    section = following[: nxt.start() if nxt else None]
    examples = [m["code"] for m in _FENCE.finditer(section)]
    assert any(f"def {hook}(" in code for code in examples), (
        f"the {hook} section of docs/plugins.md has no python example implementing it")


@pytest.mark.parametrize("name", sorted(gridflow.__all__))
def test_every_public_name_is_in_the_docs(name: str) -> None:
    assert re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", _sources()), (
        f"gridflow.{name} is public (gridflow.__all__) but no docs page mentions it")


@pytest.mark.parametrize("name", sorted(n for n in gridflow.__all__ if not n.startswith("_")))
def test_every_public_name_is_in_the_api_reference(name: str) -> None:
    api = "\n".join(p.read_text(encoding="utf-8") for p in sorted((DOCS / "api").glob("*.md")))
    assert re.search(rf"^::: gridflow(\.[\w.]+)?\.{re.escape(name)}$", api, re.M), (
        f"gridflow.{name} has no '::: ...{name}' entry in docs/api/*.md")


@pytest.mark.parametrize("module", API_MODULES)
def test_api_modules_have_a_reference_page(module: str) -> None:
    try:
        importlib.import_module(module)
    except ImportError as exc:
        pytest.skip(f"{module} does not exist yet ({exc})")
    api = "\n".join(p.read_text(encoding="utf-8") for p in sorted((DOCS / "api").glob("*.md")))
    assert re.search(rf"^::: {re.escape(module)}$", api, re.M), (
        f"{module} has no '::: {module}' page in docs/api/")


# -- the code on the pages runs -----------------------------------------------------------


@pytest.mark.parametrize("page", RUNNABLE_PAGES)
def test_code_blocks_run(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)  # a block that writes files writes them here
    namespace: dict[str, Any] = {"__name__": f"docs.{page}"}
    blocks = [m for m in _FENCE.finditer((DOCS / page).read_text(encoding="utf-8"))]
    assert blocks, f"docs/{page} has no python block"
    for match in blocks:
        if match["skip"]:
            continue
        line = (DOCS / page).read_text(encoding="utf-8")[: match.start("code")].count("\n") + 1
        code = "\n" * (line - 1) + match["code"]  # tracebacks point at the page's lines
        exec(compile(code, str(DOCS / page), "exec"), namespace)


# -- the build hook ------------------------------------------------------------------------


def test_hook_rejects_unknown_markers_and_workflows() -> None:
    from mkdocs.exceptions import PluginError

    hook = _load_hook_module()
    with pytest.raises(PluginError, match="unknown marker"):
        hook.expand("<!-- gridflow:nonsense grid_case -->")
    with pytest.raises(PluginError, match="no_such_flow"):
        hook.expand("<!-- gridflow:states no_such_flow -->")


def test_hook_tables_cover_every_state_and_trigger() -> None:
    hook = _load_hook_module()
    for spec in gridflow.Engine(entry_points=False).workflows:
        states = hook.expand(f"<!-- gridflow:states {spec.key} -->")
        triggers = hook.expand(f"<!-- gridflow:triggers {spec.key} -->")
        for state in spec.states:
            assert f"`{state.name}`" in states and state.label_zh in states
            assert state.label_en in states
        for tr in spec.transitions:
            assert f"`{tr.trigger}`" in triggers and tr.label_zh in triggers
            for role in tr.roles:
                assert f"`{role}`" in triggers
            for field in tr.requires:
                assert f"`{field}`" in triggers


def test_hook_documents_every_hook() -> None:
    table = _load_hook_module().expand("<!-- gridflow:hooks -->")
    for hook in _hooks():
        assert f"[`{hook}(" in table


def test_griffe_extension_reads_rst_tables_and_example_sections() -> None:
    ext = _load_module(DOCS / "hooks" / "griffe_gridflow.py", "gridflow_docs_griffe")
    text = """Figures:

    ========== =====
    figure     rule
    ========== =====
    立案率 rate a / b
    long_name
    other      c
    ========== =====
    """
    lines = ext.rst_tables_to_markdown(text).splitlines()
    assert lines[2:6] == ["    | figure | rule |", "    |---|---|",
                          "    | 立案率 rate long_name | a / b |", "    | other | c |"]
    assert ext._EXAMPLE.sub(r"\1Examples:", "x\n\nExample:\n    >>> 1\n") == (
        "x\n\nExamples:\n    >>> 1\n")


# -- the site ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not has_mkdocs:
        pytest.skip("mkdocs, mkdocs-material or mkdocstrings[python] is not installed: "
                    "pip install -e '.[docs]'")
    if not _has_diagram_module():
        pytest.skip("gridflow.interop.diagram does not exist yet: the diagrams cannot be drawn")
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    return out


def _mermaid_blocks(page: Path) -> list[str]:
    return [html.unescape(code).strip() for code in _MERMAID.findall(page.read_text("utf-8"))]


@pytest.mark.docs
@needs_mkdocs
def test_mkdocs_build_strict(site: Path) -> None:
    for page in ("index.html", "grid-case/index.html", "api/engine/index.html",
                 "changelog/index.html"):
        assert (site / page).is_file(), page
    # The diagrams render from the vendored mermaid, never a CDN.
    assert (site / "assets/javascripts/mermaid.min.js").stat().st_size > 1_000_000
    assert "assets/javascripts/mermaid.min.js" in (site / "index.html").read_text("utf-8")
    assert not (site / "hooks").exists(), "the build hooks must not be published"


@pytest.mark.docs
@needs_mkdocs
def test_built_workflow_pages_show_the_current_specs(site: Path) -> None:
    from gridflow.interop.diagram import mermaid

    hook = _load_hook_module()
    engine = gridflow.Engine(entry_points=False)
    for src, name in hook.WORKFLOW_PAGES.items():
        if name not in {s.name for s in engine.workflows}:
            continue  # the workflow has not landed yet; nothing to draw
        spec = engine.workflow(name)
        page = site / src.removesuffix(".md") / "index.html"
        blocks = _mermaid_blocks(page)
        for lang in ("en", "zh"):
            assert mermaid(spec, lang).strip() in blocks, (
                f"{page} does not hold the {lang} diagram of {spec.key}")
        text = html.unescape(page.read_text("utf-8"))
        for tr in spec.transitions:
            assert tr.label_en in text and tr.label_zh in text


@pytest.mark.docs
@needs_mkdocs
def test_built_plugin_page_lists_every_hook(site: Path) -> None:
    text = (site / "plugins" / "index.html").read_text("utf-8")
    for hook in _hooks():
        assert f'id="{hook}"' in text, f"no anchor for {hook} on the plugins page"


@pytest.mark.docs
@needs_mkdocs
def test_diagrams_render_offline_in_chromium(site: Path) -> None:
    checker = _load_module(DOCS / "hooks" / "check_offline.py", "gridflow_docs_check_offline")
    if checker.find_chromium() is None:
        reason = "no Chromium on PATH (apt-get install chromium) to render the pages"
        if os.environ.get("GRIDFLOW_REQUIRE_CHROMIUM") == "1":
            pytest.fail(reason + "; CI sets GRIDFLOW_REQUIRE_CHROMIUM=1 and installs it")
        pytest.skip(reason)
    pages, problems = checker.check_site(site)
    assert pages >= 2 and not problems, "\n".join(problems)
