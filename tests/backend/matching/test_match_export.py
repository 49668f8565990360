"""GET /api/matches/{id}/export/: a finished match's hits as CSV, with a header naming
the state set, source and query; 409 while the match is not finished."""

from __future__ import annotations

import csv
import io

import pytest

from backend.matching.models import Match

pytestmark = pytest.mark.django_db(transaction=True)


def _match(api, ss, **body):
    body = {"source": "s0", "cells": [0, 1, 2], "threshold": 0.0, "min_length": 1, **body}
    r = api.post(f"/api/statesets/{ss.id}/matches/", body, format="json")
    assert r.status_code == 200, r.content[:300]
    return r.json()


def _body(response) -> str:
    data = b"".join(response.streaming_content)
    response.close()
    return data.decode()


def test_export_lists_the_hits_with_their_tokens_and_query(owner_api, collaborator_api, stateset):
    ss, _, ids, vocab = stateset
    answer = _match(owner_api, ss, zero_left=1, limit=20)
    assert answer["hits"]
    r = collaborator_api.get(f"/api/matches/{answer['id']}/export/?format=csv")
    assert r.status_code == 200, r.content[:300]
    assert r["Content-Type"].startswith("text/csv")
    assert r["Content-Disposition"].startswith('attachment; filename="synthetic_match-')
    text = _body(r)
    header = [line for line in text.splitlines() if line.startswith("# ")]
    joined = "\n".join(header)
    for needle in (
        f"# stateset: {ss.id}",
        "# stateset_name: synthetic",
        "# source: s0",
        "# cells: [0, 1, 2]",
        "# threshold: 0.0",
        '# constraints: {"zero_left": 1, "zero_right": 0}',
    ):
        assert needle in joined, needle
    rows = list(csv.reader(io.StringIO(text[text.index("rank,") :])))
    assert rows[0] == [
        "rank",
        "position",
        "length",
        "intersection",
        "union",
        "jaccard",
        "missing",
        "text",
    ]
    assert len(rows) - 1 == len(answer["hits"])
    for rank, (row, hit) in enumerate(zip(rows[1:], answer["hits"], strict=True), start=1):
        assert int(row[0]) == rank
        assert [int(x) for x in (row[1], row[2], row[3], row[4], row[6])] == [
            hit["position"],
            hit["length"],
            hit["intersection"],
            hit["union"],
            hit["missing"],
        ]
        assert float(row[5]) == pytest.approx(hit["jaccard"])
        pos, length = hit["position"], hit["length"]
        # a character vocabulary: the text is the characters as they stand
        assert row[7] == "".join(vocab[i] for i in ids[pos : pos + length])


def test_export_of_an_unfinished_match_answers_409(owner_api, stateset):
    match = Match.objects.create(stateset=stateset[0], source="s0", cache_key="1" * 64, query={})
    r = owner_api.get(f"/api/matches/{match.id}/export/")
    assert r.status_code == 409 and r.json()["error"]["code"] == "match_not_finished"


def test_outsider_gets_404_and_a_bad_format_400(owner_api, outsider_api, stateset):
    answer = _match(owner_api, stateset[0])
    r = outsider_api.get(f"/api/matches/{answer['id']}/export/?format=csv")
    assert r.status_code == 404 and "brackets" not in r.content.decode()
    r = owner_api.get(f"/api/matches/{answer['id']}/export/?format=npz")
    assert r.status_code == 400 and "format" in r.json()["error"]["message"]
