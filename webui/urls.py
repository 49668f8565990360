"""Routes of the browser UI: login/logout, the project list, a project, a state set, usage."""

from django.contrib.auth import views as auth_views
from django.urls import path

from backend.accounts.login import RateLimitedLoginView

from . import views

urlpatterns = [
    path("accounts/login/", RateLimitedLoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("p/<slug:slug>/", views.project, name="project"),
    path("statesets/<uuid:stateset_id>/", views.stateset, name="stateset"),
    path("h/<uuid:hypothesis_id>/", views.hypothesis, name="hypothesis"),
    path("usage/", views.usage, name="usage"),
    path("", views.home, name="home"),
]
