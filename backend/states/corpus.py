"""The text of a state set as a corpus of its project.

An extracted state set points at the corpus it was made from. A state set imported
from LSTMVis brings its text too (token ids and dictionary) but no corpus row; this
makes one from it, so that its text can be trained on and extracted from like an
uploaded corpus. The corpus folder is written from the state set's own files; the
state set then points at it, and asking again returns the same corpus.
"""

from __future__ import annotations

import shutil
from typing import Any

from django.db import transaction

from backend.artifacts.models import Corpus, Tokenization
from backend.core.errors import ApplicationError
from backend.core.quota import dir_size, storage_check
from backend.core.storage import new_dir

from .models import StateSet
from .selectors import stateset_store


def _tokenization(vocab: list[str]) -> str:
    """Characters when every entry of the dictionary is one character, else words."""
    return Tokenization.CHAR if all(len(t) <= 1 for t in vocab) else Tokenization.WORD


def stateset_corpus_ensure(ss: StateSet, user: Any | None) -> tuple[Corpus, bool]:
    """The corpus of `ss`, made from its tokens when it has none; (corpus, created)."""
    from workers.core.store import write_corpus

    if ss.corpus_id is not None:
        corpus = Corpus.objects.filter(id=ss.corpus_id).first()
        if corpus is not None:
            return corpus, False
    store = stateset_store(ss)
    vocab = list(store.vocab)
    ids = store.tokens
    if len(ids) == 0:
        raise ApplicationError("This state set has no tokens to make a corpus of.")
    storage_check(user, int(ids.nbytes) + sum(len(t) + 4 for t in vocab), project=ss.project)
    rel, final = new_dir("corpora")
    manifest = store.manifest
    write_corpus(
        final,
        ids,
        vocab,
        list(manifest.doc_starts or [0]),
        {"name": ss.name, "tokenization": _tokenization(vocab), "stateset": str(ss.id)},
    )
    try:
        with transaction.atomic():
            locked = StateSet.objects.select_for_update().get(id=ss.id)
            if locked.corpus_id is not None:
                existing = Corpus.objects.filter(id=locked.corpus_id).first()
                if existing is not None:  # made by a concurrent request meanwhile
                    shutil.rmtree(final, ignore_errors=True)
                    return existing, False
            corpus = Corpus.objects.create(
                project=ss.project,
                name=ss.name,
                tokenization=_tokenization(vocab),
                length=len(ids),
                vocab_size=len(vocab),
                documents=len(manifest.doc_starts or [0]),
                path=rel,
                size_bytes=dir_size(final),
                created_by=user if getattr(user, "is_authenticated", False) else None,
            )
            StateSet.objects.filter(id=ss.id).update(corpus=corpus)
            ss.corpus = corpus
    except BaseException:
        shutil.rmtree(final, ignore_errors=True)
        raise
    return corpus, True
