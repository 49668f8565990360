from django.apps import AppConfig


class UsageConfig(AppConfig):
    name = "backend.usage"
    label = "usage"
