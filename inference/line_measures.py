"""A spectrum's emission lines measured from its own pixels at its redshift, as a representation a knowledge
base can vote in: the ratios and S/N that BPT classes are rules on.

The BPT classes are rules on four lines' ratios and S/N (Baldwin, Phillips & Terlevich 1981; Kauffmann et al.
2003; Brinchmann et al. 2004; Schawinski et al. 2007). A vote over every pixel of the line windows
(``inference.representation.window_flux``) weighs the continuum and the noise of hundreds of pixels as much
as these few numbers. This module measures the lines as the SDSS pipeline does, from the pixels and their
inverse variance alone, so that an upload or a perturbed spectrum is measured exactly as a knowledge-base
entry is:

1. the continuum: the flux, with every line's pixels (LINE_MASK_KMS either side; BALMER_REACH times that for
   the Balmer lines' absorption troughs) and the bright night-sky lines' (``inference.night_sky``) bridged,
   under a running median of CONTINUUM_PIXELS;
2. the lines: Gaussian profiles at every line of LINES at the redshift, one intrinsic width for all (the one
   of WIDTHS_KMS with the least chi-squared), and under each Balmer line a broad stellar absorption trough
   (ABSORPTION_KMS), fitted together (H-alpha and [N II] share pixels) by linear least squares weighted by
   the inverse variance, over the pixels within FIT_REACH_KMS of a line.

There is no stellar template, so the troughs stand in for the absorption the catalogs' template fits take
away. The vector (FEATURES) holds the ratios in dex, how far above each demarcation of the [N II] BPT
diagram the galaxy lies, each line's S/N as asinh(S/N / 2) (linear near the catalogs' S/N 2 and 3 cuts,
logarithmic beyond), the least S/N of the four BPT lines, and the width. A ratio's lines count at least
their error, so a line not seen gives an upper limit rather than noise; where a line is off the spectrum or
unobserved, its S/N and its ratios are 0.

Arrays in: the preprocessed flux (N, L) on the model's observed grid (``kb.preprocess``, dimensionless), its
``valid`` mask (N, L) bool, its ``ivar`` (N, L) in (normalised flux)^-2 and the redshifts ``z`` (N,). About
4.4 ms a spectrum on one core. Pure numpy/scipy; no Django.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import median_filter

from inference.night_sky import sky_pixels
from kb.bpt import kauffmann03, kewley01, schawinski07
from kb.preprocess import PAPER, wave_grid

C_KMS = 299_792.458
WAVE = wave_grid(PAPER)  # (L,) Angstrom, observed, vacuum
SKY = sky_pixels(WAVE)  # (L,) bool: on a bright night-sky line, whose residuals are left out
LINES: dict[str, tuple[float, ...]] = {  # name: vacuum rest Angstrom of its components (a doublet shares one flux)
    "[O II] 3727": (3727.09, 3729.88),
    "[Ne III] 3869": (3869.86,),
    "H-delta": (4102.89,),
    "H-gamma": (4341.68,),
    "He II 4686": (4686.99,),
    "H-beta": (4862.68,),
    "[O III] 4959": (4960.29,),
    "[O III] 5007": (5008.24,),
    "[O I] 6300": (6302.05,),
    "[N II] 6548": (6549.86,),
    "H-alpha": (6564.61,),
    "[N II] 6583": (6585.27,),
    "[S II] 6716": (6718.29,),
    "[S II] 6731": (6732.68,),
}
RATIOS = (  # (numerator lines, denominator lines): log10 of their flux ratio
    (("[N II] 6583",), ("H-alpha",)),
    (("[O III] 5007",), ("H-beta",)),
    (("[S II] 6716", "[S II] 6731"), ("H-alpha",)),
    (("[O I] 6300",), ("H-alpha",)),
    (("H-alpha",), ("H-beta",)),
)
BPT_LINES = ("H-beta", "[O III] 5007", "H-alpha", "[N II] 6583")
FEATURES = (
    *("log " + "+".join(top) + " / " + "+".join(bottom) for top, bottom in RATIOS),
    "above Kauffmann 2003",
    "above Kewley 2001",
    "above Schawinski 2007",
    "asinh(least S/N of the BPT lines / 2)",
    *(f"asinh(S/N {name} / 2)" for name in LINES),
    "log width / 100 km/s",
)
INSTRUMENT_KMS = 70.0  # SDSS's resolution, sigma
WIDTHS_KMS = np.geomspace(30.0, 600.0, 9)  # intrinsic line sigmas the fit tries
LINE_MASK_KMS = 1000.0  # either side of each line, left out of the continuum
FIT_REACH_KMS = 1500.0  # pixels this close to a line enter the fit
CONTINUUM_PIXELS = 101  # ~140 Angstrom: wider than the H-alpha + [N II] complex once it is bridged
RATIO_LIMIT = 2.5  # dex either way
SNR_SCALE = 2.0
POSITION = {name: i for i, name in enumerate(LINES)}  # each line's place in the measured arrays
BALMER = {"H-delta", "H-gamma", "H-beta", "H-alpha"}
BALMER_REACH = 2.5  # a Balmer line's mask and fit reach this many times as far as other lines'
ABSORPTION_KMS = 1000.0  # sigma of the stellar absorption trough fitted under each Balmer line


def line_features(flux, valid, z, ivar) -> np.ndarray:
    """(N, L) flux, valid and ivar at redshifts (N,) -> (N, len(FEATURES)) float32, as the module docstring
    says."""
    flux, valid, z = np.asarray(flux, np.float64), np.asarray(valid, bool), np.asarray(z, np.float64)
    if flux.shape != valid.shape or flux.ndim != 2 or z.shape != (len(flux),):
        raise ValueError(f"need (N, L) flux and valid and (N,) z; got {flux.shape}, {valid.shape} and {z.shape}")
    if flux.shape[1] != len(WAVE):
        raise ValueError(f"spectra have {flux.shape[1]} pixels; the model's grid has {len(WAVE)}")
    ivar = np.asarray(ivar, np.float64)
    if ivar.shape != flux.shape:
        raise ValueError(f"need an (N, L) ivar like the flux {flux.shape}; got {ivar.shape}")
    return np.stack([_features(*measure_lines(*spectrum)) for spectrum in zip(flux, valid, z, ivar)])


def measure_lines(
    flux: np.ndarray, valid: np.ndarray, z: float, ivar: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float]:
    """One spectrum's (L,) flux, valid and ivar at redshift z -> (fluxes, errors, width): each of LINES' flux
    (normalised flux x Angstrom) and its error (-1 where the line is off the spectrum or unobserved), both
    (len(LINES),), and the intrinsic width fitted (km/s)."""
    fluxes, errors = np.zeros(len(LINES)), np.full(len(LINES), -1.0)
    centres = [np.array(rest) * (1 + z) for rest in LINES.values()]
    offset = _offsets(centres)  # (L,) km/s to the nearest line, a Balmer line's counted at its wider reach
    valid = valid & ~SKY & (ivar > 0)
    quiet = valid & (offset > LINE_MASK_KMS)
    near = valid & (offset < FIT_REACH_KMS)
    on = np.array([c.min() > WAVE[0] and c.max() < WAVE[-1] for c in centres])
    if quiet.sum() < CONTINUUM_PIXELS or not near.any() or not on.any():
        return fluxes, errors, float(WIDTHS_KMS[0])
    index = np.arange(len(WAVE))
    continuum = median_filter(np.interp(index, index[quiet], flux[quiet]), CONTINUUM_PIXELS, mode="nearest")
    wave, root_w = WAVE[near], np.sqrt(ivar[near])
    target = (flux - continuum)[near] * root_w
    used = [c for c, keep in zip(centres, on) if keep]
    balmer = [c for c, keep, name in zip(centres, on, LINES) if keep and name in BALMER]
    troughs = _profiles(wave, balmer, ABSORPTION_KMS)
    best = (np.inf, WIDTHS_KMS[0], None, None)
    for width in WIDTHS_KMS:
        design = np.hstack([_profiles(wave, used, width), troughs]) * root_w[:, None]  # (pixels, lines + troughs)
        coefficients, *_ = np.linalg.lstsq(design, target, rcond=None)
        chi2 = float(((target - design @ coefficients) ** 2).sum())
        if chi2 < best[0]:
            best = (chi2, width, design, coefficients)
    _, width, design, coefficients = best
    seen = (design[:, : len(used)] ** 2).sum(axis=0) > 0
    variance = np.diag(np.linalg.pinv(design.T @ design))[: len(used)]
    fluxes[on] = np.where(seen, coefficients[: len(used)], 0.0)
    errors[on] = np.where(seen, np.sqrt(np.clip(variance, 0, None)), -1.0)
    return fluxes, errors, float(width)


def _offsets(centres: list[np.ndarray]) -> np.ndarray:
    """(L,) each pixel's distance (km/s) to the nearest line, a Balmer line's divided by BALMER_REACH so that
    its mask and its fit reach that many times as far, over its absorption trough."""
    reach = np.concatenate([np.full(len(c), BALMER_REACH if n in BALMER else 1.0) for c, n in zip(centres, LINES)])
    every = np.concatenate(centres)
    return (np.abs(WAVE[:, None] / every[None] - 1) * C_KMS / reach[None]).min(axis=1)


def _profiles(wave: np.ndarray, centres: list[np.ndarray], width_kms: float) -> np.ndarray:
    """(pixels, lines): unit-flux Gaussian profiles (Angstrom^-1), a doublet's components sharing its flux."""
    if not centres:
        return np.empty((len(wave), 0))
    parts = np.concatenate(centres)  # (components,) Angstrom
    owner = np.repeat(np.arange(len(centres)), [len(c) for c in centres])
    share = np.zeros((len(parts), len(centres)))
    share[np.arange(len(parts)), owner] = 1.0 / np.bincount(owner)[owner]
    sigma = parts * np.hypot(width_kms, INSTRUMENT_KMS) / C_KMS  # (components,) Angstrom
    shapes = np.exp(-0.5 * ((wave[:, None] - parts) / sigma) ** 2) / (np.sqrt(2 * np.pi) * sigma)
    return shapes @ share


def _features(fluxes: np.ndarray, errors: np.ndarray, width: float) -> np.ndarray:
    """One spectrum's measured lines -> (len(FEATURES),) float32."""
    measured = errors > 0
    snr = np.where(measured, fluxes / np.where(measured, errors, 1.0), 0.0)
    at_least = np.where(measured, np.maximum(fluxes, errors), 0.0)  # a line not seen counts its error
    ratios = []
    for top, bottom in RATIOS:
        rows_top, rows_bottom = [POSITION[n] for n in top], [POSITION[n] for n in bottom]
        if not (measured[rows_top].all() and measured[rows_bottom].all()):
            ratios.append(0.0)
            continue
        ratio = np.log10(at_least[rows_top].sum() / at_least[rows_bottom].sum())
        ratios.append(float(np.clip(ratio, -RATIO_LIMIT, RATIO_LIMIT)))
    strength = np.tanh(max(snr.max(), 0.0) / 5.0)  # a width fitted to noise says nothing
    bpt_snr = min(snr[POSITION[name]] for name in BPT_LINES)
    return np.array(
        [
            *ratios,
            *_above_demarcations(ratios[0], ratios[1], measured[[POSITION[n] for n in BPT_LINES]].all()),
            np.arcsinh(bpt_snr / SNR_SCALE),
            *np.arcsinh(snr / SNR_SCALE),
            strength * np.log10(width / 100.0),
        ],
        dtype=np.float32,
    )


def _above_demarcations(n2: float, o3: float, measured: bool) -> list[float]:
    """How far (dex of [O III]/H-beta) a galaxy lies above each line of the [N II] BPT diagram: Kauffmann et
    al. (2003)'s and Kewley et al. (2001)'s (past their asymptotes, RATIO_LIMIT), and Schawinski et al.
    (2007)'s; 0 where its four lines are not all measured."""
    if not measured:
        return [0.0, 0.0, 0.0]
    above = [
        o3 - float(kauffmann03(n2)) if n2 < 0.05 else RATIO_LIMIT,
        o3 - float(kewley01(n2)) if n2 < 0.47 else RATIO_LIMIT,
        o3 - float(schawinski07(n2)),
    ]
    return [float(np.clip(a, -RATIO_LIMIT, RATIO_LIMIT)) for a in above]
