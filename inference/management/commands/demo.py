"""python manage.py demo: the whole pipeline on the embedded defaults, then the site.

mock survey -> ingest (plus the real SDSS files in GALSPEC_SHARED_DATA, if present) -> the encoder
(the `small` checkpoint shipped in training/shipped, or with --pretrain one pre-trained here) -> embed
-> a knowledge base for every shipped task -> serve. Steps already done (a survey
on disk, a checkpoint in service, knowledge bases built with it) are kept, so running it again goes
straight to the site.
"""

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import BaseCommand

from galspec_site.celery import worker_command
from kb.labellings import TASKS
from kb.models import KnowledgeBase
from training.checkpoint import SHIPPED
from training.selectors import training_run_in_service


class Command(BaseCommand):
    help = (
        "Run the demo: mock survey, ingest, the shipped encoder (or --pretrain), embed, knowledge bases, then serve "
        "the site."
    )

    def add_arguments(self, parser):
        parser.add_argument("--size", type=int, default=3000, help="spectra in the mock survey")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument(
            "--pretrain",
            action="store_true",
            help="pre-train the small preset here (minutes) instead of serving the shipped checkpoint",
        )
        parser.add_argument("--max-steps", type=int, help="pre-training steps with --pretrain (default: the preset's)")
        parser.add_argument("--addrport", default="127.0.0.1:8000")
        parser.add_argument("--no-serve", action="store_true", help="stop after the pipeline")

    def handle(self, *args, size, seed, pretrain, max_steps, addrport, no_serve, **options):
        timings = {}

        def stage(name, *command, **kwargs):
            self.stdout.write(self.style.MIGRATE_HEADING(f"== {name}"))
            start = time.perf_counter()
            call_command(*command, **kwargs)
            timings[name] = time.perf_counter() - start

        self._secret_key()
        stage("migrate", "migrate", verbosity=0)
        survey = settings.DATA_DIR / "demo-survey"
        if not (survey / "catalogs").exists():
            stage("mock survey", "mock_survey", out=str(survey), size=size, seed=seed)
        stage("ingest mock survey", "ingest", str(survey), quiet_rejects=True)
        real = Path(settings.SHARED_DATA_DIR) / "sdss-spectra"
        if real.is_dir():
            stage("ingest real SDSS spectra", "ingest", str(real))
        if training_run_in_service() is None:
            if pretrain or max_steps or not SHIPPED.is_dir():
                stage("pre-train (small preset)", "pretrain", preset="small", max_steps=max_steps, seed=seed)
            else:
                stage("shipped checkpoint", "import_checkpoint", str(SHIPPED))
        stage("embed", "embed")
        for task in TASKS:
            if not KnowledgeBase.objects.filter(
                task__name=task, in_service=True, training_run=training_run_in_service()
            ).exists():
                stage(f"knowledge base: {task}", "build_kb", task=task, seed=seed, verbosity=0)
        self.stdout.write(
            self.style.SUCCESS("pipeline done in " + ", ".join(f"{k}: {v:.0f} s" for k, v in timings.items()))
        )
        self.stdout.write(f"total {sum(timings.values()):.0f} s")
        if no_serve:
            return
        password = self._demo_user()
        # SIGTERM (a service manager, `kill`) stops the demo as Ctrl-C does, its worker with it
        signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))
        worker = self._worker()
        self.stdout.write(self.style.SUCCESS(f"GalSpec at http://{addrport}/  (Ctrl-C stops it)"))
        self.stdout.write(f"log in as demo / {password} for batch searches; API docs at http://{addrport}/api/v1/docs/")
        try:
            call_command("runserver", addrport, use_reloader=False, insecure_serving=True)
        finally:
            worker_stop(worker)

    def _demo_user(self) -> str:
        """The demo's account (an administrator), with a fresh password printed on the console."""
        user = User.objects.filter(username="demo").first() or User(username="demo", is_staff=True, is_superuser=True)
        password = secrets.token_urlsafe(9)
        user.set_password(password)
        user.save()
        return password

    def _secret_key(self) -> None:
        """The demo's own secret key, made once for its data folder (``settings.SECRET_KEY_FILE``, readable by
        this user alone) where none is set: its worker refuses the public built-in one, as servers do."""
        if settings.SECRET_KEY != settings.INSECURE_SECRET_KEY:
            return
        key = secrets.token_urlsafe(50)
        descriptor = os.open(settings.SECRET_KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(key + "\n")
        settings.SECRET_KEY = key
        self.stdout.write(f"a secret key for this demo's data folder: {settings.SECRET_KEY_FILE}")

    def _worker(self) -> subprocess.Popen:
        """A Celery worker for batch jobs, on the embedded broker, for as long as the site runs."""
        log = settings.DATA_DIR / "worker.log"
        self.stdout.write(f"Celery worker (queues default, embedding, training) logging to {log}")
        with open(log, "a") as output:  # the worker has its own copy of the descriptor
            return subprocess.Popen(  # noqa: S603  a fixed argv (worker_command), no shell
                worker_command(), cwd=settings.BASE_DIR, stdout=output, stderr=subprocess.STDOUT
            )


def worker_stop(worker: subprocess.Popen, *, grace_s: float = 30) -> None:
    """Stop the demo's worker: a warm shutdown (SIGTERM: it finishes the task in hand), killed after ``grace_s``."""
    worker.terminate()
    try:
        worker.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()
