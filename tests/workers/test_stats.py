"""Hypothesis statistics (workers/core/stats.py) against a brute-force reading.

The reference thresholds the whole matrix, finds the runs with plain Python and
counts; the matched ranges are also checked against the match engine's strict
histogram, and the p/q-values against scipy and a hand-written BH.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import hypergeom

from tests.support.match_oracle import on_matrix
from workers.core.match import MatchHit, MatchResult, match
from workers.core.stats import (
    Hypothesis,
    agreement_from_counts,
    benjamini_hochberg,
    covered_ranges,
    hypothesis_statistics,
    jaccard,
    ranges_jaccard,
    robustness,
    scan_hypothesis,
)
from workers.core.store import AnnotationInfo, SourceInfo, StateSet, StateSetWriter

LABELS = ["a", "b", "c"]


def write(path: Path, raw: np.ndarray, lab: np.ndarray, sc: np.ndarray) -> StateSet:
    n, d = raw.shape
    with StateSetWriter(path) as w:
        w.set_tokens(np.zeros(n, dtype=np.int32), ["x"])
        w.add_source(
            SourceInfo(id="s0", name="s", layer=1, kind="c", cells=d, transform="tanh"),
            n,
            lambda a, b: raw[a:b],
        )
        w.add_annotation(AnnotationInfo(name="lab", kind="discrete", labels=LABELS), lab)
        w.add_annotation(AnnotationInfo(name="sc", kind="scalar"), sc)
        w.commit()
    return StateSet.open(path)


def reference(raw, cells, thr, zl, zr, min_len, pos):  # type: ignore[no-untyped-def]
    on = on_matrix(raw, "tanh", thr)[:, cells]
    n = len(on)
    allon, anyon = on.all(axis=1), on.any(axis=1)
    pred = np.zeros(n, dtype=bool)
    ranges = []
    t = 0
    while t < n:
        if allon[t]:
            a = t
            while t + 1 < n and allon[t + 1]:
                t += 1
            if t - a + 1 >= min_len:
                pred[a : t + 1] = True
                left = not any(anyon[max(0, a - zl) : a])
                right = not any(anyon[t + 1 : t + 1 + zr])
                if left and right:
                    ranges.append((a, t))
        t += 1
    tp = int(np.sum(pred & pos))
    fp = int(np.sum(pred & ~pos))
    fn = int(np.sum(~pred & pos))
    return (tp, fp, fn, n - tp - fp - fn), ranges


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 100_000),
    n=st.integers(1, 200),
    m=st.integers(1, 3),
    zl=st.integers(0, 3),
    zr=st.integers(0, 3),
    min_len=st.integers(1, 4),
    rows=st.integers(1, 50),
)
def test_scan_matches_brute_force_and_match_engine(seed, n, m, zl, zr, min_len, rows):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    d = 4
    raw = rng.choice([-1.0, 0.5, 1.0, np.nan], p=[0.3, 0.1, 0.55, 0.05], size=(n, d))
    raw = raw.astype(np.float32)
    lab = rng.integers(0, 3, n).astype(np.int32)
    cells = sorted(rng.choice(d, m, replace=False).tolist())
    h = Hypothesis("s0", tuple(cells), 0.3, zl, zr, min_len)
    with tempfile.TemporaryDirectory() as tmp:
        ss = write(Path(tmp) / "ss", raw, lab, np.zeros(n, np.float32))
        got = scan_hypothesis(ss, h, "lab", label="b", rows=rows)
        strict = match(ss, "s0", h.query()).strict_histogram
    counts, ranges = reference(raw, cells, 0.3, zl, zr, min_len, lab == 1)
    assert (got["tp"], got["fp"], got["fn"], got["tn"]) == counts
    assert got["ranges"] == len(ranges) == sum(strict[min_len:])
    inside = np.zeros(4, dtype=np.int64)
    for a, b in ranges:
        inside[:3] += np.bincount(lab[a : b + 1], minlength=3)
    np.testing.assert_array_equal(got["inside"], inside)
    np.testing.assert_array_equal(got["totals"][:3], np.bincount(lab, minlength=3))


def test_hand_computed_case(tmp_path: Path) -> None:
    # one cell; on at 1-3 (run of 3) and 6 (run of 1); labels b at 2, 3, 4, 6
    raw = np.array([[-1], [1], [1], [1], [-1], [-1], [1], [-1]], dtype=np.float32)
    lab = np.array([0, 0, 1, 1, 1, 0, 1, 0], dtype=np.int32)
    sc = np.array([0, 0, 5, 5, 5, 0, 5, np.nan], dtype=np.float32)
    ss = write(tmp_path / "ss", raw, lab, sc)
    h = Hypothesis("s0", (0,), 0.3, zero_left=1, zero_right=0, min_length=2)
    out = hypothesis_statistics(ss, h, "lab", label="b", top_k=5)
    ag = out["agreement"]
    assert (ag["tp"], ag["fp"], ag["fn"], ag["tn"]) == (2, 1, 2, 3)
    assert ag["precision"] == pytest.approx(2 / 3)
    assert ag["recall"] == pytest.approx(0.5)
    assert ag["f1"] == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    rows = {r["label"]: r for r in out["enrichment"]}
    # inside = positions 1..3: a once, b twice; N = 8, n_in = 3, K_b = 4
    assert rows["b"]["inside"] == 2
    assert rows["b"]["expected"] == pytest.approx(3 * 4 / 8)
    assert rows["b"]["lift"] == pytest.approx(2 / 1.5)
    assert rows["b"]["p"] == pytest.approx(hypergeom.sf(1, 8, 4, 3))
    assert out["ranges"] == 1 and out["inside_tokens"] == 3
    assert out["robustness"]["leave_one_out"] == []
    sc_out = hypothesis_statistics(ss, h, "sc", scalar_threshold=1.0, top_k=5)
    assert sc_out["enrichment"] == []
    assert sc_out["agreement"]["tp"] == 2 and sc_out["agreement"]["fn"] == 2


def test_zero_over_zero_is_zero() -> None:
    assert agreement_from_counts(0, 0, 0, 10) == {
        "tp": 0, "fp": 0, "fn": 0, "tn": 10, "precision": 0.0, "recall": 0.0, "f1": 0.0,
    }  # fmt: skip


@given(st.lists(st.floats(0, 1), min_size=0, max_size=30))
def test_bh_against_hand_written(ps: list[float]) -> None:
    p = np.array(ps)
    m = len(p)
    order = np.argsort(p)
    q = np.empty(m)
    running = 1.0
    for i in range(m - 1, -1, -1):
        running = min(running, p[order[i]] * m / (i + 1))
        q[order[i]] = running
    np.testing.assert_allclose(benjamini_hochberg(p), q, atol=1e-12)


def test_jaccard_and_robustness(tmp_path: Path) -> None:
    assert jaccard(set(), set()) == 1.0
    assert jaccard({1, 2}, {2, 3}) == pytest.approx(1 / 3)
    rng = np.random.default_rng(3)
    raw = np.cumsum(rng.normal(0, 0.5, (400, 5)), axis=0).astype(np.float32)
    ss = write(tmp_path / "ss", raw, rng.integers(0, 3, 400).astype(np.int32),
               np.zeros(400, np.float32))  # fmt: skip
    out = hypothesis_statistics(ss, Hypothesis("s0", (0, 1, 2), 0.3), "lab", label="a")
    rob = out["robustness"]
    assert [x["cell"] for x in rob["leave_one_out"]] == [0, 1, 2]
    assert len(rob["threshold"]) == 2
    assert all(0.0 <= x["jaccard"] <= 1.0 for x in rob["threshold"] + rob["leave_one_out"])
    q = sorted(r["q"] for r in out["enrichment"])
    assert all(0.0 <= v <= 1.0 for v in q)


def _hits(spans: list[tuple[int, int]]) -> MatchResult:
    hits = [MatchHit(p, n, 1, 1, 1.0, 0) for p, n in spans]
    return MatchResult(hits=hits, strict_histogram=[], fuzzy_histogram=[], exact=True,
                       unscored=0, candidates=len(hits))  # fmt: skip


def _positions(spans: list[tuple[int, int]]) -> set[int]:
    return {t for p, n in spans for t in range(p, p + n)}


_spans = st.lists(st.tuples(st.integers(0, 60), st.integers(1, 12)), max_size=12)


@settings(max_examples=300, deadline=None)
@given(a=_spans, b=_spans)
def test_covered_ranges_give_the_jaccard_of_the_positions_exactly(a, b) -> None:
    ra, rb = covered_ranges(_hits(a)), covered_ranges(_hits(b))
    for spans, r in ((a, ra), (b, rb)):
        assert np.all(r[:, 0] < r[:, 1]) and np.all(r[1:, 0] > r[:-1, 1])  # sorted, apart
        assert set().union(*(range(x, y) for x, y in r.tolist())) == _positions(spans)
    assert ranges_jaccard(ra, rb) == jaccard(_positions(a), _positions(b))


def test_robustness_is_the_jaccard_of_the_hits_positions(tmp_path: Path) -> None:
    """Against the positions of every hit listed one by one (long, overlapping runs)."""
    rng = np.random.default_rng(11)
    raw = np.cumsum(rng.normal(0, 0.4, (3000, 6)), axis=0).astype(np.float32)
    ss = write(tmp_path / "ss", raw, np.zeros(3000, np.int32), np.zeros(3000, np.float32))
    h = Hypothesis("s0", (0, 2, 3, 5), 0.2, zero_left=0)

    def covered(**changes: object) -> set[int]:
        hits = match(ss, "s0", h.query(20, **changes)).hits
        return _positions([(x.position, x.length) for x in hits])

    base = covered()
    rob = robustness(ss, h, top_k=20, delta=0.05)
    assert rob["positions"] == len(base) > 100
    assert [x["threshold"] for x in rob["threshold"]] == [0.2 - 0.05, 0.2 + 0.05]
    for item in rob["threshold"]:
        assert item["jaccard"] == jaccard(base, covered(threshold=item["threshold"]))
    for item in rob["leave_one_out"]:
        rest = tuple(c for c in h.cells if c != item["cell"])
        assert item["jaccard"] == jaccard(base, covered(cells=rest))
    assert 0.0 < rob["min_jaccard"] < 1.0
