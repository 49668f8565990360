"""Drawing speed of the analysis page in Chromium, on a generated 650-cell source:
a 200-token window drawn first, a brush and a threshold change redrawn, a pan by one
window (the request included). The page marks each with `performance.measure`
(``analysis:*``); this test reads them. The targets (150 / 50 / 100 ms) are checked
with room for a busy machine; the figures are printed, and written to
docs/bench/webui_analysis.json with STATELAB_UPDATE_DOCS=1 (docs/webui.md, Measured).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
from pathlib import Path

import pytest
from playwright.sync_api import expect

from .conftest import write_brackets

pytestmark = pytest.mark.e2e

OUT = Path(__file__).resolve().parents[2] / "docs" / "bench" / "webui_analysis.json"


def _entries(page, name: str) -> list[float]:
    return page.evaluate("(n) => performance.getEntriesByName(n).map((e) => e.duration)", name)


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def test_a_650_cell_window_draws_fast(page, signed_in, user, project):
    ss, _depth, _tokens = write_brackets(project, user, n=6000, d=650, seed=9, name="wide")
    runs: dict[str, list[float]] = {"first_draw": [], "first_window": [], "first_paint_only": []}
    for _ in range(3):
        page.goto(f"/statesets/{ss.id}/?w=200&pos=1000")
        expect(page.locator("#figure")).to_have_attribute("data-ready", "true")
        runs["first_draw"] += _entries(page, "analysis:first-draw")
        runs["first_window"] += _entries(page, "analysis:context")[:1]
        runs["first_paint_only"] += _entries(page, "analysis:draw")[:1]

    # Brush: drag over 20 tokens of the strip, every move redraws.
    a = page.locator('#tokens li[data-pos="1050"]').bounding_box()
    b = page.locator('#tokens li[data-pos="1070"]').bounding_box()
    page.mouse.move(a["x"] + 2, a["y"] + 5)
    page.mouse.down()
    page.mouse.move(b["x"] + 2, b["y"] + 5, steps=20)
    page.mouse.up()
    expect(page.locator("#selection-summary")).not_to_contain_text("updating")
    brush = _entries(page, "analysis:brush")

    # Threshold: drag the handle down and up.
    knob = page.locator("#lineplot .threshold-knob").bounding_box()
    page.mouse.move(knob["x"] + 4, knob["y"] + 6)
    page.mouse.down()
    page.mouse.move(knob["x"] + 4, knob["y"] + 66, steps=15)
    page.mouse.move(knob["x"] + 4, knob["y"] + 6, steps=15)
    page.mouse.up()
    threshold = _entries(page, "analysis:threshold")

    # Pan by one window (PageDown), the context request included.
    page.locator("#figure").focus()
    for i in range(8):
        page.keyboard.press("PageDown")
        expect(page.locator("#tokens li").first).to_have_attribute("data-pos", str(1200 + 200 * i))
        expect(page.locator("#figure")).to_have_attribute("data-ready", "true")
    pan = _entries(page, "analysis:pan")

    med = statistics.median
    figures = {
        "cpu": _cpu(),
        "cores": os.cpu_count(),
        "window": {"tokens": 200, "cells": 650},
        "first_draw_ms": {"median": med(runs["first_draw"]), "runs": runs["first_draw"]},
        "first_context_request_ms": {"median": med(runs["first_window"])},
        "first_draw_only_ms": {"median": med(runs["first_paint_only"])},
        "brush_redraw_ms": {"median": med(brush), "max": max(brush), "n": len(brush)},
        "threshold_redraw_ms": {
            "median": med(threshold),
            "max": max(threshold),
            "n": len(threshold),
        },
        "pan_one_window_ms": {"median": med(pan), "max": max(pan), "n": len(pan)},
    }
    print(json.dumps(figures, indent=2))
    if os.environ.get("STATELAB_UPDATE_DOCS") == "1":
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps(figures, indent=2) + "\n")
    assert len(brush) >= 5 and len(threshold) >= 5 and len(pan) == 8
    # Targets: 150 / 50 / 100 ms; checked at three times that, for busy machines.
    assert figures["first_draw_ms"]["median"] <= 450
    assert figures["brush_redraw_ms"]["median"] <= 150
    assert figures["threshold_redraw_ms"]["median"] <= 150
    assert figures["pan_one_window_ms"]["median"] <= 300
