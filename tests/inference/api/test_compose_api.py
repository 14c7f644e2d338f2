"""A collaborator's script builds a knowledge base of its own composition: POST knowledge-bases/ answers
202 with the operation to follow; bad input gets a sentence and writes nothing."""

import re

import pytest

from inference.models import Operation
from inference.worker.operations import operation_run
from kb.models import AuditEvent, KnowledgeBase
from tests.conftest import api_client, person

pytestmark = pytest.mark.django_db


def test_post_a_composition_follow_it_then_search_with_the_candidate(searchable):
    vera = person("vera")
    client = api_client(vera)
    response = client.post(
        "/api/v1/knowledge-bases/", {"task": "lens", "target_fraction": 0.4, "seed": 2}, format="json"
    )
    assert response.status_code == 202
    body = response.json()
    assert response["Location"] == body["links"]["self"] and body["status"] == "queued" and body["task"] == "lens"
    assert body["params"] == {"target_fraction": 0.4, "size": None, "seed": 2, "index": "auto"}
    operation_run(operation=Operation.objects.get(pk=body["id"]))

    followed = client.get(body["links"]["self"]).json()
    assert followed["status"] == "done" and len(followed["candidates"]) == 1
    candidate = client.get(followed["links"]["candidates"][0]).json()
    assert candidate["target_fraction"] == 0.4 and not candidate["in_service"] and candidate["evaluation"]["f1"] >= 0
    assert candidate["index_kind"] == "flat"  # auto, at this size
    spectrum = searchable["lens"].entries.first().spectrum
    answer = client.post(
        "/api/v1/search/",
        {"task": "lens", "identifier": spectrum.specobjid, "knowledge_base": candidate["id"]},
        format="json",
    ).json()
    assert answer["kb_version"] == candidate["version"]
    assert api_client(person("annie")).get(body["links"]["self"]).status_code == 404


@pytest.mark.parametrize(
    "payload, message",
    [
        ({"task": "lens", "target_fraction": 0.9, "size": 500}, r"\d+ targets and \d+ others are eligible"),
        ({"task": "lens", "target_fraction": 0.2, "size": 10}, "too few for a vote"),
        ({"task": "lens", "target_fraction": 0}, "between 0 and 1"),
        ({"task": "bpt3", "target_fraction": 0.3}, "search tasks only"),
        ({"task": "lens", "index": "annoy"}, "index"),
        ({"task": "quasars"}, "task"),
        ({"target_fraction": 0.3}, "task"),
    ],
)
def test_a_bad_composition_gets_a_sentence_and_writes_nothing(searchable, payload, message):
    versions, events = KnowledgeBase.objects.count(), AuditEvent.objects.count()
    response = api_client(person("vera")).post("/api/v1/knowledge-bases/", payload, format="json")
    assert response.status_code == 400 and re.search(message, str(response.json()))
    assert KnowledgeBase.objects.count() == versions and AuditEvent.objects.count() == events
    assert not Operation.objects.exists()


def test_anonymous_scripts_read_but_do_not_build(searchable):
    assert api_client().get("/api/v1/knowledge-bases/").status_code == 200
    assert api_client().post("/api/v1/knowledge-bases/", {"task": "lens"}, format="json").status_code in (401, 403)
    roleless = api_client(person("nobody", role=None))
    assert roleless.post("/api/v1/knowledge-bases/", {"task": "lens"}, format="json").status_code == 403
    assert not Operation.objects.exists()
