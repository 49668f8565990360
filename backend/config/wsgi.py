"""WSGI entry point (gunicorn in `make run` and in deploy/)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.config.settings.local")
application = get_wsgi_application()


def _match_kernels_warm() -> None:
    """Start compiling the match kernels in the background (backend/matching/inline.py),
    so that the first small match is answered by this web process, not by a job. The
    files a match reads are mapped here as they are used, not populated ahead as in a
    worker (docs/matching.md, "Reading files")."""
    from django.conf import settings

    from workers.core.match_engine import populate_maps

    populate_maps(False)

    if int(settings.STATELAB_MATCH_INLINE_TOKENS) > 0:
        from backend.matching.inline import inline_ready

        inline_ready()


_match_kernels_warm()
