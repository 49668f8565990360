"""The first-start sample imports through the normal job and its cells do what it says."""

import numpy as np
import pytest

from backend.jobs.models import Job
from backend.states.sample import sample_create
from backend.states.selectors import stateset_store

pytestmark = pytest.mark.django_db(transaction=True)


def test_sample_imports_once_and_depth_cells_track_depth(owner):
    job = sample_create(owner=owner)
    job = Job.objects.get(id=job.id)
    assert job.status == "succeeded", job.error
    assert sample_create(owner=owner) is None  # only once
    from backend.states.models import StateSet

    ss = StateSet.objects.get(id=job.result["stateset"])
    assert ss.name.startswith("Sample") and ss.length == 20_000
    store = stateset_store(ss)
    depth, _ = store.annotation("depth")
    on = np.tanh(np.asarray(store.values("s0")[:, 0])) >= 0.3
    assert np.array_equal(on, np.asarray(depth) >= 1)
    tokens = {store.vocab[i] for i in np.asarray(store.tokens)}
    assert {"(", ")", "a"} <= tokens
