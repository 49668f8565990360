"""Small state sets built from arrays, for tests of the readers and the match engine.

Tests of context windows, selection and matching need a real state set on disk
(memory-mapped exactly as in production) holding a matrix the test chose. This
builds one with the production writer, so the tests also exercise the format.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from workers.core.store import AnnotationInfo, SourceInfo, StateSet, StateSetWriter

__all__ = ["make_state_set"]


def make_state_set(
    dest: Path,
    values: np.ndarray,
    *,
    tokens: np.ndarray | None = None,
    vocab: list[str] | None = None,
    transform: str = "none",
    annotations: list[tuple[AnnotationInfo, np.ndarray, np.ndarray | None]] | None = None,
    source_id: str = "s0",
) -> StateSet:
    """Write ``values`` (N x D) as source ``source_id`` and open the result.

    Without ``tokens`` every position gets token ``t<pos mod 7>``.
    """
    arr = np.asarray(values, dtype=np.float32)
    n, d = arr.shape
    if vocab is None:
        vocab = [f"t{i}" for i in range(7)]
    if tokens is None:
        tokens = np.arange(n) % len(vocab)
    with StateSetWriter(dest) as w:
        w.set_tokens(tokens, vocab)
        w.add_source(
            SourceInfo(source_id, "test::states", 1, "c", d, transform), n, lambda a, b: arr[a:b]
        )
        for info, vals, weights in annotations or []:
            w.add_annotation(info, vals, weights)
        w.commit()
    return StateSet.open(dest)
