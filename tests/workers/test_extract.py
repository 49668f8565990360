"""State extraction: values against an independent forward pass, streams, resumption."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import workers.core.extract as extract_mod
from workers.core.errors import Cancelled, InputError
from workers.core.extract import (
    CHECKPOINT_NAME,
    PARTIAL_NAME,
    Engine,
    ExtractParams,
    default_streams,
    extract,
    plan_streams,
)
from workers.core.rnnlm import RNNLanguageModel, RNNSpec
from workers.core.store import StateSet, write_corpus

REPO = Path(__file__).resolve().parents[2]
V = 40
VOCAB = [f"w{i}" for i in range(V - 1)] + ["<eos>"]
ALL = ("h", "c", "gates")


def make_model(rnn_type: str, layers: int, seed: int = 0) -> RNNLanguageModel:
    torch.manual_seed(seed)
    model = RNNLanguageModel(RNNSpec(rnn_type, V, 8, 6, layers)).eval()
    # Larger weights: saturated gates and large cell states (a ReLU network would
    # explode instead, beyond what float32 can compare at 1e-4).
    scale = 1.0 if rnn_type == "RNN_RELU" else 2.5
    with torch.no_grad():
        for p in model.rnn.parameters():
            p.mul_(scale)
    return model


def make_corpus(path: Path, n: int = 103, seed: int = 1, vocab: list[str] = VOCAB) -> np.ndarray:
    ids = np.random.default_rng(seed).integers(0, len(vocab), size=n)
    write_corpus(path, ids, vocab, [0, n // 3], {"mode": "word"})
    return ids


def quiet(_fraction: float, _message: str) -> None:
    return None


# --------------------------------------------------------------------------- #
# An independent reference: the textbook cell equations in float64
# --------------------------------------------------------------------------- #


def reference(model: RNNLanguageModel, ids: np.ndarray) -> dict[str, np.ndarray]:
    """Every value of every layer for one stream starting from zero, as ``l{L}_{kind}``."""
    spec = model.spec
    x = model.encoder.weight.detach().double()[torch.from_numpy(ids).long()]
    out: dict[str, np.ndarray] = {}
    sig = torch.sigmoid
    for layer in range(spec.layers):
        w = {
            k: getattr(model.rnn, f"{k}_l{layer}").detach().double()
            for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        }
        h = torch.zeros(spec.hidden_size, dtype=torch.float64)
        c = torch.zeros_like(h)
        rows: dict[str, list[torch.Tensor]] = {}
        for t in range(len(ids)):
            gi = w["weight_ih"] @ x[t] + w["bias_ih"]
            gh = w["weight_hh"] @ h + w["bias_hh"]
            step: dict[str, torch.Tensor] = {}
            if spec.rnn_type == "LSTM":
                i, f, g, o = (gi + gh).chunk(4)
                i, f, g, o = sig(i), sig(f), torch.tanh(g), sig(o)
                c = f * c + i * g
                h = o * torch.tanh(c)
                step = {"c": c, "gate_i": i, "gate_f": f, "gate_g": g, "gate_o": o}
            elif spec.rnn_type == "GRU":
                r = sig(gi[:6] + gh[:6])
                z = sig(gi[6:12] + gh[6:12])
                n = torch.tanh(gi[12:] + r * gh[12:])
                h = (1 - z) * n + z * h
                step = {"gate_r": r, "gate_z": z, "gate_n": n}
            elif spec.rnn_type == "RNN_TANH":
                h = torch.tanh(gi + gh)
            else:
                h = torch.relu(gi + gh)
            step["h"] = h
            for k, v in step.items():
                rows.setdefault(k, []).append(v)
        for k, v in rows.items():
            out[f"l{layer + 1}_{k}"] = torch.stack(v).numpy()
        x = torch.stack(rows["h"])
    return out


# --------------------------------------------------------------------------- #
# Values
# --------------------------------------------------------------------------- #


# (tokens, streams, chunk, stream starts): rows of 26 with a last one of 25; rows
# of 7 with a last one of 5, which ends before the last chunk starts.
SHAPES = [(103, 4, 7, [0, 26, 52, 78]), (40, 6, 3, [0, 7, 14, 21, 28, 35])]


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("rnn_type", ["LSTM", "GRU", "RNN_TANH", "RNN_RELU"])
@pytest.mark.parametrize(("n", "streams", "chunk", "starts"), SHAPES)
def test_every_value_equals_a_plain_forward_from_each_stream_start(
    tmp_path: Path,
    rnn_type: str,
    layers: int,
    n: int,
    streams: int,
    chunk: int,
    starts: list[int],
) -> None:
    ids = make_corpus(tmp_path / "corpus", n=n)
    model = make_model(rnn_type, layers)
    params = ExtractParams(values=ALL, topk=3, surprisal=True, streams=streams, chunk=chunk)
    manifest = extract(
        model, VOCAB, tmp_path / "corpus", tmp_path / "ss", params,
        work_dir=tmp_path / "work", progress=quiet,
    )  # fmt: skip
    ss = StateSet.open(tmp_path / "ss")
    assert manifest.stream_starts == starts
    assert manifest.doc_starts == [0, n // 3]
    assert ss.vocab == VOCAB
    np.testing.assert_array_equal(ss.tokens, ids)
    kinds = {"LSTM": ["h", "c", "gate_i", "gate_f", "gate_g", "gate_o"],
             "GRU": ["h", "gate_r", "gate_z", "gate_n"]}.get(rnn_type, ["h"])  # fmt: skip
    assert ss.source_ids == [f"l{layer}_{k}" for layer in range(1, layers + 1) for k in kinds]

    log_probs = []
    for start, stop in zip(manifest.stream_starts, [*manifest.stream_starts[1:], n], strict=True):
        want = reference(model, ids[start:stop])
        assert set(want) == set(ss.source_ids)
        for sid, values in want.items():
            got = ss.values(sid)[start:stop]
            assert np.abs(got - values).max() < 1e-4, sid
        # The library's own forward pass over the stream agrees too (top layer, final states).
        with torch.no_grad():
            x = torch.from_numpy(ids[start:stop]).long().unsqueeze(1)
            logits, hidden = model(x)
            out, _ = model.rnn(model.encoder(x))
        np.testing.assert_allclose(ss.values(f"l{layers}_h")[start:stop], out[:, 0], atol=1e-4)
        h_n = hidden[0] if isinstance(hidden, tuple) else hidden
        for layer in range(layers):
            np.testing.assert_allclose(
                ss.values(f"l{layer + 1}_h")[stop - 1], h_n[layer, 0], atol=1e-4
            )
            if isinstance(hidden, tuple):
                np.testing.assert_allclose(
                    ss.values(f"l{layer + 1}_c")[stop - 1], hidden[1][layer, 0], atol=1e-4
                )
        log_probs.append((start, stop, torch.log_softmax(logits[:, 0].double(), -1).numpy()))

    surprisal, none = ss.annotation("surprisal")
    assert none is None
    top_ids, top_p = ss.annotation("top_predictions")
    assert top_p is not None
    assert top_ids.shape == (n, 3)
    for start, stop, lp in log_probs:
        assert math.isnan(surprisal[start])  # nothing predicts a stream's first token
        want = -lp[np.arange(stop - start - 1), ids[start + 1 : stop]] / math.log(2)
        np.testing.assert_allclose(surprisal[start + 1 : stop], want, atol=1e-4)
        order = np.argsort(-lp, axis=1, kind="stable")[:, :3]
        np.testing.assert_array_equal(top_ids[start:stop], order)
        np.testing.assert_allclose(
            top_p[start:stop], np.exp(np.take_along_axis(lp, order, 1)), atol=1e-5
        )
    assert np.isfinite(surprisal).sum() == n - len(starts)
    info = {a.name: a for a in manifest.annotations}
    assert info["top_predictions"].kind == "wordvec"
    assert info["surprisal"].range is not None
    assert info["surprisal"].range[1] == pytest.approx(np.nanmax(surprisal), abs=1e-3)


def test_a_slow_disk_does_not_let_the_next_chunk_overwrite_unwritten_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer thread lags; the step loop's two buffer slots must not be reused early."""
    write = extract_mod._write_streams

    def slow(*args: object, **kwargs: object) -> None:
        time.sleep(0.003)
        write(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(extract_mod, "_write_streams", slow)
    ids = make_corpus(tmp_path / "corpus", n=120)
    model = make_model("LSTM", 2)
    extract(
        model, VOCAB, tmp_path / "corpus", tmp_path / "ss",
        ExtractParams(values=ALL, topk=2, streams=3, chunk=4),
        work_dir=tmp_path / "w", progress=quiet, device="cpu",
    )  # fmt: skip
    ss = StateSet.open(tmp_path / "ss")
    for start in (0, 40, 80):
        for sid, values in reference(model, ids[start : start + 40]).items():
            assert np.abs(ss.values(sid)[start : start + 40] - values).max() < 1e-4, sid


def test_source_metadata(tmp_path: Path) -> None:
    make_corpus(tmp_path / "corpus", n=40)
    manifest = extract(
        make_model("LSTM", 2), VOCAB, tmp_path / "corpus", tmp_path / "ss",
        ExtractParams(values=ALL, topk=0, surprisal=False), work_dir=tmp_path / "w", progress=quiet,
    )  # fmt: skip
    by_id = {s.id: s for s in manifest.sources}
    assert (by_id["l2_c"].layer, by_id["l2_c"].kind, by_id["l2_c"].transform) == (2, "c", "tanh")
    assert by_id["l1_h"].name == "layer 1 h"
    assert by_id["l1_h"].transform == "none"
    assert by_id["l1_gate_f"].unsigned and not by_id["l1_gate_g"].unsigned
    assert by_id["l1_gate_f"].cells == 6
    assert manifest.annotations == []
    assert manifest.has_embedding
    ex = manifest.extra["extraction"]
    assert ex["streams"] == 1 and ex["values"] == ["h", "c", "gates"]
    assert ex["model"]["rnn_type"] == "LSTM"


def test_a_relu_rnn_has_unbounded_outputs_read_through_tanh(tmp_path: Path) -> None:
    make_corpus(tmp_path / "corpus", n=30)
    manifest = extract(
        make_model("RNN_RELU", 1), VOCAB, tmp_path / "corpus", tmp_path / "ss",
        ExtractParams(topk=0, surprisal=False), work_dir=tmp_path / "w", progress=quiet,
    )  # fmt: skip
    (h,) = manifest.sources
    assert (h.transform, h.unsigned) == ("tanh", True)
    assert manifest.extra["extraction"]["notes"] == [
        "a RNN_RELU has no cell state c; it was not extracted"
    ]


@pytest.mark.parametrize("rnn_type", ["LSTM", "GRU"])
def test_library_kernels_with_recomputed_gates_agree_with_the_step_loop(rnn_type: str) -> None:
    """The CUDA strategy (library h, recomputed gates, scanned c) run on the CPU."""
    model = make_model(rnn_type, 2)
    kinds = ["h", "c", "gates"] if rnn_type == "LSTM" else ["h", "gates"]
    step = Engine(model, kinds, 5, 9, torch.device("cpu"), strategy="step", lanes=2)
    native = Engine(model, kinds, 5, 9, torch.device("cpu"), strategy="native")
    ids = torch.randint(0, V, (5, 9 * 3 + 4), generator=torch.Generator().manual_seed(3))
    s1, s2 = step.zero_state(), native.zero_state()
    with torch.inference_mode():
        for a in range(0, ids.shape[1], 9):
            chunk = ids[:, a : a + 9]
            got = {k: v.clone() for r in native.run_chunk(chunk, s2) for k, v in r.values.items()}
            lanes = step.run_chunk(chunk, s1)
            assert [(r.b0, r.b1) for r in lanes] == [(0, 2), (2, 5)]
            want = {
                (layer, kind): torch.cat([r.values[(layer, kind)] for r in lanes])
                for layer in range(2)
                for kind in [*kinds[:-1], *(f"gate_{g}" for g in model.spec.gates)]
            }
            assert got.keys() == want.keys()
            for key, v in want.items():
                assert (got[key] - v).abs().max() < 1e-5, key
            for a_state, b_state in zip(s1, s2, strict=True):
                for x, y in zip(a_state, b_state, strict=True):
                    assert (x - y).abs().max() < 1e-5
    step.close()


# --------------------------------------------------------------------------- #
# Streams and vocabulary
# --------------------------------------------------------------------------- #


def test_plan_streams_cuts_contiguous_rows() -> None:
    starts, lengths = plan_streams(10, 4)
    assert starts.tolist() == [0, 3, 6, 9]
    assert lengths.tolist() == [3, 3, 3, 1]
    starts, lengths = plan_streams(9, 4)  # rows of 3: three rows, none empty
    assert starts.tolist() == [0, 3, 6]
    assert plan_streams(5, 50)[0].tolist() == [0, 1, 2, 3, 4]
    assert plan_streams(7, 1)[1].tolist() == [7]
    assert default_streams(100, "cpu") == 1
    assert default_streams(100_000, "cpu") == 48
    assert default_streams(10_000_000, "cpu") == 128
    assert default_streams(10_000_000, "cuda") == 512


def test_more_streams_than_tokens(tmp_path: Path) -> None:
    make_corpus(tmp_path / "corpus", n=5)
    manifest = extract(
        make_model("GRU", 1), VOCAB, tmp_path / "corpus", tmp_path / "ss",
        ExtractParams(streams=50), work_dir=tmp_path / "w", progress=quiet,
    )  # fmt: skip
    assert manifest.stream_starts == [0, 1, 2, 3, 4]
    surprisal, _ = StateSet.open(tmp_path / "ss").annotation("surprisal")
    assert np.isnan(surprisal).all()


def test_unknown_words_map_to_unk(tmp_path: Path) -> None:
    corpus_vocab = ["w1", "zebra", "w2", "okapi", "<eos>"]
    ids = make_corpus(tmp_path / "corpus", n=60, vocab=corpus_vocab)
    model_vocab = ["<unk>", *VOCAB[1:]]
    manifest = extract(
        make_model("LSTM", 1), model_vocab, tmp_path / "corpus", tmp_path / "ss",
        ExtractParams(topk=2), work_dir=tmp_path / "w", progress=quiet,
    )  # fmt: skip
    ss = StateSet.open(tmp_path / "ss")
    assert ss.vocab == model_vocab
    want = [model_vocab.index(w) if w in model_vocab else 0 for w in corpus_vocab]
    np.testing.assert_array_equal(ss.tokens, np.array(want)[ids])
    unknown = manifest.extra["extraction"]["unknown_tokens"]
    assert unknown == {
        "token": "<unk>",
        "types": 2,
        "occurrences": int(np.isin(ids, [1, 3]).sum()),
    }


def test_unknown_words_without_an_unknown_token_are_refused_before_any_work(
    tmp_path: Path,
) -> None:
    corpus_vocab = ["w1", *[f"new{i}" for i in range(8)]]
    make_corpus(tmp_path / "corpus", n=60, vocab=corpus_vocab)
    with pytest.raises(InputError, match=r"8 words of the corpus are not in the model's") as e:
        extract(
            make_model("LSTM", 1), VOCAB, tmp_path / "corpus", tmp_path / "ss",
            ExtractParams(), work_dir=tmp_path / "w", progress=quiet,
        )  # fmt: skip
    assert "'new0'" in str(e.value)
    assert "..." in str(e.value)
    assert "<unk>" in str(e.value)
    assert not (tmp_path / "w").exists()
    assert not (tmp_path / "ss").exists()


@pytest.mark.parametrize(
    ("params", "rnn_type", "message"),
    [
        (ExtractParams(values=()), "LSTM", "at least one kind"),
        (ExtractParams(values=("h", "cells")), "LSTM", "unknown value kind 'cells'"),
        (ExtractParams(topk=-1), "LSTM", "topk must be from 0 to 40"),
        (ExtractParams(topk=41), "LSTM", "topk must be from 0 to 40"),
        (ExtractParams(chunk=0), "LSTM", "chunk length"),
        (ExtractParams(streams=0), "LSTM", "number of streams"),
        (ExtractParams(values=("c",)), "GRU", "a GRU has none of the values asked for"),
        (ExtractParams(values=("gates", "c")), "RNN_TANH", "ask for h$"),
    ],
)
def test_bad_parameters_are_input_errors(
    tmp_path: Path, params: ExtractParams, rnn_type: str, message: str
) -> None:
    make_corpus(tmp_path / "corpus", n=20)
    with pytest.raises(InputError, match=message):
        extract(
            make_model(rnn_type, 1), VOCAB, tmp_path / "corpus", tmp_path / "ss", params,
            work_dir=tmp_path / "w", progress=quiet,
        )  # fmt: skip
    assert not (tmp_path / "w").exists()


# --------------------------------------------------------------------------- #
# Progress, cancellation, resumption
# --------------------------------------------------------------------------- #


def _arrays(path: Path) -> dict[str, np.ndarray]:
    ss = StateSet.open(path)
    out = {sid: np.array(ss.values(sid)) for sid in ss.source_ids}
    out["tokens"] = np.array(ss.tokens)
    for a in ss.manifest.annotations:
        values, weights = ss.annotation(a.name)
        out[a.name] = np.array(values)
        if weights is not None:
            out[a.name + ".weights"] = np.array(weights)
    return out


class Crash(Exception):
    """Stands for a worker that dies in the middle of a job."""


@pytest.fixture
def every_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(extract_mod, "_PROGRESS_EVERY_S", 0.0)


PARAMS = ExtractParams(values=ALL, topk=4, surprisal=True, streams=3, chunk=5)


@pytest.mark.usefixtures("every_chunk")
def test_progress_reports_tokens_and_speed(tmp_path: Path) -> None:
    make_corpus(tmp_path / "corpus", n=90)
    seen: list[tuple[float, str]] = []
    extract(
        make_model("LSTM", 2), VOCAB, tmp_path / "corpus", tmp_path / "ss", PARAMS,
        work_dir=tmp_path / "w", progress=lambda f, m: seen.append((f, m)),
    )  # fmt: skip
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0
    messages = [m for _, m in seen]
    assert messages[:2] == [
        "Checking the corpus against the model's vocabulary.",
        "Extracted 0 of 90 tokens.",
    ]
    assert messages[2].startswith("Extracted 15 of 90 tokens (")  # 3 streams x 5 steps
    assert messages[2].endswith(" tokens a second).")
    assert seen[-1][1] == "Extracted the states of 90 tokens."


@pytest.mark.usefixtures("every_chunk")
def test_cancelled_leaves_nothing(tmp_path: Path) -> None:
    make_corpus(tmp_path / "corpus", n=90)
    calls = []

    def cancel(fraction: float, message: str) -> None:
        calls.append(message)
        if len(calls) == 4:
            raise Cancelled

    with pytest.raises(Cancelled):
        extract(
            make_model("LSTM", 1), VOCAB, tmp_path / "corpus", tmp_path / "ss", PARAMS,
            work_dir=tmp_path / "w", progress=cancel,
        )  # fmt: skip
    assert not (tmp_path / "ss").exists()
    assert sorted(os.listdir(tmp_path / "w")) == []


@pytest.mark.usefixtures("every_chunk")
@pytest.mark.parametrize("rnn_type", ["LSTM", "GRU"])
def test_a_crashed_run_resumes_from_its_checkpoint(tmp_path: Path, rnn_type: str) -> None:
    make_corpus(tmp_path / "corpus", n=90)  # 3 streams of 30 tokens, 6 chunks of 5
    model = make_model(rnn_type, 2)
    extract(
        model, VOCAB, tmp_path / "corpus", tmp_path / "whole", PARAMS,
        work_dir=tmp_path / "w-whole", progress=quiet,
    )  # fmt: skip
    assert os.listdir(tmp_path / "w-whole") == []  # nothing left behind

    calls: list[str] = []

    def crash(fraction: float, message: str) -> None:
        calls.append(message)
        if message.startswith("Extracted 45 of"):  # after the third chunk
            raise Crash

    with pytest.raises(Crash):
        extract(
            model, VOCAB, tmp_path / "corpus", tmp_path / "ss", PARAMS,
            work_dir=tmp_path / "w", progress=crash,
        )  # fmt: skip
    assert not (tmp_path / "ss").exists()
    assert (tmp_path / "w" / CHECKPOINT_NAME).exists()
    assert (tmp_path / "w" / PARTIAL_NAME).is_dir()

    seen: list[tuple[float, str]] = []
    manifest = extract(
        model, VOCAB, tmp_path / "corpus", tmp_path / "ss", PARAMS,
        work_dir=tmp_path / "w", progress=lambda f, m: seen.append((f, m)),
    )  # fmt: skip
    resumed = [m for _, m in seen if "Resuming" in m]
    assert resumed == ["Resuming at 45 of 90 tokens."]
    assert not any(m.startswith("Extracted 0 of") for _, m in seen)
    whole, again = _arrays(tmp_path / "whole"), _arrays(tmp_path / "ss")
    assert whole.keys() == again.keys()
    for name, values in whole.items():
        np.testing.assert_array_equal(again[name], values, err_msg=name)
    assert manifest.stream_starts == [0, 30, 60]
    assert os.listdir(tmp_path / "w") == []


@pytest.mark.usefixtures("every_chunk")
def test_a_checkpoint_of_other_inputs_is_not_used(tmp_path: Path) -> None:
    make_corpus(tmp_path / "corpus", n=90)
    model = make_model("LSTM", 1)

    def crash(fraction: float, message: str) -> None:
        if message.startswith("Extracted 45 of"):
            raise Crash

    with pytest.raises(Crash):
        extract(
            model, VOCAB, tmp_path / "corpus", tmp_path / "ss", PARAMS,
            work_dir=tmp_path / "w", progress=crash,
        )  # fmt: skip
    other = ExtractParams(values=("h",), topk=0, surprisal=False, streams=3, chunk=5)
    seen: list[str] = []
    extract(
        model, VOCAB, tmp_path / "corpus", tmp_path / "ss", other,
        work_dir=tmp_path / "w", progress=lambda f, m: seen.append(m),
    )  # fmt: skip
    assert not any("resuming" in m for m in seen)
    extract(
        model, VOCAB, tmp_path / "corpus", tmp_path / "fresh", other,
        work_dir=tmp_path / "w2", progress=quiet,
    )  # fmt: skip
    np.testing.assert_array_equal(
        StateSet.open(tmp_path / "ss").values("l1_h"),
        StateSet.open(tmp_path / "fresh").values("l1_h"),
    )


def test_a_retry_after_publishing_returns_the_published_state_set(tmp_path: Path) -> None:
    make_corpus(tmp_path / "corpus", n=40)
    model = make_model("LSTM", 1)
    args = (model, VOCAB, tmp_path / "corpus", tmp_path / "ss", PARAMS)
    first = extract(*args, work_dir=tmp_path / "w", progress=quiet)
    again = extract(*args, work_dir=tmp_path / "w", progress=quiet)
    assert again == first
    with pytest.raises(FileExistsError):
        extract(
            model, VOCAB, tmp_path / "corpus", tmp_path / "ss", ExtractParams(topk=1),
            work_dir=tmp_path / "w", progress=quiet,
        )  # fmt: skip


def test_a_killed_worker_resumes_where_its_checkpoint_says(tmp_path: Path) -> None:
    """SIGKILL mid-run (no exception handler runs); the next attempt continues."""
    make_corpus(tmp_path / "corpus", n=600)
    model = make_model("LSTM", 2)
    torch.save(model.state_dict(), tmp_path / "model.pt")
    marker = tmp_path / "half-way"
    params = "ExtractParams(values=('h', 'c', 'gates'), topk=4, streams=4, chunk=5)"
    script = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        import torch
        import workers.core.extract as ex
        from workers.core.rnnlm import RNNLanguageModel, RNNSpec

        ex._PROGRESS_EVERY_S = 0.0
        model = RNNLanguageModel(RNNSpec("LSTM", {V}, 8, 6, 2)).eval()
        model.load_state_dict(torch.load({str(tmp_path / "model.pt")!r}))
        calls = []

        def progress(fraction, message):
            calls.append(message)
            if len(calls) == 12:
                while not Path({str(tmp_path / "w" / CHECKPOINT_NAME)!r}).exists():
                    time.sleep(0.01)
                Path({str(marker)!r}).write_text(message)
                time.sleep(60)

        ex.extract(model, {VOCAB!r}, Path({str(tmp_path / "corpus")!r}),
                   Path({str(tmp_path / "ss")!r}), ex.{params},
                   work_dir=Path({str(tmp_path / "w")!r}), progress=progress,
                   checkpoint_every_s=0.0)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, "the extraction exited early"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not (tmp_path / "ss").exists()
    p = eval(f"extract_mod.{params}")  # noqa: S307 - the same literal the child used
    seen: list[str] = []
    extract(
        model, VOCAB, tmp_path / "corpus", tmp_path / "ss", p,
        work_dir=tmp_path / "w", progress=lambda f, m: seen.append(m),
    )  # fmt: skip
    extract(
        model, VOCAB, tmp_path / "corpus", tmp_path / "whole", p,
        work_dir=tmp_path / "w2", progress=quiet,
    )  # fmt: skip
    resumed = [m for m in seen if "Resuming" in m]
    assert len(resumed) == 1
    assert not resumed[0].startswith("Resuming at 0 ")
    whole, again = _arrays(tmp_path / "whole"), _arrays(tmp_path / "ss")
    for name, values in whole.items():
        np.testing.assert_array_equal(again[name], values, err_msg=name)


# --------------------------------------------------------------------------- #
# CUDA
# --------------------------------------------------------------------------- #


@pytest.mark.requires_cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("rnn_type", ["LSTM", "GRU"])
def test_cuda_and_cpu_extractions_agree(tmp_path: Path, rnn_type: str) -> None:
    make_corpus(tmp_path / "corpus", n=500)
    model = make_model(rnn_type, 2)
    params = ExtractParams(values=ALL, topk=3, streams=7, chunk=11)
    for dev in ("cpu", "cuda"):
        extract(
            model, VOCAB, tmp_path / "corpus", tmp_path / dev, params,
            work_dir=tmp_path / f"w-{dev}", progress=quiet, device=dev,
        )  # fmt: skip
    cpu, cuda = _arrays(tmp_path / "cpu"), _arrays(tmp_path / "cuda")
    for name, values in cpu.items():
        if name == "top_predictions":
            assert (cuda[name] == values).mean() > 0.99  # near-ties may swap
        else:
            np.testing.assert_allclose(cuda[name], values, atol=1e-4, err_msg=name)
