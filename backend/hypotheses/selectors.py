"""Reads for rankings: the access check, the stored answer of a request, the cells
and the CSV export.

``ranking_for_user`` answers 404 for a ranking of a state set the caller may not
see, exactly as for a missing one; anyone who may read the state set may read its
rankings (a viewer included). The JSON shape of a ranking is defined once, by the
serializers in ``api.py`` over a Ranking row; the CSV export by ``ranking_csv_lines``.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from typing import Any

from django.db.models import QuerySet

from backend.core.downloads import filename_part
from backend.projects.selectors import get_for_user
from backend.states.models import StateSet

from .models import Ranking


def ranking_for_user(user: Any, ranking_id: Any) -> Ranking:
    return get_for_user(
        Ranking.objects.all(),
        user,
        ranking_id,
        what="ranking",
        project_field="stateset__project",
    )


def ranking_stored(
    *, stateset: StateSet, source: str, annotation: str, label: str
) -> Ranking | None:
    """The newest ranking of this request computed on the state set as it is now."""
    return (
        Ranking.objects.filter(
            stateset=stateset,
            source=source,
            annotation=annotation,
            label=label,
            revision=stateset.revision,
        )
        .order_by("-created_at")
        .first()
    )


def rankings_of(stateset: StateSet) -> QuerySet[Ranking]:
    """A state set's rankings, newest first, without their cells."""
    return (
        Ranking.objects.filter(stateset=stateset)
        .defer("result")
        .select_related("created_by")
        .order_by("-created_at")
    )


def ranking_cells(ranking: Ranking, top: int | None = None) -> list[dict[str, Any]]:
    """The ranked cells, best first; the best ``top`` only when given."""
    cells = list((ranking.result or {}).get("cells", []))
    return cells if top is None else cells[:top]


def _one_line(text: Any) -> str:
    return re.sub(r"[\r\n\t]+", " ", str(text))


def ranking_filename(ranking: Ranking) -> str:
    """``ranking-<state set>-<source>-<annotation>[-<label>].csv``, safe as a file name."""
    parts = [ranking.stateset.name, ranking.source, ranking.annotation]
    if ranking.label:
        parts.append(ranking.label)
    return "ranking-" + "-".join(filename_part(p, "x") for p in parts) + ".csv"


def ranking_csv_lines(ranking: Ranking) -> Iterator[str]:
    """The ranking as CSV, line by line: a ``#`` comment naming the state set,
    source, annotation and label, a header, then one row per cell, best first:
    ``cell,auroc,rank`` (discrete) or ``cell,pearson,spearman,rank`` (scalar).
    A measure that cannot be computed is an empty field."""
    ss = ranking.stateset
    label = f", label {_one_line(ranking.label)}" if ranking.label else ""
    bound = "" if ranking.error_bound is None else f", error_bound {ranking.error_bound:.6g}"
    yield (
        f"# ranking {ranking.id}: state set {_one_line(ss.name)} ({ss.id}), source "
        f"{_one_line(ranking.source)}, annotation {_one_line(ranking.annotation)}{label}, "
        f"measure {ranking.measure}, n {ranking.n}{bound}\n"
    )
    measures = ["auroc"] if ranking.measure == "auroc" else ["pearson", "spearman"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["cell", *measures, "rank"])
    for rank, cell in enumerate(ranking_cells(ranking), start=1):
        values = ["" if cell.get(m) is None else repr(float(cell[m])) for m in measures]
        writer.writerow([int(cell["cell"]), *values, rank])
        if buf.tell() > 1 << 16:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()
