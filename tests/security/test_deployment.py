"""Deployment security: check --deploy, DEBUG off, secrets from the environment, CSRF, authentication on writes."""

import os
import subprocess
import sys

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
