"""The model, extraction and training routes answer what the OpenAPI document promises."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.backend.test_openapi import check_against_schema
from tests.support.lm import corpus_create, safetensors_bytes, tiny_model, vocab_bytes

pytestmark = pytest.mark.django_db(transaction=True)

VOCAB = ["(", ")", "a", "\n"]


@pytest.fixture
def spec(owner_api):
    r = owner_api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert r.status_code == 200
    return r.json()


def test_model_routes_match_the_schema(spec, owner_api, owner, project):
    r = owner_api.post(
        "/api/projects/brackets/models/",
        {
            "weights": SimpleUploadedFile(
                "m.safetensors", safetensors_bytes(tiny_model(vocab_size=4))
            ),
            "vocab": SimpleUploadedFile("vocab.json", vocab_bytes(VOCAB)),
        },
        format="multipart",
    )
    assert r.status_code == 202
    check_against_schema(spec, "/api/projects/{slug}/models/", "post", 202, r.json())
    upload_job = r.json()["job"]["id"]
    r = owner_api.get(f"/api/jobs/{upload_job}/")
    check_against_schema(spec, "/api/jobs/{job_id}/", "get", 200, r.json())
    assert r.json()["status"] == "succeeded", r.json()
    model_id = r.json()["result"]["model"]
    ids = np.random.default_rng(0).integers(0, len(VOCAB), size=300)
    corpus = corpus_create(project, owner, ids, VOCAB)

    r = owner_api.post(
        "/api/projects/brackets/extractions/",
        {"model": model_id, "corpus": str(corpus.id), "values": ["h"]},
        format="json",
    )
    assert r.status_code == 202
    check_against_schema(spec, "/api/projects/{slug}/extractions/", "post", 202, r.json())
    r = owner_api.post(
        "/api/projects/brackets/trainings/",
        {"corpus": str(corpus.id), "layers": 1, "hidden_size": 4, "epochs": 1, "seq_len": 5,
         "batch_size": 2},
        format="json",
    )  # fmt: skip
    assert r.status_code == 202
    check_against_schema(spec, "/api/projects/{slug}/trainings/", "post", 202, r.json())
    train_job = r.json()["job"]["id"]

    for path, url in [
        ("/api/projects/{slug}/models/", "/api/projects/brackets/models/"),
        ("/api/models/{model_id}/", f"/api/models/{model_id}/"),
        ("/api/projects/{slug}/", "/api/projects/brackets/"),
        ("/api/projects/{slug}/jobs/", "/api/projects/brackets/jobs/"),
        ("/api/jobs/{job_id}/", f"/api/jobs/{train_job}/"),
    ]:
        r = owner_api.get(url)
        assert r.status_code == 200, url
        check_against_schema(spec, path, "get", 200, r.json())
    assert owner_api.get(f"/api/jobs/{train_job}/").json()["detail"]["curve"]
