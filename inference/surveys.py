"""Services for survey searches: every ingested spectrum against a task's knowledge base, from the site.

A survey search is ``inference.bulk.bulk_search`` run by a worker on the embedding queue, into a folder
of its own. It embeds what the checkpoint has not embedded yet, then writes one CSV part per chunk; a
worker that dies leaves the parts written so far, and the task delivered again carries on from the
first missing part. When every part is written, the spectra voted one of the labels of interest become
``SurveyCandidate`` rows, and the count of every voted label is kept with the search.

A worker that is killed leaves the search 'running' with a heartbeat that stops. With Redis the broker
delivers the task again after its visibility timeout; in any case the next worker to start sends it
again (``survey_searches_resume``). Whoever runs it first claims it, which only succeeds once the
heartbeat is older than ``GALSPEC_OPERATION_STALE_S``, so a live worker is never doubled.

One search per knowledge-base version, K and labels is enough while the survey does not grow: asking
again returns the one under way or done.
"""
from __future__ import annotations

import shutil
from collections import Counter
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from inference.bulk import bulk_search
from inference.heartbeat import heartbeat
from inference.models import SurveyCandidate, SurveySearch
from inference.selectors import survey_rows
from inference.services import embedding_update
from kb.knowledge import labelling_labels
from kb.models import SearchTask, Spectrum
from kb.selectors import knowledge_base_in_service

MAX_K = 15
CHUNK = 10_000  # spectra per CSV part
BATCH = 5_000  # candidates written per INSERT


class SurveySearchCancelled(Exception):
    """Raised inside a running survey search once it has been cancelled."""


@transaction.atomic
def survey_search_start(*, user, task: SearchTask, labels: list[str] | None = None,
                        k: int = 3) -> tuple[SurveySearch, bool]:
    """Queue a search of the whole survey, or find the same search already under way or done; returns it
    and whether it is new.

    ``labels`` are the labels of interest (default: the task's targets; a classification task needs
    them named). ValueError, with nothing written, for an unknown label, a bad K or no knowledge base in
    service; PermissionDenied for an anonymous user.
    """
    if user is None or not user.is_authenticated:
        raise PermissionDenied("log in to search the whole survey")
    if not 1 <= k <= MAX_K:
        raise ValueError(f"k must be between 1 and {MAX_K}, got {k}")
    allowed = labelling_labels(task.labelling)
    labels = sorted(set(labels or task.target_labels))
    if not labels:
        raise ValueError(f"{task.name} is a classification task: choose the labels of interest among {', '.join(allowed)}")
    unknown = [label for label in labels if label not in allowed]
    if unknown:
        raise ValueError(f"{', '.join(unknown)}: not a label of {task.name}; choose among {', '.join(allowed)}")
    kb = knowledge_base_in_service(task=task)
    total = Spectrum.objects.count()
    same = SurveySearch.objects.filter(knowledge_base=kb, k=k, labels=labels, total=total,
                                       status__in=[SurveySearch.Status.QUEUED, SurveySearch.Status.RUNNING,
                                                   SurveySearch.Status.DONE]).first()
    if same is not None:
        return same, False
    survey = SurveySearch.objects.create(task=task, knowledge_base=kb, labels=labels, k=k, requested_by=user, total=total)
    survey.folder = str(settings.DATA_DIR / "surveys" / str(survey.pk))
    survey.save(update_fields=["folder"])
    from inference.tasks import survey_search_task  # the task module imports this one

    transaction.on_commit(lambda: survey_search_task.apply_async((survey.pk,), queue="embedding"))
    return survey, True


def survey_search_claim(*, survey: SurveySearch) -> bool:
    """Take the search up: it is queued, or running with a heartbeat older than the stale limit."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.GALSPEC_OPERATION_STALE_S)
    claimable = Q(status=SurveySearch.Status.QUEUED) | Q(status=SurveySearch.Status.RUNNING, heartbeat_at__lt=stale)
    claimed = SurveySearch.objects.filter(claimable, pk=survey.pk).update(
        status=SurveySearch.Status.RUNNING, heartbeat_at=now, attempts=F("attempts") + 1)
    return claimed == 1


def survey_searches_resume() -> list[int]:
    """Send again every search left running (a worker that starts calls this); claiming decides who runs it."""
    from inference.tasks import survey_search_task

    resumed = list(SurveySearch.objects.filter(status=SurveySearch.Status.RUNNING).values_list("pk", flat=True))
    for pk in resumed:
        survey_search_task.apply_async((pk,), queue="embedding", countdown=settings.GALSPEC_OPERATION_STALE_S)
    return resumed


def _progress(survey: SurveySearch, stage: str):
    def report(done: int, total: int) -> None:
        SurveySearch.objects.filter(pk=survey.pk).update(stage=stage, step=done, total=total, heartbeat_at=timezone.now())
        if SurveySearch.objects.filter(pk=survey.pk, status=SurveySearch.Status.CANCELLED).exists():
            raise SurveySearchCancelled()
    return report


def survey_search_run(*, survey: SurveySearch) -> SurveySearch:
    """Do the search, or carry it on from its last written part; a no-op once it has finished or while
    another worker is alive on it."""
    if not survey_search_claim(survey=survey):
        survey.refresh_from_db()
        return survey
    try:
        with heartbeat(SurveySearch, survey.pk):  # beats on while the candidates are collected
            _survey_search_carry_on(survey)
    except SurveySearchCancelled:
        shutil.rmtree(survey.folder, ignore_errors=True)
    except Exception as error:
        SurveySearch.objects.filter(pk=survey.pk).update(status=SurveySearch.Status.FAILED, error=repr(error),
                                                         finished_at=timezone.now(), stage="failed")
        raise
    survey.refresh_from_db()
    return survey


def _survey_search_carry_on(survey: SurveySearch) -> None:
    kb = survey.knowledge_base
    embedding_update(training_run=kb.training_run, on_progress=_progress(survey, "embedding the survey"))
    bulk_search(task=survey.task, out=survey.folder, chunk=CHUNK, k=survey.k, knowledge_base=kb, labels=survey.labels,
                on_progress=_progress(survey, "searching"))
    _progress(survey, "collecting the candidates")(survey.total, survey.total)
    _candidates_record(survey)


@transaction.atomic
def _candidates_record(survey: SurveySearch) -> None:
    """The candidates and the label counts from the finished parts, replacing any from an earlier attempt."""
    survey.candidates.all().delete()
    counts, batch = Counter(), []
    wanted = set(survey.labels)
    for row in survey_rows(survey=survey):
        counts[row["label"]] += 1
        if row["label"] in wanted:
            batch.append(row)
        if len(batch) == BATCH:
            _candidates_create(survey, batch)
            batch = []
    _candidates_create(survey, batch)
    SurveySearch.objects.filter(pk=survey.pk).exclude(status=SurveySearch.Status.CANCELLED).update(
        status=SurveySearch.Status.DONE, stage="done", label_counts=dict(counts.most_common()),
        found=sum(counts[label] for label in wanted), finished_at=timezone.now())


def _candidates_create(survey: SurveySearch, rows: list[dict]) -> None:
    pk_of = dict(Spectrum.objects.filter(specobjid__in=[row["specobjid"] for row in rows]).values_list("specobjid", "pk"))
    candidates = []
    for row in rows:
        distances = [float(d) for d in row["distances"].split() if d != "inf"]  # inf: fewer than K entries
        candidates.append(SurveyCandidate(
            survey=survey, spectrum_id=pk_of[row["specobjid"]], label=row["label"], share=float(row["share"]),
            distance=distances[0] if distances else float("inf"), neighbours=row["neighbours"].split(), distances=distances))
    SurveyCandidate.objects.bulk_create(candidates)


def survey_search_cancel(*, user, survey: SurveySearch) -> SurveySearch:
    """Stop a queued or running search (who started it, or an administrator); its parts are removed."""
    allowed = user is not None and user.is_authenticated and (
        user.pk == survey.requested_by_id or user.has_perm("kb.operate_knowledgebase"))
    if not allowed:
        raise PermissionDenied("only who started a survey search, or an administrator, can cancel it")
    SurveySearch.objects.filter(pk=survey.pk, status__in=[SurveySearch.Status.QUEUED, SurveySearch.Status.RUNNING]).update(
        status=SurveySearch.Status.CANCELLED, stage="cancelled", finished_at=timezone.now())
    survey.refresh_from_db()
    return survey
