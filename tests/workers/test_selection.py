"""Selected cells of a hypothesis, against a brute-force reading of matching.md."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.states import make_state_set
from workers.core.errors import InputError
from workers.core.selection import select_from_window, selected_cells

# Values include exact ties with the thresholds and NaN.
VALUES = [-1.0, -0.5, 0.0, 0.3, 0.5, 0.9, 1.0, math.nan]
THRESHOLDS = [0.0, 0.3, 0.5, 0.9, -0.5]


def reference(
    raw: np.ndarray, transform: str, start: int, end: int, threshold: float, zl: int, zr: int
) -> list[int]:
    """Word for word: the pattern over [start - zl, end + zr] is off^zl on^L off^zr."""
    vals = np.tanh(raw.astype(np.float32)) if transform == "tanh" else raw.astype(np.float32)
    n, d = vals.shape
    out = []
    for c in range(d):
        ok = True
        for p in range(start - zl, end + zr + 1):
            on = 0 <= p < n and not math.isnan(vals[p, c]) and vals[p, c] >= threshold
            if on != (start <= p <= end):
                ok = False
                break
        if ok:
            out.append(c)
    return out


@st.composite
def cases(draw: st.DrawFn) -> tuple[np.ndarray, str, int, int, float, int, int]:
    n = draw(st.integers(1, 9))
    d = draw(st.integers(1, 6))
    flat = draw(st.lists(st.sampled_from(VALUES), min_size=n * d, max_size=n * d))
    raw = np.array(flat, dtype=np.float32).reshape(n, d)
    start = draw(st.integers(0, n - 1))
    end = draw(st.integers(start, n - 1))
    threshold = draw(st.sampled_from(THRESHOLDS))
    zl = draw(st.integers(0, 4))
    zr = draw(st.integers(0, 4))
    transform = draw(st.sampled_from(["none", "tanh"]))
    return raw, transform, start, end, threshold, zl, zr


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_selected_cells_match_brute_force(
    case: tuple[np.ndarray, str, int, int, float, int, int],
) -> None:
    raw, transform, start, end, threshold, zl, zr = case
    with tempfile.TemporaryDirectory() as tmp:
        ss = make_state_set(Path(tmp) / "s", raw, transform=transform)
        got = selected_cells(ss, "s0", start, end, threshold, zero_left=zl, zero_right=zr)
        assert got == reference(raw, transform, start, end, threshold, zl, zr)
        # An explicit transform overrides the source's own.
        other = "none" if transform == "tanh" else "tanh"
        got_other = selected_cells(
            ss, "s0", start, end, threshold, zero_left=zl, zero_right=zr, transform=other
        )
        assert got_other == reference(raw, other, start, end, threshold, zl, zr)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 8),
    st.integers(1, 5),
    st.integers(0, 3),
    st.integers(0, 3),
    st.integers(0, 3),
    st.integers(0, 3),
    st.data(),
)
def test_window_rule_with_padding(
    t: int, d: int, zl: int, zr: int, before: int, after: int, data: st.DataObject
) -> None:
    total = before + t + after
    if total - zl - zr < 1:
        with pytest.raises(ValueError, match="no on-positions"):
            select_from_window(np.zeros((t, d)), 0.5, zl, zr, before, after)
        return
    flat = data.draw(st.lists(st.sampled_from(VALUES), min_size=t * d, max_size=t * d))
    window = np.array(flat, dtype=np.float32).reshape(t, d)
    got = select_from_window(window, 0.5, zl, zr, before, after).tolist()
    expected = []
    for c in range(d):
        pattern = [False] * zl + [True] * (total - zl - zr) + [False] * zr
        seen = [False] * before + [bool(v >= 0.5) for v in window[:, c]] + [False] * after
        if pattern == seen:
            expected.append(c)
    assert got == expected


def test_defaults_are_one_left_zero_right(tmp_path: Path) -> None:
    raw = np.array(
        [
            [0.0, 1.0, 0.0],
            [1.0, 1.0, 1.0],
            [1.0, 1.0, 1.0],
            [0.0, 0.0, 1.0],
        ]
    )
    ss = make_state_set(tmp_path / "s", raw)
    assert selected_cells(ss, "s0", 1, 2, 0.5) == [0, 2]
    assert selected_cells(ss, "s0", 1, 2, 0.5, zero_right=1) == [0]
    assert selected_cells(ss, "s0", 0, 2, 0.5) == [1]  # position -1 counts as off
    assert selected_cells(ss, "s0", 1, 3, 0.5, zero_right=3) == [2]  # beyond N-1 is off


@pytest.mark.parametrize(
    ("start", "end", "kw", "pattern"),
    [
        (3, 2, {}, "ends before it"),
        (-1, 2, {}, "inside the corpus"),
        (0, 4, {}, "inside the corpus"),
        (0, 1, {"zero_left": -1}, "0 or more"),
        (0, 1, {"threshold": math.nan}, "finite"),
    ],
)
def test_invalid_hypotheses(
    tmp_path: Path, start: int, end: int, kw: dict[str, float], pattern: str
) -> None:
    ss = make_state_set(tmp_path / "s", np.zeros((4, 2)))
    threshold = kw.pop("threshold", 0.5)
    with pytest.raises(InputError, match=pattern):
        selected_cells(ss, "s0", start, end, threshold, **kw)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="no source"):
        selected_cells(ss, "nope", 0, 1, 0.5)
