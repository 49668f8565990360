"""Research events: what a researcher did (opened a project, ran a match, saved a
hypothesis, ...), emitted where the action succeeds and kept by whoever registered a
writer.

The apps that know an action succeeded sit below `backend.usage`, which keeps the
events, and may not import it. They call `event_emit(...)` here; `backend.usage`
registers its writer in its `ready()` (the way `quota.py` counts storage through
counters the apps register). With no writer registered, emitting costs nothing.

When an event reaches a writer:

- emitted inside a transaction, it waits for the commit (`transaction.on_commit`):
  an action rolled back leaves no event;
- emitted while a request runs (the usage middleware opened `events_collect()`), it
  is held until the answer is known and written only when the request succeeded
  (status below 400): a refused or failed request leaves none, and one insert
  writes the request's events together;
- elsewhere (a worker finishing a job), it is written at once.

Emitting and writing never raise: recording must not break the action it records.
A summary keeps only small scalar values (and short lists of them); callers put
parameters there, never secrets, tokens, query strings or file contents.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

log = logging.getLogger(__name__)

# Every kind of research event, with what it records (docs/usage.md lists the summaries).
KINDS: dict[str, str] = {
    "project.opened": "a project's page was opened",
    "stateset.viewed": "a state set's analysis page was opened",
    "selection.made": "a hypothesis range was turned into its cells",
    "match.run": "a match was asked for (cells, corpus size, latency, cache hit)",
    "hypothesis.saved": "a hypothesis was saved (created, or a new version)",
    "hypothesis.shared": "a hypothesis was shared with a user",
    "hypothesis.forked": "a hypothesis was forked",
    "hypothesis.commented": "a comment was written on a hypothesis",
    "statistics.run": "statistics of a hypothesis were asked for",
    "ranking.run": "a ranking of cells against a track was asked for",
    "annotation.uploaded": "an annotation track was uploaded",
    "model.uploaded": "a language model was uploaded",
    "corpus.uploaded": "a corpus was uploaded",
    "import.uploaded": "an LSTMVis project was uploaded for import",
    "training.started": "a training job was started",
    "extraction.started": "an extraction job was started",
    "job.finished": "a job succeeded (with its kind and duration)",
    "job.failed": "a job failed (with its kind and duration)",
    "job.cancelled": "a job was cancelled",
    "export.downloaded": "an export (states, hits, ranking, statistics) was downloaded",
}
# The outcomes of jobs, recorded for the user who made the job (a worker or another
# editor ended it): they count in the figures of jobs, not in anyone's activity.
SYSTEM_KINDS = frozenset({"job.finished", "job.failed", "job.cancelled"})

SUMMARY_KEYS = 24
SUMMARY_TEXT = 200
SUMMARY_LIST = 32


@dataclass(frozen=True, slots=True)
class Event:
    kind: str
    at: datetime
    user_id: int | None
    username: str
    project: str
    object_id: str
    summary: dict[str, Any] = field(default_factory=dict)


Writer = Callable[[list[Event]], None]
_WRITERS: dict[str, Writer] = {}
_pending: ContextVar[list[Event] | None] = ContextVar("statelab_events_pending", default=None)


def event_writer_register(name: str, writer: Writer) -> None:
    """Make `writer(events)` receive every event written from now on (idempotent per name)."""
    _WRITERS[name] = writer


def _scalar(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    return str(value)[:SUMMARY_TEXT]


def summary_clean(summary: dict[str, Any] | None) -> dict[str, Any]:
    """At most `SUMMARY_KEYS` keys of scalars (text cut to `SUMMARY_TEXT` characters)
    or short lists of scalars."""
    out: dict[str, Any] = {}
    for key, value in list((summary or {}).items())[:SUMMARY_KEYS]:
        if isinstance(value, list | tuple | set | frozenset):
            out[str(key)] = [_scalar(v) for v in list(value)[:SUMMARY_LIST]]
        else:
            out[str(key)] = _scalar(value)
    return out


def event_emit(
    kind: str,
    *,
    user: Any = None,
    user_id: int | None = None,
    username: str = "",
    project: Any = None,
    object_id: Any = "",
    summary: dict[str, Any] | None = None,
) -> None:
    """Record that `user` (or `user_id` and `username`, for a user not at hand) did
    `kind` in `project` (a project or its slug) on `object_id`, with `summary`."""
    if not _WRITERS:
        return
    try:
        if kind not in KINDS:
            raise ValueError(f"unknown research event kind {kind!r}")
        if user is not None and getattr(user, "is_authenticated", False):
            user_id, username = int(user.pk), str(user.get_username())
        slug = getattr(project, "slug", project) or ""
        event = Event(
            kind=kind,
            at=timezone.now(),
            user_id=user_id,
            username=username[:150],
            project=str(slug)[:80],
            object_id=str(object_id or "")[:64],
            summary=summary_clean(summary),
        )
        if connection.in_atomic_block:
            transaction.on_commit(partial(_deliver, event))
        else:
            _deliver(event)
    except Exception:
        log.exception("could not record a %s event", kind)


def _deliver(event: Event) -> None:
    pending = _pending.get()
    if pending is not None:
        pending.append(event)
    else:
        events_write([event])


@contextmanager
def events_collect() -> Iterator[list[Event]]:
    """Hold the events emitted inside the block in the list it yields (the caller
    decides whether to write them, with `events_write`)."""
    held: list[Event] = []
    token = _pending.set(held)
    try:
        yield held
    finally:
        _pending.reset(token)


def events_write(events: list[Event]) -> None:
    """Hand `events` to every writer; a writer that fails is logged, never raised."""
    if not events:
        return
    for name, writer in list(_WRITERS.items()):
        try:
            writer(events)
        except Exception:
            log.exception("the event writer %s failed", name)
