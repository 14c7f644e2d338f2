"""HTML pages: the pipeline, searching one spectrum and its evidence, batch search jobs."""
from collections import Counter

import numpy as np
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from galspec_site.progress import progress_json
from inference.figures import bpt_panels
from inference.forms import BatchForm, SearchForm
from inference.jobs import search_job_cancel, search_job_create
from inference.models import SearchJob
from inference.search import Answer, Query, search_query
from inference.selectors import embeddings_in_service, search_job_get, search_job_list, search_job_rows
from inference.tables import read_queries
from kb.bpt import bpt_ratios
from kb.models import Spectrum
from kb.preprocess import PAPER, wave_grid
from kb.selectors import bpt_labels, label_counts, last_ingest, spectrum_store
from kb.views import LINES_SHOWN
from training.selectors import training_run_list


def pipeline(request):
    embedding_set, _ = embeddings_in_service()
    context = {
        "n_spectra": Spectrum.objects.count(),
        "labels": label_counts(),
        "bpt_consensus": Counter(bpt_labels().values()).most_common(),
        "runs": training_run_list(),
        "embedding_set": embedding_set,
        "ingest": last_ingest(),
    }
    return render(request, "inference/pipeline.html", context)


def search(request):
    """The search form. An upload is answered at once; a search by identifier or position goes to its
    own address (``search/result/?...``), which can be bookmarked and shared."""
    if request.method != "POST":
        return render(request, "inference/search.html", {"form": SearchForm(initial=request.GET or None)})
    form = SearchForm(request.POST, request.FILES)
    if not form.is_valid():
        return render(request, "inference/search.html", {"form": form}, status=400)
    query = form.query()
    if query["upload"] is None:
        params = {key: value for key, value in form.cleaned_data.items() if key != "file" and value not in (None, "")}
        params["task"] = params["task"].name
        if "knowledge_base" in params:
            params["knowledge_base"] = params["knowledge_base"].pk
        return redirect(f"{reverse('inference:search-result')}?{urlencode(params)}")
    return _answer(request, form)


def search_result(request):
    form = SearchForm(request.GET)
    if not form.is_valid():
        return render(request, "inference/search.html", {"form": form}, status=400)
    return _answer(request, form)


def _answer(request, form: SearchForm):
    try:
        answer, query = search_query(**form.query())
    except ValueError as error:
        form.add_error(None, str(error))
        return render(request, "inference/search.html", {"form": form}, status=400)
    return render(request, "inference/result.html", evidence_context(request, answer, query))


def evidence_context(request, answer: Answer, query: Query) -> dict:
    """What the result page shows: the vote, the neighbours, their spectra overlaid, their BPT positions."""
    flux, valid = spectrum_store().read()
    neighbours = {s.pk: s for s in Spectrum.objects.filter(pk__in=[n.spectrum_id for n in answer.neighbours])}

    def gaps(f, v):
        return [round(float(x), 4) if ok else None for x, ok in zip(f, v)]

    spectra = [{"name": f"query: {query.name}", "z": query.z, "flux": gaps(query.flux, query.valid)}]
    points = [{"name": "query", "label": answer.label, "query": True, **bpt_ratios(query.lines)}]
    for i, n in enumerate(answer.neighbours, start=1):
        spectrum = neighbours[n.spectrum_id]
        spectra.append({"name": f"#{i} {n.label} (d={n.distance:.3f}, w={n.weight:.2f})", "z": spectrum.z,
                        "flux": gaps(flux[spectrum.store_row], valid[spectrum.store_row])})
        points.append({"name": f"#{i} {n.specobjid}", "label": n.label, **bpt_ratios(spectrum.lines)})
    plot = {"wave": np.round(wave_grid(PAPER), 2).tolist(), "lines": LINES_SHOWN, "spectra": spectra, "frame": "rest",
            "title": f"{query.name} and its {len(answer.neighbours)} nearest neighbours"}
    api = request.build_absolute_uri(reverse("api:search"))
    if query.spectrum is None:
        call = f'files={{"file": open("{query.name}", "rb")}}, data={{"task": "{answer.task}", "k": {answer.k}}}'
    else:
        call = f'data={{"task": "{answer.task}", "identifier": "{query.spectrum.specobjid}", "k": {answer.k}}}'
    snippet = (
        "import requests\n\n"
        f"answer = requests.post(\n    \"{api}\",\n    {call},\n"
        "    headers={\"Authorization\": \"Token YOUR-TOKEN\"},  # optional: a token raises the rate limit\n"
        ").json()\n"
        "print(answer[\"label\"], answer[\"share\"], answer[\"kb_version\"], answer[\"checkpoint\"])\n"
        "for n in answer[\"neighbours\"]:\n"
        "    print(n[\"specobjid\"], n[\"label\"], n[\"distance\"], n[\"weight\"])\n"
    )
    placed = [p for p in points if "o3" in p and any(ratio in p for ratio in ("n2", "s2", "o1"))]
    return {
        "answer": answer, "query": query, "plot": plot, "snippet": snippet, "share_percent": 100 * answer.share,
        "bpt": bpt_panels(points).to_plotly_json() if placed else None,
        "unplaced": [p["name"] for p in points if p not in placed],
        "shares": [(label, 100 * share) for label, share in sorted(answer.shares.items(), key=lambda item: -item[1])],
    }


@login_required
def batch(request):
    form = BatchForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            queries = [{"identifier": line.strip()} for line in data["identifiers"].splitlines() if line.strip()]
            if data.get("csv"):
                queries += read_queries(data["csv"].read().decode("utf-8-sig", errors="replace"))
            with transaction.atomic():
                job = search_job_create(owner=request.user, task=data["task"], k=data["k"], queries=queries,
                                        files=[(f.name, f) for f in data["files"]])
        except ValueError as error:
            form.add_error(None, str(error))
        else:
            return redirect("inference:job", public_id=job.public_id)
    status = 400 if request.method == "POST" else 200
    return render(request, "inference/batch.html", {"form": form, "jobs": search_job_list(owner=request.user)[:20]},
                  status=status)


def _job(request, public_id) -> SearchJob:
    try:
        return search_job_get(public_id=public_id, owner=request.user)
    except SearchJob.DoesNotExist:
        raise Http404("no such search job of yours") from None


@login_required
def job(request, public_id):
    job = _job(request, public_id)
    rows = search_job_rows(job=job)[:500] if job.done else []
    return render(request, "inference/job.html", {"job": job, "rows": rows})


@login_required
def job_progress(request, public_id):
    """The job's progress in celery-progress's format, read from the job row (which outlives the broker's results)."""
    job = _job(request, public_id)
    return progress_json(status=job.status, finished=job.finished, succeeded=job.status == SearchJob.Status.DONE,
                         current=job.done, total=job.total, error=job.error,
                         description=f"{job.failed} could not be searched" if job.failed else "")


@login_required
@require_POST
def job_cancel(request, public_id):
    job = search_job_cancel(job=_job(request, public_id))
    messages.info(request, f"Job {job.public_id} is {job.status}.")
    return redirect("inference:job", public_id=job.public_id)
