"""Annotation uploads through the API: for a state set (visible in its description,
context windows and match hits at once, also to a process that had it open) and for a
corpus (carried into later extractions); refusals name the first bad line and store
nothing; viewers get 403 and outsiders 404."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from backend.artifacts.models import Upload
from backend.core.storage import store_path
from backend.states.models import StateSet
from tests.backend.test_openapi import check_against_schema
from tests.support.lm import corpus_create

pytestmark = pytest.mark.django_db(transaction=True)


def _post(api, url, text, **fields):
    body = {"file": SimpleUploadedFile("ann.txt", text.encode()), **fields}
    return api.post(url, body, format="multipart")


def _upload(api, ss_id, text, **fields):
    r = _post(api, f"/api/statesets/{ss_id}/annotations/", text, **fields)
    assert r.status_code == 202, r.content
    assert r.json()["job"]["kind"] == "annotation_upload"
    return api.get(f"/api/jobs/{r.json()['job']['id']}/").json()


def _labels(ids, vocab):
    return [{"(": "OPEN", ")": "CLOSE"}.get(vocab[i], "OTHER") for i in ids]


def _window(api, ss_id, end=9):
    r = api.get(f"/api/statesets/{ss_id}/context/?source=s0&start=0&end={end}")
    assert r.status_code == 200
    return r.json()["annotations"]


def test_lines_upload_shows_in_description_and_context(owner_api, stateset):
    ss, _, ids, vocab = stateset
    labels = _labels(ids, vocab)
    job = _upload(owner_api, ss.id, "\n".join(labels) + "\n", name="bracket", kind="discrete",
                  format="lines")  # fmt: skip
    assert job["status"] == "succeeded", job
    assert job["result"] == {"annotation": "bracket"}
    desc = owner_api.get(f"/api/statesets/{ss.id}/").json()
    track = next(a for a in desc["annotations"] if a["name"] == "bracket")
    assert track == {"name": "bracket", "kind": "discrete", "labels": sorted(set(labels))}
    assert _window(owner_api, ss.id)["bracket"] == labels[:10]
    row = StateSet.objects.get(id=ss.id)
    assert row.revision == 1 and row.size_bytes > 0
    assert not Upload.objects.exclude(path="").exists()  # the file is consumed


def test_tsv_scalar_upload_and_token_mismatch(owner_api, stateset):
    ss, _, ids, vocab = stateset
    depth = np.arange(len(ids)) / 10
    rows = [f"{vocab[t].replace(' ', ' ')}\t{d}" for t, d in zip(ids, depth, strict=True)]
    job = _upload(owner_api, ss.id, "\n".join(rows), name="pos", kind="scalar", format="tsv")
    assert job["status"] == "succeeded", job
    np.testing.assert_allclose(_window(owner_api, ss.id)["pos"], depth[:10], atol=1e-6)

    wrong = list(rows)
    other = next(v for v in vocab if v != vocab[ids[16]])
    wrong[16] = f"{other}\t1"
    job = _upload(owner_api, ss.id, "\n".join(wrong), name="pos2", kind="scalar", format="tsv")
    assert job["status"] == "failed"
    assert (
        f"line 17: expected the token {vocab[ids[16]]!r} (position 16), found {other!r}"
        in job["error"]
    )


def test_conllu_upload(owner_api, owner, project):
    vocab = ["the", "cat", "sat", "<eos>"]
    ids = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    corpus = corpus_create(project, owner, ids, vocab)
    sent = "1\tthe\t_\tDET\t_\t_\t2\tdet\t_\t_\n2\tcat\t_\tNOUN\t_\t_\t3\tnsubj\t_\t_\n" \
           "3\tsat\t_\tVERB\t_\t_\t0\troot\t_\t_\n\n"  # fmt: skip
    r = _post(owner_api, f"/api/corpora/{corpus.id}/annotations/", "# a\n" + sent * 2,
              name="upos", kind="discrete", format="conllu", column="UPOS")  # fmt: skip
    assert r.status_code == 202, r.content
    job = owner_api.get(f"/api/jobs/{r.json()['job']['id']}/").json()
    assert job["status"] == "succeeded", job
    from workers.core.store import open_corpus

    data = open_corpus(store_path(corpus.path))
    info = data.annotations[0]
    got = [info.labels[i] for i in data.annotation(info)[0]]
    assert got == ["DET", "NOUN", "VERB", "<eos>"] * 2


def test_a_length_mismatch_is_refused_and_nothing_is_stored(owner_api, stateset):
    ss, _, ids, _ = stateset
    folder = store_path(ss.path)
    before = (folder / "manifest.json").read_bytes()
    files = sorted(p.name for p in (folder / "annotations").iterdir())
    job = _upload(owner_api, ss.id, "1\n" * (len(ids) - 1), name="short", kind="scalar",
                  format="lines")  # fmt: skip
    assert job["status"] == "failed"
    assert f"line {len(ids)}: the file ends, but expected a value for position" in job["error"]
    assert (folder / "manifest.json").read_bytes() == before
    assert sorted(p.name for p in (folder / "annotations").iterdir()) == files
    row = StateSet.objects.get(id=ss.id)
    assert row.revision == 0 and "short" not in str(row.manifest)


def test_a_name_that_exists_is_refused_unless_replace(owner_api, stateset):
    ss, _, ids, _ = stateset
    text = "\n".join(["2"] * len(ids))
    r = _post(owner_api, f"/api/statesets/{ss.id}/annotations/", text, name="depth",
              kind="scalar", format="lines")  # fmt: skip
    assert r.status_code == 409 and r.json()["error"]["code"] == "annotation_exists"
    assert "replace=true" in r.json()["error"]["message"]
    assert not Upload.objects.exists()
    r = _post(owner_api, f"/api/statesets/{ss.id}/annotations/", text, name="../x",
              kind="scalar", format="lines")  # fmt: skip
    assert r.status_code == 400
    job = _upload(owner_api, ss.id, text, name="depth", kind="scalar", format="lines",
                  replace="true")  # fmt: skip
    assert job["status"] == "succeeded", job
    assert _window(owner_api, ss.id)["depth"] == [2.0] * 10
    names = [a["name"] for a in owner_api.get(f"/api/statesets/{ss.id}/").json()["annotations"]]
    assert names == ["depth", "kind"]


def test_a_process_that_had_the_state_set_open_sees_the_new_track(owner_api, stateset):
    from backend.states.selectors import stateset_store

    ss, _, ids, _ = stateset
    opened = stateset_store(ss)  # this process' cache now holds the store
    assert "new" not in _window(owner_api, ss.id)
    job = _upload(owner_api, ss.id, "\n".join(["1"] * len(ids)), name="new", kind="scalar",
                  format="lines")  # fmt: skip
    assert job["status"] == "succeeded"
    assert "new" not in {a.name for a in opened.manifest.annotations}  # the stale object
    assert _window(owner_api, ss.id)["new"] == [1.0] * 10
    r = owner_api.post(f"/api/statesets/{ss.id}/matches/",
                       {"source": "s0", "cells": [1, 2], "threshold": 0.0}, format="json")  # fmt: skip
    assert r.status_code == 200, r.content
    hits = owner_api.get(f"/api/matches/{r.json()['id']}/").json()["hits"]
    assert hits and all(h["annotations"]["new"] == [1.0] * len(h["tokens"]) for h in hits)


@pytest.mark.parametrize("route", ["stateset", "corpus"])
def test_viewers_get_403_and_outsiders_404(route, stateset, owner, project, collaborator_api,
                                           outsider_api):  # fmt: skip
    ss = stateset[0]
    corpus = corpus_create(project, owner, np.zeros(3), ["x"])
    url = (
        f"/api/statesets/{ss.id}/annotations/"
        if route == "stateset"
        else f"/api/corpora/{corpus.id}/annotations/"
    )
    fields = {"name": "n", "kind": "scalar", "format": "lines"}
    assert _post(collaborator_api, url, "1\n1\n1\n", **fields).status_code == 403
    r = _post(outsider_api, url, "1\n1\n1\n", **fields)
    assert r.status_code == 404 and "brackets" not in r.content.decode()
    assert not Upload.objects.exists()


def test_a_corpus_track_goes_into_later_extractions(owner_api, owner, project, tmp_path):
    from tests.backend.models.test_extraction import VOCAB, _corpus, _store_model
    from tests.support.lm import tiny_model

    lm = tiny_model(vocab_size=len(VOCAB), embedding_size=5, hidden_size=7, layers=1)
    model = _store_model(project, owner, lm, tmp_path)
    corpus, _ = _corpus(project, owner, n=40)
    r = _post(owner_api, f"/api/corpora/{corpus.id}/annotations/",
              "\n".join(str(i % 3) for i in range(40)), name="beat", kind="scalar",
              format="lines")  # fmt: skip
    job = owner_api.get(f"/api/jobs/{r.json()['job']['id']}/").json()
    assert job["status"] == "succeeded", job
    r = owner_api.post("/api/projects/brackets/extractions/",
                       {"model": str(model.id), "corpus": str(corpus.id), "topk": 0,
                        "surprisal": False}, format="json")  # fmt: skip
    job = owner_api.get(f"/api/jobs/{r.json()['job']['id']}/").json()
    assert job["status"] == "succeeded", job
    ss_id = job["result"]["stateset"]
    source = owner_api.get(f"/api/statesets/{ss_id}/").json()["sources"][0]["id"]
    ctx = owner_api.get(f"/api/statesets/{ss_id}/context/?source={source}&start=0&end=5")
    assert ctx.json()["annotations"]["beat"] == [0.0, 1.0, 2.0, 0.0, 1.0, 2.0]
    r = _post(owner_api, f"/api/corpora/{corpus.id}/annotations/", "1\n", name="surprisal",
              kind="scalar", format="lines")  # fmt: skip
    assert r.status_code == 400


def test_responses_match_the_schema(owner_api, stateset):
    from tests.backend.test_openapi import spec as _spec

    spec = _spec.__wrapped__(owner_api)
    ss, _, ids, _ = stateset
    r = _post(owner_api, f"/api/statesets/{ss.id}/annotations/", "1\n" * len(ids), name="s",
              kind="scalar", format="lines")  # fmt: skip
    assert r.status_code == 202
    check_against_schema(spec, "/api/statesets/{stateset_id}/annotations/", "post", 202, r.json())
    op = spec["paths"]["/api/corpora/{corpus_id}/annotations/"]["post"]
    assert "multipart/form-data" in op["requestBody"]["content"]
    r = owner_api.get(f"/api/statesets/{ss.id}/")
    check_against_schema(spec, "/api/statesets/{stateset_id}/", "get", 200, r.json())
