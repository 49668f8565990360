"""The demo project: a trained parentheses LSTM, its extracted states and the depth track."""

import numpy as np
import pytest

from backend.jobs.models import Job
from backend.states.demo import DEMO_SLUG, demo_create
from backend.states.models import StateSet
from backend.states.selectors import stateset_store

pytestmark = pytest.mark.django_db(transaction=True)


def test_demo_is_created_once_public_and_a_cell_follows_the_nesting_depth(owner, outsider_api):
    job = demo_create(owner=owner)
    assert job is not None
    job = Job.objects.get(id=job.id)
    assert job.status == "succeeded", job.error
    assert demo_create(owner=owner) is None  # only once per installation

    ss = StateSet.objects.get(id=job.result["stateset"])
    assert ss.project.slug == DEMO_SLUG and ss.project.public
    assert ss.origin == "extraction"
    store = stateset_store(ss)
    depth = np.asarray(store.annotation("depth")[0], dtype=np.float64)
    assert depth.min() == 0 and depth.max() == 5
    cells = np.asarray(store.values("l1_c"), dtype=np.float64)
    r = [abs(np.corrcoef(cells[:, k], depth)[0, 1]) for k in range(cells.shape[1])]
    assert max(r) > 0.95, max(r)

    # Every user of the installation reads it, through the same API as their own.
    detail = outsider_api.get(f"/api/statesets/{ss.id}/")
    assert detail.status_code == 200, detail.content
    body = detail.json()
    assert {"l1_h", "l1_c"} <= {s["id"] for s in body["sources"]}
    assert {"depth", "top_predictions", "surprisal"} <= {a["name"] for a in body["annotations"]}
    assert body["stream_starts"][0] == 0
    listing = outsider_api.get("/api/projects/").json()
    rows = listing["results"] if isinstance(listing, dict) else listing
    assert DEMO_SLUG in {p["slug"] for p in rows}
    # ... but cannot change it.
    assert outsider_api.patch(f"/api/projects/{DEMO_SLUG}/", {"name": "x"}).status_code in (
        403,
        404,
    )
