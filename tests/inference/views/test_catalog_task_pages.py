"""An astronomer's own task on the site: uploaded on /tasks/, its match report on its page, private until
a curator publishes it; a bad catalog gets a sentence and writes nothing."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from inference.models import SurveySearch
from kb.models import AuditEvent, CatalogLabel, SearchTask
from tests.conftest import form_as_rendered, person

pytestmark = pytest.mark.django_db


def _upload(client, rows: list[str], name: str = "odd-ones", header: str = "specobjid"):
    fields = form_as_rendered(client.get("/tasks/").content.decode(), "catalog-form")
    catalog = SimpleUploadedFile("mine.csv", "\n".join([header, *rows]).encode(), content_type="text/csv")
    return client.post("/tasks/", {**fields, "name": name, "target_label": "odd", "catalog": catalog})


def test_upload_see_the_match_report_and_a_curator_publishes(client, searchable):
    outliers = [label.spectrum for label in CatalogLabel.objects.filter(catalog="baron2017")]
    client.force_login(person("vera"))
    response = _upload(client, [s.specobjid for s in outliers] + ["999999999999"])
    assert response.status_code == 302 and response["Location"] == "/tasks/odd-ones/"
    page = client.get("/tasks/odd-ones/").content.decode()
    assert f"{len(outliers) + 1} rows, {len(outliers)} matched" in page and "999999999999" in page
    assert "<strong>Private</strong>" in page and 'id="compose-form"' in page
    assert 'name="target_fraction" value="0.1"' in page  # a catalog's natural share is its few examples
    assert "odd-ones" in client.get("/tasks/").content.decode()

    client.force_login(person("annie"))
    assert client.get("/tasks/odd-ones/").status_code == 404
    assert "odd-ones" not in client.get("/tasks/").content.decode()
    assert 'value="odd-ones"' not in client.get("/").content.decode()  # not on the search page either
    assert client.post("/tasks/odd-ones/publish/").status_code == 404

    client.force_login(person("cecilia", "curator"))
    client.post("/tasks/odd-ones/publish/", {"reason": "a population worth sharing"})
    assert SearchTask.objects.get(name="odd-ones").published
    assert AuditEvent.objects.get(action="task_published").reason == "a population worth sharing"
    client.force_login(person("annie2"))
    assert client.get("/tasks/odd-ones/").status_code == 200 and 'value="odd-ones"' in client.get("/").content.decode()


def test_a_catalog_without_an_identifier_column_is_explained_and_nothing_written(client, searchable):
    client.force_login(person("vera"))
    response = _upload(client, ["NGC 1,0.02"], header="objname,z")
    assert response.status_code == 400 and "no column names a spectrum" in response.content.decode()
    assert not SearchTask.objects.filter(name="odd-ones").exists()
    response = _upload(client, ["1", "2"], name="lens")
    assert response.status_code == 400
    assert "the task name &#x27;lens&#x27; is not available" in response.content.decode()


def test_a_private_task_leaks_nowhere_else(client, searchable):
    from inference.services.knowledge_bases import knowledge_base_build
    from kb.services.catalog_tasks import catalog_task_create

    outliers = [label.spectrum for label in CatalogLabel.objects.filter(catalog="baron2017")]
    task = catalog_task_create(
        user=person("vera"),
        name="secret-hunt",
        target_label="odd",
        data=("specobjid\n" + "\n".join(s.specobjid for s in outliers)).encode(),
    )
    kb = knowledge_base_build(task=task, target_fraction=0.3)
    example = kb.entries.filter(label="odd").first().spectrum
    client.force_login(person("annie"))
    assert "No entries match." in client.get("/kb/", {"task": "secret-hunt"}).content.decode()
    assert "No entries match." in client.get("/kb/", {"knowledge_base": kb.pk}).content.decode()
    assert '<option value="odd">' not in client.get("/kb/").content.decode()  # not even its label
    assert "secret-hunt" not in client.get(f"/spectra/{example.pk}/").content.decode()
    assert client.get(f"/flag/secret-hunt/{example.pk}/").status_code == 404
    assert "secret-hunt" not in client.get("/api/v1/curation/agreement/").content.decode()
    by_version = {"task": "bpt3", "identifier": example.specobjid, "knowledge_base": kb.pk, "k": 3}
    page = client.get("/search/result/", {**by_version, "weight_function": "exp"})
    assert page.status_code == 400 and "secret-hunt" not in page.content.decode()
    assert "Select a valid choice" in page.content.decode()
    answer = client.post("/api/v1/search/", by_version, content_type="application/json")
    assert answer.status_code == 400 and "secret-hunt" not in answer.content.decode()
    survey = SurveySearch.objects.create(task=task, knowledge_base=kb, requested_by=task.owner)
    assert client.get(f"/surveys/{survey.pk}/progress/").status_code == 404
    client.force_login(task.owner)
    assert client.get(f"/surveys/{survey.pk}/progress/").status_code == 200
    assert "secret-hunt" in client.get(f"/spectra/{example.pk}/").content.decode()
