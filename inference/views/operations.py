"""The admins' operations page: start pre-training, re-embedding or rebuilds, watch them, then compare
their candidates with the versions in service and promote or discard them."""

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from galspec_site.progress import stage_progress_json
from inference.forms import OperationForm
from inference.models import Operation
from inference.selectors.background import operation_comparison, operation_list
from inference.services.operations import operation_cancel, operation_discard, operation_promote, operation_start
from kb.roles import OPERATE


@permission_required(OPERATE, raise_exception=True)
def operations(request):
    form = OperationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            operation = operation_start(user=request.user, **form.cleaned_data)
        except ValueError as error:
            form.add_error(None, str(error))
        else:
            return redirect("inference:operation", pk=operation.pk)
    return render(
        request,
        "inference/operations.html",
        {"form": form, "operations": operation_list()[:30]},
        status=400 if request.method == "POST" else 200,
    )


@permission_required(OPERATE, raise_exception=True)
def operation(request, pk: int):
    operation = get_object_or_404(Operation.objects.select_related("task", "training_run", "requested_by"), pk=pk)
    return render(
        request,
        "inference/operation.html",
        {"operation": operation, "comparison": operation_comparison(operation=operation)},
    )


@permission_required(OPERATE, raise_exception=True)
def operation_progress(request, pk: int):
    """Progress in celery-progress's format, plus the stage and the loss curve, from the operation row."""
    operation = get_object_or_404(Operation, pk=pk)
    return stage_progress_json(
        operation,
        finished=not operation.active,
        succeeded=operation.status not in (Operation.Status.FAILED, Operation.Status.CANCELLED),
        stage=operation.stage,
        history=operation.history,
    )


@permission_required(OPERATE, raise_exception=True)
@require_POST
def operation_decide(request, pk: int, decision: str):
    operation = get_object_or_404(Operation, pk=pk)
    act = {"promote": operation_promote, "discard": operation_discard, "cancel": operation_cancel}.get(decision)
    if act is None:
        raise Http404(f"no decision {decision!r}: promote, discard or cancel")
    try:
        operation = act(user=request.user, operation=operation)
    except ValueError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"{operation}.")
    return redirect("inference:operation", pk=operation.pk)
