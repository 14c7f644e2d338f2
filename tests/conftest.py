import io
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from galspec_site.celery import worker_command
from kb.mock import generate_survey
from kb.services.ingest import ingest_folder
from training.services import training_run_create, training_run_execute

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the checkout (or GALSPEC_SHARED_DATA): real SDSS files, read in place."""
    path = Path(os.environ.get("GALSPEC_SHARED_DATA", REPO.parent / "shared" / "data"))
    assert (path / "sdss-spectra").is_dir(), f"real SDSS test data not found at {path} (set GALSPEC_SHARED_DATA)"
    return path


@pytest.fixture(scope="session")
def real_spectra(shared_data) -> list[Path]:
    files = sorted((shared_data / "sdss-spectra").glob("spec-*.fits"))
    assert len(files) == 10
    return files


@pytest.fixture
def data_dir(settings, tmp_path):
    """A fresh GALSPEC_DATA_DIR for one test: its own array store, checkpoints and embeddings."""
    settings.DATA_DIR = tmp_path / "var"
    settings.DATA_DIR.mkdir()
    return settings.DATA_DIR


def _database_url(settings_dict) -> str:
    """A DATABASE_URL for another process to reach the test database this process uses."""
    if settings_dict["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{settings_dict['NAME']}"
    user = settings_dict.get("USER") or ""
    password = f":{settings_dict['PASSWORD']}" if settings_dict.get("PASSWORD") else ""
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{settings_dict['NAME']}"


def start_worker(data_dir, settings, *, module: str = "celery", pool: tuple[str, ...] = (), **environment):
    """A real Celery worker in its own process, on this deployment's broker (Redis with REDIS_URL, else
    the filesystem broker), sharing the test database and data folder; returns once it is ready.

    ``module`` is run with ``python -m`` in place of celery's own (``tests.gated_worker`` injects a fault);
    ``pool`` replaces the solo pool (e.g. ``("--pool=prefork", "--concurrency=1")``)."""
    import subprocess
    import time

    from django.db import connection

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "galspec_site.settings",
        "DATABASE_URL": _database_url(connection.settings_dict),
        "GALSPEC_DATA_DIR": str(data_dir),
        "GALSPEC_BROKER_DIR": str(settings.BROKER_DIR),
        "GALSPEC_TORCH_THREADS": "1",
        "GALSPEC_SECRET_KEY": settings.SECRET_KEY,  # a worker refuses the built-in one
        **environment,
    }
    log_path = data_dir / f"worker-{time.monotonic_ns()}.log"
    log = open(log_path, "w")
    worker = subprocess.Popen(
        worker_command(module=module, options=("--without-heartbeat", "--without-mingle", "--without-gossip", *pool)),
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    worker.log_path = log_path
    deadline = time.monotonic() + 60
    while "ready" not in log_path.read_text() and worker.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert worker.poll() is None, log_path.read_text()
    return worker


@pytest.fixture
def celery_worker_process(data_dir, settings):
    """A real Celery worker (``start_worker``). Tests using it need ``django_db(transaction=True)`` so
    that what they write is committed and visible to it."""
    from galspec_site.celery import app

    app.control.purge() if settings.REDIS_URL else None
    worker = start_worker(data_dir, settings)
    yield worker
    if worker.poll() is None:
        worker.terminate()
        worker.wait(timeout=30)


QUICK = dict(max_steps=3, eval_every=3, batch_size=8, warmup_steps=1)


@pytest.fixture(scope="session")
def survey(tmp_path_factory):
    """80 mock spectra, rich in lenses and outliers so that every task has targets in the KB and the test reserve
    (and fewer massive galaxies matched to the lenses than a real mock has, to leave room for the BPT classes)."""
    out = tmp_path_factory.mktemp("kb-survey")
    generate_survey(out=out, size=80, seed=11, lens_fraction=0.15, outlier_fraction=0.15, massive_per_lens=0.5)
    return out


@dataclass(frozen=True)
class Snapshot:
    """A data folder and its database rows (apps kb, inference, training, as ``dumpdata`` JSON), built once
    per session and laid into each test that asks for them: what ingest, pre-training and index builds
    would make again, identically, in every test."""

    folder: Path
    rows: str

    def restore(self, data_dir: Path) -> None:
        """Copy the files into ``data_dir`` and load the rows, their paths pointing there; keys are kept."""
        from django.core.management import call_command

        from kb.models import SearchTask

        shutil.copytree(self.folder, data_dir, dirs_exist_ok=True)
        fixture = data_dir.parent / f"{self.folder.parent.name}.json"
        fixture.write_text(self.rows.replace(str(self.folder), str(data_dir)))
        # a flush (transactional tests) syncs the shipped tasks again under new keys: make way for the rows'
        tasks = {row["fields"]["name"]: row["pk"] for row in json.loads(self.rows) if row["model"] == "kb.searchtask"}
        SearchTask.objects.filter(name__in=list(tasks)).exclude(pk__in=list(tasks.values())).delete()
        call_command("loaddata", str(fixture), verbosity=0)


def build_snapshot(tmp_path_factory, django_db_blocker, name: str, build) -> Snapshot:
    """Run ``build(folder)`` in a fresh data folder, in a transaction rolled back once its rows are dumped."""
    from django.core.management import call_command
    from django.db import transaction
    from django.test import override_settings

    folder = tmp_path_factory.mktemp(name) / "var"
    folder.mkdir()
    rows = io.StringIO()
    with django_db_blocker.unblock(), override_settings(DATA_DIR=folder), transaction.atomic():
        build(folder)
        call_command("dumpdata", "kb", "inference", "training", stdout=rows)
        transaction.set_rollback(True)
    return Snapshot(folder, rows.getvalue())


@pytest.fixture(scope="session")
def trained_snapshot(tmp_path_factory, django_db_setup, django_db_blocker, survey) -> Snapshot:
    def build(folder):
        ingest_folder(folder=survey)
        training_run_execute(run=training_run_create(preset="small", **QUICK))

    return build_snapshot(tmp_path_factory, django_db_blocker, "trained", build)


@pytest.fixture(scope="session")
def searchable_snapshot(tmp_path_factory, django_db_blocker, trained_snapshot) -> Snapshot:
    def build(folder):
        from inference.services.knowledge_bases import knowledge_base_build

        trained_snapshot.restore(folder)
        for name in ("lens", "bpt3"):
            knowledge_base_build(task=shipped_task(name))

    return build_snapshot(tmp_path_factory, django_db_blocker, "searchable", build)


@pytest.fixture(scope="session")
def catalog_snapshot(tmp_path_factory, django_db_setup, django_db_blocker) -> Snapshot:
    """600 mock spectra, nearly all of them outliers (some 40 of each kind), with the shipped checkpoint in
    service and every spectrum embedded: a survey in which to hunt one kind from a catalog of examples.
    Its truth is at ``folder.parent / "survey" / "mock_truth.csv"``."""

    def build(folder):
        from inference.services.embeddings import embedding_update
        from training.checkpoint import SHIPPED
        from training.services import training_run_import

        out = folder.parent / "survey"
        generate_survey(out=out, size=600, seed=5, outlier_fraction=0.9, lens_fraction=0.0)
        ingest_folder(folder=out)
        training_run_import(source=SHIPPED)
        embedding_update()

    return build_snapshot(tmp_path_factory, django_db_blocker, "catalog", build)


@pytest.fixture
def trained(data_dir, trained_snapshot):
    """The survey ingested and a checkpoint (a few steps of the small preset) in service."""
    from training.models import TrainingRun

    trained_snapshot.restore(data_dir)
    return TrainingRun.objects.get()


@pytest.fixture
def searchable(data_dir, searchable_snapshot):
    """``trained`` with a knowledge base in service for the lens and bpt3 tasks; returns {task name: KB}."""
    from kb.models import KnowledgeBase

    searchable_snapshot.restore(data_dir)
    return {kb.task.name: kb for kb in KnowledgeBase.objects.filter(in_service=True).select_related("task")}


def shipped_task(name: str):
    """The shipped SearchTask row (synced after migrate, and again here after a transactional test's flush)."""
    from kb.models import SearchTask
    from kb.services.shipped_tasks import shipped_tasks_sync

    shipped_tasks_sync()
    return SearchTask.objects.get(name=name)


def person(name: str, role: str | None = "astronomer"):
    """A user in one of the role groups (kb.roles), fetched afresh so that no permission is cached."""
    from django.contrib.auth.models import Group, User

    user = User.objects.create_user(name, password=f"{name}-password-1")
    if role:
        user.groups.add(Group.objects.get(name=role))
    return User.objects.get(pk=user.pk)


def api_client(user=None):
    """A DRF test client, with ``user``'s token when given."""
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


def form_as_rendered(page: str, form_id: str) -> dict:
    """The fields of the form ``form_id`` in ``page`` as a browser would submit it untouched: each
    input's value, each select's selected option (else its first), each textarea's text."""
    from html.parser import HTMLParser

    class Form(HTMLParser):
        def __init__(self):
            super().__init__()
            self.inside, self.fields, self.select, self.textarea = False, {}, None, None

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if tag == "form":
                self.inside = attrs.get("id") == form_id
            elif not self.inside:
                return
            elif tag == "input" and attrs.get("name") and attrs.get("type") not in ("checkbox", "radio", "file"):
                self.fields[attrs["name"]] = attrs.get("value") or ""
            elif tag == "select":
                self.select = attrs["name"]
            elif tag == "option" and self.select and (self.select not in self.fields or "selected" in attrs):
                self.fields[self.select] = attrs.get("value", "")
            elif tag == "textarea":
                self.textarea = attrs["name"]
                self.fields[self.textarea] = ""

        def handle_endtag(self, tag):
            if tag == "form":
                self.inside = False
            elif tag == "select":
                self.select = None
            elif tag == "textarea":
                self.textarea = None

        def handle_data(self, data):
            if self.textarea:
                self.fields[self.textarea] += data

    parser = Form()
    parser.feed(page)
    return parser.fields
