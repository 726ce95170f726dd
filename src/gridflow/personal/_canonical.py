"""One unambiguous byte encoding for tuples of strings (commitments, AES-GCM context).

Each part is its UTF-8 bytes preceded by their length as 4 bytes big-endian,
so that no two different tuples encode alike: ``("ab", "c")`` and
``("a", "bc")`` differ, and no separator character can be smuggled in.
"""

from __future__ import annotations

__all__ = ["encode_parts"]


def encode_parts(*parts: str | bytes) -> bytes:
    """Length-prefixed concatenation of ``parts`` (str as UTF-8, lone surrogates kept).

    Example:
        >>> encode_parts("ab", "c") != encode_parts("a", "bc")
        True
        >>> encode_parts("王").hex()
        '00000003e78e8b'
    """
    chunks = []
    for part in parts:
        raw = part.encode("utf-8", "surrogatepass") if part.__class__ is str else (
            part.encode("utf-8", "surrogatepass") if isinstance(part, str) else bytes(part))
        chunks.append(len(raw).to_bytes(4, "big"))
        chunks.append(raw)
    return b"".join(chunks)
