"""`manage.py import_lstmvis DIR --project SLUG --owner USER`: an LSTMVis directory on
the server becomes a state set, read where it lies.

The job (`import_lstmvis_dir`) runs in a worker, which must see DIR at the same
path (the same machine or a shared volume): it checks the files exactly as an
upload's, writes the state set once, with its indexes, and is held to the owner's
and the project's storage quotas only, whatever the size (no upload limit). The
command waits and shows the progress in bytes; a worker killed meanwhile leaves
the job to the next one, which continues where it stopped. The project is created
when missing. Unlike the API's `{"path": ...}`, any folder may be named: whoever
runs this command is an administrator of the server.
"""

import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from backend.accounts.models import User
from backend.jobs.models import TERMINAL, Job
from backend.projects.services import project_ensure
from backend.states.directories import import_dir_start


class Command(BaseCommand):
    help = "Import an LSTMVis project directory on the server as a state set (through a worker)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory")
        parser.add_argument("--project", required=True, help="project slug (created if missing)")
        parser.add_argument("--owner", required=True, help="user name of the owner")
        parser.add_argument("--timeout", type=float, default=6 * 3600, help="seconds to wait")

    def handle(self, *args: Any, **options: Any) -> None:
        src = Path(options["directory"]).expanduser().resolve()
        if not (src / "lstm.yml").is_file():
            raise CommandError(f"{src} has no lstm.yml; give the LSTMVis project directory.")
        owner = User.objects.filter(username=options["owner"]).first()
        if owner is None:
            raise CommandError(f"There is no user named '{options['owner']}'.")
        project = project_ensure(slug=options["project"], owner=owner)
        job, created = import_dir_start(project=project, user=owner, path=src, roots=False)
        if created:
            self.stdout.write(f"Job {job.id} queued; waiting for a worker...")
        else:
            self.stdout.write(f"The same directory is already being imported by job {job.id}.")
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
                raise CommandError(
                    f"Gave up waiting; job {job.id} is still {job.status} and goes on in the worker."
                )
            time.sleep(0.5)
        if job.status != "succeeded":
            raise CommandError(f"The import {job.status}: {job.error or job.message}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Imported state set {job.result['stateset']} into project '{project.slug}'."
            )
        )
