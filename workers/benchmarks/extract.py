"""State extraction (targets: >= 0.85x of plain nn.LSTM forward on a CPU; memory flat in N).

Speed: a random 2-layer LSTM of 650 cells (embedding 650, vocab 10k) over a
generated corpus. In the same run, alternately, (a) a plain ``nn.LSTM`` forward
over the same batches (``B`` contiguous streams, chunks of 35 steps, state
carried, ``h`` of the top layer only, nothing kept) and (b) ``extract`` writing
``h`` and ``c`` of both layers into a real state set on disk (top-k and
surprisal off), and (c), unless ``--extract-float16 0``, the same extraction
storing float16 (``dtype="float16"``: half the bytes). All are timed by the wall
clock and by the process' CPU time (the latter is steadier on a shared machine).
The ratio is the median over the repeated pairs; a missed target says by how much.

Memory: the same extraction (a small model, top-k and surprisal on) over 1M
and over 4M tokens, each in a subprocess of its own that reports its peak
resident set (the kernel's ``VmHWM``, reset when the child starts); the two
peaks must agree within 10 %.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from workers.benchmarks.common import reset_peak_memory, status_kib

_REPO = Path(__file__).resolve().parents[2]
# Extraction (h and c of every layer written to disk) against nn.LSTM's forward.
TARGET_RATIO = 0.85


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--extract-tokens", type=int, default=200_000, help="extract: tokens for the speed test"
    )
    parser.add_argument("--extract-hidden", type=int, default=650, help="extract: cells per layer")
    parser.add_argument("--extract-vocab", type=int, default=10_000, help="extract: vocab size")
    parser.add_argument("--extract-streams", type=int, default=128, help="extract: streams (B)")
    parser.add_argument("--extract-chunk", type=int, default=35, help="extract: steps per chunk")
    parser.add_argument("--extract-repeats", type=int, default=3, help="extract: timed pairs")
    parser.add_argument(
        "--extract-float16",
        type=int,
        default=1,
        help="extract: also time a float16 store in each pair (1) or not (0)",
    )
    parser.add_argument(
        "--extract-device", default="cpu", help="extract: cpu, cuda or auto (cuda if present)"
    )
    parser.add_argument(
        "--extract-memory-tokens",
        default="1000000,4000000",
        help="extract: corpus lengths for the peak-memory comparison ('' to skip)",
    )


def _corpus(path: Path, n: int, vocab: int, seed: int) -> list[str]:
    from workers.core.store import write_corpus

    words = [f"w{i}" for i in range(vocab - 1)] + ["<eos>"]
    ids = np.random.default_rng(seed).integers(0, vocab, size=n, dtype=np.int32)
    write_corpus(path, ids, words, [0], {"generated": "benchmark"})
    return words


def _model(hidden: int, vocab: int, layers: int, seed: int) -> Any:
    import torch

    from workers.core.rnnlm import RNNLanguageModel, RNNSpec

    torch.manual_seed(seed)
    return RNNLanguageModel(RNNSpec("LSTM", vocab, hidden, hidden, layers)).eval()


def _cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def _device(name: str) -> Any:
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _plain_forward(model: Any, ids: np.ndarray, streams: int, chunk: int, device: Any) -> None:
    """nn.LSTM over ``streams`` rows in chunks, state carried, the top layer's h only."""
    import torch

    row = -(-len(ids) // streams)
    padded = np.zeros(streams * row, dtype=np.int64)
    padded[: len(ids)] = ids
    x = torch.from_numpy(padded).view(streams, row).to(device)
    rnn = model.rnn.to(device)
    enc = model.encoder.to(device)
    hidden = None
    with torch.inference_mode():
        for a in range(0, row, chunk):
            _out, hidden = rnn(enc(x[:, a : a + chunk].t()), hidden)
        if device.type == "cuda":
            torch.cuda.synchronize()


def _timed(fn: Any) -> tuple[float, float]:
    w, c = time.perf_counter(), _cpu_s()
    fn()
    return time.perf_counter() - w, _cpu_s() - c


def bench_speed(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    import torch

    from workers.core.extract import ExtractParams, extract
    from workers.core.store import open_corpus

    device = _device(args.extract_device)
    n, b, chunk = args.extract_tokens, args.extract_streams, args.extract_chunk
    words = _corpus(tmp / "speed-corpus", n, args.extract_vocab, seed=1)
    ids = np.array(open_corpus(tmp / "speed-corpus").ids, dtype=np.int64)
    model = _model(args.extract_hidden, args.extract_vocab, 2, seed=2)
    params = ExtractParams(values=("h", "c"), topk=0, surprisal=False, streams=b, chunk=chunk)
    # extract() copies what it needs to the device; the baseline moves its own copy.
    base_model = _model(args.extract_hidden, args.extract_vocab, 2, seed=2)

    def base() -> None:
        _plain_forward(base_model, ids, b, chunk, device)

    out_bytes = {"float32": 0, "float16": 0}

    def ours(i: int, dtype: str = "float32") -> None:
        dest = tmp / f"speed-ss-{i}"
        extract(
            model, words, tmp / "speed-corpus", dest, replace(params, dtype=dtype),
            work_dir=tmp / f"speed-work-{i}", progress=lambda f, m: None, device=str(device),
        )  # fmt: skip
        out_bytes[dtype] = sum(p.stat().st_size for p in (dest / "sources").iterdir())
        shutil.rmtree(dest)
        shutil.rmtree(tmp / f"speed-work-{i}", ignore_errors=True)

    # Warm-up: libraries loaded, kernels chosen, the corpus in the page cache.
    warm = ExtractParams(values=("h", "c"), topk=0, surprisal=False, streams=b, chunk=chunk)
    _corpus(tmp / "warm-corpus", b * chunk * 2, args.extract_vocab, seed=3)
    extract(
        model, words, tmp / "warm-corpus", tmp / "warm-ss", warm,
        work_dir=tmp / "warm-work", progress=lambda f, m: None, device=str(device),
    )  # fmt: skip
    shutil.rmtree(tmp / "warm-ss")
    base()

    pairs: list[dict[str, Any]] = []
    for i in range(args.extract_repeats):
        bw, bc = _timed(base)
        ew, ec = _timed(lambda i=i: ours(i))
        pair: dict[str, Any] = {
            "forward_tokens_per_s": round(n / bw),
            "extract_tokens_per_s": round(n / ew),
            "ratio_wall": round(bw / ew, 3),
            "ratio_cpu_time": round(bc / ec, 3) if device.type == "cpu" else None,
            "load_average_1m": round(os.getloadavg()[0], 2),
        }
        if args.extract_float16:
            hw, _hc = _timed(lambda i=i: ours(i, "float16"))
            pair["float16_tokens_per_s"] = round(n / hw)
            pair["float16_ratio_wall"] = round(bw / hw, 3)
        pairs.append(pair)
    return {
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "model": {
            "type": "LSTM",
            "layers": 2,
            "hidden": args.extract_hidden,
            "embedding": args.extract_hidden,
            "vocab": args.extract_vocab,
        },
        "tokens": n,
        "streams": b,
        "chunk": chunk,
        "written_bytes": out_bytes["float32"],
        "written_bytes_float16": out_bytes["float16"] or None,
        "torch_threads": torch.get_num_threads(),
        "pairs": pairs,
        "forward_tokens_per_s": statistics.median(p["forward_tokens_per_s"] for p in pairs),
        "extract_tokens_per_s": statistics.median(p["extract_tokens_per_s"] for p in pairs),
        "ratio": statistics.median(p["ratio_wall"] for p in pairs),
        "float16_tokens_per_s": (
            statistics.median(p["float16_tokens_per_s"] for p in pairs)
            if args.extract_float16
            else None
        ),
        "ratio_cpu_time": (
            statistics.median(p["ratio_cpu_time"] for p in pairs) if device.type == "cpu" else None
        ),
    }


_CHILD = """
import json, sys
from pathlib import Path
from workers.benchmarks.extract import memory_child
print(json.dumps(memory_child(Path(sys.argv[1]), sys.argv[2])))
"""


def memory_child(root: Path, device: str) -> dict[str, Any]:
    """Run in a subprocess: one extraction of the corpus at ``root/corpus``."""
    from workers.core.extract import ExtractParams, extract
    from workers.core.store import open_corpus

    reset_peak_memory()  # the parent may have mapped gigabytes in other sections
    corpus = open_corpus(root / "corpus")
    model = _model(64, len(corpus.vocab), 1, seed=4)
    params = ExtractParams(values=("h", "c", "gates"), topk=5, surprisal=True, streams=128)
    t = time.perf_counter()
    extract(
        model, corpus.vocab, root / "corpus", root / "ss", params,
        work_dir=root / "work", progress=lambda f, m: None, device=device,
    )  # fmt: skip
    seconds = time.perf_counter() - t
    return {
        "tokens": corpus.length,
        "seconds": round(seconds, 2),
        "peak_rss_mib": round(status_kib("VmHWM") / 1024, 1),
    }


def bench_memory(args: argparse.Namespace, tmp: Path) -> dict[str, Any] | None:
    sizes = [int(x) for x in args.extract_memory_tokens.split(",") if x.strip()]
    if not sizes:
        return None
    device = str(_device(args.extract_device))
    runs = []
    for n in sizes:
        root = tmp / f"memory-{n}"
        root.mkdir()
        _corpus(root / "corpus", n, 1000, seed=5)
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, str(root), device],
            cwd=_REPO,
            capture_output=True,
            text=True,
            check=True,
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        shutil.rmtree(root)
    peaks = [r["peak_rss_mib"] for r in runs]
    return {
        "model": {"type": "LSTM", "layers": 1, "hidden": 64, "vocab": 1000},
        "values": ["h", "c", "gates"],
        "topk": 5,
        "surprisal": True,
        "runs": runs,
        "peak_ratio": round(max(peaks) / min(peaks), 3),
    }


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    speed = bench_speed(args, tmp)
    memory = bench_memory(args, tmp)
    # On a GPU the speed target does not apply: cuDNN runs a 650-cell LSTM at
    # millions of tokens/s, while h and c of two layers are 10.4 kB a token, so
    # extraction runs at the speed of the disk (see docs/extraction.md).
    speed_met = speed["ratio"] >= TARGET_RATIO if speed["device"] == "cpu" else None
    missed = []
    if speed_met is False:
        missed.append(
            f"extraction at {speed['ratio']:.3f}x of nn.LSTM, target {TARGET_RATIO}x "
            f"({TARGET_RATIO - speed['ratio']:.3f} short)"
        )
    if memory is not None and memory["peak_ratio"] > 1.1:
        missed.append(f"peak RSS 4M/1M {memory['peak_ratio']:.3f}, target <= 1.1")
    for line in missed:
        print(f"extract: TARGET MISSED: {line}", file=sys.stderr)
    return {
        "speed": speed,
        "memory": memory,
        "target": {"ratio_to_nn_lstm_on_cpu": TARGET_RATIO, "peak_rss_ratio_4m_over_1m": 1.1},
        "missed": missed,
        "speed_met": speed_met,
        "met": speed_met is not False and (memory is None or memory["peak_ratio"] <= 1.1),
    }
