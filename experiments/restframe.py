"""What every baseline reads: the spectra moved to the rest frame, the redshift knowledge the encoder has.

The encoder reads its six line windows at each spectrum's catalog redshift (``training.model``), so a
baseline that reads observed-frame flux without z is handicapped, not beaten. These functions give the
baselines the same knowledge: the preprocessed flux (N, L) on the model's observed grid (``kb.preprocess``,
dimensionless, 0 where not observed), its ``valid`` mask (N, L) bool and the redshifts ``z`` (N,) in;
rest-frame arrays out. Pure numpy; never imports Django.
"""

from __future__ import annotations

import numpy as np

from kb.preprocess import PAPER, wave_grid
from training.model import LINE_WINDOWS_REST

OBSERVED = wave_grid(PAPER)  # (L,) Angstrom, observed
STEP = float(OBSERVED[1] - OBSERVED[0])  # Angstrom per pixel
# Rest frame 2200-9000 Angstrom on the observed grid's step: the model's grid at z 0.75 down to z 0.
REST = np.arange(2200.0, PAPER.wave_max + STEP / 2, STEP)  # (R,) Angstrom, rest
WINDOW_STEP = 1.0  # Angstrom, rest: where the windows are sampled


def rest_frame(flux: np.ndarray, valid: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, L) flux and valid at redshifts (N,) -> (N, R) flux and valid on REST, by linear interpolation;
    a rest pixel is valid where both observed pixels around it are, and 0 where it is not."""
    return _sample(flux, valid, z, REST)


def window_flux(flux: np.ndarray, valid: np.ndarray, z: np.ndarray) -> np.ndarray:
    """(N, L) flux and valid at redshifts (N,) -> (N, F) the flux sampled every WINDOW_STEP Angstrom (rest)
    across each of LINE_WINDOWS_REST in turn, 0 where not observed: the raw counterpart of the encoder's
    line-window tokens, with the same knowledge of where the lines are."""
    sampled, seen = _sample(flux, valid, z, WINDOWS)
    return np.where(seen, sampled, 0.0).astype(np.float32)


WINDOWS = np.concatenate([np.arange(lo, hi + WINDOW_STEP / 2, WINDOW_STEP) for lo, hi in LINE_WINDOWS_REST.values()])


def _sample(flux: np.ndarray, valid: np.ndarray, z: np.ndarray, wave_rest: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    flux, valid, z = np.asarray(flux, np.float32), np.asarray(valid, bool), np.asarray(z, np.float64)
    if flux.shape != valid.shape or flux.ndim != 2 or z.shape != (len(flux),):
        raise ValueError(f"need (N, L) flux and valid and (N,) z; got {flux.shape}, {valid.shape} and {z.shape}")
    if flux.shape[1] != len(OBSERVED):
        raise ValueError(f"spectra have {flux.shape[1]} pixels; the model's grid has {len(OBSERVED)}")
    out = np.zeros((len(flux), len(wave_rest)), np.float32)
    seen = np.zeros((len(flux), len(wave_rest)), bool)
    for i, (row, ok, redshift) in enumerate(zip(flux, valid, z)):
        observed = wave_rest * (1 + redshift)
        inside = (observed >= OBSERVED[0]) & (observed <= OBSERVED[-1])
        good = np.interp(observed[inside], OBSERVED, ok.astype(np.float32)) > 0.999
        out[i, inside] = np.where(good, np.interp(observed[inside], OBSERVED, row), 0.0)
        seen[i, inside] = good
    return out, seen
