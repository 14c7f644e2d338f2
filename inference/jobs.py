"""Services for batch search jobs: create one from identifiers, positions or files, run it, cancel it.

A job is answered from the knowledge-base version in service when it was created, whatever is
promoted while it runs. Its answers are written one input at a time, so a job whose worker died
carries on from the first unanswered input when the task is delivered again.
"""
from __future__ import annotations

import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from inference.models import SearchJob, SearchJobResult
from inference.search import Answer, search, upload_name_safe
from kb.models import SearchTask
from kb.selectors import knowledge_base_in_service, spectrum_lookup

MAX_K = 15


def query_label(query: dict) -> str:
    if "identifier" in query:
        return query["identifier"]
    if "ra" in query:
        return f"RA {query['ra']:.6f} Dec {query['dec']:.6f}"
    return query["name"]


@transaction.atomic
def search_job_create(
    *,
    owner,
    task: SearchTask,
    k: int = 3,
    queries: Sequence[dict] = (),
    files: Sequence[tuple[str, BinaryIO]] = (),
) -> SearchJob:
    """A queued job over ``queries`` (``{"identifier": ...}`` or ``{"ra": ..., "dec": ...}``) and uploaded
    ``files`` (name, file object); its task is sent to a worker once the job is committed.

    ValueError, with nothing written, when there is nothing to search, too much, a file over the size
    limit, or no knowledge base in service for the task.
    """
    if not 1 <= k <= MAX_K:
        raise ValueError(f"k must be between 1 and {MAX_K}, got {k}")
    total = len(queries) + len(files)
    if total == 0:
        raise ValueError("nothing to search: give identifiers, positions or spectrum files")
    if total > settings.GALSPEC_MAX_BATCH:
        raise ValueError(f"{total} inputs, but a job takes at most {settings.GALSPEC_MAX_BATCH}: split the list")
    for name, handle in files:
        size = getattr(handle, "size", None)
        if size is not None and size > settings.GALSPEC_MAX_UPLOAD_BYTES:
            raise ValueError(f"{upload_name_safe(name)}: {size:,} bytes, over the limit of "
                             f"{settings.GALSPEC_MAX_UPLOAD_BYTES:,} bytes for one spectrum file")
    kb = knowledge_base_in_service(task=task)
    public_id = uuid.uuid4()
    folder = settings.DATA_DIR / "jobs" / str(public_id)
    inputs = [dict(query) for query in queries]
    try:
        if files:
            folder.mkdir(parents=True)
        for i, (name, handle) in enumerate(files):
            stored = f"{i:05d}-{upload_name_safe(name)}"  # never the name as given: no path leaves the folder
            with open(folder / stored, "wb") as out:
                shutil.copyfileobj(handle, out)
            inputs.append({"file": stored, "name": upload_name_safe(name)})
        job = SearchJob.objects.create(
            public_id=public_id, owner=owner, task=task, knowledge_base=kb, k=k, inputs=inputs,
            folder=str(folder) if files else "", total=total,
        )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    from inference.tasks import search_job_run_task  # the task module imports this one

    transaction.on_commit(lambda: search_job_run_task.delay(job.pk))
    return job


def _answer_row(answer: Answer) -> dict:
    return {
        "label": answer.label, "share": answer.share, "is_target": answer.is_target,
        "neighbours": [
            {"specobjid": n.specobjid, "plate_mjd_fiber": n.plate_mjd_fiber, "label": n.label,
             "distance": n.distance, "weight": n.weight}
            for n in answer.neighbours
        ],
    }


def _search_one(job: SearchJob, query: dict) -> dict:
    if "file" in query:
        answer = search(task=job.task, path=Path(job.folder) / query["file"], k=job.k, knowledge_base=job.knowledge_base)
        return _answer_row(answer)
    spectrum = spectrum_lookup(identifier=query.get("identifier", ""), ra=query.get("ra"), dec=query.get("dec"))
    answer = search(task=job.task, spectrum=spectrum, k=job.k, knowledge_base=job.knowledge_base)
    return {"spectrum": spectrum, **_answer_row(answer)}


def search_job_run(*, job: SearchJob, on_progress=None) -> SearchJob:
    """Answer every input not yet answered, committing each; stops early if the job is cancelled."""
    if job.finished:
        return job
    SearchJob.objects.filter(pk=job.pk).update(status=SearchJob.Status.RUNNING, started_at=job.started_at or timezone.now())
    answered = set(job.results.values_list("position", flat=True))
    done, failed = len(answered), job.results.exclude(error="").count()
    try:
        for position, query in enumerate(job.inputs):
            if position in answered:
                continue
            if SearchJob.objects.filter(pk=job.pk, status=SearchJob.Status.CANCELLED).exists():
                break
            try:
                fields = _search_one(job, query)
            except ValueError as error:  # this input cannot be searched: say why, go on with the rest
                fields = {"error": str(error)}
                failed += 1
            SearchJobResult.objects.create(job=job, position=position, query=query_label(query)[:300], **fields)
            done += 1
            SearchJob.objects.filter(pk=job.pk).update(done=done, failed=failed)
            if on_progress:
                on_progress(done, job.total)
    except Exception as error:
        SearchJob.objects.filter(pk=job.pk).update(status=SearchJob.Status.FAILED, error=repr(error),
                                                   finished_at=timezone.now())
        raise
    SearchJob.objects.filter(pk=job.pk).exclude(status=SearchJob.Status.CANCELLED).update(
        status=SearchJob.Status.DONE, finished_at=timezone.now())
    job.refresh_from_db()
    return job


def search_job_cancel(*, job: SearchJob) -> SearchJob:
    """Stop a queued or running job after the input it is on; what is answered stays. A finished job is left as it is."""
    SearchJob.objects.filter(pk=job.pk, status__in=[SearchJob.Status.QUEUED, SearchJob.Status.RUNNING]).update(
        status=SearchJob.Status.CANCELLED, finished_at=timezone.now())
    job.refresh_from_db()
    return job

