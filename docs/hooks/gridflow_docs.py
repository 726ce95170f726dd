"""mkdocs hook: expand ``<!-- gridflow:KIND [ARG] -->`` markers with content generated
from gridflow's own code at build time, so diagrams and tables never drift from the specs.

Markers (each alone on its line in a Markdown page):

``<!-- gridflow:workflow NAME -->``
    Everything below for workflow ``NAME`` (diagram, states, triggers), with headings.
``<!-- gridflow:diagram NAME -->``
    The state diagram from ``gridflow.interop.diagram.mermaid(spec, lang)``, one tab
    per language, the page's language first, rendered by the vendored mermaid.
``<!-- gridflow:states NAME -->`` / ``<!-- gridflow:triggers NAME -->``
    The state table and the trigger table of the spec (labels in the page's language
    first, roles, required payload, allowed values, guards, effects).
``<!-- gridflow:roles -->``
    Every role the built-in plugin registers, with its labels.
``<!-- gridflow:hooks -->``
    Every hook of ``gridflow.plugins.HookSpecs``: kind, signature, purpose.

``NAME`` is a registered workflow (``grid_case``) or ``name@version``. Only the
built-in plugin is consulted (``entry_points=False``): the docs describe gridflow,
not whatever plugins happen to be installed where the site is built.

A page listed in ``WORKFLOW_PAGES`` that has no diagram marker for its workflow gets
the whole ``workflow`` block appended (once that workflow is registered), so the
diagram cannot be lost by an edit of the page.

Every page exists in English (``page.md``) and Chinese (``page.zh.md``, built by
mkdocs-static-i18n under ``zh/``); generated headings, tables and captions are written
in the language of the page they land on.

The search index is split per language here too (``search/`` for English,
``zh/search/`` for Chinese) and each Chinese page is pointed at its own index, so a
search on one site does not return the other site's twin of every page. The check
that the built site works offline, served and from disk, is ``check_offline.py``.

An unknown marker, workflow or a failing generator aborts the build: a docs site
with a silently missing diagram is worse than no build.
"""

from __future__ import annotations

import inspect
import json
import logging
import posixpath
import re
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mkdocs.exceptions import PluginError
from mkdocs.plugins import event_priority

if TYPE_CHECKING:
    from gridflow import Engine
    from gridflow.spec import TransitionSpec, WorkflowSpec

log = logging.getLogger("mkdocs.hooks.gridflow_docs")

MARKER = re.compile(
    r"^[ \t]*<!--\s*gridflow:(?P<kind>[a-z_-]+)(?:\s+(?P<arg>[\w.@-]+))?\s*-->[ \t]*$",
    re.MULTILINE,
)

#: Pages that must show a workflow's generated diagram and tables.
WORKFLOW_PAGES = {"grid-case.md": "grid_case", "mediation.md": "mediation"}

#: (tab title, lang passed to the diagram generator); the page's language comes first.
LANGS = (("English", "en"), ("中文", "zh"))

#: The languages of the site; the first is the default, built at the site root.
SITE_LANGS = ("en", "zh")

#: Every word the generated Markdown uses, per language.
TEXT: dict[str, dict[str, str]] = {
    "en": {
        "caption": "*Generated at build time from `{key}` by "
                   "`gridflow.interop.diagram.mermaid(spec, lang)`; the same text as "
                   "`gridflow diagram {name} --format mermaid`.*",
        "states_head": "| State | English / 中文 | Terminal | Deadline (spec default) "
                       "| On breach | Tags | Triggers from here |",
        "initial": " (initial)", "yes": "yes",
        "triggers_head": "| Trigger | English / 中文 | From | To | Roles | Required payload "
                         "| Allowed values | Guards, effects |",
        "open": "(open)", "open_label": "Open<br>开启", "any_state": "any non-terminal state",
        "internal": "(stays: internal)", "any_role": "any role",
        "guard": "guard", "effect": "effect",
        "note": "\n*Generated at build time from the spec. Every step also needs the actor's "
                "`grids` to include the case's grid (an actor with no grids may touch every "
                "grid). Deadlines are the spec's defaults; the `gridflow_deadline` hook and "
                "the engine's calendar decide the actual `deadline_at`.*\n",
        "roles_head": "| Role | 中文 | English |",
        "hooks_head": "| Hook | Kind | Purpose |",
        "firstresult": "first answer wins", "collect": "every plugin is called",
        "diagram_heading": "### State diagram of `{key}`", "states_heading": "### States",
        "triggers_heading": "### Triggers", "generated_heading": "## Generated from the spec",
        "day": "{n} day", "days": "{n} days", "hours": "{n} h", "minutes": "{n} min",
    },
    "zh": {
        "caption": "*构建时由 `gridflow.interop.diagram.mermaid(spec, lang)` 根据 `{key}` "
                   "生成，与 `gridflow diagram {name} --format mermaid` 的输出一致。*",
        "states_head": "| 状态 | 中文 / English | 终结状态 | 时限（规格默认值） | 超时触发 "
                       "| 标签 | 可执行的触发器 |",
        "initial": "（初始）", "yes": "是",
        "triggers_head": "| 触发器 | 中文 / English | 起始状态 | 目标状态 | 角色 | 必填字段 "
                         "| 允许取值 | 守卫、效果 |",
        "open": "（新建）", "open_label": "新建<br>Open", "any_state": "任一未终结状态",
        "internal": "（状态不变：内部转换）", "any_role": "任意角色",
        "guard": "守卫", "effect": "效果",
        "note": "\n*构建时根据规格生成。每一步还要求操作者的 `grids` 包含案件所在的网格"
                "（未设 `grids` 的操作者可处理所有网格）。表中时限是规格的默认值，"
                "案件实际的 `deadline_at` 由 `gridflow_deadline` 钩子和引擎的日历决定。*\n",
        "roles_head": "| 角色 | 中文 | English |",
        "hooks_head": "| 钩子 | 调用方式 | 用途 |",
        "firstresult": "取第一个非 `None` 的答复", "collect": "逐个调用每个插件",
        "diagram_heading": "### `{key}` 状态图", "states_heading": "### 状态",
        "triggers_heading": "### 触发器", "generated_heading": "## 根据规格生成",
        "day": "{n} 天", "days": "{n} 天", "hours": "{n} 小时", "minutes": "{n} 分钟",
    },
}

#: What each hook is for, in Chinese (the English comes from the hook's docstring). A
#: hook missing here shows its English summary on the Chinese page, and is logged.
HOOK_PURPOSE_ZH = {
    "gridflow_workflows": "返回要注册的流程规格（`WorkflowSpec`），汇总所有插件的列表。",
    "gridflow_guards": "返回 `{名称: 守卫函数}`；规格按名称引用守卫。",
    "gridflow_effects": "返回 `{名称: 效果函数}`；规格按名称引用效果。",
    "gridflow_roles": "返回 `{角色: (label_zh, label_en)}`，声明规格可以使用的角色。",
    "gridflow_deadline_rules": "返回 `{流程名: 规则}`：整个流程的默认时限规则。",
    "gridflow_veto": "返回拒绝理由（字符串）以否决这一步，或返回 `None` 放行。",
    "gridflow_before_fire": "在一步执行前调整它（可修改 `payload`，返回的字典并入案件数据）。",
    "gridflow_after_fire": "一步提交之后的副作用：发通知、记志愿积分等。",
    "gridflow_route": "建议案件应派遣的职能部门（或调解的参与方），取第一个答复。",
    "gridflow_deadline": "覆盖案件在某一状态的时限，取第一个答复。",
    "gridflow_mediation_tier": "调解受理（`accept`）时进入哪一级：`grid_mediation`、"
                               "`three_office` 或 `multi_party`，取第一个答复。",
}


# -- look-ups ------------------------------------------------------------------------


@cache
def _engine() -> Engine:
    import gridflow

    return gridflow.Engine(entry_points=False)


def workflow_spec(ref: str) -> WorkflowSpec:
    """The registered spec for ``name`` or ``name@version``."""
    import gridflow

    name, _, version = ref.partition("@")
    try:
        return _engine().workflow(name, int(version) if version else None)
    except gridflow.UnknownWorkflow as exc:
        if version:
            # A shipped version the built-in plugin does not make the default (grid_case@2).
            from gridflow.workflows import grid_case_v2

            try:
                return gridflow.Engine(entry_points=False, plugins=[grid_case_v2.PLUGIN]
                                       ).workflow(name, int(version))
            except gridflow.UnknownWorkflow:
                pass
        raise PluginError(f"gridflow docs: {exc}") from None


def registered_workflows() -> set[str]:
    """Names of the built-in workflows the engine knows."""
    return {spec.name for spec in _engine().workflows}


def page_lang(page: Any = None, config: Any = None) -> str:
    """The language of ``page``: the locale mkdocs-static-i18n gave its file, else the
    theme's language, else English."""
    locale = getattr(getattr(page, "file", None), "locale", None)
    if not locale and config is not None:
        locale = (config.get("theme") or {}).get("language")
    lang = str(locale or SITE_LANGS[0]).lower().replace("_", "-").split("-")[0]
    return lang if lang in TEXT else SITE_LANGS[0]


def base_src_path(src_path: str) -> str:
    """``grid-case.zh.md`` → ``grid-case.md``: the page a translation is the twin of."""
    path = src_path.replace("\\", "/")
    for lang in SITE_LANGS[1:]:
        path = re.sub(rf"\.{lang}\.md$", ".md", path)
    return path


def mermaid_text(spec: WorkflowSpec, lang: str) -> str:
    """The Mermaid source of ``spec``'s diagram, as the docs embed it."""
    try:
        from gridflow.interop.diagram import mermaid
    except ImportError as exc:
        raise PluginError(
            "gridflow docs: gridflow.interop.diagram.mermaid is needed to draw the state "
            f"diagrams at build time ({exc})") from exc
    return str(mermaid(spec, lang)).strip()


# -- rendering -----------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _codes(names: Any) -> str:
    return ", ".join(f"`{n}`" for n in names)


def _duration(delta: timedelta | None, lang: str = "en") -> str:
    if delta is None:
        return ""
    t = TEXT[lang]
    days, rest = delta.days, delta.seconds
    parts = []
    if days:
        parts.append((t["day"] if days == 1 else t["days"]).format(n=days))
    if rest // 3600:
        parts.append(t["hours"].format(n=rest // 3600))
    if rest % 3600 // 60:
        parts.append(t["minutes"].format(n=rest % 3600 // 60))
    return " ".join(parts) or str(delta)


def _labels(zh: str, en: str, lang: str) -> str:
    """Both labels, the page's language first."""
    return f"{zh}<br>{en}" if lang == "zh" else f"{en}<br>{zh}"


def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line if line.strip() else "" for line in text.splitlines())


def diagram_md(spec: WorkflowSpec, lang: str = "en") -> str:
    """Tabs, the page's language first, each holding a ``mermaid`` fence of the diagram."""
    blocks = []
    for title, tab_lang in sorted(LANGS, key=lambda tab: tab[1] != lang):
        fence = f"```mermaid\n{mermaid_text(spec, tab_lang)}\n```"
        blocks.append(f'=== "{title}"\n\n{_indent(fence)}\n')
    caption = TEXT[lang]["caption"].format(key=spec.key, name=spec.name)
    return "\n".join(blocks) + "\n" + caption + "\n"


def states_md(spec: WorkflowSpec, lang: str = "en") -> str:
    """The state table of ``spec``."""
    t = TEXT[lang]
    non_terminal = spec.non_terminal
    rows = [t["states_head"], "|---|---|---|---|---|---|---|"]
    for state in spec.states:
        out = [tr.trigger for tr in spec.transitions
               if state.name in tr.sources(non_terminal)]
        rows.append("| " + " | ".join(_cell(c) for c in (
            f"`{state.name}`" + (t["initial"] if state.name == spec.initial else ""),
            _labels(state.label_zh, state.label_en, lang),
            t["yes"] if state.terminal else "",
            _duration(state.deadline, lang),
            f"`{state.on_breach}`" if state.on_breach else "",
            _codes(state.tags), _codes(dict.fromkeys(out)),
        )) + " |")
    return "\n".join(rows) + "\n"


def _sources(spec: WorkflowSpec, tr: TransitionSpec, lang: str) -> str:
    if tr.source == "*":
        return TEXT[lang]["any_state"]
    return ", ".join(f"`{s}`" for s in tr.sources(spec.non_terminal))


def _choices(choices: dict[str, tuple[str, ...]]) -> str:
    return "; ".join(f"`{field}` ∈ {' / '.join(opts)}" for field, opts in choices.items())


def _guards_effects(guards: tuple[str, ...], effects: tuple[str, ...], lang: str) -> str:
    t = TEXT[lang]
    parts = [f"{t['guard']} {_codes(guards)}" if guards else "",
             f"{t['effect']} {_codes(effects)}" if effects else ""]
    return "<br>".join(p for p in parts if p)


def triggers_md(spec: WorkflowSpec, lang: str = "en") -> str:
    """The trigger table of ``spec``, opening first."""
    t = TEXT[lang]
    rows = [t["triggers_head"], "|---|---|---|---|---|---|---|---|"]
    rows.append("| " + " | ".join(_cell(c) for c in (
        t["open"], t["open_label"], "", f"`{spec.initial}`",
        _codes(spec.open_roles) or t["any_role"], _codes(spec.open_requires),
        _choices(spec.open_choices),
        _guards_effects(spec.open_guards, spec.open_effects, lang),
    )) + " |")
    for tr in spec.transitions:
        rows.append("| " + " | ".join(_cell(c) for c in (
            f"`{tr.trigger}`", _labels(tr.label_zh, tr.label_en, lang),
            _sources(spec, tr, lang),
            f"`{tr.dest}`" if tr.dest is not None else t["internal"],
            _codes(tr.roles) or t["any_role"], _codes(tr.requires), _choices(tr.choices),
            _guards_effects(tr.guards, tr.effects, lang),
        )) + " |")
    return "\n".join(rows) + "\n" + t["note"]


def roles_md(lang: str = "en") -> str:
    """Every registered role with its labels."""
    rows = [TEXT[lang]["roles_head"], "|---|---|---|"]
    for role, (zh, en) in sorted(_engine().roles.items()):
        rows.append(f"| `{role}` | {_cell(zh)} | {_cell(en)} |")
    return "\n".join(rows) + "\n"


def hook_names() -> list[str]:
    """Names of every hook in ``gridflow.plugins.HookSpecs``, in declaration order."""
    from gridflow.plugins import PROJECT, HookSpecs

    return [name for name, fn in vars(HookSpecs).items()
            if callable(fn) and hasattr(fn, f"{PROJECT}_spec")]


def hooks_md(lang: str = "en") -> str:
    """A table of every hook: how pluggy combines the answers, signature, purpose."""
    from gridflow.plugins import PROJECT, HookSpecs

    t = TEXT[lang]
    rows = [t["hooks_head"], "|---|---|---|"]
    for name in hook_names():
        fn = getattr(HookSpecs, name)
        opts = getattr(fn, f"{PROJECT}_spec")
        kind = t["firstresult"] if opts.get("firstresult") else t["collect"]
        params = ", ".join(list(inspect.signature(fn).parameters)[1:])
        summary = (inspect.getdoc(fn) or "").split("\n\n")[0].replace("\n", " ")
        if lang == "zh":
            if name in HOOK_PURPOSE_ZH:
                summary = HOOK_PURPOSE_ZH[name]
            else:
                log.info("gridflow docs: hook %s has no Chinese purpose in HOOK_PURPOSE_ZH; "
                         "the Chinese page shows the English one", name)
        rows.append(f"| [`{name}({params})`](#{name}) | {kind} "
                    f"| {_cell(summary)} |")
    return "\n".join(rows) + "\n"


def workflow_md(spec: WorkflowSpec, lang: str = "en") -> str:
    """Diagram, states and triggers of ``spec`` under their own headings."""
    t = TEXT[lang]
    return (f"{t['diagram_heading'].format(key=spec.key)}\n\n{diagram_md(spec, lang)}\n"
            f"{t['states_heading']}\n\n{states_md(spec, lang)}\n"
            f"{t['triggers_heading']}\n\n{triggers_md(spec, lang)}")


def render(kind: str, arg: str | None, lang: str = "en") -> str:
    """The Markdown that replaces one marker, in ``lang``."""
    by_workflow = {"workflow": workflow_md, "diagram": diagram_md, "states": states_md,
                   "triggers": triggers_md}
    if kind in by_workflow:
        if not arg:
            raise PluginError(f"gridflow docs: marker gridflow:{kind} needs a workflow name")
        return by_workflow[kind](workflow_spec(arg), lang)
    if kind == "roles":
        return roles_md(lang)
    if kind == "hooks":
        return hooks_md(lang)
    raise PluginError(f"gridflow docs: unknown marker gridflow:{kind}; known: "
                      f"{', '.join([*by_workflow, 'roles', 'hooks'])}")


def expand(markdown: str, src_path: str = "", lang: str = "en") -> str:
    """``markdown`` with every marker replaced (and a workflow page completed), in
    ``lang`` (``en`` or ``zh``)."""
    if lang not in TEXT:
        raise PluginError(f"gridflow docs: {src_path}: no generated text for language "
                          f"{lang!r}; known: {', '.join(TEXT)}")

    def replace(match: re.Match[str]) -> str:
        try:
            return "\n" + render(match["kind"], match["arg"], lang).strip("\n") + "\n"
        except PluginError:
            raise
        except Exception as exc:  # a generator bug must name the page and marker
            raise PluginError(f"gridflow docs: {src_path}: marker {match[0]!r} failed: "
                              f"{exc!r}") from exc

    wanted = WORKFLOW_PAGES.get(base_src_path(src_path))
    has_diagram = any(m["kind"] in ("workflow", "diagram") and m["arg"]
                      and m["arg"].partition("@")[0] == wanted
                      for m in MARKER.finditer(markdown))
    if wanted and not has_diagram and wanted in registered_workflows():
        log.info("gridflow docs: %s has no diagram marker; appending the generated "
                 "%s workflow section", src_path, wanted)
        markdown += (f"\n\n{TEXT[lang]['generated_heading']}\n\n"
                     f"<!-- gridflow:workflow {wanted} -->\n")
    return MARKER.sub(replace, markdown)


# -- one search index per language ------------------------------------------------------

_CONFIG_BASE = re.compile(
    r'(<script id="__config" type="application/json">[^<]*?"base":\s*)"([^"]*)"')


def point_at_language_root(output: str, page_url: str, lang: str) -> str:
    """Make a translated page's ``__config.base`` its language's root (``zh/``), so that
    Material loads ``zh/search/search_index.json`` (``.js`` on file://) and resolves the
    results' locations against ``zh/``. Nothing else in the theme reads ``base`` here
    (it also locates ``sitemap.xml`` for instant navigation, which the site does not use).
    """
    if lang == SITE_LANGS[0]:
        return output
    root = posixpath.relpath(lang, posixpath.dirname(page_url) or ".")
    new, count = _CONFIG_BASE.subn(lambda m: f'{m[1]}"{root}"', output, count=1)
    if count != 1:
        raise PluginError(f"gridflow docs: {page_url}: no __config script with a base to "
                          "point at its language's search index (has the theme changed?)")
    return new


def split_search_index(site_dir: Path) -> dict[str, int]:
    """Split the one index mkdocs-static-i18n leaves in ``search/`` into one per
    language (``search/`` and ``zh/search/``), each as JSON and as the script the
    offline plugin writes for file://. Returns the number of entries per language."""
    index_file = site_dir / "search" / "search_index.json"
    if not index_file.is_file():
        return {}
    index = json.loads(index_file.read_text(encoding="utf-8"))
    others = SITE_LANGS[1:]
    by_lang: dict[str, list[dict[str, Any]]] = {lang: [] for lang in SITE_LANGS}
    for doc in index["docs"]:
        lang = next((x for x in others if doc["location"].startswith(f"{x}/")), SITE_LANGS[0])
        if lang != SITE_LANGS[0]:
            doc = {**doc, "location": doc["location"][len(lang) + 1:]}
        by_lang[lang].append(doc)
    for lang, docs in by_lang.items():
        folder = site_dir / "search" if lang == SITE_LANGS[0] else site_dir / lang / "search"
        folder.mkdir(parents=True, exist_ok=True)
        data = json.dumps({"config": index["config"], "docs": docs}, separators=(",", ":"),
                          ensure_ascii=False)
        (folder / "search_index.json").write_text(data, encoding="utf-8")
        (folder / "search_index.js").write_text(f"var __index = {data}", encoding="utf-8")
    return {lang: len(docs) for lang, docs in by_lang.items()}


# -- mkdocs events ----------------------------------------------------------------------


def on_config(config: Any, **kwargs: Any) -> Any:
    try:
        import jieba  # noqa: F401  (Material's search plugin segments Chinese with it)
    except ImportError:
        raise PluginError("gridflow docs: the Chinese site's search needs jieba to segment "
                          "Chinese text at build time: pip install 'gridflow[docs]'") from None
    return config



def on_page_markdown(markdown: str, page: Any, config: Any, **kwargs: Any) -> str:
    return expand(markdown, page.file.src_path, page_lang(page, config))


def url_lang(page_url: str) -> str:
    """The site a page is published in, by its URL (``zh/...`` is the Chinese site, also
    for an English page shown there because its translation is missing)."""
    return next((x for x in SITE_LANGS[1:] if page_url.startswith(f"{x}/")), SITE_LANGS[0])


def on_post_page(output: str, page: Any, config: Any, **kwargs: Any) -> str:
    return point_at_language_root(output, page.url, url_lang(page.url))


@event_priority(-200)  # after mkdocs-static-i18n and the offline plugin (-100) wrote theirs
def on_post_build(config: Any, **kwargs: Any) -> None:
    i18n = config.plugins.get("i18n")
    if i18n is not None and getattr(i18n, "building", False):
        return  # a language's own build inside the i18n plugin; the index is not whole yet
    counts = split_search_index(Path(config.site_dir))
    if counts:
        log.info("gridflow docs: search index split per language: %s",
                 ", ".join(f"{lang} {n} entries" for lang, n in counts.items()))
