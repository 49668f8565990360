"""Page shells for the web UI.

Each view renders a thin HTML shell: the header, the page's containers and its boot
data (through `json_script`), plus a link to the page's JSON twin under /api/. The
page module in `static/webui/js/pages/` fetches and draws everything else, so what a
page shows is always what the API answers. Access goes through the same selectors
as the API: a project or state set the caller may not see is a 404 here too.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, QueryDict
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
                "uploads": reverse("project-uploads", kwargs={"slug": proj.slug}),
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
            "uploadChunkBytes": int(settings.STATELAB_RESUMABLE_CHUNK_BYTES),
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
    return _analysis_page(
        request,
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


# The analysis page's window limits and defaults, as its URL state reads them
# (js/core/urlstate.js through pages/stateset.js): pos 0, w 100 tokens, 10..400.
WINDOW_DEFAULT = 100
WINDOW_MIN = 10
WINDOW_MAX = 400


def _int_param(raw: str | None, fallback: int) -> int:
    text = (raw or "").strip()
    return int(text) if re.fullmatch(r"-?[0-9]+", text) else fallback


def first_window(request: HttpRequest, boot: dict[str, Any]) -> str | None:
    """The context URL of the window the analysis page draws first, read from its
    query (or the demo guide's, when it has none) with the page's own defaults and
    limits. The page's head preloads it and its first module reads it from the boot
    data, so that the window's request starts while the HTML is still parsed instead
    of after the page's modules have loaded; the page uses it only when its own first
    window is the same."""
    info = boot.get("stateset") or {}
    sources = info.get("sources") or []
    if not sources:
        return None
    guide = boot.get("guide") or {}
    query = request.GET if request.GET else QueryDict(guide.get("query") or "")
    ids = [str(x["id"]) for x in sources]
    source = query.get("source") if query.get("source") in ids else ids[0]
    length = int(info.get("length") or 0)
    w = max(WINDOW_MIN, min(WINDOW_MAX, _int_param(query.get("w"), WINDOW_DEFAULT)))
    pos = max(0, min(max(0, length - w), _int_param(query.get("pos"), 0)))
    end = min(length - 1, pos + w - 1)
    if end < pos:
        return None
    return f"{boot['api']['context']}?{urlencode({'source': source, 'start': pos, 'end': end})}"


def _analysis_page(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    """The analysis page (a state set's, or a hypothesis reader's) with its first
    window named in the boot data and preloaded by the head."""
    boot = kwargs["boot"]
    # A hypothesis opened without a window of its own opens where its saved range
    # lies, which the page learns only from the hypothesis: nothing to read ahead.
    named = boot.get("hypothesis") or request.GET.get("h")
    url = None if named and "pos" not in request.GET else first_window(request, boot)
    boot["firstWindow"] = url
    preload = f"{url}&values=f32" if url else None
    return _page(request, "webui/stateset.html", preload=preload, **kwargs)


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
    return _analysis_page(
        request,
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
