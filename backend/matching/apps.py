from django.apps import AppConfig


class MatchingConfig(AppConfig):
    name = "backend.matching"
    label = "matching"
