"""Services for curation: flags on knowledge-base entries, curators' decisions, corrections, the audit trail.

A flag says a spectrum is mislabelled in a task and proposes a label (or ``exclude``). The task's
consensus rule turns flags into a *correction*: enough different people proposing the same label
(``SearchTask.consensus_flags``), or a curator accepting (``SearchTask.curator_decides``). Every
knowledge-base version built afterwards applies the correction; the versions already built never
change, so an old answer can still be explained. Every change is written to the audit trail in the
same transaction as the change itself.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.utils import timezone

from kb.agreement import consensus, most_proposed
from kb.models import EXCLUDE, Correction, Flag, KBEntry, SearchTask, Spectrum
from kb.roles import FLAG, REVIEW
from kb.selectors import search_tasks_visible, spectrum_task_label, task_label_choices
from kb.services.audit import audit_record


def _require(user, permission: str, doing: str) -> None:
    if user is None or not user.is_authenticated:
        raise PermissionDenied(f"log in to {doing}")
    if not user.has_perm(permission):
        raise PermissionDenied(f"your account may not {doing}: ask an administrator for the role")


def _flag_state(flag: Flag) -> dict:
    return {"status": flag.status, "label": flag.label, "proposed_label": flag.proposed_label}


@transaction.atomic
def flag_raise(
    *, user, task: SearchTask, spectrum: Spectrum, proposed_label: str, reason: str, entry: KBEntry | None = None
) -> Flag:
    """Flag ``spectrum`` as mislabelled in ``task``; may complete a consensus, which then corrects it.

    ValueError, with nothing written, for an empty reason, a label the task does not use, the label it
    already has, a spectrum in none of the task's knowledge bases, or a second open flag by the same person.
    """
    _require(user, FLAG, "flag knowledge-base entries")
    if not search_tasks_visible(user=user).filter(pk=task.pk).exists():
        raise ValueError(f"no task {task.name}")  # another's private task is no task at all to them
    reason = reason.strip()
    if not reason:
        raise ValueError("say why the label is wrong: a flag needs a reason")
    Spectrum.objects.select_for_update().get(pk=spectrum.pk)  # flags and decisions on one entry take turns
    current = spectrum_task_label(task=task, spectrum=spectrum)  # read under the lock: a decision may change it
    if current is None:
        raise ValueError(f"spec-{spectrum.plate_mjd_fiber} is in no knowledge base of task {task.name}")
    allowed = (*task_label_choices(task=task), EXCLUDE)
    if proposed_label not in allowed:
        raise ValueError(f"{proposed_label!r} is not a label of task {task.name}; choose one of {', '.join(allowed)}")
    if proposed_label == current:
        raise ValueError(f"spec-{spectrum.plate_mjd_fiber} is already labelled {current} in task {task.name}")
    mine = Flag.objects.filter(task=task, spectrum=spectrum, raised_by=user, status=Flag.Status.OPEN).first()
    if mine is not None:
        raise ValueError(
            f"you already have an open flag on this entry (flag {mine.pk}, proposing "
            f"{mine.proposed_label}); withdraw it to flag again"
        )
    try:
        with transaction.atomic():
            flag = Flag.objects.create(
                task=task,
                spectrum=spectrum,
                entry=entry,
                label=current,
                proposed_label=proposed_label,
                reason=reason,
                raised_by=user,
            )
    except IntegrityError:  # the same person, at the same moment, in another request
        raise ValueError("you already have an open flag on this entry; withdraw it to flag again") from None
    audit_record(
        actor=user,
        action="flag_raised",
        subject=f"flag {flag.pk}",
        task=task,
        spectrum=spectrum,
        after=_flag_state(flag),
        reason=reason,
    )
    _consensus_apply(task=task, spectrum=spectrum)
    flag.refresh_from_db()
    return flag


def _consensus_apply(*, task: SearchTask, spectrum: Spectrum) -> Correction | None:
    """Correct the entry if its open flags now reach the task's consensus."""
    needed = SearchTask.objects.values_list("consensus_flags", flat=True).get(pk=task.pk)  # the rule as it is now
    open_flags = list(Flag.objects.filter(task=task, spectrum=spectrum, status=Flag.Status.OPEN))
    agreed = consensus({flag.raised_by_id: flag.proposed_label for flag in open_flags}, needed=needed)
    if agreed is None:
        return None
    agreeing = [flag for flag in open_flags if flag.proposed_label == agreed]
    reason = f"{len(agreeing)} independent flags propose {agreed} (the task needs {needed})"
    return _correction_apply(
        task=task,
        spectrum=spectrum,
        corrected_label=agreed,
        rule=Correction.Rule.CONSENSUS,
        actor=None,
        flags=open_flags,
        reason=reason,
    )


def _correction_apply(
    *, task, spectrum, corrected_label: str, rule: str, actor, flags: list[Flag], reason: str
) -> Correction:
    """Record a correction, replacing any earlier one, and close the flags: accepted where they proposed
    ``corrected_label``, rejected otherwise."""
    current = spectrum_task_label(task=task, spectrum=spectrum)
    Correction.objects.filter(task=task, spectrum=spectrum, active=True).update(active=False)
    correction = Correction.objects.create(
        task=task,
        spectrum=spectrum,
        label=current,
        corrected_label=corrected_label,
        rule=rule,
        decided_by=actor,
        reason=reason,
    )
    correction.flags.set(flags)
    now = timezone.now()
    for flag in flags:
        before = _flag_state(flag)
        flag.status = Flag.Status.ACCEPTED if flag.proposed_label == corrected_label else Flag.Status.REJECTED
        flag.closed_at, flag.closed_by, flag.note = now, actor, reason
        flag.save(update_fields=["status", "closed_at", "closed_by", "note"])
        audit_record(
            actor=actor,
            action=f"flag_{flag.status}",
            subject=f"flag {flag.pk}",
            task=task,
            spectrum=spectrum,
            before=before,
            after=_flag_state(flag),
            reason=reason,
        )
    audit_record(
        actor=actor,
        action="correction_applied",
        subject=f"correction {correction.pk}",
        task=task,
        spectrum=spectrum,
        before={"label": current},
        after={"label": corrected_label, "rule": rule},
        reason=reason,
    )
    return correction


@transaction.atomic
def flag_review(
    *, user, task: SearchTask, spectrum: Spectrum, accept: bool, note: str, label: str | None = None
) -> Correction | None:
    """A curator's decision on the open flags of one entry: accept (correcting it to ``label``, by default
    the label most flags propose) or reject them all. ValueError if they were decided meanwhile."""
    _require(user, REVIEW, "review flags")
    note = note.strip()
    if not note:
        raise ValueError("add a note saying why: the audit trail keeps it")
    Spectrum.objects.select_for_update().get(pk=spectrum.pk)  # two curators on one entry: one decides, one is told
    open_flags = list(Flag.objects.filter(task=task, spectrum=spectrum, status=Flag.Status.OPEN).order_by("created_at"))
    if not open_flags:
        last = Flag.objects.filter(task=task, spectrum=spectrum).exclude(closed_at=None).order_by("-closed_at").first()
        decided = (
            f": {last.status} by {last.closed_by or 'consensus'} at {last.closed_at:%Y-%m-%d %H:%M:%S}" if last else ""
        )
        raise ValueError(f"spec-{spectrum.plate_mjd_fiber} has no open flags in task {task.name}{decided}")
    if not accept:
        now = timezone.now()
        for flag in open_flags:
            before = _flag_state(flag)
            flag.status, flag.closed_at, flag.closed_by, flag.note = Flag.Status.REJECTED, now, user, note
            flag.save(update_fields=["status", "closed_at", "closed_by", "note"])
            audit_record(
                actor=user,
                action="flag_rejected",
                subject=f"flag {flag.pk}",
                task=task,
                spectrum=spectrum,
                before=before,
                after=_flag_state(flag),
                reason=note,
            )
        return None
    if not SearchTask.objects.values_list("curator_decides", flat=True).get(pk=task.pk):
        raise ValueError(f"in task {task.name} only agreeing flags correct an entry ({task.consensus_flags} needed)")
    label = label or most_proposed([flag.proposed_label for flag in open_flags])
    if label not in (*task_label_choices(task=task), EXCLUDE):
        raise ValueError(f"{label!r} is not a label of task {task.name}")
    return _correction_apply(
        task=task,
        spectrum=spectrum,
        corrected_label=label,
        rule=Correction.Rule.CURATOR,
        actor=user,
        flags=open_flags,
        reason=note,
    )


@transaction.atomic
def flag_withdraw(*, user, flag: Flag) -> Flag:
    if flag.raised_by_id != getattr(user, "pk", None):
        raise PermissionDenied("only the person who raised a flag may withdraw it")
    flag = Flag.objects.select_for_update().get(pk=flag.pk)
    if flag.status != Flag.Status.OPEN:
        raise ValueError(f"flag {flag.pk} is {flag.status}, no longer open")
    before = _flag_state(flag)
    flag.status, flag.closed_at, flag.closed_by = Flag.Status.WITHDRAWN, timezone.now(), user
    flag.save(update_fields=["status", "closed_at", "closed_by"])
    audit_record(
        actor=user,
        action="flag_withdrawn",
        subject=f"flag {flag.pk}",
        task=flag.task,
        spectrum=flag.spectrum,
        before=before,
        after=_flag_state(flag),
    )
    return flag


@transaction.atomic
def search_task_configure(*, task: SearchTask, consensus_flags: int, curator_decides: bool, actor) -> SearchTask:
    """Change a task's consensus rule; the audit trail keeps the old and the new rule."""
    before = SearchTask.objects.select_for_update().values("consensus_flags", "curator_decides").get(pk=task.pk)
    after = {"consensus_flags": consensus_flags, "curator_decides": curator_decides}
    SearchTask.objects.filter(pk=task.pk).update(**after)
    audit_record(
        actor=actor, action="task_rule_changed", subject=f"task {task.name}", task=task, before=before, after=after
    )
    task.refresh_from_db()
    return task
