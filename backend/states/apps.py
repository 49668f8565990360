from django.apps import AppConfig


class StatesConfig(AppConfig):
    name = "backend.states"
    label = "states"
