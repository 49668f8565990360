"""The analysis page in a real browser: a hypothesis set by brushing and by the
inputs, its cells, the match view with its histograms, paging and jumps, the job
progress of a long match, and the URL that brings all of it back.

The state set is the demo-like one of ``conftest.write_brackets``: cell k of
``l1_h`` is on where the nesting depth is at least k + 1, so what a range selects is
known, and it is checked against the selection API as well.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .conftest import api_as, run_at, selected

pytestmark = pytest.mark.e2e

LINE_ORANGE = (230, 159, 0)  # the first selected line's colour (#E69F00)


def _ready(page):
    expect(page.locator("#figure")).to_have_attribute("data-ready", "true")


def _chips(page) -> list[int]:
    return page.locator("#chips .chip").evaluate_all(
        "els => els.map((e) => Number(e.dataset.cell))"
    )


def _coloured(page, selector: str, rgb: tuple[int, int, int], tol: int = 30) -> int:
    return page.evaluate(
        """([sel, rgb, tol]) => {
            const c = document.querySelector(sel);
            const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 0; i < d.length; i += 4) {
                if (Math.abs(d[i] - rgb[0]) < tol && Math.abs(d[i + 1] - rgb[1]) < tol
                    && Math.abs(d[i + 2] - rgb[2]) < tol && d[i + 3] > 200) n++;
            }
            return n;
        }""",
        [selector, list(rgb), tol],
    )


def _drag(page, source, target, steps: int = 6):
    a = source.bounding_box()
    b = target.bounding_box()
    page.mouse.move(a["x"] + a["width"] / 2, a["y"] + a["height"] / 2)
    page.mouse.down()
    page.mouse.move(b["x"] + b["width"] / 2, b["y"] + b["height"] / 2, steps=steps)
    page.mouse.up()


def _rows(page):
    return page.get_by_role("table", name="Matches").locator("tbody tr")


def test_brush_threshold_match_filter_open_and_reload(page, signed_in, user, brackets):
    ss, depth, tokens = brackets
    a, b = run_at(depth, tokens)
    expected = selected(user, ss, a, b)
    assert 2 in expected and 0 not in expected and 1 not in expected, expected

    page.goto(f"/statesets/{ss.id}/?pos={a - 20}")
    _ready(page)
    assert _coloured(page, "#lineplot canvas", LINE_ORANGE) == 0

    # Brush over the tokens with the mouse: the range, its cells, the highlighted line.
    _drag(
        page,
        page.locator(f'#tokens li[data-pos="{a}"]'),
        page.locator(f'#tokens li[data-pos="{b}"]'),
    )
    expect(page).to_have_url(re.compile(rf"start={a}&end={b}"))
    expect(page.get_by_role("spinbutton", name="Range start")).to_have_value(str(a))
    expect(page.get_by_role("spinbutton", name="Range end")).to_have_value(str(b))
    expect(page.locator("#selection-summary")).not_to_contain_text("updating")
    assert _chips(page) == expected
    _ready(page)
    assert _coloured(page, "#lineplot canvas", LINE_ORANGE) > 50
    on = page.locator(f'#tokens li[data-pos="{a}"]').get_attribute("data-on")
    assert int(on) >= 1

    # The same range through the inputs, after clearing it.
    page.get_by_role("button", name="Clear range").click()
    expect(page).not_to_have_url(re.compile("start="))
    expect(page.locator("#chips .chip")).to_have_count(0)
    page.get_by_role("spinbutton", name="Range start").fill(str(a))
    page.get_by_role("spinbutton", name="Range end").fill(str(b))
    page.get_by_role("spinbutton", name="Range end").press("Enter")
    expect(page).to_have_url(re.compile(rf"start={a}&end={b}"))
    expect(page.locator("#chips .chip")).to_have_count(len(expected))

    # The threshold by its input, then by dragging its handle on the y axis.
    page.get_by_role("spinbutton", name="Threshold").fill("0.5")
    page.get_by_role("spinbutton", name="Threshold").press("Enter")
    expect(page).to_have_url(re.compile(r"threshold=0\.5"))
    expected_05 = selected(user, ss, a, b, threshold=0.5)
    expect(page.locator("#chips .chip")).to_have_count(len(expected_05))
    assert _chips(page) == expected_05
    knob = page.locator("#lineplot .threshold-knob")
    box = knob.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2 + 40, steps=4)
    page.mouse.up()
    expect(page).to_have_url(re.compile(r"threshold=0\.[0-4]\d*"))
    dragged = float(page.get_by_role("spinbutton", name="Threshold").input_value())
    assert 0.05 <= dragged <= 0.4, dragged
    page.get_by_role("spinbutton", name="Threshold").fill("0.5")
    page.get_by_role("spinbutton", name="Threshold").press("Enter")
    expect(page.locator("#selection-summary")).not_to_contain_text("updating")

    # Match: rows of hits, aligned, each inside depth >= 3 (cell 2 is on exactly there).
    page.get_by_role("button", name="Match").click()
    expect(page).to_have_url(re.compile(r"match=1"))
    rows = _rows(page)
    expect(rows.first).to_be_visible()
    expect(page.locator("#match-view")).to_have_attribute("data-ready", "true")
    hits = rows.evaluate_all(
        "els => els.map((e) => [Number(e.dataset.position), Number(e.dataset.length)])"
    )
    assert 0 < len(hits) <= 20
    if expected_05 == [2]:
        for pos, length in hits:
            assert min(depth[pos : pos + length]) >= 3, (pos, length)
    expect(page.locator(".match-table .mini-heatmap")).to_have_count(len(hits))
    heat = page.locator(".match-table .mini-heatmap").first.get_attribute("aria-label")
    assert heat.startswith("cells on, depth, kind, top_predictions, surprisal"), heat

    # A bar of the strict histogram filters the hits to its length.
    bar = page.locator("#histograms svg").first.locator(".bar").nth(1)
    length = int(bar.get_attribute("data-length"))
    bar.click()
    expect(page).to_have_url(re.compile(rf"len={length}"))
    expect(page.locator("#match-filter")).to_contain_text(f"length {length}")
    expect(page.locator("#match-view")).to_have_attribute("data-ready", "true")
    expect(rows.first).to_have_attribute("data-length", str(length))
    lengths = rows.evaluate_all("els => els.map((e) => Number(e.dataset.length))")
    assert lengths and set(lengths) == {length}

    # Opening a row jumps the selection view there and marks the hit.
    first = rows.first
    pos = int(first.get_attribute("data-position"))
    first.click()
    expect(page).to_have_url(re.compile(rf"mark={pos},{pos + length - 1}"))
    _ready(page)
    expect(page.locator(f'#tokens li[data-pos="{pos}"]')).to_have_count(1)
    expect(page.locator("#lineplot .mark")).to_have_attribute("visibility", "visible")
    url = page.url

    page.reload()
    _ready(page)
    expect(page.locator("#match-view")).to_have_attribute("data-ready", "true")
    assert page.url == url
    expect(page.get_by_role("spinbutton", name="Range start")).to_have_value(str(a))
    expect(page.get_by_role("spinbutton", name="Threshold")).to_have_value("0.5")
    expect(page.locator(f'#tokens li[data-pos="{pos}"]')).to_have_count(1)
    expect(page.locator("#chips .chip")).to_have_count(len(expected_05))
    expect(page.locator(".bar.is-selected").first).to_have_attribute("data-length", str(length))
    assert rows.evaluate_all("els => els.map((e) => Number(e.dataset.length))") == lengths


def test_paging_sources_cells_search_and_keys(page, signed_in, user, brackets):
    ss, depth, tokens = brackets
    # A range that opens depth 1: cell 0 and the "inside" cell 5 are selected.
    a, b = run_at(depth, tokens, level=1)
    expected = selected(user, ss, a, b)
    page.goto(f"/statesets/{ss.id}/?start={a}&end={b}&pos={max(0, a - 10)}&match=1")
    _ready(page)
    expect(page.locator("#chips .chip")).to_have_count(len(expected))
    rows = _rows(page)
    expect(rows.first).to_be_visible()

    # Paging through the hits (the match has more than a page).
    pager = page.get_by_role("navigation", name="Pages of hits")
    expect(pager).to_be_visible()
    first_page = rows.evaluate_all("els => els.map((e) => e.dataset.position)")
    page.get_by_role("button", name="Next ▶").click()
    expect(page).to_have_url(re.compile(r"page=2"))
    expect(page.locator("#page-info")).to_contain_text(re.compile(r"Hits 21\D"))
    expect(rows.first).not_to_have_attribute("data-position", first_page[0])

    # Exclude a cell by its chip, add one by number; the heatmap row follows a hover.
    cell = expected[0]
    page.get_by_role("button", name=f"Exclude cell {cell}").click()
    expect(page).to_have_url(re.compile(rf"ex={cell}"))
    expect(page).not_to_have_url(re.compile(r"page=2"))
    expect(page.get_by_role("button", name=f"Restore cell {cell}")).to_be_visible()
    page.get_by_role("spinbutton", name="Add cell").fill("9")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page).to_have_url(re.compile(r"cells=9"))
    expect(page.locator('#chips .chip[data-cell="9"]')).to_have_count(1)
    page.locator('#chips .chip[data-cell="9"]').hover()
    expect(page.locator("#heatmap rect.cursor-row")).to_have_count(1)
    chips = _chips(page)

    # A second source stacked under the first, on its own 0..1 scale.
    page.get_by_label("Compare source").select_option("l1_gate_i")
    expect(page).to_have_url(re.compile(r"cmp=l1_gate_i"))
    _ready(page)
    expect(page.locator("#lineplot-cmp")).to_be_visible()
    ticks = page.locator("#lineplot-cmp .axis .tick text").evaluate_all(
        "els => els.map((e) => e.textContent)"
    )
    assert ticks[0] == "0.0" and ticks[-1] == "1.0", ticks

    # Switching the source keeps the selected cells.
    page.get_by_role("combobox", name="Source", exact=True).select_option("l1_gate_i")
    expect(page).to_have_url(re.compile(r"source=l1_gate_i"))
    _ready(page)
    expect(page.locator("#selection-summary")).not_to_contain_text("updating")
    assert sorted(_chips(page)) == sorted(chips)
    # A gate is coloured on 0..1 (sequential), in the heatmap and its legend.
    expect(page.locator("#heatmap canvas")).to_have_attribute(
        "aria-label", re.compile(r"colours from 0 \(dark blue\) to 1 \(yellow\)")
    )
    expect(page.locator("#legend svg.legend")).to_have_attribute(
        "aria-label", re.compile(r"from 0 \(dark blue\) to 1")
    )

    # Phrase search: hits listed, a click jumps there.
    page.get_by_role("searchbox", name="Search").fill("((((")
    page.get_by_role("button", name="Find").click()
    hits = page.get_by_role("list", name="Search hits").locator("button")
    expect(hits.first).to_be_visible()
    target = int(hits.last.inner_text().replace(",", ""))
    hits.last.click()
    _ready(page)
    expect(page.locator(f'#tokens li[data-pos="{target}"]')).to_have_class(re.compile("is-hit"))

    # Keys: pan by half a window, zoom, and the window stays inside the corpus.
    page.locator("#figure").focus()
    page.keyboard.press("End")
    _ready(page)
    n = ss.length
    expect(page.locator("#tokens li").last).to_have_attribute("data-pos", str(n - 1))
    expect(page.get_by_role("button", name="Right ▶")).to_be_disabled()
    page.keyboard.press("Shift+ArrowLeft")
    expect(page).to_have_url(re.compile(rf"pos={n - 150}"))
    page.get_by_role("button", name="Zoom in").click()
    expect(page).to_have_url(re.compile(r"w=67"))
    _ready(page)
    expect(page.locator("#tokens li")).to_have_count(67)


def test_a_long_match_shows_its_jobs_progress(page, signed_in, user, project, brackets):
    from backend.jobs.models import Job

    ss, depth, tokens = brackets
    a, b = run_at(depth, tokens)
    done = api_as(user).post(
        f"/api/statesets/{ss.id}/matches/",
        {"source": "l1_h", "start": a, "end": b},
        format="json",
    )
    assert done.status_code == 200, done.content
    job = Job.objects.create(
        kind="match",
        project=project,
        created_by=user,
        status="running",
        progress=0.4,
        message="Scanning the corpus",
    )

    def fake(route):
        from backend.jobs.api import job_envelope

        route.fulfill(status=202, json=job_envelope(job))

    page.route(re.compile(r".*/api/statesets/[^/]+/matches/$"), fake)
    page.goto(f"/statesets/{ss.id}/?start={a}&end={b}&pos={a - 20}")
    _ready(page)
    page.get_by_role("button", name="Match").click()
    bar = page.get_by_role("progressbar", name="Match progress")
    expect(bar).to_have_attribute("aria-valuenow", "40")
    expect(page.locator("#match-progress")).to_contain_text("Scanning the corpus")
    expect(page.locator("#match-view")).to_have_attribute("aria-busy", "true")

    Job.objects.filter(id=job.id).update(
        status="succeeded", progress=1.0, result={"match": done.json()["id"]}
    )
    expect(_rows(page).first).to_be_visible()
    expect(page.locator("#match-progress")).to_be_hidden()
    expect(page.locator("#match-exact")).to_be_hidden()


def test_the_hypothesis_panelapi_as(page, signed_in, user, brackets):
    ss, depth, tokens = brackets
    a, b = run_at(depth, tokens)
    expected = selected(user, ss, a, b)
    page.goto(f"/statesets/{ss.id}/")
    _ready(page)
    expect(page.locator("#hypothesis-panel")).to_be_visible()
    result = page.evaluate(
        """async ([a, b]) => {
            const m = await import("/static/webui/js/pages/analysis-state.js");
            await m.ready;
            const seen = [];
            m.onSelectionChange((s) => seen.push(s));
            const before = m.getSpec();
            const applied = await m.applySpec({ start: a, end: b, threshold: 0.3 });
            const wanted = await m.applySpec({ cells: [applied.cells[0], 11] });
            return { before, applied, wanted, events: seen.length, url: location.search };
        }""",
        [a, b],
    )
    assert result["before"]["start"] is None and result["before"]["cells"] == []
    assert result["applied"]["cells"] == expected
    assert result["applied"]["zero_left"] == 1 and result["applied"]["min_length"] == 2
    assert sorted(result["wanted"]["cells"]) == sorted([expected[0], 11])
    assert result["wanted"]["start"] == a  # the range stays; the edits make the cells
    assert result["events"] >= 2
    page.reload()
    _ready(page)
    spec = page.evaluate(
        """async () => {
            const m = await import("/static/webui/js/pages/analysis-state.js");
            await m.ready;
            await new Promise((r) => setTimeout(r, 0));
            return m.getSpec();
        }"""
    )
    expect(page.locator("#chips .chip")).to_have_count(2)
    assert spec["start"] == a


def test_selection_api_takes_the_match_defaults(user, brackets):
    ss, depth, tokens = brackets
    a, b = run_at(depth, tokens)
    answer = api_as(user).post(
        f"/api/statesets/{ss.id}/selection/",
        {"source": "l1_h", "start": a, "end": b},
        format="json",
    )
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert (body["threshold"], body["zero_left"], body["zero_right"]) == (0.3, 1, 0)


def test_off_constraint_handles_drag_and_keys(page, signed_in, user, brackets):
    """The off zones' handles on the plot set Off before / Off after like the inputs:
    dragged along the tokens, or with the arrow keys; the selection follows."""
    ss = brackets[0]
    page.goto(f"/statesets/{ss.id}/?pos=0&w=100&start=40&end=45&zl=1&zr=0&threshold=0.3")
    _ready(page)
    left = page.locator("#lineplot path.off-handle.off-left")
    right = page.locator("#lineplot path.off-handle.off-right")
    expect(left).to_have_attribute("aria-valuenow", "1")
    expect(right).to_have_attribute("aria-valuenow", "0")

    # Drag the left handle three tokens further out: Off before becomes 4.
    box = left.bounding_box()
    col = page.locator('#tokens li[data-pos="36"]').bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(col["x"] + 1, box["y"] + box["height"] / 2, steps=5)
    page.mouse.up()
    expect(page).to_have_url(re.compile(r"zl=4"))
    expect(page.get_by_role("spinbutton", name="Off before")).to_have_value("4")
    expect(left).to_have_attribute("aria-valuenow", "4")

    # Keys on the right handle: two steps out, one back.
    right.focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowLeft")
    expect(page).to_have_url(re.compile(r"zr=1"))
    expect(page.get_by_role("spinbutton", name="Off after")).to_have_value("1")
    expect(page.locator("#selection-summary")).not_to_contain_text("updating")
    chips = sorted(_chips(page))
    want = selected(user, ss, 40, 45, threshold=0.3, zero_left=4, zero_right=1)
    assert chips == sorted(want)
