"""Retasking without retraining: an astronomer builds a knowledge base of the composition they choose;
it answers the searches that name it, is scored beside the version in service, and only an admin puts
it into service. What the share costs and gains is on the task's page before they choose."""

import pytest
from django.core.exceptions import PermissionDenied

from inference.models import Operation, ShareSweep
from inference.services.operations import (
    knowledge_base_candidate_start,
    operation_cancel,
    operation_promote,
    operation_start,
)
from inference.services.search import search
from inference.worker.operations import operation_run
from kb.labellings import LABELLINGS
from kb.models import AuditEvent, KnowledgeBase, Spectrum
from kb.reserves import VALIDATION
from kb.selectors import task_labels
from tests.conftest import person, shipped_task

pytestmark = pytest.mark.django_db


def test_an_astronomer_builds_a_candidate_of_the_share_asked_for_that_answers_when_named(searchable):
    old = searchable["lens"]
    vera, grace = person("vera"), person("grace", "admin")
    operation = knowledge_base_candidate_start(user=vera, task=shipped_task("lens"), target_fraction=0.4, seed=1)
    assert operation.kind == "compose" and operation.queue == "embedding"
    (candidate,) = operation_run(operation=operation).candidates.all()
    assert candidate.status == "ready" and not candidate.in_service and candidate.target_fraction == 0.4
    assert candidate.composition["lens"] == round(0.4 * candidate.size)
    assert candidate.composition["other"] < old.composition["other"]  # fewer others around the same lenses
    assert candidate.evaluation["test_spectra"] == old.evaluation["test_spectra"]  # scored beside it

    answers = {
        probe.pk: (search(task="lens", spectrum=probe), search(task="lens", spectrum=probe, knowledge_base=candidate))
        for probe in Spectrum.objects.filter(held_out=True)
    }
    assert {served.kb_version for served, _ in answers.values()} == {old.version}
    assert {named.kb_version for _, named in answers.values()} == {candidate.version}
    assert any(served.neighbours != named.neighbours for served, named in answers.values())

    with pytest.raises(PermissionDenied):
        operation_promote(user=vera, operation=operation)
    operation_promote(user=grace, operation=operation)
    assert KnowledgeBase.objects.get(pk=candidate.pk).in_service and not KnowledgeBase.objects.get(pk=old.pk).in_service
    started = AuditEvent.objects.get(action="operation_started", actor=vera)
    assert started.actor == vera and started.after["target_fraction"] == 0.4


@pytest.mark.parametrize(
    "task, composition, message",
    [
        ("lens", {"target_fraction": 0.9, "size": 500}, r"\d+ targets and \d+ others are eligible"),
        ("lens", {"target_fraction": 0.2, "size": 10}, "too few for a vote of 3 neighbours"),
        ("lens", {"target_fraction": 1.5}, "between 0 and 1"),
        ("bpt3", {"target_fraction": 0.3}, "search tasks only"),
        ("bpt3", {"size": 10**6}, "only .* labelled spectra are eligible"),
        ("lens", {"index_kind": "annoy"}, "unknown index 'annoy'"),
    ],
)
def test_a_composition_that_cannot_be_made_is_refused_and_nothing_written(searchable, task, composition, message):
    versions, events = KnowledgeBase.objects.count(), AuditEvent.objects.count()
    with pytest.raises(ValueError, match=message):
        knowledge_base_candidate_start(user=person("vera"), task=shipped_task(task), **composition)
    assert KnowledgeBase.objects.count() == versions
    assert not Operation.objects.exists() and AuditEvent.objects.count() == events


def test_people_without_a_role_build_nothing_and_the_one_who_asked_may_cancel(searchable):
    with pytest.raises(PermissionDenied):
        knowledge_base_candidate_start(user=person("nobody", role=None), task=shipped_task("lens"))
    operation = knowledge_base_candidate_start(user=person("vera"), task=shipped_task("lens"), target_fraction=0.3)
    with pytest.raises(PermissionDenied):
        operation_cancel(user=person("annie"), operation=operation)
    assert operation_cancel(user=operation.requested_by, operation=operation).status == "cancelled"


def test_every_build_of_a_search_task_sweeps_the_share_on_the_validation_reserve(searchable):
    lens = searchable["lens"]
    sweep = ShareSweep.objects.get(task=lens.task, training_run=lens.training_run)
    assert not ShareSweep.objects.filter(task=searchable["bpt3"].task).exists()  # a classification has no targets
    validation = set().union(*(task_labels(labelling=name, reserve=VALIDATION) for name in LABELLINGS))
    lenses = task_labels(labelling="lens", reserve=VALIDATION)
    assert sweep.validation_spectra == len(validation) > 0
    assert sweep.validation_targets == sum(item.label == "lens" for item in lenses.values())
    natural, *chosen = sweep.rows
    assert natural["target_fraction"] is None and natural["size"] == lens.size  # lens has natural proportions
    assert [row["target_fraction"] for row in chosen] == sorted(row["target_fraction"] for row in chosen)
    for row in chosen:
        assert row["targets"] == round(row["target_fraction"] * row["size"])
        assert 0 <= row["recall"] <= 1 and row["f1_ci"][0] <= row["f1"] <= row["f1_ci"][1]


def test_compositions_never_hold_up_an_admin_and_one_astronomer_has_two_at_most(searchable):
    vera, grace = person("vera"), person("grace", "admin")
    for seed in (1, 2):
        knowledge_base_candidate_start(user=vera, task=shipped_task("lens"), target_fraction=0.3, seed=seed)
    with pytest.raises(ValueError, match="you have 2 knowledge bases being built"):
        knowledge_base_candidate_start(user=vera, task=shipped_task("lens"), target_fraction=0.3, seed=3)
    assert operation_start(user=grace, kind="rebuild").status == "queued"


def test_a_candidate_built_with_a_checkpoint_no_longer_in_service_is_not_promoted(searchable):
    grace = person("grace", "admin")
    operation = operation_run(
        operation=knowledge_base_candidate_start(user=person("vera"), task=shipped_task("lens"), target_fraction=0.3)
    )
    retrained = operation_run(operation=operation_start(user=grace, kind="pretrain", max_steps=2))
    operation_promote(user=grace, operation=retrained)
    with pytest.raises(ValueError, match="build them again"):
        operation_promote(user=grace, operation=operation)
    assert not operation.candidates.get().in_service and Operation.objects.get(pk=operation.pk).status == "done"
