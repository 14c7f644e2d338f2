"""Searches under load while knowledge bases are rebuilt and promoted: none fails, and each is answered
wholly from one knowledge-base version (its neighbours and their labels are that version's entries)."""

import threading

import pytest
from django.db import connection

from inference.services.knowledge_bases import knowledge_base_build
from kb.models import KBEntry, Spectrum
from tests.conftest import api_client, shipped_task

pytestmark = pytest.mark.django_db(transaction=True)


def test_searches_during_rebuilds_and_promotions(searchable):
    probes = [s.specobjid for s in Spectrum.objects.filter(held_out=True)[:6]]
    stop, answers, failures = threading.Event(), [], []

    def client(offset: int) -> None:
        api = api_client()
        i = offset
        try:
            while not stop.is_set():
                response = api.post("/api/v1/search/", {"task": "lens", "identifier": probes[i % len(probes)]})
                (answers if response.status_code == 200 else failures).append(response.json())
                i += 1
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    try:
        seed = 0
        while seed < 3 or (len(answers) < 60 and seed < 30):  # new versions, each promoted while the clients search
            seed += 1
            knowledge_base_build(task=shipped_task("lens"), seed=seed, size=40)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not failures and len(answers) > 20
    versions = {answer["knowledge_base"] for answer in answers}
    assert len(versions) >= 2  # the searches saw promotions happen
    entries = {
        (kb, spectrum): label
        for kb, spectrum, label in KBEntry.objects.filter(knowledge_base__in=versions).values_list(
            "knowledge_base", "spectrum", "label"
        )
    }
    for answer in answers:
        for neighbour in answer["neighbours"]:
            assert entries[(answer["knowledge_base"], neighbour["spectrum_id"])] == neighbour["label"]
