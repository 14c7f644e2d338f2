"""The search, result, batch and task pages, through Django's test client (the browser tests drive chromium)."""

import json
import re

import numpy as np
import pytest
from astropy.io import fits
from django.contrib.auth.models import User

from inference.models import SearchJob
from inference.services.search import search
from kb.bpt import bpt_ratios
from kb.models import KBEntry, Spectrum

pytestmark = pytest.mark.django_db


def _json(page: str, element_id: str):
    return json.loads(
        re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', page, re.S).group(1)
    )


def test_the_search_page_offers_every_task(client, searchable):
    page = client.get("/").content.decode()
    assert 'name="identifier"' in page and 'name="file"' in page and 'name="ra"' in page
    for name in ("lens", "bpt3", "bpt5", "liner", "outlier"):
        assert f'value="{name}"' in page


def test_a_search_by_identifier_has_its_own_address_and_shows_the_evidence(client, searchable):
    spectrum = searchable["lens"].entries.first().spectrum
    response = client.post(
        "/", {"task": "lens", "identifier": spectrum.plate_mjd_fiber, "k": 3, "weight_function": "exp"}
    )
    assert response.status_code == 302 and response["Location"].startswith("/search/result/?")
    page = client.get(response["Location"]).content.decode()
    answer = search(task="lens", spectrum=spectrum)
    assert f'<span class="verdict">{answer.label}</span>' in page
    for n in answer.neighbours:
        assert n.specobjid in page and f"/spectra/{n.spectrum_id}/" in page
    assert f"v{answer.kb_version}" in page and answer.checkpoint in page
    assert answer.mock and page.count('<span class="mock"') == 1 + len(answer.neighbours)  # generated, and says so
    assert f'<strong id="voters">{answer.context.voters} of 3 neighbours</strong>' in page
    assert f'<span class="tag">{answer.context.own_lines}</span> by the BPT diagram' in page
    assert f"found {answer.context.recall:.2f} of the targets" in page and "On the test reserve" in page
    assert ('id="disagreement"' in page) == bool(answer.context.disagreements)
    detail = client.get(f"/spectra/{spectrum.pk}/").content.decode()
    assert "generated, not observed" in detail and '<span class="mock"' in detail
    plot = _json(page, "spectrum-data")
    assert [s["z"] for s in plot["spectra"]] == [spectrum.z] + [n.z for n in answer.neighbours]
    assert plot["spectra"][1]["name"].startswith(f"#1 {answer.neighbours[0].label}")
    assert "requests.post(" in page and f"&quot;identifier&quot;: &quot;{spectrum.specobjid}&quot;" in page


def test_the_form_as_the_page_sets_it_votes_by_the_versions_policy_and_quotes_its_scores(client, searchable):
    kb = searchable["lens"]
    spectrum = kb.entries.first().spectrum
    page = client.get("/").content.decode()
    assert re.search(r'<input type="number" name="k"[^>]*placeholder="as chosen"', page)  # blank: the version's K
    assert re.search(r'<option value="" selected>as chosen</option>', page)
    response = client.post(
        "/", {"task": "lens", "identifier": spectrum.plate_mjd_fiber, "k": "", "weight_function": ""}
    )
    assert response.status_code == 302
    page = client.get(response["Location"]).content.decode()
    answer = search(task="lens", spectrum=spectrum)
    assert answer.policy == kb.policy and answer.context.precision == kb.evaluation["precision"]
    assert f'<strong id="voters">{answer.context.voters} of {answer.k} neighbours</strong>' in page
    assert f'measured at <span id="scored-with">{answer.context.scored_with}</span>' in page
    other = 7 if answer.k != 7 else 5
    asked = client.get(
        "/search/result/", {"task": "lens", "identifier": spectrum.specobjid, "k": other}
    ).content.decode()
    assert 'id="scored-with"' not in asked and "No precision is quoted: its figures were measured at" in asked


def test_a_lens_result_marks_the_background_lines_at_their_redshift_and_draws_the_residual(client, searchable):
    spectrum = searchable["lens"].entries.filter(label="lens").first().spectrum
    page = client.get("/search/result/", {"task": "lens", "identifier": spectrum.specobjid}).content.decode()
    answer = search(task="lens", spectrum=spectrum)
    z_source = answer.background["z_source"]
    assert 'id="background"' in page and f"z = {z_source:.4f}" in page
    plot = _json(page, "spectrum-data")["background"]
    assert plot["z_source"] == z_source and len(plot["residual"]) == len(_json(page, "spectrum-data")["wave"])
    assert plot["lines"][f"[O III] 5007 (z = {z_source:.4f})"] == pytest.approx(5008.24 * (1 + z_source))
    bpt = client.get("/search/result/", {"task": "bpt3", "identifier": spectrum.specobjid}).content.decode()
    assert 'id="background"' not in bpt and "background" not in _json(bpt, "spectrum-data")


def test_the_bpt_diagrams_place_the_query_from_its_own_lines(client, searchable):
    spectrum = next(s for s in Spectrum.objects.all() if {"n2", "o3", "s2", "o1"} <= set(bpt_ratios(s.lines)))
    page = client.get(
        f"/search/result/?task=bpt3&identifier={spectrum.specobjid}&k=3&weight_function=exp"
    ).content.decode()
    figure = _json(page, "bpt-data")
    names = [trace.get("name") for trace in figure["data"]]
    assert {"Kauffmann et al. (2003)", "Kewley et al. (2001)", "Kewley et al. (2006) Seyfert/LINER"} <= set(names)
    query = [trace for trace in figure["data"] if trace.get("name") == "query"]
    ratios = bpt_ratios(spectrum.lines)
    assert [t["x"][0] for t in query] == pytest.approx([ratios["n2"], ratios["s2"], ratios["o1"]])
    assert [t["y"][0] for t in query] == pytest.approx([ratios["o3"]] * 3)


def test_an_uploaded_real_spectrum_is_answered_on_the_spot(client, searchable, real_spectra):
    with open(real_spectra[2], "rb") as handle:
        response = client.post("/", {"task": "bpt3", "file": handle, "k": 3, "weight_function": "exp"})
    page = response.content.decode()
    assert response.status_code == 200 and real_spectra[2].name in page
    assert f'<span class="verdict">{search(task="bpt3", path=real_spectra[2]).label}</span>' in page
    assert "open(&quot;" + real_spectra[2].name in page  # the snippet uploads the same file
    assert 'id="trust"' in page and "How far to trust it" in page


def shuffled(path, out, seed=0):
    """A copy of a real spectrum file with its observed flux values shuffled among its pixels: the same
    numbers, no spectrum."""
    with fits.open(path) as hdus:
        coadd = hdus["COADD"].data
        observed = np.flatnonzero(coadd["ivar"] > 0)
        coadd["flux"][observed] = np.random.default_rng(seed).permutation(coadd["flux"][observed])
        hdus.writeto(out)
    return out


def test_a_spectrum_unlike_any_in_the_knowledge_base_gets_a_plain_warning(client, searchable, tmp_path):
    # a validation spectrum as typical as they come, then the same file with its flux shuffled
    answers = {s: search(task="bpt3", spectrum=s) for s in Spectrum.objects.filter(validation=True)}
    typical = sorted(answers, key=lambda s: answers[s].trust.nearest_distance)[len(answers) // 2]
    assert answers[typical].trust.in_distribution
    pages = {}
    for name, path in (
        ("as observed", typical.source_file),
        ("shuffled", shuffled(typical.source_file, tmp_path / "x.fits")),
    ):
        with open(path, "rb") as handle:
            data = {"task": "bpt3", "file": handle, "k": 3, "weight_function": "exp"}
            pages[name] = client.post("/", data).content.decode()
    assert (
        "How far to trust it: in distribution" in pages["as observed"] and "trust-warning" not in pages["as observed"]
    )
    assert 'id="trust-warning"' in pages["shuffled"] and "Do not act on this vote without looking" in pages["shuffled"]
    assert "nearest neighbour" in pages["shuffled"] and "not in distribution" in pages["shuffled"]


@pytest.mark.parametrize(
    "data, message",
    [
        ({"identifier": "0000-00000-0000"}, "no ingested spectrum has the specobjid or PLATE-MJD-FIBER"),
        ({"ra": "10"}, "a position needs both RA and Dec"),
        ({"ra": "10", "dec": "-89.9"}, "no ingested spectrum within 3 arcsec"),
        ({}, "give a specobjid, a PLATE-MJD-FIBER, or an RA and Dec"),
    ],
)
def test_bad_searches_show_the_form_again_with_a_message(client, searchable, data, message):
    response = client.get("/search/result/", {"task": "lens", "k": 3, "weight_function": "exp", **data})
    assert response.status_code == 400 and message in response.content.decode()


def test_an_upload_that_is_not_a_spectrum_is_named_in_the_message(client, searchable, tmp_path):
    junk = tmp_path / "notes.fits"
    junk.write_bytes(b"SIMPLE  = T" + b"\x00" * 3000)
    with open(junk, "rb") as handle:
        response = client.post("/", {"task": "lens", "file": handle, "k": 3, "weight_function": "exp"})
    assert response.status_code == 400 and "notes.fits:" in response.content.decode()


def test_batch_search_needs_a_login(client, searchable):
    response = client.get("/batch/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/?next=/batch/")


def test_a_batch_job_from_the_page(client, searchable, django_capture_on_commit_callbacks):
    from galspec_site.celery import app

    user = User.objects.create_user("annie", password="x-password-4")
    client.force_login(user)
    spectra = list(Spectrum.objects.filter(held_out=True)[:2])
    app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                "/batch/",
                {"task": "lens", "k": 3, "identifiers": "\n".join(s.specobjid for s in spectra) + "\nnonsense\n"},
            )
    finally:
        app.conf.task_always_eager = False
    job = SearchJob.objects.get(owner=user)
    assert response.status_code == 302 and response["Location"] == f"/jobs/{job.public_id}/"
    page = client.get(response["Location"]).content.decode()
    assert "?format=csv" in page and "?format=votable" in page and "no ingested spectrum" in page
    first = page.split("<tbody>")[1].split("</tr>")[0]
    assert first.startswith("\n  <tr><td>1</td>")  # numbered from 1, as a person counts
    assert f"identifier={spectra[0].specobjid}&amp;k=3" in first and f"knowledge_base={job.knowledge_base_id}" in first
    progress = client.get(f"/jobs/{job.public_id}/progress/").json()
    assert progress["complete"] is True and progress["success"] is True
    assert progress["progress"] == {
        "current": 3,
        "total": 3,
        "percent": 100.0,
        "description": "1 could not be searched",
        "pending": False,
    }
    client.force_login(User.objects.create_user("eve", password="x-password-5"))
    assert client.get(f"/jobs/{job.public_id}/").status_code == 404
    assert client.get(f"/jobs/{job.public_id}/progress/").status_code == 404


def test_a_batch_with_nothing_to_search_is_refused(client, searchable):
    client.force_login(User.objects.create_user("annie", password="x-password-4"))
    response = client.post("/batch/", {"task": "lens", "k": 3, "identifiers": ""})
    assert response.status_code == 400 and response.content.decode().count("nothing to search") == 1
    assert not SearchJob.objects.exists()


def test_a_task_page_shows_each_version_with_its_scores(client, searchable):
    kb = searchable["lens"]
    page = client.get("/tasks/lens/").content.decode()
    assert f"v{kb.version}" in page and str(kb.size) in page
    assert f"{kb.evaluation['f1']:.3f}" in page
    figures = _json(page, "figures-data")
    (f1,) = [trace for trace in figures["scores"]["data"] if trace["name"] == "f1"]
    assert f1["y"] == [pytest.approx(kb.evaluation["f1"])]
    stacked = {trace["name"]: trace["y"][0] for trace in figures["composition"]["data"]}
    assert stacked == kb.composition


def test_the_kb_browser_filters_by_task_label_and_redshift(client, searchable):
    page = client.get("/kb/", {"task": "lens", "label": "lens"}).content.decode()
    lenses = KBEntry.objects.filter(knowledge_base=searchable["lens"], label="lens")
    assert f"{lenses.count()} entries." in page
    assert all(e.spectrum.plate_mjd_fiber in page for e in lenses)
    z_max = sorted(e.spectrum.z for e in lenses)[0]
    page = client.get("/kb/", {"task": "lens", "label": "lens", "z_max": z_max}).content.decode()
    assert "1 entries." in page


def test_a_spectrum_page_says_which_knowledge_bases_hold_it(client, searchable):
    entry = searchable["bpt3"].entries.select_related("spectrum").first()
    page = client.get(f"/spectra/{entry.spectrum_id}/").content.decode()
    assert f'bpt3 v{searchable["bpt3"].version}</a>: <span class="tag">{entry.label}</span>' in page
    assert f"/search/result/?task=lens&amp;identifier={entry.spectrum.specobjid}" in page


def test_no_page_nor_answer_shows_a_path_on_the_server(client, searchable, settings):
    from kb.models import IngestRun

    spectrum = searchable["lens"].entries.first().spectrum
    query = {"task": "lens", "identifier": spectrum.specobjid, "k": 3, "weight_function": "exp"}
    run = searchable["lens"].training_run
    paths = [str(settings.DATA_DIR), IngestRun.objects.get().source, run.checkpoint_dir]
    for url in (
        "/spectra/",
        f"/spectra/{spectrum.pk}/",
        "/pipeline/",
        "/tasks/lens/",
        "/api/v1/knowledge-bases/",
        f"/api/v1/spectra/{spectrum.pk}/",
    ):
        page = client.get(url).content.decode()
        assert not any(path in page for path in paths), url
    result = client.get("/search/result/", query).content.decode()
    assert not any(path in result for path in paths) and f"checkpoint run {run.pk}, step " in result
    answer = client.post("/api/v1/search/", query, content_type="application/json").json()
    assert answer["checkpoint"] == f"run {run.pk}, step {run.metrics['best_step']}"


def test_a_missing_page_and_the_icon_are_the_sites_own(client, searchable):
    missing = client.get("/spectra/999999/")
    assert missing.status_code == 404 and '<a class="brand"' in missing.content.decode()
    assert "no spectrum 999999" in missing.content.decode()
    icon = client.get("/favicon.ico")
    assert icon.status_code == 301 and icon["Location"].endswith("favicon.svg")
    assert 'rel="icon"' in client.get("/").content.decode()


def test_a_server_error_gets_a_page_that_says_what_to_do(client, searchable, monkeypatch):
    import kb.views

    def broken(**_):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(kb.views, "spectrum_get", broken)
    client.raise_request_exception = False
    page = client.get(f"/spectra/{searchable['lens'].entries.first().spectrum_id}/")
    assert page.status_code == 500 and "Something went wrong on our side" in page.content.decode()
    assert "the database went away" not in page.content.decode()
