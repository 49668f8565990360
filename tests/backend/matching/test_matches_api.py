"""POST /api/statesets/{id}/matches/ and GET /api/matches/{id}/ on an imported LSTMVis
project: answers equal a brute-force reading of matching.md, identical queries reuse
the stored answer, bad requests say what is wrong, pages carry their context."""

from __future__ import annotations

import numpy as np
import pytest

from backend.jobs.models import Job
from backend.matching.codec import dense
from backend.matching.models import Match
from tests.support.match_oracle import on_matrix, oracle

pytestmark = pytest.mark.django_db(transaction=True)


def _post(api, imp, **body):
    body.setdefault("source", imp.source)
    return api.post(f"/api/statesets/{imp.stateset}/matches/", body, format="json")


def assert_answers_like_the_oracle(answer, imp, **query):
    cells = query.pop("cells")
    query.setdefault("threshold", 0.3)
    expected = oracle(imp.raw, cells, transform="tanh", **query)
    got = [(h["position"], h["length"], h["intersection"], h["union"]) for h in answer["hits"]]
    assert got == expected.hits
    for h in answer["hits"]:
        assert h["missing"] == len(cells) - h["intersection"]
        assert h["jaccard"] == pytest.approx(h["intersection"] / h["union"])
    for name, want in (("strict_histogram", expected.strict), ("fuzzy_histogram", expected.fuzzy)):
        pairs = answer[name]  # [length, count] for the lengths that occur, ascending
        assert all(count > 0 for _, count in pairs)
        assert [length for length, _ in pairs] == sorted(length for length, _ in pairs)
        assert dense(pairs) == want
    assert answer["exact"] is True and answer["unscored"] == 0
    assert answer["total"] == len(expected.hits)


QUERIES = [
    {"cells": [0, 1, 2]},
    {"cells": [3, 5, 7, 9], "zero_left": 0},
    {"cells": list(range(12)), "limit": 1000, "min_length": 1},
    {"cells": [4], "zero_left": 2, "zero_right": 1},
    {"cells": [1, 6, 8], "threshold": -0.2, "length": 3},
    {"cells": [2, 10, 11], "max_length": 5, "limit": 7},
    {"cells": [0, 4, 8], "range_start": 50, "range_end": 200},
]


def test_answers_equal_the_brute_force_reading_of_the_contract(owner_api, imported):
    for query in QUERIES:
        body = {k: v for k, v in query.items() if not k.startswith("range_")}
        if "range_start" in query:
            body["range"] = [query["range_start"], query["range_end"]]
        r = _post(owner_api, imported, **body)
        assert r.status_code == 200, (query, r.content[:300])
        answer = r.json()
        assert answer["status"] == "succeeded" and answer["reused"] is False
        assert answer["query"]["cells"] == sorted(query["cells"])
        assert_answers_like_the_oracle(answer, imported, **dict(query))


def test_job_result_names_the_match(owner_api, imported):
    answer = _post(owner_api, imported, cells=[0, 1, 2]).json()
    job = owner_api.get(f"/api/jobs/{answer['job']}/").json()
    assert job["kind"] == "match" and job["status"] == "succeeded"
    assert job["result"] == {"match": answer["id"]}


def test_identical_query_reuses_the_stored_answer(owner_api, collaborator_api, imported):
    first = _post(owner_api, imported, cells=[2, 0, 1], threshold=0.3)
    assert first.status_code == 200
    jobs = Job.objects.filter(kind="match").count()
    # Same query, cells in another order, asked by another member: no new job.
    again = _post(collaborator_api, imported, cells=[0, 1, 2, 2])
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"] and again.json()["reused"] is True
    assert again.json()["hits"] == first.json()["hits"]
    assert Job.objects.filter(kind="match").count() == jobs
    row = Match.objects.get(id=first.json()["id"])
    assert row.last_used_at > row.finished_at
    # A different threshold is another query.
    other = _post(owner_api, imported, cells=[0, 1, 2], threshold=0.31)
    assert other.json()["id"] != first.json()["id"]
    assert Match.objects.count() == 2


def test_hypothesis_selects_the_cells_the_selection_route_selects(owner_api, imported):
    ss, src = imported.stateset, imported.source
    on = on_matrix(imported.raw, "tanh", 0.3)
    # a hypothesis range that selects something
    start = next(t for t in range(1, 290) if (on[t : t + 3].all(axis=0) & ~on[t - 1]).any())
    sel = owner_api.post(
        f"/api/statesets/{ss}/selection/",
        {"source": src, "start": start, "end": start + 2, "threshold": 0.3},
        format="json",
    ).json()
    assert sel["cells"]
    r = _post(owner_api, imported, start=start, end=start + 2, threshold=0.3)
    assert r.status_code == 200, r.content
    assert r.json()["query"]["cells"] == sel["cells"]
    assert_answers_like_the_oracle(r.json(), imported, cells=sel["cells"])


BAD_REQUESTS = [
    ({"cells": [0, 12]}, "cell 12 does not exist"),
    ({"cells": []}, "at least one cell"),
    ({}, "Give the cells to match"),
    ({"cells": [1], "start": 3, "end": 5}, "not both"),
    ({"start": 3}, "both start and end"),
    ({"start": 9, "end": 3}, "end must not be before start"),
    ({"start": 299, "end": 300}, "inside the corpus of 300 tokens"),
    ({"start": 10, "end": 12, "threshold": 0.9999, "zero_left": 50}, "selects no cells"),
    ({"cells": [1], "limit": 1001}, "limit"),
    ({"cells": [1], "limit": 0}, "limit"),
    ({"cells": [1], "min_length": 5, "max_length": 3}, "max_length 3 is smaller"),
    ({"cells": [1], "range": [20, 10]}, "first <= last"),
    ({"cells": [1], "range": [10, 300]}, "range_end"),
    ({"cells": [1], "zero_left": -1}, "zero_left"),
    ({"cells": [1], "transform": "sigmoid"}, "transform"),
    ({"cells": [1], "source": "nope"}, "There is no source 'nope'"),
    ({"cells": "1,2"}, "cells"),
]


def test_bad_requests_answer_400_saying_what_is_wrong(owner_api, imported):
    for body, words in BAD_REQUESTS:
        r = _post(owner_api, imported, **body)
        assert r.status_code == 400, (body, r.content)
        error = r.json()["error"]
        assert words.lower() in error["message"].lower(), (body, error)
    assert not Job.objects.filter(kind="match").exists()


def test_pages_carry_hits_with_their_context(owner_api, imported):
    cells = [0, 1, 2, 3]
    answer = _post(owner_api, imported, cells=cells, limit=40, min_length=1).json()
    assert answer["total"] > 10
    url = f"/api/matches/{answer['id']}/"
    page = owner_api.get(url, {"offset": 5, "limit": 4, "left": 3}).json()
    assert page["offset"] == 5 and page["limit"] == 4 and page["total"] == answer["total"]
    assert [h["position"] for h in page["hits"]] == [h["position"] for h in answer["hits"][5:9]]
    on = on_matrix(imported.raw, "tanh", 0.3)[:, cells]
    for hit in page["hits"]:
        a = max(hit["position"] - 3, 0)
        b = hit["position"] + hit["length"] - 1
        assert (hit["start"], hit["end"]) == (a, b)
        assert hit["tokens"] == imported.tokens[a : b + 1]
        assert hit["cell_count"] == on[a : b + 1].sum(axis=1).tolist()
        ann = hit["annotations"]
        assert set(ann) >= {"part_of_speech", "surprise", "top_predictions"}
        assert all(label in ("NN", "VB", "DT", "JJ") for label in ann["part_of_speech"])
        assert len(ann["surprise"]) == b - a + 1
        top = ann["top_predictions"]
        assert all(set(t) == {"token", "weight"} for t in top)
    # the top prediction is the entry of highest probability
    import h5py

    with h5py.File(imported.project_dir / "topk.h5") as f:
        probs = f["probs"][:]
    hit = page["hits"][0]
    weights = [t["weight"] for t in hit["annotations"]["top_predictions"]]
    np.testing.assert_allclose(weights, probs[hit["start"] : hit["end"] + 1].max(axis=1), atol=1e-5)
    # beyond the end: an empty page; right context; bad paging values
    assert owner_api.get(url, {"offset": 1000}).json()["hits"] == []
    right = owner_api.get(url, {"limit": 1, "left": 0, "right": 2}).json()["hits"][0]
    assert right["end"] == min(right["position"] + right["length"] + 1, 299)
    for params, words in (
        ({"limit": 1001}, "limit"),
        ({"offset": -1}, "offset"),
        ({"left": 101}, "left"),
        ({"limit": "x"}, "limit"),
    ):
        r = owner_api.get(url, params)
        assert r.status_code == 400 and words in r.json()["error"]["message"], params


def test_the_answer_can_carry_its_first_page(owner_api, imported):
    """`page` in the request: the answer carries that page with context, equal to
    GET /api/matches/{id}/ with the same paging (the match view's first rows)."""
    cells = [0, 1, 2, 3]
    paging = {"offset": 0, "limit": 5, "left": 4, "right": 2}
    answer = _post(owner_api, imported, cells=cells, limit=40, min_length=1, page=paging)
    assert answer.status_code == 200, answer.content
    body = answer.json()
    got = owner_api.get(f"/api/matches/{body['id']}/", paging).json()
    assert body["page"] == got
    assert [h["position"] for h in body["page"]["hits"]] == [
        h["position"] for h in body["hits"][:5]
    ]
    # without it, no page; a malformed one is refused with a sentence
    assert "page" not in _post(owner_api, imported, cells=cells, limit=40, min_length=1).json()
    for bad, word in (("first", "page"), ({"limit": 0}, "limit")):
        r = _post(owner_api, imported, cells=cells, limit=40, min_length=1, page=bad)
        assert r.status_code == 400 and word in r.json()["error"]["message"], r.content


def test_viewer_runs_and_reads_matches_outsider_sees_nothing(
    collaborator_api, outsider_api, imported
):
    r = _post(collaborator_api, imported, cells=[0, 1])
    assert r.status_code == 200
    match_id = r.json()["id"]
    assert collaborator_api.get(f"/api/matches/{match_id}/").status_code == 200
    for resp in (
        _post(outsider_api, imported, cells=[0, 1]),
        outsider_api.get(f"/api/matches/{match_id}/"),
        outsider_api.get("/api/matches/not-a-uuid/"),
    ):
        assert resp.status_code == 404
        assert "brackets" not in resp.content.decode()


def test_matches_are_deleted_with_their_stateset(owner_api, imported):
    match_id = _post(owner_api, imported, cells=[0, 1]).json()["id"]
    assert owner_api.delete(f"/api/statesets/{imported.stateset}/").status_code == 204
    assert not Match.objects.filter(id=match_id).exists()
    assert owner_api.get(f"/api/matches/{match_id}/").status_code == 404


def _schema_check(spec, path, method, status, body):
    from openapi_schema_validator import OAS30Validator

    def resolve(node):
        if isinstance(node, dict):
            if "$ref" in node:
                target = spec
                for part in node["$ref"].lstrip("#/").split("/"):
                    target = target[part]
                return resolve(target)
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    op = spec["paths"][path][method]
    schema = op["responses"][str(status)]["content"]["application/json"]["schema"]
    OAS30Validator(resolve(schema)).validate(body)


def test_answers_match_the_openapi_schema(owner_api, imported):
    spec = owner_api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    answer = _post(owner_api, imported, cells=[0, 1, 2], min_length=1).json()
    _schema_check(spec, "/api/statesets/{stateset_id}/matches/", "post", 200, answer)
    page = owner_api.get(f"/api/matches/{answer['id']}/", {"limit": 5}).json()
    assert page["hits"]
    _schema_check(spec, "/api/matches/{match_id}/", "get", 200, page)
    desc = owner_api.get(f"/api/statesets/{imported.stateset}/").json()
    _schema_check(spec, "/api/statesets/{stateset_id}/", "get", 200, desc)
    job = owner_api.post(f"/api/statesets/{imported.stateset}/index/")
    assert job.status_code == 202
    _schema_check(spec, "/api/statesets/{stateset_id}/index/", "post", 202, job.json())
