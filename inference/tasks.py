"""Celery tasks for inference: ids in, one service or worker function called, its result out.

The web side (``inference.services.jobs``, ``.surveys``, ``.operations``) queues these; each runs the
worker side (``inference.worker``) or a core service. A worker that starts sends again the operations
and survey searches a dead worker left running; whoever claims each carries it on.
"""

from functools import partial

from celery import group, shared_task
from celery.signals import worker_ready
from django.conf import settings

from inference.models import Operation, SearchJob, SurveySearch
from inference.selectors.background import operations_left, search_jobs_left, survey_searches_left
from inference.services.bulk import bulk_search
from inference.services.embeddings import embedding_parts_help, embedding_update
from inference.services.knowledge_bases import knowledge_base_index
from inference.worker.jobs import MAX_ATTEMPTS, SearchJobHeld, search_job_run
from inference.worker.operations import operation_run
from inference.worker.surveys import survey_parts_help, survey_search_run
from kb.models import KnowledgeBase, SearchTask
from training.models import TrainingRun
from training.selectors import training_run_in_service


def _reporter(task):
    """A progress callback (done, total) that celery-progress reads from the task's state."""

    def progress(done: int, total: int) -> None:
        task.update_state(state="PROGRESS", meta={"current": done, "total": total})

    return progress


def embedding_helpers_send(run_id: int, helpers: int) -> None:
    """Send ``helpers`` helpers (``embedding_parts_task``) embedding for a checkpoint to the embedding
    workers, as a Celery group: ``embedding_update``'s ``fan_out``, with ``functools.partial``."""
    group(embedding_parts_task.si(run_id) for _ in range(helpers)).apply_async()


@shared_task(bind=True, acks_late=True, autoretry_for=(OSError,), retry_backoff=True, max_retries=3)
def embedding_update_task(self, run_id: int | None = None) -> int:
    """Embed what is missing under a checkpoint (default: the one in service), its parts shared with
    helpers on every embedding worker (``embedding_parts_task``)."""
    run = TrainingRun.objects.get(pk=run_id) if run_id else training_run_in_service()
    fan_out = partial(embedding_helpers_send, run.pk) if run else None
    return embedding_update(training_run=run, on_progress=_reporter(self), fan_out=fan_out).rows


@shared_task(acks_late=True, reject_on_worker_lost=True)  # a killed pool process's task goes back to the broker
def embedding_parts_task(run_id: int) -> int:
    """A helper: embed parts under a checkpoint until none is left to take."""
    return embedding_parts_help(training_run=TrainingRun.objects.get(pk=run_id))


@shared_task(bind=True, acks_late=True)
def knowledge_base_index_task(self, knowledge_base_id: int, promote: bool = True) -> int:
    """Embed and index a knowledge base whose entries are chosen; returns its id."""
    kb = KnowledgeBase.objects.select_related("task", "training_run").get(pk=knowledge_base_id)
    return knowledge_base_index(knowledge_base=kb, promote=promote, on_progress=_reporter(self)).pk


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)  # a killed pool process's job goes back
def search_job_run_task(self, job_id: int) -> dict:
    """Answer a batch search job; delivered again after a worker dies, it carries on where it stopped. Held
    by a worker that still beats (just killed, its heartbeat fresh), it asks again once that could be stale."""
    job = SearchJob.objects.select_related("task", "knowledge_base__training_run").get(pk=job_id)
    try:
        job = search_job_run(job=job)
    except SearchJobHeld as held:
        raise self.retry(exc=held, countdown=settings.GALSPEC_OPERATION_STALE_S, max_retries=2 * MAX_ATTEMPTS) from None
    return {"status": job.status, "done": job.done, "failed": job.failed}


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)  # a killed pool process's task goes back
def operation_run_task(self, operation_id: int) -> str:
    """An admin's operation; after a worker dies it is sent again and carries on (inference.worker.operations)."""
    operation = Operation.objects.select_related("task", "training_run").get(pk=operation_id)
    embedding_fan_out = partial(embedding_helpers_send, operation.training_run_id)
    return operation_run(operation=operation, embedding_fan_out=embedding_fan_out).status


@shared_task(bind=True, acks_late=True, autoretry_for=(OSError,), retry_backoff=True, max_retries=3)
def bulk_search_task(self, task_id: int, out: str, chunk: int = 10_000, k: int | None = None) -> dict:
    """A whole-survey search on a worker; delivered again, it carries on from the first missing part."""
    return bulk_search(task=SearchTask.objects.get(pk=task_id), out=out, chunk=chunk, k=k, on_progress=_reporter(self))


@shared_task(acks_late=True, reject_on_worker_lost=True)  # a killed pool process's task goes back to the broker
def survey_search_task(survey_id: int) -> str:
    """A survey search started from the site or the API; delivered again, it carries on from the parts done.
    Its parts are shared with helpers on every embedding worker (``survey_parts_task``, sent as a group)."""

    def fan_out(helpers: int) -> None:
        group(survey_parts_task.si(survey_id).set(queue="embedding") for _ in range(helpers)).apply_async()

    survey = SurveySearch.objects.select_related("task", "knowledge_base").get(pk=survey_id)
    embedding_fan_out = partial(embedding_helpers_send, survey.knowledge_base.training_run_id)
    return survey_search_run(survey=survey, fan_out=fan_out, embedding_fan_out=embedding_fan_out).status


@shared_task(acks_late=True, reject_on_worker_lost=True)
def survey_parts_task(survey_id: int) -> int:
    """A helper: search parts of a running survey search until none is left to take."""
    return survey_parts_help(survey=SurveySearch.objects.select_related("task", "knowledge_base").get(pk=survey_id))


def operations_resume() -> list[int]:
    """Send again every operation left running; claiming decides who runs it."""
    resumed = []
    for operation in operations_left():
        operation_run_task.apply_async(
            (operation.pk,), queue=operation.queue, countdown=settings.GALSPEC_OPERATION_STALE_S
        )
        resumed.append(operation.pk)
    return resumed


def survey_searches_resume() -> list[int]:
    """Send again every survey search left running or long queued; claiming decides who runs each."""
    resumed = survey_searches_left()
    for pk in resumed:
        survey_search_task.apply_async((pk,), queue="embedding", countdown=settings.GALSPEC_OPERATION_STALE_S)
    return resumed


def search_jobs_resume() -> list[int]:
    """Send again every batch job left running or long queued; claiming decides who answers each."""
    resumed = search_jobs_left()
    for pk in resumed:
        search_job_run_task.apply_async((pk,), countdown=settings.GALSPEC_OPERATION_STALE_S)
    return resumed


@worker_ready.connect
def _resume_interrupted_work(**kwargs) -> None:
    """A worker starting takes up the operations, survey searches and batch jobs a dead worker left running."""
    operations_resume()
    survey_searches_resume()
    search_jobs_resume()
