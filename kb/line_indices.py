"""Equivalent widths by flux summing over fixed rest-frame windows, as Goto et al. (2003; Goto 2007) measured
them from SDSS spectra to select E+A galaxies: H-delta in absorption, [O II] and H-alpha in emission.

Pure numpy: the mock survey's E+A catalog (``kb.mock``) and the lines a knowledge base votes in
(``inference.line_measures``) both measure with it, each on its own pixels.
"""

from __future__ import annotations

import numpy as np

INDEX_WINDOWS = {  # rest Angstrom: the line's band, then the blue and red side bands
    "H_delta": ((4082.0, 4122.0), (4030.0, 4082.0), (4122.0, 4170.0)),
    "[O_II] 3727": ((3716.0, 3738.0), (3696.0, 3716.0), (3738.0, 3758.0)),
    "H_alpha": ((6555.0, 6575.0), (6490.0, 6537.0), (6594.0, 6640.0)),
}


def index_ew(wave: np.ndarray, flux: np.ndarray, ivar: np.ndarray, z: float, index: str) -> float:
    """A rest-frame equivalent width (Angstrom; absorption positive, emission negative) of the spectrum
    ``flux`` (L,) at observed ``wave`` (L,, Angstrom) by flux summing over INDEX_WINDOWS[index]: the continuum
    is the straight line through the two side bands' mean flux. Pixels with no inverse variance are left
    out; NaN where a band has no pixel left."""
    line, blue, red = INDEX_WINDOWS[index]
    wave_rest = wave / (1 + z)
    good = ivar > 0

    def band(lo: float, hi: float) -> np.ndarray:
        return good & (wave_rest >= lo) & (wave_rest < hi)

    if not all(band(*b).any() for b in (line, blue, red)):
        return float("nan")
    centres = [np.mean(b) for b in (blue, red)]
    levels = [float(flux[band(*b)].mean()) for b in (blue, red)]
    inside = band(*line)
    continuum = np.interp(wave_rest[inside], centres, levels)
    step = np.gradient(wave_rest)[inside]  # Angstrom per pixel, rest
    if np.any(continuum <= 0):
        return float("nan")
    return float(np.sum((1 - flux[inside] / continuum) * step) * (line[1] - line[0]) / step.sum())
