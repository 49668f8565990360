"""Sparse histograms: what a Match row and a shard's answer keep, and back."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from backend.matching.codec import dense, result_from_row, result_row, sparse
from workers.core.match import MatchHit, MatchResult

trimmed = st.lists(st.integers(0, 5), max_size=60).map(
    lambda h: h[: max((i + 1 for i, c in enumerate(h) if c), default=0)]
)


@given(trimmed)
def test_sparse_keeps_exactly_the_lengths_that_occur(hist):
    pairs = sparse(hist)
    assert pairs == [[i, c] for i, c in enumerate(hist) if c]
    assert dense(pairs) == hist


@given(
    st.dictionaries(st.integers(1, 20_000), st.integers(1, 100_000), max_size=30),
)
def test_sparse_of_long_histograms_with_any_counts(entries):
    size = max(entries, default=-1) + 1
    hist = [0] * size
    for length, count in entries.items():
        hist[length] = count
    assert sparse(hist) == sorted([length, count] for length, count in entries.items())
    assert dense(sparse(hist)) == hist


def test_a_result_survives_its_row():
    result = MatchResult(
        hits=[MatchHit(7, 3, 2, 5, 0.4, 1), MatchHit(100, 2, 2, 6, 1 / 3, 1)],
        strict_histogram=[0, 0, 4],
        fuzzy_histogram=[0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 1] + [0] * 999_988 + [2],
        exact=False,
        unscored=12,
        candidates=42,
        scored=30,
    )
    row = result_row(result)
    assert row["fuzzy"] == [[2, 9], [11, 1], [1_000_000, 2]]
    assert result_from_row(row) == result


def test_the_hit_schema_describes_exactly_what_the_engine_stores():
    """The API hands stored hits through as the engine wrote them; the schema's hit
    serializer must name the same fields, so the two cannot drift apart."""
    from backend.matching.api import MatchHitContextSerializer, MatchHitSerializer
    from workers.core.match import MatchHit

    engine = set(MatchHit(3, 2, 1, 4, 0.25, 1).to_json())
    assert set(MatchHitSerializer().fields) == engine
    assert engine < set(MatchHitContextSerializer().fields)


@given(
    st.lists(st.integers(0, 3), max_size=40),
    st.lists(st.lists(st.integers(1, 90), max_size=6), max_size=3),
    st.lists(st.integers(0, 3), max_size=60),
)
def test_the_engines_own_sparse_histograms_equal_the_codecs(first, long, later):
    """The collector's pairs (the codec's fast path) equal `sparse` of its dense lists,
    also when a long length of one chunk falls inside a later chunk's dense part."""
    import numpy as np

    from workers.core.match_engine import Collector

    col = Collector(m=4, limit=5, budget=100)
    col.add_hist(
        np.array(first, dtype=np.int64),
        np.array(first, dtype=np.int64),
        *(np.array(x, dtype=np.int64) for x in (long[0] if long else [], long[-1] if long else [])),
    )
    col.add_hist(np.array(later, dtype=np.int64), np.array(later[::-1], dtype=np.int64))
    strict, fuzzy = col.histograms()
    assert col.histograms_sparse() == (sparse(strict), sparse(fuzzy))
