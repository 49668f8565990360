from django.urls import path

from . import views

urlpatterns = [
    path("info", views.InfoView.as_view(), name="v2-info"),
    path("context", views.ContextView.as_view(), name="v2-context"),
    path("search", views.SearchView.as_view(), name="v2-search"),
    path("match", views.MatchView.as_view(), name="v2-match"),
]
