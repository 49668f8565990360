"""Writes for artefacts, one module per seam: `uploads` (files waiting for their job),
`corpora`, `language_models` (upload through a job, storing checked files), `training`,
and `common` (helpers they share). Importing from `backend.artifacts.services` finds
every public name here, so callers need not know the split.

Nothing here imports torch at import time: the web process imports this package, and
the functions that need torch (the work functions of jobs) import it when they run.
"""

from .common import compute_device, input_refusal
from .corpora import corpus_build, corpus_delete, corpus_upload_start
from .language_models import (
    MODEL_CONFIG_MAX_BYTES,
    MODEL_VOCAB_MAX_BYTES,
    model_config_parse,
    model_delete,
    model_files_check,
    model_job_result,
    model_row_create,
    model_store_from_files,
    model_upload_run,
    model_upload_start,
)
from .training import (
    CURVE_FLUSH_S,
    CURVE_MAX_POINTS,
    TRAIN_FIELDS,
    CurveRecorder,
    training_run,
    training_start,
)
from .uploads import (
    MAIN_UPLOAD,
    UploadsWorkFn,
    UploadWorkFn,
    consuming_upload,
    consuming_uploads,
    job_uploads,
    upload_discard,
    upload_job_start,
    upload_precheck,
    upload_store,
    uploads_drop,
)

__all__ = [
    "CURVE_FLUSH_S",
    "CURVE_MAX_POINTS",
    "MAIN_UPLOAD",
    "MODEL_CONFIG_MAX_BYTES",
    "MODEL_VOCAB_MAX_BYTES",
    "TRAIN_FIELDS",
    "CurveRecorder",
    "UploadWorkFn",
    "UploadsWorkFn",
    "compute_device",
    "consuming_upload",
    "consuming_uploads",
    "corpus_build",
    "corpus_delete",
    "corpus_upload_start",
    "input_refusal",
    "job_uploads",
    "model_config_parse",
    "model_delete",
    "model_files_check",
    "model_job_result",
    "model_row_create",
    "model_store_from_files",
    "model_upload_run",
    "model_upload_start",
    "training_run",
    "training_start",
    "upload_discard",
    "upload_job_start",
    "upload_precheck",
    "upload_store",
    "uploads_drop",
]
