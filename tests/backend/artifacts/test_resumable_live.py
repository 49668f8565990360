"""Resumable uploads over a real socket to a real web process (gunicorn), with the
stock tus client (`tuspy`, import name `tusclient`): a whole upload, a client that
drops its connection half-way through a PATCH and resumes, and a web process killed
mid-upload and started again. What arrives is byte-identical to what was sent, and
no more than one chunk is ever sent twice."""

import hashlib
import io
import socket
import time

import pytest
import requests
from rest_framework.authtoken.models import Token
from tusclient.client import TusClient

from backend.artifacts.models import Corpus, ResumableUpload, Upload
from backend.core.storage import store_path
from backend.jobs.models import Job
from backend.states.models import StateSet
from tests.support import lstmvis_builder as B
from tests.support.texts import word_text
from tests.support.web import WebProcess

pytestmark = pytest.mark.django_db(transaction=True)

CHUNK = 1 << 20
WORDS = [b"the", b"cat", b"sat", b"on", b"a", b"mat", b"(", b")", b"\n"]


@pytest.fixture
def web(_isolated_store, tmp_path):
    process = WebProcess(store=_isolated_store, logs=tmp_path / "logs").start()
    yield process
    process.stop()


@pytest.fixture
def token(owner):
    return Token.objects.get_or_create(user=owner)[0].key


def _text(size: int) -> bytes:
    return word_text(size, WORDS, a=7, b=5)


def _client(web, token) -> TusClient:
    return TusClient(
        f"{web.url}/api/projects/brackets/uploads/", headers={"Authorization": f"Token {token}"}
    )


def _drop_mid_patch(web, token, url: str, offset: int, data: bytes, declared: int) -> int:
    """PATCH declaring `declared` bytes, send only `data`, and close the connection.
    Returns the bytes sent."""
    head = (
        f"PATCH {url} HTTP/1.1\r\nHost: 127.0.0.1:{web.port}\r\n"
        f"Authorization: Token {token}\r\nTus-Resumable: 1.0.0\r\n"
        f"Content-Type: application/offset+octet-stream\r\nUpload-Offset: {offset}\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", web.port)) as s:
        s.sendall(head + data)
        s.shutdown(socket.SHUT_RDWR)
    return len(data)


def _offset(web, token, url: str) -> int:
    r = requests.head(
        f"{web.url}{url}",
        headers={"Authorization": f"Token {token}", "Tus-Resumable": "1.0.0"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return int(r.headers["Upload-Offset"])


def _wait_for(predicate, what: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_stock_tus_client_uploads_a_corpus(web, token, project):
    text = _text(3 * CHUNK + 12345)
    uploader = _client(web, token).uploader(
        file_stream=io.BytesIO(text),
        chunk_size=CHUNK,
        metadata={"kind": "corpus", "filename": "big.txt", "tokenization": "word"},
    )
    uploader.upload()
    job_id = uploader.request.response_headers["statelab-job"]
    status = requests.get(uploader.url, headers={"Authorization": f"Token {token}"}, timeout=30)
    status = status.json()
    assert status["state"] == "done" and status["job"]["id"] == job_id
    job = Job.objects.get(id=job_id)
    assert job.status == "succeeded", job.error
    assert Corpus.objects.get(id=job.result["corpus"]).name == "big"
    upload = Upload.objects.get(id=job.params["upload"])
    assert upload.sha256 == hashlib.sha256(text).hexdigest() and upload.size == len(text)


def test_dropped_connection_resumes_with_the_stock_client(web, token, project, tmp_path):
    data = B.zip_dir(B.build_lstmvis_project(tmp_path / "src", n=30_000, d=16))
    assert len(data) > 3 * CHUNK
    uploader = _client(web, token).uploader(
        file_stream=io.BytesIO(data), chunk_size=CHUNK, metadata={"kind": "import"}
    )
    uploader.upload(stop_at=CHUNK)  # one whole chunk the ordinary way
    url = uploader.url.replace(web.url, "")
    assert _offset(web, token, url) == CHUNK

    half = CHUNK // 2 + 1234
    sent = _drop_mid_patch(web, token, url, CHUNK, data[CHUNK : CHUNK + half], declared=CHUNK)
    # The server keeps every byte that arrived and records the offset once it sees the end.
    _wait_for(lambda: _offset(web, token, url) == CHUNK + half, "the kept bytes are recorded")

    resumed = _client(web, token).uploader(
        file_stream=io.BytesIO(data), url=uploader.url, chunk_size=CHUNK
    )
    assert resumed.offset == CHUNK + half
    sent += CHUNK + len(data) - resumed.offset  # the first chunk and what the resume sends
    resumed.upload()
    assert 0 <= sent - len(data) <= CHUNK  # bytes sent twice

    row = ResumableUpload.objects.get(id=url.rstrip("/").rsplit("/", 1)[1])
    job = Job.objects.get(id=resumed.request.response_headers["statelab-job"])
    assert row.job_id == job.id and row.state == "done"
    assert job.status == "succeeded", job.error
    upload = Upload.objects.get(id=job.params["upload"])
    assert upload.sha256 == hashlib.sha256(data).hexdigest()
    assert StateSet.objects.get(id=job.result["stateset"]).length == 30_000


def test_web_process_killed_mid_upload_resumes_after_restart(web, token, project):
    text = _text(5 * CHUNK + 777)
    uploader = _client(web, token).uploader(
        file_stream=io.BytesIO(text),
        chunk_size=2 * CHUNK,
        metadata={"kind": "corpus", "filename": "restart.txt", "tokenization": "char"},
    )
    uploader.upload(stop_at=2 * CHUNK)
    url = uploader.url.replace(web.url, "")
    row = ResumableUpload.objects.get(id=url.rstrip("/").rsplit("/", 1)[1])
    partial = store_path(row.path)

    # A PATCH is under way (1.5 of its 2 MiB sent) when the web process dies.
    with socket.create_connection(("127.0.0.1", web.port)) as s:
        s.sendall(
            (
                f"PATCH {url} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Token {token}\r\n"
                "Tus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\n"
                f"Upload-Offset: {2 * CHUNK}\r\nContent-Length: {2 * CHUNK}\r\n\r\n"
            ).encode()
            + text[2 * CHUNK : 2 * CHUNK + CHUNK + CHUNK // 2]
        )
        _wait_for(lambda: partial.stat().st_size >= 3 * CHUNK, "the server wrote a piece")
        web.kill()
    row.refresh_from_db()
    assert row.offset == 2 * CHUNK  # the dead process could not record its last piece

    web.start()
    resumed = _client(web, token).uploader(
        file_stream=io.BytesIO(text), url=uploader.url, chunk_size=2 * CHUNK
    )
    # What the killed process wrote is kept: at most the unread rest of its piece is resent.
    assert 3 * CHUNK <= resumed.offset <= 2 * CHUNK + CHUNK + CHUNK // 2
    resumed.upload()
    job = Job.objects.get(id=resumed.request.response_headers["statelab-job"])
    assert job.status == "succeeded", job.error
    upload = Upload.objects.get(id=job.params["upload"])
    assert upload.sha256 == hashlib.sha256(text).hexdigest()
    assert Corpus.objects.get(id=job.result["corpus"]).length == len(text)
