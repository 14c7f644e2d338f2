"""What the benchmarks share: a throw-away site to run in, and one way to hand back their JSON."""

import json
import os
import tempfile
from pathlib import Path


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


def report(result: dict, out: Path | None) -> None:
    """Print the result as JSON and, with ``out``, write it there too."""
    text = json.dumps(result, indent=2)
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
