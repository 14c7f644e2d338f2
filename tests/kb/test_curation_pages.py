"""Curation through the pages and the API: flag, review in the queue, the audit trail, agreement."""

from urllib.parse import quote

import pytest
from django.contrib.auth.models import User

from kb.models import AuditEvent, Correction, Flag
from kb.services.curation import flag_raise
from tests.conftest import api_client as api
from tests.conftest import form_as_rendered, person

pytestmark = pytest.mark.django_db


@pytest.fixture
def entry(searchable):
    return searchable["lens"].entries.filter(label="other").select_related("spectrum", "knowledge_base__task").first()


def test_flag_from_the_spectrum_page(client, entry):
    client.force_login(person("vera", "astronomer"))
    page = client.get(f"/spectra/{entry.spectrum_id}/").content.decode()
    back = f"/spectra/{entry.spectrum_id}/"
    assert f'href="/flag/lens/{entry.spectrum_id}/?next={back}"' in page
    form = client.get(f"/flag/lens/{entry.spectrum_id}/", {"next": back}).content.decode()
    assert 'value="exclude"' in form and 'value="lens"' in form and 'labelled <span class="tag">other</span>' in form
    assert 'id="spectrum-plot"' in form
    untouched = {**form_as_rendered(form, "flag"), "reason": "an arc"}
    assert untouched["proposed_label"] == "" and untouched["next"] == back  # the page proposes nothing itself
    refused = client.post(f"/flag/lens/{entry.spectrum_id}/", untouched)
    assert refused.status_code == 400 and not Flag.objects.exists()
    response = client.post(f"/flag/lens/{entry.spectrum_id}/", {**untouched, "proposed_label": "lens"})
    assert response.status_code == 302 and response["Location"] == back  # back where the person came from
    client.force_login(person("annie", "astronomer"))
    elsewhere = {**untouched, "proposed_label": "exclude", "next": "https://evil.example/"}
    sent = client.post(f"/flag/lens/{entry.spectrum_id}/", elsewhere)  # recorded, and never sent off-site
    assert sent.status_code == 302 and sent["Location"] == back
    client.force_login(Flag.objects.get(raised_by__username="vera").raised_by)
    flag = Flag.objects.get(raised_by__username="vera")
    assert (flag.raised_by.username, flag.proposed_label, flag.entry) == ("vera", "lens", entry)
    again = client.post(f"/flag/lens/{entry.spectrum_id}/", {"proposed_label": "exclude", "reason": "again"})
    assert again.status_code == 400 and "you already have an open flag" in again.content.decode()


def test_anonymous_people_and_people_without_a_role_cannot_flag(client, entry):
    response = client.post(f"/flag/lens/{entry.spectrum_id}/", {"proposed_label": "lens", "reason": "x"})
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    client.force_login(person("mallory", None))
    assert client.post(f"/flag/lens/{entry.spectrum_id}/", {"proposed_label": "lens", "reason": "x"}).status_code == 403
    assert (
        api()
        .post(
            "/api/v1/flags/", {"task": "lens", "spectrum": entry.spectrum_id, "proposed_label": "lens", "reason": "x"}
        )
        .status_code
        == 401
    )
    assert not Flag.objects.exists()


def _flag_as_lens(entry) -> Flag:
    """An astronomer's flag: the entry is a lens."""
    return flag_raise(
        user=person("vera", "astronomer"),
        task=entry.knowledge_base.task,
        spectrum=entry.spectrum,
        proposed_label="lens",
        reason="an arc",
    )


def test_a_curator_works_through_the_queue(client, entry):
    _flag_as_lens(entry)
    curator = person("cecilia", "curator")
    client.force_login(curator)
    queue = client.get("/curation/").content.decode()
    assert f"/curation/lens/{entry.spectrum_id}/" in queue and "lens (1.00)" in queue
    item = client.get(f"/curation/lens/{entry.spectrum_id}/").content.decode()
    assert "an arc" in item and 'id="spectrum-plot"' in item and "spectrum-data" in item
    review = form_as_rendered(item, "review")
    assert review["label"] == "lens"  # the page sets what the flags propose
    missing_note = client.post(
        f"/curation/lens/{entry.spectrum_id}/", {"decision": "accept", "label": "lens", "note": ""}
    )
    assert missing_note.status_code == 400 and not Correction.objects.exists()
    done = client.post(
        f"/curation/lens/{entry.spectrum_id}/", {"decision": "accept", "label": "lens", "note": "clear arc"}
    )
    assert done.status_code == 302
    correction = Correction.objects.get()
    assert (correction.decided_by, correction.corrected_label, correction.rule) == (curator, "lens", "curator")
    audit = client.get("/audit/?task=lens").content.decode()
    assert "flag_accepted" in audit and "correction_applied" in audit and "clear arc" in audit
    assert "{&#x27;" not in audit and "<dt>proposed label</dt><dd>lens</dd>" in audit  # fields, not a dict


def test_astronomers_see_neither_the_queue_nor_the_audit_trail(client, entry):
    for url in ("/curation/", f"/curation/lens/{entry.spectrum_id}/", "/audit/", "/operations/"):
        anonymous = client.get(url)  # asked to log in, and brought back after
        assert anonymous.status_code == 302 and anonymous["Location"] == f"/accounts/login/?next={quote(url)}"
    astronomer = person("vera", "astronomer")
    client.force_login(astronomer)
    refused = client.get("/curation/")
    assert refused.status_code == 403 and "ask an administrator to add the role" in refused.content.decode()
    assert '<a class="brand"' in refused.content.decode()  # the site's own page, not a bare "403 Forbidden"
    assert client.get("/audit/").status_code == 403
    assert api(astronomer).get("/api/v1/audit/").status_code == 403


def test_flags_through_the_api(entry):
    vera, ann = person("vera", "astronomer"), person("ann", "astronomer")
    body = {"task": "lens", "spectrum": entry.spectrum_id, "proposed_label": "lens", "reason": "an arc"}
    created = api(vera).post("/api/v1/flags/", body)
    assert created.status_code == 201 and created.json()["status"] == "open"
    twice = api(vera).post("/api/v1/flags/", body)
    assert twice.status_code == 400 and "already have an open flag" in twice.json()["error"]["message"]
    bad = api(ann).post("/api/v1/flags/", {**body, "proposed_label": "quasar"})
    assert "not a label of task lens" in bad.json()["error"]["message"]
    assert api(ann).get("/api/v1/flags/").json()["count"] == 0  # only one's own
    assert api(vera).get("/api/v1/flags/?status=open").json()["count"] == 1
    flag_id = created.json()["id"]
    assert api(ann).post(f"/api/v1/flags/{flag_id}/withdraw/").status_code == 404  # as if it did not exist
    assert api(vera).post(f"/api/v1/flags/{flag_id}/withdraw/").json()["status"] == "withdrawn"


def test_decisions_audit_and_agreement_through_the_api(entry):
    for name in ("vera", "ann"):
        api(person(name, "astronomer")).post(
            "/api/v1/flags/", {"task": "lens", "spectrum": entry.spectrum_id, "proposed_label": "lens", "reason": "arc"}
        )
    curator = person("cecilia", "curator")
    assert (
        api(User.objects.get(username="ann"))
        .post(
            "/api/v1/curation/decisions/", {"task": "lens", "spectrum": entry.spectrum_id, "accept": True, "note": "me"}
        )
        .status_code
        == 403
    )
    decided = api(curator).post(
        "/api/v1/curation/decisions/",
        {"task": "lens", "spectrum": entry.spectrum_id, "accept": True, "note": "arc confirmed"},
    )
    assert decided.json()["corrected_label"] == "lens" and decided.json()["decided_by"] == "cecilia"
    late = api(curator).post(
        "/api/v1/curation/decisions/",
        {"task": "lens", "spectrum": entry.spectrum_id, "accept": False, "note": "second thoughts"},
    )
    assert late.status_code == 400 and "has no open flags" in late.json()["error"]["message"]
    events = api(curator).get("/api/v1/audit/?task=lens&action=flag_accepted").json()["results"]
    assert len(events) == 2 and {e["actor"] for e in events} == {"cecilia"}
    assert AuditEvent.objects.filter(action="flag_raised").count() == 2
    agreement = api(curator).get("/api/v1/curation/agreement/?task=lens").json()
    (item,) = agreement["entries"]
    assert item["fractions"] == {"lens": 1.0} and item["raters"] == 3


def test_the_kb_browser_and_api_filter_flagged_entries(client, entry):
    _flag_as_lens(entry)
    page = client.get("/kb/", {"task": "lens", "flagged": "true"}).content.decode()
    assert "1 entries." in page and entry.spectrum.plate_mjd_fiber in page
    submitted = client.get("/kb/", {"knowledge_base": "", "task": "lens"}).content.decode()  # as the form sends it
    assert f"{entry.knowledge_base.size} entries." in submitted  # the version in service, not every version
    browser = client.get("/kb/").content.decode()  # as the page first shows itself
    assert '<option value="" selected>any</option>' in browser and '<option value="lens">' in browser
    shouted = client.get("/kb/", {"label": "LENS"}).content.decode()  # any case finds the label
    assert f"{entry.knowledge_base.composition['lens']} entries." in shouted
    unknown = client.get("/kb/", {"task": "no-such-task"}).content.decode()
    assert "No entries match." in unknown and "Select a valid choice" in unknown
    unflagged = api().get(f"/api/v1/knowledge-bases/{entry.knowledge_base_id}/entries/?flagged=false&page_size=1000")
    assert unflagged.json()["count"] == entry.knowledge_base.size - 1


def test_an_admin_changes_a_tasks_consensus_rule_and_it_is_audited(client, entry):
    from django.contrib.auth.models import User

    client.force_login(User.objects.create_superuser("ada", password="ada-password-1"))
    response = client.post(
        "/admin/kb/searchtask/" + str(entry.knowledge_base.task_id) + "/change/",
        {"consensus_flags": 2, "curator_decides": "on"},
    )
    assert response.status_code == 302
    event = AuditEvent.objects.get(action="task_rule_changed")
    assert event.before == {"consensus_flags": 3, "curator_decides": True}
    assert event.after == {"consensus_flags": 2, "curator_decides": True} and event.actor.username == "ada"
    for name in ("vera", "ann"):
        flag_raise(
            user=person(name, "astronomer"),
            task=entry.knowledge_base.task,
            spectrum=entry.spectrum,
            proposed_label="lens",
            reason="arc",
        )
    assert Correction.objects.get().rule == "consensus"  # two flags are now enough


def test_accepting_an_exclude_flag_as_the_page_sets_it_excludes_the_entry(client, entry):
    flag_raise(
        user=person("vera"),
        task=entry.knowledge_base.task,
        spectrum=entry.spectrum,
        proposed_label="exclude",
        reason="a star",
    )
    client.force_login(person("cecilia", "curator"))
    url = f"/curation/lens/{entry.spectrum_id}/"
    decision = {**form_as_rendered(client.get(url).content.decode(), "review"), "note": "a star indeed"}
    assert client.post(url, {**decision, "decision": "accept"}).status_code == 302
    assert Correction.objects.get().corrected_label == "exclude"


def test_a_decision_leads_straight_to_the_next_entry_until_none_is_left(client, searchable):
    first, second = searchable["lens"].entries.filter(label="other").select_related("spectrum")[:2]
    for entry in (first, second):
        flag_raise(
            user=person(f"v{entry.pk}"),
            task=entry.knowledge_base.task,
            spectrum=entry.spectrum,
            proposed_label="lens",
            reason="an arc",
        )
    client.force_login(person("cecilia", "curator"))
    url = f"/curation/lens/{first.spectrum_id}/"
    page = client.get(url).content.decode()
    assert f'id="next-item" href="/curation/lens/{second.spectrum_id}/"' in page and "<kbd>a</kbd> accept" in page
    decided = client.post(url, {**form_as_rendered(page, "review"), "decision": "reject", "note": "no arc"})
    assert decided["Location"] == f"/curation/lens/{second.spectrum_id}/"
    last = f"/curation/lens/{second.spectrum_id}/"
    assert 'id="next-item"' not in client.get(last).content.decode()  # the last in the queue: none after it
    done = client.post(
        last,
        {**form_as_rendered(client.get(last).content.decode(), "review"), "decision": "accept", "note": "an arc"},
        follow=True,
    )
    assert done.redirect_chain[-1][0] == "/curation/" and "No flags are left to review." in done.content.decode()


def test_a_flagger_withdraws_their_flag_from_its_page(client, entry):
    flag = _flag_as_lens(entry)
    url = f"/flag/lens/{entry.spectrum_id}/"
    client.force_login(person("annie"))
    assert "Withdraw it" not in client.get(url).content.decode()
    assert client.post(f"{url}withdraw/").status_code == 404  # not theirs to withdraw
    client.force_login(flag.raised_by)
    assert "Withdraw it" in client.get(url).content.decode()
    response = client.post(f"{url}withdraw/")
    assert response.status_code == 302 and Flag.objects.get().status == "withdrawn"
    assert AuditEvent.objects.filter(action="flag_withdrawn", actor=flag.raised_by).exists()
