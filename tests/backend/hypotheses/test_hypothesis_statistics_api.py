"""Statistics of a hypothesis version over the API: `POST/GET
/api/hypotheses/{id}/statistics/`, `GET /api/statistics/{id}/` and its CSV export.

The numbers come from `workers.core.stats` (tested against scipy in
tests/workers); here: the job, storage with the version and reuse, the listing
under a version, the export, requests that say what exists, and who may follow
the job and read the result.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np
import pytest

from backend.hypotheses.models import Statistics
from backend.jobs.models import Job
from backend.states.models import StateSet
from tests.backend.test_openapi import check_against_schema
from tests.support.people import acquaint

pytestmark = pytest.mark.django_db(transaction=True)

LIST = "/api/hypotheses/{hypothesis_id}/statistics/"
KIND = {"annotation": "kind", "label": "open"}


@pytest.fixture
def spec(owner_api):
    r = owner_api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert r.status_code == 200
    return r.json()


def _save(client, ss, **over: Any) -> dict[str, Any]:
    body = {
        "stateset": str(ss.id),
        "title": "Cells 1 and 4",
        "source": "s0",
        "threshold": 0.3,
        "zero_left": 0,
        "min_length": 1,
        "cells_added": [1, 4],
        **over,
    }
    r = client.post("/api/hypotheses/", body, format="json")
    assert r.status_code == 201, r.content
    return r.json()


def _post(client, h, link: str | None = None, **body: Any):
    url = f"/api/hypotheses/{h['id']}/statistics/" + (f"?link={link}" if link else "")
    return client.post(url, body, format="json")


def _computed(client, h, link: str | None = None, **body: Any) -> tuple[dict, dict]:
    """Start statistics (the job runs at once in-process); (job, statistics)."""
    r = _post(client, h, link, **body)
    assert r.status_code == 202, r.content
    job = client.get(f"/api/jobs/{r.json()['job']['id']}/")
    assert job.status_code == 200, job.content
    job = job.json()
    assert job["kind"] == "statistics" and job["status"] == "succeeded", job
    suffix = f"?link={link}" if link else ""
    got = client.get(f"/api/statistics/{job['result']['statistics']}/{suffix}")
    assert got.status_code == 200, got.content
    return job, got.json()


def _stat_jobs() -> int:
    return Job.objects.filter(kind="statistics").count()


def _depth(ids: np.ndarray) -> np.ndarray:
    return np.cumsum(np.where(ids == 0, 1, np.where(ids == 1, -1, 0)))


def test_statistics_are_stored_with_the_version_and_reused(
    owner_api, collaborator_api, stateset, spec
):
    ss, _, ids, _ = stateset
    h = _save(owner_api, ss, visibility="project")
    r = _post(owner_api, h, **KIND)
    assert r.status_code == 202, r.content
    check_against_schema(spec, LIST, "post", 202, r.json())
    job = owner_api.get(f"/api/jobs/{r.json()['job']['id']}/").json()
    assert job["status"] == "succeeded", job
    first = job["result"]["statistics"]
    got = owner_api.get(f"/api/statistics/{first}/").json()
    check_against_schema(spec, "/api/statistics/{statistics_id}/", "get", 200, got)
    assert (got["hypothesis"], got["version"], got["annotation"], got["label"]) == (
        h["id"],
        1,
        "kind",
        "open",
    )
    assert got["threshold"] is None and got["created_by"] == "alice"
    a = got["agreement"]
    assert a["tp"] + a["fp"] + a["fn"] + a["tn"] == len(ids)
    assert a["tp"] + a["fn"] == int((ids == 0).sum())  # the tokens labelled "open"
    assert a["tp"] + a["fp"] == got["inside_tokens"] > 0 and got["ranges"] > 0
    assert {e["label"] for e in got["enrichment"]} == {"open", "close", "other"}
    assert sum(e["inside"] for e in got["enrichment"]) == got["inside_tokens"]
    assert {"threshold", "leave_one_out", "min_jaccard"} <= set(got["robustness"])
    assert [x["cell"] for x in got["robustness"]["leave_one_out"]] == [1, 4]
    # Asked again, by anyone who may read it: 200 with the stored result, no new job.
    jobs = _stat_jobs()
    again = _post(collaborator_api, h, **KIND)
    assert again.status_code == 200, again.content
    check_against_schema(spec, LIST, "post", 200, again.json())
    assert again.json() == got
    assert _post(owner_api, h, version=1, **KIND).json()["id"] == first
    assert _stat_jobs() == jobs
    # Listed under its version; a new version has none of its own until asked.
    owner_api.patch(f"/api/hypotheses/{h['id']}/", {"notes": "v2"}, format="json")
    listed = owner_api.get(f"/api/hypotheses/{h['id']}/statistics/")
    check_against_schema(spec, LIST, "get", 200, listed.json())
    assert [x["id"] for x in listed.json()] == [first]
    assert owner_api.get(f"/api/hypotheses/{h['id']}/statistics/?version=2").json() == []
    _, newer = _computed(owner_api, h, **KIND)  # the newest version by default
    assert newer["version"] == 2 and newer["id"] != first
    assert newer["agreement"] == got["agreement"]  # same cells, same numbers
    by_version = {
        n: [
            x["id"]
            for x in owner_api.get(f"/api/hypotheses/{h['id']}/statistics/?version={n}").json()
        ]
        for n in (1, 2)
    }
    assert by_version == {1: [first], 2: [newer["id"]]}
    everything = owner_api.get(f"/api/hypotheses/{h['id']}/statistics/").json()
    assert [x["id"] for x in everything] == [newer["id"], first]  # newest first
    # Another label is another result; a changed state set is computed again.
    _, close = _computed(owner_api, h, annotation="kind", label="close", version=1)
    assert close["id"] != first and close["agreement"]["tp"] + close["agreement"]["fn"] == int(
        (ids == 1).sum()
    )
    StateSet.objects.filter(id=ss.id).update(revision=ss.revision + 1)
    assert _post(owner_api, h, version=1, **KIND).status_code == 202
    assert Statistics.objects.filter(version__number=1, label="open").count() == 2


def test_a_scalar_track_needs_a_threshold(owner_api, stateset):
    ss, _, ids, _ = stateset
    h = _save(owner_api, ss)
    r = _post(owner_api, h, annotation="depth")
    assert r.status_code == 400 and "threshold" in r.json()["error"]["message"]
    r = _post(owner_api, h, annotation="depth", label="open", threshold=1)
    assert r.status_code == 400 and "not a label" in r.json()["error"]["message"]
    _, got = _computed(owner_api, h, annotation="depth", threshold=1)
    assert (got["annotation"], got["label"], got["threshold"]) == ("depth", None, 1.0)
    a = got["agreement"]
    assert a["tp"] + a["fn"] == int((_depth(ids) >= 1).sum())
    assert a["tp"] + a["fp"] + a["fn"] + a["tn"] == len(ids)
    assert got["enrichment"] == []
    assert _post(owner_api, h, annotation="depth", threshold=1.0).status_code == 200
    assert _post(owner_api, h, annotation="depth", threshold=2).status_code == 202
    assert _stat_jobs() == 2


BAD = [
    ({"annotation": "pos", "label": "open"}, 400, "'depth', 'kind'"),
    ({"annotation": "kind"}, 400, "one of 'open', 'close', 'other'"),
    ({"annotation": "kind", "label": "noun"}, 400, "its labels are 'open', 'close', 'other'"),
    ({"annotation": "kind", "label": "open", "threshold": 0.5}, 400, "not a threshold"),
    ({"annotation": "depth"}, 400, "threshold"),
    ({"label": "open"}, 400, "annotation"),
    ({"annotation": "kind", "label": "open", "version": 2}, 404, "not_found"),
    ({"annotation": "kind", "label": "open", "version": 0}, 400, "version"),
]


@pytest.mark.parametrize(("body", "status", "says"), BAD)
def test_bad_requests_say_what_exists(owner_api, stateset, body, status, says):
    h = _save(owner_api, stateset[0])
    r = _post(owner_api, h, **body)
    assert r.status_code == status, r.content
    assert says in r.content.decode(), r.content
    assert _stat_jobs() == 0 and not Statistics.objects.exists()


def test_the_starter_follows_the_job_outside_the_project(api, owner, outsider, stateset):
    alice, charlie = api(owner), api(outsider)
    acquaint(owner, outsider)  # they share another project, so alice can name charlie
    ss = stateset[0]
    h = _save(alice, ss)
    assert _post(charlie, h, **KIND).status_code == 404
    alice.post(f"/api/hypotheses/{h['id']}/shares/", {"username": "charlie"}, format="json")
    job, got = _computed(charlie, h, **KIND)
    assert job["created_by"] == "charlie" and got["created_by"] == "charlie"
    assert alice.get(f"/api/jobs/{job['id']}/").status_code == 200  # a job of the project
    assert charlie.get(f"/api/statistics/{got['id']}/export/").status_code == 200
    # Other jobs of the project stay hidden, as does the project.
    for url in (
        f"/api/jobs/{h['match_result']['job']}/",
        "/api/projects/brackets/jobs/",
        "/api/projects/brackets/",
    ):
        assert charlie.get(url).status_code == 404, url
    # Revoked: the statistics close with the hypothesis.
    alice.delete(f"/api/hypotheses/{h['id']}/shares/", {"username": "charlie"}, format="json")
    for url in (
        f"/api/statistics/{got['id']}/",
        f"/api/statistics/{got['id']}/export/",
        f"/api/hypotheses/{h['id']}/statistics/",
    ):
        assert charlie.get(url).status_code == 404, url
    assert _post(charlie, h, annotation="depth", threshold=1).status_code == 404


def test_a_link_reads_the_statistics_it_started(api, owner, outsider, stateset):
    alice, charlie = api(owner), api(outsider)
    h = _save(alice, stateset[0], visibility="link")
    token = h["link"]
    assert _post(charlie, h, **KIND).status_code == 404
    job, got = _computed(charlie, h, token, **KIND)
    assert job["created_by"] == "charlie"
    for url in (f"/api/statistics/{got['id']}/", f"/api/statistics/{got['id']}/export/"):
        assert charlie.get(url).status_code == 404, url
        assert charlie.get(f"{url}?link={token}").status_code == 200, url
        assert charlie.get(f"{url}?link=wrong{token}").status_code == 404, url
    listed = charlie.get(f"/api/hypotheses/{h['id']}/statistics/?link={token}").json()
    assert [x["id"] for x in listed] == [got["id"]]
    alice.patch(f"/api/hypotheses/{h['id']}/", {"rotate_link": True}, format="json")
    assert charlie.get(f"/api/statistics/{got['id']}/?link={token}").status_code == 404


def test_export_is_csv_naming_the_version(owner_api, stateset):
    ss = stateset[0]
    h = _save(owner_api, ss, title="Cells 1 & 4, nested")
    _, got = _computed(owner_api, h, **KIND)
    r = owner_api.get(f"/api/statistics/{got['id']}/export/?format=csv")
    assert r.status_code == 200 and r.streaming
    assert r["Content-Type"].startswith("text/csv")
    assert r["Content-Disposition"].startswith('attachment; filename="statistics-')
    assert r["Content-Disposition"].endswith('-v1-kind-open.csv"')
    text = b"".join(r.streaming_content).decode()
    comment, body = text.split("\n", 1)
    assert comment.startswith(f"# statistics {got['id']}: hypothesis {h['id']} version 1")
    for part in (
        str(ss.id),
        "source s0",
        "cells 1 4",
        "threshold 0.3",
        "annotation kind",
        "label open",
    ):
        assert part in comment, part
    table, enrichment = body.split("\n\n", 1)
    rows = list(csv.reader(io.StringIO(table)))
    assert rows[0] == ["section", "key", "value"]
    agreement = {k: v for section, k, v in rows[1:] if section == "agreement"}
    assert agreement == {k: str(v) for k, v in got["agreement"].items()}
    robust = {k: float(v) for section, k, v in rows[1:] if section == "robustness"}
    assert robust["min_jaccard"] == got["robustness"]["min_jaccard"]
    assert robust["without cell 4"] == got["robustness"]["leave_one_out"][1]["jaccard"]
    labels = list(csv.DictReader(io.StringIO(enrichment)))
    assert [x["label"] for x in labels] == [e["label"] for e in got["enrichment"]]
    assert [int(x["inside"]) for x in labels] == [e["inside"] for e in got["enrichment"]]
    bad = owner_api.get(f"/api/statistics/{got['id']}/export/?format=npz")
    assert bad.status_code == 400 and "csv" in bad.json()["error"]["message"]


def test_deleting_the_hypothesis_deletes_its_statistics(owner_api, stateset):
    h = _save(owner_api, stateset[0])
    _, got = _computed(owner_api, h, **KIND)
    assert owner_api.delete(f"/api/hypotheses/{h['id']}/").status_code == 204
    assert not Statistics.objects.exists()
    assert owner_api.get(f"/api/statistics/{got['id']}/").status_code == 404
    assert owner_api.get("/api/statistics/not-an-id/").status_code == 404


@pytest.mark.django_db
def test_identical_requests_share_one_job(owner_api, collaborator_api, stateset, settings):
    # Without transaction=True nothing commits, so jobs stay queued (the save does not wait).
    settings.STATELAB_MATCH_WAIT_S = 0
    h = _save(owner_api, stateset[0], visibility="project")
    a = _post(owner_api, h, **KIND)
    b = _post(collaborator_api, h, **KIND)
    assert a.status_code == b.status_code == 202
    assert a.json()["job"]["id"] == b.json()["job"]["id"]
    assert a.json()["job"]["status"] == "queued"
    c = _post(owner_api, h, annotation="kind", label="close")
    assert c.json()["job"]["id"] != a.json()["job"]["id"]
    assert _stat_jobs() == 2 and not Statistics.objects.exists()
