"""The worker side of the admins' operations: pre-train, embed, build the candidate knowledge bases.

A worker that dies leaves the operation 'running' with a heartbeat that stops. The next worker to start
sends it again (``inference.tasks``); whoever claims it (``inference.services.leases``) carries it on:
pre-training resumes from its last checkpoint, embedding from the parts done, and finished
candidates are kept.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from inference import index as vector_index
from inference.models import Operation
from inference.services.embeddings import embedding_update
from inference.services.knowledge_bases import knowledge_base_abandon, knowledge_base_index
from inference.services.leases import Lease, failure_sentence
from kb.models import KnowledgeBase, SearchTask
from kb.services.audit import audit_record
from kb.services.knowledge_bases import knowledge_base_create
from training.models import TrainingRun
from training.services import training_run_execute

logger = logging.getLogger(__name__)


class OperationCancelled(Exception):
    """Raised inside a running operation when an admin has asked it to stop."""


class OperationSuperseded(Exception):
    """Raised inside a worker whose operation another worker has taken up, having taken it for dead."""


MAX_ATTEMPTS = 3  # workers that may die on one operation (out of memory?) before it is failed


def operation_claim(*, operation: Operation) -> Lease | None:
    """Take the operation up (``Lease.claim``): None if it has ended or another worker is alive on it. One
    whose workers died ``MAX_ATTEMPTS`` times is failed instead, so that it cannot kill every worker that
    starts, one after another."""
    lease = Lease.claim(Operation, operation.pk)
    error = (
        lease.given_up(max_attempts=MAX_ATTEMPTS, advice="see the workers' logs, then start it again") if lease else ""
    )
    if error:
        operation_builds_abandon(operation=operation, error=error)
        audit_record(
            actor=None,
            action="operation_failed",
            subject=f"operation {operation.pk}",
            task=operation.task,
            reason=error,
        )
    return None if error else lease


def operation_builds_abandon(*, operation: Operation, error: str) -> None:
    """Fail the candidates a worker left half-built, and delete their half-written indexes."""
    for stale_build in operation.candidates.filter(status=KnowledgeBase.Status.BUILDING).select_related("task"):
        knowledge_base_abandon(knowledge_base=stale_build, error=error)


def _beat(lease: Lease, **fields) -> None:
    """Record progress and a sign of life; raise OperationCancelled if an admin asked it to stop."""
    if not lease.write(**fields):
        raise OperationSuperseded()
    if Operation.objects.filter(pk=lease.pk, cancel_requested=True).exists():
        raise OperationCancelled()


def operation_run(*, operation: Operation, embedding_fan_out: Callable[[int], None] | None = None) -> Operation:
    """Do the operation's work, or carry it on after a worker died; a no-op if it is finished or another
    worker is alive on it. ``embedding_fan_out`` shares the embedding with other workers (``embedding_update``)."""
    lease = operation_claim(operation=operation)
    if lease is None:
        return operation
    operation.refresh_from_db()
    try:
        with lease.heartbeat():  # beats on, through steps that report no progress
            _operation_carry_on(operation, lease, embedding_fan_out)
    except OperationSuperseded:
        pass  # the worker that took it over carries on
    except OperationCancelled:
        if lease.finish(Operation.Status.CANCELLED, stage="cancelled"):
            audit_record(
                actor=None, action="operation_cancelled", subject=f"operation {operation.pk}", task=operation.task
            )
    except Exception as error:
        logger.exception("%s failed", operation)
        if lease.finish(Operation.Status.FAILED, error=failure_sentence(error), stage="failed"):  # else taken for dead
            audit_record(
                actor=None,
                action="operation_failed",
                subject=f"operation {operation.pk}",
                task=operation.task,
                reason=failure_sentence(error),
            )
            raise
    else:
        if lease.finish(Operation.Status.DONE, stage="waiting for an admin to promote or discard"):
            audit_record(
                actor=None,
                action="operation_finished",
                subject=f"operation {operation.pk}",
                task=operation.task,
                after={"candidates": sorted(operation.candidates.values_list("pk", flat=True))},
            )
    operation.refresh_from_db()
    return operation


def _operation_carry_on(operation: Operation, lease: Lease, embedding_fan_out) -> None:
    run = operation.training_run
    if operation.kind == Operation.Kind.PRETRAIN and run.status != TrainingRun.Status.SUCCEEDED:
        _pretrain(operation, lease)
    _beat(lease, stage="embedding", step=0, total=0)
    embedding_update(
        training_run=run,
        on_progress=lambda done, total: _beat(lease, step=done, total=total),
        fan_out=embedding_fan_out,
    )
    operation_builds_abandon(operation=operation, error="its worker stopped; the operation built it again")
    done = set(operation.candidates.filter(status=KnowledgeBase.Status.READY).values_list("task_id", flat=True))
    for task in _targets(operation):
        if task.pk not in done:
            _beat(lease, stage=f"building the {task.name} knowledge base", step=0, total=0)
            kb = _candidate_create(task, run, operation.params if operation.kind == Operation.Kind.COMPOSE else None)
            operation.candidates.add(kb)
            knowledge_base_index(
                knowledge_base=kb,
                promote=False,
                sweep=operation.kind != Operation.Kind.COMPOSE,  # a composition changes no label: the sweep stands
                on_progress=lambda done, total: _beat(lease, step=done, total=total),
            )


def _pretrain(operation: Operation, lease: Lease) -> None:
    """Pre-train the operation's run, resuming from its last checkpoint; about 200 points of the loss
    curve, every validation among them, go into the operation's history."""

    def trained(step, max_steps, report):
        if "val_masked_mse" in report or step % max(1, max_steps // 200) == 0 or step == max_steps:
            point = {
                "step": step,
                "train_loss": report["loss"],
                "val_masked_mse": report.get("val_masked_mse"),
                "val_masked_chi2": report.get("val_masked_chi2"),
                "attempt": lease.attempt,
            }
            operation.history = [p for p in operation.history if p["step"] < step] + [point]
            _beat(lease, stage="pre-training", step=step, total=max_steps, history=operation.history)

    training_run_execute(run=operation.training_run, promote=False, on_progress=trained)


def _targets(operation: Operation) -> list[SearchTask]:
    if operation.task_id:
        return [operation.task]
    return list(SearchTask.objects.filter(knowledge_bases__in_service=True).distinct().order_by("name"))


def _candidate_create(task: SearchTask, run: TrainingRun, composition: dict | None) -> KnowledgeBase:
    """A new version of ``task``'s knowledge base under ``run``: of the ``composition`` asked for
    (target_fraction, size, seed, index), or else composed like the version in service."""
    if composition is not None:
        return knowledge_base_create(
            task=task,
            training_run=run,
            size=composition["size"],
            target_fraction=composition["target_fraction"],
            seed=composition["seed"],
            index_kind=composition["index"],
            index_params=vector_index.spec_params(composition["index"]),
        )
    like = KnowledgeBase.objects.filter(task=task, in_service=True).first()
    index_kind, index_params = "auto", {}  # chosen by size again, as it was
    if like is not None and like.index_kind != vector_index.kind_for(like.size):  # chosen by hand: kept
        index_kind = like.index_kind
        index_params = {
            key: like.index_params[key] for key in ("kind", "hnsw_m", "ivf_lists") if key in like.index_params
        }
    return knowledge_base_create(
        task=task,
        training_run=run,
        size=like.size if like and like.target_fraction else None,
        target_fraction=like.target_fraction if like else None,
        seed=like.seed if like else 0,
        index_kind=index_kind,
        index_params=index_params,  # the search widths are tuned afresh
    )
