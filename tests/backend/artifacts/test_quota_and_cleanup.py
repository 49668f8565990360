"""Storage quota per user, uploads removed once imported, stale temp folders swept."""

import os
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from backend.artifacts.models import Upload
from backend.core.quota import storage_used
from backend.core.storage import store_path, store_root
from backend.jobs.services import store_sweep
from tests.support import lstmvis_builder as B

pytestmark = pytest.mark.django_db(transaction=True)


def _import(api, data):
    r = api.post(
        "/api/projects/brackets/imports/",
        {"file": SimpleUploadedFile("p.zip", data)},
        format="multipart",
    )
    return r


def test_upload_over_quota_is_refused_and_nothing_kept(owner_api, project, tmp_path, settings):
    settings.STATELAB_USER_STORAGE_QUOTA_BYTES = 1000
    data = B.zip_dir(B.build_lstmvis_project(tmp_path / "src", n=100, d=8))
    r = _import(owner_api, data)
    assert r.status_code == 413
    assert "storage quota" in r.json()["error"]["message"]
    assert Upload.objects.count() == 0
    uploads = store_path("uploads")
    assert not uploads.exists() or list(uploads.iterdir()) == []


def test_import_counts_against_quota_and_upload_is_removed(owner_api, owner, project, tmp_path):
    data = B.zip_dir(B.build_lstmvis_project(tmp_path / "src", n=100, d=8))
    r = _import(owner_api, data)
    job = owner_api.get(f"/api/jobs/{r.json()['job']['id']}/").json()
    assert job["status"] == "succeeded"
    upload = Upload.objects.get()
    assert upload.path == ""  # the zip is gone once imported
    assert list(store_path("uploads").iterdir()) == []
    assert storage_used(owner) > 100 * 8 * 4


def test_import_that_grows_past_quota_fails_and_leaves_nothing(
    owner_api, project, tmp_path, settings
):
    data = B.zip_dir(B.build_lstmvis_project(tmp_path / "src", n=3000, d=64))
    settings.STATELAB_USER_STORAGE_QUOTA_BYTES = len(data) + 10_000
    r = _import(owner_api, data)
    job = owner_api.get(f"/api/jobs/{r.json()['job']['id']}/").json()
    assert job["status"] == "failed"
    assert "storage quota" in job["error"]
    assert list(store_path("statesets").iterdir()) == []


def test_failed_import_removes_its_upload(owner_api, project):
    r = _import(owner_api, B.zip_with_traversal())
    assert owner_api.get(f"/api/jobs/{r.json()['job']['id']}/").json()["status"] == "failed"
    assert Upload.objects.get().path == ""


def test_sweep_removes_only_old_temp_folders(project):
    old = store_root() / "statesets" / ".tmp-abc-123"
    new = store_root() / "statesets" / ".tmp-def-456"
    keep = store_root() / "statesets" / "0123abcd"
    for d in (old, new, keep):
        d.mkdir(parents=True)
    past = time.time() - 2 * 24 * 3600
    os.utime(old, (past, past))
    os.utime(keep, (past, past))
    assert store_sweep() == 1
    assert not old.exists() and new.exists() and keep.exists()


def test_declared_size_over_the_cap_is_refused_before_reading(owner_api, project, settings):
    settings.STATELAB_UPLOAD_MAX_BYTES = 1000
    big = b"x" * (3 << 20)
    r = owner_api.post(
        "/api/projects/brackets/imports/",
        {"file": SimpleUploadedFile("p.zip", big)},
        format="multipart",
    )
    assert r.status_code == 413
    assert "larger than the limit" in r.json()["error"]["message"]
    assert Upload.objects.count() == 0
