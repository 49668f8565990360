"""Exact phrase search against a brute-force scan."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import workers.core.search as search_module
from workers.core.search import phrase_search

VOCAB = ["a", "b", "c", "a", ""]  # "a" twice (ids 0 and 3), an unused gap at 4


def brute(tokens: list[int], vocab: list[str], phrase: list[str], limit: int) -> list[int]:
    words = [vocab[t] for t in tokens]
    hits = [
        i
        for i in range(len(words) - len(phrase) + 1)
        if phrase and words[i : i + len(phrase)] == phrase and "" not in phrase
    ]
    return hits[: max(limit, 0)]


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.integers(0, 3), min_size=1, max_size=60),
    st.lists(st.sampled_from(["a", "b", "c", "zz", ""]), min_size=0, max_size=4),
    st.integers(-1, 8),
)
def test_matches_brute_force(tokens: list[int], phrase: list[str], limit: int) -> None:
    arr = np.array(tokens, dtype=np.int32)
    assert phrase_search(arr, VOCAB, phrase, limit) == brute(tokens, VOCAB, phrase, limit)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 2), min_size=1, max_size=80), st.integers(1, 3), st.integers(1, 30))
def test_block_boundaries(tokens: list[int], length: int, limit: int) -> None:
    arr = np.array(tokens, dtype=np.int32)
    phrase = [VOCAB[t] for t in tokens[:length]]
    old = search_module._BLOCK
    search_module._BLOCK = 4  # force matches that straddle blocks
    try:
        got = phrase_search(arr, VOCAB, phrase, limit)
    finally:
        search_module._BLOCK = old
    assert got == brute(tokens, VOCAB, phrase, limit)


def test_examples() -> None:
    tokens = np.array([0, 1, 2, 3, 1, 2, 0, 1], dtype=np.int32)
    assert phrase_search(tokens, VOCAB, ["a", "b"], 10) == [0, 3, 6]
    assert phrase_search(tokens, VOCAB, ["a", "b", "c"], 10) == [0, 3]
    assert phrase_search(tokens, VOCAB, ["a", "b"], 2) == [0, 3]
    assert phrase_search(tokens, VOCAB, ["nope"], 10) == []
    assert phrase_search(tokens, VOCAB, [], 10) == []
    assert phrase_search(tokens, VOCAB, ["b", "a", "b", "c", "a", "b", "c", "a", "b"], 10) == []
