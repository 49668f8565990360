"""How a match answer is kept (in the Match row, between shard tasks) and shown.

The engine's histograms are dense lists indexed by length, up to the longest
candidate. A low-level candidate can span most of the corpus, so at 10^6 tokens a
list of 10^6 entries with a few hundred non-zero ones is common: as JSON that is
megabytes, and writing, reading and sending it cost several times the match
itself. Everything here therefore keeps histograms sparse, as `[length, count]`
pairs ascending by length (non-zero counts only), and makes a dense list again
only where a format asks for one (LSTMVis' `/api/v2/match`, the engine's merge).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from workers.core.match import MatchResult


def sparse(hist: Sequence[int]) -> list[list[int]]:
    """`[[length, count], ...]` of the non-zero entries of a dense histogram."""
    if len(hist) == 0:
        return []
    if isinstance(hist, np.ndarray):
        arr = hist.astype(np.int64, copy=False)
    else:
        arr = np.fromiter(hist, dtype=np.int64, count=len(hist))
    idx = np.flatnonzero(arr)
    pairs: list[list[int]] = np.stack([idx, arr[idx]], axis=1).tolist()
    return pairs


def dense(pairs: Sequence[Sequence[int]]) -> list[int]:
    """The dense histogram (index = length, ending at the longest length) of `pairs`."""
    from workers.core.match_types import histogram_from_pairs

    return histogram_from_pairs([list(p) for p in pairs])


def result_row(result: MatchResult) -> dict[str, Any]:
    """The JSON kept for an answer (whole or one shard's): hits, sparse histograms, counts."""
    strict, fuzzy = result.histograms_sparse or (
        sparse(result.strict_histogram),
        sparse(result.fuzzy_histogram),
    )
    return {
        "hits": [h.to_json() for h in result.hits],
        "strict": strict,
        "fuzzy": fuzzy,
        "exact": bool(result.exact),
        "unscored": int(result.unscored),
        "candidates": int(result.candidates),
        "scored": int(result.scored),
    }


def result_from_row(row: dict[str, Any]) -> MatchResult:
    """The engine's result again (for merging shards; the dense histograms are made
    from the pairs when they are read)."""
    from workers.core.match import MatchHit, MatchResult

    return MatchResult(
        hits=[MatchHit.from_json(h) for h in row["hits"]],
        strict_histogram=None,
        fuzzy_histogram=None,
        histograms_sparse=(row["strict"], row["fuzzy"]),
        exact=bool(row["exact"]),
        unscored=int(row["unscored"]),
        candidates=int(row["candidates"]),
        scored=int(row.get("scored", 0)),
    )
