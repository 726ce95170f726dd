"""Plain-text layout for the terminal: display widths (CJK characters take two
columns), wrapping, and tables that fit a given width.

Nothing here knows about cases or workflows; `gridflow._display` lays its
timelines and figures out with it.

Example:
    >>> width("网格 ok")
    7
    >>> wrap("长宁支路324弄附近无名小巷", 10)
    ['长宁支路', '324弄附近', '无名小巷']
"""

from __future__ import annotations

import shutil
import unicodedata
from collections.abc import Collection, Sequence

__all__ = ["clip", "pad", "table", "terminal_width", "width", "wrap", "wrap_parts"]

#: The width used when the output is not a terminal and ``COLUMNS`` is not set:
#: wide enough that a file or a pipe gets whole lines, narrow enough to read.
DEFAULT_WIDTH = 120
#: Narrower than this and a table is not worth laying out in columns.
MIN_WIDTH = 20


def terminal_width(default: int = DEFAULT_WIDTH) -> int:
    """The terminal's width in columns (``COLUMNS`` first, as `shutil` reads it),
    ``default`` when the output is not a terminal; never below `MIN_WIDTH`.

    Example:
        >>> import os
        >>> os.environ["COLUMNS"] = "72"
        >>> terminal_width()
        72
        >>> del os.environ["COLUMNS"]
    """
    return max(MIN_WIDTH, shutil.get_terminal_size((default, 24)).columns)


def _char_width(ch: str) -> int:
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in "WF" else 1


def width(text: str) -> int:
    """How many terminal columns ``text`` takes.

    Example:
        >>> width("abc"), width("回头看"), width("")
        (3, 6, 0)
    """
    return sum(_char_width(ch) for ch in text)


def pad(text: str, columns: int, *, right: bool = False) -> str:
    """``text`` padded with spaces to ``columns`` (on the left with ``right=True``).

    Example:
        >>> pad("网格", 6) + "|", pad("7", 3, right=True)
        ('网格  |', '  7')
    """
    fill = " " * max(0, columns - width(text))
    return fill + text if right else text + fill


def clip(text: str, columns: int) -> str:
    """``text`` cut to ``columns``, ending in ``…`` if anything was cut.

    Example:
        >>> clip("华阳路街道", 7), clip("ok", 7)
        ('华阳路…', 'ok')
    """
    if width(text) <= columns:
        return text
    out, used = [], 0
    for ch in text:
        w = _char_width(ch)
        if used + w > columns - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + "…"


def _is_wide(ch: str) -> bool:
    return _char_width(ch) == 2


#: Chinese punctuation that may not begin a line (行首禁则): it stays with what precedes it.
_NO_BREAK_BEFORE = frozenset("、，。；：！？）」』】》〉”’…")


def wrap(text: str, columns: int) -> list[str]:
    """``text`` broken into lines of at most ``columns``: at spaces where a Latin
    word would be split, anywhere between CJK characters (as Chinese is set),
    inside a word only when the word alone is wider than a line, and never
    before a closing Chinese punctuation mark. Never loses a character; leading
    and trailing spaces of a line are dropped.

    Example:
        >>> wrap("deadline 2026-04-05 15:00 passed", 12)
        ['deadline', '2026-04-05', '15:00 passed']
        >>> wrap("拆除地锁、清运", 10)
        ['拆除地锁、', '清运']
        >>> wrap("", 5)
        ['']
    """
    columns = max(columns, 2)
    lines: list[str] = []
    line, used = "", 0
    # Tokens: a run of non-space non-wide characters (a word), one wide character,
    # or a run of spaces.
    tokens: list[str] = []
    for ch in text:
        last = tokens[-1][-1] if tokens else " "
        joins = (ch in _NO_BREAK_BEFORE and last != " ") or (
            bool(tokens) and not _is_wide(ch) and not _is_wide(last)
            and (ch == " ") == (last == " "))
        if joins:
            tokens[-1] += ch
        else:
            tokens.append(ch)
    for token in tokens:
        w = width(token)
        if token.startswith(" "):
            if line:
                line, used = line + token, used + w
            continue
        if used + w <= columns:
            line, used = line + token, used + w
            continue
        if line.strip():
            lines.append(line.rstrip())
        line, used = "", 0
        while w > columns:  # a word wider than a line: split it
            head = clip(token, columns + 1)[:-1]
            if not head:
                head = token[0]
            lines.append(head)
            token = token[len(head):]
            w = width(token)
        line, used = token, w
    lines.append(line.rstrip())
    if len(lines) > 1 and not lines[-1]:
        lines.pop()
    return lines


def wrap_parts(parts: Sequence[str], columns: int, *, sep: str = " · ",
               indent: str = "  ") -> list[str]:
    """``parts`` joined by ``sep`` on as few lines as fit ``columns``, breaking
    only between parts where it can (continuation lines start with ``indent``);
    a part wider than a line is wrapped itself.

    Example:
        >>> wrap_parts(["■ Case c-1", "Grid case", "grid 第一综合网格"], 24)
        ['■ Case c-1 · Grid case', '  · grid 第一综合网格']
    """
    lines: list[str] = []
    line = ""
    for part in parts:
        candidate = f"{line}{sep}{part}" if line else part
        if width(candidate) <= columns or not line:
            line = candidate
            continue
        lines.append(line)
        line = indent + sep.lstrip() + part
    lines.append(line)
    out: list[str] = []
    for n, text in enumerate(lines):
        if width(text) <= columns:
            out.append(text)
            continue
        lead = "" if n == 0 else indent
        pieces = wrap(text[len(lead):], columns - width(indent))
        out += [lead + pieces[0], *(indent + p for p in pieces[1:])]
    return out


def _join(cells: Sequence[str], widths: Sequence[int], right: Collection[int],
          gap: str) -> str:
    parts = [pad(cell, widths[i], right=i in right) for i, cell in enumerate(cells)]
    return gap.join(parts).rstrip()


def _grid(rows: Sequence[Sequence[str]], widths: Sequence[int], flex: int,
          right: Collection[int], indent: str, gap: str) -> list[str]:
    """Each row on one line or more: the ``flex`` column wrapped to its width."""
    out = []
    for row in rows:
        pieces = wrap(row[flex], widths[flex]) if flex < len(row) else [""]
        for n, piece in enumerate(pieces):
            cells = [("" if n else cell) for cell in row]
            if flex < len(cells):
                cells[flex] = piece
            out.append(indent + _join(cells, widths, right, gap))
    return out


def table(rows: Sequence[Sequence[str]], columns: int | None = None, *, indent: str = "  ",
          gap: str = "  ", right: Collection[int] = (), flex: int = -1,
          stack: Sequence[Sequence[int]] | None = None, min_flex: int = 30) -> list[str]:
    """Lay ``rows`` out as aligned columns no wider than ``columns`` (any width if
    ``None``); returns the lines.

    ``right`` lists the columns aligned right (numbers). When the rows do not
    fit, the ``flex`` column (default the last) is wrapped onto more lines,
    down to ``min_flex`` columns; if the last column still has no room, it goes
    on lines of its own under each row (from the second column on); if even
    that does not fit, each row becomes a block: its cells grouped by ``stack``
    (lists of column indexes, default one cell a line), each group wrapped,
    the first group's first line at the indent and the rest under the second
    column.

    Example:
        >>> rows = [["受理数", "1"], ["按期结案率", "100.0%"]]
        >>> print("\\n".join(table(rows, right={1})))
          受理数           1
          按期结案率  100.0%
        >>> table([["a", "bbb ccc"]], 9, min_flex=3)
        ['  a  bbb', '     ccc']
        >>> table([["a", "bbb ccc ddd eee"]], 12)
        ['  a', '     bbb ccc', '     ddd eee']
    """
    if not rows:
        return []
    count = max(len(r) for r in rows)
    rows = [[*r, *([""] * (count - len(r)))] for r in rows]
    flex %= count
    natural = [max(width(r[i]) for r in rows) for i in range(count)]
    total = width(indent) + sum(natural) + width(gap) * (count - 1)
    if columns is None or total <= columns:
        return _grid(rows, natural, flex, right, indent, gap)
    room = columns - (total - natural[flex])
    if room >= min(min_flex, natural[flex]):
        widths = list(natural)
        widths[flex] = room
        return _grid(rows, widths, flex, right, indent, gap)
    last = count - 1
    head = width(indent) + sum(natural[:last]) + width(gap) * (last - 1)
    # Lines under a row start below its second column.
    under = indent + " " * (natural[0] + width(gap))
    room_under = max(columns - width(under), MIN_WIDTH // 2)
    if flex == last and count > 1 and head <= columns:
        out = []
        for row in rows:
            out.append(indent + _join(row[:last], natural[:last], right, gap))
            if row[last]:
                out += [under + piece for piece in wrap(row[last], room_under)]
        return out
    groups = stack or [[i] for i in range(count)]
    out = []
    for row in rows:
        for n, group in enumerate(groups):
            text = gap.join(row[i] for i in group if row[i])
            if not text and n:
                continue
            if n == 0:
                first, *rest = wrap(text, max(columns - width(indent), MIN_WIDTH // 2))
                out.append(indent + first)
                text = " ".join(rest)
                if not text:
                    continue
            out += [under + piece for piece in wrap(text, room_under)]
    return out
