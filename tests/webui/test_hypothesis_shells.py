"""The hypothesis parts of the page shells without a browser: the project page's
Hypotheses section, the analysis page's panel mount point, and the modules in place."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.test import Client

STATIC = Path(__file__).resolve().parents[2] / "webui" / "static" / "webui"
MODULES = [
    "js/core/markdown.js",
    "js/core/jobs.js",
    "js/project/hypotheses.js",
    "js/views/hypothesis-panel.js",
    "js/views/hypothesis-share.js",
    "js/views/hypothesis-comments.js",
    "js/views/hypothesis-stats.js",
    "js/views/cell-ranking.js",
    "js/views/stat-charts.js",
    "js/views/track-picker.js",
]


def _client(user) -> Client:
    c = Client()
    c.force_login(user)
    return c


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["owner", "collaborator"])
def test_project_page_has_a_hypotheses_section(request, who, project):
    body = _client(request.getfixturevalue(who)).get("/p/brackets/").content.decode()
    assert '<h2 id="hypotheses-h">Hypotheses</h2>' in body
    assert re.search(
        r'<div id="hypotheses" class="view" data-ready="false" aria-busy="true">', body
    )


def test_the_modules_are_in_place():
    for rel in MODULES:
        assert (STATIC / rel).is_file(), rel
    project = (STATIC / "js/pages/project.js").read_text()
    assert 'from "../project/hypotheses.js"' in project


def test_the_panel_modules_set_no_style_attributes():
    """The Content-Security-Policy blocks style attributes; widths go through the CSSOM."""
    for rel in MODULES:
        text = (STATIC / rel).read_text()
        assert not re.search(r"""\bstyle: ["'`]|setAttribute\(\s*["']style""", text), rel


def test_the_panel_does_not_render_markdown_as_html():
    """Notes and comments become DOM nodes built one by one, never parsed HTML."""
    for rel in MODULES:
        text = (STATIC / rel).read_text()
        assert "innerHTML" not in text and "insertAdjacentHTML" not in text, rel
