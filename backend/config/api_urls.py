"""Every route under /api/. The security matrix test walks this list."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from backend.accounts.api import TokenView
from backend.artifacts.api import (
    CorpusDetailView,
    ModelDetailView,
    ProjectCorporaView,
    ProjectModelsView,
    TrainingView,
)
from backend.artifacts.resumable_api import ProjectUploadsView, UploadDetailView
from backend.config.apidocs import api_docs_view
from backend.hypotheses.api import (
    HypothesesView,
    HypothesisCommentsView,
    HypothesisCommentView,
    HypothesisContextView,
    HypothesisDetailView,
    HypothesisExportView,
    HypothesisForkView,
    HypothesisMatchDetailView,
    HypothesisMatchesView,
    HypothesisMatchView,
    HypothesisSearchView,
    HypothesisSelectionView,
    HypothesisSharesView,
    HypothesisStatisticsView,
    HypothesisVersionsView,
    HypothesisVersionView,
    RankingDetailView,
    RankingExportView,
    StateSetRankingsView,
    StatisticsDetailView,
    StatisticsExportView,
)
from backend.jobs.api import JobCancelView, JobDetailView, ProjectJobsView
from backend.matching.api import MatchDetailView, MatchExportView, StateSetMatchesView
from backend.projects.api import (
    InvitationAcceptView,
    InvitationDetailView,
    InvitationListView,
    ProjectDetailView,
    ProjectListView,
    ProjectMembersView,
)
from backend.states.api import (
    ContextView,
    CorpusAnnotationsView,
    ExtractionView,
    ImportView,
    SearchView,
    SelectionView,
    StateSetAnnotationsView,
    StateSetCorpusView,
    StateSetDetailView,
    StateSetExportView,
    StateSetIndexView,
)
from backend.usage.api import UsageTableView, UsageView

urlpatterns = [
    path("auth/token/", TokenView.as_view(), name="auth-token"),
    path("projects/", ProjectListView.as_view(), name="project-list"),
    path("projects/<slug:slug>/", ProjectDetailView.as_view(), name="project-detail"),
    path("projects/<slug:slug>/members/", ProjectMembersView.as_view(), name="project-members"),
    path("invitations/", InvitationListView.as_view(), name="invitation-list"),
    path(
        "invitations/<str:invitation_id>/",
        InvitationDetailView.as_view(),
        name="invitation-detail",
    ),
    path(
        "invitations/<str:invitation_id>/accept/",
        InvitationAcceptView.as_view(),
        name="invitation-accept",
    ),
    path("projects/<slug:slug>/jobs/", ProjectJobsView.as_view(), name="project-jobs"),
    path("projects/<slug:slug>/imports/", ImportView.as_view(), name="project-imports"),
    path("projects/<slug:slug>/corpora/", ProjectCorporaView.as_view(), name="project-corpora"),
    path("projects/<slug:slug>/uploads/", ProjectUploadsView.as_view(), name="project-uploads"),
    path("uploads/<str:upload_id>/", UploadDetailView.as_view(), name="upload-detail"),
    path("corpora/<str:corpus_id>/", CorpusDetailView.as_view(), name="corpus-detail"),
    path(
        "corpora/<str:corpus_id>/annotations/",
        CorpusAnnotationsView.as_view(),
        name="corpus-annotations",
    ),
    path("projects/<slug:slug>/models/", ProjectModelsView.as_view(), name="project-models"),
    path("models/<str:model_id>/", ModelDetailView.as_view(), name="model-detail"),
    path("projects/<slug:slug>/extractions/", ExtractionView.as_view(), name="project-extractions"),
    path("projects/<slug:slug>/trainings/", TrainingView.as_view(), name="project-trainings"),
    path("jobs/<str:job_id>/", JobDetailView.as_view(), name="job-detail"),
    path("jobs/<str:job_id>/cancel/", JobCancelView.as_view(), name="job-cancel"),
    path("statesets/<str:stateset_id>/", StateSetDetailView.as_view(), name="stateset-detail"),
    path("statesets/<str:stateset_id>/context/", ContextView.as_view(), name="stateset-context"),
    path(
        "statesets/<str:stateset_id>/selection/", SelectionView.as_view(), name="stateset-selection"
    ),
    path("statesets/<str:stateset_id>/search/", SearchView.as_view(), name="stateset-search"),
    path(
        "statesets/<str:stateset_id>/matches/",
        StateSetMatchesView.as_view(),
        name="stateset-matches",
    ),
    path("statesets/<str:stateset_id>/index/", StateSetIndexView.as_view(), name="stateset-index"),
    path(
        "statesets/<str:stateset_id>/corpus/", StateSetCorpusView.as_view(), name="stateset-corpus"
    ),
    path(
        "statesets/<str:stateset_id>/annotations/",
        StateSetAnnotationsView.as_view(),
        name="stateset-annotations",
    ),
    path(
        "statesets/<str:stateset_id>/export/", StateSetExportView.as_view(), name="stateset-export"
    ),
    path("matches/<str:match_id>/", MatchDetailView.as_view(), name="match-detail"),
    path("matches/<str:match_id>/export/", MatchExportView.as_view(), name="match-export"),
    path(
        "statesets/<str:stateset_id>/rankings/",
        StateSetRankingsView.as_view(),
        name="stateset-rankings",
    ),
    path("rankings/<str:ranking_id>/", RankingDetailView.as_view(), name="ranking-detail"),
    path("rankings/<str:ranking_id>/export/", RankingExportView.as_view(), name="ranking-export"),
    path("hypotheses/", HypothesesView.as_view(), name="hypothesis-list"),
    path(
        "hypotheses/<str:hypothesis_id>/",
        HypothesisDetailView.as_view(),
        name="hypothesis-detail",
    ),
    path(
        "hypotheses/<str:hypothesis_id>/versions/",
        HypothesisVersionsView.as_view(),
        name="hypothesis-versions",
    ),
    path(
        "hypotheses/<str:hypothesis_id>/versions/<int:number>/",
        HypothesisVersionView.as_view(),
        name="hypothesis-version",
    ),
    path(
        "hypotheses/<str:hypothesis_id>/match/",
        HypothesisMatchView.as_view(),
        name="hypothesis-match",
    ),
    path(
        "hypotheses/<str:hypothesis_id>/selection/",
        HypothesisSelectionView.as_view(),
        name="hypothesis-selection",
    ),
    path(
        "hypotheses/<str:hypothesis_id>/search/",
        HypothesisSearchView.as_view(),
        name="hypothesis-search",
    ),
    path(
        "hypotheses/<str:hypothesis_id>/matches/",
        HypothesisMatchesView.as_view(),
        name="hypothesis-matches",
    ),
    path(
        "hypotheses/<str:hypothesis_id>/matches/<str:match_id>/",
        HypothesisMatchDetailView.as_view(),
        name="hypothesis-match-detail",
    ),
    path(
        "hypotheses/<str:hypothesis_id>/context/",
        HypothesisContextView.as_view(),
        name="hypothesis-context",
    ),
    path(
        "hypotheses/<str:hypothesis_id>/export/",
        HypothesisExportView.as_view(),
        name="hypothesis-export",
    ),
    path(
        "hypotheses/<str:hypothesis_id>/shares/",
        HypothesisSharesView.as_view(),
        name="hypothesis-shares",
    ),
    path(
        "hypotheses/<str:hypothesis_id>/fork/", HypothesisForkView.as_view(), name="hypothesis-fork"
    ),
    path(
        "hypotheses/<str:hypothesis_id>/comments/",
        HypothesisCommentsView.as_view(),
        name="hypothesis-comments",
    ),
    path(
        "hypotheses/<str:hypothesis_id>/comments/<str:comment_id>/",
        HypothesisCommentView.as_view(),
        name="hypothesis-comment",
    ),
    path(
        "hypotheses/<str:hypothesis_id>/statistics/",
        HypothesisStatisticsView.as_view(),
        name="hypothesis-statistics",
    ),
    path(
        "statistics/<str:statistics_id>/",
        StatisticsDetailView.as_view(),
        name="statistics-detail",
    ),
    path(
        "statistics/<str:statistics_id>/export/",
        StatisticsExportView.as_view(),
        name="statistics-export",
    ),
    path("usage/", UsageView.as_view(), name="usage-dashboard"),
    path("usage/<slug:table>/", UsageTableView.as_view(), name="usage-table"),
    path("v2/", include("backend.compat.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", api_docs_view(url_name="schema"), name="api-docs"),
]
