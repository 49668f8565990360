"""Extraction jobs: a model run over a corpus becomes a state set whose every value a
plain forward pass from the zero state at each stream start reproduces."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from backend.core.storage import store_path
from backend.jobs.models import Job
from backend.states.models import StateSet
from tests.support.lm import (
    corpus_create,
    reference_states,
    safetensors_bytes,
    tiny_model,
    vocab_bytes,
    write_files,
)

pytestmark = pytest.mark.django_db(transaction=True)

VOCAB = ["(", ")", "a", "b", "\n"]
N = 150


@pytest.fixture
def lm():
    return tiny_model(vocab_size=len(VOCAB), embedding_size=5, hidden_size=7, layers=2)


def _store_model(project, user, model, tmp_path, name="tiny"):
    from backend.artifacts.services import model_store_from_files

    paths = write_files(tmp_path / "upload", **{"w.safetensors": safetensors_bytes(model)})
    return model_store_from_files(
        project=project,
        user=user,
        weights=paths["w.safetensors"],
        vocab_bytes=vocab_bytes(VOCAB),
        vocab_filename="vocab.json",
        name=name,
    )


def _corpus(project, user, n=N, vocab=VOCAB, name="parens"):
    ids = np.random.default_rng(3).integers(0, len(vocab), size=n)
    return corpus_create(project, user, ids, vocab, name=name), ids


def _extract(api, slug="brackets", **body):
    return api.post(f"/api/projects/{slug}/extractions/", body, format="json")


def test_extracted_values_equal_a_reference_forward_pass(
    owner_api, owner, project, lm, tmp_path, _isolated_store
):
    model = _store_model(project, owner, lm, tmp_path)
    corpus, ids = _corpus(project, owner)
    r = _extract(
        owner_api, model=str(model.id), corpus=str(corpus.id), values=["h", "c"], topk=3,
        streams=3, name="tiny states",
    )  # fmt: skip
    assert r.status_code == 202, r.content
    assert r.json()["job"]["kind"] == "extract"
    job = owner_api.get(f"/api/jobs/{r.json()['job']['id']}/").json()
    assert job["status"] == "succeeded", job
    ss = StateSet.objects.get(id=job["result"]["stateset"])
    assert (ss.origin, ss.corpus_id, ss.name, ss.length) == (
        "extraction",
        corpus.id,
        "tiny states",
        N,
    )

    info = owner_api.get(f"/api/statesets/{ss.id}/").json()
    row = -(-N // 3)
    assert info["stream_starts"] == list(range(0, N, row)) == [0, 50, 100]
    assert info["corpus"] == str(corpus.id)
    sources = {(s["layer"], s["kind"]): s["id"] for s in info["sources"]}
    assert set(sources) == {(1, "h"), (1, "c"), (2, "h"), (2, "c")}

    want = reference_states(lm, ids, info["stream_starts"])
    for (layer, kind), source in sources.items():
        body = owner_api.get(
            f"/api/statesets/{ss.id}/context/",
            {"source": source, "start": 0, "end": N - 1, "transform": "none"},
        ).json()
        got = np.asarray(body["values"], dtype=np.float64).T  # (N, cells)
        np.testing.assert_allclose(got, want[(layer - 1, kind)], atol=1e-4, rtol=0)
        assert body["tokens"] == [VOCAB[i] for i in ids]
    # the state really is zero before each stream start: the first value of each
    # stream equals a one-step pass from zero, unlike the continued stream
    single = reference_states(lm, ids[50:51], [0])[(0, "h")][0]
    np.testing.assert_allclose(want[(0, "h")][50], single, atol=1e-12)

    # indexes were built before the row appeared; the working folder is gone
    from workers.core.indexes import index_status
    from workers.core.store import StateSet as Store

    status = index_status(Store.open(store_path(ss.path)))
    assert status["match"] and status["search"]
    assert not any((_isolated_store / "work").glob("*"))


def test_gru_with_the_default_values_skips_c(owner_api, owner, project, tmp_path):
    model = _store_model(
        project, owner, tiny_model(rnn_type="GRU", vocab_size=5, layers=1), tmp_path
    )
    corpus, _ = _corpus(project, owner, n=60)
    r = _extract(owner_api, model=str(model.id), corpus=str(corpus.id))
    job = owner_api.get(f"/api/jobs/{r.json()['job']['id']}/").json()
    assert job["status"] == "succeeded", job
    info = owner_api.get(f"/api/statesets/{job['result']['stateset']}/").json()
    assert [(s["layer"], s["kind"]) for s in info["sources"]] == [(1, "h")]
    assert info["stream_starts"] == [0]  # a short corpus is one stream


def test_stored_state_set_lists_predictions_and_surprisal(owner_api, owner, project, lm, tmp_path):
    model = _store_model(project, owner, lm, tmp_path)
    corpus, _ = _corpus(project, owner, n=80)
    r = _extract(owner_api, model=str(model.id), corpus=str(corpus.id), topk=2, values=["h"])
    job = owner_api.get(f"/api/jobs/{r.json()['job']['id']}/").json()
    info = owner_api.get(f"/api/statesets/{job['result']['stateset']}/").json()
    kinds = {a["name"]: a["kind"] for a in info["annotations"]}
    assert kinds.get("surprisal") == "scalar"
    assert any(k == "wordvec" for k in kinds.values())


def test_model_and_corpus_must_be_in_the_project(owner_api, owner, project, lm, tmp_path):
    from backend.projects.services import project_create

    other = project_create(user=owner, name="Other", slug="other")
    here_model = _store_model(project, owner, lm, tmp_path / "a")
    there_model = _store_model(other, owner, lm, tmp_path / "b")
    here_corpus, _ = _corpus(project, owner)
    there_corpus, _ = _corpus(other, owner)
    for model, corpus, what in (
        (here_model, there_corpus, "corpus"),
        (there_model, here_corpus, "model"),
    ):
        r = _extract(owner_api, model=str(model.id), corpus=str(corpus.id))
        assert r.status_code == 400, r.content
        assert r.json()["error"]["code"] == f"unknown_{what}"
        assert f"There is no {what} with id" in r.json()["error"]["message"]
        assert "in project 'brackets'" in r.json()["error"]["message"]
    r = _extract(owner_api, model="not-an-id", corpus=str(here_corpus.id))
    assert r.status_code == 400
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"values": ["c"], "gru": True}, "GRU"),
        ({"values": ["q"]}, "values"),
        ({"topk": 6}, "topk"),  # above the vocabulary size
        ({"topk": -1}, "topk"),
        ({"streams": 0}, "streams"),
    ],
)
def test_bad_extraction_parameters_are_400s(owner_api, owner, project, tmp_path, body, message):
    gru = body.pop("gru", False)
    lm = tiny_model(rnn_type="GRU" if gru else "LSTM", vocab_size=5, layers=1)
    model = _store_model(project, owner, lm, tmp_path)
    corpus, _ = _corpus(project, owner)
    r = _extract(owner_api, model=str(model.id), corpus=str(corpus.id), **body)
    assert r.status_code == 400, r.content
    assert message in r.json()["error"]["message"]
    assert not Job.objects.exists()


def test_viewer_cannot_extract(collaborator_api, owner, project, lm, tmp_path):
    model = _store_model(project, owner, lm, tmp_path)
    corpus, _ = _corpus(project, owner)
    r = _extract(collaborator_api, model=str(model.id), corpus=str(corpus.id))
    assert r.status_code == 403
    assert not Job.objects.exists()


def test_a_failed_extraction_leaves_nothing(
    owner_api, owner, project, lm, tmp_path, _isolated_store
):
    """A corpus with words the model does not know (and no <unk>) fails with the core's
    message; no state set, no folder, no working folder remain."""
    model = _store_model(project, owner, lm, tmp_path)
    corpus, _ = _corpus(project, owner, vocab=["(", ")", "zebra"], name="odd")
    r = _extract(owner_api, model=str(model.id), corpus=str(corpus.id))
    job = owner_api.get(f"/api/jobs/{r.json()['job']['id']}/").json()
    assert job["status"] == "failed" and "zebra" in job["error"], job
    assert not StateSet.objects.exists()
    assert [p.name for p in (_isolated_store / "statesets").glob("*")] == []
    assert [p.name for p in (_isolated_store / "work").glob("*")] == []


def test_model_uploaded_through_the_api_extracts_too(owner_api, owner, project, lm):
    r = owner_api.post(
        "/api/projects/brackets/models/",
        {
            "weights": SimpleUploadedFile("m.safetensors", safetensors_bytes(lm)),
            "vocab": SimpleUploadedFile("vocab.json", vocab_bytes(VOCAB)),
        },
        format="multipart",
    )
    assert r.status_code == 202, r.content
    upload = owner_api.get(f"/api/jobs/{r.json()['job']['id']}/").json()
    assert upload["status"] == "succeeded", upload
    corpus, _ = _corpus(project, owner, n=40)
    r = _extract(
        owner_api, model=upload["result"]["model"], corpus=str(corpus.id), values=["gates"]
    )
    job = owner_api.get(f"/api/jobs/{r.json()['job']['id']}/").json()
    assert job["status"] == "succeeded", job
    info = owner_api.get(f"/api/statesets/{job['result']['stateset']}/").json()
    assert {s["kind"] for s in info["sources"]} == {"gate_i", "gate_f", "gate_g", "gate_o"}


def test_a_killed_attempt_leaves_its_work_for_the_next(
    owner, project, lm, tmp_path, _isolated_store
):
    """A worker that dies mid-extraction (no exception handler of ours runs) keeps the
    job's working folder; the attempt that takes the job over works in the same
    folder, finishes, and removes it."""
    from datetime import timedelta

    from django.utils import timezone

    from backend.jobs.runner import run_job
    from backend.states.services import extraction_params_check, extraction_run

    model = _store_model(project, owner, lm, tmp_path)
    corpus, ids = _corpus(project, owner, n=400)
    params = extraction_params_check(
        rnn_type="LSTM", vocab_size=5, values=["h", "c"], topk=2, surprisal=True, streams=4
    )
    job = Job.objects.create(  # queued, as a broker would hold it
        kind="extract",
        project=project,
        created_by=owner,
        params={"model": str(model.id), "corpus": str(corpus.id), "name": "x", "extract": params},
    )
    work = _isolated_store / "work" / f"extract-{job.id.hex}"

    class WorkerDied(BaseException):
        pass

    def dies(job, progress):
        def report(fraction, message):
            progress(fraction, message)
            if message.startswith("Extracted "):
                raise WorkerDied  # like SIGKILL: nothing of ours catches it

        return extraction_run(job, report)

    with pytest.raises(WorkerDied):
        run_job(str(job.id), dies, worker="first")
    job.refresh_from_db()
    assert job.status == "running" and job.attempts == 1
    assert work.is_dir()  # kept for the next attempt
    assert not StateSet.objects.exists()

    Job.objects.filter(id=job.id).update(lease_until=timezone.now() - timedelta(seconds=1))
    run_job(str(job.id), extraction_run, worker="second")
    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    assert job.attempts == 2 and job.worker == "second"
    assert not work.exists()
    ss = StateSet.objects.get(id=job.result["stateset"])
    from backend.states.selectors import stateset_store

    store = stateset_store(ss)
    want = reference_states(lm, ids, ss.manifest["stream_starts"])
    np.testing.assert_allclose(np.asarray(store.values("l2_c")), want[(1, "c")], atol=1e-4)


def test_worker_start_sweeps_working_folders_of_finished_jobs(owner, project, _isolated_store):
    from backend.core.storage import work_dir
    from backend.jobs.services import store_sweep

    running = Job.objects.create(
        kind="extract", project=project, created_by=owner, status="running"
    )
    failed = Job.objects.create(kind="extract", project=project, created_by=owner, status="failed")
    keep, drop = work_dir("extract", running.id), work_dir("extract", failed.id)
    (keep / "checkpoint.npz").write_bytes(b"x")
    (drop / "checkpoint.npz").write_bytes(b"x")
    gone = _isolated_store / "work" / "extract-0123456789abcdef0123456789abcdef"
    gone.mkdir()  # a job that no longer exists
    store_sweep()
    assert keep.is_dir() and not drop.exists() and not gone.exists()


def test_the_default_name_does_not_repeat_the_corpus(owner_api, owner, project, lm, tmp_path):
    """A model trained here is called "<type> on <corpus>"; its extraction over the same
    corpus keeps that name instead of "LSTM on parens on parens"."""
    corpus, _ = _corpus(project, owner, n=60)
    names = {}
    for model_name in ("tiny", "LSTM on parens"):
        model = _store_model(project, owner, lm, tmp_path / model_name, name=model_name)
        r = _extract(owner_api, model=str(model.id), corpus=str(corpus.id), values=["h"])
        job = owner_api.get(f"/api/jobs/{r.json()['job']['id']}/").json()
        names[model_name] = StateSet.objects.get(id=job["result"]["stateset"]).name
    assert names == {"tiny": "tiny on parens", "LSTM on parens": "LSTM on parens"}


def test_a_float16_store_is_half_the_bytes_and_reads_everywhere(
    owner_api, owner, project, lm, tmp_path
):
    """`dtype: float16` stores every source as float16; the viewer's windows (JSON and
    packed float32), matches, exports and LSTMVis' API read it like the float32 array
    of the same values, and those values are the float32 extraction's, rounded."""
    import csv
    import io

    from tests.support.match_oracle import oracle
    from workers.core.store import StateSet as Store

    model = _store_model(project, owner, lm, tmp_path)
    corpus, ids = _corpus(project, owner)
    stores = {}
    for dtype in ("float32", "float16"):
        r = _extract(
            owner_api, model=str(model.id), corpus=str(corpus.id), values=["h", "c"],
            streams=3, dtype=dtype, name=dtype,
        )  # fmt: skip
        assert r.status_code == 202, r.content
        job = owner_api.get(f"/api/jobs/{r.json()['job']['id']}/").json()
        assert job["status"] == "succeeded", job
        stores[dtype] = StateSet.objects.get(id=job["result"]["stateset"])
    ss = stores["float16"]
    info = owner_api.get(f"/api/statesets/{ss.id}/").json()
    assert {s["dtype"] for s in info["sources"]} == {"float16"}
    assert {s["dtype"] for s in owner_api.get(f"/api/statesets/{stores['float32'].id}/").json()[
        "sources"
    ]} == {"float32"}  # fmt: skip
    f16, f32 = (Store.open(store_path(stores[k].path)) for k in ("float16", "float32"))
    for sid in f16.source_ids:
        a = np.asarray(f16.values(sid))
        assert a.dtype == np.float16
        np.testing.assert_array_equal(a, np.asarray(f32.values(sid)).astype(np.float16))
        s16, s32 = ((s.path / "sources" / f"{sid}.npy").stat().st_size - 128 for s in (f16, f32))
        assert s16 * 2 == s32
    assert ss.size_bytes < stores["float32"].size_bytes

    raw = np.asarray(f16.values("l1_c")).astype(np.float32)  # (N, 7)
    want = reference_states(lm, ids, info["stream_starts"])[(0, "c")]
    url = f"/api/statesets/{ss.id}/context/"
    q = {"source": "l1_c", "start": 0, "end": N - 1, "transform": "none"}
    got = np.asarray(owner_api.get(url, q).json()["values"], dtype=np.float64).T
    np.testing.assert_allclose(got, raw, atol=6e-6, rtol=0)  # 5 digits of the stored values
    # No visible difference from the float32 values: within float16's rounding.
    assert np.all(np.abs(got - want) <= 2.0**-11 * np.abs(want) + 1e-4)
    packed = owner_api.get(url, {**q, "values": "f32"})
    assert packed.status_code == 200
    body = packed.content
    n = int.from_bytes(body[:4], "little")
    values = np.frombuffer(body[4 + n :], dtype="<f4").reshape(7, N)
    np.testing.assert_allclose(values.T, raw, atol=6e-6, rtol=0)

    # A match: the oracle on the float32 array of the stored values (index and exact checks).
    r = owner_api.post(
        f"/api/statesets/{ss.id}/matches/",
        {"source": "l1_c", "cells": [0, 1, 2], "threshold": 0.3},
        format="json",
    )
    assert r.status_code == 200, r.content[:300]
    answer = r.json()
    expected = oracle(raw, [0, 1, 2], 0.3, "tanh", zero_left=1, zero_right=0)
    got_hits = [(h["position"], h["length"], h["intersection"], h["union"]) for h in answer["hits"]]
    assert got_hits == expected.hits and answer["exact"] is True

    # An export (CSV): the stored values through tanh.
    r = owner_api.get(
        f"/api/statesets/{ss.id}/export/?source=l1_c&start=0&end={N - 1}&cells=0,6&format=csv"
    )
    assert r.status_code == 200
    text = b"".join(r.streaming_content).decode()
    rows = [row for row in csv.reader(io.StringIO(text)) if row and not row[0].startswith("#")]
    exported = np.array([[float(v) for v in row[2:]] for row in rows[1:]])
    np.testing.assert_allclose(exported, np.tanh(raw[:, [0, 6]]), rtol=1e-6, atol=1e-7)

    # LSTMVis' API: the newest state set of the project is the float16 one.
    r = owner_api.get(
        "/api/v2/context",
        {"project": "brackets", "source": "l1_c", "pos": "20", "left": 2, "right": 3,
         "dims": "states", "cells": "0,1"},
    )  # fmt: skip
    assert r.status_code == 200, r.content
    data = np.array(r.json()["results"]["states"][0]["data"])
    np.testing.assert_allclose(data, np.round(np.tanh(raw[18:24][:, [0, 1]]).T, 5), atol=1e-5)
    r = owner_api.get(
        "/api/v2/match",
        {"project": "brackets", "source": "l1_c", "cells": "0,1,2", "activation": "0.3"},
    )
    assert r.status_code == 200, r.content
    ranking = r.json()["results"]["rankingDetail"]
    assert [item["pos"] for item in ranking] == [h[0] for h in expected.hits][: len(ranking)]


def test_an_unknown_store_dtype_is_a_400(owner_api, owner, project, lm, tmp_path):
    model = _store_model(project, owner, lm, tmp_path)
    corpus, _ = _corpus(project, owner)
    r = _extract(owner_api, model=str(model.id), corpus=str(corpus.id), dtype="float64")
    assert r.status_code == 400, r.content
    assert "dtype must be float32 or float16 (half the disk)" in r.json()["error"]["message"]
    assert not Job.objects.exists()
