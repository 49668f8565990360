"""On the parenthesis demo's real data, a ranking finds the depth cells and a hypothesis
built from them matches inside brackets.

The state set is what the demo project holds: the demo's corpus (the generator of
``workers.demo.parens`` with the seed and length ``backend/states/demo.py`` uses)
run through the trained demo model (``workers/demo/parens-lstm``) by the ordinary
extraction, here only the hidden states ``h`` (the ranking and the match read
nothing else): 60,069 characters, a few seconds on two cores.
"""

from __future__ import annotations

import numpy as np
import pytest

from workers.core.corpus import tokenize_text
from workers.core.extract import ExtractParams, extract
from workers.core.match import match
from workers.core.modelfile import load_model
from workers.core.ranking import rank_cells
from workers.core.stats import Hypothesis, hypothesis_statistics
from workers.core.store import AnnotationInfo, StateSet, write_corpus
from workers.demo.parens import MAX_DEPTH, depth_track, parens_text
from workers.demo.train_demo import MODEL_DIR

# The demo corpus (backend/states/demo.py: DEMO_SEED, DEMO_CHARS).
DEMO_SEED = 11
DEMO_CHARS = 60_000
THRESHOLD = 0.3  # h of an LSTM is read raw (no transform), in (-1, 1)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[StateSet, str, np.ndarray]:
    """The demo state set, its last layer's ``h`` source and the depth per token."""
    tmp = tmp_path_factory.mktemp("demo")
    text = parens_text(DEMO_CHARS, DEMO_SEED)
    ids, vocab, doc_starts = tokenize_text(text, "char")
    depth = depth_track(text)
    track = AnnotationInfo(name="depth", kind="scalar", range=[0, MAX_DEPTH])
    write_corpus(
        tmp / "corpus", ids, vocab, doc_starts, {"name": "parens"}, annotations=[(track, depth)]
    )
    loaded = load_model(MODEL_DIR)
    extract(
        loaded.model,
        loaded.vocab,
        tmp / "corpus",
        tmp / "ss",
        ExtractParams(values=("h",), topk=0, surprisal=False),
        work_dir=tmp / "work",
        progress=lambda _f, _m: None,
        device="cpu",
    )
    ss = StateSet.open(tmp / "ss")
    hidden = [ss.source(s) for s in ss.source_ids if ss.source(s).kind == "h"]
    last = max(hidden, key=lambda s: s.layer)
    assert last.layer == loaded.spec.layers
    return ss, last.id, np.asarray(ss.annotation("depth")[0], dtype=np.float64)


def test_the_best_hidden_cell_of_the_last_layer_follows_the_depth(demo):
    ss, source, depth = demo
    ranking = rank_cells(ss, source, "depth")
    best = ranking.cells[0]
    assert abs(best["pearson"]) >= 0.8, ranking.cells[:3]
    # The ranking's Pearson is the plain one of the cell's values (h has no transform).
    values = np.asarray(ss.values(source)[:, best["cell"]], dtype=np.float64)
    assert best["pearson"] == pytest.approx(np.corrcoef(values, depth)[0, 1], abs=1e-6)


def test_a_hypothesis_of_the_top_cells_matches_inside_brackets(demo):
    """The two best-ranked cells whose Pearson is positive (higher inside brackets, so
    "on" at a threshold means inside) make the hypothesis. Criteria: every token of
    every one of the top 50 hits has depth > 0, and over the whole corpus at least
    99% of the tokens the hypothesis predicts do, where 84% of all tokens do."""
    ss, source, depth = demo
    ranking = rank_cells(ss, source, "depth")
    positive = [e["cell"] for e in ranking.cells if e["pearson"] > 0][:2]
    top3 = [e["cell"] for e in ranking.cells[:3]]
    assert positive[0] in top3 and positive[1] in top3, ranking.cells[:3]
    h = Hypothesis(source, tuple(positive), THRESHOLD)

    result = match(ss, source, h.query(50))
    assert result.exact and len(result.hits) == 50
    assert all(hit.intersection == len(positive) for hit in result.hits)
    for hit in result.hits:
        inside = depth[hit.position : hit.position + hit.length]
        assert (inside > 0).all(), (hit, inside)

    inside_rate = float((depth > 0).mean())
    assert inside_rate < 0.9  # the criterion below says more than the base rate
    st = hypothesis_statistics(ss, h, "depth", scalar_threshold=1.0)
    agreement = st["agreement"]
    assert agreement["tp"] + agreement["fp"] > 5_000
    assert agreement["precision"] >= 0.99, agreement
