"""Reproduce the demo model: ``python -m workers.demo.train_demo``.

Generates the training text of the nested-parenthesis language
(:mod:`workers.demo.parens`, seed fixed), tokenises it by character, trains a
small LSTM with StateLab's own trainer on the CPU and writes the model folder
``workers/demo/parens-lstm/`` (safetensors weights, spec, vocabulary, manifest)
that a fresh installation turns into the demo project. It then reports the cell
whose state follows the nesting depth best on held-out text.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from workers.demo.parens import depth_track, parens_text

HERE = Path(__file__).resolve().parent
MODEL_DIR = HERE / "parens-lstm"
TRAIN_SEED = 7
TRAIN_CHARS = 300_000
PARAMS: dict[str, Any] = {
    "rnn_type": "LSTM",
    "layers": 1,
    "hidden_size": 32,
    "embedding_size": 16,
    "epochs": 3,
    "learning_rate": 0.01,
    "seq_len": 50,
    "batch_size": 32,
    "seed": 0,
}


def depth_cells(model_dir: Path, text: str) -> list[dict[str, float]]:
    """Correlation of every cell state with the nesting depth, best first."""
    import torch

    from workers.core.modelfile import load_model

    loaded = load_model(model_dir)
    index = {t: i for i, t in enumerate(loaded.vocab)}
    ids = torch.tensor([index[c] for c in text], dtype=torch.long).view(-1, 1)
    with torch.no_grad():
        emb = loaded.model.encoder(ids)
        rnn = loaded.model.rnn
        h = torch.zeros(rnn.num_layers, 1, rnn.hidden_size)
        c = torch.zeros_like(h)
        cells = []
        x = emb
        for t in range(x.shape[0]):
            _, (h, c) = rnn(x[t : t + 1], (h, c))
            cells.append(c[-1, 0].clone())
    states = torch.stack(cells).numpy()
    depth = depth_track(text)
    out = []
    for k in range(states.shape[1]):
        r = float(np.corrcoef(states[:, k], depth)[0, 1])
        out.append({"cell": k, "r": round(r, 4)})
    return sorted(out, key=lambda x: -abs(x["r"]))


def main(argv: list[str] | None = None) -> int:
    from workers.core.corpus import tokenize_text
    from workers.core.store import write_corpus
    from workers.core.train import TrainParams, train

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=MODEL_DIR)
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="statelab-demo-"))
    try:
        text = parens_text(TRAIN_CHARS, TRAIN_SEED)
        ids, vocab, docs = tokenize_text(text, "char")
        write_corpus(tmp / "corpus", ids, vocab, docs, {"name": "parens"})
        t = time.perf_counter()
        last = [0.0]

        def progress(fraction: float, message: str) -> None:
            if time.perf_counter() - last[0] > 5:
                last[0] = time.perf_counter()
                print(f"{fraction:5.1%} {message}", file=sys.stderr)

        metrics = train(
            tmp / "corpus", tmp / "model", TrainParams(**PARAMS), progress=progress, device="cpu"
        )
        seconds = time.perf_counter() - t
        if args.out.exists():
            shutil.rmtree(args.out)
        shutil.copytree(tmp / "model", args.out)
        held_out = parens_text(5_000, TRAIN_SEED + 1)
        best = depth_cells(args.out, held_out)[:3]
        report = {"train_seconds": round(seconds, 1), "metrics": metrics, "depth_cells": best}
        print(json.dumps(report, indent=2, default=str))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
