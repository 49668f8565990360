"""`manage.py import_lstmvis DIR --project SLUG --owner USER`: the API's import, from a folder.

The folder is packed into a zip in the store (so any worker can read it) and
imported by the same job as an upload, through the worker; the command waits and
shows progress. The project is created when missing.
"""

import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from django.core.files import File
from django.core.management.base import BaseCommand, CommandError, CommandParser

from backend.accounts.models import User
from backend.core.storage import store_root
from backend.jobs.models import TERMINAL, Job
from backend.projects.services import project_ensure
from backend.states.services import import_start


class Command(BaseCommand):
    help = "Import an LSTMVis project directory as a state set (through the worker)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory")
        parser.add_argument("--project", required=True, help="project slug (created if missing)")
        parser.add_argument("--owner", required=True, help="user name of the owner")
        parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait")

    def handle(self, *args: Any, **options: Any) -> None:
        src = Path(options["directory"])
        if not (src / "lstm.yml").is_file():
            raise CommandError(f"{src} has no lstm.yml; give the LSTMVis project directory.")
        owner = User.objects.filter(username=options["owner"]).first()
        if owner is None:
            raise CommandError(f"There is no user named '{options['owner']}'.")
        project = project_ensure(slug=options["project"], owner=owner)
        (store_root() / "tmp").mkdir(exist_ok=True)
        # Packed on disk, not in memory: LSTMVis directories run to many gigabytes.
        with tempfile.TemporaryFile(dir=store_root() / "tmp") as packed:
            with zipfile.ZipFile(packed, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
                for path in sorted(src.rglob("*")):
                    if path.is_symlink():
                        raise CommandError(f"{path} is a symbolic link; copy the file instead.")
                    if path.is_file():
                        zf.write(path, path.relative_to(src).as_posix())
            packed.seek(0)
            upload = File(packed, name=f"{src.name}.zip")
            job, _ = import_start(project=project, user=owner, file=upload)
        self.stdout.write(f"Job {job.id} queued; waiting for a worker...")
        deadline = time.monotonic() + options["timeout"]
        last = ""
        while True:
            job = Job.objects.get(id=job.id)
            line = f"{job.progress:6.1%} {job.message}"
            if line != last:
                self.stdout.write(line)
                last = line
            if job.status in TERMINAL:
                break
            if time.monotonic() > deadline:
                raise CommandError(f"Gave up waiting; job {job.id} is still {job.status}.")
            time.sleep(0.5)
        if job.status != "succeeded":
            raise CommandError(f"The import {job.status}: {job.error or job.message}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Imported state set {job.result['stateset']} into project '{project.slug}'."
            )
        )
