"""Writing a state set out of order: ArrayFile, open_* and a caller-owned temp directory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.support.lstmvis_builder import temp_leftovers
from workers.core.store import (
    AnnotationInfo,
    ArrayFile,
    SourceInfo,
    StateSet,
    StateSetWriter,
)


def test_array_file_rows_in_any_order(tmp_path: Path) -> None:
    path = tmp_path / "a.npy"
    f = ArrayFile(path, (10, 3), np.float32)
    rows = np.arange(30, dtype=np.float32).reshape(10, 3)
    f.write_rows(6, rows[6:])
    f.write_rows(0, rows[:2])
    f.write_rows(2, rows[2:6].astype(np.float64))  # converted to the file's dtype
    f.start_writeback()
    f.sync()
    f.close()
    got = np.load(path)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, rows)


def test_array_file_refuses_blocks_that_do_not_fit(tmp_path: Path) -> None:
    f = ArrayFile(tmp_path / "a.npy", (4, 2), np.int32)
    with pytest.raises(ValueError, match="outside"):
        f.write_rows(3, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="does not fit"):
        f.write_rows(0, np.zeros((1, 3)))
    f.close()
    with pytest.raises(RuntimeError, match="closed"):
        f.write_rows(0, np.zeros((1, 2)))


def test_array_file_spans_write_the_first_rows_of_each_block(tmp_path: Path) -> None:
    path = tmp_path / "a.npy"
    f = ArrayFile(path, (10, 2), np.float32)
    blocks = np.arange(3 * 4 * 2, dtype=np.float32).reshape(3, 4, 2)
    f.write_spans(np.array([0, 4, 8]), blocks, np.array([4, 3, 2]))
    with pytest.raises(ValueError, match="outside"):
        f.write_spans(np.array([8]), blocks[:1], np.array([3]))
    with pytest.raises(ValueError, match="outside"):
        f.write_spans(np.array([0]), blocks[:1], np.array([5]))
    f.write_spans(np.array([7, 12]), blocks[:2], np.array([0, 0]))  # empty spans: anywhere
    with pytest.raises(ValueError, match="do not fit"):
        f.write_spans(np.array([0]), np.zeros((1, 4, 3)), np.array([1]))
    with pytest.raises(ValueError, match="one start and one count"):
        f.write_spans(np.array([0, 1]), blocks[:1], np.array([1]))
    f.close()
    got = np.load(path)
    np.testing.assert_array_equal(got[:4], blocks[0])
    np.testing.assert_array_equal(got[4:7], blocks[1, :3])
    np.testing.assert_array_equal(got[7], [0, 0])  # never written
    np.testing.assert_array_equal(got[8:], blocks[2, :2])


def test_array_file_reuse_keeps_a_matching_file_only(tmp_path: Path) -> None:
    path = tmp_path / "a.npy"
    f = ArrayFile(path, (5,), np.int32)
    f.write_rows(0, np.arange(5))
    f.close()
    again = ArrayFile(path, (5,), np.int32, reuse=True)
    again.write_rows(4, np.array([40]))
    again.close()
    np.testing.assert_array_equal(np.load(path), [0, 1, 2, 3, 40])
    other = ArrayFile(path, (6,), np.int32, reuse=True)  # another shape: a new file
    other.close()
    np.testing.assert_array_equal(np.load(path), np.zeros(6))
    fresh = ArrayFile(path, (6,), np.int32)  # reuse=False always starts over
    fresh.close()
    np.testing.assert_array_equal(np.load(path), np.zeros(6))


def _fill(w: StateSetWriter, n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    want = {
        "tokens": rng.integers(0, 3, n).astype(np.int32),
        "s": rng.normal(size=(n, 4)).astype(np.float32),
        "scalar": rng.normal(size=n).astype(np.float32),
        "top": rng.integers(0, 3, (n, 2)).astype(np.int32),
        "top.w": rng.random((n, 2)).astype(np.float32),
    }
    files = {
        "tokens": w.open_tokens(n, ["a", "b", "c"]),
        "s": w.open_source(SourceInfo("s", "layer 1 h", 1, "h", 4, "none"), n),
        "scalar": w.open_annotation(AnnotationInfo("scalar", "scalar"), n)[0],
    }
    files["top"], weights = w.open_annotation(
        AnnotationInfo("top", "wordvec", k=2), n, weights=True
    )
    assert weights is not None
    files["top.w"] = weights
    for a in reversed(range(0, n, 7)):
        for name, f in files.items():
            f.write_rows(a, want[name][a : a + 7])
    return want


def test_open_methods_publish_a_readable_state_set(tmp_path: Path) -> None:
    dest = tmp_path / "sets" / "one"
    with StateSetWriter(dest) as w:
        want = _fill(w, 50)
        w.set_streams([0, 25], [0])
        manifest = w.commit()
    ss = StateSet.open(dest)
    np.testing.assert_array_equal(ss.tokens, want["tokens"])
    np.testing.assert_array_equal(ss.values("s"), want["s"])
    np.testing.assert_array_equal(ss.annotation("scalar")[0], want["scalar"])
    top, weights = ss.annotation("top")
    np.testing.assert_array_equal(top, want["top"])
    np.testing.assert_array_equal(weights, want["top.w"])
    assert manifest.stream_starts == [0, 25]
    assert [a.k for a in manifest.annotations] == [None, 2]
    assert temp_leftovers(dest.parent) == []


def test_open_annotation_checks(tmp_path: Path) -> None:
    with StateSetWriter(tmp_path / "s") as w:
        with pytest.raises(ValueError, match="needs k"):
            w.open_annotation(AnnotationInfo("top", "wordvec"), 5)
        with pytest.raises(ValueError, match="only wordvec"):
            w.open_annotation(AnnotationInfo("x", "scalar"), 5, weights=True)
        with pytest.raises(ValueError, match="kind must be"):
            w.open_annotation(AnnotationInfo("x", "pictures"), 5)
        w.open_annotation(AnnotationInfo("x", "discrete"), 5)
        with pytest.raises(ValueError, match="twice"):
            w.open_annotation(AnnotationInfo("x", "discrete"), 5)
        with pytest.raises(ValueError, match="source id"):
            w.open_source(SourceInfo("../s", "x", 1, "h", 4, "none"), 5)
    assert temp_leftovers(tmp_path) == []


def test_a_given_temp_dir_survives_an_error_and_is_continued(tmp_path: Path) -> None:
    dest = tmp_path / "sets" / "one"
    work = tmp_path / "work" / "job-1"
    info = SourceInfo("s", "layer 1 h", 1, "h", 2, "none")
    with pytest.raises(RuntimeError, match="worker died"), StateSetWriter(dest, tmp_dir=work) as w:
        w.open_tokens(4, ["a"]).write_rows(0, np.zeros(4, dtype=np.int32))
        w.open_source(info, 4).write_rows(0, np.ones((2, 2)))
        raise RuntimeError("worker died")
    assert not dest.exists()
    assert (work / "sources" / "s.npy").exists()

    with StateSetWriter(dest, tmp_dir=work) as w:
        w.open_tokens(4, ["a"])  # kept: rows already written stay
        w.open_source(info, 4).write_rows(2, np.full((2, 2), 2.0))
        w.commit()
    np.testing.assert_array_equal(StateSet.open(dest).values("s"), [[1, 1], [1, 1], [2, 2], [2, 2]])
    assert not work.exists()  # moved into place


def test_abort_removes_a_given_temp_dir(tmp_path: Path) -> None:
    work = tmp_path / "work"
    w = StateSetWriter(tmp_path / "dest", tmp_dir=work)
    w.open_tokens(3, ["a"])
    w.abort()
    assert not work.exists()
    assert not (tmp_path / "dest").exists()
