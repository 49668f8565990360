"""Phrase search through the API: the same answer before and after the index is built."""

import pytest

from backend.core.storage import store_path
from workers.core.search import build_search_index, has_search_index

pytestmark = pytest.mark.django_db


def occurrences(ids, vocab, phrase):
    words = [vocab[i] for i in ids]
    return [i for i in range(len(words) - len(phrase) + 1) if words[i : i + len(phrase)] == phrase]


def test_search_answers_the_same_with_the_index(owner_api, stateset):
    ss, _values, ids, vocab = stateset  # a character vocab: ( ) a b and the space
    url = f"/api/statesets/{ss.id}/search/"
    queries = ["a b", "((", ") a", "b", "a  a", "zz"]
    before = {}
    for q in queries:
        r = owner_api.get(url, {"q": q, "limit": 5})
        assert r.status_code == 200, r.content
        before[q] = r.json()
        expected = occurrences(ids, vocab, list(q))
        assert before[q]["tokens"] == list(q)  # spaces are tokens of their own
        assert before[q]["positions"] == expected[:5]
        if len(expected) < 5:
            assert before[q]["total"] == len(expected)
        else:
            assert before[q]["total"] is None  # no index yet: counting would read it all

    build_search_index(store_path(ss.path))
    assert has_search_index(store_path(ss.path))
    for q in queries:
        body = owner_api.get(url, {"q": q, "limit": 5}).json()
        assert body["positions"] == before[q]["positions"]
        assert body["total"] == len(occurrences(ids, vocab, list(q)))


def test_v2_search_uses_the_index(owner_api, stateset):
    ss, _values, ids, vocab = stateset
    build_search_index(store_path(ss.path))
    phrase = [vocab[i] for i in ids[40:43]]
    r = owner_api.get(
        "/api/v2/search", {"project": f"brackets/{ss.id}", "q": "".join(phrase), "limit": 1000}
    )
    assert r.status_code == 200, r.content
    assert [x["index"] for x in r.json()["res"]] == occurrences(ids, vocab, phrase)
    assert 40 in [x["index"] for x in r.json()["res"]]


def test_search_needs_a_phrase(owner_api, stateset):
    r = owner_api.get(f"/api/statesets/{stateset[0].id}/search/")
    assert r.status_code == 400
    assert "'q'" in r.json()["error"]["message"]


def test_outsider_cannot_search(outsider_api, stateset):
    r = outsider_api.get(f"/api/statesets/{stateset[0].id}/search/", {"q": "a"})
    assert r.status_code == 404
