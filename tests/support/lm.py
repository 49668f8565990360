"""Tiny recurrent language models, their files and an independent reference forward pass.

Tests of model uploads, extraction and training need real weight files in the
formats users upload (safetensors, ``torch.save`` state dicts in the
word-language-model layout) and a way to recompute every extracted value
without the extraction engine: :func:`reference_states` runs one single-layer
``torch.nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` per layer, one token at a time,
starting from the zero state at every stream start.
"""

from __future__ import annotations

import io
import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from workers.core.rnnlm import RNNLanguageModel, RNNSpec

__all__ = [
    "corpus_create",
    "reference_states",
    "safetensors_bytes",
    "state_dict_bytes",
    "tiny_model",
    "vocab_bytes",
]


def tiny_model(
    *,
    rnn_type: str = "LSTM",
    vocab_size: int = 6,
    embedding_size: int = 5,
    hidden_size: int = 7,
    layers: int = 2,
    tied: bool = False,
    seed: int = 0,
) -> RNNLanguageModel:
    """A small model with random (seeded) weights of a visible scale."""
    torch.manual_seed(seed)
    spec = RNNSpec(
        rnn_type=rnn_type,
        vocab_size=vocab_size,
        embedding_size=embedding_size,
        hidden_size=hidden_size,
        layers=layers,
        tied=tied,
    )
    model = RNNLanguageModel(spec)
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-0.8, 0.8)
    return model.eval()


def safetensors_bytes(model: nn.Module) -> bytes:
    from safetensors.torch import save

    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    return bytes(save(state))


def state_dict_bytes(model: nn.Module) -> bytes:
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getvalue()


def vocab_bytes(vocab: list[str]) -> bytes:
    return json.dumps(vocab).encode()


def corpus_create(project: Any, user: Any, ids: np.ndarray, vocab: list[str], name: str = "c"):
    """A corpus row and folder written straight through the store writer."""
    from backend.artifacts.models import Corpus
    from backend.core.storage import new_dir
    from workers.core.store import write_corpus

    rel, final = new_dir("corpora")
    write_corpus(final, np.asarray(ids, dtype=np.int32), vocab, [0], {"name": name})
    return Corpus.objects.create(
        project=project,
        name=name,
        tokenization="char" if all(len(t) == 1 for t in vocab) else "word",
        length=len(ids),
        vocab_size=len(vocab),
        documents=1,
        path=rel,
        created_by=user,
    )


def _layer_module(model: RNNLanguageModel, layer: int) -> nn.RNNBase:
    spec = model.spec
    size_in = spec.embedding_size if layer == 0 else spec.hidden_size
    if spec.rnn_type == "LSTM":
        one: nn.RNNBase = nn.LSTM(size_in, spec.hidden_size, 1)
    elif spec.rnn_type == "GRU":
        one = nn.GRU(size_in, spec.hidden_size, 1)
    else:
        act = "tanh" if spec.rnn_type == "RNN_TANH" else "relu"
        one = nn.RNN(size_in, spec.hidden_size, 1, nonlinearity=act)
    src = model.rnn
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(one, f"{name}_l0").copy_(getattr(src, f"{name}_l{layer}"))
    return one.double().eval()


def reference_states(
    model: RNNLanguageModel, ids: np.ndarray, stream_starts: list[int]
) -> dict[tuple[int, str], np.ndarray]:
    """Every layer's ``h`` (and ``c`` for an LSTM) at every position, float64.

    Keys are ``(layer, kind)`` with layers counted from 0; values are ``(N, H)``.
    The state is zero before each position in ``stream_starts``.
    """
    spec = model.spec
    n = len(ids)
    layers = [_layer_module(model, k) for k in range(spec.layers)]
    emb = model.encoder.weight.detach().double()
    out: dict[tuple[int, str], np.ndarray] = {}
    for k in range(spec.layers):
        out[(k, "h")] = np.zeros((n, spec.hidden_size))
        if spec.rnn_type == "LSTM":
            out[(k, "c")] = np.zeros((n, spec.hidden_size))
    bounds = [*sorted(set(stream_starts)), n]
    with torch.no_grad():
        for a, b in itertools.pairwise(bounds):
            states: list[Any] = [None] * spec.layers
            for t in range(a, b):
                x = emb[int(ids[t])].view(1, 1, -1)
                for k, rnn in enumerate(layers):
                    x, states[k] = rnn(x, states[k])
                    if spec.rnn_type == "LSTM":
                        h, c = states[k]
                        out[(k, "c")][t] = c[0, 0].numpy()
                    else:
                        h = states[k]
                    out[(k, "h")][t] = h[0, 0].numpy()
    return out


def write_files(dest: Path, **files: bytes) -> dict[str, Path]:
    dest.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, data in files.items():
        (dest / name).write_bytes(data)
        paths[name] = dest / name
    return paths
