"""Services for survey searches: every ingested spectrum against a task's knowledge base, from the site.

A survey search is ``inference.bulk.bulk_search`` run by a worker on the embedding queue, into a folder
of its own. It embeds what the checkpoint has not embedded yet, then writes one CSV part per chunk; a
worker that dies leaves the parts written so far, and the task delivered again carries on from the
first missing part. When every part is written, the spectra voted one of the labels of interest become
``SurveyCandidate`` rows, and the count of every voted label is kept with the search.

A worker that dies leaves the search 'running' with a heartbeat that stops. Its task comes back (a
killed pool process's task is rejected back to the broker; Redis delivers a dead worker's again after
its visibility timeout), and the next worker to start sends every such search again
(``survey_searches_resume``). Whoever runs it claims it, which only succeeds once the heartbeat is
older than ``GALSPEC_OPERATION_STALE_S``, so a live worker is never doubled; each claim is a new
attempt, and a worker writes only while its attempt is the search's last, so a worker taken for dead
that comes back stops at its next step. After ``MAX_ATTEMPTS`` the search fails instead of looping.

One search per knowledge-base version, K and labels is enough while the survey does not grow: asking
again returns the one under way or done. A person has one search under way at a time.
"""
from __future__ import annotations

import math
import shutil
from collections import Counter
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from inference.bulk import bulk_search
from inference.heartbeat import heartbeat
from inference.jobs import MAX_K
from inference.models import SurveyCandidate, SurveySearch
from inference.selectors import survey_rows
from inference.services import embedding_update
from kb.knowledge import labelling_labels
from kb.models import SearchTask, Spectrum
from kb.roles import OPERATE
from kb.selectors import knowledge_base_in_service

CHUNK = 10_000  # spectra per CSV part
BATCH = 5_000  # candidates written per INSERT
MAX_ATTEMPTS = 5  # workers that may die on one search before it is failed
UNDER_WAY = (SurveySearch.Status.QUEUED, SurveySearch.Status.RUNNING)


class SurveySearchStopped(Exception):
    """Raised inside a running search that is no longer this worker's: cancelled, or taken up by another."""


@transaction.atomic
def survey_search_start(*, user, task: SearchTask, labels: list[str] | None = None,
                        k: int = 3) -> tuple[SurveySearch, bool]:
    """Queue a search of the whole survey, or find the same search already under way or done; returns it
    and whether it is new.

    ``labels`` are the labels of interest (default: the task's targets; a classification task needs
    them named). ValueError, with nothing written, for an unknown label, a bad K, no knowledge base in
    service, or a search of the same person's still under way; PermissionDenied for an anonymous user.
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
    SearchTask.objects.select_for_update().get(pk=task.pk)  # starts for one task take turns: no twin searches
    kb = knowledge_base_in_service(task=task)
    total = Spectrum.objects.count()
    same = SurveySearch.objects.filter(knowledge_base=kb, k=k, labels=labels, total=total,
                                       status__in=[*UNDER_WAY, SurveySearch.Status.DONE]).first()
    if same is not None:
        return same, False
    mine = SurveySearch.objects.filter(requested_by=user, status__in=UNDER_WAY).first()
    if mine is not None:
        raise ValueError(f"your {mine} is under way: wait for it or cancel it first")
    survey = SurveySearch.objects.create(task=task, knowledge_base=kb, labels=labels, k=k, requested_by=user, total=total)
    survey.folder = str(settings.DATA_DIR / "surveys" / str(survey.pk))
    survey.save(update_fields=["folder"])
    from inference.tasks import survey_search_task  # the task module imports this one

    transaction.on_commit(lambda: survey_search_task.apply_async((survey.pk,), queue="embedding"))
    return survey, True


def _stale_before():
    return timezone.now() - timedelta(seconds=settings.GALSPEC_OPERATION_STALE_S)


def survey_search_claim(*, survey: SurveySearch) -> int:
    """Take the search up: it is queued, or running with a heartbeat older than the stale limit. Returns
    the attempt it runs as, or 0 if it cannot be taken (finished, alive elsewhere, or failed for good)."""
    claimable = Q(status=SurveySearch.Status.QUEUED) | Q(status=SurveySearch.Status.RUNNING, heartbeat_at__lt=_stale_before())
    with transaction.atomic():
        if not SurveySearch.objects.filter(claimable, pk=survey.pk).update(
                status=SurveySearch.Status.RUNNING, heartbeat_at=timezone.now(), attempts=F("attempts") + 1):
            return 0
        attempt = SurveySearch.objects.values_list("attempts", flat=True).get(pk=survey.pk)
    if attempt > MAX_ATTEMPTS:
        _own(survey, attempt).update(status=SurveySearch.Status.FAILED, stage="failed", finished_at=timezone.now(),
                                     error=f"its worker died {MAX_ATTEMPTS} times (out of memory?): see the workers' logs")
        shutil.rmtree(survey.folder, ignore_errors=True)
        return 0
    return attempt


def survey_searches_resume() -> list[int]:
    """Send again every search left running, or queued for longer than the stale limit (its message may
    be lost); a worker that starts calls this, and claiming decides who runs each."""
    from inference.tasks import survey_search_task

    left = Q(status=SurveySearch.Status.RUNNING) | Q(status=SurveySearch.Status.QUEUED, created_at__lt=_stale_before())
    resumed = list(SurveySearch.objects.filter(left).values_list("pk", flat=True))
    for pk in resumed:
        survey_search_task.apply_async((pk,), queue="embedding", countdown=settings.GALSPEC_OPERATION_STALE_S)
    return resumed


def _own(survey: SurveySearch, attempt: int) -> QuerySet[SurveySearch]:
    """The search's row while ``attempt`` is its running attempt (else no row): what a worker may write."""
    return SurveySearch.objects.filter(pk=survey.pk, status=SurveySearch.Status.RUNNING, attempts=attempt)


def _progress(survey: SurveySearch, attempt: int, stage: str):
    def report(done: int, total: int) -> None:
        if not _own(survey, attempt).update(stage=stage, step=done, heartbeat_at=timezone.now()):
            raise SurveySearchStopped()
    return report


def survey_search_run(*, survey: SurveySearch) -> SurveySearch:
    """Do the search, or carry it on from its last written part; a no-op once it has finished or while
    another worker is alive on it."""
    attempt = survey_search_claim(survey=survey)
    if attempt:
        try:
            with heartbeat(SurveySearch, survey.pk):  # beats on while the candidates are collected
                _survey_search_carry_on(survey, attempt)
        except SurveySearchStopped:
            if SurveySearch.objects.filter(pk=survey.pk, status=SurveySearch.Status.CANCELLED).exists():
                shutil.rmtree(survey.folder, ignore_errors=True)
        except Exception as error:
            if _own(survey, attempt).update(status=SurveySearch.Status.FAILED, error=repr(error),
                                            finished_at=timezone.now(), stage="failed"):
                shutil.rmtree(survey.folder, ignore_errors=True)  # asked again, it starts afresh in a new folder
            raise
    survey.refresh_from_db()
    return survey


def _survey_search_carry_on(survey: SurveySearch, attempt: int) -> None:
    kb = survey.knowledge_base
    embedding_update(training_run=kb.training_run, on_progress=_progress(survey, attempt, "embedding the survey"))
    bulk_search(task=survey.task, out=survey.folder, chunk=CHUNK, k=survey.k, knowledge_base=kb, labels=survey.labels,
                on_progress=_progress(survey, attempt, "searching"))
    _progress(survey, attempt, "collecting the candidates")(survey.total, survey.total)
    _candidates_record(survey, attempt)


@transaction.atomic
def _candidates_record(survey: SurveySearch, attempt: int) -> None:
    """The candidates and the label counts from the finished parts, replacing any from an earlier
    attempt; all or nothing (SurveySearchStopped, rolling back, if the search is no longer this attempt's).

    On SQLite this one transaction holds the database's write lock while it runs (a second or so for
    every 100,000 spectra); PostgreSQL lets everything else go on.
    """
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
    if not _own(survey, attempt).update(status=SurveySearch.Status.DONE, stage="done", finished_at=timezone.now(),
                                        label_counts=dict(counts.most_common()),
                                        found=sum(counts[label] for label in wanted)):
        raise SurveySearchStopped()


def _candidates_create(survey: SurveySearch, rows: list[dict]) -> None:
    pk_of = dict(Spectrum.objects.filter(specobjid__in=[row["specobjid"] for row in rows]).values_list("specobjid", "pk"))
    candidates = []
    for row in rows:
        # nearest first; a KB of fewer than K entries leaves inf distances with no neighbour, at the end
        distances = [d for d in map(float, row["distances"].split()) if math.isfinite(d)]
        if not distances:
            raise ValueError(f"{row['specobjid']} was voted {row['label']} with no neighbour at a finite distance")
        candidates.append(SurveyCandidate(
            survey=survey, spectrum_id=pk_of[row["specobjid"]], label=row["label"], share=float(row["share"]),
            distance=distances[0], neighbours=row["neighbours"].split()[: len(distances)], distances=distances))
    SurveyCandidate.objects.bulk_create(candidates)


def survey_search_can_cancel(*, user, survey: SurveySearch) -> bool:
    """Who started a search, or an administrator, may cancel it."""
    return user is not None and user.is_authenticated and (user.pk == survey.requested_by_id or user.has_perm(OPERATE))


def survey_search_cancel(*, user, survey: SurveySearch) -> SurveySearch:
    """Stop a queued or running search. Its parts are removed: by its worker at its next step, or at
    once when no worker is alive on it. A finished search is left as it is."""
    if not survey_search_can_cancel(user=user, survey=survey):
        raise PermissionDenied("only who started a survey search, or an administrator, can cancel it")
    with transaction.atomic():
        survey = SurveySearch.objects.select_for_update().get(pk=survey.pk)
        if survey.status in UNDER_WAY:
            unattended = survey.status == SurveySearch.Status.QUEUED or survey.heartbeat_at < _stale_before()
            survey.status, survey.stage, survey.finished_at = SurveySearch.Status.CANCELLED, "cancelled", timezone.now()
            survey.save(update_fields=["status", "stage", "finished_at"])
            if unattended:
                folder = survey.folder
                transaction.on_commit(lambda: shutil.rmtree(folder, ignore_errors=True))
    return survey
