from django.apps import AppConfig


class UsageConfig(AppConfig):
    name = "backend.usage"
    label = "usage"

    def ready(self) -> None:
        from backend.core.events import event_writer_register

        from .services import research_events_store

        event_writer_register("research-events", research_events_store)
