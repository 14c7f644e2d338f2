"""The site as an astronomer uses it: Playwright driving Debian's chromium against a live server.

No browser is downloaded: Playwright launches /usr/bin/chromium (installed by .ci/run through apt).
Batch jobs are run by a real Celery worker process.
"""

import csv
import os
import shutil

import pytest
from astropy.table import Table
from django.contrib.auth.models import User

from inference.services.search import search
from kb.models import Spectrum

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.django_db(transaction=True),
    # skipped on a machine without chromium, never in CI (.ci/run installs it), where its absence must fail
    pytest.mark.skipif(
        CHROMIUM is None and not os.environ.get("CI"),
        reason="Debian's chromium is not installed (apt-get install chromium)",
    ),
]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread, which Django's ORM guard takes for
    # async code; the test code is plain synchronous code, so the guard is lifted while it runs.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            assert CHROMIUM, "no chromium on this machine: apt-get install chromium"
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            yield browser
            browser.close()
    finally:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]


@pytest.fixture
def page(browser):
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def _rgb(colour: str) -> str:
    """A CSS colour, #rrggbb or rgb(r, g, b), as rgb(r, g, b)."""
    if colour.startswith("#"):
        return "rgb({}, {}, {})".format(*(int(colour[i : i + 2], 16) for i in (1, 3, 5)))
    return colour


def _plot_layout(page, element_id: str) -> dict:
    return page.evaluate(
        f"() => {{ const p = document.getElementById('{element_id}'); "
        "return {traces: p.data.map(t => t.name), layout: p._fullLayout.xaxis.range, "
        "title: p._fullLayout.xaxis.title.text}; }"
    )


def test_upload_a_real_spectrum_and_read_its_evidence(live_server, page, searchable, real_spectra):
    spectrum_file = real_spectra[1]  # spec-0266-51630-0215: all four BPT ratios from its own lines
    page.goto(live_server.url + "/")
    page.select_option("select[name=task]", "bpt3")
    page.set_input_files("input[name=file]", str(spectrum_file))
    page.click("button[type=submit]")
    page.wait_for_selector("#spectrum-plot .main-svg")
    expected = search(task="bpt3", path=spectrum_file)
    assert page.text_content(".verdict") == expected.label
    assert not expected.mock and page.locator(".vote .mock").count() == 0  # a real SDSS file: no mock badge
    assert page.locator("#neighbours .mock").count() == 3  # its neighbours come from the mock survey
    assert page.locator("#neighbours tbody tr").count() == 3
    assert (
        page.locator("#neighbours tbody tr").first.locator("td").nth(1).text_content()
        == expected.neighbours[0].specobjid
    )

    plot = _plot_layout(page, "spectrum-plot")
    assert len(plot["traces"]) == 4 and plot["traces"][0] == f"query: {spectrum_file.name}"
    assert plot["title"].startswith("rest-frame")  # where the neighbours' lines line up
    page.click("button[data-frame=observed]")
    assert _plot_layout(page, "spectrum-plot")["title"].startswith("observed")
    page.click("button[data-frame=rest]")
    full_y = page.evaluate("() => document.getElementById('spectrum-plot')._fullLayout.yaxis.range")
    page.click("button[data-zoom=halpha]")
    plot = _plot_layout(page, "spectrum-plot")
    assert plot["title"].startswith("rest-frame") and plot["layout"] == [6520, 6620]
    shown = page.evaluate(  # the y axis fits what the window shows, not the whole spectrum
        "() => { const p = document.getElementById('spectrum-plot'); const [lo, hi] = p._fullLayout.xaxis.range;"
        " const ys = p.data.flatMap(t => t.y.filter((y, j) => y !== null && t.x[j] >= lo && t.x[j] <= hi));"
        " return {min: Math.min(...ys), max: Math.max(...ys), range: p._fullLayout.yaxis.range}; }"
    )
    assert shown["range"][0] <= shown["min"] < shown["max"] <= shown["range"][1]
    assert shown["range"][1] - shown["range"][0] < 1.25 * (shown["max"] - shown["min"])
    assert shown["range"][1] - shown["range"][0] < full_y[1] - full_y[0]
    page.click("button[data-frame=observed]")
    observed = _plot_layout(page, "spectrum-plot")["layout"]
    assert observed[0] > 6520  # the same rest-frame window, moved to the query's redshift

    page.wait_for_selector("#bpt-plot .main-svg")
    bpt = page.evaluate("() => document.getElementById('bpt-plot').data.map(t => t.name)")
    assert "query" in bpt and "Kewley et al. (2006) Seyfert/LINER" in bpt
    # one colour per spectrum in the table, the spectra and the BPT diagrams, the query's never reused
    colours = page.evaluate(
        "() => ({table: [...document.querySelectorAll('#neighbours .swatch')]"
        ".map(s => getComputedStyle(s).backgroundColor),"
        " spectra: document.getElementById('spectrum-plot').data.map(t => t.line.color),"
        " bpt: Object.fromEntries(document.getElementById('bpt-plot').data"
        ".filter(t => t.mode && t.mode.includes('markers')).map(t => [t.name, t.marker.color]))})"
    )
    spectra = [_rgb(c) for c in colours["spectra"]]
    assert colours["table"] == spectra[1:] and spectra[0] not in spectra[1:] and len(set(spectra)) == 4
    for i, neighbour in enumerate(expected.neighbours, start=1):
        if f"#{i} {neighbour.specobjid}" in colours["bpt"]:
            assert _rgb(colours["bpt"][f"#{i} {neighbour.specobjid}"]) == spectra[i]
    assert _rgb(colours["bpt"]["query"]) == spectra[0]
    page.click("button[data-offset=on]")  # the spectra drawn apart, each shifted by a step more
    shifted = page.evaluate("() => document.getElementById('spectrum-plot').data.map(t => t.name)")
    assert "(+" in shifted[1] and "(+" not in shifted[0]
    assert "requests.post(" in page.text_content("#snippet")


def test_search_by_specobjid(live_server, page, searchable):
    spectrum = Spectrum.objects.filter(held_out=True).first()
    page.goto(live_server.url + "/")
    page.select_option("select[name=task]", "lens")
    page.fill("input[name=identifier]", spectrum.specobjid)
    page.click("button[type=submit]")
    page.wait_for_selector("#spectrum-plot .main-svg")
    assert "/search/result/?" in page.url and f"identifier={spectrum.specobjid}" in page.url
    answer = search(task="lens", spectrum=spectrum)
    assert page.text_content(".verdict") == answer.label
    links = page.locator("#neighbours tbody tr td:nth-child(2) a").all_text_contents()
    assert links == [n.specobjid for n in answer.neighbours]


def test_a_bad_identifier_is_explained(live_server, page, searchable):
    page.goto(live_server.url + "/")
    page.fill("input[name=identifier]", "1234-56789-0001")
    page.click("button[type=submit]")
    assert "no ingested spectrum has the specobjid or PLATE-MJD-FIBER '1234-56789-0001'" in page.text_content(".errors")


def test_a_batch_job_runs_to_completion_and_its_csv_downloads(live_server, page, searchable, celery_worker_process):
    User.objects.create_user("cecilia", password="a-long-password-6")
    spectra = list(Spectrum.objects.filter(held_out=True)[:5])
    page.goto(live_server.url + "/batch/")
    assert "/accounts/login/" in page.url
    page.fill("input[name=username]", "cecilia")
    page.fill("input[name=password]", "a-long-password-6")
    page.click("main button[type=submit]")
    page.wait_for_url("**/batch/")
    page.select_option("select[name=task]", "lens")
    page.fill("textarea[name=identifiers]", "\n".join(s.plate_mjd_fiber for s in spectra))
    page.click("main button[type=submit]")
    page.wait_for_url("**/jobs/*/")
    page.wait_for_selector("#results", timeout=240_000)  # the page reloads itself when the bar completes
    assert page.text_content("#job-status") == "done"
    assert page.locator("#results tbody tr").count() == 5
    with page.expect_download() as download:
        page.click("#download-csv")
    rows = Table.read(open(download.value.path()).read(), format="ascii.ecsv")  # as astropy or TOPCAT reads it
    assert list(rows["plate_mjd_fiber"]) == [s.plate_mjd_fiber for s in spectra]
    assert list(rows["label"]) == [search(task="lens", spectrum=s).label for s in spectra]
    assert rows["ra"].unit == "deg" and rows.meta["task"] == "lens" and rows.meta["checkpoint"].startswith("run ")


def _log_in(page, live_server, username: str, password: str, then: str) -> None:
    page.goto(f"{live_server.url}/accounts/login/?next={then}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("main button[type=submit]")
    page.wait_for_url(f"**{then}")


def test_flag_a_neighbour_then_a_curator_accepts(live_server, page, searchable):
    from django.contrib.auth.models import Group

    from kb.models import Correction

    for name, role in (("vera", "astronomer"), ("cecilia", "curator")):
        User.objects.create_user(name, password=f"{name}-password-1").groups.add(Group.objects.get(name=role))
    spectrum = Spectrum.objects.filter(held_out=True).first()
    _log_in(page, live_server, "vera", "vera-password-1", "/")
    page.select_option("select[name=task]", "lens")
    page.fill("input[name=identifier]", spectrum.specobjid)
    page.click("main button[type=submit]")
    page.wait_for_selector("#neighbours")
    page.locator("#neighbours tbody tr").first.locator("a.flag").click()
    assert page.input_value("select[name=proposed_label]") == ""  # the flag form proposes nothing itself
    page.select_option("select[name=proposed_label]", "exclude")
    page.fill("textarea[name=reason]", "a second set of lines at another redshift")
    page.click("main button[type=submit]")
    assert "Flag recorded" in page.text_content(".messages")

    page.context.clear_cookies()
    _log_in(page, live_server, "cecilia", "cecilia-password-1", "/curation/")
    page.click("#queue tbody tr a")
    page.wait_for_selector("#flags")
    assert "a second set of lines" in page.text_content("#flags")
    assert page.evaluate("() => getComputedStyle(document.getElementById('review')).position") == "sticky"
    page.fill("textarea[name=note]", "confirmed in the spectrum")
    page.locator("h1").click()  # out of the note: keys decide now
    page.keyboard.press("a")  # accept, the menu left as the page sets it: what the flag proposed
    page.wait_for_url("**/curation/")
    correction = Correction.objects.get()
    assert (correction.corrected_label, correction.decided_by.username) == ("exclude", "cecilia")


def _start_and_wait(page, select: str, value: str, url: str, result: str, *, confirm: bool = False) -> None:
    """Choose ``value`` in ``select``, submit (and ``confirm`` what the page says it will do), and wait on
    the new run's page (at ``url``) until ``result`` shows: the page reloads itself when its bar completes."""
    page.select_option(select, value)
    page.click("main button[type=submit]")
    if confirm:
        page.wait_for_selector("#plan")
        page.click("main button[type=submit]")
    page.wait_for_url(url)
    page.wait_for_selector(result, timeout=240_000)


def test_an_admin_rebuilds_watches_and_promotes(live_server, page, searchable, celery_worker_process):
    from django.contrib.auth.models import Group

    from inference.models import Operation

    User.objects.create_user("grace", password="grace-password-1").groups.add(Group.objects.get(name="admin"))
    _log_in(page, live_server, "grace", "grace-password-1", "/operations/")
    assert page.input_value("select[name=kind]") == "rebuild"  # the cheapest is the default
    _start_and_wait(page, "select[name=kind]", "rebuild", "**/operations/*/", "#comparison", confirm=True)
    assert page.text_content("#operation-status") == "done"
    assert "bpt3" in page.text_content("#comparison") and "lens" in page.text_content("#comparison")
    page.click("#promote")
    page.wait_for_selector("text=Promoted by grace")
    operation = Operation.objects.get()
    assert operation.status == "promoted" and operation.candidates.count() == 2
    assert all(kb.in_service for kb in operation.candidates.all())


def test_an_astronomer_tunes_the_lens_share_and_an_admin_promotes_it(
    live_server, page, searchable, celery_worker_process
):
    from django.contrib.auth.models import Group

    from inference.models import Operation

    for name, role in (("vera", "astronomer"), ("grace", "admin")):
        User.objects.create_user(name, password=f"{name}-password-1").groups.add(Group.objects.get(name=role))
    old = searchable["lens"]
    _log_in(page, live_server, "vera", "vera-password-1", "/tasks/lens/")
    page.wait_for_selector("#share-plot .main-svg")
    page.fill("input[name=target_fraction]", "0.4")
    page.click("#compose-form button[type=submit]")
    page.wait_for_url("**/operations/*/")
    page.wait_for_selector("#comparison", timeout=240_000)
    assert page.text_content("#operation-status") == "done" and page.locator("#promote").count() == 0
    candidate = Operation.objects.get().candidates.get()
    assert candidate.target_fraction == 0.4 and candidate.evaluation["test_spectra"] == old.evaluation["test_spectra"]

    # a spectrum whose neighbours the new share changes: searched with the candidate, they are its own
    probe = next(
        s
        for s in Spectrum.objects.filter(held_out=True).order_by("pk")
        if search(task="lens", spectrum=s).neighbours
        != search(task="lens", spectrum=s, knowledge_base=candidate).neighbours
    )
    page.click("a.search-with")
    page.fill("input[name=identifier]", probe.specobjid)
    page.click("main button[type=submit]")
    page.wait_for_selector("#neighbours")
    assert f"v{candidate.version}" in page.text_content(".vote")
    named = search(task="lens", spectrum=probe, knowledge_base=candidate)
    links = page.locator("#neighbours tbody tr td:nth-child(2) a").all_text_contents()
    assert links == [n.specobjid for n in named.neighbours]

    page.context.clear_cookies()
    _log_in(page, live_server, "grace", "grace-password-1", f"/operations/{Operation.objects.get().pk}/")
    page.click("#promote")
    page.wait_for_selector("text=Promoted by grace")
    assert search(task="lens", spectrum=probe).kb_version == candidate.version


def test_a_survey_search_runs_and_its_candidates_lead_to_their_evidence(
    live_server, page, searchable, celery_worker_process
):
    User.objects.create_user("henrietta", password="a-long-password-7")
    _log_in(page, live_server, "henrietta", "a-long-password-7", "/surveys/")
    _start_and_wait(page, "select[name=task]", "lens", "**/surveys/*/", "#candidates")
    assert page.text_content("#survey-status") == "done"
    expected = [s for s in Spectrum.objects.all() if search(task="lens", spectrum=s).label == "lens"]
    assert page.locator("#candidates tbody tr").count() == len(expected) == int(page.text_content("#found"))
    first = page.locator("#candidates tbody tr").first
    specobjid = first.locator("td").nth(1).text_content()
    first.get_by_role("link", name="evidence").click()
    page.wait_for_url("**/search/result/**")
    assert specobjid in page.content() and page.locator("#neighbours tbody tr").count() == 3


HUNTED = "broad-line AGN"  # a kind of the mock's outliers: the catalog's examples and the ones held back


def test_an_astronomer_hunts_a_population_from_their_own_catalog(
    live_server, page, catalog_snapshot, data_dir, celery_worker_process, tmp_path
):
    from django.contrib.auth.models import Group

    from kb.models import SearchTask

    catalog_snapshot.restore(data_dir)
    for name, role in (("vera", "astronomer"), ("annie", "astronomer"), ("cecilia", "curator")):
        User.objects.create_user(name, password=f"{name}-password-1").groups.add(Group.objects.get(name=role))
    truth = csv.DictReader((catalog_snapshot.folder.parent / "survey" / "mock_truth.csv").open())
    kind = [row["specobjid"] for row in truth if row["kind"] == HUNTED]
    known, held_back = kind[:30], set(kind[30:])
    catalog = tmp_path / "broad-line.csv"
    catalog.write_text("specobjid\n" + "\n".join(known) + "\n")

    _log_in(page, live_server, "vera", "vera-password-1", "/tasks/")
    page.set_input_files("input[name=catalog]", str(catalog))
    page.fill("input[name=target_label]", "broad-line")
    page.fill("input[name=name]", "broad-line")
    page.click("#catalog-form button[type=submit]")
    page.wait_for_url("**/tasks/broad-line/")
    assert "30 rows, 30 matched" in page.text_content("#match-summary")

    page.click("#compose-form button[type=submit]")  # the share the page offers
    page.wait_for_url("**/operations/*/")
    page.wait_for_selector("#comparison", timeout=240_000)
    page.click("#promote")  # the owner decides for a private task
    page.wait_for_selector("text=Promoted by vera")
    page.goto(f"{live_server.url}/tasks/broad-line/")
    cross = page.text_content("td.cross-validation")
    precision, recall, _ = (float(x) for x in cross.split("(")[0].split(" / "))
    assert precision > 0.4 and recall > 0.4, cross  # on this mock of outliers: 0.64 and 0.61 when measured

    page.goto(f"{live_server.url}/surveys/")
    page.select_option("select[name=task]", "broad-line")
    page.click("main button[type=submit]")
    page.wait_for_url("**/surveys/*/")
    page.wait_for_selector("#candidates", timeout=240_000)
    rows = page.locator("#candidates tbody tr")
    first = [rows.nth(i).locator("td").nth(1).text_content() for i in range(min(50, rows.count()))]
    found = held_back & set(first)
    assert len(found) > 0.5 * len(held_back), f"{len(found)} of {len(held_back)} held-back examples found"
    flagged = page.locator("#candidates td.in-catalog").all_text_contents()
    assert flagged.count("yes") == sum(specobjid in known for specobjid in first)

    page.context.clear_cookies()
    _log_in(page, live_server, "annie", "annie-password-1", "/tasks/")
    assert page.goto(f"{live_server.url}/tasks/broad-line/").status == 404
    page.context.clear_cookies()
    _log_in(page, live_server, "cecilia", "cecilia-password-1", "/tasks/broad-line/")
    page.click("#publish")
    page.wait_for_selector("text=is published")
    assert SearchTask.objects.get(name="broad-line").published
    page.context.clear_cookies()
    _log_in(page, live_server, "annie", "annie-password-1", "/tasks/")
    assert page.goto(f"{live_server.url}/tasks/broad-line/").status == 200


def test_the_result_page_fits_a_phone_and_the_header_one_line_on_a_desktop(live_server, page, searchable):
    spectrum = Spectrum.objects.filter(held_out=True).first()
    result = f"{live_server.url}/search/result/?task=lens&identifier={spectrum.specobjid}&k=3&weight_function=exp"
    User.objects.create_superuser("grace", password="grace-password-1")  # every link of the header is shown
    page.set_viewport_size({"width": 1280, "height": 800})
    _log_in(page, live_server, "grace", "grace-password-1", "/")
    page.goto(result)
    page.wait_for_selector("#spectrum-plot .main-svg")
    tops = page.evaluate(
        "() => [...document.querySelectorAll('header nav a, header nav button')]"
        ".map(e => e.getBoundingClientRect().top)"
    )
    assert max(tops) - min(tops) < 5, f"the header wraps: {tops}"
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(result)
    page.wait_for_selector("#spectrum-plot .main-svg")
    widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"the page scrolls sideways on a phone: {widths}"
    page.keyboard.press("Tab")  # the first stop: a link past the header to the content
    assert page.evaluate("() => document.activeElement.textContent") == "Skip to the content"
    page.click("header nav a[href='/help/']")
    assert "exp(−distance)" in page.text_content("main")


def test_the_pages_ask_nothing_of_any_other_server(live_server, page, searchable):
    spectrum = Spectrum.objects.filter(held_out=True).first()
    asked = []
    page.on("request", lambda request: asked.append(request.url))
    for url in (
        f"/search/result/?task=lens&identifier={spectrum.specobjid}&k=3&weight_function=exp",
        f"/spectra/{spectrum.pk}/",
        "/tasks/lens/",
    ):
        page.goto(live_server.url + url)
        page.wait_for_selector(".plot .main-svg")
    assert asked and all(u.startswith(live_server.url) or u.startswith("data:") for u in asked), asked
    context = page.evaluate("() => document.querySelector('.plot')._context")  # plotly's servers never named
    assert context["topojsonURL"] == "/static/vendor/plotly/" and not context["showLink"]
    assert context["plotlyServerURL"] == "" and not context["showSendToCloud"]
