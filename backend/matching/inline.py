"""Small matches answered in the web process, without the trip through the queue.

A match job costs a round trip that has nothing to do with the match: the job row,
the message to the broker, a worker taking it, the answer written and the request
polling for it (20-45 ms on a 2-core machine, against an engine call of 10-20 ms
at 1M x 650). So a match that is small enough is computed by the request's own
thread (`match_start_here`), exactly as a worker would compute it (the same
engine call, the same Match row, the same key), and stored before the answer goes
out; the numba kernels release the GIL, so the process' other threads go on.

A match goes through its job as before when any of these holds:

* the web process may not match (`STATELAB_MATCH_INLINE_TOKENS` 0), or the state
  set is longer than that many tokens (it is sharded over workers, or too long to
  hold a web thread), or its matches go to the GPU workers;
* its source has no match index (a match without one reads the source's rows and
  takes seconds);
* the process' kernels are not compiled yet: the first request that could be
  answered here starts compiling them (or loading numba's cache) in a background
  thread, and goes to the job itself; so no request waits for a compilation;
* `STATELAB_MATCH_INLINE_SLOTS` matches are running in this process already;
* the answer is stored (it is read, as before) or a job computes it (the request
  joins it).

An engine error here stores nothing: a query the state set cannot answer gets the
422 a failed job would give, and any other error sends the match to a worker.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from backend.accounts.models import User
from backend.core.errors import ApplicationError
from backend.jobs.models import ACTIVE, Job
from backend.states.models import StateSet
from backend.states.selectors import stateset_store
from workers.core.errors import InputError

from .models import Match, MatchStatus
from .services import (
    match_evict_soon,
    match_key,
    match_result_fields,
    match_row_pending,
    match_start,
)

log = logging.getLogger(__name__)

__all__ = ["inline_ready", "match_start_here"]

_lock = threading.Lock()
_warm = threading.Event()
_warming: threading.Thread | None = None
_slots: threading.BoundedSemaphore | None = None


def _warm_up() -> None:
    from workers.core.warmup import warm_up

    try:
        done = warm_up(matching_only=True)
        log.info("match kernels ready in the web process in %.2f s", done.seconds)
        _warm.set()
    except Exception:  # the jobs answer instead; the next eligible request tries again
        log.exception("the match kernels could not be compiled in the web process")
        global _warming
        with _lock:
            _warming = None


def inline_ready(*, start: bool = True) -> bool:
    """Whether this process has its match kernels compiled; with ``start``, begins
    compiling them in a background thread when nothing has yet."""
    global _warming
    if _warm.is_set():
        return True
    if start:
        with _lock:
            if _warming is None:
                _warming = threading.Thread(target=_warm_up, name="match-warm-up", daemon=True)
                _warming.start()
    return False


def _slot() -> threading.BoundedSemaphore:
    global _slots
    with _lock:
        if _slots is None:
            _slots = threading.BoundedSemaphore(max(1, int(settings.STATELAB_MATCH_INLINE_SLOTS)))
        return _slots


def _eligible(stateset: StateSet, source: str) -> bool:
    from workers.core.match import has_match_index

    limit = int(settings.STATELAB_MATCH_INLINE_TOKENS)
    if limit <= 0 or stateset.length > limit:
        return False
    if stateset.length > int(settings.STATELAB_MATCH_SHARD_TOKENS):
        return False
    gpu = int(settings.STATELAB_MATCH_GPU_TOKENS)
    if gpu > 0 and stateset.length >= gpu:
        return False
    try:
        if not has_match_index(stateset_store(stateset), source):
            return False
    except Exception:  # a store the engine cannot read: the job reports it
        return False
    return inline_ready()


def _by_job(
    *, stateset: StateSet, user: User | None, source: str, query: Any
) -> tuple[Match, Job | None, bool]:
    match, job = match_start(stateset=stateset, user=user, source=source, query=query)
    return match, job, False


def match_start_here(
    *, stateset: StateSet, user: User | None, source: str, query: Any
) -> tuple[Match, Job | None, bool]:
    """`services.match_start`, with the answer computed here when the match is small
    enough (see the module's text): then ``(match, None, True)``, the answer stored;
    else what `match_start` gives and False (a job computes it, or it was stored)."""
    ask = {"stateset": stateset, "user": user, "source": source, "query": query}
    if not _eligible(stateset, source):
        return _by_job(**ask)
    key = match_key(source=source, query=query)
    match = Match.objects.filter(stateset=stateset, cache_key=key).first()
    if match is not None and (
        match.status == MatchStatus.DONE
        or (
            match.job_id is not None
            and Job.objects.filter(id=match.job_id, status__in=ACTIVE).exists()
        )
    ):
        return _by_job(**ask)  # stored (read and touched there), or being computed: join
    slot = _slot()
    if not slot.acquire(blocking=False):
        return _by_job(**ask)
    try:
        from workers.core.match import match as engine_match

        t = time.perf_counter()
        result = engine_match(stateset_store(stateset), source, query)
        seconds = time.perf_counter() - t
    except InputError as exc:  # the query does not fit the state set: as a job would say
        raise ApplicationError(
            f"The match failed: {exc}", code="match_failed", status_code=422
        ) from None
    except Exception:  # anything else: a worker tries, and reports it if it fails too
        log.exception("a match in the web process failed; it goes to a worker")
        return _by_job(**ask)
    finally:
        slot.release()
    now = timezone.now()
    fields = {**match_result_fields(result, seconds), "finished_at": now, "last_used_at": now}
    if match is None:
        # The row is made with its answer: one write, and nobody sees it pending.
        try:
            with transaction.atomic():
                match = Match.objects.create(
                    stateset=stateset,
                    source=source,
                    cache_key=key,
                    query=query.to_json(),
                    created_by=user,
                    **fields,
                )
        except IntegrityError:  # an identical request stored it (or started it) meanwhile
            match = match_row_pending(key=key, **ask)
            if match.status == MatchStatus.DONE:
                return _by_job(**ask)
    if match.status != MatchStatus.DONE:  # a row left by a failed or cancelled job
        if not Match.objects.filter(id=match.id).update(**fields):
            return _by_job(**ask)  # removed meanwhile (its state set deleted, or evicted)
        for name, value in fields.items():
            setattr(match, name, value)
    transaction.on_commit(match_evict_soon)
    return match, None, True
