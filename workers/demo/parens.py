"""The nested-parenthesis language of the LSTMVis paper, as characters.

Each line is a well-formed sequence of ``(`` and ``)`` nested at most
``MAX_DEPTH`` deep, with letters in between; lines end with a newline. A model
that predicts the next character well must count: ``)`` is impossible at depth 0,
``(`` impossible at ``MAX_DEPTH``, and a line can only end at depth 0. So cells
that follow the nesting depth appear, which is what the demo shows.
"""

from __future__ import annotations

import numpy as np

__all__ = ["FILLERS", "MAX_DEPTH", "depth_track", "parens_text"]

MAX_DEPTH = 5
FILLERS = "abcd"


def parens_text(n_chars: int, seed: int) -> str:
    """About ``n_chars`` characters of the language (whole lines), reproducibly."""
    rng = np.random.default_rng(seed)
    out: list[str] = []
    total = 0
    while total < n_chars:
        line: list[str] = []
        depth = 0
        length = int(rng.integers(20, 80))
        while len(line) < length or depth > 0:
            r = rng.random()
            closing = len(line) >= length
            if depth > 0 and (closing or r < 0.3):
                line.append(")")
                depth -= 1
            elif depth < MAX_DEPTH and r < 0.6:
                line.append("(")
                depth += 1
            else:
                line.append(FILLERS[int(rng.integers(0, len(FILLERS)))])
        line.append("\n")
        out.append("".join(line))
        total += len(line)
    return "".join(out)


def depth_track(chars: list[str] | str) -> np.ndarray:
    """Nesting depth after reading each character (float32, one value per character)."""
    arr = np.frombuffer("".join(chars).encode("utf-32-le"), dtype=np.uint32)
    step = np.where(arr == ord("("), 1, np.where(arr == ord(")"), -1, 0)).astype(np.int64)
    depth: np.ndarray = np.cumsum(step).astype(np.float32)
    return depth
