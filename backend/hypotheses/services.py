"""Writes for rankings, saved hypotheses and their statistics.

Hypotheses: ``hypothesis_create`` checks a spec (the range's selection, the cells
added and excluded, the source's cells), writes version 1 and pins its match
result (``matching.services.match_start``: the stored row when the same query was
asked before, else a pending row whose job computes it). ``hypothesis_update``
writes version n + 1 under a lock on the hypothesis row, so two editors never
write the same number. Forks copy one version and remember where they came from.
Statistics run as a job (``statistics_run``) and are stored with their version.

Rankings: start (or reuse) a ranking, run its job, record it.

A ranking is asked once per (state set, source, annotation, label) while the
state set keeps its revision: ``ranking_start`` answers the stored row, or
creates the job that computes it (identical requests share one active job
through ``job_create``'s ``dedupe_key``). The job (``ranking_run``) reads the
source once through ``workers.core.ranking.rank_cells`` and stores the
``Ranking`` row in the same transaction that marks the job succeeded, so a
ranking is visible exactly when its job says so.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.db import transaction
from django.utils import timezone

from backend.accounts.models import User
from backend.core.errors import ApplicationError
from backend.jobs.models import Job
from backend.jobs.services import job_create, job_record
from backend.matching.models import Match
from backend.matching.services import match_query_build, match_start
from backend.projects.models import Role
from backend.projects.selectors import membership_role, role_of, user_visible_to
from backend.states.models import StateSet
from backend.states.selectors import stateset_selection, stateset_source, stateset_store
from workers.core.errors import ProgressFn

from .models import (
    Comment,
    Hypothesis,
    HypothesisShare,
    HypothesisVersion,
    Ranking,
    ShareRole,
    Statistics,
    Visibility,
    new_link_token,
)
from .selectors import may_share_outside, ranking_stored, statistics_stored

GONE = "The state set was deleted while it was being ranked."
RANKABLE = ("discrete", "scalar")
MAX_LISTED = 50  # names listed in a 400 at most


def _listing(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:MAX_LISTED]) or "none"
    more = len(names) - MAX_LISTED
    return shown + (f" and {more} more" if more > 0 else "")


def ranking_request_check(
    *, stateset: StateSet, source: str, annotation: str, label: str | None
) -> tuple[str, str, str]:
    """(source id, annotation, label or "") of a ranking request, or a 400 that says
    which sources, annotations or labels the state set has.

    A discrete track needs one of its labels; a scalar track takes none.
    """
    source_id = str(stateset_source(stateset, source)["id"])
    tracks = [a for a in stateset.manifest.get("annotations", []) if a.get("kind") in RANKABLE]
    track = next((a for a in tracks if a["name"] == annotation), None)
    if track is None:
        raise ApplicationError(
            f"There is no discrete or scalar annotation '{annotation}' in this state set; "
            f"cells can be ranked against: {_listing([str(a['name']) for a in tracks])}.",
            code="unknown_annotation",
            details={"annotations": [str(a["name"]) for a in tracks]},
        )
    if track["kind"] == "scalar":
        if label is not None:
            raise ApplicationError(
                f"'{annotation}' is a scalar track: cells are ranked by correlation with "
                "it, so give no label.",
                code="invalid",
            )
        return source_id, annotation, ""
    labels = [str(x) for x in track.get("labels") or []]
    if label is None or label == "":
        raise ApplicationError(
            f"'{annotation}' is a discrete track: give a label, one of {_listing(labels)}.",
            code="invalid",
            details={"labels": labels[:MAX_LISTED]},
        )
    if labels and label not in labels:
        raise ApplicationError(
            f"The annotation '{annotation}' has no label '{label}'; its labels are "
            f"{_listing(labels)}.",
            code="unknown_label",
            details={"labels": labels[:MAX_LISTED]},
        )
    if not labels and not label.isdigit():
        raise ApplicationError(
            f"The annotation '{annotation}' names its labels by number: give one as digits.",
            code="unknown_label",
        )
    return source_id, annotation, label


def _core_label(stateset: StateSet, annotation: str, label: str) -> str | int | None:
    """A request's label as the compute core takes it: its name, or its number for a
    discrete track without label names; None for a scalar track."""
    if not label:
        return None
    labels = next(
        (
            a.get("labels")
            for a in stateset.manifest.get("annotations", [])
            if a.get("name") == annotation
        ),
        None,
    )
    return label if labels else int(label)


def _dedupe_key(stateset: StateSet, source: str, annotation: str, label: str) -> str:
    canon = json.dumps([stateset.id.hex, stateset.revision, source, annotation, label])
    return hashlib.sha256(canon.encode()).hexdigest()


def ranking_start(
    *, stateset: StateSet, user: User | None, source: str, annotation: str, label: str | None
) -> Ranking | Job:
    """The stored ranking, or the job computing it.

    The request is checked first (``ranking_request_check``: a 400 naming what exists).
    """
    source, annotation, label = ranking_request_check(
        stateset=stateset, source=source, annotation=annotation, label=label
    )
    stored = ranking_stored(stateset=stateset, source=source, annotation=annotation, label=label)
    if stored is not None:
        return stored
    job, _ = job_create(
        kind="ranking",
        project=stateset.project,
        user=user,
        params={
            "stateset": str(stateset.id),
            "source": source,
            "annotation": annotation,
            "label": label,
        },
        dedupe_key=_dedupe_key(stateset, source, annotation, label),
    )
    return job


def ranking_record(
    *, job: Job, stateset: StateSet, user_id: Any, revision: int, ranking: Any
) -> Ranking:
    """Store a computed ranking (``workers.core.ranking.Ranking``) and mark its job
    succeeded, in one transaction (both or neither)."""
    with transaction.atomic():
        if not StateSet.objects.filter(id=stateset.id).exists():
            raise ApplicationError(GONE)
        row = Ranking.objects.create(
            stateset=stateset,
            source=ranking.source,
            annotation=ranking.annotation,
            label=ranking.label or "",
            revision=revision,
            measure=ranking.measure,
            result={"cells": ranking.cells},
            n=int(ranking.n),
            error_bound=ranking.error_bound,
            created_by_id=user_id,
            job=job,
        )
        job_record(
            job=job,
            result={"ranking": str(row.id)},
            message=f"Ranked {len(ranking.cells):,} cells by {ranking.measure} "
            f"over {int(ranking.n):,} tokens.",
            what="ranking",
        )
    return row


def ranking_run(job: Job, progress: ProgressFn) -> dict[str, str]:
    """The ranking job: one pass of ``rank_cells`` over the source, then the record."""
    from workers.core.ranking import rank_cells

    params = job.params
    stateset = StateSet.objects.filter(id=params.get("stateset")).first()
    if stateset is None:
        raise ApplicationError(GONE)
    label = str(params.get("label") or "")
    wanted = _core_label(stateset, str(params["annotation"]), label)
    result = rank_cells(
        stateset_store(stateset),
        str(params["source"]),
        str(params["annotation"]),
        wanted,
        progress=progress,
    )
    row = ranking_record(
        job=job,
        stateset=stateset,
        user_id=job.created_by_id,
        revision=int(stateset.revision),
        ranking=result,
    )
    return {"ranking": str(row.id)}


# --- saved hypotheses -------------------------------------------------------------

# What a version says; a PATCH that names any of these writes a new version.
VERSION_FIELDS = (
    "title",
    "notes",
    "tags",
    "source",
    "start",
    "end",
    "threshold",
    "zero_left",
    "zero_right",
    "min_length",
    "max_length",
    "limit",
    "transform",
    "cells_added",
    "cells_excluded",
)
STATS_GONE = "The hypothesis was deleted while its statistics were computed."


def _cells_of(stateset: StateSet, spec: dict[str, Any]) -> tuple[str, list[int], list[int]]:
    """(source id, the range's selection, the final cells) of a version's fields.

    The final set is the selection of ``[start, end]`` (when given) plus
    ``cells_added`` minus ``cells_excluded``; it must not be empty, and every cell
    must exist in the source.
    """
    info = stateset_source(stateset, str(spec["source"]))
    width = int(info["cells"])
    for field in ("cells_added", "cells_excluded"):
        bad = [c for c in spec.get(field) or [] if not 0 <= int(c) < width]
        if bad:
            raise ApplicationError(
                f"{field} names cell {bad[0]}, which does not exist; the source has cells "
                f"0 to {width - 1}.",
                code="invalid",
                details={field: bad[:20]},
            )
    start, end = spec.get("start"), spec.get("end")
    if (start is None) != (end is None):
        raise ApplicationError("A range needs both start and end (or neither).")
    selected: list[int] = []
    if start is not None and end is not None:
        selected = stateset_selection(
            stateset,
            str(info["id"]),
            int(start),
            int(end),
            float(spec["threshold"]),
            zero_left=int(spec["zero_left"]),
            zero_right=int(spec["zero_right"]),
            transform=spec.get("transform") or None,
        )
    final = sorted(
        (set(selected) | {int(c) for c in spec.get("cells_added") or []})
        - {int(c) for c in spec.get("cells_excluded") or []}
    )
    if not final:
        where = f"the range {start}-{end} selects no cells" if start is not None else "no range"
        raise ApplicationError(
            f"The hypothesis has no cells: {where}, and cells_added adds none that "
            "cells_excluded does not take away. Lower the threshold, change the range "
            "or add cells by hand.",
            code="empty_selection",
        )
    return str(info["id"]), selected, final


def _version_match(
    *, stateset: StateSet, user: User | None, spec: dict[str, Any], cells: list[int]
) -> Match:
    """The stored match of a version's cells and constraints: the existing row when the
    same query was asked before (reused, not recomputed), else a new one whose job
    computes it."""
    source, query = match_query_build(
        stateset=stateset,
        source=str(spec["source"]),
        cells=cells,
        threshold=float(spec["threshold"]),
        zero_left=int(spec["zero_left"]),
        zero_right=int(spec["zero_right"]),
        min_length=spec.get("min_length"),
        max_length=spec.get("max_length"),
        limit=int(spec.get("limit") or 50),
        transform=spec.get("transform") or None,
    )
    match, _ = match_start(stateset=stateset, user=user, source=source, query=query)
    return match


def _version_write(
    *, hyp: Hypothesis, number: int, spec: dict[str, Any], user: User | None
) -> HypothesisVersion:
    source, _, cells = _cells_of(hyp.stateset, spec)
    spec = {**spec, "source": source}
    match = _version_match(stateset=hyp.stateset, user=user, spec=spec, cells=cells)
    return HypothesisVersion.objects.create(
        hypothesis=hyp,
        number=number,
        title=str(spec["title"]),
        notes=str(spec.get("notes") or ""),
        tags=list(spec.get("tags") or []),
        source=source,
        start=spec.get("start"),
        end=spec.get("end"),
        threshold=float(spec["threshold"]),
        zero_left=int(spec["zero_left"]),
        zero_right=int(spec["zero_right"]),
        min_length=spec.get("min_length"),
        max_length=spec.get("max_length"),
        limit=int(spec.get("limit") or 50),
        transform=spec.get("transform") or "",
        cells_added=sorted({int(c) for c in spec.get("cells_added") or []}),
        cells_excluded=sorted({int(c) for c in spec.get("cells_excluded") or []}),
        cells=cells,
        match=match,
        created_by=user,
    )


def version_spec(version: HypothesisVersion) -> dict[str, Any]:
    """A version's fields as a spec that ``_version_write`` takes."""
    return {f: getattr(version, f) for f in VERSION_FIELDS}


def hypothesis_create(
    *, stateset: StateSet, user: User, spec: dict[str, Any], visibility: str
) -> HypothesisVersion:
    """A new hypothesis of ``stateset`` owned by ``user``, with version 1 from ``spec``
    (checked first: a 400 names what is wrong and nothing is stored)."""
    if visibility in (Visibility.LINK, Visibility.PUBLIC) and membership_role(
        user, stateset.project
    ) not in (Role.EDITOR, Role.OWNER):
        raise ApplicationError(
            f"A '{visibility}' hypothesis shows the project's states beyond it; that needs "
            "the editor or owner role in the project. Save it as 'private' or 'project'.",
            code="permission_denied",
            status_code=403,
        )
    with transaction.atomic():
        hyp = Hypothesis.objects.create(
            stateset=stateset, project=stateset.project, owner=user, visibility=visibility
        )
        return _version_write(hyp=hyp, number=1, spec=spec, user=user)


def hypothesis_from_ranking(
    *, ranking: Ranking, user: User, top: int, threshold: float, spec: dict[str, Any]
) -> HypothesisVersion:
    """A hypothesis of the ``top`` best cells of a ranking that rise with the
    annotation (AUROC above 0.5, or a positive Pearson correlation): a hypothesis
    says "these cells are on", so a cell that falls where the label holds cannot
    be one of its cells. No range; the cells are in ``cells_added``."""
    key = "auroc" if ranking.measure == "auroc" else "pearson"
    rising = [
        int(c["cell"])
        for c in (ranking.result or {}).get("cells", [])
        if c.get(key) is not None and float(c[key]) > (0.5 if key == "auroc" else 0.0)
    ][:top]
    if not rising:
        raise ApplicationError(
            "No cell of this ranking rises with the annotation, so no hypothesis can be "
            "made of its top cells.",
            code="empty_selection",
        )
    label = f" = {ranking.label}" if ranking.label else ""
    full = {
        "title": f"Top {len(rising)} cells for {ranking.annotation}{label}",
        "notes": "",
        "tags": [],
        "zero_left": 0,
        "zero_right": 0,
        "min_length": 1,
        "max_length": None,
        "limit": 50,
        "transform": "",
        "cells_excluded": [],
        **{k: v for k, v in spec.items() if v is not None},
        "source": ranking.source,
        "start": None,
        "end": None,
        "threshold": threshold,
        "cells_added": rising,
    }
    return hypothesis_create(
        stateset=ranking.stateset,
        user=user,
        spec=full,
        visibility=str(spec.get("visibility") or Visibility.PRIVATE),
    )


def hypothesis_update(
    *, hyp: Hypothesis, user: User, changes: dict[str, Any], role: str
) -> HypothesisVersion:
    """Apply a PATCH: fields of ``VERSION_FIELDS`` write version n + 1 (the previous
    version's fields with the changes); ``visibility`` and ``rotate_link`` change the
    hypothesis itself and need the owner's role. Returns the newest version."""
    managing = {k for k in ("visibility", "rotate_link") if changes.get(k) not in (None, False)}
    if managing and role != "owner":
        raise ApplicationError(
            "Only the hypothesis' owner (or the project's owner) may change who sees it.",
            code="permission_denied",
            status_code=403,
        )
    wider = changes.get("visibility") in (Visibility.LINK, Visibility.PUBLIC)
    if wider and not may_share_outside(user, hyp):
        raise ApplicationError(
            f"Making a hypothesis '{changes['visibility']}' shows the project's states beyond "
            "it; that needs the editor or owner role in the project. Share it with the "
            "project, or ask an editor.",
            code="permission_denied",
            status_code=403,
        )
    if "source" in changes and role_of(user, hyp.project) is None:
        raise ApplicationError(
            "Changing the source reads more of the project's states; that needs access to "
            "the project.",
            code="permission_denied",
            status_code=403,
        )
    with transaction.atomic():
        locked = Hypothesis.objects.select_for_update().select_related("stateset").get(id=hyp.id)
        fields: list[str] = []
        if "visibility" in managing:
            if locked.visibility == Visibility.LINK and changes["visibility"] != Visibility.LINK:
                # A link once withdrawn never works again, even if the hypothesis is
                # shared by link later.
                locked.link_token = new_link_token()
                fields.append("link_token")
            locked.visibility = changes["visibility"]
            fields.append("visibility")
        if "rotate_link" in managing:
            locked.link_token = new_link_token()
            fields.append("link_token")
        content = {k: v for k, v in changes.items() if k in VERSION_FIELDS}
        if content:
            current = HypothesisVersion.objects.get(hypothesis=locked, number=locked.version)
            spec = {**version_spec(current), **content}
            if "source" in content and "cells_added" not in content:
                # Manual cells of another source may not exist there.
                spec["cells_added"] = [
                    c for c in spec["cells_added"] if _cell_exists(locked.stateset, content, c)
                ]
            locked.version += 1
            _version_write(hyp=locked, number=locked.version, spec=spec, user=user)
            fields.append("version")
        locked.save(update_fields=[*fields, "updated_at"])
        return HypothesisVersion.objects.select_related("match").get(
            hypothesis=locked, number=locked.version
        )


def _cell_exists(stateset: StateSet, content: dict[str, Any], cell: int) -> bool:
    return 0 <= int(cell) < int(stateset_source(stateset, str(content["source"]))["cells"])


def hypothesis_delete(*, hyp: Hypothesis) -> None:
    """Delete a hypothesis with its versions, shares, comments and statistics; its
    matches stay in the match store, unpinned."""
    hyp.delete()


def hypothesis_fork(
    *, hyp: Hypothesis, version: HypothesisVersion, user: User, title: str | None
) -> HypothesisVersion:
    """A private copy of ``version`` owned by ``user``, remembering what it was forked
    from (hypothesis, version; the fork's owner is who forked it). The copy pins the
    same match result."""
    with transaction.atomic():
        fork = Hypothesis.objects.create(
            stateset=hyp.stateset,
            project=hyp.project,
            owner=user,
            visibility=Visibility.PRIVATE,
            forked_from=hyp,
            forked_version=version.number,
        )
        return HypothesisVersion.objects.create(
            hypothesis=fork,
            number=1,
            **{**version_spec(version), "title": title or version.title},
            cells=list(version.cells),
            match=version.match,
            created_by=user,
        )


def hypothesis_match_ensure(version: HypothesisVersion, user: User | None) -> Match:
    """The version's match result; asked again (and pinned again) only when its row
    is gone, e.g. a store cleared by hand."""
    if version.match is not None:
        return version.match
    hyp = version.hypothesis
    match = _version_match(
        stateset=hyp.stateset, user=user, spec=version_spec(version), cells=list(version.cells)
    )
    HypothesisVersion.objects.filter(id=version.id).update(match=match)
    version.match = match
    return match


def share_set(*, hyp: Hypothesis, username: str, role: str, by: User) -> HypothesisShare:
    """Share a hypothesis with one user (viewer or editor); sharing again changes the role."""
    if role not in ShareRole.values:
        raise ApplicationError(f"Unknown role '{role}'; use viewer or editor.")
    # Only users `by` can already see are found, so that the answer never tells whether
    # a name exists (docs/security.md, "User names").
    user = user_visible_to(by, username)
    if user is None:
        raise ApplicationError(
            f"No member of a project you can see is named '{username}'. Share the "
            "hypothesis by link, or invite them to the project.",
            code="unknown_user",
        )
    if user.pk == hyp.owner_id:
        raise ApplicationError(f"'{username}' owns this hypothesis already.")
    if membership_role(user, hyp.project) is None and not may_share_outside(by, hyp):
        raise ApplicationError(
            f"'{username}' is not a member of the project; sharing with them shows the "
            "project's states beyond it, which needs the editor or owner role in the project.",
            code="permission_denied",
            status_code=403,
        )
    share, created = HypothesisShare.objects.get_or_create(
        hypothesis=hyp, user=user, defaults={"role": role, "created_by": by}
    )
    if not created and share.role != role:
        share.role = role
        share.save(update_fields=["role"])
    return share


def share_remove(*, hyp: Hypothesis, username: str) -> None:
    """Revoke a share; the user's next request no longer sees the hypothesis (unless
    its visibility lets them)."""
    deleted, _ = HypothesisShare.objects.filter(hypothesis=hyp, user__username=username).delete()
    if not deleted:
        raise ApplicationError(
            f"This hypothesis is not shared with '{username}'.", code="not_shared", status_code=404
        )


def comment_create(*, hyp: Hypothesis, user: User, body: str, version: int | None) -> Comment:
    if version is not None and not 1 <= version <= hyp.version:
        raise ApplicationError(
            f"This hypothesis has versions 1 to {hyp.version}; there is no version {version}."
        )
    return Comment.objects.create(hypothesis=hyp, author=user, body=body, version=version)


def _own_comment(comment: Comment, user: User) -> None:
    if comment.author_id != user.pk:
        raise ApplicationError(
            "Only a comment's author may change or delete it.",
            code="permission_denied",
            status_code=403,
        )


def comment_edit(*, comment: Comment, user: User, body: str) -> Comment:
    _own_comment(comment, user)
    comment.body = body
    comment.edited_at = timezone.now()
    comment.save(update_fields=["body", "edited_at"])
    return comment


def comment_delete(*, comment: Comment, user: User) -> None:
    _own_comment(comment, user)
    comment.delete()


# --- statistics -----------------------------------------------------------------


def statistics_request_check(
    *, version: HypothesisVersion, annotation: str, label: str | None, threshold: float | None
) -> tuple[str, str, float | None]:
    """(annotation, label or "", scalar threshold) of a statistics request, or a 400.

    A discrete track takes a label (agreement is with that label; enrichment covers
    every label); a scalar track takes the threshold at or above which a token
    counts as positive."""
    ss = version.hypothesis.stateset
    tracks = [a for a in ss.manifest.get("annotations", []) if a.get("kind") in RANKABLE]
    track = next((a for a in tracks if a["name"] == annotation), None)
    if track is None:
        raise ApplicationError(
            f"There is no discrete or scalar annotation '{annotation}' in this state set; "
            f"statistics can be computed against: {_listing([str(a['name']) for a in tracks])}.",
            code="unknown_annotation",
            details={"annotations": [str(a["name"]) for a in tracks]},
        )
    if track["kind"] == "scalar":
        if label not in (None, ""):
            raise ApplicationError(
                f"'{annotation}' is a scalar track: give a threshold, not a label.",
                code="invalid",
            )
        if threshold is None:
            raise ApplicationError(
                f"'{annotation}' is a scalar track: give the threshold at or above which a "
                "token counts as positive.",
                code="invalid",
            )
        return annotation, "", float(threshold)
    if threshold is not None:
        raise ApplicationError(
            f"'{annotation}' is a discrete track: give a label, not a threshold.", code="invalid"
        )
    _, _, checked = ranking_request_check(
        stateset=ss, source=version.source, annotation=annotation, label=label
    )
    return annotation, checked, None


def statistics_start(
    *,
    version: HypothesisVersion,
    user: User | None,
    annotation: str,
    label: str | None,
    threshold: float | None,
) -> Statistics | Job:
    """The stored statistics of this request on the version, or the job computing them."""
    annotation, label, threshold = statistics_request_check(
        version=version, annotation=annotation, label=label, threshold=threshold
    )
    stored = statistics_stored(
        version=version, annotation=annotation, label=label, scalar_threshold=threshold
    )
    if stored is not None:
        return stored
    hyp = version.hypothesis
    canon = json.dumps(
        [version.id, hyp.stateset.revision, annotation, label, threshold], default=str
    )
    job, _ = job_create(
        kind="statistics",
        project=hyp.project,
        user=user,
        params={
            "version": version.id,
            "annotation": annotation,
            "label": label,
            "threshold": threshold,
        },
        dedupe_key=hashlib.sha256(canon.encode()).hexdigest(),
    )
    return job


def statistics_run(job: Job, progress: ProgressFn) -> dict[str, str]:
    """The statistics job: ``workers.core.stats.hypothesis_statistics`` of the version
    over the whole corpus, stored with the version as the job succeeds."""
    from workers.core.stats import Hypothesis as CoreHypothesis
    from workers.core.stats import hypothesis_statistics

    params = job.params
    version = (
        HypothesisVersion.objects.select_related("hypothesis__stateset")
        .filter(id=params.get("version"))
        .first()
    )
    if version is None:
        raise ApplicationError(STATS_GONE)
    ss = version.hypothesis.stateset
    revision = int(ss.revision)
    label = str(params.get("label") or "")
    wanted = _core_label(ss, str(params["annotation"]), label)
    core = CoreHypothesis(
        source=version.source,
        cells=tuple(int(c) for c in version.cells),
        threshold=float(version.threshold),
        zero_left=int(version.zero_left),
        zero_right=int(version.zero_right),
        min_length=int(version.min_length or 1),
        transform=version.transform or None,
        max_length=version.max_length,
    )
    result = hypothesis_statistics(
        stateset_store(ss),
        core,
        str(params["annotation"]),
        label=wanted,
        scalar_threshold=params.get("threshold"),
        progress=progress,
    )
    result["label"] = label or None
    with transaction.atomic():
        if not HypothesisVersion.objects.filter(id=version.id).exists():
            raise ApplicationError(STATS_GONE)
        row = Statistics.objects.create(
            version=version,
            annotation=str(params["annotation"]),
            label=label,
            scalar_threshold=params.get("threshold"),
            revision=revision,
            result=result,
            created_by_id=job.created_by_id,
            job=job,
        )
        agreement = result["agreement"]
        job_record(
            job=job,
            result={"statistics": str(row.id)},
            message=f"F1 of {agreement['f1']:.3f} over {int(ss.length):,} tokens and "
            f"{result['ranges']:,} matched ranges.",
            what="statistics",
        )
    return {"statistics": str(row.id)}
