"""The demo project a fresh installation starts with.

A small LSTM (32 cells) trained by StateLab's own trainer on the nested-parenthesis
language of the LSTMVis paper (``workers/demo``: the generator, the script that
reproduces the weights, and the weights themselves), a corpus of that language
with a nesting-depth annotation, and the extraction of its states through the
ordinary extraction job. The project is public inside the installation, so every
user can read it; only its owner (the first administrator) changes it.
"""

from __future__ import annotations

import json
import shutil

from django.db import transaction

from backend.accounts.models import User
from backend.artifacts.models import Corpus, LanguageModel, Tokenization
from backend.artifacts.services import model_store_from_files
from backend.core.quota import dir_size
from backend.core.storage import new_dir
from backend.jobs.models import Job
from backend.projects.models import Project
from backend.projects.services import project_create

DEMO_SLUG = "demo-parens"
DEMO_SEED = 11
DEMO_CHARS = 60_000


def _demo_corpus(project: Project, owner: User) -> Corpus:
    from workers.core.corpus import tokenize_text
    from workers.core.store import AnnotationInfo, write_corpus
    from workers.demo.parens import MAX_DEPTH, depth_track, parens_text

    text = parens_text(DEMO_CHARS, DEMO_SEED)
    ids, vocab, doc_starts = tokenize_text(text, "char")
    depth = depth_track(text)
    rel, final = new_dir("corpora")
    try:
        write_corpus(
            final,
            ids,
            vocab,
            doc_starts,
            {"name": "parens", "generator": "workers.demo.parens", "seed": DEMO_SEED},
            annotations=[
                (AnnotationInfo(name="depth", kind="scalar", range=[0, MAX_DEPTH]), depth)
            ],
        )
        return Corpus.objects.create(
            project=project,
            name="Nested parentheses (generated)",
            tokenization=Tokenization.CHAR,
            length=len(ids),
            vocab_size=len(vocab),
            documents=len(doc_starts),
            path=rel,
            size_bytes=dir_size(final),
            created_by=owner,
        )
    except BaseException:
        shutil.rmtree(final, ignore_errors=True)
        raise


def _demo_model(project: Project, owner: User) -> LanguageModel:
    from workers.demo.train_demo import MODEL_DIR

    return model_store_from_files(
        project=project,
        user=owner,
        weights=MODEL_DIR / "weights.safetensors",
        vocab_bytes=(MODEL_DIR / "vocab.json").read_bytes(),
        vocab_filename="vocab.json",
        config=json.loads((MODEL_DIR / "spec.json").read_text()),
        name="Parentheses LSTM (32 cells)",
        weights_filename="weights.safetensors",
    )


def demo_create(*, owner: User) -> Job | None:
    """Create the demo project and queue its extraction, once per installation."""
    from backend.states.services import extraction_start

    if Project.objects.filter(slug=DEMO_SLUG).exists():
        return None
    with transaction.atomic():
        project = project_create(
            user=owner,
            name="Demo: nested parentheses",
            slug=DEMO_SLUG,
            description=(
                "A 32-cell LSTM trained on the nested-parenthesis language of the LSTMVis "
                "paper, its states over generated text, and the nesting depth as an "
                "annotation. Select a range that starts at an opening bracket deep in "
                "the nesting (the state-set page opens on one) and match it: the hits lie "
                "inside deep brackets."
            ),
            public=True,
        )
        corpus = _demo_corpus(project, owner)
        model = _demo_model(project, owner)
        job, _ = extraction_start(
            project=project,
            user=owner,
            model=model,
            corpus=corpus,
            values=("h", "c", "gates"),
            topk=3,
            name="Parentheses LSTM states",
        )
    return job
