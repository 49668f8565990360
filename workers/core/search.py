"""Finding a phrase (an exact token sequence) in a corpus.

LSTMVis searched through an optional full-text index; StateLab keeps the corpus
as an int32 token array, so an exact phrase is found by comparing ids. Two ways
give the same answer:

* **The scan** runs over blocks of start positions with numpy: the first token
  narrows each block to a few candidates, and each further token filters those,
  so the cost is one vectorised pass over the ids and memory stays bounded by the
  block size. It stops as soon as ``limit`` positions are found, but a rare
  phrase still reads the whole corpus (about 30 ms per 10^7 tokens).
* **The index**, built once with the state set, is an inverted list: every
  position of the corpus grouped by token id, ascending within each id. A query
  takes the positions of its rarest token (the rare token of "of the Volga" is
  "Volga"), shifts them to phrase starts and checks the other tokens by
  comparing ids at the shifted positions. Its cost follows the rarest token's
  frequency, not the corpus length, and it stops after ``limit`` hits.

Index layout, inside the state set directory::

    index/search/version.json   {"format": "statelab-search-index", "version": 1,
                                 "length": N, "vocab_size": V,
                                 "positions_dtype": "int32"}   written last
    index/search/positions.npy  int32 (N,) (int64 from 2^31 tokens on): the
                                positions of id 0 ascending, then those of id 1...
    index/search/offsets.npy    int64 (V + 1,): id ``i`` owns
                                ``positions[offsets[i]:offsets[i + 1]]``

It is written into ``index/.tmp-search-<random>`` and renamed into place, so a
reader sees a complete index or none (and then scans).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from workers.core.atomic import (
    fsync_path,
    fsync_tree,
    make_temp_dir,
    remove_stale_temp_dirs,
    save_npy_synced,
    temp_sibling,
    write_json_synced,
)
from workers.core.errors import InputError, ProgressFn
from workers.core.store import StateSet

__all__ = [
    "INDEX_FORMAT",
    "INDEX_VERSION",
    "PhraseSearcher",
    "SearchIndex",
    "build_search_index",
    "has_search_index",
    "phrase_count",
    "phrase_search",
    "search_index_dir",
    "split_query",
    "vocab_is_characters",
    "vocab_lookup",
]

INDEX_FORMAT = "statelab-search-index"
INDEX_VERSION = 1

_BLOCK = 1 << 20
# Tokens per slice while building the index: the slice's argsort (int64) and its
# helpers are the only memory that grows with the slice, about 40 bytes a token.
_BUILD_SLICE = 1 << 22
# Candidates checked in the first block of an index query; each further block is
# four times larger, so a phrase with early hits reads little and one whose hits
# are sparse still moves through its candidate list in a few numpy calls.
_FIRST_BLOCK = 256
_MAX_BLOCK = 1 << 20

# Markers such as <eos>, <unk> or <s>: one token, written as a word in angle brackets.
_MARKER = re.compile(r"<[^<>\s]+>")

LookupTable = Mapping[str, np.ndarray]


# --------------------------------------------------------------------------- #
# Query text -> tokens
# --------------------------------------------------------------------------- #


def vocab_is_characters(vocab: list[str]) -> bool:
    """True when the vocab is character-level.

    That is: at least one entry is one character, and every other entry is a
    marker in angle brackets (``<eos>``, ``<unk>``) or empty (an unused id).
    """
    seen_char = False
    for token in vocab:
        if len(token) == 1:
            seen_char = True
        elif token and not _MARKER.fullmatch(token):
            return False
    return seen_char


def split_query(q: str, vocab: list[str], *, characters: bool | None = None) -> list[str]:
    """The tokens of a search phrase typed as ``q``.

    For a character vocab (see :func:`vocab_is_characters`; ``characters`` skips
    that check when the caller knows) every character of ``q`` is one token, so
    spaces and newlines are searched as they are typed, and a marker of the vocab
    written out (``<eos>``) is that one token. Otherwise ``q`` is split on
    whitespace and each word is one token.
    """
    if characters is None:
        characters = vocab_is_characters(vocab)
    if not characters:
        return q.split()
    markers = {t for t in vocab if len(t) > 1}
    out: list[str] = []
    i = 0
    while i < len(q):
        if q[i] == "<" and markers:
            m = _MARKER.match(q, i)
            if m is not None and m.group(0) in markers:
                out.append(m.group(0))
                i = m.end()
                continue
        out.append(q[i])
        i += 1
    return out


def vocab_lookup(vocab: list[str]) -> dict[str, np.ndarray]:
    """Token string -> its ids (int64, ascending; a string may repeat in the vocab).

    The empty string is left out: an empty vocab entry marks an unused id and
    is never searched.
    """
    found: dict[str, list[int]] = {}
    for i, token in enumerate(vocab):
        if token:
            found.setdefault(token, []).append(i)
    return {t: np.asarray(ids, dtype=np.int64) for t, ids in found.items()}


def _ids_for(vocab: list[str], phrase: list[str]) -> list[np.ndarray] | None:
    wanted = set(phrase)
    found: dict[str, list[int]] = {}
    for i, token in enumerate(vocab):
        if token in wanted:
            found.setdefault(token, []).append(i)
    if any(token not in found or token == "" for token in phrase):
        return None
    return [np.asarray(found[token], dtype=np.int64) for token in phrase]


def _phrase_ids(
    vocab: list[str], phrase: list[str], lookup: LookupTable | None
) -> list[np.ndarray] | None:
    if lookup is None:
        return _ids_for(vocab, phrase)
    out = []
    for token in phrase:
        ids = lookup.get(token) if token else None
        if ids is None:
            return None
        out.append(ids)
    return out


def _matches(column: np.ndarray, ids: np.ndarray) -> np.ndarray:
    if ids.size == 1:
        out: np.ndarray = column == ids[0]
        return out
    return np.isin(column, ids)


# --------------------------------------------------------------------------- #
# The index on disk
# --------------------------------------------------------------------------- #


def search_index_dir(ss_path: Path) -> Path:
    """Where the search index of the state set at ``ss_path`` lives."""
    return Path(ss_path) / "index" / "search"


def _read_version(index_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((index_dir / "version.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def has_search_index(path: Path) -> bool:
    """Whether the state set at ``path`` has a complete search index of this version."""
    index_dir = search_index_dir(path)
    info = _read_version(index_dir)
    return (
        info is not None
        and info.get("format") == INDEX_FORMAT
        and info.get("version") == INDEX_VERSION
        and (index_dir / "positions.npy").is_file()
        and (index_dir / "offsets.npy").is_file()
    )


class SearchIndex:
    """An opened search index: memory-mapped positions grouped by token id."""

    def __init__(self, positions: np.ndarray, offsets: np.ndarray) -> None:
        self.positions = positions
        self.offsets = offsets

    @classmethod
    def open(cls, ss_path: Path, *, length: int, vocab_size: int) -> SearchIndex:
        """Map the index of the state set at ``ss_path``; ``length`` and
        ``vocab_size`` are the state set's, and an index that disagrees is refused."""
        index_dir = search_index_dir(ss_path)
        if not has_search_index(ss_path):
            raise InputError(f"the state set {Path(ss_path).name} has no search index")
        try:
            positions = np.load(index_dir / "positions.npy", mmap_mode="r", allow_pickle=False)
            offsets = np.load(index_dir / "offsets.npy", mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputError(f"the search index of {Path(ss_path).name} is damaged") from exc
        if (
            positions.shape != (length,)
            or offsets.shape != (vocab_size + 1,)
            or positions.dtype.kind != "i"
            or offsets.dtype != np.int64
            or int(offsets[-1]) != length
        ):
            raise InputError(f"the search index of {Path(ss_path).name} does not fit its state set")
        # The offsets are small (V + 1 values) and read on every query: keep them in memory.
        return cls(positions, np.array(offsets))

    def frequency(self, ids: np.ndarray) -> int:
        """How often the ids occur in the corpus, together."""
        return int((self.offsets[ids + 1] - self.offsets[ids]).sum())

    def postings(self, token_id: int) -> np.ndarray:
        """Ascending positions of one id (a slice of the memory map)."""
        return self.positions[int(self.offsets[token_id]) : int(self.offsets[token_id + 1])]


def build_search_index(ss_path: Path, progress: ProgressFn | None = None) -> None:
    """Write the search index of the state set at ``ss_path`` (see the module doc).

    Does nothing when a current index is already there; an index of another
    version is replaced. Memory: besides the memory-mapped output file (N
    positions, in the page cache), one slice of ``_BUILD_SLICE`` tokens at a
    time (about 160 MB for 4M tokens) and a few arrays of V + 1 counts, so a
    10^7-token corpus builds in well under 1 GB. ``progress`` may raise
    ``Cancelled``; a cancelled or failed build leaves no index and no temp folder.
    """
    ss_path = Path(ss_path)
    if has_search_index(ss_path):
        return
    ss = StateSet.open(ss_path)
    n, v = ss.length, ss.manifest.vocab_size
    tokens = np.asarray(ss.tokens)
    final = search_index_dir(ss_path)
    parent = final.parent
    parent.mkdir(exist_ok=True)
    remove_stale_temp_dirs(parent)
    tmp = make_temp_dir(final)  # index/.tmp-search-<random>
    try:
        _write_index(tmp, tokens, n, v, progress)
        fsync_tree(tmp)
        _publish_index(tmp, final, ss_path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if progress is not None:
        progress(1.0, "Search index written.")


def _write_index(
    tmp: Path, tokens: np.ndarray, n: int, v: int, progress: ProgressFn | None
) -> None:
    dtype = np.int32 if n < 2**31 else np.int64
    out = np.lib.format.open_memmap(tmp / "positions.npy", mode="w+", dtype=dtype, shape=(n,))
    try:
        offsets = _fill_index(tokens, v, out, progress)
        out.flush()
    finally:
        del out
    save_npy_synced(tmp / "offsets.npy", offsets)
    write_json_synced(
        tmp / "version.json",
        {
            "format": INDEX_FORMAT,
            "version": INDEX_VERSION,
            "length": n,
            "vocab_size": v,
            "positions_dtype": np.dtype(dtype).name,
        },
    )


def _fill_index(
    tokens: np.ndarray, v: int, out: np.ndarray, progress: ProgressFn | None = None
) -> np.ndarray:
    """Write the positions of ``tokens`` grouped by id into ``out`` (N,); return the
    offsets (V + 1,). Reads ``tokens`` twice, ``_BUILD_SLICE`` tokens at a time."""
    n = int(tokens.shape[0])
    slices = [(a, min(n, a + _BUILD_SLICE)) for a in range(0, n, _BUILD_SLICE)]
    steps = 2 * len(slices)

    # Pass 1: how often each id occurs, so every id's run of positions has its place.
    counts = np.zeros(v, dtype=np.int64)
    for k, (a, b) in enumerate(slices):
        chunk = np.asarray(tokens[a:b])
        if int(chunk.min()) < 0 or int(chunk.max()) >= v:
            raise InputError(f"the token ids of this state set do not all lie in [0, {v})")
        counts += np.bincount(chunk, minlength=v)
        if progress is not None:
            progress((k + 1) / steps * 0.95, "Counting tokens.")
    offsets = np.zeros(v + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])

    # Pass 2: a stable argsort of each slice puts its positions in id order; each
    # goes after the positions that earlier slices wrote for the same id, so every
    # id's run ends up ascending.
    cursor = offsets[:-1].copy()
    for k, (a, b) in enumerate(slices):
        chunk = np.asarray(tokens[a:b])
        order = np.argsort(chunk, kind="stable")
        sorted_ids = chunk[order]
        c = np.bincount(chunk, minlength=v)
        first_in_chunk = np.cumsum(c) - c  # where each id's group starts in `order`
        dest = cursor[sorted_ids] + (np.arange(b - a) - first_in_chunk[sorted_ids])
        out[dest] = order + a
        cursor += c
        if progress is not None:
            progress((len(slices) + k + 1) / steps * 0.95, "Sorting positions by token.")
    return offsets


def _publish_index(tmp: Path, final: Path, ss_path: Path) -> None:
    if has_search_index(ss_path):
        # A concurrent build finished first; its index is as good as ours.
        shutil.rmtree(tmp, ignore_errors=True)
        return
    old: Path | None = None
    if final.exists() or final.is_symlink():
        # An index of another version (or a damaged one) is moved aside first:
        # rename cannot replace a folder that has files. The name is a temp name,
        # so a crash right here leaves it to remove_stale_temp_dirs.
        old = temp_sibling(final.with_name(f"old-{final.name}"))  # .tmp-old-search-<random>
        try:
            os.rename(final, old)
        except FileNotFoundError:
            old = None
    try:
        os.rename(tmp, final)
    except OSError:
        # A concurrent build got there first; its index is as good as ours.
        if has_search_index(ss_path):
            shutil.rmtree(tmp, ignore_errors=True)
            return
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    fsync_path(final.parent)


# --------------------------------------------------------------------------- #
# Queries
# --------------------------------------------------------------------------- #


def _scan_blocks(tokens: np.ndarray, ids: list[np.ndarray]) -> Iterator[np.ndarray]:
    """Ascending blocks of phrase starts, found by reading the whole id array."""
    n = int(tokens.shape[0])
    m = len(ids)
    last_start = n - m  # inclusive
    for a in range(0, last_start + 1, _BLOCK):
        b = min(last_start + 1, a + _BLOCK)  # starts [a, b)
        cand = np.flatnonzero(_matches(np.asarray(tokens[a:b]), ids[0])) + a
        if cand.size:
            chunk = np.asarray(tokens[a : b + m - 1])
            for j in range(1, m):
                if not cand.size:
                    break
                cand = cand[_matches(chunk[cand - a + j], ids[j])]
        yield cand


def _candidate_blocks(
    index: SearchIndex, ids: np.ndarray, first_block: int
) -> Iterator[np.ndarray]:
    """Ascending blocks of the merged positions of ``ids``, growing in size."""
    lists = [index.postings(int(i)) for i in ids]
    lists = [p for p in lists if p.size]
    if not lists:
        return
    step = first_block
    if len(lists) == 1:
        only = lists[0]
        a = 0
        while a < only.size:
            yield np.asarray(only[a : a + step], dtype=np.int64)
            a += step
            step = min(step * 4, _MAX_BLOCK)
        return
    # Several ids spell the same token: cut all lists at the same position,
    # chosen so that the longest list gives `step` positions per block.
    longest = max(range(len(lists)), key=lambda k: lists[k].size)
    starts = [0] * len(lists)
    a_long = 0
    while any(s < p.size for s, p in zip(starts, lists, strict=True)):
        a_long += step
        bound = int(lists[longest][a_long]) if a_long < lists[longest].size else None
        parts = []
        for k, p in enumerate(lists):
            end = p.size if bound is None else int(np.searchsorted(p, bound, side="left"))
            if end > starts[k]:
                parts.append(np.asarray(p[starts[k] : end], dtype=np.int64))
            starts[k] = end
        if parts:
            yield np.sort(np.concatenate(parts))
        step = min(step * 4, _MAX_BLOCK)


def _index_blocks(
    tokens: np.ndarray, index: SearchIndex, ids: list[np.ndarray], first_block: int
) -> Iterator[np.ndarray]:
    """Ascending blocks of phrase starts, found through the index."""
    n = int(tokens.shape[0])
    m = len(ids)
    freq = [index.frequency(x) for x in ids]
    r = min(range(m), key=lambda j: freq[j])  # the rarest token anchors the phrase
    if freq[r] == 0:
        return
    others = sorted((j for j in range(m) if j != r), key=lambda j: freq[j])
    tok = np.asarray(tokens)
    last_start = n - m  # inclusive
    for block in _candidate_blocks(index, ids[r], first_block):
        cand = block - r
        lo = int(np.searchsorted(cand, 0, side="left"))
        hi = int(np.searchsorted(cand, last_start, side="right"))
        cand = cand[lo:hi]
        for j in others:
            if not cand.size:
                break
            cand = cand[_matches(tok[cand + j], ids[j])]
        yield cand
        if hi < block.size:  # the rest of the list lies past the last start
            return


def _blocks(
    tokens: np.ndarray,
    ids: list[np.ndarray],
    index: SearchIndex | None,
    first_block: int,
) -> Iterator[np.ndarray]:
    if int(tokens.shape[0]) < len(ids):
        return iter(())
    if index is None:
        return _scan_blocks(tokens, ids)
    return _index_blocks(tokens, index, ids, first_block)


def phrase_search(
    tokens: np.ndarray,
    vocab: list[str],
    phrase: list[str],
    limit: int,
    *,
    index: SearchIndex | None = None,
    lookup: LookupTable | None = None,
) -> list[int]:
    """Start positions (ascending) of the first ``limit`` occurrences of ``phrase``.

    ``tokens`` is the corpus' id array (N,), ``vocab`` maps id to token. A phrase
    with a token that is not in the vocab, an empty phrase or ``limit <= 0`` give
    ``[]``. Vocab entries that repeat a token string all match it. Occurrences
    may overlap ("a a" is found at 0 and 1 in "a a a").

    ``index`` (the state set's :class:`SearchIndex`) makes the query cost follow
    the rarest token's frequency instead of N; the answer is the same.
    ``lookup`` (from :func:`vocab_lookup`) saves reading the vocab per query.
    """
    if limit <= 0 or not phrase:
        return []
    ids = _phrase_ids(vocab, phrase, lookup)
    if ids is None:
        return []
    found: list[int] = []
    for hits in _blocks(tokens, ids, index, max(_FIRST_BLOCK, 2 * limit)):
        found.extend(hits[: limit - len(found)].tolist())
        if len(found) >= limit:
            break
    return found


def phrase_count(
    tokens: np.ndarray,
    vocab: list[str],
    phrase: list[str],
    *,
    index: SearchIndex | None = None,
    lookup: LookupTable | None = None,
) -> int:
    """How often ``phrase`` occurs in the corpus (overlapping occurrences count).

    With ``index`` a one-token phrase costs a lookup and a longer phrase one
    check per occurrence of its rarest token; without, the whole corpus is read.
    """
    if not phrase:
        return 0
    ids = _phrase_ids(vocab, phrase, lookup)
    if ids is None:
        return 0
    if index is not None and len(ids) == 1:
        return index.frequency(ids[0])
    return sum(int(h.size) for h in _blocks(tokens, ids, index, _MAX_BLOCK))


class PhraseSearcher:
    """Phrase search over one opened state set, for a process that answers many queries.

    It keeps what each query would otherwise redo: the token -> ids table, whether
    the vocab is character-level, and the mapped index. A state set without an
    index is scanned; the index is picked up as soon as it has been built.
    """

    def __init__(self, stateset: StateSet) -> None:
        self.stateset = stateset
        self._lookup: dict[str, np.ndarray] | None = None
        self._characters: bool | None = None
        self._index: SearchIndex | None = None

    @property
    def lookup(self) -> dict[str, np.ndarray]:
        if self._lookup is None:
            self._lookup = vocab_lookup(self.stateset.vocab)
        return self._lookup

    @property
    def characters(self) -> bool:
        """Whether the vocab is character-level (see :func:`vocab_is_characters`)."""
        if self._characters is None:
            self._characters = vocab_is_characters(self.stateset.vocab)
        return self._characters

    @property
    def index(self) -> SearchIndex | None:
        """The state set's index, or None while it has none (then queries scan)."""
        if self._index is None and has_search_index(self.stateset.path):
            try:
                self._index = SearchIndex.open(
                    self.stateset.path,
                    length=self.stateset.length,
                    vocab_size=self.stateset.manifest.vocab_size,
                )
            except InputError:
                return None  # a damaged index: the scan still answers correctly
        return self._index

    def split(self, q: str) -> list[str]:
        """The tokens of the typed query ``q`` (see :func:`split_query`)."""
        return split_query(q, self.stateset.vocab, characters=self.characters)

    def search(self, phrase: list[str], limit: int) -> list[int]:
        """:func:`phrase_search` on this state set."""
        ss = self.stateset
        return phrase_search(
            ss.tokens, ss.vocab, phrase, limit, index=self.index, lookup=self.lookup
        )

    def count(self, phrase: list[str]) -> int | None:
        """:func:`phrase_count` through the index; None without one (it would read
        the whole corpus, which a listing of the first hits does not need)."""
        index = self.index
        if index is None:
            return None
        ss = self.stateset
        return phrase_count(ss.tokens, ss.vocab, phrase, index=index, lookup=self.lookup)
