"""Knowledge-base versions: composed from the labelled spectra, then finished, promoted, discarded or failed."""

from __future__ import annotations

from collections import Counter

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from kb.models import KBEntry, KnowledgeBase, SearchTask
from kb.selectors import knowledge_base_entries_choose
from kb.services.audit import audit_record


def knowledge_base_create(
    *,
    task: SearchTask,
    training_run,
    size: int | None = None,
    target_fraction: float | None = None,
    seed: int = 0,
    index_kind: str = "flat",
    index_params: dict | None = None,
) -> KnowledgeBase:
    """A new version of ``task``'s knowledge base, status 'building', with its entries chosen.

    Entries are sampled (``kb.selectors.knowledge_base_entries_choose``) from the training reserve's
    labelled spectra, with the task's corrections applied; ``training_run`` is the encoder checkpoint
    whose embeddings its index will hold. Nothing is written if the composition cannot be made.
    """
    labelled, chosen = knowledge_base_entries_choose(task=task, size=size, target_fraction=target_fraction, seed=seed)
    composition = dict(Counter(labelled[pk].label for pk in chosen).most_common())
    with transaction.atomic():
        SearchTask.objects.select_for_update().get(pk=task.pk)  # builds of one task take versions in turn
        last = KnowledgeBase.objects.filter(task=task).aggregate(v=Max("version"))["v"] or 0
        kb = KnowledgeBase.objects.create(
            task=task,
            version=last + 1,
            size=len(chosen),
            target_fraction=target_fraction,
            seed=seed,
            composition=composition,
            training_run=training_run,
            index_kind=index_kind,
            index_params=index_params or {},
        )
        KBEntry.objects.bulk_create(
            [
                KBEntry(
                    knowledge_base=kb,
                    spectrum_id=pk,
                    label=labelled[pk].label,
                    catalogs=list(labelled[pk].catalogs),
                    details=labelled[pk].details,
                )
                for pk in chosen
            ],
            batch_size=1000,
        )
    return kb


def knowledge_base_finish(
    *,
    knowledge_base: KnowledgeBase,
    index_path: str,
    recall: float | None,
    evaluation: dict | None = None,
    calibration: dict | None = None,
    policy: dict | None = None,
    policy_validation: dict | None = None,
    background_rule: dict | None = None,
    weirdness_rule: dict | None = None,
    promote: bool = True,
) -> KnowledgeBase:
    """Record a built index, its vote policy (and the validation scores it was chosen on), its scores on the
    test reserve and its trust calibration; with ``promote``,
    put this version into service for its task. ValueError if the build was abandoned meanwhile (marked
    failed by a worker that took it for dead): a failed version stays failed."""
    finished = KnowledgeBase.objects.filter(pk=knowledge_base.pk, status=KnowledgeBase.Status.BUILDING).update(
        status=KnowledgeBase.Status.READY,
        index_path=index_path,
        index_recall=recall,
        evaluation=evaluation or {},
        calibration=calibration or {},
        policy=policy or {},
        policy_validation=policy_validation or {},
        background_rule=background_rule or {},
        weirdness_rule=weirdness_rule or {},
        finished_at=timezone.now(),
    )
    knowledge_base.refresh_from_db()
    if not finished:
        raise ValueError(f"{knowledge_base} is {knowledge_base.status}, no longer building: it was abandoned")
    if promote:
        knowledge_base_promote(knowledge_base=knowledge_base)
    return knowledge_base


@transaction.atomic
def knowledge_base_fail(*, knowledge_base: KnowledgeBase, error: str, action: str = "knowledge_base_failed") -> None:
    """Mark a build failed, with why, in the audit trail as ``action``."""
    before = KnowledgeBase.objects.filter(pk=knowledge_base.pk).values_list("status", flat=True).first()
    KnowledgeBase.objects.filter(pk=knowledge_base.pk).update(
        status=KnowledgeBase.Status.FAILED, error=error, finished_at=timezone.now()
    )
    audit_record(
        actor=None,
        action=action,
        subject=f"knowledge base {knowledge_base.pk}",
        task=knowledge_base.task,
        before={"status": before},
        after={"status": KnowledgeBase.Status.FAILED},
        reason=error[:2000],
    )


@transaction.atomic
def knowledge_base_promote(*, knowledge_base: KnowledgeBase, actor=None, reason: str = "") -> KnowledgeBase:
    """Put a ready version into service for its task, taking the previous one out (one switch), and
    record who did it in the audit trail."""
    if knowledge_base.status != KnowledgeBase.Status.READY:
        raise ValueError(f"{knowledge_base} is not ready; only a built knowledge base can go into service")
    previous = (
        KnowledgeBase.objects.select_for_update()
        .filter(task=knowledge_base.task, in_service=True)
        .exclude(pk=knowledge_base.pk)
    )
    before = {"in_service": [kb.version for kb in previous]}
    previous.update(in_service=False)
    KnowledgeBase.objects.filter(pk=knowledge_base.pk).update(in_service=True)
    knowledge_base.in_service = True
    audit_record(
        actor=actor,
        action="knowledge_base_promoted",
        subject=f"knowledge base {knowledge_base.pk}",
        task=knowledge_base.task,
        before=before,
        after={"in_service": [knowledge_base.version]},
        reason=reason,
    )
    return knowledge_base


@transaction.atomic
def knowledge_base_discard(*, knowledge_base: KnowledgeBase, actor=None, reason: str = "") -> KnowledgeBase:
    """Mark a built version that is not in service as discarded: it stays resolvable (old answers name
    it) but is never promoted."""
    kb = KnowledgeBase.objects.select_for_update().get(pk=knowledge_base.pk)
    if kb.in_service:
        raise ValueError(f"{kb} is in service: promote another version first")
    if kb.status == KnowledgeBase.Status.DISCARDED:
        return kb
    before = {"status": kb.status}
    kb.status = KnowledgeBase.Status.DISCARDED
    kb.save(update_fields=["status"])
    audit_record(
        actor=actor,
        action="knowledge_base_discarded",
        subject=f"knowledge base {kb.pk}",
        task=kb.task,
        before=before,
        after={"status": kb.status},
        reason=reason,
    )
    return kb
