"""The match index writer: its fast codes are exactly ``match_index.encode`` (the
reference, a float64 ``tanh`` per value), at every code boundary and for every
special value, written cell-major block by block with the right minimums."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from workers.core.match_index import SUMMARY_BLOCK, IndexWriter, code_bounds, encode


def _keys_to_floats(keys: np.ndarray) -> np.ndarray:
    k = np.asarray(keys, dtype=np.uint32)
    return np.where(k & 0x80000000, k & 0x7FFFFFFF, ~k).astype(np.uint32).view(np.float32)


def _reference_mins(codes: np.ndarray) -> np.ndarray:
    """(cells, blocks) minimums of ``codes`` (rows, cells) per SUMMARY_BLOCK rows."""
    rows = codes.shape[0]
    return np.stack(
        [codes[a : a + SUMMARY_BLOCK].min(axis=0) for a in range(0, rows, SUMMARY_BLOCK)], axis=1
    )


def _write(
    folder: Path, values: np.ndarray, order: list[int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    rows, cells = values.shape
    w = IndexWriter(folder, rows, cells)
    starts = list(range(0, rows, SUMMARY_BLOCK * 2))
    for a in order or starts:
        w.write(a, values[a : a + SUMMARY_BLOCK * 2])
    w.finish("s0")
    return np.load(folder / "codes.npy"), np.load(folder / "mins.npy")


def test_every_code_boundary_is_exact(tmp_path: Path) -> None:
    bounds = code_bounds().astype(np.int64)
    assert np.all(np.diff(bounds) > 0)  # one smallest value per code, in order
    # The smallest value of each code and the value just below it.
    keys = np.concatenate([bounds, bounds[1:] - 1])
    values = _keys_to_floats(keys).reshape(-1, 1)
    expected = encode(values)
    assert np.array_equal(expected[: bounds.size, 0], np.arange(1, 1 << 16))
    codes, _ = _write(tmp_path / "i", values)
    np.testing.assert_array_equal(codes, expected.T)


def test_special_values(tmp_path: Path) -> None:
    f32 = np.finfo(np.float32)
    special = np.array(
        [np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, f32.tiny, -f32.tiny, 1e-45, -1e-45,
         f32.max, f32.min, 20.0, -20.0, 9.0, -9.0, 0.3, np.arctanh(0.3)],
        dtype=np.float32,
    )  # fmt: skip
    nan_bits = np.array([0x7FC00001, 0xFFC00001, 0x7F800001, 0xFF800001], dtype=np.uint32)
    values = np.concatenate([special, nan_bits.view(np.float32)]).reshape(-1, 2)
    codes, _ = _write(tmp_path / "i", values)
    with np.errstate(invalid="ignore"):  # signalling NaNs, widened by the reference
        expected = encode(values)
    np.testing.assert_array_equal(codes, expected.T)
    assert codes.T.reshape(-1)[0] == 0 and codes.T.reshape(-1)[-1] == 0  # NaN: code 0


@settings(max_examples=60, deadline=None)
@given(
    values=st.integers(1, 900).flatmap(
        lambda rows: st.integers(1, 7).flatmap(
            lambda cells: arrays(
                np.float32,
                (rows, cells),
                elements=st.floats(width=32, allow_nan=True, allow_infinity=True),
            )
        )
    ),
    reverse=st.booleans(),
)
def test_blocks_in_any_order_give_the_codes_and_minimums_of_encode(
    tmp_path_factory: pytest.TempPathFactory, values: np.ndarray, reverse: bool
) -> None:
    folder = tmp_path_factory.mktemp("index")
    starts = list(range(0, values.shape[0], SUMMARY_BLOCK * 2))
    codes, mins = _write(folder / "i", values, starts[::-1] if reverse else starts)
    expected = encode(values)
    np.testing.assert_array_equal(codes, expected.T)
    np.testing.assert_array_equal(mins, _reference_mins(expected))


def test_a_large_block_is_shared_between_threads_with_the_same_result(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    values = (rng.standard_normal((5000, 33)) * 2).astype(np.float32)
    values[::97, 5] = np.nan
    w = IndexWriter(tmp_path / "i", 5000, 33)
    w.write(0, values)  # one call, several parts
    w.finish("s0")
    expected = encode(values)
    np.testing.assert_array_equal(np.load(tmp_path / "i" / "codes.npy"), expected.T)
    np.testing.assert_array_equal(np.load(tmp_path / "i" / "mins.npy"), _reference_mins(expected))


def test_blocks_must_start_on_a_summary_block(tmp_path: Path) -> None:
    w = IndexWriter(tmp_path / "i", 1000, 2)
    block = np.zeros((100, 2), dtype=np.float32)
    with pytest.raises(ValueError, match="summary block"):
        w.write(100, block)
    with pytest.raises(ValueError, match="last block"):
        w.write(0, block)
    w.write(768, np.zeros((232, 2), dtype=np.float32))  # the last block may be short
    w.close()
    assert not (tmp_path / "i" / "meta.json").exists()  # not finished: not an index
