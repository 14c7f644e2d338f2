"""Reads for spectra and catalog labels."""
from __future__ import annotations

import numpy as np
from django.db.models import Count, QuerySet

from kb.catalogs import bpt_consensus
from kb.models import CatalogLabel, IngestRun, Spectrum
from kb.preprocess import PAPER, wave_grid
from kb.services import spectrum_store


def spectrum_list(*, label: str | None = None) -> QuerySet[Spectrum]:
    spectra = Spectrum.objects.prefetch_related("catalog_labels")
    if label:
        spectra = spectra.filter(catalog_labels__label=label).distinct()
    return spectra


def spectrum_get(*, pk: int) -> Spectrum:
    return Spectrum.objects.prefetch_related("catalog_labels").get(pk=pk)


def spectrum_flux(*, spectrum: Spectrum) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """wave_grid() (3688,) Angstrom observed, normalised flux (3688,) and valid (3688,) of one spectrum."""
    flux, valid = spectrum_store().read()
    return wave_grid(PAPER), np.array(flux[spectrum.store_row]), np.array(valid[spectrum.store_row])


def label_counts() -> list[dict]:
    """[{'catalog': ..., 'label': ..., 'n': ...}] over every catalog label."""
    return list(CatalogLabel.objects.values("catalog", "label").annotate(n=Count("id")).order_by("catalog", "-n"))


def last_ingest() -> IngestRun | None:
    return IngestRun.objects.first()


def bpt_labels() -> dict[int, str]:
    """Spectrum id -> five-class BPT label, only where galSpecExtra and emissionLinesPort agree."""
    by_spectrum: dict[int, dict[str, str]] = {}
    for spectrum_id, catalog, value in CatalogLabel.objects.filter(
        catalog__in=["galspecextra", "emissionlinesport"]
    ).values_list("spectrum_id", "catalog", "value"):
        by_spectrum.setdefault(spectrum_id, {})[catalog] = value
    labels = {}
    for spectrum_id, values in by_spectrum.items():
        label = bpt_consensus(values.get("galspecextra"), values.get("emissionlinesport"))
        if label:
            labels[spectrum_id] = label
    return labels
