"""The demo teaches: its state-set page opens on a range that selects the depth cells
(the hint "select a range inside deep brackets and match it" followed with the
default constraints), Match lists hits that lie inside brackets with the depth
track beside them. Screenshots of the selection and match views are taken here;
with STATELAB_UPDATE_DOCS=1 they are written to docs/img/ (otherwise to a
temporary folder, so that the drawing code still runs).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

DOCS = Path(__file__).resolve().parents[2] / "docs" / "img"


def _out(tmp_path: Path) -> Path:
    if os.environ.get("STATELAB_UPDATE_DOCS") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        return DOCS
    return tmp_path


def test_demo_opens_on_a_range_whose_matches_lie_inside_brackets(page, signed_in, user, tmp_path):
    from backend.jobs.models import Job
    from backend.states.demo import demo_create
    from backend.states.models import StateSet
    from backend.states.selectors import stateset_store

    job = Job.objects.get(id=demo_create(owner=user).id)
    assert job.status == "succeeded", job.error
    ss = StateSet.objects.get(id=job.result["stateset"])
    depth = np.asarray(stateset_store(ss).annotation("depth")[0], dtype=np.float64)

    page.goto(f"/statesets/{ss.id}/")
    expect(page.locator("#figure")).to_have_attribute("data-ready", "true")
    expect(page).to_have_url(re.compile(r"\?pos=\d+&start=\d+&end=\d+$"))
    expect(page.locator("#guide")).to_contain_text("opening bracket")
    start = int(page.get_by_role("spinbutton", name="Range start").input_value())
    end = int(page.get_by_role("spinbutton", name="Range end").input_value())
    assert depth[start] > depth[start - 1] and depth[start : end + 1].min() >= 3
    expect(page.locator("#selection-summary")).not_to_contain_text("updating")
    cells = page.locator("#chips .chip")
    expect(cells.first).to_be_visible()
    assert cells.count() >= 1

    page.get_by_role("button", name="Match").click()
    rows = page.get_by_role("table", name="Matches").locator("tbody tr")
    expect(rows.first).to_be_visible()
    expect(page.locator("#match-view")).to_have_attribute("data-ready", "true")
    hits = rows.evaluate_all(
        "els => els.map((e) => [Number(e.dataset.position), Number(e.dataset.length)])"
    )
    inside = [depth[p : p + n].min() > 0 for p, n in hits]
    assert all(inside), hits
    heat = page.locator(".match-table .mini-heatmap").first.get_attribute("aria-label")
    assert "depth" in heat, heat

    # The depth painted onto the hits' tokens, for the screenshot.
    paint = page.get_by_role("group", name="Paint the tokens by")
    paint.get_by_role("button", name="depth").click()
    expect(paint.get_by_role("button", name="depth")).to_have_attribute("aria-pressed", "true")
    expect(page).to_have_url(re.compile(r"paint=depth"))
    out = _out(tmp_path)
    page.locator("#figure").hover(position={"x": 400, "y": 120})
    page.locator(".figure-panel").screenshot(path=str(out / "analysis-selection.png"))
    page.locator("#match-view").screenshot(path=str(out / "analysis-match.png"))
    assert (out / "analysis-match.png").stat().st_size > 10_000
