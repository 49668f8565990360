"""Every route, called as anonymous, with a bad token and as an outsider, reveals nothing.

The matrix is built from the URL configuration itself: a new route that is not in
ROUTE_CASES makes this test fail until someone decides how it must answer.
"""

from datetime import timedelta

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.test import APIClient

from backend.artifacts.models import LanguageModel, ResumableUpload
from backend.hypotheses.models import (
    Comment,
    Hypothesis,
    HypothesisShare,
    HypothesisVersion,
    Ranking,
    Statistics,
)
from backend.jobs.models import Job
from backend.matching.models import Match
from backend.projects.models import Invitation

pytestmark = pytest.mark.django_db

# route name -> list of (method, body) to try. Public routes are listed apart.
ROUTE_CASES = {
    "project-list": [("get", None), ("post", {"name": "x"})],
    "project-detail": [("get", None), ("patch", {"name": "x"}), ("delete", None)],
    "project-members": [
        ("get", None),
        ("post", {"username": "charlie"}),
        ("delete", {"username": "bob"}),
    ],
    "project-jobs": [("get", None)],
    # The caller's own invitations: the outsider lists none, and opens no one else's.
    "invitation-list": [("get", None)],
    "invitation-detail": [("delete", None)],
    "invitation-accept": [("post", None)],
    "project-imports": [("post", {})],
    "project-corpora": [("get", None), ("post", {})],
    # Resumable uploads (tus): the creation route and an upload of the owner's.
    "project-uploads": [("post", {})],
    "upload-detail": [("get", None), ("patch", {}), ("delete", None)],
    "corpus-detail": [("get", None), ("delete", None)],
    "corpus-annotations": [("post", {})],
    "project-models": [("get", None), ("post", {})],
    "model-detail": [("get", None), ("delete", None)],
    "project-extractions": [("post", {})],
    "project-trainings": [("post", {})],
    "job-detail": [("get", None)],
    "job-cancel": [("post", None)],
    "stateset-detail": [("get", None), ("delete", None)],
    "stateset-context": [("get", None)],
    "stateset-selection": [("post", {"source": "s0", "start": 1, "end": 2, "threshold": 0.1})],
    "stateset-search": [("get", None)],
    "stateset-matches": [("post", {"source": "s0", "cells": [1, 2], "threshold": 0.3})],
    "stateset-index": [("post", None)],
    "stateset-corpus": [("post", None)],
    "stateset-annotations": [("post", {})],
    "match-detail": [("get", None)],
    "stateset-rankings": [("get", None), ("post", {"source": "s0", "annotation": "depth"})],
    "ranking-detail": [("get", None)],
    "ranking-export": [("get", None)],
    "stateset-export": [("get", None)],
    "match-export": [("get", None)],
    # A hypothesis of the project (visibility `project`): an outsider may not open it.
    "hypothesis-list": [
        ("get", None),
        (
            "post",
            {
                "stateset": "<stateset_id>",
                "title": "x",
                "source": "s0",
                "cells_added": [1],
                "threshold": 0.3,
            },
        ),
        ("post", {"ranking": "<ranking_id>", "top": 2, "threshold": 0.3}),
    ],
    "hypothesis-detail": [("get", None), ("patch", {"title": "x"}), ("delete", None)],
    "hypothesis-versions": [("get", None)],
    "hypothesis-version": [("get", None)],
    "hypothesis-match": [("get", None)],
    "hypothesis-context": [("get", None)],
    "hypothesis-export": [("get", None)],
    "hypothesis-selection": [("post", {"start": 1, "end": 2, "threshold": 0.1})],
    "hypothesis-search": [("get", None)],
    "hypothesis-matches": [("post", {"cells": [1, 2], "threshold": 0.3})],
    "hypothesis-match-detail": [("get", None)],
    "hypothesis-shares": [
        ("get", None),
        ("post", {"username": "charlie"}),
        ("delete", {"username": "bob"}),
    ],
    "hypothesis-fork": [("post", {})],
    "hypothesis-comments": [("get", None), ("post", {"body": "x"})],
    "hypothesis-comment": [("patch", {"body": "x"}), ("delete", None)],
    "hypothesis-statistics": [
        ("get", None),
        ("post", {"annotation": "kind", "label": "open"}),
    ],
    "statistics-detail": [("get", None)],
    "statistics-export": [("get", None)],
    "v2-info": [("get", None)],
    "v2-context": [("get", None)],
    "v2-search": [("get", None)],
    "v2-match": [("get", None)],
    # The caller's own usage: the outsider sees theirs only (tests/backend/usage/).
    "usage-dashboard": [("get", None)],
    "usage-table": [("get", None)],
}
PUBLIC = {"auth-token", "schema", "api-docs"}
PAGES = {
    "login",
    "logout",
    "home",
    "project",
    "stateset",
    "hypothesis",
    "usage",
}  # pages: checked in test_pages_matrix below


def _api_routes():
    names = []

    def walk(patterns, prefix=""):
        for p in patterns:
            if isinstance(p, URLResolver):
                if str(p.pattern).startswith("admin/"):
                    continue
                walk(p.url_patterns, prefix + str(p.pattern))
            elif isinstance(p, URLPattern):
                names.append((prefix + str(p.pattern), p.name))

    walk(get_resolver().url_patterns)
    return names


@pytest.fixture
def objects(project, owner, stateset):
    from backend.artifacts.models import Corpus

    ss = stateset[0]
    corpus = Corpus.objects.create(
        project=project,
        name="c",
        tokenization="word",
        length=1,
        vocab_size=1,
        documents=1,
        path="corpora/none",
    )
    job = Job.objects.create(kind="corpus_upload", project=project, created_by=owner)
    model = LanguageModel.objects.create(
        project=project,
        name="m",
        spec={},
        rnn_type="LSTM",
        layers=1,
        hidden_size=4,
        vocab_size=5,
        path="models/none",
        origin="upload",
    )
    match = Match.objects.create(stateset=ss, source="s0", cache_key="0" * 64, query={})
    ranking = Ranking.objects.create(
        stateset=ss, source="s0", annotation="depth", measure="pearson"
    )
    # Written directly (no match job): visible to whoever may read the project.
    hyp = Hypothesis.objects.create(stateset=ss, project=project, owner=owner, visibility="project")
    version = HypothesisVersion.objects.create(
        hypothesis=hyp,
        number=1,
        title="h",
        source="s0",
        threshold=0.3,
        cells_added=[1, 2],
        cells=[1, 2],
        match=match,
        created_by=owner,
    )
    comment = Comment.objects.create(hypothesis=hyp, author=owner, body="c")
    invitation = Invitation.objects.create(project=project, username="dave", role="viewer")
    statistics = Statistics.objects.create(
        version=version, annotation="kind", label="open", created_by=owner
    )
    upload = ResumableUpload.objects.create(
        project=project,
        created_by=owner,
        kind="corpus",
        length=10,
        path="uploads/partial/none.part",
        expires_at=timezone.now() + timedelta(days=1),
    )
    return {
        "slug": "brackets",
        "stateset_id": str(ss.id),
        "match_id": str(match.id),
        "ranking_id": str(ranking.id),
        "corpus_id": str(corpus.id),
        "job_id": str(job.id),
        "model_id": str(model.id),
        "hypothesis_id": str(hyp.id),
        "number": "1",
        "comment_id": str(comment.id),
        "statistics_id": str(statistics.id),
        "invitation_id": str(invitation.id),
        "table": "actions",
        "upload_id": str(upload.id),
    }


def _body(body, objects):
    """A request body with `<name>` placeholders filled from `objects`."""
    if body is None:
        return None
    return {
        k: objects[v[1:-1]] if isinstance(v, str) and v.startswith("<") else v
        for k, v in body.items()
    }


def _unchanged():
    """What the matrix' objects hold, to check that no refused call changed it."""
    hyp = Hypothesis.objects.get()
    return (
        Hypothesis.objects.count(),
        hyp.version,
        hyp.visibility,
        HypothesisVersion.objects.count(),
        list(Comment.objects.values_list("body", flat=True)),
        HypothesisShare.objects.count(),
        Statistics.objects.count(),
    )


def _url(route: str, objects) -> str:
    url = "/" + route
    for key, value in objects.items():
        for conv in ("slug", "str", "int"):
            url = url.replace(f"<{conv}:{key}>", value)
    assert "<" not in url, url
    if route.startswith("api/v2/"):
        url += "?project=brackets&pos=1&q=a&source=s0"
    elif route.endswith("context/"):
        url += "?source=s0&start=0&end=5"
    elif route.endswith("search/"):
        url += "?q=a"
    return url


def test_every_route_is_in_the_matrix():
    names = {name for _, name in _api_routes()}
    unknown = names - set(ROUTE_CASES) - PUBLIC - PAGES - {None}
    assert not unknown, f"add these routes to the access matrix: {sorted(unknown)}"


@pytest.mark.parametrize("who", ["anonymous", "bad_token", "outsider"])
def test_no_route_reveals_the_project(who, objects, outsider, project):
    client = APIClient()
    if who == "bad_token":
        client.credentials(HTTP_AUTHORIZATION="Token 0123456789abcdef0123456789abcdef01234567")
    elif who == "outsider":
        client.force_authenticate(outsider)
    checked = 0
    before = _unchanged()
    for route, name in _api_routes():
        if name not in ROUTE_CASES:
            continue
        for method, body in ROUTE_CASES[name]:
            url = _url(route, objects)
            r = getattr(client, method)(url, _body(body, objects), format="json")
            checked += 1
            if who in ("anonymous", "bad_token"):
                assert r.status_code == 401, (method, url, r.status_code)
            elif (
                name
                in (
                    "project-list",
                    "v2-info",
                    "hypothesis-list",
                    "invitation-list",
                    "usage-dashboard",
                    "usage-table",
                )
                and method == "get"
            ):
                assert r.status_code == 200, (method, url)
                assert "brackets" not in r.content.decode(), (method, url)
            elif name == "project-list":
                assert r.status_code == 201  # anyone signed in may create their own project
            else:
                assert r.status_code == 404, (method, url, r.status_code, r.content[:200])
                assert "brackets" not in r.content.decode()
    assert checked >= 20
    # nothing was changed by any of those calls
    assert project.memberships.count() == 2
    assert Job.objects.filter(status="queued").count() == 1
    assert _unchanged() == before


def test_pages_matrix(client, outsider, objects):
    hyp = f"/h/{objects['hypothesis_id']}/"
    for url in ("/", "/p/brackets/", f"/statesets/{objects['stateset_id']}/", hyp):
        r = client.get(url)
        assert r.status_code == 302 and "/accounts/login/" in r["Location"], url
    client.force_login(outsider)
    for url in ("/p/brackets/", f"/statesets/{objects['stateset_id']}/", hyp, hyp + "?link=x"):
        r = client.get(url)
        assert r.status_code == 404, url
        assert "brackets" not in r.content.decode()


# (route, method) -> expected status for the owner, a viewer collaborator and an outsider.
# Bodies are empty, so a caller allowed to write gets the 400 of a bad request.
ROLE_CODES = {
    ("project-models", "get"): {"owner": 200, "collaborator": 200, "outsider": 404},
    ("project-models", "post"): {"owner": 400, "collaborator": 403, "outsider": 404},
    ("model-detail", "get"): {"owner": 200, "collaborator": 200, "outsider": 404},
    ("project-extractions", "post"): {"owner": 400, "collaborator": 403, "outsider": 404},
    ("project-trainings", "post"): {"owner": 400, "collaborator": 403, "outsider": 404},
    ("stateset-annotations", "post"): {"owner": 400, "collaborator": 403, "outsider": 404},
    ("corpus-annotations", "post"): {"owner": 400, "collaborator": 403, "outsider": 404},
    # exports: a viewer may export (no parameters: 400); the matrix's match is pending: 409
    ("stateset-export", "get"): {"owner": 400, "collaborator": 400, "outsider": 404},
    ("match-export", "get"): {"owner": 409, "collaborator": 409, "outsider": 404},
    # rankings: a viewer may rank (an empty body: 400) and read them
    ("stateset-rankings", "post"): {"owner": 400, "collaborator": 400, "outsider": 404},
    ("stateset-rankings", "get"): {"owner": 200, "collaborator": 200, "outsider": 404},
    ("ranking-detail", "get"): {"owner": 200, "collaborator": 200, "outsider": 404},
    ("ranking-export", "get"): {"owner": 200, "collaborator": 200, "outsider": 404},
    # an editor makes a corpus of a state set's text; a viewer may not
    ("stateset-corpus", "post"): {"owner": 201, "collaborator": 403, "outsider": 404},
    # last: the owner's delete succeeds
    ("model-detail", "delete"): {"owner": 204, "collaborator": 403, "outsider": 404},
}


def test_model_routes_answer_each_role(objects, owner, collaborator, outsider):
    routes = {name: route for route, name in _api_routes()}
    for (name, method), codes in ROLE_CODES.items():
        url = _url(routes[name], objects)
        for who, user in (("outsider", outsider), ("collaborator", collaborator), ("owner", owner)):
            client = APIClient()
            client.force_authenticate(user)
            multipart = ("project-models", "stateset-annotations", "corpus-annotations")
            form = "multipart" if name in multipart else "json"
            r = getattr(client, method)(url, {}, format=form)
            assert r.status_code == codes[who], (who, method, url, r.status_code, r.content[:200])
            if r.status_code == 404:
                assert "brackets" not in r.content.decode()
    assert not LanguageModel.objects.exists()


def test_public_project_gives_outsiders_exactly_viewer_rights(
    objects, project, collaborator, outsider
):
    """On a public project a signed-in outsider gets, on every route, what a viewer gets;
    anonymous callers still get nothing."""
    project.public = True
    project.save(update_fields=["public"])
    viewer, other = APIClient(), APIClient()
    viewer.force_authenticate(collaborator)
    other.force_authenticate(outsider)
    checked = 0
    for route, name in _api_routes():
        if name not in ROUTE_CASES or name == "project-list":
            continue
        for method, body in ROUTE_CASES[name]:
            url = _url(route, objects)
            body = _body(body, objects)
            as_viewer = getattr(viewer, method)(url, body, format="json")
            as_outsider = getattr(other, method)(url, body, format="json")
            assert as_outsider.status_code == as_viewer.status_code, (
                method,
                url,
                as_viewer.status_code,
                as_outsider.status_code,
            )
            assert APIClient().get(url).status_code == 401
            checked += 1
    assert checked >= 25
    assert project.memberships.count() == 2
    assert LanguageModel.objects.count() == 1
    # A viewer (and so the outsider) reads, forks, comments and computes statistics on
    # the project's hypothesis, and may not edit, manage or delete it.
    hyp = Hypothesis.objects.get(id=objects["hypothesis_id"])
    assert (hyp.version, hyp.visibility) == (1, "project")
    assert not HypothesisShare.objects.exists()
    assert Comment.objects.get(id=objects["comment_id"]).body == "c"
    assert Comment.objects.filter(hypothesis=hyp, body="x").count() == 2
    assert Hypothesis.objects.filter(forked_from=hyp, owner=outsider).count() == 1
    assert Hypothesis.objects.filter(forked_from=hyp, owner=collaborator).count() == 1
