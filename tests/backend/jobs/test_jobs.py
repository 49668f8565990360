"""Jobs: claiming, leases, re-delivery, cancel, dedupe and the job routes."""

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from backend.jobs.models import Job, JobStatus
from backend.jobs.runner import run_job
from backend.jobs.services import (
    job_cancel,
    job_claim,
    job_progress,
    jobs_requeue_stale,
)
from workers.core.errors import Cancelled, InputError


def _job(project, owner, **kw):
    defaults = {"kind": "corpus_upload", "project": project, "created_by": owner, "params": {}}
    defaults.update(kw)
    return Job.objects.create(**defaults)


@pytest.mark.django_db
def test_claim_once(project, owner):
    job = _job(project, owner)
    first = job_claim(job_id=str(job.id), worker="w1")
    assert first is not None and first.status == "running" and first.attempts == 1
    assert job_claim(job_id=str(job.id), worker="w2") is None  # lease still valid
    job.refresh_from_db()
    assert job.worker == "w1"


@pytest.mark.django_db
def test_redelivered_task_takes_over_after_lease_then_gives_up(project, owner):
    job = _job(project, owner, max_attempts=2)
    job_claim(job_id=str(job.id), worker="w1")
    Job.objects.filter(id=job.id).update(lease_until=timezone.now() - timedelta(seconds=1))
    again = job_claim(job_id=str(job.id), worker="w2")
    assert again is not None and again.attempts == 2 and again.worker == "w2"
    Job.objects.filter(id=job.id).update(lease_until=timezone.now() - timedelta(seconds=1))
    assert job_claim(job_id=str(job.id), worker="w3") is None
    job.refresh_from_db()
    assert job.status == "failed" and "stopped repeatedly" in job.error


@pytest.mark.django_db
def test_a_job_given_up_leaves_no_working_folder(project, owner):
    """A job whose workers died repeatedly is failed by the next delivery or by a
    starting worker; its working folder (a partial extraction) goes with it, while a
    live job's folder stays."""
    from backend.core.storage import work_dir

    gone, live, stale = (_job(project, owner, kind="extract", max_attempts=1) for _ in range(3))
    folders = {}
    for job in (gone, live, stale):
        folders[job.id] = work_dir("extract", job.id)
        (folders[job.id] / "chunk.npy").write_bytes(b"x" * 1000)
        job_claim(job_id=str(job.id), worker="dead")
    expired = timezone.now() - timedelta(seconds=1)
    Job.objects.filter(id__in=[gone.id, stale.id]).update(lease_until=expired)

    assert job_claim(job_id=str(gone.id), worker="w2") is None  # a re-delivery gives up
    jobs_requeue_stale(worker="w3")  # a starting worker gives the other one up
    for job in (gone, stale):
        job.refresh_from_db()
        assert job.status == "failed" and "stopped repeatedly" in job.error
        assert not folders[job.id].exists()
    assert folders[live.id].exists()


@pytest.mark.django_db
def test_finished_job_is_never_run_again(project, owner):
    job = _job(project, owner, status=JobStatus.SUCCEEDED)
    calls = []
    run_job(str(job.id), lambda j, p: calls.append(j))
    assert calls == []


@pytest.mark.django_db
def test_input_error_fails_with_its_message(project, owner):
    job = _job(project, owner)

    def work(j, progress):
        progress(0.5, "half way")
        raise InputError("dataset 'x' is missing", file="states.h5")

    run_job(str(job.id), work)
    job.refresh_from_db()
    assert job.status == "failed"
    assert job.error == "states.h5: dataset 'x' is missing"
    assert job.lease_until is None and job.finished_at is not None


@pytest.mark.django_db
def test_unexpected_error_is_readable_and_terminal(project, owner):
    job = _job(project, owner)
    run_job(str(job.id), lambda j, p: 1 / 0)
    job.refresh_from_db()
    assert job.status == "failed" and "ZeroDivisionError" in job.error


@pytest.mark.django_db
def test_cancel_stops_running_work(project, owner):
    job = _job(project, owner)
    claimed = job_claim(job_id=str(job.id))
    job_cancel(job=claimed)
    with pytest.raises(Cancelled):
        job_progress(job=claimed, fraction=0.3, message="x")
    job.refresh_from_db()
    assert job.status == "cancelled"


@pytest.mark.django_db
def test_cancel_finished_job_is_409(owner_api, project, owner):
    job = _job(project, owner, status=JobStatus.SUCCEEDED)
    r = owner_api.post(f"/api/jobs/{job.id}/cancel/")
    assert r.status_code == 409
    assert "already succeeded" in r.json()["error"]["message"]


@pytest.mark.django_db
def test_job_routes_for_personas(owner_api, collaborator_api, outsider_api, project, owner):
    job = _job(project, owner)
    assert owner_api.get(f"/api/jobs/{job.id}/").json()["status"] == "queued"
    assert collaborator_api.get(f"/api/jobs/{job.id}/").status_code == 200
    assert collaborator_api.post(f"/api/jobs/{job.id}/cancel/").status_code == 403
    assert outsider_api.get(f"/api/jobs/{job.id}/").status_code == 404
    assert outsider_api.post(f"/api/jobs/{job.id}/cancel/").status_code == 404
    assert outsider_api.get("/api/jobs/not-a-uuid/").status_code == 404
    listing = owner_api.get("/api/projects/brackets/jobs/").json()
    assert [j["id"] for j in listing] == [str(job.id)]
    assert owner_api.post(f"/api/jobs/{job.id}/cancel/").json()["status"] == "cancelled"


@pytest.mark.django_db
def test_stale_running_job_with_attempts_left_is_sent_again(project, owner, monkeypatch):
    sent = []
    monkeypatch.setattr("backend.jobs.services.job_send", lambda jid, kind: sent.append(jid))
    job = _job(
        project,
        owner,
        status=JobStatus.RUNNING,
        attempts=1,
        lease_until=timezone.now() - timedelta(minutes=1),
    )
    spent = _job(
        project,
        owner,
        status=JobStatus.RUNNING,
        attempts=3,
        lease_until=timezone.now() - timedelta(minutes=1),
    )
    assert jobs_requeue_stale() == 1
    assert sent == [str(job.id)]
    spent.refresh_from_db()
    assert spent.status == "failed"


@pytest.mark.django_db(transaction=True)
def test_nothing_enqueued_when_transaction_rolls_back(project, owner, monkeypatch):
    from django.db import transaction

    from backend.jobs.services import job_create

    sent = []
    monkeypatch.setattr("backend.jobs.services.job_send", lambda jid, kind: sent.append(jid))
    with pytest.raises(RuntimeError), transaction.atomic():
        job_create(kind="corpus_upload", project=project, user=owner, params={})
        raise RuntimeError("the request failed after creating the job")
    assert sent == [] and Job.objects.count() == 0
    job, created = job_create(kind="corpus_upload", project=project, user=owner, params={})
    assert created and sent == [str(job.id)]


@pytest.mark.django_db(transaction=True)
def test_twenty_identical_requests_make_one_job(project, owner, monkeypatch):
    from backend.jobs.services import job_create

    monkeypatch.setattr("backend.jobs.services.job_send", lambda jid, kind: None)
    if connection.vendor == "sqlite":
        pytest.skip("concurrent writers need PostgreSQL")

    def submit(_):
        try:
            job, created = job_create(
                kind="import_lstmvis",
                project=project,
                user=owner,
                params={},
                dedupe_key="same-upload-sha",
            )
            return str(job.id), created
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(submit, range(20)))
    assert len({jid for jid, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert Job.objects.filter(kind="import_lstmvis").count() == 1


def _concurrently(n, fn):
    def run(i):
        try:
            return fn(i)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=10) as pool:
        return list(pool.map(run, range(n)))


@pytest.mark.django_db(transaction=True)
def test_an_identical_job_that_ends_during_the_insert_is_retried_past(project, owner, monkeypatch):
    """The race behind a 500: the insert collides with an identical active job, which
    ends before it can be shared. The submission must then make its own job."""
    import threading

    from django.db import IntegrityError

    from backend.jobs.services import job_create

    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL")
    monkeypatch.setattr("backend.jobs.services.job_send", lambda jid, kind: None)
    real_create = Job.objects.create
    other: list[Job] = []

    def elsewhere(fn):  # another request, on its own connection, committed at once
        def run():
            try:
                fn()
            finally:
                connection.close()

        t = threading.Thread(target=run)
        t.start()
        t.join()

    def racing_create(**kw):
        if other:
            return real_create(**kw)
        elsewhere(lambda: other.append(real_create(**{**kw, "params": {"other": True}})))
        try:
            return real_create(**kw)
        except IntegrityError:
            elsewhere(lambda: Job.objects.filter(id=other[0].id).update(status="succeeded"))
            raise

    monkeypatch.setattr(Job.objects, "create", racing_create)
    job, created = job_create(
        kind="corpus_upload", project=project, user=owner, params={}, dedupe_key="k"
    )
    assert created and job.id != other[0].id and job.params == {}
    assert Job.objects.filter(dedupe_key="k", status="queued").count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_submissions_cannot_pass_the_active_jobs_limit(
    project, owner, settings, monkeypatch
):
    """Count-then-insert under a lock on the user's row: 30 concurrent distinct
    submissions against a limit of 7 make exactly 7 jobs; the rest answer 429."""
    from backend.core.errors import ApplicationError
    from backend.jobs.services import job_create

    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL")
    monkeypatch.setattr("backend.jobs.services.job_send", lambda jid, kind: None)
    settings.STATELAB_MAX_ACTIVE_JOBS_PER_USER = 7

    def submit(i):
        try:
            job_create(kind="train", project=project, user=owner, params={"i": i})
        except ApplicationError as exc:
            return exc.status_code
        return 202

    codes = _concurrently(30, submit)
    assert codes.count(202) == 7 and codes.count(429) == 23
    assert Job.objects.filter(created_by=owner).count() == 7


@pytest.mark.django_db(transaction=True)
def test_broker_down_leaves_a_queued_job_that_says_so(project, owner, monkeypatch):
    """No task runs inside the request when the broker is down, and the request succeeds."""
    from celery import Celery

    import backend.jobs.services as services
    from backend.jobs.services import job_create

    # A Celery app configured like the real one (every CELERY_* setting), with its
    # broker and its result store at a port where nothing listens. Celery lets the
    # environment variable win over the configuration, so set both.
    dead = "redis://127.0.0.1:1/0"
    monkeypatch.setenv("CELERY_BROKER_URL", dead)
    down = Celery("down", set_as_current=False)
    down.config_from_object("django.conf:settings", namespace="CELERY")
    down.conf.update(broker_url=dead, result_backend=dead, task_always_eager=False)
    monkeypatch.setattr(services, "celery_app", lambda: down)
    t = time.monotonic()
    job, created = job_create(kind="corpus_upload", project=project, user=owner, params={})
    # The request answers at once (the result store's reconnect retries held it 19 s).
    assert time.monotonic() - t < 5
    job.refresh_from_db()
    assert created
    assert job.status == "queued"
    assert "did not answer" in job.message


@pytest.mark.django_db(transaction=True)
def test_upload_is_not_kept_when_its_job_is_refused(owner_api, project, settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from backend.artifacts.models import Upload

    settings.STATELAB_MAX_ACTIVE_JOBS_PER_USER = 0
    r = owner_api.post(
        "/api/projects/brackets/corpora/",
        {"file": SimpleUploadedFile("a.txt", b"some words"), "tokenization": "word"},
        format="multipart",
    )
    assert r.status_code == 429
    assert "jobs queued or running" in r.json()["error"]["message"]
    assert Upload.objects.count() == 0


@pytest.mark.django_db
def test_restarted_worker_takes_up_its_own_interrupted_job(project, owner, monkeypatch):
    """make run's worker stopped mid-job (Ctrl-C) has the same node name when it starts again."""
    sent = []
    monkeypatch.setattr("backend.jobs.services.job_send", lambda jid, kind: sent.append(jid))
    mine = _job(
        project,
        owner,
        status=JobStatus.RUNNING,
        attempts=1,
        worker="local@box",
        lease_until=timezone.now() + timedelta(minutes=1),
    )
    other = _job(
        project,
        owner,
        status=JobStatus.RUNNING,
        attempts=1,
        worker="gpu@box",
        lease_until=timezone.now() + timedelta(minutes=1),
    )
    assert jobs_requeue_stale(worker="local@box") == 1
    assert sent == [str(mine.id)]
    claimed = job_claim(job_id=str(mine.id), worker="local@box")
    assert claimed is not None
    assert claimed.attempts == 2
    assert job_claim(job_id=str(other.id), worker="local@box") is None  # its lease is live


@pytest.mark.django_db
def test_a_viewer_cancels_their_own_job_and_no_one_elses(
    collaborator_api, project, owner, collaborator
):
    """A viewer may start jobs (rankings, statistics); cancelling one's own needs no role."""
    own = _job(project, collaborator)
    other = _job(project, owner)
    r = collaborator_api.post(f"/api/jobs/{own.id}/cancel/")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert collaborator_api.post(f"/api/jobs/{other.id}/cancel/").status_code == 403
    other.refresh_from_db()
    assert other.status == JobStatus.QUEUED


@pytest.mark.django_db
def test_the_sweep_sends_what_no_broker_holds_once(project, owner, monkeypatch, settings):
    """jobs_resend: never delivered (after a moment's grace), delivered long ago,
    running under an expired lease; each sent by one sweep only; out of attempts: failed."""
    from backend.jobs.services import jobs_resend

    settings.STATELAB_JOB_RESEND_AFTER_S = 600
    sent = []
    monkeypatch.setattr("backend.jobs.services.job_send", lambda jid, kind: sent.append(jid))
    now = timezone.now()
    old = now - timedelta(minutes=5)  # more than a lease ago
    undelivered = _job(project, owner)
    Job.objects.filter(id=undelivered.id).update(created_at=old)
    just_made = _job(project, owner)  # its own send after commit is still under way
    delivered = _job(project, owner, sent_at=now - timedelta(minutes=3))
    lost = _job(project, owner, sent_at=now - timedelta(minutes=20))
    orphan = _job(
        project, owner, status=JobStatus.RUNNING, attempts=1, lease_until=old, sent_at=old
    )
    alive = _job(
        project, owner, status=JobStatus.RUNNING, attempts=1, lease_until=now + timedelta(minutes=1)
    )
    spent = _job(project, owner, status=JobStatus.RUNNING, attempts=3, lease_until=old, sent_at=old)
    assert jobs_resend(now=now) == 3
    assert sorted(sent) == sorted(str(j.id) for j in (undelivered, lost, orphan))
    assert jobs_resend(now=now) == 0  # each was taken once
    spent.refresh_from_db()
    assert spent.status == JobStatus.FAILED
    for job in (just_made, delivered, alive):
        job.refresh_from_db()
        assert job.status in (JobStatus.QUEUED, JobStatus.RUNNING)
