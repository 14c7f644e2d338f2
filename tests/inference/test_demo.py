"""`manage.py demo` runs the whole pipeline, knowledge bases included, and a second run keeps what is done."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.management import call_command

from kb.models import KnowledgeBase
from training.checkpoint import SHIPPED
from training.models import TrainingRun

pytestmark = pytest.mark.django_db


def test_the_demo_pipeline_ends_with_a_knowledge_base_in_service_for_every_task(data_dir, shared_data, settings):
    settings.SHARED_DATA_DIR = shared_data
    call_command("demo", size=60, no_serve=True)
    run = TrainingRun.objects.get(in_service=True)  # the shipped checkpoint, not one trained here
    assert run.metrics == json.loads((SHIPPED / "metrics.json").read_text()) and run.metrics["n_train"] > 60
    in_service = KnowledgeBase.objects.filter(in_service=True, status="ready")
    shipped = ["bpt3", "bpt5", "eplusa", "lens", "liner", "outlier"]  # E+A added through the registries alone
    assert sorted(in_service.values_list("task__name", flat=True)) == shipped
    call_command("demo", size=60, no_serve=True)  # again: nothing rebuilt
    assert TrainingRun.objects.count() == 1 and KnowledgeBase.objects.count() == len(shipped)


@pytest.mark.django_db(transaction=True)
def test_sigterm_stops_the_demo_and_its_worker(data_dir, shared_data, settings):
    """A service manager's SIGTERM ends the demo as Ctrl-C does: its site, and the Celery worker it started."""
    from django.db import connection

    from kb.labellings import TASKS
    from tests.conftest import REPO, _database_url, shipped_task

    for name in TASKS:  # rows a migration made, gone after an earlier test's flush
        shipped_task(name)
    settings.SHARED_DATA_DIR = shared_data
    call_command("demo", size=60, no_serve=True)  # the pipeline done: the next run goes straight to the site
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {key: value for key, value in os.environ.items() if not key.startswith("GALSPEC_")}
    env.update(
        DJANGO_SETTINGS_MODULE="galspec_site.settings",
        DATABASE_URL=_database_url(connection.settings_dict),
        GALSPEC_DATA_DIR=str(data_dir),
        GALSPEC_BROKER_DIR=str(settings.BROKER_DIR),
        GALSPEC_SHARED_DATA=str(shared_data),
    )
    demo = subprocess.Popen(
        [sys.executable, "manage.py", "demo", "--size", "60", "--addrport", f"127.0.0.1:{port}"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output = ""
        while "GalSpec at" not in output:
            line = demo.stdout.readline()
            assert line, output  # the demo ended before serving
            output += line
        deadline = time.monotonic() + 60
        while not (children := open(f"/proc/{demo.pid}/task/{demo.pid}/children").read().split()):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        (worker,) = (int(pid) for pid in children)
        demo.send_signal(signal.SIGTERM)
        assert demo.wait(timeout=60) != 0
        deadline = time.monotonic() + 10
        while Path(f"/proc/{worker}").exists() and "zombie" not in Path(f"/proc/{worker}/status").read_text():
            assert time.monotonic() < deadline, f"the demo's worker {worker} outlived it"
            time.sleep(0.2)
    finally:
        if demo.poll() is None:
            demo.kill()
