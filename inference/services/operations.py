"""Operations, the web side: an admin starts pre-training, re-embedding or rebuilds, an astronomer a
knowledge base of a chosen composition; either cancels their own; an admin promotes or discards what it built.

An operation runs on a worker (``inference.worker.operations``) and ends with candidate knowledge-base
versions, built with ``promote=False`` and scored on the test reserve when built
(``KnowledgeBase.evaluation``), so that they compare side by side with the versions in service.
Promotion puts the new checkpoint and every candidate into service in one transaction: a search sees
either all the old versions or all the new ones. Until then, and if the operation fails, is cancelled
or its worker dies, the versions in service keep answering.
"""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from inference import index as vector_index
from inference.models import Operation
from inference.selectors.background import stale_before
from inference.tasks import operation_run_task
from inference.worker.operations import operation_builds_abandon
from kb.composition import VOTERS
from kb.models import KnowledgeBase, SearchTask
from kb.roles import FLAG, OPERATE
from kb.selectors import knowledge_base_entries_choose
from kb.services.audit import audit_record
from kb.services.knowledge_bases import knowledge_base_discard, knowledge_base_promote
from training.selectors import training_run_in_service
from training.services import training_run_create, training_run_promote

COMPOSITIONS_AT_ONCE = 2  # knowledge bases one astronomer may have queued or being built


def _require_operator(user) -> None:
    if user is None or not user.is_authenticated:
        raise PermissionDenied("log in as an administrator")
    if not user.has_perm(OPERATE):
        raise PermissionDenied("only administrators retrain, rebuild, promote or discard")


def operation_visible(*, user, operation: Operation) -> bool:
    """Whether ``user`` may follow an operation: administrators all of them, others those they started."""
    if user is None or not user.is_authenticated:
        return False
    return user.has_perm(OPERATE) or operation.requested_by_id == user.pk


def operation_decidable(*, user, operation: Operation) -> bool:
    """Whether ``user`` may promote or discard an operation's candidates: administrators, and the owner of
    a private task for its own (nobody else searches with it)."""
    if user is None or not user.is_authenticated:
        return False
    task = operation.task
    return user.has_perm(OPERATE) or (task is not None and not task.published and task.owner_id == user.pk)


@transaction.atomic
def operation_start(
    *, user, kind: str, task: SearchTask | None = None, preset: str = "small", max_steps: int | None = None
) -> Operation:
    """Queue an admin's operation (one at a time; astronomers' compositions aside); its Celery task goes to
    the training queue for pre-training, the embedding queue otherwise, once the operation is committed."""
    _require_operator(user)
    if kind not in Operation.Kind.values or kind == Operation.Kind.COMPOSE:
        kinds = [k for k in Operation.Kind.values if k != Operation.Kind.COMPOSE]
        raise ValueError(f"unknown operation {kind!r}; choose one of {', '.join(kinds)}")
    running = (
        Operation.objects.select_for_update()
        .filter(status__in=[Operation.Status.QUEUED, Operation.Status.RUNNING])
        .exclude(kind=Operation.Kind.COMPOSE)  # astronomers' compositions never hold up an admin
        .first()
    )
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
    operation = Operation.objects.create(
        kind=kind,
        task=task if kind == Operation.Kind.REBUILD else None,
        params=params,
        training_run=run,
        requested_by=user,
    )
    audit_record(
        actor=user,
        action="operation_started",
        subject=f"operation {operation.pk}",
        task=operation.task,
        after={"kind": kind, "training_run": run.pk, **params},
    )
    transaction.on_commit(lambda: operation_run_task.apply_async((operation.pk,), queue=operation.queue))
    return operation


@transaction.atomic
def knowledge_base_candidate_start(
    *,
    user,
    task: SearchTask,
    target_fraction: float | None = None,
    size: int | None = None,
    seed: int = 0,
    index_kind: str = "auto",
) -> Operation:
    """Queue a candidate knowledge base of ``task`` with the composition asked for (an operation of kind
    'compose', on the embedding queue), under the checkpoint in service. Any astronomer may; it answers
    the searches that name it at once when built, and only an admin puts it into service. ValueError,
    writing nothing, when the labelled spectra cannot make that composition (with the counts available)."""
    if user is None or not user.is_authenticated or not user.has_perm(FLAG):
        raise PermissionDenied("log in as an astronomer to build a knowledge base")
    if index_kind not in vector_index.CHOICES:
        raise ValueError(f"unknown index {index_kind!r}; choose one of {', '.join(vector_index.CHOICES)}")
    run = training_run_in_service()
    if run is None:
        raise ValueError("no checkpoint is in service: an admin must pre-train one first")
    active = Operation.objects.select_for_update().filter(
        kind=Operation.Kind.COMPOSE, requested_by=user, status__in=[Operation.Status.QUEUED, Operation.Status.RUNNING]
    )
    if len(active) >= COMPOSITIONS_AT_ONCE:  # rows locked and counted here: PostgreSQL locks no COUNT(*)
        raise ValueError(
            f"you have {COMPOSITIONS_AT_ONCE} knowledge bases being built: wait for one to finish or cancel it"
        )
    labelled, chosen = knowledge_base_entries_choose(task=task, size=size, target_fraction=target_fraction, seed=seed)
    targets = sum(labelled[pk].label in task.target_labels for pk in chosen)
    if len(chosen) < VOTERS or (task.target_labels and targets < VOTERS):
        what = f"{len(chosen)} entries" + (f", {targets} of them targets," if task.target_labels else "")
        raise ValueError(
            f"{what} are too few for a vote of {VOTERS} neighbours: ask for a larger knowledge base or a larger share"
        )
    params = {"target_fraction": target_fraction, "size": size, "seed": seed, "index": index_kind}
    operation = Operation.objects.create(
        kind=Operation.Kind.COMPOSE, task=task, params=params, training_run=run, requested_by=user
    )
    audit_record(
        actor=user,
        action="operation_started",
        subject=f"operation {operation.pk}",
        task=task,
        after={"kind": operation.kind, "training_run": run.pk, "entries": len(chosen), **params},
    )
    transaction.on_commit(lambda: operation_run_task.apply_async((operation.pk,), queue=operation.queue))
    return operation


@transaction.atomic
def operation_cancel(*, user, operation: Operation) -> Operation:
    """Stop an operation: at once if no worker has taken it up, else at its next progress report. An admin
    may cancel any; an astronomer the compositions they started."""
    if not operation_visible(user=user, operation=operation):
        _require_operator(user)
    operation = Operation.objects.select_for_update().get(pk=operation.pk)
    if not operation.active:
        raise ValueError(f"{operation} has ended; there is nothing to cancel")
    worker_dead = operation.status == Operation.Status.RUNNING and (
        operation.heartbeat_at is None or operation.heartbeat_at < stale_before()
    )
    if operation.status == Operation.Status.QUEUED or worker_dead:  # nobody would see the request: end it here
        operation.status, operation.finished_at, operation.stage = (
            Operation.Status.CANCELLED,
            timezone.now(),
            "cancelled",
        )
    operation.cancel_requested = True
    operation.save(update_fields=["status", "finished_at", "stage", "cancel_requested"])
    if worker_dead:
        operation_builds_abandon(operation=operation, error="cancelled: its worker died before it was built")
    audit_record(
        actor=user, action="operation_cancel_requested", subject=f"operation {operation.pk}", task=operation.task
    )
    return operation


def operation_promote(*, user, operation: Operation, reason: str = "") -> Operation:
    """Put the operation's checkpoint and candidates into service, all in one switch."""

    def promote(operation: Operation, reason: str) -> dict:
        in_service = training_run_in_service(for_update=True)  # a second promotion waits, then reads this one's
        if operation.kind != Operation.Kind.PRETRAIN and operation.training_run != in_service:
            raise ValueError(
                f"its candidates were built with training run {operation.training_run_id}, and run "
                f"{in_service.pk if in_service else 'none'} is in service now: one task would search with another "
                "encoder than the rest; build them again"
            )
        if operation.kind == Operation.Kind.PRETRAIN:
            training_run_promote(run=operation.training_run, actor=user, reason=reason or f"operation {operation.pk}")
        for kb in operation.candidates.filter(status=KnowledgeBase.Status.READY).select_related("task"):
            knowledge_base_promote(knowledge_base=kb, actor=user, reason=reason)
        return {
            "training_run": operation.training_run_id,
            "knowledge_bases": sorted(operation.candidates.values_list("pk", flat=True)),
        }

    return _decide(user, operation, Operation.Status.PROMOTED, promote, reason)


def operation_discard(*, user, operation: Operation, reason: str = "") -> Operation:
    """Keep the versions in service; the candidates stay resolvable, marked discarded."""

    def discard(operation: Operation, reason: str) -> None:
        for kb in operation.candidates.exclude(status=KnowledgeBase.Status.DISCARDED):
            knowledge_base_discard(knowledge_base=kb, actor=user, reason=reason)

    return _decide(user, operation, Operation.Status.DISCARDED, discard, reason)


@transaction.atomic
def _decide(
    user, operation: Operation, status: str, act: Callable[[Operation, str], dict | None], reason: str
) -> Operation:
    """An admin's decision on a finished operation's candidates (or, for an astronomer's own private task,
    its owner's): ``act`` on them, record who decided, audit it."""
    operation = Operation.objects.select_for_update().get(pk=operation.pk)  # no join: PostgreSQL locks no outer join
    if not operation_decidable(user=user, operation=operation):
        _require_operator(user)
    verb = "promoted" if status == Operation.Status.PROMOTED else "discarded"
    if operation.status != Operation.Status.DONE:
        raise ValueError(f"{operation} is {operation.status}: only a finished operation's candidates can be {verb}")
    after = act(operation, reason or f"operation {operation.pk}")
    operation.status, operation.decided_by, operation.decided_at = status, user, timezone.now()
    operation.save(update_fields=["status", "decided_by", "decided_at"])
    audit_record(
        actor=user,
        action=f"operation_{verb}",
        subject=f"operation {operation.pk}",
        task=operation.task,
        after=after,
        reason=reason,
    )
    return operation
