"""The types of a match: the query, a hit and the result, with their JSON forms.

:class:`MatchQuery` checks a query against a source (``validate``) and gives it
a cache key; :class:`MatchResult` is the answer to a query or to one shard of
it. Everything here needs only numpy, so the web process can parse, validate and
serialise queries and results without the engine. The modules of the engine
(``match``, ``match_engine``, ``match_torch``) all import their shared types
and helpers from here, never from each other's internals; ``workers.core.match``
re-exports the public names.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from workers.core.errors import InputError

__all__ = [
    "DEFAULT_BUDGET",
    "DEVICES",
    "ENGINE_VERSION",
    "MAX_LIMIT",
    "MAX_ZERO",
    "TRANSFORMS",
    "MatchHit",
    "MatchQuery",
    "MatchResult",
    "histogram_from_pairs",
    "is_whole_number",
    "trim_histogram",
]

ENGINE_VERSION = 1
DEFAULT_BUDGET = 500_000
MAX_LIMIT = 1000
MAX_ZERO = 1000
DEVICES = ("cpu", "cuda")
TRANSFORMS = ("tanh", "none")


def is_whole_number(value: Any) -> bool:
    """An int or numpy integer, not a bool."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _opt_int(data: dict[str, Any], key: str, default: int | None) -> int | None:
    value = data.get(key, default)
    if value is None:
        return None
    if not is_whole_number(value):
        raise InputError(f"{key} must be a whole number, not {value!r}")
    return int(value)


@dataclass(frozen=True)
class MatchQuery:
    """One match request on one source (see ``matching.md``, "Match").

    ``cells`` are the selected cells ``C``; ``length`` (exact length) overrides
    ``min_length``/``max_length``. ``range_start``/``range_end`` (inclusive token
    positions) restrict the *ranked* candidates to ``range_start <= a`` and
    ``b <= range_end``; the histograms always cover the whole corpus.
    ``transform`` ``None`` means the source's own transform.
    """

    cells: tuple[int, ...]
    threshold: float
    zero_left: int = 1
    zero_right: int = 0
    min_length: int | None = 2
    max_length: int | None = None
    length: int | None = None
    limit: int = 50
    range_start: int = 0
    range_end: int | None = None
    transform: str | None = None

    # -- validation -----------------------------------------------------------
    def validate(self, n: int, d: int) -> None:
        """Refuse a query that does not fit a source of ``n`` tokens x ``d`` cells."""
        if not isinstance(self.cells, tuple | list) or len(self.cells) == 0:
            raise InputError("select at least one cell to match")
        for c in self.cells:
            if not is_whole_number(c):
                raise InputError(f"cell {c!r} is not a cell number")
            if not 0 <= int(c) < d:
                raise InputError(f"cell {int(c)} does not exist; the source has cells 0 to {d - 1}")
        if len({int(c) for c in self.cells}) != len(self.cells):
            raise InputError("each selected cell may appear only once")
        if (
            isinstance(self.threshold, bool)
            or not isinstance(self.threshold, int | float | np.floating | np.integer)
            or not math.isfinite(float(self.threshold))
        ):
            raise InputError(f"the threshold must be a finite number, not {self.threshold!r}")
        if abs(float(self.threshold)) > 1e30:
            raise InputError("the threshold must lie between -1e30 and 1e30")
        for name in ("zero_left", "zero_right"):
            value = getattr(self, name)
            if not is_whole_number(value) or not 0 <= int(value) <= MAX_ZERO:
                raise InputError(
                    f"{name} (off-positions {'before' if name == 'zero_left' else 'after'} "
                    f"a match) must be a whole number from 0 to {MAX_ZERO}, not {value!r}"
                )
        for name in ("min_length", "max_length", "length"):
            value = getattr(self, name)
            if value is not None and (not is_whole_number(value) or int(value) < 1):
                raise InputError(f"{name} must be a whole number of at least 1, not {value!r}")
        if (
            self.length is None
            and self.min_length is not None
            and self.max_length is not None
            and self.max_length < self.min_length
        ):
            raise InputError(
                f"max_length {self.max_length} is smaller than min_length {self.min_length}"
            )
        if not is_whole_number(self.limit) or not 1 <= int(self.limit) <= MAX_LIMIT:
            raise InputError(
                f"limit must be a whole number from 1 to {MAX_LIMIT}, not {self.limit!r}"
            )
        if not is_whole_number(self.range_start) or not 0 <= int(self.range_start) <= n - 1:
            raise InputError(
                f"range_start must be a token position from 0 to {n - 1}, not {self.range_start!r}"
            )
        if self.range_end is not None and (
            not is_whole_number(self.range_end)
            or not int(self.range_start) <= int(self.range_end) <= n - 1
        ):
            raise InputError(
                f"range_end must be a token position from range_start ({self.range_start}) "
                f"to {n - 1}, not {self.range_end!r}"
            )
        if self.transform is not None and self.transform not in TRANSFORMS:
            raise InputError(f"the transform must be 'tanh' or 'none', not {self.transform!r}")

    # -- derived --------------------------------------------------------------
    @property
    def length_bounds(self) -> tuple[int, int]:
        """Inclusive ``(lo, hi)`` length filter for ranked candidates."""
        if self.length is not None:
            return int(self.length), int(self.length)
        lo = 1 if self.min_length is None else int(self.min_length)
        hi = (1 << 62) if self.max_length is None else int(self.max_length)
        return lo, hi

    # -- serialisation --------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "cells": [int(c) for c in self.cells],
            "threshold": float(self.threshold),
            "zero_left": int(self.zero_left),
            "zero_right": int(self.zero_right),
            "min_length": self.min_length,
            "max_length": self.max_length,
            "length": self.length,
            "limit": int(self.limit),
            "range_start": int(self.range_start),
            "range_end": self.range_end,
            "transform": self.transform,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MatchQuery:
        """Parse a query dict (as :meth:`to_json` writes it); bad types are an ``InputError``.

        Only the types are checked here; :meth:`validate` checks the values
        against a source.
        """
        if not isinstance(data, dict):
            raise InputError("a match query must be a JSON object")
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise InputError(f"unknown match query fields: {', '.join(sorted(unknown))}")
        cells = data.get("cells")
        if not isinstance(cells, list | tuple) or not all(is_whole_number(c) for c in cells):
            raise InputError("cells must be a list of cell numbers")
        threshold = data.get("threshold")
        if isinstance(threshold, bool) or not isinstance(threshold, int | float):
            raise InputError(f"the threshold must be a number, not {threshold!r}")
        transform = data.get("transform")
        if transform is not None and not isinstance(transform, str):
            raise InputError(f"the transform must be 'tanh' or 'none', not {transform!r}")
        zl = _opt_int(data, "zero_left", 1)
        zr = _opt_int(data, "zero_right", 0)
        limit = _opt_int(data, "limit", 50)
        rs = _opt_int(data, "range_start", 0)
        return cls(
            cells=tuple(int(c) for c in cells),
            threshold=float(threshold),
            zero_left=1 if zl is None else zl,
            zero_right=0 if zr is None else zr,
            min_length=_opt_int(data, "min_length", 2),
            max_length=_opt_int(data, "max_length", None),
            length=_opt_int(data, "length", None),
            limit=50 if limit is None else limit,
            range_start=0 if rs is None else rs,
            range_end=_opt_int(data, "range_end", None),
            transform=transform,
        )

    def cache_key(self, source_id: str) -> str:
        """sha256 hex of the canonical query: equal for queries with equal answers.

        Cells are sorted, ``-0.0`` is ``0.0`` and an exact ``length`` drops the
        min/max it overrides. The engine version is part of the key, so a change
        of the engine's semantics never serves an old answer.
        """
        canon = self.to_json()
        canon["cells"] = sorted(canon["cells"])
        canon["threshold"] = float(self.threshold) + 0.0
        if self.length is not None:
            canon["min_length"] = canon["max_length"] = None
        text = json.dumps(
            {"engine": ENGINE_VERSION, "source": source_id, "query": canon},
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class MatchHit:
    """One ranked candidate ``[position, position + length - 1]``."""

    position: int
    length: int
    intersection: int
    union: int
    jaccard: float
    missing: int

    def sort_key(self) -> tuple[int, int, int, int]:
        return (-self.intersection, self.union, -self.length, self.position)

    def to_json(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "length": self.length,
            "intersection": self.intersection,
            "union": self.union,
            "jaccard": self.jaccard,
            "missing": self.missing,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MatchHit:
        return cls(
            position=int(data["position"]),
            length=int(data["length"]),
            intersection=int(data["intersection"]),
            union=int(data["union"]),
            jaccard=float(data["jaccard"]),
            missing=int(data["missing"]),
        )


class MatchResult:
    """The answer to a query (or to one shard of it).

    ``strict_histogram[L]`` / ``fuzzy_histogram[L]`` count candidates of length
    ``L`` (index 0 is always 0; lists end at the longest length counted, empty
    when there is none). ``candidates`` counts the candidates that passed the
    length filter and range restriction, ``scored`` those whose union was
    computed, ``unscored`` those that would have needed it but fell beyond the
    budget (then ``exact`` is False). ``scored`` is work done, not part of the
    answer: shards prune on their own, so a merge of shards usually scored
    more than one pass. ``timings_ms`` (not serialised, not compared) says where
    the time went.

    ``histograms_sparse`` holds the histograms as ``[length, count]`` pairs of
    their non-zero bins (not serialised, not compared; what the engine makes and
    what the match store keeps). Given those, the dense lists may be left out
    (``None``): they are made on first use, since runs reach lengths near the
    corpus' and a dense list can then hold a million zeros.
    """

    def __init__(
        self,
        hits: list[MatchHit],
        strict_histogram: list[int] | None,
        fuzzy_histogram: list[int] | None,
        exact: bool,
        unscored: int,
        candidates: int,
        scored: int = 0,
        timings_ms: dict[str, float] | None = None,
        histograms_sparse: tuple[list[list[int]], list[list[int]]] | None = None,
    ) -> None:
        if histograms_sparse is None and (strict_histogram is None or fuzzy_histogram is None):
            raise ValueError("a match result needs its histograms, dense or as pairs")
        self.hits = hits
        self._dense: list[list[int] | None] = [strict_histogram, fuzzy_histogram]
        self.exact = exact
        self.unscored = unscored
        self.candidates = candidates
        self.scored = scored
        self.timings_ms: dict[str, float] = {} if timings_ms is None else timings_ms
        self.histograms_sparse = histograms_sparse

    def _histogram(self, which: int) -> list[int]:
        dense = self._dense[which]
        if dense is None:
            assert self.histograms_sparse is not None
            dense = self._dense[which] = histogram_from_pairs(self.histograms_sparse[which])
        return dense

    def _histogram_set(self, which: int, value: list[int]) -> None:
        self._dense[1 - which] = self._histogram(1 - which)  # made while the pairs are here
        self._dense[which] = value
        self.histograms_sparse = None

    @property
    def strict_histogram(self) -> list[int]:
        return self._histogram(0)

    @strict_histogram.setter
    def strict_histogram(self, value: list[int]) -> None:
        self._histogram_set(0, value)

    @property
    def fuzzy_histogram(self) -> list[int]:
        return self._histogram(1)

    @fuzzy_histogram.setter
    def fuzzy_histogram(self, value: list[int]) -> None:
        self._histogram_set(1, value)

    def _key(self) -> tuple[Any, ...]:
        return (
            self.hits,
            self.strict_histogram,
            self.fuzzy_histogram,
            self.exact,
            self.unscored,
            self.candidates,
            self.scored,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MatchResult):
            return NotImplemented
        return self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass it was

    def __repr__(self) -> str:
        return (
            f"MatchResult(hits={self.hits!r}, strict_histogram={self.strict_histogram!r}, "
            f"fuzzy_histogram={self.fuzzy_histogram!r}, exact={self.exact!r}, "
            f"unscored={self.unscored!r}, candidates={self.candidates!r}, "
            f"scored={self.scored!r})"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "hits": [h.to_json() for h in self.hits],
            "strict_histogram": list(self.strict_histogram),
            "fuzzy_histogram": list(self.fuzzy_histogram),
            "exact": self.exact,
            "unscored": self.unscored,
            "candidates": self.candidates,
            "scored": self.scored,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MatchResult:
        return cls(
            hits=[MatchHit.from_json(h) for h in data["hits"]],
            strict_histogram=[int(x) for x in data["strict_histogram"]],
            fuzzy_histogram=[int(x) for x in data["fuzzy_histogram"]],
            exact=bool(data["exact"]),
            unscored=int(data["unscored"]),
            candidates=int(data["candidates"]),
            scored=int(data.get("scored", 0)),
        )


def histogram_from_pairs(pairs: list[list[int]]) -> list[int]:
    """A dense histogram (index = length) from ``[length, count]`` pairs of its
    non-zero bins; ``[]`` for none."""
    if not pairs:
        return []
    arr = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    out = np.zeros(int(arr[:, 0].max()) + 1, dtype=np.int64)
    out[arr[:, 0]] = arr[:, 1]
    values: list[int] = out.tolist()
    return values


def trim_histogram(hist: np.ndarray) -> list[int]:
    """A histogram as a list that ends at its last non-zero bin (``[]`` when all are 0)."""
    nz = np.flatnonzero(hist)
    if nz.size == 0:
        return []
    out: list[int] = hist[: int(nz[-1]) + 1].astype(np.int64).tolist()
    return out
