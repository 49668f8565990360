"""Finding a phrase (an exact token sequence) in a corpus.

LSTMVis searched through an optional full-text index; StateLab keeps the corpus
as an int32 token array, so an exact phrase is found by comparing ids. The scan
runs over blocks of start positions with numpy: the first token narrows each
block to a few candidates, and each further token filters those, so the cost is
one vectorised pass over the ids and memory stays bounded by the block size. It
stops as soon as ``limit`` positions are found.
"""

from __future__ import annotations

import numpy as np

__all__ = ["phrase_search"]

_BLOCK = 1 << 20


def _ids_for(vocab: list[str], phrase: list[str]) -> list[np.ndarray] | None:
    wanted = set(phrase)
    found: dict[str, list[int]] = {}
    for i, token in enumerate(vocab):
        if token in wanted:
            found.setdefault(token, []).append(i)
    if any(token not in found or token == "" for token in phrase):
        return None
    return [np.asarray(found[token], dtype=np.int64) for token in phrase]


def _matches(column: np.ndarray, ids: np.ndarray) -> np.ndarray:
    if ids.size == 1:
        out: np.ndarray = column == ids[0]
        return out
    return np.isin(column, ids)


def phrase_search(tokens: np.ndarray, vocab: list[str], phrase: list[str], limit: int) -> list[int]:
    """Start positions (ascending) of the first ``limit`` occurrences of ``phrase``.

    ``tokens`` is the corpus' id array (N,), ``vocab`` maps id to token. A phrase
    with a token that is not in the vocab, an empty phrase or ``limit <= 0`` give
    ``[]``. Vocab entries that repeat a token string all match it.
    """
    if limit <= 0 or not phrase:
        return []
    ids = _ids_for(vocab, phrase)
    if ids is None:
        return []
    n = int(tokens.shape[0])
    m = len(phrase)
    last_start = n - m  # inclusive
    found: list[int] = []
    for a in range(0, last_start + 1, _BLOCK):
        b = min(last_start + 1, a + _BLOCK)  # starts [a, b)
        cand = np.flatnonzero(_matches(np.asarray(tokens[a:b]), ids[0])) + a
        if cand.size:
            chunk = np.asarray(tokens[a : b + m - 1])
            for j in range(1, m):
                if not cand.size:
                    break
                cand = cand[_matches(chunk[cand - a + j], ids[j])]
        found.extend(cand[: limit - len(found)].tolist())
        if len(found) >= limit:
            break
    return found
