"""State exports for `GET /api/statesets/{id}/export/`: a slice pinned to its state set.

The view asks `stateset_export` for a `Download` and turns it into a response. CSV
comes as a generator of byte chunks (a `StreamingHttpResponse`); `.npz` and HDF5
need a seekable file, so they are written block by block
(`workers.core.export`) into a temporary file under the store's `tmp/` folder,
which is opened and then unlinked at once: the open handle streams it (a
`FileResponse`) and the space is freed when the response closes it, whether the
client read it all or went away. A writer killed half-way leaves a
`.tmp-export-*` file, which the next export sweeps after an hour.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from django.conf import settings

from backend.core.downloads import Download, filename_part
from backend.core.errors import ApplicationError
from backend.core.storage import store_root
from workers.core.export import (
    EXPORT_FORMATS,
    slice_csv_chunks,
    slice_plan,
    write_hdf5,
    write_npz,
)

from .models import StateSet
from .selectors import stateset_source, stateset_store

_LEFTOVER_AGE_S = 3600
_PREFIX = ".tmp-export-"

CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "npz": "application/octet-stream",
    "hdf5": "application/x-hdf5",
}
_SUFFIXES = {"csv": ".csv", "npz": ".npz", "hdf5": ".h5"}


def export_max_values() -> int:
    return int(settings.STATELAB_EXPORT_MAX_VALUES)


def export_format(raw: Any) -> str:
    """`csv` (the default), `npz` or `hdf5`; anything else is a 400 naming `format`."""
    if raw in (None, ""):
        return "csv"
    if raw not in EXPORT_FORMATS:
        raise ApplicationError(
            f"format must be one of {', '.join(EXPORT_FORMATS)}, not '{raw}'.",
            code="invalid_format",
        )
    return str(raw)


def export_tmp_dir() -> Path:
    tmp = store_root() / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    return tmp


def export_leftovers_remove(*, older_than_s: float = _LEFTOVER_AGE_S) -> int:
    """Remove export files that a killed writer left in `tmp/`. Returns how many."""
    cutoff = time.time() - older_than_s
    removed = 0
    for entry in export_tmp_dir().glob(f"{_PREFIX}*"):
        try:
            if entry.is_file() and entry.stat().st_mtime < cutoff:
                entry.unlink()
                removed += 1
        except OSError:
            continue
    return removed


def stateset_export(
    ss: StateSet,
    *,
    source: str,
    start: int,
    end: int,
    cells: list[int] | None,
    transform: str | None,
    fmt: str,
    block_rows: int | None = None,
    pin_extra: dict[str, Any] | None = None,
) -> Download:
    """The slice `[start, end]` (inclusive) of `source`, in `fmt`, pinned to `ss` (and
    to whatever `pin_extra` names, e.g. the hypothesis version it was exported from).

    Bad parameters raise `ApplicationError` / `InputError` (400) before anything is
    written; a slice of more than `STATELAB_EXPORT_MAX_VALUES` values is refused."""
    info = stateset_source(ss, source)
    width = len(cells) if cells else int(info["cells"])
    count = (end - start + 1) * width
    limit = export_max_values()
    if end >= start and count > limit:
        raise ApplicationError(
            f"The export would hold {end - start + 1:,} tokens x {width} cells = {count:,} "
            f"values, more than the limit of {limit:,}; export fewer cells or a shorter range.",
            code="too_large",
        )
    pin = {
        "stateset": str(ss.id),
        "stateset_name": ss.name,
        "project": ss.project.slug,
        "format": fmt,
        **(pin_extra or {}),
    }
    store = stateset_store(ss)
    plan = slice_plan(
        store,
        str(info["id"]),
        start,
        end,
        cells=cells or None,
        transform=transform,
        pin=pin,
        block_rows=block_rows,
    )
    filename = (
        f"{filename_part(ss.name, 'stateset')}_{filename_part(plan.source, 'source')}"
        f"_{plan.start}-{plan.end}{_SUFFIXES[fmt]}"
    )
    if fmt == "csv":
        return Download(filename, CONTENT_TYPES[fmt], chunks=slice_csv_chunks(store, plan))

    export_leftovers_remove()
    fd, name = tempfile.mkstemp(prefix=_PREFIX, suffix=_SUFFIXES[fmt], dir=export_tmp_dir())
    os.close(fd)
    path = Path(name)
    try:
        if fmt == "npz":
            write_npz(store, plan, path)
        else:
            write_hdf5(store, plan, path)
        handle = open(path, "rb")  # noqa: SIM115 - the response closes it
    finally:
        # Unlinked at once: the open handle keeps the data until the response closes it.
        path.unlink(missing_ok=True)
    return Download(filename, CONTENT_TYPES[fmt], file=handle)
