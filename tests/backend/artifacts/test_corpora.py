"""Plain-text corpora: upload, tokenise (word or char), document boundaries, bad input."""

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from backend.artifacts.models import Corpus, Upload
from backend.core.storage import store_path
from backend.jobs.models import Job

pytestmark = pytest.mark.django_db(transaction=True)

TEXT = "the cat sat\non the mat\n\n\nthe dog ran\n"


def _upload(api, data: bytes, tokenization="word", name="pets"):
    return api.post(
        "/api/projects/brackets/corpora/",
        {"file": SimpleUploadedFile("pets.txt", data), "tokenization": tokenization, "name": name},
        format="multipart",
    )


def test_word_corpus_with_documents(owner_api, project):
    r = _upload(owner_api, TEXT.encode())
    assert r.status_code == 202, r.content
    job = r.json()["job"]
    assert job["status"] == "queued"
    done = owner_api.get(f"/api/jobs/{job['id']}/").json()
    assert done["status"] == "succeeded", done
    corpus = Corpus.objects.get(id=done["result"]["corpus"])
    assert corpus.tokenization == "word" and corpus.documents == 2
    from workers.core.store import open_corpus

    data = open_corpus(store_path(corpus.path))
    words = [data.vocab[i] for i in np.asarray(data.ids)]
    assert words == [
        "the",
        "cat",
        "sat",
        "<eos>",
        "on",
        "the",
        "mat",
        "<eos>",
        "the",
        "dog",
        "ran",
        "<eos>",
    ]
    assert list(data.doc_starts) == [0, 8]
    assert owner_api.get(f"/api/corpora/{corpus.id}/").json()["length"] == 12
    assert [c["id"] for c in owner_api.get("/api/projects/brackets/").json()["corpora"]] == [
        str(corpus.id)
    ]


def test_char_corpus_keeps_spaces_and_newlines(owner_api, project):
    r = _upload(owner_api, b"ab a\nb", tokenization="char", name="chars")
    job = owner_api.get(f"/api/jobs/{r.json()['job']['id']}/").json()
    corpus = Corpus.objects.get(id=job["result"]["corpus"])
    from workers.core.store import open_corpus

    data = open_corpus(store_path(corpus.path))
    assert "".join(data.vocab[i] for i in np.asarray(data.ids)) == "ab a\nb"


def test_not_utf8_fails_clearly_and_leaves_nothing(owner_api, project):
    r = _upload(owner_api, b"caf\xe9 au lait")
    job = owner_api.get(f"/api/jobs/{r.json()['job']['id']}/").json()
    assert job["status"] == "failed"
    assert "UTF-8" in job["error"]
    assert Corpus.objects.count() == 0
    leftovers = list(store_path("corpora").glob("*")) if store_path("corpora").exists() else []
    assert leftovers == []


def test_bad_tokenization_is_400(owner_api, project):
    r = _upload(owner_api, TEXT.encode(), tokenization="bpe")
    assert r.status_code == 400
    assert r.json()["error"]["message"].startswith("tokenization")
    assert Job.objects.count() == 0 and Upload.objects.count() == 0


def test_empty_upload_is_400(owner_api, project):
    r = _upload(owner_api, b"")
    assert r.status_code == 400
    assert "empty" in r.json()["error"]["message"]


def test_viewer_cannot_upload(collaborator_api, project):
    assert _upload(collaborator_api, TEXT.encode()).status_code == 403


def test_too_large_upload_is_refused_and_not_kept(owner_api, project, settings):
    settings.STATELAB_UPLOAD_MAX_BYTES = 10
    r = _upload(owner_api, TEXT.encode())
    assert r.status_code == 413
    assert "larger than the limit" in r.json()["error"]["message"]
    assert list(store_path("uploads").glob("*")) == []


def test_delete_corpus_removes_row_and_folder(owner_api, collaborator_api, project):
    r = _upload(owner_api, TEXT.encode())
    job = owner_api.get(f"/api/jobs/{r.json()['job']['id']}/").json()
    corpus = Corpus.objects.get(id=job["result"]["corpus"])
    folder = store_path(corpus.path)
    assert folder.is_dir()
    assert collaborator_api.delete(f"/api/corpora/{corpus.id}/").status_code == 403
    assert owner_api.delete(f"/api/corpora/{corpus.id}/").status_code == 204
    assert not Corpus.objects.exists()
    assert not folder.exists()


def test_delete_stateset_removes_row_and_folder(owner_api, collaborator_api, stateset):
    from backend.states.models import StateSet

    ss = stateset[0]
    folder = store_path(ss.path)
    assert collaborator_api.delete(f"/api/statesets/{ss.id}/").status_code == 403
    assert owner_api.delete(f"/api/statesets/{ss.id}/").status_code == 204
    assert not StateSet.objects.exists()
    assert not folder.exists()


def test_job_submissions_are_rate_limited_but_reads_are_not(owner_api, project):
    from django.core.cache import cache
    from rest_framework.throttling import ScopedRateThrottle

    cache.clear()
    original = ScopedRateThrottle.THROTTLE_RATES
    ScopedRateThrottle.THROTTLE_RATES = {"login": "100/min", "jobs": "2/min"}
    try:
        codes = [
            _upload(owner_api, f"text {i}".encode(), name=f"c{i}").status_code for i in range(3)
        ]
        assert codes == [202, 202, 429]
        assert all(
            owner_api.get("/api/projects/brackets/corpora/").status_code == 200 for _ in range(5)
        )
    finally:
        ScopedRateThrottle.THROTTLE_RATES = original
        cache.clear()
