"""The operations pages: admins start pre-training, re-embedding or rebuilds; everyone who started an
operation (an astronomer's composition, from the task's page) watches it and compares its candidates
with the versions in service; admins promote or discard them."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from galspec_site.progress import stage_progress_json
from inference.forms import OperationForm
from inference.models import Operation
from inference.selectors.background import operation_comparison, operation_list, operation_plan
from inference.services.operations import (
    operation_cancel,
    operation_decidable,
    operation_discard,
    operation_promote,
    operation_start,
    operation_visible,
)
from kb.roles import OPERATE


@login_required
@permission_required(OPERATE, raise_exception=True)
def operations(request):
    """Start an operation: the form, then what it would do and how long it would take, then (confirmed) it."""
    form = OperationForm(request.POST or None)
    plan = None
    if request.method == "POST" and form.is_valid():
        chosen = {key: value for key, value in form.cleaned_data.items() if key != "confirmed"}
        if not form.cleaned_data["confirmed"]:  # say what will run before anything starts
            plan = operation_plan(**chosen)
            form = OperationForm(initial={**chosen, "confirmed": True})
            context = {"form": form, "plan": plan, "operations": operation_list()[:30]}
            return render(request, "inference/operations.html", context)
        try:
            operation = operation_start(user=request.user, **chosen)
        except ValueError as error:  # shown again unconfirmed: the next try reviews its plan first
            form = OperationForm({key: value for key, value in request.POST.items() if key != "confirmed"})
            form.is_valid()
            form.add_error(None, str(error))
        else:
            return redirect("inference:operation", pk=operation.pk)
    return render(
        request,
        "inference/operations.html",
        {"form": form, "operations": operation_list()[:30]},
        status=400 if request.method == "POST" else 200,
    )


def _operation_for(request, pk: int) -> Operation:
    operation = Operation.objects.select_related("task", "training_run", "requested_by").filter(pk=pk).first()
    if operation is None or not operation_visible(user=request.user, operation=operation):
        raise Http404(f"no operation {pk}")  # one answer: which operations exist is nobody else's business
    return operation


@login_required
def operation(request, pk: int):
    operation = _operation_for(request, pk)
    return render(
        request,
        "inference/operation.html",
        {
            "operation": operation,
            # candidates are compared once all are built and scored, not while one is half-made
            "comparison": [] if operation.active else operation_comparison(operation=operation),
            "may_decide": operation_decidable(user=request.user, operation=operation),
        },
    )


@login_required
def operation_progress(request, pk: int):
    """Progress in celery-progress's format, plus the stage and the loss curve, from the operation row."""
    operation = _operation_for(request, pk)
    return stage_progress_json(
        operation,
        finished=not operation.active,
        succeeded=operation.status not in (Operation.Status.FAILED, Operation.Status.CANCELLED),
        stage=operation.stage,
        history=operation.history,
    )


@login_required
@require_POST
def operation_decide(request, pk: int, decision: str):
    """Promote or discard (admins), or cancel (admins, and whoever started it); the services check who."""
    operation = _operation_for(request, pk)
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
