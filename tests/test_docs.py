"""The docs site: every hook and public name is documented, the code on the pages runs,
every page exists in English and Chinese, and ``mkdocs build --strict`` produces pages
whose diagrams are the current specs', in the page's language, that work from disk
(``file://``: links, search, diagrams) as well as served, in headless Chromium."""

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

#: The languages of the site: ``page.md`` is English, ``page.<lang>.md`` its translation.
LANGS = ("en", "zh")
#: Files under docs/ that are not pages of the site (see ``exclude_docs`` in mkdocs.yml).
NOT_PAGES = ("CONTRIBUTING-docs.md",)

#: Modules outside ``gridflow.__all__`` that the API reference must cover.
API_MODULES = ("gridflow.metrics", "gridflow.interop.open311", "gridflow.testing")
#: Pages whose ``python`` code blocks run in order, as a reader would paste them.
RUNNABLE_PAGES = ("getting-started.md", "concepts.md", "plugins.md")

_FENCE = re.compile(
    r"(?P<skip><!-- docs-test: skip[^>]*-->\n)?^```python\n(?P<code>.*?)^```", re.S | re.M
)
_MERMAID = re.compile(r'<pre class="gridflow-mermaid"><code>(.*?)</code></pre>', re.S)
_MARKER = re.compile(r"^[ \t]*<!--\s*gridflow:[^>]*-->[ \t]*$", re.M)
_DIRECTIVE = re.compile(r"^(?::::|--8<--) .*$", re.M)
_HAN = re.compile(r"[\u4e00-\u9fff]")

DOCS_MODULES = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python",
                "mkdocs_static_i18n", "jieba")
has_mkdocs = all(importlib.util.find_spec(name) is not None for name in DOCS_MODULES)
needs_mkdocs = pytest.mark.skipif(
    not has_mkdocs, reason="mkdocs, mkdocs-material, mkdocstrings[python], "
    "mkdocs-static-i18n or jieba is not installed: pip install -e '.[docs]'"
)


def _is_translation(path: Path) -> bool:
    return any(path.name.endswith(f".{lang}.md") for lang in LANGS[1:])


def _sources(lang: str = "en") -> str:
    """The text of every page of ``lang`` (hooks and the contributors' note left out)."""
    return "\n".join(
        p.read_text(encoding="utf-8") for p in sorted(DOCS.rglob("*.md"))
        if "hooks" not in p.relative_to(DOCS).parts and p.name not in NOT_PAGES
        and _is_translation(p) == (lang != LANGS[0]))


def _pages() -> list[str]:
    """Every English page of the site, relative to docs/ (``api/engine.md``)."""
    return sorted(
        p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")
        if "hooks" not in p.relative_to(DOCS).parts and p.name not in NOT_PAGES
        and not _is_translation(p)
    )


def _twin(page: str, lang: str) -> str:
    """``grid-case.md`` in ``lang``: itself in English, ``grid-case.zh.md`` in Chinese."""
    return page if lang == LANGS[0] else f"{page.removesuffix('.md')}.{lang}.md"


def _html(page: str, lang: str) -> str:
    """Where ``page`` is published in ``lang`` (``zh/grid-case.html``)."""
    return ("" if lang == LANGS[0] else f"{lang}/") + page.removesuffix(".md") + ".html"


def _mkdocs_config() -> dict[str, Any]:
    from mkdocs.utils import yaml_load

    with open(ROOT / "mkdocs.yml", encoding="utf-8") as f:
        return dict(yaml_load(f))


def _i18n_languages() -> dict[str, dict[str, Any]]:
    for plugin in _mkdocs_config()["plugins"]:
        if isinstance(plugin, dict) and "i18n" in plugin:
            return {lang["locale"]: lang for lang in plugin["i18n"]["languages"]}
    raise AssertionError("mkdocs.yml has no i18n plugin")


def _nav_titles(nav: list[Any]) -> list[str]:
    titles = []
    for item in nav:
        if isinstance(item, dict):
            for title, value in item.items():
                titles.append(title)
                if isinstance(value, list):
                    titles += _nav_titles(value)
    return titles


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


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("hook", _hooks())
def test_every_hook_has_a_section_with_an_example(hook: str, lang: str) -> None:
    name = _twin("plugins.md", lang)
    page = (DOCS / name).read_text(encoding="utf-8")
    heading = re.search(rf"^### `{hook}`.*$", page, re.M)
    assert heading, f"docs/{name} has no '### `{hook}`' section"
    following = page[heading.end():]
    nxt = re.search(r"^#{2,3} ", following, re.M)
    section = following[: nxt.start() if nxt else None]
    examples = [m["code"] for m in _FENCE.finditer(section)]
    assert any(f"def {hook}(" in code for code in examples), (
        f"the {hook} section of docs/{name} has no python example implementing it")


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("name", sorted(gridflow.__all__))
def test_every_public_name_is_in_the_docs(name: str, lang: str) -> None:
    assert re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", _sources(lang)), (
        f"gridflow.{name} is public (gridflow.__all__) but no {lang} docs page mentions it")


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("name", sorted(n for n in gridflow.__all__ if not n.startswith("_")))
def test_every_public_name_is_in_the_api_reference(name: str, lang: str) -> None:
    pages = [p for p in sorted((DOCS / "api").glob("*.md")) if _is_translation(p) == (lang != "en")]
    api = "\n".join(p.read_text(encoding="utf-8") for p in pages)
    assert re.search(rf"^::: gridflow(\.[\w.]+)?\.{re.escape(name)}$", api, re.M), (
        f"gridflow.{name} has no '::: ...{name}' entry in the {lang} pages of docs/api/")


@pytest.mark.parametrize("module", API_MODULES)
def test_api_modules_have_a_reference_page(module: str) -> None:
    try:
        importlib.import_module(module)
    except ImportError as exc:
        pytest.skip(f"{module} does not exist yet ({exc})")
    api = "\n".join(p.read_text(encoding="utf-8") for p in sorted((DOCS / "api").glob("*.md")))
    assert re.search(rf"^::: {re.escape(module)}$", api, re.M), (
        f"{module} has no '::: {module}' page in docs/api/")


# -- every page in both languages ---------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS[1:])
@pytest.mark.parametrize("page", _pages())
def test_every_page_has_its_translation(page: str, lang: str) -> None:
    twin = _twin(page, lang)
    assert (DOCS / twin).is_file(), (
        f"docs/{page} has no {lang} twin docs/{twin}: every page exists in both languages "
        "(see docs/CONTRIBUTING-docs.md)")
    text = (DOCS / twin).read_text(encoding="utf-8")
    assert _HAN.search(text), f"docs/{twin} has no Chinese text"


def test_every_translation_has_its_page() -> None:
    orphans = [p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")
               if _is_translation(p) and not p.with_name(
                   re.sub(r"\.[a-z]{2}\.md$", ".md", p.name)).is_file()]
    assert not orphans, f"translations without an English page: {orphans}"


@pytest.mark.parametrize("lang", LANGS[1:])
@pytest.mark.parametrize("page", _pages())
def test_translations_keep_the_generated_content(page: str, lang: str) -> None:
    """The diagrams, tables, API entries and included files of a page are on its twin
    too: a translation may word things its own way but cannot drop generated content."""
    twin = DOCS / _twin(page, lang)
    if not twin.is_file():
        pytest.skip(f"no docs/{twin.name} (test_every_page_has_its_translation fails)")
    english = (DOCS / page).read_text(encoding="utf-8")
    translated = twin.read_text(encoding="utf-8")
    for pattern in (_MARKER, _DIRECTIVE):
        expected = [m.strip() for m in pattern.findall(english)]
        assert [m.strip() for m in pattern.findall(translated)] == expected, (
            f"docs/{twin.name} does not have the same {expected} as docs/{page}")


@needs_mkdocs
def test_every_nav_title_is_translated() -> None:
    titles = _nav_titles(_mkdocs_config()["nav"])
    nav_files = re.findall(r"[\w/.-]+\.md", str(_mkdocs_config()["nav"]))
    assert sorted(nav_files) == _pages(), "mkdocs.yml's nav must list every page"
    for lang, config in _i18n_languages().items():
        if config.get("default"):
            continue
        missing = [t for t in titles if t not in (config.get("nav_translations") or {})]
        assert not missing, (f"nav titles with no {lang} translation in mkdocs.yml "
                             f"(i18n languages[{lang}].nav_translations): {missing}")


def test_hook_renders_in_the_page_language() -> None:
    hook = _load_hook_module()
    spec = gridflow.Engine(entry_points=False).workflow("grid_case")
    zh_states = hook.expand("<!-- gridflow:states grid_case -->", "grid-case.zh.md", "zh")
    en_states = hook.expand("<!-- gridflow:states grid_case -->", "grid-case.md", "en")
    assert "| 状态 |" in zh_states and "| State |" in en_states
    first = spec.states[0]
    assert f"{first.label_zh}<br>{first.label_en}" in zh_states
    assert f"{first.label_en}<br>{first.label_zh}" in en_states
    assert "1 天" in zh_states and "1 day" in en_states
    zh_triggers = hook.expand("<!-- gridflow:triggers grid_case -->", "grid-case.zh.md", "zh")
    assert "| 触发器 |" in zh_triggers and "任一未终结状态" in zh_triggers
    zh_diagram = hook.expand("<!-- gridflow:diagram grid_case -->", "grid-case.zh.md", "zh")
    assert zh_diagram.index('=== "中文"') < zh_diagram.index('=== "English"')
    en_diagram = hook.expand("<!-- gridflow:diagram grid_case -->", "grid-case.md", "en")
    assert en_diagram.index('=== "English"') < en_diagram.index('=== "中文"')
    # A Chinese workflow page that lost its marker still gets the generated section.
    assert "## 根据规格生成" in hook.expand("# 网格案件\n", "grid-case.zh.md", "zh")


def test_every_hook_has_a_chinese_purpose() -> None:
    hook = _load_hook_module()
    missing = [name for name in _hooks() if name not in hook.HOOK_PURPOSE_ZH]
    assert not missing, ("hooks with no Chinese purpose in docs/hooks/gridflow_docs.py "
                         f"HOOK_PURPOSE_ZH (the zh plugins page shows English): {missing}")
    table = hook.expand("<!-- gridflow:hooks -->", "plugins.zh.md", "zh")
    for name in _hooks():
        assert hook.HOOK_PURPOSE_ZH[name].replace("|", "\\|") in table


# -- the code on the pages runs -----------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("english", RUNNABLE_PAGES)
def test_code_blocks_run(english: str, lang: str, tmp_path: Path,
                         monkeypatch: pytest.MonkeyPatch,
                         capsys: pytest.CaptureFixture[str]) -> None:
    page = _twin(english, lang)
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
    for lang in LANGS:
        for page in ("index.md", "grid-case.md", "api/engine.md", "changelog.md"):
            assert (site / _html(page, lang)).is_file(), _html(page, lang)
    # The diagrams render from the vendored mermaid, never a CDN.
    assert (site / "assets/javascripts/mermaid.min.js").stat().st_size > 1_000_000
    assert "assets/javascripts/mermaid.min.js" in (site / "index.html").read_text("utf-8")
    assert not (site / "hooks").exists(), "the build hooks must not be published"
    assert not list(site.rglob("CONTRIBUTING-docs*")), "the contributors' note is not a page"
    for page in site.rglob("*.html"):
        text = page.read_text("utf-8")
        for cdn in ("unpkg.com", "cdn.jsdelivr.net", "fonts.googleapis.com"):
            assert cdn not in text, f"{page.relative_to(site)} refers to {cdn}"


@pytest.mark.docs
@needs_mkdocs
@pytest.mark.parametrize("lang", LANGS)
def test_every_page_is_built_in_both_languages(site: Path, lang: str) -> None:
    for page in _pages():
        built = site / _html(page, lang)
        assert built.is_file(), f"{page} is not built in {lang} ({_html(page, lang)})"
        text = built.read_text("utf-8")
        assert f'<html lang="{lang}"' in text, f"{built} is not marked as {lang}"
        # The language switch is on every page, and leads to this page's twin.
        others = [x for x in LANGS if x != lang]
        for other in others:
            links = re.findall(rf'<a href="([^"]+)" hreflang="{other}"', text)
            assert links, f"{_html(page, lang)} has no switch to {other}"
            target = (built.parent / links[0]).resolve()
            assert target == (site / _html(page, other)).resolve(), (
                f"{_html(page, lang)}: the switch to {other} leads to {links[0]}")
    if lang != LANGS[0]:
        # Translated pages are in the page's language, not the English fallback.
        h1 = re.search(r"<h1[^>]*>(.*?)</h1>", (site / _html("concepts.md", lang))
                       .read_text("utf-8"), re.S)
        assert h1 and _HAN.search(h1[1]), "zh/concepts.html is not the Chinese page"


@pytest.mark.docs
@needs_mkdocs
def test_search_index_is_split_per_language(site: Path) -> None:
    import json

    for lang in LANGS:
        folder = site / ("search" if lang == LANGS[0] else f"{lang}/search")
        index = json.loads((folder / "search_index.json").read_text("utf-8"))
        locations = [doc["location"] for doc in index["docs"]]
        assert locations, f"the {lang} search index is empty"
        assert not any(loc.startswith(tuple(f"{x}/" for x in LANGS)) for loc in locations)
        # From disk, the index is read as a script (the offline plugin's form).
        script = (folder / "search_index.js").read_text("utf-8")
        assert script.startswith("var __index = ") and json.loads(script[14:]) == index
        # Chinese text is segmented (jieba joins words with U+200B) and 回头看 is one word.
        if lang == "zh":
            text = "".join(doc["text"] for doc in index["docs"])
            assert "\u200b回头看\u200b" in text
    zh_page = (site / "zh/grid-case.html").read_text("utf-8")
    assert re.search(r'"base": "\."', zh_page), "zh pages must search the zh index"


def _mermaid_blocks(page: Path) -> list[str]:
    return [html.unescape(code).strip() for code in _MERMAID.findall(page.read_text("utf-8"))]


@pytest.mark.docs
@needs_mkdocs
@pytest.mark.parametrize("lang", LANGS)
def test_built_workflow_pages_show_the_current_specs(site: Path, lang: str) -> None:
    from gridflow.interop.diagram import mermaid

    hook = _load_hook_module()
    engine = gridflow.Engine(entry_points=False)
    for src, name in hook.WORKFLOW_PAGES.items():
        if name not in {s.name for s in engine.workflows}:
            continue  # the workflow has not landed yet; nothing to draw
        spec = engine.workflow(name)
        page = site / _html(src, lang)
        blocks = _mermaid_blocks(page)
        for diagram_lang in LANGS:
            assert mermaid(spec, diagram_lang).strip() in blocks, (
                f"{page} does not hold the {diagram_lang} diagram of {spec.key}")
        # The page's own language comes first (the tab shown).
        assert blocks.index(mermaid(spec, lang).strip()) < min(
            blocks.index(mermaid(spec, other).strip()) for other in LANGS if other != lang)
        text = html.unescape(page.read_text("utf-8"))
        for tr in spec.transitions:
            assert tr.label_en in text and tr.label_zh in text
        header = "<th>状态</th>" if lang == "zh" else "<th>State</th>"
        assert header in text, f"{page}: the state table is not in {lang}"


@pytest.mark.docs
@needs_mkdocs
@pytest.mark.parametrize("lang", LANGS)
def test_built_plugin_page_lists_every_hook(site: Path, lang: str) -> None:
    text = (site / _html("plugins.md", lang)).read_text("utf-8")
    for hook in _hooks():
        assert f'id="{hook}"' in text, f"no anchor for {hook} on the {lang} plugins page"


# -- in headless Chromium, offline ----------------------------------------------------------


@pytest.fixture(scope="module")
def checker() -> ModuleType:
    return _load_module(DOCS / "hooks" / "check_offline.py", "gridflow_docs_check_offline")


@pytest.fixture(scope="module")
def chromium(checker: ModuleType) -> Any:
    if checker.find_chromium() is None:
        reason = "no Chromium on PATH (apt-get install chromium) to render the pages"
        if os.environ.get("GRIDFLOW_REQUIRE_CHROMIUM") == "1":
            pytest.fail(reason + "; CI sets GRIDFLOW_REQUIRE_CHROMIUM=1 and installs it")
        pytest.skip(reason)
    with checker.Chromium() as browser:
        yield browser


@pytest.mark.docs
@needs_mkdocs
def test_diagrams_render_offline_in_chromium(site: Path, checker: ModuleType,
                                             chromium: Any) -> None:
    pages, problems = checker.check_site(site, browser=chromium)
    assert pages >= 4 and not problems, "\n".join(problems)


@pytest.mark.docs
@needs_mkdocs
def test_site_works_from_disk_in_chromium(site: Path, checker: ModuleType,
                                          chromium: Any) -> None:
    """Opened as site/index.html (file://): navigation links open pages, the language
    switch works, search finds results in both languages, diagrams draw."""
    problems = checker.check_file_site(site, browser=chromium)
    assert not problems, "\n".join(problems)


@pytest.mark.docs
@needs_mkdocs
@pytest.mark.parametrize(("lang", "query"), [("zh", "回头看"), ("zh", "司法确认"),
                                             ("en", "revisit"), ("en", "回头看")])
def test_search_finds_results_in_chromium(site: Path, checker: ModuleType, chromium: Any,
                                          lang: str, query: str) -> None:
    root = site.resolve().as_uri() + "/"
    with checker.open_tab(chromium) as tab:
        results = checker.search(tab, root + _html("index.md", lang), query)
    assert results, f"search for {query!r} on the {lang} site found nothing"
    in_zh = [r.startswith(root + "zh/") for r in results]
    assert all(in_zh) if lang == "zh" else not any(in_zh), (
        f"search on the {lang} site returned pages of the other site: {results[:5]}")


@pytest.mark.docs
@needs_mkdocs
@pytest.mark.parametrize("lang", LANGS)
def test_diagrams_carry_the_page_language_labels_in_chromium(
        site: Path, checker: ModuleType, chromium: Any, lang: str) -> None:
    hook = _load_hook_module()
    engine = gridflow.Engine(entry_points=False)
    root = site.resolve().as_uri() + "/"
    with checker.open_tab(chromium) as tab:
        for src, name in hook.WORKFLOW_PAGES.items():
            spec = engine.workflow(name)
            shown = [d for d in checker.diagrams(tab, root + _html(src, lang)) if d["visible"]]
            assert len(shown) == 1, f"{_html(src, lang)}: {len(shown)} diagrams shown"
            text = " ".join(shown[0]["labels"])
            for item in (*spec.states, *spec.transitions):
                label = item.label_zh if lang == "zh" else item.label_en
                assert label in text, f"{_html(src, lang)}: the diagram lacks {label!r}"
            if lang == "zh":
                english = [s.label_en for s in spec.states if s.label_en in text]
                assert not english, f"{_html(src, lang)}: English labels {english}"


@pytest.mark.docs
@needs_mkdocs
@pytest.mark.parametrize("lang", LANGS)
def test_mediation_diagram_labels_are_readable_in_chromium(
        site: Path, checker: ModuleType, chromium: Any, lang: str) -> None:
    root = site.resolve().as_uri() + "/"
    with checker.open_tab(chromium) as tab:
        shown = [d for d in checker.diagrams(tab, root + _html("mediation.md", lang))
                 if d["visible"]]
    assert shown and shown[0]["min_font_px"] is not None
    assert shown[0]["min_font_px"] >= 10, (
        f"the mediation diagram's labels are {shown[0]['min_font_px']:.1f} px high")
