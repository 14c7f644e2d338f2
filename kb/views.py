"""HTML pages of the ingested spectra, the search tasks and their knowledge bases."""

import io
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.table import Table
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from kb.bpt import bpt_ratios
from kb.filters import KBEntryFilter, SpectrumFilter
from kb.forms import FlagForm
from kb.models import AuditEvent, Flag, KBEntry, KnowledgeBase, Spectrum
from kb.plots import EMISSION_LINES
from kb.sdss_archive import archive_url, skyserver_url
from kb.selectors import (
    audit_list,
    kb_entry_list,
    label_counts,
    last_ingest,
    search_task_list,
    search_tasks_visible,
    spectrum_flux,
    spectrum_get,
    spectrum_list,
    spectrum_store,
    spectrum_task_label,
)
from kb.services.curation import flag_raise, flag_withdraw


def spectra(request):
    """Every ingested spectrum, filtered as the API filters them: by identifier, redshift, position, label."""
    params = request.GET.copy()
    spectrum_filter = SpectrumFilter(params, queryset=spectrum_list())
    found = spectrum_filter.qs if spectrum_filter.is_valid() else Spectrum.objects.none()
    page = Paginator(found, 25).get_page(request.GET.get("page"))
    params.pop("page", None)
    context = {
        "spectra": page,
        "filter": spectrum_filter,
        "n_spectra": Spectrum.objects.count(),
        "labels": label_counts(),
        "label": request.GET.get("label", ""),
        "label_query": params.urlencode(),
        "ingest": last_ingest(),
    }
    return render(request, "kb/spectra.html", context)


def spectrum_detail(request, pk: int):
    try:
        spectrum = spectrum_get(pk=pk)
    except Spectrum.DoesNotExist:
        raise Http404(f"no spectrum {pk}") from None
    lines = sorted(spectrum.lines.items(), key=lambda item: item[1]["wave_rest"])
    context = {
        "spectrum": spectrum,
        "plot": _spectrum_plot(spectrum),
        "lines": lines,
        "valid_percent": 100 * spectrum.valid_fraction,
        "bpt": bpt_ratios(spectrum.lines),
        "entries": spectrum.kb_entries.filter(
            knowledge_base__task__in=search_tasks_visible(user=request.user)
        ).select_related("knowledge_base__task"),
        "tasks": search_task_list(user=request.user),
        "archive": None
        if spectrum.mock
        else {
            "explore": skyserver_url(spectrum.specobjid),
            "file": archive_url(spectrum.plate, spectrum.mjd, spectrum.fiberid, spectrum.run2d),
        },
        "has_file": Path(spectrum.source_file).is_file(),
    }
    return render(request, "kb/spectrum_detail.html", context)


def spectrum_csv(request, pk: int):
    """The preprocessed spectrum as CSV with an ECSV header (astropy and TOPCAT read its units and what it
    is): observed wavelength, normalised flux, its inverse variance and validity on the 3688-point grid."""
    spectrum = get_object_or_404(Spectrum, pk=pk)
    wave, flux, valid = spectrum_flux(spectrum=spectrum)
    table = Table(
        {
            "wave_obs": wave * u.AA,
            "flux": flux * u.dimensionless_unscaled,
            "ivar": spectrum_store().read_ivar()[spectrum.store_row] * u.dimensionless_unscaled,
            "valid": valid,
        },
        meta={
            "specobjid": spectrum.specobjid,
            "plate_mjd_fiber": spectrum.plate_mjd_fiber,
            "z": spectrum.z,
            "norm": f"{spectrum.norm:.6g} 1e-17 erg s-1 cm-2 Angstrom-1 (median F_lambda over rest 5300-5850 A)",
            "flux": "F_lambda / norm; ivar its inverse variance; valid false where masked or not observed",
            "mock": spectrum.mock,
        },
    )
    text = io.StringIO()
    table.write(text, format="ascii.ecsv", delimiter=",")
    response = HttpResponse(text.getvalue(), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="spec-{spectrum.plate_mjd_fiber}.csv"'
    return response


def spectrum_fits(request, pk: int):
    """The spectrum's file as it was ingested (spec-lite FITS)."""
    spectrum = get_object_or_404(Spectrum, pk=pk)
    path = Path(spectrum.source_file)
    if not path.is_file():
        raise Http404(f"the file of spec-{spectrum.plate_mjd_fiber} is no longer where it was ingested from")
    return FileResponse(path.open("rb"), as_attachment=True, filename=path.name)


def _spectrum_plot(spectrum: Spectrum) -> dict:
    """The preprocessed spectrum as ``static/js/spectrum_plot.js`` draws it."""
    wave, flux, valid = spectrum_flux(spectrum=spectrum)
    return {
        "wave": np.round(wave, 2).tolist(),
        "spectra": [
            {
                "name": f"spec-{spectrum.plate_mjd_fiber}",
                "z": spectrum.z,
                "flux": [round(float(f), 4) if v else None for f, v in zip(flux, valid)],
            }
        ],
        "lines": EMISSION_LINES,
        "title": f"spec-{spectrum.plate_mjd_fiber}, z = {spectrum.z:.4f}",
    }


@login_required
def flag(request, task: str, spectrum_id: int):
    """Flag a spectrum as mislabelled in a task: the label it should have, and why; then back to the page
    the person came from (``next``), or the spectrum's."""
    task = get_object_or_404(search_tasks_visible(user=request.user), name=task)
    spectrum = get_object_or_404(Spectrum, pk=spectrum_id)
    form = FlagForm(request.POST or None, task=task)
    current = spectrum_task_label(task=task, spectrum=spectrum)
    back = request.POST.get("next") or request.GET.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        back = ""
    if request.method == "POST" and form.is_valid():
        try:
            flag_raise(
                user=request.user,
                task=task,
                spectrum=spectrum,
                reason=form.cleaned_data["reason"],
                proposed_label=form.cleaned_data["proposed_label"],
                entry=KBEntry.objects.filter(
                    knowledge_base__task=task, knowledge_base__in_service=True, spectrum=spectrum
                ).first(),
            )
        except ValueError as error:
            form.add_error(None, str(error))
        else:
            messages.success(
                request,
                f"Flag recorded: spec-{spectrum.plate_mjd_fiber} in {task.name}, "
                f"{current} -> {form.cleaned_data['proposed_label']}. Curators will review it.",
            )
            return redirect(back or reverse("kb:spectrum-detail", args=[spectrum.pk]))
    context = {
        "form": form,
        "task": task,
        "spectrum": spectrum,
        "current": current,
        "mine": Flag.objects.filter(
            task=task, spectrum=spectrum, raised_by=request.user, status=Flag.Status.OPEN
        ).first(),
        "plot": _spectrum_plot(spectrum),
        "next": back,
    }
    return render(request, "kb/flag.html", context, status=400 if request.method == "POST" else 200)


@login_required
@require_POST
def flag_withdrawal(request, task: str, spectrum_id: int):
    """Withdraw one's own open flag on an entry, from the flag page; then back to that page."""
    task = get_object_or_404(search_tasks_visible(user=request.user), name=task)
    flag = get_object_or_404(Flag, task=task, spectrum_id=spectrum_id, raised_by=request.user, status=Flag.Status.OPEN)
    flag_withdraw(user=request.user, flag=flag)
    messages.success(request, f"Flag {flag.pk} withdrawn: curators will not review it.")
    return redirect("kb:flag", task=task.name, spectrum_id=spectrum_id)


@login_required
@permission_required("kb.view_auditevent", raise_exception=True)
def audit(request):
    """The audit trail, newest first: who changed what, when, from what to what, and why."""
    name = request.GET.get("task", "")
    task = search_tasks_visible(user=request.user).filter(name=name).first()
    events = audit_list(task=task, action=request.GET.get("action", ""), user=request.user)
    if name and task is None:
        events = events.none()  # a task one may not see has no events to show
    if request.GET.get("spectrum", "").isdigit():
        events = events.filter(spectrum_id=int(request.GET["spectrum"]))
    page = Paginator(events, 100).get_page(request.GET.get("page"))
    params = request.GET.copy()
    params.pop("page", None)
    return render(
        request,
        "kb/audit.html",
        {
            "events": page,
            "query": params.urlencode(),
            "tasks": search_task_list(user=request.user),
            "actions": AuditEvent.objects.values_list("action", flat=True).distinct(),
        },
    )


def entries(request):
    """The KB browser: entries of the knowledge bases in service (or of one version), filtered and paginated."""
    params = request.GET.copy()
    queryset = kb_entry_list(in_service_only=not params.get("knowledge_base"), user=request.user)
    entry_filter = KBEntryFilter(params, queryset=queryset, request=request)
    found = entry_filter.qs if entry_filter.is_valid() else queryset.none()  # a choice it cannot make finds nothing
    page = Paginator(found, 50).get_page(request.GET.get("page"))
    params.pop("page", None)
    knowledge_base = (
        KnowledgeBase.objects.filter(
            pk=params.get("knowledge_base"), task__in=search_tasks_visible(user=request.user)
        ).first()
        if params.get("knowledge_base", "").isdigit()
        else None
    )
    return render(
        request,
        "kb/entries.html",
        {"filter": entry_filter, "entries": page, "query": params.urlencode(), "knowledge_base": knowledge_base},
    )
