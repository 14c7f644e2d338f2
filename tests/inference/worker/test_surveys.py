"""Survey searches from the site and the API: every spectrum against a KB, the candidates kept, resumable."""

import csv
import io
import signal
import time
from datetime import timedelta
from pathlib import Path

import pytest
from astropy.io.votable import parse_single_table
from django.core.exceptions import PermissionDenied
from django.db.models import F
from django.utils import timezone

from inference.models import SurveyCandidate, SurveyPart, SurveySearch
from inference.selectors.background import survey_csv
from inference.services.knowledge_bases import knowledge_base_build
from inference.services.leases import part_claim
from inference.services.search import search
from inference.services.surveys import survey_search_cancel, survey_search_start
from inference.tasks import survey_searches_resume
from inference.worker import surveys
from inference.worker.surveys import survey_search_run
from kb.models import CatalogLabel, KnowledgeBase, Spectrum
from kb.selectors import task_labelled
from kb.services.catalog_tasks import catalog_task_create
from tests.conftest import api_client, person, shipped_task, start_worker

pytestmark = pytest.mark.django_db


def _csv(response) -> list[dict]:
    text = b"".join(response.streaming_content).decode()
    assert text.startswith("# GalSpec survey search")
    return list(csv.DictReader(io.StringIO(text.split("\n", 1)[1])))


def _after_each_part(monkeypatch, step) -> None:
    """The survey's part search with ``step()`` run after each part is written, before it is marked done."""
    real = surveys.part_search

    def part_search(*args, **options):
        part = real(*args, **options)
        step()
        return part

    monkeypatch.setattr(surveys, "part_search", part_search)


def _killed() -> None:
    raise SystemExit("worker killed")


def _run_until_its_worker_dies_after_the_first_part(survey, monkeypatch) -> None:
    with monkeypatch.context() as patch:
        _after_each_part(patch, _killed)
        with pytest.raises(SystemExit):
            survey_search_run(survey=survey)


@pytest.fixture
def small_chunks(settings):
    settings.GALSPEC_SURVEY_CHUNK = 30  # 80 spectra: three parts


def test_a_survey_search_finds_what_one_search_at_a_time_finds(searchable, small_chunks, client):
    alice = person("alice")
    survey, created = survey_search_start(user=alice, task=shipped_task("lens"))
    assert created and survey.labels == ["lens"] and survey.total == Spectrum.objects.count() == 80
    survey = survey_search_run(survey=survey)
    assert survey.status == "done" and len(list(Path(survey.folder).glob("part-*.csv"))) == 3

    answers = {spectrum.pk: search(task="lens", spectrum=spectrum) for spectrum in Spectrum.objects.all()}
    expected = {pk for pk, answer in answers.items() if answer.is_target}
    assert expected, "the test survey has lens candidates"
    candidates = list(SurveyCandidate.objects.filter(survey=survey))
    assert {c.spectrum_id for c in candidates} == expected and survey.found == len(expected)
    for candidate in candidates:
        answer = answers[candidate.spectrum_id]
        assert candidate.share == pytest.approx(answer.share, abs=1e-4)
        assert candidate.neighbours == [n.specobjid for n in answer.neighbours]
        assert candidate.distance == pytest.approx(answer.neighbours[0].distance, abs=1e-4)
        assert candidate.in_distribution == answer.trust.in_distribution is not None
    assert sum(survey.label_counts.values()) == 80
    assert survey.label_counts == {
        label: sum(a.label == label for a in answers.values()) for label in survey.label_counts
    }

    page = client.get(f"/surveys/{survey.pk}/")
    shares = [c.share for c in candidates]
    assert page.status_code == 200 and f'<strong id="found">{len(expected)}</strong>' in page.content.decode()
    assert list(page.context["candidates"]) == sorted(candidates, key=lambda c: (-c.share, c.distance, c.spectrum_id))
    assert max(shares) == page.context["candidates"][0].share
    everything = _csv(client.get(f"/surveys/{survey.pk}/all.csv"))
    assert [row["specobjid"] for row in everything] == list(
        Spectrum.objects.order_by("store_row").values_list("specobjid", flat=True)
    )
    only = _csv(client.get(f"/surveys/{survey.pk}/candidates.csv"))
    assert {row["specobjid"] for row in only} == set(
        Spectrum.objects.filter(pk__in=expected).values_list("specobjid", flat=True)
    )
    spectrum = Spectrum.objects.get(specobjid=only[0]["specobjid"])
    assert float(only[0]["ra"]) == pytest.approx(spectrum.ra) and only[0]["mock"] == "True"

    # known: already catalogued as a lens; new: a find
    catalogued = task_labelled(task=survey.task, spectra=list(expected))
    for candidate in candidates:
        assert candidate.known == (
            candidate.spectrum_id in catalogued and catalogued[candidate.spectrum_id].label == "lens"
        )
    assert {c.known for c in candidates} == {True, False}, "the test survey has both"
    new = client.get(f"/surveys/{survey.pk}/", {"known": "new"}).context["candidates"]
    assert [c.spectrum_id for c in new] == [c.spectrum_id for c in page.context["candidates"] if not c.known]
    assert {row["specobjid"] for row in only if row["known"] == "True"} == {
        c.spectrum.specobjid for c in candidates if c.known
    }
    assert "checkpoint run " in client.get(f"/surveys/{survey.pk}/candidates.csv").streaming_content.__next__().decode()
    votable = parse_single_table(io.BytesIO(client.get(f"/surveys/{survey.pk}/candidates.vot").content))
    fields = {f.name: f for f in votable.fields}
    assert (fields["ra"].unit, fields["ra"].ucd, fields["dec"].ucd) == (
        "deg",
        "pos.eq.ra;meta.main",
        "pos.eq.dec;meta.main",
    )
    params = {p.name: p.value for p in votable.params}
    assert params["task"] == "lens" and params["checkpoint"].startswith("run ") and params["date"]
    table = votable.to_table()
    assert len(table) == len(candidates) and list(table["known"]) == [c.known for c in page.context["candidates"]]


def test_a_survey_lists_the_targets_its_version_answers_with_the_lines_alone(searchable, small_chunks):
    kb = searchable["lens"]
    voted = {s.pk for s in Spectrum.objects.all() if search(task="lens", spectrum=s).label == "lens"}
    assert voted, "the test survey has spectra voted lens"
    # the lines alone answer, and no scan reaches this threshold: nothing is a target, whatever the vote
    KnowledgeBase.objects.filter(pk=kb.pk).update(background_rule={"threshold": 1e6, "combine": "lines"})
    survey, _ = survey_search_start(user=person("alice"), task=shipped_task("lens"))
    survey = survey_search_run(survey=survey)
    assert survey.status == "done" and survey.label_counts.get("lens") == len(voted)
    assert survey.found == 0 and not SurveyCandidate.objects.filter(survey=survey).exists()
    header = next(iter(survey_csv(survey=survey)))
    assert "lenses: background lines at combined S/N >= 1e+06, behind every host; a target: the lines alone" in header


def test_a_classification_task_hunts_the_labels_it_is_given(searchable, small_chunks):
    alice = person("alice")
    with pytest.raises(ValueError, match="classification task: choose the labels of interest"):
        survey_search_start(user=alice, task=shipped_task("bpt3"))
    with pytest.raises(ValueError, match="lens: not a label of bpt3"):
        survey_search_start(user=alice, task=shipped_task("bpt3"), labels=["lens"])
    with pytest.raises(ValueError, match="k must be between"):
        survey_search_start(user=alice, task=shipped_task("lens"), k=0)
    assert not SurveySearch.objects.exists()
    survey, _ = survey_search_start(user=alice, task=shipped_task("bpt3"), labels=["agn"])
    survey = survey_search_run(survey=survey)
    voted = {
        pk
        for pk in Spectrum.objects.values_list("pk", flat=True)
        if search(task="bpt3", spectrum=Spectrum.objects.get(pk=pk)).label == "agn"
    }
    assert set(survey.candidates.values_list("spectrum_id", flat=True)) == voted
    assert set(survey.candidates.values_list("label", flat=True)) <= {"agn"}


def test_a_survey_for_a_task_from_a_catalog_says_which_candidates_the_catalog_named(searchable, client):
    lenses = CatalogLabel.objects.filter(catalog="talbot2021", label="lens")
    vera = person("vera")
    task = catalog_task_create(user=vera, name="my-lenses", target_label="lens", ingested=("talbot2021", "lens"))
    knowledge_base_build(task=task, target_fraction=0.3)
    survey = survey_search_run(survey=survey_search_start(user=vera, task=task)[0])
    named = set(lenses.values_list("spectrum__specobjid", flat=True))
    client.force_login(vera)
    rows = _csv(client.get(f"/surveys/{survey.pk}/all.csv"))
    assert {row["specobjid"] for row in rows if row["in_catalog"] == "True"} == named
    found = api_client(vera).get(f"/api/v1/surveys/{survey.pk}/candidates/").json()["results"]
    assert found and all(c["in_catalog"] == (c["specobjid"] in named) for c in found)
    assert all(c["known"] == c["in_catalog"] for c in found)  # voted the target: known if the catalog named it
    new = api_client(vera).get(f"/api/v1/surveys/{survey.pk}/candidates/", {"known": "new"}).json()["results"]
    assert [c["specobjid"] for c in new] == [c["specobjid"] for c in found if not c["known"]]
    bad = api_client(vera).get(f"/api/v1/surveys/{survey.pk}/candidates/", {"known": "maybe"})
    assert bad.status_code == 400 and "known must be" in str(bad.json())
    assert any(c["in_catalog"] for c in found)
    plain = survey_search_run(survey=survey_search_start(user=vera, task=shipped_task("lens"))[0])
    assert "in_catalog" not in _csv(client.get(f"/surveys/{plain.pk}/all.csv"))[0]


def test_asking_again_returns_the_same_search_until_the_survey_grows(searchable):
    alice, bob = person("alice"), person("bob")
    first, created = survey_search_start(user=alice, task=shipped_task("lens"))
    again, created_again = survey_search_start(user=bob, task=shipped_task("lens"))
    assert created and not created_again and again.pk == first.pk
    other_k, created_k = survey_search_start(user=bob, task=shipped_task("lens"), k=5)
    assert created_k and other_k.pk != first.pk
    with pytest.raises(ValueError, match=f"your survey search {other_k.pk} .* is under way"):
        survey_search_start(user=bob, task=shipped_task("lens"), k=7)  # one at a time each
    spectrum = Spectrum.objects.order_by("-store_row").first()
    spectrum.pk, spectrum.specobjid, spectrum.fiberid, spectrum.store_row = None, "99", 999, spectrum.store_row + 1
    spectrum.save()
    grown, created_grown = survey_search_start(user=person("carol"), task=shipped_task("lens"))
    assert created_grown and grown.total == 81


def test_anonymous_users_cannot_start_and_only_the_starter_or_an_admin_can_cancel(searchable, client):
    from django.contrib.auth.models import AnonymousUser

    with pytest.raises(PermissionDenied):
        survey_search_start(user=AnonymousUser(), task=shipped_task("lens"))
    response = client.post("/surveys/", {"task": "lens", "k": 3})
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert api_client().post("/api/v1/surveys/", {"task": "lens"}, format="json").status_code == 401
    assert not SurveySearch.objects.exists()

    alice, bob, grace = person("alice"), person("bob"), person("grace", "admin")
    survey, _ = survey_search_start(user=alice, task=shipped_task("lens"))
    answer = api_client(bob).post(f"/api/v1/surveys/{survey.pk}/cancel/")
    assert answer.status_code == 403 and answer.json()["error"]["code"] == "permission_denied"
    client.force_login(bob)
    assert client.post(f"/surveys/{survey.pk}/cancel/").status_code == 403
    with pytest.raises(PermissionDenied):
        survey_search_cancel(user=AnonymousUser(), survey=survey)
    assert SurveySearch.objects.get(pk=survey.pk).status == "queued"
    assert survey_search_cancel(user=grace, survey=survey).status == "cancelled"
    assert survey_search_run(survey=survey).status == "cancelled"  # a worker taking it up later does nothing
    assert not Path(survey.folder).exists()


def test_cancelling_a_search_whose_worker_died_removes_its_parts_at_once(
    searchable, small_chunks, monkeypatch, django_capture_on_commit_callbacks
):
    alice = person("alice")
    survey, _ = survey_search_start(user=alice, task=shipped_task("lens"))
    _run_until_its_worker_dies_after_the_first_part(survey, monkeypatch)
    assert (Path(survey.folder) / "part-00001.csv").exists()
    SurveySearch.objects.filter(pk=survey.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert survey_search_cancel(user=alice, survey=survey).status == "cancelled"
    assert not Path(survey.folder).exists()


def test_a_search_cancelled_while_its_candidates_are_collected_keeps_none(searchable, small_chunks, monkeypatch):
    alice = person("alice")
    survey, _ = survey_search_start(user=alice, task=shipped_task("lens"))
    real, inserted = surveys._candidates_record, []

    def cancelled_as_collection_starts(survey_, lease):  # (a cancel from another connection commits at once)
        survey_search_cancel(user=alice, survey=survey)
        real(survey_, lease)

    def counted(*args):
        inserted.append(len(args[1]))
        real_create(*args)

    real_create = surveys._candidates_create
    monkeypatch.setattr(surveys, "_candidates_record", cancelled_as_collection_starts)
    monkeypatch.setattr(surveys, "_candidates_create", counted)
    survey = survey_search_run(survey=survey)
    assert survey.status == "cancelled" and survey.found == 0 and sum(inserted) > 0  # inserted, then rolled back
    assert not SurveyCandidate.objects.filter(survey=survey).exists() and not Path(survey.folder).exists()


def test_a_worker_taken_for_dead_stops_and_leaves_the_search_to_the_one_that_took_it(
    searchable, small_chunks, monkeypatch
):
    alice = person("alice")
    survey, _ = survey_search_start(user=alice, task=shipped_task("lens"))
    _after_each_part(
        monkeypatch, lambda: SurveySearch.objects.filter(pk=survey.pk).update(attempts=F("attempts") + 1)
    )  # another worker's claim
    late = survey_search_run(survey=survey)
    assert late.status == "running" and late.attempts == 2  # the second worker's, untouched
    assert (Path(survey.folder) / "part-00001.csv").exists() and not (Path(survey.folder) / "part-00002.csv").exists()
    assert not SurveyCandidate.objects.filter(survey=survey).exists()


def test_a_worker_that_dies_again_and_again_fails_the_search(searchable):
    survey, _ = survey_search_start(user=person("alice"), task=shipped_task("lens"))
    SurveySearch.objects.filter(pk=survey.pk).update(
        status="running", attempts=surveys.MAX_ATTEMPTS, heartbeat_at=timezone.now() - timedelta(hours=1)
    )
    survey = survey_search_run(survey=survey)
    assert survey.status == "failed" and "died 5 times" in survey.error


@pytest.mark.django_db(transaction=True)
def test_a_long_step_does_not_make_a_live_search_look_dead(searchable, small_chunks, monkeypatch, settings):
    settings.GALSPEC_OPERATION_STALE_S = 1
    survey, _ = survey_search_start(user=person("alice"), task=shipped_task("lens"))
    real, second_claims = surveys.part_search, []

    def slow(*args, **options):
        if not second_claims:
            time.sleep(2.5)  # longer than the stale limit, with no progress report
            second_claims.append(surveys.survey_search_claim(survey=survey))
        return real(*args, **options)

    monkeypatch.setattr(surveys, "part_search", slow)
    survey = survey_search_run(survey=survey)
    assert second_claims == [None] and survey.status == "done" and survey.attempts == 1


@pytest.mark.django_db(transaction=True)
def test_a_slow_part_is_not_taken_from_its_live_worker(searchable, small_chunks, monkeypatch, settings):
    settings.GALSPEC_OPERATION_STALE_S = 1
    survey, _ = survey_search_start(user=person("alice"), task=shipped_task("lens"))
    real, taken_meanwhile = surveys.part_search, []

    def slow(*args, **options):
        if not taken_meanwhile:
            time.sleep(2.5)  # longer than the stale limit
            taken_meanwhile.append(part_claim(SurveyPart.objects.filter(survey=survey)))
        return real(*args, **options)

    monkeypatch.setattr(surveys, "part_search", slow)
    survey = survey_search_run(survey=survey)
    assert survey.status == "done" and taken_meanwhile[0].number == 2  # another part, not the slow one
    assert SurveyPart.objects.get(survey=survey, number=1).attempts == 1  # kept by the worker searching it


def test_a_search_cancelled_while_it_runs_stops_and_leaves_nothing(searchable, small_chunks, monkeypatch):
    alice = person("alice")
    survey, _ = survey_search_start(user=alice, task=shipped_task("lens"))
    _after_each_part(monkeypatch, lambda: survey_search_cancel(user=alice, survey=survey))
    survey = survey_search_run(survey=survey)
    assert survey.status == "cancelled" and not survey.candidates.exists() and not Path(survey.folder).exists()


def test_a_run_interrupted_after_some_parts_carries_on_from_them(searchable, small_chunks, monkeypatch):
    """What a redelivered task does after its worker died: the parts written are kept, the rest written."""
    alice = person("alice")
    survey, _ = survey_search_start(user=alice, task=shipped_task("lens"))
    _run_until_its_worker_dies_after_the_first_part(survey, monkeypatch)
    first = Path(survey.folder) / "part-00001.csv"
    written = first.stat().st_mtime_ns
    assert SurveySearch.objects.get(pk=survey.pk).status == "running"
    assert survey_search_run(survey=survey).status == "running"  # its heartbeat is fresh: maybe alive, not doubled
    assert not (Path(survey.folder) / "part-00002.csv").exists()

    an_hour_ago = timezone.now() - timedelta(hours=1)
    SurveySearch.objects.filter(pk=survey.pk).update(heartbeat_at=an_hour_ago)
    SurveyPart.objects.filter(survey=survey, status="running").update(heartbeat_at=an_hour_ago)  # its part too
    from inference.tasks import survey_search_task

    sent = []
    monkeypatch.setattr(
        survey_search_task, "apply_async", lambda args, **options: sent.append((args, options["queue"]))
    )
    assert survey_searches_resume() == [survey.pk] and sent == [
        ((survey.pk,), "embedding")
    ]  # what a starting worker does
    survey = survey_search_run(survey=SurveySearch.objects.get(pk=survey.pk))
    assert survey.status == "done" and survey.attempts == 2 and first.stat().st_mtime_ns == written
    assert sum(survey.label_counts.values()) == 80


def test_the_api_reports_bad_input_and_pages_show_it(searchable, client):
    alice = person("alice")
    answer = api_client(alice).post("/api/v1/surveys/", {"task": "bpt3", "labels": ["lens"]}, format="json")
    assert answer.status_code == 400 and "lens: not a label of bpt3" in answer.json()["error"]["message"]
    answer = api_client(alice).post("/api/v1/surveys/", {"task": "nope"}, format="json")
    assert answer.status_code == 400 and answer.json()["error"]["fields"]["task"]
    client.force_login(alice)
    page = client.post("/surveys/", {"task": "bpt3", "k": 3})
    assert page.status_code == 400 and page.content.decode().count("classification task: choose the labels") == 1
    assert not SurveySearch.objects.exists()
    assert client.get("/surveys/999/").status_code == 404
    assert api_client().get("/api/v1/surveys/999/").json()["error"]["code"] == "not_found"


@pytest.mark.django_db(transaction=True)
def test_a_worker_runs_a_survey_search_started_over_the_api(searchable, celery_worker_process):
    alice = person("alice")
    created = api_client(alice).post("/api/v1/surveys/", {"task": "lens"}, format="json")
    assert created.status_code == 202, created.content
    survey = created.json()
    assert api_client(alice).post("/api/v1/surveys/", {"task": "lens"}, format="json").json()["id"] == survey["id"]
    deadline = time.monotonic() + 240
    while survey["status"] in ("queued", "running"):
        assert celery_worker_process.poll() is None and time.monotonic() < deadline, (
            celery_worker_process.log_path.read_text()[-3000:]
        )
        time.sleep(0.5)
        survey = api_client().get(survey["links"]["self"]).json()
    assert survey["status"] == "done", survey["error"]
    candidates = api_client().get(survey["links"]["candidates"] + "?page_size=1000").json()
    expected = [s.specobjid for s in Spectrum.objects.all() if search(task="lens", spectrum=s).label == "lens"]
    assert sorted(row["specobjid"] for row in candidates["results"]) == sorted(expected)
    assert candidates["count"] == survey["found"] == len(expected)
    shares = [row["share"] for row in candidates["results"]]
    assert shares == sorted(shares, reverse=True)


@pytest.mark.django_db(transaction=True)
def test_two_workers_share_a_survey_search_and_killing_one_loses_nothing(searchable, data_dir, settings):
    """Each part searched takes 2 s more on these workers. The first claims the search and sends helpers; the
    second, started once it runs, takes parts; killed in the middle of one, its part is taken again."""
    from galspec_site.celery import app

    app.control.purge() if settings.REDIS_URL else None
    environment = {
        "GALSPEC_SURVEY_CHUNK": "8",  # 80 spectra: ten parts
        "GALSPEC_OPERATION_STALE_S": "3",
        "GALSPEC_TEST_SEARCH_DELAY": "2",
    }
    first = start_worker(data_dir, settings, module="tests.slow_worker", **environment)
    second = None
    deadline = time.monotonic() + 240
    try:
        survey, _ = survey_search_start(user=person("alice"), task=shipped_task("lens"))  # sent once committed
        while not SurveyPart.objects.filter(survey=survey, status="running").exists():
            assert first.poll() is None and time.monotonic() < deadline, first.log_path.read_text()[-3000:]
            time.sleep(0.1)
        second = start_worker(data_dir, settings, module="tests.slow_worker", **environment)
        theirs = SurveyPart.objects.filter(survey=survey, worker__endswith=f"pid {second.pid}")
        while not (theirs.filter(status="done").exists() and theirs.filter(status="running").exists()):
            assert second.poll() is None and time.monotonic() < deadline, second.log_path.read_text()[-3000:]
            time.sleep(0.05)
        (lost,) = theirs.filter(status="running")
        second.send_signal(signal.SIGKILL)  # in the middle of a part
        second.wait()
        while SurveySearch.objects.get(pk=survey.pk).status in ("queued", "running"):
            assert first.poll() is None and time.monotonic() < deadline, first.log_path.read_text()[-3000:]
            time.sleep(0.2)
    finally:
        for worker in (first, second):
            if worker is not None and worker.poll() is None:
                worker.terminate()
                worker.wait(timeout=30)
    survey.refresh_from_db()
    assert survey.status == "done", survey.error
    parts = SurveyPart.objects.filter(survey=survey)
    assert parts.count() == 10 and all(part.status == "done" for part in parts)
    assert {part.worker.split("pid ")[1] for part in parts} == {str(first.pid), str(second.pid)}  # both took parts
    lost.refresh_from_db()
    assert lost.attempts == 2 and lost.worker.endswith(f"pid {first.pid}")  # taken again by the live worker
    expected = {s.pk for s in Spectrum.objects.all() if search(task="lens", spectrum=s).label == "lens"}
    assert {c.spectrum_id for c in survey.candidates.all()} == expected and survey.found == len(expected)
    assert sum(survey.label_counts.values()) == 80  # every spectrum once
