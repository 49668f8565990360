"""Deleting a user keeps their events, attributed to the deleted account: events hold
the user's id and name as plain values, so neither the admin's deletion nor a
deletion in code fails on them or takes them along."""

from __future__ import annotations

import pytest
from django.apps import apps

from backend.accounts.models import User
from backend.usage.models import UsageEvent

pytestmark = pytest.mark.django_db


def _event_models():
    """Every kind of event kept per user (a plain `user_id` and `username`)."""
    found = [
        model
        for model in apps.get_app_config("usage").get_models()
        if {"user_id", "username"} <= {f.name for f in model._meta.fields}
    ]
    assert UsageEvent in found
    return found


def _events_of(user_id):
    return {
        model.__name__: sorted(model.objects.filter(user_id=user_id).values_list("username"))
        for model in _event_models()
    }


def _act(api, project):
    assert api.get("/api/projects/").status_code == 200
    assert api.get(f"/api/projects/{project.slug}/").status_code == 200


def test_deleting_a_user_in_the_admin_keeps_their_events(admin_client, owner, owner_api, project):
    _act(owner_api, project)
    user_id = owner.pk
    before = _events_of(user_id)
    assert before["UsageEvent"] == [("alice",), ("alice",)]

    # The user's page links to their events; then staff delete the account.
    page = admin_client.get(f"/admin/accounts/user/{user_id}/change/").content.decode()
    assert f"/admin/usage/usageevent/?user_id={user_id}" in page
    r = admin_client.post(f"/admin/accounts/user/{user_id}/delete/", {"post": "yes"})
    assert r.status_code == 302, r.content.decode()[:2000]
    assert not User.objects.filter(pk=user_id).exists()

    assert _events_of(user_id) == before
    # The admin's list of that account's events still shows them under its name.
    listing = admin_client.get(f"/admin/usage/usageevent/?user_id={user_id}")
    assert listing.status_code == 200
    assert listing.context["cl"].result_count == 2
    assert "alice" in listing.content.decode()


def test_deleting_a_user_in_code_keeps_their_events_and_their_project(owner, owner_api, project):
    _act(owner_api, project)
    user_id = owner.pk
    before = _events_of(user_id)
    owner.delete()
    assert _events_of(user_id) == before
    project.refresh_from_db()  # the project stays, with no creator
    assert project.created_by_id is None


def test_a_new_account_with_the_same_name_does_not_inherit_the_events(
    make_user, owner, owner_api, project
):
    _act(owner_api, project)
    old_id = owner.pk
    owner.delete()
    again = make_user("alice")
    assert again.pk != old_id
    assert _events_of(again.pk)["UsageEvent"] == []
    assert len(_events_of(old_id)["UsageEvent"]) == 2
