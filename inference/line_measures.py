"""A spectrum's emission lines measured from its own pixels at its redshift, as a representation a knowledge
base can vote in: the ratios and S/N that BPT classes are rules on.

The BPT classes are rules on four lines' ratios and S/N (Baldwin, Phillips & Terlevich 1981; Kauffmann et al.
2003; Brinchmann et al. 2004; Schawinski et al. 2007). A vote over every pixel of the line windows
(``inference.representation.window_flux``) weighs the continuum and the noise of hundreds of pixels as much
as these few numbers. This module measures the lines as the SDSS pipeline does, from the pixels and their
inverse variance alone, so that an upload or a perturbed spectrum is measured exactly as a knowledge-base
entry is:

1. the continuum: the flux, with every feature's pixels (LINE_MASK_KMS either side, REACH times that for the
   Balmer lines' absorption troughs and the bumps) and the bright night-sky lines' (``inference.night_sky``)
   bridged, under a running median of CONTINUUM_PIXELS; or, given the eigen-spectra of a survey's quiet
   galaxies (``inference.continuum``), those fitted to the same pixels plus a running median of what they
   leave, so that the stars' absorption under each line is read from the rest of the spectrum;
2. the lines: Gaussian profiles at every line of LINES at the redshift, one intrinsic width for all (the one
   of WIDTHS_KMS with the least chi-squared, refined between the grid's widths), the broad Wolf-Rayet bumps
   (BUMPS: N III + He II 4686 and C IV 5808 at BUMP_KMS; Brinchmann, Kunth & Durret 2008), and under each
   Balmer line a broad stellar absorption trough (ABSORPTION_KMS), fitted together (H-alpha and [N II] share
   pixels) by linear least squares weighted by the inverse variance, over the pixels within FIT_REACH_KMS of a
   line;
3. the stars' absorption lines (STELLAR: Ca II K and H, the G band, Mg b, Fe 5270 and 5335, Na D) under the
   same continuum, at one width for all (the one of STELLAR_WIDTHS_KMS with the least chi-squared): what the
   catalogs' template fits read the velocity dispersion from, which sets the most massive galaxies apart.

The eigen-spectra stand in for the stellar templates the catalogs fit (without them, H-beta reads short by its
absorption); the troughs take up what they leave. The absorption lines' width is a proxy for the dispersion,
not a measurement of it. The vector (FEATURES) holds the ratios in dex, how far above each demarcation of the
[N II] BPT diagram the galaxy lies, each feature's S/N as asinh(S/N / 2) (linear near the catalogs' S/N 2 and
3 cuts, logarithmic beyond), the least S/N of the four BPT lines, the two widths, each faded towards 0 where
what it is fitted to is not seen, and the equivalent widths E+A catalogs select on (H-delta, [O II], H-alpha;
``kb.line_indices``). A ratio's lines count at least their error, so a line not seen gives an upper limit
rather than noise; where a line is off the spectrum or unobserved, its S/N and its ratios are 0.

Arrays in: the preprocessed flux (N, L) on the model's observed grid (``kb.preprocess``, dimensionless), its
``valid`` mask (N, L) bool, its ``ivar`` (N, L) in (normalised flux)^-2 and the redshifts ``z`` (N,). About
15 ms a spectrum on one core (measured on a busy machine). Pure numpy/scipy; no Django.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.ndimage import median_filter

from inference.continuum import EigenContinuum
from inference.night_sky import sky_pixels
from kb.bpt import kauffmann03, kewley01, schawinski07
from kb.line_indices import INDEX_WINDOWS, index_ew
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
BALMER = ("H-delta", "H-gamma", "H-beta", "H-alpha")
BUMPS: dict[str, tuple[float, ...]] = {  # name: vacuum rest Angstrom of a broad Wolf-Rayet blend's components
    "Wolf-Rayet blue bump": (4650.0, 4686.0),
    "Wolf-Rayet red bump": (5808.0,),
}
MEASURED = {**LINES, **BUMPS}  # every emission feature fitted, in the order of measure_lines' arrays
STELLAR: dict[str, tuple[float, ...]] = {  # stellar absorption features: vacuum rest Angstrom of components
    "Ca II K": (3934.78,),
    "Ca II H": (3969.59,),
    "G band": (4305.0,),
    "Mg b": (5168.76, 5174.13, 5185.05),
    "Fe 5270": (5271.0,),
    "Fe 5335": (5336.0,),
    "Na D": (5891.58, 5897.56),
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
    *(f"asinh(S/N {name} / 2)" for name in MEASURED),
    "log width / 100 km/s",
    "log absorption-line width / 200 km/s",
    *(f"{index} index EW / 5 Angstrom" for index in INDEX_WINDOWS),
)
INSTRUMENT_KMS = 70.0  # SDSS's resolution, sigma
WIDTHS_KMS = np.geomspace(30.0, 600.0, 9)  # intrinsic line sigmas the fit tries
LINE_MASK_KMS = 1000.0  # either side of each line, left out of the continuum
FIT_REACH_KMS = 1500.0  # pixels this close to a line enter the fit
CONTINUUM_PIXELS = 101  # ~140 Angstrom: wider than the H-alpha + [N II] complex once it is bridged
RATIO_LIMIT = 2.5  # dex either way
SNR_SCALE = 2.0
POSITION = {name: i for i, name in enumerate(MEASURED)}  # each feature's place in the measured arrays
REACH = {  # a line's mask and fit reach this many times as far as LINE_MASK_KMS and FIT_REACH_KMS
    **{name: 2.5 for name in BALMER},  # over the Balmer lines' absorption troughs
    **{name: 2.0 for name in BUMPS},
}
ABSORPTION_KMS = 1000.0  # sigma of the stellar absorption trough fitted under each Balmer line
SEEN_SHARE = 0.5  # a line is measured where the fitted pixels hold at least this share of its profile
BUMP_KMS = 800.0  # sigma of the Wolf-Rayet bumps (FWHM ~1,900 km/s)
STELLAR_WIDTHS_KMS = np.geomspace(40.0, 640.0, 13)  # stellar dispersions the absorption fit tries
STELLAR_REACH_KMS = 2000.0  # pixels this close to an absorption feature enter its fit


class Measured(NamedTuple):
    """One spectrum's measurements (``measure_lines``)."""

    fluxes: np.ndarray  # (len(MEASURED),) normalised flux x Angstrom
    errors: np.ndarray  # (len(MEASURED),) their errors; -1 where off the spectrum or unobserved
    width: float  # km/s: the emission lines' intrinsic sigma
    stellar_width: float  # km/s: the absorption lines' intrinsic sigma
    stellar_snr: float  # how clearly the absorption lines are seen: sqrt of the chi-squared they take away
    # beyond what fitting noise would

    @property
    def snr(self) -> np.ndarray:
        """(len(MEASURED),) each feature's flux over its error; 0 where it was not measured."""
        measured = self.errors > 0
        return np.where(measured, self.fluxes / np.where(measured, self.errors, 1.0), 0.0)


def line_features(flux, valid, z, ivar, eigen: EigenContinuum | None = None) -> np.ndarray:
    """(N, L) flux, valid and ivar at redshifts (N,) -> (N, len(FEATURES)) float32, as the module docstring
    says; the stars' light under the lines by the ``eigen`` continuum where one is given."""
    flux, valid, z = np.asarray(flux, np.float64), np.asarray(valid, bool), np.asarray(z, np.float64)
    if flux.shape != valid.shape or flux.ndim != 2 or z.shape != (len(flux),):
        raise ValueError(f"need (N, L) flux and valid and (N,) z; got {flux.shape}, {valid.shape} and {z.shape}")
    if flux.shape[1] != len(WAVE):
        raise ValueError(f"spectra have {flux.shape[1]} pixels; the model's grid has {len(WAVE)}")
    ivar = np.asarray(ivar, np.float64)
    if ivar.shape != flux.shape:
        raise ValueError(f"need an (N, L) ivar like the flux {flux.shape}; got {ivar.shape}")
    return np.stack(
        [_features(measure_lines(*spectrum, eigen), _indices(*spectrum)) for spectrum in zip(flux, valid, z, ivar)]
    )


def _indices(flux, valid, z, ivar) -> list[float]:
    """One spectrum's equivalent widths over Goto et al. (2003)'s windows (``kb.line_indices``), Angstrom."""
    return [index_ew(WAVE, flux, np.where(valid, ivar, 0.0), z, index) for index in INDEX_WINDOWS]


def measure_lines(
    flux: np.ndarray, valid: np.ndarray, z: float, ivar: np.ndarray, eigen: EigenContinuum | None = None
) -> Measured:
    """One spectrum's (L,) flux, valid and ivar at redshift z -> its ``Measured`` emission features (LINES
    and BUMPS, in MEASURED's order) and absorption-line width. The continuum under the emission lines is the
    ``eigen`` continuum's fit plus a running median of what it leaves, where one is given (and covers the
    pixel); else the running median of the flux."""
    fluxes, errors = np.zeros(len(MEASURED)), np.full(len(MEASURED), -1.0)
    centres = [np.array(rest) * (1 + z) for rest in MEASURED.values()]
    offset = _offsets(centres)  # (L,) km/s to the nearest line, counted at each one's REACH
    valid = valid & ~SKY & (ivar > 0)
    quiet = valid & (offset > LINE_MASK_KMS)
    near = valid & (offset < FIT_REACH_KMS)
    on = np.array([c.min() > WAVE[0] and c.max() < WAVE[-1] for c in centres])
    if quiet.sum() < CONTINUUM_PIXELS or not near.any() or not on.any():
        return Measured(fluxes, errors, float(WIDTHS_KMS[0]), float(STELLAR_WIDTHS_KMS[0]), 0.0)
    index = np.arange(len(WAVE))
    smooth = median_filter(flux[quiet], CONTINUUM_PIXELS, mode="nearest")  # over quiet pixels: none bridged
    plain = np.interp(index, index[quiet], smooth)
    continuum = plain
    if eigen is not None:
        stars, inside = eigen.model(WAVE, flux, quiet, z, ivar)
        left = median_filter((flux - stars)[quiet], CONTINUUM_PIXELS, mode="nearest")
        continuum = np.where(inside, stars + np.interp(index, index[quiet], left), plain)
    wave, root_w = WAVE[near], np.sqrt(ivar[near])
    target = (flux - continuum)[near] * root_w
    kinds = [(c, name) for c, keep, name in zip(centres, on, MEASURED) if keep]
    used = [c for c, name in kinds if name in LINES]
    fixed = np.hstack(  # the bumps' profiles, then the Balmer lines' troughs: widths not fitted
        [
            _profiles(wave, [c for c, name in kinds if name in BUMPS], BUMP_KMS),
            _profiles(wave, [c for c, name in kinds if name in BALMER], ABSORPTION_KMS),
        ]
    )

    def fit(width: float) -> tuple[float, np.ndarray, np.ndarray]:
        design = np.hstack([_profiles(wave, used, width), fixed]) * root_w[:, None]  # (pixels, features + troughs)
        coefficients, *_ = np.linalg.lstsq(design, target, rcond=None)
        return float(((target - design @ coefficients) ** 2).sum()), design, coefficients

    chi2 = np.array([fit(width)[0] for width in WIDTHS_KMS])
    width = _least(chi2, WIDTHS_KMS)
    _, design, coefficients = fit(width)
    covered = (design[:, : len(kinds)] / root_w[:, None]).sum(axis=0) * (WAVE[1] - WAVE[0])  # of a unit flux
    seen = covered > SEEN_SHARE
    variance = np.diag(np.linalg.pinv(design.T @ design))[: len(kinds)]
    fluxes[on] = np.where(seen, coefficients[: len(kinds)], 0.0)
    errors[on] = np.where(seen, np.sqrt(np.clip(variance, 0, None)), -1.0)
    return Measured(fluxes, errors, float(width), *_stellar_width(flux, quiet, plain, ivar, z))


def _stellar_width(flux, usable, continuum, ivar, z) -> tuple[float, float]:
    """The absorption lines' intrinsic width (km/s; the STELLAR_WIDTHS_KMS with the least chi-squared) and
    their S/N (the square root of the chi-squared they take away from the bare continuum beyond the number of
    parameters fitted, which is what noise alone takes on average), fitted to the flux over its running
    median ``continuum`` (which leaves them in) at the ``usable`` pixels (no emission line, no sky)."""
    centres = [np.array(rest) * (1 + z) for rest in STELLAR.values()]
    centres = [c for c in centres if c.min() > WAVE[0] and c.max() < WAVE[-1]]
    if not centres:
        return float(STELLAR_WIDTHS_KMS[0]), 0.0
    every = np.concatenate(centres)
    near = usable & ((np.abs(WAVE[:, None] / every[None] - 1) * C_KMS).min(axis=1) < STELLAR_REACH_KMS)
    if near.sum() < 2 * len(centres):
        return float(STELLAR_WIDTHS_KMS[0]), 0.0
    root_w = np.sqrt(ivar[near])
    target = (flux[near] - continuum[near]) * root_w
    chi2 = np.empty(len(STELLAR_WIDTHS_KMS))
    for i, width in enumerate(STELLAR_WIDTHS_KMS):
        design = _profiles(WAVE[near], centres, width) * root_w[:, None]
        coefficients, *_ = np.linalg.lstsq(design, target, rcond=None)
        chi2[i] = ((target - design @ coefficients) ** 2).sum()
    taken = (target**2).sum() - chi2.min() - (len(centres) + 1)  # beyond what fitting noise takes on average
    return _least(chi2, STELLAR_WIDTHS_KMS), float(np.sqrt(max(taken, 0.0)))


def _least(chi2: np.ndarray, widths: np.ndarray) -> float:
    """The width of least chi-squared on a geometric grid of ``widths``: the minimum of the parabola, in log
    width, through the grid's least value and its neighbours (the grid's end where the least is there)."""
    i = int(np.argmin(chi2))
    step = 0.0  # in grid steps
    if 0 < i < len(chi2) - 1 and (curvature := chi2[i - 1] - 2 * chi2[i] + chi2[i + 1]) > 0:
        step = float(np.clip(0.5 * (chi2[i - 1] - chi2[i + 1]) / curvature, -0.5, 0.5))
    return float(widths[i] * (widths[1] / widths[0]) ** step)


def _offsets(centres: list[np.ndarray]) -> np.ndarray:
    """(L,) each pixel's distance (km/s) to the nearest feature of MEASURED, divided by that feature's REACH
    so that its mask and its fit reach that many times as far (over a Balmer trough, across a bump)."""
    reach = np.concatenate([np.full(len(c), REACH.get(name, 1.0)) for c, name in zip(centres, MEASURED)])
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


def _features(lines: Measured, indices: list[float]) -> np.ndarray:
    """One spectrum's ``Measured`` lines and its Goto indices (Angstrom, NaN where not observed) ->
    (len(FEATURES),) float32."""
    fluxes, errors, width, stellar_width, stellar_snr = lines
    snr, measured = lines.snr, errors > 0
    at_least = np.where(measured, np.maximum(fluxes, errors), 0.0)  # a line not seen counts its error
    ratios = []
    for top, bottom in RATIOS:
        rows_top, rows_bottom = [POSITION[n] for n in top], [POSITION[n] for n in bottom]
        if not (measured[rows_top].all() and measured[rows_bottom].all()):
            ratios.append(0.0)
            continue
        ratio = np.log10(at_least[rows_top].sum() / at_least[rows_bottom].sum())
        ratios.append(float(np.clip(ratio, -RATIO_LIMIT, RATIO_LIMIT)))
    strength = np.tanh(max(snr[: len(LINES)].max(), 0.0) / 5.0)  # a width fitted to noise says nothing
    bpt_snr = min(snr[POSITION[name]] for name in BPT_LINES)
    return np.array(
        [
            *ratios,
            *_above_demarcations(ratios[0], ratios[1], measured[[POSITION[n] for n in BPT_LINES]].all()),
            np.arcsinh(bpt_snr / SNR_SCALE),
            *np.arcsinh(snr / SNR_SCALE),
            strength * np.log10(width / 100.0),
            np.tanh((stellar_snr / 5.0) ** 2) * np.log10(stellar_width / 200.0),
            *np.clip(np.nan_to_num(np.array(indices) / 5.0), -RATIO_LIMIT, RATIO_LIMIT),
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
