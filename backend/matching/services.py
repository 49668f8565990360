"""Writes for matches: start or reuse a match, run its job (whole or in shards), record it.

A query is asked once per state set: ``match_start`` finds the stored answer, or
creates the pending row and the job that computes it (identical concurrent
requests meet on one row and one job through the row's unique key and the job's
``dedupe_key``).

The job (``match_run``) matches a state set of up to ``shard_tokens`` tokens in one
call of the engine. A longer one is split by ``shard_bounds`` into token ranges,
matched by a Celery group of shard tasks (``match_shard_run``) whose partial
answers a chord callback (``match_merge_run``) merges exactly with
``merge_results``; the callback records the answer and finishes the job. A shard
whose job is no longer running (cancelled) does nothing, and a shard that fails
returns its error instead of raising, so the callback always sees every shard and
always leaves the job in a terminal state.

Each shard has a row (``MatchShard``): which worker runs it, how often it was
started, the chord it reports to. A worker killed while it holds a shard (its
heartbeat stops) has its shard sent again to the same chord by the next worker
sweep (``match_shards_resend``), long before the broker would redeliver the unacked
message (Redis: after ``visibility_timeout``). Running a shard twice is harmless:
the result backend keeps one result per shard of a chord (Celery's Redis backend
counts a chord's parts by task id and index, and ignores parts that come after its
callback was sent), the callback is sent once, and recording an answer is a
conditional update of the job, so a second merge records nothing.

Matches at least ``gpu_tokens`` long run their shards on the ``gpu`` queue, where
a worker with CUDA matches on the device.

The store of answers is kept in bounds by ``match_store_evict`` (docs/matching.md,
"Housekeeping of the match store"): done rows that no saved hypothesis pins go when
unused for ``STATELAB_MATCH_KEEP_DAYS``, and the least recently used go first while
all stored results together exceed ``STATELAB_MATCH_STORE_BUDGET_MB``. A row is
locked before it is deleted, so a request that reuses it at that moment either
keeps it (its touch came first) or learns that it is gone and computes the answer
again.
"""

from __future__ import annotations

import json
import logging
import math
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import F, QuerySet, Sum
from django.utils import timezone

from backend.accounts.models import User
from backend.core.errors import ApplicationError
from backend.jobs.models import ACTIVE, Job, JobStatus, WorkerHeartbeat
from backend.jobs.queue import celery_app
from backend.jobs.runner import lease_kept
from backend.jobs.services import job_create, job_fail, job_progress, job_record, lease_end
from backend.states.models import StateSet
from backend.states.selectors import stateset_selection, stateset_source, stateset_store
from workers.core.errors import Cancelled, InputError, ProgressFn

from .codec import result_from_row, result_row
from .models import Match, MatchShard, MatchStatus, ShardStatus

if TYPE_CHECKING:
    from workers.core.match import MatchQuery, MatchResult

log = logging.getLogger(__name__)

GONE = "The state set was deleted while it was being matched."

# The shard tasks and the chord callback (`tasks.py`), sent by name so that this
# module does not import the task module that imports it.
SHARD_TASK = "statelab.match_shard"
MERGE_TASK = "statelab.match_merge"
EVICT_TASK = "statelab.match_evict"


def match_query_build(
    *,
    stateset: StateSet,
    source: str,
    threshold: float,
    cells: list[int] | None = None,
    start: int | None = None,
    end: int | None = None,
    zero_left: int = 1,
    zero_right: int = 0,
    min_length: int | None = 2,
    max_length: int | None = None,
    length: int | None = None,
    limit: int = 50,
    transform: str | None = None,
    window: tuple[int, int] | None = None,
) -> tuple[str, MatchQuery]:
    """The one way from a request to a match query, for every route that matches
    (`/api/statesets/{id}/matches/`, LSTMVis' `/api/v2/match`): (source id, query).

    The cells are given, or selected by the hypothesis `[start, end]` with the same
    threshold and off-constraints (docs/matching.md); either way every cell and the
    range are checked against the state set, with a message that says what is wrong.
    """
    from workers.core.match import MatchQuery

    info = stateset_source(stateset, source)
    n, d = int(stateset.length), int(info["cells"])
    if cells is not None:
        chosen = sorted({int(c) for c in cells})
        if not chosen:
            raise ApplicationError("cells must name at least one cell.")
        bad = [c for c in chosen if c < 0 or c >= d]
        if bad:
            raise ApplicationError(
                f"Cell {bad[0]} does not exist; the source has cells 0 to {d - 1}.",
                code="invalid",
                details={"cells": bad[:20]},
            )
    else:
        if start is None or end is None:
            raise ApplicationError("A hypothesis needs both start and end.")
        chosen = stateset_selection(
            stateset,
            str(info["id"]),
            start,
            end,
            threshold,
            zero_left=zero_left,
            zero_right=zero_right,
            transform=transform,
        )
        if not chosen:
            raise ApplicationError(
                f"The hypothesis {start}-{end} selects no cells: none is on "
                f"(>= {threshold}) throughout it and off for the {zero_left} "
                f"step(s) before and {zero_right} after. Lower the threshold, "
                "shorten the range or relax the off-constraints.",
                code="empty_selection",
            )
    query = MatchQuery(
        cells=tuple(chosen),
        threshold=float(threshold),
        zero_left=int(zero_left),
        zero_right=int(zero_right),
        min_length=min_length,
        max_length=max_length,
        length=length,
        limit=int(limit),
        range_start=int(window[0]) if window else 0,
        range_end=int(window[1]) if window else None,
        transform=transform,
    )
    query.validate(n, d)  # InputError: a 400 through the API's exception handler
    return str(info["id"]), query


def match_key(*, source: str, query: MatchQuery) -> str:
    """The row key of a query on one source: the engine's cache key (64 hex digits),
    equal for queries with equal answers."""
    return str(query.cache_key(source))


def _job_dedupe_key(stateset: StateSet, key: str) -> str:
    return f"{stateset.id.hex}{key}"


def match_touch(*, match: Match) -> bool:
    """Record that a stored answer was used again (for eviction of unused results).

    False when the row is gone: the match store's housekeeping evicted it after the
    caller read it (or its state set was deleted). Inside the caller's transaction the
    touch also holds the row until commit, so the housekeeping passes over it.
    """
    now = timezone.now()
    updated = Match.objects.filter(id=match.id).update(last_used_at=now)
    match.last_used_at = now
    return bool(updated)


def match_row_pending(
    *, stateset: StateSet, user: User | None, source: str, query: MatchQuery, key: str
) -> Match:
    """The row of `key` on `stateset`: the one stored, or a new pending one (shared with
    an identical request that made it at the same moment)."""
    match = Match.objects.filter(stateset=stateset, cache_key=key).first()
    if match is not None:
        return match
    try:
        with transaction.atomic():
            return Match.objects.create(
                stateset=stateset,
                source=source,
                cache_key=key,
                query=query.to_json(),
                created_by=user,
            )
    except IntegrityError:
        # Someone asked the same query at the same moment: share their row.
        return Match.objects.get(stateset=stateset, cache_key=key)


def match_start(
    *, stateset: StateSet, user: User | None, source: str, query: MatchQuery
) -> tuple[Match, Job | None]:
    """The stored answer to `query` (job None), or its pending row and the job computing it.

    The query must already be validated against the state set.
    """
    key = match_key(source=source, query=query)
    match = match_row_pending(stateset=stateset, user=user, source=source, query=query, key=key)
    if match.status == MatchStatus.DONE:
        if match_touch(match=match):
            return match, None
        # Evicted between the read and the touch: compute it again on a new row (or
        # share the row of an identical request that got there first).
        match = match_row_pending(stateset=stateset, user=user, source=source, query=query, key=key)
        if match.status == MatchStatus.DONE:
            if match_touch(match=match):
                return match, None
            raise ApplicationError(
                "The stored answer was removed while it was read; ask again.",
                code="busy",
                status_code=409,
            )
    if match.job_id is not None:
        job = Job.objects.filter(id=match.job_id, status__in=ACTIVE).first()
        if job is not None:
            return match, job
    # No job, or its job failed or was cancelled: compute it (again).
    job, _ = job_create(
        kind="match",
        project=stateset.project,
        user=user,
        params={
            "match": str(match.id),
            "stateset": str(stateset.id),
            "shard_tokens": int(settings.STATELAB_MATCH_SHARD_TOKENS),
            "gpu_tokens": int(settings.STATELAB_MATCH_GPU_TOKENS),
        },
        dedupe_key=_job_dedupe_key(stateset, key),
        message="Waiting for a worker.",
    )
    if match.job_id != job.id:
        Match.objects.filter(id=match.id).update(job=job)
        match.job = job
    return match, job


def _json_bytes(value: Any) -> int:
    """The size of `value` as compact JSON text in UTF-8: what a stored result counts
    against the match store's budget."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def match_result_fields(result: MatchResult, seconds: float) -> dict[str, Any]:
    row = result_row(result)
    return {
        "status": MatchStatus.DONE,
        "result": row,
        "result_bytes": _json_bytes(row),
        "exact": bool(result.exact),
        "unscored": int(result.unscored),
        "candidates": int(result.candidates),
        "hit_count": len(result.hits),
        "seconds": round(float(seconds), 6),
    }


def _summary(result: MatchResult) -> str:
    text = f"{len(result.hits)} matches from {int(result.candidates):,} candidates"
    if not result.exact:
        text += f" ({int(result.unscored):,} candidates left unscored: not exact)"
    return text


def match_record(
    *,
    match_id: UUID | str,
    job: Job,
    result: MatchResult,
    seconds: float,
    shards_by_worker: dict[str, list[int]] | None = None,
) -> None:
    """Store the answer and finish the job in one transaction (both or neither).

    A sharded job's result also says which worker matched which shards
    (`{"match": id, "shards_by_worker": {node name: [shard indexes]}}`)."""
    now = timezone.now()
    job_result: dict[str, Any] = {"match": str(match_id)}
    if shards_by_worker:
        job_result["shards_by_worker"] = shards_by_worker
    with transaction.atomic():
        updated = Match.objects.filter(id=match_id).update(
            **match_result_fields(result, seconds), finished_at=now, last_used_at=now
        )
        if not updated:
            raise ApplicationError(GONE)
        job_record(job=job, result=job_result, message=_summary(result), what="match")
        # In the worker, after the answer is committed: the store's housekeeping runs
        # without a beat scheduler.
        transaction.on_commit(match_evict_soon)


def _job_match(job: Job) -> Match:
    match = Match.objects.select_related("stateset").filter(id=job.params.get("match")).first()
    if match is None:
        raise ApplicationError(GONE)
    return match


def match_run(job: Job, progress: ProgressFn) -> dict[str, str]:
    """The match job: one engine call, or a chord of shard tasks for a long state set."""
    from workers.core.match import MatchQuery, shard_bounds
    from workers.core.match import match as engine_match

    match = _job_match(job)
    store = stateset_store(match.stateset)
    query = MatchQuery.from_json(match.query)
    shard_tokens = int(job.params.get("shard_tokens") or settings.STATELAB_MATCH_SHARD_TOKENS)
    gpu_tokens = int(job.params.get("gpu_tokens", settings.STATELAB_MATCH_GPU_TOKENS))
    bounds = shard_bounds(store.length, shard_tokens)
    gpu = gpu_tokens > 0 and store.length >= gpu_tokens
    if len(bounds) <= 1 and not gpu:
        t = time.perf_counter()
        result = engine_match(store, match.source, query)
        match_record(match_id=match.id, job=job, result=result, seconds=time.perf_counter() - t)
        return {"match": str(match.id)}
    _fan_out(job, match, [(int(a), int(b)) for a, b in bounds], gpu=gpu)
    return {}


def _fan_out(job: Job, match: Match, bounds: list[tuple[int, int]], *, gpu: bool) -> None:
    from celery import chord, signature

    queue = "gpu" if gpu else "cpu"
    now = timezone.now()
    with transaction.atomic():
        Match.objects.filter(id=match.id).update(shards=len(bounds), shards_done=0, seconds=None)
        # A job taken over after its lease ran out fans out again, from scratch.
        MatchShard.objects.filter(job=job).delete()
        MatchShard.objects.bulk_create(
            MatchShard(match=match, job=job, index=i, start=a, end=b, queue=queue, sent_at=now)
            for i, (a, b) in enumerate(bounds)
        )
    job_progress(
        job=job,
        fraction=0.0,
        message=f"Matching {match.stateset.length:,} tokens in {len(bounds)} shards.",
    )
    header = [
        signature(
            SHARD_TASK, args=(str(job.id), i, a, b, gpu), immutable=True, app=celery_app()
        ).set(queue=queue, task_id=shard_task_id(job, i))
        for i, (a, b) in enumerate(bounds)
    ]
    merge = signature(MERGE_TASK, args=(str(job.id),), app=celery_app()).set(queue="cpu")
    chord(header, app=celery_app())(merge)


def shard_task_id(job: Job | str, index: int) -> str:
    """The Celery task id of shard `index` of a match job: known to the callback, which
    removes the shards' results from the result backend once it has merged them."""
    job_id = job.id if isinstance(job, Job) else job
    return f"match-{job_id}-shard-{index}"


def _forget_shards(job_id: str, count: int) -> None:
    app = celery_app()
    for i in range(count):
        try:
            app.AsyncResult(shard_task_id(job_id, i)).forget()
        except Exception:  # a result the backend no longer holds
            log.debug("could not forget shard %s of match job %s", i, job_id, exc_info=True)


def _device(accelerate: bool) -> str:
    """`cuda` on a worker that has a CUDA device and was asked to use it, else `cpu`."""
    if not accelerate:
        return "cpu"
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def _shard_claim(
    job: Job, index: int, *, worker: str | None, group_id: str | None, chord: dict[str, Any] | None
) -> None:
    """Record that `worker` started shard `index` (and the chord it reports to), and
    renew the job's lease."""
    fields: dict[str, Any] = {
        "status": ShardStatus.RUNNING,
        "worker": (worker or "")[:200],
        "attempts": F("attempts") + 1,
        "started_at": timezone.now(),
        "finished_at": None,
    }
    if group_id:
        fields["group_id"] = str(group_id)[:64]
    if chord:
        fields["chord"] = json.loads(json.dumps(dict(chord), default=str))
    MatchShard.objects.filter(job_id=job.id, index=index).exclude(status=ShardStatus.DONE).update(
        **fields
    )
    Job.objects.filter(id=job.id, status=JobStatus.RUNNING).update(lease_until=lease_end())


def _shard_done(job: Job, match: Match, index: int, total: int, seconds: float) -> None:
    """Mark shard `index` matched; the count of matched shards is counted, not added
    to, so a shard that ran twice counts once. The match row is locked first, so
    shards that finish together count one after the other."""
    with transaction.atomic():
        Match.objects.select_for_update().filter(id=match.id).values_list("id").first()
        MatchShard.objects.filter(job_id=job.id, index=index).update(
            status=ShardStatus.DONE, finished_at=timezone.now(), seconds=round(seconds, 6)
        )
        done = MatchShard.objects.filter(job_id=job.id, status=ShardStatus.DONE).count()
        Match.objects.filter(id=match.id).update(shards_done=done)
    Job.objects.filter(id=job.id, status=JobStatus.RUNNING).update(
        progress=min(done / max(total, 1), 0.99),
        message=f"Matched {done} of {total} shards.",
        lease_until=lease_end(),
    )


def match_shard_run(
    *,
    job_id: str,
    index: int,
    start: int,
    end: int,
    accelerate: bool = False,
    worker: str | None = None,
    group_id: str | None = None,
    chord: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Match one token range `[start, end)` of a sharded match job, on `worker` (its
    Celery node name) for the chord `group_id` whose callback is `chord`.

    Returns `{"result": <the partial answer, codec.result_row>, "seconds"}`, or `{"skipped": true}`
    when the job is no longer running, or `{"error": message}`: it never raises, so
    the chord callback always runs and finishes the job. While it runs it keeps the
    job's lease alive.
    """
    from workers.core.match import MatchQuery
    from workers.core.match import match as engine_match

    job = Job.objects.filter(id=job_id).first()
    if job is None or job.status != JobStatus.RUNNING:
        return {"skipped": True}
    try:
        match = _job_match(job)
        _shard_claim(job, index, worker=worker, group_id=group_id, chord=chord)
        store = stateset_store(match.stateset)
        query = MatchQuery.from_json(match.query)
        with lease_kept(job.id):
            t = time.perf_counter()
            part = engine_match(
                store, match.source, query, shard=(start, end), device=_device(accelerate)
            )
            seconds = time.perf_counter() - t
        _shard_done(job, match, index, int(match.shards), seconds)
    except ApplicationError as exc:
        return {"error": exc.message}
    except InputError as exc:
        return {"error": str(exc)}
    except Exception as exc:
        log.exception("shard %s [%s, %s) of match job %s failed", index, start, end, job_id)
        return {
            "error": f"Shard {index + 1} of the match failed unexpectedly "
            f"({type(exc).__name__}); the error was logged."
        }
    return {"result": result_row(part), "seconds": seconds}


def match_merge_run(*, job_id: str, parts: list[dict[str, Any]]) -> None:
    """The chord callback: merge the shards' partial answers exactly and finish the job."""
    from workers.core.match import MatchQuery, merge_results

    job = Job.objects.filter(id=job_id).first()
    if job is None or job.status != JobStatus.RUNNING:
        # Cancelled, or finished by an earlier delivery of this callback.
        _forget_shards(job_id, len(parts))
        return
    try:
        errors = [str(p["error"]) for p in parts if p.get("error")]
        if errors:
            job_fail(job=job, error=errors[0])
            return
        if any(p.get("skipped") or "result" not in p for p in parts):
            job_fail(job=job, error="The match was interrupted; ask for it again.")
            return
        match = _job_match(job)
        query = MatchQuery.from_json(match.query)
        merged = merge_results([result_from_row(p["result"]) for p in parts], query.limit)
        seconds = sum(float(p.get("seconds") or 0.0) for p in parts)
        match_record(
            match_id=match.id,
            job=job,
            result=merged,
            seconds=seconds,
            shards_by_worker=match_shards_by_worker(job_id=job.id),
        )
    except Cancelled:
        log.info("match job %s was cancelled before it was recorded", job_id)
    except ApplicationError as exc:
        job_fail(job=job, error=exc.message)
    except Exception as exc:
        log.exception("merging the shards of match job %s failed", job_id)
        job_fail(
            job=job,
            error=f"Merging the match failed unexpectedly ({type(exc).__name__}); "
            "the error was logged.",
        )
    finally:
        _forget_shards(job_id, len(parts))


def match_shards_by_worker(*, job_id: UUID | str) -> dict[str, list[int]]:
    """{worker node name: [indexes of the shards it matched]} of a sharded match job."""
    out: dict[str, list[int]] = {}
    rows = MatchShard.objects.filter(job_id=job_id, status=ShardStatus.DONE).order_by("index")
    for worker, index in rows.values_list("worker", "index"):
        out.setdefault(worker or "?", []).append(int(index))
    return out


def _shard_send(row: MatchShard) -> None:
    """Send shard `row` again, under its own task id, into the chord it belongs to."""
    celery_app().send_task(
        SHARD_TASK,
        args=(str(row.job_id), int(row.index), int(row.start), int(row.end), row.queue == "gpu"),
        queue=row.queue,
        task_id=shard_task_id(str(row.job_id), int(row.index)),
        group_id=row.group_id or None,
        group_index=int(row.index),
        chord=row.chord or None,
    )


def match_shards_resend(*, now: datetime | None = None) -> int:
    """Send again the shards of running match jobs whose worker is gone: started more
    than `STATELAB_WORKER_GONE_S` ago by a worker whose heartbeat is older than that
    (or that stopped). Returns how many were sent.

    Run by every worker's sweep (`backend.jobs.signals.sweep`, every
    `STATELAB_JOB_SWEEP_S`): a worker killed while it holds a shard delays its match
    by about `STATELAB_WORKER_GONE_S + STATELAB_JOB_SWEEP_S`, not by the broker's
    visibility timeout. Each shard is taken by one conditional update, so concurrent
    sweeps send it once; the job's lease is renewed, so the job is not fanned out
    again meanwhile. Off while workers write no heartbeats
    (`STATELAB_WORKER_HEARTBEAT_S` 0): then only the broker redelivers.
    """
    if float(settings.STATELAB_WORKER_HEARTBEAT_S) <= 0:
        return 0
    now = now or timezone.now()
    gone_after = now - timedelta(seconds=float(settings.STATELAB_WORKER_GONE_S))
    alive = WorkerHeartbeat.objects.filter(stopped_at__isnull=True, seen_at__gte=gone_after)
    stuck = (
        MatchShard.objects.filter(
            status=ShardStatus.RUNNING, job__status=JobStatus.RUNNING, started_at__lt=gone_after
        )
        .exclude(worker__in=alive.values("name"))
        .order_by("started_at")
    )
    sent = 0
    for row in stuck[:200]:
        taken = MatchShard.objects.filter(
            id=row.id, status=ShardStatus.RUNNING, worker=row.worker, attempts=row.attempts
        ).update(status=ShardStatus.QUEUED, sent_at=now)
        if not taken:
            continue
        Job.objects.filter(id=row.job_id, status=JobStatus.RUNNING).update(
            lease_until=lease_end(),
            message=f"Shard {row.index + 1}: its worker {row.worker} is gone; sent again.",
        )
        try:
            _shard_send(row)
        except Exception:  # the broker did not answer: the next sweep tries again
            MatchShard.objects.filter(id=row.id, status=ShardStatus.QUEUED).update(
                status=ShardStatus.RUNNING
            )
            log.warning("could not send shard %s of match job %s again", row.index, row.job_id)
            continue
        log.warning(
            "shard %s of match job %s: worker %s is gone; sent again",
            row.index,
            row.job_id,
            row.worker,
        )
        sent += 1
    return sent


# Housekeeping of the match store (docs/matching.md).

EVICT_BATCH = 500  # rows locked and deleted per transaction
# A result used this recently is kept even over the size budget: the request that
# asked for it, the hypothesis being saved with it, or the pages read next need it.
RECENT_USE = timedelta(minutes=5)
EVICT_CACHE_KEY = "statelab:match-store-evict"

# This process looks at the cache again only after this time.monotonic().
_next_evict_check = 0.0


def _evictable() -> QuerySet[Match]:
    """Rows the housekeeping may remove: done (a pending row has a job at work) and
    pinned by no saved hypothesis version (the reverse relation of
    `hypotheses.HypothesisVersion.match`, queried without importing that app)."""
    return Match.objects.filter(status=MatchStatus.DONE, pinned_by__isnull=True)


def _stored_bytes() -> int:
    return int(Match.objects.aggregate(total=Sum("result_bytes"))["total"] or 0)


def _lock_batch(candidates: QuerySet[Match]) -> list[tuple[UUID, int]]:
    """Lock up to `EVICT_BATCH` of `candidates` in the caller's transaction, least
    recently used first, passing over rows another transaction holds; (id, bytes)."""
    rows = (
        candidates.select_for_update(skip_locked=True, of=("self",))
        .order_by("last_used_at", "id")
        .values_list("id", "result_bytes")[:EVICT_BATCH]
    )
    return [(row_id, int(size)) for row_id, size in rows]


def _evict_batch(candidates: QuerySet[Match], *, excess: int | None = None) -> tuple[int, int, int]:
    """Delete up to `EVICT_BATCH` of `candidates`, least recently used first; with
    `excess`, only as many as make up that many bytes. Returns (rows looked at, rows
    deleted, bytes freed).

    The rows are locked first (`FOR UPDATE SKIP LOCKED`) and the filter is applied to
    their newest version, so a row a request touches at that moment is either passed
    over (still locked by the touch, or used too recently once it is committed) or
    deleted before the touch, which then reports it gone (`match_touch`). While the
    lock is held no hypothesis version can come to point at a row (its foreign key
    check waits for the lock), and pins committed since the rows were selected are
    looked for once more before deleting.
    """
    with transaction.atomic():
        rows = _lock_batch(candidates)
        chosen: list[tuple[UUID, int]] = []
        for row_id, size in rows:
            if excess is not None and excess <= 0:
                break
            chosen.append((row_id, size))
            if excess is not None:
                excess -= size
        if not chosen:
            return len(rows), 0, 0
        free = set(_evictable().filter(id__in=[r[0] for r in chosen]).values_list("id", flat=True))
        gone = [(row_id, size) for row_id, size in chosen if row_id in free]
        if gone:
            Match.objects.filter(id__in=[r[0] for r in gone]).delete()
    return len(rows), len(gone), sum(size for _, size in gone)


def match_store_evict(
    now: datetime | None = None,
    *,
    keep_days: float | None = None,
    budget_mb: float | None = None,
) -> dict[str, int]:
    """Remove stored match results that no saved hypothesis pins and that are either
    unused (`last_used_at`) for more than `keep_days` (`STATELAB_MATCH_KEEP_DAYS`), or,
    least recently used first, beyond the size budget of all stored results together
    (`budget_mb`, `STATELAB_MATCH_STORE_BUDGET_MB`; results used in the last
    `RECENT_USE` are kept even then). 0 turns a rule off. Pending and pinned rows are
    never removed. An identical query later simply computes the answer again.

    Returns the rows removed by each rule, the bytes freed, the bytes still stored and
    the budget in bytes (0: none).
    """
    now = now or timezone.now()
    keep = float(settings.STATELAB_MATCH_KEEP_DAYS if keep_days is None else keep_days)
    budget_bytes = int(
        float(settings.STATELAB_MATCH_STORE_BUDGET_MB if budget_mb is None else budget_mb)
        * (1 << 20)
    )
    unused = over_budget = freed = 0

    if keep > 0:
        stale = _evictable().filter(last_used_at__lt=now - timedelta(days=keep))
        while True:
            seen, deleted, size = _evict_batch(stale)
            unused += deleted
            freed += size
            if seen < EVICT_BATCH or deleted == 0:
                break

    stored = _stored_bytes()
    if budget_bytes > 0 and stored > budget_bytes:
        idle = _evictable().filter(last_used_at__lt=now - RECENT_USE)
        while stored > budget_bytes:
            seen, deleted, size = _evict_batch(idle, excess=stored - budget_bytes)
            over_budget += deleted
            freed += size
            stored -= size
            if seen < EVICT_BATCH or deleted == 0:
                break
        stored = _stored_bytes()

    if unused or over_budget:
        log.info(
            "match store: evicted %d unused and %d over budget (%d bytes); %d bytes stored",
            unused,
            over_budget,
            freed,
            stored,
        )
    return {
        "evicted_unused": unused,
        "evicted_over_budget": over_budget,
        "evicted": unused + over_budget,
        "bytes_freed": freed,
        "stored_bytes": stored,
        "budget_bytes": max(budget_bytes, 0),
    }


def match_evict_due() -> bool:
    """Whether the match store's sweep is due: at most once every
    `STATELAB_MATCH_EVICT_EVERY_S` in this process (a clock read), and, where the
    processes share a cache, once in that time for the whole installation."""
    global _next_evict_check
    every = float(settings.STATELAB_MATCH_EVICT_EVERY_S)
    if every <= 0:
        return False
    now = time.monotonic()
    if now < _next_evict_check:
        return False
    _next_evict_check = now + every
    try:
        return bool(cache.add(EVICT_CACHE_KEY, 1, timeout=max(math.ceil(every), 1)))
    except Exception:  # a cache that does not answer: this process's clock decides
        log.warning("the cache did not answer; sweeping the match store anyway", exc_info=True)
        return True


def match_evict_soon() -> None:
    """Send the match store's sweep (`statelab.match_evict`) to a worker when it is due.

    Called in the worker after a match result is committed, so that the store is kept
    in bounds without a beat scheduler; a deployment that runs beat sweeps hourly too.
    """
    if not match_evict_due():
        return
    app = celery_app()
    if app.conf.task_always_eager:
        # Tests without a worker run the sweep here, as a worker would.
        app.loader.import_default_modules()
        app.tasks[EVICT_TASK].apply()
        return
    try:
        app.send_task(EVICT_TASK, queue="cpu", ignore_result=True)
    except Exception:  # the next recorded match tries again once the interval is over
        log.warning("could not send the match store's sweep to the broker", exc_info=True)
