"""A real Celery worker process, the real broker and the real database.

The worker is started as a separate process (`celery -A backend.config.celery_app worker`) that
connects to the test database and the suite's worker broker (Redis under CI); the fixtures
`worker` and `start_worker` are in tests/backend/conftest.py (tests/support/worker.py).
"""

import os
import signal
import time
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from backend.jobs.models import Job
from backend.states.models import StateSet
from tests.support import lstmvis_builder as B
from tests.support.worker import job_wait

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_worker_process_runs_an_import(worker, owner_api, project, tmp_path):
    proj = B.build_lstmvis_project(tmp_path / "src", n=300, d=16)
    r = owner_api.post(
        "/api/projects/brackets/imports/",
        {"file": SimpleUploadedFile("p.zip", B.zip_dir(proj))},
        format="multipart",
    )
    assert r.status_code == 202
    job = job_wait(r.json()["job"]["id"])
    assert job.status == "succeeded", job.error
    assert job.worker.startswith("test-") or job.worker  # claimed by the worker process
    assert job.attempts == 1
    ss = StateSet.objects.get(id=job.result["stateset"])
    assert ss.length == 300


def test_worker_fails_a_hostile_import_with_a_message(worker, owner_api, project):
    r = owner_api.post(
        "/api/projects/brackets/imports/",
        {"file": SimpleUploadedFile("p.zip", B.zip_with_traversal())},
        format="multipart",
    )
    job = job_wait(r.json()["job"]["id"])
    assert job.status == "failed" and ".." in job.error


def test_job_of_a_dead_worker_is_taken_over(worker, owner, project, tmp_path):
    """A job left running by a worker that died (its lease ran out) is finished by another."""
    from backend.artifacts.services import upload_store
    from backend.jobs.services import job_send

    proj = B.build_lstmvis_project(tmp_path / "src", n=100, d=8)
    upload = upload_store(
        project=project,
        user=owner,
        kind="lstmvis_zip",
        file=SimpleUploadedFile("p.zip", B.zip_dir(proj)),
        suffix=".zip",
    )
    job = Job.objects.create(
        kind="import_lstmvis",
        project=project,
        created_by=owner,
        params={"upload": str(upload.id)},
        status="running",
        attempts=1,
        worker="a-worker-that-died",
        lease_until=timezone.now() + timedelta(seconds=2),
    )
    job_send(str(job.id), job.kind)  # the broker re-delivers the task
    job = job_wait(job.id)
    assert job.status == "succeeded", job.error
    assert job.attempts == 2 and job.worker != "a-worker-that-died"


def test_worker_killed_mid_import_leaves_nothing_and_job_is_retried(
    start_worker, owner_api, project, tmp_path, _isolated_store
):
    proj = B.build_lstmvis_project(tmp_path / "src", n=60_000, d=96)
    first = start_worker()
    r = owner_api.post(
        "/api/projects/brackets/imports/",
        {"file": SimpleUploadedFile("p.zip", B.zip_dir(proj))},
        format="multipart",
    )
    job_id = r.json()["job"]["id"]
    deadline = time.monotonic() + 60
    while Job.objects.get(id=job_id).status != "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.3)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    job = Job.objects.get(id=job_id)
    assert job.status == "running"  # nobody has finished it
    assert StateSet.objects.count() == 0
    visible = [
        p for p in (_isolated_store / "statesets").glob("*") if not p.name.startswith(".tmp")
    ]
    assert visible == []  # nothing half-written under a final name
    time.sleep(3.5)  # the dead worker's lease runs out
    start_worker()  # a new worker sends stale jobs again when it starts
    job = job_wait(job_id, seconds=120)
    assert job.status == "succeeded", job.error
    assert job.attempts == 2
    assert StateSet.objects.filter(id=job.result["stateset"]).exists()


def test_worker_process_trains_and_extracts_on_the_gpu_queue(worker, owner_api, owner, project):
    """The train and extract kinds go through the broker's gpu queue to a worker
    process (which uses CUDA when it has it); the curve lands on the job row."""
    import numpy as np

    from backend.artifacts.models import LanguageModel
    from tests.support.lm import corpus_create

    vocab = ["(", ")", "a", "\n"]
    ids = np.random.default_rng(2).integers(0, len(vocab), size=400)
    corpus = corpus_create(project, owner, ids, vocab)
    r = owner_api.post(
        "/api/projects/brackets/trainings/",
        {"corpus": str(corpus.id), "layers": 1, "hidden_size": 8, "epochs": 1, "seq_len": 8,
         "batch_size": 4},
        format="json",
    )  # fmt: skip
    assert r.status_code == 202, r.content
    job = job_wait(r.json()["job"]["id"], seconds=180)
    assert job.status == "succeeded", job.error
    assert {p["split"] for p in job.detail["curve"]} == {"train", "valid"}
    model = LanguageModel.objects.get(id=job.result["model"])
    assert model.origin == "training" and model.training_job_id == job.id

    r = owner_api.post(
        "/api/projects/brackets/extractions/",
        {"model": str(model.id), "corpus": str(corpus.id), "streams": 2},
        format="json",
    )
    job = job_wait(r.json()["job"]["id"], seconds=180)
    assert job.status == "succeeded", job.error
    ss = StateSet.objects.get(id=job.result["stateset"])
    assert ss.origin == "extraction" and ss.manifest["stream_starts"] == [0, 200]


def test_worker_process_extracts_a_float16_store(worker, owner_api, owner, project, tmp_path):
    """`dtype: float16` travels with the job to the worker process: the sources are
    stored as float16 (half the bytes), and the viewer reads them as float32."""
    import numpy as np

    from backend.artifacts.services import model_store_from_files
    from backend.core.storage import store_path
    from tests.support.lm import (
        corpus_create,
        safetensors_bytes,
        tiny_model,
        vocab_bytes,
        write_files,
    )
    from workers.core.store import StateSet as Store

    vocab = ["(", ")", "a", "\n"]
    lm = tiny_model(vocab_size=len(vocab), embedding_size=5, hidden_size=6, layers=1)
    paths = write_files(tmp_path / "up", **{"w.safetensors": safetensors_bytes(lm)})
    model = model_store_from_files(
        project=project, user=owner, weights=paths["w.safetensors"],
        vocab_bytes=vocab_bytes(vocab), vocab_filename="vocab.json", name="tiny",
    )  # fmt: skip
    ids = np.random.default_rng(5).integers(0, len(vocab), size=300)
    corpus = corpus_create(project, owner, ids, vocab)
    r = owner_api.post(
        "/api/projects/brackets/extractions/",
        {"model": str(model.id), "corpus": str(corpus.id), "streams": 2, "dtype": "float16"},
        format="json",
    )
    assert r.status_code == 202, r.content
    job = job_wait(r.json()["job"]["id"], seconds=180)
    assert job.status == "succeeded", job.error
    ss = StateSet.objects.get(id=job.result["stateset"])
    store = Store.open(store_path(ss.path))
    assert {s.dtype for s in store.manifest.sources} == {"float16"}
    assert all(store.values(sid).dtype == np.float16 for sid in store.source_ids)
    r = owner_api.get(
        f"/api/statesets/{ss.id}/context/",
        {"source": "l1_h", "start": 0, "end": 299, "transform": "none"},
    )
    got = np.asarray(r.json()["values"], dtype=np.float64).T
    want = np.asarray(store.values("l1_h")).astype(np.float64)
    np.testing.assert_allclose(got, want, atol=6e-6, rtol=0)


def test_jobs_made_while_the_broker_was_down_run_once_it_answers(
    start_worker, owner_api, project, monkeypatch, tmp_path
):
    """The broker is down while a user uploads: the request answers at once with a
    queued job that says so. Once the broker answers again, a worker that has been
    running all along sends the job by its periodic sweep: no worker restart."""
    from celery import Celery

    import backend.jobs.services as services

    start_worker(extra_env={"STATELAB_JOB_SWEEP_S": "1"})
    dead = "redis://127.0.0.1:1/0"
    down = Celery("down", set_as_current=False)
    down.config_from_object("django.conf:settings", namespace="CELERY")
    down.conf.update(broker_url=dead, result_backend=dead, task_always_eager=False)
    with monkeypatch.context() as m:
        # Celery lets the environment variable win over the configuration: set both.
        m.setenv("CELERY_BROKER_URL", dead)
        m.setattr(services, "celery_app", lambda: down)
        t = time.monotonic()
        r = owner_api.post(
            "/api/projects/brackets/corpora/",
            {
                "file": SimpleUploadedFile("a.txt", b"the cat sat on the mat\n"),
                "tokenization": "word",
            },
            format="multipart",
        )
        assert r.status_code == 202, r.content
        assert time.monotonic() - t < 5
    # the broker is back (the web side's app is the real one again): the worker's
    # sweep, not the request, delivered the job
    job = job_wait(r.json()["job"]["id"], 60)
    assert job.status == "succeeded", job.error
    assert job.sent_at is not None and job.attempts == 1
    log = (tmp_path / "worker-0.log").read_text()
    assert "sent 1 job(s) again that no broker held" in log
