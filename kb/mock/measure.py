"""What the mock survey's catalogs measure, from each spectrum's own pixels, as real catalogs do.

Every function reads an observed spectrum on the legacy pixels (``physics.WAVE``, Angstrom, observed):
``flux`` (3841,) in 1e-17 erg s^-1 cm^-2 Angstrom^-1 and ``ivar`` (3841,) its inverse variance, 0 where a
pixel holds no data. Nothing here reads a galaxy's true line fluxes or dispersion: a catalog's figures
carry the pixels' noise, its own continuum model and its own fitting choices, so catalogs agree where the
lines are strong and part where they are weak, as MPA-JHU, Portsmouth and SPZLINE do.

What a catalog is given, as the real ones are: the redshift, and a stellar template family (the galaxy's
own old and young populations, as a population-synthesis fit finds them) whose Balmer absorption it
mis-models by its own amount. That mismatch, under H-beta above all, is what moves weak-line galaxies
across the BPT boundaries from one catalog to another.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from kb.mock import physics
from kb.mock.physics import C_KMS, INSTRUMENT_SIGMA_KMS, LINE_WAVES, WAVE
from kb.mock.writer import SPZLINE_LINES

LINE_WIDTHS_KMS = np.geomspace(20.0, 500.0, 12)  # intrinsic line sigmas a fit tries
FIT_REACH_KMS = 1500.0  # pixels this close to a line enter its fit
CHI2_REACH_KMS = 600.0  # pixels this close to a line judge its width
CONTINUUM_MASK_KMS = 800.0  # pixels this close to an emission line are left out of continuum fits
VDISP_GRID = np.arange(0.0, 601.0, 25.0)  # km/s a dispersion fit tries
BALMER = {"H_alpha", "H_beta", "H_gamma", "H_delta", "H_epsilon"}


@dataclass(frozen=True)
class LineFit:
    """One catalog's way of measuring lines."""

    name: str
    balmer_error: float  # spread (1 sigma, relative) of its template's Balmer-absorption mismatch
    tilt_error: float  # spread of a multiplicative tilt its continuum fit leaves (fractional, per 5500 A)
    tied: bool  # one width for every line (True) or one for Balmer lines and one for the rest
    error_scale: float = 1.0  # its errors over the formal least-squares ones (GANDALF scales by the residuals)


# SPZLINE (idlspec2d: lines on the pipeline's template fit), MPA-JHU (Tremonti et al. 2004: population
# synthesis fit, Balmer and forbidden lines with their own widths), Portsmouth (Thomas et al. 2013, GANDALF
# with Maraston & Stromback templates and multiplicative polynomials).
SPZLINE = LineFit("spzline", balmer_error=0.3, tilt_error=0.0, tied=True)
MPA_JHU = LineFit("mpa-jhu", balmer_error=0.1, tilt_error=0.0, tied=False)
PORTSMOUTH = LineFit("portsmouth", balmer_error=0.2, tilt_error=0.03, tied=True, error_scale=1.15)


def continuum_fit(
    flux: np.ndarray, ivar: np.ndarray, template: np.ndarray, z: float, *, tilt: float = 0.0
) -> np.ndarray:
    """``template`` (3841,) scaled to the pixels by weighted least squares, lines masked; (3841,) flux
    density. ``tilt`` multiplies it by 1 + tilt (lambda_rest / 5500 - 1): what a continuum fit leaves."""
    shape = template * (1 + tilt * (WAVE / (1 + z) / 5500.0 - 1))
    weight = ivar * _away_from_lines(z)
    denominator = np.sum(weight * shape**2)
    return shape * (np.sum(weight * flux * shape) / denominator if denominator > 0 else 0.0)


def _away_from_lines(z: float) -> np.ndarray:
    """(3841,) bool: pixels farther than CONTINUUM_MASK_KMS from every emission line at redshift z."""
    centres = np.array(list(LINE_WAVES.values())) * (1 + z)
    return np.all(np.abs(WAVE[:, None] / centres[None] - 1) * C_KMS > CONTINUUM_MASK_KMS, axis=1)


def fit_lines(
    flux: np.ndarray, ivar: np.ndarray, continuum: np.ndarray, z: float, *, tied: bool
) -> dict[str, tuple[float, float, float]]:
    """Gaussian fits of the 29 SPZLINE lines at redshift ``z`` on ``flux`` minus ``continuum``:
    {name: (flux, error, sigma)}, flux and error in 1e-17 erg s^-1 cm^-2, sigma the intrinsic width in km/s.

    Every line on the spectrum is fitted at once (blends such as H-alpha and [N II] share pixels), by
    weighted linear least squares for each width of LINE_WIDTHS_KMS; the width with the lowest chi-squared
    near the lines is kept, one for all lines (``tied``) or one for the Balmer lines and one for the rest.
    A line off the spectrum gets (0, -1, 0), as SDSS writes it; a line whose pixels are all masked, error -1.
    """
    names = [name for name, _ in SPZLINE_LINES]
    centres = np.array([wave for _, wave in SPZLINE_LINES]) * (1 + z)
    on = (centres > WAVE[0] + 10) & (centres < WAVE[-1] - 10)
    out = dict.fromkeys(names, (0.0, -1.0, 0.0))
    if not on.any():
        return out
    centres, names = centres[on], [n for n, keep in zip(names, on) if keep]
    offset = np.abs(WAVE[:, None] / centres[None] - 1) * C_KMS  # (3841, n) km/s
    near = (offset < FIT_REACH_KMS).any(axis=1) & (ivar > 0)
    wave, root_w = WAVE[near], np.sqrt(ivar[near])
    residual = (flux - continuum)[near] * root_w
    groups = [np.ones(len(names), bool)] if tied else [np.array([n in BALMER for n in names])]
    if not tied:
        groups.append(~groups[0])
    judged = [(offset[near][:, group] < CHI2_REACH_KMS).any(axis=1) for group in groups]
    best = [(np.inf, LINE_WIDTHS_KMS[0])] * len(groups)
    for width in LINE_WIDTHS_KMS:
        design = _profiles(wave, centres, np.full(len(names), width)) * root_w[:, None]
        coefficients = np.linalg.lstsq(design, residual, rcond=None)[0]
        misfit = (residual - design @ coefficients) ** 2
        best = [min(b, (float(misfit[j].sum()), width)) for b, j in zip(best, judged)]
    widths = np.zeros(len(names))
    for group, (_, width) in zip(groups, best):
        widths[group] = width
    design = _profiles(wave, centres, widths) * root_w[:, None]
    coefficients = np.linalg.lstsq(design, residual, rcond=None)[0]
    covariance = np.linalg.pinv(design.T @ design)
    seen = (design**2).sum(axis=0) > 0
    for i, name in enumerate(names):
        error = float(np.sqrt(max(covariance[i, i], 0.0))) if seen[i] else -1.0
        out[name] = (float(coefficients[i]) if seen[i] else 0.0, error, float(widths[i]))
    return out


def _profiles(wave: np.ndarray, centres: np.ndarray, widths_kms: np.ndarray) -> np.ndarray:
    """(n_pixels, n_lines) unit-flux Gaussian profiles (Angstrom^-1) of intrinsic widths ``widths_kms``."""
    sigma = centres * np.hypot(widths_kms, INSTRUMENT_SIGMA_KMS) / C_KMS  # (n,) Angstrom
    return physics.gaussian(wave[:, None], centres[None], sigma[None])


def catalog_lines(
    flux: np.ndarray,
    ivar: np.ndarray,
    *,
    stars: physics.Stars,
    vdisp: float,
    ebv: float,
    z: float,
    fit: LineFit,
    rng: np.random.Generator,
) -> dict[str, tuple[float, float, float]]:
    """One catalog's lines of one spectrum (``fit_lines``' form): its template is the galaxy's stars at the
    dispersion it measured (``vdisp``, km/s) with its own Balmer mismatch, dusted by ``ebv`` and fitted to
    the pixels, with its own tilt; draws the catalog's mismatch from ``rng``."""
    own = replace(stars, balmer=stars.balmer * (1 + rng.normal(0, fit.balmer_error)))
    template = stellar_template(own, vdisp, ebv, z)
    continuum = continuum_fit(flux, ivar, template, z, tilt=rng.normal(0, fit.tilt_error) if fit.tilt_error else 0.0)
    lines = fit_lines(flux, ivar, continuum, z, tied=fit.tied)
    return {name: (f, e * fit.error_scale if e > 0 else e, w) for name, (f, e, w) in lines.items()}


def stellar_template(stars: physics.Stars, vdisp: float, ebv: float, z: float) -> np.ndarray:
    """(3841,) the stars' light on the observed pixels, dusted (Calzetti, ``ebv`` magnitudes), ~1 at 5575 A rest."""
    wave_rest = WAVE / (1 + z)
    dust = physics.calzetti(wave_rest, ebv) / physics.calzetti(np.array([5575.0]), ebv)
    return physics.stellar_spectrum(wave_rest, stars, vdisp) * dust


def velocity_dispersion(
    flux: np.ndarray, ivar: np.ndarray, *, stars: physics.Stars, ebv: float, z: float
) -> tuple[float, float]:
    """The stellar velocity dispersion and its error (km/s) by template fits over VDISP_GRID: each
    template times a line in wavelength (a continuum correction) fitted to rest 3900-6800 Angstrom with
    emission lines masked; the chi-squared minimum by a parabola through its neighbours, the error where
    chi-squared rises by one. A minimum at the grid's edge is reported there, with the grid step as error."""
    wave_rest = WAVE / (1 + z)
    use = (ivar > 0) & _away_from_lines(z) & (wave_rest > 3900) & (wave_rest < 6800)
    if use.sum() < 50:
        return 0.0, -1.0
    root_w, data = np.sqrt(ivar[use]), flux[use] * np.sqrt(ivar[use])
    x = wave_rest[use] / 5500.0 - 1
    chi2 = []
    for sigma in VDISP_GRID:
        template = stellar_template(stars, sigma, ebv, z)[use]
        design = np.stack([template, template * x], axis=1) * root_w[:, None]
        coefficients = np.linalg.lstsq(design, data, rcond=None)[0]
        chi2.append(float(((data - design @ coefficients) ** 2).sum()))
    chi2 = np.array(chi2)
    i = int(np.argmin(chi2))
    step = VDISP_GRID[1] - VDISP_GRID[0]
    if i in (0, len(VDISP_GRID) - 1):
        return float(VDISP_GRID[i]), float(step)
    curvature = (chi2[i - 1] - 2 * chi2[i] + chi2[i + 1]) / step**2
    if curvature <= 0:
        return float(VDISP_GRID[i]), float(step)
    shift = (chi2[i - 1] - chi2[i + 1]) / (2 * curvature * step**2) * step
    return float(VDISP_GRID[i] + shift), float(np.sqrt(2.0 / curvature))


# Flux-summing windows after Goto (2003): line band, then blue and red continuum bands (Angstrom, rest).
# The lines a strong-lens search looks for behind the foreground galaxy, each a kernel of relative
# strengths (the [O II] doublet as one), and the width of the kernels (km/s), as BOSS searches use.
LENS_KERNELS = {
    "[O_II] 3727": {"[O_II] 3725": 0.45, "[O_II] 3727": 0.55},
    "H_beta": {"H_beta": 1.0},
    "[O_III] 4959": {"[O_III] 4959": 1.0},
    "[O_III] 5007": {"[O_III] 5007": 1.0},
    "H_alpha": {"H_alpha": 1.0},
}
LENS_KERNEL_KMS = 70.0


def background_line_snr(
    flux: np.ndarray, ivar: np.ndarray, foreground: np.ndarray, z_source: float
) -> dict[str, float]:
    """Matched-filter S/N of each LENS_KERNELS line at ``z_source`` in ``flux`` minus the foreground fit
    ``foreground`` (3841,): {line: S/N} for the lines whose kernel lies on the spectrum."""
    residual = flux - foreground
    out = {}
    for line, parts in LENS_KERNELS.items():
        kernel = np.zeros_like(WAVE)
        for name, share in parts.items():
            centre = LINE_WAVES[name] * (1 + z_source)
            if not WAVE[0] + 10 < centre < WAVE[-1] - 10:
                break
            sigma = centre * np.hypot(LENS_KERNEL_KMS, INSTRUMENT_SIGMA_KMS) / C_KMS
            kernel += share * physics.gaussian(WAVE, centre, sigma)
        else:
            weight = np.sum(ivar * kernel**2)
            if weight > 0:
                out[line] = float(np.sum(ivar * kernel * residual) / np.sqrt(weight))
    return out
