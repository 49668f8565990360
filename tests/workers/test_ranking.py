"""Cell rankings (workers/core/ranking.py) against scipy on small random state sets.

AUROC is binned (see docs/statistics.md): it must lie within the bound it
reports of scipy's Mann-Whitney U / (n_pos n_neg), and equal it where every
bin holds one distinct value. Pearson is exact; Spearman is binned.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import mannwhitneyu, pearsonr, spearmanr

from workers.core.errors import InputError
from workers.core.ranking import bin_codes, rank_cells
from workers.core.store import AnnotationInfo, SourceInfo, StateSet, StateSetWriter


def write(path: Path, raw: np.ndarray, lab: np.ndarray, sc: np.ndarray, transform: str) -> StateSet:
    n, d = raw.shape
    with StateSetWriter(path) as w:
        w.set_tokens(np.zeros(n, dtype=np.int32), ["x"])
        w.add_source(
            SourceInfo(id="s0", name="s", layer=1, kind="c", cells=d, transform=transform),
            n,
            lambda a, b: raw[a:b],
        )
        w.add_annotation(AnnotationInfo(name="lab", kind="discrete", labels=["a", "b", "c"]), lab)
        w.add_annotation(AnnotationInfo(name="sc", kind="scalar"), sc)
        w.commit()
    return StateSet.open(path)


def transformed(raw: np.ndarray, transform: str) -> np.ndarray:
    return np.tanh(raw) if transform == "tanh" else raw.astype(np.float32)


def test_hand_computed_auroc_with_ties(tmp_path: Path) -> None:
    # cell 0: positives 3, 2; negatives 1, 2 -> pairs (3>1, 3>2, 2>1, 2=2) = 3.5 / 4
    raw = np.array([[3], [2], [1], [2]], dtype=np.float32)
    lab = np.array([1, 1, 0, 0], dtype=np.int32)
    ss = write(tmp_path / "ss", raw, lab, np.zeros(4, np.float32), "none")
    r = rank_cells(ss, "s0", "lab", "b")
    assert r.to_json()["cells"] == [{"cell": 0, "auroc": 0.875}]
    assert r.measure == "auroc" and r.n == 4 and r.label == "b"


def test_bins_are_ordered_like_transformed_values() -> None:
    rng = np.random.default_rng(0)
    v = np.concatenate(
        [rng.normal(0, 3, 5000), [0.0, -0.0, 1e-30, -1e-30, 300, -300, np.inf, -np.inf, 9.5, 20]]
    ).astype(np.float32)
    for transform in ("tanh", "none"):
        codes = bin_codes(v, transform)
        x = transformed(v, transform)
        order = np.lexsort((v, x))
        strictly = np.diff(x[order]) > 0
        # a smaller transformed value never lands in a higher bin
        assert np.all(np.diff(codes[order])[strictly] >= 0)
        if transform == "none":  # equal values share a bin (tanh: docs/statistics.md)
            assert np.all(np.diff(codes[order])[~strictly] == 0)
    assert bin_codes(np.array([np.nan], np.float32), "none")[0] == -1


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(5, 300),
    d=st.integers(1, 6),
    transform=st.sampled_from(["tanh", "none"]),
    rows=st.integers(1, 64),
    levels=st.booleans(),
)
def test_auroc_against_mann_whitney(
    seed: int, n: int, d: int, transform: str, rows: int, levels: bool
) -> None:
    rng = np.random.default_rng(seed)
    raw = (
        rng.choice([-2.0, -0.5, 0.0, 0.5, 2.0], size=(n, d)) if levels else rng.normal(0, 1, (n, d))
    ).astype(np.float32)
    lab = rng.integers(0, 3, n).astype(np.int32)
    if rng.random() < 0.3:
        raw[rng.random((n, d)) < 0.1] = np.nan
    with tempfile.TemporaryDirectory() as tmp:
        ss = write(Path(tmp) / "ss", raw, lab, np.zeros(n, np.float32), transform)
        r = rank_cells(ss, "s0", "lab", "a", rows=rows)
    x = transformed(raw, transform)
    got = {e["cell"]: e["auroc"] for e in r.cells}
    assert [e["cell"] for e in r.cells] == sorted(got, key=lambda c: (-(got[c] or -1.0), c))
    for c in range(d):
        ok = ~np.isnan(x[:, c])
        pos, neg = x[ok & (lab == 0), c], x[ok & (lab != 0), c]
        if len(pos) == 0 or len(neg) == 0:
            assert got[c] is None
            continue
        want = mannwhitneyu(pos, neg).statistic / (len(pos) * len(neg))
        assert abs(got[c] - want) <= (r.error_bound or 0.0) + 1e-6
        if levels:  # every bin holds one distinct value: exact
            assert got[c] == pytest.approx(want, abs=1e-6)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000), n=st.integers(10, 300), transform=st.sampled_from(["tanh", "none"])
)
def test_pearson_and_spearman_against_scipy(seed: int, n: int, transform: str) -> None:
    rng = np.random.default_rng(seed)
    d = 4
    raw = rng.normal(0, 1, (n, d)).astype(np.float32)
    sc = (raw[:, 0] + rng.normal(0, 1, n)).astype(np.float32)
    sc = np.round(sc, 1)  # ties in the scalar
    with tempfile.TemporaryDirectory() as tmp:
        ss = write(Path(tmp) / "ss", raw, np.zeros(n, np.int32), sc, transform)
        r = rank_cells(ss, "s0", "sc", rows=17)
    x = transformed(raw, transform).astype(np.float64)
    assert r.measure == "pearson" and r.n == n
    keys = [abs(e["pearson"]) for e in r.cells]
    assert keys == sorted(keys, reverse=True)
    for e in r.cells:
        c = e["cell"]
        assert e["pearson"] == pytest.approx(pearsonr(x[:, c], sc)[0], abs=1e-5)
        # Spearman of the bins (values closer than 2^-9 relative tie): exact
        binned = spearmanr(bin_codes(raw[:, c], transform), bin_codes(sc, "none"))[0]
        assert e["spearman"] == pytest.approx(binned, abs=2e-6)


def test_spearman_exact_when_values_are_distinct_bins(tmp_path: Path) -> None:
    raw = np.array([[1], [2], [4], [8], [16]], dtype=np.float32)
    sc = np.array([3, 1, 2, 5, 4], dtype=np.float32)
    ss = write(tmp_path / "ss", raw, np.zeros(5, np.int32), sc, "none")
    e = rank_cells(ss, "s0", "sc").cells[0]
    assert e["spearman"] == pytest.approx(spearmanr(raw[:, 0], sc)[0], abs=1e-9)
    assert e["pearson"] == pytest.approx(pearsonr(raw[:, 0], sc)[0], abs=1e-6)


def test_refuses_missing_label_and_wordvec_like_input(tmp_path: Path) -> None:
    ss = write(tmp_path / "ss", np.ones((3, 2), np.float32), np.zeros(3, np.int32),
               np.zeros(3, np.float32), "tanh")  # fmt: skip
    with pytest.raises(InputError):
        rank_cells(ss, "s0", "lab")
    with pytest.raises(InputError):
        rank_cells(ss, "s0", "lab", "zzz")
    r = rank_cells(ss, "s0", "sc")  # constant scalar: no correlation
    assert all(e["pearson"] is None and e["spearman"] is None for e in r.cells)
    assert not math.isnan(float(r.n))
