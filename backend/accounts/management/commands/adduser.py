"""`manage.py adduser USERNAME [--admin]`: password from STATELAB_PASSWORD or asked for."""

import getpass
import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from backend.accounts.services import user_create
from backend.core.errors import ApplicationError


class Command(BaseCommand):
    help = "Create a StateLab user (password from $STATELAB_PASSWORD, or asked for)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--admin", action="store_true", help="staff and superuser")
        parser.add_argument("--email", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        password = os.environ.get("STATELAB_PASSWORD")
        if not password:
            password = getpass.getpass("Password: ")
            if password != getpass.getpass("Password (again): "):
                raise CommandError("The two passwords differ.")
        try:
            user = user_create(
                username=options["username"],
                password=password,
                email=options["email"],
                admin=options["admin"],
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        kind = "administrator" if user.is_superuser else "user"
        self.stdout.write(self.style.SUCCESS(f"Created {kind} '{user.username}'."))
