"""Pages: the pipeline at a glance, and searching one spectrum with its evidence."""

from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode

from inference.forms import SearchForm
from inference.selectors.embeddings import pipeline_summary
from inference.selectors.evidence import evidence_get
from inference.services.search import search_query
from kb.models import KnowledgeBase


def pipeline(request):
    return render(request, "inference/pipeline.html", pipeline_summary())


def search(request):
    """The search form. An upload is answered at once; a search by identifier or position goes to its
    own address (``search/result/?...``), which can be bookmarked and shared."""
    if request.method != "POST":
        form = SearchForm(initial=request.GET or None, user=request.user)
        return render(request, "inference/search.html", {"form": form, "named": _named(form)})
    form = SearchForm(request.POST, request.FILES, user=request.user)
    if not form.is_valid():
        return render(request, "inference/search.html", {"form": form, "named": _named(form)}, status=400)
    if form.cleaned_data.get("file") is None:
        return redirect(f"{reverse('inference:search-result')}?{urlencode(form.result_params())}")
    return _answer(request, form)


def _named(form: SearchForm) -> KnowledgeBase | None:
    """The knowledge-base version the form searches instead of the one in service, if it names one that this
    person may see (the field's own choices: versions of the tasks visible to them)."""
    key = str(form["knowledge_base"].value() or "")
    versions = form.fields["knowledge_base"].queryset.select_related("task")
    return versions.filter(pk=key).first() if key.isascii() and key.isdigit() else None


def search_result(request):
    form = SearchForm(request.GET, user=request.user)
    if not form.is_valid():
        return render(request, "inference/search.html", {"form": form}, status=400)
    return _answer(request, form)


def _answer(request, form: SearchForm):
    try:
        answer, query = search_query(**form.query())
    except ValueError as error:
        form.add_error(None, str(error))
        return render(request, "inference/search.html", {"form": form}, status=400)
    api_url = request.build_absolute_uri(reverse("api:search"))
    return render(request, "inference/result.html", evidence_get(answer=answer, query=query, api_url=api_url))
