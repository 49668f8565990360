"""Reads and access checks for language models and corpora.

`model_for_user`, `corpus_for_user` and `resumable_for_user` answer 404 for a model the caller may not see, exactly as for a
missing one; `model_in_project` finds a model (or corpus) named in a request that
acts on one project, and answers 400 when it is not in that project.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404

from backend.core.errors import ApplicationError
from backend.core.params import uuid_or_404
from backend.projects.models import Project, Role
from backend.projects.selectors import get_for_user

from .models import Corpus, LanguageModel, ResumableUpload


def model_for_user(user: Any, model_id: Any, *, need: str = Role.VIEWER) -> LanguageModel:
    return get_for_user(LanguageModel.objects.all(), user, model_id, what="model", need=need)


def corpus_for_user(user: Any, corpus_id: Any, *, need: str = Role.VIEWER) -> Corpus:
    return get_for_user(Corpus.objects.all(), user, corpus_id, what="corpus", need=need)


def _in_project(qs: Any, project: Project, item_id: Any, what: str) -> Any:
    try:
        found = qs.filter(id=uuid_or_404(item_id), project=project).first()
    except Http404:
        found = None
    if found is None:
        raise ApplicationError(
            f"There is no {what} with id '{item_id}' in project '{project.slug}'; "
            f"pick one listed on the project.",
            code=f"unknown_{what}",
        )
    return found


def model_in_project(project: Project, model_id: Any) -> LanguageModel:
    """The model `model_id` of `project`, or a 400 that says it is not there."""
    model: LanguageModel = _in_project(LanguageModel.objects.all(), project, model_id, "model")
    return model


def corpus_in_project(project: Project, corpus_id: Any) -> Corpus:
    """The corpus `corpus_id` of `project`, or a 400 that says it is not there."""
    corpus: Corpus = _in_project(Corpus.objects.all(), project, corpus_id, "corpus")
    return corpus


def resumable_for_user(user: Any, upload_id: Any) -> ResumableUpload:
    """A resumable upload of `user`'s own, while they may still upload to its project
    (an editor, else 403); anyone else's, a malformed id or a missing one: 404."""
    if not getattr(user, "is_authenticated", False):
        raise Http404("No such upload.")
    found: ResumableUpload = get_for_user(
        ResumableUpload.objects.filter(created_by=user),
        user,
        upload_id,
        what="upload",
        need=Role.EDITOR,
    )
    return found
