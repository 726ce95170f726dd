"""mkdocs hook: expand ``<!-- gridflow:KIND [ARG] -->`` markers with content generated
from gridflow's own code at build time, so diagrams and tables never drift from the specs.

Markers (each alone on its line in a Markdown page):

``<!-- gridflow:workflow NAME -->``
    Everything below for workflow ``NAME`` (diagram, states, triggers), with headings.
``<!-- gridflow:diagram NAME -->``
    The state diagram from ``gridflow.interop.diagram.mermaid(spec, lang)``, one tab
    per language (English, 中文), rendered by the vendored mermaid.
``<!-- gridflow:states NAME -->`` / ``<!-- gridflow:triggers NAME -->``
    The state table and the trigger table of the spec (labels zh + en, roles,
    required payload, allowed values, guards, effects).
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

An unknown marker, workflow or a failing generator aborts the build: a docs site
with a silently missing diagram is worse than no build.
"""

from __future__ import annotations

import inspect
import logging
import re
from datetime import timedelta
from functools import cache
from typing import TYPE_CHECKING, Any

from mkdocs.exceptions import PluginError

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

#: (tab title, lang passed to the diagram generator).
LANGS = (("English", "en"), ("中文", "zh"))


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
        raise PluginError(f"gridflow docs: {exc}") from None


def registered_workflows() -> set[str]:
    """Names of the built-in workflows the engine knows."""
    return {spec.name for spec in _engine().workflows}


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


def _duration(delta: timedelta | None) -> str:
    if delta is None:
        return ""
    days, rest = delta.days, delta.seconds
    parts = []
    if days:
        parts.append(f"{days} day" + ("s" if days != 1 else ""))
    if rest // 3600:
        parts.append(f"{rest // 3600} h")
    if rest % 3600 // 60:
        parts.append(f"{rest % 3600 // 60} min")
    return " ".join(parts) or str(delta)


def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line if line.strip() else "" for line in text.splitlines())


def diagram_md(spec: WorkflowSpec) -> str:
    """Tabs (English / 中文), each holding a ``mermaid`` fence of the spec's diagram."""
    blocks = []
    for title, lang in LANGS:
        fence = f"```mermaid\n{mermaid_text(spec, lang)}\n```"
        blocks.append(f'=== "{title}"\n\n{_indent(fence)}\n')
    caption = (f"*Generated at build time from `{spec.key}` by "
               f"`gridflow.interop.diagram.mermaid(spec, lang)`; the same text as "
               f"`gridflow diagram {spec.name} --format mermaid`.*")
    return "\n".join(blocks) + "\n" + caption + "\n"


def states_md(spec: WorkflowSpec) -> str:
    """The state table of ``spec``."""
    non_terminal = spec.non_terminal
    rows = ["| State | 中文 / English | Terminal | Deadline (spec default) | On breach | Tags "
            "| Triggers from here |",
            "|---|---|---|---|---|---|---|"]
    for state in spec.states:
        out = [t.trigger for t in spec.transitions
               if state.name in t.sources(non_terminal)]
        rows.append("| " + " | ".join(_cell(c) for c in (
            f"`{state.name}`" + (" (initial)" if state.name == spec.initial else ""),
            f"{state.label_zh}<br>{state.label_en}", "yes" if state.terminal else "",
            _duration(state.deadline),
            f"`{state.on_breach}`" if state.on_breach else "",
            _codes(state.tags), _codes(dict.fromkeys(out)),
        )) + " |")
    return "\n".join(rows) + "\n"


def _sources(spec: WorkflowSpec, tr: TransitionSpec) -> str:
    if tr.source == "*":
        return "any non-terminal state"
    return ", ".join(f"`{s}`" for s in tr.sources(spec.non_terminal))


def _choices(choices: dict[str, tuple[str, ...]]) -> str:
    return "; ".join(f"`{field}` ∈ {' / '.join(opts)}" for field, opts in choices.items())


def _guards_effects(guards: tuple[str, ...], effects: tuple[str, ...]) -> str:
    parts = [f"guard {_codes(guards)}" if guards else "",
             f"effect {_codes(effects)}" if effects else ""]
    return "<br>".join(p for p in parts if p)


def triggers_md(spec: WorkflowSpec) -> str:
    """The trigger table of ``spec``, opening first."""
    rows = ["| Trigger | 中文 / English | From | To | Roles | Required payload "
            "| Allowed values | Guards, effects |",
            "|---|---|---|---|---|---|---|---|"]
    rows.append("| " + " | ".join(_cell(c) for c in (
        "(open)", "开启<br>Open", "", f"`{spec.initial}`",
        _codes(spec.open_roles) or "any role", _codes(spec.open_requires),
        _choices(spec.open_choices), _guards_effects(spec.open_guards, spec.open_effects),
    )) + " |")
    for tr in spec.transitions:
        rows.append("| " + " | ".join(_cell(c) for c in (
            f"`{tr.trigger}`", f"{tr.label_zh}<br>{tr.label_en}", _sources(spec, tr),
            f"`{tr.dest}`" if tr.dest is not None else "(stays: internal)",
            _codes(tr.roles) or "any role", _codes(tr.requires), _choices(tr.choices),
            _guards_effects(tr.guards, tr.effects),
        )) + " |")
    note = ("\n*Generated at build time from the spec. Every step also needs the actor's "
            "`grids` to include the case's grid (an actor with no grids may touch every "
            "grid). Deadlines are the spec's defaults; the `gridflow_deadline` hook and "
            "the engine's calendar decide the actual `deadline_at`.*\n")
    return "\n".join(rows) + "\n" + note


def roles_md() -> str:
    """Every registered role with its labels."""
    rows = ["| Role | 中文 | English |", "|---|---|---|"]
    for role, (zh, en) in sorted(_engine().roles.items()):
        rows.append(f"| `{role}` | {_cell(zh)} | {_cell(en)} |")
    return "\n".join(rows) + "\n"


def hook_names() -> list[str]:
    """Names of every hook in ``gridflow.plugins.HookSpecs``, in declaration order."""
    from gridflow.plugins import PROJECT, HookSpecs

    return [name for name, fn in vars(HookSpecs).items()
            if callable(fn) and hasattr(fn, f"{PROJECT}_spec")]


def hooks_md() -> str:
    """A table of every hook: how pluggy combines the answers, signature, purpose."""
    from gridflow.plugins import PROJECT, HookSpecs

    rows = ["| Hook | Kind | Purpose |", "|---|---|---|"]
    for name in hook_names():
        fn = getattr(HookSpecs, name)
        opts = getattr(fn, f"{PROJECT}_spec")
        kind = "first answer wins" if opts.get("firstresult") else "every plugin is called"
        params = ", ".join(list(inspect.signature(fn).parameters)[1:])
        summary = (inspect.getdoc(fn) or "").split("\n\n")[0].replace("\n", " ")
        rows.append(f"| [`{name}({params})`](#{name}) | {kind} "
                    f"| {_cell(summary)} |")
    return "\n".join(rows) + "\n"


def workflow_md(spec: WorkflowSpec) -> str:
    """Diagram, states and triggers of ``spec`` under their own headings."""
    return (f"### State diagram of `{spec.key}`\n\n{diagram_md(spec)}\n"
            f"### States\n\n{states_md(spec)}\n"
            f"### Triggers\n\n{triggers_md(spec)}")


def render(kind: str, arg: str | None) -> str:
    """The Markdown that replaces one marker."""
    by_workflow = {"workflow": workflow_md, "diagram": diagram_md, "states": states_md,
                   "triggers": triggers_md}
    if kind in by_workflow:
        if not arg:
            raise PluginError(f"gridflow docs: marker gridflow:{kind} needs a workflow name")
        return by_workflow[kind](workflow_spec(arg))
    if kind == "roles":
        return roles_md()
    if kind == "hooks":
        return hooks_md()
    raise PluginError(f"gridflow docs: unknown marker gridflow:{kind}; known: "
                      f"{', '.join([*by_workflow, 'roles', 'hooks'])}")


def expand(markdown: str, src_path: str = "") -> str:
    """``markdown`` with every marker replaced (and a workflow page completed)."""
    def replace(match: re.Match[str]) -> str:
        try:
            return "\n" + render(match["kind"], match["arg"]).strip("\n") + "\n"
        except PluginError:
            raise
        except Exception as exc:  # a generator bug must name the page and marker
            raise PluginError(f"gridflow docs: {src_path}: marker {match[0]!r} failed: "
                              f"{exc!r}") from exc

    wanted = WORKFLOW_PAGES.get(src_path.replace("\\", "/"))
    has_diagram = any(m["kind"] in ("workflow", "diagram") and m["arg"]
                      and m["arg"].partition("@")[0] == wanted
                      for m in MARKER.finditer(markdown))
    if wanted and not has_diagram and wanted in registered_workflows():
        log.info("gridflow docs: %s has no diagram marker; appending the generated "
                 "%s workflow section", src_path, wanted)
        markdown += f"\n\n## Generated from the spec\n\n<!-- gridflow:workflow {wanted} -->\n"
    return MARKER.sub(replace, markdown)


# -- mkdocs event -------------------------------------------------------------------------


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    return expand(markdown, page.file.src_path)
