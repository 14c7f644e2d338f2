"""Every page and endpoint that takes an id or a name, walked from the URL patterns, asked for another person's
private task, knowledge base, job, flag, survey and operation: the answer is the one a missing object gets
(same status, same body but for the id), and says nothing of it."""

import re
import uuid

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from inference.models import Operation, SearchJob, SurveySearch
from kb.models import Flag, KBEntry, KnowledgeBase, SearchTask
from tests.conftest import api_client, person

pytestmark = pytest.mark.django_db

SECRETS = ("zz-hidden", "Hidden Title 7781", "hidden-reason-5521", "hidden-input-0042", "olga")
MISSING_ID, MISSING_UUID, MISSING_NAME = 987654, "00000000-0000-4000-8000-000000000000", "zz-nothing"


def _routes(patterns=None, prefix=""):
    """Every route of the site as (route with its converters, e.g. 'api/v1/jobs/<uuid:public_id>/')."""
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern):
            yield route


@pytest.fixture
def hidden(searchable):
    """olga's private task with a knowledge base, her job, her flag, a survey and an admin's operation on it."""
    olga = person("olga")
    task = SearchTask.objects.create(
        name="zz-hidden",
        title="Hidden Title 7781",
        labelling="catalog",
        target_labels=["odd"],
        owner=olga,
        published=False,
    )
    public = searchable["lens"].entries.first()  # and a flag anyone may see, on a published task
    Flag.objects.create(
        task=public.knowledge_base.task,
        spectrum=public.spectrum,
        label=public.label,
        proposed_label="exclude",
        reason="seen",
        raised_by=person("pat"),
    )
    kb = KnowledgeBase.objects.get(pk=searchable["lens"].pk)  # a copy, made hidden's below
    entries = list(kb.entries.all()[:5])
    kb.pk, kb.task, kb.version, kb.in_service = None, task, 1, True
    kb.save()
    KBEntry.objects.bulk_create([KBEntry(knowledge_base=kb, spectrum=e.spectrum, label="odd") for e in entries])
    spectrum = entries[0].spectrum
    flag = Flag.objects.create(
        task=task, spectrum=spectrum, label="odd", proposed_label="other", reason="hidden-reason-5521", raised_by=olga
    )
    job = SearchJob.objects.create(
        public_id=uuid.uuid4(), owner=olga, task=task, knowledge_base=kb, inputs=[{"identifier": "hidden-input-0042"}]
    )
    survey = SurveySearch.objects.create(task=task, knowledge_base=kb, requested_by=olga)
    operation = Operation.objects.create(kind="rebuild", task=task, requested_by=person("root", "admin"))
    return {
        "task": task.name,
        "knowledge_base": kb.pk,
        "spectrum": spectrum.pk,
        "flag": flag.pk,
        "job": str(job.public_id),
        "survey": survey.pk,
        "operation": operation.pk,
    }


# Which object each parametrised route names, by the start of its route; a new route with an id or a name
# fails the walk until it is listed here.
OBJECTS = [
    (r"^(api/v1/)?jobs/<uuid:public_id>", {"public_id": "job"}),
    (r"^(api/v1/)?surveys/<int:pk>", {"pk": "survey"}),
    (r"^(api/v1/)?operations/<int:pk>", {"pk": "operation", "decision": "promote"}),
    (r"^api/v1/knowledge-bases/<int:pk>", {"pk": "knowledge_base"}),
    (r"^api/v1/flags/<int:pk>", {"pk": "flag"}),
    (r"^(api/v1/)?tasks/<slug:name>", {"name": "task"}),
    (r"^(flag|curation)/<slug:task>/<int:spectrum_id>", {"task": "task", "spectrum_id": "spectrum"}),
]
PUBLIC = [r"^(api/v1/)?spectra/<int:pk>"]  # survey spectra are everyone's
DJANGO_ADMIN = r"^admin/"  # staff only, behind Django's own model permissions


def _concrete(route: str, hidden: dict) -> tuple[str, str] | None:
    """The route for the hidden object and for a missing one; None for a route without parameters."""
    names = re.findall(r"<(?:\w+:)?(\w+)>", route)
    if not names or re.match(DJANGO_ADMIN, route) or any(re.match(p, route) for p in PUBLIC):
        return None
    objects = next((given for start, given in OBJECTS if re.match(start, route)), None)
    assert objects is not None and set(names) <= set(objects), f"{route}: which object does it name? (OBJECTS)"
    missing = {"job": MISSING_UUID, "task": MISSING_NAME}
    private, absent = route, route
    for name in names:
        what = objects[name]
        value = hidden.get(what, what)
        private = re.sub(rf"<(?:\w+:)?{name}>", str(value), private)
        absent = re.sub(
            rf"<(?:\w+:)?{name}>", str(missing.get(what, value if what == "promote" else MISSING_ID)), absent
        )
    return "/" + private.replace("^", "").replace("$", ""), "/" + absent.replace("^", "").replace("$", "")


def _body(response, private: str, absent: str, hidden: dict) -> str:
    text = response.content.decode(errors="replace")
    text = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", text)
    for value in hidden.values():
        text = re.sub(rf"\b{re.escape(str(value))}\b", "ID", text)
    return text.replace(str(MISSING_ID), "ID").replace(MISSING_UUID, "ID").replace(MISSING_NAME, "ID")


@pytest.fixture
def callers(hidden):
    mallory = person("mallory")  # an astronomer; is_staff is no role, and grants nothing
    mallory.is_staff = True
    mallory.save()
    browser = Client()
    browser.force_login(mallory)
    return {
        "anonymous page": Client(),
        "mallory's page": browser,
        "anonymous API": api_client(),
        "mallory's API": api_client(mallory),
    }


def test_no_route_tells_a_private_object_from_a_missing_one(hidden, callers):
    walked = 0
    for route in _routes():
        pair = _concrete(route, hidden)
        if pair is None:
            continue
        private, absent = pair
        api = private.startswith("/api/")
        for caller, client in callers.items():
            if ("API" in caller) != api:
                continue
            for method in ("get", "post"):
                seen = getattr(client, method)(private)
                expected = getattr(client, method)(absent)
                where = f"{method.upper()} {private} ({caller})"
                assert seen.status_code == expected.status_code, where
                assert seen.status_code in (302, 401, 403, 404, 405), where
                body = _body(seen, private, absent, hidden)
                assert body == _body(expected, private, absent, hidden), where
                assert not any(secret in body for secret in SECRETS), where
                walked += 1
    assert walked >= 60


@pytest.mark.parametrize(
    "page",
    [
        "/?knowledge_base={knowledge_base}",
        "/search/result/?task=lens&identifier=1&knowledge_base={knowledge_base}",
        "/kb/?knowledge_base={knowledge_base}",
        "/kb/?task={task}",
        "/audit/?task={task}",
        "/curation/?task={task}",
        "/api/v1/curation/agreement/?task={task}",
        "/api/v1/knowledge-bases/?task={task}",
        "/api/v1/flags/?task={task}",
        "/api/v1/spectra/?task={task}",
    ],
)
def test_an_id_or_name_in_the_query_string_shows_nothing_of_a_private_task(hidden, callers, page):
    for caller, client in callers.items():
        url, absent = page.format(**hidden), page.format(knowledge_base=MISSING_ID, task=MISSING_NAME)
        if ("API" in caller) != url.startswith("/api/"):
            continue
        seen, expected = client.get(url), client.get(absent)
        assert seen.status_code == expected.status_code, (url, caller)
        body = _body(seen, url, absent, hidden)
        assert body == _body(expected, url, absent, hidden), (url, caller)
        assert not any(secret in body for secret in SECRETS), (url, caller)


def test_a_job_is_its_owners_alone_even_for_staff(hidden):
    """is_staff (Django's flag for the admin site) is no role: it reads no one else's job."""
    staff = person("stan", None)
    staff.is_staff = True
    staff.save()
    for path in ("/api/v1/jobs/{job}/", "/api/v1/jobs/{job}/results/"):
        assert api_client(staff).get(path.format(**hidden)).status_code == 404
    owner = api_client(SearchJob.objects.get(public_id=hidden["job"]).owner)
    assert owner.get("/api/v1/jobs/{job}/".format(**hidden)).status_code == 200


def test_withdrawing_anothers_flag_answers_as_a_missing_one(hidden):
    client = api_client(person("mallory", "curator"))  # even a curator withdraws only their own
    other = client.post(f"/api/v1/flags/{hidden['flag']}/withdraw/")
    missing = client.post(f"/api/v1/flags/{MISSING_ID}/withdraw/")
    assert other.status_code == missing.status_code == 404
    assert Flag.objects.get(pk=hidden["flag"]).status == Flag.Status.OPEN
