"""Mock survey against real SDSS spectra: the same measurements on both, side by side.

Measured on each spectrum (from the file alone, as ingest reads it):
- ``snr``: median S/N per pixel, flux * sqrt(ivar) over valid pixels;
- ``colour``: median flux density over rest 6000-6400 Angstrom over that over rest 4200-4500;
- ``dn4000``: the narrow 4000 Angstrom break, mean flux over rest 4000-4100 / 3850-3950 (Balogh 1999);
- ``halpha_ew``: SPZLINE H-alpha equivalent width, Angstrom;
- ``log_o3_hb``, ``log_n2_ha``: SPZLINE line ratios where all four lines have S/N >= 3.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kb.spectra import SdssSpectrum, SpectrumFileError, read_spectrum

MEASURES = ("snr", "colour", "dn4000", "halpha_ew", "log_o3_hb", "log_n2_ha")


def _band(spectrum: SdssSpectrum, lo: float, hi: float, statistic=np.median) -> float:
    wave_rest = spectrum.wave_obs / (1 + spectrum.z)
    inside = spectrum.valid & (wave_rest >= lo) & (wave_rest <= hi)
    return float(statistic(spectrum.flux[inside])) if inside.sum() > 5 else np.nan


def measure(spectrum: SdssSpectrum) -> dict[str, float]:
    lines = spectrum.lines
    snr = spectrum.flux[spectrum.valid] * np.sqrt(spectrum.ivar[spectrum.valid])
    result = {
        "snr": float(np.median(snr)),
        "colour": _band(spectrum, 6000, 6400) / _band(spectrum, 4200, 4500),
        "dn4000": _band(spectrum, 4000, 4100, np.mean) / _band(spectrum, 3850, 3950, np.mean),
        "halpha_ew": lines["H_alpha"].ew if "H_alpha" in lines else np.nan,
        "log_o3_hb": np.nan,
        "log_n2_ha": np.nan,
    }
    names = ("H_alpha", "H_beta", "[O_III] 5007", "[N_II] 6583")
    if all(n in lines and lines[n].flux_err > 0 and lines[n].snr >= 3 for n in names):
        result["log_o3_hb"] = float(np.log10(lines["[O_III] 5007"].flux / lines["H_beta"].flux))
        result["log_n2_ha"] = float(np.log10(lines["[N_II] 6583"].flux / lines["H_alpha"].flux))
    return result


def summarise(folder: Path, limit: int | None = None) -> dict[str, dict]:
    """Median and 16th/84th percentiles of each measure over the spec-*.fits files under ``folder``."""
    values = {m: [] for m in MEASURES}
    files = sorted(Path(folder).rglob("spec-*.fits"))[:limit]
    for path in files:
        try:
            measured = measure(read_spectrum(path))
        except SpectrumFileError:
            continue
        for m in MEASURES:
            values[m].append(measured[m])
    out = {"files": len(files)}
    for m, vs in values.items():
        vs = np.array(vs, dtype=float)
        vs = vs[np.isfinite(vs)]
        out[m] = {
            "n": len(vs),
            "p16": float(np.percentile(vs, 16)) if len(vs) else np.nan,
            "median": float(np.median(vs)) if len(vs) else np.nan,
            "p84": float(np.percentile(vs, 84)) if len(vs) else np.nan,
        }
    return out
