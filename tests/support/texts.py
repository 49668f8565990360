"""Plain-text corpora of a given size in bytes, for tests of uploads that need a file
of an exact length whose content still reads as words (a corpus job then parses it).

The i-th word is ``words[(a * i + i // b) % len(words)]``: the ``i // b`` term keeps
the sequence from repeating with the short period of ``a * i`` alone, so no piece
of an upload equals another by accident.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["word_text"]


def word_text(size: int, words: Sequence[bytes], *, a: int, b: int) -> bytes:
    """`size` bytes of `words`, each followed by a space (the last one cut at `size`)."""
    out = bytearray()
    i = 0
    while len(out) < size:
        out += words[(i * a + i // b) % len(words)] + b" "
        i += 1
    return bytes(out[:size])
