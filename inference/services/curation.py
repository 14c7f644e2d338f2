"""What curators see, built on a search: the queue of flagged entries ranked with their neighbours'
vote, and one entry with its evidence.

It lives in inference, not kb, because the evidence for a label is a search: the entry's neighbours in
the knowledge base in service and how they vote (kb never imports inference). Reads only.
"""

from __future__ import annotations

from inference.selectors.evidence import evidence_get, spectrum_query
from inference.services.search import search
from kb.models import Flag, SearchTask, Spectrum
from kb.selectors import agreement_report, curation_items, search_tasks_visible


def curation_queue(*, task: SearchTask | None = None, user=None) -> dict:
    """Flagged entries (of ``task``, or of every task), most evidence first: flaggers times their
    agreement, plus one where the spectrum's own lines disagree with its label, plus one where its
    neighbours in the KB in service vote otherwise; and the curators' agreement."""
    rows = []
    for item in curation_items(task=task):
        try:
            vote = search(task=item.task, spectrum=item.spectrum).label
        except ValueError:  # no knowledge base in service: no neighbours to ask
            vote = None
        rows.append(
            {"item": item, "vote": vote, "evidence": item.evidence + (1.0 if vote not in (None, item.label) else 0.0)}
        )
    rows.sort(key=lambda row: -row["evidence"])
    return {
        "rows": rows,
        "task": task,
        "tasks": search_tasks_visible(user=user),
        "agreement": agreement_report(task=task, user=user),
    }


def curation_next(*, task: SearchTask, spectrum: Spectrum):
    """The entry a curator takes up after this one: the next in the queue (``curation_items``'s order), the
    first if this one is not in it, or None at its end."""
    items = curation_items()
    at = next((n for n, i in enumerate(items) if (i.task.pk, i.spectrum.pk) == (task.pk, spectrum.pk)), -1)
    return items[at + 1] if at + 1 < len(items) else None


def curation_item_get(*, task: SearchTask, spectrum: Spectrum, api_url: str) -> dict:
    """One flagged entry: every flag on it, and the evidence of its neighbours' vote (``evidence_get``),
    or why there is none (``no_evidence``)."""
    context = {
        "task": task,
        "spectrum": spectrum,
        "flags": Flag.objects.filter(task=task, spectrum=spectrum).select_related("raised_by", "closed_by"),
    }
    following = curation_next(task=task, spectrum=spectrum)
    context["next_item"] = (following.task.name, following.spectrum.pk) if following else None
    try:
        context.update(
            evidence_get(answer=search(task=task, spectrum=spectrum), query=spectrum_query(spectrum), api_url=api_url)
        )
    except ValueError as error:
        context["no_evidence"] = str(error)
    return context
