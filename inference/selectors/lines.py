"""Background emission lines of ingested spectra, scanned from the stored flux (``inference.background_lines``)."""

from __future__ import annotations

from collections.abc import Iterable

from inference.background_lines import Background, background_scan, quiet_host
from kb.models import Spectrum
from kb.preprocess import PAPER, wave_grid
from kb.selectors import spectrum_store


def background_lines_get(*, spectra: Iterable[Spectrum]) -> list[Background]:
    """Each spectrum's background-line candidate, from its stored flux and inverse variance on the grid."""
    store = spectrum_store()
    (flux, _), ivar = store.read(), store.read_ivar()
    wave = wave_grid(PAPER)
    return [background_scan(wave, flux[s.store_row], ivar[s.store_row], s.z) for s in spectra]


def spectrum_quiet_hosts(*, ids: Iterable[int]) -> dict[int, bool]:
    """{spectrum key: whether it shows no emission lines of its own} (``quiet_host``, from its SPZLINE lines)."""
    return {pk: quiet_host(lines) for pk, lines in Spectrum.objects.filter(pk__in=list(ids)).values_list("pk", "lines")}
