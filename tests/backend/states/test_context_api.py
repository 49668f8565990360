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


def _unpack(body: bytes):
    import json

    import numpy as np

    n = int.from_bytes(body[:4], "little")
    assert (4 + n) % 4 == 0
    header = json.loads(body[4 : 4 + n])
    rows, cols = header["shape"]
    values = np.frombuffer(body, dtype="<f4", offset=4 + n, count=rows * cols)
    assert len(body) == 4 + n + 4 * rows * cols
    return header, values.reshape(rows, cols)


def test_packed_window_carries_the_same_answer_as_json(owner_api, stateset):
    import numpy as np

    ss = stateset[0]
    q = f"/api/statesets/{ss.id}/context/?source=s0&start=40&end=139&cells=0,3,7"
    plain = owner_api.get(q).json()
    r = owner_api.get(q + "&values=f32")
    assert r.status_code == 200
    assert r["Content-Type"] == "application/vnd.statelab.window"
    header, values = _unpack(r.content)
    assert "values" not in header
    assert {k: v for k, v in header.items() if k != "shape"} == {
        k: v for k, v in plain.items() if k != "values"
    }
    assert values.shape == (3, 100)
    np.testing.assert_allclose(values, np.array(plain["values"], dtype=np.float32), rtol=0, atol=0)


def test_packed_window_keeps_nan_and_refuses_unknown_packings(owner_api, stateset):
    ss = stateset[0]
    r = owner_api.get(f"/api/statesets/{ss.id}/context/?source=s0&start=0&end=9&values=f16")
    assert r.status_code == 400
    assert "values must be json or f32" in r.json()["error"]["message"]
    # An error of the window itself stays JSON with its sentence.
    r = owner_api.get(f"/api/statesets/{ss.id}/context/?source=s0&start=9&end=0&values=f32")
    assert r.status_code == 400 and "before start" in r.json()["error"]["message"]
