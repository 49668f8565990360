"""Model uploads through the API: accepted layouts, hostile files refused with nothing
stored, roles, size limits and the quota."""

from __future__ import annotations

import io
import os

import pytest
import torch
from django.core.files.uploadedfile import SimpleUploadedFile

from backend.artifacts.models import LanguageModel
from backend.core.storage import store_path
from tests.support.lm import safetensors_bytes, state_dict_bytes, tiny_model, vocab_bytes

pytestmark = pytest.mark.django_db

VOCAB = ["(", ")", "a", "b", "\n", " "]
URL = "/api/projects/brackets/models/"


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


def _files_in_store(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _assert_nothing_stored(store):
    assert not LanguageModel.objects.exists()
    assert _files_in_store(store) == []


def test_safetensors_with_config_is_stored_and_listed(owner_api, project):
    model = tiny_model(layers=2, embedding_size=5, hidden_size=7)
    config = (
        '{"rnn_type": "LSTM", "vocab_size": 6, "embedding_size": 5, "hidden_size": 7, "layers": 2}'
    )
    r = _post(owner_api, safetensors_bytes(model), config=config)
    assert r.status_code == 201, r.content
    body = r.json()
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
    assert owner_api.get(f"/api/models/{row.id}/").json()["spec"]["hidden_size"] == 7
    listed = owner_api.get("/api/projects/brackets/").json()["models"]
    assert [(m["id"], m["name"], m["rnn_type"]) for m in listed] == [(body["id"], "tiny", "LSTM")]
    assert [m["id"] for m in owner_api.get(URL).json()] == [body["id"]]


def test_config_as_an_uploaded_file(owner_api, project):
    model = tiny_model(rnn_type="GRU", layers=1)
    config = SimpleUploadedFile(
        "config.json",
        b'{"rnn_type": "GRU", "vocab_size": 6, "embedding_size": 5, "hidden_size": 7, "layers": 1}',
    )
    r = _post(owner_api, safetensors_bytes(model), config=config)
    assert r.status_code == 201, r.content
    assert r.json()["rnn_type"] == "GRU"


def test_word_language_model_state_dict_without_config(owner_api, project):
    """A `torch.save(model.state_dict())` in the PyTorch example's layout: the
    architecture is read off the weights."""
    model = tiny_model(layers=3, embedding_size=4, hidden_size=6)
    r = _post(owner_api, state_dict_bytes(model))
    assert r.status_code == 201, r.content
    spec = r.json()["spec"]
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
    r = _post(
        owner_api,
        state_dict_bytes(model),
        vocab=b"the\ncat\nsat\non\nmat\n<eos>\n",
        vocab_name="words.txt",
        name="",
    )
    assert r.status_code == 201, r.content
    assert r.json()["spec"]["tied"] is True
    assert r.json()["name"] == "model"  # from the weights file's name


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
        ("config_not_json", "not valid JSON"),
        ("empty_vocab", "empty"),
    ],
)
def test_hostile_or_mismatched_upload_is_refused_and_nothing_is_stored(
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
    elif case == "config_disagrees":
        weights = safetensors_bytes(model)
        kwargs["config"] = (
            '{"rnn_type": "LSTM", "vocab_size": 6, "embedding_size": 5, '
            '"hidden_size": 16, "layers": 2}'
        )
    elif case == "config_not_json":
        weights = safetensors_bytes(model)
        kwargs["config"] = "{rnn_type: LSTM"
    else:
        weights = safetensors_bytes(model)
        kwargs["vocab"] = b""
    r = _post(owner_api, weights, **kwargs)
    assert r.status_code == 400, r.content
    message = r.json()["error"]["message"]
    assert message and expect.lower() in message.lower(), message
    assert not marker.exists()  # the pickle's command never ran
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
    _assert_nothing_stored(_isolated_store)


def test_editor_uploads_and_deletes_viewer_cannot_delete(
    owner_api, collaborator, collaborator_api, project, outsider_api
):
    from backend.projects.services import membership_set

    r = _post(owner_api, safetensors_bytes(tiny_model()))
    model_id = r.json()["id"]
    folder = store_path(LanguageModel.objects.get().path)
    assert collaborator_api.delete(f"/api/models/{model_id}/").status_code == 403
    assert outsider_api.get(f"/api/models/{model_id}/").status_code == 404
    assert outsider_api.delete(f"/api/models/{model_id}/").status_code == 404
    membership_set(project=project, username=collaborator.username, role="editor")
    assert _post(collaborator_api, safetensors_bytes(tiny_model(seed=1))).status_code == 201
    from django.test import TestCase

    with TestCase.captureOnCommitCallbacks(execute=True):
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
    _assert_nothing_stored(_isolated_store)


def test_quota_is_checked_before_storing(owner_api, project, settings, _isolated_store):
    settings.STATELAB_USER_STORAGE_QUOTA_BYTES = 1000
    r = _post(owner_api, safetensors_bytes(tiny_model(hidden_size=16)))
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "quota_exceeded"
    _assert_nothing_stored(_isolated_store)


def test_models_count_against_the_quota(owner, owner_api, project, settings):
    from backend.core.quota import storage_used

    before = storage_used(owner)
    _post(owner_api, safetensors_bytes(tiny_model()))
    assert storage_used(owner) - before == LanguageModel.objects.get().size_bytes > 0
