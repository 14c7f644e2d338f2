"""The admins' operations page: start pre-training, re-embedding or rebuilds, watch them, then compare
their candidates with the versions in service and promote or discard them."""
from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from galspec_site.progress import progress_json
from inference.models import Operation
from inference.operations import operation_cancel, operation_discard, operation_promote, operation_start
from kb.models import KnowledgeBase, SearchTask
from training.model import PRESETS

OPERATE = "kb.operate_knowledgebase"


class OperationForm(forms.Form):
    kind = forms.ChoiceField(choices=Operation.Kind.choices)
    task = forms.ModelChoiceField(queryset=SearchTask.objects.all(), to_field_name="name", required=False,
                                  empty_label="every task", help_text="for a rebuild")
    preset = forms.ChoiceField(choices=[(name, name) for name in PRESETS], initial="small", help_text="for pre-training")
    max_steps = forms.IntegerField(required=False, min_value=1, help_text="for pre-training (default: the preset's)")


@permission_required(OPERATE, raise_exception=True)
def operations(request):
    form = OperationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            operation = operation_start(user=request.user, kind=data["kind"], task=data["task"], preset=data["preset"],
                                        max_steps=data["max_steps"])
        except ValueError as error:
            form.add_error(None, str(error))
        else:
            return redirect("inference:operation", pk=operation.pk)
    return render(request, "inference/operations.html", {
        "form": form, "operations": Operation.objects.select_related("task", "requested_by")[:30],
    }, status=400 if request.method == "POST" else 200)


def _comparison(operation: Operation) -> list[dict]:
    """Each candidate beside the version in service for its task, on the same test reserve."""
    rows = []
    for candidate in operation.candidates.select_related("task", "training_run").order_by("task__name"):
        current = KnowledgeBase.objects.filter(task=candidate.task, in_service=True).exclude(pk=candidate.pk).first()
        metrics = ("precision", "recall", "f1") if candidate.task.target_labels else ("accuracy", "macro_f1")
        scores = []
        for name in metrics:
            before, after = (current.evaluation if current else {}).get(name), candidate.evaluation.get(name)
            change = after - before if before is not None and after is not None else None
            scores.append({"name": name, "current": before, "candidate": after, "change": change,
                           "candidate_ci": candidate.evaluation.get(f"{name}_ci")})
        rows.append({"candidate": candidate, "current": current, "metrics": scores})
    return rows


@permission_required(OPERATE, raise_exception=True)
def operation(request, pk: int):
    operation = get_object_or_404(Operation.objects.select_related("task", "training_run", "requested_by"), pk=pk)
    return render(request, "inference/operation.html", {"operation": operation, "comparison": _comparison(operation)})


@permission_required(OPERATE, raise_exception=True)
def operation_progress(request, pk: int):
    """Progress in celery-progress's format, plus the stage and the loss curve, from the operation row."""
    operation = get_object_or_404(Operation, pk=pk)
    return progress_json(
        status=operation.status, finished=not operation.active,
        succeeded=operation.status not in (Operation.Status.FAILED, Operation.Status.CANCELLED),
        current=operation.step, total=operation.total, description=operation.stage, error=operation.error,
        stage=operation.stage, history=operation.history,
    )


@permission_required(OPERATE, raise_exception=True)
@require_POST
def operation_decide(request, pk: int, decision: str):
    operation = get_object_or_404(Operation, pk=pk)
    act = {"promote": operation_promote, "discard": operation_discard, "cancel": operation_cancel}[decision]
    try:
        operation = act(user=request.user, operation=operation)
    except ValueError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"{operation}.")
    return redirect("inference:operation", pk=operation.pk)
