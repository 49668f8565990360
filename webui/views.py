"""Page shells for the web UI.

Each view renders a thin HTML shell: the header, the page's containers and its boot
data (through `json_script`), plus a link to the page's JSON twin under /api/. The
page module in `static/webui/js/pages/` fetches and draws everything else, so what a
page shows is always what the API answers. Access goes through the same selectors
as the API: a project or state set the caller may not see is a 404 here too.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from backend.core.events import event_emit
from backend.hypotheses.selectors import SESSION_LINKS, hypothesis_for_user, hypothesis_version
from backend.projects.selectors import project_for_user, role_of
from backend.states.selectors import stateset_describe, stateset_for_user
from backend.usage.selectors import usage_project_choices

from .guide import demo_guide


def _page(
    request: HttpRequest,
    template: str,
    *,
    boot: dict[str, Any],
    api_twin: str,
    title: str,
    project: Any = None,
    **extra: Any,
) -> HttpResponse:
    context = {
        "boot": boot,
        "api_twin": api_twin,
        "title": title,
        "nav_project": project,
        **extra,
    }
    return render(request, template, context)


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The caller's projects, the invitations to join others waiting for them, and a
    form to create a project."""
    api = reverse("project-list")
    return _page(
        request,
        "webui/home.html",
        boot={
            "api": {"projects": api, "invitations": reverse("invitation-list")},
            "pageUrl": "/p/",
        },
        api_twin=api,
        title="Projects",
    )


@login_required
def project(request: HttpRequest, slug: str) -> HttpResponse:
    """One project: state sets, corpora, models, jobs with live progress, members, and
    the forms to upload, extract and train."""
    proj, role = project_for_user(request.user, slug)
    event_emit("project.opened", user=request.user, project=proj, object_id=proj.slug)
    api = reverse("project-detail", kwargs={"slug": proj.slug})
    return _page(
        request,
        "webui/project.html",
        boot={
            "slug": proj.slug,
            "role": role,
            "username": request.user.get_username(),
            "api": {
                "project": api,
                "members": reverse("project-members", kwargs={"slug": proj.slug}),
                "jobs": reverse("project-jobs", kwargs={"slug": proj.slug}),
                "imports": reverse("project-imports", kwargs={"slug": proj.slug}),
                "corpora": reverse("project-corpora", kwargs={"slug": proj.slug}),
                "models": reverse("project-models", kwargs={"slug": proj.slug}),
                "extractions": reverse("project-extractions", kwargs={"slug": proj.slug}),
                "trainings": reverse("project-trainings", kwargs={"slug": proj.slug}),
                "modelBase": "/api/models/",
                "jobBase": "/api/jobs/",
                "statesetBase": "/api/statesets/",
                "corpusBase": "/api/corpora/",
            },
            "statesetBase": "/statesets/",
            "homeUrl": reverse("home"),
        },
        api_twin=api,
        title=proj.name,
        project=proj,
        can_write=role in ("owner", "editor"),
        is_owner=role == "owner",
    )


@login_required
def hypothesis(request: HttpRequest, hypothesis_id: Any) -> HttpResponse:
    """A hypothesis' link: `/h/<id>/[?v=<version>][&link=<token>]`.

    Whoever may read its state set goes on to the analysis page with the hypothesis
    open. A reader it is shared with (or who has its link) gets the same page over
    the hypothesis' own routes, which show its state set through it only; a link
    token is kept in the session, so that the page's requests need not carry it.
    Anyone else: 404.
    """
    link = request.GET.get("link") or None
    hyp, _ = hypothesis_for_user(request.user, hypothesis_id, link=link)
    raw = request.GET.get("v")
    version = hypothesis_version(hyp, int(raw) if raw and raw.isdigit() else None)
    query = {"h": str(hyp.id)}
    if raw and raw.isdigit():
        query["v"] = str(version.number)
    if role_of(request.user, hyp.project) is not None:
        target = reverse("stateset", kwargs={"stateset_id": hyp.stateset_id})
        return redirect(f"{target}?{urlencode(query)}")
    if link:
        links = dict(request.session.get(SESSION_LINKS) or {})
        links[str(hyp.id)] = link
        request.session[SESSION_LINKS] = links
    ss = hyp.stateset
    event_emit(
        "stateset.viewed",
        user=request.user,
        project=hyp.project,
        object_id=ss.id,
        summary={"hypothesis": str(hyp.id), "reader": True, "tokens": ss.length},
    )
    ids = {"hypothesis_id": str(hyp.id)}
    described = stateset_describe(ss)
    # Only the source the version pins: the reader's routes serve that one.
    described["sources"] = [x for x in described["sources"] if x["id"] == version.source]
    return _page(
        request,
        "webui/stateset.html",
        boot={
            "id": str(ss.id),
            "api": {
                "stateset": reverse("hypothesis-detail", kwargs=ids),
                "context": reverse("hypothesis-context", kwargs=ids),
                "selection": reverse("hypothesis-selection", kwargs=ids),
                "search": reverse("hypothesis-search", kwargs=ids),
                "matches": reverse("hypothesis-matches", kwargs=ids),
                "matchBase": reverse("hypothesis-matches", kwargs=ids),
                "jobBase": "/api/jobs/",
            },
            "stateset": described,
            "guide": None,
            "hypothesis": {"id": str(hyp.id), "version": query.get("v"), "reader": True},
        },
        api_twin=reverse("hypothesis-detail", kwargs=ids),
        title=version.title,
        project=None,
        stateset=ss,
        reader=True,
    )


@login_required
def stateset(request: HttpRequest, stateset_id: Any) -> HttpResponse:
    """The analysis page of a state set: the selection view (cell values over a window
    of tokens, a hypothesis range and its cells) and the match view."""
    ss = stateset_for_user(request.user, stateset_id)
    event_emit(
        "stateset.viewed",
        user=request.user,
        project=ss.project,
        object_id=ss.id,
        summary={"tokens": ss.length},
    )
    ids = {"stateset_id": str(ss.id)}
    api = reverse("stateset-detail", kwargs=ids)
    return _page(
        request,
        "webui/stateset.html",
        boot={
            "id": str(ss.id),
            "api": {
                "stateset": api,
                "context": reverse("stateset-context", kwargs=ids),
                "selection": reverse("stateset-selection", kwargs=ids),
                "search": reverse("stateset-search", kwargs=ids),
                "matches": reverse("stateset-matches", kwargs=ids),
                "matchBase": "/api/matches/",
                "jobBase": "/api/jobs/",
            },
            # The description the page starts from (its JSON twin answers the same),
            # so that the first window is asked for without a round trip before it.
            "stateset": stateset_describe(ss),
            "guide": demo_guide(ss),
        },
        api_twin=api,
        title=ss.name,
        project=ss.project,
        stateset=ss,
    )


@login_required
def usage(request: HttpRequest) -> HttpResponse:
    """The usage dashboard: active users, actions, latency, jobs, the most used projects,
    users and hypotheses, storage, over a range of days; staff see the whole lab,
    anyone else their own usage and that of the projects they own."""
    api = reverse("usage-dashboard")
    return _page(
        request,
        "webui/usage.html",
        boot={
            "api": {"usage": api, "tableBase": api},
            "username": request.user.get_username(),
            "staff": bool(request.user.is_staff),
            "projects": usage_project_choices(request.user),
        },
        api_twin=api,
        title="Usage",
    )
