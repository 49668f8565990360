"""Importing an LSTMVis directory that lies on the server: staff only, inside the
configured import roots (no `..`, no link leads out), read in place (no upload, no
upload limit, the storage quota only), progress in bytes, and a worker killed
half-way leaves nothing visible while the next attempt finishes the work."""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
from django.core.management import call_command

import workers.core.lstmvis as core_lstmvis
from backend.core.storage import store_path, store_root
from backend.jobs.models import Job
from backend.states import directories
from backend.states.models import StateSet
from tests.support import lstmvis_builder as B

pytestmark = pytest.mark.django_db(transaction=True)


class Killed(BaseException):
    """A worker killed mid-job: the job's `except Exception` clean-up never runs."""


@pytest.fixture
def root(tmp_path, settings):
    folder = tmp_path / "lab-data"
    folder.mkdir()
    settings.STATELAB_IMPORT_ROOTS = [str(folder)]
    return folder


@pytest.fixture
def staff(make_user, project):
    from backend.projects.services import membership_set

    user = make_user("root", admin=True)
    membership_set(project=project, username="root", role="editor")
    return user


@pytest.fixture
def staff_api(api, staff):
    return api(staff)


def _post(client, path):
    return client.post("/api/projects/brackets/imports/", {"path": str(path)}, format="json")


def _visible_statesets() -> list[str]:
    folder = store_root() / "statesets"
    return (
        sorted(p.name for p in folder.iterdir() if not p.name.startswith(".tmp"))
        if folder.exists()
        else []
    )


def test_staff_import_a_directory_where_it_lies(staff_api, root, settings):
    # Far below the directory's size: an upload this large would be refused.
    settings.STATELAB_UPLOAD_MAX_BYTES = 1000
    settings.STATELAB_IMPORT_QUOTA_BYTES = 1000
    proj = B.build_lstmvis_project(root, n=400, d=12)
    before = {p: p.stat().st_mtime_ns for p in proj.rglob("*")}
    r = _post(staff_api, proj)
    assert r.status_code == 202, r.content
    job = Job.objects.get(id=r.json()["job"]["id"])
    assert job.kind == "import_lstmvis_dir" and job.status == "succeeded", job.error
    assert job.detail["bytes_done"] == job.detail["bytes_total"] > 0

    ss = StateSet.objects.get(id=job.result["stateset"])
    assert ss.length == 400 and ss.origin == "lstmvis" and ss.name == "children books"
    desc = staff_api.get(f"/api/statesets/{ss.id}/").json()
    by_name = {s["name"]: s["id"] for s in desc["sources"]}
    with h5py.File(proj / "states.hdf5") as f:
        raw = f["states1"][:]
    stored = np.load(store_path(ss.path) / "sources" / f"{by_name['states::states1']}.npy")
    np.testing.assert_array_equal(stored, raw)
    # Its indexes came with it: the first match needs no index job.
    assert desc["indexes"]["match"] is True and desc["indexes"]["search"] is True
    # Read in place: no upload stored, no working folder left, the source untouched.
    uploads = store_root() / "uploads"
    assert not uploads.exists() or list(uploads.iterdir()) == []
    work = store_root() / "work"
    assert not work.exists() or list(work.iterdir()) == []
    assert {p: p.stat().st_mtime_ns for p in proj.rglob("*")} == before


def _outside(tmp_path):
    other = tmp_path / "elsewhere"
    return B.build_lstmvis_project(other, n=50, d=4)


@pytest.mark.parametrize(
    ("case", "status", "needle"),
    [
        ("not_staff", 403, "administrators"),
        ("no_roots", 403, "switched off"),
        ("outside", 403, "not inside an import root"),
        ("dotdot", 403, "not inside an import root"),
        ("symlink", 403, "not inside an import root"),
        ("relative", 400, "absolute path"),
        ("missing", 400, "no directory"),
        ("not_lstmvis", 400, "lstm.yml"),
        ("no_path", 400, "path"),
    ],
)
def test_directory_imports_are_refused_clearly(
    case, status, needle, staff_api, owner_api, root, tmp_path, settings
):
    client, body = staff_api, None
    if case == "not_staff":
        client, path = owner_api, B.build_lstmvis_project(root, n=50, d=4)
    elif case == "no_roots":
        settings.STATELAB_IMPORT_ROOTS = []
        path = B.build_lstmvis_project(root, n=50, d=4)
    elif case == "outside":
        path = _outside(tmp_path)
    elif case == "dotdot":
        path = Path(f"{root}/../elsewhere/{_outside(tmp_path).name}")
    elif case == "symlink":
        os.symlink(_outside(tmp_path), root / "link")
        path = root / "link"
    elif case == "relative":
        path = "lab-data/proj"
    elif case == "missing":
        path = root / "nothing-here"
    elif case == "not_lstmvis":
        (root / "plain").mkdir()
        path = root / "plain"
    else:
        body = {"directory": str(root)}
    if body is None:
        r = _post(client, path)
    else:
        r = client.post("/api/projects/brackets/imports/", body, format="json")
    assert r.status_code == status, r.content
    assert needle in r.json()["error"]["message"], r.json()
    assert Job.objects.count() == 0 and StateSet.objects.count() == 0


def test_a_hostile_directory_fails_the_job_and_leaves_nothing(staff_api, root):
    proj = B.build_lstmvis_project(root, n=120, d=8)
    (proj / "states.hdf5").unlink()
    B.make_external_link_hdf5(proj / "states.hdf5", Path("/etc/passwd"))
    r = _post(staff_api, proj)
    job = Job.objects.get(id=r.json()["job"]["id"])
    assert job.status == "failed" and "external link" in job.error, job.error
    assert StateSet.objects.count() == 0
    assert _visible_statesets() == []
    assert not (store_root() / "work" / f"import-{job.id.hex}").exists()


def test_the_storage_quota_is_the_limit(staff_api, root, settings):
    # Above what each HDF5 file declares, below the state set with its index.
    settings.STATELAB_USER_STORAGE_QUOTA_BYTES = 100_000
    proj = B.build_lstmvis_project(root, n=400, d=12)
    r = _post(staff_api, proj)
    job = Job.objects.get(id=r.json()["job"]["id"])
    assert job.status == "failed" and "would need" in job.error, job.error
    assert StateSet.objects.count() == 0 and _visible_statesets() == []


@pytest.fixture
def queued_job(staff, project, root, monkeypatch):
    """A directory import's job, claimed as a worker would, whose task is not sent
    (each attempt is run here, by hand)."""
    import backend.jobs.services as job_services

    monkeypatch.setattr(job_services, "job_send", lambda job_id, kind: None)
    monkeypatch.setattr(core_lstmvis, "block_rows", lambda cells: 256)
    monkeypatch.setattr(core_lstmvis, "_CHECKPOINT_BYTES", 1)
    proj = B.build_lstmvis_project(root, n=3000, d=10)
    job, created = directories.import_dir_start(project=project, user=staff, path=proj)
    assert created
    return job_services.job_claim(job_id=str(job.id))


def _killing_progress(after: int):
    seen = [0]

    def progress(fraction: float, message: str) -> None:
        if message.startswith("Copying"):
            seen[0] += 1
            if seen[0] > after:
                raise Killed

    return progress


def test_a_killed_attempt_leaves_nothing_visible_and_the_next_one_finishes(queued_job):
    job = queued_job
    with pytest.raises(Killed):
        directories.import_dir_run(job, _killing_progress(12))
    assert StateSet.objects.count() == 0
    assert _visible_statesets() == []  # nothing under a final name
    work = store_root() / "work" / f"import-{job.id.hex}"
    rows = json.loads((work / "checkpoint.json").read_text())["rows"]
    assert sum(rows.values()) > 0  # what it did is kept for the next attempt

    steps: list[tuple[float, str]] = []
    result = directories.import_dir_run(job, lambda f, m: steps.append((f, m)))
    ss = StateSet.objects.get(id=result["stateset"])
    assert ss.length == 3000 and _visible_statesets() == [job.id.hex]
    assert not work.exists()
    # The next attempt went on from the checkpoint: its first copy did not start at
    # 0 bytes (copying spans 0.1 to 0.95 of the import, 0 to 0.95 of the job).
    first, message = next((f, m) for f, m in steps if m.startswith("Copying") and " of " in m)
    assert first > 0.95 * 0.1 + 0.01, (first, message)
    job.refresh_from_db()
    assert job.detail["bytes_done"] == job.detail["bytes_total"] == 3000 * 43 * 4  # 43 cells


def test_an_attempt_killed_after_publishing_is_recorded_by_the_next(queued_job, monkeypatch):
    job = queued_job
    real_record = directories.import_record

    def killed(*args, **kwargs):
        raise Killed

    monkeypatch.setattr(directories, "import_record", killed)
    with pytest.raises(Killed):
        directories.import_dir_run(job, lambda f, m: None)
    assert StateSet.objects.count() == 0  # published, but no row: not visible
    monkeypatch.setattr(directories, "import_record", real_record)
    messages: list[str] = []
    result = directories.import_dir_run(job, lambda f, m: messages.append(m))
    assert "Found the state set an earlier attempt wrote." in messages
    assert not any(m.startswith("Copying") for m in messages)
    assert StateSet.objects.get(id=result["stateset"]).path == f"statesets/{job.id.hex}"


def test_manage_import_lstmvis_reads_the_directory_in_place(owner, tmp_path, settings):
    settings.STATELAB_UPLOAD_MAX_BYTES = 1000  # the command knows no upload limit
    settings.STATELAB_IMPORT_ROOTS = []  # nor the API's roots
    proj = B.build_lstmvis_project(tmp_path / "anywhere", n=300, d=8)
    call_command("import_lstmvis", str(proj), "--project", "lab-data", "--owner", "alice")
    ss = StateSet.objects.get(project__slug="lab-data")
    assert ss.length == 300
    job = Job.objects.get(kind="import_lstmvis_dir")
    assert job.params["path"] == str(proj.resolve()) and job.status == "succeeded"
    uploads = store_root() / "uploads"
    assert not uploads.exists() or list(uploads.iterdir()) == []
