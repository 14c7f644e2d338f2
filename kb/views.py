"""HTML pages of the ingested spectra."""
import numpy as np
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import render

from kb.models import Spectrum
from kb.selectors import label_counts, last_ingest, spectrum_flux, spectrum_get, spectrum_list

LINES_SHOWN = {  # lines marked on plots: rest wavelength, Angstrom, vacuum
    "[O II] 3727": 3728.48, "H-delta": 4102.89, "H-gamma": 4341.68, "H-beta": 4862.68, "[O III] 4959": 4960.30,
    "[O III] 5007": 5008.24, "Mg b": 5175.0, "Na D": 5894.0, "[O I] 6300": 6302.05, "[N II] 6548": 6549.86,
    "H-alpha": 6564.61, "[N II] 6583": 6585.27, "[S II] 6716": 6718.29, "[S II] 6731": 6732.68,
    "Ca II K": 3934.78, "Ca II H": 3969.59, "G band": 4305.0,
}


def spectra(request):
    page = Paginator(spectrum_list(label=request.GET.get("label")), 25).get_page(request.GET.get("page"))
    context = {
        "spectra": page,
        "n_spectra": Spectrum.objects.count(),
        "labels": label_counts(),
        "label": request.GET.get("label", ""),
        "ingest": last_ingest(),
    }
    return render(request, "kb/spectra.html", context)


def spectrum_detail(request, pk: int):
    try:
        spectrum = spectrum_get(pk=pk)
    except Spectrum.DoesNotExist:
        raise Http404(f"no spectrum {pk}") from None
    wave, flux, valid = spectrum_flux(spectrum=spectrum)
    plot = {
        "wave": np.round(wave, 2).tolist(),
        "flux": [round(float(f), 4) if v else None for f, v in zip(flux, valid)],
        "lines": [{"name": n, "wave": w * (1 + spectrum.z)} for n, w in LINES_SHOWN.items()],
        "title": f"spec-{spectrum.plate_mjd_fiber}, z = {spectrum.z:.4f}",
    }
    lines = sorted(spectrum.lines.items(), key=lambda item: item[1]["wave_rest"])
    context = {"spectrum": spectrum, "plot": plot, "lines": lines, "valid_percent": 100 * spectrum.valid_fraction}
    return render(request, "kb/spectrum_detail.html", context)
