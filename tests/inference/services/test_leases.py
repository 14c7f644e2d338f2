"""A live worker is never taken for a dead one, and a build taken for dead stays failed."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from inference.models import EmbeddingPart, EmbeddingSet, Operation
from inference.services.leases import Lease, part_claim, part_held
from inference.worker.operations import operation_claim
from kb.models import KnowledgeBase
from kb.services.knowledge_bases import knowledge_base_create, knowledge_base_fail, knowledge_base_finish
from tests.conftest import person, shipped_task


@pytest.mark.django_db(transaction=True)
def test_a_step_that_reports_nothing_keeps_its_operation_alive_until_it_ends(settings):
    settings.GALSPEC_OPERATION_STALE_S = 1
    operation = Operation.objects.create(
        kind="embed",
        requested_by=person("grace", "admin"),
        status="running",
        heartbeat_at=timezone.now() - timedelta(hours=1),
    )
    lease = Lease.claim(Operation, operation.pk)
    with lease.heartbeat(every=0.05):
        time.sleep(1.5)  # longer than the stale limit, with no progress report
        assert not operation_claim(operation=operation), "a second worker took a live operation"
    time.sleep(1.2)
    assert operation_claim(operation=operation), "the heartbeat went on after the work stopped"


@pytest.mark.django_db
def test_a_build_abandoned_as_dead_is_not_finished_by_its_late_worker(trained):
    kb = knowledge_base_create(task=shipped_task("lens"), training_run=trained)
    knowledge_base_fail(knowledge_base=kb, error="its worker stopped; the operation built it again")
    with pytest.raises(ValueError, match="no longer building: it was abandoned"):
        knowledge_base_finish(knowledge_base=kb, index_path="/nowhere", recall=None, promote=True)
    kb.refresh_from_db()
    assert kb.status == KnowledgeBase.Status.FAILED and not kb.in_service and kb.index_path == ""


@pytest.mark.django_db
def test_a_worker_taken_for_dead_does_not_overwrite_the_operation_of_the_one_that_took_it(searchable, monkeypatch):
    from django.db.models import F

    from inference.services.operations import operation_start
    from inference.worker import operations
    from inference.worker.operations import operation_run
    from kb.models import AuditEvent

    operation = operation_start(user=person("grace", "admin"), kind="rebuild", task=shipped_task("lens"))

    def taken_over_then_fails(**options):
        Operation.objects.filter(pk=operation.pk).update(attempts=F("attempts") + 1)  # another worker's claim
        raise ValueError("knowledge base abandoned")  # what the late worker's build then meets

    monkeypatch.setattr(operations, "embedding_update", taken_over_then_fails)
    late = operation_run(operation=operation)
    assert late.status == "running" and late.attempts == 2 and late.error == ""
    assert not AuditEvent.objects.filter(action="operation_failed").exists()


@pytest.mark.django_db
def test_a_lease_writes_only_while_its_attempt_is_the_rows_last():
    operation = Operation.objects.create(kind="embed", requested_by=person("grace", "admin"))
    first = Lease.claim(Operation, operation.pk)
    assert first.attempt == 1 and first.write(stage="embedding")
    assert Lease.claim(Operation, operation.pk) is None  # alive: not doubled
    Operation.objects.filter(pk=operation.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    second = Lease.claim(Operation, operation.pk)
    assert second.attempt == 2
    assert not first.write(stage="late") and not first.finish("failed", error="late")  # taken for dead: writes nothing
    assert second.finish("done", stage="done")
    row = Operation.objects.get(pk=operation.pk)
    assert (row.status, row.stage, row.error, row.attempts) == ("done", "done", "", 2) and row.finished_at
    assert Lease.claim(Operation, operation.pk) is None  # finished work is never taken up again


@pytest.mark.django_db(transaction=True)
def test_a_worker_taken_for_dead_keeps_no_sign_of_life_on_the_row(settings):
    """Its heartbeat thread stamps only its own attempt: the row looks as alive as the new worker keeps it."""
    operation = Operation.objects.create(kind="embed", requested_by=person("grace", "admin"))
    late = Lease.claim(Operation, operation.pk)
    stale = timezone.now() - timedelta(hours=1)
    Operation.objects.filter(pk=operation.pk).update(heartbeat_at=stale)
    Lease.claim(Operation, operation.pk)  # another worker's claim stamps the row once
    Operation.objects.filter(pk=operation.pk).update(heartbeat_at=stale)
    with late.heartbeat(every=0.05):
        time.sleep(0.5)
    assert Operation.objects.get(pk=operation.pk).heartbeat_at == stale


@pytest.mark.django_db(transaction=True)
def test_a_part_is_taken_again_only_when_stale_and_marked_done_only_by_its_last_worker(trained, settings):
    settings.GALSPEC_OPERATION_STALE_S = 1
    embedding_set = EmbeddingSet.objects.create(training_run=trained, width=4, path="unused")
    EmbeddingPart.objects.create(embedding_set=embedding_set, first_row=0, last_row=9, spectra=10)
    slow = part_claim(embedding_set.parts)
    assert slow.attempts == 1 and part_claim(embedding_set.parts) is None  # alive: not taken
    EmbeddingPart.objects.filter(pk=slow.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=2))
    again = part_claim(embedding_set.parts)  # silent past the limit: taken again
    assert again.pk == slow.pk and again.attempts == 2
    with part_held(slow):  # the first worker, taken for dead, finishes late
        pass
    assert EmbeddingPart.objects.get(pk=slow.pk).status == "running"  # the part is still the second's
    with part_held(again):
        pass
    assert EmbeddingPart.objects.get(pk=slow.pk).status == "done"
