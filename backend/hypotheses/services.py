"""Writes for rankings: start (or reuse) a ranking, run its job, record it.

A ranking is asked once per (state set, source, annotation, label) while the
state set keeps its revision: ``ranking_start`` answers the stored row, or
creates the job that computes it (identical requests share one active job
through ``job_create``'s ``dedupe_key``). The job (``ranking_run``) reads the
source once through ``workers.core.ranking.rank_cells`` and stores the
``Ranking`` row in the same transaction that marks the job succeeded, so a
ranking is visible exactly when its job says so.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.db import transaction

from backend.accounts.models import User
from backend.core.errors import ApplicationError
from backend.jobs.models import Job
from backend.jobs.services import job_create, job_record
from backend.states.models import StateSet
from backend.states.selectors import stateset_source, stateset_store
from workers.core.errors import ProgressFn

from .models import Ranking
from .selectors import ranking_stored

GONE = "The state set was deleted while it was being ranked."
RANKABLE = ("discrete", "scalar")
MAX_LISTED = 50  # names listed in a 400 at most


def _listing(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:MAX_LISTED]) or "none"
    more = len(names) - MAX_LISTED
    return shown + (f" and {more} more" if more > 0 else "")


def ranking_request_check(
    *, stateset: StateSet, source: str, annotation: str, label: str | None
) -> tuple[str, str, str]:
    """(source id, annotation, label or "") of a ranking request, or a 400 that says
    which sources, annotations or labels the state set has.

    A discrete track needs one of its labels; a scalar track takes none.
    """
    source_id = str(stateset_source(stateset, source)["id"])
    tracks = [a for a in stateset.manifest.get("annotations", []) if a.get("kind") in RANKABLE]
    track = next((a for a in tracks if a["name"] == annotation), None)
    if track is None:
        raise ApplicationError(
            f"There is no discrete or scalar annotation '{annotation}' in this state set; "
            f"cells can be ranked against: {_listing([str(a['name']) for a in tracks])}.",
            code="unknown_annotation",
            details={"annotations": [str(a["name"]) for a in tracks]},
        )
    if track["kind"] == "scalar":
        if label is not None:
            raise ApplicationError(
                f"'{annotation}' is a scalar track: cells are ranked by correlation with "
                "it, so give no label.",
                code="invalid",
            )
        return source_id, annotation, ""
    labels = [str(x) for x in track.get("labels") or []]
    if label is None or label == "":
        raise ApplicationError(
            f"'{annotation}' is a discrete track: give the label to rank the cells "
            f"against, one of {_listing(labels)}.",
            code="invalid",
            details={"labels": labels[:MAX_LISTED]},
        )
    if labels and label not in labels:
        raise ApplicationError(
            f"The annotation '{annotation}' has no label '{label}'; its labels are "
            f"{_listing(labels)}.",
            code="unknown_label",
            details={"labels": labels[:MAX_LISTED]},
        )
    if not labels and not label.isdigit():
        raise ApplicationError(
            f"The annotation '{annotation}' names its labels by number: give one as digits.",
            code="unknown_label",
        )
    return source_id, annotation, label


def _dedupe_key(stateset: StateSet, source: str, annotation: str, label: str) -> str:
    canon = json.dumps([stateset.id.hex, stateset.revision, source, annotation, label])
    return hashlib.sha256(canon.encode()).hexdigest()


def ranking_start(
    *, stateset: StateSet, user: User | None, source: str, annotation: str, label: str | None
) -> Ranking | Job:
    """The stored ranking, or the job computing it.

    The request is checked first (``ranking_request_check``: a 400 naming what exists).
    """
    source, annotation, label = ranking_request_check(
        stateset=stateset, source=source, annotation=annotation, label=label
    )
    stored = ranking_stored(stateset=stateset, source=source, annotation=annotation, label=label)
    if stored is not None:
        return stored
    job, _ = job_create(
        kind="ranking",
        project=stateset.project,
        user=user,
        params={
            "stateset": str(stateset.id),
            "source": source,
            "annotation": annotation,
            "label": label,
        },
        dedupe_key=_dedupe_key(stateset, source, annotation, label),
    )
    return job


def ranking_record(
    *, job: Job, stateset: StateSet, user_id: Any, revision: int, ranking: Any
) -> Ranking:
    """Store a computed ranking (``workers.core.ranking.Ranking``) and mark its job
    succeeded, in one transaction (both or neither)."""
    with transaction.atomic():
        if not StateSet.objects.filter(id=stateset.id).exists():
            raise ApplicationError(GONE)
        row = Ranking.objects.create(
            stateset=stateset,
            source=ranking.source,
            annotation=ranking.annotation,
            label=ranking.label or "",
            revision=revision,
            measure=ranking.measure,
            result={"cells": ranking.cells},
            n=int(ranking.n),
            error_bound=ranking.error_bound,
            created_by_id=user_id,
            job=job,
        )
        job_record(
            job=job,
            result={"ranking": str(row.id)},
            message=f"{len(ranking.cells)} cells ranked by {ranking.measure} "
            f"over {int(ranking.n):,} tokens",
            what="ranking",
        )
    return row


def ranking_run(job: Job, progress: ProgressFn) -> dict[str, str]:
    """The ranking job: one pass of ``rank_cells`` over the source, then the record."""
    from workers.core.ranking import rank_cells

    params = job.params
    stateset = StateSet.objects.filter(id=params.get("stateset")).first()
    if stateset is None:
        raise ApplicationError(GONE)
    label = str(params.get("label") or "")
    labels = next(
        (
            a.get("labels")
            for a in stateset.manifest.get("annotations", [])
            if a.get("name") == params["annotation"]
        ),
        None,
    )
    # A discrete track without label names is addressed by label number.
    wanted: str | int | None = (int(label) if not labels else label) if label else None
    result = rank_cells(
        stateset_store(stateset),
        str(params["source"]),
        str(params["annotation"]),
        wanted,
        progress=progress,
    )
    row = ranking_record(
        job=job,
        stateset=stateset,
        user_id=job.created_by_id,
        revision=int(stateset.revision),
        ranking=result,
    )
    return {"ranking": str(row.id)}
