"""Where the night sky's bright emission lines fall: pixels whose sky subtraction often leaves residuals.

Every fibre's sky is subtracted, and at the brightest sky lines what is left over is often several times the
noise the error array claims, of either sign. Searches that read narrow features mask these pixels, as
BOSS's lens search (Bolton et al. 2006) and SDSS's own line fits treat [O I] 5577. SKY_LINES are the
brightest lines of the optical night sky (Osterbrock et al. 1996; Hanuschik 2003): [O I] 5577, 6300 and
6364, Na D and the strongest OH bands in the red, in vacuum Angstrom, observed frame. Pure numpy; no Django.
"""

from __future__ import annotations

import numpy as np

SKY_LINES = (
    5578.89, 5891.58, 5897.56, 6302.05, 6365.54, 6865.85, 7278.41, 7342.91, 7752.77, 7796.25,
    7915.89, 7995.53, 8346.89, 8401.48, 8432.49, 8829.52, 8888.29, 8922.09, 8960.54,
)  # fmt: skip
SKY_HALF_WIDTH = 5.0  # Angstrom either side: three sigma of a sky line at SDSS's resolution, and its wings


def sky_pixels(wave: np.ndarray) -> np.ndarray:
    """(L,) bool: True where the observed ``wave`` (L,) Angstrom lies within SKY_HALF_WIDTH of a bright sky line."""
    wave = np.asarray(wave, dtype=np.float64)
    return (np.abs(wave[:, None] - np.asarray(SKY_LINES)[None]) < SKY_HALF_WIDTH).any(axis=1)
