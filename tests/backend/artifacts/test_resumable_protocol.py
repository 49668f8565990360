"""Resumable uploads (tus 1.0) through Django's test client: the core protocol and its
extensions, the checks made before the first byte is stored, who may see an upload,
and a finished upload becoming the same job as a small upload of its kind."""

import base64
import hashlib
from datetime import timedelta

import pytest
from django.utils import timezone

from backend.artifacts.models import Corpus, ResumableUpload, Upload
from backend.artifacts.services import resumable_expire
from backend.core.storage import store_path, store_root
from backend.jobs.models import Job
from backend.states.models import StateSet
from tests.support import lstmvis_builder as B

pytestmark = pytest.mark.django_db(transaction=True)

TUS = {"HTTP_TUS_RESUMABLE": "1.0.0"}
TEXT = b"the cat sat\non the mat\n\n\nthe dog ran\n"


def meta(**pairs: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in pairs.items())


def create(api, length: int, slug: str = "brackets", **pairs: str):
    pairs.setdefault("kind", "corpus")
    pairs.setdefault("filename", "pets.txt")
    return api.post(
        f"/api/projects/{slug}/uploads/",
        HTTP_UPLOAD_LENGTH=str(length),
        HTTP_UPLOAD_METADATA=meta(**pairs),
        **TUS,
    )


def patch(api, url: str, offset: int, body: bytes, **headers: str):
    return api.generic(
        "PATCH",
        url,
        body,
        content_type="application/offset+octet-stream",
        HTTP_UPLOAD_OFFSET=str(offset),
        **{**TUS, **headers},
    )


def partials():
    folder = store_root() / "uploads" / "partial"
    return list(folder.iterdir()) if folder.exists() else []


def test_options_says_version_extensions_and_max_size(owner_api, project, settings):
    settings.STATELAB_UPLOAD_MAX_BYTES = 12345
    r = owner_api.options("/api/projects/brackets/uploads/")
    assert r.status_code == 204
    assert r["Tus-Version"] == "1.0.0" and r["Tus-Resumable"] == "1.0.0"
    assert set(r["Tus-Extension"].split(",")) >= {"creation", "termination", "expiration"}
    assert r["Tus-Max-Size"] == "12345"


def test_corpus_in_three_pieces_becomes_the_same_job(owner_api, project):
    r = create(owner_api, len(TEXT), tokenization="word", name="pets")
    assert r.status_code == 201, r.content
    url = r["Location"]
    assert url == f"/api/uploads/{r.json()['id']}/" and r["Tus-Resumable"] == "1.0.0"
    assert "Upload-Expires" in r

    head = owner_api.head(url, **TUS)
    assert head.status_code == 200
    assert head["Upload-Offset"] == "0" and head["Upload-Length"] == str(len(TEXT))
    assert head["Cache-Control"] == "no-store"

    a, b = 10, 25
    for start, end in ((0, a), (a, b)):
        r = patch(owner_api, url, start, TEXT[start:end])
        assert r.status_code == 204, r.content
        assert r["Upload-Offset"] == str(end)
        assert "Statelab-Job" not in r
    assert owner_api.head(url, **TUS)["Upload-Offset"] == str(b)
    r = patch(owner_api, url, b, TEXT[b:])
    assert r.status_code == 204
    job_id = r["Statelab-Job"]

    status = owner_api.get(url).json()
    assert status["state"] == "done" and status["offset"] == status["length"] == len(TEXT)
    assert status["job"]["id"] == job_id and status["job"]["kind"] == "corpus_upload"
    job = Job.objects.get(id=job_id)
    assert job.status == "succeeded", job.error
    corpus = Corpus.objects.get(id=job.result["corpus"])
    assert corpus.name == "pets" and corpus.length == 12
    upload = Upload.objects.get(id=job.params["upload"])
    assert upload.kind == "text" and upload.original_name == "pets.txt"
    assert upload.sha256 == hashlib.sha256(TEXT).hexdigest()
    assert upload.path == ""  # consumed by its job, as a small upload's
    assert partials() == []


def test_lstmvis_zip_imports(owner_api, project, tmp_path):
    data = B.zip_dir(B.build_lstmvis_project(tmp_path / "src", n=120, d=6))
    url = create(owner_api, len(data), kind="import", filename="proj.zip")["Location"]
    half = len(data) // 2
    assert patch(owner_api, url, 0, data[:half]).status_code == 204
    r = patch(owner_api, url, half, data[half:])
    assert r.status_code == 204
    job = Job.objects.get(id=r["Statelab-Job"])
    assert job.kind == "import_lstmvis" and job.status == "succeeded", job.error
    assert StateSet.objects.filter(id=job.result["stateset"]).exists()


def test_wrong_offset_gets_409_and_nothing_is_written(owner_api, project):
    url = create(owner_api, len(TEXT))["Location"]
    assert patch(owner_api, url, 0, TEXT[:5]).status_code == 204
    r = patch(owner_api, url, 3, TEXT[3:9])
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "offset_mismatch"
    assert r.json()["error"]["details"]["offset"] == 5
    assert owner_api.head(url, **TUS)["Upload-Offset"] == "5"


def test_wrong_version_gets_412(owner_api, project):
    r = owner_api.post(
        "/api/projects/brackets/uploads/",
        HTTP_UPLOAD_LENGTH="5",
        HTTP_UPLOAD_METADATA=meta(kind="corpus"),
        HTTP_TUS_RESUMABLE="0.2.2",
    )
    assert r.status_code == 412 and r["Tus-Version"] == "1.0.0"
    url = create(owner_api, 5)["Location"]
    r = owner_api.generic(
        "PATCH", url, b"abc", content_type="application/offset+octet-stream", HTTP_UPLOAD_OFFSET="0"
    )
    assert r.status_code == 412


def test_patch_needs_the_offset_media_type(owner_api, project):
    url = create(owner_api, 5)["Location"]
    r = owner_api.generic(
        "PATCH", url, b"abc", content_type="application/json", HTTP_UPLOAD_OFFSET="0", **TUS
    )
    assert r.status_code == 415


def test_body_past_the_length_is_refused(owner_api, project):
    url = create(owner_api, 5)["Location"]
    assert patch(owner_api, url, 0, b"abcdefgh").status_code == 413
    assert owner_api.head(url, **TUS)["Upload-Offset"] == "0"


def test_too_large_is_refused_before_any_byte(owner_api, project, settings):
    settings.STATELAB_UPLOAD_MAX_BYTES = 1000
    r = create(owner_api, 1001)
    assert r.status_code == 413
    err = r.json()["error"]
    assert err["code"] == "too_large" and "limit of 1,000 bytes" in err["message"]
    assert err["details"] == {"limit": "upload", "quota_bytes": 1000, "size_bytes": 1001}
    assert ResumableUpload.objects.count() == 0 and partials() == []


def test_over_quota_is_refused_before_any_byte(owner_api, project, settings):
    settings.STATELAB_USER_STORAGE_QUOTA_BYTES = 100
    r = create(owner_api, 101)
    assert r.status_code == 413
    err = r.json()["error"]
    assert err["code"] == "quota_exceeded" and "storage quota" in err["message"]
    assert err["details"]["quota_bytes"] == 100 and err["details"]["used_bytes"] == 0
    assert ResumableUpload.objects.count() == 0 and partials() == []


def test_an_arriving_upload_holds_its_declared_length(owner_api, project, settings):
    settings.STATELAB_USER_STORAGE_QUOTA_BYTES = 100
    assert create(owner_api, 60).status_code == 201
    r = create(owner_api, 60)
    assert r.status_code == 413
    assert r.json()["error"]["details"]["used_bytes"] == 60


@pytest.mark.parametrize(
    ("pairs", "code"),
    [
        ({"kind": "weights"}, "invalid_kind"),
        ({"kind": "corpus", "tokenization": "bytes"}, "invalid"),
        ({"kind": "model"}, "invalid"),
        ({"kind": "model", "vocab": "not-an-id"}, "invalid_metadata"),
    ],
)
def test_bad_metadata_is_refused_clearly(owner_api, project, pairs, code):
    r = create(owner_api, 10, **pairs)
    assert r.status_code == 400, r.content
    assert r.json()["error"]["code"] == code
    assert ResumableUpload.objects.count() == 0


def test_malformed_metadata_and_length(owner_api, project):
    r = owner_api.post(
        "/api/projects/brackets/uploads/",
        HTTP_UPLOAD_LENGTH="10",
        HTTP_UPLOAD_METADATA="kind !!notbase64",
        **TUS,
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_metadata"
    r = owner_api.post(
        "/api/projects/brackets/uploads/",
        HTTP_UPLOAD_LENGTH="-3",
        HTTP_UPLOAD_METADATA=meta(kind="corpus"),
        **TUS,
    )
    assert r.status_code == 400
    r = owner_api.post(
        "/api/projects/brackets/uploads/",
        HTTP_UPLOAD_DEFER_LENGTH="1",
        HTTP_UPLOAD_METADATA=meta(kind="corpus"),
        **TUS,
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "length_required"


def test_outsider_gets_404(owner_api, outsider_api, collaborator_api, project):
    assert create(outsider_api, 10).status_code == 404
    url = create(owner_api, len(TEXT))["Location"]
    for client in (outsider_api, collaborator_api):
        assert client.head(url, **TUS).status_code == 404
        assert client.get(url).status_code == 404
        assert patch(client, url, 0, TEXT).status_code == 404
        assert client.delete(url, **TUS).status_code == 404
    assert owner_api.head(url, **TUS)["Upload-Offset"] == "0"


def test_viewer_may_not_upload(collaborator_api, project):
    r = create(collaborator_api, 10)
    assert r.status_code == 403 and "editor" in r.json()["error"]["message"]


def test_anonymous_gets_401(api, owner_api, project):
    url = create(owner_api, 5)["Location"]
    assert create(api(), 5).status_code == 401
    assert patch(api(), url, 0, b"abcde").status_code == 401


def test_termination_removes_the_bytes(owner_api, project):
    url = create(owner_api, len(TEXT))["Location"]
    patch(owner_api, url, 0, TEXT[:7])
    assert len(partials()) == 1
    assert owner_api.delete(url, **TUS).status_code == 204
    assert partials() == [] and ResumableUpload.objects.count() == 0
    assert owner_api.head(url, **TUS).status_code == 404


def test_expired_uploads_are_swept(owner_api, project):
    url = create(owner_api, len(TEXT))["Location"]
    patch(owner_api, url, 0, TEXT[:7])
    ResumableUpload.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    # The sweep runs lazily when an upload is created, and on its own.
    assert create(owner_api, 3).status_code == 201
    assert ResumableUpload.objects.count() == 1 and len(partials()) == 1
    assert owner_api.head(url, **TUS).status_code == 404
    ResumableUpload.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert resumable_expire() == 1 and partials() == []


def test_checksum_good_is_kept_and_bad_is_dropped(owner_api, project):
    url = create(owner_api, len(TEXT))["Location"]

    def sha1(b: bytes) -> str:
        digest = hashlib.sha1(b).digest()  # noqa: S324 (the protocol's algorithm)
        return "sha1 " + base64.b64encode(digest).decode()

    r = patch(owner_api, url, 0, TEXT[:8], HTTP_UPLOAD_CHECKSUM=sha1(TEXT[:8]))
    assert r.status_code == 204 and r["Upload-Offset"] == "8"
    r = patch(owner_api, url, 8, TEXT[8:16], HTTP_UPLOAD_CHECKSUM=sha1(b"something else"))
    assert r.status_code == 460
    assert owner_api.head(url, **TUS)["Upload-Offset"] == "8"
    r = patch(owner_api, url, 8, TEXT[8:], HTTP_UPLOAD_CHECKSUM="md5 AAAA")
    assert r.status_code == 400
    assert store_path(ResumableUpload.objects.get().path).read_bytes() == TEXT[:8]


def test_model_from_three_uploads(owner_api, project):
    from tests.support.lm import safetensors_bytes, tiny_model, vocab_bytes

    config = (
        b'{"rnn_type": "LSTM", "vocab_size": 6, "embedding_size": 5, "hidden_size": 7, "layers": 2}'
    )
    parts = {}
    vocab = vocab_bytes(["a", "b", "c", "d", "e", "f"])
    for kind, name, data in (
        ("model_vocab", "vocab.json", vocab),
        ("model_config", "c.json", config),
    ):
        url = create(owner_api, len(data), kind=kind, filename=name)["Location"]
        r = patch(owner_api, url, 0, data)
        assert r.status_code == 204 and "Statelab-Job" not in r
        parts[kind] = url.rstrip("/").rsplit("/", 1)[1]
    weights = safetensors_bytes(tiny_model(layers=2, embedding_size=5, hidden_size=7))
    r = create(
        owner_api,
        len(weights),
        kind="model",
        filename="tiny.safetensors",
        vocab=parts["model_vocab"],
        config=parts["model_config"],
        name="tiny",
    )
    assert r.status_code == 201, r.content
    r = patch(owner_api, r["Location"], 0, weights)
    assert r.status_code == 204, r.content
    job = Job.objects.get(id=r["Statelab-Job"])
    assert job.kind == "model_upload" and job.status == "succeeded", job.error
    assert job.params["name"] == "tiny"
    assert sorted(Upload.objects.values_list("kind", "path")) == [
        ("model_config", ""),
        ("model_vocab", ""),
        ("model_weights", ""),
    ]
