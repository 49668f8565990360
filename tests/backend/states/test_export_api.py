"""GET /api/statesets/{id}/export/: a slice of states as CSV, .npz or HDF5, equal to the
store's values, pinned to its state set; viewers may export, outsiders see nothing;
bad parameters answer 400 saying which; npz and HDF5 leave no temporary file."""

from __future__ import annotations

import csv
import io
import json

import h5py
import numpy as np
import pytest

from backend.core.storage import store_root

pytestmark = pytest.mark.django_db


def _url(ss, **params):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"/api/statesets/{ss.id}/export/?{query}"


def _body(response) -> bytes:
    data = b"".join(response.streaming_content)
    response.close()
    return data


def _expected(values, start, end, cells):
    return np.tanh(values[start : end + 1][:, cells])


def _tmp_files():
    tmp = store_root() / "tmp"
    return sorted(p.name for p in tmp.iterdir()) if tmp.is_dir() else []


def test_csv_export_streams_the_values_with_their_pinning(owner_api, stateset):
    ss, values, ids, vocab = stateset
    r = owner_api.get(_url(ss, source="s0", start=20, end=79, cells="3,1,7", format="csv"))
    assert r.status_code == 200, r.content[:300]
    assert r.streaming and r["Content-Type"].startswith("text/csv")
    assert r["Content-Disposition"] == 'attachment; filename="synthetic_s0_20-79.csv"'
    text = _body(r).decode()
    comments = [line for line in text.splitlines() if line.startswith("# ")]
    rows = list(csv.reader(io.StringIO(text[text.index("position,") :])))
    assert rows[0] == ["position", "token", "c3", "c1", "c7"]
    assert [int(row[0]) for row in rows[1:]] == list(range(20, 80))
    assert [row[1] for row in rows[1:]] == [vocab[i] for i in ids[20:80]]
    got = np.array([[float(x) for x in row[2:]] for row in rows[1:]])
    np.testing.assert_allclose(got, _expected(values, 20, 79, [3, 1, 7]), rtol=1e-6)
    header = "\n".join(comments)
    for needle in (
        f"# stateset: {ss.id}",
        "# stateset_name: synthetic",
        "# project: brackets",
        "# source: s0",
        "# transform: tanh",
        "# start: 20",
        "# end: 79",
        "# cells: [3, 1, 7]",
    ):
        assert needle in header, needle


def test_npz_export_equals_the_store_and_leaves_no_file(owner_api, stateset):
    ss, values, ids, vocab = stateset
    r = owner_api.get(_url(ss, source="s0", start=0, end=299, format="npz", transform="none"))
    assert r.status_code == 200, r.content[:300]
    assert r["Content-Disposition"] == 'attachment; filename="synthetic_s0_0-299.npz"'
    assert int(r["Content-Length"]) > values.nbytes
    assert _tmp_files() == []  # unlinked already: the open handle is all that is left
    with np.load(io.BytesIO(_body(r)), allow_pickle=False) as f:
        np.testing.assert_allclose(f["values"], values)
        assert f["positions"].tolist() == list(range(300))
        assert f["tokens"].tolist() == [vocab[i] for i in ids]
        assert f["cells"].tolist() == list(range(16))
        meta = json.loads(str(f["meta"]))
    assert meta["stateset"] == str(ss.id) and meta["stateset_name"] == "synthetic"
    assert (meta["source"], meta["transform"], meta["start"], meta["end"]) == ("s0", "none", 0, 299)


def test_hdf5_export_equals_the_store(collaborator_api, stateset, tmp_path):
    ss, values, ids, vocab = stateset
    r = collaborator_api.get(_url(ss, source="s0", start=100, end=149, cells="0,15", format="hdf5"))
    assert r.status_code == 200, r.content[:300]
    assert r["Content-Type"] == "application/x-hdf5"
    assert r["Content-Disposition"] == 'attachment; filename="synthetic_s0_100-149.h5"'
    path = tmp_path / "x.h5"
    path.write_bytes(_body(r))
    with h5py.File(path, "r") as f:
        np.testing.assert_allclose(f["values"][:], _expected(values, 100, 149, [0, 15]), rtol=1e-6)
        assert f["positions"][:].tolist() == list(range(100, 150))
        assert [t.decode() for t in f["tokens"][:]] == [vocab[i] for i in ids[100:150]]
        assert f["cells"][:].tolist() == [0, 15]
        assert f.attrs["stateset"] == str(ss.id) and f.attrs["stateset_name"] == "synthetic"
        assert (f.attrs["source"], f.attrs["transform"]) == ("s0", "tanh")
        assert (int(f.attrs["start"]), int(f.attrs["end"])) == (100, 149)
    assert _tmp_files() == []


def test_outsider_gets_404_and_anonymous_401(outsider_api, api, stateset):
    ss = stateset[0]
    for fmt in ("csv", "npz", "hdf5"):
        r = outsider_api.get(_url(ss, source="s0", start=0, end=9, format=fmt))
        assert r.status_code == 404 and "brackets" not in r.content.decode()
        assert api().get(_url(ss, source="s0", start=0, end=9, format=fmt)).status_code == 401


@pytest.mark.parametrize(
    ("params", "word"),
    [
        ({"source": "s0", "start": 0, "end": 9, "format": "xlsx"}, "format"),
        ({"start": 0, "end": 9}, "source"),
        ({"source": "s9", "start": 0, "end": 9}, "s9"),
        ({"source": "s0", "end": 9}, "start"),
        ({"source": "s0", "start": 0, "end": "x"}, "end"),
        ({"source": "s0", "start": 10, "end": 5}, "range"),
        ({"source": "s0", "start": 0, "end": 300}, "range"),
        ({"source": "s0", "start": 0, "end": 9, "cells": "1,a"}, "cells"),
        ({"source": "s0", "start": 0, "end": 9, "cells": "16"}, "cell 16"),
        ({"source": "s0", "start": 0, "end": 9, "transform": "relu"}, "transform"),
    ],
)
def test_bad_parameters_answer_400_saying_which(owner_api, stateset, params, word):
    r = owner_api.get(_url(stateset[0], **params))
    assert r.status_code == 400, r.content[:300]
    assert r["Content-Type"] == "application/json"
    assert word in r.json()["error"]["message"]


def test_too_large_an_export_is_refused(owner_api, stateset, settings):
    settings.STATELAB_EXPORT_MAX_VALUES = 100
    ss = stateset[0]
    r = owner_api.get(_url(ss, source="s0", start=0, end=9, format="npz"))
    assert r.status_code == 400 and r.json()["error"]["code"] == "too_large"
    assert "160" in r.json()["error"]["message"]  # 10 tokens x 16 cells
    assert owner_api.get(_url(ss, source="s0", start=0, end=9, cells="1,2")).status_code == 200
    assert _tmp_files() == []


def test_an_accept_header_for_the_file_type_is_not_refused(owner_api, stateset):
    r = owner_api.get(
        _url(stateset[0], source="s0", start=0, end=3, format="npz"),
        HTTP_ACCEPT="application/octet-stream",
    )
    assert r.status_code == 200
    _body(r)


def test_leftovers_of_killed_writers_are_swept(owner_api, stateset):
    import os
    import time

    tmp = store_root() / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    old, fresh = tmp / ".tmp-export-old.npz", tmp / ".tmp-export-fresh.npz"
    old.write_bytes(b"x")
    fresh.write_bytes(b"x")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    r = owner_api.get(_url(stateset[0], source="s0", start=0, end=3, format="npz"))
    assert r.status_code == 200
    _body(r)
    assert _tmp_files() == [fresh.name]
