"""The Celery application: `celery -A galspec_site worker -Q default,embedding,training`."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "galspec_site.settings")

app = Celery("galspec")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
