"""The export writers: values in each format equal the store's, every file names what it
came from, and a slice is read and written in blocks of rows, never whole."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.support.states import make_state_set
from workers.core.context import apply_transform
from workers.core.errors import InputError
from workers.core.export import (
    match_csv_chunks,
    slice_blocks,
    slice_csv_chunks,
    slice_plan,
    write_hdf5,
    write_npz,
)
from workers.core.store import StateSet

VOCAB = ["a", ",", '"q"', "new\nline", "<eos>", "longer-token"]
PIN = {"stateset": "0123", "stateset_name": "synthetic"}


@pytest.fixture
def store(tmp_path: Path) -> tuple[StateSet, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    values = rng.normal(0, 1.5, size=(120, 6)).astype(np.float32)
    tokens = rng.integers(0, len(VOCAB), size=120).astype(np.int32)
    ss = make_state_set(tmp_path / "ss", values, tokens=tokens, vocab=VOCAB, transform="tanh")
    return ss, values, tokens


def _expected(values, start, end, cells, transform="tanh"):
    return apply_transform(values[start : end + 1][:, cells], transform)


def _read_csv(data: bytes) -> tuple[list[str], list[list[str]]]:
    text = data.decode("utf-8")
    comments = [line for line in text.splitlines() if line.startswith("# ")]
    # The comment lines come first; a token holding a newline continues its quoted
    # field on the next line, so the body is parsed as one text.
    body = text[text.index("position,") :]
    return comments, list(csv.reader(io.StringIO(body)))


def test_csv_holds_the_values_tokens_and_pinning(store):
    ss, values, tokens = store
    plan = slice_plan(ss, "s0", 10, 57, cells=[4, 1, 2], pin=PIN, block_rows=7)
    comments, rows = _read_csv(b"".join(slice_csv_chunks(ss, plan)))
    assert rows[0] == ["position", "token", "c4", "c1", "c2"]
    body = rows[1:]
    assert [int(r[0]) for r in body] == list(range(10, 58))
    assert [r[1] for r in body] == [VOCAB[t] for t in tokens[10:58]]
    got = np.array([[float(x) for x in r[2:]] for r in body], dtype=np.float32)
    np.testing.assert_allclose(got, _expected(values, 10, 57, [4, 1, 2]), rtol=1e-6)
    header = "\n".join(comments)
    for needle in (
        "stateset: 0123",
        "stateset_name: synthetic",
        "source: s0",
        "transform: tanh",
        "start: 10",
        "end: 57",
        "cells: [4, 1, 2]",
    ):
        assert needle in header


def test_npz_holds_the_values_tokens_and_pinning(store, tmp_path):
    ss, values, tokens = store
    plan = slice_plan(ss, "s0", 0, 119, transform="none", pin=PIN, block_rows=16)
    out = tmp_path / "x.npz"
    assert write_npz(ss, plan, out) == 8  # 120 rows in blocks of 16
    with np.load(out, allow_pickle=False) as f:
        np.testing.assert_allclose(f["values"], values)
        assert f["values"].dtype == np.float32 and f["values"].shape == (120, 6)
        assert f["positions"].tolist() == list(range(120))
        assert f["tokens"].tolist() == [VOCAB[t] for t in tokens]
        assert f["cells"].tolist() == list(range(6))
        meta = json.loads(str(f["meta"]))
    assert meta["stateset"] == "0123" and meta["stateset_name"] == "synthetic"
    assert (meta["source"], meta["transform"], meta["start"], meta["end"]) == ("s0", "none", 0, 119)


def test_hdf5_holds_the_values_tokens_and_pinning(store, tmp_path):
    ss, values, tokens = store
    plan = slice_plan(ss, "s0", 5, 99, cells=[0, 5], pin=PIN, block_rows=10)
    out = tmp_path / "x.h5"
    assert write_hdf5(ss, plan, out) == 10
    with h5py.File(out, "r") as f:
        np.testing.assert_allclose(f["values"][:], _expected(values, 5, 99, [0, 5]), rtol=1e-6)
        assert f["positions"][:].tolist() == list(range(5, 100))
        assert f["cells"][:].tolist() == [0, 5]
        assert [t.decode() for t in f["tokens"][:]] == [VOCAB[t] for t in tokens[5:100]]
        assert f.attrs["stateset"] == "0123" and f.attrs["source"] == "s0"
        assert f.attrs["transform"] == "tanh"
        assert (int(f.attrs["start"]), int(f.attrs["end"])) == (5, 99)
        assert f.attrs["cells"].tolist() == [0, 5]
        assert json.loads(f.attrs["meta"])["stateset_name"] == "synthetic"


class _RecordingValues:
    """A source array that records the rows of every read."""

    def __init__(self, arr: np.ndarray) -> None:
        self.arr, self.reads = arr, []
        self.shape = arr.shape

    def __getitem__(self, key):
        self.reads.append((key.start, key.stop))
        return self.arr[key]


def test_a_large_slice_is_read_and_written_block_by_block(store, tmp_path, monkeypatch):
    ss, _, _ = store
    recorder = _RecordingValues(ss.values("s0"))
    monkeypatch.setattr(ss, "values", lambda source: recorder)
    plan = slice_plan(ss, "s0", 3, 110, cells=[1, 3], pin=PIN, block_rows=25)
    assert [(b.start, b.stop) for b in slice_blocks(ss, plan)] == [
        (3, 28),
        (28, 53),
        (53, 78),
        (78, 103),
        (103, 111),
    ]
    for writer in (write_npz, write_hdf5):
        recorder.reads.clear()
        assert writer(ss, plan, tmp_path / f"out-{writer.__name__}") == 5
        assert len(recorder.reads) == 5
        assert max(b - a for a, b in recorder.reads) <= 25
    recorder.reads.clear()
    chunks = list(slice_csv_chunks(ss, plan))
    assert len(chunks) == 1 + 5  # the header, then one chunk per block
    assert max(b - a for a, b in recorder.reads) <= 25


def test_default_blocks_are_bounded_by_the_row_width(store):
    ss, _, _ = store
    plan = slice_plan(ss, "s0", 0, 119)
    assert plan.block_rows * 6 <= 1 << 20 and plan.block_rows >= 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start": 50, "end": 10}, "range"),
        ({"start": 0, "end": 120}, "range"),
        ({"start": -1, "end": 3}, "range"),
        ({"start": 0, "end": 3, "cells": [6]}, "cell 6"),
        ({"start": 0, "end": 3, "transform": "sigmoid"}, "transform"),
    ],
)
def test_bad_slices_say_what_is_wrong(store, kwargs, message):
    ss, _, _ = store
    with pytest.raises(InputError, match=message):
        slice_plan(ss, "s0", **kwargs)
    with pytest.raises(InputError, match="no source"):
        slice_plan(ss, "nope", 0, 3)


def test_match_csv_lists_hits_with_their_text(store):
    ss, _, tokens = store
    hits = [
        {"position": 4, "length": 3, "intersection": 2, "union": 3, "jaccard": 2 / 3, "missing": 1},
        {"position": 90, "length": 20, "intersection": 1, "union": 2, "jaccard": 0.5, "missing": 0},
    ]
    meta = {"stateset": "0123", "source": "s0", "cells": [1, 2], "threshold": 0.3}
    data = b"".join(match_csv_chunks(ss, hits, meta, max_text_tokens=5))
    text = data.decode()
    assert "# source: s0" in text and "# threshold: 0.3" in text and "# cells: [1, 2]" in text
    body = list(csv.reader(io.StringIO(text[text.index("rank,") :])))
    assert body[0] == [
        "rank",
        "position",
        "length",
        "intersection",
        "union",
        "jaccard",
        "missing",
        "text",
    ]
    assert body[1][:7] == ["1", "4", "3", "2", "3", "0.666666667", "1"]
    assert body[1][7] == " ".join(VOCAB[t] for t in tokens[4:7])
    assert body[2][7] == " ".join(VOCAB[t] for t in tokens[90:95]) + "…"
