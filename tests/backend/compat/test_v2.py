"""The LSTMVis-compatible API answers as LSTMVis' server did, from an imported directory."""

import h5py
import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.support import lstmvis_builder as B

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def imported(owner_api, project, tmp_path):
    proj = B.build_lstmvis_project(tmp_path / "src", n=120, d=6)
    r = owner_api.post(
        "/api/projects/brackets/imports/",
        {"file": SimpleUploadedFile("p.zip", B.zip_dir(proj))},
        format="multipart",
    )
    job = owner_api.get(f"/api/jobs/{r.json()['job']['id']}/").json()
    assert job["status"] == "succeeded", job
    return proj


def test_info_gives_config_and_sizes(owner_api, imported):
    info = owner_api.get("/api/v2/info").json()
    assert [p["project"] for p in info] == ["brackets"]
    cfg = info[0]["info"]
    assert cfg["name"] == "children books"
    sizes = {t["path"]: t["size"] for t in cfg["states"]["types"]}
    assert sizes == {
        "states1": [120, 6],
        "states2": [120, 9],
        "states2u": [120, 6],
        "/group/output2": [120, 6],
    }
    assert cfg["word_sequence"]["size"] == [120]
    assert cfg["word_sequence"]["dict_size"] >= 20
    assert cfg["index"] is False and cfg["is_searchable"] is True


def test_context_numbers_and_words_match_the_hdf5(owner_api, imported):
    with h5py.File(imported / "states.hdf5") as f:
        raw = f["states1"][:]
        out2 = f["group/output2"][:]
    with h5py.File(imported / "train.hdf5") as f:
        word_ids = f["word_ids"][:]
    r = owner_api.get(
        "/api/v2/context?project=brackets&source=states::states1&pos=30,0"
        "&left=3&right=4&dims=states,words,cell_count&cells=1,2&activation=0.2"
    )
    assert r.status_code == 200, r.content
    res = r.json()["results"]
    s0, s1 = res["states"]
    assert (s0["pos"], s0["left"], s0["right"]) == (30, 27, 34)
    assert (s1["pos"], s1["left"], s1["right"]) == (0, 0, 4)  # clamped at the start
    expect = np.round(np.tanh(raw[27:35][:, [1, 2]]).T, 5)
    np.testing.assert_allclose(np.array(s0["data"]), expect, atol=1e-5)
    assert res["words"][0]["word_ids"] == word_ids[27:35].tolist()
    assert res["words"][0]["words"][0] != ""
    counts = (np.tanh(raw[27:35][:, [1, 2]]) >= 0.2).sum(axis=1).tolist()
    assert res["cell_count"][0] == counts
    assert res["cells"] == [1, 2]
    # transform: none is honoured for the output type
    r = owner_api.get(
        "/api/v2/context?project=brackets&source=states::/group/output2&pos=10"
        "&left=1&right=1&dims=states"
    )
    np.testing.assert_allclose(
        np.array(r.json()["results"]["states"][0]["data"]), np.round(out2[9:12].T, 5), atol=1e-5
    )


def test_context_bitmask_and_meta(owner_api, imported):
    r = owner_api.get(
        "/api/v2/context?project=brackets&source=states::states1&pos=5&left=0"
        "&right=2&bitmask=010001&dims=states,meta_part_of_speech,meta_surprise"
    )
    res = r.json()["results"]
    assert res["cells"] == [1, 5]
    assert len(res["states"][0]["data"]) == 2
    labels = res["meta_part_of_speech"][0]
    assert len(labels) == 3 and all(isinstance(x, str) for x in labels)
    assert len(res["meta_surprise"][0]) == 3


def test_errors_keep_lstmvis_status_codes(owner_api, outsider_api, imported):
    r = owner_api.get("/api/v2/context?project=nope&source=states::states1&pos=1")
    assert r.status_code == 404 and r.json()["error"]["message"] == "No such project"
    r = owner_api.get("/api/v2/context?project=brackets&source=states::nope&pos=1")
    assert r.status_code == 404 and r.json()["error"]["message"] == "No valid source"
    r = outsider_api.get("/api/v2/context?project=brackets&source=states::states1&pos=1")
    assert r.status_code == 404
    assert outsider_api.get("/api/v2/info").json() == []
    r = owner_api.get("/api/v2/context?project=brackets&source=states::states1&pos=9999")
    assert r.status_code == 400 and "outside" in r.json()["error"]["message"]


def test_search_finds_phrases(owner_api, imported):
    with h5py.File(imported / "train.hdf5") as f:
        word_ids = f["word_ids"][:]
    space_id = B.SPACE_ID
    p = next(i for i in range(10, 100) if space_id not in (word_ids[i], word_ids[i + 1]))
    desc = owner_api.get(f"/api/v2/context?project=brackets&pos={p}&left=0&right=1&dims=words")
    w0, w1 = desc.json()["results"]["words"][0]["words"]
    r = owner_api.get("/api/v2/search", {"project": "brackets", "q": f"{w0} {w1}", "html": "true"})
    assert r.status_code == 200
    res = r.json()["res"]
    assert p in [x["index"] for x in res]
    hit = next(x for x in res if x["index"] == p)
    assert "<b>" in hit["text"]
    expected = [
        i
        for i in range(len(word_ids) - 1)
        if word_ids[i] == word_ids[p] and word_ids[i + 1] == word_ids[p + 1]
    ]
    assert [x["index"] for x in res] == expected


def test_context_refuses_a_request_too_large_to_answer(owner_api, imported, monkeypatch):
    monkeypatch.setattr("backend.compat.selectors.MAX_V2_VALUES", 100_000)
    pos = ",".join(str(i) for i in range(0, 120, 1))
    r = owner_api.get(
        f"/api/v2/context?project=brackets&source=states::states1&pos={pos}"
        "&left=1000&right=1000&dims=states"
    )
    assert r.status_code == 400
    assert "at most" in r.json()["error"]["message"]
