"""The search and batch-job API, as a collaborator's script uses it."""

import csv
import io
import secrets
import time

import numpy as np
import pytest
from astropy.io import fits
from astropy.io.votable import parse_single_table
from astropy.table import Table
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from galspec_site.celery import app as celery_app
from inference.models import SearchJob
from inference.retriever import VotePolicy
from inference.services.search import search
from kb.models import Spectrum
from tests.conftest import api_client as _client
from tests.conftest import shipped_task

pytestmark = pytest.mark.django_db


@pytest.fixture
def astronomer(db):
    return User.objects.create_user("vera", password="not-a-real-password-1")


def _error(response, status: int) -> dict:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["status"] == status and error["message"]
    return error


def _member(searchable) -> Spectrum:
    return searchable["lens"].entries.select_related("spectrum").first().spectrum


def test_search_by_specobjid_answers_the_vote_with_its_evidence(searchable):
    spectrum = _member(searchable)
    response = _client().post("/api/v1/search/", {"task": "lens", "identifier": spectrum.specobjid})
    assert response.status_code == 200, response.content
    body = response.json()
    expected = search(task="lens", spectrum=spectrum)
    assert body["label"] == expected.label and body["is_target"] == expected.is_target
    assert [n["specobjid"] for n in body["neighbours"]] == [n.specobjid for n in expected.neighbours]
    assert spectrum.specobjid not in [n["specobjid"] for n in body["neighbours"]]  # not its own neighbour
    assert sum(n["weight"] for n in body["neighbours"]) == pytest.approx(1.0)
    assert body["kb_version"] == searchable["lens"].version and body["knowledge_base"] == searchable["lens"].pk
    assert body["checkpoint"].startswith("run ") and body["neighbours"][0]["catalogs"]
    assert body["mock"] is True and all(n["mock"] for n in body["neighbours"])  # the mock survey says so
    context = body["context"]
    assert context["voters"] == sum(n["label"] == body["label"] for n in body["neighbours"])
    assert context["sdss_class"].startswith("GALAXY") and context["scored_on"] == "the test reserve"
    assert context["precision"] == searchable["lens"].evaluation["precision"]
    assert _client().get(f"/api/v1/spectra/{spectrum.pk}/").json()["mock"] is True


def test_an_answer_quotes_precision_only_under_the_policy_it_was_measured_with(searchable):
    kb, spectrum = searchable["lens"], _member(searchable)
    policy = VotePolicy.from_dict(kb.policy)
    assert kb.evaluation["policy"] == policy.as_dict()  # the version was scored under its own policy
    default = _client().post("/api/v1/search/", {"task": "lens", "identifier": spectrum.specobjid}).json()
    assert default["policy"] == policy.as_dict() and default["k"] == policy.k == len(default["neighbours"])
    assert default["context"]["precision"] == kb.evaluation["precision"]
    assert default["context"]["scored_with"] == policy.describe() and not default["context"]["unscored_because"]
    other = 7 if policy.k != 7 else 5
    asked = _client().post("/api/v1/search/", {"task": "lens", "identifier": spectrum.specobjid, "k": other}).json()
    assert asked["k"] == other == len(asked["neighbours"]) and asked["policy"]["metric"] == policy.metric
    assert asked["context"]["precision"] is None and asked["context"]["recall"] is None
    assert asked["context"]["scored_with"] == ""
    assert f"not at K = {other}" in asked["context"]["unscored_because"]


def test_a_lens_answer_carries_its_background_line_scan_and_a_bpt_answer_none(searchable):
    spectrum = _member(searchable)
    lens = _client().post("/api/v1/search/", {"task": "lens", "identifier": spectrum.specobjid}).json()
    background = lens["background"]
    assert set(background) == {"z_source", "snr", "lines", "detected", "threshold", "combine", "hosts", "quiet_host"}
    assert background["z_source"] is None or background["z_source"] > spectrum.z
    assert "threshold" in searchable["lens"].background_rule  # chosen on validation at the build
    assert background["threshold"] == searchable["lens"].background_rule["threshold"]
    assert background["combine"] == searchable["lens"].background_rule["combine"]
    voted = lens["label"] == "lens"
    assert lens["is_target"] == (
        background["detected"] if background["combine"] == "lines" else voted or background["detected"]
    )
    bpt = _client().post("/api/v1/search/", {"task": "bpt3", "identifier": spectrum.specobjid}).json()
    assert bpt["background"] is None


def test_a_version_that_chose_the_lines_alone_answers_a_lens_vote_without_lines_as_no_target(searchable):
    from kb.models import KnowledgeBase

    kb = searchable["lens"]
    lenses = kb.entries.filter(label="lens").select_related("spectrum")
    for combine, expected in (("either", True), ("lines", False)):
        # a threshold no spectrum reaches: whatever the scan finds, no lines pass
        KnowledgeBase.objects.filter(pk=kb.pk).update(background_rule={"threshold": 1e6, "combine": combine})
        answers = [
            _client().post("/api/v1/search/", {"task": "lens", "identifier": e.spectrum.specobjid}).json()
            for e in lenses[:10]
        ]
        voted = [a for a in answers if a["label"] == "lens"]
        assert voted, "no lens entry of the fixture is voted lens by its neighbours"
        assert all(a["is_target"] is expected and a["background"]["combine"] == combine for a in voted)
        doubts = " ".join(d for a in voted for d in a["context"]["disagreements"])
        assert ("so it is not a target" in doubts) is (combine == "lines")


def test_a_version_that_looks_only_behind_quiet_hosts_counts_no_lines_behind_a_galaxy_with_its_own(searchable):
    from inference.background_lines import Background, detected, quiet_host
    from kb.models import KnowledgeBase

    kb = searchable["lens"]
    # every candidate with [O II] at S/N >= 0 or two lines at 3 passes this threshold, where it is looked for
    KnowledgeBase.objects.filter(pk=kb.pk).update(background_rule={"threshold": 0.0, "hosts": "quiet"})
    answers = {s.pk: search(task="lens", spectrum=s) for s in Spectrum.objects.all()}
    seen = {"quiet": 0, "own lines": 0}
    for pk, answer in answers.items():
        b = answer.background
        passes = detected(Background(b["z_source"], b["snr"], b["lines"]), 0.0)
        assert b["quiet_host"] == quiet_host(Spectrum.objects.get(pk=pk).lines)
        assert b["detected"] == (passes and b["quiet_host"])
        if passes:
            seen["quiet" if b["quiet_host"] else "own lines"] += 1
            assert answer.is_target == (b["quiet_host"] or answer.label == "lens")
    assert seen["quiet"] and seen["own lines"], f"the fixture has candidates behind both kinds of host: {seen}"


def test_an_outlier_answer_says_how_far_it_lies_from_ordinary_galaxies(trained):
    from pathlib import Path

    from inference.services.knowledge_bases import knowledge_base_build

    kb = knowledge_base_build(task=shipped_task("outlier"))
    spectrum = kb.entries.select_related("spectrum").first().spectrum
    body = _client().post("/api/v1/search/", {"task": "outlier", "identifier": spectrum.specobjid}).json()
    weirdness = body["weirdness"]
    assert set(weirdness) == {"score", "k", "threshold", "false_positive_rate", "flagged"}
    assert kb.weirdness_rule["ordinary"] == ["other"] and weirdness["threshold"] == kb.weirdness_rule["threshold"]
    stored = np.load(Path(kb.index_path) / "weirdness.npy")  # every embedded spectrum's, kept for ranking
    assert stored.shape == (Spectrum.objects.count(),)
    assert weirdness["score"] == pytest.approx(float(stored[spectrum.store_row]), rel=1e-5)
    assert body["is_target"] == (body["label"] == "outlier" or weirdness["flagged"])
    assert weirdness["score"] is not None and weirdness["k"] == kb.weirdness_rule["k"]


def test_search_by_plate_mjd_fiber_and_by_position_find_the_same_spectrum(searchable):
    spectrum = _member(searchable)
    by_id = _client().post("/api/v1/search/", {"task": "bpt3", "identifier": spectrum.specobjid}).json()
    by_pmf = _client().post("/api/v1/search/", {"task": "bpt3", "identifier": spectrum.plate_mjd_fiber}).json()
    by_position = (
        _client()
        .post("/api/v1/search/", {"task": "bpt3", "ra": spectrum.ra + 0.3 / 3600, "dec": spectrum.dec}, format="json")
        .json()
    )
    assert by_id["query"] == by_pmf["query"] == by_position["query"] == f"specobjid {spectrum.specobjid}"
    assert by_id["neighbours"] == by_pmf["neighbours"] == by_position["neighbours"]


def test_search_an_uploaded_real_sdss_file(searchable, real_spectra, data_dir):
    with open(real_spectra[0], "rb") as handle:
        response = _client().post("/api/v1/search/", {"task": "bpt3", "file": handle}, format="multipart")
    assert response.status_code == 200, response.content
    body = response.json()
    expected = search(task="bpt3", path=real_spectra[0])
    assert body["query"] == real_spectra[0].name and len(body["neighbours"]) == 3
    assert body["label"] == expected.label
    assert [(n["specobjid"], n["weight"]) for n in body["neighbours"]] == [
        (n.specobjid, pytest.approx(n.weight)) for n in expected.neighbours
    ]
    assert not any((data_dir / "uploads").iterdir())  # nothing of the upload is kept
    trust = body["trust"]
    assert trust["valid_fraction"] == pytest.approx(expected.trust.valid_fraction) and trust["valid_fraction"] > 0.9
    assert trust["distance_percentile"] == pytest.approx(expected.trust.distance_percentile)
    assert trust["reconstruction_chi2"] == pytest.approx(expected.trust.reconstruction_chi2)
    assert trust["reconstruction_chi2"] > 0
    assert trust["in_distribution"] == expected.trust.in_distribution is not None


def test_an_answer_for_a_spectrum_missing_half_its_pixels_is_flagged_not_in_distribution(
    searchable, real_spectra, tmp_path
):
    path = tmp_path / real_spectra[0].name
    with fits.open(real_spectra[0]) as hdus:  # the red half masked, as bright sky would
        coadd = hdus["COADD"].data
        coadd["and_mask"][len(coadd) // 2 :] |= 1 << 23
        hdus.writeto(path)
    with open(path, "rb") as handle:
        body = _client().post("/api/v1/search/", {"task": "bpt3", "file": handle}, format="multipart").json()
    assert body["label"] and body["trust"]["in_distribution"] is False
    assert body["trust"]["valid_fraction"] < 0.6 and "of its pixels are valid" in body["trust"]["reasons"][0]


def test_a_spectrum_whose_pixels_do_not_hang_together_is_flagged_by_its_reconstruction(
    searchable, real_spectra, tmp_path
):
    """The same flux values and noise shuffled among the observed pixels: its neighbours may look ordinary,
    but the encoder cannot reconstruct pixels from their neighbours. (Whether the unshuffled real file is in
    distribution depends on the checkpoint: this one, trained for seconds on a mock, reconstructs real
    spectra a little worse than its mock validation spectra.)"""
    path = tmp_path / real_spectra[0].name
    with fits.open(real_spectra[0]) as hdus:
        coadd = hdus["COADD"].data
        observed = np.flatnonzero(coadd["ivar"] > 0)
        coadd["flux"][observed] = np.random.default_rng(0).permutation(coadd["flux"][observed])
        hdus.writeto(path)
    answers = {}
    for name, file in (("real", real_spectra[0]), ("shuffled", path)):
        with open(file, "rb") as handle:
            answers[name] = (
                _client().post("/api/v1/search/", {"task": "bpt3", "file": handle}, format="multipart").json()
            )
    real, shuffled = answers["real"]["trust"], answers["shuffled"]["trust"]
    assert shuffled["in_distribution"] is False and shuffled["reconstruction_percentile"] == 100.0
    assert any("reconstructs its hidden pixels worse than" in reason for reason in shuffled["reasons"])
    assert shuffled["reconstruction_chi2"] > 5 * real["reconstruction_chi2"]


def test_an_old_knowledge_base_version_still_answers(searchable):
    from inference.services.knowledge_bases import knowledge_base_build

    old = searchable["lens"]
    new = knowledge_base_build(task=shipped_task("lens"), seed=1)
    spectrum = _member(searchable)
    body = (
        _client()
        .post("/api/v1/search/", {"task": "lens", "identifier": spectrum.specobjid, "knowledge_base": old.pk})
        .json()
    )
    assert body["kb_version"] == old.version != new.version


@pytest.mark.parametrize(
    "data, field_or_text",
    [
        ({"task": "lens"}, "give a specobjid"),
        ({"task": "lens", "identifier": "99999999999"}, "no ingested spectrum"),
        ({"task": "lens", "ra": 10.0}, "needs both RA and Dec"),
        ({"task": "lens", "ra": 400.0, "dec": 0.0}, "RA must be in"),
        ({"task": "nope", "identifier": "1"}, "task"),
        ({"task": "lens", "identifier": "1", "k": 0}, "k"),
        ({"task": "lens", "identifier": "1", "weight_function": "cubic"}, "weight_function"),
    ],
)
def test_bad_searches_get_a_clear_400(searchable, data, field_or_text):
    error = _error(_client().post("/api/v1/search/", data, format="json"), 400)
    assert field_or_text in error["message"] or field_or_text in error.get("fields", {})


def test_a_file_that_is_not_a_spectrum_gets_a_400_naming_it(searchable, data_dir):
    upload = io.BytesIO(b"\x00garbage" * 100)
    upload.name = "../../etc/passwd.fits"
    error = _error(_client().post("/api/v1/search/", {"task": "lens", "file": upload}, format="multipart"), 400)
    assert error["message"].startswith("passwd.fits:")
    assert not any((data_dir / "uploads").iterdir())


def test_an_upload_over_the_size_limit_is_refused(searchable, real_spectra, settings):
    settings.GALSPEC_MAX_UPLOAD_BYTES = 1000
    with open(real_spectra[0], "rb") as handle:
        error = _error(_client().post("/api/v1/search/", {"task": "lens", "file": handle}, format="multipart"), 400)
    assert "over the limit of 1,000 bytes" in error["message"]


def test_a_knowledge_base_of_another_task_is_refused(searchable):
    spectrum = _member(searchable)
    error = _error(
        _client().post(
            "/api/v1/search/",
            {"task": "lens", "identifier": spectrum.specobjid, "knowledge_base": searchable["bpt3"].pk},
        ),
        400,
    )
    assert "is not a version of task lens" in error["message"] and "bpt3" not in error["message"]


def test_jobs_need_a_token(searchable):
    error = _error(_client().post("/api/v1/jobs/", {"task": "lens", "identifiers": ["1"]}, format="json"), 401)
    assert error["code"] == "not_authenticated"
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    assert _error(bad.get("/api/v1/jobs/"), 401)["code"] == "authentication_failed"


@pytest.fixture
def eager_jobs():
    """Jobs run in this process as soon as they are committed (the worker's part is tested separately)."""
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


def test_a_job_of_identifiers_positions_and_files(
    searchable, astronomer, real_spectra, eager_jobs, django_capture_on_commit_callbacks
):
    spectra = list(Spectrum.objects.filter(held_out=True)[:3])
    listing = io.BytesIO(("specobjid\n" + "\n".join(s.specobjid for s in spectra[:2]) + "\n").encode())
    listing.name = "targets.csv"
    client = _client(astronomer)
    with django_capture_on_commit_callbacks(execute=True), open(real_spectra[1], "rb") as fits:
        response = client.post(
            "/api/v1/jobs/", {"task": "lens", "k": 3, "csv": listing, "files": [fits]}, format="multipart"
        )
    assert response.status_code == 202, response.content
    job_id = response.json()["id"]
    status = client.get(f"/api/v1/jobs/{job_id}/").json()
    assert (status["status"], status["total"], status["done"], status["failed"]) == ("done", 3, 3, 0)

    rows = client.get(f"/api/v1/jobs/{job_id}/results/").json()["results"]
    assert [r["query"] for r in rows] == [spectra[0].specobjid, spectra[1].specobjid, real_spectra[1].name]
    expected = search(task="lens", spectrum=spectra[0])
    assert rows[0]["label"] == expected.label and rows[0]["specobjid"] == spectra[0].specobjid
    assert [n["specobjid"] for n in rows[0]["neighbours"]] == [n.specobjid for n in expected.neighbours]

    text = client.get(f"/api/v1/jobs/{job_id}/results/?format=csv").content.decode()
    table = Table.read(text, format="ascii.ecsv")
    assert list(table["query"]) == [r["query"] for r in rows]
    assert table["neighbour1_distance"][0] == pytest.approx(expected.neighbours[0].distance, rel=1e-6)
    assert table.meta["task"] == "lens" and table.meta["checkpoint"] == expected.checkpoint and table.meta["date"]
    assert table.meta["policy"] == VotePolicy.from_dict(expected.policy).asked(k=3).describe()  # as the page says
    assert table["ra"][0] == pytest.approx(spectra[0].ra) and table["z"][0] == pytest.approx(spectra[0].z)
    plain = list(csv.DictReader(line for line in text.splitlines() if not line.startswith("#")))  # any CSV reader
    assert [r["query"] for r in plain] == [r["query"] for r in rows]
    votable = client.get(f"/api/v1/jobs/{job_id}/results/?format=votable")
    assert votable["Content-Type"] == "application/x-votable+xml"
    parsed = parse_single_table(io.BytesIO(votable.content))
    assert list(parsed.to_table()["label"]) == [r["label"] for r in rows]
    assert {f.name: f.ucd for f in parsed.fields}["ra"] == "pos.eq.ra;meta.main"
    assert {p.name: p.value for p in parsed.params}["kb_version"] == str(expected.kb_version)


def test_a_job_reports_inputs_it_cannot_search_and_goes_on(
    searchable, astronomer, eager_jobs, django_capture_on_commit_callbacks
):
    spectrum = Spectrum.objects.filter(held_out=True).first()
    with django_capture_on_commit_callbacks(execute=True):
        response = _client(astronomer).post(
            "/api/v1/jobs/",
            {
                "task": "lens",
                "identifiers": ["12345", spectrum.plate_mjd_fiber],
                "positions": [{"ra": spectrum.ra, "dec": spectrum.dec}],
            },
            format="json",
        )
    job = SearchJob.objects.get(public_id=response.json()["id"])
    assert (job.status, job.done, job.failed) == ("done", 3, 1)
    results = list(job.results.order_by("position"))
    assert "no ingested spectrum" in results[0].error and results[0].label == ""
    assert results[1].spectrum == results[2].spectrum == spectrum


@pytest.mark.parametrize(
    "payload, text",
    [
        ({"task": "lens"}, "nothing to search"),
        ({"task": "lens", "positions": [{"ra": 1.0}]}, "each position"),
        ({"task": "lens", "identifiers": ["1"], "k": 99}, "k"),
    ],
)
def test_bad_jobs_are_refused_and_nothing_is_written(searchable, astronomer, payload, text):
    error = _error(_client(astronomer).post("/api/v1/jobs/", payload, format="json"), 400)
    assert text in error["message"] or text in error.get("fields", {})
    assert not SearchJob.objects.exists()


def test_a_malformed_position_is_named_as_the_field_at_fault(searchable, astronomer):
    payload = {"task": "lens", "positions": [{"ra": 1.0, "dec": 2.0}, {"ra": 1.0}]}
    error = _error(_client(astronomer).post("/api/v1/jobs/", payload, format="json"), 400)
    assert error["message"].startswith("positions: each position is") and "positions" in error["fields"]


def test_a_job_too_big_is_refused(searchable, astronomer, settings):
    settings.GALSPEC_MAX_BATCH = 2
    error = _error(
        _client(astronomer).post("/api/v1/jobs/", {"task": "lens", "identifiers": ["1", "2", "3"]}, format="json"), 400
    )
    assert "at most 2" in error["message"] and not SearchJob.objects.exists()


def test_a_job_is_seen_only_by_its_owner(searchable, astronomer, eager_jobs, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job_id = (
            _client(astronomer)
            .post("/api/v1/jobs/", {"task": "lens", "identifiers": ["1"]}, format="json")
            .json()["id"]
        )
    other = _client(User.objects.create_user("mallory", password="x-password-2"))
    assert _error(other.get(f"/api/v1/jobs/{job_id}/"), 404)["code"] == "not_found"
    assert _error(other.get(f"/api/v1/jobs/{job_id}/results/?format=csv"), 404)
    assert other.get("/api/v1/jobs/").json()["count"] == 0
    assert _client(astronomer).get("/api/v1/jobs/").json()["count"] == 1


def test_cancelling_a_queued_job(searchable, astronomer):
    client = _client(astronomer)
    job_id = client.post("/api/v1/jobs/", {"task": "lens", "identifiers": ["1", "2"]}, format="json").json()["id"]
    assert client.post(f"/api/v1/jobs/{job_id}/cancel/").json()["status"] == "cancelled"
    job = SearchJob.objects.get(public_id=job_id)
    from inference.worker.jobs import search_job_run

    assert search_job_run(job=job).done == 0  # a cancelled job is not run


def test_anonymous_clients_are_throttled_and_told_when_to_retry(searchable, astronomer, monkeypatch):
    from rest_framework.throttling import SimpleRateThrottle

    monkeypatch.setitem(SimpleRateThrottle.THROTTLE_RATES, "anon", "3/minute")
    monkeypatch.setitem(SimpleRateThrottle.THROTTLE_RATES, "user", "100/minute")
    address = f"2001:db8::{secrets.token_hex(2)}:{secrets.token_hex(2)}"  # a fresh address: its own count
    anonymous = APIClient(REMOTE_ADDR=address)
    assert [anonymous.get("/api/v1/tasks/").status_code for _ in range(3)] == [200] * 3
    error = _error(anonymous.get("/api/v1/tasks/"), 429)
    assert error["code"] == "throttled" and 0 < error["retry_after"] <= 60
    with_token = _client(astronomer)
    with_token.defaults["REMOTE_ADDR"] = address
    assert [with_token.get("/api/v1/tasks/").status_code for _ in range(5)] == [200] * 5


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_a_job_to_the_end(searchable, celery_worker_process):
    user = User.objects.create_user("henrietta", password="x-password-3")
    spectra = list(Spectrum.objects.filter(held_out=True)[:4])
    client = _client(user)
    job_id = client.post(
        "/api/v1/jobs/", {"task": "lens", "identifiers": [s.specobjid for s in spectra]}, format="json"
    ).json()["id"]
    deadline = time.monotonic() + 240
    while (status := client.get(f"/api/v1/jobs/{job_id}/").json())["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, (celery_worker_process.args, status)
        time.sleep(0.5)
    assert (status["status"], status["done"], status["failed"]) == ("done", 4, 0)
    rows = client.get(f"/api/v1/jobs/{job_id}/results/").json()["results"]
    assert [r["label"] for r in rows] == [search(task="lens", spectrum=s).label for s in spectra]


def test_a_token_for_a_username_and_password(astronomer):
    response = _client().post("/api/v1/auth/token/", {"username": "vera", "password": "not-a-real-password-1"})
    token = response.json()["token"]
    assert token == Token.objects.get(user=astronomer).key
    assert _client().post("/api/v1/auth/token/", {"username": "vera", "password": "wrong"}).json()["error"][
        "message"
    ] == ("Unable to log in with provided credentials.")
