"""Statistics of a hypothesis over the whole corpus: agreement, enrichment, robustness.

A hypothesis here is what the match contract (``docs/matching.md``) takes: a
source, its selected cells ``C``, a threshold, ``zero_left``/``zero_right`` and
``min_length``, and the transform (``None``: the source's own). "On" means
``transform(value) >= threshold``; NaN is off; positions outside the corpus are
off. The definitions are spelled out in ``docs/statistics.md``.

* **Agreement** compares, token by token, the indicator "every cell of ``C`` is
  on here, inside a run of such tokens at least ``min_length`` long" with the
  annotation (a discrete label, or a scalar at or above a threshold; a NaN
  scalar is not positive): the 2 x 2 counts and precision, recall and F1, with
  0/0 defined as 0.
* **Enrichment** counts each label of a discrete track inside the *matched
  ranges*, the ranges the match engine counts in its ``strict`` histogram (a
  maximal run where all of ``C`` is on, every cell of ``C`` off for
  ``zero_left`` positions before it and ``zero_right`` after it), restricted to
  ``min_length``, and compares that with the label's corpus rate
  (hypergeometric upper tail, Benjamini-Hochberg q-values).
* **Robustness** re-runs :func:`workers.core.match.match` with the threshold
  moved by +-``delta`` and with each cell of ``C`` left out, and reports the
  Jaccard overlap of the token positions covered by the top ``K`` hits. The
  positions are kept as merged ranges (at most ``K`` of them), so the overlap
  costs the same for hits of 2 tokens and of 400,000.

Agreement and enrichment share one streaming pass: the source is read in
blocks of rows (:func:`workers.core.ranking.iter_row_blocks`), the selected
columns give two indicators per token (all on, any on), and a compiled state
machine walks them, carrying at most one open run and one run waiting for its
right off-constraint across blocks, so memory does not grow with ``N``.
The test suite checks the matched ranges against the match engine's ``strict``
histogram.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

from workers.core.context import apply_transform
from workers.core.errors import InputError, ProgressFn
from workers.core.match import MatchQuery, MatchResult, match
from workers.core.ranking import iter_row_blocks, label_id
from workers.core.store import StateSet

__all__ = [
    "Hypothesis",
    "benjamini_hochberg",
    "covered_ranges",
    "hypothesis_statistics",
    "jaccard",
    "ranges_jaccard",
    "robustness",
    "scan_hypothesis",
]

# Slots of the kernel's state vector.
_RUN_LEN, _RUN_POS, _RUN_START, _LEFT_OK, _LAST_ANY, _PEND, _PEND_END = range(7)
# Slots of the kernel's totals.
_TP, _PRED, _POS, _RANGES, _INSIDE = range(5)


@dataclass(frozen=True)
class Hypothesis:
    """Cells, threshold and the match contract's constraints of one hypothesis."""

    source: str
    cells: tuple[int, ...]
    threshold: float
    zero_left: int = 1
    zero_right: int = 0
    min_length: int = 2
    transform: str | None = None
    # Limits the match (robustness' top-K hits) only; agreement and enrichment take
    # every run of at least ``min_length``.
    max_length: int | None = None

    def query(self, limit: int = 50, **changes: Any) -> MatchQuery:
        """The match query of this hypothesis (with ``changes`` applied)."""
        fields: dict[str, Any] = {
            "cells": tuple(self.cells),
            "threshold": float(self.threshold),
            "zero_left": self.zero_left,
            "zero_right": self.zero_right,
            "min_length": self.min_length,
            "max_length": self.max_length,
            "limit": limit,
            "transform": self.transform,
        }
        fields.update(changes)
        return MatchQuery(**fields)


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _walk(
    allon: Any,
    anyon: Any,
    pos: Any,
    lab: Any,
    g0: int,
    last: bool,
    zl: int,
    zr: int,
    min_len: int,
    st: Any,
    cur: Any,
    pend: Any,
    inside: Any,
    tot: Any,
) -> None:  # pragma: no cover - compiled
    """Advance the run state machine over one block of tokens starting at ``g0``.

    ``allon``/``anyon``/``pos`` bool (B,), ``lab`` int64 (B,) label slots; ``st``
    int64 (7,) the carried state; ``cur``/``pend`` int64 (L,) label counts of the
    open and of the waiting run; ``inside`` int64 (L,) counts in matched ranges;
    ``tot`` int64 (5,) totals. ``last`` closes everything at the corpus end.
    """  # fmt: skip
    b = allon.shape[0]
    for t in range(b):
        g = g0 + t
        if pos[t]:
            tot[_POS] += 1
        if allon[t]:
            if st[_RUN_LEN] == 0:
                st[_RUN_START] = g
                st[_LEFT_OK] = 1 if g - st[_LAST_ANY] > zl else 0
            st[_RUN_LEN] += 1
            if pos[t]:
                st[_RUN_POS] += 1
            cur[lab[t]] += 1
        elif st[_RUN_LEN] > 0:
            _close(g - 1, zr, min_len, st, cur, pend, inside, tot)
        if anyon[t]:
            if st[_PEND] == 1:
                if g - st[_PEND_END] > zr:
                    _accept(pend, inside, tot)
                else:
                    pend[:] = 0
                st[_PEND] = 0
            st[_LAST_ANY] = g
        elif st[_PEND] == 1 and g - st[_PEND_END] >= zr:
            _accept(pend, inside, tot)
            st[_PEND] = 0
    if last:
        if st[_RUN_LEN] > 0:
            _close(g0 + b - 1, zr, min_len, st, cur, pend, inside, tot)
        if st[_PEND] == 1:  # what follows the corpus is off
            _accept(pend, inside, tot)
            st[_PEND] = 0


@numba.njit(cache=True, nogil=True, boundscheck=False, inline="always")
def _close(
    end: int, zr: int, min_len: int, st: Any, cur: Any, pend: Any, inside: Any, tot: Any
) -> None:  # pragma: no cover - compiled
    length = st[_RUN_LEN]
    if length >= min_len:
        tot[_TP] += st[_RUN_POS]
        tot[_PRED] += length
        if st[_LEFT_OK] == 1:
            pend[:] = cur
            if zr == 0:
                _accept(pend, inside, tot)
            else:
                st[_PEND] = 1
                st[_PEND_END] = end
    cur[:] = 0
    st[_RUN_LEN] = 0
    st[_RUN_POS] = 0


@numba.njit(cache=True, nogil=True, boundscheck=False, inline="always")
def _accept(pend: Any, inside: Any, tot: Any) -> None:  # pragma: no cover - compiled
    tot[_RANGES] += 1
    for i in range(pend.shape[0]):
        inside[i] += pend[i]
        tot[_INSIDE] += pend[i]
        pend[i] = 0


def _check(ss: StateSet, h: Hypothesis) -> tuple[list[int], str]:
    info = ss.source(h.source)
    h.query().validate(ss.length, info.cells)
    if h.min_length < 1:
        raise InputError("min_length must be at least 1")
    return [int(c) for c in h.cells], info.transform if h.transform is None else h.transform


def scan_hypothesis(
    ss: StateSet,
    h: Hypothesis,
    annotation: str,
    *,
    label: str | int | None = None,
    scalar_threshold: float | None = None,
    rows: int | None = None,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """One streaming pass: agreement counts, and label counts in the matched ranges.

    Returns ``{"n", "tp", "fp", "fn", "tn", "ranges", "inside_tokens",
    "inside": int64 (L,) or None, "totals": int64 (L,) or None, "labels"}``;
    ``inside``/``totals`` (discrete tracks only) count each label id
    ``0..len(labels)-1`` inside the matched ranges and in the corpus; ids outside
    that range count in one extra last slot.
    """
    cells, transform = _check(ss, h)
    ann = ss.annotation_info(annotation)
    values, _ = ss.annotation(annotation)
    n = ss.length
    if ann.kind == "discrete":
        labels = list(ann.labels or [])
        n_labels = max(len(labels), int(np.max(values)) + 1 if n else 0)
        if not ann.labels:
            labels = [str(i) for i in range(n_labels)]
        slots = len(labels) + 1
        lid = label_id(labels, label)[0] if label is not None else None
    elif ann.kind == "scalar":
        if scalar_threshold is None or not math.isfinite(float(scalar_threshold)):
            raise InputError("a scalar annotation needs a finite threshold to compare with")
        labels, slots, lid = [], 1, None
    else:
        raise InputError(f"statistics need a discrete or scalar track, not {ann.kind}")
    if ann.kind == "discrete" and lid is None:
        raise InputError("a discrete annotation needs a label to compare with")

    st = np.zeros(7, dtype=np.int64)
    st[_LAST_ANY] = -(1 << 62)
    cur = np.zeros(slots, dtype=np.int64)
    pend = np.zeros(slots, dtype=np.int64)
    inside = np.zeros(slots, dtype=np.int64)
    totals = np.zeros(slots, dtype=np.int64)
    tot = np.zeros(5, dtype=np.int64)
    thr = float(h.threshold)
    for a, block in iter_row_blocks(ss, h.source, rows):
        b = a + len(block)
        on = apply_transform(block[:, cells], transform) >= thr  # (B, m); NaN is off
        allon = on.all(axis=1)
        anyon = on.any(axis=1)
        ann_block = np.asarray(values[a:b])
        if ann.kind == "discrete":
            ids = ann_block.astype(np.int64)
            lab = np.where((ids >= 0) & (ids < slots - 1), ids, slots - 1)
            pos = ids == lid
            totals += np.bincount(lab, minlength=slots)
        else:
            lab = np.zeros(b - a, dtype=np.int64)
            pos = ann_block >= np.float32(scalar_threshold)  # NaN is not positive
        _walk(
            allon, anyon, pos, lab, a, b == n,
            h.zero_left, h.zero_right, h.min_length, st, cur, pend, inside, tot,
        )  # fmt: skip
        if progress is not None:
            progress(b / n, f"Statistics: {b:,} of {n:,} rows read.")
    tp, pred, npos = int(tot[_TP]), int(tot[_PRED]), int(tot[_POS])
    fp, fn = pred - tp, npos - tp
    return {
        "n": n,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": n - tp - fp - fn,
        "ranges": int(tot[_RANGES]),
        "inside_tokens": int(tot[_INSIDE]),
        "inside": inside if ann.kind == "discrete" else None,
        "totals": totals if ann.kind == "discrete" else None,
        "labels": labels,
    }


def _ratio(a: float, b: float) -> float:
    """``a / b`` with 0/0 (and x/0) defined as 0."""
    return a / b if b else 0.0


def agreement_from_counts(tp: int, fp: int, fn: int, tn: int) -> dict[str, Any]:
    """The agreement JSON from the 2 x 2 counts; 0/0 is 0 for every ratio."""
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "precision": precision,
        "recall": recall,
        "f1": _ratio(2 * precision * recall, precision + recall),
    }


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values (float64, same shape) of p-values ``p``."""
    from scipy.stats import false_discovery_control

    arr = np.asarray(p, dtype=np.float64)
    if arr.size == 0:
        return arr.copy()
    return np.asarray(false_discovery_control(arr, method="bh"), dtype=np.float64)


def enrichment_from_counts(
    inside: np.ndarray, totals: np.ndarray, labels: list[str], n: int
) -> list[dict[str, Any]]:
    """Per label: inside, expected, lift, hypergeometric upper-tail p, BH q.

    ``inside``/``totals`` int64 (L + 1,) from :func:`scan_hypothesis`; labels
    that never occur in the corpus are left out. ``p = hypergeom.sf(k - 1, N, K,
    n_in)``: the chance of at least ``k`` of the label's ``K`` tokens among the
    ``n_in`` tokens inside, drawn without replacement from ``N``. Sorted by p.
    """
    from scipy.stats import hypergeom

    names = [*labels, "(other)"]
    n_in = int(inside.sum())
    rows: list[dict[str, Any]] = []
    for i, name in enumerate(names):
        k, big_k = int(inside[i]), int(totals[i])
        if big_k == 0:
            continue
        expected = n_in * big_k / n
        p = float(hypergeom.sf(k - 1, n, big_k, n_in)) if k > 0 else 1.0
        rows.append(
            {
                "label": name,
                "inside": k,
                "expected": expected,
                "lift": _ratio(k, expected),
                "p": min(1.0, max(0.0, p)),
            }
        )
    q = benjamini_hochberg(np.array([r["p"] for r in rows]))
    for r, qv in zip(rows, q, strict=True):
        r["q"] = float(qv)
    rows.sort(key=lambda r: (r["p"], -r["lift"], r["label"]))
    return rows


def jaccard(a: set[int], b: set[int]) -> float:
    """``|a & b| / |a | b|``; two empty sets overlap fully (1.0)."""
    union = len(a | b)
    return len(a & b) / union if union else 1.0


def covered_ranges(result: MatchResult) -> np.ndarray:
    """The token positions the hits cover, as sorted disjoint ranges.

    int64 ``(k, 2)``, row ``[start, end)``; overlapping or touching hits merge.
    A hit can be hundreds of thousands of tokens long, so positions are never
    listed one by one.
    """
    if not result.hits:
        return np.zeros((0, 2), dtype=np.int64)
    starts = np.array([h.position for h in result.hits], dtype=np.int64)
    ends = starts + np.array([h.length for h in result.hits], dtype=np.int64)
    order = np.argsort(starts, kind="stable")
    starts, ends = starts[order], ends[order]
    reach = np.maximum.accumulate(ends)
    first = np.flatnonzero(np.concatenate([[True], starts[1:] > reach[:-1]]))
    last = np.concatenate([first[1:] - 1, [starts.size - 1]])
    return np.stack([starts[first], reach[last]], axis=1)


def ranges_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """:func:`jaccard` of the positions of two :func:`covered_ranges` results, exactly."""
    size_a = int((a[:, 1] - a[:, 0]).sum())
    size_b = int((b[:, 1] - b[:, 0]).sum())
    both = 0
    if a.size and b.size:  # disjoint within each side: every shared position counts once
        lo = np.maximum(a[:, None, 0], b[None, :, 0])
        hi = np.minimum(a[:, None, 1], b[None, :, 1])
        both = int(np.clip(hi - lo, 0, None).sum())
    union = size_a + size_b - both
    return both / union if union else 1.0


def robustness(
    ss: StateSet, h: Hypothesis, *, top_k: int = 50, delta: float = 0.05
) -> dict[str, Any]:
    """Jaccard overlap of the top-``top_k`` hits' covered positions under perturbations.

    The hits of :func:`workers.core.match.match` for ``h`` are compared with
    those for the threshold at ``-delta`` and ``+delta`` and, when ``C`` has at
    least two cells, with each cell of ``C`` left out in turn.
    """
    _check(ss, h)
    base = covered_ranges(match(ss, h.source, h.query(top_k)))
    moved = []
    for step in (-delta, delta):
        thr = float(h.threshold) + step
        got = covered_ranges(match(ss, h.source, h.query(top_k, threshold=thr)))
        moved.append({"threshold": thr, "jaccard": ranges_jaccard(base, got)})
    left_out = []
    if len(h.cells) >= 2:
        for c in h.cells:
            rest = tuple(x for x in h.cells if x != c)
            got = covered_ranges(match(ss, h.source, h.query(top_k, cells=rest)))
            left_out.append({"cell": int(c), "jaccard": ranges_jaccard(base, got)})
    every = [x["jaccard"] for x in moved + left_out]
    return {
        "top_k": top_k,
        "delta": delta,
        "positions": int((base[:, 1] - base[:, 0]).sum()),
        "threshold": moved,
        "leave_one_out": left_out,
        "min_jaccard": min(every) if every else 1.0,
    }


def hypothesis_statistics(
    ss: StateSet,
    h: Hypothesis,
    annotation: str,
    *,
    label: str | int | None = None,
    scalar_threshold: float | None = None,
    top_k: int = 50,
    delta: float = 0.05,
    rows: int | None = None,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """``{"annotation", "label", "agreement", "enrichment", "robustness", "ranges",
    "inside_tokens"}`` of hypothesis ``h`` (JSON-ready; ``enrichment`` is ``[]``
    for a scalar track)."""
    scan = scan_hypothesis(
        ss, h, annotation, label=label, scalar_threshold=scalar_threshold, rows=rows,
        progress=progress,
    )  # fmt: skip
    enrichment = (
        enrichment_from_counts(scan["inside"], scan["totals"], scan["labels"], scan["n"])
        if scan["inside"] is not None
        else []
    )
    return {
        "annotation": annotation,
        "label": label,
        "agreement": agreement_from_counts(scan["tp"], scan["fp"], scan["fn"], scan["tn"]),
        "enrichment": enrichment,
        "ranges": scan["ranges"],
        "inside_tokens": scan["inside_tokens"],
        "robustness": robustness(ss, h, top_k=top_k, delta=delta),
    }
