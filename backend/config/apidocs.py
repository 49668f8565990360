"""The API docs page, `/api/docs/`: Swagger UI from drf-spectacular's sidecar, served
under the site's Content-Security-Policy with the least it needs added.

The page's start-up script is a file of its own (`/api/docs/?script=`, drf-spectacular's
split view), so `script-src 'self'` holds here as everywhere. What this page alone adds:

- its one inline `<style>` block, allowed by the block's SHA-256 (not `'unsafe-inline'`);
- `data:` images, which Swagger UI's stylesheet uses for its icons.

The start-up script carries the CSRF token for "Try it out"; it is answered with
`Cross-Origin-Resource-Policy: same-origin`, so another site cannot include it.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import cache, wraps
from typing import Any

from csp.decorators import csp_update
from django.http import HttpRequest, HttpResponseBase
from django.template.loader import get_template
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularSwaggerSplitView
from rest_framework.request import Request
from rest_framework.response import Response

_STYLE_BLOCK = re.compile(r"<style>(.*?)</style>", re.DOTALL)


@cache
def inline_style_sources() -> list[str]:
    """`'sha256-…'` of each inline `<style>` block of the Swagger UI page template (its
    text has no template tags, so the page carries it byte for byte)."""
    template = get_template(SpectacularSwaggerSplitView.template_name)
    source: str = template.template.source  # type: ignore[attr-defined]
    return [
        "'sha256-{}'".format(
            base64.b64encode(hashlib.sha256(block.encode()).digest()).decode("ascii")
        )
        for block in _STYLE_BLOCK.findall(source)
    ]


class ApiDocsView(SpectacularSwaggerSplitView):
    @extend_schema(exclude=True)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        response: Response = super().get(request, *args, **kwargs)  # type: ignore[no-untyped-call]
        if request.GET.get("script") is not None:
            response["Cross-Origin-Resource-Policy"] = "same-origin"
        return response


def api_docs_view(**initkwargs: Any) -> Any:
    """The docs page's view function, with its additions to the site's policy."""
    view = ApiDocsView.as_view(**initkwargs)

    @wraps(view)  # keeps what DRF marked on it (csrf_exempt, cls) for Django and the schema
    def docs(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        extra = {"style-src": inline_style_sources(), "img-src": ["data:"]}
        return csp_update(extra)(view)(request, *args, **kwargs)

    return docs
