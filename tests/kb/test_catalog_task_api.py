"""A collaborator's script makes a search task from its catalog: POST tasks/ (multipart) answers 201 with
the task and its match report; every bad catalog gets a sentence and writes nothing."""

import io
import re

import pytest
from astropy.table import Table

from kb.models import AuditEvent, CatalogLabel, SearchTask, TaskExample
from tests.conftest import api_client, person

pytestmark = pytest.mark.django_db


def _outliers():
    return [label.spectrum for label in CatalogLabel.objects.filter(catalog="baron2017").select_related("spectrum")]


def _votable(**columns) -> io.BytesIO:
    handle = io.BytesIO()
    Table(columns).write(handle, format="votable")
    handle.seek(0)
    handle.name = "mine.vot"
    return handle


def test_a_votable_by_position_makes_a_private_task(searchable):
    outliers = _outliers()
    vera = person("vera")
    catalog = _votable(ra=[s.ra for s in outliers], dec=[s.dec for s in outliers], label=["odd"] * len(outliers))
    response = api_client(vera).post(
        "/api/v1/tasks/", {"catalog": catalog, "name": "odd", "target_label": "odd"}, format="multipart"
    )
    assert response.status_code == 201
    body = response.json()
    assert body["owner"] == "vera" and body["published"] is False and body["catalog"]["matched"] == len(outliers)
    assert body["labelling"] == "catalog" and body["target_labels"] == ["odd"]
    assert [t["name"] for t in api_client(vera).get("/api/v1/tasks/").json()["results"]].count("odd") == 1
    annie = api_client(person("annie"))
    assert "odd" not in [t["name"] for t in annie.get("/api/v1/tasks/").json()["results"]]
    assert annie.get("/api/v1/tasks/odd/").status_code == 404
    search = {"task": "odd", "identifier": outliers[0].specobjid}
    assert annie.post("/api/v1/search/", search, format="json").status_code == 400


@pytest.mark.parametrize(
    "catalog, name, message",
    [
        ("objname,z\nNGC 1,0.02\n", "odd", "no column names a spectrum"),
        ("specobjid\n1\n2\n", "odd", "none of the 2 rows matched"),
        ("", "odd", "is empty"),
        ("few", "odd", "needs at least 3"),
        ("all", "lens", "is not available"),
        ("all", "Not A Slug", "must be a slug"),
    ],
)
def test_a_bad_catalog_gets_a_sentence_and_writes_nothing(searchable, catalog, name, message):
    ids = [s.specobjid for s in _outliers()]
    text = {"few": "specobjid\n" + "\n".join(ids[:2]), "all": "specobjid\n" + "\n".join(ids)}.get(catalog, catalog)
    handle = io.BytesIO(text.encode())
    handle.name = "mine.csv"
    tasks, events = SearchTask.objects.count(), AuditEvent.objects.count()
    response = api_client(person("vera")).post(
        "/api/v1/tasks/", {"catalog": handle, "name": name, "target_label": "odd"}, format="multipart"
    )
    assert response.status_code == 400 and re.search(message, str(response.json()))
    assert SearchTask.objects.count() == tasks and AuditEvent.objects.count() == events
    assert not TaskExample.objects.exists()


def test_a_task_from_an_ingested_catalog_and_neither_or_both_sources_refused(searchable):
    client = api_client(person("vera"))
    both = io.BytesIO(b"specobjid\n1\n")
    both.name = "mine.csv"
    asked = {"name": "lenses", "target_label": "lens"}
    for payload in ({}, {"catalog": both, "ingested_catalog": "talbot2021"}):
        response = client.post("/api/v1/tasks/", {**asked, **payload}, format="multipart")
        assert response.status_code == 400 and "either your catalog's file or a catalog already ingested" in str(
            response.json()
        )
    response = client.post("/api/v1/tasks/", {**asked, "ingested_catalog": "talbot2021"}, format="multipart")
    lenses = CatalogLabel.objects.filter(catalog="talbot2021", label="lens").count()
    assert response.status_code == 201 and response.json()["catalog"]["matched"] == lenses
