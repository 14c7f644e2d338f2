"""What the benchmarks share: a throw-away site to run in, and one way to hand back their JSON."""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent


def throwaway_site() -> Path:
    """A fresh data folder (and with it a fresh SQLite database, unless DATABASE_URL names another),
    migrated and with Django set up; returns the folder, for the caller to delete."""
    work = Path(tempfile.mkdtemp(prefix="galspec-bench-"))
    os.environ["GALSPEC_DATA_DIR"] = str(work / "var")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "galspec_site.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return work


def checkpoint_in_service():
    """Django set up on the deployment ``GALSPEC_DATA_DIR`` names, and its training run in service; exits with
    a sentence to act on if there is none."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "galspec_site.settings")
    import django

    django.setup()
    from training.selectors import training_run_in_service

    run = training_run_in_service()
    if run is None:
        raise SystemExit("no checkpoint is in service: run manage.py demo or pretrain first")
    return run


def gunicorn(data_dir: Path, port: int, workers: int, threads: int, **environment) -> subprocess.Popen:
    """gunicorn serving the deployment in ``data_dir`` on loopback, once it answers; ``environment`` adds
    settings (GALSPEC_THROTTLE_*, ...)."""
    env = {
        **os.environ,
        "GALSPEC_DATA_DIR": str(data_dir.resolve()),
        "DJANGO_SETTINGS_MODULE": "galspec_site.settings",
        "GALSPEC_TORCH_THREADS": "1",
        **environment,
    }
    command = [sys.executable, "-m", "gunicorn", "galspec_site.wsgi", "--bind", f"127.0.0.1:{port}"]
    server = subprocess.Popen(
        [*command, "--workers", str(workers), "--threads", str(threads), "--log-level", "warning"], cwd=REPO, env=env
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/api/v1/tasks/", timeout=2).raise_for_status()
            return server
        except requests.RequestException:
            time.sleep(0.3)
    server.kill()
    raise SystemExit("gunicorn did not answer within 60 s")


def report(result: dict, out: Path | None) -> None:
    """Print the result as JSON and, with ``out``, write it there too."""
    text = json.dumps(result, indent=2)
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
