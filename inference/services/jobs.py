"""Batch search jobs, the web side: create one from identifiers, positions, a list or files; cancel it.

A job is answered from the knowledge-base version in service when it was created, whatever is
promoted while it runs; a worker answers it (``inference.worker.jobs``).
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Sequence
from typing import BinaryIO

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from inference.models import SearchJob
from inference.retriever import MAX_K, VotePolicy
from inference.services.search import upload_name_safe
from inference.tables import read_queries
from inference.tasks import search_job_run_task
from inference.worker.jobs import search_job_files_delete
from kb.models import SearchTask
from kb.selectors import knowledge_base_in_service


def _queries(identifiers: Sequence[str], positions: Sequence[dict], query_list: BinaryIO | None) -> list[dict]:
    queries = [{"identifier": i.strip()} for i in identifiers if i.strip()]
    for position in positions:
        if set(position) != {"ra", "dec"}:
            raise ValueError('each position is {"ra": degrees, "dec": degrees}')
        queries.append(dict(position))
    if query_list is not None:
        queries += read_queries(query_list.read().decode("utf-8-sig", errors="replace"))
    return queries


def _check_sizes(files: Sequence[BinaryIO]) -> None:
    for handle in files:
        size = getattr(handle, "size", None)
        if size is not None and size > settings.GALSPEC_MAX_UPLOAD_BYTES:
            raise ValueError(
                f"{upload_name_safe(handle.name)}: {size:,} bytes, over the limit of "
                f"{settings.GALSPEC_MAX_UPLOAD_BYTES:,} bytes for one spectrum file"
            )


@transaction.atomic
def search_job_create(
    *,
    owner,
    task: SearchTask,
    k: int | None = None,
    identifiers: Sequence[str] = (),
    positions: Sequence[dict] = (),
    query_list: BinaryIO | None = None,
    files: Sequence[BinaryIO] = (),
) -> SearchJob:
    """A queued job over, in this order, ``identifiers`` (specobjid or PLATE-MJD-FIBER; blanks skipped),
    ``positions`` (``{"ra": deg, "dec": deg}``), the lines of an uploaded ``query_list`` (CSV or one
    identifier per line: ``inference.tables.read_queries``) and uploaded ``files`` (file objects, each
    with the ``name`` it was uploaded under), each voted by ``k`` neighbours (default: the version's policy's);
    its task is sent to a worker once the job is committed.

    ValueError, with nothing written, when a list or a position is malformed, there is nothing to
    search, too much, a file over the size limit, or no knowledge base in service for the task.
    """
    if k is not None and not 1 <= k <= MAX_K:
        raise ValueError(f"k must be between 1 and {MAX_K}, got {k}")
    get_user_model().objects.select_for_update().filter(pk=owner.pk).exists()  # one person's jobs are made in turn
    running = SearchJob.objects.filter(owner=owner, status__in=[SearchJob.Status.QUEUED, SearchJob.Status.RUNNING])
    if running.count() >= settings.GALSPEC_MAX_ACTIVE_JOBS:
        raise ValueError(
            f"you have {settings.GALSPEC_MAX_ACTIVE_JOBS} jobs queued or running, the most one person may: "
            "wait for one to finish, or cancel one"
        )
    queries = _queries(identifiers, positions, query_list)
    total = len(queries) + len(files)
    if total == 0:
        raise ValueError("nothing to search: give identifiers, positions or spectrum files")
    if total > settings.GALSPEC_MAX_BATCH:
        raise ValueError(f"{total} inputs, but a job takes at most {settings.GALSPEC_MAX_BATCH}: split the list")
    _check_sizes(files)
    kb = knowledge_base_in_service(task=task)
    k = VotePolicy.from_dict(kb.policy).k if k is None else k
    public_id = uuid.uuid4()
    folder = settings.DATA_DIR / "jobs" / str(public_id)
    inputs = [dict(query) for query in queries]
    try:
        if files:
            folder.mkdir(parents=True)
        for i, handle in enumerate(files):
            name = upload_name_safe(handle.name)
            stored = f"{i:05d}-{name}"  # never the name as given: no path leaves the folder
            with open(folder / stored, "wb") as out:
                shutil.copyfileobj(handle, out)
            inputs.append({"file": stored, "name": name})
        job = SearchJob.objects.create(
            public_id=public_id,
            owner=owner,
            task=task,
            knowledge_base=kb,
            k=k,
            inputs=inputs,
            folder=str(folder) if files else "",
            total=total,
        )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    transaction.on_commit(lambda: search_job_run_task.delay(job.pk))
    return job


def search_job_cancel(*, job: SearchJob) -> SearchJob:
    """Stop a queued or running job after the input it is on; what is answered stays. A finished job stays as it is.
    A queued one's files go at once (no worker will take it up); a running one's worker deletes them as it stops."""
    cancelled = {"status": SearchJob.Status.CANCELLED, "finished_at": timezone.now()}
    if SearchJob.objects.filter(pk=job.pk, status=SearchJob.Status.QUEUED).update(**cancelled):
        search_job_files_delete(job=job)
    SearchJob.objects.filter(pk=job.pk, status=SearchJob.Status.RUNNING).update(**cancelled)
    job.refresh_from_db()
    return job
