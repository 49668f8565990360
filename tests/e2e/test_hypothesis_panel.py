"""The hypothesis panel of the analysis page in a real browser: saving what the view
selects, the page's address as the hypothesis link, versions, the Share dialog,
forks and comments, statistics drawn as charts, a cell ranking whose top cells
become the selection, and the project page's list of hypotheses. A screenshot of
the panel is taken too; with STATELAB_UPDATE_DOCS=1 it is written to docs/img/
(otherwise to a temporary folder).

The state set is the demo-like one of ``conftest.write_brackets``: cell k of
``l1_h`` is on where the nesting depth is at least k + 1; its tracks are ``depth``
(scalar), ``kind`` (discrete: open, close, other) and ``surprisal``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from .conftest import PASSWORD, api_as, open_page_as, run_at, selected

pytestmark = pytest.mark.e2e

DOCS = Path(__file__).resolve().parents[2] / "docs" / "img"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
SPEC_JS = """async () => {
    const m = await import("/static/webui/js/pages/analysis-state.js");
    await m.ready;
    return m.getSpec();
}"""


def _save(user, ss, a, b, **extra) -> dict:
    body = {
        "stateset": str(ss.id),
        "source": "l1_h",
        "start": a,
        "end": b,
        "threshold": 0.3,
        "title": "deep brackets",
        **extra,
    }
    answer = api_as(user).post("/api/hypotheses/", body, format="json")
    assert answer.status_code == 201, answer.content
    return answer.json()


def _member(project, name: str, role: str = "viewer"):
    from backend.accounts.services import user_create
    from backend.projects.services import membership_set

    other = user_create(username=name, password=PASSWORD)
    membership_set(project=project, username=name, role=role)
    return other


def _ready(page):
    expect(page.locator("#figure")).to_have_attribute("data-ready", "true")
    expect(page.locator("#hypothesis-panel")).to_have_attribute("data-ready", "true")


def _chips(page) -> list[int]:
    return page.locator("#chips .chip").evaluate_all(
        "els => els.map((e) => Number(e.dataset.cell))"
    )


def _spec(page) -> dict:
    return page.evaluate(SPEC_JS)


def test_save_reload_and_versions(page, signed_in, user, brackets):
    ss, depth, tokens = brackets
    a, b = run_at(depth, tokens)
    expected = selected(user, ss, a, b)
    page.goto(f"/statesets/{ss.id}/?pos={a - 20}&start={a}&end={b}")
    _ready(page)
    panel = page.locator("#hypothesis-panel")
    expect(panel).to_be_visible()
    expect(panel.get_by_role("heading", name="Hypothesis", exact=True)).to_be_visible()
    expect(page.locator("#chips .chip")).to_have_count(len(expected))
    expect(panel.locator(".hyp-spec")).to_contain_text(f"tokens {a:,}\N{EN DASH}{b:,}")

    panel.get_by_label("Title").fill("inside depth 3")
    panel.get_by_label("Notes").fill(
        "Cells **on** inside `(((`.\n\n- one\n- two\n\n<script>window.pwned = 1</script> "
        "[paper](https://example.org/p) and [bad](javascript:alert(1))"
    )
    preview = panel.get_by_role("region", name="Preview")
    expect(preview.locator("strong")).to_have_text("on")
    expect(preview.locator("code")).to_have_text("(((")
    expect(preview.locator("li")).to_have_count(2)
    expect(preview.locator("script")).to_have_count(0)
    expect(preview).to_contain_text("<script>window.pwned = 1</script>")
    expect(preview.locator("a")).to_have_count(1)
    expect(preview.locator("a")).to_have_attribute("rel", "noopener noreferrer")
    expect(preview.locator("a")).to_have_attribute("href", "https://example.org/p")
    panel.get_by_label("Tags").fill("depth, brackets, depth")

    panel.get_by_role("button", name="Save hypothesis").click()
    expect(page).to_have_url(re.compile(rf"[?&]h={UUID}"))
    _ready(page)
    hid = re.search(rf"[?&]h=({UUID})", page.url).group(1)
    saved = page.request.get(f"/api/hypotheses/{hid}/").json()
    assert saved["cells"] == expected
    assert (saved["start"], saved["end"], saved["threshold"]) == (a, b, 0.3)
    assert saved["tags"] == ["depth", "brackets"]
    assert "window.pwned" in saved["notes"]
    expect(panel.locator(".hyp-meta")).to_contain_text("version 1 of 1")
    expect(panel.get_by_role("button", name="Save as new version")).to_be_hidden()

    # The address is the link: opened bare (only h=), it brings the saved view back.
    page.goto(f"/statesets/{ss.id}/?h={hid}")
    _ready(page)
    expect(page.get_by_role("spinbutton", name="Range start")).to_have_value(str(a))
    expect(page.get_by_role("spinbutton", name="Range end")).to_have_value(str(b))
    expect(page.get_by_role("spinbutton", name="Threshold")).to_have_value("0.3")
    expect(panel.get_by_label("Title")).to_have_value("inside depth 3")
    spec = _spec(page)
    assert (spec["source"], spec["start"], spec["end"], spec["threshold"]) == ("l1_h", a, b, 0.3)
    assert sorted(spec["cells"]) == sorted(expected)
    assert page.evaluate("() => window.pwned") is None

    # A changed threshold and title: a new version.
    page.get_by_role("spinbutton", name="Threshold").fill("0.5")
    page.get_by_role("spinbutton", name="Threshold").press("Enter")
    expect(panel.locator(".save-hint")).to_contain_text("threshold")
    panel.get_by_label("Title").fill("inside depth 3, tighter")
    panel.get_by_role("button", name="Save as new version").click()
    expect(panel.locator(".hyp-meta")).to_contain_text("version 2 of 2")
    _ready(page)
    assert page.request.get(f"/api/hypotheses/{hid}/").json()["threshold"] == 0.5
    expect(panel.get_by_role("button", name="Save as new version")).to_be_hidden()

    # The version picker shows version 1 exactly, and says so in the URL.
    panel.get_by_label("Version").select_option("1")
    expect(page).to_have_url(re.compile(r"[?&]v=1(&|$)"))
    _ready(page)
    expect(page.get_by_role("spinbutton", name="Threshold")).to_have_value("0.3")
    expect(panel.get_by_label("Title")).to_have_value("inside depth 3")
    expect(panel.locator(".hyp-meta")).to_contain_text("version 1 of 2")
    page.reload()
    _ready(page)
    expect(page.get_by_role("spinbutton", name="Threshold")).to_have_value("0.3")
    expect(panel.get_by_label("Version")).to_have_value("1")

    # Back in the history: the newest version again, view and panel alike.
    page.go_back()
    expect(page).not_to_have_url(re.compile(r"[?&]v="))
    expect(panel.locator(".hyp-meta")).to_contain_text("version 2 of 2")
    _ready(page)
    expect(page.get_by_role("spinbutton", name="Threshold")).to_have_value("0.5")
    expect(panel.get_by_label("Title")).to_have_value("inside depth 3, tighter")
    expect(panel.get_by_role("button", name="Save as new version")).to_be_hidden()


def test_share_with_a_project_viewer_who_forks_and_comments(
    page, signed_in, user, project, brackets, browser, live_server, problems
):
    ss, depth, tokens = brackets
    a, b = run_at(depth, tokens)
    bob = _member(project, "bob", "viewer")
    hyp = _save(user, ss, a, b, zero_left=2, cells_added=[9])
    link = f"/statesets/{ss.id}/?h={hyp['id']}"

    page.goto(link)
    _ready(page)
    panel = page.locator("#hypothesis-panel")
    panel.get_by_role("button", name="Share").click()
    dialog = page.get_by_role("dialog", name=re.compile("^Share"))
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("radio", name=re.compile("^Private"))).to_be_checked()

    # The API's refusal shows in the dialog.
    problems.expect(r"HTTP 400: POST .*/shares/$")
    problems.expect(r"status of 400")
    dialog.get_by_label("User name").fill("nobody")
    dialog.get_by_role("button", name="Add").click()
    expect(dialog.get_by_role("alert")).to_contain_text("'nobody'")
    expect(dialog.get_by_role("alert")).to_have_class(re.compile(r"\berror\b"))
    expect(dialog.locator(".share-people li[data-username]")).to_have_count(0)

    dialog.get_by_label("User name").fill("bob")
    dialog.get_by_role("button", name="Add").click()
    expect(dialog.locator('.share-people li[data-username="bob"]')).to_be_visible()
    expect(dialog.get_by_role("alert")).to_have_text("Shared with bob as viewer.")

    # The link visibility shows the link with a Copy button; back to private.
    dialog.get_by_role("radio", name=re.compile("^Anyone with the link")).check()
    expect(dialog.get_by_role("textbox", name="Link")).to_have_value(
        re.compile(rf"/h/{hyp['id']}/\?link=\S+")
    )
    expect(dialog.get_by_role("button", name="Copy")).to_be_visible()
    expect(panel.locator(".hyp-meta")).to_contain_text("anyone with the link")
    dialog.get_by_role("radio", name=re.compile("^Private")).check()
    expect(dialog.get_by_role("textbox", name="Link")).to_be_hidden()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    shares = page.request.get(f"/api/hypotheses/{hyp['id']}/shares/").json()
    assert [(s["username"], s["role"]) for s in shares] == [("bob", "viewer")]
    assert page.request.get(f"/api/hypotheses/{hyp['id']}/").json()["visibility"] == "private"

    # Bob opens the same link and sees the same view, as a viewer.
    ctx, bob_page = open_page_as(browser, live_server, bob, problems)
    try:
        bob_page.goto(link)
        _ready(bob_page)
        bob_panel = bob_page.locator("#hypothesis-panel")
        expect(bob_page.get_by_role("spinbutton", name="Range start")).to_have_value(str(a))
        expect(bob_page.get_by_role("spinbutton", name="Off before")).to_have_value("2")
        spec = _spec(bob_page)
        assert sorted(spec["cells"]) == sorted(hyp["cells"]) and 9 in spec["cells"]
        expect(bob_panel.locator(".hyp-meta")).to_contain_text("you are a viewer")
        expect(bob_panel.get_by_role("button", name="Save as new version")).to_be_hidden()
        expect(bob_panel.get_by_label("Title")).to_have_attribute("readonly", "")

        bob_panel.get_by_role("button", name="Share").click()
        bob_dialog = bob_page.get_by_role("dialog", name=re.compile("^Share"))
        expect(bob_dialog).to_contain_text("only its owner")
        expect(bob_dialog.get_by_role("radio", name=re.compile("^Private"))).to_be_disabled()
        bob_dialog.get_by_role("button", name="Close").click()
        expect(bob_dialog).to_be_hidden()

        # A comment, edited, then a second one deleted.
        comments = bob_panel.get_by_role("list", name="Comments")
        bob_panel.get_by_label("Comment", exact=True).fill("Also on in *comments*?")
        bob_panel.get_by_role("button", name="Add comment").click()
        expect(comments.locator(".comment")).to_have_count(1)
        expect(comments.locator(".comment").first).to_contain_text("bob")
        expect(comments.locator(".comment em")).to_have_text("comments")
        comments.get_by_role("button", name=re.compile("^Edit comment")).click()
        bob_panel.get_by_label("Edit the comment").fill("Also on in strings?")
        bob_panel.get_by_role("button", name="Save", exact=True).click()
        expect(comments.locator(".comment").first).to_contain_text("Also on in strings?")
        expect(comments.locator(".comment").first).to_contain_text("(edited)")
        bob_panel.get_by_label("Comment", exact=True).fill("a typo")
        bob_panel.get_by_role("button", name="Add comment").click()
        expect(comments.locator(".comment")).to_have_count(2)
        comments.locator(".comment").nth(1).get_by_role(
            "button", name=re.compile("^Delete")
        ).click()
        expect(comments.locator(".comment")).to_have_count(1)
        listed = bob_page.request.get(f"/api/hypotheses/{hyp['id']}/comments/").json()
        assert [(c["author"], c["body"], c["version"]) for c in listed] == [
            ("bob", "Also on in strings?", 1)
        ]

        # Bob forks it: his own copy, with its lineage.
        bob_panel.get_by_role("button", name="Fork").click()
        expect(bob_page).not_to_have_url(re.compile(rf"h={hyp['id']}"))
        expect(bob_page).to_have_url(re.compile(rf"[?&]h={UUID}"))
        _ready(bob_page)
        expect(bob_panel.locator(".hyp-meta")).to_contain_text("by bob")
        expect(bob_panel.locator(".hyp-lineage a")).to_have_attribute(
            "href", f"/h/{hyp['id']}/?v=1"
        )
        expect(bob_panel.get_by_label("Title")).not_to_have_attribute("readonly", "")
        fork_id = re.search(rf"[?&]h=({UUID})", bob_page.url).group(1)
        fork = bob_page.request.get(f"/api/hypotheses/{fork_id}/").json()
        assert (fork["owner"], fork["forked_from"], fork["cells"]) == (
            "bob",
            hyp["id"],
            hyp["cells"],
        )
    finally:
        ctx.close()


def test_a_non_member_opens_the_link_and_sees_the_same_view(
    browser, live_server, signed_in, user, brackets, problems
):
    """Someone outside the project opens a hypothesis' link: the same source, range,
    threshold and cells, the match, over the hypothesis' routes only; the state set's
    own page stays a 404 for them, and so does the link once it is withdrawn."""
    from backend.accounts.services import user_create

    ss, depth, tokens = brackets
    a, b = run_at(depth, tokens)
    hyp = _save(user, ss, a, b, visibility="link")
    erin = user_create(username="erin", password=PASSWORD)
    ctx, erin_page = open_page_as(browser, live_server, erin, problems)
    try:
        erin_page.goto(f"/h/{hyp['id']}/?link={hyp['link']}")
        _ready(erin_page)
        expect(erin_page.get_by_role("spinbutton", name="Range start")).to_have_value(str(a))
        spec = _spec(erin_page)
        assert sorted(spec["cells"]) == sorted(hyp["cells"]) and spec["source"] == "l1_h"
        panel = erin_page.locator("#hypothesis-panel")
        expect(panel.locator(".hyp-meta")).to_contain_text("you are a viewer")
        expect(panel.locator("#hyp-ranking")).to_be_hidden()
        erin_page.get_by_role("button", name="Match").click()
        expect(
            erin_page.get_by_role("table", name="Matches").locator("tbody tr").first
        ).to_be_visible()
        # nothing else of the project
        assert erin_page.request.get(f"/statesets/{ss.id}/").status == 404
        assert erin_page.request.get(f"/api/statesets/{ss.id}/").status == 404
        problems.expect(f"HTTP 404 (erin): GET {live_server.url}/statesets/{ss.id}/")
        problems.expect(f"HTTP 404 (erin): GET {live_server.url}/api/statesets/{ss.id}/")
        # the owner withdraws the link: the next request is refused
        api_as(user).patch(f"/api/hypotheses/{hyp['id']}/", {"rotate_link": True}, format="json")
        assert erin_page.request.get(f"/api/hypotheses/{hyp['id']}/").status == 404
        problems.expect(f"HTTP 404 (erin): GET {live_server.url}/api/hypotheses/{hyp['id']}/")
    finally:
        ctx.close()


def test_statistics_are_computed_and_drawn(page, signed_in, user, brackets):
    ss, depth, tokens = brackets
    a, b = run_at(depth, tokens)
    hyp = _save(user, ss, a, b)
    page.goto(f"/statesets/{ss.id}/?h={hyp['id']}")
    _ready(page)
    stats = page.get_by_role("region", name="Statistics")
    expect(stats).to_have_attribute("data-ready", "true")
    stats.get_by_label("Annotation").select_option("kind")
    stats.get_by_label("Label").select_option("open")
    stats.get_by_role("button", name="Compute statistics").click()
    result = stats.get_by_test_id("statistics-result")
    expect(result.locator(".stats-head")).to_contain_text("kind = open")
    expect(stats).to_have_attribute("data-ready", "true")

    rows = page.request.get(f"/api/hypotheses/{hyp['id']}/statistics/").json()
    assert len(rows) == 1
    answer = rows[0]
    a_ = answer["agreement"]
    confusion = result.locator("table.confusion td.num").all_text_contents()
    assert [int(x.replace(",", "")) for x in confusion] == [a_["tp"], a_["fp"], a_["fn"], a_["tn"]]
    assert result.locator(".agreement rect.bar").count() == 3
    labels = {r["label"] for r in answer["enrichment"]}
    assert result.locator(".enrichment rect.bar").count() == len(labels) > 0
    significant = sum(1 for r in answer["enrichment"] if r["q"] is not None and r["q"] < 0.05)
    assert result.locator(".enrichment .row.sig").count() == significant
    rob = answer["robustness"]
    assert (
        result.locator(".robustness rect.bar").count()
        == len(rob["threshold"]) + len(rob["leave_one_out"])
        > 0
    )
    for fig in result.locator("svg.stat-chart").all():
        assert fig.get_attribute("role") == "img" and fig.get_attribute("aria-label")

    csv = result.get_by_role("link", name="Download CSV")
    href = csv.get_attribute("href")
    assert href == f"/api/statistics/{answer['id']}/export/?format=csv"
    body = page.request.get(href).text()
    assert body.startswith("#")

    # A scalar track takes a threshold; both results are listed under the version.
    stats.get_by_label("Annotation").select_option("depth")
    stats.get_by_label("Positive at or above").fill("3")
    stats.get_by_role("button", name="Compute statistics").click()
    expect(result.locator(".stats-head")).to_contain_text("depth ≥ 3")
    expect(stats.get_by_role("list", name="Computed statistics").locator("li")).to_have_count(2)
    assert result.locator(".agreement rect.bar").count() == 3

    # Reopened, the version's newest statistics show at once.
    page.reload()
    _ready(page)
    expect(stats).to_have_attribute("data-ready", "true")
    expect(result.locator(".stats-head")).to_contain_text("depth ≥ 3")
    assert result.locator("rect.bar").count() > 3


def test_ranking_top_cells_become_the_selection(page, signed_in, user, brackets):
    ss, _depth, _tokens = brackets
    page.goto(f"/statesets/{ss.id}/")
    _ready(page)
    ranking = page.get_by_role("region", name="Cell ranking")
    expect(ranking).to_have_attribute("data-ready", "true")
    expect(ranking).to_contain_text("l1_h")
    ranking.get_by_label("Annotation").select_option("depth")
    ranking.get_by_role("button", name="Rank cells").click()
    expect(ranking.locator(".ranking-result rect.bar")).to_have_count(16)  # all 16 cells (< 20)
    expect(ranking).to_have_attribute("data-ready", "true")

    stored = page.request.get(f"/api/statesets/{ss.id}/rankings/").json()
    assert len(stored) == 1 and stored[0]["measure"] == "pearson"
    cells = page.request.get(f"/api/rankings/{stored[0]['id']}/").json()["cells"]
    rising = [c["cell"] for c in cells if c["pearson"] is not None and c["pearson"] > 0]
    assert set(rising[:3]) <= {0, 1, 2, 3, 4, 5}, cells[:6]

    ranking.get_by_label("Top N").fill("3")
    ranking.get_by_role("button", name="Use top 3 as selection").click()
    expect(page.locator("#chips .chip")).to_have_count(3)
    assert _chips(page) == rising[:3]
    expect(page).to_have_url(re.compile("cells=" + ",".join(map(str, rising[:3]))))
    expect(page).not_to_have_url(re.compile("start="))
    spec = _spec(page)
    assert spec["start"] is None and spec["cells"] == rising[:3]

    # A discrete track ranks by AUROC for one label.
    ranking.get_by_label("Annotation").select_option("kind")
    ranking.get_by_label("Label").select_option("open")
    ranking.get_by_role("button", name="Rank cells").click()
    expect(ranking.locator(".ranking-result .meta")).to_contain_text("AUROC")
    expect(ranking.locator(".ranking-result rect.bar")).to_have_count(16)


def test_project_page_lists_the_hypotheses(page, signed_in, user, project, brackets):
    ss, depth, tokens = brackets
    page.goto(f"/p/{project.slug}/")
    expect(page.locator("#hypotheses")).to_have_attribute("data-ready", "true")
    expect(page.locator("#hypotheses")).to_contain_text("No hypotheses yet")

    a, b = run_at(depth, tokens)
    hyp = _save(user, ss, a, b, tags=["depth"], visibility="project")
    page.reload()
    rows = page.locator("#hypotheses tbody tr")
    expect(rows).to_have_count(1)
    cells = rows.first.locator("td")
    expect(cells.nth(0).get_by_role("link")).to_have_text("deep brackets")
    expect(cells.nth(0).get_by_role("link")).to_have_attribute(
        "href", f"/statesets/{ss.id}/?h={hyp['id']}"
    )
    expect(cells.nth(1)).to_have_text("ada")
    expect(cells.nth(2)).to_have_text("1")
    expect(cells.nth(3)).to_have_text("project")
    expect(cells.nth(4)).to_have_text("depth")

    cells.nth(0).get_by_role("link").click()
    _ready(page)
    expect(page.locator("#hypothesis-panel").get_by_label("Title")).to_have_value("deep brackets")
    expect(page.get_by_role("spinbutton", name="Range start")).to_have_value(str(a))


def test_screenshot_of_the_panel_with_statistics(page, signed_in, user, brackets, tmp_path):
    ss, _depth, _tokens = brackets
    hyp = _save(
        user,
        ss,
        None,
        None,
        cells_added=[2, 3],
        zero_left=0,
        title="four brackets deep",
        tags=["depth"],
        notes="Cells **2** and **3** are on together only inside the fourth bracket.\n\n"
        "- a run starts with `(`\n- compare [the demo](https://example.org)",
    )
    page.goto(f"/statesets/{ss.id}/?h={hyp['id']}")
    _ready(page)
    panel = page.locator("#hypothesis-panel")
    stats = page.get_by_role("region", name="Statistics")
    stats.get_by_label("Annotation").select_option("kind")
    stats.get_by_label("Label").select_option("open")
    stats.get_by_role("button", name="Compute statistics").click()
    expect(stats.get_by_test_id("statistics-result").locator(".stats-head")).to_contain_text(
        "kind = open"
    )
    ranking = page.get_by_role("region", name="Cell ranking")
    ranking.get_by_label("Annotation").select_option("depth")
    ranking.get_by_role("button", name="Rank cells").click()
    expect(ranking.locator(".ranking-result rect.bar")).to_have_count(16)
    panel.get_by_label("Comment", exact=True).fill("Also on in *comments*?")
    panel.get_by_role("button", name="Add comment").click()
    expect(panel.locator(".comment")).to_have_count(1)
    _ready(page)
    page.mouse.move(0, 0)
    out = DOCS if os.environ.get("STATELAB_UPDATE_DOCS") == "1" else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    panel.screenshot(path=str(out / "hypothesis-panel.png"))
    assert (out / "hypothesis-panel.png").stat().st_size > 20_000
