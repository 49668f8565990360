"""A researcher's whole path through the HTTP API, with a real worker process.

The text is real code no one in this project wrote: the source of the standard
library's ``json.decoder`` and ``json.encoder`` modules, uploaded as a character
corpus. A small (untrained) LSTM is uploaded with a vocabulary of the text's
characters and run over it; per-character tracks computed here with Python's own
``tokenize`` (``syntax``: ``string``, ``comment`` or ``code``; ``depth``: bracket
nesting, brackets inside strings and comments not counted) are uploaded as TSV and
as lines; cells are ranked against both; the top three of the ``string`` ranking
become a hypothesis, whose statistics against ``syntax = string`` must agree with
the tracks as computed here and with the states as exported.

Every job goes through the broker to a ``celery worker`` process (fixtures in
tests/backend/conftest.py). What is checked is behaviour, not what an untrained
model learned: the model's states are random features of the text.
"""

from __future__ import annotations

import csv
import inspect
import io
import json.decoder
import json.encoder
import math
import tokenize

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from scipy import stats

from tests.backend.test_openapi import check_against_schema
from tests.support.lm import safetensors_bytes, tiny_model, vocab_bytes
from tests.support.worker import job_wait_api

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SLUG = "brackets"
HIDDEN = 24
TOP = 3
THRESHOLD = 0.0
STRING_TOKENS = {tokenize.STRING} | {
    getattr(tokenize, name)
    for name in ("FSTRING_START", "FSTRING_MIDDLE", "FSTRING_END")
    if hasattr(tokenize, name)
}
OPENING, CLOSING = "([{", ")]}"


def _source_text() -> str:
    text = inspect.getsource(json.decoder) + inspect.getsource(json.encoder)
    assert 10_000 < len(text) < 40_000 and "\r" not in text
    return text


def _tracks(text: str) -> tuple[list[str], list[int]]:
    """Per character: its syntax label and its bracket depth (an opening or closing
    bracket counts as inside the pair it opens or closes)."""
    starts = [0]
    for line in io.StringIO(text):
        starts.append(starts[-1] + len(line))

    def offset(row_col: tuple[int, int]) -> int:
        row, col = row_col
        return starts[row - 1] + col if row - 1 < len(starts) else len(text)

    syntax = ["code"] * len(text)
    step = [0] * len(text)
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        a, b = offset(tok.start), offset(tok.end)
        if tok.type in STRING_TOKENS or tok.type == tokenize.COMMENT:
            label = "comment" if tok.type == tokenize.COMMENT else "string"
            syntax[a:b] = [label] * (b - a)
        elif tok.type == tokenize.OP and tok.string in OPENING + CLOSING:
            assert text[a] == tok.string
            step[a] = 1 if tok.string in OPENING else -1
    depth, d = [], 0
    for s in step:
        d += max(s, 0)
        depth.append(d)
        d += min(s, 0)
    assert d == 0 and min(depth) == 0
    return syntax, depth


def _tsv_token(ch: str) -> str:
    return {"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(ch, ch)


def _started(r) -> str:
    """The job id of a 202 answer."""
    assert r.status_code == 202, r.content
    return r.json()["job"]["id"]


def _succeeded(api, job_id: str, kind: str, seconds: float = 60) -> dict:
    job = job_wait_api(api, job_id, seconds)
    assert job["kind"] == kind and job["status"] == "succeeded", job
    return job


def _csv_body(response) -> str:
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/csv")
    return b"".join(response.streaming_content).decode()


def _npz(response) -> dict:
    assert response.status_code == 200, response.content
    data = b"".join(response.streaming_content) if response.streaming else response.content
    with np.load(io.BytesIO(data)) as f:
        return {k: f[k] for k in f.files}


def _all_on_runs(on: np.ndarray, min_length: int) -> np.ndarray:
    """True where ``on`` holds within a maximal run of at least ``min_length``."""
    out = np.zeros(on.size, dtype=bool)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], on.astype(np.int8), [0]])))
    for a, b in zip(edges[::2], edges[1::2], strict=True):
        if b - a >= min_length:
            out[a:b] = True
    return out


def test_a_researcher_ranks_cells_of_real_code_and_tests_a_hypothesis(worker, owner_api, project):
    api = owner_api
    spec = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    text = _source_text()
    n = len(text)
    syntax, depth = _tracks(text)
    is_string = np.array([s == "string" for s in syntax])
    assert {"string", "comment", "code"} == set(syntax)

    # 1. The code as a character corpus.
    r = api.post(
        f"/api/projects/{SLUG}/corpora/",
        {
            "file": SimpleUploadedFile("json_source.py", text.encode()),
            "tokenization": "char",
            "name": "json package source",
        },
        format="multipart",
    )
    corpus_id = _succeeded(api, _started(r), "corpus_upload")["result"]["corpus"]
    corpus = api.get(f"/api/corpora/{corpus_id}/").json()
    assert (corpus["length"], corpus["vocab_size"]) == (n, len(set(text)))

    # 2. A model over the text's characters, run over the corpus.
    vocab = sorted(set(text))
    lm = tiny_model(vocab_size=len(vocab), embedding_size=8, hidden_size=HIDDEN, layers=1, seed=3)
    r = api.post(
        f"/api/projects/{SLUG}/models/",
        {
            "weights": SimpleUploadedFile("lm.safetensors", safetensors_bytes(lm)),
            "vocab": SimpleUploadedFile("vocab.json", vocab_bytes(vocab)),
            "name": "untrained char LSTM",
        },
        format="multipart",
    )
    model_id = _succeeded(api, _started(r), "model_upload")["result"]["model"]
    r = api.post(
        f"/api/projects/{SLUG}/extractions/",
        {"model": model_id, "corpus": corpus_id, "values": ["h", "c"], "topk": 2},
        format="json",
    )
    ss_id = _succeeded(api, _started(r), "extract")["result"]["stateset"]
    desc = api.get(f"/api/statesets/{ss_id}/").json()
    assert desc["length"] == n and desc["corpus"] == corpus_id
    source = next(s for s in desc["sources"] if (s["layer"], s["kind"]) == (1, "c"))
    assert source["cells"] == HIDDEN
    window = api.get(
        f"/api/statesets/{ss_id}/context/", {"source": source["id"], "start": 0, "end": 499}
    ).json()
    assert "".join(window["tokens"]) == text[:500]

    # 3. Per-character tracks from `tokenize`: syntax as TSV, depth as lines.
    tsv = "".join(f"{_tsv_token(ch)}\t{label}\n" for ch, label in zip(text, syntax, strict=True))
    lines = "".join(f"{d}\n" for d in depth)
    for name, kind, fmt, body in (
        ("syntax", "discrete", "tsv", tsv),
        ("depth", "scalar", "lines", lines),
    ):
        r = api.post(
            f"/api/statesets/{ss_id}/annotations/",
            {
                "file": SimpleUploadedFile(f"{name}.txt", body.encode()),
                "name": name,
                "kind": kind,
                "format": fmt,
            },
            format="multipart",
        )
        job = _succeeded(api, _started(r), "annotation_upload")
        assert job["result"] == {"annotation": name}
    tracks = {a["name"]: a for a in api.get(f"/api/statesets/{ss_id}/").json()["annotations"]}
    assert tracks["syntax"] == {
        "name": "syntax",
        "kind": "discrete",
        "labels": ["code", "comment", "string"],
    }
    assert tracks["depth"]["kind"] == "scalar"
    assert tracks["depth"]["range"] == [0, max(depth)]
    # a window around a string in the middle, with both tracks as computed here
    a = syntax.index("string", n // 2) - 20
    b = a + 300
    window = api.get(
        f"/api/statesets/{ss_id}/context/", {"source": source["id"], "start": a, "end": b}
    ).json()
    assert "".join(window["tokens"]) == text[a : b + 1]
    assert window["annotations"]["syntax"] == syntax[a : b + 1]
    assert window["annotations"]["depth"] == depth[a : b + 1]

    # 4. Rankings: every cell, best first, against the states as exported.
    r = api.get(
        f"/api/statesets/{ss_id}/export/",
        {"source": source["id"], "start": 0, "end": n - 1, "format": "npz"},
    )
    exported = _npz(r)
    values = exported["values"].astype(np.float64)  # the source's transform, as ranked
    assert values.shape == (n, HIDDEN)
    assert list(exported["cells"]) == list(range(HIDDEN))

    rankings = {}
    for annotation, label in (("syntax", "string"), ("depth", None)):
        body = {"source": source["id"], "annotation": annotation}
        if label is not None:
            body["label"] = label
        r = api.post(f"/api/statesets/{ss_id}/rankings/", body, format="json")
        check_against_schema(spec, "/api/statesets/{stateset_id}/rankings/", "post", 202, r.json())
        ranking_id = _succeeded(api, _started(r), "ranking")["result"]["ranking"]
        got = api.get(f"/api/rankings/{ranking_id}/").json()
        check_against_schema(spec, "/api/rankings/{ranking_id}/", "get", 200, got)
        assert (got["annotation"], got["label"], got["n"]) == (annotation, label, n)
        assert sorted(c["cell"] for c in got["cells"]) == list(range(HIDDEN))
        again = api.post(f"/api/statesets/{ss_id}/rankings/", body, format="json")
        assert again.status_code == 200 and again.json()["id"] == ranking_id  # stored, reused
        rankings[annotation] = got

    string_ranking = rankings["syntax"]
    assert string_ranking["measure"] == "auroc"
    aurocs = [c["auroc"] for c in string_ranking["cells"]]
    assert aurocs == sorted(aurocs, reverse=True)  # no cell is constant here: no nulls
    bound = string_ranking["error_bound"]
    assert 0 <= bound <= 0.5
    for c in string_ranking["cells"]:
        u = stats.mannwhitneyu(values[is_string, c["cell"]], values[~is_string, c["cell"]])
        want = u.statistic / (is_string.sum() * (~is_string).sum())
        assert abs(c["auroc"] - want) <= bound + 1e-6, (c, want)

    depth_ranking = rankings["depth"]
    assert (depth_ranking["measure"], depth_ranking["error_bound"]) == ("pearson", None)
    pearsons = [abs(c["pearson"]) for c in depth_ranking["cells"]]
    assert pearsons == sorted(pearsons, reverse=True)
    for c in depth_ranking["cells"]:
        want = np.corrcoef(values[:, c["cell"]], np.asarray(depth, dtype=np.float64))[0, 1]
        assert c["pearson"] == pytest.approx(want, abs=1e-5)
        assert -1 <= c["spearman"] <= 1

    csv_text = _csv_body(api.get(f"/api/rankings/{string_ranking['id']}/export/?format=csv"))
    assert csv_text.startswith("# ranking ")
    rows = list(csv.DictReader(io.StringIO(csv_text.split("\n", 1)[1])))
    assert [int(row["cell"]) for row in rows] == [c["cell"] for c in string_ranking["cells"]]

    # 5. A hypothesis of the top cells of the `string` ranking.
    rising = [c["cell"] for c in string_ranking["cells"] if c["auroc"] > 0.5][:TOP]
    assert len(rising) == TOP  # a fixed seed; a random LSTM has cells on both sides
    r = api.post(
        "/api/hypotheses/",
        {"ranking": string_ranking["id"], "top": TOP, "threshold": THRESHOLD},
        format="json",
    )
    assert r.status_code == 201, r.content
    check_against_schema(spec, "/api/hypotheses/", "post", 201, r.json())
    created = r.json()
    hyp_id = created["id"]
    if created["match_result"]["status"] != "succeeded":  # longer than the route waits
        _succeeded(api, created["match_result"]["job"], "match")
    opened = api.get(f"/api/hypotheses/{hyp_id}/").json()
    check_against_schema(spec, "/api/hypotheses/{hypothesis_id}/", "get", 200, opened)
    assert (opened["version"], opened["source"], opened["stateset"]) == (1, source["id"], ss_id)
    assert sorted(opened["cells"]) == sorted(rising) == sorted(opened["cells_added"])
    assert (opened["start"], opened["end"], opened["threshold"]) == (None, None, THRESHOLD)
    assert opened["stateset_info"]["length"] == n
    assert {"syntax", "depth"} <= {a["name"] for a in opened["stateset_info"]["annotations"]}
    assert opened["match_result"]["status"] == "succeeded", opened["match_result"]

    page = api.get(f"/api/hypotheses/{hyp_id}/match/").json()
    assert page["id"] == opened["match"]
    hits = page["hits"]
    assert 0 < len(hits) <= opened["limit"]
    for hit in hits:  # each with its context and the uploaded tracks
        assert 0 <= hit["start"] <= hit["position"]
        assert hit["position"] + hit["length"] - 1 <= hit["end"] < n
        assert "".join(hit["tokens"]) == text[hit["start"] : hit["end"] + 1]
        assert hit["annotations"]["syntax"] == syntax[hit["start"] : hit["end"] + 1]

    # The hypothesis' cells as the hypothesis export gives them: on where every
    # cell is at or above the threshold, in a run of at least min_length.
    cut = _npz(api.get(f"/api/hypotheses/{hyp_id}/export/?start=0&end={n - 1}&format=npz"))
    assert list(cut["cells"]) == opened["cells"]
    on = (cut["values"].astype(np.float64) >= THRESHOLD).all(axis=1)
    predicted = _all_on_runs(on, opened["min_length"])

    # Statistics against syntax = string: a job, then stored and reused.
    url = f"/api/hypotheses/{hyp_id}/statistics/"
    r = api.post(url, {"annotation": "syntax", "label": "string"}, format="json")
    job = _succeeded(api, _started(r), "statistics")
    stats_id = job["result"]["statistics"]
    result = api.get(f"/api/statistics/{stats_id}/").json()
    check_against_schema(spec, "/api/statistics/{statistics_id}/", "get", 200, result)
    again = api.post(url, {"annotation": "syntax", "label": "string"}, format="json")
    assert again.status_code == 200 and again.json()["id"] == stats_id
    listed = api.get(url).json()
    assert [s["id"] for s in listed] == [stats_id]
    assert (result["hypothesis"], result["version"]) == (hyp_id, 1)
    assert (result["annotation"], result["label"], result["threshold"]) == (
        "syntax",
        "string",
        None,
    )

    agreement = result["agreement"]
    tp, fp, fn, tn = (agreement[k] for k in ("tp", "fp", "fn", "tn"))
    assert tp + fp + fn + tn == n
    assert tp + fn == int(is_string.sum())
    assert (tp, fp, fn, tn) == (
        int((predicted & is_string).sum()),
        int((predicted & ~is_string).sum()),
        int((~predicted & is_string).sum()),
        int((~predicted & ~is_string).sum()),
    )
    for k in ("precision", "recall", "f1"):
        assert 0 <= agreement[k] <= 1
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn)
    assert agreement["precision"] == pytest.approx(precision)
    assert agreement["recall"] == pytest.approx(recall)

    counts = {label: syntax.count(label) for label in set(syntax)}
    enrichment = {row["label"]: row for row in result["enrichment"]}
    assert set(enrichment) == set(counts)
    inside = result["inside_tokens"]
    assert sum(row["inside"] for row in enrichment.values()) == inside
    assert 0 < inside <= tp + fp  # the strict ranges lie inside the all-on runs
    assert 0 < result["ranges"] <= inside
    # the matched ranges are the strict ranges of the pinned match, as long as allowed
    strict = [
        (length, k) for length, k in page["strict_histogram"] if length >= opened["min_length"]
    ]
    assert opened["max_length"] is None
    assert result["ranges"] == sum(k for _, k in strict)
    assert inside == sum(length * k for length, k in strict)
    for label, row in enrichment.items():
        assert row["expected"] == pytest.approx(inside * counts[label] / n)
        assert 0 <= row["p"] <= 1 and 0 <= row["q"] <= 1
        if row["inside"]:
            assert row["lift"] == pytest.approx(row["inside"] / row["expected"])

    robustness = result["robustness"]
    loo = robustness["leave_one_out"]
    assert sorted(e["cell"] for e in loo) == sorted(rising)
    jaccards = [e["jaccard"] for e in (*loo, *robustness["threshold"])]
    assert all(0 <= j <= 1 for j in jaccards)
    assert robustness["min_jaccard"] == pytest.approx(min(jaccards))
    assert sorted(e["threshold"] for e in robustness["threshold"]) == pytest.approx(
        [THRESHOLD - robustness["delta"], THRESHOLD + robustness["delta"]]
    )

    # The CSV export says the same.
    csv_text = _csv_body(api.get(f"/api/statistics/{stats_id}/export/?format=csv"))
    head, _, rest = csv_text.partition("\n")
    assert head.startswith("#") and hyp_id in head
    section_part, _, enrichment_part = rest.partition("\n\n")
    rows = list(csv.reader(io.StringIO(section_part)))
    assert rows[0] == ["section", "key", "value"]
    exported_agreement = {key: value for section, key, value in rows[1:] if section == "agreement"}
    for k in ("tp", "fp", "fn", "tn"):
        assert int(exported_agreement[k]) == agreement[k]
    for k in ("precision", "recall", "f1"):
        assert math.isclose(float(exported_agreement[k]), agreement[k], abs_tol=1e-9)
    enrichment_rows = list(csv.DictReader(io.StringIO(enrichment_part)))
    assert list(enrichment_rows[0]) == ["label", "inside", "expected", "lift", "p", "q"]
    assert {row["label"]: int(row["inside"]) for row in enrichment_rows} == {
        label: row["inside"] for label, row in enrichment.items()
    }
