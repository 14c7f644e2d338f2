"""The Celery application: `celery -A galspec_site worker -Q default,embedding,training`."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "galspec_site.settings")

app = Celery("galspec")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def ensure_broker_folders() -> None:
    """The filesystem broker needs its folders before a worker or a producer touches them."""
    from django.conf import settings

    for key in ("data_folder_in", "data_folder_out", "processed_folder"):
        folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get(key)
        if folder:
            os.makedirs(folder, exist_ok=True)
