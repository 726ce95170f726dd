"""Screening exported text for personal values (导出筛查): find them, mask them, count them.

An export (Open311, CSV) is built from fields that are not personal by
declaration; `Screen` is the second line of defence, for a personal value
typed where it does not belong (a name in ``category``, a phone in a note).
It finds, in any string:

- **known values**, the case's own personal values, however they are
  spelt: both sides are normalised (NFKC, so full-width ``１３８`` and
  ``ｗａｎｇ`` are read as ``138`` and ``wang``; case-folded; invisible format
  characters such as zero-width spaces dropped; whitespace and the
  separators ``- _ . · ・ • ( ) / \\`` and dash variants removed), so
  ``王 小 明``, ``１３８ 1234 5678``, ``138-1234-5678`` and
  ``W.Xiao@Example.COM`` are all caught for the values ``王小明``,
  ``13812345678`` and ``w.xiao@example.com``. A known value is matched as a
  substring of the normalised text wherever it occurs, also glued to other
  digits or letters. Values shorter than 2 normalised characters are not
  screened (a one-character value would mask that character everywhere);
- **patterns**, for values nobody declared: mainland mobile numbers
  (1[3-9] and 9 more digits, optionally +86 / 0086, single separators
  allowed between digits), landlines with an area code (``021-6234 5678``,
  ``(0571)88888888``), 18-character resident ID numbers (region code, a real
  birth date 1900-2099, 3 digits, a digit or X; separators allowed) and
  e-mail addresses. A pattern needs no digit right before or after it, so
  dates (``2026-10-01``), times, amounts and lane numbers (``324弄``) are not
  taken for phones.

The ID detector does **not** require the ISO 7064 MOD 11-2 check digit:
a mistyped ID (one wrong digit) is still a person's ID, and leaking it
costs more than masking an 18-digit number that merely looks like one (the
real-birth-date rule already keeps most other 18-digit numbers out).
`id_checksum_ok` is there for callers who want to tell them apart.

``clean(text)`` replaces each hit, by its span in the original text: a
known value by ``***`` (nothing of it is kept), a pattern-only hit by its
mask (`gridflow.personal.masks.mask`, e.g. ``138****5678``); overlapping
hits are merged first. All known values are searched with one compiled
regular expression built as a trie (shared prefixes factored out), so the
cost grows with the text, not with values times text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from datetime import date
from typing import Any, Final

import attrs

from gridflow.personal.masks import mask

__all__ = ["Hit", "Screen", "id_checksum_ok", "normalize"]

_SEPARATOR_CHARS: Final = "-_.·・•()/\\‐‑‒–—―−"
_MIN_VALUE: Final = 2
_HIDDEN: Final = "***"

# At most one separator between two digits (138 1234 5678, 138-1234-5678,
# 138.1234.5678), but never a line break or a tab: "¥1.50" at the end of one
# line and a date on the next are not a phone.
_S = r"[ \-._]?"
_PATTERNS: Final = (
    ("id_number", re.compile(r"(?<!\d)[1-9](?:" + _S + r"\d){16}" + _S + r"[\dx](?!\d)")),
    ("phone", re.compile(
        r"(?<!\d)(?:(?:\+|00)?86[\s\-]?)?1" + _S + r"[3-9](?:" + _S + r"\d){9}(?!\d)")),
    ("phone", re.compile(
        r"(?<!\d)\(?0(?:10|2\d|[3-9]\d{2})\)?[\s\-._]?[2-9](?:" + _S + r"\d){6,7}(?!\d)")),
    ("email", re.compile(
        r"[a-z0-9._%+\-]+\s*@\s*[a-z0-9\-]+(?:\.[a-z0-9\-]+)*\.[a-z]{2,}")),
)
# A case id (uuid4 hex, 32) or a hash (SHA-256 hex, 64) holds digit runs that can
# read as a phone or an ID number ("…a064884027802aa…"); a pattern match inside
# such a token is not personal data. Only exactly these lengths: a phone typed
# next to a few letters ("tel13812345678") is still caught.
_HEX_TOKEN: Final = re.compile(r"(?<![0-9a-z])(?:[0-9a-f]{64}|[0-9a-f]{32})(?![0-9a-z])")
_ID_WEIGHTS: Final = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def id_checksum_ok(id_number: str) -> bool:
    """Whether an 18-character resident ID's last character is its ISO 7064 MOD 11-2 check.

    Example:
        >>> id_checksum_ok("11010519491231002X"), id_checksum_ok("110105194912310021")
        (True, False)
    """
    compact = re.sub(r"[\s\-]", "", unicodedata.normalize("NFKC", id_number)).upper()
    if not re.fullmatch(r"\d{17}[\dX]", compact):
        return False
    total = sum(int(d) * w for d, w in zip(compact, _ID_WEIGHTS, strict=False))
    return "10X98765432"[total % 11] == compact[17]


def _id_structure_ok(compact: str) -> bool:
    # Region code starts 1-9 (the regex), then a birth date that exists.
    try:
        born = date(int(compact[6:10]), int(compact[10:12]), int(compact[12:14]))
    except ValueError:
        return False
    return 1900 <= born.year <= 2099


def _fold_char(char: str) -> str:
    if unicodedata.category(char) == "Cf":
        return ""  # zero-width spaces, joiners, direction marks: invisible, so dropped
    return unicodedata.normalize("NFKC", char).casefold()


class _Table(dict[int, str]):
    """A `str.translate` table filled on first sight of each character.

    Translating runs in C; normalising character by character (rather than
    the whole string) is what lets every output character be traced back to
    the input character it came from (`_origins`).
    """

    def __init__(self, *, compact: bool) -> None:
        super().__init__()
        self._compact = compact

    def __missing__(self, code: int) -> str:
        out = _fold_char(chr(code))
        if self._compact:
            out = "".join(c for c in out if not (c.isspace() or c in _SEPARATOR_CHARS))
        if len(self) < _TABLE_LIMIT:
            self[code] = out
        return out


_TABLE_LIMIT: Final = 1 << 16
_FOLD = _Table(compact=False)  # the patterns' view: separators kept
_COMPACT = _Table(compact=True)  # the known values' view: separators removed


def _origins(text: str, table: _Table) -> list[int]:
    """For each character of ``text.translate(table)``, its index in ``text``."""
    origin: list[int] = []
    for i, char in enumerate(text):
        origin.extend([i] * len(table[ord(char)]))
    return origin


def normalize(text: str) -> str:
    """The form both known values and screened text are compared in.

    Example:
        >>> normalize("１３８ 1234-5678"), normalize("W.Xiao@Example.COM")
        ('13812345678', 'wxiao@examplecom')
        >>> normalize("王\\u200b小 明")
        '王小明'
    """
    return text.translate(_COMPACT)


def _leaves(value: Any) -> Iterator[str]:
    if value is None:
        return
    if isinstance(value, dict):
        for child in value.values():
            yield from _leaves(child)
    elif isinstance(value, list | tuple | set | frozenset):
        for child in value:
            yield from _leaves(child)
    else:
        yield value if isinstance(value, str) else str(value)


def _trie_regex(words: Iterable[str]) -> re.Pattern[str] | None:
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}
    if not trie:
        return None

    def build(node: dict[str, Any]) -> str:
        # A chain of single children is plain text: no group per character,
        # and no recursion for it (values may be long free text).
        out = ""
        while len(node) == 1 and "" not in node:
            (char, node), = node.items()
            out += re.escape(char)
        branches = [re.escape(char) + build(child)
                    for char, child in sorted(node.items()) if char]
        if not branches:
            return out
        group = branches[0] if len(branches) == 1 else f"(?:{'|'.join(branches)})"
        if "" in node:
            # A value ends here and longer ones go on: the greedy "?" tries
            # the longer first, so the longest known value wins.
            group = (f"(?:{group})" if len(branches) == 1 else group) + "?"
        return out + group

    # Inside a lookahead, so that overlapping occurrences are all found
    # (``abcd`` and ``cdef`` in ``abcdef``) and merged, leaving no fragment.
    return re.compile(f"(?=({build(trie)}))")


@attrs.frozen
class Hit:
    """One masked span of a screened text: ``text[start:end]``, and what it was.

    ``kind`` is ``"value"`` for a known value (or overlapping hits including
    one), ``"mixed"`` for overlapping pattern hits none of which covers the
    span, else the pattern's kind: ``phone``, ``id_number``, ``email``.

    Example:
        >>> Screen(["王小明"]).find("报告人王小明。")
        [Hit(start=3, end=6, kind='value')]
    """

    start: int
    end: int
    kind: str


class Screen:
    """Finds and masks personal values in exported strings (rules in the module docstring).

    ``values`` are the known personal values (strings; numbers are read as
    their text, lists and objects by their leaves). ``patterns=False`` turns
    the phone / ID / e-mail detectors off. A screen holds normalised values
    and never shows them: its ``repr`` gives only their number.

    Example:
        >>> screen = Screen(["王小明", "13812345678", "w.xiao@example.com"])
        >>> screen.clean("王 小明 的电话 １３８-1234-5678，邮箱 W.Xiao@Example.COM")
        ('*** 的电话 ***，邮箱 ***', 3)
        >>> Screen().clean("身份证 310104199001011234, 手机 13912345678, 2026-10-01 长宁支路324弄")
        ('身份证 310***********1234, 手机 139****5678, 2026-10-01 长宁支路324弄', 2)
        >>> screen
        Screen(3 values, patterns=True)
    """

    def __init__(self, values: Iterable[Any] = (), *, patterns: bool = True) -> None:
        normalised = {normalize(leaf) for value in values for leaf in _leaves(value)}
        self._values = frozenset(v for v in normalised if len(v) >= _MIN_VALUE)
        self._regex = _trie_regex(sorted(self._values))
        self._patterns = patterns

    def __repr__(self) -> str:
        return f"Screen({len(self._values)} values, patterns={self._patterns})"

    def find(self, text: str) -> list[Hit]:
        """The spans of ``text`` to mask, merged where they overlap, in order.

        Example:
            >>> Screen(["13812345678"]).find("tel: 138 1234 5678")
            [Hit(start=5, end=18, kind='value')]
        """
        spans: list[tuple[int, int, str]] = []
        if self._regex is not None:
            compact = text.translate(_COMPACT)
            matches = list(self._regex.finditer(compact))
            if matches:
                origin = _origins(text, _COMPACT)  # only for the few texts with a hit
                spans.extend((origin[m.start(1)], origin[m.end(1) - 1] + 1, "value")
                             for m in matches)
        if self._patterns:
            folded = text.translate(_FOLD)
            origin = []
            hex_tokens = [m.span() for m in _HEX_TOKEN.finditer(folded)]
            for kind, regex in _PATTERNS:
                if kind == "email" and "@" not in folded:
                    continue  # the costliest pattern, and most text has no "@"
                for match in regex.finditer(folded):
                    if kind == "id_number" and not _id_structure_ok(
                            re.sub(r"[\s\-._]", "", match.group())):
                        continue
                    if hex_tokens and any(lo <= match.start() and match.end() <= hi
                                          for lo, hi in hex_tokens):
                        continue
                    origin = origin or _origins(text, _FOLD)
                    spans.append((origin[match.start()], origin[match.end() - 1] + 1, kind))
        return _merge(spans)

    def clean(self, text: str) -> tuple[str, int]:
        """``text`` with every hit masked, and the number of hits.

        Example:
            >>> Screen(["王小明"]).clean("联系人：王小明；备用 021-62341234")
            ('联系人：***；备用 021-****1234', 2)
        """
        hits = self.find(text)
        if not hits:
            return text, 0
        out: list[str] = []
        pos = 0
        for hit in hits:
            out.append(text[pos:hit.start])
            piece = text[hit.start:hit.end]
            out.append(_HIDDEN if hit.kind in ("value", "mixed") else mask(hit.kind, piece))
            pos = hit.end
        out.append(text[pos:])
        return "".join(out), len(hits)

    def clean_all(self, texts: Iterable[str]) -> tuple[list[str], int]:
        """`clean` of each text, and the total number of hits.

        Example:
            >>> Screen(["王小明"]).clean_all(["王小明", "无", "13812345678"])
            (['***', '无', '138****5678'], 2)
        """
        cleaned: list[str] = []
        total = 0
        for text in texts:
            masked, hits = self.clean(text)
            cleaned.append(masked)
            total += hits
        return cleaned, total


def _merge(spans: list[tuple[int, int, str]]) -> list[Hit]:
    # Sorted by start, then end: of two hits starting together the longer comes last.
    spans.sort()
    merged: list[Hit] = []
    for start, end, kind in spans:
        if not merged or start >= merged[-1].end:
            merged.append(Hit(start, end, kind))
            continue
        last = merged[-1]
        if "value" in (kind, last.kind):
            joined = "value"
        elif end <= last.end:
            continue  # inside the last pattern hit: its mask covers it
        elif start == last.start:
            joined = kind  # same start, longer: this hit covers the whole span
        else:
            joined = "mixed"
        merged[-1] = Hit(last.start, max(end, last.end), joined)
    return merged
