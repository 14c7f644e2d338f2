"""Reads for a search task's page: how its scores move with the share of targets, and the candidates
astronomers have built for it."""

from __future__ import annotations

from django.db.models import QuerySet

from inference.models import Operation, ShareSweep
from kb.models import SearchTask
from kb.roles import OPERATE
from training.models import TrainingRun


def share_sweep_get(*, task: SearchTask, training_run: TrainingRun | None) -> ShareSweep | None:
    """The task's share sweep under ``training_run``, if one was computed (each build of the task's
    knowledge base computes it)."""
    if training_run is None:
        return None
    return ShareSweep.objects.filter(task=task, training_run=training_run).first()


def composition_list(*, task: SearchTask, user) -> QuerySet[Operation]:
    """The compositions built for ``task`` that ``user`` may follow, newest first: every one for an
    administrator, their own for anyone else."""
    operations = Operation.objects.filter(kind=Operation.Kind.COMPOSE, task=task).select_related("requested_by")
    if not user.is_authenticated:
        return operations.none()
    if not user.has_perm(OPERATE):
        operations = operations.filter(requested_by=user)
    return operations.prefetch_related("candidates").order_by("-created_at")


def operation_get(*, pk: int) -> Operation | None:
    return Operation.objects.filter(pk=pk).select_related("task", "requested_by").first()
