"""Pages of batch search jobs: start one, watch it, read its answers, cancel it."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from galspec_site.progress import progress_json
from inference.forms import BatchForm
from inference.models import SearchJob
from inference.selectors.background import search_job_get, search_job_list, search_job_rows
from inference.services.jobs import search_job_cancel, search_job_create


@login_required
def batch(request):
    form = BatchForm(request.POST or None, request.FILES or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            job = search_job_create(
                owner=request.user,
                task=data["task"],
                k=data["k"],
                identifiers=data["identifiers"].splitlines(),
                query_list=data["csv"],
                files=data["files"],
            )
        except ValueError as error:
            form.add_error(None, str(error))
        else:
            return redirect("inference:job", public_id=job.public_id)
    status = 400 if request.method == "POST" else 200
    return render(
        request, "inference/batch.html", {"form": form, "jobs": search_job_list(owner=request.user)[:20]}, status=status
    )


def _job(request, public_id) -> SearchJob:
    try:
        return search_job_get(public_id=public_id, owner=request.user)
    except SearchJob.DoesNotExist:
        raise Http404("no such search job of yours") from None


@login_required
def job(request, public_id):
    job = _job(request, public_id)
    rows = search_job_rows(job=job)[:500] if job.done else []
    return render(
        request,
        "inference/job.html",
        {
            "job": job,
            "rows": rows,
            "live": not job.finished,
            "progress_message": f"{job.done} of {job.total} processed.",
        },
    )


@login_required
def job_progress(request, public_id):
    """The job's progress in celery-progress's format, read from the job row (which outlives the broker's results)."""
    job = _job(request, public_id)
    return progress_json(
        status=job.status,
        finished=job.finished,
        succeeded=job.status == SearchJob.Status.DONE,
        current=job.done,
        total=job.total,
        error=job.error,
        description=f"{job.failed} could not be searched" if job.failed else "",
    )


@login_required
@require_POST
def job_cancel(request, public_id):
    job = search_job_cancel(job=_job(request, public_id))
    messages.info(request, f"Job {job.public_id} is {job.status}.")
    return redirect("inference:job", public_id=job.public_id)
