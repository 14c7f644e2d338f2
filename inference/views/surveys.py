"""Survey-search pages: start a search of the whole survey, watch it, browse and download its candidates."""

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.paginator import Paginator
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from galspec_site.progress import stage_progress_json
from inference.forms import SurveySearchForm
from inference.models import SurveySearch
from inference.selectors.background import (
    KNOWN,
    NEW,
    survey_candidates,
    survey_candidates_table,
    survey_csv,
    survey_search_list,
)
from inference.services.surveys import survey_search_can_cancel, survey_search_cancel, survey_search_start
from inference.tables import table_votable
from kb.selectors import spectrum_ids_by_specobjid


def surveys(request):
    form = SurveySearchForm(request.POST or None, user=request.user)
    if request.method == "POST":
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if form.is_valid():
            data = form.cleaned_data
            try:
                survey, _ = survey_search_start(
                    user=request.user, task=data["task"], labels=data["labels"], k=data["k"]
                )
            except ValueError as error:
                form.add_error(None, str(error))
            else:
                return redirect("inference:survey", pk=survey.pk)
    return render(
        request,
        "inference/surveys.html",
        {"form": form, "surveys": survey_search_list(user=request.user)[:50]},
        status=400 if request.method == "POST" else 200,
    )


def _survey(request, pk: int) -> SurveySearch:
    return get_object_or_404(
        survey_search_list(user=request.user).select_related("knowledge_base__training_run"), pk=pk
    )


def survey(request, pk: int):
    survey = _survey(request, pk)
    label, known = request.GET.get("label", ""), request.GET.get("known", "")
    if known not in ("", KNOWN, NEW):
        known = ""
    page = Paginator(survey_candidates(survey=survey, label=label, known=known), 50).get_page(request.GET.get("page"))
    spectrum_of = spectrum_ids_by_specobjid({s for candidate in page for s in candidate.neighbours})
    for candidate in page:  # each neighbour a link to its page
        candidate.neighbour_links = [(s, spectrum_of.get(s)) for s in candidate.neighbours]
    can_cancel = not survey.finished and survey_search_can_cancel(user=request.user, survey=survey)
    return render(
        request,
        "inference/survey.html",
        {
            "survey": survey,
            "candidates": page,
            "label": label,
            "known": known,
            "query": urlencode({key: value for key, value in (("label", label), ("known", known)) if value}),
            "can_cancel": can_cancel,
            "counts": sorted(survey.label_counts.items(), key=lambda item: -item[1]),
        },
    )


def survey_progress(request, pk: int):
    """Progress in celery-progress's format, read from the survey-search row."""
    survey = _survey(request, pk)
    return stage_progress_json(survey, finished=survey.finished, succeeded=survey.status == SurveySearch.Status.DONE)


def survey_download(request, pk: int, what: str):
    """The candidates (``candidates.csv``) or every spectrum's row (``all.csv``), streamed from the CSV parts."""
    survey = _survey(request, pk)
    if survey.status != SurveySearch.Status.DONE:
        messages.error(request, f"{survey} has no table to download: it is {survey.status}.")
        return redirect("inference:survey", pk=survey.pk)
    response = StreamingHttpResponse(
        survey_csv(survey=survey, candidates_only=what == "candidates"), content_type="text/csv"
    )
    response["Content-Disposition"] = f'attachment; filename="galspec-survey-{survey.pk}-{survey.task.name}-{what}.csv"'
    return response


def survey_votable(request, pk: int):
    """The candidates as a VOTable: units and UCDs for TOPCAT and other VO tools, the search's metadata as PARAMs."""
    survey = _survey(request, pk)
    if survey.status != SurveySearch.Status.DONE:
        messages.error(request, f"{survey} has no candidates to download: it is {survey.status}.")
        return redirect("inference:survey", pk=survey.pk)
    response = HttpResponse(
        table_votable(survey_candidates_table(survey=survey)), content_type="application/x-votable+xml"
    )
    response["Content-Disposition"] = f'attachment; filename="galspec-survey-{survey.pk}-{survey.task.name}.vot"'
    return response


@require_POST
def survey_cancel(request, pk: int):
    """Who started the search, or an administrator, stops it; anyone else is refused (403), as by the API."""
    survey = survey_search_cancel(user=request.user, survey=_survey(request, pk))
    messages.info(request, f"Survey search {survey.pk} is {survey.status}.")
    return redirect("inference:survey", pk=survey.pk)
