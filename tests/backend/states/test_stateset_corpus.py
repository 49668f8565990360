"""An imported state set's text as a corpus of its project (POST /statesets/{id}/corpus/)."""

import numpy as np
import pytest

pytestmark = pytest.mark.django_db


def test_an_imported_state_set_becomes_a_corpus_once(owner_api, stateset, project):
    from backend.artifacts.models import Corpus
    from backend.core.storage import store_path

    ss, _values, ids, _vocab = stateset
    r = owner_api.post(f"/api/statesets/{ss.id}/corpus/")
    assert r.status_code == 201, r.content
    body = r.json()
    assert (body["name"], body["length"], body["tokenization"]) == ("synthetic", len(ids), "char")
    corpus = Corpus.objects.get(id=body["id"])
    folder = store_path(corpus.path)
    assert np.array_equal(np.load(folder / "tokens.npy"), ids)
    ss.refresh_from_db()
    assert ss.corpus_id == corpus.id

    again = owner_api.post(f"/api/statesets/{ss.id}/corpus/")
    assert again.status_code == 200 and again.json()["id"] == body["id"]
    assert Corpus.objects.count() == 1

    listed = owner_api.get(f"/api/projects/{project.slug}/").json()
    assert listed["statesets"][0]["corpus"] == body["id"]
    assert [c["id"] for c in listed["corpora"]] == [body["id"]]
    # It trains like an uploaded corpus.
    r = owner_api.post(
        f"/api/projects/{project.slug}/trainings/",
        {"corpus": body["id"], "hidden_size": 8, "layers": 1, "epochs": 1},
        format="json",
    )
    assert r.status_code == 202, r.content


def test_only_editors_make_corpora(collaborator_api, outsider_api, stateset):
    from backend.artifacts.models import Corpus

    ss = stateset[0]
    assert collaborator_api.post(f"/api/statesets/{ss.id}/corpus/").status_code == 403
    assert outsider_api.post(f"/api/statesets/{ss.id}/corpus/").status_code == 404
    assert Corpus.objects.count() == 0
