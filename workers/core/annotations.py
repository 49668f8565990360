"""Parsing a user's per-token annotation file into one track of a state set or corpus.

Users bring their own tracks (part of speech, chords, nesting depth) as a text file
in one of three formats, each read line by line (UTF-8, ``\\r\\n`` or ``\\n``; the
last line's newline is optional):

* ``lines``: one value per token, in token order; line ``i`` is position ``i - 1``.
* ``tsv``: ``token<TAB>value`` per line; the token must equal the token at that
  position (split at the last tab; ``\\n``, ``\\t``, ``\\r`` and ``\\\\`` in the token
  stand for a newline, a tab, a carriage return and a backslash, so a character
  corpus can name its newline token).
* ``conllu``: the chosen column (``UPOS``, ``XPOS``, ``DEPREL``... or a 1-based
  index) of every word line; comments (``#``), multiword ranges (``1-2``) and empty
  nodes (``1.1``) are skipped, a blank line ends a sentence. CoNLL-U words line up
  with the tokens in one of two ways, chosen by count: ``W`` tokens (one per word),
  or ``W + S`` tokens, one end-of-sentence token after each of the ``S`` sentences
  (a word corpus uploaded one sentence per line has ``<eos>`` there). In the second
  case every sentence-end position must hold the same token, and that position
  gets the token's own text as its label (a discrete track) or 0 (a scalar track).
  The word forms are not compared with the tokens, since a language-model corpus
  often rewrites them (``<unk>``, ``N``); only the counts must agree.

A ``discrete`` track stores label ids with its labels sorted (by code point), so
the same values give the same ids whatever their order in the file; at most
:data:`MAX_LABELS` different labels. A ``scalar`` track stores float32 values,
which must be finite numbers; its ``range`` is ``[min, max]``.

Every refusal is an ``InputError`` naming the FIRST bad line and what was expected
there; nothing is returned half-parsed. Writing the track into the store is
:func:`workers.core.store.annotation_stage` / ``annotation_publish``.
"""

from __future__ import annotations

import array
import math
import re
from collections.abc import Iterator
from typing import IO, Any

import numpy as np

from workers.core.errors import InputError
from workers.core.store import AnnotationInfo

__all__ = [
    "CONLLU_COLUMNS",
    "FORMATS",
    "KINDS",
    "MAX_LABELS",
    "annotation_name_check",
    "conllu_column_index",
    "parse_annotation",
]

FORMATS = ("lines", "tsv", "conllu")
KINDS = ("discrete", "scalar")
MAX_LABELS = 10_000
CONLLU_COLUMNS = ("ID", "FORM", "LEMMA", "UPOS", "XPOS", "FEATS", "HEAD", "DEPREL", "DEPS", "MISC")

# The store's rule for names that become file names (letters, digits, '_', '-').
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-]{0,127}$")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\"}
_TOKEN_CHUNK = 1 << 20


def annotation_name_check(name: str) -> str:
    """The name as stored, or an ``InputError`` saying what a name may hold."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InputError(
            f"the annotation name {name!r} must be 1-128 letters, digits, '_' or '-', "
            "and not start with '-'"
        )
    return name


def conllu_column_index(column: str | int | None) -> int:
    """The 0-based index of a CoNLL-U column given by name or 1-based number."""
    text = str(column if column is not None else "").strip()
    if text.isdigit() and 1 <= int(text) <= len(CONLLU_COLUMNS):
        return int(text) - 1
    if text.upper() in CONLLU_COLUMNS:
        return CONLLU_COLUMNS.index(text.upper())
    raise InputError(
        f"choose the CoNLL-U column by name ({', '.join(CONLLU_COLUMNS)}) or by number "
        f"(1-{len(CONLLU_COLUMNS)}), not {text!r}"
    )


def _shown(text: str) -> str:
    short = text if len(text) <= 60 else text[:57] + "..."
    return repr(short)


def _lines(fh: IO[bytes]) -> Iterator[tuple[int, str]]:
    """(1-based line number, text without its line ending) of each line."""
    for number, raw in enumerate(fh, start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(f"line {number}: the file is not UTF-8 text") from None
        if number == 1 and text.startswith("\ufeff"):
            text = text[1:]
        yield number, text.rstrip("\n").removesuffix("\r")


def _unescape(token: str) -> str:
    if "\\" not in token:
        return token
    out: list[str] = []
    i = 0
    while i < len(token):
        c = token[i]
        if c == "\\" and i + 1 < len(token) and token[i + 1] in _ESCAPES:
            out.append(_ESCAPES[token[i + 1]])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


class _Tokens:
    """The token text at a position, reading the ids in chunks from a memory map."""

    def __init__(self, ids: np.ndarray, vocab: list[str]) -> None:
        self.ids, self.vocab, self.length = ids, vocab, int(ids.shape[0])
        self._start, self._chunk = 0, np.asarray(ids[:_TOKEN_CHUNK]).tolist()

    def __getitem__(self, pos: int) -> str:
        if not self._start <= pos < self._start + len(self._chunk):
            self._start = pos - pos % _TOKEN_CHUNK
            self._chunk = np.asarray(self.ids[self._start : self._start + _TOKEN_CHUNK]).tolist()
        i = self._chunk[pos - self._start]
        return self.vocab[i] if 0 <= i < len(self.vocab) else str(i)


class _Values:
    """Collects one value per token: label ids (first seen) or floats, compactly."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.labels: dict[str, int] = {}
        self.data: array.array[Any] = array.array("i" if kind == "discrete" else "d")

    def __len__(self) -> int:
        return len(self.data)

    def add(self, value: str, number: int) -> None:
        if self.kind == "discrete":
            if value == "":
                raise InputError(f"line {number}: the value is empty")
            i = self.labels.get(value)
            if i is None:
                if len(self.labels) >= MAX_LABELS:
                    raise InputError(
                        f"line {number}: more than {MAX_LABELS:,} different labels; "
                        "is this a scalar track?"
                    )
                i = self.labels[value] = len(self.labels)
            self.data.append(i)
            return
        try:
            x = float(value)
        except ValueError:
            raise InputError(
                f"line {number}: expected a number for a scalar track, found {_shown(value)}"
            ) from None
        if not math.isfinite(x):
            raise InputError(f"line {number}: expected a finite number, found {_shown(value)}")
        self.data.append(x)

    def track(self, name: str) -> tuple[AnnotationInfo, np.ndarray]:
        if self.kind == "discrete":
            first_seen = list(self.labels)
            order = sorted(range(len(first_seen)), key=lambda i: first_seen[i])
            remap = np.empty(len(first_seen), dtype=np.int32)
            remap[np.asarray(order, dtype=np.int64)] = np.arange(len(order), dtype=np.int32)
            ids = remap[np.frombuffer(self.data, dtype=np.int32)] if len(order) else np.zeros(0)
            labels = [first_seen[i] for i in order]
            return AnnotationInfo(name=name, kind="discrete", labels=labels), ids.astype(np.int32)
        values = np.frombuffer(self.data, dtype=np.float64).astype(np.float32)
        rng = [float(values.min()), float(values.max())] if values.size else None
        return AnnotationInfo(name=name, kind="scalar", range=rng), values


def _too_few(last_line: int, pos: int, tokens: _Tokens, what: str) -> InputError:
    return InputError(
        f"line {last_line + 1}: the file ends, but expected {what} for position {pos} "
        f"(the token {_shown(tokens[pos])}); the tokens number {tokens.length:,}"
    )


def _too_many(number: int, n: int) -> InputError:
    return InputError(
        f"line {number}: expected the end of the file, since all {n:,} tokens have a value"
    )


def _parse_lines(fh: IO[bytes], tokens: _Tokens, out: _Values) -> None:
    number = 0
    for number, text in _lines(fh):
        if len(out) >= tokens.length:
            raise _too_many(number, tokens.length)
        out.add(text.strip(), number)
    if len(out) < tokens.length:
        raise _too_few(number, len(out), tokens, "a value")


def _parse_tsv(fh: IO[bytes], tokens: _Tokens, out: _Values) -> None:
    number = 0
    for number, text in _lines(fh):
        pos = len(out)
        if pos >= tokens.length:
            raise _too_many(number, tokens.length)
        expected = tokens[pos]
        if "\t" not in text:
            raise InputError(
                f"line {number}: expected 'token<TAB>value' for the token {_shown(expected)} "
                f"(position {pos}), found {_shown(text)}"
            )
        token, value = text.rsplit("\t", 1)
        if _unescape(token) != expected:
            raise InputError(
                f"line {number}: expected the token {_shown(expected)} (position {pos}), "
                f"found {_shown(_unescape(token))}"
            )
        out.add(value.strip(), number)
    if len(out) < tokens.length:
        raise _too_few(number, len(out), tokens, "'token<TAB>value'")


def _parse_conllu(fh: IO[bytes], tokens: _Tokens, out: _Values, column: int) -> None:
    words: list[tuple[int, str]] = []  # (line, value) of each word
    ends: list[int] = []  # after how many words each sentence ends
    end_lines: list[int] = []  # the line that ended it (blank, or the end of the file)
    number = 0
    for number, text in _lines(fh):
        if not text.strip():
            if words and (not ends or ends[-1] != len(words)):
                ends.append(len(words))
                end_lines.append(number)
            continue
        if text.startswith("#"):
            continue
        fields = text.split("\t")
        if len(fields) != len(CONLLU_COLUMNS):
            raise InputError(
                f"line {number}: expected a CoNLL-U word line of {len(CONLLU_COLUMNS)} "
                f"tab-separated columns, found {len(fields)}"
            )
        if "-" in fields[0] or "." in fields[0]:
            continue  # a multiword range or an empty node: not a word of the sentence
        if len(words) >= tokens.length:
            raise _too_many(number, tokens.length)
        words.append((number, fields[column]))
    if words and (not ends or ends[-1] != len(words)):
        ends.append(len(words))
        end_lines.append(number + 1)
    w, s, n = len(words), len(ends), tokens.length
    if n == w:
        for line, value in words:
            out.add(value, line)
        return
    if n != w + s:
        raise InputError(
            f"the file has {w:,} words in {s:,} sentences; the tokens number {n:,}, but "
            f"must be {w:,} (a token per word) or {w + s:,} (and one end-of-sentence "
            "token after each sentence)"
        )
    marker = tokens[ends[0]]
    k = 0
    for i, (end, line) in enumerate(zip(ends, end_lines, strict=True)):
        for word_line, value in words[k:end]:
            out.add(value, word_line)
        k = end
        pos = end + i
        if tokens[pos] != marker:
            raise InputError(
                f"line {line}: expected the end of sentence {i + 1} to be the token "
                f"{_shown(marker)} like the first one, found {_shown(tokens[pos])} "
                f"(position {pos})"
            )
        out.add(marker if out.kind == "discrete" else "0", line)


def parse_annotation(
    fh: IO[bytes],
    *,
    name: str,
    kind: str,
    fmt: str,
    ids: np.ndarray,
    vocab: list[str],
    column: str | int | None = None,
) -> tuple[AnnotationInfo, np.ndarray]:
    """Parse an annotation file (opened in binary) against tokens ``ids`` (int (N,),
    ids into ``vocab``). Returns the track's info and its values: int32 (N,) label ids
    (discrete) or float32 (N,) (scalar). Refusals are ``InputError`` (module doc)."""
    annotation_name_check(name)
    if kind not in KINDS:
        raise InputError(f"the annotation kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if fmt not in FORMATS:
        raise InputError(f"the format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    tokens = _Tokens(ids, vocab)
    out = _Values(kind)
    if fmt == "lines":
        _parse_lines(fh, tokens, out)
    elif fmt == "tsv":
        _parse_tsv(fh, tokens, out)
    else:
        _parse_conllu(fh, tokens, out, conllu_column_index(column))
    return out.track(name)
