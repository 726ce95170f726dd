"""Masks (脱敏): how a personal value is shown to someone not allowed to see it.

``mask(kind, value)`` never raises: any input (empty, a number, an object, a
malformed phone) gives a string, and a value it cannot read is shown as
``***``. An empty value masks to ``""`` (there is nothing to hide). The rules,
applied after NFKC normalisation (full-width ``１３８`` is read as ``138``):

- **name**: the first character of each part is kept, every other character
  becomes ``*``; parts are separated by spaces, ``·``, ``・``, ``.``, ``-``
  and apostrophes, which are kept: 王小明 → ``王**``, 欧阳娜娜 → ``欧***``,
  John Smith → ``J*** S****``, 阿卜杜·热合曼 → ``阿**·热**``. A one-character
  name becomes ``*``.
- **phone**: a mainland mobile number (11 digits, 1[3-9]…, optionally with
  +86 / 0086) keeps the first 3 and last 4 digits: ``138****5678`` (``+86
  138****5678``); a landline with its area code (0 + 2 or 3 digits, then 7
  or 8) keeps the area code and the last 4: ``021-****1234``; anything else
  keeps its last 4 digits (``****5678``), or none when it has 4 or fewer.
- **id_number**: an 18-character resident ID (17 digits and a digit or X)
  keeps the first 3 and last 4: ``310***********1234``; other lengths keep
  the last 4 characters (none when 4 or fewer).
- **email**: the first character of the local part, then ``***@`` and the
  domain: ``w***@example.com``; without an ``@``: ``***``.
- **address**: kept up to the street level, the rest becomes ``***``: the
  text is read left to right, each administrative or street marker (省 市
  区 县 镇 乡 街道 大道 公路 胡同 路 街 巷 村) extends the kept part, as does a
  lane number right after a street (``324弄``); the first other digit (a house,
  building or room number) ends it: ``上海市长宁区长宁支路324弄5号302室`` →
  ``上海市长宁区长宁支路324弄***``; with no marker before the first digit (most
  non-Chinese addresses): ``***``.
- **free_text**, **other**, and any unknown kind: ``***``.

`TOMBSTONE` is what a read shows for an erased value, `RESTRICTED` for a
value under restriction (PIPL art. 47(2)) shown to someone without the
auditor's right.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

__all__ = ["RESTRICTED", "TOMBSTONE", "mask"]

#: Shown in place of an erased value (its key is destroyed: it cannot be shown).
TOMBSTONE: Final = "[已删除 erased]"
#: Shown in place of a restricted value to readers without the auditor's right.
RESTRICTED: Final = "[已限制 restricted]"

_HIDDEN: Final = "***"
_NAME_SEPARATORS = re.compile(r"([\s·・•.\-'’]+)")
_MOBILE = re.compile(r"1[3-9]\d{9}")
_ID18 = re.compile(r"\d{17}[\dX]")
_ADDRESS_TOKEN = re.compile(
    r"(?P<lane>\d+弄)|(?P<mark>街道|大道|公路|胡同|省|市|区|县|镇|乡|路|街|巷|村)|(?P<digit>\d)"
)


def mask(kind: str, value: object) -> str:
    """``value`` masked for its ``kind`` (rules in the module docstring); never raises.

    Example:
        >>> mask("name", "王小明"), mask("phone", "13812345678"), mask("phone", "021-62341234")
        ('王**', '138****5678', '021-****1234')
        >>> mask("id_number", "310104199001011234"), mask("email", "wang@example.com")
        ('310***********1234', 'w***@example.com')
        >>> mask("address", "长宁支路324弄5号302室"), mask("free_text", "任何内容")
        ('长宁支路324弄***', '***')
        >>> mask("phone", None), mask("name", 42), mask("weird", "x")
        ('', '4*', '***')
    """
    try:
        text = "" if value is None else value if isinstance(value, str) else str(value)
        text = unicodedata.normalize("NFKC", text).strip()
        if not text:
            return ""
        rule = _RULES.get(kind)
        return _HIDDEN if rule is None else rule(text)
    except Exception:
        # A mask that fails must fail closed: show nothing rather than the value.
        return _HIDDEN


def _name(text: str) -> str:
    if len(text) == 1:
        return "*"
    parts = _NAME_SEPARATORS.split(text)
    return "".join(p if i % 2 else p[:1] + "*" * (len(p) - 1) for i, p in enumerate(parts))


def _last_four(chars: str) -> str:
    return "*" * len(chars) if len(chars) <= 4 else "*" * (len(chars) - 4) + chars[-4:]


def _phone(text: str) -> str:
    digits = re.sub(r"\D", "", text)
    if not digits:
        return _HIDDEN
    national, prefix = digits, ""
    for code in ("0086", "86"):
        rest = digits[len(code):]
        if digits.startswith(code) and _MOBILE.fullmatch(rest) and (
                code == "0086" or text.startswith("+") or len(digits) == 13):
            national, prefix = rest, "+86 "
            break
    if _MOBILE.fullmatch(national):
        return f"{prefix}{national[:3]}****{national[-4:]}"
    if re.fullmatch(r"0\d{9,11}", digits):
        # Area code: the first group when the number is written with one,
        # else 0 + 2 digits for 010 and 02x, 0 + 3 digits for the others.
        group = re.match(r"\s*\(?\s*(0\d{2,3})\s*\)?\s*[-\s]", text)
        area = group.group(1) if group else digits[:3] if digits[1] in "12" else digits[:4]
        local = digits[len(area):]
        if 7 <= len(local) <= 8:
            return f"{area}-{'*' * (len(local) - 4)}{local[-4:]}"
    return _last_four(digits)


def _id_number(text: str) -> str:
    compact = re.sub(r"[\s\-]", "", text).upper()
    if _ID18.fullmatch(compact):
        return f"{compact[:3]}{'*' * 11}{compact[-4:]}"
    return _last_four(compact)


def _email(text: str) -> str:
    local, at, domain = text.rpartition("@")
    if not at or not local.strip() or not domain.strip():
        return _HIDDEN
    return f"{local.strip()[0]}***@{domain.strip()}"


def _address(text: str) -> str:
    keep = 0
    for match in _ADDRESS_TOKEN.finditer(text):
        after_street = keep > 0 and match.start() == keep and text[keep - 1] in "路街巷道村同"
        if not (match.group("mark") or (match.group("lane") and after_street)):
            break
        keep = match.end()
    return f"{text[:keep]}{_HIDDEN}" if keep else _HIDDEN


_RULES = {
    "name": _name,
    "phone": _phone,
    "id_number": _id_number,
    "email": _email,
    "address": _address,
}
