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
