"""What keeps background work bounded: a person's open batch jobs, an ended job's files, an operation that kills
its workers, and an operation whose worker died, which an admin can still cancel."""

import io
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from inference.models import Operation, SearchJob
from inference.services.jobs import search_job_create
from inference.services.operations import operation_cancel
from inference.worker.jobs import search_job_run
from inference.worker.operations import MAX_ATTEMPTS, operation_claim
from kb.models import AuditEvent
from tests.conftest import person, shipped_task

pytestmark = pytest.mark.django_db


def test_one_person_may_have_only_so_many_jobs_open(searchable, settings):
    settings.GALSPEC_MAX_ACTIVE_JOBS = 2
    vera, task = person("vera", None), shipped_task("lens")  # any account, with no role
    for _ in range(2):
        search_job_create(owner=vera, task=task, identifiers=["1"])
    with pytest.raises(ValueError, match="2 jobs queued or running, the most one person may"):
        search_job_create(owner=vera, task=task, identifiers=["1"])
    assert SearchJob.objects.filter(owner=vera).count() == 2
    SearchJob.objects.filter(owner=vera).update(status=SearchJob.Status.DONE)
    search_job_create(owner=vera, task=task, identifiers=["1"])  # finished jobs do not count


def test_an_ended_jobs_files_are_deleted(searchable, real_spectra):
    upload = io.BytesIO(real_spectra[0].read_bytes())
    upload.name = real_spectra[0].name
    job = search_job_create(owner=person("vera"), task=shipped_task("lens"), files=[upload])
    assert any(p.is_file() for p in Path(job.folder).iterdir())
    job = search_job_run(job=job)
    assert job.status == "done" and job.done == 1
    assert not Path(job.folder).exists()


def _dead_running(admin) -> Operation:
    return Operation.objects.create(
        kind="rebuild",
        task=shipped_task("lens"),
        requested_by=admin,
        status=Operation.Status.RUNNING,
        heartbeat_at=timezone.now() - timedelta(hours=1),
        attempts=MAX_ATTEMPTS,
    )


def test_an_operation_whose_workers_keep_dying_is_failed_not_retried_forever(searchable):
    operation = _dead_running(person("root", "admin"))
    assert operation_claim(operation=operation) is None
    operation.refresh_from_db()
    assert operation.status == "failed" and f"died {MAX_ATTEMPTS} times" in operation.error
    assert AuditEvent.objects.filter(action="operation_failed", subject=f"operation {operation.pk}").exists()


def test_a_running_operation_whose_worker_is_dead_can_be_cancelled(searchable):
    admin = person("root", "admin")
    operation = operation_cancel(user=admin, operation=_dead_running(admin))
    assert operation.status == "cancelled" and operation.finished_at is not None
    assert not operation.active  # a new operation may start


def test_a_cancelled_queued_jobs_files_are_deleted_at_once(searchable, real_spectra):
    from inference.services.jobs import search_job_cancel

    upload = io.BytesIO(real_spectra[0].read_bytes())
    upload.name = real_spectra[0].name
    job = search_job_create(owner=person("vera"), task=shipped_task("lens"), files=[upload])
    assert search_job_cancel(job=job).status == "cancelled"
    assert not Path(job.folder).exists()


def test_a_job_left_running_without_a_heartbeat_is_taken_up(searchable):
    """A job running when the upgrade to leased jobs came has no heartbeat: it is claimed, not held forever."""
    job = search_job_create(owner=person("vera"), task=shipped_task("lens"), identifiers=["1"])
    SearchJob.objects.filter(pk=job.pk).update(status=SearchJob.Status.RUNNING, heartbeat_at=None)
    job = search_job_run(job=SearchJob.objects.get(pk=job.pk))
    assert (job.status, job.done) == ("done", 1)


def test_cancelling_a_dead_operation_fails_its_half_built_candidates(searchable):
    from kb.models import KnowledgeBase

    admin = person("root", "admin")
    operation = _dead_running(admin)
    half = KnowledgeBase.objects.get(pk=searchable["lens"].pk)
    half.pk, half.version, half.in_service, half.status = None, 99, False, KnowledgeBase.Status.BUILDING
    half.save()
    operation.candidates.add(half)
    operation_cancel(user=admin, operation=operation)
    half.refresh_from_db()
    assert half.status == "failed" and "its worker died" in half.error
