"""Quotas kept in the database: the lab's row, a user's row and a project's row over
the settings; storage per user and per project, jobs at once, the size of one upload.
Every refusal names the limit and the current use, and leaves nothing stored."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from backend.accounts.models import User
from backend.artifacts.models import Corpus, Upload
from backend.core.quota import human_bytes, project_storage_used, storage_used, user_limits
from backend.core.storage import store_path
from backend.jobs.models import Job
from backend.projects.models import LabQuota, ProjectQuota, UserQuota
from tests.support import lstmvis_builder as B

pytestmark = pytest.mark.django_db(transaction=True)

TEXT = b"the cell state opens a bracket and the gate closes it again\n" * 20  # 1,220 bytes


def _corpus_row(project, user, size):
    """A stored corpus of `size` bytes (its row is what the quota counts)."""
    return Corpus.objects.create(
        project=project,
        name=f"c{size}",
        tokenization="word",
        length=1,
        vocab_size=1,
        documents=1,
        path=f"corpora/fake{size}",
        size_bytes=size,
        created_by=user,
    )


def _upload_corpus(api, slug="brackets", data=TEXT, name="a.txt"):
    return api.post(
        f"/api/projects/{slug}/corpora/",
        {"file": SimpleUploadedFile(name, data), "tokenization": "word"},
        format="multipart",
    )


def _nothing_stored(*, jobs_before=0, corpora_before=0):
    assert Upload.objects.count() == 0
    assert Job.objects.count() == jobs_before
    assert Corpus.objects.count() == corpora_before
    uploads = store_path("uploads")
    assert not uploads.exists() or list(uploads.iterdir()) == []


def test_limits_come_from_the_users_row_else_the_labs_row_else_the_settings(owner, settings):
    settings.STATELAB_USER_STORAGE_QUOTA_BYTES = 1000
    settings.STATELAB_MAX_ACTIVE_JOBS_PER_USER = 5
    settings.STATELAB_UPLOAD_MAX_BYTES = 300
    limits = user_limits(owner)
    assert (limits.storage_bytes, limits.active_jobs, limits.upload_bytes) == (1000, 5, 300)
    LabQuota.objects.create(user_storage_bytes=2000, active_jobs=None, upload_bytes=400)
    limits = user_limits(owner)
    assert (limits.storage_bytes, limits.active_jobs, limits.upload_bytes) == (2000, 5, 400)
    UserQuota.objects.create(user=owner, storage_bytes=None, active_jobs=1, upload_bytes=50)
    limits = user_limits(owner)
    assert (limits.storage_bytes, limits.active_jobs, limits.upload_bytes) == (2000, 1, 50)
    # A script's or the demo's work (no user) gets the lab's defaults.
    assert user_limits(None).active_jobs == 5


def test_the_lab_quota_is_one_row(db):
    LabQuota.objects.create(active_jobs=3)
    LabQuota(active_jobs=4).save()  # saving another replaces the one row
    assert list(LabQuota.objects.values_list("id", "active_jobs")) == [(1, 4)]


def test_upload_over_the_users_storage_quota_names_the_quota_and_the_use(owner, owner_api, project):
    _corpus_row(project, owner, 700)
    UserQuota.objects.create(user=owner, storage_bytes=1500)
    r = _upload_corpus(owner_api)
    assert r.status_code == 413, r.content
    error = r.json()["error"]
    assert error["code"] == "quota_exceeded"
    assert (
        "This needs 1.2 KB more: over your storage quota of 1.5 KB (you use 700 bytes)"
        in (error["message"])
    )
    assert error["details"] == {
        "limit": "user_storage",
        "quota_bytes": 1500,
        "used_bytes": 700,
        "adding_bytes": len(TEXT),
    }
    _nothing_stored(corpora_before=1)


def test_a_users_own_row_raises_the_quota_above_the_labs(owner, owner_api, project, settings):
    settings.STATELAB_USER_STORAGE_QUOTA_BYTES = 100
    assert _upload_corpus(owner_api).status_code == 413
    UserQuota.objects.create(user=owner, storage_bytes=1 << 20)
    r = _upload_corpus(owner_api)
    assert r.status_code == 202, r.content
    assert Job.objects.get().status == "succeeded"


def test_project_quota_counts_what_every_member_stores_there(
    owner, collaborator, owner_api, project, make_user
):
    from backend.projects.services import membership_set, project_create

    membership_set(project=project, username=collaborator.username, role="editor")
    _corpus_row(project, collaborator, 900)
    _corpus_row(project, owner, 300)
    other = project_create(user=owner, name="Other", slug="other")
    _corpus_row(other, owner, 5000)  # another project's bytes do not count here
    assert project_storage_used(project) == 1200
    ProjectQuota.objects.create(project=project, storage_bytes=2000)

    r = _upload_corpus(owner_api)
    assert r.status_code == 413, r.content
    error = r.json()["error"]
    assert error["code"] == "quota_exceeded"
    assert (
        "over the storage quota of project 'brackets' of 2.0 KB (it stores 1.2 KB)"
        in error["message"]
    )
    assert error["details"]["limit"] == "project_storage"
    assert (error["details"]["quota_bytes"], error["details"]["used_bytes"]) == (2000, 1200)
    _nothing_stored(corpora_before=3)
    # The same upload fits in the other project, whose quota is the lab's default.
    assert _upload_corpus(owner_api, slug="other").status_code == 202


def test_upload_over_the_users_upload_limit_is_refused_with_both_sizes(
    owner, owner_api, collaborator, collaborator_api, project
):
    from backend.projects.services import membership_set

    UserQuota.objects.create(user=owner, upload_bytes=1000)
    r = _upload_corpus(owner_api)
    assert r.status_code == 413, r.content
    error = r.json()["error"]
    assert error["code"] == "too_large"
    assert error["message"] == (
        "The uploaded file (1.2 KB) is larger than the limit of 1,000 bytes for one upload."
    )
    assert error["details"] == {"limit": "upload", "quota_bytes": 1000, "size_bytes": len(TEXT)}
    _nothing_stored()
    # The limit is the owner's: an editor without a row of their own may upload it.
    membership_set(project=project, username=collaborator.username, role="editor")
    assert _upload_corpus(collaborator_api).status_code == 202


def test_upload_limit_from_the_labs_row_refuses_by_declared_length(owner_api, project):
    LabQuota.objects.create(upload_bytes=1000)
    big = b"x" * (3 << 20)
    r = owner_api.post(
        "/api/projects/brackets/imports/",
        {"file": SimpleUploadedFile("p.zip", big)},
        format="multipart",
    )
    assert r.status_code == 413
    message = r.json()["error"]["message"]
    assert "larger than the limit of 1,000 bytes for one upload" in message
    assert "(2.0 MB)" in message  # the declared body less the multipart envelope's allowance
    _nothing_stored()


def test_jobs_at_once_come_from_the_users_row(owner, owner_api, project, monkeypatch):
    from backend.jobs.services import job_cancel, job_create

    monkeypatch.setattr("backend.jobs.services.job_send", lambda jid, kind: None)
    UserQuota.objects.create(user=owner, active_jobs=2)
    first, _ = job_create(kind="index", project=project, user=owner, params={"n": 1})
    job_create(kind="index", project=project, user=owner, params={"n": 2})

    r = _upload_corpus(owner_api)
    assert r.status_code == 429, r.content
    error = r.json()["error"]
    assert error["code"] == "too_many_jobs"
    assert (
        "You already have 2 jobs queued or running, and your limit is 2 at once"
        in (error["message"])
    )
    assert error["details"] == {"limit": "active_jobs", "quota": 2, "used": 2}
    _nothing_stored(jobs_before=2)

    job_cancel(job=first)
    assert _upload_corpus(owner_api).status_code == 202


def test_import_that_grows_past_the_project_quota_fails_and_leaves_nothing(
    owner_api, project, tmp_path
):
    data = B.zip_dir(B.build_lstmvis_project(tmp_path / "src", n=3000, d=64))
    ProjectQuota.objects.create(project=project, storage_bytes=len(data) + 10_000)
    r = owner_api.post(
        "/api/projects/brackets/imports/",
        {"file": SimpleUploadedFile("p.zip", data)},
        format="multipart",
    )
    assert r.status_code == 202, r.content
    job = owner_api.get(f"/api/jobs/{r.json()['job']['id']}/").json()
    assert job["status"] == "failed"
    # What the project has left (its quota less the waiting zip) plus the zip itself;
    # the user's quota (the lab's default, 100 GB) would have allowed far more.
    assert f"more than the {len(data) + 10_000:,} bytes allowed" in job["error"]
    assert "storage quota" in job["error"]
    assert list(store_path("statesets").iterdir()) == []
    assert Upload.objects.get().path == ""  # the zip went with its job


def test_corpus_that_grows_past_the_project_quota_fails_and_leaves_nothing(owner_api, project):
    """Characters become 4-byte tokens: the corpus is about four times the text, and
    the job's check after building it refuses it against the project's quota."""
    ProjectQuota.objects.create(project=project, storage_bytes=len(TEXT) + 100)
    r = owner_api.post(
        "/api/projects/brackets/corpora/",
        {"file": SimpleUploadedFile("a.txt", TEXT), "tokenization": "char"},
        format="multipart",
    )
    assert r.status_code == 202, r.content
    job = Job.objects.get(id=r.json()["job"]["id"])
    assert job.status == "failed"
    assert "over the storage quota of project 'brackets' of 1.3 KB (it stores 1.2 KB)" in (
        job.error
    )
    assert Corpus.objects.count() == 0
    assert list(store_path("corpora").iterdir()) == []
    assert Upload.objects.get().path == ""


def test_what_a_user_stores_counts_in_both_quotas(owner, owner_api, project):
    r = _upload_corpus(owner_api)
    assert Job.objects.get(id=r.json()["job"]["id"]).status == "succeeded"
    size = Corpus.objects.get().size_bytes
    assert size > 0
    assert storage_used(owner) == size == project_storage_used(project)


@pytest.mark.parametrize(
    ("typed", "stored"),
    [("100 GB", 100 << 30), ("1.5 MB", 1_572_864), ("2048", 2048), ("3 tb", 3 << 40), ("", None)],
)
def test_staff_type_sizes_in_the_admin(typed, stored):
    from backend.projects.admin import ByteSizeField

    assert ByteSizeField(required=False).clean(typed) == stored


def test_staff_edit_a_users_quota_in_the_admin(admin_client, owner, owner_api, project):
    r = admin_client.post(
        "/admin/projects/userquota/add/",
        {"user": owner.pk, "storage_bytes": "1 KB", "active_jobs": "", "upload_bytes": ""},
    )
    assert r.status_code == 302, r.content.decode()[:2000]
    quota = UserQuota.objects.get(user=owner)
    assert (quota.storage_bytes, quota.active_jobs, quota.upload_bytes) == (1024, None, None)
    page = admin_client.get("/admin/projects/userquota/").content.decode()
    assert "1.0 KB" in page and "alice" in page
    # The change form shows the size as typed, and the limit applies at once.
    form = admin_client.get(f"/admin/projects/userquota/{quota.pk}/change/").content.decode()
    assert 'value="1 KB"' in form
    assert _upload_corpus(owner_api).status_code == 413
    # The user's page in the admin tells the limits and links to them.
    user_page = admin_client.get(f"/admin/accounts/user/{owner.pk}/change/").content.decode()
    assert "stores 0 bytes of 1.0 KB" in user_page
    assert f"/admin/projects/userquota/{quota.pk}/change/" in user_page
    # A user without a row of their own gets a link that adds one for them.
    staff = User.objects.get(username="admin")
    staff_page = admin_client.get(f"/admin/accounts/user/{staff.pk}/change/").content.decode()
    assert f"/admin/projects/userquota/add/?user={staff.pk}" in staff_page
    assert "give this user own limits" in staff_page
    assert admin_client.get("/admin/accounts/user/add/").status_code == 200


def test_staff_open_the_labs_row_from_the_list(admin_client):
    r = admin_client.get("/admin/projects/labquota/")
    assert r.status_code == 302 and r["Location"].endswith("/admin/projects/labquota/add/")
    r = admin_client.post(
        "/admin/projects/labquota/add/",
        {
            "user_storage_bytes": "2 GB",
            "project_storage_bytes": "",
            "active_jobs": "4",
            "upload_bytes": "",
        },
    )
    assert r.status_code == 302
    assert user_limits(None).storage_bytes == 2 << 30
    assert user_limits(None).active_jobs == 4
    r = admin_client.get("/admin/projects/labquota/")
    assert r.status_code == 302 and r["Location"].endswith("/admin/projects/labquota/1/change/")


def test_human_sizes_in_messages():
    assert human_bytes(1) == "1 byte"
    assert human_bytes(1000) == "1,000 bytes"
    assert human_bytes(1536) == "1.5 KB"
    assert human_bytes(100 << 30) == "100.00 GB"
