"""Reads for matches: the access check, waiting for a match job, and the answers.

`match_for_user` answers 404 for a match on a state set the caller may not see,
exactly as for a missing one. `match_settle` is how every route that matches waits
for the answer (REST answers 202 with the job when it is not there in time, LSTMVis'
route 503). The answer's JSON shape is defined once, by the serializers in `api.py`
over a Match row; `match_page_hits` adds to each hit what the match view
draws beside it: the tokens with some left context, how many selected cells are
on at each step, and the annotation values (top prediction only, for wordvec
tracks), read from the memory-mapped state set a few rows at a time.
"""

from __future__ import annotations

import time
from typing import Any

from django.db import connection

from backend.core.downloads import Download, filename_part
from backend.core.errors import ApplicationError
from backend.jobs.models import TERMINAL, Job, JobStatus
from backend.projects.selectors import get_for_user
from backend.states.selectors import stateset_context, stateset_store
from workers.core.export import match_csv_chunks

from .models import Match, MatchStatus

MAX_HIT_TOKENS = 500  # tokens of context per hit, left context included


def match_for_user(user: Any, match_id: Any) -> Match:
    return get_for_user(
        Match.objects.all(),
        user,
        match_id,
        what="match",
        project_field="stateset__project",
        related=("job",),
    )


def match_wait(*, job_id: Any, timeout_s: float) -> str:
    """Poll the job row (one indexed read of one column) until it ends or `timeout_s`
    passes; returns its status then. Most matches end within tens of milliseconds,
    so the first quarter second polls every 2 ms (a read costs a fraction of a
    millisecond); after that the pause grows to at most 50 ms."""
    # The query is compiled once and then only executed: a poll costs a tenth of an
    # ORM query's CPU, which on a small machine the worker needs for the match.
    sql, params = Job.objects.filter(id=job_id).values_list("status").query.sql_with_params()
    start = time.monotonic()
    deadline = start + max(float(timeout_s), 0.0)
    delay = 0.002
    while True:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        status = row[0] if row else None
        if status is None or status in TERMINAL:
            return str(status or JobStatus.FAILED)
        now = time.monotonic()
        if now >= deadline:
            return str(status)
        time.sleep(min(delay, deadline - now))
        if now - start > 0.25:
            delay = min(delay * 1.5, 0.05)


def match_settle(match: Match, job: Job | None, *, wait_s: float) -> Job | None:
    """The one way a request waits for a match answer, on every route that matches.

    `match, job` come from `services.match_start`. Waits up to `wait_s` for the job;
    returns None when the answer is stored in `match` (refreshed), or the job when it
    is still running. A failed or cancelled match raises the error the user sees
    (422 / 409, naming the job).
    """
    if job is None:
        return None
    ended = match_wait(job_id=job.id, timeout_s=wait_s)
    if ended == JobStatus.SUCCEEDED:
        try:
            match.refresh_from_db()
        except Match.DoesNotExist:
            # Removed since (its state set deleted, or the store's housekeeping).
            raise ApplicationError(
                "The match is no longer stored; ask again to compute it anew.",
                code="match_gone",
                status_code=409,
                details={"job": str(job.id)},
            ) from None
        return None
    job.refresh_from_db()
    if ended == JobStatus.FAILED:
        raise ApplicationError(
            f"The match failed: {job.error}",
            code="match_failed",
            status_code=422,
            details={"job": str(job.id)},
        )
    if ended == JobStatus.CANCELLED:
        raise ApplicationError(
            "The match was cancelled; ask for it again to start it anew.",
            code="match_cancelled",
            status_code=409,
            details={"job": str(job.id)},
        )
    return job


def match_histograms(match: Match) -> tuple[list[list[int]], list[list[int]]]:
    """(strict, fuzzy) as `[length, count]` pairs (see codec); empty while computed."""
    if match.status != MatchStatus.DONE or not match.result:
        return [], []
    return match.result["strict"], match.result["fuzzy"]


def match_status(match: Match) -> str:
    """`succeeded` once the answer is stored, else the status of the job computing it."""
    if match.status == MatchStatus.DONE:
        return str(JobStatus.SUCCEEDED)
    job = match.job
    return str(job.status) if job is not None else str(JobStatus.QUEUED)


def match_hits(match: Match) -> list[dict[str, Any]]:
    """Every hit of a finished match (none while it is computed), as stored."""
    if match.status != MatchStatus.DONE or not match.result:
        return []
    return list(match.result["hits"])


def _top_entry(entries: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The entry with the highest weight (the first when there are no weights)."""
    if not entries:
        return None
    weighted = [e for e in entries if e.get("weight") is not None]
    if not weighted:
        return entries[0]
    return max(weighted, key=lambda e: float(e["weight"]))


def match_page_hits(
    match: Match, *, offset: int, limit: int, left: int, right: int
) -> list[dict[str, Any]]:
    """Hits `offset .. offset + limit - 1` of a finished match, each with its context
    (`left` tokens before, `right` after, at most `MAX_HIT_TOKENS` in all)."""
    page = match_hits(match)[offset : offset + limit]
    out: list[dict[str, Any]] = []
    if not page:
        return out
    kinds = {a["name"]: a["kind"] for a in match.stateset.manifest.get("annotations", [])}
    q = match.query
    cells = [int(c) for c in q["cells"]]
    n = int(match.stateset.length)
    for hit in page:
        pos, length = hit["position"], hit["length"]
        a = max(pos - left, 0)
        b = min(pos + length - 1 + right, n - 1)
        clipped = b - a + 1 > MAX_HIT_TOKENS
        if clipped:
            b = a + MAX_HIT_TOKENS - 1
        ctx = stateset_context(
            match.stateset,
            match.source,
            a,
            b,
            cells=cells,
            transform=q.get("transform"),
            threshold=float(q["threshold"]),
        )
        annotations = {
            name: [_top_entry(v) for v in values] if kinds.get(name) == "wordvec" else values
            for name, values in ctx["annotations"].items()
        }
        out.append(
            {
                **hit,
                "start": a,
                "end": b,
                "clipped": clipped,
                "tokens": ctx["tokens"],
                "cell_count": ctx["cell_count"],
                "annotations": annotations,
            }
        )
    return out


def match_export(match: Match) -> Download:
    """A finished match's ranked hits as CSV (`workers.core.export.match_csv_chunks`),
    pinned to its state set, source and query; 409 while it is still computed."""
    if match.status != MatchStatus.DONE:
        raise ApplicationError(
            f"The match is not finished yet ({match_status(match)}); export it once it is.",
            code="match_not_finished",
            status_code=409,
            details={"job": str(match.job_id) if match.job_id else None},
        )
    ss = match.stateset
    q = match.query
    meta = {
        "match": str(match.id),
        "stateset": str(ss.id),
        "stateset_name": ss.name,
        "project": ss.project.slug,
        "source": match.source,
        "cells": [int(c) for c in q.get("cells", [])],
        "threshold": q.get("threshold"),
        "constraints": {"zero_left": q.get("zero_left"), "zero_right": q.get("zero_right")},
        "query": q,
        "hits": match.hit_count,
        "exact": match.exact,
    }
    name = f"{filename_part(ss.name, 'stateset')}_match-{match.id.hex[:8]}.csv"
    return Download(
        name,
        "text/csv; charset=utf-8",
        chunks=match_csv_chunks(stateset_store(ss), match_hits(match), meta),
    )
