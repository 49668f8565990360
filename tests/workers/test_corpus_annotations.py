"""Per-token corpus tracks (a nesting depth, part of speech) travel with extracted states."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from workers.core.extract import ExtractParams, extract
from workers.core.rnnlm import RNNLanguageModel, RNNSpec
from workers.core.store import AnnotationInfo, StateSet, open_corpus, write_corpus

VOCAB = ["(", ")", "a", "\n"]


def _corpus(path: Path, n: int = 90) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4)
    ids = rng.integers(0, len(VOCAB), size=n)
    depth = rng.random(n).astype(np.float32)
    kind = rng.integers(0, 3, size=n)
    write_corpus(
        path,
        ids,
        VOCAB,
        [0],
        {},
        annotations=[
            (AnnotationInfo(name="depth", kind="scalar", range=[0, 1]), depth),
            (AnnotationInfo(name="surprisal", kind="discrete", labels=["x", "y", "z"]), kind),
        ],
    )
    return ids, depth, kind


def test_corpus_annotations_round_trip(tmp_path: Path) -> None:
    _, depth, kind = _corpus(tmp_path / "c")
    corpus = open_corpus(tmp_path / "c")
    assert [a.name for a in corpus.annotations] == ["depth", "surprisal"]
    values, weights = corpus.annotation(corpus.annotations[0])
    assert weights is None
    np.testing.assert_array_equal(values, depth)
    np.testing.assert_array_equal(corpus.annotation(corpus.annotations[1])[0], kind)


def test_a_track_of_the_wrong_length_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="one value per token"):
        write_corpus(
            tmp_path / "c",
            np.zeros(5, dtype=np.int32),
            VOCAB,
            [0],
            {},
            annotations=[(AnnotationInfo(name="depth", kind="scalar"), np.zeros(4))],
        )
    assert list(tmp_path.iterdir()) == []


def test_extraction_carries_the_corpus_tracks(tmp_path: Path) -> None:
    _, depth, kind = _corpus(tmp_path / "c")
    torch.manual_seed(0)
    model = RNNLanguageModel(RNNSpec("LSTM", len(VOCAB), 4, 5, 1)).eval()
    extract(
        model,
        VOCAB,
        tmp_path / "c",
        tmp_path / "ss",
        ExtractParams(values=("h",), topk=2, surprisal=True, streams=3),
        work_dir=tmp_path / "work",
        progress=lambda _f, _m: None,
        device="cpu",
    )
    ss = StateSet.open(tmp_path / "ss")
    names = [a.name for a in ss.manifest.annotations]
    # The model's own surprisal keeps its name; the corpus track of that name is renamed.
    assert {"depth", "corpus_surprisal", "surprisal", "top_predictions"} <= set(names)
    np.testing.assert_array_equal(ss.annotation("depth")[0], depth)
    np.testing.assert_array_equal(ss.annotation("corpus_surprisal")[0], kind)
    assert ss.annotation_info("corpus_surprisal").labels == ["x", "y", "z"]
    assert ss.annotation_info("depth").range == [0, 1]
