"""The worker side of batch search jobs: answer every input not yet answered.

Answers are written one input at a time, so a job whose worker died carries on from the first
unanswered input when its task is delivered again.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from django.utils import timezone

from inference.answers import Answer
from inference.models import SearchJob, SearchJobResult
from inference.services.search import search
from kb.selectors import spectrum_lookup


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


def search_job_run(*, job: SearchJob, on_progress=None) -> SearchJob:
    """Answer every input not yet answered, committing each; stops early if the job is cancelled."""
    if job.finished:
        return job
    SearchJob.objects.filter(pk=job.pk).update(
        status=SearchJob.Status.RUNNING, started_at=job.started_at or timezone.now()
    )
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
        SearchJob.objects.filter(pk=job.pk).update(
            status=SearchJob.Status.FAILED, error=repr(error), finished_at=timezone.now()
        )
        raise
    SearchJob.objects.filter(pk=job.pk).exclude(status=SearchJob.Status.CANCELLED).update(
        status=SearchJob.Status.DONE, finished_at=timezone.now()
    )
    job.refresh_from_db()
    return job
