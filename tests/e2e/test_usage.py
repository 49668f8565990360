"""The usage dashboard in a real browser: plots and tables drawn from the API's figures,
the date range and whose usage picked in the page (and kept in the URL), CSV
downloads, and a refusal said in the page; no console errors."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.support.usage import at_day, days_ago, record, request_event

pytestmark = pytest.mark.e2e


@pytest.fixture
def history(signed_in, project):
    """ada's usage over the last ten days, and a colleague's in her project."""
    from backend.accounts.services import user_create
    from backend.projects.services import membership_set

    from .conftest import PASSWORD

    grace = user_create(username="grace", password=PASSWORD)
    membership_set(project=project, username="grace", role="editor")
    for n in range(10):
        day = days_ago(n)
        for i in range(n % 4 + 1):
            at = at_day(day, 8 + i)
            record(signed_in, "project.opened", at=at)
            record(signed_in, "match.run", at=at, latency_ms=20.0 + 5 * i, cached=i % 2 == 0)
            request_event(signed_in, 4.0 + i, at=at)
        record(signed_in, "job.finished", at=at_day(day, 20), job_kind="extract", duration_s=40.0)
        record(grace, "hypothesis.saved", at=at_day(day, 21), hypothesis="h-1")
    record(signed_in, "job.failed", at=at_day(days_ago(2), 22), job_kind="train", duration_s=3.0)
    return grace


def _ready(page):
    expect(page.locator("#usage")).to_have_attribute("data-ready", "true")


def test_the_dashboard_draws_a_users_own_usage(page, live_server, history):
    page.goto("/usage/")
    _ready(page)
    figures = page.get_by_test_id("usage-figures")
    expect(figures).to_contain_text("Actions")
    # ada's own: 23 openings and 23 matches over 10 days; grace's events are not hers
    expect(figures.locator("div", has_text="Actions")).to_contain_text("46")
    expect(figures.locator("div", has_text="Active users")).to_contain_text("1")
    expect(page.locator("#usage-active svg")).to_have_count(1)
    expect(page.locator("#usage-actions svg rect")).to_have_count(10 + 10)  # two groups a day
    expect(page.locator("#usage-latency svg path.line")).to_have_count(4)
    expect(page.locator("#usage-jobs tbody tr")).to_have_count(2)
    expect(page.locator("#usage-jobs tbody")).to_contain_text("100.0 %")
    expect(page.locator("#usage")).not_to_contain_text("grace")

    link = page.locator('#usage-actions a.csv-link[data-table="actions"]')
    href = link.get_attribute("href")
    assert "format=csv" in href
    download = page.request.get(href)
    assert download.status == 200 and download.headers["content-type"].startswith("text/csv")
    lines = download.text().splitlines()
    assert lines[0] == "day,kind,count"
    assert f"{days_ago(3).isoformat()},match.run,4" in lines

    # A shorter range from the buttons: the URL keeps it, the figures follow.
    page.get_by_role("button", name="7 days").click()
    _ready(page)
    expect(page).to_have_url(re.compile(r"from=" + days_ago(6).isoformat()))
    expect(page.locator("#usage-from")).to_have_value(days_ago(6).isoformat())
    expect(figures.locator("div", has_text="Actions")).to_contain_text("32")


def test_an_owner_picks_their_project_and_a_range(page, live_server, history):
    page.goto("/usage/")
    _ready(page)
    page.locator("#usage-scope").select_option(label="Project Brackets")
    page.locator("#usage-from").fill(days_ago(4).isoformat())
    page.locator("#usage-to").fill(days_ago(1).isoformat())
    page.get_by_role("button", name="Show").click()
    _ready(page)
    expect(page).to_have_url(re.compile(r"project=brackets"))
    expect(page.locator("#usage-summary h2")).to_have_text("Usage of project Brackets")
    figures = page.get_by_test_id("usage-figures")
    expect(figures.locator("div", has_text="Active users")).to_contain_text("2")
    # grace is not named to her project's owner: her rows fold into "(other users)"
    users = page.locator("#usage-most-used tbody").nth(1)
    expect(users).to_contain_text("ada")
    expect(users).to_contain_text("(other users)")
    expect(page.locator("#usage")).not_to_contain_text("grace")
    page.go_back()
    _ready(page)
    expect(page.locator("#usage-summary h2")).to_have_text("Usage of user ada")


def test_a_refused_scope_is_said_in_the_page(page, live_server, history, problems):
    problems.expect(r"HTTP 404: GET .*/api/usage/\?project=nope")
    problems.expect(r"status of 404")
    page.goto("/usage/?project=nope")
    _ready(page)
    expect(page.locator("#usage-status")).to_have_text("Not found.")


def test_the_range_is_checked_before_asking(page, live_server, history):
    page.goto("/usage/")
    _ready(page)
    page.locator("#usage-from").fill(days_ago(1).isoformat())
    page.locator("#usage-to").fill(days_ago(3).isoformat())
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#usage-status")).to_have_text("The first day must not be after the last.")
