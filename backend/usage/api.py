"""The usage dashboard's routes: `GET /api/usage/` (every figure of a range at once)
and `GET /api/usage/{table}/` (one table, as JSON or, with `format=csv`, as a CSV
download).

Both take `from` and `to` (days, YYYY-MM-DD, inclusive, UTC; the last 30 days by
default) and at most one of `project` (a slug) and `user` (a user name). Who may see
what is decided by `selectors.usage_scope_for` (docs/usage.md).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from django.http import Http404
from django.http.response import HttpResponseBase
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.core.downloads import (
    Download,
    DownloadNegotiation,
    download_response,
    filename_part,
)
from backend.core.errors import ApplicationError

from .selectors import (
    TABLES,
    UsageScope,
    usage_dashboard,
    usage_kinds,
    usage_range,
    usage_scope_for,
)

PARAMETERS = [
    OpenApiParameter(
        "from", OpenApiTypes.DATE, description="first day (default: 29 days before to)"
    ),
    OpenApiParameter("to", OpenApiTypes.DATE, description="last day (default: today, UTC)"),
    OpenApiParameter(
        "project", str, description="a project's usage: staff, or the project's owner"
    ),
    OpenApiParameter("user", str, description="a user's usage: staff (or the caller's own)"),
]


class UsageScopeSerializer(serializers.Serializer[Any]):
    scope = serializers.ChoiceField(choices=["lab", "user", "project"])
    label = serializers.CharField()  # type: ignore[assignment]
    project = serializers.CharField(allow_null=True)
    user = serializers.CharField(allow_null=True)


class UsageSerializer(serializers.Serializer[Any]):
    scope = UsageScopeSerializer()
    range = serializers.DictField(help_text='{"from": day, "to": day}')
    today = serializers.DateField()
    totals = serializers.DictField(
        help_text="actions, active_users, by_kind, latency {metric: {count, p50_ms, "
        "p95_ms}}, days_from_rollups, days_from_events"
    )
    tables = serializers.DictField(
        child=serializers.ListField(child=serializers.DictField()),
        help_text="every table of docs/usage.md, by name: a list of rows",
    )
    kinds = serializers.ListField(child=serializers.DictField())


class UsageTableSerializer(serializers.Serializer[Any]):
    table = serializers.CharField()
    description = serializers.CharField()
    scope = UsageScopeSerializer()
    range = serializers.DictField()
    columns = serializers.ListField(child=serializers.CharField())
    rows = serializers.ListField(child=serializers.DictField())


def _scope_and_range(request: Request) -> tuple[UsageScope, Any, Any]:
    q = request.query_params
    first, last = usage_range(q)
    scope = usage_scope_for(
        request.user, project=q.get("project") or None, username=q.get("user") or None
    )
    return scope, first, last


class UsageView(APIView):
    @extend_schema(
        operation_id="usage_dashboard",
        parameters=PARAMETERS,
        responses=UsageSerializer,
        description=(
            "Every figure of the usage dashboard over a range of days: active users, "
            "actions by kind, latency, matches, jobs, the most used projects, users and "
            "hypotheses, storage (docs/usage.md)."
        ),
    )
    def get(self, request: Request) -> Response:
        scope, first, last = _scope_and_range(request)
        answer = usage_dashboard(request.user, scope, first, last)
        return Response(
            {
                "scope": scope.to_json(),
                "range": {"from": first.isoformat(), "to": last.isoformat()},
                "today": timezone.now().date().isoformat(),
                "totals": answer["totals"],
                "tables": answer["tables"],
                "kinds": usage_kinds(),
            }
        )


def _csv_lines(columns: list[str], rows: list[dict[str, Any]]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


class UsageTableView(APIView):
    content_negotiation_class = DownloadNegotiation

    @extend_schema(
        operation_id="usage_table",
        parameters=[
            OpenApiParameter(
                "table", str, OpenApiParameter.PATH, enum=list(TABLES), description="the table"
            ),
            *PARAMETERS,
            OpenApiParameter(
                "format", str, enum=["json", "csv"], description="csv: a download (json)"
            ),
        ],
        responses={
            (200, "application/json"): UsageTableSerializer,
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR, description="a header line of the columns, then the rows"
            ),
        },
        description="One table of the usage dashboard, as JSON or as a CSV download.",
    )
    def get(self, request: Request, table: str) -> HttpResponseBase:
        if table not in TABLES:
            raise Http404("No such table.")
        fmt = request.query_params.get("format") or "json"
        if fmt not in ("json", "csv"):
            raise ApplicationError(f"format must be json or csv, not '{fmt}'.")
        scope, first, last = _scope_and_range(request)
        rows = usage_dashboard(request.user, scope, first, last, only=table)["tables"][table]
        columns, description = TABLES[table]
        if fmt == "json":
            return Response(
                {
                    "table": table,
                    "description": description,
                    "scope": scope.to_json(),
                    "range": {"from": first.isoformat(), "to": last.isoformat()},
                    "columns": columns,
                    "rows": rows,
                }
            )
        who = {"lab": "lab", "user": scope.username, "project": scope.key}[scope.scope]
        name = f"usage-{table}-{filename_part(who, 'lab')}-{first}-{last}.csv"
        return download_response(
            Download(
                filename=name,
                content_type="text/csv; charset=utf-8",
                chunks=_csv_lines(columns, rows),
            )
        )
