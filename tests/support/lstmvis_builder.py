"""Builders for LSTMVis project directories and hostile inputs, for tests.

Worker tests and backend tests both need realistic LSTMVis data: a directory
with ``lstm.yml``, several HDF5 files and dictionaries that exercises every
feature of the format (see ``lstmvis-compat.md`` section 1), and variants that
attack the importer. Building them in code keeps the fixtures small, seeded and
readable, instead of binary blobs in the repository.

``build_lstmvis_project`` writes the full project and returns its folder; the
returned folder's ``lstm.yml`` and HDF5 files are the ground truth tests compare
against. The ``make_*`` functions turn a built project (or a path) into one
hostile case each; the ``zip_*`` functions build archives in memory.
"""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import yaml

__all__ = [
    "POS_LABELS",
    "SEED",
    "build_lstmvis_project",
    "make_bad_filter_hdf5",
    "make_external_link_hdf5",
    "make_external_storage_hdf5",
    "make_length_mismatch",
    "make_virtual_dataset_hdf5",
    "make_yaml_python_tag",
    "project_config",
    "temp_leftovers",
    "truncate_file",
    "zip_bomb",
    "zip_dir",
    "zip_with_encrypted_entry",
    "zip_with_entries",
    "zip_with_lying_size",
    "zip_with_symlink",
    "zip_with_traversal",
]

SEED = 20180101
POS_LABELS = ["NN", "VB", "DT", "JJ"]
SPACE_ID = 3
EOS_ID = 2


def _write_dict(path: Path, mapping: dict[int, str]) -> None:
    lines = []
    for idx, token in mapping.items():
        # LSTMVis writes the space token as a line that starts with a space.
        lines.append(f" {idx}" if token == " " else f"{token} {idx}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def project_config(name: str = "children books") -> dict[str, Any]:
    """The ``lstm.yml`` written by :func:`build_lstmvis_project`."""
    return {
        "name": name,
        "description": "Synthetic children book texts",
        "files": {
            "states": "states.hdf5",
            "other": "sub/other.h5",
            "train": "train.hdf5",
            "words": "train.dict",
            "pos": "pos.h5",
            "pos_dict": "pos.dict",
            "scores": "scores.h5",
            "topk": "topk.h5",
            "emb": "emb.h5",
        },
        "word_sequence": {"file": "train", "path": "word_ids", "dict_file": "words"},
        "states": {
            "file": "states",
            "types": [
                {"type": "state", "layer": 1, "path": "states1"},
                {"type": "state", "layer": 2, "path": "states2", "file": "other"},
                {"type": "state", "layer": 2, "path": "states2u", "unsigned": True},
                {"type": "output", "layer": 2, "path": "/group/output2", "transform": "none"},
            ],
        },
        "word_embedding": {"file": "emb", "path": "emb"},
        "meta": {
            "part_of_speech": {
                "file": "pos",
                "path": "pos",
                "dict": "pos_dict",
                "vis": {"type": "discrete", "range": "dict"},
            },
            "surprise": {
                "file": "scores",
                "path": "surprisal",
                "vis": {"type": "scalar", "range": [0, 1]},
            },
            "top_predictions": {
                "type": "wordvec",
                "file": "topk",
                "path": "ids",
                "weights_path": "probs",
                "dict": "words",
            },
            "word_frequency": {
                "file": "scores",
                "path": "freq_by_word",
                "index": "word_sequence",
                "vis": {"type": "scalar"},
            },
        },
        "etc": {"regex_search": False},
    }


def build_lstmvis_project(
    root: Path,
    *,
    n: int = 200,
    d: int = 12,
    vocab_words: int = 20,
    k: int = 3,
    emb_dim: int = 8,
    name: str = "children books",
    project: str = "proj",
    seed: int = SEED,
) -> Path:
    """Write a complete LSTMVis project under ``root/project`` and return that folder.

    Word ids are 1-based as in LSTMVis' Torch exports (id 0 is unused), the
    dictionary has the space token (``" 3"`` line) and ``<eos>``; states are
    random walks so cells switch on and off in runs. ``states2`` lives in a
    sub-folder file with ``d + 3`` cells; ``output2`` lies in [-1, 1] and has
    ``transform: none``; ``states2u`` is non-negative and ``unsigned: true``.
    """
    rng = np.random.default_rng(seed)
    proj = Path(root) / project
    (proj / "sub").mkdir(parents=True)

    vocab: dict[int, str] = {1: "the", EOS_ID: "<eos>", SPACE_ID: " "}
    for i in range(4, vocab_words + 1):
        vocab[i] = f"w{i}"
    _write_dict(proj / "train.dict", vocab)
    _write_dict(proj / "pos.dict", dict(enumerate(POS_LABELS)))
    v_rows = vocab_words + 1

    word_ids = rng.integers(1, vocab_words + 1, size=n).astype(np.int64)
    word_ids[n // 2] = SPACE_ID
    with h5py.File(proj / "train.hdf5", "w") as f:
        f.create_dataset("word_ids", data=word_ids)

    def walk(cells: int) -> np.ndarray:
        steps = rng.normal(0, 0.6, size=(n, cells))
        out: np.ndarray = np.cumsum(steps, axis=0).astype(np.float32)
        return out

    with h5py.File(proj / "states.hdf5", "w") as f:
        f.create_dataset("states1", data=walk(d), chunks=(min(n, 64), d), compression="gzip")
        f.create_dataset("states2u", data=np.abs(walk(d)))
        f.create_dataset(
            "group/output2",
            data=np.tanh(walk(d)).astype(np.float64),
            shuffle=True,
            compression="lzf",
        )
    with h5py.File(proj / "sub" / "other.h5", "w") as f:
        f.create_dataset("states2", data=walk(d + 3), fletcher32=True)

    with h5py.File(proj / "pos.h5", "w") as f:
        f.create_dataset("pos", data=rng.integers(0, len(POS_LABELS), size=n).astype(np.int32))
    with h5py.File(proj / "scores.h5", "w") as f:
        f.create_dataset("surprisal", data=rng.random(n))
        f.create_dataset("freq_by_word", data=rng.random(v_rows).astype(np.float32))
    with h5py.File(proj / "topk.h5", "w") as f:
        ids = rng.integers(1, vocab_words + 1, size=(n, k)).astype(
            np.float64
        )  # Torch often saves doubles
        probs = rng.dirichlet(np.ones(k), size=n).astype(np.float32)
        f.create_dataset("ids", data=ids)
        f.create_dataset("probs", data=probs)
    with h5py.File(proj / "emb.h5", "w") as f:
        f.create_dataset("emb", data=rng.normal(size=(v_rows, emb_dim)).astype(np.float32))

    text = "# LSTMVis project written by the test builder\n" + yaml.safe_dump(
        project_config(name), sort_keys=False
    )
    (proj / "lstm.yml").write_text(text, encoding="utf-8")
    return proj


# --------------------------------------------------------------------------- #
# Hostile inputs
# --------------------------------------------------------------------------- #


def make_yaml_python_tag(project: Path, marker: Path) -> None:
    """Replace ``lstm.yml`` with one whose tag would run ``touch <marker>`` if honoured."""
    (project / "lstm.yml").write_text(
        f'name: !!python/object/apply:os.system ["touch {marker}"]\n'
        "files: {states: states.hdf5}\n",
        encoding="utf-8",
    )


def make_external_link_hdf5(path: Path, target: Path, *, dataset: str = "states1") -> None:
    """An HDF5 file whose ``dataset`` is an external link into ``target``."""
    with h5py.File(path, "w") as f:
        f["states1_real"] = np.zeros((4, 4), dtype=np.float32)
        f[dataset] = h5py.ExternalLink(str(target), "/secret")


def make_virtual_dataset_hdf5(
    path: Path, source: Path, *, dataset: str, shape: tuple[int, int]
) -> None:
    """An HDF5 file whose ``dataset`` is a virtual dataset mapping ``source``'s ``/data``."""
    with h5py.File(source, "w") as f:
        f.create_dataset("data", data=np.ones(shape, dtype=np.float32))
    layout = h5py.VirtualLayout(shape=shape, dtype=np.float32)
    layout[:] = h5py.VirtualSource(str(source), "data", shape=shape)
    with h5py.File(path, "w") as f:
        f.create_virtual_dataset(dataset, layout)


def make_external_storage_hdf5(
    path: Path, raw: Path, *, dataset: str, shape: tuple[int, int]
) -> None:
    """An HDF5 file whose ``dataset`` keeps its bytes in the outside file ``raw``."""
    nbytes = shape[0] * shape[1] * 4
    if not raw.exists():
        raw.write_bytes(b"\x00" * nbytes)
    with h5py.File(path, "w") as f:
        f.create_dataset(dataset, shape=shape, dtype=np.float32, external=[(str(raw), 0, nbytes)])


def make_bad_filter_hdf5(path: Path, *, dataset: str, data: np.ndarray, filter_id: int = 5) -> None:
    """An HDF5 file whose ``dataset`` uses a filter outside the accepted list.

    ``filter_id=5`` is libhdf5's own N-bit filter (built in, but not accepted);
    an id such as 32013 is an unregistered plugin filter, marked optional so the
    file can be written without the plugin.
    """
    arr = np.ascontiguousarray(data, dtype=np.float32)
    with h5py.File(path, "w") as f:
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_chunk((max(1, min(arr.shape[0], 16)), *arr.shape[1:]))
        dcpl.set_filter(filter_id, h5py.h5z.FLAG_OPTIONAL)
        space = h5py.h5s.create_simple(arr.shape)
        h5py.h5d.create(f.id, dataset.encode(), h5py.h5t.NATIVE_FLOAT, space, dcpl=dcpl)
        f[dataset][...] = arr


def truncate_file(path: Path, *, keep: float = 0.6) -> None:
    """Cut ``path`` to a fraction of its size, as an interrupted upload would."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def make_length_mismatch(project: Path, *, extra_rows: int = 5) -> None:
    """Give ``states1`` in ``states.hdf5`` more rows than the word sequence has tokens."""
    path = project / "states.hdf5"
    with h5py.File(path, "a") as f:
        old = f["states1"][()]
        del f["states1"]
        f.create_dataset(
            "states1", data=np.vstack([old, np.zeros((extra_rows, old.shape[1]), old.dtype)])
        )


# --------------------------------------------------------------------------- #
# Archives
# --------------------------------------------------------------------------- #


def zip_dir(directory: Path, *, prefix: str | None = None) -> bytes:
    """Zip ``directory`` (files under ``prefix/``, default the folder's own name)."""
    directory = Path(directory)
    top = directory.name if prefix is None else prefix
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                rel = path.relative_to(directory).as_posix()
                zf.write(path, f"{top}/{rel}" if top else rel)
    return buf.getvalue()


def zip_with_entries(entries: dict[str, bytes]) -> bytes:
    """A zip holding exactly the given name -> content entries, names unchecked."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, content in entries.items():
            zf.writestr(zipfile.ZipInfo(name), content)
    return buf.getvalue()


def zip_with_traversal() -> bytes:
    """A zip with a project and an entry ``../evil`` that climbs out of the target."""
    return zip_with_entries({"proj/lstm.yml": b"name: x\n", "../evil": b"owned"})


def zip_with_symlink(target: str = "/etc/passwd") -> bytes:
    """A zip with a project whose ``states.hdf5`` entry is a symlink to ``target``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("proj/lstm.yml", b"name: x\n")
        info = zipfile.ZipInfo("proj/states.hdf5")
        info.create_system = 3  # Unix, so external_attr carries the mode
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, target.encode())
    return buf.getvalue()


def zip_bomb(unpacked_bytes: int = 50 << 20) -> bytes:
    """A zip whose one entry of zeros compresses about a thousand times."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("proj/lstm.yml", b"name: x\n")
        with zf.open("proj/zeros.h5", "w", force_zip64=True) as fh:
            chunk = b"\x00" * (1 << 20)
            left = unpacked_bytes
            while left > 0:
                fh.write(chunk[: min(left, len(chunk))])
                left -= len(chunk)
    return buf.getvalue()


def _patch_central_directory(data: bytes, offset: int, value: bytes, *, entry: int = -1) -> bytes:
    """Overwrite bytes at ``offset`` of one central-directory record (default: the last)."""
    starts = []
    pos = data.find(b"PK\x01\x02")
    while pos != -1:
        starts.append(pos)
        pos = data.find(b"PK\x01\x02", pos + 4)
    at = starts[entry] + offset
    return data[:at] + value + data[at + len(value) :]


def zip_with_encrypted_entry() -> bytes:
    """A zip whose second entry is flagged as encrypted."""
    data = zip_with_entries({"proj/lstm.yml": b"name: x\n", "proj/states.hdf5": b"secret"})
    return _patch_central_directory(data, 8, b"\x01\x00")


def zip_with_lying_size(real: bytes = b"A" * 100_000, declared: int = 100) -> bytes:
    """A zip whose entry declares far fewer unpacked bytes than it really holds."""
    data = zip_with_entries({"proj/lstm.yml": b"name: x\n", "proj/big.h5": real})
    return _patch_central_directory(data, 24, declared.to_bytes(4, "little"))


def temp_leftovers(parent: Path) -> list[str]:
    """Names of the temporary ``.tmp-*`` directories a writer left under ``parent``."""
    if not parent.exists():
        return []
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(".tmp-"))
