"""The read API: spectra, tasks, knowledge bases and their entries, the schema and its documentation page."""

import pytest
import yaml
from rest_framework.test import APIClient

from kb.models import KBEntry, Spectrum
from kb.selectors import spectrum_flux

pytestmark = pytest.mark.django_db


@pytest.fixture
def client() -> APIClient:
    return APIClient()


def test_spectra_are_listed_paginated_and_filtered(client, searchable):
    everything = client.get("/api/v1/spectra/?page_size=10").json()
    assert everything["count"] == Spectrum.objects.count() == 80 and len(everything["results"]) == 10
    assert everything["next"].endswith("page=2&page_size=10")

    lenses = client.get("/api/v1/spectra/?label=lens&page_size=1000").json()
    expected = Spectrum.objects.filter(catalog_labels__label="lens").distinct()
    assert {s["specobjid"] for s in lenses["results"]} == {s.specobjid for s in expected} != set()
    assert all("lens" in [label["label"] for label in s["labels"]] for s in lenses["results"])

    nearby = client.get("/api/v1/spectra/?z_min=0.05&z_max=0.1&page_size=1000").json()["results"]
    assert {s["specobjid"] for s in nearby} == set(
        Spectrum.objects.filter(z__gte=0.05, z__lte=0.1).values_list("specobjid", flat=True)
    )


def test_a_bad_filter_gets_a_400_naming_the_field(client, searchable):
    response = client.get("/api/v1/spectra/?z_min=nearby")
    assert response.status_code == 400
    assert "z_min" in response.json()["error"]["fields"]


def test_a_spectrum_with_its_lines_bpt_ratios_and_flux(client, searchable):
    spectrum = Spectrum.objects.exclude(lines={}).first()
    body = client.get(f"/api/v1/spectra/{spectrum.pk}/").json()
    assert body["specobjid"] == spectrum.specobjid and body["plate_mjd_fiber"] == spectrum.plate_mjd_fiber
    assert body["lines"] == spectrum.lines and set(body["bpt"]) <= {"n2", "o3", "s2", "o1"}
    flux = client.get(f"/api/v1/spectra/{spectrum.pk}/flux/").json()
    assert len(flux["wave"]) == len(flux["flux"]) == 3688
    assert flux["wave"][0] == pytest.approx(3850.0) and flux["wave"][-1] == pytest.approx(9000.0)
    _, stored, valid = spectrum_flux(spectrum=spectrum)
    assert [v is None for v in flux["flux"]] == (~valid).tolist()
    assert [v for v in flux["flux"] if v is not None] == pytest.approx(stored[valid].tolist())
    assert client.get("/api/v1/spectra/999999/").json()["error"]["code"] == "not_found"


def test_tasks_and_their_knowledge_bases(client, searchable):
    tasks = {t["name"]: t for t in client.get("/api/v1/tasks/").json()["results"]}
    assert (
        tasks["lens"]["target_labels"] == ["lens"]
        and tasks["lens"]["knowledge_base_in_service"] == searchable["lens"].pk
    )
    assert tasks["bpt5"]["knowledge_base_in_service"] is None
    assert client.get("/api/v1/tasks/lens/").json()["title"] == tasks["lens"]["title"]

    kbs = client.get("/api/v1/knowledge-bases/?task=lens").json()["results"]
    assert [kb["id"] for kb in kbs] == [searchable["lens"].pk]
    kb = client.get(f"/api/v1/knowledge-bases/{searchable['lens'].pk}/").json()
    assert kb["in_service"] and kb["size"] == searchable["lens"].size
    assert kb["checkpoint"] == searchable["lens"].training_run.checkpoint_name
    assert kb["composition"] == searchable["lens"].composition


def test_knowledge_base_entries_filtered_by_label(client, searchable):
    kb = searchable["lens"]
    lenses = client.get(f"/api/v1/knowledge-bases/{kb.pk}/entries/?label=lens&page_size=1000").json()
    assert lenses["count"] == KBEntry.objects.filter(knowledge_base=kb, label="lens").count() > 0
    assert all(e["label"] == "lens" and e["catalogs"] for e in lenses["results"])


def test_writes_to_read_only_endpoints_are_refused(client, searchable):
    response = client.post("/api/v1/spectra/", {"specobjid": "1"})
    assert response.status_code in (401, 403, 405) and "error" in response.json()


def test_the_schema_describes_every_endpoint_and_its_docs_work_offline(client):
    schema = yaml.safe_load(client.get("/api/v1/schema/").content)
    paths = set(schema["paths"])
    assert {
        "/api/v1/search/",
        "/api/v1/jobs/",
        "/api/v1/jobs/{public_id}/results/",
        "/api/v1/spectra/{id}/flux/",
        "/api/v1/knowledge-bases/{id}/entries/",
        "/api/v1/tasks/",
    } <= paths
    assert "tokenAuth" in schema["components"]["securitySchemes"]
    docs = client.get("/api/v1/docs/").content.decode()
    assert "swagger-ui" in docs and "cdn" not in docs.lower() and "/static/drf_spectacular_sidecar/" in docs
