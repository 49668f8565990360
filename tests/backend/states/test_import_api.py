"""LSTMVis import through the API: values, words and sizes come back as the HDF5 holds
them, and hostile inputs fail the job clearly with nothing left in the store."""

from pathlib import Path

import h5py
import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from backend.core.storage import store_path
from backend.states.models import StateSet
from tests.support import lstmvis_builder as B

pytestmark = pytest.mark.django_db(transaction=True)


def _import(api, data: bytes):
    r = api.post(
        "/api/projects/brackets/imports/",
        {"file": SimpleUploadedFile("proj.zip", data)},
        format="multipart",
    )
    assert r.status_code == 202, r.content
    return api.get(f"/api/jobs/{r.json()['job']['id']}/").json()


def _store_is_empty():
    root = store_path("statesets")
    leftovers = list(root.iterdir()) if root.exists() else []
    tmp = store_path("tmp")
    unpacked = list(tmp.iterdir()) if tmp.exists() else []
    return leftovers == [] and unpacked == []


@pytest.fixture
def lstmvis_dir(tmp_path):
    return B.build_lstmvis_project(tmp_path / "src", n=150, d=10)


def test_import_then_read_back(owner_api, project, lstmvis_dir):
    job = _import(owner_api, B.zip_dir(lstmvis_dir))
    assert job["status"] == "succeeded", job
    ss_id = job["result"]["stateset"]
    desc = owner_api.get(f"/api/statesets/{ss_id}/").json()
    assert desc["length"] == 150 and desc["project"] == "brackets"
    by_name = {s["name"]: s for s in desc["sources"]}
    assert set(by_name) >= {
        "states::states1",
        "other::states2",
        "states::states2u",
        "states::/group/output2",
    }
    assert by_name["other::states2"]["cells"] == 13
    assert by_name["states::/group/output2"]["transform"] == "none"
    assert by_name["states::states2u"]["unsigned"] is True
    kinds = {a["name"]: a["kind"] for a in desc["annotations"]}
    assert kinds["part_of_speech"] == "discrete"

    with h5py.File(lstmvis_dir / "states.hdf5") as f:
        raw = f["states1"][:]
        out2 = f["group/output2"][:]
    src = by_name["states::states1"]["id"]
    ctx = owner_api.get(f"/api/statesets/{ss_id}/context/?source={src}&start=10&end=19").json()
    np.testing.assert_allclose(np.array(ctx["values"]), np.tanh(raw[10:20]).T, atol=1e-5)
    assert len(ctx["tokens"]) == 10
    src2 = by_name["states::/group/output2"]["id"]
    ctx2 = owner_api.get(f"/api/statesets/{ss_id}/context/?source={src2}&start=0&end=4").json()
    np.testing.assert_allclose(np.array(ctx2["values"]), out2[0:5].T, atol=1e-5)
    sel = owner_api.post(
        f"/api/statesets/{ss_id}/selection/",
        {"source": src, "start": 20, "end": 22, "threshold": 0.3},
        format="json",
    )
    assert sel.status_code == 200
    on = np.tanh(raw) >= 0.3
    expected = [c for c in range(10) if not on[19, c] and on[20:23, c].all()]
    assert sel.json()["cells"] == expected

    # Its text came in as a corpus of the project too, to train on and extract from.
    assert job["message"] == "Imported 150 tokens and a corpus of its text."
    listed = owner_api.get(f"/api/projects/{project.slug}/").json()
    corpus_id = listed["statesets"][0]["corpus"]
    corpus = next(c for c in listed["corpora"] if c["id"] == corpus_id)
    assert corpus["length"] == 150
    assert owner_api.post(f"/api/statesets/{ss_id}/corpus/").status_code == 200


def test_context_with_cells_and_threshold_counts(owner_api, project, lstmvis_dir):
    job = _import(owner_api, B.zip_dir(lstmvis_dir))
    ss_id = job["result"]["stateset"]
    desc = owner_api.get(f"/api/statesets/{ss_id}/").json()
    src = desc["sources"][0]["id"]
    with h5py.File(lstmvis_dir / "states.hdf5") as f:
        raw = f["states1"][:]
    ctx = owner_api.get(
        f"/api/statesets/{ss_id}/context/?source={src}&start=5&end=14&cells=1,3,4&threshold=0.2"
    ).json()
    assert ctx["cells"] == [1, 3, 4]
    expect = (np.tanh(raw[5:15][:, [1, 3, 4]]) >= 0.2).sum(axis=1)
    assert ctx["cell_count"] == expect.tolist()


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        ("yaml_tag", "lstm.yml"),
        ("external_link", "external link"),
        ("truncated", "states.hdf5"),
        ("mismatch", "rows"),
        ("traversal", ".."),
        ("symlink", "link"),
    ],
)
def test_hostile_inputs_fail_clearly_and_leave_nothing(owner_api, project, tmp_path, make, needle):
    marker = tmp_path / "pwned"
    proj = B.build_lstmvis_project(tmp_path / "src", n=120, d=8)
    if make == "yaml_tag":
        B.make_yaml_python_tag(proj, marker)
        data = B.zip_dir(proj)
    elif make == "external_link":
        (proj / "states.hdf5").unlink()
        B.make_external_link_hdf5(proj / "states.hdf5", Path("/etc/passwd"))
        data = B.zip_dir(proj)
    elif make == "truncated":
        B.truncate_file(proj / "states.hdf5")
        data = B.zip_dir(proj)
    elif make == "mismatch":
        B.make_length_mismatch(proj)
        data = B.zip_dir(proj)
    elif make == "traversal":
        data = B.zip_with_traversal()
    else:
        data = B.zip_with_symlink()
    job = _import(owner_api, data)
    assert job["status"] == "failed", job
    assert needle.lower() in job["error"].lower(), job["error"]
    assert not marker.exists()
    assert StateSet.objects.count() == 0
    assert _store_is_empty()
    assert not (tmp_path / "evil").exists()


def test_identical_upload_twice_while_queued_is_one_job(owner_api, project, lstmvis_dir, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    from backend.config.celery_app import app

    app.conf.task_always_eager = False
    try:
        import backend.jobs.services as services

        sent = []
        original = services.job_send
        services.job_send = lambda jid, kind: sent.append(jid)
        data = B.zip_dir(lstmvis_dir)
        ids = {
            owner_api.post(
                "/api/projects/brackets/imports/",
                {"file": SimpleUploadedFile("p.zip", data)},
                format="multipart",
            ).json()["job"]["id"]
            for _ in range(3)
        }
        assert len(ids) == 1 and len(sent) == 1
        assert len(list(store_path("uploads").iterdir())) == 1
    finally:
        services.job_send = original
        app.conf.task_always_eager = True


def test_manage_import_lstmvis(owner, lstmvis_dir):
    from django.core.management import call_command

    call_command("import_lstmvis", str(lstmvis_dir), "--project", "lab-data", "--owner", "alice")
    ss = StateSet.objects.get(project__slug="lab-data")
    assert ss.length == 150 and ss.project.memberships.get().user == owner


def test_manage_import_lstmvis_reports_failure(owner, tmp_path):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    proj = B.build_lstmvis_project(tmp_path / "src", n=50, d=4)
    B.make_length_mismatch(proj)
    with pytest.raises(CommandError, match="rows"):
        call_command("import_lstmvis", str(proj), "--project", "lab-data", "--owner", "alice")


def test_a_small_upload_declaring_gigabytes_of_fill_values_is_refused(owner_api, project, tmp_path):
    """A never-written (fill-value) dataset compresses to nothing: a few KB uploaded
    declared 2.4 GB and filled the store. What an import may occupy is charged
    before anything is written: a bounded multiple of the bytes uploaded."""
    proj = B.build_lstmvis_project(tmp_path / "src", n=150, d=8)
    with h5py.File(proj / "states.hdf5", "a") as f:
        del f["states1"]
        f.create_dataset("states1", shape=(150, 700_000), dtype="float32")  # 420 MB, unwritten
    data = B.zip_dir(proj)
    assert len(data) < 200_000
    job = _import(owner_api, data)
    assert job["status"] == "failed", job
    assert "never written" in job["error"] and "states.hdf5" in job["error"], job["error"]
    assert StateSet.objects.count() == 0
    assert _store_is_empty()


def test_the_import_limit_is_the_smallest_of_the_rules(owner, settings):
    from backend.states.services import import_limit

    settings.STATELAB_IMPORT_MAX_EXPANSION = 32
    settings.STATELAB_IMPORT_QUOTA_BYTES = 10_000
    settings.STATELAB_USER_STORAGE_QUOTA_BYTES = 1_000_000
    assert import_limit(user=owner, upload_size=100) == 3_200
    assert import_limit(user=owner, upload_size=1_000) == 10_000
    settings.STATELAB_USER_STORAGE_QUOTA_BYTES = 500
    assert import_limit(user=owner, upload_size=100) == 600  # quota left + the upload itself
