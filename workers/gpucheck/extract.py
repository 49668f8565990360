"""GPU check for extraction: CUDA and CPU give the same state sets; CUDA's speed.

Run on a machine with a CUDA device: ``python -m workers.gpucheck.extract``. It
prints one JSON object and exits 1 when a check fails (or there is no CUDA).

1. Agreement: a small random 2-layer LSTM and GRU (every value kind, top-k,
   surprisal) are extracted once on CUDA and once on the CPU; every source and
   the surprisal must agree to 1e-4 (max abs diff), the top-k ids in all but
   near-ties.
2. Speed: the 2-layer, 650-cell LSTM of the benchmark (vocab 10k) on CUDA:
   plain cuDNN ``nn.LSTM`` forward (h only) over the same batches, the engine
   alone (values computed, not written), and ``extract`` writing ``h`` and ``c``
   of both layers into a state set on disk.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

TOLERANCE = 1e-4


def _quiet(_fraction: float, _message: str) -> None:
    return None


def _arrays(path: Path) -> dict[str, np.ndarray]:
    from workers.core.store import StateSet

    ss = StateSet.open(path)
    out = {sid: np.array(ss.values(sid)) for sid in ss.source_ids}
    for a in ss.manifest.annotations:
        values, weights = ss.annotation(a.name)
        out[a.name] = np.array(values)
        if weights is not None:
            out[f"{a.name}.weights"] = np.array(weights)
    return out


def _corpus(path: Path, n: int, vocab: int, seed: int) -> list[str]:
    from workers.core.store import write_corpus

    words = [f"w{i}" for i in range(vocab - 1)] + ["<eos>"]
    ids = np.random.default_rng(seed).integers(0, vocab, size=n, dtype=np.int32)
    write_corpus(path, ids, words, [0], {})
    return words


def check_agreement(tmp: Path) -> dict[str, Any]:
    import torch

    from workers.core.extract import ExtractParams, extract
    from workers.core.rnnlm import RNNLanguageModel, RNNSpec

    words = _corpus(tmp / "corpus", 20_000, 300, seed=1)
    params = ExtractParams(values=("h", "c", "gates"), topk=5, surprisal=True, streams=24)
    result: dict[str, Any] = {}
    for rnn_type in ("LSTM", "GRU"):
        torch.manual_seed(7)
        model = RNNLanguageModel(RNNSpec(rnn_type, 300, 32, 48, 2)).eval()
        with torch.no_grad():
            for p in model.rnn.parameters():
                p.mul_(2.0)  # saturated gates, large cell states: a harder comparison
        for dev in ("cpu", "cuda"):
            extract(
                model, words, tmp / "corpus", tmp / f"{rnn_type}-{dev}", params,
                work_dir=tmp / f"work-{rnn_type}-{dev}", progress=_quiet, device=dev,
            )  # fmt: skip
        cpu, cuda = _arrays(tmp / f"{rnn_type}-cpu"), _arrays(tmp / f"{rnn_type}-cuda")
        diffs: dict[str, float] = {}
        for name, values in cpu.items():
            if name == "top_predictions":
                continue
            both = np.isfinite(values)
            if not np.array_equal(both, np.isfinite(cuda[name])):
                diffs[name] = float("inf")
            else:
                diffs[name] = float(np.abs(cuda[name][both] - values[both]).max())
        same_top = float((cpu["top_predictions"] == cuda["top_predictions"]).mean())
        worst = max(diffs.values())
        result[rnn_type] = {
            "max_abs_diff": diffs,
            "worst": worst,
            "top_ids_equal_fraction": round(same_top, 6),
            "ok": worst < TOLERANCE and same_top > 0.99,
        }
    return result


def check_speed(tmp: Path, n: int = 400_000, streams: int = 512, chunk: int = 35) -> dict[str, Any]:
    import torch

    from workers.core.extract import Engine, ExtractParams, extract
    from workers.core.rnnlm import RNNLanguageModel, RNNSpec

    words = _corpus(tmp / "speed-corpus", n, 10_000, seed=2)
    torch.manual_seed(3)
    model = RNNLanguageModel(RNNSpec("LSTM", 10_000, 650, 650, 2)).eval()
    dev = torch.device("cuda")
    row = -(-n // streams)
    ids = torch.randint(0, 10_000, (streams, row), generator=torch.Generator().manual_seed(4))
    ids = ids.to(dev)
    gpu_model = RNNLanguageModel(model.spec).to(dev).eval()
    gpu_model.load_state_dict(model.state_dict())

    def plain() -> float:
        torch.cuda.synchronize()
        t = time.perf_counter()
        hidden = None
        with torch.inference_mode():
            for a in range(0, row, chunk):
                _out, hidden = gpu_model.rnn(gpu_model.encoder(ids[:, a : a + chunk].t()), hidden)
        torch.cuda.synchronize()
        return n / (time.perf_counter() - t)

    engine = Engine(model, ["h", "c"], streams, chunk, dev)

    def engine_only() -> float:
        torch.cuda.synchronize()
        t = time.perf_counter()
        state = engine.zero_state()
        with torch.inference_mode():
            for a in range(0, row, chunk):
                for lane in engine.run_chunk(ids[:, a : a + chunk], state, a // chunk % 2):
                    for v in lane.values.values():
                        v.contiguous()
        torch.cuda.synchronize()
        return n / (time.perf_counter() - t)

    params = ExtractParams(values=("h", "c"), topk=0, surprisal=False, streams=streams)

    def full(i: int) -> float:
        t = time.perf_counter()
        extract(
            model, words, tmp / "speed-corpus", tmp / f"speed-{i}", params,
            work_dir=tmp / f"speed-work-{i}", progress=_quiet, device="cuda",
        )  # fmt: skip
        rate = n / (time.perf_counter() - t)
        shutil.rmtree(tmp / f"speed-{i}")
        return rate

    plain()
    engine_only()
    runs = [(plain(), engine_only(), full(i)) for i in range(2)]
    return {
        "gpu": torch.cuda.get_device_name(dev),
        "tokens": n,
        "streams": streams,
        "chunk": chunk,
        "nn_lstm_forward_tokens_per_s": round(max(r[0] for r in runs)),
        "engine_h_c_tokens_per_s": round(max(r[1] for r in runs)),
        "extract_to_disk_tokens_per_s": round(max(r[2] for r in runs)),
        "written_bytes": n * 650 * 4 * 4,
    }


def main() -> dict[str, Any]:
    import torch

    if not torch.cuda.is_available():
        return {"ok": False, "error": "no CUDA device"}
    tmp = Path(tempfile.mkdtemp(prefix="statelab-gpucheck-"))
    try:
        agreement = check_agreement(tmp)
        speed = check_speed(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "ok": all(v["ok"] for v in agreement.values()),
        "torch": torch.__version__,
        "agreement": agreement,
        "speed": speed,
    }


if __name__ == "__main__":
    out = main()
    print(json.dumps(out, indent=2))
    sys.exit(0 if out["ok"] else 1)
