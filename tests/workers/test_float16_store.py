"""A state set stored as float16 reads, on every path, exactly like the float32 state
set of the same (float16-rounded) values: context windows, selection, exports,
ranking and statistics, the match index and the match engine with and without it.

Each test builds two twins from one float32 matrix ``raw``: ``f16`` stores it as
float16 (rounded to nearest when written), ``f32`` stores
``raw.astype(float16).astype(float32)`` as float32. A float16 value widens to
float32 exactly, so the two must agree bit for bit wherever values are read.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from tests.support.match_oracle import oracle
from workers.core import match_engine
from workers.core.context import read_context
from workers.core.errors import InputError
from workers.core.export import slice_csv_chunks, slice_plan, write_hdf5, write_npz
from workers.core.extract import ExtractParams, extract
from workers.core.match import MatchQuery, build_match_index, has_match_index, match
from workers.core.match_index import open_index
from workers.core.ranking import iter_row_blocks, rank_cells
from workers.core.rnnlm import RNNLanguageModel, RNNSpec
from workers.core.selection import selected_cells
from workers.core.stats import Hypothesis, scan_hypothesis
from workers.core.store import (
    AnnotationInfo,
    Manifest,
    SourceInfo,
    StateSet,
    StateSetWriter,
    write_corpus,
)

N, D = 600, 7
LABELS = ["a", "b"]


def _raw(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Runs of similar values (an AR(1) walk) so that matches have length, plus
    # values around the thresholds, a NaN and infinities.
    x = np.zeros((N, D), dtype=np.float64)
    e = rng.standard_normal((N, D))
    for t in range(1, N):
        x[t] = 0.9 * x[t - 1] + 0.5 * e[t]
    raw = x.astype(np.float32)
    raw[5, 1] = np.nan
    raw[6, 2] = np.inf
    raw[7, 3] = -np.inf
    raw[8:12, 0] = np.float32(math.atanh(0.3))
    return raw


def _write(path: Path, raw: np.ndarray, dtype: str, transform: str = "tanh") -> StateSet:
    n, d = raw.shape
    rng = np.random.default_rng(9)
    with StateSetWriter(path) as w:
        w.set_tokens(rng.integers(0, 3, n).astype(np.int32), ["x", "y,z", '"q"'])
        w.add_source(
            SourceInfo("s0", "states", 1, "c", d, transform, dtype=dtype), n, lambda a, b: raw[a:b]
        )
        w.add_annotation(AnnotationInfo("lab", "discrete", labels=LABELS), rng.integers(0, 2, n))
        w.add_annotation(AnnotationInfo("sc", "scalar"), rng.standard_normal(n))
        w.commit()
    return StateSet.open(path)


@pytest.fixture(scope="module")
def twins(tmp_path_factory: pytest.TempPathFactory) -> tuple[StateSet, StateSet, np.ndarray]:
    base = tmp_path_factory.mktemp("twins")
    raw = _raw()
    rounded = raw.astype(np.float16).astype(np.float32)
    return _write(base / "f16", raw, "float16"), _write(base / "f32", rounded, "float32"), raw


def test_the_file_holds_float16_and_the_manifest_says_so(twins) -> None:
    f16, f32, raw = twins
    assert f16.values("s0").dtype == np.float16
    assert f32.values("s0").dtype == np.float32
    assert f16.source("s0").dtype == "float16"
    data = f16.manifest.to_json()["sources"][0]
    assert data["dtype"] == "float16"
    assert "dtype" not in f32.manifest.to_json()["sources"][0]  # float32 stays implicit
    assert Manifest.from_json(f16.manifest.to_json()).sources[0].dtype == "float16"
    size16 = (f16.path / "sources" / "s0.npy").stat().st_size
    size32 = (f32.path / "sources" / "s0.npy").stat().st_size
    assert size16 - 128 == (size32 - 128) // 2 == N * D * 2
    np.testing.assert_array_equal(
        np.asarray(f16.values("s0")), raw.astype(np.float16)
    )  # rounded to nearest


def test_a_manifest_with_an_unknown_dtype_is_refused(twins) -> None:
    f16, _, _ = twins
    data = f16.manifest.to_json()
    data["sources"][0]["dtype"] = "float64"
    with pytest.raises(InputError):
        Manifest.from_json(data)


def test_row_blocks_are_float32_and_equal(twins) -> None:
    f16, f32, _ = twins
    for rows in (1, 7, 1000):
        got = [(a, b.copy()) for a, b in iter_row_blocks(f16, "s0", rows)]
        want = [(a, b.copy()) for a, b in iter_row_blocks(f32, "s0", rows)]
        assert [a for a, _ in got] == [a for a, _ in want]
        for (_, g), (_, w) in zip(got, want, strict=True):
            assert g.dtype == np.float32
            np.testing.assert_array_equal(g, w)


def test_context_window_shows_no_visible_difference(twins) -> None:
    f16, f32, raw = twins
    for transform in ("tanh", "none"):
        for cells in (None, [0, 3, 6]):
            a = read_context(f16, "s0", 3, 250, cells=cells, transform=transform, threshold=0.3)
            b = read_context(f32, "s0", 3, 250, cells=cells, transform=transform, threshold=0.3)
            assert a == b
    got = read_context(f16, "s0", 0, N - 1, transform="none", as_arrays=True)["values"]
    want = raw.T.astype(np.float64)
    finite = np.isfinite(want)
    np.testing.assert_array_equal(np.isfinite(got), finite)
    # float16 keeps 11 significant bits: |diff| <= 2^-11 |v| (+ the 5-digit rounding).
    diff = np.abs(got[finite] - want[finite])
    assert np.all(diff <= 2.0**-11 * np.abs(want[finite]) + 6e-6 + 2.0**-25)


def test_the_packed_window_sends_float32(twins) -> None:
    from backend.core.renderers import window_packed

    f16, f32, _ = twins
    body = window_packed(read_context(f16, "s0", 0, 99, as_arrays=True))
    n = int.from_bytes(body[:4], "little")
    header = body[4 : 4 + n]
    values = np.frombuffer(body[4 + n :], dtype="<f4")
    assert values.size == 100 * D and b'"shape":[7,100]' in header
    assert body == window_packed(read_context(f32, "s0", 0, 99, as_arrays=True))


def test_selection_is_the_same(twins) -> None:
    f16, f32, _ = twins
    for thr in (0.0, 0.3, 0.9):
        for start, end, zl, zr in ((10, 20, 0, 0), (100, 130, 2, 3), (0, 5, 1, 1)):
            kw = {"zero_left": zl, "zero_right": zr}
            assert selected_cells(f16, "s0", start, end, thr, **kw) == selected_cells(
                f32, "s0", start, end, thr, **kw
            )


def test_exports_are_the_same(twins, tmp_path: Path) -> None:
    f16, f32, _ = twins

    def plan(ss: StateSet):  # type: ignore[no-untyped-def]
        return slice_plan(ss, "s0", 10, 400, cells=[0, 2, 5], transform="tanh", block_rows=64)

    p16, p32 = plan(f16), plan(f32)
    assert b"".join(slice_csv_chunks(f16, p16)) == b"".join(slice_csv_chunks(f32, p32))
    write_npz(f16, p16, tmp_path / "a.npz")
    write_npz(f32, p32, tmp_path / "b.npz")
    with np.load(tmp_path / "a.npz") as za, np.load(tmp_path / "b.npz") as zb:
        assert za["values"].dtype == np.float32
        np.testing.assert_array_equal(za["values"], zb["values"])
    write_hdf5(f16, p16, tmp_path / "a.h5")
    write_hdf5(f32, p32, tmp_path / "b.h5")
    with h5py.File(tmp_path / "a.h5") as ha, h5py.File(tmp_path / "b.h5") as hb:
        assert ha["values"].dtype == np.float32
        np.testing.assert_array_equal(ha["values"][()], hb["values"][()])


def test_ranking_and_statistics_are_the_same(twins) -> None:
    f16, f32, _ = twins
    for ann, label in (("lab", "b"), ("sc", None)):
        a = rank_cells(f16, "s0", ann, label, rows=50)
        b = rank_cells(f32, "s0", ann, label, rows=50)
        assert a.cells == b.cells and a.n == b.n
    h = Hypothesis(source="s0", cells=(0, 2), threshold=0.2, zero_left=1, zero_right=1)
    for ann, label in (("lab", "a"), ("sc", None)):
        a = scan_hypothesis(f16, h, ann, label=label, scalar_threshold=0.0, rows=64)
        b = scan_hypothesis(f32, h, ann, label=label, scalar_threshold=0.0, rows=64)
        assert a.keys() == b.keys()
        for key in a:
            if isinstance(a[key], np.ndarray):
                np.testing.assert_array_equal(a[key], b[key])
            else:
                assert a[key] == b[key], key


def test_match_index_codes_equal_those_of_the_float32_twin(twins) -> None:
    f16, f32, _ = twins
    build_match_index(f16.path)
    build_match_index(f32.path)
    ia, ib = open_index(f16, "s0"), open_index(f32, "s0")
    assert ia is not None and ib is not None
    for path_a, path_b in ((ia.codes_path, ib.codes_path), (ia.mins_path, ib.mins_path)):
        assert path_a.read_bytes() == path_b.read_bytes()


QUERIES = [
    MatchQuery(cells=(0, 1), threshold=0.3, zero_left=1, zero_right=1),
    MatchQuery(cells=(2,), threshold=0.0, min_length=3, limit=20),
    MatchQuery(cells=(0, 3, 4), threshold=0.5, zero_left=2, zero_right=0, max_length=40),
    MatchQuery(cells=(5, 6), threshold=-0.2, length=4, range_start=50, range_end=450),
    MatchQuery(cells=(1,), threshold=0.3, transform="none"),
]


def _oracle(raw: np.ndarray, q: MatchQuery):  # type: ignore[no-untyped-def]
    return oracle(
        raw, list(q.cells), q.threshold, q.transform or "tanh", q.zero_left, q.zero_right,
        q.min_length, q.max_length, q.length, q.limit, q.range_start, q.range_end,
    )  # fmt: skip


@pytest.mark.parametrize("release", [False, True], ids=["mapped", "pread"])
@pytest.mark.parametrize("indexed", [False, True], ids=["rows", "index"])
def test_match_equals_the_oracle_on_the_rounded_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, indexed: bool, release: bool
) -> None:
    raw = _raw(seed=4)
    rounded = raw.astype(np.float16).astype(np.float32)
    f16 = _write(tmp_path / "f16", raw, "float16")
    if indexed:
        build_match_index(f16.path)
    assert bool(has_match_index(f16, "s0")) == indexed
    if release:  # large-corpus paths: pages handed back, rows read with pread
        monkeypatch.setattr(match_engine, "RELEASE_ABOVE", 0)
    for q in QUERIES:
        got = match(f16, "s0", q)
        want = _oracle(rounded, q)
        assert [(h.position, h.length, h.intersection, h.union) for h in got.hits] == want.hits
        assert got.strict_histogram == want.strict
        assert got.fuzzy_histogram == want.fuzzy
        assert got.candidates == want.candidates
        assert got.exact


# --------------------------------------------------------------------------- #
# Extraction
# --------------------------------------------------------------------------- #

V = 30
VOCAB = [f"w{i}" for i in range(V)]


def _model() -> RNNLanguageModel:
    torch.manual_seed(0)
    model = RNNLanguageModel(RNNSpec("LSTM", V, 8, 12, 2)).eval()
    with torch.no_grad():
        for p in model.rnn.parameters():
            p.mul_(2.5)
    return model


def _quiet(_fraction: float, _message: str) -> None:
    return None


def test_a_float16_extraction_is_the_float32_one_rounded(tmp_path: Path) -> None:
    ids = np.random.default_rng(1).integers(0, V, size=301)
    write_corpus(tmp_path / "corpus", ids, VOCAB, [0], {})
    model = _model()
    out = {}
    for dtype in ("float32", "float16"):
        manifest = extract(
            model, VOCAB, tmp_path / "corpus", tmp_path / dtype,
            ExtractParams(values=("h", "c", "gates"), topk=2, streams=3, chunk=7, dtype=dtype),
            work_dir=tmp_path / f"work-{dtype}", progress=_quiet, device="cpu",
        )  # fmt: skip
        assert {s.dtype for s in manifest.sources} == {dtype}
        out[dtype] = StateSet.open(tmp_path / dtype)
    a, b = out["float32"], out["float16"]
    assert b.manifest.extra["extraction"]["dtype"] == "float16"
    assert "dtype" not in a.manifest.extra["extraction"]
    for sid in a.source_ids:
        v32, v16 = np.asarray(a.values(sid)), np.asarray(b.values(sid))
        assert v16.dtype == np.float16
        np.testing.assert_array_equal(v16, v32.astype(np.float16))
        s32 = os.path.getsize(a.path / "sources" / f"{sid}.npy")
        s16 = os.path.getsize(b.path / "sources" / f"{sid}.npy")
        assert s16 - 128 == (s32 - 128) // 2
    # Everything that is not a source is the same.
    np.testing.assert_array_equal(a.tokens, b.tokens)
    for name in ("top_predictions", "surprisal"):
        va, wa = a.annotation(name)
        vb, wb = b.annotation(name)
        np.testing.assert_array_equal(va, vb)
        if wa is not None:
            np.testing.assert_array_equal(wa, wb)


def test_an_unknown_store_dtype_is_an_input_error(tmp_path: Path) -> None:
    write_corpus(tmp_path / "corpus", np.arange(20) % V, VOCAB, [0], {})
    with pytest.raises(InputError, match="float32 or float16"):
        extract(
            _model(), VOCAB, tmp_path / "corpus", tmp_path / "out",
            ExtractParams(dtype="bfloat16"), work_dir=tmp_path / "w", progress=_quiet,
            device="cpu",
        )  # fmt: skip


@pytest.mark.parametrize("indexed", [False, True], ids=["rows", "index"])
def test_the_torch_path_equals_the_oracle_on_the_rounded_values(
    tmp_path: Path, indexed: bool
) -> None:
    """The CUDA path's code, run on the CPU: it reads the same map of the source."""
    from workers.core import match_torch

    raw = _raw(seed=6)
    rounded = raw.astype(np.float16).astype(np.float32)
    f16 = _write(tmp_path / "f16", raw, "float16")
    if indexed:
        build_match_index(f16.path)
    for q in QUERIES:
        got = match_torch.run_query(f16, "s0", q, (0, N), torch_device="cpu", use_index=indexed)
        want = _oracle(rounded, q)
        assert [(h.position, h.length, h.intersection, h.union) for h in got.hits] == want.hits
        assert (got.strict_histogram, got.fuzzy_histogram) == (want.strict, want.fuzzy)
