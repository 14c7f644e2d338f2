"""Survey searches, the web side: start a search of the whole survey, or cancel one.

A survey search runs on a worker of the embedding queue (``inference.worker.surveys``): it embeds
whatever the checkpoint has not embedded, searches every spectrum in parts, and records the spectra
voted a label of interest as candidates.

One search per knowledge-base version, K and labels is enough while the survey does not grow: asking
again returns the one under way or done. A person has one search under way at a time.
"""

from __future__ import annotations

import shutil

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from inference.models import SurveySearch
from inference.retriever import MAX_K, VotePolicy
from inference.selectors.background import stale_before
from inference.tasks import survey_search_task
from kb.models import SearchTask, Spectrum
from kb.roles import OPERATE
from kb.selectors import knowledge_base_in_service, task_label_choices

UNDER_WAY = (SurveySearch.Status.QUEUED, SurveySearch.Status.RUNNING)


def _labels_of_interest(task: SearchTask, labels: list[str] | None) -> list[str]:
    allowed = task_label_choices(task=task)
    labels = sorted(set(labels or task.target_labels))
    if not labels:
        raise ValueError(
            f"{task.name} is a classification task: choose the labels of interest among {', '.join(allowed)}"
        )
    unknown = [label for label in labels if label not in allowed]
    if unknown:
        raise ValueError(f"{', '.join(unknown)}: not a label of {task.name}; choose among {', '.join(allowed)}")
    return labels


@transaction.atomic
def survey_search_start(
    *, user, task: SearchTask, labels: list[str] | None = None, k: int | None = None
) -> tuple[SurveySearch, bool]:
    """Queue a search of the whole survey, or find the same search already under way or done; returns it and
    whether it is new.

    ``labels`` are the labels of interest (default: the task's targets; a classification task needs them named); ``k``
    the neighbours that vote (default: the version's policy's). ValueError, with nothing written, for an unknown
    label, a bad K, no knowledge base in service, or a search of the same person's still under way; PermissionDenied
    for an anonymous user.
    """
    if user is None or not user.is_authenticated:
        raise PermissionDenied("log in to search the whole survey")
    if k is not None and not 1 <= k <= MAX_K:
        raise ValueError(f"k must be between 1 and {MAX_K}, got {k}")
    labels = _labels_of_interest(task, labels)
    SearchTask.objects.select_for_update().get(pk=task.pk)  # starts for one task take turns: no twin searches
    kb = knowledge_base_in_service(task=task)
    k = VotePolicy.from_dict(kb.policy).k if k is None else k
    total = Spectrum.objects.count()
    same = SurveySearch.objects.filter(
        knowledge_base=kb, k=k, labels=labels, total=total, status__in=[*UNDER_WAY, SurveySearch.Status.DONE]
    ).first()
    if same is not None:
        return same, False
    mine = SurveySearch.objects.filter(requested_by=user, status__in=UNDER_WAY).first()
    if mine is not None:
        raise ValueError(f"your {mine} is under way: wait for it or cancel it first")
    survey = SurveySearch.objects.create(
        task=task, knowledge_base=kb, labels=labels, k=k, requested_by=user, total=total
    )
    survey.folder = str(settings.DATA_DIR / "surveys" / str(survey.pk))
    survey.save(update_fields=["folder"])
    transaction.on_commit(lambda: survey_search_task.apply_async((survey.pk,), queue="embedding"))
    return survey, True


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
            unattended = survey.status == SurveySearch.Status.QUEUED or survey.heartbeat_at < stale_before()
            survey.status, survey.stage, survey.finished_at = SurveySearch.Status.CANCELLED, "cancelled", timezone.now()
            survey.save(update_fields=["status", "stage", "finished_at"])
            if unattended:
                folder = survey.folder
                transaction.on_commit(lambda: shutil.rmtree(folder, ignore_errors=True))
    return survey
