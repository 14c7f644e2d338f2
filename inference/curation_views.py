"""The curators' pages: the queue of flagged entries, and one entry with its evidence and flags.

They live in inference, not kb, because the evidence for a label is a search: the entry's neighbours
in the knowledge base in service and how they vote (kb never imports inference).
"""
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.shortcuts import get_object_or_404, redirect, render

from inference.search import Query, search
from inference.views import evidence_context
from kb.curation import flag_review
from kb.forms import ReviewForm
from kb.models import Flag, SearchTask, Spectrum
from kb.selectors import agreement_report, curation_items, spectrum_store


def _query(spectrum: Spectrum) -> Query:
    flux, valid = spectrum_store().read()
    return Query(name=f"spec-{spectrum.plate_mjd_fiber}", z=spectrum.z, flux=flux[spectrum.store_row],
                 valid=valid[spectrum.store_row], lines=spectrum.lines, spectrum=spectrum)


@permission_required("kb.review_flag", raise_exception=True)
def queue(request):
    """Flagged entries, most evidence first: flaggers times their agreement, plus one where the spectrum's
    own lines disagree with its label, plus one where its neighbours in the KB in service vote otherwise."""
    task = SearchTask.objects.filter(name=request.GET.get("task", "")).first()
    rows = []
    for item in curation_items(task=task):
        try:
            vote = search(task=item.task, spectrum=item.spectrum).label
        except ValueError:  # no knowledge base in service: no neighbours to ask
            vote = None
        rows.append({"item": item, "vote": vote, "evidence": item.evidence + (1.0 if vote not in (None, item.label) else 0.0)})
    rows.sort(key=lambda row: -row["evidence"])
    return render(request, "inference/curation_queue.html", {
        "rows": rows, "task": task, "tasks": SearchTask.objects.all(), "agreement": agreement_report(task=task),
    })


@permission_required("kb.review_flag", raise_exception=True)
def item(request, task: str, spectrum_id: int):
    """One flagged entry: the spectrum, its neighbours and their vote, its BPT position, every flag; the decision."""
    task = get_object_or_404(SearchTask, name=task)
    spectrum = get_object_or_404(Spectrum, pk=spectrum_id)
    form = ReviewForm(request.POST or None, task=task)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            flag_review(user=request.user, task=task, spectrum=spectrum, accept=data["decision"] == "accept",
                        label=data["label"] or None, note=data["note"])
        except ValueError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, f"spec-{spectrum.plate_mjd_fiber} in {task.name}: flags {data['decision']}ed.")
            return redirect("inference:curation")
    context = {"task": task, "spectrum": spectrum, "form": form,
               "flags": Flag.objects.filter(task=task, spectrum=spectrum).select_related("raised_by", "closed_by")}
    try:
        context.update(evidence_context(request, search(task=task, spectrum=spectrum), _query(spectrum)))
    except ValueError as error:
        context["no_evidence"] = str(error)
    status = 400 if request.method == "POST" else 200
    return render(request, "inference/curation_item.html", context, status=status)
