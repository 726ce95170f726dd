"""Griffe extension for the API reference: reads gridflow's docstrings as written.

- gridflow's docstrings use a Google-style ``Example:`` section holding doctest
  blocks. Griffe's Google parser only knows the plural ``Examples:`` and would render
  the singular as an admonition of plain Markdown (doctest lines become quotes and
  ``['open']`` a broken link). The heading is read as ``Examples:`` instead; the
  source is untouched, so doctests and ``help()`` are unchanged.
- Some module docstrings hold reStructuredText "simple tables" (columns framed by
  ``===`` lines), which read well in ``help()`` but are not Markdown; they become
  Markdown tables.
- Module constants are documented with Sphinx-style ``#:`` comments above them,
  which Griffe ignores; they become the attribute's docstring.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import griffe

_EXAMPLE = re.compile(r"^(\s*)Example:[ \t]*$", re.MULTILINE)
_BORDER = re.compile(r"^[ \t]*=+(?:[ \t]+=+)+[ \t]*$")


def _spans(border: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in re.finditer(r"=+", border)]


def _width(char: str) -> int:
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def _cells(line: str, spans: list[tuple[int, int]]) -> list[str]:
    # Columns are display columns: a CJK character is two wide, as the author saw it.
    # The last column runs to the end of the line, as in reStructuredText.
    starts = [start for start, _ in spans][1:]
    cells = [""] * len(spans)
    column = 0
    for char in line:
        index = sum(1 for start in starts if column >= start)
        cells[index] += char
        column += _width(char)
    return [cell.strip() for cell in cells]


def rst_tables_to_markdown(text: str) -> str:
    """Rewrite reStructuredText simple tables (header, then rows) as Markdown tables.

    Columns are counted in display width (CJK characters are two wide). A row whose
    first cell is empty, or whose only non-empty cell is the first, continues the row
    above it.
    """
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        # A table: border, header, border, rows..., border.
        if (_BORDER.match(lines[i]) and i + 2 < len(lines) and _BORDER.match(lines[i + 2])):
            spans = _spans(lines[i])
            indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
            end = next((j for j in range(i + 3, len(lines)) if _BORDER.match(lines[j])), None)
            if end is not None:
                header = _cells(lines[i + 1], spans)
                rows: list[list[str]] = []
                for line in lines[i + 3:end]:
                    if not line.strip():
                        continue
                    cells = _cells(line, spans)
                    # A row with an empty first cell, or only a first cell, continues
                    # the row above (a long name or value wrapped onto two lines).
                    if rows and (not cells[0] or not any(cells[1:])):
                        rows[-1] = [f"{a} {b}".strip()
                                    for a, b in zip(rows[-1], cells, strict=True)]
                    else:
                        rows.append(cells)
                out.append(indent + "| " + " | ".join(header) + " |")
                out.append(indent + "|" + "---|" * len(header))
                out.extend(indent + "| " + " | ".join(c.replace("|", "\\|") for c in row) + " |"
                           for row in rows)
                i = end + 1
                continue
        out.append(lines[i])
        i += 1
    return "\n".join(out)


class GridflowDocstrings(griffe.Extension):
    """Normalise ``Example:`` headings and pick up ``#:`` comments."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            value = _EXAMPLE.sub(r"\1Examples:", obj.docstring.value)
            if "==" in value:
                value = rst_tables_to_markdown(value)
            obj.docstring.value = value

    def on_attribute_instance(
        self, *, attr: griffe.Attribute, agent: Any = None, **kwargs: Any
    ) -> None:
        if attr.docstring is not None or not attr.lineno or attr.filepath is None:
            return
        try:
            lines = attr.lines_collection[attr.filepath]  # type: ignore[index]
        except KeyError:
            return
        comment: list[str] = []
        index = attr.lineno - 2
        while index >= 0 and lines[index].strip().startswith("#:"):
            comment.insert(0, lines[index].strip()[2:].strip())
            index -= 1
        if comment:
            attr.docstring = griffe.Docstring(
                "\n".join(comment),
                lineno=index + 2,
                parent=attr,
                parser=getattr(agent, "docstring_parser", None),
                parser_options=getattr(agent, "docstring_options", None),
            )
