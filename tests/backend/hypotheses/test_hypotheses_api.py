"""Saved hypotheses over the API: `/api/hypotheses/` and every route below it.

A hypothesis pins its cells (the range's selection, plus the cells added, minus
the cells excluded) and its match result; every edit writes a new immutable
version. Who may open it follows its visibility, its shares and the caller's
project role; anyone else gets the 404 of a missing hypothesis on every route,
and a user it is shared with sees the state set only through it. Statistics are
tested in test_hypothesis_statistics_api.py.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from backend.hypotheses.models import (
    Comment,
    Hypothesis,
    HypothesisShare,
    HypothesisVersion,
)
from backend.jobs.models import Job
from backend.matching.models import Match
from backend.projects.services import membership_set
from tests.backend.test_openapi import check_against_schema
from tests.conftest import write_stateset
from tests.support.people import acquaint

pytestmark = pytest.mark.django_db(transaction=True)

# A range whose selection holds several cells (zero_left 0: on throughout is enough).
RANGE = {"source": "s0", "start": 120, "end": 123, "threshold": 0.3, "zero_left": 0}
# Everything a version says, plus what it pins: equal between two answers of one version.
CONTENT = (
    "id",
    "version",
    "title",
    "notes",
    "tags",
    "project",
    "stateset",
    "source",
    "start",
    "end",
    "threshold",
    "zero_left",
    "zero_right",
    "min_length",
    "max_length",
    "limit",
    "transform",
    "cells_added",
    "cells_excluded",
    "cells",
    "owner",
    "forked_from",
    "forked_version",
    "match",
    "created_by",
    "created_at",
    "stateset_info",
)
DETAIL = "/api/hypotheses/{hypothesis_id}/"


@pytest.fixture
def spec(owner_api):
    r = owner_api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert r.status_code == 200
    return r.json()


def _body(ss, **over: Any) -> dict[str, Any]:
    return {
        "stateset": str(ss.id),
        "title": "On inside 120-123",
        "notes": "**on** while *nested*",
        "tags": ["nesting"],
        **RANGE,
        **over,
    }


def _save(client, ss, **over: Any) -> dict[str, Any]:
    r = client.post("/api/hypotheses/", _body(ss, **over), format="json")
    assert r.status_code == 201, r.content
    return r.json()


def _u(h: dict[str, Any] | str, rest: str = "") -> str:
    hid = h["id"] if isinstance(h, dict) else h
    return f"/api/hypotheses/{hid}/{rest}"


def _selection(client, ss, **body: Any) -> list[int]:
    r = client.post(f"/api/statesets/{ss.id}/selection/", {**RANGE, **body}, format="json")
    assert r.status_code == 200, r.content
    return r.json()["cells"]


def _content(answer: dict[str, Any]) -> dict[str, Any]:
    out = {k: answer[k] for k in CONTENT}
    out["match_result"] = {k: answer["match_result"][k] for k in ("id", "status", "total")}
    return out


def _match_jobs() -> int:
    return Job.objects.filter(kind="match").count()


def _nothing_stored() -> None:
    assert not Hypothesis.objects.exists()
    assert not HypothesisVersion.objects.exists()
    assert _match_jobs() == 0


# --- saving -----------------------------------------------------------------------


def test_save_pins_the_selection_plus_added_minus_excluded(owner_api, stateset, spec):
    ss = stateset[0]
    selected = _selection(owner_api, ss)
    assert len(selected) >= 4, selected  # the fixture's range selects several cells
    outside = [c for c in range(16) if c not in selected]
    added = [outside[1], outside[0], selected[1]]  # one already selected; unsorted
    excluded = [selected[0], selected[-1], outside[1]]  # one also added: excluded wins
    r = owner_api.post(
        "/api/hypotheses/",
        _body(ss, cells_added=added, cells_excluded=excluded),
        format="json",
    )
    assert r.status_code == 201, r.content
    h = r.json()
    check_against_schema(spec, "/api/hypotheses/", "post", 201, h)
    assert h["cells"] == sorted((set(selected) | set(added)) - set(excluded))
    assert h["cells_added"] == sorted(added) and h["cells_excluded"] == sorted(excluded)
    assert {k: h[k] for k in ("source", "start", "end", "threshold", "zero_left")} == {
        "source": "s0",
        "start": 120,
        "end": 123,
        "threshold": 0.3,
        "zero_left": 0,
    }
    assert (h["zero_right"], h["min_length"], h["max_length"], h["limit"]) == (0, 2, None, 50)
    assert h["title"] == "On inside 120-123" and h["notes"] == "**on** while *nested*"
    assert h["tags"] == ["nesting"]
    assert (h["version"], h["latest_version"], h["visibility"]) == (1, 1, "private")
    assert (h["owner"], h["created_by"], h["role"]) == ("alice", "alice", "owner")
    assert h["link"] is None and h["forked_from"] is None and h["forked_version"] is None
    assert (h["project"], h["stateset"]) == ("brackets", str(ss.id))
    info = h["stateset_info"]
    assert (info["name"], info["length"], info["source"]["id"]) == ("synthetic", 300, "s0")
    assert [a["name"] for a in info["annotations"]] == ["depth", "kind"]
    # The match result is pinned and, computed within the save's wait, finished.
    assert h["match"] is not None and h["match_result"]["id"] == h["match"]
    assert h["match_result"]["status"] == "succeeded"
    assert HypothesisVersion.objects.get().match_id == uuid.UUID(h["match"])
    # Opening it gives back exactly what was saved.
    got = owner_api.get(_u(h))
    assert got.status_code == 200
    check_against_schema(spec, DETAIL, "get", 200, got.json())
    assert _content(got.json()) == _content(h)


def test_save_cells_added_only(owner_api, stateset):
    ss = stateset[0]
    h = _save(owner_api, ss, start=None, end=None, cells_added=[9, 3, 3, 12])
    assert h["cells"] == [3, 9, 12] and h["cells_added"] == [3, 9, 12]
    assert h["start"] is None and h["end"] is None
    body = _body(ss, cells_added=[9, 3, 12])
    del body["start"], body["end"]  # no range at all, rather than nulls
    r = owner_api.post("/api/hypotheses/", body, format="json")
    assert r.status_code == 201 and r.json()["cells"] == [3, 9, 12]


BAD_SAVES = [
    # a range that selects nothing and nothing added
    ({"threshold": 1.5}, 400, "empty_selection"),
    # everything selected is excluded again
    ({"start": None, "end": None, "cells_added": [2], "cells_excluded": [2]}, 400, "empty"),
    ({"cells_added": [16]}, 400, "cells 0 to 15"),
    ({"cells_excluded": [99]}, 400, "cells 0 to 15"),
    ({"cells_added": [-1]}, 400, "cells_added"),
    ({"source": "nope"}, 400, "s0"),
    ({"end": None}, 400, "start and end"),
    ({"start": 130}, 400, "end must not be before start"),
    ({"end": 300}, 400, "300 tokens"),
    ({"max_length": 1}, 400, "max_length"),
    ({"title": ""}, 400, "title"),
    ({"visibility": "everyone"}, 400, "visibility"),
    ({"stateset": None}, 400, "state set"),
    ({"stateset": str(uuid.uuid4())}, 404, "not_found"),
    ({"stateset": "not-an-id"}, 400, "stateset"),
]


@pytest.mark.parametrize(("change", "status", "says"), BAD_SAVES)
def test_bad_saves_store_nothing(owner_api, stateset, change, status, says):
    body = {k: v for k, v in _body(stateset[0], **change).items() if v is not None}
    r = owner_api.post("/api/hypotheses/", body, format="json")
    assert r.status_code == status, r.content
    assert says in r.content.decode(), r.content
    _nothing_stored()


def test_the_same_query_pins_one_match_computed_once(owner_api, collaborator_api, stateset, spec):
    ss = stateset[0]
    first = _save(owner_api, ss)
    assert _match_jobs() == 1
    # The same cells and constraints, reached by naming the cells: the same query.
    second = _save(
        collaborator_api,
        ss,
        title="same cells by hand",
        start=None,
        end=None,
        cells_added=first["cells"],
    )
    assert second["match"] == first["match"] and second["match_result"]["status"] == "succeeded"
    assert _match_jobs() == 1
    assert Match.objects.filter(stateset=ss).count() == 1
    # Opening and editing what does not change the query recomputes nothing either.
    assert owner_api.get(_u(first)).json()["match"] == first["match"]
    v2 = owner_api.patch(_u(first), {"title": "renamed", "tags": []}, format="json").json()
    assert v2["version"] == 2 and v2["match"] == first["match"]
    assert _match_jobs() == 1
    # Another threshold is another query.
    other = _save(owner_api, ss, start=None, end=None, cells_added=first["cells"], threshold=0.5)
    assert other["match"] != first["match"] and _match_jobs() == 2
    # The match route gives the pinned result's hits.
    page = owner_api.get(_u(first, "match/?limit=3&left=2&right=1"))
    assert page.status_code == 200, page.content
    check_against_schema(spec, "/api/hypotheses/{hypothesis_id}/match/", "get", 200, page.json())
    body = page.json()
    assert body["id"] == first["match"] and body["status"] == "succeeded"
    assert body["query"]["cells"] == first["cells"] and body["total"] > 0
    assert 0 < len(body["hits"]) <= 3 and (body["limit"], body["left"]) == (3, 2)
    direct = owner_api.get(f"/api/matches/{first['match']}/?limit=3&left=2&right=1").json()
    assert body["hits"] == direct["hits"]
    assert owner_api.get(_u(first, "match/?limit=0")).status_code == 400


def test_an_edit_writes_a_new_version_and_the_old_one_stays(owner_api, stateset, spec):
    ss = stateset[0]
    v1 = owner_api.get(_u(_save(owner_api, ss, cells_added=[0]))).json()
    r = owner_api.patch(
        _u(v1),
        {"threshold": 0.2, "notes": "looser", "tags": ["nesting", "loose"], "cells_excluded": [0]},
        format="json",
    )
    assert r.status_code == 200, r.content
    check_against_schema(spec, DETAIL, "patch", 200, r.json())
    v2 = r.json()
    assert (v2["version"], v2["latest_version"], v2["created_by"]) == (2, 2, "alice")
    assert v2["title"] == v1["title"] and v2["notes"] == "looser"  # unchanged fields carry over
    assert v2["cells"] == [c for c in _selection(owner_api, ss, threshold=0.2) if c != 0]
    assert v2["match"] != v1["match"] and v2["cells"] != v1["cells"]
    assert Hypothesis.objects.get().version == 2
    # Version 1 is exactly what was saved, its match result included.
    old = owner_api.get(_u(v1, "versions/1/"))
    assert old.status_code == 200
    check_against_schema(
        spec, "/api/hypotheses/{hypothesis_id}/versions/{number}/", "get", 200, old.json()
    )
    assert _content(old.json()) == _content(v1)
    assert old.json()["latest_version"] == 2
    assert _content(owner_api.get(_u(v1, "versions/2/")).json()) == _content(v2)
    assert _content(owner_api.get(_u(v1)).json()) == _content(v2)
    # Its match page is version 1's.
    assert owner_api.get(_u(v1, "match/?version=1")).json()["id"] == v1["match"]
    assert owner_api.get(_u(v1, "match/")).json()["id"] == v2["match"]
    versions = owner_api.get(_u(v1, "versions/"))
    check_against_schema(
        spec, "/api/hypotheses/{hypothesis_id}/versions/", "get", 200, versions.json()
    )
    assert [(v["version"], v["cells"], v["match"]) for v in versions.json()] == [
        (2, v2["cells"], v2["match"]),
        (1, v1["cells"], v1["match"]),
    ]
    assert owner_api.get(_u(v1, "versions/3/")).status_code == 404
    assert owner_api.get(_u(v1, "match/?version=3")).status_code == 404
    # A PATCH that is refused writes nothing.
    for bad in (
        {},
        {"end": 100},
        {"source": "nope"},
        {"cells_added": [16]},
        {"threshold": 1.5, "cells_added": []},
    ):
        assert owner_api.patch(_u(v1), bad, format="json").status_code == 400, bad
    assert HypothesisVersion.objects.count() == 2 and Hypothesis.objects.get().version == 2
    assert _content(owner_api.get(_u(v1, "versions/1/")).json()) == _content(v1)


def test_a_hypothesis_of_a_rankings_top_cells(owner_api, outsider_api, stateset, spec):
    ss = stateset[0]
    r = owner_api.post(
        f"/api/statesets/{ss.id}/rankings/",
        {"source": "s0", "annotation": "kind", "label": "open"},
        format="json",
    )
    assert r.status_code == 202, r.content
    job = owner_api.get(f"/api/jobs/{r.json()['job']['id']}/").json()
    ranking = owner_api.get(f"/api/rankings/{job['result']['ranking']}/").json()
    rising = [c["cell"] for c in ranking["cells"] if c["auroc"] is not None and c["auroc"] > 0.5]
    assert len(rising) >= 3
    body = {"ranking": ranking["id"], "top": 3, "threshold": 0.3}
    # An outsider cannot make one of a ranking they may not see.
    assert outsider_api.post("/api/hypotheses/", body, format="json").status_code == 404
    assert not Hypothesis.objects.exists()
    r = owner_api.post("/api/hypotheses/", {**body, "visibility": "project"}, format="json")
    assert r.status_code == 201, r.content
    check_against_schema(spec, "/api/hypotheses/", "post", 201, r.json())
    h = r.json()
    assert h["cells"] == sorted(rising[:3]) and h["cells_added"] == h["cells"]
    assert (h["stateset"], h["source"], h["start"], h["end"]) == (str(ss.id), "s0", None, None)
    assert h["threshold"] == 0.3 and h["visibility"] == "project"
    # no range: "on" is enough, alone or in a run of one (the request's defaults for a
    # range do not apply)
    assert (h["zero_left"], h["zero_right"], h["min_length"]) == (0, 0, 1)
    assert h["title"] == "Top 3 cells for kind = open"
    assert h["match_result"]["status"] == "succeeded"
    titled = owner_api.post("/api/hypotheses/", {**body, "title": "mine"}, format="json")
    assert titled.status_code == 201 and titled.json()["title"] == "mine"
    for bad in (
        {"ranking": ranking["id"], "threshold": 0.3},  # no top
        {**body, "stateset": str(ss.id)},
        {**body, "start": 1, "end": 2},
        {**body, "top": 0},
    ):
        assert owner_api.post("/api/hypotheses/", bad, format="json").status_code == 400, bad
    assert Hypothesis.objects.count() == 2


# --- who may open it ----------------------------------------------------------------


def _missing_answer(client) -> tuple[int, Any]:
    r = client.get(_u(str(uuid.uuid4())))
    return r.status_code, r.json()


def test_visibility_private_project_link_public(
    api, owner, collaborator, outsider, make_user, stateset
):
    ss = stateset[0]
    alice, bob, charlie = api(owner), api(collaborator), api(outsider)
    dave = api(make_user("dave"))  # a user of the installation, in no project
    h = _save(alice, ss)
    missing = _missing_answer(charlie)

    def sees(client, link: str | None = None) -> bool:
        url = _u(h) + (f"?link={link}" if link is not None else "")
        r = client.get(url)
        if r.status_code == 404:
            assert (r.status_code, r.json()) == missing  # exactly like a missing one
            return False
        assert r.status_code == 200, r.content
        return True

    def listed(client) -> bool:
        return h["id"] in [x["id"] for x in client.get("/api/hypotheses/").json()]

    def set_visibility(value: str) -> dict[str, Any]:
        r = alice.patch(_u(h), {"visibility": value}, format="json")
        assert r.status_code == 200 and r.json()["visibility"] == value, r.content
        assert r.json()["version"] == 1  # who sees it is no new version
        return r.json()

    # private: even a member of the project gets the 404 of a missing hypothesis
    assert sees(alice) and listed(alice)
    assert not sees(bob) and not listed(bob)
    assert not sees(charlie)

    set_visibility("project")
    assert sees(bob) and listed(bob)
    assert bob.get(_u(h)).json()["role"] == "viewer"
    assert not sees(charlie) and not listed(charlie) and not sees(dave)

    linked = set_visibility("link")
    token = linked["link"]
    assert token and len(token) >= 32
    assert alice.get(_u(h)).json()["link"] == token
    assert sees(bob) and bob.get(_u(h)).json()["link"] is None  # only the owner sees it
    assert not sees(charlie) and not listed(charlie)
    assert sees(charlie, token)
    as_link = charlie.get(_u(h) + f"?link={token}").json()
    assert as_link["role"] == "viewer" and as_link["link"] is None
    assert not sees(charlie, token[:-1] + ("A" if token[-1] != "A" else "B"))
    assert not sees(charlie, "")
    assert not sees(charlie, "é")  # a token that is not ASCII is just a wrong one
    assert not listed(charlie)  # the list holds what opens without a link
    assert sees(dave, token)

    set_visibility("public")
    assert sees(charlie) and sees(dave) and listed(dave)
    assert charlie.get(_u(h)).json()["role"] == "viewer"
    assert sees(charlie, "wrong-token")  # a wrong token does not hide a public one

    set_visibility("private")
    for client in (bob, charlie, dave):
        assert not sees(client) and not listed(client)
    assert not sees(charlie, token)  # the link no longer opens it either

    assert api().get(_u(h)).status_code == 401


def test_link_opens_every_reading_route_and_rotation_kills_it(owner_api, outsider_api, stateset):
    ss = stateset[0]
    h = _save(owner_api, ss, visibility="link")
    owner_api.patch(_u(h), {"notes": "second"}, format="json")
    token = h["link"]
    reads = [
        "",
        "versions/",
        "versions/1/",
        "match/?version=1",
        "context/?start=0&end=4",
        "comments/",
        "statistics/",
        "export/?start=0&end=4",
    ]
    for rest in reads:
        sep = "&" if "?" in rest else "?"
        assert outsider_api.get(_u(h, rest) + f"{sep}link={token}").status_code == 200, rest
        assert outsider_api.get(_u(h, rest)).status_code == 404, rest
    # A link names the newest version or one version: each opens as saved.
    v1 = outsider_api.get(_u(h, f"versions/1/?link={token}")).json()
    assert v1["version"] == 1 and v1["notes"] == h["notes"] and v1["latest_version"] == 2
    # The link reads; it does not edit, manage or delete.
    for method, rest, body in (
        ("patch", "", {"title": "x"}),
        ("delete", "", None),
        ("get", "shares/", None),
        ("post", "shares/", {"username": "charlie", "role": "editor"}),
    ):
        r = getattr(outsider_api, method)(_u(h, rest) + f"?link={token}", body, format="json")
        assert r.status_code == 404, (method, rest, r.status_code)
    rotated = owner_api.patch(_u(h), {"rotate_link": True}, format="json")
    assert rotated.status_code == 200 and rotated.json()["version"] == 2
    new = rotated.json()["link"]
    assert new and new != token
    for rest in ("", "versions/1/", "match/", "comments/"):
        sep = "&" if "?" in rest else "?"
        assert outsider_api.get(_u(h, rest) + f"{sep}link={token}").status_code == 404, rest
    assert outsider_api.get(_u(h) + f"?link={new}").status_code == 200
    # A hypothesis that is no longer `link` does not open with its token.
    owner_api.patch(_u(h), {"visibility": "project"}, format="json")
    assert outsider_api.get(_u(h) + f"?link={new}").status_code == 404


def test_a_share_opens_the_hypothesis_and_nothing_else_of_its_project(
    owner_api, outsider_api, owner, outsider, stateset, spec
):
    ss, _, ids, vocab = stateset
    acquaint(owner, outsider)  # alice and charlie share another project
    other_ss = write_stateset(ss.project, owner, name="other", seed=3)[0]
    h = _save(owner_api, ss)
    missing = _missing_answer(outsider_api)
    assert (outsider_api.get(_u(h)).status_code, outsider_api.get(_u(h)).json()) == missing
    r = owner_api.post(_u(h, "shares/"), {"username": "charlie"}, format="json")
    assert r.status_code == 201, r.content
    check_against_schema(spec, "/api/hypotheses/{hypothesis_id}/shares/", "post", 201, r.json())
    assert (r.json()["username"], r.json()["role"]) == ("charlie", "viewer")
    shares = owner_api.get(_u(h, "shares/"))
    check_against_schema(spec, "/api/hypotheses/{hypothesis_id}/shares/", "get", 200, shares.json())
    assert [(s["username"], s["role"]) for s in shares.json()] == [("charlie", "viewer")]

    got = outsider_api.get(_u(h))
    assert got.status_code == 200 and got.json()["role"] == "viewer"
    assert _content(got.json()) == _content(owner_api.get(_u(h)).json())
    assert h["id"] in [x["id"] for x in outsider_api.get("/api/hypotheses/").json()]
    # The states and annotations it shows, of the pinned source...
    ctx = outsider_api.get(_u(h, "context/?start=0&end=9&cells=1,2"))
    assert ctx.status_code == 200, ctx.content
    own = owner_api.get(f"/api/statesets/{ss.id}/context/?source=s0&start=0&end=9&cells=1,2")
    assert ctx.json() == own.json()
    assert ctx.json()["tokens"] == [vocab[i] for i in ids[:10]]
    match = outsider_api.get(_u(h, "match/"))
    assert match.status_code == 200 and match.json()["id"] == h["match"]
    assert outsider_api.get(_u(h, "versions/1/")).status_code == 200
    # ...and nothing else of the project: the same 404 as for anyone outside it.
    for url in (
        f"/api/statesets/{ss.id}/",
        f"/api/statesets/{ss.id}/context/?source=s0&start=0&end=9",
        f"/api/statesets/{other_ss.id}/",
        f"/api/statesets/{ss.id}/rankings/",
        f"/api/matches/{h['match']}/",
        "/api/projects/brackets/",
        "/api/projects/brackets/jobs/",
        f"/api/jobs/{h['match_result']['job']}/",
    ):
        r = outsider_api.get(url)
        assert r.status_code == 404, (url, r.status_code)
        assert "brackets" not in r.content.decode()
    r = outsider_api.post(f"/api/statesets/{ss.id}/selection/", RANGE, format="json")
    assert r.status_code == 404
    assert "brackets" not in str(outsider_api.get("/api/projects/").json())

    # Revoking works on the next request, on every route.
    assert (
        owner_api.delete(_u(h, "shares/"), {"username": "charlie"}, format="json").status_code
        == 204
    )
    for rest in ("", "versions/1/", "match/", "context/?start=0&end=3", "comments/", "statistics/"):
        assert outsider_api.get(_u(h, rest)).status_code == 404, rest
    assert h["id"] not in [x["id"] for x in outsider_api.get("/api/hypotheses/").json()]
    again = owner_api.delete(_u(h, "shares/"), {"username": "charlie"}, format="json")
    assert again.status_code == 404 and again.json()["error"]["code"] == "not_shared"
    assert not HypothesisShare.objects.exists()


def test_share_requests_are_checked(owner_api, outsider, stateset):
    h = _save(owner_api, stateset[0])
    for body, says in (
        ({"username": "nobody"}, "No member of a project you can see is named 'nobody'"),
        # charlie exists but shares no project with alice: the same answer as for nobody.
        ({"username": "charlie"}, "No member of a project you can see is named 'charlie'"),
        ({"username": "alice"}, "owns this hypothesis"),
        ({"username": "charlie", "role": "owner"}, "role"),
        ({}, "username"),
    ):
        r = owner_api.post(_u(h, "shares/"), body, format="json")
        assert r.status_code == 400 and says in r.content.decode(), (body, r.content)
    assert not HypothesisShare.objects.exists()


def test_an_editor_writes_versions_but_does_not_manage(api, owner, outsider, stateset):
    alice, charlie = api(owner), api(outsider)
    acquaint(owner, outsider)
    h = _save(alice, stateset[0], visibility="link")
    alice.post(_u(h, "shares/"), {"username": "charlie", "role": "editor"}, format="json")
    r = charlie.patch(_u(h), {"title": "edited by charlie"}, format="json")
    assert r.status_code == 200, r.content
    assert (r.json()["version"], r.json()["created_by"], r.json()["role"]) == (
        2,
        "charlie",
        "editor",
    )
    assert r.json()["link"] is None  # the token stays with the owner
    for method, rest, body in (
        ("patch", "", {"visibility": "public"}),
        ("patch", "", {"rotate_link": True}),
        ("patch", "", {"visibility": "private", "title": "and a version"}),
        ("delete", "", None),
        ("get", "shares/", None),
        ("post", "shares/", {"username": "bob"}),
        ("delete", "shares/", {"username": "charlie"}),
    ):
        r = getattr(charlie, method)(_u(h, rest), body, format="json")
        assert r.status_code == 403, (method, rest, r.status_code)
        assert r.json()["error"]["code"] == "permission_denied"
    hyp = Hypothesis.objects.get()
    assert (hyp.visibility, hyp.version, hyp.link_token) == ("link", 2, h["link"])
    assert HypothesisShare.objects.get().role == "editor"
    # Shared again as a viewer: reads, may not edit.
    r = alice.post(_u(h, "shares/"), {"username": "charlie", "role": "viewer"}, format="json")
    assert r.status_code == 201 and r.json()["role"] == "viewer"
    assert HypothesisShare.objects.count() == 1
    assert charlie.get(_u(h)).json()["role"] == "viewer"
    r = charlie.patch(_u(h), {"title": "again"}, format="json")
    assert r.status_code == 403 and Hypothesis.objects.get().version == 2


def test_project_roles_on_hypotheses_that_are_not_private(
    api, owner, collaborator, make_user, project, stateset
):
    alice, bob = api(owner), api(collaborator)
    erin = make_user("erin")
    membership_set(project=project, username="erin", role="editor")
    erin_api = api(erin)
    ss = stateset[0]
    # bob (a viewer of the project) saves and opens it to the project
    h = _save(bob, ss, visibility="project")
    assert h["owner"] == "bob" and h["role"] == "owner"
    assert alice.get(_u(h)).json()["role"] == "owner"  # the project's owner
    assert erin_api.get(_u(h)).json()["role"] == "editor"
    r = erin_api.patch(_u(h), {"notes": "by an editor"}, format="json")
    assert r.status_code == 200 and r.json()["version"] == 2
    assert erin_api.patch(_u(h), {"visibility": "public"}, format="json").status_code == 403
    assert erin_api.delete(_u(h)).status_code == 403
    r = alice.patch(_u(h), {"visibility": "link"}, format="json")
    assert r.status_code == 200 and r.json()["link"] == Hypothesis.objects.get().link_token
    # bob's private hypothesis is his alone, even to the project's owner
    private = _save(bob, ss, title="mine only")
    for client in (alice, erin_api):
        assert client.get(_u(private)).status_code == 404
        assert client.delete(_u(private)).status_code == 404
    # the project's owner may delete the one that is not private
    assert alice.delete(_u(h)).status_code == 204
    assert bob.get(_u(h)).status_code == 404
    assert list(Hypothesis.objects.values_list("id", flat=True)) == [uuid.UUID(private["id"])]


# --- the same routes for each role ------------------------------------------------

# (method, path under the hypothesis, body, what it needs, takes ?link=)
ROUTES = [
    ("get", "", None, "viewer", True),
    ("get", "versions/", None, "viewer", True),
    ("get", "versions/1/", None, "viewer", True),
    ("get", "match/?version=1", None, "viewer", True),
    ("get", "context/?start=0&end=5", None, "viewer", True),
    ("get", "export/?start=0&end=5", None, "viewer", True),
    ("get", "comments/", None, "viewer", True),
    ("post", "comments/", {"body": "seen it"}, "viewer", True),
    ("patch", "comments/{comment}/", {"body": "edited"}, "author", True),
    ("get", "statistics/", None, "viewer", True),
    ("post", "statistics/", {"annotation": "kind", "label": "open"}, "viewer", True),
    ("get", "/api/statistics/{statistics}/", None, "viewer", True),
    ("get", "/api/statistics/{statistics}/export/", None, "viewer", True),
    ("post", "fork/", {"version": 1}, "viewer", True),
    ("patch", "", {"notes": "edited"}, "editor", False),
    ("get", "shares/", None, "owner", False),
    # dave is in no project: sharing with him, or making it public, publishes the
    # project's states, which also needs the editor or owner role in the project
    ("post", "shares/", {"username": "dave"}, "publisher", False),
    ("delete", "shares/", {"username": "dave"}, "owner", False),
    ("patch", "", {"visibility": "public"}, "publisher", False),  # "project" when public
    ("delete", "comments/{comment}/", None, "author", True),
    ("delete", "", None, "owner", False),
]
RANK = {"viewer": 1, "editor": 2, "owner": 3}
PROJECT_ROLE = {"alice": "owner", "bob": "viewer", "charlie": None}  # the fixtures'

OK = {"get": 200, "post": 201, "patch": 200, "delete": 204}

# scenario -> how the hypothesis is set up, and each persona's (role, uses the link)
SCENARIOS = {
    "private": ("alice", "private", {}, {"alice": "owner", "bob": None, "charlie": None}),
    "project": ("alice", "project", {}, {"alice": "owner", "bob": "viewer", "charlie": None}),
    "link": (
        "alice",
        "link",
        {},
        {"alice": "owner", "bob": "viewer", "charlie": ("viewer", "link")},
    ),
    "link, wrong token": (
        "alice",
        "link",
        {},
        {"alice": "owner", "bob": "viewer", "charlie": (None, "wrong")},
    ),
    "public": ("alice", "public", {}, {"alice": "owner", "bob": "viewer", "charlie": "viewer"}),
    "private, shared with a viewer": (
        "alice",
        "private",
        {"charlie": "viewer"},
        {"alice": "owner", "bob": None, "charlie": "viewer"},
    ),
    "private, shared with an editor": (
        "alice",
        "private",
        {"charlie": "editor"},
        {"alice": "owner", "bob": None, "charlie": "editor"},
    ),
    "project, shared with its viewer as editor": (
        "alice",
        "project",
        {"bob": "editor"},
        {"alice": "owner", "bob": "editor", "charlie": None},
    ),
    "a viewer's, open to the project": (
        "bob",
        "project",
        {},
        {"alice": "owner", "bob": "owner", "charlie": None},
    ),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_every_route_answers_each_role(
    scenario, api, owner, collaborator, outsider, make_user, stateset
):
    """Owner, collaborator (a viewer of the project) and outsider on every route under a
    hypothesis: what their role allows answers 2xx, too low a role 403, no role 404."""
    acquaint(owner, collaborator, outsider, make_user("dave"))
    users = {"alice": owner, "bob": collaborator, "charlie": outsider}
    clients = {name: api(user) for name, user in users.items()}
    owner_name, visibility, shares, personas = SCENARIOS[scenario]
    mine = clients[owner_name]
    h = _save(mine, stateset[0], visibility=visibility)
    for name, role in shares.items():
        r = mine.post(_u(h, "shares/"), {"username": name, "role": role}, format="json")
        assert r.status_code == 201
    comment = mine.post(_u(h, "comments/"), {"body": "first"}, format="json").json()["id"]
    started = mine.post(
        _u(h, "statistics/"), {"annotation": "kind", "label": "open"}, format="json"
    )
    assert started.status_code == 202, started.content
    statistics = mine.get(f"/api/jobs/{started.json()['job']['id']}/").json()["result"][
        "statistics"
    ]
    token = Hypothesis.objects.get(id=h["id"]).link_token
    deleted: set[str] = set()
    shared_with_dave = False
    for method, rest, body, needs, takes_link in ROUTES:
        rest = rest.format(comment=comment, statistics=statistics)
        url = rest if rest.startswith("/api/") else _u(h, rest)
        for name in ("charlie", "bob", "alice"):
            persona = personas[name]
            role, link = persona if isinstance(persona, tuple) else (persona, None)
            call = url
            if link is not None:
                sep = "&" if "?" in url else "?"
                call += f"{sep}link={token if link == 'link' else 'wrong' + token}"
                if not takes_link:
                    role = None
            changes_visibility = body is not None and "visibility" in body
            data = body
            if changes_visibility and visibility == "public":
                data = {"visibility": "project"}
            r = getattr(clients[name], method)(call, data, format="json")
            if changes_visibility and r.status_code == 200:  # put it back for the next one
                back = clients[name].patch(url, {"visibility": visibility}, format="json")
                assert back.status_code == 200
                # leaving `link` withdrew the old link for good: a new token
                fresh = Hypothesis.objects.get(id=h["id"]).link_token
                assert fresh != token or visibility != "link"
                token = fresh
            if role is None or url in deleted:
                expected = 404
            elif needs == "author":
                expected = OK[method] if name == owner_name else 403
            elif needs == "publisher":
                publishes = not (changes_visibility and visibility == "public")
                may = PROJECT_ROLE[name] in ("owner", "editor") or not publishes
                expected = OK[method] if role == "owner" and may else 403
            elif rest == "shares/" and method == "delete" and RANK[role] >= RANK[needs]:
                expected = 204 if shared_with_dave else 404  # 404: nothing to revoke
            elif RANK[role] >= RANK[needs]:
                expected = OK[method]
                if rest.startswith("statistics/") and method == "post":
                    expected = 200  # stored: answered at once
            else:
                expected = 403
            assert r.status_code == expected, (scenario, name, role, method, call, r.content[:200])
            if rest == "shares/" and method != "get" and r.status_code in (201, 204):
                shared_with_dave = method == "post"
            if expected == 404:
                assert (
                    "brackets" not in r.content.decode() and "synthetic" not in r.content.decode()
                )
            if method == "delete" and r.status_code == 204:
                deleted.add(url)
            if method == "get" and rest == "" and expected == 200:
                answer = r.json()
                assert answer["role"] == role
                assert answer["link"] == (
                    token if role == "owner" and visibility == "link" else None
                )
    assert not Hypothesis.objects.filter(id=h["id"]).exists()


def test_anonymous_callers_get_401_everywhere(api, owner_api, stateset):
    h = _save(owner_api, stateset[0], visibility="public")
    anonymous = api()
    comment = owner_api.post(_u(h, "comments/"), {"body": "x"}, format="json").json()["id"]
    for method, rest, body, *_ in [
        *ROUTES,
        ("get", "/api/hypotheses/", None),
        ("post", "/api/hypotheses/", _body(stateset[0])),
    ]:
        rest = rest.format(comment=comment, statistics=uuid.uuid4())
        url = rest if rest.startswith("/api/") else _u(h, rest)
        r = getattr(anonymous, method)(url, body, format="json")
        assert r.status_code == 401, (method, url, r.status_code)
    assert Hypothesis.objects.count() == 1 and Comment.objects.count() == 1


# --- forks, comments, the list, deletion -------------------------------------------


def test_a_fork_keeps_its_lineage_and_is_private_to_whoever_forked(
    owner_api, collaborator_api, outsider_api, stateset, spec
):
    ss = stateset[0]
    h = _save(owner_api, ss, visibility="project")
    v1 = owner_api.get(_u(h)).json()
    owner_api.patch(_u(h), {"threshold": 0.2}, format="json")
    jobs = _match_jobs()
    r = collaborator_api.post(_u(h, "fork/"), {"version": 1, "title": "bob's copy"}, format="json")
    assert r.status_code == 201, r.content
    check_against_schema(spec, "/api/hypotheses/{hypothesis_id}/fork/", "post", 201, r.json())
    fork = r.json()
    assert fork["id"] != h["id"]
    assert (fork["forked_from"], fork["forked_version"]) == (h["id"], 1)
    assert (fork["owner"], fork["created_by"], fork["role"]) == ("bob", "bob", "owner")
    assert (fork["visibility"], fork["version"], fork["title"]) == ("private", 1, "bob's copy")
    same = (
        "source",
        "start",
        "end",
        "threshold",
        "zero_left",
        "cells_added",
        "cells",
        "notes",
        "tags",
        "match",
    )
    assert {k: fork[k] for k in same} == {k: v1[k] for k in same}
    assert _match_jobs() == jobs  # the fork pins the same match result
    # private to bob: not even the original's owner (the project's owner) opens it
    assert owner_api.get(_u(fork)).status_code == 404
    assert outsider_api.get(_u(fork)).status_code == 404
    assert [x["id"] for x in collaborator_api.get("/api/hypotheses/?mine=1").json()] == [fork["id"]]
    # the original is untouched; the newest version is forked by default
    assert owner_api.get(_u(h)).json()["latest_version"] == 2
    newest = collaborator_api.post(_u(h, "fork/"), {}, format="json").json()
    assert newest["forked_version"] == 2 and newest["threshold"] == 0.2
    assert newest["title"] == v1["title"]
    assert collaborator_api.post(_u(h, "fork/"), {"version": 3}, format="json").status_code == 404
    assert outsider_api.post(_u(h, "fork/"), {}, format="json").status_code == 404
    assert Hypothesis.objects.count() == 3
    # the fork's lineage survives the original's deletion as "unknown"
    assert owner_api.delete(_u(h)).status_code == 204
    assert collaborator_api.get(_u(fork)).json()["forked_from"] is None


def test_comments_are_changed_only_by_their_author(
    api, owner, collaborator, outsider, stateset, spec
):
    alice, bob, charlie = api(owner), api(collaborator), api(outsider)
    h = _save(alice, stateset[0], visibility="project")
    alice.patch(_u(h), {"notes": "v2"}, format="json")
    r = bob.post(_u(h, "comments/"), {"body": "on in v1 too?", "version": 1}, format="json")
    assert r.status_code == 201, r.content
    path = "/api/hypotheses/{hypothesis_id}/comments/"
    check_against_schema(spec, path, "post", 201, r.json())
    mine = r.json()
    assert (mine["author"], mine["body"], mine["version"], mine["edited_at"]) == (
        "bob",
        "on in v1 too?",
        1,
        None,
    )
    assert mine["created_at"]
    theirs = alice.post(_u(h, "comments/"), {"body": "yes"}, format="json").json()
    assert theirs["version"] is None
    listing = charlie.get(_u(h, "comments/"))
    assert listing.status_code == 404
    listing = bob.get(_u(h, "comments/"))
    check_against_schema(spec, path, "get", 200, listing.json())
    assert [(c["author"], c["body"]) for c in listing.json()] == [
        ("bob", "on in v1 too?"),
        ("alice", "yes"),
    ]
    one = _u(h, f"comments/{mine['id']}/")
    edited = bob.patch(one, {"body": "on in v1 too!"}, format="json")
    assert edited.status_code == 200, edited.content
    check_against_schema(spec, path + "{comment_id}/", "patch", 200, edited.json())
    assert edited.json()["body"] == "on in v1 too!" and edited.json()["edited_at"]
    assert edited.json()["created_at"] == mine["created_at"]
    for client, code in ((alice, 403), (charlie, 404)):
        assert client.patch(one, {"body": "hijacked"}, format="json").status_code == code
        assert client.delete(one).status_code == code
    assert Comment.objects.get(id=mine["id"]).body == "on in v1 too!"
    assert charlie.post(_u(h, "comments/"), {"body": "hi"}, format="json").status_code == 404
    for body in ({"body": ""}, {"body": "x", "version": 3}, {"body": "x", "version": 0}, {}):
        assert bob.post(_u(h, "comments/"), body, format="json").status_code == 400, body
    assert (
        bob.patch(_u(h, f"comments/{uuid.uuid4()}/"), {"body": "x"}, format="json").status_code
        == 404
    )
    # a comment is reached only through its own hypothesis
    other = _save(bob, stateset[0], title="bob's")
    assert bob.delete(_u(other, f"comments/{theirs['id']}/")).status_code == 404
    assert bob.delete(one).status_code == 204
    assert [c["author"] for c in bob.get(_u(h, "comments/")).json()] == ["alice"]
    assert Comment.objects.count() == 1


def test_the_list_filters_and_never_shows_what_the_caller_may_not_open(
    api, owner, collaborator, outsider, stateset, spec
):
    alice, bob, charlie = api(owner), api(collaborator), api(outsider)
    ss = stateset[0]
    ss2 = write_stateset(ss.project, owner, name="second", seed=5)[0]
    shared = _save(alice, ss, title="shared", tags=["a"], visibility="project")
    private = _save(alice, ss, title="private", tags=["b"])
    bobs = _save(bob, ss, title="bob's", tags=["a", "b"])
    second = _save(alice, ss2, title="second", tags=["a"], visibility="project")
    # charlie's own project, and one public hypothesis in it
    from backend.projects.services import project_create

    theirs = project_create(user=outsider, name="Theirs", slug="theirs", description="")
    tss = write_stateset(theirs, outsider, name="theirs")[0]
    public = _save(charlie, tss, title="public", visibility="public")
    hidden = _save(charlie, tss, title="hidden")

    def ids(client, query: str = "") -> list[str]:
        r = client.get("/api/hypotheses/" + query)
        assert r.status_code == 200, r.content
        return [x["id"] for x in r.json()]

    listing = alice.get("/api/hypotheses/")
    check_against_schema(spec, "/api/hypotheses/", "get", 200, listing.json())
    check_against_schema(spec, "/api/hypotheses/", "get", 200, bob.get("/api/hypotheses/").json())
    # newest edit first
    assert ids(alice) == [public["id"], second["id"], private["id"], shared["id"]]
    alice.patch(_u(shared), {"notes": "touched"}, format="json")
    assert ids(alice)[0] == shared["id"]
    assert listing.json()[0]["stateset_info"] is None  # the list is brief
    assert set(ids(alice, "?mine=1")) == {shared["id"], private["id"], second["id"]}
    assert set(ids(alice, "?tag=a")) == {shared["id"], second["id"]}
    assert set(ids(alice, "?tag=nesting")) == {public["id"]}
    assert set(ids(alice, f"?stateset={ss2.id}")) == {second["id"]}
    assert set(ids(alice, "?project=brackets")) == {shared["id"], private["id"], second["id"]}
    assert set(ids(alice, "?project=theirs")) == {public["id"]}
    assert set(ids(alice, "?project=brackets&tag=a&mine=1")) == {shared["id"], second["id"]}
    assert set(ids(bob)) == {shared["id"], bobs["id"], second["id"], public["id"]}
    assert set(ids(bob, "?tag=b")) == {bobs["id"]}
    assert set(ids(charlie)) == {public["id"], hidden["id"]}
    assert ids(charlie, "?project=brackets") == []
    assert ids(charlie, f"?stateset={ss.id}") == []
    text = charlie.get("/api/hypotheses/").content.decode()
    assert "brackets" not in text and "synthetic" not in text
    # roles in the list: the caller's own say owner; a link token never shows to others
    alice.patch(_u(shared), {"visibility": "link"}, format="json")
    rows = {x["id"]: x for x in alice.get("/api/hypotheses/").json()}
    assert rows[shared["id"]]["role"] == "owner" and rows[shared["id"]]["link"]
    rows = {x["id"]: x for x in bob.get("/api/hypotheses/").json()}
    assert rows[shared["id"]]["link"] is None and rows[shared["id"]]["role"] == "viewer"
    # each row's role is the one its detail answers
    alice.post(_u(private, "shares/"), {"username": "bob", "role": "editor"}, format="json")
    for client in (alice, bob, charlie):
        for row in client.get("/api/hypotheses/").json():
            assert row["role"] == client.get(_u(row)).json()["role"], row["title"]
    assert {x["id"]: x["role"] for x in bob.get("/api/hypotheses/").json()}[private["id"]] == (
        "editor"
    )
    assert api().get("/api/hypotheses/").status_code == 401


def test_deleting_the_stateset_deletes_its_hypotheses(
    owner_api, collaborator_api, outsider, stateset
):
    ss = stateset[0]
    h = _save(owner_api, ss, visibility="project")
    owner_api.post(_u(h, "shares/"), {"username": "charlie"}, format="json")
    collaborator_api.post(_u(h, "comments/"), {"body": "x"}, format="json")
    collaborator_api.post(_u(h, "fork/"), {}, format="json")
    assert Hypothesis.objects.count() == 2
    assert owner_api.delete(f"/api/statesets/{ss.id}/").status_code == 204
    assert not Hypothesis.objects.exists() and not HypothesisVersion.objects.exists()
    assert not Comment.objects.exists() and not HypothesisShare.objects.exists()
    assert owner_api.get(_u(h)).status_code == 404
    assert owner_api.get("/api/hypotheses/").json() == []


def test_deleting_a_hypothesis_keeps_its_match_in_the_store(owner_api, stateset):
    h = _save(owner_api, stateset[0])
    owner_api.post(_u(h, "comments/"), {"body": "x"}, format="json")
    assert owner_api.delete(_u(h)).status_code == 204
    assert owner_api.get(_u(h)).status_code == 404
    assert owner_api.delete(_u(h)).status_code == 404
    assert not Hypothesis.objects.exists() and not Comment.objects.exists()
    assert Match.objects.filter(id=h["match"]).exists()


# --- publishing beyond the project, and access that ends ----------------------------


def test_only_an_editor_of_the_project_publishes_beyond_it(
    api, collaborator, make_user, project, stateset
):
    """A project viewer may save and share inside the project, but a link, public
    visibility or a share with a non-member shows the project's states beyond it:
    403 with what it needs, and nothing changes."""
    bob = api(collaborator)
    # dave is in no project of alice's; he and bob know each other from another one.
    acquaint(make_user("dave"), collaborator)
    erin = make_user("erin")
    membership_set(project=project, username="erin", role="viewer")
    ss = stateset[0]
    for visibility in ("link", "public"):
        r = bob.post("/api/hypotheses/", _body(ss, visibility=visibility), format="json")
        assert r.status_code == 403 and "editor or owner role" in r.json()["error"]["message"]
    assert not Hypothesis.objects.exists()
    h = _save(bob, ss, visibility="project")
    for visibility in ("link", "public"):
        assert bob.patch(_u(h), {"visibility": visibility}, format="json").status_code == 403
    r = bob.post(_u(h, "shares/"), {"username": "dave"}, format="json")
    assert r.status_code == 403 and "not a member" in r.json()["error"]["message"]
    assert bob.post(_u(h, "shares/"), {"username": erin.username}, format="json").status_code == 201
    assert Hypothesis.objects.get().visibility == "project"
    assert list(HypothesisShare.objects.values_list("user__username", flat=True)) == ["erin"]
    # once bob is an editor of the project, he may
    membership_set(project=project, username=collaborator.username, role="editor")
    assert bob.patch(_u(h), {"visibility": "link"}, format="json").status_code == 200
    assert bob.post(_u(h, "shares/"), {"username": "dave"}, format="json").status_code == 201


def test_leaving_the_project_ends_access_through_ones_own_hypotheses(
    api, owner, collaborator, project, stateset
):
    from backend.projects.services import membership_remove

    bob = api(collaborator)
    h = _save(bob, stateset[0])
    assert bob.get(_u(h, "context/?start=0&end=5")).status_code == 200
    membership_remove(project=project, username=collaborator.username)
    for rest in ("", "context/?start=0&end=5", "match/", "export/?start=0&end=5"):
        assert bob.get(_u(h, rest)).status_code == 404, rest
    assert bob.get("/api/hypotheses/").json() == []


def test_a_fork_by_someone_outside_the_project_lives_as_long_as_their_share(
    api, owner, outsider, stateset
):
    alice, charlie = api(owner), api(outsider)
    acquaint(owner, outsider)
    h = _save(alice, stateset[0])
    assert alice.post(_u(h, "shares/"), {"username": "charlie"}, format="json").status_code == 201
    fork = charlie.post(_u(h, "fork/"), {}, format="json").json()
    assert charlie.get(_u(fork, "context/?start=0&end=5")).status_code == 200
    # the fork's owner, not a member, may not point it at another source of the project
    r = charlie.patch(_u(fork), {"source": "s0", "notes": "same source"}, format="json")
    assert r.status_code == 403 and "access to the project" in r.json()["error"]["message"]
    r = alice.delete(_u(h, "shares/"), {"username": "charlie"}, format="json")
    assert r.status_code == 204
    for rest in ("", "context/?start=0&end=5", "match/"):
        assert charlie.get(_u(fork, rest)).status_code == 404, rest
    assert charlie.get("/api/hypotheses/").json() == []  # nor listed
