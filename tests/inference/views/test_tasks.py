"""A task's page: its versions, the share sweep a person picks a share by, and the form that builds a
knowledge base of that share, followed on its operation's page by whoever asked and by admins."""

import json
import re

import pytest

from inference.models import Operation
from inference.worker.operations import operation_run
from tests.conftest import form_as_rendered, person

pytestmark = pytest.mark.django_db


def _json(page: str, element_id: str):
    match = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', page, re.S)
    return json.loads(match.group(1))


def test_the_share_sweep_is_drawn_and_tabled(client, searchable):
    page = client.get("/tasks/lens/").content.decode()
    figure = _json(page, "share-data")
    assert [trace["name"] for trace in figure["data"]] == ["precision", "recall", "F1"]
    table = page[page.index('id="share-sweep"') :]
    assert "natural" in table and "0.3" in table
    assert 'id="compose-form"' not in page and "Log in</a> as an astronomer" in page
    assert 'id="share-plot"' not in client.get("/tasks/bpt3/").content.decode()  # a classification: no targets


def test_the_form_as_the_page_sets_it_builds_the_share_in_service(client, searchable):
    vera = person("vera")
    client.force_login(vera)
    page = client.get("/tasks/lens/").content.decode()
    fields = form_as_rendered(page, "compose-form")
    assert fields["target_fraction"] == "" and fields["seed"] == "0" and fields["index"] == "flat"
    response = client.post("/tasks/lens/", fields)
    operation = Operation.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/operations/{operation.pk}/"
    assert operation.params == {"target_fraction": None, "size": None, "seed": 0, "index": "flat"}
    (candidate,) = operation_run(operation=operation).candidates.all()
    assert candidate.composition == searchable["lens"].composition  # the same natural composition, rebuilt

    page = client.get(f"/operations/{operation.pk}/").content.decode()
    assert f"knowledge_base={candidate.pk}" in page and 'id="promote"' not in page  # search with it; admins promote
    assert "An admin decides" in page
    assert client.post(f"/operations/{operation.pk}/promote/").status_code == 403  # theirs, but admins decide
    candidate.refresh_from_db()
    assert not candidate.in_service
    assert f"/operations/{operation.pk}/" in client.get("/tasks/lens/").content.decode()  # listed under the form


def test_a_share_changed_on_the_page_and_one_that_cannot_be_filled(client, searchable):
    client.force_login(person("vera"))
    fields = form_as_rendered(client.get("/tasks/lens/").content.decode(), "compose-form")
    response = client.post("/tasks/lens/", {**fields, "target_fraction": "0.95", "size": "400"})
    assert response.status_code == 400 and not Operation.objects.exists()
    assert re.search(r"\d+ targets and \d+ others are eligible", response.content.decode())
    response = client.post("/tasks/lens/", {**fields, "target_fraction": "0.4"})
    assert response.status_code == 302 and Operation.objects.get().params["target_fraction"] == 0.4


def test_only_whoever_asked_and_admins_follow_a_composition(client, searchable):
    client.force_login(person("vera"))
    client.post("/tasks/lens/", {"target_fraction": "0.3", "seed": "0", "index": "flat"})
    operation = Operation.objects.get()
    assert client.get(f"/operations/{operation.pk}/progress/").status_code == 200
    client.force_login(person("annie"))
    assert client.get(f"/operations/{operation.pk}/").status_code == 404
    assert f"/operations/{operation.pk}/" not in client.get("/tasks/lens/").content.decode()
    client.force_login(person("grace", "admin"))
    assert client.get(f"/operations/{operation.pk}/").status_code == 200
    client.logout()
    response = client.post("/tasks/lens/", {"target_fraction": "0.3", "seed": "0", "index": "flat"})
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert Operation.objects.count() == 1
