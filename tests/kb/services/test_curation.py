"""Flags, curators' decisions, corrections in the next knowledge-base version, and the audit trail."""

import threading

import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import PermissionDenied
from django.db import connection

from inference.services.knowledge_bases import knowledge_base_build
from kb.models import EXCLUDE, AuditEvent, Correction, Flag, KBEntry
from kb.selectors import agreement_report, curation_items
from kb.services.curation import flag_raise, flag_review, flag_withdraw
from tests.conftest import person, shipped_task

pytestmark = pytest.mark.django_db


def curation_events():
    """The audit trail without the checkpoint and knowledge-base promotions the fixture's builds recorded."""
    built = AuditEvent.objects.filter(action="knowledge_base_promoted", actor=None, reason="")
    imported = AuditEvent.objects.filter(action="checkpoint_promoted", actor=None)
    return AuditEvent.objects.exclude(pk__in=built).exclude(pk__in=imported).order_by("id")


def _other_entry(kb) -> KBEntry:
    return kb.entries.filter(label="other").select_related("spectrum").first()


def test_a_flag_is_recorded_with_its_reason_and_audited(searchable):
    entry, vera = _other_entry(searchable["lens"]), person("vera")
    flag = flag_raise(
        user=vera,
        task=entry.knowledge_base.task,
        spectrum=entry.spectrum,
        proposed_label="lens",
        reason="arc in the image; [O II] at a second redshift",
        entry=entry,
    )
    assert (flag.status, flag.label, flag.proposed_label) == ("open", "other", "lens")
    (event,) = curation_events()
    assert (event.actor, event.action, event.subject) == (vera, "flag_raised", f"flag {flag.pk}")
    assert event.after == {"status": "open", "label": "other", "proposed_label": "lens"} and "arc" in event.reason


def test_a_flag_submitted_twice_is_refused_and_nothing_changes(searchable):
    entry, vera = _other_entry(searchable["lens"]), person("vera")
    task = entry.knowledge_base.task
    first = flag_raise(user=vera, task=task, spectrum=entry.spectrum, proposed_label="lens", reason="arc")
    with pytest.raises(ValueError, match=f"you already have an open flag on this entry \\(flag {first.pk}"):
        flag_raise(user=vera, task=task, spectrum=entry.spectrum, proposed_label=EXCLUDE, reason="again")
    assert Flag.objects.count() == 1 and curation_events().count() == 1
    flag_withdraw(user=vera, flag=first)
    flag_raise(user=vera, task=task, spectrum=entry.spectrum, proposed_label=EXCLUDE, reason="a star, not a galaxy")
    assert list(curation_events().values_list("action", flat=True)) == ["flag_raised", "flag_withdrawn", "flag_raised"]


@pytest.mark.parametrize("who", ["anonymous", "no role"])
def test_only_people_with_a_role_may_flag(searchable, who):
    entry = _other_entry(searchable["lens"])
    user = AnonymousUser() if who == "anonymous" else person("mallory", role=None)
    with pytest.raises(PermissionDenied):
        flag_raise(
            user=user, task=entry.knowledge_base.task, spectrum=entry.spectrum, proposed_label="lens", reason="x"
        )
    assert not Flag.objects.exists() and not curation_events().exists()


@pytest.mark.parametrize(
    "label, reason, message",
    [
        ("lens", "  ", "a flag needs a reason"),
        ("other", "wrong", "already labelled other"),
        ("seyfert", "wrong", "not a label of task lens"),
    ],
)
def test_bad_flags_are_refused(searchable, label, reason, message):
    entry = _other_entry(searchable["lens"])
    with pytest.raises(ValueError, match=message):
        flag_raise(
            user=person("vera"),
            task=entry.knowledge_base.task,
            spectrum=entry.spectrum,
            proposed_label=label,
            reason=reason,
        )
    assert not Flag.objects.exists()


def test_three_agreeing_flags_relabel_the_entry_in_the_next_version_only(searchable):
    old = searchable["lens"]
    entry = _other_entry(old)
    task = old.task
    assert task.consensus_flags == 3
    flags = [
        flag_raise(user=person(name), task=task, spectrum=entry.spectrum, proposed_label="lens", reason=f"{name}: arc")
        for name in ("ann", "bob", "cy")
    ]
    correction = Correction.objects.get(task=task, spectrum=entry.spectrum, active=True)
    assert (correction.rule, correction.label, correction.corrected_label, correction.decided_by) == (
        "consensus",
        "other",
        "lens",
        None,
    )
    assert {f.pk for f in correction.flags.all()} == {f.pk for f in flags}
    assert set(Flag.objects.values_list("status", flat=True)) == {"accepted"}

    new = knowledge_base_build(task=task, seed=0)
    relabelled = new.entries.get(spectrum=entry.spectrum)
    assert relabelled.label == "lens" and relabelled.catalogs == ["curation"]
    assert relabelled.details["corrected_from"] == "other" and relabelled.details["correction"] == correction.pk
    assert old.entries.get(spectrum=entry.spectrum).label == "other"  # the old version never changes
    assert new.composition["lens"] == old.composition["lens"] + 1
    actions = list(curation_events().values_list("action", flat=True))
    assert actions == ["flag_raised"] * 3 + ["flag_accepted"] * 3 + ["correction_applied"]
    promoted = AuditEvent.objects.order_by("id").last()
    assert (promoted.action, promoted.subject, promoted.after) == (
        "knowledge_base_promoted",
        f"knowledge base {new.pk}",
        {"in_service": [new.version]},
    )


def test_a_curator_excludes_an_entry_and_another_rejects_flags(searchable):
    kb = searchable["bpt3"]
    first, second = kb.entries.select_related("spectrum")[:2]
    flag_raise(
        user=person("vera"), task=kb.task, spectrum=first.spectrum, proposed_label=EXCLUDE, reason="sky residuals"
    )
    flag_raise(
        user=person("ann"),
        task=kb.task,
        spectrum=second.spectrum,
        proposed_label="normal" if second.label != "normal" else "agn",
        reason="weak lines",
    )
    curator = person("cecilia", "curator")
    assert [item.spectrum for item in curation_items(task=kb.task)] != []
    flag_review(user=curator, task=kb.task, spectrum=first.spectrum, accept=True, note="confirmed: sky lines")
    assert (
        flag_review(user=curator, task=kb.task, spectrum=second.spectrum, accept=False, note="lines are real") is None
    )
    assert Flag.objects.get(spectrum=second.spectrum).status == "rejected"
    assert not Correction.objects.filter(spectrum=second.spectrum).exists()
    assert curation_items(task=kb.task) == []

    new = knowledge_base_build(task=kb.task, seed=0)
    assert not new.entries.filter(spectrum=first.spectrum).exists() and new.size == kb.size - 1
    assert new.entries.get(spectrum=second.spectrum).label == second.label


def test_an_astronomer_cannot_review(searchable):
    entry = _other_entry(searchable["lens"])
    flag_raise(
        user=person("vera"),
        task=entry.knowledge_base.task,
        spectrum=entry.spectrum,
        proposed_label="lens",
        reason="arc",
    )
    with pytest.raises(PermissionDenied):
        flag_review(
            user=person("ann"), task=entry.knowledge_base.task, spectrum=entry.spectrum, accept=True, note="me too"
        )
    assert Flag.objects.get().status == "open"


def test_agreement_among_flaggers_and_curators(searchable):
    kb = searchable["bpt3"]
    a, b = kb.entries.exclude(label="normal").select_related("spectrum")[:2]
    other = {a.pk: "normal", b.pk: "normal"}
    for name in ("ann", "bob"):
        flag_raise(user=person(name), task=kb.task, spectrum=a.spectrum, proposed_label=other[a.pk], reason="r")
    flag_raise(
        user=User.objects.get(username="ann"), task=kb.task, spectrum=b.spectrum, proposed_label=other[b.pk], reason="r"
    )
    flag_review(user=person("cecilia", "curator"), task=kb.task, spectrum=b.spectrum, accept=False, note="no")
    report = agreement_report(task=kb.task)
    by_spectrum = {e["spectrum_id"]: e for e in report["entries"]}
    assert by_spectrum[a.spectrum_id]["fractions"] == {other[a.pk]: 1.0}
    assert by_spectrum[b.spectrum_id]["fractions"] == {other[b.pk]: 0.5, b.label: 0.5}  # ann proposed, cecilia kept
    assert report["entries_rated_twice"] == 2
    # coincidences: normal-normal twice (a), normal-other once each way (b): n = 4, n_normal = 3, n_other = 1
    assert report["krippendorff_alpha"] == pytest.approx(1 - 3 * 2 / (3 * 1 * 2))


@pytest.mark.django_db(transaction=True)
def test_two_curators_deciding_one_entry_at_once(searchable):
    entry = _other_entry(searchable["lens"])
    task = shipped_task("lens")
    flag_raise(user=person("vera"), task=task, spectrum=entry.spectrum, proposed_label="lens", reason="arc")
    curators = [person("cecilia", "curator"), person("henrietta", "curator")]
    start, outcomes = threading.Barrier(2), {}

    def decide(curator, accept):
        start.wait()
        try:
            flag_review(
                user=curator, task=task, spectrum=entry.spectrum, accept=accept, note=f"{curator.username} decides"
            )
            outcomes[curator.username] = "decided"
        except ValueError as error:
            outcomes[curator.username] = str(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=decide, args=(c, accept)) for c, accept in zip(curators, (True, False))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes.values())[0] == "decided"
    (refused,) = [message for message in outcomes.values() if message != "decided"]
    assert "has no open flags in task lens" in refused and "by " in refused
    flag = Flag.objects.get()
    closed = [e for e in curation_events() if e.action in ("flag_accepted", "flag_rejected")]
    assert len(closed) == 1 and closed[0].actor == flag.closed_by  # one decision, audited once
    assert Correction.objects.filter(active=True).count() == (1 if flag.status == "accepted" else 0)


def test_curation_works_on_a_task_made_from_a_catalog(searchable):
    from kb.models import CatalogLabel
    from kb.services.catalog_tasks import catalog_task_create

    vera, curator = person("vera"), person("cecilia", "curator")
    lenses = [c.spectrum for c in CatalogLabel.objects.filter(catalog="talbot2021", label="lens")]
    data = ("specobjid\n" + "\n".join(s.specobjid for s in lenses)).encode()
    task = catalog_task_create(user=vera, name="my-lenses", target_label="arc", data=data)
    old = knowledge_base_build(task=task, target_fraction=0.3)
    missed, wrong = old.entries.filter(label="other").first(), old.entries.filter(label="arc").first()
    with pytest.raises(ValueError, match="no task my-lenses"):  # a private task is no task to another astronomer
        flag_raise(user=person("ann"), task=task, spectrum=missed.spectrum, proposed_label="arc", reason="arc")
    flag_raise(user=vera, task=task, spectrum=missed.spectrum, proposed_label="arc", reason="an arc my list missed")
    flag_raise(user=vera, task=task, spectrum=wrong.spectrum, proposed_label=EXCLUDE, reason="a star on the fibre")
    assert {item.spectrum for item in curation_items(task=task)} == {missed.spectrum, wrong.spectrum}
    flag_review(user=curator, task=task, spectrum=missed.spectrum, accept=True, note="the arc is clear")
    flag_review(user=curator, task=task, spectrum=wrong.spectrum, accept=True, note="a star indeed")

    new = knowledge_base_build(task=task, target_fraction=0.3)
    relabelled = new.entries.get(spectrum=missed.spectrum)
    assert relabelled.label == "arc" and relabelled.details["corrected_from"] == "other"
    assert not new.entries.filter(spectrum=wrong.spectrum).exists()
    assert old.entries.get(spectrum=missed.spectrum).label == "other"
