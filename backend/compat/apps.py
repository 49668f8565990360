from django.apps import AppConfig


class CompatConfig(AppConfig):
    name = "backend.compat"
    label = "compat"
