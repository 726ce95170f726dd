"""State diagrams of a `WorkflowSpec`, as Mermaid or Graphviz DOT text.

The text is generated straight from the spec rather than through the Mermaid
engine of ``transitions.extensions.diagrams``: that engine needs a machine
with a model attached (gridflow's compiled machines deliberately have none),
knows nothing of labels in two languages, internal transitions, ``"*"``
sources or deadlines, and would tie this module to the machine layer. A spec
is plain data, so the diagram is a pure function of it and needs neither
graphviz nor a browser to produce.

What the diagrams show:

- every state with its label in the chosen language (``lang="en"`` or
  ``"zh"``), and its time limit as a second line when it has one;
- the initial state entered from a start marker; terminal states drawn with a
  heavy double border and (Mermaid) an arrow to the end marker;
- one arrow per (source, destination) pair, labelled with the labels of every
  transition taking it (joined by ``" / "``); a transition the timer fires
  when the source state's time limit runs out (its ``on_breach``) is marked
  ``[timeout]`` / ``[超时]``;
- internal transitions (``dest=None``: an event is recorded, the state stays)
  as a note beside the state (Mermaid) or a dashed grey self-loop (DOT),
  each prefixed with ``↻``; an internal transition allowed in every
  non-terminal state (``source="*"``) is shown once, on the initial state,
  marked "(any open state)" / "(任一未终结状态)";
- a ``"*"`` transition with a destination as an arrow from every non-terminal
  state.

Example:
    >>> from gridflow.workflows import GRID_CASE
    >>> text = mermaid(GRID_CASE, lang="zh")
    >>> text.splitlines()[0]
    'stateDiagram-v2'
    >>> "triaged --> joint_action: 派遣联合处置" in text
    True
    >>> 'digraph "grid_case" {' in dot(GRID_CASE)
    True
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import attrs

from gridflow._errors import GridflowError
from gridflow.spec import StateSpec, TransitionSpec, WorkflowSpec

__all__ = ["FORMATS", "LANGS", "DiagramError", "Edge", "dot", "edges", "mermaid", "render"]

#: The languages labels can be drawn in.
LANGS = ("en", "zh")
#: The output formats `render` knows.
FORMATS = ("mermaid", "dot")

_WORDS = {
    "en": {"timeout": "[timeout]", "any": "(any open state)", "initial": "start",
           "terminal": "end"},
    "zh": {"timeout": "[超时]", "any": "(任一未终结状态)", "initial": "开始", "terminal": "结束"},
}
_INTERNAL = "↻ "


class DiagramError(GridflowError, ValueError):
    """A diagram was asked for in a language or format that does not exist.

    Example:
        >>> from gridflow.workflows import GRID_CASE
        >>> mermaid(GRID_CASE, lang="fr")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        gridflow.interop.diagram.DiagramError: no diagram labels in language 'fr'; ...
    """


@attrs.frozen
class Edge:
    """One arrow of a diagram: every transition from ``source`` to ``dest``.

    ``dest`` is ``None`` for internal transitions (the state stays);
    ``labels`` holds one label per transition, in spec order, already marked
    when the timer fires it; ``wildcard`` is True for an internal transition
    declared with ``source="*"``.

    Example:
        >>> from gridflow.workflows import GRID_CASE
        >>> [e.labels for e in edges(GRID_CASE) if e.source == "reported" and e.dest]
        [('Triage',), ('Reject', 'Mark duplicate')]
    """

    source: str
    dest: str | None
    labels: tuple[str, ...]
    triggers: tuple[str, ...]
    wildcard: bool = False

    @property
    def label(self) -> str:
        """Every label of the arrow joined by ``" / "``."""
        return " / ".join(self.labels)


def _lang(lang: str) -> str:
    if lang in LANGS:
        return lang
    low = lang.lower()
    for known in LANGS:  # accept "zh-CN", "en_US" and the like
        if low.startswith(known):
            return known
    raise DiagramError(f"no diagram labels in language {lang!r}; choose one of: "
                       f"{', '.join(LANGS)}")


def _duration(delta: timedelta, lang: str) -> str:
    days, rest = delta.days, delta.seconds
    hours, minutes = rest // 3600, rest % 3600 // 60
    if lang == "zh":
        parts = [f"{days}天" if days else "", f"{hours}小时" if hours else "",
                 f"{minutes}分钟" if minutes else ""]
        return "".join(parts) or f"{rest}秒"
    out = []
    if days:
        out.append(f"{days} day" + ("s" if days != 1 else ""))
    if hours:
        out.append(f"{hours} h")
    if minutes:
        out.append(f"{minutes} min")
    return " ".join(out) or f"{rest} s"


def _deadline_line(state: StateSpec, lang: str) -> str | None:
    if state.deadline is None:
        return None
    text = _duration(state.deadline, lang)
    return f"时限 {text}" if lang == "zh" else f"within {text}"


def edges(spec: WorkflowSpec, lang: str = "en") -> list[Edge]:
    """The arrows of ``spec``'s diagram, in a stable order (spec order).

    Transitions sharing a source and a destination are merged into one
    `Edge`; ``"*"`` sources are expanded to every non-terminal state, except
    for internal ``"*"`` transitions, which become one wildcard edge on the
    initial state.

    Example:
        >>> from gridflow.workflows import GRID_CASE
        >>> [e.triggers[:2] for e in edges(GRID_CASE) if e.source == "joint_action" and not e.dest]
        [('report_done', 'reassign')]
        >>> [(e.source, e.triggers) for e in edges(GRID_CASE) if e.wildcard]
        [('reported', ('note',))]
    """
    lang = _lang(lang)
    mark = _WORDS[lang]["timeout"]
    breach = {s.name: s.on_breach for s in spec.states if s.on_breach}
    merged: dict[tuple[str, str | None, bool], tuple[list[str], list[str]]] = {}

    def add(src: str, tr: TransitionSpec, wildcard: bool = False) -> None:
        label = tr.label(lang)
        if tr.dest is not None and breach.get(src) == tr.trigger:
            label = f"{label} {mark}"
        labels, triggers = merged.setdefault((src, tr.dest, wildcard), ([], []))
        if tr.trigger not in triggers:
            labels.append(label)
            triggers.append(tr.trigger)

    for tr in spec.transitions:
        if tr.source == "*" and tr.dest is None:
            add(spec.initial, tr, wildcard=True)
            continue
        for src in tr.sources(spec.non_terminal):
            add(src, tr)
    return [Edge(src, dest, tuple(labels), tuple(triggers), wildcard)
            for (src, dest, wildcard), (labels, triggers) in merged.items()]


# -- Mermaid ---------------------------------------------------------------------

_SAFE_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Words the Mermaid state-diagram grammar reads as keywords.
_MERMAID_WORDS = frozenset({
    "state", "note", "end", "direction", "class", "classdef", "style", "click", "as", "of",
    "left", "right", "top", "bottom", "fork", "join", "choice", "default", "accdescr",
    "acctitle", "linkstyle", "hide", "empty", "description",
})


def _mermaid_ids(spec: WorkflowSpec) -> dict[str, str]:
    out: dict[str, str] = {}
    used: set[str] = set()
    for i, name in enumerate(spec.state_names):
        ident = name if _SAFE_ID.match(name) and name.lower() not in _MERMAID_WORDS else f"s{i}"
        while ident in used:
            ident = f"{ident}_{i}"
        used.add(ident)
        out[name] = ident
    return out


# Mermaid reads "#...;" as an entity code, ";" can end a statement, "%%" starts
# a comment, ":" splits a label and "<" ">" could be taken for HTML: write each
# of them as a Mermaid entity code (one pass, so codes are not re-escaped).
_MERMAID_ESCAPES = {"#": "#35;", ";": "#59;", "%": "#37;", ":": "#58;", '"': "#quot;",
                    "<": "#lt;", ">": "#gt;", "\n": " ", "\r": " "}
_MERMAID_SPECIAL = re.compile("[" + re.escape("".join(_MERMAID_ESCAPES)) + "]")


def _mermaid_text(text: str) -> str:
    return _MERMAID_SPECIAL.sub(lambda m: _MERMAID_ESCAPES[m[0]], text)


def mermaid(spec: WorkflowSpec, lang: str = "en") -> str:
    """The state diagram of ``spec`` as a Mermaid ``stateDiagram-v2``.

    ``lang`` is ``"en"`` or ``"zh"`` (``"zh-CN"`` etc. are accepted). Paste
    the text into a ```` ```mermaid ```` fence of a Markdown page; the docs
    site embeds exactly this text. See the module docstring for what is drawn.

    Example:
        >>> from gridflow.spec import WorkflowSpec
        >>> spec = WorkflowSpec.from_dict({
        ...     "name": "ticket", "version": 1, "initial": "open",
        ...     "labels": {"en": "Ticket", "zh": "工单"},
        ...     "states": [{"name": "open", "label_en": "Open", "label_zh": "待办"},
        ...                {"name": "done", "label_en": "Done", "label_zh": "完成",
        ...                 "terminal": True}],
        ...     "transitions": [
        ...         {"trigger": "finish", "source": "open", "dest": "done",
        ...          "label_en": "Finish", "label_zh": "完成"},
        ...         {"trigger": "comment", "source": "*", "dest": None,
        ...          "label_en": "Comment", "label_zh": "备注"}]})
        >>> print(mermaid(spec), end="")
        stateDiagram-v2
            %% ticket@1: Ticket (generated by gridflow.interop.diagram)
            classDef terminal font-weight:bold,stroke-width:3px
            state "Open" as open
            state "Done" as done
            [*] --> open
            open --> done: Finish
            done --> [*]
            note right of open
                ↻ Comment (any open state)
            end note
            class done terminal
    """
    lang = _lang(lang)
    ids = _mermaid_ids(spec)
    lines = ["stateDiagram-v2",
             f"    %% {_mermaid_text(spec.key)}: {_mermaid_text(spec.label(lang))} "
             "(generated by gridflow.interop.diagram)",
             "    classDef terminal font-weight:bold,stroke-width:3px"]
    for state in spec.states:
        lines.append(f'    state "{_mermaid_text(state.label(lang))}" as {ids[state.name]}')
        extra = _deadline_line(state, lang)
        if extra:
            lines.append(f"    {ids[state.name]} : {_mermaid_text(extra)}")
    lines.append(f"    [*] --> {ids[spec.initial]}")
    notes: dict[str, list[str]] = {}
    any_word = _WORDS[lang]["any"]
    for edge in edges(spec, lang):
        if edge.dest is None:
            suffix = f" {any_word}" if edge.wildcard else ""
            notes.setdefault(edge.source, []).extend(
                f"{_INTERNAL}{_mermaid_text(label)}{suffix}" for label in edge.labels)
            continue
        lines.append(f"    {ids[edge.source]} --> {ids[edge.dest]}: "
                     f"{_mermaid_text(edge.label)}")
    terminal = [ids[s.name] for s in spec.states if s.terminal]
    lines.extend(f"    {ident} --> [*]" for ident in terminal)
    for name in spec.state_names:  # notes in state order: stable output
        if name in notes:
            lines.append(f"    note right of {ids[name]}")
            lines.extend(f"        {text}" for text in notes[name])
            lines.append("    end note")
    if terminal:
        lines.append(f"    class {','.join(terminal)} terminal")
    return "\n".join(lines) + "\n"


# -- Graphviz DOT ------------------------------------------------------------------


def _dot_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _dot_lines(spec: WorkflowSpec, lang: str) -> Iterator[str]:
    words = _WORDS[lang]
    yield f"digraph {_dot_string(spec.name)} {{"
    yield (f"    label={_dot_string(f'{spec.label(lang)} ({spec.key})')}; labelloc=t; "
           "rankdir=TB;")
    yield '    node [shape=box, style="rounded"];'
    yield "    __start [shape=point, width=0.15, label=\"\"];"
    for state in spec.states:
        label = state.label(lang)
        extra = _deadline_line(state, lang)
        if extra:
            label = f"{label}\n{extra}"
        style = ["rounded"]
        attrs_ = [f"label={_dot_string(label)}"]
        if state.terminal:
            style.append("bold")
            attrs_.append("peripheries=2")
        if state.name == spec.initial:
            style.append("filled")
            attrs_.append('fillcolor="#eef6f6"')
        if len(style) > 1:
            attrs_.append(f"style={_dot_string(','.join(style))}")
        yield f"    {_dot_string(state.name)} [{', '.join(attrs_)}];"
    yield (f"    __start -> {_dot_string(spec.initial)} "
           f"[tooltip={_dot_string(words['initial'])}];")
    for edge in edges(spec, lang):
        src = _dot_string(edge.source)
        if edge.dest is None:
            for label in edge.labels:
                text = f"{_INTERNAL}{label}" + (f" {words['any']}" if edge.wildcard else "")
                yield (f"    {src} -> {src} [label={_dot_string(text)}, style=dashed, "
                       'color="#777777", fontcolor="#555555", arrowhead=open];')
            continue
        yield f"    {src} -> {_dot_string(edge.dest)} [label={_dot_string(edge.label)}];"
    yield "}"


def dot(spec: WorkflowSpec, lang: str = "en") -> str:
    """The state diagram of ``spec`` as Graphviz DOT text (render with ``dot -Tsvg``).

    Same content as `mermaid`; internal transitions are dashed grey self-loops,
    terminal states have a double, bold border, the initial state is filled.
    Node ids are the state names (quoted), so the text diffs well.

    Example:
        >>> from gridflow.workflows import GRID_CASE
        >>> text = dot(GRID_CASE, lang="zh")
        >>> '"triaged" -> "joint_action" [label="派遣联合处置"];' in text
        True
        >>> '"joint_action" -> "joint_action" [label="↻ 部门处置完毕", style=dashed' in text
        True
    """
    return "\n".join(_dot_lines(spec, _lang(lang))) + "\n"


def render(spec: WorkflowSpec, format: str = "mermaid", lang: str = "en") -> str:
    """The diagram of ``spec`` in ``format`` (``"mermaid"`` or ``"dot"``).

    Example:
        >>> from gridflow.workflows import GRID_CASE
        >>> render(GRID_CASE, "dot").startswith("digraph")
        True
        >>> render(GRID_CASE, "svg")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        gridflow.interop.diagram.DiagramError: unknown diagram format 'svg'; choose one of: ...
    """
    if format == "mermaid":
        return mermaid(spec, lang)
    if format == "dot":
        return dot(spec, lang)
    raise DiagramError(f"unknown diagram format {format!r}; choose one of: {', '.join(FORMATS)}")
