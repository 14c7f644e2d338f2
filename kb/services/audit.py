"""The audit trail: who changed what, when, from what to what, and why."""

from __future__ import annotations

from kb.models import AuditEvent, SearchTask, Spectrum


def audit_record(
    *,
    actor,
    action: str,
    subject: str,
    task: SearchTask | None = None,
    spectrum: Spectrum | None = None,
    before: dict | None = None,
    after: dict | None = None,
    reason: str = "",
) -> AuditEvent:
    """One entry of the audit trail; call it inside the transaction that makes the change."""
    return AuditEvent.objects.create(
        actor=actor if actor is not None and actor.is_authenticated else None,
        action=action,
        subject=subject,
        task=task,
        spectrum=spectrum,
        before=before or {},
        after=after or {},
        reason=reason,
    )
