"""The user model: Django's, kept swappable-ready from the first migration."""

from django.contrib.auth.models import AbstractUser


class User(AbstractUser):
    """A StateLab user. Staff users may use the Django admin."""
