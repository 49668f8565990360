"""The users of a lab, for locust: what `python -m workers.benchmarks.loadtest` drives.

Every simulated user is a distinct account with its own API token (created by the
runner, so no login is throttled or locked out), thinks for a few seconds between
actions, and does what an analyst on the analysis page does, in these proportions:

- ``context``: a 200-token window of every cell at a random position, as the page
  loads it when panning (`GET /api/statesets/{id}/context/`). The answer is checked
  against the state set on disk: the token ids and three cells' values.
- ``search``: a phrase search (`GET .../search/?q=&limit=200`) for one of a fixed
  list of phrases read off the corpus; positions and total must be the ones a scan
  of the token array gives.
- ``match (repeated)``: one of a small fixed set of cell sets, whose answers are
  stored; hits must equal the answer recorded before the load.
- ``match (new)``: 8 fresh random cells (`POST .../matches/`); a 202 is followed
  through `GET /api/jobs/{id}/` and the match fetched, all timed as one request.
- ``match page``: after either match, the first page of hits with context, as the
  match view shows it (`GET /api/matches/{id}/`).
- ``upload``: now and then a corpus of a few KB (`POST /api/projects/{slug}/corpora/`,
  multipart), waited for through its job; the corpus must have the tokens the text
  holds.

Every action is reported to locust as one request under the names above: a wrong
answer, an unexpected status, a timeout or a connection error is a failure. A 429
(a rate limit) is reported under the action's name with ``[429]`` appended and
counted apart. The plan (state set, tokens, queries, expected answers) comes from
the JSON file named by ``STATELAB_LOADTEST_PLAN``; each request's time and outcome
are written at the end to the file the plan names, for exact percentiles.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from locust import between, events
from locust.contrib.fasthttp import FastHttpUser
from locust.event import EventHook

from workers.benchmarks.loadtest.checks import hits_digest

WINDOW = 200
MATCH_CELLS = 8
JOB_POLL_S = 0.2
JOB_WAIT_S = 120.0
TERMINAL = ("succeeded", "failed", "cancelled")
UPLOAD_WORDS = ["the", "cell", "state", "gate", "bracket", "quote", "open", "close"]


def _plan() -> dict[str, Any]:
    path = os.environ.get("STATELAB_LOADTEST_PLAN")
    if not path:
        raise SystemExit(
            "STATELAB_LOADTEST_PLAN is not set: run the load test with "
            "`python -m workers.benchmarks.loadtest`, which prepares the lab and the plan."
        )
    plan: dict[str, Any] = json.loads(Path(path).read_text())
    return plan


PLAN = _plan()
_tokens = itertools.cycle(PLAN["tokens"])
_rng = random.Random(PLAN.get("seed", 1))
_seen_cells: set[tuple[int, ...]] = {tuple(q["cells"]) for q in PLAN["repeated"]}
_values: np.ndarray | None = None
_token_ids: np.ndarray | None = None


def _store_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The state set's source values and token ids, memory-mapped once per process."""
    global _values, _token_ids
    if _values is None or _token_ids is None:
        root = Path(PLAN["store_path"])
        _values = np.load(root / PLAN["values_file"], mmap_mode="r")
        _token_ids = np.load(root / PLAN["tokens_file"], mmap_mode="r")
    return _values, _token_ids


class WrongAnswer(Exception):
    """The service answered, but not what it should have."""


class Throttled(Exception):
    """A 429: counted apart from the errors."""


def fresh_cells(cells: int) -> list[int]:
    while True:
        chosen = tuple(sorted(_rng.sample(range(cells), MATCH_CELLS)))
        if chosen not in _seen_cells:
            _seen_cells.add(chosen)
            return list(chosen)


def upload_text(rng: random.Random) -> tuple[bytes, int]:
    """About 3 KB of text never uploaded before, and the tokens it makes (words plus
    one `<eos>` per line)."""
    lines = [f"loadtest {uuid.uuid4().hex}"]
    lines += [" ".join(rng.choices(UPLOAD_WORDS, k=rng.randint(4, 12))) for _ in range(60)]
    tokens = sum(len(line.split()) + 1 for line in lines)
    return ("\n".join(lines) + "\n").encode(), tokens


class LabUser(FastHttpUser):
    """One analyst: a token of their own, a few seconds' thought between actions."""

    wait_time = between(float(PLAN["think_s"][0]), float(PLAN["think_s"][1]))
    network_timeout = 60.0
    connection_timeout = 10.0
    concurrency = 1

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        # Each action reports itself once (below), however many requests it takes.
        self.client.request_event = EventHook()  # type: ignore[no-untyped-call]
        self.rng = random.Random(_rng.random())
        self.headers: dict[str, str] = {}
        self.ss = str(PLAN["stateset"])
        self.source = str(PLAN["source"])

    def on_start(self) -> None:
        self.headers = {"Authorization": f"Token {next(_tokens)}", "Accept": "application/json"}

    # -- plumbing ----------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        data: bytes | None = None,
        content_type: str = "",
        ok: tuple[int, ...] = (200,),
    ) -> tuple[int, Any, int]:
        """One request: (status, parsed JSON, bytes). Raises for a connection error,
        a 429 (`Throttled`) or a status outside ``ok``."""
        headers = dict(self.headers)
        payload: bytes | None = data
        if body is not None:
            payload = orjson.dumps(body)
            headers["Content-Type"] = "application/json"
        elif content_type:
            headers["Content-Type"] = content_type
        r = self.client.request(method, path, data=payload, headers=headers)  # type: ignore[arg-type]
        error = getattr(r, "error", None)
        if r.status_code == 0 and error is not None:
            raise ConnectionError(f"{method} {path.split('?')[0]}: {error!r}")
        if r.status_code == 429:
            raise Throttled(path)
        content = r.content or b""
        if r.status_code not in ok:
            raise WrongAnswer(
                f"{method} {path.split('?')[0]} answered {r.status_code}: {content[:200]!r}"
            )
        return r.status_code, orjson.loads(content) if content else None, len(content)

    def _action(self, name: str, work: Any) -> None:
        """Time ``work()`` (which returns the bytes received) as one locust request."""
        start = time.time()
        t = time.perf_counter()
        length, exception, kind = 0, None, name
        try:
            length = int(work())
        except Throttled:
            kind = f"{name} [429]"
        except Exception as exc:
            exception = exc
        events.request.fire(  # type: ignore[no-untyped-call]
            request_type="ACTION",
            name=kind,
            response_time=(time.perf_counter() - t) * 1000.0,
            response_length=length,
            exception=exception,
            context={},
            start_time=start,
            url=None,
            response=None,
        )

    def _job(self, job: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """Follow a job until it ends; (the job, bytes received)."""
        received = 0
        deadline = time.monotonic() + JOB_WAIT_S
        while job["status"] not in TERMINAL:
            if time.monotonic() > deadline:
                raise WrongAnswer(f"job {job['id']} still {job['status']} after {JOB_WAIT_S} s")
            time.sleep(JOB_POLL_S)
            _, job, n = self._call("GET", f"/api/jobs/{job['id']}/")
            received += n
        if job["status"] != "succeeded":
            raise WrongAnswer(f"job {job['id']} {job['status']}: {job.get('error')}")
        return job, received

    def _match(self, cells: list[int]) -> tuple[dict[str, Any], int]:
        """A match answer with its hits, following a 202; (answer, bytes)."""
        body = {"source": self.source, "cells": cells, "threshold": 0.3, "zero_left": 1}
        status, answer, received = self._call(
            "POST", f"/api/statesets/{self.ss}/matches/", body=body, ok=(200, 202)
        )
        if status == 202:
            job, n = self._job(answer["job"])
            _, answer, m = self._call("GET", f"/api/matches/{job['result']['match']}/?limit=50")
            received += n + m
        if answer.get("status") != "succeeded" or not isinstance(answer.get("hits"), list):
            raise WrongAnswer(f"match answered {str(answer)[:200]}")
        if answer["query"]["cells"] != cells:
            raise WrongAnswer(f"match of {cells} answered for {answer['query']['cells']}")
        for hit in answer["hits"]:
            if not 0 <= hit["position"] < PLAN["length"] or hit["intersection"] > MATCH_CELLS:
                raise WrongAnswer(f"hit out of bounds: {hit}")
        return answer, received

    def _page(self, match_id: str, total: int) -> int:
        _, page, received = self._call(
            "GET", f"/api/matches/{match_id}/?offset=0&limit=20&left=10&right=10"
        )
        if page["id"] != match_id or len(page["hits"]) != min(20, total):
            raise WrongAnswer(f"match page of {match_id}: {len(page['hits'])} hits of {total}")
        return received

    # -- what users do -------------------------------------------------------------

    def read_context(self) -> None:
        def work() -> int:
            start = self.rng.randrange(0, PLAN["length"] - WINDOW)
            end = start + WINDOW - 1
            _, answer, received = self._call(
                "GET",
                f"/api/statesets/{self.ss}/context/?source={self.source}&start={start}&end={end}",
            )
            values, token_ids = _store_arrays()
            if answer["start"] != start or answer["end"] != end:
                raise WrongAnswer(
                    f"window {start}-{end} answered {answer['start']}-{answer['end']}"
                )
            if answer["token_ids"] != token_ids[start : end + 1].tolist():
                raise WrongAnswer(f"window {start}-{end}: token ids differ")
            got = answer["values"]
            if len(got) != PLAN["cells"] or any(len(row) != WINDOW for row in got[:3]):
                raise WrongAnswer(f"window {start}-{end}: {len(got)} cells")
            for c in self.rng.sample(range(PLAN["cells"]), 3):
                want = np.tanh(np.asarray(values[start : end + 1, c], dtype=np.float64))
                have = np.asarray(got[c], dtype=np.float64)
                if not np.allclose(have, want, atol=2e-5):
                    raise WrongAnswer(f"window {start}-{end}: cell {c} values differ")
            return received

        self._action("context", work)

    def phrase_search(self) -> None:
        def work() -> int:
            phrase = self.rng.choice(PLAN["phrases"])
            q = "+".join(phrase["q"].split())
            _, answer, received = self._call(
                "GET", f"/api/statesets/{self.ss}/search/?q={q}&limit=200"
            )
            if answer["positions"] != phrase["positions"] or answer["total"] != phrase["total"]:
                raise WrongAnswer(
                    f"search {phrase['q']!r}: {len(answer['positions'])} positions, total "
                    f"{answer['total']}; expected {len(phrase['positions'])}, {phrase['total']}"
                )
            return received

        self._action("search", work)

    def match_repeated(self) -> None:
        query = self.rng.choice(PLAN["repeated"])
        found: dict[str, Any] = {}

        def work() -> int:
            answer, received = self._match(query["cells"])
            if not answer.get("reused"):
                raise WrongAnswer(f"the stored match of {query['cells']} was computed again")
            if answer["total"] != query["total"] or hits_digest(answer["hits"]) != query["digest"]:
                raise WrongAnswer(f"the stored match of {query['cells']} changed")
            found.update(answer)
            return received

        self._action("match (repeated)", work)
        if found:
            self._action("match page", lambda: self._page(found["id"], found["total"]))

    def match_new(self) -> None:
        cells = fresh_cells(int(PLAN["cells"]))
        found: dict[str, Any] = {}

        def work() -> int:
            answer, received = self._match(cells)
            if answer.get("reused"):
                raise WrongAnswer(f"a fresh query {cells} was answered from the store")
            found.update(answer)
            return received

        self._action("match (new)", work)
        if found:
            self._action("match page", lambda: self._page(found["id"], found["total"]))

    def upload(self) -> None:
        def work() -> int:
            text, tokens = upload_text(self.rng)
            boundary = uuid.uuid4().hex
            data = (
                (
                    f"--{boundary}\r\n"
                    'Content-Disposition: form-data; name="tokenization"\r\n\r\nword\r\n'
                    f"--{boundary}\r\n"
                    'Content-Disposition: form-data; name="file"; filename="notes.txt"\r\n'
                    "Content-Type: text/plain\r\n\r\n"
                ).encode()
                + text
                + f"\r\n--{boundary}--\r\n".encode()
            )
            _, answer, received = self._call(
                "POST",
                f"/api/projects/{PLAN['project']}/corpora/",
                data=data,
                content_type=f"multipart/form-data; boundary={boundary}",
                ok=(202,),
            )
            job, n = self._job(answer["job"])
            _, corpus, m = self._call("GET", f"/api/corpora/{job['result']['corpus']}/")
            if corpus["length"] != tokens:
                raise WrongAnswer(f"the corpus has {corpus['length']} tokens, not {tokens}")
            return received + n + m

        self._action("upload", work)

    # The mix: how often each action comes, relative to the others (the plan's).
    tasks: list[Any] = [
        *[read_context] * int(PLAN["mix"]["context"]),
        *[phrase_search] * int(PLAN["mix"]["search"]),
        *[match_repeated] * int(PLAN["mix"]["match (repeated)"]),
        *[match_new] * int(PLAN["mix"]["match (new)"]),
        *[upload] * int(PLAN["mix"]["upload"]),
    ]


# -- what the runner reads: every action's time and outcome ----------------------------

_samples: list[tuple[float, str, float, str]] = []
_t0 = time.time()


def _record(name: str, response_time: float, exception: BaseException | None, **_: Any) -> None:
    error = "" if exception is None else f"{type(exception).__name__}: {exception}"[:300]
    _samples.append((round(time.time() - _t0, 3), name, round(response_time, 3), error))


def _write(**_: Any) -> None:
    out = PLAN.get("samples_out")
    if out:
        Path(out).write_text(json.dumps({"t0": _t0, "samples": _samples}))


events.request.add_listener(_record)  # type: ignore[no-untyped-call]
events.quitting.add_listener(_write)  # type: ignore[no-untyped-call]
