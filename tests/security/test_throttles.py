"""Throttles an attacker would try to slip: a spoofed X-Forwarded-For, passwords guessed on every login path,
and the pages that make the server work for anonymous users."""

import secrets

import pytest
from django.test import Client
from rest_framework.test import APIClient
from rest_framework.throttling import SimpleRateThrottle

from tests.conftest import person

pytestmark = pytest.mark.django_db


@pytest.fixture
def rates(monkeypatch):
    """Low limits for this test (the test settings lift them); returns a fresh client address each call."""
    for scope, rate in {"anon": "2/minute", "user": "100/minute", "login": "3/minute", "poll": "4/minute"}.items():
        monkeypatch.setitem(SimpleRateThrottle.THROTTLE_RATES, scope, rate)
    return lambda: f"2001:db8::{secrets.token_hex(2)}:{secrets.token_hex(2)}"


def _spoofed(n: int) -> dict:
    return {"HTTP_X_FORWARDED_FOR": f"198.51.100.{n}"}


@pytest.mark.parametrize("path", ["/api/v1/tasks/", "/tasks/", "/spectra/"])
def test_a_spoofed_forwarded_for_does_not_lift_the_anonymous_limit(searchable, rates, path):
    client = (APIClient if path.startswith("/api/") else Client)(REMOTE_ADDR=rates())
    statuses = [client.get(path, **_spoofed(n)).status_code for n in range(6)]
    assert statuses == [200, 200, 429, 429, 429, 429]


def test_behind_a_named_proxy_its_clients_are_told_apart(searchable, rates, settings):
    """With GALSPEC_NUM_PROXIES=1 (one nginx in front), the address it appended is the client's."""
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    proxy = APIClient(REMOTE_ADDR=rates())
    assert [proxy.get("/api/v1/tasks/", **_spoofed(n)).status_code for n in (1, 2, 3)] == [200] * 3
    assert proxy.get("/api/v1/tasks/", **_spoofed(1)).status_code == 200
    assert proxy.get("/api/v1/tasks/", **_spoofed(1)).status_code == 429


def test_guessing_passwords_for_a_token_is_stopped_and_the_right_one_waits_too(rates):
    person("vera")
    client = APIClient(REMOTE_ADDR=rates())
    guesses = [client.post("/api/v1/auth/token/", {"username": "vera", "password": f"guess-{n}"}) for n in range(5)]
    assert [r.status_code for r in guesses] == [400, 400, 400, 429, 429]
    assert guesses[-1].json()["error"]["code"] == "throttled"
    right = client.post("/api/v1/auth/token/", {"username": "vera", "password": "vera-password-1"})
    assert right.status_code == 429 and "token" not in right.json()


@pytest.mark.parametrize("login", ["/accounts/login/", "/admin/login/"])
def test_guessing_passwords_on_a_login_page_is_stopped(rates, login):
    person("vera")
    client = Client(REMOTE_ADDR=rates())
    tries = [client.post(login, {"username": "vera", "password": f"guess-{n}"}, **_spoofed(n)) for n in range(5)]
    assert [r.status_code for r in tries] == [200, 200, 200, 429, 429]  # 200: the form again, with its error
    assert int(tries[-1]["Retry-After"]) > 0
    assert client.post(login, {"username": "vera", "password": "vera-password-1"}).status_code == 429
    assert "_auth_user_id" not in client.session


def test_an_anonymous_search_page_is_throttled(searchable, rates):
    client = Client(REMOTE_ADDR=rates())
    spectrum = searchable["lens"].entries.first().spectrum
    url = f"/search/result/?task=lens&identifier={spectrum.specobjid}&k=3&weight_function=exp"
    assert [client.get(url).status_code for _ in range(4)] == [200, 200, 429, 429]


def test_progress_polls_have_their_own_allowance(searchable, rates):
    """A progress bar polls about once a second: its page's allowance is not spent by it, nor it by pages."""
    client = Client(REMOTE_ADDR=rates())
    polls = [client.get("/surveys/987654/progress/").status_code for _ in range(5)]
    assert polls == [404, 404, 404, 404, 429]
    assert client.get("/tasks/").status_code == 200
