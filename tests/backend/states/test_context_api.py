"""The context route's own checks: bad parameters get a 400 with a sentence."""

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("source=s0&start=10&end=5", "before start"),
        ("source=s0&start=x&end=5", "integer"),
        ("source=nope&start=0&end=5", "nope"),
        ("source=s0&start=0&end=5&cells=1,a", "comma-separated"),
        ("source=s0&start=0&end=5&cells=99", "99"),
        ("source=s0&start=0&end=5&transform=sigmoid", "transform"),
        ("source=s0&start=0&end=5&threshold=abc", "number"),
        ("source=s0&start=0&end=4999", "values"),
    ],
)
def test_bad_parameters_are_clear(owner_api, stateset, settings, query, needle):
    import backend.states.api as states_api

    ss = stateset[0]
    old = states_api.MAX_CONTEXT_VALUES
    states_api.MAX_CONTEXT_VALUES = 10_000
    try:
        r = owner_api.get(f"/api/statesets/{ss.id}/context/?{query}")
    finally:
        states_api.MAX_CONTEXT_VALUES = old
    assert r.status_code == 400, r.content
    assert needle in r.json()["error"]["message"]


def test_window_is_clamped_at_the_corpus_end(owner_api, stateset):
    ss, _values, ids, vocab = stateset
    r = owner_api.get(f"/api/statesets/{ss.id}/context/?source=s0&start=295&end=310&cells=0")
    body = r.json()
    assert (body["start"], body["end"]) == (295, 299)
    assert body["tokens"] == [vocab[i] for i in ids[295:300]]
    assert len(body["values"][0]) == 5
    assert set(body["annotations"]) == {"depth", "kind"}
    assert body["annotations"]["kind"][0] in {"open", "close", "other"}
