"""Reads for rankings and saved hypotheses: the access checks, stored answers, CSV.

Who may open a hypothesis: its owner; the users it is shared with; whoever may
read its project when its visibility is ``project`` or ``link``; anyone signed in
who gives its link token when it is ``link``; every signed-in user when it is
``public``. Anyone else gets the 404 of a missing hypothesis. What they may do is
the caller's *role* on it (``hypothesis_role``): ``owner`` (the owner, and the
project's owner on a hypothesis that is not private) manages visibility, shares
and deletion; ``editor`` (shared as editor, or an editor of the project on a
hypothesis that is not private) adds versions; ``viewer`` reads, forks, comments
and computes statistics.

``ranking_for_user`` answers 404 for a ranking of a state set the caller may not
see, exactly as for a missing one; anyone who may read the state set may read its
rankings (a viewer included). The JSON shape of a ranking is defined once, by the
serializers in ``api.py`` over a Ranking row; the CSV export by ``ranking_csv_lines``.
"""

from __future__ import annotations

import csv
import io
import re
import secrets
from collections.abc import Iterator, Mapping
from typing import Any

from django.db.models import F, Q, QuerySet
from django.http import Http404

from backend.core.downloads import filename_part
from backend.core.errors import ApplicationError
from backend.core.params import uuid_or_404
from backend.projects.models import Membership, Role
from backend.projects.selectors import (
    get_for_user,
    membership_role,
    projects_for_user,
    role_of,
)
from backend.states.models import StateSet

from .models import (
    Comment,
    Hypothesis,
    HypothesisShare,
    HypothesisVersion,
    Ranking,
    ShareRole,
    Statistics,
    Visibility,
)

ROLE_ORDER = {"viewer": 1, "editor": 2, "owner": 3}
# A link token, or the tokens a browser session opened links with (hypothesis id ->
# token; see `webui.views.hypothesis`).
Link = str | Mapping[str, str] | None
SESSION_LINKS = "hypothesis_links"


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


# --- saved hypotheses -------------------------------------------------------------


def _signed_in(user: Any) -> bool:
    return bool(getattr(user, "is_authenticated", False))


def hypotheses_visible(user: Any) -> QuerySet[Hypothesis]:
    """Hypotheses the caller may open without a link (the list route's universe)."""
    if not _signed_in(user):
        return Hypothesis.objects.none()
    readable = projects_for_user(user)
    return Hypothesis.objects.filter(
        Q(owner=user, project__in=readable)
        | Q(owner=user, forked_from__isnull=False)
        | Q(id__in=Hypothesis.objects.filter(shares__user=user).values("id"))
        | Q(visibility__in=[Visibility.PROJECT, Visibility.LINK], project__in=readable)
        | Q(visibility=Visibility.PUBLIC)
    )


def hypothesis_role(user: Any, hyp: Hypothesis, *, link: Link = None) -> str | None:
    """The caller's role on a hypothesis (``owner``/``editor``/``viewer``), or None when
    they may not open it. A ``link`` token opens a ``link`` hypothesis for viewing
    (given as the token, or as the tokens a browser session opened, by hypothesis id)."""
    if isinstance(link, Mapping):
        link = link.get(str(hyp.id))
    if not _signed_in(user):
        return None
    if hyp.owner_id == user.pk:
        return "owner" if owner_keeps_access(user, hyp) else None
    share = hyp.shares.filter(user=user).only("role").first()
    project_role = role_of(user, hyp.project) if hyp.visibility != Visibility.PRIVATE else None
    link_ok = bool(
        hyp.visibility == Visibility.LINK
        and link
        and secrets.compare_digest(str(link).encode(), hyp.link_token.encode())
    )
    return _role(hyp, share.role if share else None, project_role, link_ok)


def _role(
    hyp: Hypothesis, share_role: str | None, project_role: str | None, link_ok: bool
) -> str | None:
    """The best of what a share, the project role (when not private), public
    visibility and a valid link give a caller who does not own the hypothesis."""
    roles: list[str] = []
    if share_role is not None:
        roles.append("editor" if share_role == ShareRole.EDITOR else "viewer")
    if hyp.visibility != Visibility.PRIVATE and project_role is not None:
        roles.append({Role.OWNER: "owner", Role.EDITOR: "editor"}.get(Role(project_role), "viewer"))
    if hyp.visibility == Visibility.PUBLIC or link_ok:
        roles.append("viewer")
    return max(roles, key=ROLE_ORDER.__getitem__) if roles else None


def hypothesis_roles(user: Any, hyps: list[Hypothesis]) -> dict[Any, str | None]:
    """The caller's role on each of many hypotheses (the list route), in two queries."""
    shares = dict(
        HypothesisShare.objects.filter(user=user, hypothesis__in=hyps).values_list(
            "hypothesis_id", "role"
        )
    )
    member = dict(Membership.objects.filter(user=user).values_list("project_id", "role"))
    out: dict[Any, str | None] = {}
    for hyp in hyps:
        if hyp.owner_id == user.pk:
            out[hyp.id] = "owner"
            continue
        project_role = member.get(hyp.project_id)
        if project_role is None and hyp.project.public:
            project_role = Role.VIEWER
        out[hyp.id] = _role(hyp, shares.get(hyp.id), project_role, False)
    return out


def owner_keeps_access(user: Any, hyp: Hypothesis, depth: int = 0) -> bool:
    """An owner reaches a project's states through their hypothesis only while they
    may read the project, or, for a fork, while they may still open what it was
    forked from: a member who leaves the project, or a colleague whose share is
    revoked, loses the data with it. A fork of a ``link`` hypothesis keeps access
    while the original is still shared by link."""
    if role_of(user, hyp.project) is not None:
        return True
    original = hyp.forked_from
    if original is None or depth > 20:
        return False
    if original.owner_id == user.pk:
        return owner_keeps_access(user, original, depth + 1)
    if original.visibility == Visibility.LINK:
        return True
    return hypothesis_role(user, original) is not None


def may_share_outside(user: Any, hyp: Hypothesis) -> bool:
    """Opening a hypothesis beyond its project (a link, the whole installation, named
    users who are not members) publishes the project's states it shows: that takes
    an editor or owner of the project."""
    role = membership_role(user, hyp.project)
    return role in (Role.EDITOR, Role.OWNER)


def hypothesis_for_user(
    user: Any, hypothesis_id: Any, *, need: str = "viewer", link: Link = None
) -> tuple[Hypothesis, str]:
    """(hypothesis, the caller's role), checked against ``need``.

    Not visible to the caller: 404, exactly like a missing hypothesis. Visible but
    the role is too low: 403 with a message that says what is needed.
    """
    hyp = (
        Hypothesis.objects.select_related("owner", "project", "stateset")
        .filter(id=uuid_or_404(hypothesis_id))
        .first()
    )
    role = hypothesis_role(user, hyp, link=link) if hyp is not None else None
    if hyp is None or role is None:
        raise Http404("No such hypothesis.")
    if ROLE_ORDER[role] < ROLE_ORDER[need]:
        what = {
            "owner": "only its owner (or the project's owner) may do this",
            "editor": "this needs editor rights on it",
        }[need]
        raise ApplicationError(
            f"You may read this hypothesis, but {what}; you are a {role}.",
            code="permission_denied",
            status_code=403,
        )
    return hyp, role


def hypothesis_version(hyp: Hypothesis, number: int | None = None) -> HypothesisVersion:
    """Version ``number`` of a hypothesis (the newest when None), or 404."""
    wanted = hyp.version if number is None else number
    version = (
        HypothesisVersion.objects.select_related("match__job", "created_by")
        .filter(hypothesis=hyp, number=wanted)
        .first()
    )
    if version is None:
        raise Http404(f"This hypothesis has no version {wanted}; its newest is {hyp.version}.")
    # The rows already read: opening a hypothesis costs a handful of queries.
    version.hypothesis = hyp
    if version.match is not None:
        version.match.stateset = hyp.stateset
    return version


def hypothesis_versions(hyp: Hypothesis) -> QuerySet[HypothesisVersion]:
    return (
        HypothesisVersion.objects.filter(hypothesis=hyp)
        .select_related("match", "created_by")
        .order_by("-number")
    )


def hypotheses_list(
    user: Any,
    *,
    project: str | None = None,
    stateset: str | None = None,
    tag: str | None = None,
    mine: bool = False,
) -> list[HypothesisVersion]:
    """The newest version of each hypothesis the caller may open, newest edit first,
    filtered by project slug, state set, tag or ownership."""
    hyps = hypotheses_visible(user)
    if project:
        hyps = hyps.filter(project__slug=project)
    if stateset:
        hyps = hyps.filter(stateset_id=uuid_or_404(stateset))
    if mine:
        hyps = hyps.filter(owner=user)
    versions = (
        HypothesisVersion.objects.filter(hypothesis__in=hyps)
        .filter(number=F("hypothesis__version"))
        .select_related(
            "hypothesis__owner",
            "hypothesis__project",
            "hypothesis__forked_from",
            "match__job",
            "created_by",
        )
        .order_by("-hypothesis__updated_at")
    )
    readable = set(projects_for_user(user).values_list("id", flat=True))

    def opens(v: HypothesisVersion) -> bool:
        # A fork the caller owns outside the projects they read lives only as long
        # as their access to what it was forked from (rare: checked one by one).
        h = v.hypothesis
        if h.owner_id != user.pk or h.project_id in readable:
            return True
        return owner_keeps_access(user, h)

    return [v for v in versions[:2000] if (not tag or tag in (v.tags or [])) and opens(v)]


def comment_for_user(user: Any, hyp: Hypothesis, comment_id: Any) -> Comment:
    comment = Comment.objects.filter(hypothesis=hyp, id=uuid_or_404(comment_id)).first()
    if comment is None:
        raise Http404("No such comment.")
    return comment


def statistics_for_user(user: Any, statistics_id: Any, *, link: Link = None) -> Statistics:
    """Statistics are seen by whoever may open their hypothesis, its link included
    (404 otherwise)."""
    row = (
        Statistics.objects.select_related("version__hypothesis")
        .filter(id=uuid_or_404(statistics_id))
        .first()
    )
    if row is None:
        raise Http404("No such statistics.")
    try:
        hypothesis_for_user(user, row.version.hypothesis_id, link=link)
    except Http404:
        raise Http404("No such statistics.") from None
    return row


def statistics_stored(
    *, version: HypothesisVersion, annotation: str, label: str, scalar_threshold: float | None
) -> Statistics | None:
    """The newest statistics of this request computed on the state set as it is now."""
    return (
        Statistics.objects.filter(
            version=version,
            annotation=annotation,
            label=label,
            scalar_threshold=scalar_threshold,
            revision=version.hypothesis.stateset.revision,
        )
        .order_by("-created_at")
        .first()
    )


def statistics_of(hyp: Hypothesis, number: int | None = None) -> QuerySet[Statistics]:
    rows = Statistics.objects.filter(version__hypothesis=hyp).select_related("version")
    if number is not None:
        rows = rows.filter(version__number=number)
    return rows.order_by("-created_at")


def statistics_filename(row: Statistics) -> str:
    version = row.version
    parts = [version.title, f"v{version.number}", row.annotation]
    if row.label:
        parts.append(row.label)
    return "statistics-" + "-".join(filename_part(p, "x") for p in parts) + ".csv"


def statistics_csv_lines(row: Statistics) -> Iterator[str]:
    """Statistics as CSV: ``#`` lines naming the hypothesis version, state set, source,
    cells and annotation, then one section per part (``section,key,value`` rows for
    agreement and robustness, one row per label for enrichment)."""
    version = row.version
    hyp = version.hypothesis
    r = row.result or {}
    label = f", label {_one_line(row.label)}" if row.label else ""
    yield (
        f"# statistics {row.id}: hypothesis {hyp.id} version {version.number} "
        f"({_one_line(version.title)}), state set {hyp.stateset_id}, source "
        f"{_one_line(version.source)}, cells {' '.join(str(c) for c in version.cells)}, "
        f"threshold {version.threshold}, zero_left {version.zero_left}, zero_right "
        f"{version.zero_right}, min_length {version.min_length}, "
        f"annotation {_one_line(row.annotation)}{label}"
        + ("" if row.scalar_threshold is None else f", positive at >= {row.scalar_threshold}")
        + "\n"
    )
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["section", "key", "value"])
    for key, value in (r.get("agreement") or {}).items():
        w.writerow(["agreement", key, value])
    rob = r.get("robustness") or {}
    for key in ("top_k", "delta", "positions"):
        if key in rob:
            w.writerow(["robustness", key, rob[key]])
    for item in rob.get("threshold", []):
        w.writerow(["robustness", f"threshold={item['threshold']:.6g}", item["jaccard"]])
    for item in rob.get("leave_one_out", []):
        w.writerow(["robustness", f"without cell {item['cell']}", item["jaccard"]])
    if "min_jaccard" in rob:
        w.writerow(["robustness", "min_jaccard", rob["min_jaccard"]])
    w.writerow([])
    w.writerow(["label", "inside", "expected", "lift", "p", "q"])
    for e in r.get("enrichment") or []:
        w.writerow([_one_line(e["label"]), e["inside"], e["expected"], e["lift"], e["p"], e["q"]])
    yield buf.getvalue()


def hypothesis_stateset_info(version: HypothesisVersion) -> dict[str, Any]:
    """What a reader of a hypothesis needs of its state set: name, length, the pinned
    source and the annotation tracks (a user it is shared with may not open the
    state set itself)."""
    ss = version.hypothesis.stateset
    m = ss.manifest
    source: dict[str, Any] = next(
        (s for s in m.get("sources", []) if s["id"] == version.source), {}
    )
    return {
        "name": ss.name,
        "length": ss.length,
        "source": {
            k: source.get(k)
            for k in ("id", "name", "layer", "kind", "cells", "transform", "unsigned")
        },
        "annotations": [
            {k: a[k] for k in ("name", "kind", "labels", "range", "k") if a.get(k) is not None}
            for a in m.get("annotations", [])
        ],
    }
