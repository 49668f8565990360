"""Reads and access checks for language models.

`model_for_user` answers 404 for a model the caller may not see, exactly as for a
missing one; `model_in_project` finds a model (or corpus) named in a request that
acts on one project, and answers 400 when it is not in that project.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404

from backend.config.api import ApplicationError
from backend.config.params import uuid_or_404
from backend.projects.models import Project, Role
from backend.projects.selectors import projects_for_user, require_role

from .models import Corpus, LanguageModel


def model_for_user(user: Any, model_id: Any, *, need: str = Role.VIEWER) -> LanguageModel:
    model = (
        LanguageModel.objects.select_related("project")
        .filter(id=uuid_or_404(model_id), project__in=projects_for_user(user))
        .first()
    )
    if model is None:
        raise Http404("No such model.")
    if need != Role.VIEWER:
        require_role(user, model.project, need=need)
    return model


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
