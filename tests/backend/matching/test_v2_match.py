"""`/api/v2/match` answers in LSTMVis' shape with StateLab's exact ranking: the factors
and both histograms equal the brute-force reading of matching.md, parameters map as
LSTMVis' server used them, and access control applies as everywhere."""

from __future__ import annotations

import numpy as np
import pytest

from backend.jobs.models import Job
from backend.matching.models import Match
from tests.support.match_oracle import oracle

pytestmark = pytest.mark.django_db(transaction=True)


def _v2(api, **params):
    params.setdefault("project", "brackets")
    params.setdefault("source", "states::states1")
    return api.get("/api/v2/match", {k: str(v) for k, v in params.items()})


def test_shape_and_values_follow_lstmvis_and_the_contract(owner_api, imported):
    r = _v2(owner_api, cells="0,1,2", activation=0.3, left=4, right=6, dims="states,words")
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["request"]["cells"] == "0,1,2"
    res = body["results"]
    assert set(res) >= {
        "rankingDetail",
        "positionDetail",
        "fuzzyLengthHistogram",
        "strictLengthHistogram",
    }
    # LSTMVis' defaults: constraints 1,0 (zero_left 1), any length >= 2, 50 results
    expected = oracle(imported.raw, [0, 1, 2], 0.3, "tanh", zero_left=1, zero_right=0)
    ranking = res["rankingDetail"]
    assert len(ranking) == min(50, len(expected.hits))
    for item, (a, length, inter, union) in zip(ranking, expected.hits, strict=False):
        pos, zero, size, jaccard, missing, uni, intersection = item["factors"]
        assert item["pos"] == pos == a and zero == 0 and size == length
        assert (intersection, uni, missing) == (inter, union, 3 - inter)
        assert jaccard == pytest.approx(inter / union)
    assert res["strictLengthHistogram"] == expected.strict
    assert res["fuzzyLengthHistogram"] == expected.fuzzy
    assert res["exact"] is True
    # positionDetail: the /context answer around each ranked position
    detail = res["positionDetail"]
    assert detail["cells"] == [0, 1, 2]
    assert [w["pos"] for w in detail["words"]] == [item["pos"] for item in ranking]
    first = detail["states"][0]
    a, b = max(first["pos"] - 4, 0), min(first["pos"] + 6, 299)
    assert (first["left"], first["right"]) == (a, b)
    np.testing.assert_allclose(
        np.array(first["data"]), np.tanh(imported.raw[a : b + 1, [0, 1, 2]]).T, atol=1e-5
    )
    assert detail["words"][0]["words"] == imported.tokens[a : b + 1]


def test_parameters_map_like_lstmvis(owner_api, imported):
    # constraints: a value > 0 switches the one-step off-constraint on that side on
    for constraints, zl, zr in (("0,0", 0, 0), ("0,3", 0, 1), ("2,1", 1, 1)):
        res = _v2(owner_api, cells="3,4,5", constraints=constraints).json()["results"]
        expected = oracle(imported.raw, [3, 4, 5], 0.3, "tanh", zero_left=zl, zero_right=zr)
        got = [(x["factors"][0], x["factors"][2], x["factors"][6]) for x in res["rankingDetail"]]
        assert got == [(a, length, i) for a, length, i, _ in expected.hits], constraints
    # phrase_length: an exact length
    res = _v2(owner_api, cells="3,4,5", phrase_length=3).json()["results"]
    assert res["rankingDetail"] and {x["factors"][2] for x in res["rankingDetail"]} == {3}
    expected = oracle(imported.raw, [3, 4, 5], 0.3, "tanh", length=3)
    assert [x["pos"] for x in res["rankingDetail"]] == [a for a, *_ in expected.hits]
    # mode is accepted and ignored: both answers are exact and equal
    fast = _v2(owner_api, cells="7,8", mode="fast").json()["results"]["rankingDetail"]
    precise = _v2(owner_api, cells="7,8", mode="precise").json()["results"]["rankingDetail"]
    assert fast == precise
    # the REST route and this one share stored answers
    rest = owner_api.post(
        f"/api/statesets/{imported.stateset}/matches/",
        {"source": imported.source, "cells": [7, 8]},
        format="json",
    ).json()
    assert rest["reused"] is True
    assert [h["position"] for h in rest["hits"]] == [x["pos"] for x in fast]


def test_long_statesets_go_through_the_sharded_match_job(owner_api, imported, settings):
    settings.STATELAB_MATCH_SHARD_TOKENS = 64  # the imported corpus has 300 tokens
    r = _v2(owner_api, cells="0,1,2", dims="words")
    assert r.status_code == 200, r.content
    job = Job.objects.get(kind="match")
    assert job.status == "succeeded" and Match.objects.get().shards == 5
    expected = oracle(imported.raw, [0, 1, 2], 0.3, "tanh")
    assert [x["pos"] for x in r.json()["results"]["rankingDetail"]] == [
        a for a, *_ in expected.hits
    ]


def test_bad_requests_and_access(owner_api, outsider_api, imported):
    for params, status, words in (
        ({"cells": ""}, 400, "cells"),
        ({"cells": "0,99"}, 400, "cell 99 does not exist"),
        ({"cells": "1", "constraints": "1"}, 400, "constraints"),
        ({"cells": "1", "mode": "slow"}, 400, "mode"),
        ({"cells": "1", "phrase_length": -1}, 400, "phrase_length"),
        ({"cells": "1", "source": "states::nope"}, 404, "No valid source"),
        ({"cells": "1", "project": "nope"}, 404, "No such project"),
    ):
        r = _v2(owner_api, **params)
        assert r.status_code == status, (params, r.content)
        assert words.lower() in r.json()["error"]["message"].lower(), params
    r = _v2(outsider_api, cells="1")
    assert r.status_code == 404 and r.json()["error"]["message"] == "No such project"
