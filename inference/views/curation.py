"""The curators' pages: the queue of flagged entries, and one entry with its evidence and flags."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse

from inference.services.curation import curation_item_get, curation_next, curation_queue
from kb.forms import ReviewForm
from kb.models import Spectrum
from kb.roles import REVIEW
from kb.selectors import flags_proposed, search_tasks_visible
from kb.services.curation import flag_review


@login_required
@permission_required(REVIEW, raise_exception=True)
def queue(request):
    task = search_tasks_visible(user=request.user).filter(name=request.GET.get("task", "")).first()
    return render(request, "inference/curation_queue.html", curation_queue(task=task, user=request.user))


@login_required
@permission_required(REVIEW, raise_exception=True)
def item(request, task: str, spectrum_id: int):
    """One flagged entry: the spectrum, its neighbours and their vote, its BPT position, every flag; the decision."""
    task = get_object_or_404(search_tasks_visible(user=request.user), name=task)
    spectrum = get_object_or_404(Spectrum, pk=spectrum_id)
    form = ReviewForm(request.POST or None, task=task, initial={"label": flags_proposed(task=task, spectrum=spectrum)})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        following = curation_next(task=task, spectrum=spectrum)  # the one after it, before it leaves the queue
        try:
            flag_review(
                user=request.user,
                task=task,
                spectrum=spectrum,
                accept=data["decision"] == "accept",
                label=data["label"] or None,
                note=data["note"],
            )
        except ValueError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, f"spec-{spectrum.plate_mjd_fiber} in {task.name}: flags {data['decision']}ed.")
            if following is None:
                messages.info(request, "No flags are left to review.")
                return redirect("inference:curation")
            return redirect("inference:curation-item", task=following.task.name, spectrum_id=following.spectrum.pk)
    context = curation_item_get(task=task, spectrum=spectrum, api_url=request.build_absolute_uri(reverse("api:search")))
    return render(
        request,
        "inference/curation_item.html",
        {**context, "form": form},
        status=400 if request.method == "POST" else 200,
    )
