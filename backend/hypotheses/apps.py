from django.apps import AppConfig


class HypothesesConfig(AppConfig):
    name = "backend.hypotheses"
    label = "hypotheses"
