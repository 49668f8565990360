from django.apps import AppConfig


class ProjectsConfig(AppConfig):
    name = "backend.projects"
    label = "projects"

    def ready(self) -> None:
        from backend.core.quota import quota_limits_register

        from .selectors import quota_project_storage, quota_user_limits

        # The limits staff edit in the admin, read by the quota checks of core.
        quota_limits_register(user=quota_user_limits, project=quota_project_storage)
