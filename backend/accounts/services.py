"""Writes for accounts: creating users and issuing API tokens."""

from __future__ import annotations

from django.contrib.auth import authenticate
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.signals import user_logged_in
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest
from rest_framework.authtoken.models import Token

from backend.core.errors import ApplicationError

from .models import User


@transaction.atomic
def user_create(*, username: str, password: str, email: str = "", admin: bool = False) -> User:
    if User.objects.filter(username__iexact=username).exists():
        raise ApplicationError(f"A user named '{username}' already exists.", code="exists")
    user = User(username=username, email=email, is_staff=admin, is_superuser=admin)
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise ApplicationError(" ".join(exc.messages), code="weak_password") from exc
    user.set_password(password)
    user.save()
    return user


def token_issue(*, request: HttpRequest, username: str, password: str) -> str:
    """The user's API token. `request` goes to `authenticate` so that the login
    lockout (django-axes) counts this attempt and refuses a locked-out one."""
    user = authenticate(request, username=username, password=password)
    if user is None or not user.is_active:
        raise ApplicationError(
            "Unknown user name or wrong password.", code="authentication_failed", status_code=400
        )
    # A token issued is a login: the signal records it (last_login) and clears the
    # failures counted for this user at this address.
    user_logged_in.send(sender=user.__class__, request=request, user=user)
    token, _ = Token.objects.get_or_create(user=user)
    return str(token.key)
