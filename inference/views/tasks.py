"""The search tasks' pages: each task's knowledge-base versions and scores, how its scores move with the
share of targets, and building a knowledge base of a chosen composition (retasking without retraining)."""

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from inference.forms import CatalogTaskForm, ComposeForm
from inference.selectors.tasks import composition_list, share_sweep_get
from inference.services.operations import knowledge_base_candidate_start
from kb.labellings import CATALOG
from kb.models import KnowledgeBase, SearchTask
from kb.plots import share_figure, version_figures
from kb.selectors import knowledge_base_list, search_task_list, search_tasks_visible
from kb.services.catalog_tasks import catalog_task_create, search_task_publish
from training.selectors import training_run_in_service

CATALOG_SHARE = 0.1  # the target share first offered for a task made from a catalog


def tasks(request):
    """Every task one may see; POST (astronomers): a new task from one's own catalog, then its page."""
    form = CatalogTaskForm(request.POST or None, request.FILES or None)
    if request.method == "POST":
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if form.is_valid():
            try:
                task = catalog_task_create(user=request.user, **form.create_kwargs())
            except ValueError as error:
                form.add_error(None, str(error))
            else:
                return redirect("inference:task", name=task.name)
    return render(
        request,
        "inference/tasks.html",
        {"tasks": search_task_list(user=request.user), "form": form},
        status=400 if request.method == "POST" else 200,
    )


@require_POST
def task_publish(request, name: str):
    """A curator publishes an astronomer's task: everyone may then see it and search with it."""
    task = get_object_or_404(search_tasks_visible(user=request.user), name=name)
    try:
        search_task_publish(user=request.user, task=task, reason=request.POST.get("reason", ""))
    except ValueError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"Task {task.name} is published: everyone can search with it.")
    return redirect("inference:task", name=task.name)


def task(request, name: str):
    """A task's versions and scores; for a search task, its share sweep and the form that builds a
    candidate knowledge base of the share a person picks (POST: astronomers; the candidate's page follows)."""
    task = get_object_or_404(search_tasks_visible(user=request.user), name=name)
    versions = knowledge_base_list(task=task)
    in_service = next((kb for kb in versions if kb.in_service), None)
    form = ComposeForm(request.POST or None, initial=None if request.method == "POST" else _suggested(task, in_service))
    if request.method == "POST":
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if form.is_valid():
            try:
                operation = knowledge_base_candidate_start(user=request.user, task=task, **form.start_kwargs())
            except ValueError as error:
                form.add_error(None, str(error))
            else:
                return redirect("inference:operation", pk=operation.pk)
    checkpoint = training_run_in_service()
    sweep = share_sweep_get(task=task, training_run=checkpoint)  # what a build now would be built with
    context = {
        "task": task,
        "versions": versions,
        "in_service": in_service,
        "figures": version_figures([kb for kb in versions if kb.status == KnowledgeBase.Status.READY], task.scores),
        "sweep": sweep,
        "share_figure": share_figure(sweep.rows, _share(task, in_service)) if sweep and sweep.rows else None,
        "form": form,
        "compositions": composition_list(task=task, user=request.user)[:20],
        "checkpoint": checkpoint,
    }
    return render(request, "inference/task.html", context, status=400 if request.method == "POST" else 200)


def _share(task: SearchTask, kb: KnowledgeBase | None) -> float | None:
    """The share of targets among a version's entries."""
    if kb is None or not kb.size or not task.target_labels:
        return None
    return sum(kb.composition.get(label, 0) for label in task.target_labels) / kb.size


def _suggested(task: SearchTask, kb: KnowledgeBase | None) -> dict:
    """What the form offers first: the composition of the version in service; else natural proportions,
    or for a task made from a catalog (whose natural share is its few examples among the whole survey)
    CATALOG_SHARE."""
    if kb is not None:
        return {"target_fraction": kb.target_fraction, "seed": 0, "index": kb.index_kind}
    return {"target_fraction": CATALOG_SHARE if task.labelling == CATALOG else None, "seed": 0, "index": "flat"}
