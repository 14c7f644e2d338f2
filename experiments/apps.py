from django.apps import AppConfig


class ExperimentsConfig(AppConfig):
    """The paper's tables and figures, and our own experiments (``manage.py evaluate``); no models, and
    nothing in the site imports it."""

    name = "experiments"
