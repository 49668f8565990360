"""Turning an uploaded text file into a token sequence for extraction.

Users upload plain text; the models they trained were fed either words or
characters. Two tokenisers cover what LSTMVis users trained on:

* ``word``: each line is split on whitespace and followed by an ``<eos>`` token,
  exactly as the PyTorch ``word_language_model`` example builds its corpus, so a
  model trained with that example sees the same sequence here. Lines with no
  words add nothing (no ``<eos>``).
* ``char``: every character is a token, spaces and newlines included (line endings
  are normalised to ``\\n`` first, so a file saved on Windows gives the same
  tokens).

The vocab is ordered by first appearance, so the same text always gives the same
ids without sorting surprises. Documents are separated by one or more blank lines
(lines holding only whitespace); ``doc_starts`` gives the token position where
each document begins, the first being 0. The corpus stays one sequence: documents
are only recorded, never split, as the rest of the product expects.
"""

from __future__ import annotations

import numpy as np

from workers.core.errors import InputError

__all__ = ["EOS", "MODES", "decode_upload", "tokenize_text"]

EOS = "<eos>"
MODES = ("word", "char")

_BOM = "\ufeff"


def decode_upload(data: bytes, *, file: str | None = None) -> str:
    """Decode an uploaded file as UTF-8 (a leading BOM is dropped).

    Raises ``InputError`` naming the byte offset of the first byte that is not
    valid UTF-8, so the user can find it.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = data[exc.start : exc.start + 1]
        raise InputError(
            f"the file is not UTF-8 text: the byte 0x{bad.hex()} at offset {exc.start} "
            "cannot be decoded (save the file as UTF-8 and upload it again)",
            file=file,
        ) from None
    if text.startswith(_BOM):
        text = text[1:]
    return text


def _normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _is_blank(line: str) -> bool:
    return not line.strip()


def _tokenize_words(text: str) -> tuple[np.ndarray, list[str], list[int]]:
    index: dict[str, int] = {}
    ids: list[int] = []
    doc_starts: list[int] = []
    after_blank = True
    for line in text.split("\n"):
        words = line.split()
        if not words:
            after_blank = True
            continue
        if after_blank:
            doc_starts.append(len(ids))
            after_blank = False
        for w in (*words, EOS):
            i = index.get(w)
            if i is None:
                i = index[w] = len(index)
            ids.append(i)
    return np.asarray(ids, dtype=np.int32), list(index), doc_starts


def _tokenize_chars(text: str) -> tuple[np.ndarray, list[str], list[int]]:
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    uniq, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    # Re-number the sorted unique code points by first appearance.
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    ids = rank[inverse].astype(np.int32)
    vocab = [chr(int(c)) for c in uniq[order]]

    doc_starts: list[int] = []
    pos = 0
    after_blank = True
    for line in text.split("\n"):
        if _is_blank(line):
            after_blank = True
        elif after_blank:
            # Blank lines before the first text belong to the first document.
            doc_starts.append(pos if doc_starts else 0)
            after_blank = False
        pos += len(line) + 1
    return ids, vocab, doc_starts or [0]


def tokenize_text(text: str, mode: str) -> tuple[np.ndarray, list[str], list[int]]:
    """Tokenise ``text`` into (ids int32 (N,), vocab, doc_starts); see the module doc.

    Raises ``InputError`` for an unknown mode or a text without tokens.
    """
    if mode not in MODES:
        raise InputError(f"the tokenisation mode must be 'word' or 'char', not {mode!r}")
    text = _normalise_newlines(text)
    if mode == "word":
        ids, vocab, doc_starts = _tokenize_words(text)
    else:
        ids, vocab, doc_starts = _tokenize_chars(text)
    if ids.size == 0:
        raise InputError("the corpus is empty: it contains no tokens")
    return ids, vocab, doc_starts
