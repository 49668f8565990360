"""Extracting the hidden states of a recurrent language model over a corpus.

The corpus is cut into ``B`` contiguous rows ("streams") of ``ceil(N / B)``
tokens (the last may be shorter), as LSTMVis' own scripts did. The streams run
side by side in chunks of ``chunk`` steps; each carries its recurrent state from
one chunk to the next and starts from the zero state. So every stored value is
what a plain forward pass of the model gives when it starts from zero at that
stream's first token, and ``stream_starts`` in the manifest says where those
cold starts are.

What is stored (one source per layer and kind, ``N x hidden`` float32, raw, or
float16 with ``ExtractParams(dtype="float16")``: half the disk, values rounded to
nearest when they are written, every reader converting them back to float32):

* ``l{L}_h``: the layer's output; transform ``none`` (``tanh`` for ``RNN_RELU``,
  whose outputs are unbounded);
* ``l{L}_c`` (LSTM only): the cell state, transform ``tanh``;
* ``l{L}_gate_{i,f,g,o}`` (LSTM) or ``l{L}_gate_{r,z,n}`` (GRU): the gates after
  their nonlinearity (sigmoid gates in [0, 1], ``g`` and ``n`` in [-1, 1]).

Asking for ``c`` from a GRU or plain RNN, or for gates from a plain RNN, is not
an error (``("h", "c")`` is the default for every model): those values do not
exist, are skipped, and the manifest's ``extra.extraction.notes`` says so.

Annotations: ``top_predictions`` (wordvec, the ``topk`` most likely next tokens
after reading token ``t``, ids into the state set's vocab, weights =
probabilities) and ``surprisal`` (scalar, ``-log2 p(w_t | w_<t)`` in bits; NaN at
each stream start, where the stream has seen nothing to predict from). The state
set's vocab is the model's; its tokens are the corpus tokens mapped to model ids
by string, unknown words to the model's ``<unk>``.

How it is fast: on the CPU, layers whose ``c`` or gates are wanted run as a step
loop that does the input projection of a whole chunk in one matrix product and
then one ``addmm`` plus a few in-place elementwise calls per step, writing
straight into preallocated batch-major buffers, in one single-threaded lane per
core (0.95-1.07x of ``nn.LSTM``'s oneDNN kernel, which keeps only ``h``; see
``docs/extraction.md`` for the figures with the disk output). Layers that only need
``h`` run through ``nn.LSTM``/``nn.GRU``/``nn.RNN`` one layer at a time. On CUDA,
cuDNN computes ``h``; gates are recomputed from it with two large matrix
products and ``c`` follows from an elementwise scan, with TF32 switched off so
the values agree with the CPU to 1e-4.

How it writes: values go straight into the state set's files (positioned
writes; memory bounded by ``B x chunk x hidden``, not by N). On the CPU each
lane writes its own streams' rows right after computing them (the lanes share
the cores evenly; a separate writer thread would slow one lane and leave the
other waiting at the end of the chunk); on CUDA a writer thread stores chunk k
while chunk k + 1 is computed into a second set of buffers. Another thread
moves finished rows towards the disk.

How it survives a dying worker: the files live in ``work_dir``; every few seconds the files are synced and a checkpoint (next
chunk, every stream's recurrent state, a fingerprint of model, corpus and
parameters) is written atomically beside them. A later call with the same
``work_dir`` and the same inputs resumes from the checkpoint. A run that stops
with an exception other than ``Cancelled`` also leaves a checkpoint of the last
complete chunk; ``Cancelled`` removes the partial output (a cancelled job is not
resumed). The caller removes ``work_dir`` once a job has failed for good.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import json
import math
import os
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from workers.core.atomic import atomic_file
from workers.core.errors import Cancelled, InputError, ProgressFn
from workers.core.rnnlm import RNNLanguageModel, RNNSpec
from workers.core.store import (
    SOURCE_DTYPES,
    AnnotationInfo,
    ArrayFile,
    CorpusData,
    Manifest,
    SourceInfo,
    StateSet,
    StateSetWriter,
    open_corpus,
)

__all__ = [
    "UNKNOWN_TOKENS",
    "VALUE_KINDS",
    "ExtractParams",
    "default_streams",
    "extract",
    "plan_streams",
    "source_infos",
]

VALUE_KINDS = ("h", "c", "gates")
# Tokens that conventionally stand for "a word not in the vocabulary", in order of
# preference. ``<eos>`` is not among them: mapping unknown words to an end of
# sentence would reset the model's context, which is worse than refusing.
UNKNOWN_TOKENS = ("<unk>", "<UNK>", "[UNK]", "<oov>", "UNK")

CHECKPOINT_NAME = "checkpoint.npz"
PARTIAL_NAME = "stateset"
_CHECKPOINT_VERSION = 1

_MAX_TOPK = 100
_MAX_CHUNK = 4096
# Streams get at least this many tokens each when the count is chosen automatically.
_MIN_STREAM_TOKENS = 2048
_MAX_STREAMS = {"cpu": 128, "cuda": 512}
# Logits are computed for at most this many values at a time (64 MiB of float32).
_LOGIT_ELEMENTS = 1 << 24
# The word embedding is stored with the states unless it is larger than this (1 GiB).
_MAX_EMBEDDING_ELEMENTS = 1 << 28
_PROGRESS_EVERY_S = 0.5
_LN2 = math.log(2.0)


@dataclass(frozen=True)
class ExtractParams:
    """What to extract and how to cut the corpus into parallel streams."""

    values: tuple[str, ...] = ("h", "c")  # any of "h", "c", "gates"
    topk: int = 5  # 0 = no prediction track
    surprisal: bool = True
    streams: int | None = None  # parallel streams; None = chosen from the corpus length
    chunk: int = 35  # time steps per chunk
    dtype: str = "float32"  # how the sources are stored: "float32" or "float16" (half the disk)


# --------------------------------------------------------------------------- #
# Planning: streams, sources, vocabulary
# --------------------------------------------------------------------------- #


def default_streams(n: int, device_type: str) -> int:
    """Streams for ``n`` tokens: as many as pay off, each at least 2048 tokens long."""
    cap = _MAX_STREAMS.get(device_type, _MAX_STREAMS["cpu"])
    return max(1, min(cap, n // _MIN_STREAM_TOKENS))


def plan_streams(n: int, streams: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut ``n`` tokens into rows of ``ceil(n / streams)``: (starts, lengths), int64.

    There may be fewer rows than ``streams`` (never an empty one); only the last
    may be shorter.
    """
    if n < 1 or streams < 1:
        raise ValueError("a plan needs at least one token and one stream")
    row = -(-n // min(streams, n))
    starts = np.arange(0, n, row, dtype=np.int64)
    lengths = np.minimum(row, n - starts)
    return starts, lengths


def _validate(params: ExtractParams, spec: RNNSpec) -> tuple[list[str], list[str]]:
    """Check the parameters; return the value kinds this model has, and notes on the rest."""
    if not isinstance(params.values, tuple | list) or not params.values:
        raise InputError("choose at least one kind of value to extract: h, c or gates")
    unknown = [v for v in params.values if v not in VALUE_KINDS]
    if unknown:
        raise InputError(
            f"unknown value kind {unknown[0]!r}; the kinds are {', '.join(VALUE_KINDS)}"
        )
    if isinstance(params.topk, bool) or not isinstance(params.topk, int):
        raise InputError("topk must be a whole number")
    if not 0 <= params.topk <= min(_MAX_TOPK, spec.vocab_size):
        raise InputError(
            f"topk must be from 0 to {min(_MAX_TOPK, spec.vocab_size)}, not {params.topk}"
        )
    if params.streams is not None and (
        isinstance(params.streams, bool)
        or not isinstance(params.streams, int)
        or params.streams < 1
    ):
        raise InputError(f"the number of streams must be at least 1, not {params.streams!r}")
    if (
        isinstance(params.chunk, bool)
        or not isinstance(params.chunk, int)
        or not 1 <= params.chunk <= _MAX_CHUNK
    ):
        raise InputError(f"the chunk length must be from 1 to {_MAX_CHUNK}, not {params.chunk!r}")
    if params.dtype not in SOURCE_DTYPES:
        raise InputError(f"states are stored as {' or '.join(SOURCE_DTYPES)}, not {params.dtype!r}")
    kinds: list[str] = []
    notes: list[str] = []
    for v in VALUE_KINDS:
        if v not in params.values:
            continue
        if v == "c" and spec.rnn_type != "LSTM":
            notes.append(f"a {spec.rnn_type} has no cell state c; it was not extracted")
        elif v == "gates" and not spec.gates:
            notes.append(f"a {spec.rnn_type} has no gates; they were not extracted")
        else:
            kinds.append(v)
    if not kinds:
        raise InputError(
            f"a {spec.rnn_type} has none of the values asked for ({', '.join(params.values)}); "
            "ask for h" + (" or gates" if spec.gates else "")
        )
    return kinds, notes


def source_infos(spec: RNNSpec, kinds: list[str], dtype: str = "float32") -> list[SourceInfo]:
    """The sources an extraction of ``kinds`` (``h``, ``c``, ``gates``) produces, layer
    by layer, stored as ``dtype``."""
    out: list[SourceInfo] = []
    d = spec.hidden_size
    relu = spec.rnn_type == "RNN_RELU"
    for layer in range(1, spec.layers + 1):
        if "h" in kinds:
            out.append(
                SourceInfo(
                    f"l{layer}_h", f"layer {layer} h", layer, "h", d,
                    "tanh" if relu else "none", unsigned=relu, dtype=dtype,
                )
            )  # fmt: skip
        if "c" in kinds:
            out.append(
                SourceInfo(f"l{layer}_c", f"layer {layer} c", layer, "c", d, "tanh", dtype=dtype)
            )
        if "gates" in kinds:
            for g in spec.gates:
                out.append(
                    SourceInfo(
                        f"l{layer}_gate_{g}", f"layer {layer} gate {g}", layer, f"gate_{g}", d,
                        "none", unsigned=g not in ("g", "n"), dtype=dtype,
                    )
                )  # fmt: skip
    return out


def _find_unknown(model_vocab: list[str]) -> int | None:
    index = {w: i for i, w in enumerate(model_vocab)}
    for tok in UNKNOWN_TOKENS:
        if tok in index:
            return index[tok]
    return None


def _map_vocab(
    corpus_vocab: list[str], model_vocab: list[str]
) -> tuple[np.ndarray, np.ndarray, int | None]:
    """(table corpus id -> model id, mask of corpus ids the model lacks, the unknown id)."""
    index = {w: i for i, w in enumerate(model_vocab)}
    table = np.fromiter((index.get(w, -1) for w in corpus_vocab), np.int64, len(corpus_vocab))
    missing = table < 0
    unk = _find_unknown(model_vocab)
    if missing.any():
        if unk is None:
            names = [corpus_vocab[i] for i in np.flatnonzero(missing)[:5]]
            count = int(missing.sum())
            raise InputError(
                f"{count} word{'s' if count != 1 else ''} of the corpus "
                f"{'are' if count != 1 else 'is'} not in the model's vocabulary "
                f"({', '.join(repr(w) for w in names)}{', ...' if count > 5 else ''}) and the "
                "model has no unknown-word token such as '<unk>'; use a corpus tokenised "
                "like the model's training data"
            )
        table[missing] = unk
    return table, missing, unk


# --------------------------------------------------------------------------- #
# Reading the corpus without mapping it
# --------------------------------------------------------------------------- #


class _TokenReader:
    """Reads spans of a corpus' int32 ids with ``pread``.

    A memory map would leave every page it touched in this process' resident
    set, so reading a 10^7-token corpus would grow the process by 40 MB.
    """

    def __init__(self, ids: np.ndarray) -> None:
        self._ids = ids
        self._fd: int | None = None
        self._offset = 0
        name = getattr(ids, "filename", None)
        if (
            isinstance(ids, np.memmap)
            and name
            and ids.dtype == np.int32
            and ids.ndim == 1
            and ids.flags.c_contiguous
        ):
            self._fd = os.open(name, os.O_RDONLY)
            self._offset = int(ids.offset)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Ids ``[start, stop)`` as a new int32 array."""
        if self._fd is None:
            return np.array(self._ids[start:stop], dtype=np.int32)
        want = (stop - start) * 4
        buf = bytearray(want)
        view = memoryview(buf)
        done = 0
        while done < want:
            got = os.preadv(self._fd, [view[done:]], self._offset + start * 4 + done)
            if got <= 0:
                raise OSError(f"the corpus file ended early at token {start + done // 4}")
            done += got
        return np.frombuffer(buf, dtype=np.int32)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _count_unknown(reader: _TokenReader, n: int, missing: np.ndarray) -> int:
    total = 0
    step = 1 << 20
    for a in range(0, n, step):
        total += int(np.count_nonzero(missing[reader.read(a, min(n, a + step))]))
    return total


# --------------------------------------------------------------------------- #
# The compute engine
# --------------------------------------------------------------------------- #


def _layer_weights(
    rnn: nn.RNNBase, layer: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    def get(name: str) -> torch.Tensor:
        t: torch.Tensor = getattr(rnn, f"{name}_l{layer}")
        return t.detach().to(device=device, dtype=torch.float32)

    return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh")


def _single_layer(spec: RNNSpec, rnn: nn.RNNBase, layer: int, device: torch.device) -> nn.RNNBase:
    """A one-layer copy of layer ``layer`` of ``rnn`` on ``device`` (the model is not touched)."""
    in_size = spec.embedding_size if layer == 0 else spec.hidden_size
    m: nn.RNNBase
    if spec.rnn_type == "LSTM":
        m = nn.LSTM(in_size, spec.hidden_size, 1)
    elif spec.rnn_type == "GRU":
        m = nn.GRU(in_size, spec.hidden_size, 1)
    else:
        m = nn.RNN(
            in_size,
            spec.hidden_size,
            1,
            nonlinearity="tanh" if spec.rnn_type == "RNN_TANH" else "relu",
        )
    m = m.to(device).eval()
    w_ih, w_hh, b_ih, b_hh = _layer_weights(rnn, layer, device)
    with torch.no_grad():
        for name, value in zip(
            ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"),
            (w_ih, w_hh, b_ih, b_hh),
            strict=True,
        ):
            param: torch.Tensor = getattr(m, name)
            param.copy_(value)
    m.requires_grad_(False)
    m.flatten_parameters()
    return m


State = tuple[torch.Tensor, ...]  # (h,) or (h, c), each (B, H)
Outputs = dict[str, torch.Tensor]  # kind -> (B, T, H), possibly a strided view


class _Layer:
    """One recurrent layer over one chunk: ``run(x (B,T,in), state) -> (outputs, y, state)``.

    ``y`` is the layer's output as the next layer's input; ``outputs`` holds the
    kinds asked for (``h``, ``c``, ``gate_*``). Both may be views of buffers of
    ``slot`` (0 or 1) that the next call with the same slot overwrites.
    """

    def run(self, x: torch.Tensor, state: State, slot: int) -> tuple[Outputs, torch.Tensor, State]:
        raise NotImplementedError


class _NativeLayer(_Layer):
    """``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` for ``h``; on request gates (and ``c``) recomputed.

    The recomputation takes the layer's inputs and the ``h`` sequence the library
    returned, does the two gate matrix products for the whole chunk at once, and
    gets ``c`` from the elementwise scan ``c_t = f_t c_{t-1} + i_t g_t``: cheap on
    a GPU, where the library's fused kernel is far ahead of any step loop.
    """

    def __init__(
        self, spec: RNNSpec, rnn: nn.RNNBase, layer: int, device: torch.device, kinds: list[str]
    ) -> None:
        self.spec = spec
        self.kinds = kinds
        self.module = _single_layer(spec, rnn, layer, device)
        self.recompute = ("c" in kinds or "gates" in kinds) and spec.rnn_type in ("LSTM", "GRU")
        if self.recompute:
            w_ih, w_hh, b_ih, b_hh = _layer_weights(rnn, layer, device)
            self.w_ih_t = w_ih.t().contiguous()
            self.w_hh_t = w_hh.t().contiguous()
            self.b_ih = b_ih
            self.b_hh = b_hh

    def run(self, x: torch.Tensor, state: State, slot: int) -> tuple[Outputs, torch.Tensor, State]:
        xt = x.transpose(0, 1)  # (T, B, in): the library's time-major layout
        h0 = state[0].unsqueeze(0)
        new_state: State
        if self.spec.rnn_type == "LSTM":
            out, (hn, cn) = self.module(xt, (h0, state[1].unsqueeze(0)))
            new_state = (hn[0], cn[0])
        else:
            out, hn = self.module(xt, h0)
            new_state = (hn[0],)
        outputs: Outputs = {}
        if "h" in self.kinds:
            outputs["h"] = out.transpose(0, 1)
        if self.recompute:
            outputs.update(self._recompute(xt, out, state))
        return outputs, out.transpose(0, 1), new_state

    def _recompute(self, xt: torch.Tensor, out: torch.Tensor, state: State) -> Outputs:
        t_len, b, _ = xt.shape
        hdim = self.spec.hidden_size
        h_prev = torch.cat([state[0].unsqueeze(0), out[:-1]]).reshape(t_len * b, hdim)
        x2 = xt.reshape(t_len * b, -1)
        result: Outputs = {}
        if self.spec.rnn_type == "LSTM":
            g = torch.addmm(self.b_ih + self.b_hh, x2, self.w_ih_t)
            g.addmm_(h_prev, self.w_hh_t)
            g = g.view(t_len, b, 4 * hdim)
            i, f, gg, o = (g[:, :, a * hdim : (a + 1) * hdim] for a in range(4))
            i.sigmoid_()
            f.sigmoid_()
            gg.tanh_()
            o.sigmoid_()
            if "c" in self.kinds:
                ig = i * gg
                c = torch.empty_like(ig)
                c_prev = state[1]
                for t in range(t_len):
                    torch.addcmul(ig[t], f[t], c_prev, out=c[t])
                    c_prev = c[t]
                result["c"] = c.transpose(0, 1)
            if "gates" in self.kinds:
                for name, val in zip("ifgo", (i, f, gg, o), strict=True):
                    result[f"gate_{name}"] = val.transpose(0, 1)
        else:  # GRU: r, z from both products; n = tanh(x_n + r * (W_hn h + b_hn))
            gx = torch.addmm(self.b_ih, x2, self.w_ih_t)
            gh = torch.addmm(self.b_hh, h_prev, self.w_hh_t)
            rz = gx[:, : 2 * hdim].add_(gh[:, : 2 * hdim]).sigmoid_()
            r = rz[:, :hdim]
            n = gx[:, 2 * hdim :].addcmul_(r, gh[:, 2 * hdim :]).tanh_()
            for name, val in (("r", r), ("z", rz[:, hdim:]), ("n", n)):
                result[f"gate_{name}"] = val.reshape(t_len, b, hdim).transpose(0, 1)
        return result


class _Buffers:
    """Batch-major work buffers of one step-loop layer.

    Two slots, so that one chunk's values can be written to disk while the next
    chunk is computed into the other. When the gates are not stored, their
    buffer is scratch space that every layer and slot shares (``shared_gates``).
    """

    def __init__(
        self,
        b: int,
        chunk: int,
        hdim: int,
        gates: int,
        device: torch.device,
        shared_gates: torch.Tensor | None = None,
    ) -> None:
        self.b, self.chunk, self.hdim, self.n_gates = b, chunk, hdim, gates
        size = b * chunk * hdim
        self.gates = (
            [shared_gates, shared_gates]
            if shared_gates is not None
            else [torch.empty(size * gates, device=device) for _ in range(2)]
        )
        self.c = [torch.empty(size, device=device) for _ in range(2)] if gates == 4 else []
        self.h = [torch.empty(size, device=device) for _ in range(2)]

    def gate_view(self, slot: int, t_len: int) -> torch.Tensor:
        return self.gates[slot][: self.b * t_len * self.n_gates * self.hdim].view(
            self.b, t_len, self.n_gates * self.hdim
        )

    def c_view(self, slot: int, t_len: int) -> torch.Tensor:
        return self.c[slot][: self.b * t_len * self.hdim].view(self.b, t_len, self.hdim)

    def h_view(self, slot: int, t_len: int) -> torch.Tensor:
        return self.h[slot][: self.b * t_len * self.hdim].view(self.b, t_len, self.hdim)


class _StepWeights:
    """One layer's weights laid out for the step loop (shared by every lane)."""

    def __init__(self, spec: RNNSpec, rnn: nn.RNNBase, layer: int, device: torch.device) -> None:
        hdim = spec.hidden_size
        self.hdim = hdim
        self.lstm = spec.rnn_type == "LSTM"
        w_ih, w_hh, b_ih, b_hh = _layer_weights(rnn, layer, device)
        self.b_h: torch.Tensor | None = None
        if self.lstm:
            # Rows reordered i, f, o, g so that one sigmoid covers three gates.
            perm = torch.cat(
                [torch.arange(a * hdim, (a + 1) * hdim, device=device) for a in (0, 1, 3, 2)]
            )
            w_ih, w_hh, b_ih, b_hh = w_ih[perm], w_hh[perm], b_ih[perm], b_hh[perm]
            self.b_x = (b_ih + b_hh).contiguous()
            self.gate_cols = {"i": 0, "f": 1, "o": 2, "g": 3}
        else:  # GRU, PyTorch order r, z, n
            self.b_x = b_ih.contiguous()
            self.b_h = b_hh.contiguous()
            self.gate_cols = {"r": 0, "z": 1, "n": 2}
        self.w_ih_t = w_ih.t().contiguous()
        self.w_hh_t = w_hh.t().contiguous()


class _StepLayer(_Layer):
    """A step loop that keeps every intermediate (CPU path for ``c`` and gates).

    The input projection of the whole chunk is one ``addmm`` into the gate
    buffer; each step then adds the recurrent product in place and applies the
    nonlinearities in place, writing ``c`` and ``h`` straight into batch-major
    output buffers, so a stream's rows of a chunk are one contiguous block for
    the writer. The views each step needs are built once per chunk length and
    reused, which keeps Python overhead to the few ATen calls of the step.
    """

    def __init__(
        self, weights: _StepWeights, kinds: list[str], buffers: _Buffers, device: torch.device
    ) -> None:
        self.w = weights
        self.kinds = kinds
        self.buf = buffers
        self.hdim = weights.hdim
        self.lstm = weights.lstm
        self.hp = torch.empty(buffers.b, 3 * self.hdim, device=device) if not self.lstm else None
        self._views: dict[tuple[int, int], list[tuple[torch.Tensor, ...]]] = {}

    def _step_views(self, slot: int, t_len: int) -> list[tuple[torch.Tensor, ...]]:
        views = self._views.get((slot, t_len))
        if views is None:
            hd = self.hdim
            g, h = self.buf.gate_view(slot, t_len), self.buf.h_view(slot, t_len)
            views = []
            for t in range(t_len):
                gt = g[:, t]
                if self.lstm:
                    ct = self.buf.c_view(slot, t_len)[:, t]
                    views.append(
                        (gt, gt[:, : 3 * hd], gt[:, 3 * hd :], gt[:, :hd], gt[:, hd : 2 * hd],
                         gt[:, 2 * hd : 3 * hd], ct, h[:, t])
                    )  # fmt: skip
                else:
                    assert self.hp is not None
                    hp = self.hp
                    views.append(
                        (gt[:, : 2 * hd], gt[:, :hd], gt[:, hd : 2 * hd], gt[:, 2 * hd :],
                         hp[:, : 2 * hd], hp[:, 2 * hd :], h[:, t])
                    )  # fmt: skip
            self._views[(slot, t_len)] = views
        return views

    def run(self, x: torch.Tensor, state: State, slot: int) -> tuple[Outputs, torch.Tensor, State]:
        w = self.w
        b, t_len, _ = x.shape
        g = self.buf.gate_view(slot, t_len)
        torch.addmm(w.b_x, x.reshape(b * t_len, -1), w.w_ih_t, out=g.view(b * t_len, -1))
        views = self._step_views(slot, t_len)
        h_prev = state[0]
        if self.lstm:
            c_prev = state[1]
            for gt, sig, gg, i, f, o, ct, ht in views:
                gt.addmm_(h_prev, w.w_hh_t)
                sig.sigmoid_()
                gg.tanh_()
                torch.mul(f, c_prev, out=ct)
                ct.addcmul_(i, gg)
                torch.tanh(ct, out=ht)
                ht.mul_(o)
                h_prev, c_prev = ht, ct
            new_state: State = (h_prev.clone(), c_prev.clone())
        else:
            assert self.hp is not None
            assert w.b_h is not None
            for rz, r, z, n, hp_rz, hp_n, ht in views:
                torch.addmm(w.b_h, h_prev, w.w_hh_t, out=self.hp)
                rz.add_(hp_rz).sigmoid_()
                n.addcmul_(r, hp_n).tanh_()
                torch.sub(h_prev, n, out=ht)
                ht.mul_(z).add_(n)
                h_prev = ht
            new_state = (h_prev.clone(),)
        h = self.buf.h_view(slot, t_len)
        outputs: Outputs = {}
        if "h" in self.kinds:
            outputs["h"] = h
        if "c" in self.kinds:
            outputs["c"] = self.buf.c_view(slot, t_len)
        if "gates" in self.kinds:
            hd = self.hdim
            for name, col in w.gate_cols.items():
                outputs[f"gate_{name}"] = g[:, :, col * hd : (col + 1) * hd]
        return outputs, h, new_state


@dataclass
class LaneResult:
    """A chunk's values for streams ``[b0, b1)``; tensors are ``(b1 - b0, T, ...)``."""

    b0: int
    b1: int
    values: dict[tuple[int, str], torch.Tensor]  # (layer index, kind) -> (n, T, H)
    top_ids: torch.Tensor | None = None  # int32 (n, T, k)
    top_p: torch.Tensor | None = None  # float32 (n, T, k)
    surprisal: torch.Tensor | None = None  # float32 (n, T), bits


def _one_thread() -> None:
    torch.set_num_threads(1)  # per thread: the lanes' own operations only


class Engine:
    """The model's layers and decoder on one device, run chunk by chunk over ``B`` streams.

    ``strategy``: ``"step"`` (step loop for layers whose ``c`` or gates are
    wanted), ``"native"`` (library kernels, gates and ``c`` recomputed), or
    ``None`` for the device's better one (step on CPU, native on CUDA).

    On the CPU the step loop runs in ``lanes`` threads (default: torch's thread
    count), each owning a contiguous share of the streams and running its
    operations single-threaded. A step is about seven small operations; run on
    all cores, each one ends in a barrier of the thread team, which costs little
    on an idle machine but a lot when another process holds a core. Lanes meet
    once per chunk instead of seven times per step, and were as fast as
    ``nn.LSTM`` (0.97-1.0x) where the team-parallel loop reached 0.95x.
    """

    def __init__(
        self,
        model: RNNLanguageModel,
        kinds: list[str],
        streams: int,
        chunk: int,
        device: torch.device,
        strategy: str | None = None,
        lanes: int | None = None,
    ) -> None:
        spec = model.spec
        self.spec, self.kinds, self.device = spec, kinds, device
        self.streams, self.chunk = streams, chunk
        if strategy is None:
            strategy = "native" if device.type == "cuda" else "step"
        needs_steps = (
            strategy == "step"
            and ("c" in kinds or "gates" in kinds)
            and spec.rnn_type in ("LSTM", "GRU")
        )
        rnn = model.rnn
        self._pool: ThreadPoolExecutor | None = None
        self.lanes: list[tuple[int, int, list[_Layer]]]
        if needs_steps:
            n_lanes = max(1, min(lanes or torch.get_num_threads(), streams))
            bounds = [round(j * streams / n_lanes) for j in range(n_lanes + 1)]
            weights = [_StepWeights(spec, rnn, i, device) for i in range(spec.layers)]
            n_gates, hdim = len(spec.gates), spec.hidden_size
            self.lanes = []
            for b0, b1 in itertools.pairwise(bounds):
                scratch = (
                    None
                    if "gates" in kinds
                    else torch.empty((b1 - b0) * chunk * n_gates * hdim, device=device)
                )
                layers: list[_Layer] = [
                    _StepLayer(
                        w, kinds,
                        _Buffers(b1 - b0, chunk, hdim, n_gates, device, shared_gates=scratch),
                        device,
                    )
                    for w in weights
                ]  # fmt: skip
                self.lanes.append((b0, b1, layers))
            if n_lanes > 1:
                self._pool = ThreadPoolExecutor(
                    n_lanes, thread_name_prefix="extract-lane", initializer=_one_thread
                )
        else:
            native: list[_Layer] = [
                _NativeLayer(spec, rnn, i, device, kinds) for i in range(spec.layers)
            ]
            self.lanes = [(0, streams, native)]
        self.embedding = model.encoder.weight.detach().to(device=device, dtype=torch.float32)
        self.dec_w_t = model.decoder.weight.detach().to(device=device, dtype=torch.float32).t()
        self.dec_b = model.decoder.bias.detach().to(device=device, dtype=torch.float32)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def zero_state(self) -> list[State]:
        shape = (self.streams, self.spec.hidden_size)
        n = 2 if self.spec.rnn_type == "LSTM" else 1
        return [
            tuple(torch.zeros(shape, device=self.device) for _ in range(n))
            for _ in range(self.spec.layers)
        ]

    def run_chunk(
        self,
        ids: torch.Tensor,
        state: list[State],
        slot: int = 0,
        targets: torch.Tensor | None = None,
        topk: int = 0,
        surprisal: bool = False,
        on_lane: Callable[[LaneResult], None] | None = None,
    ) -> list[LaneResult]:
        """Run ids ``(B, T)`` from ``state`` (replaced in place by the state after the chunk).

        Values may be views of the buffers of ``slot`` (0 or 1): they stay valid
        until the next chunk computed into the same slot. With ``topk`` or
        ``surprisal``, ``targets[b, t]`` is the token after position ``t`` (-1:
        none, surprisal NaN). ``on_lane(result)`` is called in each lane's own
        thread as soon as that lane's share is computed (to store it there).
        """

        def lane(b0: int, b1: int, layers: list[_Layer]) -> tuple[LaneResult, list[State]]:
            with torch.inference_mode():  # thread-local: a lane thread enters it itself
                x = torch.nn.functional.embedding(ids[b0:b1], self.embedding)
                out = LaneResult(b0, b1, {})
                new: list[State] = []
                for i, layer in enumerate(layers):
                    outputs, x, st = layer.run(x, tuple(t[b0:b1] for t in state[i]), slot)
                    new.append(st)
                    for kind, v in outputs.items():
                        out.values[(i, kind)] = v
                if topk or surprisal:
                    assert targets is not None
                    out.top_ids, out.top_p, out.surprisal = self._predict(
                        x, targets[b0:b1], topk, surprisal
                    )
                if on_lane is not None:
                    on_lane(out)
                return out, new

        if self._pool is None:
            done = [lane(*spec) for spec in self.lanes]
        else:
            done = list(self._pool.map(lambda spec: lane(*spec), self.lanes))
        if len(done) == 1:
            state[:] = done[0][1]
        else:
            for i in range(len(state)):
                state[i] = tuple(
                    torch.cat([new[i][j] for _, new in done]) for j in range(len(state[i]))
                )
        return [r for r, _ in done]

    def _predict(
        self, h: torch.Tensor, targets: torch.Tensor, topk: int, surprisal: bool
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """Top-k ids and probabilities ``(n, T, k)`` and surprisal in bits ``(n, T)``.

        ``h`` is the last layer's output ``(n, T, H)``; ``targets[b, t]`` the token
        after position ``t`` (-1 where there is none: surprisal NaN).
        """
        b, t_len, hdim = h.shape
        rows = b * t_len
        h2 = h.reshape(rows, hdim)
        tg = targets.reshape(rows)
        vocab = self.dec_b.shape[0]
        top_ids = torch.empty(rows, topk, dtype=torch.int32, device=self.device) if topk else None
        top_p = torch.empty(rows, topk, device=self.device) if topk else None
        surp = torch.empty(rows, device=self.device) if surprisal else None
        step = max(1, _LOGIT_ELEMENTS // vocab)
        for a in range(0, rows, step):
            z = min(rows, a + step)
            logits = torch.addmm(self.dec_b, h2[a:z], self.dec_w_t)
            lse = torch.logsumexp(logits, dim=1, keepdim=True)
            if top_ids is not None and top_p is not None:
                vals, idx = logits.topk(topk, dim=1)
                top_ids[a:z] = idx
                top_p[a:z] = (vals - lse).exp_()
            if surp is not None:
                t = tg[a:z]
                picked = logits.gather(1, t.clamp(min=0).unsqueeze(1))
                s = (lse - picked).squeeze(1).div_(_LN2)
                surp[a:z] = torch.where(t >= 0, s, torch.full_like(s, math.nan))
        return (
            top_ids.view(b, t_len, topk) if top_ids is not None else None,
            top_p.view(b, t_len, topk) if top_p is not None else None,
            surp.view(b, t_len) if surp is not None else None,
        )


@contextlib.contextmanager
def _exact_math(device: torch.device) -> Iterator[None]:
    """Full float32 products on CUDA (no TF32), so results match the CPU to 1e-4."""
    if device.type != "cuda":
        with torch.inference_mode():
            yield
        return
    matmul = torch.backends.cuda.matmul.allow_tf32
    precision = torch.get_float32_matmul_precision()
    try:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.set_float32_matmul_precision("highest")
        with torch.backends.cudnn.flags(enabled=True, allow_tf32=False), torch.inference_mode():
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = matmul
        torch.set_float32_matmul_precision(precision)


# --------------------------------------------------------------------------- #
# Checkpoints
# --------------------------------------------------------------------------- #


def _fingerprint(
    model: RNNLanguageModel,
    model_vocab: list[str],
    corpus_dir: Path,
    settings: dict[str, Any],
) -> str:
    """A digest of everything the output depends on: weights, vocab, corpus, settings."""
    h = hashlib.sha256()
    h.update(json.dumps({"settings": settings, "spec": model.spec.to_json()}).encode())
    h.update(json.dumps(model_vocab).encode())
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    for name in ("manifest.json", "vocab.json", "tokens.npy"):
        with open(corpus_dir / name, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


@dataclass
class _Checkpoint:
    fingerprint: str
    next_chunk: int
    state: list[State]
    surprisal_max: float


def _save_checkpoint(path: Path, ck: _Checkpoint) -> None:
    meta = {
        "version": _CHECKPOINT_VERSION,
        "fingerprint": ck.fingerprint,
        "next_chunk": ck.next_chunk,
        "surprisal_max": ck.surprisal_max,
        "layers": [len(s) for s in ck.state],
    }
    arrays: dict[str, Any] = {
        f"s{i}_{j}": t.detach().to("cpu").numpy()
        for i, layer in enumerate(ck.state)
        for j, t in enumerate(layer)
    }
    # One writer per work folder: a killed attempt's temp file is overwritten by the next.
    with atomic_file(path, unique_temp=False) as fh:
        np.savez(fh, meta=np.array(json.dumps(meta)), **arrays)


class _Syncer:
    """Moves finished rows towards the disk and writes checkpoints, off the compute thread.

    Every second it asks the kernel to start writing the rows each stream has
    finished since the last time, so pages are on their way to disk long before
    anyone waits for them (and never while a later chunk still writes into
    them). A checkpoint handed over is written only after the files are synced
    (fdatasync), so it never claims rows that a crash of the machine could lose;
    the compute thread does not wait for either.
    """

    def __init__(
        self, files: list[ArrayFile], starts: np.ndarray, ck_path: Path, every_s: float = 1.0
    ) -> None:
        self.files, self.starts, self.ck_path, self.every_s = files, starts, ck_path, every_s
        self._flushed = np.zeros_like(starts)
        self._done = np.zeros_like(starts)
        self._pending: _Checkpoint | None = None
        self._busy = False
        self._stop = False
        self._error: BaseException | None = None
        self._cv = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name="extract-sync", daemon=True)
        self._thread.start()

    def rows_done(self, done: np.ndarray) -> None:
        """Rows ``[0, done[b])`` of stream ``b`` are written and will not change."""
        with self._cv:
            self._done = done
        self._check()

    def idle(self) -> bool:
        with self._cv:
            return self._pending is None and not self._busy

    def checkpoint(self, ck: _Checkpoint) -> None:
        with self._cv:
            self._pending = ck
            self._cv.notify()
        self._check()

    def close(self) -> None:
        """Stop after the sync in progress; a checkpoint not yet started is dropped."""
        with self._cv:
            self._stop = True
            self._cv.notify()
        self._thread.join()
        self._check()

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def _loop(self) -> None:
        try:
            while True:
                with self._cv:
                    self._cv.wait_for(
                        lambda: self._stop or self._pending is not None, timeout=self.every_s
                    )
                    if self._stop:
                        return
                    done, pending = self._done, self._pending
                    self._pending = None
                    self._busy = pending is not None
                self._writeback(done)
                if pending is not None:
                    for f in self.files:
                        f.sync()
                    _save_checkpoint(self.ck_path, pending)
                    with self._cv:
                        self._busy = False
        except BaseException as exc:  # handed to the compute thread by _check()
            self._error = exc

    def _writeback(self, done: np.ndarray) -> None:
        for b in np.flatnonzero(done > self._flushed):
            a, z = int(self.starts[b] + self._flushed[b]), int(self.starts[b] + done[b])
            for f in self.files:
                f.start_writeback(a, z)
        self._flushed = np.maximum(self._flushed, done)


def _load_checkpoint(path: Path, fingerprint: str, device: torch.device) -> _Checkpoint | None:
    """The checkpoint at ``path`` if it belongs to this very job, else None."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("version") != _CHECKPOINT_VERSION or meta.get("fingerprint") != fingerprint:
                return None
            state = [
                tuple(torch.from_numpy(z[f"s{i}_{j}"].copy()).to(device) for j in range(n))
                for i, n in enumerate(meta["layers"])
            ]
            return _Checkpoint(
                fingerprint=fingerprint,
                next_chunk=int(meta["next_chunk"]),
                state=state,
                surprisal_max=float(meta["surprisal_max"]),
            )
    except (OSError, ValueError, KeyError, TypeError):
        return None


# --------------------------------------------------------------------------- #
# Progress
# --------------------------------------------------------------------------- #


def _count(x: float) -> str:
    """12, 12.3k, 123k, 1.2M, 12M: a count the way people read it."""
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= div:
            v = x / div
            return f"{v:.1f}{suffix}" if v < 10 else f"{v:.0f}{suffix}"
    return f"{x:.0f}"


class _Progress:
    """Reports ``Layer states: 1.2M of 4M tokens, 25k tokens/s``, at most twice a second."""

    def __init__(self, fn: ProgressFn, total: int, done: int) -> None:
        self.fn, self.total, self.first = fn, total, done
        self.t0 = time.monotonic()
        self.last = -math.inf

    def __call__(self, done: int, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < _PROGRESS_EVERY_S:
            return
        self.last = now
        msg = f"Extracted {_count(done)} of {_count(self.total)} tokens"
        if done > self.first and now > self.t0:
            msg += f" ({_count((done - self.first) / (now - self.t0))} tokens a second)"
        self.fn(0.01 + 0.97 * done / self.total, msg + ".")


# --------------------------------------------------------------------------- #
# The extraction
# --------------------------------------------------------------------------- #


def _resolve_device(device: str | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _as_numpy(t: torch.Tensor) -> np.ndarray:
    """A CPU numpy view of ``t`` (B, T, ...), batch-major and contiguous per stream."""
    if t.device.type != "cpu":
        t = t.contiguous().to("cpu")
    return t.numpy()


def _write_streams(f: ArrayFile, arr: np.ndarray, row0: np.ndarray, counts: np.ndarray) -> None:
    """Write ``arr[b, :counts[b]]`` at row ``row0[b]`` for each stream ``b``."""
    f.write_spans(row0, arr, counts)


def _existing_result(final_dir: Path, fingerprint: str) -> Manifest | None:
    if not final_dir.exists():
        return None
    try:
        manifest = StateSet.open(final_dir).manifest
    except InputError:
        return None
    info = manifest.extra.get("extraction")
    if isinstance(info, dict) and info.get("fingerprint") == fingerprint:
        return manifest
    return None


@dataclass
class _Plan:
    """Everything one extraction run needs to know, resolved and checked."""

    n: int
    starts: np.ndarray  # int64 (B,) first token of each stream
    lengths: np.ndarray  # int64 (B,) tokens per stream
    chunk: int
    n_chunks: int
    topk: int
    surprisal: bool
    infos: list[SourceInfo]
    fingerprint: str
    extra: dict[str, Any]

    def tokens_done(self, next_chunk: int) -> int:
        return int(np.minimum(self.lengths, next_chunk * self.chunk).sum())


def extract(
    model: RNNLanguageModel,
    model_vocab: list[str],
    corpus_dir: Path,
    final_dir: Path,
    params: ExtractParams,
    *,
    work_dir: Path,
    progress: ProgressFn,
    device: str | None = None,
    extra: dict[str, Any] | None = None,
    checkpoint_every_s: float = 5.0,
) -> Manifest:
    """Run ``model`` over the corpus at ``corpus_dir``; publish a state set at ``final_dir``.

    ``model_vocab[i]`` is the word of model id ``i``. ``work_dir`` must stay the
    same across attempts of one job and lie on the filesystem of ``final_dir``;
    it holds the partial output and the checkpoint (see the module doc), written
    every ``checkpoint_every_s`` seconds. If ``final_dir`` already holds this very
    extraction (a retry after the publish), its manifest is returned. ``extra``
    is kept in the manifest beside ``extra["extraction"]`` (parameters, streams,
    device, notes). ``device`` None picks CUDA when there is one.

    Raises ``InputError`` for parameters or a corpus the model cannot read
    (before any heavy work), ``Cancelled`` when ``progress`` raises it.
    """
    spec = model.spec
    kinds, notes = _check_request(model_vocab, spec, params, extra)
    corpus_dir, final_dir, work_dir = Path(corpus_dir), Path(final_dir), Path(work_dir)
    corpus = open_corpus(corpus_dir)
    table, missing, unk = _map_vocab(corpus.vocab, model_vocab)
    n = corpus.length
    dev = _resolve_device(device)
    starts, lengths, settings = _settings(params, kinds, n, dev)

    progress(0.0, "Checking the corpus against the model's vocabulary.")
    reader = _TokenReader(corpus.ids)
    try:
        unknown = _unknown_tokens(reader, n, missing, unk, model_vocab)
        fingerprint = _fingerprint(model, model_vocab, corpus_dir, settings)
        done = _existing_result(final_dir, fingerprint)
        if done is not None:
            progress(1.0, "These states were extracted already.")
            return done
        chunk = int(settings["chunk"])
        plan = _Plan(
            n=n,
            starts=starts,
            lengths=lengths,
            chunk=chunk,
            n_chunks=-(-int(lengths[0]) // chunk),
            topk=params.topk,
            surprisal=params.surprisal,
            infos=source_infos(spec, kinds, params.dtype),
            fingerprint=fingerprint,
            extra={
                **(extra or {}),
                "extraction": {
                    **settings,
                    "fingerprint": fingerprint,
                    "model": spec.to_json(),
                    "device": dev.type,
                    "unknown_tokens": unknown,
                    "notes": notes,
                    "surprisal": "bits; NaN at stream starts" if params.surprisal else None,
                },
            },
        )
        with _exact_math(dev):
            engine = Engine(model, kinds, len(starts), chunk, dev)
            try:
                run = _Run(engine, plan, reader, table, model_vocab, corpus, progress)
                return run.execute(final_dir, work_dir, checkpoint_every_s)
            finally:
                engine.close()
    finally:
        reader.close()


def _check_request(
    model_vocab: list[str], spec: RNNSpec, params: ExtractParams, extra: dict[str, Any] | None
) -> tuple[list[str], list[str]]:
    """Refuse what cannot be extracted before any work; returns ``_validate``'s
    ``(kinds, notes)``."""
    if len(model_vocab) != spec.vocab_size:
        raise InputError(
            f"the model's vocabulary has {len(model_vocab)} words but its embedding "
            f"{spec.vocab_size} rows"
        )
    kinds, notes = _validate(params, spec)
    if extra is not None:
        json.dumps(extra, allow_nan=False)
    return kinds, notes


def _settings(
    params: ExtractParams, kinds: list[str], n: int, dev: torch.device
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """``(starts, lengths, settings)``: the streams over ``n`` tokens and the settings
    that decide what is stored (part of the fingerprint and of the manifest)."""
    wanted = params.streams if params.streams is not None else default_streams(n, dev.type)
    starts, lengths = plan_streams(n, wanted)
    settings = {
        "values": kinds,
        "topk": params.topk,
        "surprisal": params.surprisal,
        "streams": len(starts),
        "chunk": min(params.chunk, int(lengths[0])),
    }
    if params.dtype != "float32":
        # Only when not the default, so a float32 run's fingerprint is what it always was
        # (a checkpoint written before float16 existed still resumes).
        settings["dtype"] = params.dtype
    return starts, lengths, settings


def _unknown_tokens(
    reader: _TokenReader, n: int, missing: np.ndarray, unk: int | None, model_vocab: list[str]
) -> dict[str, Any] | None:
    """What the manifest says about corpus words the model does not know (read
    through ``<unk>``), or None when there are none."""
    if unk is None or not missing.any():
        return None
    return {
        "token": model_vocab[unk],
        "types": int(missing.sum()),
        "occurrences": _count_unknown(reader, n, missing),
    }


@dataclass
class _Write:
    """Rows ``values[b, :counts[b]]`` go to ``file`` at row ``row0[b]``, for each stream b."""

    file: ArrayFile
    values: torch.Tensor | np.ndarray  # (B, T, ...)
    row0: np.ndarray
    counts: np.ndarray
    surprisal: bool = False


class _Run:
    """One attempt at an extraction: open the files, run the chunks, publish."""

    def __init__(
        self,
        engine: Engine,
        plan: _Plan,
        reader: _TokenReader,
        table: np.ndarray,
        vocab: list[str],
        corpus: CorpusData,
        progress: ProgressFn,
    ) -> None:
        self.engine, self.plan, self.reader, self.table = engine, plan, reader, table
        self.vocab, self.corpus, self.progress = vocab, corpus, progress
        self.doc_starts = corpus.doc_starts
        self.files: list[ArrayFile] = []
        self.completed: _Checkpoint | None = None
        self.surprisal_max = 0.0
        self._max_lock = threading.Lock()

    def execute(self, final_dir: Path, work_dir: Path, checkpoint_every_s: float) -> Manifest:
        plan = self.plan
        work_dir.mkdir(parents=True, exist_ok=True)
        ck_path = work_dir / CHECKPOINT_NAME
        partial = work_dir / PARTIAL_NAME
        ck = (
            _load_checkpoint(ck_path, plan.fingerprint, self.engine.device)
            if partial.is_dir()
            else None
        )
        if ck is None:
            ck_path.unlink(missing_ok=True)
            shutil.rmtree(partial, ignore_errors=True)
        with StateSetWriter(final_dir, tmp_dir=partial) as writer:
            try:
                manifest = self._fill(writer, ck, ck_path, checkpoint_every_s)
            except Cancelled:
                writer.abort()
                ck_path.unlink(missing_ok=True)
                raise
            except BaseException:
                # Keep what is complete for the next attempt: sync it, then record how far.
                if self.completed is not None:
                    with contextlib.suppress(Exception):
                        for f in self.files:
                            f.sync()
                        _save_checkpoint(ck_path, self.completed)
                raise
        ck_path.unlink(missing_ok=True)
        self.progress(1.0, f"Extracted the states of {_count(plan.n)} tokens.")
        return manifest

    def _open(self, writer: StateSetWriter, fresh: bool) -> None:
        plan = self.plan
        self.tokens = writer.open_tokens(plan.n, self.vocab)
        self.sources = {
            (info.layer - 1, info.kind): writer.open_source(info, plan.n) for info in plan.infos
        }
        self.files = [self.tokens, *self.sources.values()]
        self.top: tuple[ArrayFile, ArrayFile] | None = None
        if plan.topk:
            ids, weights = writer.open_annotation(
                AnnotationInfo("top_predictions", "wordvec", k=plan.topk), plan.n, weights=True
            )
            assert weights is not None
            self.top = (ids, weights)
            self.files += [ids, weights]
        self.surprisal_info = AnnotationInfo("surprisal", "scalar")
        self.surprisal: ArrayFile | None = None
        if plan.surprisal:
            self.surprisal, _ = writer.open_annotation(self.surprisal_info, plan.n)
            self.files.append(self.surprisal)
            if fresh:  # nothing predicts a stream's first token
                for s in plan.starts:
                    self.surprisal.write_rows(int(s), np.full(1, np.nan, np.float32))

    def _fill(
        self,
        writer: StateSetWriter,
        ck: _Checkpoint | None,
        ck_path: Path,
        checkpoint_every_s: float,
    ) -> Manifest:
        plan = self.plan
        state = ck.state if ck is not None else self.engine.zero_state()
        first = ck.next_chunk if ck is not None else 0
        self.surprisal_max = ck.surprisal_max if ck is not None else 0.0
        self._open(writer, fresh=ck is None)
        report = _Progress(self.progress, plan.n, plan.tokens_done(first))
        if first:
            at = plan.tokens_done(first)
            self.progress(
                0.01 + 0.97 * at / plan.n,
                f"Resuming at {_count(at)} of {_count(plan.n)} tokens.",
            )
        else:
            report(0, force=True)
        self.checkpoint_every_s = checkpoint_every_s
        self.last_checkpoint = time.monotonic()
        self.syncer = _Syncer(self.files, plan.starts, ck_path)
        self._run_chunks(first, state, report)
        report(plan.n, force=True)
        return self._publish(writer)

    def _run_chunks(self, first: int, state: list[State], report: _Progress) -> None:
        """Compute chunks ``first ..`` and write them, then close the syncer.

        On the CPU each lane writes its own streams' values as soon as it has
        computed them (see :meth:`_run_chunks_in_lanes`); on CUDA one thread
        writes chunk k while chunk k + 1 is computed into the other slot. On a
        failure other than ``Cancelled`` the chunks already computed still reach
        the files, so the checkpoint covers them.
        """
        if self.engine.device.type == "cpu":
            self._run_chunks_in_lanes(first, state, report)
            return
        plan = self.plan
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="extract-write")
        pending: deque[Future[None]] = deque()
        try:
            for k in range(first, plan.n_chunks):
                if len(pending) == 2:
                    pending.popleft().result()  # slot k % 2 is free again
                writes = self._chunk(k, state, k % 2)
                pending.append(pool.submit(self._write, k, writes, list(state)))
                report(plan.tokens_done(k + 1))
            while pending:
                pending.popleft().result()
        except Cancelled:
            pool.shutdown(wait=True, cancel_futures=True)
            with contextlib.suppress(Exception):
                self.syncer.close()
            raise
        except BaseException:
            # Let the chunks already computed reach the files, so the checkpoint covers them.
            for fut in pending:
                with contextlib.suppress(BaseException):
                    fut.result()
            pool.shutdown(wait=True)
            with contextlib.suppress(Exception):
                self.syncer.close()
            raise
        pool.shutdown(wait=True)
        self.syncer.close()

    def _run_chunks_in_lanes(self, first: int, state: list[State], report: _Progress) -> None:
        """The CPU's way: every lane stores its own share of a chunk right after
        computing it, while those values are still in its core's cache.

        The lanes already share the cores evenly and meet once per chunk; a
        separate writer thread took its time from one of them, and the other
        then waited at the meeting point (0.73-0.80x of ``nn.LSTM`` instead of
        the engine's 0.95-1.07x, docs/extraction.md). A chunk counts as
        complete once every lane has written it.
        """
        plan = self.plan
        try:
            for k in range(first, plan.n_chunks):
                writes = self._chunk(k, state, k % 2, on_lane=self._store)
                self._write(k, writes, list(state))
                report(plan.tokens_done(k + 1))
        except BaseException:
            with contextlib.suppress(Exception):
                self.syncer.close()
            raise
        self.syncer.close()

    def _publish(self, writer: StateSetWriter) -> Manifest:
        """Add what belongs to the whole state set and commit it."""
        plan = self.plan
        self.progress(0.98, "Publishing the state set.")
        writer.set_streams([int(s) for s in plan.starts], self.doc_starts)
        if plan.surprisal:
            self.surprisal_info.range = [0.0, round(self.surprisal_max, 3)]
        emb = self.engine.embedding
        if emb.numel() <= _MAX_EMBEDDING_ELEMENTS:
            writer.set_embedding(emb.to("cpu").numpy())
        self._copy_corpus_annotations(writer)
        writer.set_extra(plan.extra)
        return writer.commit()

    def _copy_corpus_annotations(self, writer: StateSetWriter) -> None:
        """The corpus' own tracks (a nesting depth, part of speech) travel with its states."""
        taken = {"top_predictions", "surprisal"}
        for info in self.corpus.annotations:
            values, _ = self.corpus.annotation(info)
            name = info.name if info.name not in taken else f"corpus_{info.name}"
            taken.add(name)
            copied = dataclasses.replace(info, name=name)
            writer.add_annotation(copied, np.asarray(values))

    def _chunk(
        self,
        k: int,
        state: list[State],
        slot: int,
        on_lane: Callable[[list[_Write]], None] | None = None,
    ) -> list[_Write]:
        """Compute chunk ``k`` of every stream from ``state`` (advanced in place).

        Returns what to write; the values may live in the buffers of ``slot``.
        With ``on_lane``, each lane hands its own writes to ``on_lane`` in its
        thread instead, and only the tokens are returned.
        """
        plan, engine = self.plan, self.engine
        dev = engine.device
        t0 = k * plan.chunk
        t_len = min(plan.chunk, int(plan.lengths[0]) - t0)
        counts = np.clip(plan.lengths - t0, 0, t_len)
        # Ids (B, T + 1): this chunk and the token after it in the same stream (-1: none).
        ext = np.full((len(plan.starts), t_len + 1), -1, dtype=np.int64)
        for b in np.flatnonzero(counts > 0):
            a = int(plan.starts[b]) + t0
            m = min(t_len + 1, int(plan.lengths[b]) - t0)
            ext[b, :m] = self.table[self.reader.read(a, a + m)]
        ids = np.where(ext[:, :t_len] >= 0, ext[:, :t_len], 0)
        row0 = plan.starts + t0
        writes = [_Write(self.tokens, ids.astype(np.int32), row0, counts)]
        predict = bool(plan.topk or plan.surprisal)
        targets = torch.from_numpy(np.ascontiguousarray(ext[:, 1:])).to(dev) if predict else None
        # Position t predicts t + 1; a stream's last position predicts nothing stored.
        s_counts = np.clip(np.minimum(counts, plan.lengths - t0 - 1), 0, None)

        def lane_writes(r: LaneResult) -> list[_Write]:
            lane = slice(r.b0, r.b1)
            out = [
                _Write(self.sources[(layer, kind)], t, row0[lane], counts[lane])
                for (layer, kind), t in r.values.items()
            ]
            if self.top is not None and r.top_ids is not None and r.top_p is not None:
                out.append(_Write(self.top[0], r.top_ids, row0[lane], counts[lane]))
                out.append(_Write(self.top[1], r.top_p, row0[lane], counts[lane]))
            if self.surprisal is not None and r.surprisal is not None:
                out.append(
                    _Write(self.surprisal, r.surprisal, row0[lane] + 1, s_counts[lane], True)
                )
            return out

        results = engine.run_chunk(
            torch.from_numpy(ids).to(dev), state, slot, targets, plan.topk, plan.surprisal,
            on_lane=(lambda r: on_lane(lane_writes(r))) if on_lane is not None else None,
        )  # fmt: skip
        if on_lane is None:
            for r in results:
                writes += lane_writes(r)
        return writes

    def _store(self, writes: list[_Write]) -> None:
        """Write ``writes`` to their files (any thread); keep the surprisal maximum."""
        for w in writes:
            values = w.values
            if isinstance(values, torch.Tensor) and w.file.dtype == np.float16:
                # torch rounds to float16 exactly as numpy does (to nearest even), six
                # times faster, and on CUDA before the copy to the host.
                values = values.to(torch.float16)
            arr = values if isinstance(values, np.ndarray) else _as_numpy(values)
            _write_streams(w.file, arr, w.row0, w.counts)
            if w.surprisal:
                finite = arr[np.isfinite(arr)]
                if finite.size:
                    top = float(finite.max())
                    with self._max_lock:
                        self.surprisal_max = max(self.surprisal_max, top)

    def _write(self, k: int, writes: list[_Write], state: list[State]) -> None:
        """Write the rest of chunk ``k``, then let it count as complete."""
        plan = self.plan
        self._store(writes)
        self.completed = _Checkpoint(plan.fingerprint, k + 1, state, self.surprisal_max)
        self.syncer.rows_done(np.minimum(plan.lengths, (k + 1) * plan.chunk))
        now = time.monotonic()
        if (
            k + 1 < plan.n_chunks
            and now - self.last_checkpoint >= self.checkpoint_every_s
            and self.syncer.idle()
        ):
            on_cpu = [tuple(t.to("cpu") for t in layer) for layer in state]
            self.syncer.checkpoint(dataclasses.replace(self.completed, state=on_cpu))
            self.last_checkpoint = now


def params_to_json(params: ExtractParams) -> dict[str, Any]:
    """The parameters as JSON (for a job's record)."""
    out = asdict(params)
    out["values"] = list(params.values)
    return out
