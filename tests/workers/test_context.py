"""Context windows: shapes, transforms, clamping, annotations and speed."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tests.support.states import make_state_set
from workers.core.context import apply_transform, read_context
from workers.core.errors import InputError
from workers.core.lstmvis import import_lstmvis_dir
from workers.core.store import AnnotationInfo, StateSet


@pytest.fixture
def small(tmp_path: Path) -> tuple[StateSet, np.ndarray]:
    raw = np.random.default_rng(3).normal(0, 2, size=(30, 6)).astype(np.float32)
    raw[5, 2] = np.nan
    anns = [
        (AnnotationInfo("depth", "scalar"), np.arange(30) / 3, None),
        (AnnotationInfo("pos", "discrete", labels=["NN", "", "VB"]), np.arange(30) % 4, None),
        (AnnotationInfo("raw_ids", "discrete"), np.arange(30) % 5, None),
        (
            AnnotationInfo("topk", "wordvec"),
            np.stack([np.arange(30) % 7, (np.arange(30) + 1) % 7], axis=1),
            np.full((30, 2), 0.25),
        ),
        (AnnotationInfo("noweights", "wordvec", labels=["x", "y"]), np.zeros((30, 1), int), None),
    ]
    ss = make_state_set(tmp_path / "s", raw, transform="tanh", annotations=anns)
    return ss, raw


def test_values_are_cells_by_time_after_the_sources_transform(
    small: tuple[StateSet, np.ndarray],
) -> None:
    ss, raw = small
    ctx = read_context(ss, "s0", 3, 8)
    assert (ctx["start"], ctx["end"]) == (3, 8)
    assert ctx["cells"] == list(range(6))
    assert len(ctx["values"]) == 6
    assert all(len(row) == 6 for row in ctx["values"])
    assert "cell_count" not in ctx
    for i, c in enumerate(ctx["cells"]):
        for t in range(3, 9):
            got = ctx["values"][i][t - 3]
            want = float(np.tanh(raw[t, c]))
            if math.isnan(want):
                assert got is None
            else:
                assert got == pytest.approx(want, abs=6e-6)
                assert got == round(got, 5)
    assert ctx["token_ids"] == [3, 4, 5, 6, 0, 1]
    assert ctx["tokens"] == ["t3", "t4", "t5", "t6", "t0", "t1"]


def test_cells_transform_and_cell_count(small: tuple[StateSet, np.ndarray]) -> None:
    ss, raw = small
    ctx = read_context(ss, "s0", 0, 9, cells=[4, 2], transform="none", threshold=0.5)
    assert ctx["cells"] == [4, 2]
    np.testing.assert_allclose(ctx["values"][0], np.round(raw[0:10, 4], 5), atol=1e-5)
    sub = raw[0:10][:, [4, 2]]
    expected = [int(np.sum(row >= 0.5)) for row in sub]  # NaN is off
    assert ctx["cell_count"] == expected
    # without cells there is no count even with a threshold
    assert "cell_count" not in read_context(ss, "s0", 0, 9, threshold=0.5)


def test_window_is_clamped_to_the_corpus(small: tuple[StateSet, np.ndarray]) -> None:
    ss, _ = small
    ctx = read_context(ss, "s0", -5, 100, cells=[0])
    assert (ctx["start"], ctx["end"]) == (0, 29)
    assert len(ctx["values"][0]) == 30
    assert len(ctx["tokens"]) == 30


def test_annotations_of_every_kind(small: tuple[StateSet, np.ndarray]) -> None:
    ss, _ = small
    ann = read_context(ss, "s0", 2, 4)["annotations"]
    assert ann["depth"] == pytest.approx([2 / 3, 1.0, 4 / 3], abs=1e-5)
    assert ann["pos"] == ["VB", "3", "NN"]  # an id beyond the labels shows as its number
    assert ann["raw_ids"] == [2, 3, 4]
    assert ann["topk"][0] == [{"token": "t2", "weight": 0.25}, {"token": "t3", "weight": 0.25}]
    assert ann["noweights"][1] == [{"token": "x", "weight": None}]
    assert read_context(ss, "s0", 2, 4, annotations=False)["annotations"] == {}


@pytest.mark.parametrize(
    ("args", "kw", "pattern"),
    [
        ((5, 4), {}, "ends before it"),
        ((30, 40), {}, "outside the corpus"),
        ((-9, -1), {}, "outside the corpus"),
        ((0, 3), {"cells": [6]}, "cell 6 does not exist"),
        ((0, 3), {"cells": [-1]}, "cell -1 does not exist"),
        ((0, 3), {"transform": "relu"}, "'tanh' or 'none'"),
        ((0, 3), {"cells": [1], "threshold": math.inf}, "finite"),
        ((0, 29), {"max_tokens": 10}, "at most 10"),
    ],
)
def test_invalid_requests(
    small: tuple[StateSet, np.ndarray], args: tuple[int, int], kw: dict[str, object], pattern: str
) -> None:
    ss, _ = small
    with pytest.raises(InputError, match=pattern):
        read_context(ss, "s0", *args, **kw)  # type: ignore[arg-type]


def test_apply_transform() -> None:
    x = np.array([-100.0, 0.0, 0.5], dtype=np.float64)
    np.testing.assert_allclose(apply_transform(x, "tanh"), np.tanh(x), rtol=1e-6)
    out = apply_transform(x, "none")
    assert out.dtype == np.float32
    out[0] = 1
    assert x[0] == -100.0  # a copy


def test_imported_lstmvis_annotations_read_back(lstmvis_project: Path, tmp_path: Path) -> None:
    import_lstmvis_dir(lstmvis_project, tmp_path / "set", quota_bytes=1 << 30)
    ss = StateSet.open(tmp_path / "set")
    ctx = read_context(ss, "s3", 98, 101, cells=[0, 1], threshold=0.0)
    assert ctx["tokens"][2] == " "
    ann = ctx["annotations"]
    assert set(ann) == {"part_of_speech", "surprise", "top_predictions", "word_frequency"}
    assert all(label in {"NN", "VB", "DT", "JJ"} for label in ann["part_of_speech"])
    assert len(ann["top_predictions"][0]) == 3
    assert sum(e["weight"] for e in ann["top_predictions"][0]) == pytest.approx(1.0, abs=1e-4)
    # s3 is the LSTMVis output with transform none: raw values come back.
    raw = ss.values("s3")[98:102, 0]
    np.testing.assert_allclose(ctx["values"][0], np.round(raw, 5), atol=1e-5)


def test_a_window_of_100_tokens_by_650_cells_has_every_value(tmp_path: Path) -> None:
    """Shape and values of a full-width window (its speed is measured by `make bench`)."""
    raw = np.random.default_rng(0).normal(size=(2_000, 650)).astype(np.float32)
    ss = make_state_set(tmp_path / "big", raw, transform="tanh")
    ctx = read_context(ss, "s0", 1000, 1099, annotations=False)
    assert len(ctx["values"]) == 650
    assert len(ctx["values"][0]) == 100
    np.testing.assert_allclose(
        np.array(ctx["values"]), np.round(np.tanh(raw[1000:1100]).T, 5), atol=1e-5
    )


def test_arrays_render_to_the_same_json_as_lists(tmp_path: Path) -> None:
    """The API renders `as_arrays` output with orjson; NaN must still become null."""
    import orjson

    raw = np.random.default_rng(1).normal(size=(50, 7)).astype(np.float32)
    raw[3, 2] = np.nan
    ss = make_state_set(tmp_path / "nan", raw, transform="tanh")
    lists = read_context(ss, "s0", 0, 49, annotations=False)
    arrays = read_context(ss, "s0", 0, 49, annotations=False, as_arrays=True)
    as_json = orjson.loads(orjson.dumps(arrays, option=orjson.OPT_SERIALIZE_NUMPY))
    assert as_json["values"] == lists["values"]
    assert as_json["values"][2][3] is None
