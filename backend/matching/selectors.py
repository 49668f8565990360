"""Reads for matches: the access check, waiting for a match job, and the answers.

`match_for_user` answers 404 for a match on a state set the caller may not see,
exactly as for a missing one. `match_page` adds to each hit what the match view
draws beside it: the tokens with some left context, how many selected cells are
on at each step, and the annotation values (top prediction only, for wordvec
tracks), read from the memory-mapped state set a few rows at a time.
"""

from __future__ import annotations

import time
from typing import Any

from django.db import connection

from backend.jobs.models import TERMINAL, Job, JobStatus
from backend.projects.selectors import get_for_user
from backend.states.selectors import stateset_store

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


def match_status(match: Match) -> str:
    """`succeeded` once the answer is stored, else the status of the job computing it."""
    if match.status == MatchStatus.DONE:
        return str(JobStatus.SUCCEEDED)
    job = match.job
    return str(job.status) if job is not None else str(JobStatus.QUEUED)


def _hits(match: Match) -> list[dict[str, Any]]:
    if match.status != MatchStatus.DONE or not match.result:
        return []
    return list(match.result["hits"])


def _histograms(match: Match) -> tuple[list[list[int]], list[list[int]]]:
    """(strict, fuzzy) as `[length, count]` pairs (see codec)."""
    if match.status != MatchStatus.DONE or not match.result:
        return [], []
    return match.result["strict"], match.result["fuzzy"]


def match_describe(match: Match, *, reused: bool | None = None) -> dict[str, Any]:
    """The match without its hits: query, status, exactness, histograms."""
    strict, fuzzy = _histograms(match)
    body: dict[str, Any] = {
        "id": str(match.id),
        "stateset": str(match.stateset_id),
        "source": match.source,
        "query": match.query,
        "status": match_status(match),
        "job": str(match.job_id) if match.job_id else None,
        "error": match.job.error if match.job is not None and match.status != "done" else "",
        "exact": match.exact,
        "unscored": match.unscored,
        "candidates": match.candidates,
        "total": match.hit_count,
        "shards": match.shards,
        "seconds": match.seconds,
        "strict_histogram": strict,
        "fuzzy_histogram": fuzzy,
        "created_at": match.created_at.isoformat(),
        "finished_at": match.finished_at.isoformat() if match.finished_at else None,
        "last_used_at": match.last_used_at.isoformat(),
    }
    if reused is not None:
        body["reused"] = reused
    return body


def match_answer(match: Match, *, reused: bool) -> dict[str, Any]:
    """The answer of `POST /matches/`: the match with every hit, without context."""
    return {**match_describe(match, reused=reused), "hits": _hits(match)}


def _top_entry(entries: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The entry with the highest weight (the first when there are no weights)."""
    if not entries:
        return None
    weighted = [e for e in entries if e.get("weight") is not None]
    if not weighted:
        return entries[0]
    return max(weighted, key=lambda e: float(e["weight"]))


def match_page(match: Match, *, offset: int, limit: int, left: int, right: int) -> dict[str, Any]:
    """Hits `offset .. offset + limit - 1` of a finished match with their context."""
    from workers.core.context import read_context
    from workers.core.match import MatchQuery

    hits = _hits(match)
    page = hits[offset : offset + limit]
    body = match_describe(match)
    body.update({"offset": offset, "limit": limit, "left": left, "right": right, "hits": []})
    if not page:
        return body
    store = stateset_store(match.stateset)
    kinds = {a.name: a.kind for a in store.manifest.annotations}
    q = MatchQuery.from_json(match.query)
    cells = [int(c) for c in q.cells]
    n = store.length
    for hit in page:
        pos, length = hit["position"], hit["length"]
        a = max(pos - left, 0)
        b = min(pos + length - 1 + right, n - 1)
        clipped = b - a + 1 > MAX_HIT_TOKENS
        if clipped:
            b = a + MAX_HIT_TOKENS - 1
        ctx = read_context(
            store,
            match.source,
            a,
            b,
            cells=cells,
            transform=q.transform,
            threshold=float(q.threshold),
        )
        annotations = {
            name: [_top_entry(v) for v in values] if kinds.get(name) == "wordvec" else values
            for name, values in ctx["annotations"].items()
        }
        body["hits"].append(
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
    return body
