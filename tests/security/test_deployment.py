"""Deployment security: check --deploy, DEBUG off, secrets from the environment, CSRF, authentication on writes."""

import os
import subprocess
import sys
import time

import pytest
import yaml
from django.test import Client

from tests.conftest import REPO, api_client, person

pytestmark = pytest.mark.django_db

PRODUCTION = {
    "GALSPEC_HTTPS": "true",
    "GALSPEC_SECRET_KEY": "k3y-" + "x9Qz!vB7#pL2@" * 5,
    "GALSPEC_DEBUG": "false",
    "DJANGO_SETTINGS_MODULE": "galspec_site.settings",
}


def _manage(*args, **environment) -> subprocess.CompletedProcess:
    env = {
        key: value for key, value in os.environ.items() if not key.startswith("GALSPEC_") or key == "GALSPEC_DATA_DIR"
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env={**env, **environment},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_production_settings():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0 and "no issues" in result.stdout, result.stdout + result.stderr
    insecure = _manage("check", "--deploy", "--fail-level", "WARNING", DJANGO_SETTINGS_MODULE="galspec_site.settings")
    assert insecure.returncode != 0 and "security.W012" in insecure.stderr  # what GALSPEC_HTTPS turns on


def test_debug_is_off_and_the_secret_comes_from_the_environment():
    shown = _manage(
        "shell", "-c", "from django.conf import settings; print(settings.DEBUG, settings.SECRET_KEY)", **PRODUCTION
    )
    assert shown.stdout.splitlines()[-1].split() == ["False", PRODUCTION["GALSPEC_SECRET_KEY"]], shown.stderr


def test_forms_need_their_csrf_token(searchable):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(person("vera", "astronomer"))
    entry = searchable["lens"].entries.first()
    assert (
        browser.post(f"/flag/lens/{entry.spectrum_id}/", {"proposed_label": "lens", "reason": "x"}).status_code == 403
    )
    assert browser.post("/batch/", {"task": "lens", "identifiers": "1"}).status_code == 403
    assert (
        browser.post(
            "/api/v1/jobs/", {"task": "lens", "identifiers": ["1"]}, content_type="application/json"
        ).status_code
        == 403
    )


def test_every_api_write_needs_authentication_but_a_search(client):
    schema = yaml.safe_load(client.get("/api/v1/schema/").content)
    open_writes = {"/api/v1/search/", "/api/v1/auth/token/"}
    writes = [path for path, operations in schema["paths"].items() if "post" in operations]
    assert len(writes) >= 7
    anonymous = api_client()
    for path in writes:
        concrete = path.replace("{public_id}", "00000000-0000-0000-0000-000000000000").replace("{id}", "1")
        status = anonymous.post(concrete, {}, format="json").status_code
        if path in open_writes:
            assert status == 400, path  # open, and the empty body is refused
        else:
            assert status == 401, path


def _server(command: list[str], tmp_path, **environment) -> subprocess.CompletedProcess:
    """A production server started as a deployer would, with this environment and an empty data folder."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("GALSPEC_")}
    env.update({"DJANGO_SETTINGS_MODULE": "galspec_site.settings", "GALSPEC_DATA_DIR": str(tmp_path), **environment})
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


GUNICORN = [sys.executable, "-m", "gunicorn", "galspec_site.wsgi:application", "--bind", "127.0.0.1:0"]
WORKER = [sys.executable, "-m", "celery", "-A", "galspec_site", "worker", "--pool=solo", "-Q", "none-such"]


@pytest.mark.parametrize("command", [GUNICORN, WORKER], ids=["gunicorn", "celery worker"])
def test_a_server_refuses_the_built_in_secret_key_and_says_what_to_set(command, tmp_path):
    refused = _server(command, tmp_path)
    assert refused.returncode != 0
    assert "built-in SECRET_KEY, which is public. Set GALSPEC_SECRET_KEY" in refused.stderr + refused.stdout


def test_gunicorn_starts_with_a_key_of_its_own(tmp_path):
    started = _server([*GUNICORN, "--check-config", "--print-config"], tmp_path, **PRODUCTION)
    assert started.returncode == 0, started.stderr


def _key_read(data_dir, **environment) -> str:
    """The SECRET_KEY the production settings read for a deployment whose data folder is ``data_dir``."""
    shown = _manage(
        "shell",
        "-c",
        "from django.conf import settings; print(settings.SECRET_KEY)",
        DJANGO_SETTINGS_MODULE="galspec_site.settings",
        GALSPEC_DATA_DIR=str(data_dir),
        **environment,
    )
    assert shown.returncode == 0, shown.stderr
    return shown.stdout.split()[-1]


def test_the_demo_makes_its_own_key_readable_by_its_user_alone(data_dir, settings):
    from inference.management.commands.demo import Command

    settings.SECRET_KEY_FILE = data_dir / "secret_key"
    settings.SECRET_KEY = settings.INSECURE_SECRET_KEY
    Command()._secret_key()
    key = settings.SECRET_KEY_FILE.read_text().strip()
    assert settings.SECRET_KEY == key != settings.INSECURE_SECRET_KEY and len(key) >= 50
    assert settings.SECRET_KEY_FILE.stat().st_mode & 0o777 == 0o600
    assert _key_read(data_dir) == key  # what its worker, and every later run, reads


def test_the_demos_worker_is_killed_if_it_ignores_a_warm_shutdown():
    from inference.management.commands.demo import worker_stop

    stubborn = subprocess.Popen(
        [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"]
    )
    time.sleep(0.5)
    worker_stop(stubborn, grace_s=1)
    assert stubborn.returncode == -9


def test_a_key_too_short_to_be_secret_is_refused_too(tmp_path):
    refused = _server(GUNICORN, tmp_path, GALSPEC_SECRET_KEY="  hunter2  ")
    assert refused.returncode != 0 and "too short to be secret" in refused.stderr


def test_an_old_env_files_public_key_counts_as_unset(data_dir):
    """Older .env.example files set the public key itself: the demo's own key, where there is one, wins."""
    (data_dir / "secret_key").write_text("k" * 20 + "demo-made-key-0123456789-abcdefghijklmnop\n")
    read = _key_read(data_dir, GALSPEC_SECRET_KEY="galspec-insecure-development-key-change-me")
    assert read == "k" * 20 + "demo-made-key-0123456789-abcdefghijklmnop"
