"""Top-level routes: the API, the admin, the login pages and the web UI."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("api/", include("backend.config.api_urls")),
    path("admin/", admin.site.urls),
    path("", include("webui.urls")),
]

# Errors no view answered: JSON for the API, HTML pages for the browser.
handler400 = "backend.config.errorpages.bad_request"
handler403 = "backend.config.errorpages.permission_denied"
handler404 = "backend.config.errorpages.not_found"
handler500 = "backend.config.errorpages.server_error"
