"""Model uploads through the API: the request stores the files and answers 202 with a
`model_upload` job, which checks them and stores the model. Accepted layouts, hostile
files refused (the job fails with a readable error) with nothing stored, roles, size
limits, the quota, identical uploads at once, and no torch in the web process."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from backend.artifacts.models import LanguageModel, Upload
from backend.core.storage import store_path
from backend.jobs.models import Job
from tests.support.lm import safetensors_bytes, state_dict_bytes, tiny_model, vocab_bytes

pytestmark = pytest.mark.django_db(transaction=True)

VOCAB = ["(", ")", "a", "b", "\n", " "]
URL = "/api/projects/brackets/models/"
ROOT = Path(__file__).resolve().parents[3]


def _post(
    api, weights: bytes, *, vocab=None, vocab_name="vocab.json", config=None, name="tiny", **extra
):
    files = {
        "weights": SimpleUploadedFile("model.bin", weights),
        "vocab": SimpleUploadedFile(vocab_name, vocab if vocab is not None else vocab_bytes(VOCAB)),
        "name": name,
        **extra,
    }
    if config is not None:
        files["config"] = config
    return api.post(URL, files, format="multipart")


def _job(api, weights: bytes, **kwargs) -> dict:
    """Upload; the answer is 202 with a queued job, which (tasks run after commit
    here) has ended by the time it is read back."""
    r = _post(api, weights, **kwargs)
    assert r.status_code == 202, r.content
    job = r.json()["job"]
    assert (job["kind"], job["status"]) == ("model_upload", "queued")
    return api.get(f"/api/jobs/{job['id']}/").json()


def _upload(api, weights: bytes, **kwargs) -> dict:
    """Upload and return the stored model as the API describes it."""
    job = _job(api, weights, **kwargs)
    assert job["status"] == "succeeded", job
    r = api.get(f"/api/models/{job['result']['model']}/")
    assert r.status_code == 200
    return r.json()


def _files_in_store(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _assert_nothing_stored(store):
    assert not LanguageModel.objects.exists()
    assert _files_in_store(store) == []
    assert not Upload.objects.exclude(path="").exists()


def test_safetensors_with_config_is_stored_and_listed(owner_api, project, _isolated_store):
    model = tiny_model(layers=2, embedding_size=5, hidden_size=7)
    config = (
        '{"rnn_type": "LSTM", "vocab_size": 6, "embedding_size": 5, "hidden_size": 7, "layers": 2}'
    )
    job = _job(owner_api, safetensors_bytes(model), config=config)
    assert job["status"] == "succeeded", job
    assert set(job["result"]) == {"model"}
    body = owner_api.get(f"/api/models/{job['result']['model']}/").json()
    assert body["spec"] == {
        "rnn_type": "LSTM",
        "vocab_size": 6,
        "embedding_size": 5,
        "hidden_size": 7,
        "layers": 2,
        "tied": False,
    }
    assert (body["name"], body["origin"], body["vocab_size"], body["layers"]) == (
        "tiny",
        "upload",
        6,
        2,
    )
    row = LanguageModel.objects.get(id=body["id"])
    assert row.size_bytes > 0 and len(row.sha256) == 64
    assert (store_path(row.path) / "manifest.json").exists()
    listed = owner_api.get("/api/projects/brackets/").json()["models"]
    assert [(m["id"], m["name"], m["rnn_type"]) for m in listed] == [(body["id"], "tiny", "LSTM")]
    assert [m["id"] for m in owner_api.get(URL).json()] == [body["id"]]
    # The uploaded files went once the job ended; their rows stay as a record.
    assert sorted(Upload.objects.values_list("kind", "path")) == [
        ("model_config", ""),
        ("model_vocab", ""),
        ("model_weights", ""),
    ]
    assert not any(p.startswith("uploads/") for p in _files_in_store(_isolated_store))


def test_config_as_an_uploaded_file(owner_api, project):
    model = tiny_model(rnn_type="GRU", layers=1)
    config = SimpleUploadedFile(
        "config.json",
        b'{"rnn_type": "GRU", "vocab_size": 6, "embedding_size": 5, "hidden_size": 7, "layers": 1}',
    )
    assert _upload(owner_api, safetensors_bytes(model), config=config)["rnn_type"] == "GRU"


def test_word_language_model_state_dict_without_config(owner_api, project):
    """A `torch.save(model.state_dict())` in the PyTorch example's layout: the
    architecture is read off the weights."""
    model = tiny_model(layers=3, embedding_size=4, hidden_size=6)
    spec = _upload(owner_api, state_dict_bytes(model))["spec"]
    assert (spec["rnn_type"], spec["layers"], spec["embedding_size"], spec["hidden_size"]) == (
        "LSTM",
        3,
        4,
        6,
    )
    from workers.core.modelfile import load_model

    loaded = load_model(store_path(LanguageModel.objects.get().path))
    ids = torch.tensor([[0], [2], [3]])
    with torch.no_grad():
        want, _ = model(ids)
        got, _ = loaded.model(ids)
    torch.testing.assert_close(got, want)
    assert loaded.vocab == VOCAB


def test_tied_model_and_a_line_vocabulary(owner_api, project):
    model = tiny_model(embedding_size=7, hidden_size=7, layers=1, tied=True)
    body = _upload(
        owner_api,
        state_dict_bytes(model),
        vocab=b"the\ncat\nsat\non\nmat\n<eos>\n",
        vocab_name="words.txt",
        name="",
    )
    assert body["spec"]["tied"] is True
    assert body["name"] == "model"  # from the weights file's name


class _RunsACommand:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _evil_pickle(marker) -> bytes:
    buf = io.BytesIO()
    torch.save({"encoder.weight": torch.zeros(6, 5), "x": _RunsACommand(str(marker))}, buf)
    return buf.getvalue()


def _torchscript(model) -> bytes:
    class Step(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(3, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(x)

    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(Step()), buf)
    return buf.getvalue()


def _whole_module(model) -> bytes:
    buf = io.BytesIO()
    torch.save(model, buf)
    return buf.getvalue()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # building a TorchScript file
@pytest.mark.parametrize(
    ("case", "expect"),
    [
        ("pickle_runs_a_command", "system while loading"),
        ("torchscript", "TorchScript"),
        ("whole_module", "state_dict()"),
        ("garbage", ""),
        ("wrong_vocab_size", "vocab"),
        ("config_disagrees", "hidden"),
    ],
)
def test_hostile_or_mismatched_upload_fails_its_job_and_nothing_is_stored(
    owner_api, project, tmp_path, _isolated_store, case, expect
):
    model = tiny_model()
    marker = tmp_path / "the-command-ran"
    kwargs = {}
    if case == "pickle_runs_a_command":
        weights = _evil_pickle(marker)
    elif case == "torchscript":
        weights = _torchscript(model)
    elif case == "whole_module":
        weights = _whole_module(model)
    elif case == "garbage":
        weights = b"\x00\x01this is not a model" * 50
    elif case == "wrong_vocab_size":
        weights = safetensors_bytes(model)
        kwargs["vocab"] = vocab_bytes(VOCAB[:5])
    else:
        weights = safetensors_bytes(model)
        kwargs["config"] = (
            '{"rnn_type": "LSTM", "vocab_size": 6, "embedding_size": 5, '
            '"hidden_size": 16, "layers": 2}'
        )
    job = _job(owner_api, weights, **kwargs)
    assert job["status"] == "failed", job
    assert job["result"] == {}
    message = job["error"]
    assert message and expect.lower() in message.lower(), message
    assert "unexpectedly" not in message  # a refusal, not a crash
    assert not marker.exists()  # the pickle's command never ran
    _assert_nothing_stored(_isolated_store)


@pytest.mark.parametrize(
    ("case", "expect"),
    [
        ("config_not_json", "not valid JSON"),
        ("config_not_an_object", "JSON object"),
        ("empty_vocab", "empty"),
        ("empty_weights", "empty"),
    ],
)
def test_cheap_refusals_answer_in_the_request_and_store_nothing(
    owner_api, project, _isolated_store, case, expect
):
    weights = safetensors_bytes(tiny_model())
    kwargs: dict = {}
    if case == "config_not_json":
        kwargs["config"] = "{rnn_type: LSTM"
    elif case == "config_not_an_object":
        kwargs["config"] = "[1, 2]"
    elif case == "empty_vocab":
        kwargs["vocab"] = b""
    else:
        weights = b""
    r = _post(owner_api, weights, **kwargs)
    assert r.status_code == 400, r.content
    message = r.json()["error"]["message"]
    assert expect.lower() in message.lower(), message
    assert not Job.objects.exists()
    assert not Upload.objects.exists()
    _assert_nothing_stored(_isolated_store)


def test_missing_files_are_named(owner_api, project):
    r = owner_api.post(
        URL, {"weights": SimpleUploadedFile("w.bin", b"x"), "name": "n"}, format="multipart"
    )
    assert r.status_code == 400
    assert "'vocab'" in r.json()["error"]["message"]


def test_viewer_cannot_upload_and_outsider_sees_nothing(
    collaborator_api, outsider_api, project, _isolated_store
):
    weights = safetensors_bytes(tiny_model())
    assert _post(collaborator_api, weights).status_code == 403
    assert _post(outsider_api, weights).status_code == 404
    assert not Job.objects.exists()
    _assert_nothing_stored(_isolated_store)


def test_editor_uploads_and_deletes_viewer_cannot_delete(
    owner_api, collaborator, collaborator_api, project, outsider_api
):
    from backend.projects.services import membership_set

    model_id = _upload(owner_api, safetensors_bytes(tiny_model()))["id"]
    folder = store_path(LanguageModel.objects.get().path)
    assert collaborator_api.delete(f"/api/models/{model_id}/").status_code == 403
    assert outsider_api.get(f"/api/models/{model_id}/").status_code == 404
    assert outsider_api.delete(f"/api/models/{model_id}/").status_code == 404
    membership_set(project=project, username=collaborator.username, role="editor")
    assert _upload(collaborator_api, safetensors_bytes(tiny_model(seed=1)))["origin"] == "upload"
    assert collaborator_api.delete(f"/api/models/{model_id}/").status_code == 204
    assert not folder.exists()
    assert owner_api.get(f"/api/models/{model_id}/").status_code == 404


def test_too_large_weights_are_refused_before_storing(
    owner_api, project, settings, _isolated_store
):
    weights = safetensors_bytes(tiny_model())
    settings.STATELAB_UPLOAD_MAX_BYTES = len(weights) - 1
    r = _post(owner_api, weights)
    assert r.status_code == 413
    assert "limit" in r.json()["error"]["message"]
    assert not Job.objects.exists()
    _assert_nothing_stored(_isolated_store)


def test_quota_is_checked_before_storing(owner_api, project, settings, _isolated_store):
    settings.STATELAB_USER_STORAGE_QUOTA_BYTES = 1000
    r = _post(owner_api, safetensors_bytes(tiny_model(hidden_size=16)))
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "quota_exceeded"
    assert not Job.objects.exists()
    _assert_nothing_stored(_isolated_store)


def test_models_count_against_the_quota(owner, owner_api, project, settings):
    from backend.core.quota import storage_used

    before = storage_used(owner)
    _upload(owner_api, safetensors_bytes(tiny_model()))
    assert storage_used(owner) - before == LanguageModel.objects.get().size_bytes > 0


def test_identical_uploads_at_once_share_one_job(owner, project, monkeypatch, _isolated_store):
    """Ten identical uploads at once: all answered 202 with the same job, one copy of
    the files kept for it, and the job stores one model."""
    from rest_framework.test import APIClient

    from backend.artifacts.services import model_upload_run
    from backend.jobs.runner import run_job

    if connection.vendor == "sqlite":
        pytest.skip("concurrent writers need PostgreSQL")
    monkeypatch.setattr("backend.jobs.services.job_send", lambda job_id, kind: None)
    weights = safetensors_bytes(tiny_model())

    def submit(_):
        try:
            client = APIClient()
            client.force_authenticate(owner)
            r = _post(client, weights)
            return r.status_code, r.json()["job"]["id"]
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(submit, range(10)))
    assert {status for status, _ in answers} == {202}
    assert len({job_id for _, job_id in answers}) == 1
    job = Job.objects.get()
    assert Upload.objects.count() == 2  # weights and vocabulary, once
    assert len(_files_in_store(_isolated_store)) == 2

    run_job(str(job.id), model_upload_run)
    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    assert job.result == {"model": str(LanguageModel.objects.get().id)}
    assert not any(p.startswith("uploads/") for p in _files_in_store(_isolated_store))


_WEB_PROCESS = textwrap.dedent(
    """
    import json, sys
    import django

    django.setup()
    from django.test.utils import setup_test_environment

    setup_test_environment()  # lets the test client's host in, as under pytest
    import backend.config.urls  # every route and what its views import

    import backend.jobs.services

    sent = []  # no worker here: what would be sent to the broker is recorded instead
    backend.jobs.services.job_send = lambda job_id, kind: sent.append([job_id, kind])

    from django.core.files.uploadedfile import SimpleUploadedFile
    from rest_framework.test import APIClient

    from backend.accounts.models import User

    client = APIClient()
    client.force_authenticate(User.objects.get(username=sys.argv[1]))
    with open(sys.argv[2], "rb") as w, open(sys.argv[3], "rb") as v:
        r = client.post(
            "/api/projects/brackets/models/",
            {
                "weights": SimpleUploadedFile("m.safetensors", w.read()),
                "vocab": SimpleUploadedFile("vocab.json", v.read()),
                "config": '{"rnn_type": "LSTM"}',
            },
            format="multipart",
        )
    heavy = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
    print(json.dumps({"status": r.status_code, "body": r.json(), "sent": sent, "torch": heavy}))
    """
)


def test_the_web_process_never_imports_torch(owner, project, tmp_path, _isolated_store):
    """A fresh process that loads every route and answers a model upload has not
    imported torch; the job it queued then stores the model (here, in this process)."""
    from backend.artifacts.services import model_upload_run
    from backend.jobs.runner import run_job

    weights = tmp_path / "w.safetensors"
    weights.write_bytes(safetensors_bytes(tiny_model()))
    vocab = tmp_path / "vocab.json"
    vocab.write_bytes(vocab_bytes(VOCAB))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "backend.config.settings.test",
        "STATELAB_TEST_WORKER_DB": str(connection.settings_dict["NAME"]),
        "STATELAB_STORE_ROOT": str(_isolated_store),
    }
    done = subprocess.run(
        [sys.executable, "-c", _WEB_PROCESS, owner.username, str(weights), str(vocab)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["torch"] == []
    assert answer["status"] == 202, answer
    job_id = answer["body"]["job"]["id"]
    assert answer["sent"] == [[job_id, "model_upload"]]
    assert not LanguageModel.objects.exists()  # the request stored files, not a model

    run_job(job_id, model_upload_run)
    job = Job.objects.get(id=job_id)
    assert job.status == "succeeded", job.error
    assert LanguageModel.objects.get(id=job.result["model"]).hidden_size == 7
