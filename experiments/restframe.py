"""What every baseline reads: the spectra moved to the rest frame, the redshift knowledge the encoder has.

The encoder reads its six line windows at each spectrum's catalog redshift (``training.model``), so a
baseline that reads observed-frame flux without z is handicapped, not beaten. These functions give the
baselines the same knowledge: the preprocessed flux (N, L) on the model's observed grid (``kb.preprocess``,
dimensionless, 0 where not observed), its ``valid`` mask (N, L) bool and the redshifts ``z`` (N,) in;
rest-frame arrays out. ``window_flux``, the raw counterpart of the encoder's line-window tokens, lives with
the representations a knowledge base may serve (``inference.representation``). Pure numpy; never imports Django.
"""

from __future__ import annotations

import numpy as np

from inference.representation import OBSERVED, WINDOWS, sample_rest, window_flux

__all__ = ["OBSERVED", "REST", "STEP", "WINDOWS", "rest_frame", "window_flux"]

STEP = float(OBSERVED[1] - OBSERVED[0])  # Angstrom per pixel
# Rest frame 2200-9000 Angstrom on the observed grid's step: the model's grid at z 0.75 down to z 0.
REST = np.arange(2200.0, OBSERVED[-1] + STEP / 2, STEP)  # (R,) Angstrom, rest


def rest_frame(flux: np.ndarray, valid: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, L) flux and valid at redshifts (N,) -> (N, R) flux and valid on REST, by linear interpolation;
    a rest pixel is valid where both observed pixels around it are, and 0 where it is not."""
    return sample_rest(flux, valid, z, REST)
