"""The match engine against a brute-force reading of matching.md (tests/support/match_oracle).

Every path must give the oracle's answer: without the index (row-major scan),
with the index (codes, exact checks, summaries), sharded and merged, and the
torch path (run on the CPU here; the CUDA device is tested where there is one).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.match_oracle import OracleResult, oracle
from workers.core import match_engine, match_index
from workers.core.errors import Cancelled, InputError
from workers.core.match import (
    MatchHit,
    MatchQuery,
    MatchResult,
    build_match_index,
    has_match_index,
    match,
    merge_results,
    shard_bounds,
)
from workers.core.store import SourceInfo, StateSet, StateSetWriter

try:
    import torch

    HAS_CUDA = bool(torch.cuda.is_available())
except ImportError:  # pragma: no cover - torch is a dependency
    HAS_CUDA = False

requires_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")


def _near(x: float, steps: int) -> float:
    v = np.float32(x)
    for _ in range(abs(steps)):
        v = np.nextafter(v, np.float32(math.copysign(np.inf, steps)), dtype=np.float32)
    return float(v)


# Discrete levels, so that runs, ties and values exactly at a threshold happen,
# plus values a few float32 steps around the thresholds on both scales (they
# land in the index codes that need the exact check) and NaN and infinities.
LEVELS = [-1.0, -0.3, 0.0, 0.3, 0.5, 1.0, math.nan, math.inf, -math.inf]
EDGES = [_near(0.3, k) for k in (-2, -1, 1, 2)] + [
    _near(math.atanh(0.3), k) for k in (-2, -1, 0, 1, 2)
]
THRESHOLDS = [0.0, 0.3, -0.3, 0.5, 0.9]


def write_stateset(path: Path, raw: np.ndarray, transform: str = "tanh") -> StateSet:
    n, d = raw.shape
    with StateSetWriter(path) as w:
        w.set_tokens(np.zeros(n, dtype=np.int32), ["x"])
        w.add_source(
            SourceInfo(id="s0", name="states", layer=1, kind="c", cells=d, transform=transform),
            n,
            lambda a, b: raw[a:b],
        )
        w.commit()
    return StateSet.open(path)


def hits_of(result: MatchResult) -> list[tuple[int, int, int, int]]:
    return [(h.position, h.length, h.intersection, h.union) for h in result.hits]


def assert_same(result: MatchResult, want: OracleResult, m: int, what: str) -> None:
    assert hits_of(result) == want.hits, what
    assert result.strict_histogram == want.strict, what
    assert result.fuzzy_histogram == want.fuzzy, what
    assert result.candidates == want.candidates, what
    assert result.exact and result.unscored == 0, what
    for h in result.hits:
        assert h.missing == m - h.intersection
        assert h.jaccard == h.intersection / h.union


def oracle_for(raw: np.ndarray, q: MatchQuery, source_transform: str) -> OracleResult:
    return oracle(
        raw,
        list(q.cells),
        q.threshold,
        q.transform or source_transform,
        q.zero_left,
        q.zero_right,
        q.min_length,
        q.max_length,
        q.length,
        q.limit,
        q.range_start,
        q.range_end,
    )


@st.composite
def matrices(draw: st.DrawFn) -> tuple[np.ndarray, str]:
    n = draw(st.integers(1, 32))
    d = draw(st.integers(1, 6))
    pool = LEVELS + EDGES if draw(st.booleans()) else LEVELS
    flat = draw(st.lists(st.sampled_from(pool), min_size=n * d, max_size=n * d))
    return np.array(flat, dtype=np.float32).reshape(n, d), draw(st.sampled_from(["tanh", "none"]))


@st.composite
def queries(draw: st.DrawFn, n: int, d: int) -> MatchQuery:
    cells = draw(st.lists(st.integers(0, d - 1), min_size=1, max_size=d, unique=True))
    mode = draw(st.sampled_from(["default", "min", "minmax", "exact"]))
    lengths: dict[str, int | None] = {}
    if mode == "min":
        lengths = {"min_length": draw(st.one_of(st.none(), st.integers(1, 4)))}
    elif mode == "minmax":
        lo = draw(st.integers(1, 4))
        lengths = {"min_length": lo, "max_length": draw(st.integers(lo, lo + 6))}
    elif mode == "exact":
        lengths = {"length": draw(st.integers(1, 5))}
    range_start, range_end = 0, None
    if draw(st.booleans()):
        range_start = draw(st.integers(0, n - 1))
        range_end = draw(st.one_of(st.none(), st.integers(range_start, n - 1)))
    return MatchQuery(
        cells=tuple(cells),
        threshold=draw(st.sampled_from(THRESHOLDS)),
        zero_left=draw(st.integers(0, 3)),
        zero_right=draw(st.integers(0, 3)),
        limit=draw(st.sampled_from([1, 2, 3, 7, 50, 1000])),
        range_start=range_start,
        range_end=range_end,
        transform=draw(st.sampled_from([None, "tanh", "none"])),
        **lengths,  # type: ignore[arg-type]
    )


def _shard_merge(ss: StateSet, q: MatchQuery, size: int, use_index: bool) -> MatchResult:
    parts = [
        match(ss, "s0", q, shard=b, use_index=use_index) for b in shard_bounds(ss.length, size)
    ]
    return merge_results(parts, q.limit)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), case=matrices())
def test_engine_equals_oracle_on_every_path(
    data: st.DataObject, case: tuple[np.ndarray, str]
) -> None:
    raw, transform = case
    n, d = raw.shape
    with tempfile.TemporaryDirectory() as tmp:
        ss = write_stateset(Path(tmp) / "ss", raw, transform)
        qs = [data.draw(queries(n, d)) for _ in range(3)]
        wants = [oracle_for(raw, q, transform) for q in qs]
        for q, want in zip(qs, wants, strict=True):
            assert_same(match(ss, "s0", q, use_index=False), want, len(q.cells), "row-major")
        build_match_index(ss.path)
        assert has_match_index(ss, "s0")
        for q, want in zip(qs, wants, strict=True):
            m = len(q.cells)
            assert_same(match(ss, "s0", q), want, m, "index")
            size = data.draw(st.integers(1, n))
            assert_same(_shard_merge(ss, q, size, True), want, m, f"shards of {size}, index")
            assert_same(_shard_merge(ss, q, size, False), want, m, f"shards of {size}, rows")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), case=matrices())
def test_torch_path_equals_oracle(data: st.DataObject, case: tuple[np.ndarray, str]) -> None:
    from workers.core import match_torch

    raw, transform = case
    n, d = raw.shape
    with tempfile.TemporaryDirectory() as tmp:
        ss = write_stateset(Path(tmp) / "ss", raw, transform)
        build_match_index(ss.path)
        for use_index in (True, False):
            q = data.draw(queries(n, d))
            want = oracle_for(raw, q, transform)
            s, e = 0, n
            if data.draw(st.booleans()):
                size = data.draw(st.integers(1, n))
                parts = [
                    match_torch.run_query(ss, "s0", q, b, torch_device="cpu", use_index=use_index)
                    for b in shard_bounds(n, size)
                ]
                got = merge_results(parts, q.limit)
            else:
                got = match_torch.run_query(
                    ss, "s0", q, (s, e), torch_device="cpu", use_index=use_index
                )
            assert_same(got, want, len(q.cells), f"torch, index={use_index}")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 200),
    on_prob=st.sampled_from([0.1, 0.5, 0.9]),
    zl=st.integers(0, 3),
    zr=st.integers(0, 3),
    seed=st.integers(0, 2**32 - 1),
)
def test_one_cell_runs_to_the_corpus_edges(
    n: int, on_prob: float, zl: int, zr: int, seed: int
) -> None:
    """m = 1 over longer random runs, on at the first and last position as often as not."""
    rng = np.random.default_rng(seed)
    raw = np.where(rng.random((n, 3)) < on_prob, 1.0, -1.0).astype(np.float32)
    raw[0, 0] = 1.0
    raw[-1, 0] = 1.0
    q = MatchQuery(cells=(0,), threshold=0.5, zero_left=zl, zero_right=zr, limit=1000)
    want = oracle_for(raw, q, "none")
    with tempfile.TemporaryDirectory() as tmp:
        ss = write_stateset(Path(tmp) / "ss", raw, "none")
        assert_same(match(ss, "s0", q), want, 1, "rows")
        build_match_index(ss.path)
        assert_same(match(ss, "s0", q), want, 1, "index")


def test_long_runs_use_the_summaries_and_stay_exact(tmp_path: Path) -> None:
    """Runs much longer than a summary block, with values to check inside them."""
    rng = np.random.default_rng(3)
    n, d = 5000, 5
    raw = np.full((n, d), 2.0, dtype=np.float32)
    for c in range(d):
        for cut in rng.integers(0, n, size=6):
            raw[cut : cut + int(rng.integers(1, 4)), c] = -2.0
    # values that need the exact check, inside long runs, both sides of the threshold
    raw[rng.integers(0, n, 40), rng.integers(0, d, 40)] = _near(math.atanh(0.3), 1)
    raw[rng.integers(0, n, 40), rng.integers(0, d, 40)] = _near(math.atanh(0.3), -1)
    raw[rng.integers(0, n, 5), rng.integers(0, d, 5)] = math.nan
    ss = write_stateset(tmp_path / "ss", raw, "tanh")
    build_match_index(ss.path)
    for cells, zl, zr in (((0, 1, 2), 1, 0), ((3,), 0, 0), ((0, 4), 0, 2), ((1, 2, 3, 4), 2, 1)):
        q = MatchQuery(cells=cells, threshold=0.3, zero_left=zl, zero_right=zr, limit=200)
        want = oracle_for(raw, q, "tanh")
        assert_same(match(ss, "s0", q), want, len(cells), "index")
        assert_same(match(ss, "s0", q, use_index=False), want, len(cells), "rows")
        assert_same(_shard_merge(ss, q, 777, True), want, len(cells), "shards")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), case=matrices(), threads=st.integers(2, 5))
def test_parallel_parts_equal_the_oracle(
    data: st.DataObject, case: tuple[np.ndarray, str], threads: int
) -> None:
    raw, transform = case
    n, d = raw.shape
    saved = match_engine._MIN_PART
    match_engine._MIN_PART = 1  # split even tiny corpora
    try:
        with tempfile.TemporaryDirectory() as tmp:
            ss = write_stateset(Path(tmp) / "ss", raw, transform)
            build_match_index(ss.path)
            q = data.draw(queries(n, d))
            want = oracle_for(raw, q, transform)
            m = len(q.cells)
            assert_same(match(ss, "s0", q, threads=threads), want, m, "parts, index")
            assert_same(
                match(ss, "s0", q, threads=threads, use_index=False), want, m, "parts, rows"
            )
    finally:
        match_engine._MIN_PART = saved


@st.composite
def wide_matrices(draw: st.DrawFn) -> tuple[np.ndarray, str]:
    """Up to 20 cells of few levels: counts that reach past the eight levels that
    ``low_levels`` counts side by side."""
    n = draw(st.integers(1, 64))
    d = draw(st.integers(3, 20))
    pool = [-1.0, 0.0, 0.5, 1.0, math.nan] + ([_near(0.3, k) for k in (-1, 1)])
    flat = draw(st.lists(st.sampled_from(pool), min_size=n * d, max_size=n * d))
    return np.array(flat, dtype=np.float32).reshape(n, d), draw(st.sampled_from(["tanh", "none"]))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    case=st.one_of(matrices(), wide_matrices()),
    threads=st.integers(1, 3),
    per_hit=st.sampled_from([0, 1, 64]),
)
def test_levels_left_out_of_the_stream_equal_the_oracle(
    data: st.DataObject, case: tuple[np.ndarray, str], threads: int, per_hit: int
) -> None:
    """The scan that leaves the low levels out of the stream (counting their
    candidates instead), forced on at any size, with and without parallel parts,
    including the rescan when the top K reaches below the levels kept."""
    raw, transform = case
    n, d = raw.shape
    saved = (
        match_engine._MIN_PART,
        match_engine._PRUNE_PER_HIT,
        match_engine._PRUNE_MIN_CANDIDATES,
    )
    match_engine._MIN_PART = 1
    match_engine._PRUNE_PER_HIT = per_hit
    match_engine._PRUNE_MIN_CANDIDATES = 0
    try:
        with tempfile.TemporaryDirectory() as tmp:
            ss = write_stateset(Path(tmp) / "ss", raw, transform)
            build_match_index(ss.path)
            for _ in range(3):
                q = data.draw(queries(n, d))
                want = oracle_for(raw, q, transform)
                got = match(ss, "s0", q, threads=threads)
                assert_same(got, want, len(q.cells), f"levels left out, {threads} threads")
    finally:
        match_engine._MIN_PART, match_engine._PRUNE_PER_HIT, match_engine._PRUNE_MIN_CANDIDATES = (
            saved
        )


def test_low_levels_counts_each_level_like_the_oracle() -> None:
    """``low_levels`` against a direct reading of the contract: per level, the
    maximal runs of ``count >= lv`` whose minimum is ``lv``, by minimum length."""
    from workers.core import match_kernels as K

    rng = np.random.default_rng(5)
    for trial in range(40):
        n = int(rng.integers(1, 400))
        m = int(rng.integers(1, 14))
        bits = rng.random((n, m)) < rng.uniform(0.1, 0.9)
        mask = (bits * (1 << np.arange(m, dtype=np.uint64))).sum(axis=1).astype(np.uint64)
        count = bits.sum(axis=1)
        own_s = int(rng.integers(0, 3)) if trial % 2 else 0
        for len_lo in (1, 2):
            got = np.zeros(10, dtype=np.int64)
            K.low_levels(mask, 0, 0, n, own_s, len_lo, got)
            want = np.zeros(10, dtype=np.int64)
            for lv in range(1, 9):
                t = 0
                while t < n:
                    if count[t] >= lv:
                        a = t
                        while t < n and count[t] >= lv:
                            t += 1
                        if count[a:t].min() == lv and t - a >= len_lo and a >= own_s:
                            want[lv] += 1
                    else:
                        t += 1
            assert got.tolist() == want.tolist(), (trial, len_lo, own_s)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), case=matrices())
def test_reads_of_large_corpora_equal_the_oracle(
    data: st.DataObject, case: tuple[np.ndarray, str]
) -> None:
    """Above RELEASE_ABOVE tokens, scattered reads go through pread and pages are handed back."""
    raw, transform = case
    n, d = raw.shape
    saved = match_engine.RELEASE_ABOVE
    match_engine.RELEASE_ABOVE = 0
    try:
        with tempfile.TemporaryDirectory() as tmp:
            ss = write_stateset(Path(tmp) / "ss", raw, transform)
            build_match_index(ss.path)
            q = data.draw(queries(n, d))
            want = oracle_for(raw, q, transform)
            assert_same(match(ss, "s0", q), want, len(q.cells), "released, index")
            assert_same(match(ss, "s0", q, use_index=False), want, len(q.cells), "released")
    finally:
        match_engine.RELEASE_ABOVE = saved


def test_more_than_64_selected_cells(tmp_path: Path) -> None:
    """Masks of several 64-bit words (the general kernel)."""
    rng = np.random.default_rng(9)
    n, d = 120, 150
    raw = np.where(rng.random((n, d)) < 0.85, 1.0, -1.0).astype(np.float32)
    raw[rng.random((n, d)) < 0.02] = math.nan
    ss = write_stateset(tmp_path / "ss", raw, "none")
    build_match_index(ss.path)
    for cells, zl, zr in ((tuple(range(0, 140, 2)), 1, 0), (tuple(range(d)), 0, 2)):
        q = MatchQuery(cells=cells, threshold=0.5, zero_left=zl, zero_right=zr, min_length=1)
        want = oracle_for(raw, q, "none")
        assert_same(match(ss, "s0", q), want, len(cells), "index")
        assert_same(match(ss, "s0", q, use_index=False), want, len(cells), "rows")
        assert_same(_shard_merge(ss, q, 17, True), want, len(cells), "shards")


def test_budget_makes_the_answer_inexact_and_says_how_much_is_missing(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    raw = np.where(rng.random((400, 4)) < 0.5, 1.0, -1.0).astype(np.float32)
    ss = write_stateset(tmp_path / "ss", raw, "none")
    q = MatchQuery(cells=(0,), threshold=0.5, min_length=1, limit=10)
    full = match(ss, "s0", q)
    assert full.exact and full.unscored == 0
    needed = full.scored
    assert needed > 10  # every run ties at I = 1
    cut = match(ss, "s0", q, budget=7)
    assert not cut.exact
    assert cut.scored == 7
    assert cut.unscored == needed - 7
    assert cut.candidates == full.candidates
    assert cut.strict_histogram == full.strict_histogram
    assert cut.fuzzy_histogram == full.fuzzy_histogram
    # what is returned is still true of each candidate, best first
    truth = {(h[0], h[1]): h for h in oracle_for(raw, replace(q, limit=1000), "none").hits}
    for h in cut.hits:
        assert truth[(h.position, h.length)] == (h.position, h.length, h.intersection, h.union)
    assert [h.sort_key() for h in cut.hits] == sorted(h.sort_key() for h in cut.hits)


# --------------------------------------------------------------------------- #
# Query validation and serialisation
# --------------------------------------------------------------------------- #


def _q(**kw: object) -> MatchQuery:
    base: dict[str, object] = {"cells": (0, 1), "threshold": 0.3}
    base.update(kw)
    return MatchQuery(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"cells": ()}, "at least one cell"),
        ({"cells": (0, 0)}, "only once"),
        ({"cells": (0, 9)}, "cell 9 does not exist"),
        ({"cells": (-1,)}, "cell -1 does not exist"),
        ({"cells": (True,)}, "not a cell number"),
        ({"threshold": math.nan}, "finite number"),
        ({"threshold": math.inf}, "finite number"),
        ({"threshold": 1e31}, "between"),
        ({"zero_left": -1}, "zero_left"),
        ({"zero_right": 1001}, "zero_right"),
        ({"min_length": 0}, "min_length"),
        ({"max_length": 0}, "max_length"),
        ({"length": 0}, "length"),
        ({"min_length": 5, "max_length": 3}, "smaller than min_length"),
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"range_start": -1}, "range_start"),
        ({"range_start": 10}, "range_start"),
        ({"range_start": 5, "range_end": 4}, "range_end"),
        ({"range_end": 10}, "range_end"),
        ({"transform": "sigmoid"}, "transform"),
    ],
)
def test_validation_explains_what_is_wrong(kw: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        _q(**kw).validate(10, 4)


def test_exact_length_overrides_min_and_max() -> None:
    _q(min_length=5, max_length=3, length=4).validate(10, 4)
    assert _q(min_length=5, max_length=3, length=4).length_bounds == (4, 4)
    assert _q(min_length=None).length_bounds == (1, 1 << 62)


def test_query_json_round_trip_and_cache_key() -> None:
    q = _q(cells=(3, 1, 2), zero_right=2, max_length=9, range_start=4, transform="none")
    assert MatchQuery.from_json(json.loads(json.dumps(q.to_json()))) == q
    assert q.cache_key("s0") == _q(
        cells=(1, 2, 3), zero_right=2, max_length=9, range_start=4, transform="none"
    ).cache_key("s0")
    assert q.cache_key("s0") != q.cache_key("s1")
    assert _q().cache_key("s0") != _q(threshold=0.30000001).cache_key("s0")
    assert _q(threshold=0.0).cache_key("s0") == _q(threshold=-0.0).cache_key("s0")
    assert _q(length=3, min_length=1).cache_key("s") == _q(length=3, max_length=8).cache_key("s")
    assert len(q.cache_key("s0")) == 64


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "JSON object"),
        ({"cells": "1,2", "threshold": 0.3}, "list of cell numbers"),
        ({"cells": [1], "threshold": "high"}, "must be a number"),
        ({"cells": [1], "threshold": 0.3, "limit": 2.5}, "limit"),
        ({"cells": [1], "threshold": 0.3, "colour": "red"}, "unknown match query fields: colour"),
        ({"cells": [1], "threshold": 0.3, "transform": 1}, "transform"),
    ],
)
def test_from_json_refuses_wrong_types(data: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        MatchQuery.from_json(data)  # type: ignore[arg-type]


def test_result_json_round_trip() -> None:
    r = MatchResult(
        hits=[MatchHit(position=3, length=2, intersection=1, union=4, jaccard=0.25, missing=1)],
        strict_histogram=[0, 1],
        fuzzy_histogram=[0, 2, 1],
        exact=False,
        unscored=5,
        candidates=9,
        scored=3,
    )
    assert MatchResult.from_json(json.loads(json.dumps(r.to_json()))) == r


def test_match_refuses_a_bad_device_budget_or_shard(tmp_path: Path) -> None:
    ss = write_stateset(tmp_path / "ss", np.ones((10, 3), dtype=np.float32))
    q = _q()
    with pytest.raises(InputError, match="device"):
        match(ss, "s0", q, device="tpu")
    with pytest.raises(InputError, match="budget"):
        match(ss, "s0", q, budget=0)
    with pytest.raises(InputError, match="shard"):
        match(ss, "s0", q, shard=(5, 5))
    with pytest.raises(InputError, match="shard"):
        match(ss, "s0", q, shard=(0, 11))
    with pytest.raises(InputError, match="cell 3 does not exist"):
        match(ss, "s0", _q(cells=(3,)))


def test_shard_bounds_cover_the_corpus() -> None:
    assert shard_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert shard_bounds(3, 10) == [(0, 3)]
    with pytest.raises(ValueError, match="shard"):
        shard_bounds(10, 0)


def test_merge_of_nothing_is_an_empty_exact_answer() -> None:
    r = merge_results([], 5)
    assert r.hits == [] and r.exact and r.strict_histogram == [] and r.candidates == 0


# --------------------------------------------------------------------------- #
# The index
# --------------------------------------------------------------------------- #


FLOATS = st.floats(width=32, allow_nan=True, allow_infinity=True)
THRESHOLDS_ANY = st.one_of(
    st.sampled_from([0.0, 0.3, -0.3, 0.9, 1.0, -1.0, 0.99999994, 5.0, 20.0, -20.0]),
    st.floats(-25.0, 25.0),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(FLOATS, min_size=2, max_size=50))
def test_codes_sort_like_values(values: list[float]) -> None:
    arr = np.array(values, dtype=np.float32)
    fin = ~np.isnan(arr)
    index_codes = match_index.encode(arr).astype(np.int64)
    key_codes = match_engine.key_encode(arr).astype(np.int64)
    for codes in (index_codes, key_codes):
        order = np.lexsort((codes[fin], arr[fin]))  # by value; -0.0 == 0.0 ties by code
        assert np.all(np.diff(codes[fin][order]) >= 0)
    assert np.all(index_codes[~fin] == 0) and np.all(index_codes[fin] >= 1)
    assert np.all((key_codes[~fin] <= 0x7F) | (key_codes[~fin] >= 0xFF80))


@settings(max_examples=400, deadline=None)
@given(
    value=st.one_of(FLOATS, st.sampled_from(EDGES)),
    threshold=THRESHOLDS_ANY,
    transform=st.sampled_from(["tanh", "none"]),
)
def test_code_classes_never_contradict_the_exact_comparison(
    value: float, threshold: float, transform: str
) -> None:
    arr = np.array([value], dtype=np.float32)
    exact = bool(match_engine.apply_transform(arr, transform)[0] >= threshold)
    on_lo, on_hi, ck_lo, ck_hi = match_engine.index_classes(transform, threshold)
    code = int(match_index.encode(arr)[0])
    if on_lo <= code <= on_hi:
        assert exact
    elif not ck_lo <= code <= ck_hi:
        assert not exact
    on_lo, on_hi, ck_lo, ck_hi, sp1, sp2 = match_engine.key_classes(transform, threshold)
    key = int(match_engine.key_encode(arr)[0])
    if on_lo <= key <= on_hi:
        assert exact
    elif not (ck_lo <= key <= ck_hi or key in (sp1, sp2)):
        assert not exact


def test_a_threshold_leaves_few_codes_to_check() -> None:
    for transform in ("tanh", "none"):
        on_lo, _on_hi, ck_lo, ck_hi = match_engine.index_classes(transform, 0.3)
        assert on_lo == ck_hi + 1 and ck_hi - ck_lo <= 1


def test_index_is_built_once_atomically_and_reports_progress(tmp_path: Path) -> None:
    raw = np.random.default_rng(1).normal(size=(700, 3)).astype(np.float32)
    ss = write_stateset(tmp_path / "ss", raw)
    assert not has_match_index(ss, "s0")
    seen: list[float] = []
    build_match_index(ss.path, progress=lambda f, _msg: seen.append(f))
    assert has_match_index(ss, "s0")
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)
    codes = tmp_path / "ss" / "index" / "match" / "s0" / "codes.npy"
    stamp = codes.stat().st_mtime_ns
    build_match_index(ss.path)  # nothing to do
    assert codes.stat().st_mtime_ns == stamp
    assert np.array_equal(np.load(codes), match_index.encode(raw).T)
    assert [p.name for p in (tmp_path / "ss" / "index" / "match").iterdir()] == ["s0"]


def test_cancelled_build_leaves_nothing_behind(tmp_path: Path) -> None:
    raw = np.zeros((300, 2), dtype=np.float32)
    ss = write_stateset(tmp_path / "ss", raw)

    def cancel(_f: float, _m: str) -> None:
        raise Cancelled

    with pytest.raises(Cancelled):
        build_match_index(ss.path, progress=cancel)
    assert not has_match_index(ss, "s0")
    assert list((tmp_path / "ss" / "index" / "match").iterdir()) == []


def test_unknown_source_is_refused_before_any_work(tmp_path: Path) -> None:
    ss = write_stateset(tmp_path / "ss", np.zeros((5, 2), dtype=np.float32))
    with pytest.raises(InputError, match="no source 'nope'"):
        build_match_index(ss.path, source_ids=["nope"])
    assert not (tmp_path / "ss" / "index" / "match" / "nope").exists()


def test_stale_or_foreign_index_is_ignored_and_rebuilt(tmp_path: Path) -> None:
    raw = np.random.default_rng(2).normal(size=(50, 3)).astype(np.float32)
    ss = write_stateset(tmp_path / "ss", raw)
    build_match_index(ss.path)
    meta_path = tmp_path / "ss" / "index" / "match" / "s0" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["version"] = 0
    meta_path.write_text(json.dumps(meta))
    os.utime(meta_path, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert not has_match_index(ss, "s0")
    q = _q(cells=(0, 2), threshold=0.2)
    assert hits_of(match(ss, "s0", q)) == oracle_for(raw, q, "tanh").hits
    stale = tmp_path / "ss" / "index" / "match" / ".tmp-s0-dead"
    stale.mkdir()
    os.utime(stale, (0, 0))
    build_match_index(ss.path)
    assert has_match_index(ss, "s0")
    assert not stale.exists()


def test_a_deleted_state_set_is_not_held_open(tmp_path: Path) -> None:
    raw = np.random.default_rng(4).normal(size=(60, 3)).astype(np.float32)
    first = write_stateset(tmp_path / "a", raw)
    second = write_stateset(tmp_path / "b", raw)
    build_match_index(first.path)
    q = _q(cells=(0, 1), threshold=0.2)
    match(first, "s0", q)
    assert any(k[0].startswith(str(tmp_path / "a")) for k in match_engine._MAPS)
    shutil.rmtree(tmp_path / "a")
    match(second, "s0", q)
    assert not any(k[0].startswith(str(tmp_path / "a")) for k in match_engine._MAPS)


# --------------------------------------------------------------------------- #
# CUDA
# --------------------------------------------------------------------------- #


@pytest.mark.requires_cuda
@requires_cuda
def test_cuda_gives_the_cpu_answers(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    n, d = 20_000, 40
    raw = np.zeros((n, d), dtype=np.float32)
    x = np.zeros(d, dtype=np.float32)
    for t in range(n):
        x = 0.9 * x + rng.normal(0, 0.45, d).astype(np.float32)
        raw[t] = x
    raw[rng.integers(0, n, 50), rng.integers(0, d, 50)] = math.nan
    ss = write_stateset(tmp_path / "ss", raw)
    build_match_index(ss.path)
    for i in range(6):
        cells = tuple(int(c) for c in rng.choice(d, size=1 + i * 2, replace=False))
        q = MatchQuery(cells=cells, threshold=0.3, zero_left=i % 3, zero_right=i % 2)
        want = match(ss, "s0", q).to_json()
        for use_index in (True, False):
            got = match(ss, "s0", q, device="cuda", use_index=use_index)
            assert got.to_json() == want
        parts = [match(ss, "s0", q, shard=b, device="cuda") for b in shard_bounds(n, 3001)]
        merged = merge_results(parts, q.limit).to_json()
        # "scored" counts work, which sharding changes; the answer is the rest
        assert {**merged, "scored": 0} == {**want, "scored": 0}


def test_maps_are_populated_in_the_background_within_the_cap(tmp_path: Path) -> None:
    """A match maps the source and the index; below RELEASE_ABOVE the maps are
    populated once in the background, and not at all past the cap."""
    rng = np.random.default_rng(3)
    raw = rng.standard_normal((5000, 12)).astype(np.float32)
    ss = write_stateset(tmp_path / "ss", raw)
    build_match_index(ss.path)
    q = MatchQuery(cells=(0, 1, 2), threshold=0.3)
    saved = match_engine._POPULATE_BYTES
    try:
        match_engine._POPULATE_BYTES = 0
        match(ss, "s0", q)
        mine = [m for key, m in match_engine._MAPS.items() if key[0].startswith(str(ss.path))]
        assert len(mine) == 3 and all(m.populating is None for m in mine)
        match_engine._POPULATE_BYTES = saved
        match(ss, "s0", q)
        assert all(m.populating is not None for m in mine)
        deadline = time.monotonic() + 30
        while match_engine.populating() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not match_engine.populating()
        threads = [m.populating for m in mine]
        assert_same(match(ss, "s0", q), oracle_for(raw, q, "tanh"), 3, "populated maps")
        assert [m.populating for m in mine] == threads  # once per map
    finally:
        match_engine._POPULATE_BYTES = saved


def test_result_histograms_from_pairs_are_made_when_read() -> None:
    pairs = ([[2, 3]], [[1, 1], [4, 2]])
    lazy = MatchResult([], None, None, True, 0, 5, histograms_sparse=pairs)
    dense = MatchResult([], [0, 0, 3], [0, 1, 0, 0, 2], True, 0, 5)
    assert lazy == dense and lazy.to_json() == dense.to_json()
    lazy.strict_histogram = [0, 0, 4]  # the other one is kept, the pairs no longer hold
    assert lazy.histograms_sparse is None and lazy.fuzzy_histogram == [0, 1, 0, 0, 2]
    with pytest.raises(ValueError, match="needs its histograms"):
        MatchResult([], None, [0], True, 0, 0)
