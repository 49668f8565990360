"""A directory import in a real worker process that is killed while it copies:
nothing is visible (no row, no folder under a final name), and the job finishes on
its next attempt in another worker."""

import os
import signal
import time

import pytest

from backend.core.storage import store_root
from backend.jobs.models import Job
from backend.states.models import StateSet
from tests.support import lstmvis_builder as B
from tests.support.worker import job_wait

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_worker_killed_mid_directory_import_leaves_nothing_and_the_job_finishes(
    start_worker, make_user, project, tmp_path, settings
):
    from rest_framework.test import APIClient

    from backend.projects.services import membership_set

    root = tmp_path / "lab-data"
    settings.STATELAB_IMPORT_ROOTS = [str(root)]
    proj = B.build_lstmvis_project(root, n=400_000, d=128)
    staff = make_user("root", admin=True)
    membership_set(project=project, username="root", role="editor")
    api = APIClient()
    api.force_authenticate(staff)

    first = start_worker(extra_env={"STATELAB_IMPORT_ROOTS": str(root)})
    r = api.post("/api/projects/brackets/imports/", {"path": str(proj)}, format="json")
    assert r.status_code == 202, r.content
    job_id = r.json()["job"]["id"]
    deadline = time.monotonic() + 120
    while True:  # until it copies states
        job = Job.objects.get(id=job_id)
        assert job.status in ("queued", "running"), job.error
        if job.message.startswith("Copying") and job.detail.get("bytes_done"):
            break
        assert time.monotonic() < deadline, job.message
        time.sleep(0.02)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=10)

    job = Job.objects.get(id=job_id)
    assert job.status == "running"  # nobody has finished it
    assert StateSet.objects.count() == 0
    statesets = store_root() / "statesets"
    visible = [p for p in statesets.glob("*") if not p.name.startswith(".tmp")]
    assert visible == []  # nothing half-written under a final name
    time.sleep(3.5)  # the dead worker's lease runs out
    start_worker(extra_env={"STATELAB_IMPORT_ROOTS": str(root)})  # sends stale jobs again
    job = job_wait(job_id, seconds=240)
    assert job.status == "succeeded", job.error
    assert job.attempts == 2
    ss = StateSet.objects.get(id=job.result["stateset"])
    assert ss.length == 400_000
    assert not (store_root() / "work" / f"import-{job.id.hex}").exists()
