"""Staff retry and cancel jobs from the admin, through the job services: a retried
job runs again under the same id, a refused one says why, a cancelled one stops."""

from __future__ import annotations

import pytest

from backend.jobs.models import Job
from backend.jobs.services import job_create, job_fail, job_succeed

pytestmark = pytest.mark.django_db


def _action(client, action, *jobs):
    return client.post(
        "/admin/jobs/job/",
        {"action": action, "_selected_action": [str(j.id) for j in jobs]},
        follow=True,
    )


def _messages(response):
    return [str(m) for m in response.context["messages"]]


@pytest.fixture
def sent(monkeypatch):
    """The jobs sent to the broker, in order (nothing runs)."""
    ids: list[str] = []
    monkeypatch.setattr("backend.jobs.services.job_send", lambda jid, kind: ids.append(jid))
    return ids


def test_retry_queues_a_failed_job_again_and_sends_it_after_commit(
    admin_client, project, owner, sent, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        job, _ = job_create(kind="index", project=project, user=owner, params={})
    job_fail(job=job, error="the disk was full")
    Job.objects.filter(id=job.id).update(attempts=3, progress=0.4)
    assert sent == [str(job.id)]

    with django_capture_on_commit_callbacks(execute=True):
        r = _action(admin_client, "retry_jobs", job)
    assert "1 job queued again." in _messages(r)
    job.refresh_from_db()
    assert (job.status, job.attempts, job.progress, job.error, job.finished_at) == (
        "queued",
        0,
        0.0,
        "",
        None,
    )
    assert sent == [str(job.id), str(job.id)]


def test_retry_refuses_jobs_that_are_not_failed_or_cancelled(admin_client, project, owner, sent):
    done, _ = job_create(kind="index", project=project, user=owner, params={"a": 1})
    Job.objects.filter(id=done.id).update(status="running")
    job_succeed(job=done, result={"ok": "1"})
    queued, _ = job_create(kind="index", project=project, user=owner, params={"a": 2})
    r = _action(admin_client, "retry_jobs", done, queued)
    shown = " ".join(_messages(r))
    assert f"index {done.id}: The job is succeeded, not failed or cancelled" in shown
    assert f"index {queued.id}: The job is queued, not failed or cancelled" in shown
    assert "queued again" not in shown
    assert Job.objects.get(id=done.id).status == "succeeded"
    assert Job.objects.get(id=done.id).result == {"ok": "1"}


def test_retry_refuses_a_job_whose_identical_twin_is_active(admin_client, project, owner, sent):
    old, _ = job_create(kind="index", project=project, user=owner, params={}, dedupe_key="k")
    job_fail(job=old, error="boom")
    twin, created = job_create(kind="index", project=project, user=owner, params={}, dedupe_key="k")
    assert created
    r = _action(admin_client, "retry_jobs", old)
    assert f"An identical job ({twin.id}) is queued or running" in " ".join(_messages(r))
    assert Job.objects.get(id=old.id).status == "failed"


@pytest.mark.django_db(transaction=True)
def test_a_retried_job_runs_again_and_succeeds(admin_client, stateset, owner, monkeypatch):
    """In-process (eager), as a worker would: the job failed once, is retried by staff,
    and the real runner takes it from queued to succeeded under the same id."""
    from backend.states.services import index_start

    ss = stateset[0]
    monkeypatch.setattr("backend.jobs.services.job_send", lambda jid, kind: None)
    job, _ = index_start(stateset=ss, user=owner)
    job_fail(job=job, error="the worker's disk was full")
    monkeypatch.undo()
    _action(admin_client, "retry_jobs", job)
    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    assert job.attempts == 1


def test_cancel_stops_queued_and_running_jobs_and_says_which_it_could_not(
    admin_client, project, owner, sent
):
    queued, _ = job_create(kind="index", project=project, user=owner, params={"a": 1})
    running, _ = job_create(kind="index", project=project, user=owner, params={"a": 2})
    Job.objects.filter(id=running.id).update(status="running")
    failed, _ = job_create(kind="index", project=project, user=owner, params={"a": 3})
    job_fail(job=failed, error="boom")
    r = _action(admin_client, "cancel_jobs", queued, running, failed)
    shown = _messages(r)
    assert "2 jobs cancelled." in shown
    assert any(f"index {failed.id}: The job has already failed" in m for m in shown)
    statuses = {j.id: j.status for j in Job.objects.all()}
    assert statuses == {queued.id: "cancelled", running.id: "cancelled", failed.id: "failed"}


def test_the_job_admin_offers_both_actions_and_lists_workers(admin_client, project, owner, sent):
    job_create(kind="index", project=project, user=owner, params={})
    page = admin_client.get("/admin/jobs/job/").content.decode()
    assert 'value="retry_jobs"' in page and 'value="cancel_jobs"' in page
    assert admin_client.get("/admin/jobs/workerheartbeat/").status_code == 200
