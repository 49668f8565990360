"""File downloads from DRF views: what an export hands the view, the response that
streams it, and the content negotiation of those views.

An export answers a file, not JSON, so the view returns a Django response itself:
a `StreamingHttpResponse` over byte chunks, or a `FileResponse` over an open file
(closed, and so freed, when the response is closed). Errors still answer JSON
through the one exception handler, which needs a renderer chosen by content
negotiation; `DownloadNegotiation` makes that choice without DRF's URL format
override, because on these routes `?format=` names the file format (csv, npz,
hdf5), and without answering 406 to an `Accept` header asking for the file's type.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from django.http import FileResponse, StreamingHttpResponse
from django.utils.http import content_disposition_header
from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request


def filename_part(text: str, fallback: str) -> str:
    """`text` made safe as part of a download's file name (letters, digits, `._-`; at
    most 60 characters), or `fallback` when nothing of it is left."""
    part = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:60]
    return part or fallback


@dataclass
class Download:
    """An export ready to send: either `chunks` (streamed) or an open binary `file`."""

    filename: str
    content_type: str
    chunks: Iterator[bytes] | None = None
    file: IO[bytes] | None = None


def download_response(download: Download) -> StreamingHttpResponse | FileResponse:
    """The response sending `download` as an attachment named `download.filename`."""
    if download.file is not None:
        return FileResponse(
            download.file,
            as_attachment=True,
            filename=download.filename,
            content_type=download.content_type,
        )
    response = StreamingHttpResponse(
        download.chunks if download.chunks is not None else iter(()),
        content_type=download.content_type,
    )
    disposition = content_disposition_header(True, download.filename)
    if disposition:
        response.headers["Content-Disposition"] = disposition
    return response


class _NoFormatOverride:
    URL_FORMAT_OVERRIDE = None


class DownloadNegotiation(DefaultContentNegotiation):
    """Content negotiation that ignores `?format=` (a file format on download routes)
    and falls back to the first renderer (JSON, for errors) instead of a 406."""

    settings = _NoFormatOverride()  # type: ignore[assignment]

    def select_renderer(
        self,
        request: Request,
        renderers: Iterable[BaseRenderer],
        format_suffix: str | None = None,
    ) -> tuple[BaseRenderer, Any]:
        renderers = list(renderers)
        try:
            return super().select_renderer(request, renderers, None)  # type: ignore[no-any-return]
        except NotAcceptable:
            return renderers[0], renderers[0].media_type
