"""A search task from an astronomer's own catalog: matched to the ingested spectra, private until a curator
publishes it, its knowledge base scored by cross-validation on the examples; bad input writes nothing."""

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.test.utils import CaptureQueriesContext

from inference.services.knowledge_bases import knowledge_base_build
from kb import examples, selectors
from kb.models import AuditEvent, CatalogLabel, SearchTask, Spectrum, TaskExample
from kb.selectors import search_tasks_visible, task_label_choices, task_labelled
from kb.services.catalog_tasks import catalog_task_create, search_task_publish
from tests.conftest import person

pytestmark = pytest.mark.django_db


def _outliers() -> list:
    return [label.spectrum for label in CatalogLabel.objects.filter(catalog="baron2017").select_related("spectrum")]


def _csv(rows: list[str], header: str = "specobjid,label") -> bytes:
    return "\n".join([header, *rows]).encode()


def test_a_catalog_makes_a_private_task_that_reports_what_matched(searchable):
    vera = person("vera")
    outliers = _outliers()
    rows = [f"{s.specobjid},odd" for s in outliers] + ["1234567890123,odd"]
    rows.append(f"{outliers[0].plate}-{outliers[0].mjd}-{outliers[0].fiberid},odd")  # named twice
    task = catalog_task_create(user=vera, name="odd-ones", target_label="odd", data=_csv(rows), filename="odd.csv")
    assert task.owner == vera and not task.published and task.labelling == "catalog" and task.target_labels == ["odd"]
    assert TaskExample.objects.filter(task=task).count() == len(outliers) == task.catalog["spectra"]
    assert task.catalog["rows"] == len(rows) and task.catalog["matched"] == len(outliers) + 1
    (unmatched,) = task.catalog["unmatched"]
    assert unmatched == {
        "row": len(outliers) + 1,
        "named": "1234567890123",
        "why": "no ingested spectrum has the specobjid 1234567890123",
    }
    assert AuditEvent.objects.get(action="task_created").after["sha256"] == task.catalog["sha256"]

    labelled = task_labelled(task=task)
    assert {pk for pk, item in labelled.items() if item.label == "odd"} == {s.pk for s in outliers}
    assert len(labelled) == Spectrum.objects.count()  # every other spectrum is an unlabelled "other"
    assert task_label_choices(task=task) == ("odd", "other")


def test_a_catalog_by_position_without_labels_makes_every_row_a_target(searchable):
    outliers = _outliers()
    rows = [f"{s.ra + 0.5 / 3600},{s.dec}" for s in outliers]  # half an arcsec off
    task = catalog_task_create(user=person("vera"), name="by-sky", target_label="odd", data=_csv(rows, "ra,dec"))
    examples = TaskExample.objects.filter(task=task)
    assert {e.label for e in examples} == {"odd"} and {e.matched_by for e in examples} == {"position"}
    assert all(0.4 < e.separation_arcsec < 0.6 for e in examples)


@pytest.mark.parametrize(
    "name, data, message",
    [
        ("lens", None, "the task name 'lens' is not available"),
        ("Odd Ones", None, "must be a slug"),
        ("odd", b"objname,z\nNGC 1,0.1\n", "no column names a spectrum: give specobjid"),
        ("odd", b"specobjid\n1\n2\n3\n", "none of the 3 rows matched an ingested spectrum"),
        ("odd", b"", "is empty"),
        ("odd", "few", "a vote of 3 neighbours needs at least 3"),
        ("odd", "unlabelled", "no matched row has the label 'odd'"),
    ],
)
def test_a_catalog_that_cannot_make_a_task_is_refused_and_nothing_written(searchable, name, data, message):
    outliers = _outliers()
    if data is None:
        data = _csv([f"{s.specobjid},odd" for s in outliers])
    elif data == "few":
        data = _csv([f"{s.specobjid},odd" for s in outliers[:2]])
    elif data == "unlabelled":
        data = _csv([f"{s.specobjid},weird" for s in outliers])
    tasks, events = SearchTask.objects.count(), AuditEvent.objects.count()
    with pytest.raises(ValueError, match=message):
        catalog_task_create(user=person("vera"), name=name, target_label="odd", data=data, filename="mine.csv")
    assert SearchTask.objects.count() == tasks and AuditEvent.objects.count() == events
    assert not TaskExample.objects.exists()


def _conflicting(outliers):
    first = outliers[0]
    return _csv([f"{s.specobjid},odd" for s in outliers] + [f"{first.plate}-{first.mjd}-{first.fiberid},other"])


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda o: {"data": _csv(["10.0,95.0"], "ra,dec")}, r"row 1: Dec 95 is not between -90 and 90 degrees"),
        (_conflicting, r"rows 1 and \d+ name the same spectrum .* different labels, 'odd' and 'other'"),
        (lambda o: _csv([f"{s.specobjid},exclude" for s in o]), "the label 'exclude' cannot be used"),
        (lambda o: _csv([f"{s.specobjid},{'x' * 65}" for s in o]), "row 1: the label 'xxx.* most 64 characters"),
        (lambda o: {"data": _csv([f"{s.specobjid}" for s in o], "specobjid"), "title": "t" * 101}, "at most 100"),
        (lambda o: {"data": _csv([f"{s.specobjid}" for s in o]), "ingested": ("baron2017", "odd")}, "not both"),
        (lambda o: {"data": None}, "give either your catalog's file or a catalog already ingested"),
        (lambda o: {"data": _csv([f"{s.plate}-{s.mjd}" for s in o], "plate_mjd_fiber")}, "is not PLATE-MJD-FIBER"),
    ],
)
def test_rows_that_contradict_or_overflow_are_refused_and_nothing_written(searchable, build, message):
    given = build(_outliers())
    kwargs = given if isinstance(given, dict) else {"data": given}
    events = AuditEvent.objects.count()
    with pytest.raises(ValueError, match=message):
        catalog_task_create(user=person("vera"), name="odd", target_label="odd", **kwargs)
    assert not SearchTask.objects.filter(name="odd").exists() and AuditEvent.objects.count() == events


def test_a_catalog_too_long_for_a_task_is_refused_before_matching(searchable, monkeypatch):
    monkeypatch.setattr(examples, "MAX_ROWS", 5)
    vera = person("vera")
    data = _csv([f"{s.specobjid},odd" for s in _outliers()[:6]])
    with pytest.raises(ValueError, match="the catalog has 6 rows; a task is defined by at most 5 examples"):
        catalog_task_create(user=vera, name="odd", target_label="odd", data=data)
    monkeypatch.setattr(examples, "MAX_BYTES", 10)
    with pytest.raises(ValueError, match="may be at most 0 MB"):
        catalog_task_create(user=vera, name="odd", target_label="odd", data=data)


def test_a_catalog_longer_than_a_query_may_be_is_matched_in_chunks(searchable, monkeypatch):
    monkeypatch.setattr(selectors, "CHUNK", 2)  # as a catalog of many thousand rows is on SQLite's limit
    outliers = _outliers()
    header = "specobjid,plate,mjd,fiberid,label"
    rows = [f"{s.specobjid},,,,odd" for s in outliers[::2]] + [
        f",{s.plate},{s.mjd},{s.fiberid},odd" for s in outliers[1::2]
    ]
    with CaptureQueriesContext(connection) as queries:
        task = catalog_task_create(user=person("vera"), name="odd", target_label="odd", data=_csv(rows, header))
    asked = [q["sql"] for q in queries.captured_queries if 'FROM "kb_spectrum"' in q["sql"] and " IN (" in q["sql"]]
    assert len(asked) >= len(outliers) // 2  # two values a query
    assert {e.spectrum for e in TaskExample.objects.filter(task=task)} == set(outliers)
    assert task.catalog["unmatched_count"] == 0 and AuditEvent.objects.get(action="task_created").after["labels"] == {
        "odd": len(outliers)
    }


def test_a_task_is_seen_by_its_owner_and_curators_until_a_curator_publishes_it(searchable):
    vera, annie, cecilia = person("vera"), person("annie"), person("cecilia", "curator")
    task = catalog_task_create(
        user=vera, name="odd", target_label="odd", data=_csv([f"{s.specobjid},odd" for s in _outliers()])
    )
    assert task in search_tasks_visible(user=vera) and task in search_tasks_visible(user=cecilia)
    assert task not in search_tasks_visible(user=annie) and task not in search_tasks_visible(user=None)
    with pytest.raises(PermissionDenied):
        search_task_publish(user=vera, task=task)
    search_task_publish(user=cecilia, task=task, reason="useful to all")
    assert task in search_tasks_visible(user=annie)
    assert AuditEvent.objects.get(action="task_published").actor == cecilia


def test_its_knowledge_base_is_scored_by_cross_validation_on_the_examples(searchable):
    outliers = _outliers()
    task = catalog_task_create(
        user=person("vera"), name="odd", target_label="odd", data=_csv([f"{s.specobjid},odd" for s in outliers])
    )
    kb = knowledge_base_build(task=task, target_fraction=0.3, promote=False)
    cross = kb.evaluation["cross_validation"]
    assert cross["targets"] == kb.composition["odd"] >= 3 and cross["entries"] == kb.size
    assert 0 <= cross["recall"] <= 1 and cross["folds"] == 5
    assert set(kb.composition) == {"odd", "other"}


def test_a_catalog_already_ingested_gives_the_examples_of_one_of_its_labels(searchable):
    lenses = {label.spectrum for label in CatalogLabel.objects.filter(catalog="talbot2021", label="lens")}
    task = catalog_task_create(user=person("vera"), name="lenses", target_label="lens", ingested=("talbot2021", "lens"))
    assert {e.spectrum for e in TaskExample.objects.filter(task=task)} == lenses
    assert task.catalog["file"] == "ingested catalog talbot2021, label lens" and not task.catalog["unmatched"]
    with pytest.raises(
        ValueError, match=r"no ingested spectrum has the label 'quasar' in baron2017 \(its labels: .*superposed star"
    ):
        catalog_task_create(user=person("annie"), name="q", target_label="quasar", ingested=("baron2017", "quasar"))
