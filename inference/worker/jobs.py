"""The worker side of batch search jobs: answer every input not yet answered.

Answers are written one input at a time under a lease (``inference.services.leases``), so a job whose
worker died is taken up from the first unanswered input when its task is delivered again, or sent again by
a worker that starts; an input is answered once, whoever answers it.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import asdict
from pathlib import Path

from django.utils import timezone

from inference.answers import Answer
from inference.models import SearchJob, SearchJobResult
from inference.services.leases import Lease, failure_sentence
from inference.services.search import search
from kb.selectors import spectrum_lookup

logger = logging.getLogger(__name__)


def query_label(query: dict) -> str:
    """What a person searched, as the job's table shows it."""
    if "identifier" in query:
        return query["identifier"]
    if "ra" in query:
        return f"RA {query['ra']:.6f} Dec {query['dec']:.6f}"
    return query["name"]


def _answer_row(answer: Answer) -> dict:
    return {
        "label": answer.label,
        "share": answer.share,
        "is_target": answer.is_target,
        "trust": asdict(answer.trust),
        "background": answer.background,
        "weirdness": answer.weirdness,
        "neighbours": [
            {
                "specobjid": n.specobjid,
                "plate_mjd_fiber": n.plate_mjd_fiber,
                "label": n.label,
                "distance": n.distance,
                "weight": n.weight,
            }
            for n in answer.neighbours
        ],
    }


def _search_one(job: SearchJob, query: dict) -> dict:
    if "file" in query:
        answer = search(
            task=job.task, path=Path(job.folder) / query["file"], k=job.k, knowledge_base=job.knowledge_base
        )
        return _answer_row(answer)
    spectrum = spectrum_lookup(identifier=query.get("identifier", ""), ra=query.get("ra"), dec=query.get("dec"))
    answer = search(task=job.task, spectrum=spectrum, k=job.k, knowledge_base=job.knowledge_base)
    return {"spectrum": spectrum, **_answer_row(answer)}


MAX_ATTEMPTS = 5  # workers that may die on one job before it is failed


class SearchJobHeld(Exception):
    """The job is running on another worker that still beats: ask again once its heartbeat could be stale."""


class SearchJobStopped(Exception):
    """Raised inside a running job that is no longer this worker's: cancelled, or taken up by another."""


def search_job_claim(*, job: SearchJob) -> Lease | None:
    """Take the job up (``Lease.claim``); one whose workers died ``MAX_ATTEMPTS`` times is failed instead."""
    lease = Lease.claim(SearchJob, job.pk)
    if lease is not None and lease.given_up(max_attempts=MAX_ATTEMPTS, advice="what was answered is kept"):
        search_job_files_delete(job=job)
        return None
    return lease


def search_job_run(*, job: SearchJob, on_progress=None) -> SearchJob:
    """Answer every input not yet answered, each exactly once, committing each; stops early if the job is
    cancelled. SearchJobHeld while another worker is alive on it; a worker taken for dead stops at its next
    answer, which the one that took the job over gives instead."""
    if job.finished:
        return job
    lease = search_job_claim(job=job)
    if lease is None:
        job.refresh_from_db()
        if not job.finished:
            raise SearchJobHeld(f"{job} is running on another worker")
        return job
    SearchJob.objects.filter(pk=job.pk, started_at=None).update(started_at=timezone.now())
    try:
        with lease.heartbeat():  # a slow input (a large file) reports nothing for a while
            _answer_all(job, lease, on_progress)
    except SearchJobStopped:
        pass  # cancelled (its files go below), or carried on by the worker that took it over
    except Exception as error:
        logger.exception("%s failed", job)
        if lease.finish(SearchJob.Status.FAILED, stage="failed", error=failure_sentence(error)):
            search_job_files_delete(job=job)
        raise
    else:
        lease.finish(SearchJob.Status.DONE, stage="done")
    job.refresh_from_db()
    if job.finished:
        search_job_files_delete(job=job)
    return job


def _answer_all(job: SearchJob, lease: Lease, on_progress) -> None:
    answered = set(job.results.values_list("position", flat=True))
    done, failed = len(answered), job.results.exclude(error="").count()
    if not lease.write(done=done, failed=failed, stage="answering"):
        raise SearchJobStopped()
    for position, query in enumerate(job.inputs):
        if position in answered:
            continue
        try:
            fields = _search_one(job, query)
        except ValueError as error:  # this input cannot be searched: say why, go on with the rest
            fields = {"error": str(error)}
        if not lease.own().exists():  # taken for dead meanwhile: the new worker answers it
            raise SearchJobStopped()
        _, created = SearchJobResult.objects.get_or_create(
            job=job, position=position, defaults={"query": query_label(query)[:300], **fields}
        )
        done, failed = done + created, failed + (created and bool(fields.get("error")))
        if not lease.write(done=done, failed=failed, step=done):
            raise SearchJobStopped()
        if on_progress:
            on_progress(done, job.total)


def search_job_files_delete(*, job: SearchJob) -> None:
    """Delete an ended job's uploaded files: its answers are in the database, and nothing reads them again."""
    if job.folder:
        shutil.rmtree(job.folder, ignore_errors=True)
