"""Training jobs: a model trained on a corpus becomes a LanguageModel whose curve
reached the job row while it ran; bad parameters and foreign corpora are 400s."""

from __future__ import annotations

import numpy as np
import pytest

from backend.artifacts.models import LanguageModel
from backend.jobs.models import Job
from tests.support.lm import corpus_create

pytestmark = pytest.mark.django_db(transaction=True)

VOCAB = ["(", ")", "a", "\n"]
TINY = {"layers": 1, "hidden_size": 8, "epochs": 2, "seq_len": 8, "batch_size": 4}


def _corpus(project, user, n=400, name="parens"):
    rng = np.random.default_rng(1)
    return corpus_create(project, user, rng.integers(0, len(VOCAB), size=n), VOCAB, name=name)


def test_training_job_makes_a_model_and_keeps_its_curve(owner_api, owner, project):
    corpus = _corpus(project, owner)
    r = owner_api.post(
        "/api/projects/brackets/trainings/",
        {"corpus": str(corpus.id), "name": "little", "rnn_type": "GRU", **TINY},
        format="json",
    )
    assert r.status_code == 202, r.content
    assert r.json()["job"]["kind"] == "train"
    job = owner_api.get(f"/api/jobs/{r.json()['job']['id']}/").json()
    assert job["status"] == "succeeded", job
    assert job["message"].startswith("Trained; validation perplexity")
    model = LanguageModel.objects.get(id=job["result"]["model"])
    assert (model.name, model.origin, model.rnn_type, model.layers, model.hidden_size) == (
        "little",
        "training",
        "GRU",
        1,
        8,
    )
    assert model.vocab_size == len(VOCAB) and model.training_job_id is not None
    assert str(model.training_job_id) == job["id"]
    curve = job["detail"]["curve"]
    assert {p["split"] for p in curve} == {"train", "valid"}
    assert [p["epoch"] for p in curve if p["split"] == "valid"] == [1, 2]
    steps = [p["step"] for p in curve if p["split"] == "train"]
    assert steps == sorted(steps) and len(steps) >= 2
    for p in curve:
        assert set(p) == {"step", "epoch", "tokens", "loss", "perplexity", "split"}
        assert p["perplexity"] == pytest.approx(np.exp(p["loss"]), rel=1e-6)
    api_model = owner_api.get(f"/api/models/{model.id}/").json()
    assert api_model["training_job"] == job["id"] and api_model["spec"]["rnn_type"] == "GRU"
    # the trained model is usable like an uploaded one
    from backend.core.storage import store_path
    from workers.core.modelfile import load_model

    assert load_model(store_path(model.path)).vocab == VOCAB


def test_curve_points_reach_the_job_row_while_it_runs(owner, project):
    """The recorder writes points to the row as they come (thinned past its cap), so
    `GET /api/jobs/{id}/` shows the curve of a running job."""
    from backend.artifacts.services import CurveRecorder

    job = Job.objects.create(kind="train", project=project, created_by=owner, status="running")
    rec = CurveRecorder(job, cap=50)
    rec.add(
        {"step": 1, "epoch": 1, "tokens": 10, "loss": 2.0, "perplexity": 7.39, "split": "train"}
    )
    job.refresh_from_db()
    assert [p["step"] for p in job.detail["curve"]] == [1]
    for step in range(2, 200):
        rec.add(
            {
                "step": step,
                "epoch": 1,
                "tokens": 10 * step,
                "loss": 1.0,
                "perplexity": 2.7,
                "split": "train",
            }
        )
    rec.add(
        {"step": 199, "epoch": 1, "tokens": 1990, "loss": 0.9, "perplexity": 2.46, "split": "valid"}
    )
    job.refresh_from_db()
    curve = job.detail["curve"]
    assert len(curve) <= 50  # thinned
    assert curve[-1]["split"] == "valid"  # a validation point is written at once
    assert curve[0]["step"] == 1 and curve[-2]["step"] == 199  # the ends are kept
    steps = [p["step"] for p in curve if p["split"] == "train"]
    assert steps == sorted(steps)
    gaps = np.diff(steps[1:-1])
    assert gaps.max() <= 2 * gaps.min()  # evenly thinned, old and new alike
    rec.add(
        {
            "step": 200,
            "epoch": 1,
            "tokens": 1,
            "loss": float("inf"),
            "perplexity": float("inf"),
            "split": "valid",
        }
    )
    job.refresh_from_db()
    assert job.detail["curve"][-1]["loss"] is None  # JSON has no infinity
    before = job.detail
    Job.objects.filter(id=job.id).update(status="cancelled")
    rec.add(
        {"step": 201, "epoch": 2, "tokens": 1, "loss": 1.0, "perplexity": 2.7, "split": "valid"}
    )
    job.refresh_from_db()
    assert job.detail == before  # a finished job's row is left alone


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"layers": 0}, "layers"),
        ({"learning_rate": 0}, "learning_rate"),
        ({"rnn_type": "TRANSFORMER"}, "rnn_type"),
        ({"tied": True, "hidden_size": 8, "embedding_size": 4}, "tied"),
        ({"batch_size": 500}, "batch_size"),  # accepted here, refused by the job
    ],
)
def test_bad_training_parameters_are_explained(owner_api, owner, project, body, message):
    corpus = _corpus(project, owner, n=100)
    r = owner_api.post(
        "/api/projects/brackets/trainings/",
        {"corpus": str(corpus.id), **TINY, **body},
        format="json",
    )
    if r.status_code == 202:
        job = owner_api.get(f"/api/jobs/{r.json()['job']['id']}/").json()
        assert job["status"] == "failed" and message in job["error"], job
    else:
        assert r.status_code == 400, r.content
        assert message in r.json()["error"]["message"]
    assert not LanguageModel.objects.exists()


def test_corpus_of_another_project_is_refused(owner_api, owner, project):
    from backend.projects.services import project_create

    other = project_create(user=owner, name="Other", slug="other")
    corpus = _corpus(other, owner)
    r = owner_api.post(
        "/api/projects/brackets/trainings/", {"corpus": str(corpus.id), **TINY}, format="json"
    )
    assert r.status_code == 400
    assert "brackets" in r.json()["error"]["message"]
    assert not Job.objects.exists()


def test_viewer_cannot_train(collaborator_api, owner, project):
    corpus = _corpus(project, owner)
    r = collaborator_api.post(
        "/api/projects/brackets/trainings/", {"corpus": str(corpus.id), **TINY}, format="json"
    )
    assert r.status_code == 403
    assert not Job.objects.exists()
