"""Writes for training: `training_start` queues a `train` job (gpu queue) on a corpus;
the job (`training_run`) trains, keeps its curve on the job row while it runs
(`CurveRecorder`) and records the model together with the job's success."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from typing import Any

from django.db import transaction

from backend.accounts.models import User
from backend.core.errors import ApplicationError
from backend.core.quota import dir_size, storage_check
from backend.core.storage import store_path, store_root
from backend.jobs.models import Job
from backend.jobs.services import job_create, job_detail_set, job_record
from backend.projects.models import Project
from workers.core.errors import InputError, ProgressFn
from workers.core.files import sha256_file

from ..models import Corpus, LanguageModel, ModelOrigin
from .common import compute_device, input_refusal
from .language_models import model_job_result

# A training job keeps at most this many curve points on its row: validation points
# all, training points thinned evenly once there are more.
CURVE_MAX_POINTS = 2000
CURVE_FLUSH_S = 0.5

TRAIN_FIELDS = (
    "rnn_type",
    "layers",
    "hidden_size",
    "embedding_size",
    "epochs",
    "learning_rate",
    "seq_len",
    "batch_size",
    "seed",
    "tied",
)


def training_start(
    *,
    project: Project,
    user: User | None,
    corpus: Corpus,
    name: str = "",
    params: dict[str, Any] | None = None,
) -> tuple[Job, bool]:
    """Queue a training run on `corpus` (job kind "train", gpu queue). `params` are
    TrainParams fields; anything left out takes its default. Identical active
    requests share one job."""
    from workers.core.train import TrainParams

    if corpus.project_id != project.id:
        raise ApplicationError(
            f"The corpus '{corpus.name}' is not in project '{project.slug}'.",
            code="unknown_corpus",
        )
    given = {k: v for k, v in (params or {}).items() if v is not None}
    unknown = sorted(set(given) - set(TRAIN_FIELDS))
    if unknown:
        raise ApplicationError(f"Unknown training parameters: {', '.join(unknown)}.")
    try:
        train_params = TrainParams(**given)
    except InputError as exc:
        raise input_refusal(exc, code="invalid") from exc
    settings_json = train_params.to_json()
    display = (name.strip() or f"{train_params.rnn_type} on {corpus.name}")[:200]
    key = hashlib.sha256(
        json.dumps([str(corpus.id), display, settings_json], sort_keys=True).encode()
    ).hexdigest()
    return job_create(
        kind="train",
        project=project,
        user=user,
        params={"corpus": str(corpus.id), "name": display, "train": settings_json},
        dedupe_key=key,
    )


class CurveRecorder:
    """Keeps a training job's curve on its row while it runs.

    Points are buffered and written at most every CURVE_FLUSH_S seconds (a
    validation point at once). Past CURVE_MAX_POINTS the training points are
    thinned evenly: only every `stride`-th is kept, the stride doubling as the run
    grows, while validation points and the newest training point always stay.
    """

    def __init__(self, job: Job, *, cap: int = CURVE_MAX_POINTS) -> None:
        self.job = job
        self.cap = cap
        self.kept: list[tuple[int, dict[str, Any]]] = []  # (training ordinal or -1, point)
        self.stride = 1
        self.ordinal = 0
        self.latest: tuple[int, dict[str, Any]] | None = None
        self.last_flush = 0.0
        self.dirty = False

    @staticmethod
    def _clean(point: dict[str, Any]) -> dict[str, Any]:
        clean = {
            k: point[k]
            for k in ("step", "epoch", "tokens", "loss", "perplexity", "split")
            if k in point
        }
        for k in ("loss", "perplexity"):
            v = clean.get(k)
            if isinstance(v, int | float) and not math.isfinite(v):
                clean[k] = None  # JSON has no infinity or NaN
        return clean

    def add(self, point: dict[str, Any]) -> None:
        clean = self._clean(point)
        if clean.get("split") == "train":
            self.ordinal += 1
            self.latest = (self.ordinal, clean)
            if (self.ordinal - 1) % self.stride == 0:
                self.kept.append(self.latest)
        else:
            self.kept.append((-1, clean))
        room = self.cap - 1  # the newest training point is shown too
        while len(self.kept) > room and self.stride < (1 << 30):
            self.stride *= 2
            self.kept = [(o, q) for o, q in self.kept if o < 0 or (o - 1) % self.stride == 0]
        self.kept = self.kept[-room:]
        self.dirty = True
        if clean.get("split") != "train" or time.monotonic() - self.last_flush >= CURVE_FLUSH_S:
            self.flush()

    def points(self) -> list[dict[str, Any]]:
        kept = list(self.kept)
        if self.latest is not None and all(o != self.latest[0] for o, _ in kept):
            kept.append(self.latest)
        kept.sort(key=lambda item: (item[1].get("step") or 0, item[0] < 0))
        return [q for _, q in kept]

    def flush(self) -> None:
        if self.dirty:
            job_detail_set(job=self.job, detail={"curve": self.points()})
            self.dirty = False
        self.last_flush = time.monotonic()


def training_run(job: Job, progress: ProgressFn) -> dict[str, str]:
    """The train job: train on the corpus, store the model, record its row."""
    from workers.core.train import TrainParams, train

    corpus = Corpus.objects.filter(id=job.params["corpus"]).first()
    if corpus is None:
        raise ApplicationError("The corpus was deleted before training started.")
    (store_root() / "models").mkdir(parents=True, exist_ok=True)
    rel = f"models/{job.id.hex}"  # one folder per job: a restarted job replaces it
    final = store_root() / rel
    if final.exists():
        shutil.rmtree(final)  # a previous attempt finished writing but was not recorded
    recorder = CurveRecorder(job)
    job_detail_set(job=job, detail={"curve": []})  # a restarted job starts a fresh curve
    try:
        summary = train(
            store_path(corpus.path),
            final,
            TrainParams(**job.params["train"]),
            progress=progress,
            on_point=recorder.add,
            device=compute_device(),
        )
        recorder.flush()
        manifest = json.loads((final / "manifest.json").read_text())
        spec = manifest["spec"]
        size = dir_size(final)
        storage_check(job.created_by, size, project=job.project)
        sha = sha256_file(final / str(manifest.get("weights", "weights.safetensors")))
        with transaction.atomic():
            model = LanguageModel.objects.create(
                project=job.project,
                name=job.params["name"],
                spec=spec,
                rnn_type=spec["rnn_type"],
                layers=spec["layers"],
                hidden_size=spec["hidden_size"],
                vocab_size=int(manifest.get("vocab_size") or spec["vocab_size"]),
                path=rel,
                size_bytes=size,
                sha256=sha,
                origin=ModelOrigin.TRAINING,
                training_job=job,
                created_by=job.created_by,
            )
            result = model_job_result(model)
            job_record(job=job, result=result, message=_train_message(summary), what="model")
    except BaseException:
        shutil.rmtree(final, ignore_errors=True)
        raise
    return result


def _train_message(summary: dict[str, Any]) -> str:
    for key in ("valid_perplexity", "perplexity", "train_perplexity"):
        value = summary.get(key)
        if isinstance(value, int | float) and math.isfinite(value):
            label = "validation perplexity" if key.startswith("valid") else "perplexity"
            return f"Trained; {label} {value:.2f}"
    return "Trained"
