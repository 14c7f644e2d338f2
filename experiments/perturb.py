"""Test spectra made to differ as real data differs from any mock, for ``evaluate``'s robustness table.

Each perturbation takes one preprocessed spectrum on the model's grid (``kb.preprocess``): ``flux`` (L,)
dimensionless (normalised by the median over rest 5300-5850 Angstrom), ``valid`` (L,) bool, ``ivar``
(L,) in (normalised flux)^-2, and its redshift ``z``; it returns new (flux, valid, ivar), normalised again
as ingest would, and draws its randomness from ``rng``. Pure numpy/scipy; never imports Django.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.ndimage import gaussian_filter1d

from kb.mock.physics import calzetti
from kb.preprocess import PAPER, PreprocessError, normalisation, wave_grid

WAVE = wave_grid(PAPER)  # (L,) Angstrom, observed
# Bright night-sky lines (Angstrom, observed): 5577 [O I], Na D, 6300/6364 [O I], the red OH bands.
SKY_LINES = (
    5577.3,
    5889.9,
    5895.9,
    6300.3,
    6363.8,
    6863.9,
    7276.4,
    7340.9,
    7750.6,
    7794.1,
    7913.7,
    7993.3,
    8344.6,
    8399.2,
    8430.2,
    8827.1,
    8885.9,
    8919.6,
    8958.1,
)


Spectrum = tuple[np.ndarray, np.ndarray, np.ndarray]  # (flux, valid, ivar), each (L,)


def continuum_tilt(flux, valid, ivar, z, rng) -> Spectrum:
    """A flux-calibration error: the spectrum times (lambda / 6000 A)^alpha, alpha uniform in +-0.3
    (about +-25% from end to end, beyond SDSS's few percent)."""
    return _scaled(flux, valid, ivar, z, (WAVE / 6000.0) ** rng.uniform(-0.3, 0.3))


def extra_dust(flux, valid, ivar, z, rng) -> Spectrum:
    """E(B-V) = 0.3 more dust in the galaxy (Calzetti et al. 2000, R_V 4.05, rest frame)."""
    return _scaled(flux, valid, ivar, z, calzetti(WAVE / (1 + z), 0.3))


def lower_resolution(flux, valid, ivar, z, rng) -> Spectrum:
    """Half SDSS's resolving power: a Gaussian of sigma 1.7 pixels (about 120 km/s, so that 70 km/s of
    instrument becomes 140), unobserved pixels left out of the average; each pixel's error kept (the
    smoothing's correlated noise is not modelled)."""
    weight = valid.astype(np.float64)
    smoothed = gaussian_filter1d(flux * weight, 1.7) / np.maximum(gaussian_filter1d(weight, 1.7), 1e-6)
    return _renormalised(np.where(valid, smoothed, 0.0), valid, ivar, z)


def half_snr(flux, valid, ivar, z, rng) -> Spectrum:
    """Twice the noise: Gaussian noise of sqrt(3) times each pixel's own sigma added, and the error doubled."""
    sigma = np.where(ivar > 0, 1 / np.sqrt(np.where(ivar > 0, ivar, 1.0)), 0.0)
    return _renormalised(flux + np.sqrt(3) * sigma * rng.normal(0, 1, flux.shape), valid, ivar / 4, z)


def sky_residuals(flux, valid, ivar, z, rng) -> Spectrum:
    """Sky subtraction gone wrong at the bright sky lines: a residual of 3-10 times the pixel's sigma, of
    either sign, at each line (Gaussian, sigma 1.6 Angstrom), which the error does not know of."""
    sigma = np.where(ivar > 0, 1 / np.sqrt(np.where(ivar > 0, ivar, 1.0)), 0.0)
    residual = np.zeros_like(flux, dtype=np.float64)
    for line in SKY_LINES:
        residual += rng.choice([-1, 1]) * rng.uniform(3, 10) * np.exp(-0.5 * ((WAVE - line) / 1.6) ** 2)
    return _renormalised(flux + residual * sigma, valid, ivar, z)


def bad_columns(flux, valid, ivar, z, rng) -> Spectrum:
    """Five runs of 20 pixels with no data (a bad CCD column, a cosmic ray masked), at random places."""
    valid = valid.copy()
    for start in rng.integers(0, len(flux) - 20, 5):
        valid[start : start + 20] = False
    return _renormalised(flux, valid, ivar, z)


def _scaled(flux, valid, ivar, z, factor: np.ndarray) -> Spectrum:
    """The spectrum times ``factor`` (L,), its error with it."""
    return _renormalised(flux * factor, valid, ivar / factor**2, z)


def _renormalised(flux: np.ndarray, valid: np.ndarray, ivar: np.ndarray, z: float) -> Spectrum:
    """The flux divided again by its median over the normalisation window (its inverse variance times that
    median squared), 0 where not valid; where that window is gone, left as it is."""
    try:
        norm = normalisation(flux, valid, z)
    except PreprocessError:
        norm = 1.0
    return (
        np.where(valid, flux / norm, 0.0).astype(np.float32),
        valid,
        np.where(valid, ivar * norm**2, 0.0).astype(np.float32),
    )


PERTURBATIONS: dict[str, Callable] = {
    "continuum_tilt": continuum_tilt,
    "extra_dust": extra_dust,
    "lower_resolution": lower_resolution,
    "half_snr": half_snr,
    "sky_residuals": sky_residuals,
    "bad_columns": bad_columns,
}


def perturbed(name: str, flux: np.ndarray, valid: np.ndarray, ivar: np.ndarray, z: np.ndarray, seed: int) -> Spectrum:
    """(N, L) flux, valid and ivar and (N,) z perturbed by PERTURBATIONS[name]: (flux, valid, ivar), each
    spectrum from its own random stream (``seed``, its row), so the same seed gives the same spectra."""
    change = PERTURBATIONS[name]
    out_flux, out_valid = np.empty_like(flux, dtype=np.float32), np.empty_like(valid, dtype=bool)
    out_ivar = np.empty_like(flux, dtype=np.float32)
    for i in range(len(flux)):
        rng = np.random.default_rng([seed, i])
        spectrum = change(flux[i].astype(np.float64), valid[i], ivar[i].astype(np.float64), float(z[i]), rng)
        out_flux[i], out_valid[i], out_ivar[i] = spectrum
    return out_flux, out_valid, out_ivar
