"""Top-level routes: the API, the admin, the login pages and the web UI."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("api/", include("backend.config.api_urls")),
    path("admin/", admin.site.urls),
    path("", include("webui.urls")),
]
