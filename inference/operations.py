"""Services for the admins' operations: pre-train, re-embed, rebuild; then promote or discard what they built.

An operation ends with candidate knowledge-base versions, built with ``promote=False`` and scored on
the test reserve when built (``KnowledgeBase.evaluation``), so that they compare side by side with the
versions in service. Promotion puts the new checkpoint and every candidate into service in one
transaction: a search sees either all the old versions or all the new ones. Until then, and if the
operation fails, is cancelled or its worker dies, the versions in service keep answering.

A worker that dies leaves the operation 'running' with a heartbeat that stops. The next worker to start
sends it again (``operations_resume``); whoever runs it first claims it, which only succeeds once the
heartbeat is older than ``GALSPEC_OPERATION_STALE_S``. Pre-training resumes from its last checkpoint,
embedding from its last committed chunk, and finished candidates are kept.
"""
from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from inference.heartbeat import heartbeat
from inference.models import Operation
from inference.services import embedding_update, knowledge_base_abandon, knowledge_base_index
from kb.models import KnowledgeBase, SearchTask
from kb.roles import OPERATE
from kb.services import (
    audit_record,
    knowledge_base_create,
    knowledge_base_discard,
    knowledge_base_promote,
)
from training.models import TrainingRun
from training.selectors import training_run_in_service
from training.services import training_run_create, training_run_execute, training_run_promote


class OperationCancelled(Exception):
    """Raised inside a running operation when an admin has asked it to stop."""


class OperationSuperseded(Exception):
    """Raised inside a worker whose operation another worker has taken up, having taken it for dead."""


def _require_operator(user) -> None:
    if user is None or not user.is_authenticated:
        raise PermissionDenied("log in as an administrator")
    if not user.has_perm(OPERATE):
        raise PermissionDenied("only administrators retrain, rebuild, promote or discard")


def _stale() -> timedelta:
    return timedelta(seconds=settings.GALSPEC_OPERATION_STALE_S)


@transaction.atomic
def operation_start(*, user, kind: str, task: SearchTask | None = None, preset: str = "small",
                    max_steps: int | None = None) -> Operation:
    """Queue an operation (one at a time); its Celery task goes to the training queue for pre-training,
    the embedding queue otherwise, once the operation is committed."""
    _require_operator(user)
    if kind not in Operation.Kind.values:
        raise ValueError(f"unknown operation {kind!r}; choose one of {', '.join(Operation.Kind.values)}")
    running = Operation.objects.select_for_update().filter(status__in=[Operation.Status.QUEUED, Operation.Status.RUNNING]).first()
    if running is not None:
        raise ValueError(f"{running} is under way: wait for it or cancel it first")
    params = {}
    if kind == Operation.Kind.PRETRAIN:
        options = {"max_steps": max_steps} if max_steps else {}
        run = training_run_create(preset=preset, **options)
        params = {"preset": preset, "max_steps": run.max_steps or max_steps}
    else:
        run = training_run_in_service()
        if run is None:
            raise ValueError("no checkpoint is in service: pre-train one first")
    operation = Operation.objects.create(kind=kind, task=task if kind == Operation.Kind.REBUILD else None, params=params,
                                         training_run=run, requested_by=user)
    audit_record(actor=user, action="operation_started", subject=f"operation {operation.pk}", task=operation.task,
                 after={"kind": kind, "training_run": run.pk, **params})
    from inference.tasks import operation_run_task  # the task module imports this one

    queue = "training" if kind == Operation.Kind.PRETRAIN else "embedding"
    transaction.on_commit(lambda: operation_run_task.apply_async((operation.pk,), queue=queue))
    return operation


def operation_claim(*, operation: Operation) -> int:
    """Take the operation up: it is queued, or running with a heartbeat older than the stale limit.
    Returns the attempt it runs as (each claim is a new one), or 0 if it cannot be taken."""
    now = timezone.now()
    claimable = Q(status=Operation.Status.QUEUED) | Q(status=Operation.Status.RUNNING, heartbeat_at__lt=now - _stale())
    with transaction.atomic():
        if not Operation.objects.filter(claimable, pk=operation.pk).update(
                status=Operation.Status.RUNNING, heartbeat_at=now, attempts=F("attempts") + 1):
            return 0
        return Operation.objects.values_list("attempts", flat=True).get(pk=operation.pk)


def _own(operation: Operation) -> QuerySet[Operation]:
    """The operation's row while the attempt this worker runs is its running attempt: what it may write.
    A worker taken for dead that comes back finds no row, and stops (OperationSuperseded)."""
    return Operation.objects.filter(pk=operation.pk, status=Operation.Status.RUNNING, attempts=operation.attempts)


def _beat(operation: Operation, **fields) -> None:
    """Record progress and a sign of life; raise OperationCancelled if an admin asked it to stop."""
    if not _own(operation).update(heartbeat_at=timezone.now(), **fields):
        raise OperationSuperseded()
    if Operation.objects.filter(pk=operation.pk, cancel_requested=True).exists():
        raise OperationCancelled()


def _targets(operation: Operation) -> list[SearchTask]:
    if operation.task_id:
        return [operation.task]
    return list(SearchTask.objects.filter(knowledge_bases__in_service=True).distinct().order_by("name"))


def operation_run(*, operation: Operation) -> Operation:
    """Do the operation's work, or carry it on after a worker died; a no-op if it is finished or another
    worker is alive on it."""
    attempt = operation_claim(operation=operation)
    if not attempt:
        return operation
    operation.refresh_from_db()
    operation.attempts = attempt  # this worker's, whatever later claims do to the row
    with heartbeat(Operation, operation.pk):  # beats on, through steps that report no progress
        return _operation_carry_on(operation)


def _operation_carry_on(operation: Operation) -> Operation:
    run = operation.training_run
    try:
        if operation.kind == Operation.Kind.PRETRAIN and run.status != TrainingRun.Status.SUCCEEDED:
            def trained(step, max_steps, report):  # about 200 points on the loss curve, every validation among them
                if "val_masked_mse" in report or step % max(1, max_steps // 200) == 0 or step == max_steps:
                    point = {"step": step, "train_loss": report["loss"], "val_masked_mse": report.get("val_masked_mse"),
                             "attempt": operation.attempts}
                    operation.history = [p for p in operation.history if p["step"] < step] + [point]
                    _beat(operation, stage="pre-training", step=step, total=max_steps, history=operation.history)

            training_run_execute(run=run, promote=False, on_progress=trained)  # resumes from its last checkpoint
        _beat(operation, stage="embedding", step=0, total=0)
        embedding_update(training_run=run, on_progress=lambda done, total: _beat(operation, step=done, total=total))
        for stale_build in operation.candidates.filter(status=KnowledgeBase.Status.BUILDING).select_related("task"):
            knowledge_base_abandon(knowledge_base=stale_build, error="its worker stopped; the operation built it again")
        done = set(operation.candidates.filter(status=KnowledgeBase.Status.READY).values_list("task_id", flat=True))
        for task in _targets(operation):
            if task.pk in done:
                continue
            _beat(operation, stage=f"building the {task.name} knowledge base", step=0, total=0)
            like = KnowledgeBase.objects.filter(task=task, in_service=True).first()  # same configuration
            kb = knowledge_base_create(
                task=task, training_run=run, size=like.size if like and like.target_fraction else None,
                target_fraction=like.target_fraction if like else None, seed=like.seed if like else 0,
                index_kind=like.index_kind if like else "flat",
                index_params={key: value for key, value in (like.index_params if like else {}).items()
                              if key in ("kind", "hnsw_m", "ivf_lists")},  # the search widths are tuned afresh
            )
            operation.candidates.add(kb)
            knowledge_base_index(knowledge_base=kb, promote=False,
                                 on_progress=lambda done, total: _beat(operation, step=done, total=total))
    except OperationSuperseded:
        pass  # the worker that took it over carries on
    except OperationCancelled:
        if _own(operation).update(status=Operation.Status.CANCELLED, finished_at=timezone.now(), stage="cancelled"):
            audit_record(actor=None, action="operation_cancelled", subject=f"operation {operation.pk}", task=operation.task)
    except Exception as error:
        if _own(operation).update(status=Operation.Status.FAILED, error=repr(error), finished_at=timezone.now(),
                                  stage="failed"):  # else a worker taken for dead: its failure is not the operation's
            audit_record(actor=None, action="operation_failed", subject=f"operation {operation.pk}",
                         task=operation.task, reason=repr(error))
            raise
    else:
        if _own(operation).update(status=Operation.Status.DONE, finished_at=timezone.now(),
                                  stage="waiting for an admin to promote or discard"):
            audit_record(actor=None, action="operation_finished", subject=f"operation {operation.pk}",
                         task=operation.task, after={"candidates": sorted(operation.candidates.values_list("pk", flat=True))})
    operation.refresh_from_db()
    return operation


@transaction.atomic
def operation_cancel(*, user, operation: Operation) -> Operation:
    """Stop an operation: at once if no worker has taken it up, else at its next progress report."""
    _require_operator(user)
    operation = Operation.objects.select_for_update().get(pk=operation.pk)
    if not operation.active:
        raise ValueError(f"{operation} has ended; there is nothing to cancel")
    if operation.status == Operation.Status.QUEUED:
        operation.status, operation.finished_at, operation.stage = Operation.Status.CANCELLED, timezone.now(), "cancelled"
    operation.cancel_requested = True
    operation.save(update_fields=["status", "finished_at", "stage", "cancel_requested"])
    audit_record(actor=user, action="operation_cancel_requested", subject=f"operation {operation.pk}", task=operation.task)
    return operation


@transaction.atomic
def operation_promote(*, user, operation: Operation, reason: str = "") -> Operation:
    """Put the operation's checkpoint and candidates into service, all in one switch."""
    _require_operator(user)
    operation = Operation.objects.select_for_update().get(pk=operation.pk)
    if operation.status != Operation.Status.DONE:
        raise ValueError(f"{operation} is {operation.status}: only a finished operation's candidates can be promoted")
    if operation.kind == Operation.Kind.PRETRAIN:
        training_run_promote(run=operation.training_run)
    for kb in operation.candidates.filter(status=KnowledgeBase.Status.READY).select_related("task"):
        knowledge_base_promote(knowledge_base=kb, actor=user, reason=reason or f"operation {operation.pk}")
    operation.status, operation.decided_by, operation.decided_at = Operation.Status.PROMOTED, user, timezone.now()
    operation.save(update_fields=["status", "decided_by", "decided_at"])
    audit_record(actor=user, action="operation_promoted", subject=f"operation {operation.pk}", task=operation.task,
                 after={"training_run": operation.training_run_id,
                        "knowledge_bases": sorted(operation.candidates.values_list("pk", flat=True))}, reason=reason)
    return operation


@transaction.atomic
def operation_discard(*, user, operation: Operation, reason: str = "") -> Operation:
    """Keep the versions in service; the candidates stay resolvable, marked discarded."""
    _require_operator(user)
    operation = Operation.objects.select_for_update().get(pk=operation.pk)
    if operation.status != Operation.Status.DONE:
        raise ValueError(f"{operation} is {operation.status}: only a finished operation's candidates can be discarded")
    for kb in operation.candidates.exclude(status=KnowledgeBase.Status.DISCARDED):
        knowledge_base_discard(knowledge_base=kb, actor=user, reason=reason or f"operation {operation.pk}")
    operation.status, operation.decided_by, operation.decided_at = Operation.Status.DISCARDED, user, timezone.now()
    operation.save(update_fields=["status", "decided_by", "decided_at"])
    audit_record(actor=user, action="operation_discarded", subject=f"operation {operation.pk}", task=operation.task,
                 reason=reason)
    return operation


def operations_resume() -> list[int]:
    """Send again every operation left running (a worker that starts calls this); claiming decides who runs it."""
    from inference.tasks import operation_run_task

    resumed = []
    for operation in Operation.objects.filter(status=Operation.Status.RUNNING):
        queue = "training" if operation.kind == Operation.Kind.PRETRAIN else "embedding"
        operation_run_task.apply_async((operation.pk,), queue=queue, countdown=settings.GALSPEC_OPERATION_STALE_S)
        resumed.append(operation.pk)
    return resumed
