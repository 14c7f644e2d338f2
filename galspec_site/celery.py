"""The Celery application: `celery -A galspec_site worker -Q default,embedding,training`."""

import os
import sys

from celery import Celery
from celery.signals import worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "galspec_site.settings")

app = Celery("galspec")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def _refuse_public_key(**kwargs) -> None:
    """Celery logs and ignores a receiver's exception; SystemExit, with the message, stops the worker."""
    from django.core.exceptions import ImproperlyConfigured

    from galspec_site.startup import secret_key_check

    try:
        secret_key_check("a Celery worker")
    except ImproperlyConfigured as error:
        raise SystemExit(str(error)) from None


QUEUES = ("default", "embedding", "training")


def worker_command(*, module: str = "celery", options: tuple[str, ...] = ()) -> list[str]:
    """The command line of one Celery worker (a solo pool) on every queue, in this Python; ``module`` is
    what runs as ``python -m`` (celery, or a test's wrapper of it)."""
    command = [sys.executable, "-m", module, "-A", "galspec_site", "worker", "--pool=solo", "-l", "info"]
    return [*command, "-Q", ",".join(QUEUES), *options]
