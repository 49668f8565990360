"""A small sample for a fresh installation: an LSTMVis project directory of bracket
sequences whose states are *constructed* (cells that count nesting depth, cells that
are on inside brackets, noisy cells), imported through the normal import job.

It gives a new user something to look at in the first minute and exercises the
same path as a real upload. It is labelled as synthetic everywhere it shows.
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path

import h5py
import numpy as np
import yaml

from backend.accounts.models import User
from backend.jobs.models import Job
from backend.projects.models import Project
from backend.projects.services import project_create

SAMPLE_SLUG = "sample-brackets"


def _bracket_corpus(n: int, rng: np.random.Generator) -> list[str]:
    tokens: list[str] = []
    depth = 0
    while len(tokens) < n:
        r = rng.random()
        if depth < 6 and r < 0.3:
            tokens.append("(")
            depth += 1
        elif depth > 0 and r < 0.55:
            tokens.append(")")
            depth -= 1
        elif depth == 0 and r < 0.6:
            tokens.append("\n")
        else:
            tokens.append("abcdefgh"[int(rng.integers(0, 8))])
    return tokens[:n]


def write_sample_dir(root: Path, *, n: int = 20_000, seed: int = 3) -> Path:
    """Write the sample LSTMVis project under `root/brackets` and return that folder."""
    rng = np.random.default_rng(seed)
    tokens = _bracket_corpus(n, rng)
    vocab = ["(", ")", "\n", " ", *"abcdefgh"]
    index = {t: i + 1 for i, t in enumerate(vocab)}  # LSTMVis ids are 1-based
    ids = np.array([index[t] for t in tokens], dtype=np.int64)
    step = np.where(ids == index["("], 1, np.where(ids == index[")"], -1, 0))
    depth = np.cumsum(step)
    after_open = np.cumsum(step)  # depth after reading each token
    d = 24
    cells = np.cumsum(rng.normal(0, 0.25, size=(n, d)), axis=0) * 0.2
    for k in range(6):  # cell k is on from depth k+1 on: a depth counter, one cell per level
        cells[:, k] = 3.0 * (after_open - (k + 0.5)) + rng.normal(0, 0.2, n)
    inside = (after_open > 0).astype(float)
    cells[:, 6] = 2.5 * (2 * inside - 1) + rng.normal(0, 0.3, n)  # on anywhere inside brackets
    letters = np.isin(ids, [index[c] for c in "abcdefgh"])
    cells[:, 7] = np.where(letters, 1.5, -1.5) + rng.normal(0, 0.3, n)  # on for letters
    proj = root / "brackets"
    proj.mkdir(parents=True)
    with h5py.File(proj / "states.h5", "w") as f:
        f.create_dataset("states1", data=cells.astype(np.float32), compression="gzip")
    with h5py.File(proj / "train.h5", "w") as f:
        f.create_dataset("words", data=ids)
    with h5py.File(proj / "meta.h5", "w") as f:
        f.create_dataset("depth", data=depth.astype(np.float32))
        kind = np.where(step > 0, 0, np.where(step < 0, 1, np.where(letters, 2, 3)))
        f.create_dataset("kind", data=kind.astype(np.int32))
    lines = []
    for t, i in index.items():
        lines.append(f" {i}" if t == " " else f"{'<nl>' if t == chr(10) else t} {i}")
    (proj / "words.dict").write_text("\n".join(lines) + "\n")
    (proj / "kind.dict").write_text("open 0\nclose 1\nletter 2\nnewline 3\n")
    config = {
        "name": "Sample: bracket states (synthetic)",
        "description": (
            "Constructed states over nested brackets: cells 0-5 count nesting depth, cell 6 is "
            "on inside brackets, cell 7 on letters, the rest is noise. Not a trained model."
        ),
        "files": {
            "states": "states.h5",
            "train": "train.h5",
            "words": "words.dict",
            "meta": "meta.h5",
            "kind_dict": "kind.dict",
        },
        "word_sequence": {"file": "train", "path": "words", "dict_file": "words"},
        "states": {"file": "states", "types": [{"type": "state", "layer": 1, "path": "states1"}]},
        "meta": {
            "depth": {"file": "meta", "path": "depth", "vis": {"type": "scalar", "range": [0, 6]}},
            "kind": {
                "file": "meta",
                "path": "kind",
                "dict": "kind_dict",
                "vis": {"type": "discrete", "range": "dict"},
            },
        },
    }
    (proj / "lstm.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    return proj


def sample_create(*, owner: User) -> Job | None:
    """Create the sample project and queue its import, once per installation."""
    from backend.states.services import import_start

    if Project.objects.filter(slug=SAMPLE_SLUG).exists():
        return None
    project = project_create(
        user=owner,
        name="Sample: brackets",
        slug=SAMPLE_SLUG,
        description="A synthetic LSTMVis import to look around with.",
    )
    with tempfile.TemporaryDirectory() as tmp:
        proj = write_sample_dir(Path(tmp))
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for p in sorted(proj.rglob("*")):
                zf.write(p, p.relative_to(proj).as_posix())
        buf.seek(0)
        buf.name = "brackets.zip"
        job, _ = import_start(project=project, user=owner, file=buf)
    return job
